"""pycontainerd.compose without a daemon: a service as pyctr's create options (names, labels, mounts,
networks, limits), start order, the healthcheck probe's command, the CLI's global flags and errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pycontainerd.compose.__main__ import split_globals
from pycontainerd.compose.cli import main
from pycontainerd.compose.health import to_docker
from pycontainerd.compose.loader import load
from pycontainerd.compose.model import ComposeError, Healthcheck
from pycontainerd.compose.project import Compose


def compose_of(tmp_path: Path, text: str, name: str = "demo") -> Compose:
    (tmp_path / "compose.yaml").write_text(textwrap.dedent(text))
    return Compose(b=None, project=load(cwd=str(tmp_path), env={}, project_name=name))  # type: ignore[arg-type]


def test_create_options(tmp_path):
    c = compose_of(tmp_path, """
        services:
          web:
            image: busybox
            entrypoint: [/bin/sh, -c]
            command: [httpd -f]
            environment: {A: "1"}
            ports: ["127.0.0.1:8080:80", "53/udp"]
            volumes: [data:/data, ./src:/src:ro, /anon, {type: tmpfs, target: /t, tmpfs: {size: 1k}}]
            networks: {front: {aliases: [www]}, back: null}
            restart: unless-stopped
            deploy: {resources: {limits: {cpus: "1.5", memory: 64m, pids: 50}}}
            labels: {team: a}
            extra_hosts: ["h:1.2.3.4"]
            dns: [1.1.1.1]
            user: nobody
            working_dir: /w
            hostname: hh
            init: true
            read_only: true
            cap_drop: [ALL]
          other: {image: busybox, container_name: fixed}
        networks: {front: {}, back: {}}
        volumes: {data: {}}
    """)
    o = c.create_options(c.project.services["web"])
    assert o.name == "demo-web-1" and o.image == "busybox"
    assert (o.entrypoint, o.args) == ("/bin/sh", ["-c", "httpd -f"])
    assert o.env == ["A=1"]
    assert o.publish == ["127.0.0.1:8080:80/tcp", "53/udp"]
    assert o.volumes == ["demo_data:/data", f"{tmp_path}/src:/src:ro", "/anon"]
    assert (tmp_path / "src").is_dir()  # create_host_path
    assert o.tmpfs == ["/t:size=1024"]
    assert (o.network, o.network_aliases) == ("demo_front", ["web", "www"])
    assert o.restart == "unless-stopped" and o.detach
    assert (o.cpus, o.memory, o.pids_limit) == (1.5, str(64 << 20), 50)
    labels = dict(x.split("=", 1) for x in o.labels)
    assert labels["team"] == "a" and labels["com.docker.compose.project"] == "demo"
    assert labels["com.docker.compose.service"] == "web" and labels["com.docker.compose.container-number"] == "1"
    assert labels["com.docker.compose.oneoff"] == "False"
    assert labels["com.docker.compose.config-hash"] == c.project.services["web"].config_hash()
    assert (o.add_hosts, o.dns, o.user, o.workdir, o.hostname) == (["h:1.2.3.4"], ["1.1.1.1"], "nobody", "/w", "hh")
    assert o.init and o.read_only and o.cap_drop == ["ALL"]
    other = c.create_options(c.project.services["other"])
    assert other.name == "fixed" and other.network == "demo_default" and other.entrypoint is None
    assert other.restart == "no"


def test_config_hash_follows_the_service(tmp_path):
    a = compose_of(tmp_path, "services:\n  web: {image: busybox}\n").project.services["web"].config_hash()
    b = compose_of(tmp_path, "services:\n  web: {image: busybox}\n").project.services["web"].config_hash()
    c = compose_of(tmp_path, "services:\n  web: {image: busybox, command: [x]}\n").project.services["web"]
    assert a == b != c.config_hash()


def test_start_order(tmp_path):
    c = compose_of(tmp_path, """
        services:
          web: {image: x, depends_on: {db: {condition: service_healthy}, cache: {}}}
          db: {image: x}
          cache: {image: x, depends_on: [db]}
          lone: {image: x}
    """)
    order = c.project.order()
    assert order.index("db") < order.index("cache") < order.index("web")
    assert c.project.order(["web"]) == ["db", "cache", "web"]
    with pytest.raises(ComposeError, match="no such service: nope"):
        c.project.order(["nope"])


@pytest.mark.parametrize("check,doc", [
    (Healthcheck(test=["CMD", "wget", "-q", "x"]), {"Test": ["CMD", "wget", "-q", "x"]}),
    (Healthcheck(test=["CMD-SHELL", "true"], interval=0.2, timeout=2, retries=50, start_period=1.5),
     {"Test": ["CMD-SHELL", "true"], "Interval": 200_000_000, "Timeout": 2_000_000_000, "StartPeriod": 1_500_000_000,
      "Retries": 50}),
    (Healthcheck(disable=True), {"Test": ["NONE"]}),
    (None, None),
])
def test_healthcheck_as_docker_config(check, doc):
    assert to_docker(check) == doc


@pytest.mark.parametrize("argv,want", [
    (["-H", "unix:///s", "--namespace", "ns", "up", "-d"], ("unix:///s", "ns", ["up", "-d"])),
    (["--address=/s", "-n", "x", "ps"], ("/s", "x", ["ps"])),
    (["config"], (None, "default", ["config"])),
])
def test_split_globals(argv, want, monkeypatch):
    for k in ("PYCTR_ADDRESS", "CONTAINERD_ADDRESS", "CONTAINERD_NAMESPACE"):
        monkeypatch.delenv(k, raising=False)
    address, ns, rest = split_globals(argv)
    assert (ns, rest) == want[1:] and (want[0] is None or address == want[0])


def test_cli_errors_are_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["config"], "/nonexistent.sock", "default") == 1
    assert capsys.readouterr().err == "no configuration file provided: not found\n"
    (tmp_path / "compose.yaml").write_text("services:\n  web:\n    image: busybox\n    ports: [x]\n")
    assert main(["config"], "/nonexistent.sock", "default") == 1
    assert capsys.readouterr().err == 'services.web.ports[0]: invalid port "x"\n'
    (tmp_path / "compose.yaml").write_text("services:\n  web: {image: busybox}\n")
    assert main(["bogus"], "/nonexistent.sock", "default") == 1
    assert "invalid choice: 'bogus'" in capsys.readouterr().err
    assert main(["ps"], str(tmp_path / "no.sock"), "default") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert main(["config", "--services"], "/nonexistent.sock", "default") == 0
    assert capsys.readouterr().out == "web\n"


def test_image_healthcheck_under_the_service_one():
    """The daemon's merge (pyctr create) of a service's check over the image's: unset fields are the image's."""
    from pycontainerd.healthcheck import HealthConfig, merge

    image = {"Test": ["CMD-SHELL", "true"], "Interval": 2_000_000_000, "Retries": 7}
    assert merge(to_docker(None), image) == image
    assert merge(to_docker(Healthcheck(test=["CMD", "x"])), image) == {**image, "Test": ["CMD", "x"]}
    merged = HealthConfig.from_docker(merge(to_docker(Healthcheck(interval=0.5, retries=2)), image))
    assert (merged.test, merged.interval, merged.retries, merged.timeout) == (["CMD-SHELL", "true"], 0.5, 2, 30)
    assert HealthConfig.from_docker(merge(to_docker(Healthcheck(disable=True)), image)) is None


def test_logs_flag_and_service_errors(tmp_path):
    c = compose_of(tmp_path, "services:\n  web: {image: busybox}\n")
    with pytest.raises(ComposeError, match='invalid value "x" for flag -n/--tail'):
        c.logs(tail="x")
    with pytest.raises(ComposeError, match="no such service: db"):
        c.logs(["db"])
