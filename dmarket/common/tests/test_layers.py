"""The apps' layers (doc/architecture.md, .importlinter): each app imports only from the apps
below it, so the import graph between apps has no cycle. Checked by import-linter."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
LINT = Path(sys.executable).with_name("lint-imports")


def lint(*args, cwd=REPO, env=None):
    return subprocess.run([str(LINT), "--no-cache", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_every_app_imports_only_from_the_apps_below_it():
    done = lint()
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "Contracts: 1 kept, 0 broken." in done.stdout


def test_an_import_upward_breaks_the_contract(tmp_path):
    """The same kind of contract on a package of two layers, the lower importing the upper
    from inside a function (as the apps do to dodge a cycle): it is found."""
    package = tmp_path / "shop"
    (package / "top").mkdir(parents=True)
    (package / "bottom").mkdir()
    for path in (package, package / "top", package / "bottom"):
        (path / "__init__.py").write_text("")
    (package / "top" / "views.py").write_text("from shop.bottom import models\n")
    (package / "bottom" / "models.py").write_text(
        "def late():\n    from shop.top import views\n    return views\n")
    (tmp_path / ".importlinter").write_text(
        "[importlinter]\nroot_package = shop\n\n[importlinter:contract:layers]\n"
        "name = layers\ntype = layers\nlayers =\n    shop.top\n    shop.bottom\n")
    done = lint(cwd=tmp_path, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 1, done.stdout + done.stderr
    assert "shop.bottom.models -> shop.top.views" in done.stdout, done.stdout
