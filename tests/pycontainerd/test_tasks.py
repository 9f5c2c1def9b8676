"""The Tasks service end to end: a daemon, a busybox image imported into it, containers run by shims.

One daemon serves the module (each test has its own namespace, so its own cgroup parent); the
daemon-restart test has a daemon of its own. Teardown deletes every task and container of a test's
namespace, then checks nothing is left: no shim, no mount under the daemon's paths, no cgroup.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pycontainerd import errdefs, ocispec
from pycontainerd.protocol import b64decode, b64encode
from pyoci.archive_oci import write_oci_archive
from pyoci.layout import Layout
from tests.pycontainerd.daemon_fixture import build_image, kill_leftovers, running_daemon
from tests.support import make_busybox_rootfs, require

IMAGE = "docker.io/library/busybox:latest"


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("bbimage")
    rootfs = make_busybox_rootfs(base / "rootfs")
    build_image(base / "layout", "latest", [rootfs],
                config={"Cmd": ["sh"], "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "StopSignal": "SIGTERM"})
    write_oci_archive(Layout(base / "layout"), base / "busybox.tar")
    return base / "busybox.tar"


@pytest.fixture(scope="module")
def shared_daemon(tmp_path_factory):
    namespaces: list[str] = []
    try:
        with running_daemon(tmp_path_factory.mktemp("tasksd")) as d:
            d.test_namespaces = namespaces
            yield d
    finally:
        for name in namespaces:  # after the fixture killed whatever a failed test left running
            remove_cgroups(name)


class NS:
    """A namespace of a daemon with the busybox image, and helpers to run containers in it."""

    def __init__(self, daemon, archive: Path, name: str | None = None) -> None:
        self.daemon = daemon
        self.name = name or "t" + uuid.uuid4().hex[:10]
        self.c = daemon.new_client(self.name)
        list(self.c.stream("Images", "Import", {"path": str(archive), "base_name": "docker.io/library/busybox"}))
        self.config = self.c.call("Images", "Config", {"name": IMAGE})

    def container(self, cid: str, args: list[str], **opts) -> str:
        self.c.call("Snapshots", "Prepare", {"key": cid, "parent": self.config["chain_id"]})
        spec = ocispec.generate(self.config["config"], ocispec.SpecOptions(args=args, **opts), self.name, cid)
        self.c.call("Containers", "Create", {"container": {"id": cid, "image": IMAGE, "spec": spec,
                                                           "snapshot_key": cid}})
        return cid

    def run(self, cid: str, args: list[str], task: dict | None = None, **opts) -> int:
        self.container(cid, args, **opts)
        self.c.call("Tasks", "Create", {"container_id": cid, **(task or {})})
        return self.c.call("Tasks", "Start", {"container_id": cid})["pid"]

    def wait(self, cid: str, exec_id: str = "") -> int:
        return self.c.call("Tasks", "Wait", {"container_id": cid, "exec_id": exec_id}, timeout=60)["exit_status"]

    def logs(self, cid: str, **params) -> list[dict]:
        return list(self.c.stream("Tasks", "Logs", {"container_id": cid, **params}))

    def remove(self, cid: str) -> None:
        try:
            self.c.call("Tasks", "Delete", {"container_id": cid, "force": True})
        except errdefs.NotFound:
            pass
        self.c.call("Containers", "Delete", {"id": cid, "cleanup_snapshot": True})

    def cleanup(self) -> None:
        for t in self.c.call("Tasks", "List")["tasks"]:
            self.c.call("Tasks", "Delete", {"container_id": t["container_id"], "force": True})
        for ctr in self.c.call("Containers", "List")["containers"]:
            self.c.call("Containers", "Delete", {"id": ctr["id"], "cleanup_snapshot": True})
        assert_no_leftovers(self.daemon, self.name)


def cgroups_of(namespace: str) -> list[Path]:
    return [d for d in Path("/sys/fs/cgroup").glob(f"*/{namespace}") if d.is_dir()]


def remove_cgroups(namespace: str) -> None:
    for d in cgroups_of(namespace):
        for child in [c for c in d.iterdir() if c.is_dir()] + [d]:
            try:
                child.rmdir()
            except OSError:
                pass


def assert_no_leftovers(daemon, namespace: str) -> None:
    tasks_dir = Path(daemon.state) / "tasks" / namespace
    assert not tasks_dir.exists() or not any(tasks_dir.iterdir()), list(tasks_dir.iterdir())
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f if str(tasks_dir) in line]
    assert not mounts, mounts
    leaked = [str(c) for d in cgroups_of(namespace) for c in d.iterdir() if c.is_dir()]
    for d in cgroups_of(namespace):
        d.rmdir()  # the namespace's parent cgroup (containerd leaves it too); empty by now
    assert not leaked, leaked
    shims = [pid for pid in os.listdir("/proc") if pid.isdigit() and _cmdline_has(pid, str(tasks_dir))]
    assert not shims, shims


def _cmdline_has(pid: str, text: str) -> bool:
    try:
        return text in open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
    except OSError:
        return False


@pytest.fixture
def ns(shared_daemon, archive):
    n = NS(shared_daemon, archive)
    shared_daemon.test_namespaces.append(n.name)
    try:
        yield n
    finally:
        try:
            n.cleanup()
        finally:
            remove_cgroups(n.name)


class Events:
    def __init__(self, daemon, namespace: str) -> None:
        self.client = daemon.new_client(namespace)
        self.items: list[dict] = []
        ready = threading.Event()

        def consume():
            try:
                wanted = [f'namespace=={namespace},topic~="^/tasks/"']
                for e in self.client.stream("Events", "Subscribe", {"filters": wanted, "ready": True}):
                    if e.get("ready"):
                        ready.set()
                        continue
                    self.items.append(e)
            except errdefs.Error:
                pass
            ready.set()

        self.thread = threading.Thread(target=consume, daemon=True)
        self.thread.start()
        assert ready.wait(10)

    def wait_for(self, topic: str, cid: str, timeout: float = 20) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in self.items:
                if e["topic"] == topic and e["event"].get("container_id") == cid:
                    return e
            time.sleep(0.05)
        raise AssertionError(f"no {topic} for {cid} in {[e['topic'] for e in self.items]}")


def attach(c, params: dict, stdin: list[bytes] | None = None, close: bool = True, after_attached=None):
    call = c.duplex("Tasks", "Attach", params)
    out = {"stdout": b"", "stderr": b""}
    it = iter(call)
    first = next(it)
    assert first == {"attached": True}
    if after_attached:
        after_attached()
    for chunk in stdin or []:
        call.send({"data": b64encode(chunk)})
    if close:
        call.close_send()
    for frame in it:
        if "data" in frame:
            out[frame["stream"]] += b64decode(frame["data"])
    return out, call.result()


def test_run_exit_code_logs_and_events(shared_daemon, ns):
    events = Events(shared_daemon, ns.name)
    pid = ns.run("c1", ["sh", "-c", "echo hello; echo oops >&2; echo $HOSTNAME; exit 7"])
    assert pid > 0
    assert ns.wait("c1") == 7
    exit_event = events.wait_for("/tasks/exit", "c1")
    assert exit_event["event"]["exit_status"] == 7 and exit_event["event"]["pid"] == pid
    assert exit_event["event"]["exited_at"].endswith("Z")
    for topic in ("/tasks/create", "/tasks/start"):
        events.wait_for(topic, "c1")
    got = ns.c.call("Tasks", "Get", {"container_id": "c1"})["process"]
    assert got["status"] == "stopped" and got["exit_status"] == 7 and got["pid"] == pid
    logs = ns.logs("c1")
    # two pipes: the order between stdout and stderr is not defined, within each it is
    assert [e["log"] for e in logs if e["stream"] == "stdout"] == ["hello\n", "c1\n"]
    assert [e["log"] for e in logs if e["stream"] == "stderr"] == ["oops\n"]
    log_file = Path(shared_daemon.root) / "containers" / ns.name / "c1" / "c1-json.log"
    assert json.loads(log_file.read_text().splitlines()[0])["log"] == "hello\n"
    with pytest.raises(errdefs.AlreadyExists):
        ns.c.call("Tasks", "Create", {"container_id": "c1"})
    deleted = ns.c.call("Tasks", "Delete", {"container_id": "c1"})
    assert deleted["exit_status"] == 7 and deleted["pid"] == pid
    events.wait_for("/tasks/delete", "c1")
    with pytest.raises(errdefs.NotFound):
        ns.c.call("Tasks", "Get", {"container_id": "c1"})
    assert ns.logs("c1", tail=1) == logs[-1:]  # logs outlive the task …
    ns.c.call("Containers", "Delete", {"id": "c1", "cleanup_snapshot": True})
    deadline = time.monotonic() + 5
    while log_file.parent.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not log_file.parent.exists()  # … not the container


def test_kill_signals_and_exit_codes(ns):
    ns.run("k1", ["sleep", "100"])
    ns.c.call("Tasks", "Kill", {"container_id": "k1", "signal": "SIGKILL"})
    assert ns.wait("k1") == 137
    ns.run("k2", ["sh", "-c", "trap 'exit 3' TERM; while true; do sleep 0.05; done"])
    time.sleep(0.3)
    ns.c.call("Tasks", "Kill", {"container_id": "k2", "signal": 15})
    assert ns.wait("k2") == 3
    with pytest.raises(errdefs.NotFound):
        ns.c.call("Tasks", "Kill", {"container_id": "k2", "signal": 9})  # already finished
    with pytest.raises(errdefs.NotFound):
        ns.c.call("Tasks", "Kill", {"container_id": "nosuch", "signal": 9})
    with pytest.raises(errdefs.InvalidArgument):
        ns.run("k3", ["sleep", "100"])  # running …
        ns.c.call("Tasks", "Kill", {"container_id": "k3", "signal": "SIGBOGUS"})
    with pytest.raises(errdefs.FailedPrecondition):
        ns.c.call("Tasks", "Delete", {"container_id": "k3"})  # … cannot be deleted without force
    assert ns.c.call("Tasks", "Delete", {"container_id": "k3", "force": True})["exit_status"] == 137


def test_exec_user_env_and_exit_code(ns):
    ns.run("e1", ["sleep", "100"])
    ns.c.call("Tasks", "Exec", {"container_id": "e1", "exec_id": "x1", "env": ["FOO=bar"],
                                "spec": {"args": ["sh", "-c", "echo $FOO; id -u; pwd; exit 4"], "user": "nobody",
                                         "cwd": "/tmp"}})
    out, result = attach(ns.c, {"container_id": "e1", "exec_id": "x1"},
                         after_attached=lambda: ns.c.call("Tasks", "Start", {"container_id": "e1", "exec_id": "x1"}))
    assert out["stdout"] == b"bar\n65534\n/tmp\n" and result["exit_status"] == 4
    assert ns.wait("e1", "x1") == 4
    pids = ns.c.call("Tasks", "ListPids", {"container_id": "e1"})["processes"]
    assert len(pids) >= 1
    ns.c.call("Tasks", "DeleteProcess", {"container_id": "e1", "exec_id": "x1"})
    ns.c.call("Tasks", "Exec", {"container_id": "e1", "exec_id": "x2", "stdin": True,
                                "spec": {"args": ["sh", "-c", "read a; echo got $a"]}})
    out, result = attach(ns.c, {"container_id": "e1", "exec_id": "x2", "stdin": True, "close_stdin": True},
                         stdin=[b"typed\n"],
                         after_attached=lambda: ns.c.call("Tasks", "Start", {"container_id": "e1", "exec_id": "x2"}))
    assert out["stdout"] == b"got typed\n" and result["exit_status"] == 0
    with pytest.raises(errdefs.InvalidArgument):
        ns.c.call("Tasks", "Exec", {"container_id": "e1", "exec_id": "x3", "spec": {"args": ["id"], "user": "ghost"}})


def test_stdin_and_tty_sessions(ns):
    ns.container("i1", ["sh", "-c", "cat; echo eof"])
    ns.c.call("Tasks", "Create", {"container_id": "i1", "stdin": True})
    out, result = attach(ns.c, {"container_id": "i1", "stdin": True, "close_stdin": True}, stdin=[b"a\n", b"b\n"],
                         after_attached=lambda: ns.c.call("Tasks", "Start", {"container_id": "i1"}))
    assert out["stdout"] == b"a\nb\neof\n" and result["exit_status"] == 0
    ns.container("t1", ["sh"], tty=True, stdin=True)
    ns.c.call("Tasks", "Create", {"container_id": "t1", "terminal": True, "stdin": True})
    ns.c.call("Tasks", "ResizePty", {"container_id": "t1", "width": 120, "height": 30})
    call = ns.c.duplex("Tasks", "Attach", {"container_id": "t1", "stdin": True})
    it = iter(call)
    assert next(it) == {"attached": True}
    ns.c.call("Tasks", "Start", {"container_id": "t1"})
    call.send({"data": b64encode(b"stty size; tty; echo $TERM\r")})
    text = b""
    for frame in it:
        text += b64decode(frame.get("data", ""))
        if b"xterm\r\n" in text:
            break
    call.send({"resize": {"width": 90, "height": 20}})
    call.send({"data": b64encode(b"stty size; exit 9\r")})
    for frame in it:
        text += b64decode(frame.get("data", ""))
    assert call.result()["exit_status"] == 9
    out = text.decode(errors="replace")
    assert "30 120\r\n" in out and "/dev/pts/0\r\n" in out and "xterm\r\n" in out and "20 90\r\n" in out, out


def test_pause_resume_metrics(ns):
    ns.run("p1", ["sh", "-c", "while true; do echo tick; sleep 0.1; done"])
    ns.c.call("Tasks", "Pause", {"container_id": "p1"})
    assert ns.c.call("Tasks", "Get", {"container_id": "p1"})["process"]["status"] == "paused"
    before = len(ns.logs("p1"))
    time.sleep(0.5)
    assert len(ns.logs("p1")) <= before + 1
    ns.c.call("Tasks", "Resume", {"container_id": "p1"})
    assert ns.c.call("Tasks", "Get", {"container_id": "p1"})["process"]["status"] == "running"
    metrics = ns.c.call("Tasks", "Metrics", {"container_ids": ["p1"]})["metrics"]
    assert [m["id"] for m in metrics] == ["p1"] and isinstance(metrics[0]["data"], dict)
    assert [t["container_id"] for t in ns.c.call("Tasks", "List")["tasks"]] == ["p1"]
    # logs -f follows until the container exits
    got: list[str] = []
    done = threading.Event()

    def follow():
        for e in ns.c.stream("Tasks", "Logs", {"container_id": "p1", "follow": True, "tail": 0}):
            got.append(e["log"])
        done.set()

    threading.Thread(target=follow, daemon=True).start()
    time.sleep(0.6)
    ns.c.call("Tasks", "Kill", {"container_id": "p1", "signal": 9})
    assert done.wait(15), "logs -f did not end when the container exited"
    assert got and set(got) == {"tick\n"}


def test_log_rotation_options(ns):
    ns.run("r1", ["sh", "-c", "i=0; while [ $i -lt 400 ]; do echo line $i; i=$((i+1)); done"],
           task={"log": {"max_size": "4k", "max_file": 2}})
    assert ns.wait("r1") == 0
    d = Path(ns.daemon.root) / "containers" / ns.name / "r1"
    assert sorted(p.name for p in d.iterdir()) == ["r1-json.log", "r1-json.log.1"]
    logs = ns.logs("r1")
    assert logs[-1]["log"] == "line 399\n" and len(logs) < 400
    assert [e["log"] for e in ns.logs("r1", tail=2)] == ["line 398\n", "line 399\n"]


def test_twenty_containers_concurrently(ns):
    def one(i: int) -> tuple[int, int, str]:
        cid = f"many{i}"
        ns.run(cid, ["sh", "-c", f"echo {cid}; exit {i % 5}"])
        code = ns.wait(cid)
        out = "".join(e["log"] for e in ns.logs(cid))
        ns.remove(cid)
        return i, code, out

    t0 = time.monotonic()
    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(one, range(20)))
    elapsed = time.monotonic() - t0
    print(f"20 containers run concurrently in {elapsed:.1f}s")
    assert [(i, code, out) for i, code, out in results] == [(i, i % 5, f"many{i}\n") for i in range(20)]


def test_daemon_sigkill_containers_keep_running(tmp_path, archive):
    namespace = "t" + uuid.uuid4().hex[:10]
    with running_daemon(tmp_path) as d:
        try:
            n = NS(d, archive, namespace)
            pid = n.run("live", ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"])
            n.run("quits", ["sh", "-c", "sleep 1; exit 5"])
            time.sleep(0.5)
            d.kill()  # SIGKILL: no chance to clean anything
            log = Path(d.root) / "containers" / n.name / "live" / "live-json.log"
            size = log.stat().st_size
            time.sleep(1.5)  # "quits" exits while no daemon runs
            assert os.path.exists(f"/proc/{pid}"), "the container died with the daemon"
            assert log.stat().st_size > size, "logs stopped with the daemon"
            d.start()
            n.c = d.new_client(n.name)
            events = Events(d, n.name)
            got = n.c.call("Tasks", "Get", {"container_id": "live"})["process"]
            assert got["status"] == "running" and got["pid"] == pid
            assert n.wait("quits") == 5
            assert n.c.call("Tasks", "Get", {"container_id": "quits"})["process"]["status"] == "stopped"
            lines = [e["log"] for e in n.logs("live")]
            numbers = [int(line.split()[1]) for line in lines]
            assert numbers == list(range(len(numbers))) and len(numbers) >= 8  # none lost across the crash
            n.c.call("Tasks", "Kill", {"container_id": "live", "signal": "SIGKILL"})
            assert n.wait("live") == 137
            assert events.wait_for("/tasks/exit", "live")["event"]["exit_status"] == 137
            # and a graceful restart keeps them too
            n.run("again", ["sleep", "100"])
            d.restart()
            n.c = d.new_client(n.name)
            n.c.call("Tasks", "Kill", {"container_id": "again", "signal": 9})
            assert n.wait("again") == 137
            n.cleanup()
        finally:
            kill_leftovers([str(d.state)])
            time.sleep(0.1)
            remove_cgroups(namespace)


def test_shim_killed_and_errors(ns):
    with pytest.raises(errdefs.NotFound):
        ns.c.call("Tasks", "Create", {"container_id": "ghost"})
    with pytest.raises(errdefs.NotFound):
        ns.c.call("Tasks", "Wait", {"container_id": "ghost"})
    with pytest.raises(errdefs.InvalidArgument):
        ns.c.call("Tasks", "Start", {})
    ns.container("bad", ["/no/such/binary"])
    with pytest.raises(errdefs.Error, match="no/such/binary"):
        ns.c.call("Tasks", "Create", {"container_id": "bad"})
    assert not (Path(ns.daemon.state) / "tasks" / ns.name / "bad").exists()  # nothing left of it
    pid = ns.run("victim", ["sleep", "100"])
    bundle = Path(ns.daemon.state) / "tasks" / ns.name / "victim"
    os.kill(int((bundle / "shim.pid").read_text()), 9)
    assert ns.wait("victim") == 255  # its shim is gone: the exit cannot be known
    ns.c.call("Tasks", "Delete", {"container_id": "victim", "force": True})
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{pid}"), "the orphaned container survived its delete"
    assert not bundle.exists()


def test_init_runs_tini_as_pid_one(ns):
    require("tini-static")  # Debian's tini package: a static tini can be bound into any image
    ns.run("init1", ["sh", "-c", "cat /proc/1/comm; exit 3"], init=True)
    assert ns.wait("init1") == 3  # tini passes its child's exit code on
    assert [e["log"] for e in ns.logs("init1")] == ["docker-init\n"]
    ns.run("init2", ["sleep", "100"], init=True)
    time.sleep(0.3)
    ns.c.call("Tasks", "Kill", {"container_id": "init2", "signal": "SIGTERM"})
    assert ns.wait("init2") == 143  # forwarded to sleep, which (not pid 1) dies of it


def test_resources_readonly_user_and_caps_applied(ns):
    ns.run("lim", ["sleep", "100"], memory="64m", pids_limit=33, cpus=0.5)
    cg = Path("/sys/fs/cgroup")
    assert int((cg / "memory" / ns.name / "lim" / "memory.limit_in_bytes").read_text()) == 64 << 20
    assert (cg / "pids" / ns.name / "lim" / "pids.max").read_text().strip() == "33"
    assert int((cg / "cpu" / ns.name / "lim" / "cpu.cfs_quota_us").read_text()) == 50000
    ns.remove("lim")
    script = ("touch /x 2>/dev/null && echo rw || echo ro; "
              "chown 1 /tmp 2>/dev/null && echo chown || echo nochown; "
              "id -u; hostname; echo $HOSTNAME")
    ns.run("ro", ["sh", "-c", script], read_only=True, cap_drop=["CHOWN"], hostname="box")
    assert ns.wait("ro") == 0
    assert [e["log"] for e in ns.logs("ro")] == ["ro\n", "nochown\n", "0\n", "box\n", "box\n"]
    ns.run("usr", ["sh", "-c", "id -u; id -g"], user="nobody")  # a name: resolved in the image's /etc/passwd
    assert ns.wait("usr") == 0
    assert [e["log"] for e in ns.logs("usr")] == ["65534\n", "65534\n"]
    ns.run("rw", ["sh", "-c", script])
    assert ns.wait("rw") == 0
    assert [e["log"] for e in ns.logs("rw")] == ["rw\n", "chown\n", "0\n", "rw\n", "rw\n"]


def test_privileged_container(ns):
    ns.run("priv", ["sh", "-c", "grep CapEff /proc/self/status; mount | grep ' /sys '; ls /dev/null /dev/zero; "
                    "grep -q /proc/keys /proc/self/mountinfo && echo keys-masked || echo keys-unmasked"],
           privileged=True)
    assert ns.wait("priv") == 0
    out = "".join(e["log"] for e in ns.logs("priv"))
    mask = int(out.split("CapEff:")[1].split()[0], 16)
    assert mask == sum(1 << ocispec.ALL_CAPS.index(c) for c in ocispec.current_caps())
    assert "(rw," in out.split("/sys type sysfs")[1].splitlines()[0]  # writable sysfs
    assert "keys-unmasked" in out  # no masked paths (a masked one is /dev/null mounted over it)
    ns.run("unpriv", ["sh", "-c", "grep -q /proc/keys /proc/self/mountinfo && echo keys-masked"])
    assert ns.wait("unpriv") == 0
    assert [e["log"] for e in ns.logs("unpriv")] == ["keys-masked\n"]


def test_oom_kill_reported(shared_daemon, ns):
    events = Events(shared_daemon, ns.name)
    # dd's 64 MiB buffer cannot fit a 16 MiB limit: the kernel's OOM killer ends it
    ns.run("oom", ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"], memory="16m")
    result = ns.c.call("Tasks", "Wait", {"container_id": "oom"}, timeout=60)
    assert result["exit_status"] == 137 and result["oom_killed"] is True
    events.wait_for("/tasks/oom", "oom")
    assert ns.c.call("Tasks", "Get", {"container_id": "oom"})["process"]["oom_killed"] is True
    ns.run("fine", ["true"], memory="16m")
    assert ns.c.call("Tasks", "Wait", {"container_id": "fine"}, timeout=60) == {
        "exit_status": 0, "exited_at": ns.c.call("Tasks", "Get", {"container_id": "fine"})["process"]["exited_at"],
        "oom_killed": False}


def test_stop_as_docker(ns):
    ns.run("s1", ["sh", "-c", "trap 'echo bye; exit 0' TERM; while true; do sleep 0.05; done"])
    time.sleep(0.3)
    assert ns.c.call("Tasks", "Stop", {"container_id": "s1"})["exit_status"] == 0
    assert [e["log"] for e in ns.logs("s1")] == ["bye\n"]
    ns.run("s2", ["sleep", "100"])  # pid 1 ignores SIGTERM: SIGKILL after the timeout
    t0 = time.monotonic()
    assert ns.c.call("Tasks", "Stop", {"container_id": "s2", "timeout": 1})["exit_status"] == 137
    assert 0.9 < time.monotonic() - t0 < 8
    ns.container("s3", ["sh", "-c", "trap 'exit 7' USR1; while true; do sleep 0.05; done"])
    spec = ns.c.call("Containers", "Get", {"id": "s3"})["container"]["spec"]
    spec.setdefault("annotations", {})[ocispec.STOP_SIGNAL_ANNOTATION] = "SIGUSR1"  # the image's STOPSIGNAL
    ns.c.call("Containers", "Update", {"container": {"id": "s3", "spec": spec}, "update_mask": ["spec"]})
    ns.c.call("Tasks", "Create", {"container_id": "s3"})
    ns.c.call("Tasks", "Start", {"container_id": "s3"})
    time.sleep(0.3)
    assert ns.c.call("Tasks", "Stop", {"container_id": "s3"})["exit_status"] == 7


def test_same_tasks_with_debian_runc(tmp_path, archive):
    """The shim speaks only the runc CLI contract: Debian's runc runs the same tasks."""
    namespace = "t" + uuid.uuid4().hex[:10]
    with running_daemon(tmp_path, runtime=require("runc")) as d:
        try:
            n = NS(d, archive, namespace)
            n.run("r1", ["sh", "-c", "echo hi; exit 6"])
            assert n.wait("r1") == 6 and [e["log"] for e in n.logs("r1")] == ["hi\n"]
            n.run("r2", ["sleep", "100"])
            n.c.call("Tasks", "Exec", {"container_id": "r2", "exec_id": "x", "terminal": True,
                                       "spec": {"args": ["sh", "-c", "tty; exit 2"]}})
            out, result = attach(n.c, {"container_id": "r2", "exec_id": "x"},
                                 after_attached=lambda: n.c.call("Tasks", "Start", {"container_id": "r2",
                                                                                    "exec_id": "x"}))
            assert out["stdout"].startswith(b"/dev/pts/") and result["exit_status"] == 2
            n.c.call("Tasks", "Pause", {"container_id": "r2"})
            assert n.c.call("Tasks", "Get", {"container_id": "r2"})["process"]["status"] == "paused"
            n.c.call("Tasks", "Resume", {"container_id": "r2"})
            assert [p["pid"] for p in n.c.call("Tasks", "ListPids", {"container_id": "r2"})["processes"]]
            assert n.c.call("Tasks", "Stop", {"container_id": "r2", "timeout": 0.5})["exit_status"] == 137
            n.cleanup()
        finally:
            kill_leftovers([str(d.state)])
            time.sleep(0.1)
            remove_cgroups(namespace)
