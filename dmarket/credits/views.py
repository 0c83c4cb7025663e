from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics
from rest_framework.response import Response
from rest_framework.views import APIView

from dmarket.common.api import NewestFirstCursor, choice_param
from dmarket.common.serializers import ValuesSerializer

from .models import Account, LedgerEntry
from .serializers import CreditsSerializer, LedgerEntrySerializer

KINDS = [k for k, _ in LedgerEntry.KINDS]


class CreditsView(APIView):
    @extend_schema(responses={200: CreditsSerializer})
    def get(self, request):
        account, _ = Account.objects.get_or_create(user=request.user)
        data = {name: getattr(account, name)
                for name in ("balance", "held", "available", "earned", "spent")}
        return Response(CreditsSerializer(data).data)


class TransactionListView(generics.GenericAPIView):
    serializer_class = LedgerEntrySerializer
    pagination_class = NewestFirstCursor
    rows = ValuesSerializer(LedgerEntrySerializer)

    @extend_schema(parameters=[
        OpenApiParameter("kind", OpenApiTypes.STR, enum=KINDS,
                         description="Only rows of these kinds (comma-separated)."),
    ])
    def get(self, request):
        filters = {"user": request.user}
        kinds = choice_param(request, "kind", [k.upper() for k in KINDS])
        if kinds:
            filters["kind__in"] = [k.lower() for k in kinds]
        page = self.paginate_queryset(self.rows.queryset.filter(**filters))
        return self.get_paginated_response(page)
