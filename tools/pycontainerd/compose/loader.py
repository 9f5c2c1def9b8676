"""Compose files to a Project: find the files, parse (PyYAML), interpolate, merge overrides, validate and
normalise every service field as the Compose spec defines it. Errors name the key."""

from __future__ import annotations

import os
import re
import shlex
from typing import Any, Mapping

import yaml

from pyoci import goduration

from .interpolate import environment, interpolate, read_dotenv
from .model import (Build, ComposeError, Dependency, Healthcheck, Limits, Mount, Network, Port, Project, Service,
                    ServiceNetwork, Volume)

DEFAULT_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
OVERRIDE_FILES = ("compose.override.yaml", "compose.override.yml", "docker-compose.override.yaml",
                  "docker-compose.override.yml")
TOP_KEYS = {"version", "name", "services", "networks", "volumes", "configs", "secrets"}
SERVICE_KEYS = {
    "image", "build", "command", "entrypoint", "environment", "env_file", "ports", "volumes", "networks",
    "depends_on", "restart", "healthcheck", "container_name", "labels", "deploy", "working_dir", "user", "hostname",
    "stop_signal", "stop_grace_period", "tty", "stdin_open", "init", "read_only", "cap_add", "cap_drop",
    "privileged", "extra_hosts", "dns", "expose", "network_mode",
    "profiles", "mem_limit", "cpus", "pids_limit",   # the older resource keys; deploy's limits win
    # accepted and not acted on (no effect on a single-host daemon)
    "platform", "pull_policy", "logging", "domainname",
}
BUILD_KEYS = {"context", "dockerfile", "args", "target", "labels", "cache_from", "network"}
HEALTH_KEYS = {"test", "interval", "timeout", "retries", "start_period", "start_interval", "disable"}
DEP_CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")
RESTARTS = re.compile(r"^(no|always|unless-stopped|on-failure(:\d+)?)$")
PROJECT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
SERVICE_NAME = re.compile(r"^[a-zA-Z0-9._-]+$")


# -- small typed readers: each error names its key ------------------------------------------------------
def _type_error(where: str, want: str) -> ComposeError:
    return ComposeError(f"{where} must be a {want}")


def _str(v: Any, where: str) -> str:
    if isinstance(v, bool) or v is None or isinstance(v, (dict, list)):
        raise _type_error(where, "string")
    return str(v)


def _bool(v: Any, where: str) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "false", "yes", "no", "1", "0"):
        return v.lower() in ("true", "yes", "1")
    raise _type_error(where, "boolean")


def _int(v: Any, where: str) -> int:
    if isinstance(v, bool):
        raise _type_error(where, "integer")
    try:
        return int(str(v))
    except ValueError:
        raise _type_error(where, "integer") from None


def _float(v: Any, where: str) -> float:
    if isinstance(v, bool):
        raise _type_error(where, "number")
    try:
        return float(str(v) or 0)
    except ValueError:
        raise ComposeError(f'{where}: invalid number "{v}"') from None


def _list(v: Any, where: str) -> list:
    if not isinstance(v, list):
        raise _type_error(where, "list")
    return v


def _map(v: Any, where: str) -> dict:
    if not isinstance(v, dict):
        raise _type_error(where, "mapping")
    return v


def _strs(v: Any, where: str) -> list[str]:
    return [_str(x, f"{where}[{i}]") for i, x in enumerate(_list(v, where))]


def _keys(d: dict, allowed: set[str], where: str) -> None:
    for k in d:
        if not (isinstance(k, str) and (k in allowed or k.startswith("x-"))):
            raise ComposeError(f'{where}: unknown key "{k}"')


