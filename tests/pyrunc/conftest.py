"""Fixtures for the pyrunc interop suite: a busybox bundle made by `runc spec`, and the same commands run under
runc (`runc --root <tmp>/runc`) and pyrunc (`pyrunc --root <tmp>/pyrunc`).  Every container is force-deleted at
teardown, then the test fails if anything is left: mounts under tmp_path, processes rooted there, cgroups named
after its containers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import make_busybox_rootfs, require

PYRUNC = [str(Path(sys.executable).with_name("pyrunc"))]
ID_PREFIX = "pyrunc-t-"


@dataclass
class Result:
    rc: int
    out: str
    err: str


def kill_group(p: subprocess.Popen) -> None:
    """SIGKILL a runtime started in its own session: its pid, then its process group; reap it."""
    import signal

    for kill in (lambda: os.kill(p.pid, signal.SIGKILL), lambda: os.killpg(p.pid, signal.SIGKILL)):
        try:
            kill()
        except ProcessLookupError:
            pass
    p.wait()


def _cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class Runtime:
    def __init__(self, name: str, argv: list[str], root: Path) -> None:
        self.name, self.argv, self.root = name, argv, root

    def __call__(self, *args: str, input: str | None = None, timeout: float = 30, cwd=None) -> Result:
        # Files, not pipes: a detached container inherits our stdio and would hold a pipe open.
        import tempfile

        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            # its own process group: a timeout kills the runtime and whatever it forked (by pid and group)
            p = subprocess.Popen([*self.argv, "--root", str(self.root), *args], stdout=out, stderr=err, text=True,
                                 cwd=cwd, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                                 start_new_session=True)
            try:
                p.communicate(input, timeout=timeout)
            except BaseException:
                kill_group(p)
                raise
            out.seek(0)
            err.seek(0)
            return Result(p.returncode, out.read(), err.read())

    def state(self, cid: str) -> dict:
        r = self("state", cid)
        assert r.rc == 0, f"{self.name} state {cid}: {r.err}"
        return json.loads(r.out)


class Bundle:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.rootfs = path / "rootfs"

    @property
    def config(self) -> dict:
        return json.loads((self.path / "config.json").read_text())

    def write(self, doc: dict) -> None:
        (self.path / "config.json").write_text(json.dumps(doc, indent="\t"))

    def edit(self, fn) -> "Bundle":
        doc = self.config
        fn(doc)
        self.write(doc)
        return self

    def args(self, *argv: str) -> "Bundle":
        return self.edit(lambda d: d["process"].__setitem__("args", list(argv)))


class Env:
    """Both runtimes, a bundle factory and the ids to clean up."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.runc = Runtime("runc", [require("runc")], tmp / "runc")
        self.pyrunc = Runtime("pyrunc", PYRUNC, tmp / "pyrunc")
        self.ids: list[str] = []
        self._n = 0

    def new_id(self) -> str:
        cid = f"{ID_PREFIX}{uuid.uuid4().hex[:10]}"
        self.ids.append(cid)
        return cid

    def bundle(self, *argv: str) -> Bundle:
        self._n += 1
        path = self.tmp / f"bundle{self._n}"
        path.mkdir()
        make_busybox_rootfs(path / "rootfs")
        subprocess.run([require("runc"), "spec"], cwd=path, check=True)
        b = Bundle(path)
        b.edit(lambda d: d["process"].__setitem__("terminal", False))
        if argv:
            b.args(*argv)
        return b

    def both(self, bundle: Bundle, *cmd: str, input: str | None = None) -> tuple[Result, Result]:
        """`run` the bundle in the foreground under both runtimes (fresh ids)."""
        out = []
        for rt in (self.runc, self.pyrunc):
            out.append(rt("run", "-b", str(bundle.path), *cmd, self.new_id(), input=input))
        return out[0], out[1]

    def cleanup(self) -> None:
        for rt in (self.runc, self.pyrunc):
            for cid in self.ids:
                if (rt.root / cid).exists():
                    rt("delete", "-f", cid)


def leftovers(tmp: Path, ids: list[str]) -> list[str]:
    problems = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if str(tmp) in line:
                problems.append(f"mount left: {line.split()[4]}")
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            root = os.readlink(f"/proc/{pid}/root")
        except OSError:
            continue
        if root.startswith(str(tmp)):
            problems.append(f"process left: {pid} rooted at {root}")
        elif str(tmp) in _cmdline(pid) and int(pid) != os.getpid():
            # a runtime (or its forked init, before pivot_root) still working on this test's bundles
            problems.append(f"process left: {pid}: {_cmdline(pid)[:200]}")
    for base in ("/sys/fs/cgroup",):
        for dirpath, dirnames, _ in os.walk(base):
            for d in dirnames:
                if d in ids:
                    problems.append(f"cgroup left: {os.path.join(dirpath, d)}")
            if dirpath.count("/") > 6:
                dirnames[:] = []
    for cid in ids:
        for rt in ("runc", "pyrunc"):
            if (tmp / rt / cid).exists():
                problems.append(f"state dir left: {tmp / rt / cid}")
    return problems


@pytest.fixture
def env(tmp_path: Path):
    e = Env(tmp_path)
    try:
        yield e
    finally:
        e.cleanup()
        deadline = time.monotonic() + 3
        while True:
            problems = leftovers(tmp_path, e.ids)
            if not problems or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if problems:
            _kill_strays(tmp_path)
        assert not problems, problems


def _kill_strays(tmp: Path) -> None:
    """After a failed check: kill what is left of this test so it cannot outlive the suite."""
    import signal

    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) != os.getpid() and str(tmp) in _cmdline(pid):
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass


def same(r1: Result, r2: Result) -> None:
    assert (r2.rc, r2.out) == (r1.rc, r1.out), f"runc: rc={r1.rc} out={r1.out!r} err={r1.err!r}\npyrunc: rc={r2.rc} out={r2.out!r} err={r2.err!r}"


def strip_state(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k not in ("pid", "created", "id")}
