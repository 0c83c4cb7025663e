"""The market polices its cluster: every application on the master that is no running job's
verified one nor the inference server's is killed, recorded (admin: Policed applications), and,
when its driver runs in a job's sandbox, failed on that job and billed to it.

Every driver of the market holds the cluster's secret (Spark's standalone authentication has
one secret for the whole cluster), so a job can start a second application from its sandbox;
this is what keeps such an application from running free. Which sandbox runs a driver is read
from this host's sockets: the driver's RPC address (from its executors' command lines on the
workers) is a port one of the sandbox's processes listens on, or the sandbox holds more
connections to the master than its one driver does.
"""

import logging
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone as dt_timezone
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.db import IntegrityError, transaction

from dmarket.jobs.lifecycle import job_request_stop
from dmarket.jobs.models import Job

from . import spark
from .models import PolicedApp

log = logging.getLogger(__name__)

DRIVER_URL = re.compile(r"--driver-url,\s*spark://CoarseGrainedScheduler@([^,\s\]\)]+)")
TCP_LISTEN, TCP_ESTABLISHED = "0A", "01"


# --- which sandbox runs a driver --------------------------------------------------------------

def _descendants(root):
    """root and every process below it (Linux /proc)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def _socket_inodes(pids):
    inodes = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    return inodes


def _address(hex_address):
    """/proc/net/tcp's hex address: (ip text, port)."""
    import ipaddress

    host, port = hex_address.rsplit(":", 1)
    raw = bytes.fromhex(host)
    # Each 32-bit word in the host's byte order (little-endian here).
    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    ip = ipaddress.ip_address(raw)
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return str(ip), int(port, 16)


def tcp_sockets():
    """{inode: (state, (local ip, port), remote port)} of this network namespace's TCP
    sockets."""
    out = {}
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10:
                continue
            try:
                out[int(fields[9])] = (fields[3], _address(fields[1]),
                                       int(fields[2].rsplit(":", 1)[1], 16))
            except ValueError:
                continue
    return out


def sandbox_sockets(wrapper_pid, sockets):
    """((address, port) its processes listen on, how many connections they hold to the
    master)."""
    master_port = urlsplit(settings.DMARKET_SPARK_MASTER_URL.replace("spark://", "http://")).port
    listening, to_master = set(), 0
    for inode in _socket_inodes(_descendants(wrapper_pid)):
        state, local, remote = sockets.get(inode, ("", ("", 0), 0))
        if state == TCP_LISTEN:
            listening.add(local)
        elif state == TCP_ESTABLISHED and remote == master_port:
            to_master += 1
    return listening, to_master


def driver_owner(driver_address, jobs, sockets_of):
    """The job (of `jobs`, this launcher's running ones) whose sandbox runs the driver: one
    that holds more connections to the master than its own driver's, and, where executors
    name the driver's address, listens on that address and port. An address alone proves
    nothing (any driver may advertise any host and port); the sockets are the kernel's."""
    host, _, port = driver_address.rpartition(":")
    addresses = _resolve(host.strip("[]")) if driver_address else set()
    for job in jobs:
        listening, to_master = sockets_of(job)
        if to_master < 2:
            continue
        if not driver_address:
            return job
        if port.isdigit() and any((ip, int(port)) in listening
                                  for ip in addresses | {"0.0.0.0", "::"}):
            return job
    return None