def duration(v: Any, where: str) -> float:
    """A Go duration (`1m30s`, `500ms`) or a number of seconds."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    text = _str(v, where).strip()
    try:
        return goduration.seconds(text)
    except ValueError:
        raise ComposeError(f'{where}: invalid duration "{text}"') from None


def byte_size(v: Any, where: str) -> int:
    """`512m`, `1g`, `1024`, `2gb` → bytes."""
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([bkmg]?)b?", _str(v, where).strip().lower())
    if not m:
        raise ComposeError(f'{where}: invalid size "{v}"')
    return int(float(m.group(1)) * {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2)])


def _command(v: Any, where: str) -> list[str] | None:
    if v is None:
        return None
    if isinstance(v, str):
        try:
            return shlex.split(v)
        except ValueError as exc:
            raise ComposeError(f"{where}: {exc}") from None
    return _strs(v, where)


def _kv_map(v: Any, where: str, sep: str = "=", allow_none: bool = True) -> dict[str, str | None]:
    """environment/labels/args: a list of `K=V` (or `K`) or a mapping; numbers and booleans as strings."""
    out: dict[str, str | None] = {}
    if isinstance(v, list):
        for i, item in enumerate(v):
            k, s, val = _str(item, f"{where}[{i}]").partition(sep)
            out[k] = val if s else None
    elif isinstance(v, dict):
        for k, val in v.items():
            if isinstance(val, (dict, list)):
                raise _type_error(f"{where}.{k}", "string, number, boolean or null")
            out[str(k)] = None if val is None else (str(val).lower() if isinstance(val, bool) else str(val))
    elif v is not None:
        raise _type_error(where, "list or mapping")
    if not allow_none:
        out = {k: val or "" for k, val in out.items()}
    return out


# -- ports -----------------------------------------------------------------------------------------------
def _port_range(text: str, where: str, raw: str) -> tuple[int, int]:
    a, _, b = text.partition("-")
    try:
        lo, hi = int(a), int(b or a)
    except ValueError:
        raise ComposeError(f'{where}: invalid port "{raw}"') from None
    if not (0 < lo <= hi <= 65535):
        raise ComposeError(f'{where}: invalid port "{raw}"')
    return lo, hi


def parse_port(v: Any, where: str) -> list[Port]:
    if isinstance(v, dict):
        _keys(v, {"target", "published", "host_ip", "protocol", "mode", "name", "app_protocol"}, where)
        if "target" not in v:
            raise ComposeError(f"{where}.target is required")
        target = _int(v["target"], f"{where}.target")
        if not 0 < target <= 65535:
            raise ComposeError(f'{where}.target: invalid port "{v["target"]}"')
        published = "" if v.get("published") in (None, "") else _str(v["published"], f"{where}.published")
        if published:
            _port_range(published, f"{where}.published", published)
        proto = _str(v.get("protocol", "tcp"), f"{where}.protocol").lower()
        if proto not in ("tcp", "udp", "sctp"):
            raise ComposeError(f'{where}.protocol: invalid protocol "{proto}"')
        return [Port(target, published, _str(v.get("host_ip", ""), f"{where}.host_ip"), proto,
                     _str(v.get("mode", "ingress"), f"{where}.mode"))]
    raw = _str(v, where)
    body, _, proto = raw.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise ComposeError(f'{where}: invalid protocol "{proto}"')
    host_ip = ""
    if body.startswith("["):  # [::1]:8080:80
        end = body.find("]")
        host_ip, body = body[1:end], body[end + 2:]
        parts = body.rsplit(":", 1) if ":" in body else ["", body]
    else:
        parts = body.split(":")
        if len(parts) == 3:
            host_ip, parts = parts[0], parts[1:]
        elif len(parts) > 3:
            raise ComposeError(f'{where}: invalid port "{raw}"')
    published, container = (parts if len(parts) == 2 else ["", parts[0]])
    lo, hi = _port_range(container, where, raw)
    if published:
        plo, phi = _port_range(published, where, raw)
        if phi - plo == hi - lo:
            return [Port(t, str(plo + i), host_ip, proto) for i, t in enumerate(range(lo, hi + 1))]
        if hi != lo:
            raise ComposeError(f'{where}: invalid port "{raw}"')
    return [Port(t, published, host_ip, proto) for t in range(lo, hi + 1)]


# -- volumes ---------------------------------------------------------------------------------------------
def _bind_source(src: str, project_dir: str) -> str:
    if src.startswith("~"):
        src = os.path.expanduser(src)
    return os.path.normpath(os.path.join(project_dir, src))


def parse_volume(v: Any, where: str, project_dir: str) -> Mount:
    if isinstance(v, dict):
        _keys(v, {"type", "source", "target", "read_only", "bind", "volume", "tmpfs", "consistency"}, where)
        mtype = _str(v.get("type", ""), f"{where}.type")
        if mtype not in ("volume", "bind", "tmpfs"):
            raise ComposeError(f'{where}.type: invalid mount type "{mtype}"')
        if not v.get("target"):
            raise ComposeError(f"{where}.target is required")
        source = _str(v.get("source", ""), f"{where}.source") if v.get("source") is not None else ""
        if mtype == "bind":
            if not source:
                raise ComposeError(f"{where}.source is required for a bind mount")
            source = _bind_source(source, project_dir)
        size = 0
        if mtype == "tmpfs" and v.get("tmpfs"):
            size = byte_size(_map(v["tmpfs"], f"{where}.tmpfs").get("size", 0), f"{where}.tmpfs.size")
        return Mount(mtype, _str(v["target"], f"{where}.target"), source,
                     _bool(v.get("read_only", False), f"{where}.read_only"), size)
    raw = _str(v, where)
    parts = raw.split(":")
    if len(parts) == 1:
        return Mount("volume", parts[0])
    if len(parts) > 3 or not parts[0] or not parts[1]:
        raise ComposeError(f'{where}: invalid volume specification "{raw}"')
    src, target = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else ""
    for opt in filter(None, mode.split(",")):
        if opt not in ("ro", "rw", "z", "Z", "nocopy", "shared", "rshared", "slave", "rslave", "private",
                       "rprivate"):
            raise ComposeError(f'{where}: invalid mode "{opt}" in "{raw}"')
    ro = "ro" in mode.split(",")
    if src.startswith(("/", ".", "~")):
        return Mount("bind", target, _bind_source(src, project_dir), ro)
    return Mount("volume", target, src, ro)


# -- services --------------------------------------------------------------------------------------------
def _healthcheck(v: Any, where: str) -> Healthcheck:
    d = _map(v, where)
    _keys(d, HEALTH_KEYS, where)
    h = Healthcheck()
    if _bool(d.get("disable", False), f"{where}.disable"):
        return Healthcheck(disable=True)
    test = d.get("test")
    if isinstance(test, str):
        h.test = ["CMD-SHELL", test]
    elif test is not None:
        h.test = _strs(test, f"{where}.test")
        if not h.test or h.test[0] not in ("CMD", "CMD-SHELL", "NONE"):
            raise ComposeError(f'{where}.test: must start with "CMD", "CMD-SHELL" or "NONE"')
    if h.test == ["NONE"]:
        return Healthcheck(disable=True)
    for key in ("interval", "timeout", "start_period"):
        if key in d:
            setattr(h, key, duration(d[key], f"{where}.{key}"))
    if "retries" in d:
        h.retries = _int(d["retries"], f"{where}.retries")
    return h


def _networks(v: Any, where: str) -> dict[str, ServiceNetwork | None]:
    if isinstance(v, list):
        return {_str(n, f"{where}[{i}]"): None for i, n in enumerate(v)}
    out: dict[str, ServiceNetwork | None] = {}
    for k, cfg in _map(v, where).items():
        if cfg is None:
            out[str(k)] = None
            continue
        cfg = _map(cfg, f"{where}.{k}")
        _keys(cfg, {"aliases", "ipv4_address", "ipv6_address", "priority", "link_local_ips", "mac_address"},
              f"{where}.{k}")
        out[str(k)] = ServiceNetwork(_strs(cfg.get("aliases") or [], f"{where}.{k}.aliases"),
                                     _str(cfg.get("ipv4_address", ""), f"{where}.{k}.ipv4_address"),
                                     _str(cfg.get("ipv6_address", ""), f"{where}.{k}.ipv6_address"))
    return out


def _ipam(v: Any, where: str) -> list[dict[str, str]]:
    """A network's ipam.config entries (subnet, gateway, ip_range); the driver must be the default."""
    if v is None:
        return []
    v = _map(v, where)
    _keys(v, {"driver", "config", "options"}, where)
    if v.get("driver", "default") != "default":
        raise ComposeError(f'{where}.driver: only the "default" IPAM driver is supported')
    out = []
    for i, c in enumerate(v.get("config") or []):
        w = f"{where}.config[{i}]"
        c = _map(c, w)
        _keys(c, {"subnet", "gateway", "ip_range", "aux_addresses"}, w)
        entry: dict = {key: _str(c[key], f"{w}.{key}") for key in ("subnet", "gateway", "ip_range") if c.get(key)}
        if c.get("aux_addresses"):
            entry["aux_addresses"] = {str(a): _str(b, f"{w}.aux_addresses.{a}")
                                      for a, b in _map(c["aux_addresses"], f"{w}.aux_addresses").items()}
        out.append(entry)
    return out


