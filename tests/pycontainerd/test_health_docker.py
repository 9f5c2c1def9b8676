"""Interop: the same health-check commands against Docker Engine 20.10 and pyctr. Config.Healthcheck as
merged over an image's HEALTHCHECK, State.Health's shape, the ps STATUS suffixes, --filter health, the
timeout message and the flags' errors must match."""

from __future__ import annotations

import json
import re
import time

from tests.pycontainerd.test_ctr_docker import dockerd  # noqa: F401  (the fixture)
from tests.pycontainerd.test_ctr_support import Ctr, busybox_archive, remove_cgroups, short_daemon

CHECK = {"Test": ["CMD-SHELL", "echo from-image"], "Interval": 200_000_000, "Retries": 2}


def _wait(pred, timeout: float = 30.0, what: str = ""):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _observe(out, status) -> dict:
    """Runs the scenario with one CLI (`out(*args)` → stdout, `status(*args)` → (exit, stderr))."""
    net = ("--network", "none")
    out("run", "-d", "--name", "good", *net, "--health-cmd", "echo hi", "--health-interval", "300ms", "busybox",
        "sleep", "100")
    out("run", "-d", "--name", "bad", *net, "--health-cmd", "exit 1", "--health-interval", "200ms",
        "--health-retries", "2", "busybox", "sleep", "100")
    out("run", "-d", "--name", "slow", *net, "--health-cmd", "sleep 5", "--health-interval", "200ms",
        "--health-timeout", "200ms", "--health-retries", "1", "busybox", "sleep", "100")
    out("run", "-d", "--name", "wait", *net, "--health-cmd", "true", "--health-interval", "1h", "busybox",
        "sleep", "100")
    out("create", "--name", "img", *net, "checked", "sleep", "100")
    out("create", "--name", "over", *net, "--health-cmd", "exit 1", "checked", "sleep", "100")
    out("create", "--name", "off", *net, "--no-healthcheck", "checked", "sleep", "100")

    def health(name: str) -> dict:
        return json.loads(out("inspect", name))[0]["State"].get("Health") or {}

    for name, want in (("good", "healthy"), ("bad", "unhealthy"), ("slow", "unhealthy")):
        _wait(lambda: health(name).get("Status") == want, 30, f"{name} {want}")
    good, slow = health("good"), health("slow")
    statuses = {line.split(" ", 1)[0]: re.sub(r"\d+ seconds?|Less than a second|About a minute", "T",
                                               line.split(" ", 1)[1])
                for line in out("ps", "--format", "{{.Names}} {{.Status}}").splitlines()}
    out("stop", "-t", "0", "bad")
    stopped = health("bad")
    return {
        "keys": list(good), "log_keys": list(good["Log"][-1]), "output": good["Log"][-1]["Output"],
        "timeout": (slow["Log"][0]["ExitCode"], slow["Log"][0]["Output"]),
        "statuses": statuses,
        "filters": {f: out("ps", "-a", "--filter", f"health={f}", "--format", "{{.Names}}").split()
                    for f in ("healthy", "unhealthy", "starting", "none")},
        "configs": {n: json.loads(out("inspect", n))[0]["Config"].get("Healthcheck")
                    for n in ("good", "img", "over", "off")},
        "stopped": (stopped["Status"], stopped["FailingStreak"] >= 2),  # the streak kept (its length: timing)
        "bad_filter": status("ps", "--filter", "health=xyz")[1].strip(),
        "errors": [status(*args)[1] for args in (
            ("run", "--no-healthcheck", "--health-cmd", "x", "busybox", "true"),
            ("run", "--health-interval=-1s", "busybox", "true"),
            ("run", "--health-retries=-1", "busybox", "true"),
            ("run", "--health-interval", "xyz", "busybox", "true"),
            ("run", "--health-timeout", "500us", "--health-cmd", "true", "busybox", "true"))],
    }


def test_health_matches_docker(dockerd, tmp_path):  # noqa: F811
    plain = busybox_archive(tmp_path / "bb")
    checked = busybox_archive(tmp_path / "hc", config={
        "Cmd": ["sh"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Healthcheck": CHECK}, name="checked:latest")
    seen = {}
    with short_daemon(tmp_path / "pcd") as pcd:
        ours = Ctr(pcd, "hd")
        try:
            for archive in (plain, checked):
                assert dockerd("load", "-i", str(archive)).returncode == 0
                assert ours("load", "-i", str(archive)).status == 0
            seen["docker"] = _observe(lambda *a: dockerd(*a, check=True).stdout,
                                      lambda *a: (lambda r: (r.returncode, r.stderr))(dockerd(*a)))
            seen["pyctr"] = _observe(lambda *a: ours.ok(*a), lambda *a: (lambda r: (r.status, r.err))(ours(*a)))
        finally:
            for cid in ours("ps", "-aq", "--no-trunc").out.split():
                ours("rm", "-f", cid)
            remove_cgroups("hd")
    d, p = seen["docker"], seen["pyctr"]
    for key in ("keys", "log_keys", "output", "timeout", "statuses", "filters", "configs", "stopped", "bad_filter"):
        assert p[key] == d[key], (key, p[key], d[key])
    assert d["timeout"] == (-1, "Health check exceeded timeout (200ms)")
    assert d["statuses"]["good"].endswith("(healthy)") and d["statuses"]["wait"].endswith("(health: starting)")
    # the messages (docker's CLI words its prefix and help line its own way; pyctr as for its other flags)
    for mine, theirs in zip(p["errors"], d["errors"]):
        core = theirs.removeprefix("docker: ").splitlines()[0].rstrip(".")
        assert core in mine, (mine, theirs)
