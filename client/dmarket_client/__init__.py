"""The dmarket command-line client and machine agent. Needs requests and click, not Django."""

__version__ = "0.1.0"
