"""The replicated object store of scripts/start_storage.sh, for real: every object in 4 copies
on 4 volume servers, readable while 3 of them are dead."""

import hashlib
import os
import signal
import time

import boto3
import pytest
from botocore.exceptions import BotoCoreError, ClientError

from dmarket.files.seaweed import LookupFailed, chunks, replicas, servers

BIG = 5 * 1024 * 1024 + 3  # two chunks: the gateway cuts at 4 MiB


def sha(data):
    return hashlib.sha256(data).hexdigest()


def put(cluster, key, data, **config):
    cluster.s3(**config).put_object(Bucket=cluster.env["DMARKET_S3_BUCKET"], Key=key, Body=data)


def get(cluster, key):
    s3 = cluster.s3(retries={"total_max_attempts": 1}, read_timeout=10)
    return s3.get_object(Bucket=cluster.env["DMARKET_S3_BUCKET"], Key=key)["Body"].read()


def copies(cluster, key):
    env = cluster.env
    return replicas(env["DMARKET_SEAWEEDFS_FILER"], env["DMARKET_SEAWEEDFS_MASTER"],
                    env["DMARKET_S3_BUCKET"], key)


def test_every_object_has_four_copies(seaweed):
    objects = {"dir/big.bin": os.urandom(BIG), "small.txt": b"0123456789"}
    all_servers = seaweed.volume_servers
    for key, data in objects.items():
        put(seaweed, key, data)
        assert sha(get(seaweed, key)) == sha(data)
        # A small file's bytes too are in a volume chunk, not in the filer's metadata.
        env = seaweed.env
        listed = chunks(env["DMARKET_SEAWEEDFS_FILER"], env["DMARKET_S3_BUCKET"], key)
        assert len(listed) == (2 if len(data) == BIG else 1)
        found = copies(seaweed, key)
        assert [r["server"] for r in found] == all_servers
        assert all(r["alive"] and r["volumes"] for r in found)
        assert {r["chunks"] for r in found} == {2 if len(data) == BIG else 1}
    listed = servers(seaweed.env["DMARKET_SEAWEEDFS_MASTER"])
    assert [(s["server"], s["alive"]) for s in listed] == [(s, True) for s in all_servers]


def test_lookup_of_a_missing_object_fails(seaweed):
    with pytest.raises(LookupFailed, match="not found"):
        copies(seaweed, "no/such/object")
    with pytest.raises(LookupFailed):
        servers("http://127.0.0.1:1")


def test_wrong_key_is_refused(seaweed):
    env = seaweed.env
    s3 = boto3.client("s3", endpoint_url=env["DMARKET_S3_ENDPOINT"], region_name="us-east-1",
                      aws_access_key_id=env["DMARKET_S3_ACCESS_KEY"], aws_secret_access_key="wrong")
    with pytest.raises(ClientError, match="SignatureDoesNotMatch"):
        s3.list_objects_v2(Bucket=env["DMARKET_S3_BUCKET"])


def test_objects_survive_three_dead_volume_servers(own_seaweed):
    objects = {"big.bin": os.urandom(BIG), "small.txt": b"0123456789"}
    for key, data in objects.items():
        put(own_seaweed, key, data)

    # A server that hangs stays on the master's map (for up to ~80 s): alive tells.
    hung = own_seaweed.volume_pids[0]
    os.kill(hung, signal.SIGSTOP)
    try:
        found = copies(own_seaweed, "small.txt")
    finally:
        os.kill(hung, signal.SIGCONT)
    assert [r["alive"] for r in found] == [False, True, True, True]

    for i in range(3):
        own_seaweed.kill_volume(i)

    # At once: the master drops a server whose connection breaks, and the gateway reads
    # from the copy left.
    for key, data in objects.items():
        assert sha(get(own_seaweed, key)) == sha(data)
        found = copies(own_seaweed, key)
        assert [(r["server"], r["alive"]) for r in found] == [(own_seaweed.volume_server(3), True)]
    master = own_seaweed.env["DMARKET_SEAWEEDFS_MASTER"]
    assert [s["server"] for s in servers(master)] == [own_seaweed.volume_server(3)]

    # A write needs a volume with 4 live copies: none now. The gateway fails it only after
    # its 30 s assign budget (hard-coded), so the client gives up first here.
    started = time.monotonic()
    with pytest.raises((ClientError, BotoCoreError)):
        put(own_seaweed, "during.txt", b"x" * 10, retries={"total_max_attempts": 1}, read_timeout=3)
    assert time.monotonic() - started < 10

    # Back up (their data kept), writes work again.
    own_seaweed.start_volume()
    put(own_seaweed, "after.txt", b"after", retries={"total_max_attempts": 1}, read_timeout=10)
    assert get(own_seaweed, "after.txt") == b"after"
    assert len(copies(own_seaweed, "after.txt")) == 4
