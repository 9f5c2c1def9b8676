"""pyrunc.cgroups on this (hybrid) host: a forked child in a real v1 cgroup set, limits read back, freezer, stats."""

from __future__ import annotations

import mmap
import os
import signal
import struct
import time
import uuid

import pytest

from pyrunc import cgroups
from pyrunc.cgroups import convert, devices, fs
from pyrunc.errors import ConfigError, RuntimeFailure

MiB = 1024 * 1024
# The device list runc 1.1.5 leaves in devices.list for the default `runc spec` config (checked by hand).
RUNC_DEVICES_LIST = """b *:* m
c *:* m
c 1:3 rwm
c 1:5 rwm
c 1:7 rwm
c 1:8 rwm
c 1:9 rwm
c 5:0 rwm
c 5:2 rwm
c 10:200 rwm
c 136:* rwm
"""


class Child:
    """A forked process that bumps a shared counter every 2ms until killed."""

    def __init__(self) -> None:
        self.mem = mmap.mmap(-1, 8)
        self.pid = os.fork()
        if self.pid == 0:
            try:
                n = 0
                while True:
                    n += 1
                    self.mem[:8] = struct.pack("Q", n)
                    time.sleep(0.002)
            finally:
                os._exit(0)

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


@pytest.fixture
def child():
    c = Child()
    yield c
    c.stop()


@pytest.fixture
def cg_id():
    return f"pyrunc-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def manager_factory():
    made = []

    def make(*args, **kwargs):
        m = cgroups.new_manager(*args, **kwargs)
        made.append(m)
        return m

    yield make
    for m in made:
        if m.paths.get("freezer") and os.path.isdir(m.paths["freezer"]):
            fs.write(m.paths["freezer"], "freezer.state", "THAWED")
    for m in made:
        for pid in m.pids():  # a killed but frozen child is only reaped once thawed
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for m in made:  # a starved (low cpu.shares) process may take a while to get the CPU time to die
        deadline = time.monotonic() + 5
        while m.pids() and time.monotonic() < deadline:
            time.sleep(0.02)
    for m in made:
        m.destroy()
        assert not any(os.path.exists(p) for p in m.paths.values())


def read(m, ctrl: str, name: str) -> str:
    with open(os.path.join(m.paths[ctrl], name)) as f:
        return f.read().strip()


def test_host_is_hybrid_and_paths_follow_runc(cg_id):
    assert fs.mode() == "hybrid"
    own = fs.own_cgroups()
    m = cgroups.new_manager(None, cg_id, None)
    assert m.version == 1
    # No cgroupsPath: /<id> under the cgroup we are in, in every hierarchy (runc 1.1 does the same).
    assert m.paths["memory"] == os.path.normpath(f"/sys/fs/cgroup/memory{own['memory']}/{cg_id}")
    assert m.paths["pids"] == f"/sys/fs/cgroup/pids{own['pids'].rstrip('/')}/{cg_id}"
    assert m.paths[""] == f"/sys/fs/cgroup/unified{own[''].rstrip('/')}/{cg_id}"
    assert m.paths["name=systemd"].startswith("/sys/fs/cgroup/systemd/")
    # Absolute: from each hierarchy's root, whatever cgroup we are in.
    m = cgroups.new_manager(f"/{cg_id}/inner", "ignored", None)
    assert m.paths["memory"] == f"/sys/fs/cgroup/memory/{cg_id}/inner"
    # Relative: cannot climb out of our cgroup.
    assert cgroups.inner_path("../../x/./y", "id") == "x/y"
    assert cgroups.inner_path("", "id") == "id"
    # Without the systemd driver runc takes "slice:prefix:name" as a plain relative name; the driver is refused.
    assert cgroups.new_manager("system.slice:docker:abc", "abc", None).paths["pids"].endswith(
        "/system.slice:docker:abc")
    with pytest.raises(ConfigError, match="systemd cgroup driver is not supported yet"):
        cgroups.new_manager("system.slice:docker:abc", "abc", None, systemd=True)


