"""The files a job names (dmarket:// URIs in its entry file, libs, archives, files, env and
working directory): resolved and pinned when it is submitted, and the URLs Spark fetches them
from. Above the file store (dmarket.files), which imports nothing of jobs."""

import secrets

from django.conf import settings
from django.urls import reverse
from rest_framework.exceptions import NotFound, ValidationError

from dmarket.common.api import visible_to
from dmarket.files.models import JobInput
from dmarket.files.names import SCHEME, BadName, ResultRef, parse_uri
from dmarket.files.services import file_for, result_exists, version_of

from .models import Job
from .uris import split_alias

INPUT_ROLES = ("entry_file", "libs", "archives", "files", "env", "working_dir")
# Roles naming one file (the others a list); env and working_dir may name none.
SINGLE_ROLES = ("entry_file", "env", "working_dir")
ALIASED_ROLES = ("archives", "files")


class BadInput(Exception):
    pass


def finished_job(user, job_id):
    """The job whose results a ref names, if the user may read them and they are final;
    BadInput otherwise."""
    job = visible_to(Job.objects.all(), user).filter(pk=job_id).first()
    if job is None:
        raise BadInput(f"no job {job_id} whose results you may read")
    if not job.is_finished:
        raise BadInput(f"job {job.pk} has not finished ({job.status}); its results are "
                       "not final yet")
    return job


def input_resolve(user, ref):
    """(pinned URI, JobInput fields) for a ref the user may read; BadInput otherwise."""
    if isinstance(ref, ResultRef):
        job = finished_job(user, ref.job_id)
        if not result_exists(job, ref.path):
            raise BadInput(f"job {job.pk} has no result file {ref.path}")
        return ref.uri(), {"result_job": job, "result_path": ref.path}
    try:
        stored = file_for(user, ref)
    except NotFound:
        raise BadInput("no such file that you may read") from None
    try:
        # Locked until the job exists: a concurrent delete waits and then sees the pin.
        version = version_of(stored, ref, lock=True)
    except NotFound:
        latest = stored.versions.order_by("-version").first()
        raise BadInput(f"no version {ref.version} (the latest is {latest.version})") from None
    return ref.uri(version=version.version), {"version": version}


def job_inputs_resolve(user, fields):
    """The job's fields with every dmarket:// URI pinned to the version it names now
    (NAME -> NAME@LATEST), and the pins to record with job_inputs_pin.

    Raises ValidationError naming each field and URI that cannot be read."""
    fields, pins, errors = dict(fields), {}, {}
    for role in INPUT_ROLES:
        single = role in SINGLE_ROLES
        values = ([fields[role]] if fields.get(role) else []) if single \
            else list(fields.get(role) or [])
        for index, uri in enumerate(values):
            if not uri.startswith(SCHEME):
                continue
            base, alias = split_alias(uri) if role in ALIASED_ROLES else (uri, "")
            try:
                pinned, pin = input_resolve(user, parse_uri(base))
            except (BadInput, BadName) as e:
                message = f"{base}: {e}"
                if single:
                    errors[role] = [message]
                else:
                    errors.setdefault(role, {})[index] = [message]
                continue
            pins[pinned] = pin
            values[index] = pinned + (f"#{alias}" if alias else "")
        if values or not single:
            fields[role] = values[0] if single else values
    if errors:
        raise ValidationError(errors)
    return fields, pins


def inputs_pin(run, pins):
    """Pin the files of a job of either kind to its run."""
    JobInput.objects.bulk_create(JobInput(run=run, uri=uri, **pin) for uri, pin in pins.items())


def job_inputs_pin(job, pins):
    """Pin the job's files, and make the credential Spark fetches them with."""
    if not pins:
        return
    inputs_pin(job.run, pins)
    job.files_token = secrets.token_hex(32)
    job.save(update_fields=["files_token"])


def job_input_urls(job):
    """A function giving the URL Spark fetches for each of the job's URIs: a dmarket:// one
    becomes the server's URL of its pinned file, with the job's credential, ending in the
    file's own name (Spark names the copy after it); others stay as they are."""
    inputs = {i.uri: i for i in JobInput.objects.filter(run_id=job.run_id)}
    token = job.files_token
    base_url = settings.DMARKET_PUBLIC_URL.rstrip("/")

    def url(uri, role):
        if not uri.startswith(SCHEME):
            return uri
        base, alias = split_alias(uri) if role in ALIASED_ROLES else (uri, "")
        name = parse_uri(base).basename
        found = inputs[base]
        path = reverse("job-input", args=[job.pk, found.pk, token, name])
        return f"{base_url}{path}" + (f"#{alias}" if alias else "")

    return url
