"""`pyctr compose` end to end on a real pycontainerd (runc, the fixture's private bridge and 10.X/16): a
two-service app (web: busybox httpd with a healthcheck; client: waits for web healthy, fetches from it by
service name) comes up, shows in ps, logs the client's fetch, and `down` leaves nothing behind."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.pycontainerd.daemon_fixture import running_daemon
from tests.pycontainerd.test_ctr_support import Ctr, busybox_archive, env, remove_cgroups
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
    stop_grace_period: 1s   # httpd as pid 1 ignores SIGTERM: down would wait the default 10 s
  client:
    image: busybox
    command: ["sh", "-c", "wget -qO- http://web:80/ && echo client-done"]
    depends_on:
      web:
        condition: service_healthy
"""


def kill_namespace_processes(namespace: str) -> None:
    """SIGKILL, by pid, whatever still runs in the namespace's cgroups (runc puts containers under /<ns>/)."""
    for cgroup_file in Path("/proc").glob("[0-9]*/cgroup"):
        try:
            if f":/{namespace}/" in cgroup_file.read_text():
                os.kill(int(cgroup_file.parent.name), signal.SIGKILL)
        except (OSError, ValueError):
            pass


@pytest.fixture
def app(tmp_path: Path):
    runc = require("runc")
    namespace = "cmp" + secrets.token_hex(2)
    try:
        with running_daemon(tmp_path, runtime=runc) as d:
            ctr = Ctr(d, namespace)
            r = ctr("load", "-i", str(busybox_archive(tmp_path / "bb")))
            assert r.status == 0, r
            appdir = tmp_path / "app"
            appdir.mkdir()
            (appdir / "compose.yaml").write_text(textwrap.dedent(COMPOSE))
            (appdir / ".env").write_text("GREETING=hello-from-dotenv\n")
            yield d, ctr, appdir
    finally:  # the daemon fixture's cleanup is by paths; this is by cgroup, and drops /<ns> itself
        kill_namespace_processes(namespace)
        time.sleep(0.1)
        assert remove_cgroups(namespace) == [], "containers' cgroups left behind"


def compose(d, ctr: Ctr, appdir: Path, *args: str, timeout: float = 60, input: str = "") -> \
        subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "pycontainerd.compose", "-H", f"unix://{d.address}", "--namespace",
            ctr.namespace, *args]
    return subprocess.run(argv, cwd=appdir, capture_output=True, text=True, timeout=timeout, env=env(),
                          input=input)


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
    veths = {link["ifname"] for link in json.loads(subprocess.run(
        ["ip", "-j", "link", "show", "master", bridge], capture_output=True, text=True, check=True).stdout)}
    assert veths, f"web's endpoint on {bridge}"

    ps = compose(d, ctr, appdir, "-p", project, "ps", "-a")
    assert ps.returncode == 0, ps.stderr
    header, *rows = ps.stdout.splitlines()
    assert header.split()[:4] == ["NAME", "IMAGE", "COMMAND", "SERVICE"]
    assert sorted(r.split()[0] for r in rows) == [f"{project}-client-1", f"{project}-web-1"]
    assert "(healthy)" in next(r for r in rows if r.startswith(f"{project}-web-1")), rows

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
    web = json.loads(ctr.ok("inspect", f"{project}-web-1"))[0]  # the daemon runs the check; compose waited
    assert web["Config"]["Healthcheck"] == {"Test": ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:80/"],
                                            "Interval": 200_000_000, "Timeout": 2_000_000_000, "Retries": 50}
    assert web["State"]["Health"]["Status"] == "healthy" and web["State"]["Health"]["Log"][-1]["ExitCode"] == 0

    ex = compose(d, ctr, appdir, "-p", project, "exec", "-T", "web", "cat", "/www/index.html")
    assert (ex.returncode, ex.stdout) == (0, "hello-from-dotenv\n"), ex.stderr
    ex = compose(d, ctr, appdir, "-p", project, "exec", "-T", "web", "sh", "-c", "tr a-z A-Z; exit 3", input="piped\n")
    assert (ex.returncode, ex.stdout) == (3, "PIPED\n"), ex.stderr   # stdin attached, the exec's status

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


