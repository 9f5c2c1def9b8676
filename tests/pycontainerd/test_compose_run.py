"""`pyctr compose run` and scaling (`up --scale`, deploy.replicas) end to end on a real pycontainerd:
one-off containers named PROJECT-SERVICE-run-<hex> with compose's one-off labels, --rm/-d/-e/--entrypoint/
--no-deps, replicas -1..-N reachable by the service name, scaling down removes the highest numbers, ps
lists them, and `down` leaves nothing (containers, veths, netns, leases)."""

from __future__ import annotations

import json
import re
import secrets
import textwrap
from pathlib import Path

import pytest

from tests.pycontainerd.test_compose_app import compose, kill_namespace_processes, links
from tests.pycontainerd.test_ctr_support import Ctr, busybox_archive, remove_cgroups, short_daemon

COMPOSE = """
services:
  web:
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www"]
    stop_grace_period: 1s
    deploy:
      replicas: 2
  tool:
    image: busybox
    command: ["echo", "tool-default"]
    environment:
      FROM_FILE: file
    depends_on: [web]
  side:
    image: busybox
    network_mode: "service:web"
    command: ["sh", "-c", "hostname; wget -qO- http://127.0.0.1/"]
"""


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("crun")
    namespace = "cr" + secrets.token_hex(1)
    try:
        with short_daemon(tmp) as d:
            ctr = Ctr(d, namespace)
            assert ctr("load", "-i", str(busybox_archive(tmp / "bb"))).status == 0
            appdir = tmp / "app"
            appdir.mkdir()
            (appdir / "compose.yaml").write_text(textwrap.dedent(COMPOSE))
            yield d, ctr, appdir
    finally:
        kill_namespace_processes(namespace)
        assert remove_cgroups(namespace) == [], "containers' cgroups left behind"


def names(ctr: Ctr) -> list[str]:
    return sorted(ctr.ok("ps", "-a", "--format", "{{.Names}}").split())


@pytest.fixture
def project(app):
    """A project name; whatever the test leaves of it goes with `down` (even when the test failed)."""
    d, ctr, appdir = app
    names: list[str] = []

    def new(prefix: str) -> str:
        names.append(prefix + secrets.token_hex(2))
        return names[-1]
    yield new
    for p in names:
        compose(d, ctr, appdir, "-p", p, "down")
    for cid in ctr("ps", "-a", "-q", "--no-trunc").out.split():
        ctr("rm", "-f", cid)


def test_replicas_scale_and_down(app, project) -> None:
    d, ctr, appdir = app
    p = project("sc")
    up = compose(d, ctr, appdir, "-p", p, "up", "-d", "web")
    assert up.returncode == 0, up.stderr
    assert names(ctr) == [f"{p}-web-1", f"{p}-web-2"]
    labels = json.loads(ctr.ok("inspect", f"{p}-web-2"))[0]["Config"]["Labels"]
    assert labels["com.docker.compose.container-number"] == "2" and labels["com.docker.compose.oneoff"] == "False"
    up = compose(d, ctr, appdir, "-p", p, "up", "-d", "--scale", "web=4", "web")
    assert up.returncode == 0, up.stderr
    assert names(ctr) == [f"{p}-web-{i}" for i in (1, 2, 3, 4)]
    assert "web-1  Created" not in up.stderr and f"{p}-web-4  Started" in up.stderr  # 1 and 2 kept
    ps = compose(d, ctr, appdir, "-p", p, "ps")
    assert [r.split()[0] for r in ps.stdout.splitlines()[1:]] == [f"{p}-web-{i}" for i in (1, 2, 3, 4)]
    # every replica answers to the service's name
    seen = set()
    for _ in range(30):
        r = ctr("run", "--rm", "--network", f"{p}_default", "busybox", "wget", "-qO-", "http://web/")
        seen.add(r.out.strip())
        if len(seen) >= 2:
            break
    assert len(seen) >= 2, seen
    sc = compose(d, ctr, appdir, "-p", p, "scale", "web=3")  # the `scale` verb: the same as up --scale
    assert sc.returncode == 0 and names(ctr) == [f"{p}-web-{i}" for i in (1, 2, 3)], sc.stderr
    down = compose(d, ctr, appdir, "-p", p, "up", "-d", "--scale", "web=1", "web")
    assert down.returncode == 0, down.stderr
    assert names(ctr) == [f"{p}-web-1"]
    assert down.stderr.index(f"{p}-web-3  Removed") < down.stderr.index(f"{p}-web-2  Removed")
    assert f"{p}-web-4  Removed" in sc.stderr
    bad = compose(d, ctr, appdir, "-p", p, "up", "-d", "--scale", "web")
    assert bad.returncode == 1 and "Arguments to scale should be in the form service=num" in bad.stderr
    bad = compose(d, ctr, appdir, "-p", p, "up", "-d", "--scale", "web=x")
    assert bad.returncode == 1 and 'Number of containers for service "web" is not a number' in bad.stderr
    cfg = compose(d, ctr, appdir, "-p", p, "config")
    assert "replicas: 2" in cfg.stdout
    net = json.loads(ctr.ok("network", "inspect", f"{p}_default"))[0]
    bridge = net["Options"]["com.docker.network.bridge.name"]
    assert compose(d, ctr, appdir, "-p", p, "down").returncode == 0
    assert names(ctr) == [] and bridge not in links()


