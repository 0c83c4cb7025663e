#!/usr/bin/env bash
# Runs the tests (the README's test command; CI runs it too). They use the PostgreSQL server
# of this machine, 127.0.0.1:5432 as user postgres, unless DATABASE_URL names another.
# Extra arguments go to pytest, e.g. scripts/test.sh -k ledger -x
set -euo pipefail
cd "$(dirname "$0")/.."
./install.sh
# The dashboard's browser tests drive Debian's chromium through its chromedriver
# (dmarket/web/tests); only the tests need them, so they are installed here, not by install.sh.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[test] installing chromium and chromium-driver for the browser tests"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "[test] chromium or chromedriver missing: the browser tests will be skipped" \
         "(apt-get install chromium chromium-driver)" >&2
  fi
fi
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/dmarket}

pg_up() { .venv/bin/python - "$DATABASE_URL" <<'PY'
import sys
import dj_database_url
import psycopg
c = dj_database_url.parse(sys.argv[1])
psycopg.connect(host=c["HOST"], port=c["PORT"] or 5432, user=c["USER"], password=c["PASSWORD"],
                dbname="postgres", connect_timeout=3).close()
PY
}
if ! pg_up 2>/dev/null; then
  # On the project's machines PostgreSQL is installed but may have stopped.
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "[test] starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    sleep 2
  fi
  pg_up || { echo "[test] no PostgreSQL at $DATABASE_URL; start one or set DATABASE_URL." >&2; exit 1; }
fi

# The tests marked spark (dmarket/conftest.py marks them) share one real cluster of two 1-core
# workers and time what runs on it: a run that may select them is one process, as CI's (no
# arguments) is. A run whose -m leaves them out, the fast tier (-m "not spark"), runs on every
# core (at most 4: each worker has its own test database, SeaweedFS cluster and browser) with
# pytest-xdist, unless the arguments choose for themselves (-n, --dist, -p no:xdist).
markexpr="" prev="" chosen=""
for arg in "$@"; do
  [ "$prev" = -m ] && markexpr=$arg
  case $arg in
    -m?*) markexpr=${arg#-m} ;;
    -n|-n?*|--numprocesses*|--maxprocesses*|--dist*|*no:xdist) chosen=1 ;;
  esac
  prev=$arg
done
leaves_out_spark() { .venv/bin/python - "$1" 2>/dev/null <<'PY'
import sys
from _pytest.mark.expression import Expression
expr = Expression.compile(sys.argv[1])
# Whether it selects a test marked spark (or spark and mnist) with none or all of the others.
sys.exit(any(expr.evaluate(lambda name, **kw: name in marks or (others and not kw))
             for marks in ({"spark"}, {"spark", "mnist"}) for others in (False, True)))
PY
}
if [ -z "$chosen" ] && [ -n "$markexpr" ] && leaves_out_spark "$markexpr"; then
  set -- -n auto --maxprocesses 4 --dist loadgroup "$@"
fi
exec .venv/bin/pytest "$@"
