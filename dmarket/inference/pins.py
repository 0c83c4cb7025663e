"""Inference jobs' models, weights and data in the file store, pinned at submission.

A user names a model or weights file as `dmarket://NAME[@V]` (or just `NAME[@V]`),
`dmarket://~USER/NAME` (public) or `dmarket://jobs/ID/results/PATH`, and data as
`dmarket://PATTERN` (* and ? match, '/' included; a name without them that is not a file is
a folder: every file under it), `dmarket://~USER/PATTERN` or `dmarket://jobs/ID/results/PATTERN`.
Each is pinned when the job is submitted (a JobInput of its run: the version it
named then, kept from deletion until the job ends), so the job reads the same bytes however
long it waits. The inference server's driver reads them on the central server's disk and
sends the executors the model (a Spark broadcast) and each batch's inputs: executors need no
access to the store. Absolute paths on the server are for operators only.

This is the file store's side (Django): the pins, and the paths of the pinned files. What a
reference names, and reading a file's inputs, is references.py's (no Django).
"""

import re

from rest_framework.exceptions import ValidationError

from dmarket.files.models import JobInput
from dmarket.files.names import (SCHEME, BadName, FileRef, ResultRef, parse_ref, parse_uri,
                                 server_file_refusal)
from dmarket.files.services import (
    files_latest,
    glob_regex,
    job_input_file,
    job_results,
    result_file,
)
from dmarket.jobs.inputs import BadInput, finished_job, input_resolve

from .references import (
    BUILTIN,
    BUILTIN_MODELS,
    INPUT_SUFFIXES,
    MODEL_SUFFIXES,
    SYNTHETIC,
    BadRef,
    file_name,
    inference_resolve_data,
    inference_resolve_model,
)

# Pinned files per data reference: each is a JobInput row.
MAX_DATA_FILES = 100_000
WILDCARDS = ("*", "?")
INPUT_NAME = r"\.(" + "|".join(s.lstrip(".") for s in INPUT_SUFFIXES) + r")$"


class RefError(ValueError):
    pass


def is_builtin(ref):
    match = BUILTIN.match(ref)
    return bool(match and match.group(1) in BUILTIN_MODELS)


def store_uri(ref):
    """A file-store reference with its scheme: 'models/a.keras' -> 'dmarket://models/a.keras'."""
    return ref if ref.startswith(SCHEME) else SCHEME + ref


def operator_only(user, ref, what):
    refusal = server_file_refusal(user, ref, what)
    if refusal:
        raise RefError(refusal)
    return ref


def file_pin(user, ref, suffixes, what):
    """(pinned URI, pin) of one file the user may read; RefError naming the problem."""
    uri = store_uri(ref)
    try:
        parsed = parse_uri(uri)
        pinned, pin = input_resolve(user, parsed)
    except (BadName, BadInput) as e:
        raise RefError(f"{uri}: {e}") from None
    if suffixes and not parsed.basename.lower().endswith(suffixes):
        raise RefError(f"{uri}: a {what} file ends with {' or '.join(suffixes)}")
    return pinned, pin


def model_resolve(user, model, weights):
    """The model and weights fields as the job keeps them, and their pins."""
    pins = {}
    if is_builtin(model) or model.startswith("/"):
        if model.startswith("/"):
            operator_only(user, model, "model")
    elif not file_name(store_uri(model)).lower().endswith(MODEL_SUFFIXES):
        raise RefError(f"{model!r} is neither a built-in model ({', '.join(BUILTIN_MODELS)}) "
                       "nor a .keras or .h5 model file in the file store (dmarket://NAME)")
    else:
        model, pin = file_pin(user, model, MODEL_SUFFIXES, "model")
        pins[model] = pin
    if weights:
        if weights.startswith("/"):
            operator_only(user, weights, "weights")
        else:
            weights, pin = file_pin(user, weights, (), "weights")
            pins[weights] = pin
    return model, weights, pins


def data_resolve(user, data):
    """The data field's files as [(input name, pinned URI or server path)] in name order, and
    their pins; [] for synthetic data."""
    if SYNTHETIC.match(data) or data.startswith("/") and operator_only(user, data, "data"):
        return [], {}
    uri = store_uri(data)
    rest = uri[len(SCHEME):]
    if rest.startswith("jobs/"):
        found = result_files(user, uri)
    else:
        found = stored_files(user, rest)
    found = [(name, pinned, pin) for name, pinned, pin in found
             if name.lower().endswith(INPUT_SUFFIXES)]
    if not found:
        raise RefError(f"{uri} names no input files ({', '.join(INPUT_SUFFIXES)}) that you "
                       "may read")
    if len(found) > MAX_DATA_FILES:
        raise RefError(f"{uri} names more than {MAX_DATA_FILES} input files")
    return [[name, pinned] for name, pinned, _ in found], {p: pin for _, p, pin in found}