def _resolve(host):
    """The addresses a driver's advertised host names (it is this host's own name or
    address when the driver runs here)."""
    import ipaddress
    import socket

    try:
        return {str(ipaddress.ip_address(host))}
    except ValueError:
        pass
    try:
        return {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return set()


# --- what an application holds on the workers ----------------------------------------------------

# A worker keeps its last 1,000 finished executors' command lines (about 3 KB each) there.
WORKER_JSON_MAX = 32 * 1024 * 1024
WORKER_JSON_SECONDS = 2.5


def _read_json(url, deadline):
    """A worker's /json/, read until `deadline` and at most WORKER_JSON_MAX bytes: a worker
    is a contributor's, and may answer slowly, hugely or wrongly."""
    import json

    try:
        with requests.get(url, timeout=(1, 1), stream=True) as response:
            body = b""
            for chunk in response.iter_content(65536):
                body += chunk
                if len(body) > WORKER_JSON_MAX or time.monotonic() > deadline:
                    return {}
        state = json.loads(body)
    except (requests.RequestException, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _text(value, limit):
    return str(value)[:limit] if isinstance(value, (str, int)) else ""


def worker_executors(workers, app_ids):
    """{app id: [{"worker", "host", "executor", "driver": host:port}]} from the JSON of each
    worker that uses cores (its executors' command lines name their driver), within
    WORKER_JSON_SECONDS altogether; what is not well formed is left out."""
    from concurrent.futures import wait

    # The master keeps a lost worker's entry (DEAD, its last cores used, its UI gone).
    busy = [w for w in workers if isinstance(w, dict) and w.get("coresused")
            and w.get("state", "ALIVE") == "ALIVE"
            and isinstance(w.get("webuiaddress"), str)
            and w["webuiaddress"].startswith(("http://", "https://"))]
    found = {app_id: [] for app_id in app_ids}
    if not busy:
        return found
    deadline = time.monotonic() + WORKER_JSON_SECONDS
    pool = ThreadPoolExecutor(max_workers=min(16, len(busy)))
    futures = {pool.submit(_read_json, w["webuiaddress"].rstrip("/") + "/json/", deadline): w
               for w in busy}
    done, _ = wait(futures, timeout=WORKER_JSON_SECONDS + 0.5)
    pool.shutdown(wait=False)
    for future in done:
        worker, state = futures[future], future.result()
        executors = state.get("executors")
        for executor in executors if isinstance(executors, list) else []:
            if not isinstance(executor, dict) or _text(executor.get("appid"), 100) not in found:
                continue
            desc = executor.get("appdesc")
            command = desc.get("command") if isinstance(desc, dict) else ""
            match = DRIVER_URL.search(command if isinstance(command, str) else "")
            found[executor["appid"]].append({
                "worker": _text(worker.get("id"), 200), "host": _text(worker.get("host"), 200),
                "executor": _text(executor.get("id"), 40),
                "driver": match.group(1)[:300] if match else "",
                "gpus": held_addresses(executor.get("resources"))})
    return found


def held_addresses(resources):
    """How many accelerator addresses (GPUs) a worker's executor entry holds."""
    count = 0
    for info in resources.values() if isinstance(resources, dict) else ():
        addresses = info.get("addresses") if isinstance(info, dict) else None
        count += len(addresses) if isinstance(addresses, list) else 0
    return min(count, 4096)


def split_cores(cores, executors):
    """The application's cores (the master's count) over its executors, none lost."""
    count = len(executors)
    for i, executor in enumerate(executors):
        executor["cores"] = cores // count + (1 if i < cores % count else 0)


# --- the police ---------------------------------------------------------------------------------

# The user the inference server's application shows (-Duser.name).
INFERENCE_USER = "dmarket-inference"


def inference_app_id():
    """The inference server's application (its driver writes it; no job's sandbox can)."""
    try:
        return (settings.DMARKET_INFERENCE_DIR / "app_id").read_text().strip()
    except OSError:
        return ""


def police_candidates(state, running):
    """The master's active applications to kill now: no running job's verified one nor the
    inference server's, older than DMARKET_APP_GRACE (DMARKET_APP_VERIFY_GRACE for one that
    shows a starting job's tag, or the inference server's user while it has not recorded its
    id: a driver shows what verifies it a moment after registering)."""
    known = {job.spark_app_id for job in running if job.spark_app_id}
    inference = inference_app_id()
    known.add(inference)
    starting = {job.tag for job in running if not job.spark_app_id}
    if not inference:
        # The inference server is starting: its driver records its id once registered.
        starting.add(INFERENCE_USER)
    now_ms = time.time() * 1000
    out = []
    for app in (state or {}).get("activeapps", []):
        grace = (settings.DMARKET_APP_VERIFY_GRACE if app.get("user") in starting
                 else settings.DMARKET_APP_GRACE)
        if app.get("id") not in known and now_ms - app.get("starttime", now_ms) >= grace * 1000:
            out.append(app)
    return out


def police_record(app, executors, job, reason):
    """Record the kill once. Returns "new", "claimed" (recorded before with no job, by a
    launcher that does not run its driver, and this one does) or "" (nothing to do)."""
    if PolicedApp.objects.filter(app_id=app["id"]).exists():
        if job is not None and PolicedApp.objects.filter(app_id=app["id"], job=None).update(
                job=job, reason=reason[:500]):
            return "claimed"
        return ""
    started = app.get("starttime")
    driver = next((e["driver"] for e in executors if e["driver"]), "")
    try:
        with transaction.atomic():
            PolicedApp.objects.create(
                app_id=_text(app["id"], 100), name=_text(app.get("name"), 500),
                spark_user=_text(app.get("user"), 200), driver_address=driver[:300],
                job=job, reason=reason[:500], cores=int(app.get("cores") or 0),
                executors=[{k: e.get(k, 0) for k in ("worker", "host", "executor", "cores",
                                                     "gpus")}
                           for e in executors],
                started_at=(datetime.fromtimestamp(started / 1000, dt_timezone.utc)
                            if isinstance(started, (int, float)) else None),
                killed_by=settings.DMARKET_LAUNCHER_ID[:200])
    except IntegrityError:
        # Killed already (by this launcher's earlier look or another launcher's).
        return ""
    return "new"


def police_drivers(state):
    """Kill every driver the master runs: the market runs none in cluster mode (a member
    holding the secret could submit one, which a worker would run outside any job)."""
    killed = 0
    for driver in (state or {}).get("activedrivers") or []:
        driver_id = _text(driver.get("id") if isinstance(driver, dict) else "", 100)
        if not driver_id:
            continue
        spark.master_kill_driver(driver_id)
        killed += 1
        if not PolicedApp.objects.filter(app_id=driver_id).exists():
            try:
                with transaction.atomic():
                    PolicedApp.objects.create(
                        app_id=driver_id, name=_text(driver.get("mainclass"), 500),
                        reason="a driver submitted in cluster mode (the market runs none)",
                        killed_by=settings.DMARKET_LAUNCHER_ID[:200])
            except IntegrityError:
                pass
            log.warning("killed driver %s: submitted in cluster mode", driver_id)
    return killed


def cluster_police(state, launcher_id=None):
    """Kill every application that is no running job's verified one nor the inference
    server's, and every cluster-mode driver; record each; fail the job of this launcher whose
    sandbox runs its driver. Returns how many it killed."""
    if state is None:
        return 0
    from .launcher import process_alive

    killed = police_drivers(state)
    running = list(Job.objects.filter(status__in=(Job.STARTING, Job.RUNNING)))
    apps = police_candidates(state, running)
    if not apps:
        return killed
    # What they hold, read first (once killed, their executors are gone from the workers),
    # within a bound: the kill must not wait on a worker.
    executors = worker_executors(state.get("workers") or [], [a["id"] for a in apps])
    launcher_id = launcher_id or settings.DMARKET_LAUNCHER_ID
    # Only wrappers seen alive as the job's: a stale pid may be anyone's by now.
    mine = [job for job in running if job.launcher == launcher_id and job.driver_pid
            and process_alive(job.driver_pid, job.work_dir)]
    # The sandboxes' sockets, also read before the kills: a killed driver closes its
    # connection to the master at once, and with it what shows which sandbox ran it.
    sockets = tcp_sockets()
    held = {job.pk: sandbox_sockets(job.driver_pid, sockets) for job in mine}
    for app in apps:
        spark.master_kill_app(app["id"])
    for app in apps:
        try:
            police_app(app, executors.get(app["id"], []), mine, lambda job: held[job.pk],
                       job_request_stop)
        except Exception:  # noqa: BLE001 - one application must not keep the others alive
            log.exception("policing application %s", app.get("id"))
    return killed + len(apps)


def police_app(app, ran, mine, sockets_of, job_request_stop):
    split_cores(int(app.get("cores") or 0), ran)
    driver = next((e["driver"] for e in ran if e["driver"]), "")
    job = driver_owner(driver, mine, sockets_of)
    age = (time.time() * 1000 - (app.get("starttime") or time.time() * 1000)) / 1000
    if job is None:
        reason = "no running job's verified application"
    else:
        reason = (f"started by job {job.pk}'s driver, which may run one application "
                  f"(its own{', ' + job.spark_app_id if job.spark_app_id else ''})")
    if not police_record(app, ran, job, reason):
        return
    log.warning("killed application %s (%r, user %r, %.1f s old, driver %s, %d executors): %s",
                app["id"], app.get("name"), app.get("user"), age, driver or "?", len(ran),
                reason)
    if job is None:
        return
    try:
        with open(job.log_path, "ab") as output:
            output.write(f"dmarket: application {app['id']} killed: the job started a Spark "
                         f"application besides its own\n".encode())
    except OSError:
        pass
    job_request_stop(job, Job.FAILED,
                     f"the job started a second Spark application ({app['id']}), which the "
                     f"market killed; what it ran is billed to this job")
