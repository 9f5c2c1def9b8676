"""Helpers of the pyctr tests (no tests here): a daemon on short paths, a busybox docker-archive, pyctr run
(fast) or as a subprocess (stdin, terminals, signals)."""

from __future__ import annotations

import io
import json
import os
import secrets
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from pycontainerd.ctr import cli
from tests.pycontainerd.daemon_fixture import REPO, DaemonHandle, default_runtime, namespace_cgroups, remove_cgroups  # noqa: F401


@dataclass
class Result:
    status: int
    out: str
    err: str


@contextmanager
def short_daemon(tmp_path: Path) -> Iterator[DaemonHandle]:
    """Like daemon_fixture.running_daemon, with a state path short enough that a terminal's console
    socket (<state>/tasks/<ns>/<64-hex id>/console-init.sock) fits the 108-byte limit for ns ≤ 2 chars."""
    root = tmp_path / "root"
    root.mkdir(parents=True, exist_ok=True)
    while True:  # /tmp/cXXXX: console sockets <state>/tasks/<ns>/<64-hex id>/console-<exec id>.sock must fit
        state = Path(f"/tmp/c{secrets.token_hex(2)}")
        try:
            state.mkdir(mode=0o700)
            break
        except FileExistsError:
            continue
    handle = DaemonHandle(root=root, state=state, address=str(state / "d.sock"), log=tmp_path / "daemon.log",
                          runtime=default_runtime())
    try:
        handle.start()
        yield handle
    finally:
        handle.cleanup()


def busybox_archive(base: Path, config: dict | None = None, name: str = "busybox:latest") -> Path:
    """busybox as pyoci.image.build_from_rootfs builds it, written as a docker-archive by pyoci.archive."""
    from pyoci.archive import write_docker_archive
    from pyoci.image import build_from_rootfs
    from pyoci.layout import Layout
    from tests.support import make_busybox_rootfs

    rootfs = make_busybox_rootfs(base / "rootfs")
    layout = Layout.init(base / "layout")
    build_from_rootfs(layout, rootfs, "latest", epoch=0, container_config=config or {
        "Cmd": ["sh"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]})
    out = base / "busybox.tar"
    write_docker_archive(out, [(layout, "latest", [name])])
    return out


class Ctr:
    """pyctr against one daemon and namespace."""

    def __init__(self, daemon: DaemonHandle, namespace: str) -> None:
        self.daemon = daemon
        self.namespace = namespace
        self.base = ["-H", f"unix://{daemon.address}", "--namespace", namespace]

    def __call__(self, *args: str) -> Result:
        """In-process: main() with stdout/stderr captured (no stdin, no terminal)."""
        out_b, err_b = io.BytesIO(), io.BytesIO()
        out = io.TextIOWrapper(out_b, encoding="utf-8", write_through=True)
        err = io.TextIOWrapper(err_b, encoding="utf-8", write_through=True)
        saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = out, err
        try:
            status = cli.main(self.base + list(args))
        finally:
            sys.stdout, sys.stderr = saved
        return Result(status, out_b.getvalue().decode(), err_b.getvalue().decode())

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "pycontainerd.ctr.cli", *self.base, *args]

    def proc(self, *args: str, input: str | None = None, timeout: float = 60) -> Result:
        p = subprocess.run(self.argv(*args), input=input, capture_output=True, text=True, timeout=timeout,
                           cwd=REPO, env=env())
        return Result(p.returncode, p.stdout, p.stderr)

    def ok(self, *args: str) -> str:
        r = self(*args)
        assert r.status == 0, (args, r)
        return r.out

    def inspect(self, name: str) -> dict:
        return json.loads(self.ok("inspect", name))[0]

    def remove_all(self) -> None:
        """`rm -f` every container of the namespace (fixtures' teardown)."""
        for cid in self("ps", "-a", "-q", "--no-trunc").out.split():
            self("rm", "-f", cid)


def env() -> dict:
    e = dict(os.environ)
    e["PATH"] = f"{REPO / '.venv' / 'bin'}:{e.get('PATH', '/usr/bin:/bin')}"
    return e
