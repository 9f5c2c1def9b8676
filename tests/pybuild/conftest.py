"""Fixtures for the build tests: a busybox base image as an OCI layout, a pybuild runner, leak checks."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import make_busybox_rootfs

PYBUILD = [sys.executable, "-m", "pybuild"]


@pytest.fixture(scope="session")
def busybox_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An OCI layout tagged `latest`: one busybox layer, Env PATH, Cmd sh."""
    from pyoci.image import build_from_rootfs
    from pyoci.layout import Layout

    d = tmp_path_factory.mktemp("busybox")
    rootfs = make_busybox_rootfs(d / "rootfs")
    build_from_rootfs(Layout.init(d / "layout"), rootfs, "latest", epoch=1700000000,
                      container_config={"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                                        "Cmd": ["sh"]})
    return d / "layout"


def _mounts_under(path: Path) -> list[str]:
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4]
            if mp.startswith(str(path)):
                out.append(mp)
    return out


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Builder:
    tmp: Path
    base: Path
    cache: Path

    def ctx(self, dockerfile: str, files: dict[str, str | bytes] | None = None, name: str = "ctx") -> Path:
        d = self.tmp / name
        d.mkdir(exist_ok=True)
        (d / "Dockerfile").write_text(dockerfile)
        for rel, data in (files or {}).items():
            p = d / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(data, bytes):
                p.write_bytes(data)
            else:
                p.write_text(data)
        return d

    def build(self, ctx: Path, *args: str, env: dict[str, str] | None = None, base: bool = True,
              check: bool = True) -> Result:
        cmd = [*PYBUILD, "build", "--progress", "plain", "--cache-dir", str(self.cache)]
        if base:
            cmd += ["--build-context", f"base=oci-layout://{self.base}:latest"]
        cmd += [*args, str(ctx)]
        e = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
        e.update(env or {})
        p = subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=120)
        r = Result(p.returncode, p.stdout, p.stderr)
        if check:
            assert r.code == 0, f"pybuild failed ({r.code}):\n{r.err}"
        return r


@pytest.fixture
def builder(tmp_path: Path, busybox_layout: Path):
    b = Builder(tmp_path, busybox_layout, tmp_path / "cache")
    yield b
    left = _mounts_under(tmp_path)
    for mp in reversed(left):  # clean up before failing, so that tmp_path can be removed
        subprocess.run(["umount", "-l", mp], capture_output=True)
    assert not left, f"mounts left behind: {left}"
