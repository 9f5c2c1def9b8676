"""The daemon's lifecycle policies through pyctr: --restart (no, on-failure:N, always, unless-stopped),
a user's stop/kill winning over them, `always` after a daemon restart, and `run -d --rm`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from pycontainerd.policies import RestartPolicy, parse_restart
from tests.pycontainerd.test_ctr_support import Ctr, busybox_archive, short_daemon


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    return busybox_archive(tmp_path_factory.mktemp("bb"))


@pytest.fixture
def pcd(tmp_path):
    with short_daemon(tmp_path) as d:
        yield d


@pytest.fixture
def ctr(pcd, archive):
    c = Ctr(pcd, "p" + uuid.uuid4().hex[:2])
    assert c("load", "-i", str(archive)).status == 0
    try:
        yield c
    finally:
        c.remove_all()


def inspect(ctr: Ctr, name: str) -> dict:
    return ctr.inspect(name)


def wait_for(pred, timeout: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_parse_restart() -> None:
    assert parse_restart("on-failure:3") == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert parse_restart("always") == {"Name": "always", "MaximumRetryCount": 0}
    for bad in ("sometimes", "always:2", "on-failure:x", "on-failure:-1"):
        with pytest.raises(ValueError):
            parse_restart(bad)
    p = RestartPolicy("on-failure", 2)
    assert p.should_restart(1, False, 1) and not p.should_restart(1, False, 2) and not p.should_restart(0, False, 0)
    assert not RestartPolicy("always").should_restart(1, True, 0)
    assert not RestartPolicy("no").should_restart(1, False, 0)


def test_restart_always_then_user_stop(ctr: Ctr) -> None:
    ctr.ok("run", "-d", "--name", "flaky", "--restart", "always", "busybox", "sh", "-c", "sleep 1; exit 1")
    doc = inspect(ctr, "flaky")
    assert doc["HostConfig"]["RestartPolicy"] == {"Name": "always", "MaximumRetryCount": 0}
    wait_for(lambda: inspect(ctr, "flaky")["RestartCount"] >= 2, 20, "two restarts")
    wait_for(lambda: inspect(ctr, "flaky")["State"]["Running"], 10, "running again")
    # a user's stop wins: no restart afterwards
    assert ctr("stop", "-t", "1", "flaky").status == 0
    count = inspect(ctr, "flaky")["RestartCount"]
    time.sleep(2.5)
    doc = inspect(ctr, "flaky")
    assert doc["State"]["Status"] == "exited" and doc["RestartCount"] == count
    # start clears the mark: the policy applies again
    ctr.ok("start", "flaky")
    wait_for(lambda: inspect(ctr, "flaky")["RestartCount"] > count, 10, "a restart after start")
    # kill is a user's stop too
    wait_for(lambda: inspect(ctr, "flaky")["State"]["Running"], 10, "running")
    ctr.ok("kill", "flaky")
    count = inspect(ctr, "flaky")["RestartCount"]
    time.sleep(1.5)
    assert inspect(ctr, "flaky")["State"]["Status"] == "exited"
    assert inspect(ctr, "flaky")["RestartCount"] == count


def test_on_failure_max_retries_and_bad_policy(ctr: Ctr) -> None:
    ctr.ok("run", "-d", "--name", "fails", "--restart", "on-failure:2", "busybox", "sh", "-c", "exit 3")
    wait_for(lambda: inspect(ctr, "fails")["RestartCount"] == 2, 15, "two restarts")
    wait_for(lambda: inspect(ctr, "fails")["State"]["Status"] == "exited", 10, "exited")
    time.sleep(1.5)
    doc = inspect(ctr, "fails")
    assert doc["RestartCount"] == 2 and doc["State"]["ExitCode"] == 3 and doc["State"]["Status"] == "exited"
    # a clean exit is not a failure
    ctr.ok("run", "-d", "--name", "clean", "--restart", "on-failure", "busybox", "true")
    wait_for(lambda: inspect(ctr, "clean")["State"]["Status"] == "exited", 10, "exited")
    time.sleep(1)
    assert inspect(ctr, "clean")["RestartCount"] == 0
    r = ctr("run", "-d", "--restart", "sometimes", "busybox", "true")
    assert r.status == 125 and "invalid restart policy" in r.err
    r = ctr("run", "-d", "--rm", "--restart", "always", "busybox", "true")
    assert r.status == 125 and "Conflicting options" in r.err


def test_run_detached_rm_is_removed_by_the_daemon(ctr: Ctr, pcd) -> None:
    cid = ctr.ok("run", "-d", "--rm", "-v", "/scratch", "busybox", "sh", "-c", "sleep 0.5").strip()
    assert len(ctr.ok("volume", "ls", "-q").split()) == 1  # the anonymous /scratch
    client = pcd.new_client(namespace=ctr.namespace)

    def gone() -> bool:
        return cid not in [c["id"] for c in client.call("Containers", "List")["containers"]]

    wait_for(gone, 15, "the daemon to remove the container")
    assert client.call("Snapshots", "List", {}).get("snapshots", []) == [] or \
        cid not in json.dumps(client.call("Snapshots", "List", {}))
    assert not (Path(pcd.state) / "tasks" / ctr.namespace / cid).exists()
    assert ctr.ok("volume", "ls", "-q") == ""  # docker run --rm: its anonymous volumes go too


def test_always_comes_back_after_daemon_restart(ctr: Ctr, pcd) -> None:
    cid = ctr.ok("run", "-d", "--name", "svc", "--restart", "always", "busybox", "sleep", "1000").strip()
    ctr.ok("run", "-d", "--name", "once", "busybox", "sleep", "1000")
    stopped = ctr.ok("run", "-d", "--name", "held", "--restart", "unless-stopped", "busybox", "sleep", "1000").strip()
    ctr.ok("stop", "-t", "0", "held")
    ctr.ok("run", "-d", "--name", "alw", "--restart", "always", "busybox", "sleep", "1000")
    ctr.ok("stop", "-t", "0", "alw")
    old_pid = inspect(ctr, "svc")["State"]["Pid"]
    # the daemon goes down and the containers die with their shims (a host reboot, say)
    pcd.kill()
    for bundle in (Path(pcd.state) / "tasks" / ctr.namespace).iterdir():
        try:
            os.kill(int((bundle / "shim.pid").read_text()), signal.SIGKILL)
        except (OSError, ValueError):
            pass
    runtime_root = Path(pcd.state) / "runtime" / ctr.namespace
    subprocess.run([pcd.runtime, "--root", str(runtime_root), "kill", cid, "KILL"], capture_output=True)
    wait_for(lambda: not os.path.exists(f"/proc/{old_pid}"), 10, "the old process to die")
    pcd.start()
    wait_for(lambda: inspect(ctr, "svc")["State"]["Running"], 20, "svc running again")
    assert inspect(ctr, "svc")["State"]["Pid"] != old_pid
    assert inspect(ctr, "held")["State"]["Status"] == "exited"  # unless-stopped, stopped by the user
    # always: a user's stop holds only until the daemon starts again (docker's rule)
    wait_for(lambda: inspect(ctr, "alw")["State"]["Running"], 20, "alw running again")
    assert inspect(ctr, "once")["State"]["Status"] == "exited"  # no policy: stays down
    assert stopped
