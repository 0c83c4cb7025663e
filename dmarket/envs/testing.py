"""Wheels made on the spot, for tests and benches: a package index needs no network."""

import base64
import hashlib
import os
import zipfile
from pathlib import Path


def make_wheel(directory, name, version, files):
    """Write NAME-VERSION-py3-none-any.whl with `files` ({path: text}) into `directory`
    (made readable to the sandbox's user, which builds environments from it); returns it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o755)
    dist = f"{name}-{version}.dist-info"
    contents = dict(files)
    contents[f"{dist}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    contents[f"{dist}/WHEEL"] = ("Wheel-Version: 1.0\nGenerator: dmarket-tests\n"
                                 "Root-Is-Purelib: true\nTag: py3-none-any\n")
    record = []
    for path, text in contents.items():
        data = text.encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    contents[f"{dist}/RECORD"] = "\n".join(record) + "\n"
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for path, text in contents.items():
            z.writestr(path, text)
    os.chmod(wheel, 0o644)
    return wheel


def local_index(settings, directory):
    """Point the environment builder at `directory` alone (no network), readable inside its
    sandbox."""
    settings.DMARKET_ENV_PIP_ARGS = ["--only-binary=:all:", "--no-index", "--find-links",
                                     str(directory)]
    settings.DMARKET_SANDBOX_RO_PATHS = [*settings.DMARKET_SANDBOX_RO_PATHS, str(directory)]


def machines_run_builder_python(machines):
    """Make the machines report the Python and platform this server builds environments for,
    as their agents would in a heartbeat."""
    from .services import builder_python

    python, platform = builder_python()
    for machine in machines:
        machine.python, machine.platform = python, platform
        machine.save(update_fields=["python", "platform"])