def _depends_on(v: Any, where: str) -> dict[str, Dependency]:
    if isinstance(v, list):
        return {_str(n, f"{where}[{i}]"): Dependency() for i, n in enumerate(v)}
    out = {}
    for k, cfg in _map(v, where).items():
        cfg = _map(cfg or {}, f"{where}.{k}")
        _keys(cfg, {"condition", "restart", "required"}, f"{where}.{k}")
        cond = _str(cfg.get("condition", "service_started"), f"{where}.{k}.condition")
        if cond not in DEP_CONDITIONS:
            raise ComposeError(f'{where}.{k}.condition: invalid condition "{cond}" (one of {", ".join(DEP_CONDITIONS)})')
        out[str(k)] = Dependency(cond, _bool(cfg.get("restart", False), f"{where}.{k}.restart"),
                                 _bool(cfg.get("required", True), f"{where}.{k}.required"))
    return out


def _env_files(v: Any, where: str, project_dir: str, env: Mapping[str, str]) -> dict[str, str | None]:
    items = [v] if isinstance(v, str) else _list(v, where)
    out: dict[str, str | None] = {}
    for i, item in enumerate(items):
        required = True
        if isinstance(item, dict):
            required = _bool(item.get("required", True), f"{where}[{i}].required")
            item = item.get("path")
        path = os.path.join(project_dir, _str(item, f"{where}[{i}]"))
        if not os.path.exists(path):
            if required:
                raise ComposeError(f"{where}[{i}]: env file {path} not found")
            continue
        out.update(read_dotenv(path, env))
    return out