FEATURES = """
services:
  web:
    image: busybox
    command: ["httpd", "-f", "-p", "80", "-h", "/data"]
    ports: ["127.0.0.1:${PORT}:80"]
    volumes: ["data:/data", "./host:/host:ro"]
    networks:
      front:
        aliases: [www]
    stop_grace_period: 1s
  probe:
    image: busybox
    command: ["sleep", "300"]
    networks: [front, back]
    stop_grace_period: 1s
networks: {front: {}, back: {}}
volumes: {data: {}}
"""


def fetch(port: int) -> str:
    import urllib.request

    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                return r.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_volumes_ports_networks_recreate_down_v(app):
    from tests.support import free_port

    d, ctr, appdir = app
    port = free_port()
    (appdir / "compose.yaml").write_text(textwrap.dedent(FEATURES))
    (appdir / ".env").write_text(f"PORT={port}\n")
    (appdir / "host").mkdir()
    (appdir / "host" / "note").write_text("from-host\n")
    project = "feat" + secrets.token_hex(2)
    up = compose(d, ctr, appdir, "-p", project, "up", "-d")
    assert up.returncode == 0, up.stderr
    for what in (f"Network {project}_front  Created", f"Network {project}_back  Created",
                 f"Volume {project}_data  Created"):
        assert what in up.stderr
    assert f"Network {project}_default" not in up.stderr   # no service is on it

    r = compose(d, ctr, appdir, "-p", project, "exec", "-T", "web", "sh", "-c",
                "cat /host/note > /data/index.html && ! touch /host/x 2>/dev/null")
    assert r.returncode == 0, r.stderr
    assert fetch(port) == "from-host\n"                          # published on the host
    r = compose(d, ctr, appdir, "-p", project, "exec", "-T", "probe", "wget", "-qO-", "http://www:80/")
    assert (r.returncode, r.stdout) == (0, "from-host\n"), r.stderr   # by alias on the shared network
    probe = json.loads(ctr.ok("inspect", f"{project}-probe-1"))[0]
    assert set(probe["NetworkSettings"]["Networks"]) >= {f"{project}_front", f"{project}_back"}

    # a changed service is recreated, the other left running; the volume's data stays
    (appdir / "compose.yaml").write_text(textwrap.dedent(FEATURES).replace(
        "    stop_grace_period: 1s\n  probe:", "    stop_grace_period: 1s\n    environment: [CHANGED=1]\n  probe:"))
    up = compose(d, ctr, appdir, "-p", project, "up", "-d")
    assert up.returncode == 0, up.stderr
    assert f"Container {project}-web-1  Removed" in up.stderr and f"Container {project}-web-1  Started" in up.stderr
    assert f"Container {project}-probe-1  Running" in up.stderr
    assert "CHANGED=1" in json.loads(ctr.ok("inspect", f"{project}-web-1"))[0]["Config"]["Env"]
    assert fetch(port) == "from-host\n"

    stop = compose(d, ctr, appdir, "-p", project, "stop", "web")
    assert stop.returncode == 0, stop.stderr
    ps = compose(d, ctr, appdir, "-p", project, "ps")
    assert [r.split()[0] for r in ps.stdout.splitlines()[1:]] == [f"{project}-probe-1"]
    ps = compose(d, ctr, appdir, "-p", project, "ps", "-a")
    assert "Exited" in next(r for r in ps.stdout.splitlines() if r.startswith(f"{project}-web-1"))
    start = compose(d, ctr, appdir, "-p", project, "start")
    assert start.returncode == 0, start.stderr
    assert fetch(port) == "from-host\n"

    down = compose(d, ctr, appdir, "-p", project, "down", "-v")
    assert down.returncode == 0, down.stderr
    assert f"Volume {project}_data  Removed" in down.stderr
    assert ctr.ok("ps", "-a", "-q") == ""
    vols = [v["Name"] for v in d.client.call("Volumes", "List", namespace=ctr.namespace)["volumes"]]
    nets = [n["Name"] for n in d.client.call("Networks", "List", namespace=ctr.namespace)["networks"]]
    assert not [v for v in vols if v.startswith(project)] and not [n for n in nets if n.startswith(project)]
    assert (appdir / "host" / "note").read_text() == "from-host\n"   # a bind's source is the user's


