from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, Throttled, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from dmarket.common.api import Conflict, PayloadTooLarge
from dmarket.credits.services import account_lock
from dmarket.files.names import BadName, check_name
from dmarket.files.serializers import FileVersionSerializer
from dmarket.files.services import QuotaExceeded, UploadFailed, file_store

from .models import Environment
from .serializers import (EnvironmentRequestSerializer, EnvironmentSaveSerializer,
                          EnvironmentSerializer)
from .services import BadRequirements, TooManyBuilds, env_request


def env_of(key):
    env = Environment.objects.filter(key=key).first()
    if env is None:
        raise NotFound(f"No environment {key}.")
    return env


class EnvironmentListView(APIView):
    @extend_schema(request=EnvironmentRequestSerializer,
                   responses={200: EnvironmentSerializer, 202: EnvironmentSerializer})
    def post(self, request):
        """The environment of these requirements: 200 when it is built (or failed), 202 while
        a launcher builds it (poll its URL). The same requirements are built once."""
        serializer = EnvironmentRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            with transaction.atomic():
                account_lock(request.user)
                env, _ = env_request(serializer.validated_data["requirements"], request.user)
        except BadRequirements as e:
            raise ValidationError({"requirements": [str(e)]}) from None
        except TooManyBuilds as e:
            raise Throttled(detail=str(e)) from None
        code = status.HTTP_202_ACCEPTED if env.status == Environment.BUILDING \
            else status.HTTP_200_OK
        return Response(EnvironmentSerializer(env).data, status=code)


class EnvironmentDetailView(APIView):
    @extend_schema(responses={200: EnvironmentSerializer})
    def get(self, request, key):
        return Response(EnvironmentSerializer(env_of(key)).data)


class EnvironmentSaveView(APIView):
    @extend_schema(request=EnvironmentSaveSerializer, responses={201: FileVersionSerializer})
    def post(self, request, key):
        """Store the built environment as your file NAME, for jobs to name as
        --env dmarket://NAME."""
        serializer = EnvironmentSaveSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            name = check_name(serializer.validated_data["name"])
        except BadName as e:
            raise ValidationError({"name": [f"{e}."]}) from None
        if not name.lower().endswith((".tar.gz", ".tgz")):
            raise ValidationError({"name": ["A packed environment's name ends in .tar.gz."]})
        env = env_of(key)
        if env.status != Environment.READY:
            raise Conflict(f"Environment {key} is {env.status}, not READY.")
        try:
            with open(env.archive_path, "rb") as f:
                version = file_store(request.user, name, f, env.size, env.sha256)
        except QuotaExceeded as e:
            raise PayloadTooLarge(str(e)) from None
        except UploadFailed as e:
            raise ValidationError({e.field: [str(e)]}) from None
        return Response(FileVersionSerializer(version, context={"user": request.user}).data,
                        status=status.HTTP_201_CREATED)

