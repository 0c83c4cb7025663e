"""Job environments: requirements checked and normalised, environments asked for (built once
per distinct set, then reused), packed archives checked and unpacked for drivers.

An environment is the directory `pip install --target` makes, packed as a tar.gz whose first
member is `dmarket-env.json` (what it holds and which Python and platform it is for) and whose
packages are under `site/`. Executors get it as a Spark archive (`#dmarket-env`, on their
PYTHONPATH as `dmarket-env/site`); drivers read it unpacked on the launcher's host.
"""

import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import uuid
import zlib
from pathlib import Path

from dmarket_client.agent import python_platform
from dmarket_client.api import file_sha256
from django.conf import settings
from django.db import transaction
from django.db.models import F
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .models import Environment

MANIFEST = "dmarket-env.json"
SITE = "site"
# What the executors and the driver call it (the archive's alias, the unpacked directory).
ALIAS = "dmarket-env"
WORKDIR_ALIAS = "dmarket-workdir"
MAX_MEMBERS = 200000
MAX_ZIP_ENTRIES = 100000


class BadRequirements(ValueError):
    pass


class BadEnvironment(ValueError):
    pass


def requirements_normalize(text):
    """The requirements as one canonical text (sorted, names normalised, one per line), so
    that the same set written differently is the same environment.

    Only package requirements from the market's index: a pip option (-r, -e, --index-url,
    --find-links...) or a URL or path requirement could read the builder's files or fetch
    from anywhere, so each is refused with its line number."""
    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        if "\x00" in line:
            raise BadRequirements(f"line {number}: contains a NUL character")
        if "\\" in line or "${" in line or "===" in line:
            # pip joins a line ending in '\\' to the next, expands ${VAR}, and reads what
            # follows '===' as a path when it is one.
            raise BadRequirements(f"line {number}: '\\', '${{' and '===' are not allowed")
        if line.startswith("-"):
            raise BadRequirements(
                f"line {number}: {line.split()[0]!r} is a pip option; only package "
                "requirements are allowed (the index is the market's)")
        try:
            req = Requirement(line)
        except InvalidRequirement as e:
            raise BadRequirements(f"line {number}: {line!r} is not a requirement ({e})") from None
        if req.url:
            raise BadRequirements(f"line {number}: {line!r} names a URL or path; only package "
                                  "names and versions from the index are allowed")
        extras = f"[{','.join(sorted(canonicalize_name(e) for e in req.extras))}]" \
            if req.extras else ""
        spec = ",".join(sorted(str(s) for s in req.specifier))
        marker = f"; {req.marker}" if req.marker else ""
        lines.append(f"{canonicalize_name(req.name)}{extras}{spec}{marker}")
    if not lines:
        raise BadRequirements("names no package")
    if len(lines) > settings.DMARKET_ENV_MAX_REQUIREMENTS:
        raise BadRequirements(f"at most {settings.DMARKET_ENV_MAX_REQUIREMENTS} requirements")
    return "\n".join(sorted(set(lines))) + "\n"


# The end of a build's log: the launcher's builder (dmarket.cluster.env_builder) puts it in a
# failed build's error, the API shows it while an environment builds or after it failed.
def log_tail(env, limit=2000):
    try:
        with open(env.log_path, "rb") as f:
            f.seek(max(0, os.path.getsize(env.log_path) - limit))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def builder_python():
    """(Python version, platform) of the environments this server builds: its executors'
    Python (DMARKET_EXECUTOR_PYTHON) is the one it runs, doc/deploy.md. The same pair an
    agent reports for its machine."""
    found = python_platform()
    return found["python"], found["platform"]


def env_key(requirements, python, platform):
    return hashlib.sha256(json.dumps([requirements, python, platform]).encode()).hexdigest()


class TooManyBuilds(Exception):
    pass


def builds_check(user):
    """A user may have DMARKET_ENV_MAX_BUILDING_PER_USER builds waiting or running at once:
    each takes a launcher's build slot for up to DMARKET_ENV_BUILD_TIMEOUT."""
    limit = settings.DMARKET_ENV_MAX_BUILDING_PER_USER
    if user is not None and Environment.objects.filter(
            requested_by=user, status=Environment.BUILDING).count() >= limit:
        raise TooManyBuilds(f"You have {limit} environments being built; wait for one to "
                            "finish.")


