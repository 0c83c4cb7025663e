"""bench/load.py's settings: the market's, with the baseline route added (load_urls.py)."""

from dmarket.settings import *  # noqa: F401,F403

ROOT_URLCONF = "bench.load_urls"
