"""The shim alone (no daemon): a busybox bundle run by pyrunc through `shim/main.py`.

Each test uses its own bundle under a private /tmp dir and its own cgroup parent; the fixture kills
every shim and container process left, deletes the runtime state and removes the cgroups.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from pycontainerd.protocol import b64decode, b64encode, encode, recv_frame
from pycontainerd.tasks import SHIM_MAIN
from pyoci.runtime import default_spec
from tests.pycontainerd.daemon_fixture import default_runtime, kill_leftovers, unmount_under
from tests.support import make_busybox_rootfs


class ShimConn:
    """A blocking client of one shim socket (one call at a time, or one stream)."""

    def __init__(self, bundle: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(30)
        self.sock.connect(str(bundle / "shim.sock"))
        self.next_id = 0

    def request(self, method: str, params: dict | None = None) -> int:
        self.next_id += 1
        self.sock.sendall(encode({"id": self.next_id, "method": method, "params": params or {}}))
        return self.next_id

    def call(self, method: str, params: dict | None = None) -> dict:
        call_id = self.request(method, params)
        while True:
            frame = recv_frame(self.sock)
            assert frame is not None, f"shim closed the connection during {method}"
            if frame["id"] == call_id and "stream" not in frame:
                if "error" in frame:
                    raise ShimCallError(frame["error"]["code"], frame["error"]["message"])
                return frame["result"]

    def frames(self):
        while True:
            frame = recv_frame(self.sock)
            if frame is None:
                return
            yield frame

    def close(self) -> None:
        self.sock.close()


class ShimCallError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class Env:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.rootfs = make_busybox_rootfs(base / "rootfs")
        self.cgroup_parent = "lshim" + uuid.uuid4().hex[:8]
        self.runtime = default_runtime()

    def start(self, name: str, args: list[str], terminal: bool = False, stdin: bool = False,
              log: dict | None = None) -> tuple[Path, dict]:
        bundle = self.base / name
        bundle.mkdir()
        spec = default_spec()
        spec["process"].update(terminal=terminal, args=args)
        spec["root"] = {"path": str(self.rootfs), "readonly": False}
        spec["hostname"] = name
        spec["linux"]["cgroupsPath"] = f"/{self.cgroup_parent}/{name}"
        (bundle / "config.json").write_text(json.dumps(spec))
        (bundle / "shim.json").write_text(json.dumps({
            "id": name, "namespace": "t", "runtime": self.runtime, "runtime_root": str(self.base / "runtime"),
            "log_path": str(bundle / f"{name}-json.log"), "log_max_size": (log or {}).get("max_size", -1),
            "log_max_file": (log or {}).get("max_file", 1), "stdin": stdin, "terminal": terminal}))
        p = subprocess.run([sys.executable, str(SHIM_MAIN), str(bundle)], capture_output=True, timeout=60)
        info = json.loads(p.stdout.decode().strip().splitlines()[-1])
        assert p.returncode == 0 and "error" not in info, (p.returncode, info, p.stderr.decode())
        return bundle, info

    def cleanup(self) -> None:
        kill_leftovers([str(self.base)])
        for bundle in self.base.iterdir():
            if (bundle / "shim.json").exists():
                subprocess.run([self.runtime, "--root", str(self.base / "runtime"), "delete", "--force", bundle.name],
                               capture_output=True)
        unmount_under([str(self.base)])
        remove_cgroups(self.cgroup_parent)
        shutil.rmtree(self.base, ignore_errors=True)


def cgroup_dirs(parent: str) -> list[Path]:
    return [d for d in Path("/sys/fs/cgroup").glob(f"*/{parent}") if d.is_dir()]


def remove_cgroups(parent: str) -> None:
    for d in cgroup_dirs(parent):
        for child in sorted(d.rglob("*"), key=lambda p: -len(p.parts)):
            if child.is_dir():
                try:
                    child.rmdir()
                except OSError:
                    pass
        try:
            d.rmdir()
        except OSError:
            pass


@pytest.fixture
def env():
    e = Env(Path(tempfile.mkdtemp(prefix="lshim-", dir="/tmp")))
    try:
        yield e
    finally:
        e.cleanup()


def attach_until_end(conn: ShimConn, call_id: int) -> tuple[dict[str, bytes], dict]:
    out: dict[str, bytes] = {"stdout": b"", "stderr": b""}
    for frame in conn.frames():
        if frame["id"] != call_id:
            continue
        if "stream" in frame:
            s = frame["stream"]
            if "data" in s:
                out[s["stream"]] += b64decode(s["data"])
            continue
        assert "result" in frame, frame
        return out, frame["result"]
    raise AssertionError("attach stream ended without a result")


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_gone(pid: int, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.02)
    return False


def test_lifecycle_exit_code_log_exit_status_and_delete(env):
    bundle, info = env.start("c1", ["sh", "-c", "echo hello; echo oops >&2; sleep 0.3; echo bye; exit 3"])
    shim_pid = info["shim_pid"]
    # detached: in a session of its own (not a leader: it can never get a controlling tty), not our child
    assert os.getsid(shim_pid) not in (os.getsid(0), shim_pid)
    with open(f"/proc/{shim_pid}/status") as f:
        status = dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)
    assert int(status["PPid"]) != os.getpid()
    rss_kb = int(status["VmRSS"].split()[0])
    print(f"shim RSS: {rss_kb} kB")
    assert rss_kb < 24 * 1024, f"the shim takes {rss_kb} kB"
    c = ShimConn(bundle)
    st = c.call("state")
    assert st["status"] == "created" and st["pid"] == info["pid"] > 0
    assert int((bundle / "shim.pid").read_text()) == shim_pid
    assert int((bundle / "init.pid").read_text()) == info["pid"]
    assert c.call("start") == {"pid": info["pid"]}
    with pytest.raises(ShimCallError) as err:
        c.call("start")
    assert err.value.code == 9
    with pytest.raises(ShimCallError) as err:
        c.call("delete")
    assert err.value.code == 9 and "running" in str(err.value)
    result = c.call("wait")
    assert result["exit_status"] == 3 and result["pid"] == info["pid"]
    exit_file = json.loads((bundle / "exit-status").read_text())
    assert exit_file["exit_status"] == 3 and exit_file["exited_at"] == result["exited_at"]
    rows = [json.loads(line) for line in (bundle / "c1-json.log").read_text().splitlines()]
    assert [r["log"] for r in rows if r["stream"] == "stdout"] == ["hello\n", "bye\n"]
    assert [r["log"] for r in rows if r["stream"] == "stderr"] == ["oops\n"]
    assert c.call("state")["status"] == "stopped"
    with pytest.raises(ShimCallError) as err:
        c.call("kill", {"signal": 9})
    assert err.value.code == 5
    assert c.call("delete")["exit_status"] == 3
    assert wait_gone(shim_pid), "the shim did not exit after delete"
    assert not (bundle / "shim.sock").exists()
    state = subprocess.run([env.runtime, "--root", str(env.base / "runtime"), "state", "c1"], capture_output=True)
    assert state.returncode != 0  # the runtime's state is gone too
    assert not [d for d in cgroup_dirs(env.cgroup_parent) if (d / "c1").exists()]


def test_kill_exit_codes_as_docker(env):
    bundle, info = env.start("k1", ["sh", "-c", "trap 'exit 42' TERM; while true; do sleep 0.05; done"])
    c = ShimConn(bundle)
    c.call("start")
    time.sleep(0.3)
    c.call("kill", {"signal": "TERM"})
    assert c.call("wait")["exit_status"] == 42
    c.call("delete")
    bundle, info = env.start("k2", ["sleep", "100"])
    c = ShimConn(bundle)
    c.call("start")
    c.call("kill", {"signal": "SIGKILL", "all": True})
    assert c.call("wait")["exit_status"] == 137  # 128 + 9
    with pytest.raises(ShimCallError) as err:
        c.call("kill", {"signal": "SIGNOPE"})
    assert err.value.code in (3, 5)
    c.call("delete")


def test_stdin_attach_and_close(env):
    bundle, info = env.start("in1", ["sh", "-c", "cat; echo done >&2"], stdin=True)
    c = ShimConn(bundle)
    call_id = c.request("attach", {"stdin": True, "close_stdin": True})
    first = recv_frame(c.sock)
    assert first == {"id": call_id, "stream": {"attached": True}}
    ctl = ShimConn(bundle)
    ctl.call("start")
    c.sock.sendall(encode({"id": call_id, "stream": {"data": b64encode(b"line one\nline two\n")}}))
    c.sock.sendall(encode({"id": call_id, "close_send": True}))
    out, result = attach_until_end(c, call_id)
    assert out == {"stdout": b"line one\nline two\n", "stderr": b"done\n"}
    assert result["exit_status"] == 0
    ctl.call("delete")


def test_tty_through_console_socket_and_resize(env):
    bundle, info = env.start("t1", ["sh", "-c", "tty; stty size; read x; echo got:$x"], terminal=True, stdin=True)
    c = ShimConn(bundle)
    c.call("resize", {"width": 100, "height": 40})
    call_id = c.request("attach", {"stdin": True})
    assert recv_frame(c.sock)["stream"] == {"attached": True}
    ShimConn(bundle).call("start")
    time.sleep(0.5)
    c.sock.sendall(encode({"id": call_id, "stream": {"data": b64encode(b"abc\r")}}))
    out, result = attach_until_end(c, call_id)
    text = out["stdout"].decode()
    assert out["stderr"] == b""
    assert "/dev/pts/0\r\n" in text and "40 100\r\n" in text and "got:abc\r\n" in text, text
    assert result["exit_status"] == 0
    log = [json.loads(line) for line in (bundle / "t1-json.log").read_text().splitlines()]
    assert all(r["stream"] == "stdout" for r in log) and any("got:abc" in r["log"] for r in log)
    ShimConn(bundle).call("delete")


def test_exec_output_exit_code_tty_and_kill(env):
    bundle, info = env.start("e1", ["sleep", "100"])
    c = ShimConn(bundle)
    c.call("start")
    process = {"args": ["sh", "-c", "echo out; echo err >&2; exit 5"], "cwd": "/",
               "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
               "user": {"uid": 0, "gid": 0}}
    c.call("exec", {"exec_id": "x1", "process": process})
    with pytest.raises(ShimCallError) as err:
        c.call("exec", {"exec_id": "x1", "process": process})
    assert err.value.code == 6
    pid = c.call("start", {"exec_id": "x1"})["pid"]
    assert pid > 0
    assert c.call("wait", {"exec_id": "x1"})["exit_status"] == 5
    # output made before anyone attached is kept for the first attach
    a = ShimConn(bundle)
    call_id = a.request("attach", {"exec_id": "x1"})
    out, result = attach_until_end(a, call_id)
    assert out == {"stdout": b"out\n", "stderr": b"err\n"} and result["exit_status"] == 5
    assert c.call("delete", {"exec_id": "x1"})["exit_status"] == 5
    with pytest.raises(ShimCallError) as err:
        c.call("state", {"exec_id": "x1"})
    assert err.value.code == 5
    # a terminal exec, then one killed by a signal
    c.call("exec", {"exec_id": "x2", "process": {**process, "args": ["tty"]}, "terminal": True})
    a2 = ShimConn(bundle)
    call_id = a2.request("attach", {"exec_id": "x2"})
    c.call("start", {"exec_id": "x2"})
    out, result = attach_until_end(a2, call_id)
    assert out["stdout"].startswith(b"/dev/pts/") and result["exit_status"] == 0
    c.call("exec", {"exec_id": "x3", "process": {**process, "args": ["sleep", "50"]}})
    c.call("start", {"exec_id": "x3"})
    c.call("kill", {"exec_id": "x3", "signal": 15})
    assert c.call("wait", {"exec_id": "x3"})["exit_status"] == 143  # 128 + SIGTERM
    # exec of a missing binary fails at start, as runc exec
    c.call("exec", {"exec_id": "x4", "process": {**process, "args": ["/nonexistent"]}})
    with pytest.raises(ShimCallError):
        c.call("start", {"exec_id": "x4"})
    c.call("kill", {"signal": 9})
    assert c.call("wait")["exit_status"] == 137
    c.call("delete")


def test_pause_resume_pids_stats(env):
    bundle, info = env.start("p1", ["sh", "-c", "while true; do echo tick; sleep 0.1; done"])
    c = ShimConn(bundle)
    c.call("start")
    pids = c.call("pids")["pids"]
    assert info["pid"] in [p["pid"] for p in pids]
    c.call("pause")
    assert c.call("state")["status"] == "paused"
    log = bundle / "p1-json.log"
    time.sleep(0.3)
    size = log.stat().st_size
    time.sleep(0.5)
    assert log.stat().st_size == size, "a paused container kept logging"
    c.call("resume")
    assert c.call("state")["status"] == "running"
    time.sleep(0.5)
    assert log.stat().st_size > size
    stats = c.call("stats")["stats"]
    assert isinstance(stats, dict) and stats
    c.call("kill", {"signal": 9})
    c.call("wait")
    c.call("delete")


def test_log_rotation_in_shim(env):
    bundle, info = env.start("r1", ["sh", "-c", "i=0; while [ $i -lt 300 ]; do echo line $i; i=$((i+1)); done"],
                             log={"max_size": 2048, "max_file": 3})
    c = ShimConn(bundle)
    c.call("start")
    assert c.call("wait")["exit_status"] == 0
    names = sorted(p.name for p in bundle.glob("r1-json.log*"))
    assert names == ["r1-json.log", "r1-json.log.1", "r1-json.log.2"]
    assert all(p.stat().st_size <= 2048 for p in bundle.glob("r1-json.log*"))
    last = json.loads((bundle / "r1-json.log").read_text().splitlines()[-1])
    assert last["log"] == "line 299\n"
    c.call("delete")


def test_create_failure_is_reported_and_leaves_nothing(env):
    bundle = env.base / "bad"
    with pytest.raises(AssertionError) as err:
        env.start("bad", ["/no/such/binary"])
    assert "error" in str(err.value)
    time.sleep(0.2)
    assert not (bundle / "shim.sock").exists()
    assert not kill_leftovers([str(bundle)])  # no shim stayed behind


def test_exec_stdin_sent_before_start_is_kept(env):
    bundle, info = env.start("s1", ["sleep", "100"])
    c = ShimConn(bundle)
    c.call("start")
    c.call("exec", {"exec_id": "cat", "stdin": True,
                    "process": {"args": ["cat"], "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}}})
    a = ShimConn(bundle)
    call_id = a.request("attach", {"exec_id": "cat", "stdin": True, "close_stdin": True})
    assert recv_frame(a.sock)["stream"] == {"attached": True}
    a.sock.sendall(encode({"id": call_id, "stream": {"data": b64encode(b"early bytes\n")}}))
    a.sock.sendall(encode({"id": call_id, "close_send": True}))
    time.sleep(0.2)  # both reach the shim before the exec exists
    c.call("start", {"exec_id": "cat"})
    out, result = attach_until_end(a, call_id)
    assert out["stdout"] == b"early bytes\n" and result["exit_status"] == 0
    c.call("kill", {"signal": 9})
    c.call("wait")
    c.call("delete")


def test_long_ids_fit_console_sockets(env):
    """64-hex container and exec ids (docker's) under a long state path still get their terminals."""
    cid = uuid.uuid4().hex * 2
    bundle, info = env.start(cid, ["sh", "-c", "tty; sleep 100"], terminal=True)
    assert len(str(bundle / "console-init.sock")) > 108 - 20  # too long for a socket under the bundle
    c = ShimConn(bundle)
    c.call("start")
    exec_id = uuid.uuid4().hex * 2
    c.call("exec", {"exec_id": exec_id, "terminal": True,
                    "process": {"args": ["tty"], "cwd": "/", "env": ["PATH=/usr/bin:/bin"],
                                "user": {"uid": 0, "gid": 0}}})
    a = ShimConn(bundle)
    call_id = a.request("attach", {"exec_id": exec_id})
    c.call("start", {"exec_id": exec_id})
    out, result = attach_until_end(a, call_id)
    assert out["stdout"].startswith(b"/dev/pts/") and result["exit_status"] == 0
    c.call("kill", {"signal": 9})
    assert c.call("wait")["exit_status"] == 137
    rows = [json.loads(line) for line in (bundle / f"{cid}-json.log").read_text().splitlines()]
    assert rows[0]["log"] == "/dev/pts/0\r\n"
    c.call("delete")
