"""Where a SeaweedFS cluster (scripts/start_storage.sh) keeps the copies of an S3 object.

The S3 gateway stores object KEY of bucket B as the filer entry /buckets/B/KEY, whose bytes are
chunks, each a needle "VOLUME,KEY+COOKIE" in a volume; the master knows which volume servers
hold a copy of each volume. A volume server that dies is dropped from the master's map at once
when its connection breaks (a killed process), or only after gRPC keepalive gives up on it
(about 80 s) when it hangs: hence the `alive` probe, which asks each server itself.
"""

from urllib.parse import quote

import requests

BUCKETS_DIR = "/buckets"  # filer.toml's filer.options.buckets_folder, as the gateway uses it
MODE_DIR = 1 << 31  # Go's os.ModeDir, in an entry's Mode


class LookupFailed(Exception):
    """The filer or the master did not answer, or has no such object."""


def _get(url, timeout, params=None, missing=LookupFailed):
    """The JSON at URL; on 404, raises LookupFailed or returns MISSING where that is a value."""
    try:
        response = requests.get(url, params=params, timeout=timeout)
    except requests.RequestException as e:
        raise LookupFailed(f"{url}: {e}") from e
    if response.status_code == 404:
        if missing is LookupFailed:
            raise LookupFailed(f"not found: {url}")
        return missing
    if not response.ok:
        raise LookupFailed(f"{url}: HTTP {response.status_code} {response.text[:200]}")
    try:
        return response.json()
    except ValueError as e:
        raise LookupFailed(f"{url}: not JSON: {response.text[:200]}") from e


def _alive(server, timeout):
    try:
        return requests.get(f"http://{server}/status", timeout=timeout).ok
    except requests.RequestException:
        return False


def chunks(filer_url, bucket, key, timeout=5, buckets_dir=BUCKETS_DIR):
    """The object's chunks as the filer lists them: dicts with file_id ("3,01637037d6"), size..."""
    url = f"{filer_url.rstrip('/')}{buckets_dir}/{quote(bucket)}/{quote(key)}"
    entry = _get(url, timeout, {"metadata": "true"})
    if entry.get("Mode", 0) & MODE_DIR:
        raise LookupFailed(f"a directory, not an object: {url}")
    # A file of thousands of chunks lists manifest chunks instead, each a blob naming more
    # chunks; only the manifests' own volumes are counted then.
    return entry.get("chunks") or []


def replicas(filer_url, master_url, bucket, key, timeout=5, buckets_dir=BUCKETS_DIR):
    """One dict per volume server that the master says holds a copy of any of the object's
    chunks, sorted by server: {"server": "127.0.0.21:8481", "volumes": [3], "chunks": 2,
    "alive": True}. alive: the server answers now. A copy on a server the master no longer
    lists (dead, or not yet back) is not named; an object whose every copy is gone has []."""
    master_url = master_url.rstrip("/")
    by_volume = {}
    for chunk in chunks(filer_url, bucket, key, timeout, buckets_dir):
        by_volume.setdefault(int(chunk["file_id"].split(",")[0]), []).append(chunk)
    by_server = {}
    for volume, volume_chunks in sorted(by_volume.items()):
        # 404: no live copy of this volume anywhere.
        found = _get(f"{master_url}/dir/lookup", timeout, {"volumeId": volume}, missing={})
        for location in found.get("locations") or []:
            server = by_server.setdefault(location["url"], {
                "server": location["url"], "volumes": [], "chunks": 0})
            server["volumes"].append(volume)
            server["chunks"] += len(volume_chunks)
    for server in by_server.values():
        server["alive"] = _alive(server["server"], min(timeout, 2))
    return [by_server[name] for name in sorted(by_server)]


def servers(master_url, timeout=5):
    """The volume servers the master knows, sorted: {"server", "data_center", "rack", "volumes"
    (how many), "max" (volumes it may hold), "volume_ids" (the master's text, " 1-3,7"),
    "alive" (it answers now)}."""
    topology = _get(f"{master_url.rstrip('/')}/dir/status", timeout)["Topology"]
    found = []
    for dc in topology.get("DataCenters") or []:
        for rack in dc.get("Racks") or []:
            for node in rack.get("DataNodes") or []:
                found.append({
                    "server": node["Url"], "data_center": dc["Id"], "rack": rack["Id"],
                    "volumes": node.get("Volumes", 0), "max": node.get("Max", 0),
                    "volume_ids": node.get("VolumeIds", "").strip(),
                    "alive": _alive(node["Url"], min(timeout, 2))})
    return sorted(found, key=lambda server: server["server"])