def test_apply_set_read_back_update_and_destroy(child, cg_id, manager_factory):
    resources = {
        "memory": {"limit": 64 * MiB, "reservation": 32 * MiB, "swap": 128 * MiB, "swappiness": 10},
        "cpu": {"shares": 512, "quota": 20000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 20},
        "devices": [{"allow": False, "access": "rwm"}],
    }
    m = manager_factory(None, cg_id, resources)
    m.apply(child.pid)
    assert read(m, "memory", "memory.limit_in_bytes") == str(64 * MiB)
    assert read(m, "memory", "memory.soft_limit_in_bytes") == str(32 * MiB)
    assert read(m, "memory", "memory.memsw.limit_in_bytes") == str(128 * MiB)
    assert read(m, "memory", "memory.swappiness") == "10"
    assert read(m, "cpu", "cpu.shares") == "512"
    assert read(m, "cpu", "cpu.cfs_quota_us") == "20000"
    assert read(m, "cpu", "cpu.cfs_period_us") == "100000"
    assert read(m, "cpuset", "cpuset.cpus") == "0"
    assert read(m, "pids", "pids.max") == "20"
    assert read(m, "devices", "devices.list") + "\n" == RUNC_DEVICES_LIST
    for ctrl in ("memory", "pids", "freezer", "devices", "cpu", "name=systemd", ""):
        assert str(child.pid) in read(m, ctrl, "cgroup.procs").split(), ctrl
    assert m.pids() == [child.pid]

    # update: lowering memory below the current memsw, and raising both above it, both need the right order.
    m.set({"memory": {"limit": 16 * MiB, "swap": 16 * MiB}, "pids": {"limit": -1}, "cpu": {"shares": 1024}})
    assert read(m, "memory", "memory.limit_in_bytes") == str(16 * MiB)
    assert read(m, "memory", "memory.memsw.limit_in_bytes") == str(16 * MiB)
    assert read(m, "pids", "pids.max") == "max"
    assert read(m, "cpu", "cpu.shares") == "1024"
    m.set({"memory": {"limit": 256 * MiB, "swap": 512 * MiB}})
    assert read(m, "memory", "memory.limit_in_bytes") == str(256 * MiB)
    assert read(m, "memory", "memory.memsw.limit_in_bytes") == str(512 * MiB)
    m.set({"memory": {"limit": -1}})  # unlimited memory also lifts memsw
    assert int(read(m, "memory", "memory.memsw.limit_in_bytes")) > 2**62

    # reopen from the saved state
    again = cgroups.load(m.to_state())
    assert again.paths == m.paths and again.pids() == [child.pid]

    # a sub-cgroup made inside the container's cgroup does not stop destroy
    os.mkdir(os.path.join(m.paths["pids"], "nested"))
    child.stop()
    m.destroy()
    assert not any(os.path.exists(p) for p in m.paths.values())


def test_refused_write_names_file_and_value(child, cg_id, manager_factory):
    m = manager_factory(None, cg_id, {"memory": {"limit": 64 * MiB, "swap": 64 * MiB}})
    m.apply(child.pid)
    with pytest.raises(RuntimeFailure) as e:
        m.set({"memory": {"swap": 32 * MiB}})  # memsw below memory: the kernel says no
    path = os.path.join(m.paths["memory"], "memory.memsw.limit_in_bytes")
    assert str(e.value) == f"cgroup: write {32 * MiB} to {path}: invalid argument"
    with pytest.raises(ConfigError, match="invalid memory swappiness value: 101"):
        m.set({"memory": {"swappiness": 101}})
    with pytest.raises(ConfigError, match="cannot use unified on cgroup v1"):
        m.set({"unified": {"memory.max": "1"}})
    with pytest.raises(RuntimeFailure, match="cannot set hugetlb limit: container could not join or create"):
        m.set({"hugepageLimits": [{"pageSize": "2MB", "limit": 2 * MiB}]})


def test_freeze_really_stops_the_child(child, cg_id, manager_factory):
    m = manager_factory(None, cg_id, None)
    m.apply(child.pid)
    assert m.freezer_state() == "THAWED"
    m.freeze()
    assert m.freezer_state() == "FROZEN"
    time.sleep(0.02)
    before = child.count
    time.sleep(0.1)
    assert child.count == before
    assert open(f"/proc/{child.pid}/stat").read().rsplit(")", 1)[1].split()[0] == "D"
    m.thaw()
    assert m.freezer_state() == "THAWED"
    deadline = time.monotonic() + 2
    while child.count == before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert child.count > before


def test_stats_have_runcs_shape(child, cg_id, manager_factory):
    m = manager_factory(None, cg_id, {"memory": {"limit": 64 * MiB}, "pids": {"limit": 50}})
    m.apply(child.pid)
    time.sleep(0.05)
    s = m.stats()
    assert set(s) == {"cpu", "cpuset", "memory", "pids", "blkio", "hugetlb", "intel_rdt", "network_interfaces"}
    assert s["cpu"]["usage"]["total"] > 0 and len(s["cpu"]["usage"]["percpu"]) == os.cpu_count()
    assert {"kernel", "user"} <= set(s["cpu"]["usage"])
    assert s["memory"]["usage"]["limit"] == 64 * MiB and "failcnt" in s["memory"]["usage"]
    assert set(s["memory"]) >= {"usage", "swap", "kernel", "kernelTCP", "raw"}
    assert "total_rss" in s["memory"]["raw"]
    assert s["pids"] == {"current": 1, "limit": 50}
    assert s["hugetlb"] == {} and isinstance(s["blkio"], dict)
    assert s["cpuset"]["cpus"] == list(range(os.cpu_count()))


