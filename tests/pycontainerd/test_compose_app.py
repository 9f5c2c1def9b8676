"""`pyctr compose` end to end on a real pycontainerd (runc, the fixture's private bridge and 10.X/16): a
two-service app (web: busybox httpd with a healthcheck; client: waits for web healthy, fetches from it by
service name) comes up, shows in ps, logs the client's fetch, and `down` leaves nothing behind."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.pycontainerd.daemon_fixture import REPO, running_daemon
from tests.pycontainerd.test_ctr_support import Ctr, busybox_archive, env
from tests.support import require

COMPOSE = """
services:
  web:
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo $${GREETING} > /www/index.html && exec httpd -f -p 80 -h /www"]
    environment:
      GREETING: ${GREETING:-hello-from-web}
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:80/"]
      interval: 200ms
      timeout: 2s
      retries: 50
  client:
    image: busybox
    command: ["sh", "-c", "wget -qO- http://web:80/ && echo client-done"]
    depends_on:
      web:
        condition: service_healthy
"""


@pytest.fixture
def app(tmp_path: Path):
    runc = require("runc")
    with running_daemon(tmp_path, runtime=runc) as d:
        ctr = Ctr(d, "cmp" + secrets.token_hex(2))
        r = ctr("load", "-i", str(busybox_archive(tmp_path / "bb")))
        assert r.status == 0, r
        appdir = tmp_path / "app"
        appdir.mkdir()
        (appdir / "compose.yaml").write_text(textwrap.dedent(COMPOSE))
        (appdir / ".env").write_text("GREETING=hello-from-dotenv\n")
        yield d, ctr, appdir


def compose(d, ctr: Ctr, appdir: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "pycontainerd.compose", "-H", f"unix://{d.address}", "--namespace",
            ctr.namespace, *args]
    return subprocess.run(argv, cwd=appdir, capture_output=True, text=True, timeout=timeout, env=env())


def links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    return {line.split(": ")[1].split("@")[0] for line in out.splitlines()}


def test_two_service_app_up_ps_logs_down(app):
    d, ctr, appdir = app
    project = "demo" + secrets.token_hex(2)
    up = compose(d, ctr, appdir, "-p", project, "up", "-d")
    assert up.returncode == 0, up.stderr
    assert f"Network {project}_default  Created" in up.stderr
    assert f"Container {project}-web-1  Healthy" in up.stderr
    assert up.stderr.index(f"{project}-web-1  Healthy") < up.stderr.index(f"{project}-client-1  Started")

    net = d.client.call("Networks", "Inspect", {"name": f"{project}_default"}, namespace=ctr.namespace)["network"]
    assert net["Labels"]["com.docker.compose.project"] == project
    bridge = net["Options"]["com.docker.network.bridge.name"]
    subnet = net["IPAM"]["Config"][0]["Subnet"]
    veths = {name for name in links() if name.startswith("veth")} & set(
        subprocess.run(["ip", "-o", "link", "show", "master", bridge], capture_output=True, text=True)
        .stdout.replace("@", ": ").split(": ")[1::3])

    ps = compose(d, ctr, appdir, "-p", project, "ps", "-a")
    assert ps.returncode == 0, ps.stderr
    header, *rows = ps.stdout.splitlines()
    assert header.split()[:4] == ["NAME", "IMAGE", "COMMAND", "SERVICE"]
    assert sorted(r.split()[0] for r in rows) == [f"{project}-client-1", f"{project}-web-1"]

    deadline = time.monotonic() + 20
    while True:  # the client fetches once and exits
        logs = compose(d, ctr, appdir, "-p", project, "logs", "client")
        if "client-done" in logs.stdout or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert logs.returncode == 0, logs.stderr
    assert f"{project}-client-1  | hello-from-dotenv" in logs.stdout.splitlines()
    assert f"{project}-client-1  | client-done" in logs.stdout.splitlines()

    labels = json.loads(ctr.ok("inspect", f"{project}-web-1"))[0]["Config"]["Labels"]
    assert labels["com.docker.compose.project"] == project
    assert labels["com.docker.compose.service"] == "web"
    assert labels["com.docker.compose.container-number"] == "1"
    assert labels["com.docker.compose.oneoff"] == "False"
    assert len(labels["com.docker.compose.config-hash"]) == 64

    ex = compose(d, ctr, appdir, "-p", project, "exec", "-T", "web", "cat", "/www/index.html")
    assert (ex.returncode, ex.stdout) == (0, "hello-from-dotenv\n"), ex.stderr

    again = compose(d, ctr, appdir, "-p", project, "up", "-d")  # unchanged: nothing recreated
    assert again.returncode == 0, again.stderr
    assert "Created" not in again.stderr and "Removed" not in again.stderr

    down = compose(d, ctr, appdir, "-p", project, "down")
    assert down.returncode == 0, down.stderr
    assert f"Network {project}_default  Removed" in down.stderr
    assert ctr.ok("ps", "-a", "-q") == ""
    names = [n["Name"] for n in d.client.call("Networks", "List", namespace=ctr.namespace)["networks"]]
    assert f"{project}_default" not in names
    left = links()
    assert bridge not in left and not (veths & left), (bridge, veths & left)
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    assert subnet not in rules
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(d.root) not in mounts and str(d.state) not in mounts


def test_bad_file_is_one_line_naming_the_key(app):
    d, ctr, appdir = app
    (appdir / "compose.yaml").write_text("services:\n  web:\n    imgae: busybox\n")
    r = compose(d, ctr, appdir, "config")
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == 'services.web: unknown key "imgae"\n'
    (appdir / "compose.yaml").write_text("services:\n  web:\n    image: busybox\n    depends_on: [db]\n")
    r = compose(d, ctr, appdir, "up", "-d")
    assert r.returncode == 1 and r.stderr == 'Error: service "web" depends on undefined service "db"\n'
    assert ctr.ok("ps", "-a", "-q") == ""
