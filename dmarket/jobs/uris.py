"""Checks on the files a job names: its entry file, libs, archives and files.

They reach spark-submit as single argv entries, so the checks are about giving the user a
clear error now rather than a failed job later, not about shell safety. Files on the server
or its machines (a path, file:// or local:) are for operators only: Spark would ship
whatever the server can read to the job; users name dmarket:// files (`dmarket jobs submit`
uploads local files into their store) or remote URIs.
"""

import os
import re
from urllib.parse import urlsplit

from dmarket.files.names import SCHEME, BadName, parse_uri, server_file_refusal

REMOTE_SCHEMES = {"http", "https", "hdfs", "s3a", "gs", "abfs", "abfss", "local"}
# A path on the server (none, file:) or on every worker (local:).
SERVER_SCHEMES = {"", "file", "local"}
UPLOAD = "dmarket files put, or let dmarket jobs submit upload it"
ALIAS = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
EXTENSIONS = {
    "entry_file": (".py", ".jar"),
    "libs": (".py", ".zip", ".egg", ".jar"),
    "archives": (".zip", ".tar.gz", ".tgz", ".tar", ".jar"),
    "files": ("",),  # any file
}
# Roles where Spark reads '#alias' as the name to give the fetched copy.
ALIASED = ("archives", "files")


class BadURI(ValueError):
    pass


def split_alias(uri):
    """'data.zip#data' -> ('data.zip', 'data'), Spark's way of naming an unpacked archive."""
    base, sep, alias = uri.rpartition("#")
    if not sep:
        return uri, ""
    if not ALIAS.match(alias):
        raise BadURI(f"{uri!r}: the alias after '#' may hold only letters, digits, '.', '_' "
                     "and '-'")
    return base, alias


def check_uri(uri, role, user=None):
    """Return the URI unchanged, or raise BadURI with a message a person can act on. Files on
    the server or its machines only for an operator `user`."""
    if not uri or uri != uri.strip():
        raise BadURI("must be a non-empty path or URI without surrounding spaces")
    if any(ord(c) < 32 for c in uri):
        raise BadURI(f"{uri!r} contains a control character")
    base = split_alias(uri)[0] if role in ALIASED else uri
    parts = urlsplit(base)
    scheme = parts.scheme.lower()
    # Before any look at the path: a user learns nothing of the server's files.
    if scheme in SERVER_SCHEMES and (refusal := server_file_refusal(user, uri, "file", UPLOAD)):
        raise BadURI(refusal)
    if base.startswith(SCHEME):
        # Whether the file exists and the submitter may read it is checked at submission
        # (dmarket.jobs.inputs.job_inputs_resolve); here only its shape.
        try:
            path = parse_uri(base).basename
        except BadName as e:
            raise BadURI(str(e)) from None
    elif scheme in REMOTE_SCHEMES:
        if scheme in ("http", "https", "hdfs", "s3a", "gs", "abfs", "abfss") and not parts.netloc:
            raise BadURI(f"{uri!r} names no host")
        path = parts.path
    elif scheme in ("", "file"):
        path = parts.path if scheme == "file" else base
        if not os.path.isabs(path):
            raise BadURI(f"{uri!r} is not an absolute path; give the full path of a file "
                         "the server can read, or an http(s):// or hdfs:// URI")
        if not (os.path.isfile(path) and os.access(path, os.R_OK)):
            raise BadURI(f"{path} is not a file the server can read")
    else:
        raise BadURI(f"{uri!r}: unsupported scheme {scheme!r}; use a path, file://, "
                     "dmarket://, http(s)://, hdfs:// or another Hadoop file system")
    if not path.lower().endswith(EXTENSIONS[role]):
        raise BadURI(f"{uri!r} should end with one of {', '.join(EXTENSIONS[role])}")
    return uri


def entry_is_jar(uri):
    """Whether an entry file that check_uri passed is a JAR (else it is a .py)."""
    path = parse_uri(uri).basename if uri.startswith(SCHEME) else urlsplit(uri).path
    return path.lower().endswith(".jar")