def test_device_rules_model_and_linux_devices():
    rules = devices.from_spec([{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 4,
                                                                  "access": "rw"}],
                              [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229},
                               {"path": "/dev/null", "type": "c", "major": 1, "minor": 3}])
    allow, lines = devices.v1_target(rules)
    assert not allow
    assert "c 4:* rw" in lines and "c 10:229 rwm" not in lines  # linux.devices: a node, not a rule (runc)
    assert "c 1:3 rwm" not in lines  # the default /dev/null rule gives way to the config's /dev/null
    assert devices.v1_writes(rules)[0] == ("devices.deny", "a")
    # allow-all then a deny: blacklist mode
    allow, lines = devices.v1_target([devices.Rule("a", -1, -1, "rwm", True), devices.Rule("c", 1, 3, "w", False)])
    assert allow and lines == ["c 1:3 w"]
    with pytest.raises(ConfigError, match=r"device access at 0 field cannot be empty"):
        devices.from_spec([{"allow": True}])


@pytest.mark.parametrize("shares,weight", [(0, 0), (2, 1), (1024, 39), (262144, 10000), (512, 20)])
def test_cpu_shares_to_weight(shares, weight):
    assert convert.cpu_shares_to_weight(shares) == weight


def test_other_conversions():
    assert convert.blkio_weight_to_io_weight(10) == 1
    assert convert.blkio_weight_to_io_weight(1000) == 10000
    assert convert.blkio_weight_to_io_weight(500) == 1 + 490 * 9999 // 990
    assert convert.blkio_weight_to_io_weight(0) == 0
    # v1 memory.memsw = memory + swap; v2 memory.swap.max = swap alone
    assert convert.memory_swap_to_v2(300, 100) == 200
    assert convert.memory_swap_to_v2(100, 100) == 0
    assert convert.memory_swap_to_v2(0, -1) == -1
    assert convert.memory_swap_to_v2(-1, 100) == -1
    assert convert.memory_swap_to_v2(0, 100) == 0
    with pytest.raises(ConfigError, match="should be >= memory limit"):
        convert.memory_swap_to_v2(50, 100)
    with pytest.raises(ConfigError, match="without memory limit"):
        convert.memory_swap_to_v2(50, 0)
    assert convert.cpu_max(50000, 100000) == "50000 100000"
    assert convert.cpu_max(-1, 100000) == "max 100000"
    assert convert.cpu_max(20000, None) == "20000 100000"
    assert convert.cpu_max(None, None) == ""
    assert convert.num_to_str(-1) == "max" and convert.num_to_str(0) == ""
    assert convert.parse_cpu_list("0-2,5\n") == [0, 1, 2, 5]


def test_kernel_memory_and_cpu_idle_are_ignored_like_runc_1_1_5(child, cg_id, manager_factory):
    resources = {"memory": {"limit": 64 * MiB, "kernel": 32 * MiB, "kernelTCP": 16 * MiB, "disableOOMKiller": True},
                 "cpu": {"shares": 100, "idle": 1}}
    assert cgroups.warnings(resources) == ["Kernel memory settings are ignored and will be removed"]
    assert cgroups.warnings({"memory": {"limit": 1}}) == []
    m = manager_factory(None, cg_id, resources)
    m.apply(child.pid)
    assert int(read(m, "memory", "memory.kmem.limit_in_bytes")) > 2**62
    assert int(read(m, "memory", "memory.kmem.tcp.limit_in_bytes")) > 2**62
    assert "oom_kill_disable 1" in read(m, "memory", "memory.oom_control")
    assert read(m, "cpu", "cpu.shares") == "100"
    assert read(m, "cpu", "cpu.idle") == "0"


def test_update_keeps_only_what_runc_update_applies():
    request = {"memory": {"limit": 10, "swappiness": 5, "disableOOMKiller": True}, "devices": [{"allow": True}],
               "cpu": {"shares": 3, "idle": 1}, "pids": {"limit": 9}, "hugepageLimits": [{"pageSize": "2MB"}],
               "blockIO": {"weight": 20, "leafWeight": 30}, "network": {"classID": 1}}
    assert cgroups.update_resources(request) == {"memory": {"limit": 10}, "cpu": {"shares": 3},
                                                 "pids": {"limit": 9}, "blockIO": {"weight": 20}}


def test_destroy_waits_out_exiting_processes_and_names_stuck_ones(cg_id, manager_factory):
    pid = os.fork()
    if pid == 0:
        time.sleep(0.3)
        os._exit(0)
    try:
        m = manager_factory(None, cg_id, None)
        m.apply(pid)
        with pytest.raises(RuntimeFailure, match=r"cgroup: failed to remove paths .*: device or resource busy"):
            fs.remove_paths(m.paths, busy_wait=0.05)  # still there: refused, named
        started = time.monotonic()
        m.destroy()  # the child leaves within the busy wait
        assert time.monotonic() - started < 1.5
        assert not any(os.path.exists(p) for p in m.paths.values())
    finally:
        os.waitpid(pid, 0)
