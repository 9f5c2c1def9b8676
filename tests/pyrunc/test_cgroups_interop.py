"""pyrunc.cgroups against runc 1.1: the same resources give the same cgroup files, the same placement of the
process in every hierarchy, and stats of the same shape as `runc events --stats`."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest

from pyrunc import cgroups
from tests.support import require

MiB = 1024 * 1024


def a_disk() -> tuple[int, int]:
    """major, minor of a real block device (throttling needs one that exists)."""
    for name in sorted(os.listdir("/sys/block")):
        if not name.startswith(("loop", "ram", "zram")):
            major, minor = open(f"/sys/block/{name}/dev").read().split(":")
            return int(major), int(minor)
    pytest.fail("no block device to throttle on this host")


DISK = a_disk()
RESOURCES = {
    "memory": {"limit": 64 * MiB, "reservation": 32 * MiB, "swap": 128 * MiB, "swappiness": 20},
    "cpu": {"shares": 512, "quota": 20000, "period": 100000, "cpus": "0", "mems": "0"},
    "pids": {"limit": 30},
    "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": DISK[0], "minor": DISK[1], "rate": MiB}],
                "throttleWriteIOPSDevice": [{"major": DISK[0], "minor": DISK[1], "rate": 100}]},
    "devices": [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "minor": 11,
                                                    "access": "r"}],
}
# /dev/kmsg gets a node but no rule of its own; /dev/full takes the place of runc's default /dev/full rule.
LINUX_DEVICES = [{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o644, "uid": 0, "gid": 0},
                 {"path": "/dev/full", "type": "c", "major": 1, "minor": 7, "fileMode": 0o666, "uid": 0, "gid": 0}]
FILES = [("memory", "memory.limit_in_bytes"), ("memory", "memory.soft_limit_in_bytes"),
         ("memory", "memory.memsw.limit_in_bytes"), ("memory", "memory.swappiness"), ("cpu", "cpu.shares"),
         ("cpu", "cpu.cfs_quota_us"), ("cpu", "cpu.cfs_period_us"), ("cpuset", "cpuset.cpus"),
         ("cpuset", "cpuset.mems"), ("pids", "pids.max"), ("devices", "devices.list"),
         ("blkio", "blkio.throttle.read_bps_device"), ("blkio", "blkio.throttle.write_iops_device")]
# the weight file is blkio.weight (CFQ) or blkio.bfq.weight (BFQ), whichever the kernel has
WEIGHT_FILES = [("blkio", "blkio.weight"), ("blkio", "blkio.bfq.weight")]


def keys(doc, depth=2):
    if not isinstance(doc, dict) or depth == 0:
        return type(doc).__name__
    return {k: keys(v, depth - 1) for k, v in doc.items()}


@pytest.fixture
def runc_container(tmp_path, busybox_rootfs):
    runc = require("runc")
    root = tmp_path / "runc-root"
    bundle = tmp_path
    subprocess.run([runc, "spec"], cwd=bundle, check=True)
    config = json.loads((bundle / "config.json").read_text())
    cid = f"pyrunc-interop-{uuid.uuid4().hex[:10]}"
    config["process"]["terminal"] = False
    config["process"]["args"] = ["sleep", "60"]
    config["linux"]["resources"] = RESOURCES
    config["linux"]["devices"] = LINUX_DEVICES
    config["linux"]["cgroupsPath"] = f"/{cid}-runc"
    (bundle / "config.json").write_text(json.dumps(config))
    with open(tmp_path / "runc.log", "w") as log:  # not a pipe: the detached container would hold it open
        subprocess.run([runc, "--root", str(root), "run", "-d", cid], cwd=bundle, check=True,
                       stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        state = json.loads(subprocess.run([runc, "--root", str(root), "state", cid], check=True,
                                          capture_output=True).stdout)
        yield runc, root, cid, state["pid"]
    finally:
        subprocess.run([runc, "--root", str(root), "delete", "-f", cid], capture_output=True)
        for ctrl in os.listdir("/sys/fs/cgroup"):
            path = f"/sys/fs/cgroup/{ctrl}/{cid}-runc"
            if os.path.isdir(path):
                os.rmdir(path)


def test_same_files_placement_and_stats_shape_as_runc(runc_container):
    runc, root, cid, runc_pid = runc_container
    theirs = cgroups.new_manager(f"/{cid}-runc", cid, None)
    ours = cgroups.new_manager(f"/{cid}-ours", cid, RESOURCES, LINUX_DEVICES)
    pid = os.fork()
    if pid == 0:
        try:
            os.execv("/bin/busybox", ["sleep", "60"])
        finally:
            os._exit(127)
    try:
        ours.apply(pid)
        files = FILES + [f for f in WEIGHT_FILES if os.path.exists(os.path.join(theirs.paths["blkio"], f[1]))][:1]
        assert len(files) == len(FILES) + 1
        for ctrl, name in files:
            with open(os.path.join(theirs.paths[ctrl], name)) as a, open(os.path.join(ours.paths[ctrl], name)) as b:
                assert b.read() == a.read(), name

        def placement(p, suffix):
            lines = open(f"/proc/{p}/cgroup").read().splitlines()
            return [line.rsplit(":", 1)[0] + ":" + line.rsplit(":", 1)[1].replace(suffix, "X") for line in lines]

        assert placement(pid, f"{cid}-ours") == placement(runc_pid, f"{cid}-runc")

        out = subprocess.run([runc, "--root", str(root), "events", "--stats", cid], check=True,
                             capture_output=True, text=True).stdout
        event = json.loads(out)
        assert event["type"] == "stats" and event["id"] == cid
        mine = theirs.stats()  # read from runc's own cgroup, at (nearly) the same moment
        assert keys(mine) == keys(event["data"])
        assert set(mine["memory"]["raw"]) == set(event["data"]["memory"]["raw"])
        assert mine["pids"] == event["data"]["pids"]
        assert mine["memory"]["usage"]["limit"] == event["data"]["memory"]["usage"]["limit"]
        assert mine["cpuset"] == event["data"]["cpuset"]
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        ours.destroy()
    assert not any(os.path.exists(p) for p in ours.paths.values())
