"""Names in the file store and the dmarket:// URIs that jobs use, without any database.

    NAME             mnist/train.py (segments of letters, digits, '.', '_', '-')
    ~USER/NAME       another user's file (public, or the caller is an operator)
    ...@VERSION      one version; without it, the latest
    dmarket://REF    a file in a job's entry_file, libs, archives or files
    dmarket://jobs/ID/results/PATH   a result file of another job
"""

import re
from dataclasses import dataclass

MAX_NAME = 255
SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
SCHEME = "dmarket://"
RESULT = re.compile(r"^jobs/(\d{1,18})/results/(.+)$")


class BadName(ValueError):
    pass


@dataclass(frozen=True)
class FileRef:
    owner: str | None  # None: the caller's own store
    name: str
    version: int | None = None

    @property
    def basename(self):
        return self.name.rsplit("/", 1)[-1]

    def uri(self, version=None):
        owner = f"~{self.owner}/" if self.owner else ""
        version = version if version is not None else self.version
        return f"{SCHEME}{owner}{self.name}" + (f"@{version}" if version is not None else "")


@dataclass(frozen=True)
class ResultRef:
    job_id: int
    path: str

    @property
    def basename(self):
        return self.path.rsplit("/", 1)[-1]

    def uri(self):
        return f"{SCHEME}jobs/{self.job_id}/results/{self.path}"


def check_name(name):
    """Return the name, or raise BadName saying what is wrong with it."""
    if not name:
        raise BadName("a file name must not be empty")
    if len(name) > MAX_NAME:
        raise BadName(f"a file name has at most {MAX_NAME} characters")
    segments = name.split("/")
    if not all(SEGMENT.match(s) for s in segments):
        raise BadName(f"{name!r}: use segments of letters, digits, '.', '_' and '-' separated "
                      "by '/', each starting with a letter, digit or '_'")
    # dmarket://jobs/ID/results/... names job results; a stored file cannot shadow them.
    if segments[0] == "jobs":
        raise BadName(f"{name!r}: names starting with 'jobs/' are reserved for job results")
    return name


def parse_ref(text):
    """'~ada/data/x.zip@3' -> FileRef('ada', 'data/x.zip', 3)."""
    owner = None
    if text.startswith("~"):
        owner, sep, text = text[1:].partition("/")
        if not owner or not sep:
            raise BadName("write another user's file as ~USER/NAME")
    name, sep, version = text.rpartition("@")
    if not sep:
        name, version = text, None
    elif not version.isdigit() or int(version) < 1 or len(version) > 9:
        raise BadName(f"{version!r} is not a version number (1, 2, ...)")
    else:
        version = int(version)
    return FileRef(owner, check_name(name), version)


def parse_uri(uri):
    """A dmarket:// URI (without any '#alias') as a FileRef or a ResultRef."""
    if not uri.startswith(SCHEME):
        raise BadName(f"{uri!r} does not start with {SCHEME}")
    rest = uri[len(SCHEME):]
    match = RESULT.match(rest)
    if match:
        path = match.group(2)
        parts = path.split("/")
        if path.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise BadName(f"{uri!r}: the result path must be relative, without '.' or '..'")
        return ResultRef(int(match.group(1)), path)
    if rest.startswith("jobs/"):
        raise BadName(f"{uri!r}: write a job's result as {SCHEME}jobs/ID/results/PATH")
    return parse_ref(rest)


def server_file_refusal(user, ref, what, upload="dmarket files put"):
    """Why `user` may not name `ref`, a file by its path on the server or its machines (a
    path, file:// or local:), or None: only operators may. Anyone else would have the market
    read, and ship to their job, whatever the server can read."""
    if getattr(user, "is_staff", False):
        return None
    return (f"{ref!r}: only operators may name files on the server; put the {what} into the "
            f"file store ({upload}) and name it dmarket://NAME")
