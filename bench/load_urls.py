"""bench/load.py's URLs: the market's, plus the baseline it measures them against (never
served by the market itself)."""

from django.urls import path
from django.utils import timezone
from rest_framework.response import Response
from rest_framework.views import APIView

from dmarket.accounts.models import ApiToken
from dmarket.urls import handler404, handler500, urlpatterns as market  # noqa: F401


class Baseline(APIView):
    """A bare DRF view with the API's token authentication and one UPDATE: the least a
    heartbeat can cost."""

    def post(self, request):
        ApiToken.objects.filter(pk=request.auth.pk).update(last_used_at=timezone.now())
        return Response({"ok": True})

    get = post


urlpatterns = [path("bench/baseline/", Baseline.as_view()), *market]
