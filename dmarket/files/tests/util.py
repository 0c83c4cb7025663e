"""Helpers shared by the file store's tests."""

import hashlib

from django.utils.dateparse import parse_datetime

from dmarket.conftest import client_for
from dmarket.files.models import FileVersion

ANONYMOUS = {"detail": "Authentication credentials were not provided."}


def sha(data):
    return hashlib.sha256(data).hexdigest()


def upload(user, name, data, sha256=None, **params):
    """PUT the bytes as a new version of NAME (params: ?public=...)."""
    query = "&".join(f"{k}={v}" for k, v in params.items())
    headers = {"HTTP_X_CONTENT_SHA256": sha256} if sha256 is not None else {}
    return client_for(user).generic(
        "PUT", f"/api/files/{name}" + (f"?{query}" if query else ""), data,
        content_type="application/octet-stream", **headers)


def uploaded(user, name, data, **params):
    response = upload(user, name, data, **params)
    assert response.status_code == 201, response.content
    return FileVersion.objects.get(file__user=user, file__name=name,
                                   version=response.json()["version"])


def version_json(version, uri=None, **changes):
    """The exact JSON of a stored version, as its owner sees it."""
    version.refresh_from_db()
    body = {
        "owner": version.file.user.username,
        "name": version.file.name,
        "version": version.version,
        "size": version.size,
        "sha256": version.sha256,
        "public": version.file.public,
        "created_at": iso(version.created_at),
        "uri": uri or f"dmarket://{version.file.name}@{version.version}",
    }
    body.update(changes)
    return body


def iso(dt):
    text = dt.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def same_time(text, dt):
    return parse_datetime(text) == dt


def stored_blobs(settings):
    """Every file under the store's directory (blobs and unfinished uploads)."""
    root = settings.DMARKET_FILES_DIR
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