def env_request(requirements_text, user=None):
    """The environment for these requirements: the stored one when it was built before (or
    is being built), else a new one for the launchers to build; a failed one is built again.
    Returns (environment, built_before). Raises BadRequirements, and TooManyBuilds when the
    user would start one build too many (the caller holds the user's lock)."""
    requirements = requirements_normalize(requirements_text)
    python, platform = builder_python()
    key = env_key(requirements, python, platform)
    with transaction.atomic():
        env = Environment.objects.select_for_update().filter(key=key).first()
        created = env is None
        if created or env.status == Environment.FAILED:
            builds_check(user)
        if created:
            env, created = Environment.objects.get_or_create(
                key=key, defaults={"requirements": requirements, "python": python,
                                   "platform": platform, "requested_by": user})
            env = Environment.objects.select_for_update().get(pk=env.pk)
        if env.status == Environment.FAILED:
            env.status, env.error, env.builder, env.build_started_at = (
                Environment.BUILDING, "", "", None)
            env.requested_by = user
            env.save(update_fields=["status", "error", "builder", "build_started_at",
                                    "requested_by"])
        Environment.objects.filter(pk=env.pk).update(uses=F("uses") + 1)
    env.refresh_from_db()
    return env, not created


def manifest(requirements, python, platform):
    return {"format": 1, "requirements": requirements, "python": python, "platform": platform}