def test_run_oneoff(app, project) -> None:
    d, ctr, appdir = app
    p = project("rn")
    r = compose(d, ctr, appdir, "-p", p, "run", "--rm", "--no-deps", "tool")
    assert (r.returncode, r.stdout) == (0, "tool-default\n"), r.stderr
    shared = Path(d.root).parent / f"mnt{p}"
    r = compose(d, ctr, appdir, "-p", p, "run", "--rm", "--no-deps", "-v", f"{shared}:/mnt", "tool",
                "sh", "-c", "echo via-v > /mnt/f")
    assert r.returncode == 0 and (shared / "f").read_text() == "via-v\n", r.stderr
    assert names(ctr) == []  # --rm, and --no-deps started no web
    r = compose(d, ctr, appdir, "-p", p, "run", "-e", "EXTRA=x", "tool", "sh", "-c", "echo $FROM_FILE $EXTRA; exit 3")
    assert (r.returncode, r.stdout) == (3, "file x\n"), r.stderr
    run_name = next(n for n in names(ctr) if "-run-" in n)
    assert re.fullmatch(rf"{p}-tool-run-[0-9a-f]{{12}}", run_name), run_name
    assert sorted(n for n in names(ctr) if "-run-" not in n) == [f"{p}-web-1", f"{p}-web-2"]  # deps brought up
    labels = json.loads(ctr.ok("inspect", run_name))[0]["Config"]["Labels"]
    assert labels["com.docker.compose.oneoff"] == "True" and labels["com.docker.compose.service"] == "tool"
    assert re.fullmatch(r"[0-9a-f]{64}", labels["com.docker.compose.slug"])
    assert labels["com.docker.compose.slug"].startswith(run_name.rsplit("-", 1)[1])
    assert "com.docker.compose.container-number" not in labels
    r = compose(d, ctr, appdir, "-p", p, "run", "--rm", "--entrypoint", "sh -c", "tool", "wget -qO- http://web/")
    assert r.returncode == 0 and r.stdout.strip(), r.stderr  # the one-off reaches the service by name
    r = compose(d, ctr, appdir, "-p", p, "run", "-d", "tool", "sleep", "30")
    assert r.returncode == 0, r.stderr
    detached = r.stdout.strip()
    assert re.fullmatch(rf"{p}-tool-run-[0-9a-f]{{12}}", detached) and detached in names(ctr)
    ps = compose(d, ctr, appdir, "-p", p, "ps")
    assert detached in ps.stdout
    # `up` does not take a one-off container for the service's own
    up = compose(d, ctr, appdir, "-p", p, "up", "-d", "tool")
    assert up.returncode == 0, up.stderr
    assert f"{p}-tool-1" in names(ctr)
    # network_mode: service:web joins web-1's netns (and its hostname): web answers on its loopback
    r = compose(d, ctr, appdir, "-p", p, "run", "--rm", "side")
    web1 = json.loads(ctr.ok("inspect", f"{p}-web-1"))[0]["Config"]["Hostname"]
    assert (r.returncode, r.stdout) == (0, f"{web1}\n{web1}\n"), r.stderr
    r = compose(d, ctr, appdir, "-p", p, "run", "--rm", "nope")
    assert r.returncode == 1 and "nope" in r.stderr
    net = json.loads(ctr.ok("network", "inspect", f"{p}_default"))[0]
    bridge = net["Options"]["com.docker.network.bridge.name"]
    assert compose(d, ctr, appdir, "-p", p, "down").returncode == 0
    assert names(ctr) == [] and bridge not in links()
    leases = [x.name for x in (Path(d.root) / "networks" / "ipam").rglob("*") if x.name[:1].isdigit()
              and not x.name.startswith("last_reserved")]
    assert leases == []


