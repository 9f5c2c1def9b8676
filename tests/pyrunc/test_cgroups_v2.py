"""pyrunc.cgroups v2: the manager on this host's cgroup2 hierarchy (/sys/fs/cgroup/unified: hugetlb only, plus
the core files: procs, freeze, events, device eBPF), and its file writes checked on a fake cgroup directory."""

from __future__ import annotations

import errno
import json
import mmap
import os
import signal
import struct
import time
import uuid

import pytest

from pyrunc.cgroups import devices, devices_bpf, fs
from pyrunc.cgroups.v2 import V2Manager
from pyrunc.errors import ConfigError, RuntimeFailure

UNIFIED = "/sys/fs/cgroup/unified"


class Child:
    """Forked; waits for a go byte, then tries the device opens it is given, reports, and counts until killed."""

    def __init__(self, opens: list[tuple[str, int]]) -> None:
        self.mem = mmap.mmap(-1, 8)
        self.go_r, self.go_w = os.pipe()
        self.out_r, out_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            try:
                os.read(self.go_r, 1)
                res = []
                for path, flags in opens:
                    try:
                        os.close(os.open(path, flags))
                        res.append(0)
                    except OSError as e:
                        res.append(e.errno)
                os.write(out_w, json.dumps(res).encode() + b"\n")
                n = 0
                while True:
                    n += 1
                    self.mem[:8] = struct.pack("Q", n)
                    time.sleep(0.002)
            finally:
                os._exit(0)
        os.close(out_w)

    def go(self) -> list[int]:
        os.write(self.go_w, b"x")
        line = b""
        while not line.endswith(b"\n"):
            chunk = os.read(self.out_r, 4096)
            assert chunk, "child died"
            line += chunk
        return json.loads(line)

    @property
    def count(self) -> int:
        return struct.unpack("Q", self.mem[:8])[0]

    def stop(self) -> None:
        if self.pid is None:
            return
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(self.pid, 0)
        self.pid = None
        for fd in (self.go_r, self.go_w, self.out_r):
            os.close(fd)


@pytest.fixture
def parent():
    """A private parent group in the cgroup2 hierarchy, removed with everything under it."""
    path = os.path.join(UNIFIED, f"pyrunc-test-{uuid.uuid4().hex[:12]}")
    os.mkdir(path)
    yield path
    for sub in sorted((os.path.join(d, n) for d, ns, _ in os.walk(path) for n in ns), key=len, reverse=True):
        if os.path.exists(os.path.join(sub, "cgroup.freeze")):
            fs.write(sub, "cgroup.freeze", "0")
        for pid in fs.procs(sub, recursive=False):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    fs.remove_paths({"": path})
    assert not os.path.exists(path)


KMSG = [("/dev/kmsg", os.O_RDONLY), ("/dev/kmsg", os.O_WRONLY), ("/dev/null", os.O_RDWR), ("/dev/zero", os.O_RDONLY)]


