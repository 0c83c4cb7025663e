"""The heartbeat on SQLite, the quick start's database (no DATABASE_URL): the rest of the
tests run on PostgreSQL, and the steady beat's statement is written by hand. In a process of
its own, on a fresh SQLite file, as `./install.sh` and the demo make it."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

SCRIPT = """
import json
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.contrib.auth import get_user_model
from django.test import Client
from dmarket.accounts.models import ApiToken
from dmarket.machines.models import Machine

owner = get_user_model().objects.create_user("owner", "o@example.org", "a long password 1")
machine = Machine.objects.create(user=owner, name="m", cores=1, memory_mb=1024,
                                 address="192.0.2.10")
_, key = ApiToken.issue(owner, name="machine", machine=machine)
agent = Client(HTTP_AUTHORIZATION="Token " + key, SERVER_NAME="localhost")
beat = lambda: agent.post(f"/api/machines/{machine.pk}/heartbeat/",
                          {"worker_state": "ALIVE"}, content_type="application/json")
seen = []
for _ in range(3):  # OFFLINE to ONLINE (the full way); its use recorded; the beat alone
    response = beat()
    seen.append([response.status_code, response.json().get("state"),
                 response.wsgi_request.META.get("dmarket.steady_heartbeat", False)])
    if len(seen) == 1:
        ApiToken.objects.filter(machine=machine).update(last_used_at=None)
machine.refresh_from_db()
token = ApiToken.objects.get(machine=machine)
print(json.dumps({"seen": seen, "state": machine.state, "used": token.last_used_at is not None}))
"""


def test_a_machine_beats_steadily_on_sqlite(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(DMARKET_DATA_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="dmarket.settings",
               PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "dmarket.sqlite3").exists()
    assert json.loads(done.stdout.splitlines()[-1]) == {
        "seen": [[200, "ONLINE", False], [200, "ONLINE", False], [200, "ONLINE", True]],
        "state": "ONLINE", "used": True}
