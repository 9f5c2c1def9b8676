"""Run last, on its own (`make test` does): the suite must leave no mounts, cgroups, processes or links behind."""

import os
import re
import subprocess
from pathlib import Path

# Names the tests give what they create; anything still carrying them after the suite is a leak.
MARKERS = re.compile(r"pytest|pyrunc|pyctr|pycontainerd|pyregistry|pybuild")


def test_no_mounts_left():
    left = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mountpoint = line.split()[4]
        if mountpoint.startswith("/tmp/") or MARKERS.search(mountpoint):
            left.append(mountpoint)
    assert not left, f"mounts left behind by the tests: {left}"


def test_no_cgroups_left():
    left = []
    for root, dirs, _ in os.walk("/sys/fs/cgroup"):
        depth = root.count("/") - "/sys/fs/cgroup".count("/")
        for d in dirs:
            if MARKERS.search(d):
                left.append(os.path.join(root, d))
        if depth >= 3:
            dirs[:] = []
    assert not left, f"cgroup directories left behind by the tests: {left}"


def test_no_new_cgroups_left():
    """Every cgroup directory the suite made is gone (a container runtime names them after namespaces and ids,
    which carry no marker): compared with the list `make test` took before the suite (CGROUPS_BEFORE)."""
    before_file = os.environ.get("CGROUPS_BEFORE")
    assert before_file, "run by `make test`, which lists the cgroups before the suite in CGROUPS_BEFORE"
    before = set(Path(before_file).read_text().split())
    now = {str(p) for p in Path("/sys/fs/cgroup").glob("*/*") if p.is_dir()}
    assert not sorted(now - before), f"cgroup directories left behind by the tests: {sorted(now - before)}"


def test_no_processes_left():
    me = os.getpid()
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == me:
            continue
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if re.search(r"\b(pyrunc|pycontainerd|pyregistry|pybuild|docker-registry|containerd-shim|runc init)\b", args) \
                or re.search(r"(^|/)containerd( |$)", args):
            left.append(f"{pid} {args.strip()}")
    assert not left, f"processes left behind by the tests: {left}"


def test_no_links_left():
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    left = [line.split(":")[1].strip() for line in out.splitlines() if MARKERS.search(line.split(":")[1])]
    assert not left, f"network links left behind by the tests: {left}"
