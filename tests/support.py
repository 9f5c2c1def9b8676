"""Test helpers shared by every tool's tests: the official schemas, peers, a busybox rootfs, free ports."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("OCI_SHARED_DIR", REPO.parent / "shared"))
OFFICIAL_SCHEMAS = SHARED / "oci-schemas"
BUSYBOX = "/bin/busybox"


def require(cmd: str) -> str:
    """Path of a peer binary; a missing peer fails the test (make test installs them), never skips it."""
    path = shutil.which(cmd)
    if path is None:
        pytest.fail(f"peer {cmd!r} is not installed: run `make test`, which installs the Debian peers")
    return path


def assert_valid(document, name: str) -> None:
    """Assert `document` validates against the official OCI schema `name` (see pyoci.schema.SCHEMAS)."""
    from pyoci import schema

    assert OFFICIAL_SCHEMAS.is_dir(), f"official schemas not found at {OFFICIAL_SCHEMAS}"
    problems = schema.errors(document, name, OFFICIAL_SCHEMAS)
    assert not problems, f"{name} does not validate against the official schema: {problems}"


def make_busybox_rootfs(root: Path) -> Path:
    """A minimal rootfs: busybox-static plus a symlink per applet (as PEERS.md describes)."""
    if not os.path.exists(BUSYBOX):
        pytest.fail("busybox-static is not installed: run `make test`")
    (root / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list-full"], check=True, capture_output=True, text=True).stdout.split()
    for rel in applets:
        target = root / rel
        if target.name == "busybox" or target.exists() or target.is_symlink():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to("/bin/busybox")
    for d in ("proc", "sys", "dev", "tmp", "etc", "root"):
        (root / d).mkdir(exist_ok=True)
    (root / "tmp").chmod(0o1777)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    (root / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CONTAINERD_CONFIG = """version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{d}/c.sock"
[ttrpc]
  address = "{d}/c.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
"""


@contextmanager
def containerd(d: Path) -> Iterator[str]:
    """Debian's containerd on private paths under `d` (no CRI), as PEERS.md says; yields its socket path.

    Stopped by its pid (SIGTERM, then SIGKILL) even when the test fails; `d/log` keeps its output.
    """
    binary = require("containerd")
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.toml").write_text(CONTAINERD_CONFIG.format(d=d))
    sock = str(d / "c.sock")
    with open(d / "log", "wb") as log:
        proc = subprocess.Popen([binary, "--config", str(d / "config.toml")], stdout=log, stderr=log,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(sock):
            assert proc.poll() is None, (d / "log").read_text()[-2000:]
            assert time.monotonic() < deadline, "containerd did not start"
            time.sleep(0.05)
        yield sock
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_on_pty(argv: list[str], timeout: float = 20, reply: tuple[bytes, bytes] | None = None,
               new_session: bool = True, steps: list[tuple[bytes | float, bytes]] | None = None,
               env: dict | None = None, cwd: str | os.PathLike | None = None) -> tuple[int, bytes]:
    """Run `argv` with a fresh pty as its stdio; returns (exit status, everything it wrote, CRLF kept).

    steps: (trigger, keys) typed in order, each once its trigger has appeared in the output (bytes) or that many
    seconds after the previous step (a float); reply=(trigger, answer) is one such step. A process still running
    at the end is killed.
    """
    import pty
    import select

    steps = list(steps or []) + ([reply] if reply is not None else [])
    master, slave = pty.openpty()
    p = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, close_fds=True, start_new_session=new_session,
                         env=env, cwd=cwd)
    os.close(slave)
    out, mark = b"", time.monotonic()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if steps:
                trigger, keys = steps[0]
                if (trigger in out) if isinstance(trigger, bytes) else time.monotonic() - mark > trigger:
                    os.write(master, keys)
                    steps.pop(0)
                    mark = time.monotonic()
            if select.select([master], [], [], 0.05)[0]:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            elif p.poll() is not None:
                break
        return p.wait(timeout), out
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
