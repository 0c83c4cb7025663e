"""Where the client keeps the server's URL and the user's token.

The file is $DMARKET_CONFIG, else $XDG_CONFIG_HOME/dmarket/config.json (~/.config/...), and
is readable by its owner only. DMARKET_SERVER and DMARKET_TOKEN override what it says, and
--server overrides both.
"""

import json
import os
from pathlib import Path

DEFAULT_SERVER = "http://127.0.0.1:8000"


def config_path():
    if os.environ.get("DMARKET_CONFIG"):
        return Path(os.environ["DMARKET_CONFIG"])
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "dmarket" / "config.json"


def state_dir():
    """Where the machine agent keeps its pid files, logs and Spark work directories."""
    if os.environ.get("DMARKET_STATE_DIR"):
        return Path(os.environ["DMARKET_STATE_DIR"])
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "dmarket"


def load():
    try:
        with open(config_path()) as f:
            data = json.load(f)
    except FileNotFoundError:
        data = {}
    except (OSError, ValueError) as e:
        raise SystemExit(f"dmarket: cannot read {config_path()}: {e}") from None
    return data if isinstance(data, dict) else {}


def save(data):
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    # Created 0600 from the start: the token is never readable by others, not even briefly.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def resolve(server=None):
    """(server URL, token or None) from the flag, the environment and the file, in that order."""
    data = load()
    url = server or os.environ.get("DMARKET_SERVER") or data.get("server") or DEFAULT_SERVER
    token = os.environ.get("DMARKET_TOKEN") or data.get("token")
    if server and data.get("server") and server.rstrip("/") != data["server"].rstrip("/"):
        # A token belongs to the server that issued it.
        token = os.environ.get("DMARKET_TOKEN")
    return url.rstrip("/"), token
