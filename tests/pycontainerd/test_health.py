"""Health checks run by the daemon (pycontainerd.health) through pyctr: the image's HEALTHCHECK and the
--health-* flags over it, --no-healthcheck, starting → healthy / unhealthy with docker's rules (retries,
start period, timeout, the last 5 results), ps STATUS and --filter health, inspect State.Health, events,
monitoring resumed after a daemon restart, and no probe left running once a container is stopped or
removed. Intervals are 0.2-0.3 s to keep it quick; the expected strings are dockerd 20.10's."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from pycontainerd import healthcheck as health
from pycontainerd.logs import parse_time, rfc3339nano
from tests.pycontainerd.test_ctr_support import Ctr, busybox_archive, env, short_daemon

NS = 1_000_000_000
IMAGE_CHECK = {"Test": ["CMD-SHELL", "echo from-image"], "Interval": 200_000_000, "Retries": 2}


@pytest.fixture(scope="module")
def archives(tmp_path_factory) -> list[Path]:
    plain = busybox_archive(tmp_path_factory.mktemp("bb"))
    checked = busybox_archive(tmp_path_factory.mktemp("hc"), config={
        "Cmd": ["sh"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Healthcheck": IMAGE_CHECK}, name="checked:latest")
    missing = busybox_archive(tmp_path_factory.mktemp("ns"), config={
        "Cmd": ["sh"], "Healthcheck": {"Test": ["CMD", "nosuch", "x"], "Interval": 200_000_000, "Retries": 2}},
        name="nosuch:latest")
    return [plain, checked, missing]


@pytest.fixture
def pcd(tmp_path):
    with short_daemon(tmp_path) as d:
        yield d


@pytest.fixture
def ctr(pcd, archives):
    c = Ctr(pcd, "h" + uuid.uuid4().hex[:2])
    for a in archives:
        assert c("load", "-i", str(a)).status == 0
    try:
        yield c
    finally:
        c.remove_all()


def inspect(ctr: Ctr, name: str) -> dict:
    return ctr.inspect(name)


def state_health(ctr: Ctr, name: str) -> dict:
    return inspect(ctr, name)["State"].get("Health") or {}


def wait_for(pred, timeout: float = 20.0, what: str = ""):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def probes_running(marker: str) -> list[int]:
    """Host pids whose command line holds `marker` (a probe's shell, seen from the host)."""
    found = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmdline = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline and "pytest" not in cmdline:
            found.append(int(p.name))
    return found


# -- units -----------------------------------------------------------------------------------------------

def test_go_durations() -> None:
    assert health.parse_go_duration("300ms") == 300_000_000
    assert health.parse_go_duration("1m30s") == 90 * NS
    assert health.parse_go_duration("1.5s") == 1_500_000_000
    assert health.parse_go_duration("-1s") == -NS
    assert health.parse_go_duration("0") == 0
    with pytest.raises(ValueError, match='time: invalid duration "xyz"'):
        health.parse_go_duration("xyz")
    with pytest.raises(ValueError, match='time: missing unit in duration "5"'):
        health.parse_go_duration("5")
    assert [health.go_duration_string(n) for n in (200_000_000, NS, 1_500_000_000, 90 * NS, 30 * NS, 1500)] == \
        ["200ms", "1s", "1.5s", "1m30s", "30s", "1.5µs"]


def test_flags_and_merge() -> None:
    assert health.from_flags() is None
    assert health.from_flags(disable=True) == {"Test": ["NONE"]}
    assert health.from_flags("true", "2s", retries=4) == {"Test": ["CMD-SHELL", "true"], "Interval": 2 * NS,
                                                          "Retries": 4}
    assert health.from_flags(interval="1s") == {"Interval": NS}
    for kwargs, message in (({"cmd": "x", "disable": True}, "--no-healthcheck conflicts with --health-* options"),
                            ({"interval": "-1s"}, "--health-interval cannot be negative"),
                            ({"timeout": "-1s"}, "--health-timeout cannot be negative"),
                            ({"retries": -1}, "--health-retries cannot be negative"),
                            ({"start_period": "-1s"}, "--health-start-period cannot be negative")):
        with pytest.raises(ValueError, match=re.escape(message)):
            health.from_flags(**kwargs)
    # the flags' fields over the image's, docker's merge
    assert health.merge({"Test": ["CMD-SHELL", "exit 1"]}, IMAGE_CHECK) == {
        "Test": ["CMD-SHELL", "exit 1"], "Interval": 200_000_000, "Retries": 2}
    assert health.merge({"Interval": NS}, IMAGE_CHECK) == {**IMAGE_CHECK, "Interval": NS}
    assert health.merge(None, None) is None and health.merge({"Test": ["NONE"]}, IMAGE_CHECK)["Test"] == ["NONE"]
    with pytest.raises(ValueError, match="Interval in Healthcheck cannot be less than 1ms"):
        health.validate({"Interval": 500_000})
    assert health.HealthConfig.from_docker({"Test": ["NONE"]}) is None
    cfg = health.HealthConfig.from_docker({"Test": ["CMD", "cat", "/x"]})
    assert (cfg.args, cfg.interval, cfg.timeout, cfg.retries, cfg.start_period) == (["cat", "/x"], 30, 30, 3, 0)
    assert health.HealthConfig.from_docker({"Test": ["CMD-SHELL", "a && b"]}).args == ["/bin/sh", "-c", "a && b"]


def test_result_rules() -> None:
    cfg = health.HealthConfig(["CMD", "x"], 1, 1, 2, start_period=10)
    t0 = time.time()

    def result(code: int, at: float) -> dict:
        stamp = rfc3339nano(int((t0 + at) * 1e9))
        return {"Start": stamp, "End": stamp, "ExitCode": code, "Output": ""}

    h = health.apply_result({"Status": "starting"}, result(1, 1), cfg, t0)
    assert (h["Status"], h["FailingStreak"]) == ("starting", 0)  # inside the start period: not counted
    h = health.apply_result(h, result(1, 11), cfg, t0)
    assert (h["Status"], h["FailingStreak"]) == ("starting", 1)
    h = health.apply_result(h, result(1, 12), cfg, t0)
    assert (h["Status"], h["FailingStreak"]) == ("unhealthy", 2)
    h = health.apply_result(h, result(0, 13), cfg, t0)
    assert (h["Status"], h["FailingStreak"]) == ("healthy", 0)
    h = health.apply_result(h, result(1, 3), cfg, t0)  # healthy: a failure counts even in the start period
    assert (h["Status"], h["FailingStreak"]) == ("healthy", 1)
    for i in range(6):
        h = health.apply_result(h, result(0, 20 + i), cfg, t0)
    assert len(h["Log"]) == 5 and h["Log"][-1]["Start"] == result(0, 25)["Start"]


# -- through pyctr and the daemon --------------------------------------------------------------------------

def test_bad_flags_exit_125(ctr: Ctr) -> None:
    r = ctr("run", "--health-interval", "xyz", "busybox", "true")
    assert r.status == 125 and 'invalid argument "xyz" for "--health-interval" flag: time: invalid duration "xyz"' \
        in r.err, r
    r = ctr("run", "--health-retries", "x", "busybox", "true")
    assert r.status == 125 and 'invalid argument "x" for "--health-retries" flag' in r.err, r
    r = ctr("run", "--no-healthcheck", "--health-cmd", "true", "busybox", "true")
    assert r.status == 125 and "--no-healthcheck conflicts with --health-* options" in r.err, r
    r = ctr("create", "--health-interval=-1s", "busybox", "true")
    assert r.status == 125 and "--health-interval cannot be negative" in r.err, r
    r = ctr("run", "--health-timeout", "500us", "--health-cmd", "true", "busybox", "true")
    assert r.status == 125 and "Error response from daemon: Timeout in Healthcheck cannot be less than 1ms" \
        in r.err, r
    assert ctr.ok("ps", "-a", "-q") == ""  # nothing was created


def test_healthy_ps_inspect_filter_events(ctr: Ctr) -> None:
    events = subprocess.Popen(ctr.argv("events", "--filter", "container=good"), stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, env=env())
    try:
        time.sleep(1.0)  # subscribed before the container starts
        ctr.ok("run", "-d", "--name", "good", "--health-cmd", "echo hi", "--health-interval", "300ms", "busybox",
               "sleep", "1000")
        ctr.ok("run", "-d", "--name", "slow", "--health-cmd", "true", "--health-interval", "1h", "busybox",
               "sleep", "1000")
        ctr.ok("run", "-d", "--name", "plain", "busybox", "sleep", "1000")
        doc = inspect(ctr, "good")
        assert doc["Config"]["Healthcheck"] == {"Test": ["CMD-SHELL", "echo hi"], "Interval": 300_000_000}
        wait_for(lambda: state_health(ctr, "good").get("Status") == "healthy", 20, "healthy")
        h = state_health(ctr, "good")
        assert h["FailingStreak"] == 0 and h["Log"][-1]["ExitCode"] == 0 and h["Log"][-1]["Output"] == "hi\n"
        assert set(h["Log"][-1]) == {"Start", "End", "ExitCode", "Output"}
        assert ctr.ok("inspect", "--format", "{{.State.Health.Status}}", "good") == "healthy\n"
        assert state_health(ctr, "slow") == {"Status": "starting", "FailingStreak": 0, "Log": []}
        assert "Health" not in inspect(ctr, "plain")["State"]
        status = {line.split("\t")[0]: line.split("\t")[1]
                  for line in ctr.ok("ps", "--format", "{{.Names}}\t{{.Status}}").splitlines()}
        assert status["good"].startswith("Up ") and status["good"].endswith(" (healthy)"), status
        assert status["slow"].endswith(" (health: starting)") and "(" not in status["plain"], status
        assert ctr.ok("ps", "--filter", "health=healthy", "--format", "{{.Names}}").split() == ["good"]
        assert ctr.ok("ps", "--filter", "health=starting", "--format", "{{.Names}}").split() == ["slow"]
        assert ctr.ok("ps", "--filter", "health=none", "--format", "{{.Names}}").split() == ["plain"]
        r = ctr("ps", "--filter", "health=xyz")
        assert r.status == 1 and r.err.strip() == "Error response from daemon: Unrecognised filter value for " \
                                                  "health: xyz"
        seen = []
        while not any(" health_status: " in x for x in seen):
            seen.append(wait_for(events.stdout.readline, 10, "the health_status event"))
        assert " container health_status: healthy " in seen[-1] and "name=good" in seen[-1], seen
        # the probe's exec events as docker's, named by the command
        assert any(" container exec_create: /bin/sh -c echo hi " in x and "execID=" in x for x in seen), seen
        assert any(" container exec_start: /bin/sh -c echo hi " in x for x in seen), seen
    finally:
        events.kill()
        events.wait()


def test_unhealthy_after_retries_log_capped(ctr: Ctr) -> None:
    ctr.ok("run", "-d", "--name", "bad", "--health-cmd", "echo nope; exit 3", "--health-interval", "200ms",
           "--health-retries", "2", "busybox", "sleep", "1000")
    wait_for(lambda: state_health(ctr, "bad").get("Status") == "unhealthy", 20, "unhealthy")
    assert state_health(ctr, "bad")["FailingStreak"] >= 2
    wait_for(lambda: state_health(ctr, "bad")["FailingStreak"] >= 7, 30, "seven failures")
    h = state_health(ctr, "bad")
    assert len(h["Log"]) == 5 and all(e["ExitCode"] == 3 and e["Output"] == "nope\n" for e in h["Log"])
    assert ctr.ok("ps", "--format", "{{.Status}}", "--filter", "name=bad").strip().endswith("(unhealthy)")
    # a stopped container: docker shows unhealthy, and probes no more
    ctr.ok("stop", "-t", "0", "bad")
    time.sleep(0.5)  # a probe in flight may still land
    h = state_health(ctr, "bad")
    assert h["Status"] == "unhealthy" and h["FailingStreak"] >= 7
    time.sleep(0.8)
    assert state_health(ctr, "bad") == h


def test_start_period_and_timeout(ctr: Ctr) -> None:
    ctr.ok("run", "-d", "--name", "warm", "--health-cmd", "exit 1", "--health-interval", "200ms",
           "--health-retries", "1", "--health-start-period", "3s", "busybox", "sleep", "1000")
    ctr.ok("run", "-d", "--name", "stuck", "--health-cmd", "sleep 5", "--health-interval", "200ms",
           "--health-timeout", "200ms", "--health-retries", "1", "busybox", "sleep", "1000")
    wait_for(lambda: len(state_health(ctr, "warm").get("Log") or []) >= 2, 20, "two probes")
    started = inspect(ctr, "warm")["State"]["StartedAt"]
    h = state_health(ctr, "warm")
    early = [e for e in h["Log"] if parse_time(e["Start"]) - parse_time(started) < 2.5]
    assert early and h["Status"] == "starting" and h["FailingStreak"] == 0, h  # failures not counted yet
    wait_for(lambda: state_health(ctr, "warm").get("Status") == "unhealthy", 20, "unhealthy after the period")
    wait_for(lambda: state_health(ctr, "stuck").get("Status") == "unhealthy", 20, "unhealthy by timeout")
    entry = state_health(ctr, "stuck")["Log"][0]
    assert entry["ExitCode"] == -1 and entry["Output"] == "Health check exceeded timeout (200ms)"
    took = parse_time(entry["End"]) - parse_time(entry["Start"])
    assert 0.15 < took < 3, took


def test_image_healthcheck_flags_over_it_and_disabled(ctr: Ctr) -> None:
    image = json.loads(ctr.ok("image", "inspect", "checked"))[0]["Config"]
    assert image["Healthcheck"] == IMAGE_CHECK and list(image).index("Healthcheck") == list(image).index("Cmd") + 1
    ctr.ok("run", "-d", "--name", "img", "checked", "sleep", "1000")
    assert inspect(ctr, "img")["Config"]["Healthcheck"] == IMAGE_CHECK
    wait_for(lambda: state_health(ctr, "img").get("Status") == "healthy", 20, "healthy from the image's check")
    assert state_health(ctr, "img")["Log"][-1]["Output"] == "from-image\n"
    ctr.ok("run", "-d", "--name", "over", "--health-cmd", "exit 1", "checked", "sleep", "1000")
    assert inspect(ctr, "over")["Config"]["Healthcheck"] == {**IMAGE_CHECK, "Test": ["CMD-SHELL", "exit 1"]}
    wait_for(lambda: state_health(ctr, "over").get("Status") == "unhealthy", 20, "unhealthy (image's retries 2)")
    ctr.ok("run", "-d", "--name", "off", "--no-healthcheck", "checked", "sleep", "1000")
    assert inspect(ctr, "off")["Config"]["Healthcheck"] == {**IMAGE_CHECK, "Test": ["NONE"]}  # as dockerd merges
    time.sleep(0.6)
    assert "Health" not in inspect(ctr, "off")["State"]
    assert ctr.ok("ps", "--filter", "health=none", "--format", "{{.Names}}").split() == ["off"]


def test_output_capped(ctr: Ctr) -> None:
    ctr.ok("run", "-d", "--name", "loud", "--health-cmd", "yes abc | head -c 5000", "--health-interval", "200ms",
           "busybox", "sleep", "1000")
    wait_for(lambda: state_health(ctr, "loud").get("Status") == "healthy", 20, "healthy")
    out = state_health(ctr, "loud")["Log"][0]["Output"]
    assert len(out) == 4096 + 3 and out.endswith("...") and out.startswith("abc\nabc\n")


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_monitoring_resumes_after_daemon_restart(ctr: Ctr, pcd, how: str) -> None:
    ctr.ok("run", "-d", "--name", "keep", "--health-cmd", "exit 0", "--health-interval", "300ms", "busybox",
           "sleep", "1000")
    marker = f"sleep 8{uuid.uuid4().int % 1000}.5"
    ctr.ok("run", "-d", "--name", "hung", "--health-cmd", marker, "--health-interval", "200ms", "busybox",
           "sleep", "1000")
    wait_for(lambda: state_health(ctr, "keep").get("Status") == "healthy", 20, "healthy")
    wait_for(lambda: probes_running(marker), 20, "hung's probe running")
    probe = wait_for(lambda: inspect(ctr, "hung")["ExecIDs"], 10, "the probe's exec")[0]
    pcd.restart() if how == "stop" else (pcd.kill(), pcd.start())
    # the probe the old daemon had running was killed and forgotten by its shim (by the next daemon if killed)
    wait_for(lambda: probe not in (inspect(ctr, "hung")["ExecIDs"] or []), 10, "the old probe's exec gone")
    restarted = time.time()
    assert state_health(ctr, "keep")["Status"] == "healthy"  # kept in the record
    wait_for(lambda: any(parse_time(e["Start"]) > restarted for e in state_health(ctr, "keep")["Log"]),
             20, "a probe by the new daemon")


def test_no_probe_left_after_rm(ctr: Ctr, pcd) -> None:
    marker = f"sleep 7{uuid.uuid4().int % 1000}.5"
    ctr.ok("run", "-d", "--name", "busy", "--health-cmd", marker, "--health-interval", "200ms", "busybox",
           "sleep", "1000")
    wait_for(lambda: probes_running(marker), 20, "a probe running")
    ctr.ok("rm", "-f", "busy")
    wait_for(lambda: not probes_running(marker), 10, "the probe gone")
    time.sleep(0.6)
    assert probes_running(marker) == []
    assert list((Path(pcd.state) / "tasks" / ctr.namespace).glob("*")) == []
    assert "health monitor of" not in pcd.log_text()  # no failure logged by the monitor
    assert os.path.exists(pcd.address)


def test_paused_container_is_not_probed(ctr: Ctr, pcd) -> None:
    ctr.ok("run", "-d", "--name", "nap", "--health-cmd", "exit 0", "--health-interval", "200ms", "busybox",
           "sleep", "1000")
    wait_for(lambda: state_health(ctr, "nap").get("Status") == "healthy", 20, "healthy")
    ctr.ok("pause", "nap")
    time.sleep(0.5)  # a probe in flight when paused may still land
    log = state_health(ctr, "nap")["Log"]
    status = ctr.ok("ps", "--format", "{{.Status}}", "--filter", "name=nap").strip()
    assert status.endswith("(Paused)") and "healthy" not in status, status
    time.sleep(0.8)
    assert state_health(ctr, "nap")["Log"] == log
    pcd.restart()  # nor by the next daemon
    time.sleep(0.8)
    assert state_health(ctr, "nap")["Log"] == log
    ctr.ok("unpause", "nap")
    wait_for(lambda: state_health(ctr, "nap")["Log"][-1] != log[-1], 10, "probing again")
    assert state_health(ctr, "nap")["Status"] == "healthy"


def test_probe_that_cannot_start(ctr: Ctr) -> None:
    """CMD of a missing binary: each probe fails with -1 and dockerd's wording; nothing is left in the shim."""
    ctr.ok("run", "-d", "--name", "nobin", "nosuch", "sleep", "1000")
    wait_for(lambda: state_health(ctr, "nobin").get("Status") == "unhealthy", 20, "unhealthy")
    entry = state_health(ctr, "nobin")["Log"][0]
    assert entry["ExitCode"] == -1 and entry["Output"].startswith("OCI runtime exec failed: ") and \
        entry["Output"].endswith(": unknown") and "nosuch" in entry["Output"], entry
    ctr.ok("stop", "-t", "0", "nobin")
    assert inspect(ctr, "nobin")["ExecIDs"] is None
