"""`dmarket infer ...` (inference jobs) and `dmarket cluster status`."""

import json as jsonlib
import os
import time
from pathlib import Path

import click

from .cli_shared import CONTEXT, FINISHED
from .context import pass_context
from .output import emit, emit_json, json_option, quiet_option, table

STATUSES = ["QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"]
JOB_FIELDS = ["id", "name", "owner", "status", "status_reason", "cancel_requested", "model",
              "weights", "data", "batch_size", "input_count", "outputs", "max_credits",
              "cost", "created_at", "started_at", "finished_at", "settled_at"]
JOB_COLUMNS = [("id", "ID"), ("name", "NAME"), ("status", "STATUS"), ("batch_size", "BATCH"),
               ("progress", "OUTPUTS"), ("cost", "COST")]
STATS_COLUMNS = [("count", "COUNT"), ("mean_ms", "MEAN MS"), ("std_ms", "STD MS"),
                 ("p25_ms", "P25"), ("p50_ms", "P50"), ("p75_ms", "P75"), ("p99_ms", "P99"),
                 ("rate_10s", "RATE 10S"), ("rate_total", "RATE TOTAL"),
                 ("machines", "MACHINES")]


def absolute(ref):
    """./PATH and ../PATH made absolute (operators may name files on the server's machine);
    store names (models/lenet.keras), dmarket:// URIs and built-in names unchanged."""
    if ref.startswith(("./", "../")):
        return os.path.abspath(ref)
    return ref


def number(value, places=2):
    return "" if value is None else f"{value:.{places}f}"


def stats_row(stats):
    row = dict(stats)
    for key in ("mean_ms", "std_ms", "p25_ms", "p50_ms", "p75_ms", "p99_ms", "rate_10s",
                "rate_total"):
        row[key] = number(stats[key])
    row["machines"] = ", ".join(
        f"{m['host']}" + (f" (#{m['machine']})" if m["machine"] else "")
        for m in stats["machines"]) or "-"
    return row


@click.group(context_settings=CONTEXT, short_help="Inference jobs: models over datasets.")
@json_option
def infer():
    """Run a model over every input of a dataset on the market's inference server, watch
    its statistics, change its batch size, fetch its outputs."""


@infer.command(context_settings=CONTEXT)
@click.option("--model", required=True, metavar="NAME[@V]",
              help="lenet, resnet50 or inceptionv3 (add :SIDE for smaller images, e.g. "
                   "resnet50:64), or a .keras/.h5 model file in the file store (NAME[@V], "
                   "dmarket://~USER/NAME, dmarket://jobs/ID/results/PATH).")
@click.option("--weights", metavar="NAME[@V]", help="A weights file in the file store for a "
              "built-in model (default: random weights).")
@click.option("--data", required=True, metavar="synthetic:N|dmarket://PATTERN",
              help="synthetic:N, or .npy, image or .csv files in the file store: "
                   "dmarket://PATTERN (* and ?; a folder: all its files), "
                   "dmarket://jobs/ID/results/PATTERN.")
@click.option("--batch-size", required=True, type=click.IntRange(min=1))
@click.option("--name", help="The job's name.")
@click.option("--max-credits", metavar="CREDITS", help="The most the job may cost.")
@quiet_option
@json_option
@pass_context
def submit(ctx, model, weights, data, batch_size, name, max_credits):
    """Submit an inference job. With --quiet only its id is printed."""
    body = {"model": absolute(model), "data": absolute(data), "batch_size": batch_size}
    optional = {"weights": absolute(weights) if weights else None, "name": name,
                "max_credits": max_credits}
    body.update({k: v for k, v in optional.items() if v is not None})
    ijob = ctx.client().post("inference/", body)
    if ctx.quiet:
        click.echo(ijob["id"])
    else:
        show(ctx, ijob)


def show(ctx, ijob):
    emit(ctx, ijob, names=[n for n in JOB_FIELDS if n in ijob])