PYTHON = re.compile(r"^[0-9]{1,2}\.[0-9]{1,3}$")
PLATFORM = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def archive_manifest(path):
    """The manifest of a packed environment: its first member, read header by hand (the
    archive is not read further, and no header of the user's is trusted with a size to
    allocate). Raises BadEnvironment."""
    import gzip

    try:
        with gzip.open(path, "rb") as f:
            header = f.read(tarfile.BLOCKSIZE)
            info = tarfile.TarInfo.frombuf(header, "utf-8", "strict")
            if info.name != MANIFEST or info.type != tarfile.REGTYPE or info.size > 1 << 20:
                raise BadEnvironment(f"its first member is not {MANIFEST}: not an environment "
                                     "packed by dmarket env build")
            data = json.loads(f.read(info.size))
    except BadEnvironment:
        raise
    except (OSError, tarfile.TarError, EOFError, ValueError, zlib.error, RecursionError) as e:
        raise BadEnvironment(f"not a packed environment (a tar.gz from dmarket env build): "
                             f"{e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("python"), str) \
            or not isinstance(data.get("platform"), str) \
            or not PYTHON.match(data["python"]) or not PLATFORM.match(data["platform"]):
        raise BadEnvironment(f"its {MANIFEST} names no python (e.g. 3.11) and platform "
                             "(e.g. linux-x86_64)")
    return data


def env_pack(site, target, requirements, python, platform):
    """Pack the directory `site` (what pip installed) into the tar.gz `target`: the manifest
    first, files and directories only (links are left out, never followed), at most
    DMARKET_ENV_MAX_MB unpacked.
    Returns (size, sha256). Raises BadEnvironment when it is too large."""
    limit = settings.DMARKET_ENV_MAX_MB * 1024 * 1024
    total = 0
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
    try:
        with tarfile.open(tmp, "w:gz", compresslevel=1) as tar:
            data = json.dumps(manifest(requirements, python, platform), indent=1).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

            def add(info):
                nonlocal total
                total += info.size
                if total > limit:
                    raise BadEnvironment(f"the environment is larger than "
                                         f"{settings.DMARKET_ENV_MAX_MB} MB unpacked")
                # Files and directories only: unpacking refuses anything else.
                if not (info.isfile() or info.isdir()):
                    return None
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                return info

            tar.add(site, arcname=SITE, recursive=True, filter=add)
        sha256 = file_sha256(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target.stat().st_size, sha256


def unpacked_dir(sha256):
    return Path(settings.DMARKET_ENVS_DIR) / "unpacked" / sha256


def env_unpack(archive, sha256):
    """The environment's `site` directory unpacked on this host (once per archive), for
    drivers to read: Python's "data" filter refuses members that leave the directory, links
    pointing out of it and device files; at most DMARKET_ENV_MAX_MB. Raises BadEnvironment."""
    target = unpacked_dir(sha256)
    if (target / SITE).is_dir():
        return target / SITE
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{sha256}.{uuid.uuid4().hex}")
    limit = settings.DMARKET_ENV_MAX_MB * 1024 * 1024
    try:
        with tarfile.open(archive, "r:gz") as tar:
            total = count = 0
            for member in tar:
                total += member.size
                count += 1
                if total > limit:
                    raise BadEnvironment(f"larger than {settings.DMARKET_ENV_MAX_MB} MB "
                                         "unpacked")
                if count > MAX_MEMBERS:
                    raise BadEnvironment(f"more than {MAX_MEMBERS} members")
                # TarFile keeps every member it read: only the last is needed.
                tar.members = []
                parts = member.name.split("/")
                if member.name != MANIFEST and parts[0] != SITE:
                    continue
                # pip --target from wheels makes files and directories only; a link or a
                # device, or a name that climbs, is refused here and by the "data" filter.
                if not (member.isfile() or member.isdir()) or ".." in parts \
                        or member.name.startswith("/"):
                    raise BadEnvironment(f"{member.name!r}: only files and directories below "
                                         f"{SITE}/ may be in an environment")
                tar.extract(member, tmp, filter="data")
        (tmp / SITE).mkdir(exist_ok=True)
        # Readable by the drivers' sandbox identity, writable by nobody but the server.
        for root, dirs, files in os.walk(tmp):
            for name in dirs:
                if not os.path.islink(os.path.join(root, name)):
                    os.chmod(os.path.join(root, name), 0o755)
            for name in files:
                path = os.path.join(root, name)
                if not os.path.islink(path):
                    os.chmod(path, 0o644 | (os.stat(path).st_mode & 0o111))
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / SITE).is_dir():
                raise
    except (BadEnvironment, OSError, tarfile.TarError, EOFError, zlib.error) as e:
        raise BadEnvironment(f"could not unpack the environment: {e}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target / SITE


def executor_site_file():
    return Path(__file__).parent / "executor" / "sitecustomize.py"


class BadWorkdir(ValueError):
    pass


def workdir_size(archive):
    """The unpacked size of a working directory's zip, from its table of contents, which is
    read only when the zip is within the limit and names at most MAX_ZIP_ENTRIES entries.
    Raises BadWorkdir, or zipfile.BadZipFile for what is no zip."""
    import zipfile

    limit = settings.DMARKET_WORKDIR_MAX_MB * 1024 * 1024
    too_large = BadWorkdir(f"its working directory is larger than "
                           f"{settings.DMARKET_WORKDIR_MAX_MB} MB unpacked")
    if os.path.getsize(archive) > limit:
        raise too_large
    with open(archive, "rb") as f:
        end = zipfile._EndRecData(f)
    if end is None:
        raise zipfile.BadZipFile("File is not a zip file")
    if end[zipfile._ECD_ENTRIES_TOTAL] > MAX_ZIP_ENTRIES:
        raise BadWorkdir(f"its working directory holds more than {MAX_ZIP_ENTRIES} entries")
    with zipfile.ZipFile(archive) as z:
        size = sum(i.file_size for i in z.infolist())
    if size > limit:
        raise too_large
    return size


def workdir_unpack(archive, target, owner=None):
    """Unpack a job's working directory (a zip) into `target`, its driver's home: at most
    DMARKET_WORKDIR_MAX_MB and 100,000 entries unpacked, checked before anything is written;
    zipfile strips absolute paths and '..', and makes no links. Given to `owner`."""
    import zipfile

    try:
        workdir_size(archive)
        with zipfile.ZipFile(archive) as z:
            z.extractall(target)
    except (OSError, zipfile.BadZipFile, ValueError, zlib.error) as e:
        if isinstance(e, BadWorkdir):
            raise
        raise BadWorkdir(f"could not unpack its working directory: {e}") from None
    if owner is not None:
        for root, dirs, files in os.walk(target):
            for name in dirs + files:
                os.lchown(os.path.join(root, name), *owner)


def env_blobs_named(keys):
    """Which of the keys in the store a built environment names (its packed archive)."""
    return set(Environment.objects.filter(blob__in=keys).values_list("blob", flat=True))


def job_env_archive(job):
    """(path, sha256) of the job's environment archive on this host, or None."""
    if job.environment_id:
        env = job.environment
        return env.archive_path, env.sha256
    if job.env:
        found = job_input_path(job, job.env)
        if found is None:
            raise BadEnvironment(f"{job.env} is gone")
        path, version = found
        return path, version.sha256 if version is not None else file_sha256(path)
    return None


def job_workdir_archive(job):
    found = job_input_path(job, job.working_dir)
    if found is None:
        raise BadWorkdir(f"{job.working_dir} is gone")
    return found[0]


def job_input_path(job, uri):
    """(path, its FileVersion or None for another job's result) of the job's pinned input
    `uri`, or None."""
    from dmarket.files.models import JobInput
    from dmarket.files.services import job_input_file

    found = (JobInput.objects.select_related("version").filter(run_id=job.run_id, uri=uri)
             .first())
    path = job_input_file(job, found.pk) if found else None
    return (path, found.version) if path is not None else None