def test_build_through_pybuild_then_down_rmi_local(app):
    from tests.support import make_busybox_rootfs

    d, ctr, appdir = app
    ctx = appdir / "ctx"
    make_busybox_rootfs(ctx / "rootfs")
    (ctx / "hello.txt").write_text("built-by-pybuild\n")
    (ctx / "Containerfile").write_text('FROM scratch\nCOPY rootfs/ /\nARG WHO\nCOPY hello.txt /hello.txt\n'
                                       'CMD ["sh", "-c", "cat /hello.txt; echo arg=$WHO"]\n')
    (appdir / "compose.yaml").write_text(textwrap.dedent("""
        services:
          app:
            build: {context: ./ctx, dockerfile: Containerfile, args: {WHO: me}}
            environment: [WHO=env]
    """))
    project = "bld" + secrets.token_hex(2)
    up = compose(d, ctr, appdir, "-p", project, "up", "-d")
    assert up.returncode == 0, up.stderr
    assert f"Image {project}-app  Built" in up.stderr
    assert f"{project}-app:latest" in ctr.ok("images", "--format", "{{.Repository}}:{{.Tag}}")
    deadline = time.monotonic() + 10
    while "arg=" not in (logs := compose(d, ctr, appdir, "-p", project, "logs", "--no-log-prefix")).stdout:
        assert time.monotonic() < deadline, logs
        time.sleep(0.2)
    assert logs.stdout == "built-by-pybuild\narg=env\n"
    down = compose(d, ctr, appdir, "-p", project, "down", "--rmi", "local")
    assert down.returncode == 0, down.stderr
    assert f"{project}-app" not in ctr.ok("images", "--format", "{{.Repository}}")


def test_up_attached_streams_until_exit_and_config(app):
    d, ctr, appdir = app
    (appdir / "compose.yaml").write_text(textwrap.dedent("""
        services:
          one:
            image: busybox
            command: sh -c 'echo first; echo second >&2'
          two:
            image: busybox
            entrypoint: [/bin/echo]
            command: ["${GREETING}"]
    """))
    project = "att" + secrets.token_hex(2)
    up = compose(d, ctr, appdir, "-p", project, "up")
    assert up.returncode == 0, up.stderr
    lines = up.stdout.splitlines()
    assert sorted(lines) == sorted([f"{project}-one-1  | first", f"{project}-one-1  | second",
                                    f"{project}-two-1  | hello-from-dotenv"]), up.stdout
    cfg = compose(d, ctr, appdir, "-p", project, "config")
    import yaml
    doc = yaml.safe_load(cfg.stdout)
    assert doc["name"] == project
    assert doc["services"]["two"]["entrypoint"] == ["/bin/echo"]
    assert doc["services"]["two"]["command"] == ["hello-from-dotenv"]
    assert doc["services"]["one"]["command"] == ["sh", "-c", "echo first; echo second >&2"]
    assert doc["networks"]["default"]["name"] == f"{project}_default"
    assert compose(d, ctr, appdir, "-p", project, "down").returncode == 0
    assert ctr.ok("ps", "-a", "-q") == ""


def test_dependency_conditions_completed_and_unhealthy(app):
    d, ctr, appdir = app
    (appdir / "compose.yaml").write_text(textwrap.dedent("""
        services:
          migrate:
            image: busybox
            command: sh -c 'sleep 0.3; echo migrated'
          app:
            image: busybox
            command: sleep 30
            stop_grace_period: 0s
            depends_on: {migrate: {condition: service_completed_successfully}}
            healthcheck: {test: "exit 1", interval: 100ms, retries: 2}
          front:
            image: busybox
            command: echo never
            depends_on: {app: {condition: service_healthy}}
    """))
    project = "dep" + secrets.token_hex(2)
    up = compose(d, ctr, appdir, "-p", project, "up", "-d")
    assert up.returncode == 1
    assert up.stderr.splitlines()[-1] == f"dependency failed to start: container {project}-app-1 is unhealthy"
    assert up.stderr.index(f"{project}-migrate-1  Exited") < up.stderr.index(f"{project}-app-1  Started")
    ps = compose(d, ctr, appdir, "-p", project, "ps", "-a", "--services")
    assert sorted(ps.stdout.split()) == ["app", "front", "migrate"]   # front created, never started
    assert compose(d, ctr, appdir, "-p", project, "logs", "front").stdout == ""
    assert compose(d, ctr, appdir, "-p", project, "down").returncode == 0
    assert ctr.ok("ps", "-a", "-q") == ""