@infer.command("list", context_settings=CONTEXT)
@click.option("--status", "statuses", multiple=True,
              type=click.Choice(STATUSES, case_sensitive=False))
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@json_option
@pass_context
def infer_list(ctx, statuses, limit):
    """List your inference jobs, newest first."""
    params = {"status": ",".join(statuses)} if statuses else {}
    rows = ctx.client().first("inference/", limit, **params)
    if ctx.as_json:
        emit_json(rows)
        return
    table([dict(r, progress=f"{r['outputs']}/{r['input_count']}") for r in rows], JOB_COLUMNS)


@infer.command("show", context_settings=CONTEXT)
@click.argument("job_id", metavar="ID", type=int)
@json_option
@pass_context
def infer_show(ctx, job_id):
    """Show an inference job."""
    show(ctx, ctx.client().get(f"inference/{job_id}/"))


@infer.command(context_settings=CONTEXT)
@click.argument("job_ids", metavar="[ID]...", type=int, nargs=-1)
@click.option("--all", "everything", is_flag=True,
              help="Finished jobs too (default: the running ones, or those named).")
@json_option
@pass_context
def stats(ctx, job_ids, everything):
    """Statistics of inference jobs: queries done, query time (mean, standard deviation,
    percentiles, in ms), queries per second over the last 10 s and overall, the machines
    that ran them in the last 10 s. A query's time is its batch's processing time."""
    client = ctx.client()
    if not job_ids:
        params = {"page_size": 500} if everything else {"page_size": 500, "status": "RUNNING"}
        job_ids = [j["id"] for j in client.pages("inference/", **params)]
    rows = [client.get(f"inference/{i}/stats/") for i in job_ids]
    if ctx.as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("No running inference jobs.")
    for i, row in enumerate(rows):
        if i:
            click.echo()
        click.echo(f"inference job {row['job']}: {row['status']}, batch size "
                   f"{row['batch_size']}, {row['count']}/{row['inputs']} inputs")
        table([stats_row(row)], STATS_COLUMNS)


@infer.command(context_settings=CONTEXT)
@json_option
@pass_context
def rates(ctx):
    """The query rates of your running inference jobs, and the largest over the smallest."""
    body = ctx.client().get("inference/rates/")
    if ctx.as_json:
        emit_json(body)
        return
    table([dict(r, rate_10s=number(r["rate_10s"]), rate_total=number(r["rate_total"]))
           for r in body["jobs"]],
          [("job", "ID"), ("name", "NAME"), ("count", "COUNT"), ("rate_10s", "RATE 10S"),
           ("rate_total", "RATE TOTAL")])
    ratio = body["max_over_min"]
    click.echo(f"max/min of the 10 s rates: {number(ratio, 3) or '-'}")


@infer.command(context_settings=CONTEXT)
@click.argument("job_ids", metavar="[ID]...", type=int, nargs=-1)
@click.option("--interval", type=click.FloatRange(min=0.5), default=2.0, show_default=True,
              help="Seconds between lines.")
@json_option
@pass_context
def watch(ctx, job_ids, interval):
    """Follow inference jobs (default: your running ones) until they have all finished: a
    line every interval with each job's outputs so far, its batch size and 10 s rate, and
    the largest 10 s rate of the running jobs over the smallest. --json: one object a line.

    Exits 0 when every job succeeded (or none was queued or running), 1 when any ended
    FAILED, LOST or CANCELLED (like `dmarket jobs watch`).
    """
    client = ctx.client()
    if not job_ids:
        job_ids = [j["id"] for j in client.pages("inference/", page_size=500,
                                                   status="QUEUED,RUNNING")]
        if not job_ids:
            click.echo("No queued or running inference jobs.")
            return
    while True:
        rows = [client.get(f"inference/{i}/stats/") for i in job_ids]
        running = [r["rate_10s"] for r in rows if r["status"] == "RUNNING"]
        ratio = max(running) / min(running) if len(running) > 1 and min(running) > 0 else None
        if ctx.as_json:
            click.echo(jsonlib.dumps({"time": round(time.time(), 3), "jobs": rows,
                                      "max_over_min": ratio}))
        else:
            click.echo(time.strftime("%H:%M:%S  ") + "  |  ".join(
                f"{r['job']} {r['status'][:3]} {r['count']}/{r['inputs']} b{r['batch_size']} "
                f"{r['rate_10s']:.2f}/s" for r in rows)
                + (f"  |  max/min {ratio:.3f}" if ratio else ""))
        if all(r["status"] in FINISHED for r in rows):
            failed = any(r["status"] != "SUCCEEDED" for r in rows)
            click.get_current_context().exit(1 if failed else 0)
        time.sleep(interval)