def test_apply_devices_freeze_stats_destroy(parent):
    rules = [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "r"}]
    m = V2Manager(os.path.join(parent, "c"), {"devices": rules,
                                              "hugepageLimits": [{"pageSize": "2MB", "limit": 4 * 2**20}]})
    child = Child(KMSG)
    try:
        m.apply(child.pid)
        assert fs.read(m.path, "hugetlb.2MB.max").strip() == str(4 * 2**20)
        assert "hugetlb" in fs.read(parent, "cgroup.subtree_control")
        # kmsg readable only; /dev/null and /dev/zero from runc's default allow list
        assert child.go() == [0, errno.EPERM, 0, 0]
        assert m.pids() == [child.pid]

        m.freeze()
        assert m.freezer_state() == "FROZEN"
        time.sleep(0.02)
        before = child.count
        time.sleep(0.1)
        assert child.count == before
        m.thaw()
        assert m.freezer_state() == "THAWED"
        deadline = time.monotonic() + 2
        while child.count == before and time.monotonic() < deadline:
            time.sleep(0.01)
        assert child.count > before

        s = m.stats()
        assert set(s) == {"cpu", "cpuset", "memory", "pids", "blkio", "hugetlb", "intel_rdt", "network_interfaces"}
        assert s["cpu"]["usage"]["total"] > 0 and {"kernel", "user"} <= set(s["cpu"]["usage"])
        assert s["pids"] == {"current": 1}  # no pids controller here: counted from cgroup.procs
        assert s["hugetlb"]["2MB"] == {"failcnt": 0}
        assert s["memory"] == {k: {"limit": 0, "failcnt": 0} for k in ("usage", "swap", "kernel", "kernelTCP")}

        # update the rules: the old program is replaced, not stacked
        dirfd = os.open(m.path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            assert len(devices_bpf.attached(dirfd)) == 1
            m.set({"devices": [{"allow": True, "access": "rwm"}]})
            assert len(devices_bpf.attached(dirfd)) == 1
        finally:
            os.close(dirfd)
    finally:
        child.stop()
    again = Child(KMSG)
    try:
        fs.write(m.path, "cgroup.procs", again.pid)
        assert again.go() == [0, 0, 0, 0]  # allow-all now
    finally:
        again.stop()
    m.destroy()
    assert not os.path.exists(m.path)


def test_unified_keys_and_refusals(parent):
    m = V2Manager(os.path.join(parent, "u"))
    m.create()
    m.set({"unified": {"hugetlb.2MB.max": "2097152"}})
    assert fs.read(m.path, "hugetlb.2MB.max").strip() == "2097152"
    with pytest.raises(ConfigError, match="controller 'memory' not available"):
        m.set({"unified": {"memory.max": "1000"}})
    with pytest.raises(ConfigError, match="must be a file name"):
        m.set({"unified": {"../x": "1"}})
    with pytest.raises(RuntimeFailure) as e:
        m.set({"hugepageLimits": [{"pageSize": "2MB", "limit": -5}]})
    assert str(e.value) == f"cgroup: write -5 to {m.path}/hugetlb.2MB.max: invalid argument"
    with pytest.raises(ConfigError, match="realtime"):
        m.set({"cpu": {"realtimeRuntime": 5}})
    m.destroy()


FAKE_FILES = ("pids.max", "memory.max", "memory.low", "memory.swap.max", "cpu.weight", "cpu.max", "io.weight",
              "io.max", "cpuset.cpus", "cpuset.mems", "cpu.idle", "cgroup.controllers")


@pytest.fixture
def fake(tmp_path, monkeypatch):
    for name in FAKE_FILES:
        (tmp_path / name).write_text("")
    # io.max takes one line per write: keep them all, like the kernel keeps one line per device.
    def write(directory, name, value):
        with open(os.path.join(directory, name), "a" if name == "io.max" else "w") as f:
            f.write(f"{value}\n" if name == "io.max" else str(value))

    monkeypatch.setattr(fs, "write", write)
    return tmp_path


def test_v2_writes_follow_runc_conversions(fake):
    m = V2Manager(str(fake))
    m.set({
        "pids": {"limit": 100},
        "memory": {"limit": 100 * 2**20, "swap": 300 * 2**20, "reservation": 50 * 2**20, "swappiness": 60},
        "cpu": {"shares": 1024, "quota": 50000, "period": 200000, "cpus": "0-1", "mems": "0"},
        "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                    "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}]},
    })
    got = {name: (fake / name).read_text() for name in FAKE_FILES}
    assert got["pids.max"] == "100"
    assert got["memory.max"] == str(100 * 2**20)
    assert got["memory.swap.max"] == str(200 * 2**20)  # v1's memory+swap minus memory
    assert got["memory.low"] == str(50 * 2**20)
    assert got["cpu.weight"] == "39"
    assert got["cpu.max"] == "50000 200000"
    assert got["cpuset.cpus"] == "0-1" and got["cpuset.mems"] == "0"
    assert got["io.weight"] == str(1 + 490 * 9999 // 990)
    assert got["io.max"] == "8:0 rbps=1048576\n8:0 wiops=100\n"
    m.set({"memory": {"limit": -1}, "pids": {"limit": -1}, "cpu": {"quota": -1}})
    assert (fake / "memory.max").read_text() == "max"
    assert (fake / "memory.swap.max").read_text() == "max"
    assert (fake / "pids.max").read_text() == "max"
    assert (fake / "cpu.max").read_text() == "max 100000"
    m.set({"memory": {"limit": 64, "swap": 64}})
    assert (fake / "memory.swap.max").read_text() == "0"
    with pytest.raises(ConfigError, match="memory\\+swap limit should be >= memory limit"):
        m.set({"memory": {"limit": 64, "swap": 32}})


def test_bpf_program_layout():
    rules = devices.from_spec([{"allow": False, "access": "rwm"}])
    prog = devices_bpf.program(rules)
    assert len(prog) % 8 == 0
    # 6 header instructions, 2 at the end; per rule: type check, optional access (3), major, minor, mov+exit.
    _, lines = devices.v1_target(rules)
    expected = 6 + 2
    for line in lines:
        kind, nums, access = line.split()
        major, minor = nums.split(":")
        expected += 1 + (3 if access != "rwm" else 0) + (major != "*") + (minor != "*") + 2
    assert len(prog) // 8 == expected
    assert prog[-8:] == bytes([0x95, 0, 0, 0, 0, 0, 0, 0])  # exit
    assert prog[-16] == 0xB4 and prog[-12:-8] == b"\0\0\0\0"  # default: deny


def test_new_manager_on_a_unified_host_and_load(monkeypatch):
    """Pretend the host is cgroup2-only (this one is hybrid): the public API then drives a V2Manager."""
    from pyrunc import cgroups

    v2_only = [m for m in fs.mounts() if m.version == 2]
    monkeypatch.setattr(fs, "mounts", lambda: v2_only)
    monkeypatch.setattr(fs, "mode", lambda mounts=None: "unified")
    own = fs.own_cgroups()[""]
    cid = f"pyrunc-test-{uuid.uuid4().hex[:12]}"
    m = cgroups.new_manager(None, cid, {"hugepageLimits": [{"pageSize": "2MB", "limit": 2 * 2**20}],
                                        "devices": [{"allow": False, "access": "rwm"}]})
    assert m.version == 2 and m.path == os.path.normpath(f"{UNIFIED}{own}/{cid}")
    assert m.paths == {"": m.path}
    child = Child([("/dev/null", os.O_RDWR), ("/dev/kmsg", os.O_RDONLY)])
    try:
        m.apply(child.pid)
        assert child.go() == [0, errno.EPERM]
        again = cgroups.load(json.loads(json.dumps(m.to_state())))
        assert again.path == m.path and again.pids() == [child.pid]
        again.freeze()
        assert m.freezer_state() == "FROZEN"
        again.thaw()
        assert fs.read(m.path, "hugetlb.2MB.max").strip() == str(2 * 2**20)
    finally:
        child.stop()
        m.destroy()
    assert not os.path.exists(m.path)