def test_network_ipam_and_static_addresses(app, project) -> None:
    d, ctr, _ = app
    o = d.subnet_octet
    appdir = Path(d.root).parent / f"ipam{secrets.token_hex(2)}"
    appdir.mkdir()
    (appdir / "compose.yaml").write_text(textwrap.dedent(f"""
        services:
          db:
            image: busybox
            command: ["sleep", "60"]
            stop_grace_period: 1s
            networks:
              back: {{ipv4_address: 10.{o}.210.10, ipv6_address: "fd00:{o:x}:210::10"}}
          cli:
            image: busybox
            command: ["sh", "-c", "ping -c1 -W3 db >/dev/null && grep db /etc/hosts"]
            networks: [back]
          multi:
            image: busybox
            command: ["sleep", "60"]
            stop_grace_period: 1s
            networks: [front, back]
        networks:
          front: {{}}
          back:
            enable_ipv6: true
            ipam:
              config:
                - {{subnet: 10.{o}.210.0/24, ip_range: 10.{o}.210.128/25, aux_addresses: {{spare: 10.{o}.210.128}}}}
                - {{subnet: "fd00:{o:x}:210::/64"}}
        """))
    p = project("ip")
    cfg = compose(d, ctr, appdir, "-p", p, "config")
    assert cfg.returncode == 0 and "enable_ipv6: true" in cfg.stdout and f"ip_range: 10.{o}.210.128/25" in cfg.stdout
    up = compose(d, ctr, appdir, "-p", p, "up", "-d", "db")
    assert up.returncode == 0, up.stderr
    net = json.loads(ctr.ok("network", "inspect", f"{p}_back"))[0]
    assert net["EnableIPv6"] is True
    assert net["IPAM"]["Config"][0] == {"Subnet": f"10.{o}.210.0/24", "IPRange": f"10.{o}.210.128/25",
                                        "AuxiliaryAddresses": {"spare": f"10.{o}.210.128"}}
    ns = json.loads(ctr.ok("inspect", f"{p}-db-1"))[0]["NetworkSettings"]["Networks"][f"{p}_back"]
    assert (ns["IPAddress"], ns["GlobalIPv6Address"]) == (f"10.{o}.210.10", f"fd00:{o:x}:210::10")
    r = compose(d, ctr, appdir, "-p", p, "run", "--rm", "cli")
    assert r.returncode == 0, r.stderr
    assert f"10.{o}.210.10\t{p}-db-1 db " in r.stdout and f"fd00:{o:x}:210::10\t{p}-db-1 db " in r.stdout
    # a service on two networks: on both after a restart by the daemon's side, and so are its one-offs
    assert compose(d, ctr, appdir, "-p", p, "up", "-d", "multi").returncode == 0
    ctr.ok("restart", "-t", "0", f"{p}-multi-1")
    nets = json.loads(ctr.ok("inspect", f"{p}-multi-1"))[0]["NetworkSettings"]["Networks"]
    assert set(nets) == {f"{p}_front", f"{p}_back"} and "multi" in (nets[f"{p}_back"]["Aliases"] or []), nets
    r = compose(d, ctr, appdir, "-p", p, "run", "--rm", "multi", "sh", "-c", "ls /sys/class/net | grep -c eth")
    assert (r.returncode, r.stdout) == (0, "2\n"), r.stderr
    assert compose(d, ctr, appdir, "-p", p, "down").returncode == 0
    assert f"{p}_back" not in ctr.ok("network", "ls")


