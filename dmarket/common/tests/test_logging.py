"""Log lines: time, level, logger and context (the request id, or the row a daemon handles),
as text or, with DMARKET_LOG_FORMAT=json, as one JSON object a line. Each case runs the real
settings' logging in a subprocess and reads what it wrote."""

import json
import subprocess
import sys

from .test_settings_env import ROOT, environment

SCRIPT = """
import logging, django
django.setup()
from types import SimpleNamespace
from dmarket.common.daemon import RowGuard
from dmarket.common.middleware import current_request_id

job = SimpleNamespace(pk=12, _meta=SimpleNamespace(model_name="job"))
def bill(row):
    logging.getLogger("dmarket.cluster.billing").info("settled %s credits", "0.5")
    raise RuntimeError("history says no")
RowGuard("billing").run([job], bill)
current_request_id.set("3f2a9c")
logging.getLogger("django.request").warning("Not Found: /api/x/")
"""


def run(tmp_path, **env):
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env=environment(tmp_path, **env))
    assert done.returncode == 0, done.stderr
    return done.stderr.splitlines()


def test_plain_lines_name_the_job_a_daemon_handles_and_the_request(tmp_path):
    lines = run(tmp_path)
    assert lines[0].endswith(" INFO dmarket.cluster.billing [job 12] settled 0.5 credits")
    assert " ERROR dmarket.daemon [-] billing: " in lines[1]
    assert "RuntimeError: history says no" in lines
    assert lines[-1].endswith(" WARNING django.request [3f2a9c] Not Found: /api/x/")


def test_json_lines_carry_the_same_fields(tmp_path):
    records = [json.loads(line) for line in run(tmp_path, DMARKET_LOG_FORMAT="json")]
    first = records[0]
    assert (first["level"], first["logger"], first["message"], first["subject"],
            first["request_id"]) == ("INFO", "dmarket.cluster.billing", "settled 0.5 credits",
                                     "job 12", "-")
    assert set(first) >= {"time", "level", "logger", "message", "request_id", "subject"}
    assert "RuntimeError: history says no" in records[1]["exc_info"]
    assert (records[-1]["request_id"], records[-1]["message"]) == ("3f2a9c",
                                                                   "Not Found: /api/x/")
