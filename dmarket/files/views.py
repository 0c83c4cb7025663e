import re

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from dmarket.common.api import LengthRequired, PayloadTooLarge, bool_param, int_param

from .models import FileVersion
from .names import BadName, FileRef, check_name
from .serializers import (FileDeletedSerializer, FilePatchSerializer, FileReplicasSerializer,
                          FileVersionSerializer, StorageUsageSerializer)
from .services import (MAX_PATTERN, QuotaExceeded, UploadFailed, file_delete, file_for,
                       file_publish, file_store, files_latest, storage_summary, version_of)
from .storage import blob_replicas, blob_response

SHA256 = re.compile(r"^[0-9a-f]{64}$")
OWNER = OpenApiParameter("owner", OpenApiTypes.STR,
                         description="Another user's public files (operators: anyone's).")
VERSION = OpenApiParameter("version", OpenApiTypes.INT,
                           description="One version (default: the latest).")
BINARY = {(200, "application/octet-stream"): OpenApiTypes.BINARY}


def name_of(name):
    try:
        return check_name(name)
    except BadName as e:
        raise ValidationError({"name": [f"{e}."]}) from None


def ref_of(request, name, versioned=True):
    """The FileRef a request names: NAME in the path, ?owner= and ?version=."""
    owner = request.query_params.get("owner") or None
    if owner == request.user.username:
        owner = None
    version = int_param(request, "version", None, 1) if versioned else None
    return FileRef(owner, name_of(name), version)


class FileListView(generics.ListAPIView):
    serializer_class = FileVersionSerializer

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "user": self.request.user}

    def get_queryset(self):
        params = self.request.query_params
        pattern = params.get("pattern")
        if pattern is not None and len(pattern) > MAX_PATTERN:
            raise ValidationError({"pattern": [f"At most {MAX_PATTERN} characters."]})
        found = files_latest(self.request.user, params.get("owner"), pattern)
        sha256 = params.get("sha256")
        if sha256 is not None:
            if not SHA256.match(sha256.lower()):
                raise ValidationError({"sha256": ["Give 64 hexadecimal digits."]})
            found = found.filter(sha256=sha256.lower())
        return found

    @extend_schema(operation_id="files_list", parameters=[
        OpenApiParameter("pattern", OpenApiTypes.STR,
                         description="Only names matching this pattern (* and ?)."),
        OpenApiParameter("sha256", OpenApiTypes.STR,
                         description="Only files whose latest version has these bytes (their "
                                     "SHA-256 in hex): whether the store holds them already."),
        OWNER,
    ])
    def get(self, request):
        """The latest version of each file."""
        return self.list(request)


class StorageUsageView(APIView):
    @extend_schema(responses={200: StorageUsageSerializer})
    def get(self, request):
        """What your files take and what your quota leaves."""
        return Response(storage_summary(request.user))


class FileView(APIView):
    @extend_schema(operation_id="files_download", parameters=[OWNER, VERSION],
                   responses=BINARY)
    def get(self, request, name):
        ref = ref_of(request, name)
        version = version_of(file_for(request.user, ref), ref)
        response = blob_response(version.blob, version.size, ref.basename, version.sha256)
        response["X-File-Version"] = str(version.version)
        return response

    @extend_schema(
        operation_id="files_upload",
        request={"application/octet-stream": OpenApiTypes.BINARY},
        parameters=[
            OpenApiParameter("public", OpenApiTypes.BOOL,
                             description="Make the file public (true) or private (false); "
                                         "default: as it was (private for a new file)."),
            OpenApiParameter("X-Content-SHA256", OpenApiTypes.STR, OpenApiParameter.HEADER,
                             description="The body's SHA-256 in hex; a mismatch stores "
                                         "nothing."),
        ],
        responses={201: FileVersionSerializer},
    )
    def put(self, request, name):
        """Store the body as a new version of NAME."""
        name = name_of(name)
        public = bool_param(request, "public")
        raw_length = request.META.get("CONTENT_LENGTH") or ""
        if not raw_length.isdigit():
            raise LengthRequired("Give the file's size in Content-Length (chunked uploads "
                                 "are not accepted).")
        sha256 = request.headers.get("X-Content-SHA256")
        if sha256 is not None and not SHA256.match(sha256.lower()):
            raise ValidationError({"X-Content-SHA256": ["Give 64 hexadecimal digits."]})
        try:
            # The raw WSGI stream, read a chunk at a time: DRF's parsers (and request.body)
            # would hold the whole file in memory.
            version = file_store(request.user, name, request._request, int(raw_length),
                                 sha256.lower() if sha256 else None, public)
        except QuotaExceeded as e:
            raise PayloadTooLarge(str(e)) from None
        except UploadFailed as e:
            raise ValidationError({e.field: [str(e)]}) from None
        return Response(FileVersionSerializer(version, context={"user": request.user}).data,
                        status=status.HTTP_201_CREATED)

    @extend_schema(operation_id="files_update", request=FilePatchSerializer,
                   responses={200: FileVersionSerializer})
    def patch(self, request, name):
        """Make your file public or private (every version)."""
        ref = FileRef(None, name_of(name))
        serializer = FilePatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        stored = file_for(request.user, ref)
        file_publish(stored, serializer.validated_data["public"])
        latest = version_of(stored, ref)
        return Response(FileVersionSerializer(latest, context={"user": request.user}).data)

    @extend_schema(operation_id="files_delete", parameters=[VERSION],
                   responses={200: FileDeletedSerializer})
    def delete(self, request, name):
        """Delete one version of your file, or all of them; 409 while an unfinished job
        uses one."""
        ref = FileRef(None, name_of(name), int_param(request, "version", None, 1))
        deleted = file_delete(request.user, ref)
        return Response({"name": ref.name, "deleted_versions": deleted})


class FileVersionListView(generics.ListAPIView):
    serializer_class = FileVersionSerializer

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "user": self.request.user}

    def get_queryset(self):
        stored = file_for(self.request.user,
                          ref_of(self.request, self.kwargs["name"], versioned=False))
        return (FileVersion.objects.select_related("file__user").filter(file=stored)
                .order_by("-version"))

    @extend_schema(operation_id="files_versions", parameters=[OWNER])
    def get(self, request, name):
        """Every version of a file, newest first (?page_size=N: the last N)."""
        return self.list(request)


class FileReplicasView(APIView):
    @extend_schema(operation_id="files_replicas", parameters=[OWNER, VERSION],
                   responses={200: FileReplicasSerializer})
    def get(self, request, name):
        """Which storage servers hold copies of a file's version (the latest by default)."""
        ref = ref_of(request, name)
        stored = file_for(request.user, ref)
        version = version_of(stored, ref)
        return Response({"owner": stored.user.username, "name": stored.name,
                         "version": version.version, "sha256": version.sha256,
                         **blob_replicas(version.blob)})

