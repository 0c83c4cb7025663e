from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from dmarket.common.serializers import StrictSerializer

from .models import FileVersion
from .names import FileRef


class FileVersionSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="file.user.username", read_only=True)
    name = serializers.CharField(source="file.name", read_only=True)
    public = serializers.BooleanField(source="file.public", read_only=True)
    uri = serializers.SerializerMethodField(
        help_text="How a job names this version (with ~OWNER/ for another user's file).")

    class Meta:
        model = FileVersion
        fields = ["owner", "name", "version", "size", "sha256", "public", "created_at", "uri"]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField())
    def get_uri(self, version):
        viewer = self.context.get("user")
        owner = version.file.user.username
        ref = FileRef(None if viewer is not None and viewer.username == owner else owner,
                      version.file.name, version.version)
        return ref.uri()


class FilePatchSerializer(StrictSerializer):
    public = serializers.BooleanField(help_text="Whether every user may read and use the file.")


class FileDeletedSerializer(serializers.Serializer):
    name = serializers.CharField()
    deleted_versions = serializers.ListField(child=serializers.IntegerField())


class StorageUsageSerializer(serializers.Serializer):
    used = serializers.IntegerField(help_text="Bytes of all versions of all your files.")
    quota = serializers.IntegerField(help_text="The most they may take, in bytes.")
    available = serializers.IntegerField(help_text="Bytes an upload may still have.")
    files = serializers.IntegerField()
    versions = serializers.IntegerField()


class ReplicaServerSerializer(serializers.Serializer):
    server = serializers.CharField(help_text="host:port of a storage server holding a copy.")
    volumes = serializers.ListField(child=serializers.IntegerField(),
                                    help_text="SeaweedFS's volumes of the file there.")
    chunks = serializers.IntegerField(allow_null=True,
                                      help_text="How many of the file's chunks it holds.")
    alive = serializers.BooleanField(help_text="Whether the store's master sees it now.")


class FileReplicasSerializer(serializers.Serializer):
    owner = serializers.CharField()
    name = serializers.CharField()
    version = serializers.IntegerField()
    sha256 = serializers.CharField()
    storage = serializers.CharField(help_text="local, s3 (a store that does not say where its "
                                              "copies are) or seaweedfs.")
    copies = serializers.IntegerField(help_text="Servers holding a whole copy now.")
    servers = ReplicaServerSerializer(many=True)