def test_run_keeps_a_scaled_dependency_and_ps_format(app, project) -> None:
    """compose ≥ 1.14 (docker/compose#4803): a one-off's dependencies start as they are, their scale kept;
    and `ps --format` as docker compose v2 (table, json an object a line, a Go template)."""
    d, ctr, appdir = app
    p = project("ks")
    up = compose(d, ctr, appdir, "-p", p, "up", "-d", "--scale", "web=3", "web")
    assert up.returncode == 0, up.stderr
    webs = [f"{p}-web-{i}" for i in (1, 2, 3)]
    assert names(ctr) == webs
    ids = {n: json.loads(ctr.ok("inspect", n))[0]["Id"] for n in webs}
    r = compose(d, ctr, appdir, "-p", p, "run", "--rm", "tool", "echo", "hi")
    assert (r.returncode, r.stdout) == (0, "hi\n"), r.stderr
    assert names(ctr) == webs and "Removed" not in r.stderr, r.stderr
    assert {n: json.loads(ctr.ok("inspect", n))[0]["Id"] for n in webs} == ids  # not recreated either
    sc = compose(d, ctr, appdir, "-p", p, "scale", "web=2")
    assert sc.returncode == 0 and names(ctr) == webs[:2], sc.stderr
    ctr.ok("stop", "-t", "0", webs[1])
    r = compose(d, ctr, appdir, "-p", p, "run", "--rm", "tool", "true")
    assert r.returncode == 0 and names(ctr) == webs[:2], r.stderr
    assert json.loads(ctr.ok("inspect", webs[1]))[0]["State"]["Running"] is True  # a stopped replica started
    # ps --format
    ps = compose(d, ctr, appdir, "-p", p, "ps", "--format", "json")
    assert ps.returncode == 0, ps.stderr
    rows = [json.loads(line) for line in ps.stdout.splitlines()]
    assert [(r["Name"], r["Service"], r["Project"], r["State"]) for r in rows] == \
        [(n, "web", p, "running") for n in webs[:2]]
    assert list(rows[0]) == sorted(rows[0]) and rows[0]["ID"] == ids[webs[0]] and rows[0]["ExitCode"] == 0
    ps = compose(d, ctr, appdir, "-p", p, "ps", "--format", "{{.Name}} {{.Service}}{{if .Publishers}}!{{end}}")
    assert ps.stdout.splitlines() == [f"{n} web" for n in webs[:2]], ps.stderr
    ps = compose(d, ctr, appdir, "-p", p, "ps", "--format", "table {{.Name}}\t{{.Service}}\t{{.State}}")
    lines = ps.stdout.splitlines()
    assert lines[0].split() == ["NAME", "SERVICE", "STATE"] and lines[1].split() == [webs[0], "web", "running"]
    table = compose(d, ctr, appdir, "-p", p, "ps", "--format", "table").stdout.splitlines()
    plain = compose(d, ctr, appdir, "-p", p, "ps").stdout.splitlines()  # the same table (times aside)
    assert [line[:40] for line in table] == [line[:40] for line in plain] and len(table) == 3
    bad = compose(d, ctr, appdir, "-p", p, "ps", "--format", "{{.Name")
    assert bad.returncode == 1 and bad.stderr == "failed to parse template: template: :1: unclosed action\n"
    assert compose(d, ctr, appdir, "-p", p, "down").returncode == 0
