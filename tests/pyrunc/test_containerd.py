"""containerd (Debian's) driving pyrunc as its runtime binary: `ctr --runc-binary pyrunc` run/exec/pause/ps/kill/-t,
each compared with the same command under runc."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.support import containerd, make_busybox_rootfs, require, run_on_pty

pytestmark = [pytest.mark.interop, pytest.mark.slow]

PYRUNC = os.environ.get("PYRUNC_CTR_BINARY") or str(Path(sys.executable).with_name("pyrunc"))
IMAGE = "docker.io/library/pyrunc-bb:latest"


@pytest.fixture(scope="module")
def ctd(tmp_path_factory):
    """A private containerd with a busybox image imported (built with umoci, archived with skopeo)."""
    tmp = tmp_path_factory.mktemp("ctd")
    rootfs = make_busybox_rootfs(tmp / "rootfs")
    layout = tmp / "layout"
    subprocess.run([require("umoci"), "init", "--layout", str(layout)], check=True)
    subprocess.run([require("umoci"), "new", "--image", f"{layout}:bb"], check=True)
    subprocess.run([require("umoci"), "insert", "--image", f"{layout}:bb", str(rootfs), "/"], check=True,
                   capture_output=True)
    subprocess.run([require("umoci"), "config", "--image", f"{layout}:bb",
                    "--config.env", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"], check=True)
    archive = tmp / "bb.tar"
    subprocess.run([require("skopeo"), "copy", "-q", f"oci:{layout}:bb", f"docker-archive:{archive}:{IMAGE}"],
                   check=True, capture_output=True)
    d = tmp / "c"
    with containerd(d) as sock:
        def ctr(*args, timeout=60, **kw):
            return subprocess.run([require("ctr"), "-a", sock, *args], capture_output=True, text=True,
                                  timeout=timeout, **kw)

        try:
            r = ctr("images", "import", "--snapshotter", "native", str(archive))
            assert r.returncode == 0, r.stderr
            ctr.sock = sock
            yield ctr
        finally:
            for cid in ctr("containers", "ls", "-q").stdout.split():
                ctr("task", "kill", "-s", "SIGKILL", cid)
                time.sleep(0.2)
                ctr("task", "delete", "-f", cid)
                ctr("containers", "delete", cid)
    subprocess.run(["umount", "-R", str(d)], capture_output=True)


RUNTIMES = {"runc": [], "pyrunc": ["--runc-binary", PYRUNC]}


def _id(name: str) -> str:
    return f"pyrunc-ctr-{name}-{uuid.uuid4().hex[:8]}"


def _run(ctd, rt, *args):
    return ctd("run", "--snapshotter", "native", *RUNTIMES[rt], *args)


def test_run_rm_output_and_status(ctd):
    outs = {}
    for rt in RUNTIMES:
        r1 = _run(ctd, rt, "--rm", IMAGE, _id(rt), "sh", "-c", "echo hello from $(hostname | cut -c1-0)busybox; exit 7")
        r2 = _run(ctd, rt, "--rm", IMAGE, _id(rt), "sh", "-c", "id; pwd; ls /")
        outs[rt] = (r1.returncode, r1.stdout, r2.returncode, r2.stdout)
    assert outs["pyrunc"] == outs["runc"], (outs, )
    assert outs["pyrunc"][0] == 7


def test_detached_exec_pause_ps_kill(ctd):
    outs = {}
    for rt in RUNTIMES:
        cid = _id(rt)
        steps = []
        r = _run(ctd, rt, "-d", IMAGE, cid, "sleep", "60")
        assert r.returncode == 0, r.stderr
        r = ctd("task", "exec", "--exec-id", "e1", cid, "sh", "-c", "echo exec-out; exit 3")
        steps.append((r.returncode, r.stdout))
        r = ctd("task", "ps", cid)
        assert r.returncode == 0, r.stderr
        steps.append(len(r.stdout.strip().splitlines()))
        assert ctd("task", "pause", cid).returncode == 0
        steps.append(re.findall(r"\b(PAUSED|RUNNING|STOPPED)\b", ctd("task", "ls").stdout.split(cid, 1)[1])[:1])
        assert ctd("task", "resume", cid).returncode == 0
        steps.append(re.findall(r"\b(PAUSED|RUNNING|STOPPED)\b", ctd("task", "ls").stdout.split(cid, 1)[1])[:1])
        assert ctd("task", "kill", "-s", "SIGKILL", cid).returncode == 0
        for _ in range(100):
            if "STOPPED" in ctd("task", "ls").stdout.split(cid, 1)[1].split("\n")[0]:
                break
            time.sleep(0.05)
        steps.append(re.findall(r"\b(PAUSED|RUNNING|STOPPED)\b", ctd("task", "ls").stdout.split(cid, 1)[1])[:1])
        r = ctd("task", "delete", cid)
        assert r.returncode == 0, r.stderr
        assert ctd("containers", "delete", cid).returncode == 0
        outs[rt] = steps
    assert outs["pyrunc"] == outs["runc"]


def test_terminal(ctd):
    """`ctr run -t`: the shim gets the pty master over the console socket. The process lingers a moment: ctr -t
    can drop a pty's last output when the process exits at once (seen with runc on a loaded machine)."""
    outs = {}
    for rt in RUNTIMES:
        rc, out = run_on_pty([require("ctr"), "-a", ctd.sock, "run", "--snapshotter", "native", *RUNTIMES[rt], "-t",
                              "--rm", IMAGE, _id(rt), "sh", "-c", "tty; test -t 0 && echo is-a-tty; sleep 0.3"],
                             timeout=30, new_session=False)
        outs[rt] = (rc, out.replace(b"\r\n", b"\n"))
    assert outs["pyrunc"] == outs["runc"]
    assert b"is-a-tty" in outs["pyrunc"][1]
