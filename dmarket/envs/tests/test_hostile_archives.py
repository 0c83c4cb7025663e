"""A packed environment or a working directory is a user's archive, unpacked by the launcher
on the server's host: nothing in it may land outside its directory, link out of it, or be
larger than the limit."""

import io
import json
import tarfile
import zipfile

import pytest

from dmarket.envs.services import (MANIFEST, BadEnvironment, BadWorkdir, env_unpack,
                                   workdir_unpack)


def tar_with(path, members):
    with tarfile.open(path, "w:gz") as tar:
        data = json.dumps({"python": "3.11", "platform": "linux-x86_64"}).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def member(name, data=b"x", **attrs):
    info = tarfile.TarInfo(name)
    info.size = len(data) if data is not None else 0
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


@pytest.mark.parametrize("hostile", [
    member("site/../../escaped.txt"),
    member("site/link", None, type=tarfile.SYMTYPE, linkname="/etc/shadow"),
    member("site/up", None, type=tarfile.SYMTYPE, linkname="../../../../etc"),
    member("site/dev", None, type=tarfile.CHRTYPE, devmajor=1, devminor=3),
])
def test_an_environment_that_leaves_its_directory_is_refused(tmp_path, settings, hostile):
    settings.DMARKET_ENVS_DIR = tmp_path / "envs"
    archive = tar_with(tmp_path / "env.tar.gz", [member("site/ok.py", b"X = 1\n"), hostile])

    with pytest.raises(BadEnvironment) as e:
        env_unpack(archive, "f" * 64)

    assert str(e.value).startswith("could not unpack the environment: ")
    assert not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path / "envs" / "unpacked" / ("f" * 64)).exists()


def test_what_is_not_under_site_is_left_packed(tmp_path, settings):
    settings.DMARKET_ENVS_DIR = tmp_path / "envs"
    target = tmp_path / "absolute-escape.txt"
    archive = tar_with(tmp_path / "env.tar.gz", [member("site/ok.py", b"X = 1\n"),
                                                 member(str(target))])

    site = env_unpack(archive, "d" * 64)

    assert not target.exists()
    assert sorted(p.name for p in site.parent.iterdir()) == [MANIFEST, "site"]
    assert (site / "ok.py").read_text() == "X = 1\n"


def test_an_environment_larger_than_the_limit_is_refused(tmp_path, settings):
    settings.DMARKET_ENVS_DIR = tmp_path / "envs"
    settings.DMARKET_ENV_MAX_MB = 1
    archive = tar_with(tmp_path / "env.tar.gz", [member("site/big.bin", b"\0" * (2 << 20))])

    with pytest.raises(BadEnvironment) as e:
        env_unpack(archive, "e" * 64)
    assert str(e.value) == "could not unpack the environment: larger than 1 MB unpacked"


def test_a_working_dir_cannot_write_outside_the_home(tmp_path):
    archive = tmp_path / "wd.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("../../outside.txt", "no")
        z.writestr("/etc/absolute.txt", "no")
        z.writestr("inside/ok.txt", "yes")
    home = tmp_path / "jobs" / "1" / "home"
    home.mkdir(parents=True)

    workdir_unpack(archive, home)

    assert not (tmp_path / "outside.txt").exists()
    assert not (tmp_path / "jobs" / "outside.txt").exists()
    assert sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file()) == [
        "etc/absolute.txt", "inside/ok.txt", "outside.txt"]


def test_a_working_dir_bomb_is_refused_before_anything_is_written(tmp_path, settings):
    settings.DMARKET_WORKDIR_MAX_MB = 1
    archive = tmp_path / "wd.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("zeros.bin", b"\0" * (5 << 20))
    home = tmp_path / "home"
    home.mkdir()

    with pytest.raises(BadWorkdir) as e:
        workdir_unpack(archive, home)
    assert str(e.value) == "its working directory is larger than 1 MB unpacked"
    assert list(home.iterdir()) == []
