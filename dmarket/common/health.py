"""GET /api/health/: whether this server can do its work, for a load balancer or a monitor:
the database answers, and so do the Spark master and the history server (the launcher and
billing need both). 200 when all do, 503 naming what does not."""

import time

import requests
from django.conf import settings
from django.db import connection
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

TIMEOUT = 2


def check_database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_url(url):
    response = requests.get(url, timeout=TIMEOUT)
    if response.status_code != 200:
        raise RuntimeError(f"HTTP {response.status_code}")


def checks():
    found = {"database": check_database}
    if not settings.DMARKET_SPARK_MASTER_URL.startswith("yarn"):
        found["master"] = lambda: check_url(
            settings.DMARKET_SPARK_MASTER_UI.rstrip("/") + "/json/")
    found["history"] = lambda: check_url(
        settings.DMARKET_HISTORY_URL.rstrip("/") + "/api/v1/applications?limit=1")
    return found


CHECK = inline_serializer("HealthCheck", {"ok": serializers.BooleanField(),
                                          "ms": serializers.IntegerField(),
                                          "error": serializers.CharField(required=False)})
HEALTH = inline_serializer("Health", {"status": serializers.CharField(),
                                      "checks": serializers.DictField(child=CHECK)})


class HealthView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(responses={200: HEALTH, 503: HEALTH}, auth=[])
    def get(self, request):
        results = {}
        for name, check in checks().items():
            start = time.perf_counter()
            try:
                check()
                results[name] = {"ok": True}
            except Exception as e:  # noqa: BLE001 - any failure is the answer
                # The kind of failure only: addresses and messages stay in the server's log.
                results[name] = {"ok": False, "error": type(e).__name__}
            results[name]["ms"] = round((time.perf_counter() - start) * 1000)
        healthy = all(r["ok"] for r in results.values())
        return Response({"status": "ok" if healthy else "failing", "checks": results},
                        status=200 if healthy else 503)