def _service(name: str, d: Any, project_dir: str, env: Mapping[str, str]) -> Service:
    where = f"services.{name}"
    if not SERVICE_NAME.match(name):
        raise ComposeError(f'{where}: invalid service name "{name}"')
    d = _map(d or {}, where)
    _keys(d, SERVICE_KEYS, where)
    s = Service(name)
    if "image" in d:
        s.image = _str(d["image"], f"{where}.image")
    if "build" in d:
        b = d["build"]
        if isinstance(b, str):
            b = {"context": b}
        b = _map(b, f"{where}.build")
        _keys(b, BUILD_KEYS, f"{where}.build")
        s.build = Build(_bind_source(_str(b.get("context", "."), f"{where}.build.context"), project_dir),
                        _str(b.get("dockerfile", "Dockerfile"), f"{where}.build.dockerfile"),
                        {k: v or "" for k, v in _kv_map(b.get("args"), f"{where}.build.args").items()},
                        _str(b.get("target", ""), f"{where}.build.target"))
    if not s.image and not s.build:
        raise ComposeError(f"{where}: has neither an image nor a build context specified")
    s.command = _command(d.get("command"), f"{where}.command")
    s.entrypoint = _command(d.get("entrypoint"), f"{where}.entrypoint")
    environ: dict[str, str | None] = {}
    if "env_file" in d:
        environ.update(_env_files(d["env_file"], f"{where}.env_file", project_dir, env))
    for k, v in _kv_map(d.get("environment"), f"{where}.environment").items():
        if v is None:  # a bare name takes the value of the environment, or is left out
            if k in env:
                environ[k] = env[k]
            continue
        environ[k] = v
    s.environment = environ
    s.ports = [p for i, raw in enumerate(_list(d.get("ports") or [], f"{where}.ports"))
               for p in parse_port(raw, f"{where}.ports[{i}]")]
    s.volumes = [parse_volume(raw, f"{where}.volumes[{i}]", project_dir)
                 for i, raw in enumerate(_list(d.get("volumes") or [], f"{where}.volumes"))]
    s.network_mode = _str(d.get("network_mode", ""), f"{where}.network_mode")
    if "networks" in d and s.network_mode:
        raise ComposeError(f"{where}: network_mode and networks cannot be combined")
    s.networks = _networks(d["networks"], f"{where}.networks") if d.get("networks") is not None else {}
    if not s.networks and not s.network_mode:
        s.networks = {"default": None}
    s.depends_on = _depends_on(d.get("depends_on") or {}, f"{where}.depends_on")
    if "restart" in d:
        s.restart = _str(d["restart"], f"{where}.restart")
        if not RESTARTS.match(s.restart):
            raise ComposeError(f'{where}.restart: invalid restart policy "{s.restart}"')
    if d.get("healthcheck") is not None:
        s.healthcheck = _healthcheck(d["healthcheck"], f"{where}.healthcheck")
    s.labels = {k: v or "" for k, v in _kv_map(d.get("labels"), f"{where}.labels").items()}
    w = where
    s.limits = Limits(_float(d.get("cpus", 0), f"{w}.cpus"),
                      byte_size(d["mem_limit"], f"{w}.mem_limit") if "mem_limit" in d else 0,
                      _int(d.get("pids_limit", 0), f"{w}.pids_limit"))
    if d.get("deploy") is not None:
        dep = _map(d["deploy"], f"{where}.deploy")
        if dep.get("replicas") is not None:
            s.replicas = _int(dep["replicas"], f"{where}.deploy.replicas")
            if s.replicas < 0:
                raise ComposeError(f"{where}.deploy.replicas must be greater than or equal to 0")
        res = _map(dep.get("resources") or {}, f"{where}.deploy.resources")
        lim = _map(res.get("limits") or {}, f"{where}.deploy.resources.limits")
        w = f"{where}.deploy.resources.limits"
        _keys(lim, {"cpus", "memory", "pids"}, w)
        if "cpus" in lim:
            s.limits.cpus = _float(lim["cpus"], f"{w}.cpus")
        if "memory" in lim:
            s.limits.memory = byte_size(lim["memory"], f"{w}.memory")
        if "pids" in lim:
            s.limits.pids = _int(lim["pids"], f"{w}.pids")
    for key in ("container_name", "working_dir", "user", "hostname", "stop_signal"):
        if key in d:
            setattr(s, key, _str(d[key], f"{where}.{key}"))
    if s.container_name and not re.match(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$", s.container_name):
        raise ComposeError(f'{where}.container_name: invalid container name "{s.container_name}"')
    if "stop_grace_period" in d:
        s.stop_grace_period = duration(d["stop_grace_period"], f"{where}.stop_grace_period")
    for key in ("tty", "stdin_open", "init", "read_only", "privileged"):
        if key in d:
            setattr(s, key, _bool(d[key], f"{where}.{key}"))
    for key in ("cap_add", "cap_drop", "dns"):
        if key in d:
            v = d[key]
            setattr(s, key, [v] if isinstance(v, str) else _strs(v, f"{where}.{key}"))
    if "expose" in d:
        s.expose = [str(x) for x in _list(d["expose"], f"{where}.expose")]
    if "extra_hosts" in d:
        hosts = d["extra_hosts"]
        if isinstance(hosts, dict):
            s.extra_hosts = [f"{k}:{v}" for k, v in hosts.items()]
        else:
            s.extra_hosts = [h.replace("=", ":", 1) if "=" in h else h for h in _strs(hosts, f"{where}.extra_hosts")]
    return s


# -- merging override files ------------------------------------------------------------------------------
_MAP_LISTS = {"environment": "=", "labels": "=", "args": "="}
_REPLACED = {"command", "entrypoint", "test"}


def _as_map(key: str, v: Any) -> Any:
    if isinstance(v, list) and key in _MAP_LISTS:
        return {k: val for k, val in _kv_map(v, key).items()}
    if isinstance(v, list) and key in ("depends_on", "networks"):
        return {str(x): None for x in v}
    return v


def _volume_target(v: Any) -> str:
    if isinstance(v, dict):
        return str(v.get("target", ""))
    parts = str(v).split(":")
    return parts[1] if len(parts) > 1 else parts[0]


def merge(base: Any, over: Any, key: str = "") -> Any:
    """compose's override rules: mappings merge, command/entrypoint/healthcheck.test are replaced, volumes
    merge by target, ports append, other sequences append without duplicates, scalars are replaced."""
    if key in _REPLACED:
        return over
    base, over = _as_map(key, base), _as_map(key, over)
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = merge(out[k], v, str(k)) if k in out and out[k] is not None and v is not None else v
        return out
    if isinstance(base, list) and isinstance(over, list):
        if key == "volumes":
            by_target = {_volume_target(v): v for v in base}
            by_target.update({_volume_target(v): v for v in over})
            return list(by_target.values())
        if key == "ports":
            return base + over
        return base + [v for v in over if v not in base]
    return over


# -- the project -----------------------------------------------------------------------------------------
def normalize_project_name(name: str) -> str:
    """compose's normalisation of a directory name: lower case, only [a-z0-9_-], no leading - or _."""
    return re.sub(r"[^-_a-z0-9]", "", name.lower()).lstrip("-_")


def find_files(cwd: str) -> list[str]:
    """The default compose file (searching up from cwd) and its override beside it."""
    d = os.path.abspath(cwd)
    while True:
        for name in DEFAULT_FILES:
            if os.path.isfile(os.path.join(d, name)):
                found = [os.path.join(d, name)]
                for o in OVERRIDE_FILES:
                    if os.path.isfile(os.path.join(d, o)):
                        found.append(os.path.join(d, o))
                        break
                return found
        parent = os.path.dirname(d)
        if parent == d:
            raise ComposeError("no configuration file provided: not found")
        d = parent


def _read(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except FileNotFoundError:
        raise ComposeError(f"open {path}: no such file or directory") from None
    except OSError as exc:
        raise ComposeError(f"open {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ComposeError(f"{path}: invalid YAML{at}: {getattr(exc, 'problem', None) or exc}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ComposeError(f"{path}: top-level object must be a mapping")
    return doc


def load(files: list[str] | None = None, project_name: str = "", cwd: str | None = None,
         env: Mapping[str, str] | None = None, env_file: str | None = None,
         profiles: list[str] | None = None) -> Project:
    """The project of the compose files (`-f`, else the defaults), named by `-p`, COMPOSE_PROJECT_NAME, the
    top-level `name:` or the directory of the first file."""
    cwd = cwd or os.getcwd()
    paths = [os.path.join(cwd, f) for f in files] if files else find_files(cwd)
    project_dir = os.path.dirname(os.path.abspath(paths[0]))
    if env is None:
        env = environment(project_dir, env_file)
    doc: dict = {}
    for path in paths:
        raw = _read(path)
        _keys(raw, TOP_KEYS, "(root)")
        doc = merge(doc, interpolate(raw, env), "")
    name = project_name or env.get("COMPOSE_PROJECT_NAME", "")
    if not name and doc.get("name"):
        name = _str(doc["name"], "name")
    explicit = bool(name)
    name = name or normalize_project_name(os.path.basename(project_dir))
    if not PROJECT_NAME.match(name):
        raise ComposeError(f'invalid project name "{name}": must consist only of lowercase alphanumeric characters, '
                           "hyphens, and underscores as well as start with a letter or number"
                           if explicit else f'project name "{name}" derived from the directory is not valid')
    services_raw = _map(doc.get("services") or {}, "services")
    if not services_raw:
        raise ComposeError("no service selected" if "services" in doc else "services: must be defined")
    active = set(profiles if profiles is not None else filter(None, env.get("COMPOSE_PROFILES", "").split(",")))
    services = {}
    for k, v in services_raw.items():
        wanted = _strs((v or {}).get("profiles") or [], f"services.{k}.profiles") if isinstance(v, dict) else []
        if wanted and not active.intersection(wanted):
            continue  # a service with profiles runs only when one of them is active (--profile, COMPOSE_PROFILES)
        services[str(k)] = _service(str(k), v, project_dir, env)
    if not services:
        raise ComposeError("no service selected")

    networks: dict[str, Network] = {}
    for k, v in _map(doc.get("networks") or {}, "networks").items():
        v = _map(v or {}, f"networks.{k}")
        _keys(v, {"name", "driver", "external", "labels", "driver_opts", "ipam", "internal", "attachable",
                  "enable_ipv6"}, f"networks.{k}")
        external = _bool(v.get("external", False), f"networks.{k}.external")
        nname = _str(v.get("name", "" if not external else k), f"networks.{k}.name") or f"{name}_{k}"
        networks[str(k)] = Network(nname, _str(v.get("driver", "bridge"), f"networks.{k}.driver"), external,
                                   {a: b or "" for a, b in _kv_map(v.get("labels"), f"networks.{k}.labels").items()},
                                   _bool(v.get("internal", False), f"networks.{k}.internal"),
                                   _bool(v.get("enable_ipv6", False), f"networks.{k}.enable_ipv6"),
                                   _ipam(v.get("ipam"), f"networks.{k}.ipam"))
    volumes: dict[str, Volume] = {}
    for k, v in _map(doc.get("volumes") or {}, "volumes").items():
        v = _map(v or {}, f"volumes.{k}")
        _keys(v, {"name", "driver", "external", "labels", "driver_opts"}, f"volumes.{k}")
        external = _bool(v.get("external", False), f"volumes.{k}.external")
        vname = _str(v.get("name", "" if not external else k), f"volumes.{k}.name") or f"{name}_{k}"
        volumes[str(k)] = Volume(vname, _str(v.get("driver", "local"), f"volumes.{k}.driver"), external,
                                 {a: b or "" for a, b in _kv_map(v.get("labels"), f"volumes.{k}.labels").items()})

    for s in services.values():
        for dep in s.depends_on:
            if dep not in services:
                raise ComposeError(f'service "{s.name}" depends on undefined service "{dep}"')
        for net in s.networks:
            if net not in networks:
                if net != "default":
                    raise ComposeError(f'service "{s.name}" refers to undefined network {net}: invalid compose '
                                       "project")
                networks["default"] = Network(f"{name}_default")
        for m in s.volumes:
            if m.type == "volume" and m.source and m.source not in volumes:
                raise ComposeError(f'service "{s.name}" refers to undefined volume {m.source}: invalid compose '
                                   "project")
        if s.network_mode.startswith("service:") and s.network_mode[8:] not in services:
            raise ComposeError(f'service "{s.name}" depends on undefined service "{s.network_mode[8:]}"')
        if s.network_mode.startswith("service:"):  # an implicit dependency, as compose makes it
            s.depends_on.setdefault(s.network_mode[8:], Dependency())
    project = Project(name, project_dir, services, networks, volumes)
    project.order()  # a cycle is an error now, not at `up`
    return project
