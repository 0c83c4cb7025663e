"""Shipped to a --working-dir job's executors (spark-submit --files): Python imports it at
start-up from the executor's directory (on PYTHONPATH). Spark unpacks the working directory
as ./dmarket-workdir, and the executor's own directory must stay its current directory (Spark
resolves the job's files and libs against it), so each entry of the working directory is
linked into it: relative paths and imports then find the job's files."""

import os

_WORKDIR = "dmarket-workdir"

if os.path.isdir(_WORKDIR):
    for _name in os.listdir(_WORKDIR):
        try:
            os.symlink(os.path.join(_WORKDIR, _name), _name)
        except FileExistsError:
            pass
        except OSError:
            pass
