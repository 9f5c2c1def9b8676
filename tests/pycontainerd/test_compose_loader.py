"""pycontainerd.compose.loader: every syntax of the compose file, override merging, interpolation, project
names, and the one-line errors naming the key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from pycontainerd.compose.interpolate import read_dotenv, substitute
from pycontainerd.compose.loader import load, merge, normalize_project_name, parse_port, parse_volume
from pycontainerd.compose.model import ComposeError, Mount, Port, to_config


def project(tmp_path: Path, text: str, files: dict[str, str] | None = None, env: dict | None = None, **kw):
    (tmp_path / "compose.yaml").write_text(textwrap.dedent(text))
    for name, body in (files or {}).items():
        (tmp_path / name).write_text(textwrap.dedent(body))
    return load(cwd=str(tmp_path), env=env if env is not None else {}, **kw)


def service(tmp_path: Path, body: str, env: dict | None = None, extra: str = ""):
    text = "services:\n  web:\n" + textwrap.indent(textwrap.dedent(body), "    ") + extra
    return project(tmp_path, text, env=env).services["web"]


# -- interpolation ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,env,want", [
    ("$V", {"V": "x"}, "x"),
    ("${V}", {"V": "x"}, "x"),
    ("${V}", {}, ""),
    ("a${V:-d}b", {}, "adb"),
    ("${V:-d}", {"V": ""}, "d"),
    ("${V-d}", {"V": ""}, ""),
    ("${V-d}", {}, "d"),
    ("${V:?err}", {"V": "ok"}, "ok"),
    ("${V?err}", {"V": ""}, ""),
    ("$$V", {"V": "x"}, "$V"),
    ("$${V}", {}, "${V}"),
    ("${V:+set}", {"V": "1"}, "set"),
    ("${V:-${W}}", {"W": "w"}, "w"),
])
def test_substitute(text, env, want):
    assert substitute(text, env, "k") == want


@pytest.mark.parametrize("text,env,message", [
    ("${V:?need V}", {}, "services.web.image: required variable V is missing a value: need V"),
    ("${V:?need V}", {"V": ""}, "services.web.image: required variable V is missing a value: need V"),
    ("${V?gone}", {}, "services.web.image: required variable V is missing a value: gone"),
    ("${V", {}, 'services.web.image: invalid interpolation format "${V"'),
    ("${-x}", {}, 'services.web.image: invalid interpolation format "${-x}"'),
])
def test_substitute_errors(text, env, message):
    with pytest.raises(ComposeError) as e:
        substitute(text, env, "services.web.image")
    assert str(e.value).startswith(message)


def test_dotenv_and_environment_precedence(tmp_path):
    (tmp_path / ".env").write_text("# c\nIMG=busybox\nexport TAG='1.36'\nQ=\"a b\"\nR=x # comment\nS=${IMG}:x\n")
    assert read_dotenv(str(tmp_path / ".env")) == {"IMG": "busybox", "TAG": "1.36", "Q": "a b", "R": "x",
                                                   "S": "busybox:x"}
    (tmp_path / "compose.yaml").write_text("services:\n  web:\n    image: ${IMG}:${TAG}\n")
    monkey = {"TAG": "latest"}
    import os
    saved = dict(os.environ)
    try:
        os.environ.update(monkey)
        p = load(cwd=str(tmp_path))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert p.services["web"].image == "busybox:latest"   # the process environment beats .env


# -- service fields ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("raw,want", [
    ("80", [Port(80)]),
    (80, [Port(80)]),
    ("8080:80", [Port(80, "8080")]),
    ("127.0.0.1:8080:80", [Port(80, "8080", "127.0.0.1")]),
    ("127.0.0.1::80", [Port(80, "", "127.0.0.1")]),
    ("53:53/udp", [Port(53, "53", "", "udp")]),
    ("8000-8001:80-81", [Port(80, "8000"), Port(81, "8001")]),
    ("9000-9010:80", [Port(80, "9000-9010")]),
    ("[::1]:8080:80", [Port(80, "8080", "::1")]),
    ({"target": 80, "published": 8080, "host_ip": "127.0.0.1", "protocol": "udp", "mode": "host"},
     [Port(80, "8080", "127.0.0.1", "udp", "host")]),
    ({"target": 80}, [Port(80)]),
])
def test_ports(raw, want):
    assert parse_port(raw, "p") == want


@pytest.mark.parametrize("raw,message", [
    ("x", 'p: invalid port "x"'),
    ("8080:x", 'p: invalid port "8080:x"'),
    ("70000", 'p: invalid port "70000"'),
    ("80/icmp", 'p: invalid protocol "icmp"'),
    ("1:2:3:4", 'p: invalid port "1:2:3:4"'),
    ({"published": 80}, "p.target is required"),
    ({"target": "x"}, "p.target must be a integer"),
    ({"target": 80, "bogus": 1}, 'p: unknown key "bogus"'),
])
def test_port_errors(raw, message):
    with pytest.raises(ComposeError) as e:
        parse_port(raw, "p")
    assert str(e.value) == message


@pytest.mark.parametrize("raw,want", [
    ("/data", Mount("volume", "/data")),
    ("data:/data", Mount("volume", "/data", "data")),
    ("data:/data:ro", Mount("volume", "/data", "data", True)),
    ("./src:/src", Mount("bind", "/src", "/proj/src")),
    ("/etc/x:/x:ro,z", Mount("bind", "/x", "/etc/x", True)),
    ({"type": "bind", "source": "./a", "target": "/a", "read_only": True}, Mount("bind", "/a", "/proj/a", True)),
    ({"type": "volume", "source": "v", "target": "/v"}, Mount("volume", "/v", "v")),
    ({"type": "tmpfs", "target": "/t", "tmpfs": {"size": "1m"}}, Mount("tmpfs", "/t", "", False, 1 << 20)),
])
def test_volumes(raw, want):
    assert parse_volume(raw, "v", "/proj") == want


@pytest.mark.parametrize("raw,message", [
    ("a:/b:bogus", 'v: invalid mode "bogus" in "a:/b:bogus"'),
    ("a:b:c:d", 'v: invalid volume specification "a:b:c:d"'),
    ({"type": "nfs", "target": "/x"}, 'v.type: invalid mount type "nfs"'),
    ({"type": "bind", "target": "/x"}, "v.source is required for a bind mount"),
    ({"type": "volume", "source": "x"}, "v.target is required"),
    ({"type": "tmpfs", "target": "/t", "tmpfs": {"size": "lots"}}, 'v.tmpfs.size: invalid size "lots"'),
])
def test_volume_errors(raw, message):
    with pytest.raises(ComposeError) as e:
        parse_volume(raw, "v", "/proj")
    assert str(e.value) == message


def test_every_service_field(tmp_path):
    (tmp_path / "web.env").write_text("FROM_FILE=1\nA=from-file\n")
    s = service(tmp_path, """
        image: busybox
        build: {context: ./ctx, dockerfile: Containerfile, args: [V=1, W], target: prod}
        command: sh -c 'echo "a b"'
        entrypoint: [/bin/sh, -c]
        env_file: web.env
        environment: {A: 1, B: true, C: null, D: ""}
        networks: {front: {aliases: [w, www]}, back: null}
        depends_on: [db]
        restart: on-failure:3
        healthcheck: {test: [CMD, 'true'], interval: 1m30s, timeout: 500ms, retries: 4, start_period: 2s}
        container_name: my-web
        labels: [a=b, c]
        deploy: {resources: {limits: {cpus: '0.5', memory: 1g, pids: 64}}}
        working_dir: /w
        user: "1000:1000"
        hostname: h
        stop_signal: SIGINT
        stop_grace_period: 3s
        tty: true
        stdin_open: true
        init: true
        read_only: true
        cap_add: [NET_ADMIN]
        cap_drop: [ALL]
        privileged: false
        extra_hosts: ["a:1.2.3.4", "b=5.6.7.8"]
        dns: 8.8.8.8
    """, env={"C": "from-env"}, extra="""
  db: {image: busybox}
