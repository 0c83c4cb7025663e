"""Settings for the test suite: the machine's real PostgreSQL unless DATABASE_URL says
otherwise, and a data directory of its own."""

import os
import tempfile

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dmarket")
os.environ.setdefault("DMARKET_DATA_DIR", tempfile.mkdtemp(prefix="dmarket-test-"))

from .settings import *  # noqa: E402,F401,F403

# Users are made by the hundred in tests; a slow hash only slows them down.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Sign-ups and logins by the hundred from 127.0.0.1; the throttles' own tests set low rates.
DMARKET_REGISTER_RATE = DMARKET_LOGIN_RATE = DMARKET_LOGIN_USERNAME_RATE = "1000/min"