@infer.command("set-batch", context_settings=CONTEXT)
@click.argument("job_id", metavar="ID", type=int)
@click.argument("batch_size", metavar="N", type=click.IntRange(min=1))
@json_option
@pass_context
def set_batch(ctx, job_id, batch_size):
    """Change a running job's batch size; its next batches use it."""
    ijob = ctx.client().request("PATCH", f"inference/{job_id}/", json={"batch_size": batch_size})
    if ctx.as_json:
        emit_json(ijob)
    else:
        click.echo(f"Inference job {job_id}: batch size {ijob['batch_size']}.")


@infer.command(context_settings=CONTEXT)
@click.argument("job_id", metavar="ID", type=int)
@click.option("--download", "target", metavar="FILE", type=click.Path(path_type=Path),
              help="Save every output as JSON lines ({index, name, output}) in FILE.")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True,
              help="Without --download: at most this many outputs.")
@json_option
@pass_context
def results(ctx, job_id, target, limit):
    """A job's outputs: one per input, keyed by the input's name. With --download and
    --json: the file written, {"path", "size" (bytes), "outputs"}."""
    client = ctx.client()
    if target is not None:
        partial = target.with_name(target.name + ".part")
        try:
            size, _ = client.download(f"inference/{job_id}/results/download/", partial)
            os.replace(partial, target)
        finally:
            if partial.exists():
                partial.unlink()
        with open(target) as f:
            count = sum(1 for _ in f)
        if ctx.as_json:
            emit_json({"path": str(target), "size": size, "outputs": count})
        else:
            click.echo(f"{count} outputs saved in {target}.")
        return
    rows = client.first(f"inference/{job_id}/results/", limit)
    if ctx.as_json:
        emit_json(rows)
        return
    table([dict(r, output=short_output(r["output"])) for r in rows],
          [("index", "INDEX"), ("name", "INPUT"), ("output", "OUTPUT")])


def short_output(values):
    if len(values) <= 4:
        return jsonlib.dumps(values)
    top = max(range(len(values)), key=values.__getitem__)
    return f"[{len(values)} values; argmax {top} ({values[top]:.4f})]"


@infer.command(context_settings=CONTEXT)
@click.argument("job_id", metavar="ID", type=int)
@json_option
@pass_context
def cancel(ctx, job_id):
    """Cancel an inference job (a running one stops after its batches in flight)."""
    client = ctx.client()
    ijob = client.post(f"inference/{job_id}/cancel/")
    if ctx.as_json:
        emit_json(ijob)
    elif client.last_status == 202:
        click.echo(f"Inference job {job_id}: cancel requested ({ijob['status']}).")
    else:
        click.echo(f"Inference job {job_id}: {ijob['status']}.")


@click.group(context_settings=CONTEXT, short_help="The cluster's machines and their jobs.")
@json_option
def cluster():
    """The market's machines and what runs on them."""


@cluster.command("status", context_settings=CONTEXT)
@json_option
@pass_context
def cluster_status(ctx):
    """Every machine: its state, cores (in use), and the jobs running there."""
    machines = ctx.client().get("cluster/status/")
    rows = [dict(m, cores=f"{m['cores_in_use']}/{m['cores']}",
                 jobs=", ".join(f"{'inference ' if j['kind'] == 'inference' else 'job '}"
                                f"{j['id']} ({j['owner']})" for j in m["jobs"]) or "-")
            for m in machines]
    emit(ctx, machines if ctx.as_json else rows, columns=[
        ("id", "ID"), ("name", "NAME"), ("address", "ADDRESS"), ("state", "STATE"),
        ("cores", "CORES IN USE"), ("jobs", "JOBS")])
