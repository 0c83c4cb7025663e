import secrets

from django.db import transaction
from django.db.models import Max
from rest_framework.exceptions import Throttled, ValidationError

from dmarket.common.api import Conflict
from dmarket.credits.services import account_lock, run_hold, run_open
from dmarket.envs.models import Environment
from dmarket.envs.services import (BadEnvironment, BadWorkdir, TooManyBuilds, archive_manifest,
                                   env_request, workdir_size)
from dmarket.files.services import result_file
from dmarket.machines.models import Machine

from .inputs import job_inputs_pin, job_inputs_resolve
from .lifecycle import job_end_queued, job_request_stop
from .models import Job
from .pricing import market_premium_rate
from .serializers import submission_digest


def job_submit(user, fields):
    """Create a queued job and hold its credit cap, or return the job an earlier submit with
    the same submission_id created. Returns (job, created).

    Its dmarket:// files are pinned to the versions that exist now. Raises
    InsufficientCredits (nothing written) when available credits cannot cover the cap,
    ValidationError when it names a dmarket:// file the user cannot read, and Conflict when
    the submission_id was used for a different submission.
    """
    digest = submission_digest(fields)
    with transaction.atomic():
        # The account lock serialises one user's submits: two cannot both spend the same
        # credits, and two retries of one submission_id cannot both create a job.
        account_lock(user)
        if fields.get("submission_id"):
            existing = Job.objects.filter(user=user,
                                          submission_id=fields["submission_id"]).first()
            if existing is not None:
                if existing.submission_digest != digest:
                    raise Conflict(f"submission_id {fields['submission_id']!r} was already used "
                                   f"by job {existing.pk} with different fields.")
                return existing, False
        fields, pins = job_inputs_resolve(user, fields)
        gpus_offered_check(fields["machine_type"], fields.get("gpus_per_executor", 0))
        fields.update(job_environment(user, fields, pins))
        run = run_open(user, fields.pop("max_credits"), fields["machine_type"],
                       market_premium_rate(extra_jobs=1))
        job = Job.objects.create(user=user, submission_digest=digest, run=run, **fields)
        job_inputs_pin(job, pins)
        if job.environment_id and not job.files_token:
            # Its executors fetch the built environment with the job's credential.
            job.files_token = secrets.token_hex(32)
            job.save(update_fields=["files_token"])
        run_hold(run, f"job {job.pk}")
    return job, True


def gpus_offered_check(machine_type, gpus):
    """A job asking each executor for more GPUs than any machine of the market offers could
    never start: a 400 that says so. One that some machine offers, but none online now,
    waits QUEUED (the launcher says why on it)."""
    if not gpus:
        return
    most = (Machine.objects.filter(machine_type=machine_type).exclude(state=Machine.REMOVED)
            .aggregate(most=Max("gpus"))["most"]) or 0
    if gpus > most:
        offered = (f"the most one machine of the market offers is {most}" if most
                   else "no machine of the market offers any")
        raise ValidationError({"gpus_per_executor": [
            f"Each executor asks for {gpus} of resource {machine_type!r}; {offered}."]})


def job_environment(user, fields, pins):
    """The job's environment fields: requirements become the environment built from them
    (asked for now, built by a launcher before the job starts); a packed one (env) must be
    one: its manifest says which Python and platform it is for. Raises ValidationError."""
    requirements = fields.pop("requirements", "")
    if fields.get("working_dir"):
        workdir_check(fields["working_dir"], pin_path(pins[fields["working_dir"]]))
    if requirements:
        try:
            env, _ = env_request(requirements, user)
        except TooManyBuilds as e:
            raise Throttled(detail=str(e)) from None
        out = {"environment": env, "env_python": env.python, "env_platform": env.platform}
        if env.status != Environment.READY:
            out["status_reason"] = "waiting: its environment is being built"
        return out
    if fields.get("env"):
        path = pin_path(pins[fields["env"]])
        try:
            manifest = archive_manifest(path)
        except BadEnvironment as e:
            raise ValidationError({"env": [f"{fields['env']}: {e}"]}) from None
        return {"env_python": manifest["python"], "env_platform": manifest["platform"]}
    return {}


def pin_path(pin):
    return pin["version"].local_path() if pin.get("version") else result_file(pin["result_job"],
                                                                      pin["result_path"])


def workdir_check(uri, path):
    """A working directory must be a zip within DMARKET_WORKDIR_MAX_MB unpacked (its table of
    contents says, without unpacking it)."""
    import zipfile

    try:
        workdir_size(path)
    except BadWorkdir as e:
        raise ValidationError({"working_dir": [f"{uri}: {e}"]}) from None
    except (OSError, zipfile.BadZipFile) as e:
        raise ValidationError({"working_dir": [f"{uri}: not a zip ({e})"]}) from None


def job_fail_queued(job, reason):
    """A queued job that can never start (its environment could not be built) fails at once;
    it never ran, so nothing is billed and its hold is released."""
    return job_end_queued(job, Job.FAILED, reason)


def job_cancel(job, reason="cancelled by its owner"):
    """Cancel a queued job at once; ask the launcher to stop a starting or running one.

    Returns True when the job is now CANCELLED, False when the cancel was only requested.
    Raises Conflict when the job has already finished.
    """
    if job_end_queued(job, Job.CANCELLED, reason):
        return True
    # Started meanwhile, or earlier: the launcher stops it and records this outcome; a stop
    # already asked for (its credit cap was reached) keeps its own.
    job_request_stop(job, Job.CANCELLED, reason)
    if job.is_finished:
        raise Conflict(f"Job {job.pk} has already finished ({job.status}).")
    return False


def job_mark_stuck(daemon):
    """RowGuard's mark for jobs: its status_reason says which daemon fails on it (the
    operators' log has each traceback)."""
    def mark(job, error):
        Job.objects.filter(pk=job.pk).update(status_reason=(
            f"the {daemon} fails on this job and retries it: {type(error).__name__}: "
            f"{error}")[:500])
    return mark