def test_restart_always_brings_a_killed_service_back(app):
    d, ctr, appdir = app
    (appdir / "compose.yaml").write_text(textwrap.dedent("""
        services:
          svc:
            image: busybox
            command: sleep 300
            restart: always
            stop_grace_period: 0s
    """))
    project = "rst" + secrets.token_hex(2)
    assert compose(d, ctr, appdir, "-p", project, "up", "-d").returncode == 0
    name = f"{project}-svc-1"
    cid = json.loads(ctr.ok("inspect", name))[0]["Id"]
    first = d.client.call("Tasks", "Get", {"container_id": cid}, namespace=ctr.namespace)["process"]["pid"]
    d.client.call("Tasks", "Kill", {"container_id": cid, "signal": "SIGKILL"}, namespace=ctr.namespace)
    deadline = time.monotonic() + 15
    while True:
        task = d.client.call("Tasks", "List", namespace=ctr.namespace)["tasks"]
        now = [t for t in task if t["container_id"] == cid and t.get("status") == "running"]
        if now and now[0]["pid"] != first:
            break
        assert time.monotonic() < deadline, task
        time.sleep(0.2)
    stop = compose(d, ctr, appdir, "-p", project, "stop")   # a stop is the user's: not restarted
    assert stop.returncode == 0, stop.stderr
    time.sleep(1.5)
    assert "Exited" in compose(d, ctr, appdir, "-p", project, "ps", "-a").stdout
    assert compose(d, ctr, appdir, "-p", project, "down").returncode == 0
    assert ctr.ok("ps", "-a", "-q") == ""


def test_service_healthy_from_the_image_healthcheck(app, tmp_path):
    """A service without a healthcheck of its own gets its image's HEALTHCHECK (merged under a partial one),
    run by the daemon; `up` waits for it."""
    d, ctr, appdir = app
    check = {"Test": ["CMD-SHELL", "echo probed"], "Interval": 200_000_000, "Retries": 2}
    archive = busybox_archive(tmp_path / "hc", config={"Cmd": ["sh"], "Healthcheck": check}, name="checked:latest")
    assert ctr("load", "-i", str(archive)).status == 0
    (appdir / "compose.yaml").write_text(textwrap.dedent("""
        services:
          dep:
            image: checked
            command: sleep 30
            stop_grace_period: 0s
          tuned:
            image: checked
            command: sleep 30
            stop_grace_period: 0s
            healthcheck: {retries: 5, timeout: 3s}
          front:
            image: busybox
            command: echo started
            depends_on: {dep: {condition: service_healthy}, tuned: {condition: service_healthy}}
    """))
    project = "img" + secrets.token_hex(2)
    up = compose(d, ctr, appdir, "-p", project, "up", "-d")
    assert up.returncode == 0, up.stderr
    assert up.stderr.index(f"{project}-dep-1  Healthy") < up.stderr.index(f"{project}-front-1  Started")
    dep = json.loads(ctr.ok("inspect", f"{project}-dep-1"))[0]
    assert dep["Config"]["Healthcheck"] == check
    assert dep["State"]["Health"]["Status"] == "healthy" and dep["State"]["Health"]["Log"][-1]["Output"] == "probed\n"
    tuned = json.loads(ctr.ok("inspect", f"{project}-tuned-1"))[0]
    assert tuned["Config"]["Healthcheck"] == {**check, "Retries": 5, "Timeout": 3_000_000_000}
    assert compose(d, ctr, appdir, "-p", project, "down").returncode == 0
    assert ctr.ok("ps", "-a", "-q") == ""