networks: {front: {}, back: {driver: bridge, labels: {x: y}}}
""")
    assert s.build.context == str(tmp_path / "ctx") and s.build.dockerfile == "Containerfile"
    assert s.build.args == {"V": "1", "W": ""} and s.build.target == "prod"
    assert s.command == ["sh", "-c", 'echo "a b"'] and s.entrypoint == ["/bin/sh", "-c"]
    assert s.environment == {"FROM_FILE": "1", "A": "1", "B": "true", "C": "from-env", "D": ""}
    assert s.networks["front"].aliases == ["w", "www"] and s.networks["back"] is None
    assert s.depends_on["db"].condition == "service_started"
    assert s.restart == "on-failure:3"
    h = s.healthcheck
    assert (h.test, h.interval, h.timeout, h.retries, h.start_period) == (["CMD", "true"], 90, 0.5, 4, 2)
    assert s.labels == {"a": "b", "c": ""}
    assert (s.limits.cpus, s.limits.memory, s.limits.pids) == (0.5, 1 << 30, 64)
    assert (s.container_name, s.working_dir, s.user, s.hostname, s.stop_signal, s.stop_grace_period) == \
        ("my-web", "/w", "1000:1000", "h", "SIGINT", 3)
    assert s.tty and s.stdin_open and s.init and s.read_only and not s.privileged
    assert s.cap_add == ["NET_ADMIN"] and s.cap_drop == ["ALL"]
    assert s.extra_hosts == ["a:1.2.3.4", "b:5.6.7.8"] and s.dns == ["8.8.8.8"]


@pytest.mark.parametrize("body,want", [
    ("depends_on: {db: {condition: service_healthy}}", "service_healthy"),
    ("depends_on: {db: {condition: service_completed_successfully}}", "service_completed_successfully"),
    ("depends_on: {db: {}}", "service_started"),
])
def test_depends_on_conditions(tmp_path, body, want):
    s = service(tmp_path, "image: busybox\n" + body, extra="\n  db: {image: busybox}\n")
    assert s.depends_on["db"].condition == want


@pytest.mark.parametrize("body,want", [
    ("healthcheck: {test: 'wget -q localhost'}", ["CMD-SHELL", "wget -q localhost"]),
    ("healthcheck: {test: [CMD-SHELL, 'exit 0']}", ["CMD-SHELL", "exit 0"]),
])
def test_healthcheck_forms(tmp_path, body, want):
    assert service(tmp_path, "image: busybox\n" + body).healthcheck.test == want


@pytest.mark.parametrize("body", ["healthcheck: {disable: true}", "healthcheck: {test: [NONE]}"])
def test_healthcheck_disabled(tmp_path, body):
    assert service(tmp_path, "image: busybox\n" + body).healthcheck.disable


@pytest.mark.parametrize("text,message", [
    ("services:\n  web:\n    imgae: busybox\n", 'services.web: unknown key "imgae"'),
    ("services:\n  web:\n    image: busybox\n    ports: [x]\n", 'services.web.ports[0]: invalid port "x"'),
    ("services:\n  web:\n    image: busybox\n    depends_on: [db]\n",
     'service "web" depends on undefined service "db"'),
    ("services:\n  web:\n    image: busybox\n    depends_on: {db: {condition: bogus}}\n  db: {image: b}\n",
     'services.web.depends_on.db.condition: invalid condition "bogus"'),
    ("services:\n  web:\n    image: busybox\n    networks: [front]\n",
     'service "web" refers to undefined network front: invalid compose project'),
    ("services:\n  web:\n    image: busybox\n    volumes: ['data:/d']\n",
     'service "web" refers to undefined volume data: invalid compose project'),
    ("services:\n  web:\n    command: x\n", "services.web: has neither an image nor a build context specified"),
    ("services:\n  web:\n    image: busybox\n    restart: sometimes\n",
     'services.web.restart: invalid restart policy "sometimes"'),
    ("services:\n  web:\n    image: busybox\n    healthcheck: {interval: soon}\n",
     'services.web.healthcheck.interval: invalid duration "soon"'),
    ("services:\n  web:\n    image: busybox\n    healthcheck: {test: [RUN, x]}\n",
     'services.web.healthcheck.test: must start with "CMD", "CMD-SHELL" or "NONE"'),
    ("services:\n  web:\n    image: busybox\n    tty: maybe\n", "services.web.tty must be a boolean"),
    ("services:\n  web:\n    image: busybox\n    environment: 3\n",
     "services.web.environment must be a list or mapping"),
    ("services:\n  web:\n    image: busybox\n    deploy: {resources: {limits: {memory: lots}}}\n",
     'services.web.deploy.resources.limits.memory: invalid size "lots"'),
    ("services:\n  web:\n    image: busybox\n    deploy: {resources: {limits: {gpus: 1}}}\n",
     'services.web.deploy.resources.limits: unknown key "gpus"'),
    ("services:\n  web:\n    image: busybox\n    env_file: missing.env\n",
     "services.web.env_file[0]: env file"),
    ("servics:\n  web: {}\n", '(root): unknown key "servics"'),
    ("services:\n  a: {image: x, depends_on: [b]}\n  b: {image: x, depends_on: [a]}\n",
     "dependency cycle detected"),
    ("services:\n  web: {image: '${X:?X is needed}'}\n",
     "services.web.image: required variable X is missing a value: X is needed"),
    ("services: [\n", "invalid YAML"),
    ("networks: {n: {drvier: bridge}}\nservices:\n  web: {image: x}\n", 'networks.n: unknown key "drvier"'),
])
def test_errors(tmp_path, text, message):
    with pytest.raises(ComposeError) as e:
        project(tmp_path, text)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


# -- files, overrides, project names ----------------------------------------------------------------------
def test_override_merging(tmp_path):
    (tmp_path / "compose.yaml").write_text(textwrap.dedent("""
        services:
          web:
            image: busybox
            command: [a, b]
            environment: [A=1, B=2]
            labels: {l: "1"}
            ports: ["80"]
            volumes: ["data:/data", "/cache"]
            cap_add: [NET_ADMIN]
            healthcheck: {test: [CMD, a], retries: 2}
        volumes: {data: {}, other: {}}
    """))
    (tmp_path / "prod.yaml").write_text(textwrap.dedent("""
        services:
          web:
            image: busybox:1.36
            command: [c]
            environment: {B: "3", C: "4"}
            ports: ["81"]
            volumes: ["other:/data"]
            cap_add: [NET_ADMIN, SYS_TIME]
            healthcheck: {test: [CMD, b]}
    """))
    s = load(["compose.yaml", "prod.yaml"], cwd=str(tmp_path), env={}).services["web"]
    assert s.image == "busybox:1.36" and s.command == ["c"]
    assert s.environment == {"A": "1", "B": "3", "C": "4"}
    assert [p.target for p in s.ports] == [80, 81]
    assert [(m.source, m.target) for m in s.volumes] == [("other", "/data"), ("", "/cache")]
    assert s.cap_add == ["NET_ADMIN", "SYS_TIME"]
    assert s.healthcheck.test == ["CMD", "b"] and s.healthcheck.retries == 2


def test_merge_rules():
    assert merge({"command": ["a", "b"]}, {"command": ["c"]}) == {"command": ["c"]}
    assert merge({"environment": ["A=1"]}, {"environment": {"B": "2"}}, "") == {"environment": {"A": "1", "B": "2"}}
    assert merge({"depends_on": ["a"]}, {"depends_on": {"b": {"condition": "service_healthy"}}}) == \
        {"depends_on": {"a": None, "b": {"condition": "service_healthy"}}}


def test_default_files_and_override(tmp_path):
    (tmp_path / "docker-compose.yml").write_text("services:\n  web: {image: busybox}\n")
    (tmp_path / "docker-compose.override.yml").write_text("services:\n  web: {image: busybox:musl}\n")
    sub = tmp_path / "sub"
    sub.mkdir()
    p = load(cwd=str(sub), env={})
    assert p.services["web"].image == "busybox:musl"
    assert p.working_dir == str(tmp_path)


def test_no_file(tmp_path):
    with pytest.raises(ComposeError, match="no configuration file provided"):
        load(cwd=str(tmp_path), env={})


@pytest.mark.parametrize("dirname,want", [("My App", "myapp"), ("_x.Y-z", "xy-z"), ("web_1", "web_1")])
def test_normalize_project_name(dirname, want):
    assert normalize_project_name(dirname) == want


def test_project_name_sources(tmp_path):
    d = tmp_path / "My.Dir"
    d.mkdir()
    (d / "compose.yaml").write_text("services:\n  web: {image: busybox}\n")
    assert load(cwd=str(d), env={}).name == "mydir"
    (d / "compose.yaml").write_text("name: fromfile\nservices:\n  web: {image: busybox}\n")
    assert load(cwd=str(d), env={}).name == "fromfile"
    assert load(cwd=str(d), env={"COMPOSE_PROJECT_NAME": "fromenv"}).name == "fromenv"
    assert load(cwd=str(d), env={"COMPOSE_PROJECT_NAME": "fromenv"}, project_name="flag").name == "flag"
    with pytest.raises(ComposeError, match='invalid project name "Bad"'):
        load(cwd=str(d), env={}, project_name="Bad")


def test_names_and_config_output(tmp_path):
    p = project(tmp_path, """
        name: demo
        services:
          web:
            image: busybox
            networks: [front]
            volumes: [data:/data]
          db: {image: busybox}
        networks: {front: {}, ext: {external: true}, named: {name: custom}}
        volumes: {data: {}}
    """)
    assert p.networks["front"].name == "demo_front" and p.networks["default"].name == "demo_default"
    assert p.networks["ext"].name == "ext" and p.networks["ext"].external
    assert p.networks["named"].name == "custom"
    assert p.volumes["data"].name == "demo_data"
    assert p.services["web"].networks == {"front": None}
    doc = yaml.safe_load(yaml.safe_dump(to_config(p)))
    assert doc["name"] == "demo"
    assert doc["services"]["web"]["volumes"] == [{"type": "volume", "source": "data", "target": "/data",
                                                  "volume": {}}]
    assert doc["services"]["db"]["networks"] == {"default": None}
    assert doc["networks"]["ext"] == {"name": "ext", "external": True}


def test_profiles(tmp_path):
    text = "services:\n  web: {image: x}\n  debug: {image: x, profiles: [dev]}\n"
    assert sorted(project(tmp_path, text).services) == ["web"]
    assert sorted(project(tmp_path, text, env={"COMPOSE_PROFILES": "dev"}).services) == ["debug", "web"]
    assert sorted(project(tmp_path, text, profiles=["dev"]).services) == ["debug", "web"]


def test_older_resource_keys_and_deploy_precedence(tmp_path):
    s = service(tmp_path, "image: x\nmem_limit: 32m\ncpus: 0.25\npids_limit: 9\n"
                          "deploy: {resources: {limits: {memory: 64m}}}\n")
    assert (s.limits.cpus, s.limits.memory, s.limits.pids) == (0.25, 64 << 20, 9)
    with pytest.raises(ComposeError, match='services.web.cpus: invalid number "lots"'):
        service(tmp_path, "image: x\ncpus: lots\n")
