"""Backstop leak check for the pyrunc suite (each test's `env` fixture already checks its own containers):
nothing named after test containers may outlive its test by more than a minute — cgroups, host mounts,
processes rooted in a pytest bundle, state dirs under /run/pyrunc."""

from __future__ import annotations

import os
import time

from tests.pyrunc.conftest import ID_PREFIX

GRACE = 60.0  # other test files may be running right now (xdist); only stale leftovers count


def _stale(path: str) -> bool:
    try:
        return time.time() - os.stat(path).st_mtime > GRACE
    except OSError:
        return False


def test_no_stale_cgroups():
    left = []
    for root, dirs, _ in os.walk("/sys/fs/cgroup"):
        for d in dirs:
            if d.startswith(ID_PREFIX) or d.startswith("pyrunc-ctr-"):
                p = os.path.join(root, d)
                if _stale(p):
                    left.append(p)
        if root.count("/") > 6:
            dirs[:] = []
    assert not left, left


def test_no_host_mounts_of_test_bundles():
    with open("/proc/self/mountinfo") as f:
        left = [line.split()[4] for line in f if "/pytest-of-" in line.split()[4] and "/bundle" in line.split()[4]]
    assert not left, left


def test_no_stale_container_processes():
    ticks = os.sysconf("SC_CLK_TCK")
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            root = os.readlink(f"/proc/{pid}/root")
            with open(f"/proc/{pid}/stat") as f:
                start = int(f.read().rsplit(")", 1)[1].split()[19]) / ticks
        except OSError:
            continue
        if "/pytest-of-" in root and "/bundle" in root and uptime - start > GRACE:
            left.append(f"{pid} rooted at {root}")
    assert not left, left


def test_default_root_untouched():
    """The suite always passes --root; nothing of it may appear in the default /run/pyrunc."""
    try:
        names = os.listdir("/run/pyrunc")
    except FileNotFoundError:
        return
    assert not [n for n in names if n.startswith(ID_PREFIX)]