def stored_files(user, rest):
    """[(name, pinned URI, pin)] of the files `rest` (a ref or a pattern) names."""
    owner, text = None, rest
    if text.startswith("~"):
        owner, _, text = text[1:].partition("/")
    prefix = f"~{owner}/" if owner else ""
    if not any(c in text for c in WILDCARDS):
        try:
            ref = parse_ref(rest)
        except BadName as e:
            raise RefError(f"{SCHEME}{rest}: {e}") from None
        try:
            pinned, pin = input_resolve(user, ref)
            return [(prefix + ref.name, pinned, pin)]
        except BadInput:
            if ref.version is not None:
                raise RefError(f"{SCHEME}{rest}: no such file that you may read") from None
        # Not a file: a folder.
        text = text.rstrip("/") + "/*"
    # Only input files, before the limit; locked until the job that pins them exists, in
    # name order (two submits lock alike), and never a model file (pinned first, apart).
    versions = (files_latest(user, owner, text).filter(file__name__iregex=INPUT_NAME)
                .select_for_update(of=("self",))[:MAX_DATA_FILES + 1])
    found = []
    for version in versions:
        ref = FileRef(owner, version.file.name, version.version)
        found.append((prefix + ref.name, ref.uri(), {"version": version}))
    return found


def result_files(user, uri):
    """[(name, pinned URI, pin)] of a finished job's result files that `uri` names."""
    rest = uri[len(SCHEME):]
    job_part, _, pattern = rest.partition("/results/")
    if not any(c in pattern for c in WILDCARDS):
        try:
            pinned, pin = input_resolve(user, parse_uri(uri))
            return [(rest, pinned, pin)]
        except (BadName, BadInput):
            pass
        pattern = pattern.rstrip("/") + "/*"
    try:
        job_id = parse_uri(f"{SCHEME}{job_part}/results/x").job_id
    except BadName as e:
        raise RefError(f"{uri}: {e}") from None
    try:
        job = finished_job(user, job_id)
    except BadInput as e:
        raise RefError(f"{uri}: {e}") from None
    regex = re.compile(glob_regex(pattern))
    found = []
    for item in job_results(job):
        relative = item["path"]
        if (regex.match(relative) and relative.lower().endswith(INPUT_SUFFIXES)
                and (job.results_stored_at or result_file(job, relative) is not None)):
            found.append((f"{job_part}/results/{relative}", ResultRef(job.pk, relative).uri(),
                          {"result_job": job, "result_path": relative}))
        if len(found) > MAX_DATA_FILES:
            return found
    return sorted(found)


def inference_inputs_resolve(user, fields):
    """Check what the submit fields name and pin its files. Returns (fields with the pinned
    model and weights, `data_files` and `input_count`; pins for job_inputs_pin). Raises
    ValidationError naming each field that is wrong; call it inside the submit's transaction
    (the pinned versions stay locked until the job that pins them exists)."""
    fields, errors, pins = dict(fields), {}, {}
    model, weights = fields["model"], fields["weights"]
    try:
        try:
            model, weights, found = model_resolve(user, model, weights)
            pins.update(found)
            inference_resolve_model(model, weights, lambda uri: pin_path(pins[uri]))
        except BadRef as e:
            raise RefError(str(e)) from None
        fields["model"], fields["weights"] = model, weights
    except RefError as e:
        message = str(e)
        field = "weights" if weights and (weights in message or store_uri(weights) in message
                                          or message.startswith("weights")) else "model"
        errors[field] = [message]
    try:
        try:
            files, found = data_resolve(user, fields["data"])
            inputs = inference_resolve_data(
                fields["data"], [(name, pin_path(found[uri])) for name, uri in files] or None)
        except BadRef as e:
            raise RefError(str(e)) from None
        pins.update(found)
        fields["data_files"], fields["input_count"] = files, len(inputs)
    except RefError as e:
        errors["data"] = [str(e)]
    if errors:
        raise ValidationError(errors)
    return fields, pins


def pin_path(pin):
    """Where a pin's bytes are on this server."""
    if "version" in pin:
        return str(pin["version"].local_path())
    return str(result_file(pin["result_job"], pin["result_path"]))


def inference_files(ijob):
    """A function from a pinned URI of the job to the path of its bytes on this server (a
    server path stays as it is); None for a file gone since (deleted by an operator)."""
    inputs = {i.uri: i.pk for i in JobInput.objects.filter(run_id=ijob.run_id)}

    def path_of(ref):
        if not ref.startswith(SCHEME):
            return ref
        if ref not in inputs:
            return None
        path = job_input_file(ijob, inputs[ref])
        return str(path) if path is not None else None

    return path_of

