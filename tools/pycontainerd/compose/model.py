"""The compose model after loading: a project of services, networks and volumes, every field in its long
(normalised) form, as `docker compose config` prints it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from pyoci.errors import OCIError


class ComposeError(OCIError):
    """A bad compose file or project: one line naming the key (`services.web.ports[0]: invalid port "x"`)."""


@dataclass
class Build:
    context: str
    dockerfile: str = "Dockerfile"
    args: dict[str, str] = field(default_factory=dict)
    target: str = ""


@dataclass
class Port:
    target: int
    published: str = ""          # "" = a random host port; "8080" or a range "8080-8090"
    host_ip: str = ""
    protocol: str = "tcp"
    mode: str = "ingress"

    def publish_flag(self) -> str:
        """docker run's -p form of this port."""
        host = f"{self.host_ip}:" if self.host_ip else ""
        pub = f"{self.published}:" if self.published else (":" if self.host_ip else "")
        return f"{host}{pub}{self.target}/{self.protocol}"


@dataclass
class Mount:
    type: str                    # volume | bind | tmpfs
    target: str
    source: str = ""             # a volume's key in the file (volume) or an absolute host path (bind)
    read_only: bool = False
    tmpfs_size: int = 0


@dataclass
class ServiceNetwork:
    aliases: list[str] = field(default_factory=list)
    ipv4_address: str = ""
    ipv6_address: str = ""


@dataclass
class Dependency:
    condition: str = "service_started"   # service_started | service_healthy | service_completed_successfully
    restart: bool = False
    required: bool = True


@dataclass
class Healthcheck:
    test: list[str] = field(default_factory=list)   # ["CMD", ...] | ["CMD-SHELL", "..."] | ["NONE"]
    interval: float = 30.0
    timeout: float = 30.0
    retries: int = 3
    start_period: float = 0.0
    disable: bool = False


@dataclass
class Limits:
    cpus: float = 0.0
    memory: int = 0
    pids: int = 0


@dataclass
class Service:
    name: str
    image: str = ""
    build: Build | None = None
    command: list[str] | None = None
    entrypoint: list[str] | None = None
    environment: dict[str, str | None] = field(default_factory=dict)
    ports: list[Port] = field(default_factory=list)
    volumes: list[Mount] = field(default_factory=list)
    networks: dict[str, ServiceNetwork | None] = field(default_factory=dict)
    depends_on: dict[str, Dependency] = field(default_factory=dict)
    restart: str = ""
    healthcheck: Healthcheck | None = None
    container_name: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    working_dir: str = ""
    user: str = ""
    hostname: str = ""
    stop_signal: str = ""
    stop_grace_period: float | None = None
    tty: bool = False
    stdin_open: bool = False
    init: bool = False
    read_only: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    extra_hosts: list[str] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)
    expose: list[str] = field(default_factory=list)
    network_mode: str = ""
    replicas: int | None = None          # deploy.replicas (up --scale overrides it)

    def config_hash(self) -> str:
        """com.docker.compose.config-hash: a digest of everything that makes the container what it is
        (not how many of them run: scaling keeps the containers there are)."""
        fields = asdict(self)
        fields.pop("replicas")
        doc = json.dumps(fields, sort_keys=True, default=str)
        return hashlib.sha256(doc.encode()).hexdigest()


@dataclass
class Network:
    name: str                    # the network's name in the daemon (PROJECT_KEY unless `name:`/external)
    driver: str = "bridge"
    external: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    internal: bool = False
    enable_ipv6: bool = False
    ipam: list[dict] = field(default_factory=list)   # ipam.config: subnet, gateway, ip_range, aux_addresses


@dataclass
class Volume:
    name: str
    driver: str = "local"
    external: bool = False
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class Project:
    name: str
    working_dir: str
    services: dict[str, Service]
    networks: dict[str, Network]
    volumes: dict[str, Volume]

    def service(self, name: str) -> Service:
        try:
            return self.services[name]
        except KeyError:
            raise ComposeError(f"no such service: {name}") from None

    def order(self, names: list[str] | None = None) -> list[str]:
        """Services in start order (dependencies first), with the dependencies of those asked for."""
        out: list[str] = []
        visiting: set[str] = set()

        def visit(n: str) -> None:
            if n in out:
                return
            if n in visiting:
                raise ComposeError(f"dependency cycle detected: {' -> '.join([*visiting, n])}")
            visiting.add(n)
            for dep in sorted(self.service(n).depends_on):
                visit(dep)
            visiting.discard(n)
            out.append(n)

        for n in (names or sorted(self.services)):
            visit(n)
        return out


def _dur(seconds: float) -> str:
    """Go's time.Duration string as compose config prints it: 30s, 1m30s, 500ms."""
    if seconds and seconds < 1:
        return f"{int(round(seconds * 1000))}ms"
    s = int(seconds)
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return (f"{h}h" if h else "") + (f"{m}m" if m else "") + (f"{s}s" if s or not (h or m) else "")


def to_config(p: Project) -> dict[str, Any]:
    """The normalised model as `docker compose config` prints it."""
    services = {}
    for name in sorted(p.services):
        s = p.services[name]
        d: dict[str, Any] = {}
        if s.build:
            d["build"] = {"context": s.build.context, "dockerfile": s.build.dockerfile,
                          **({"args": dict(s.build.args)} if s.build.args else {}),
                          **({"target": s.build.target} if s.build.target else {})}
        for key in ("cap_add", "cap_drop"):
            if getattr(s, key):
                d[key] = list(getattr(s, key))
        if s.command is not None:
            d["command"] = list(s.command)
        if s.container_name:
            d["container_name"] = s.container_name
        if s.depends_on:
            d["depends_on"] = {k: {"condition": v.condition, "required": v.required,
                                   **({"restart": True} if v.restart else {})} for k, v in sorted(s.depends_on.items())}
        lim = s.limits
        if lim.cpus or lim.memory or lim.pids:
            d["deploy"] = {"resources": {"limits": {**({"cpus": lim.cpus} if lim.cpus else {}),
                                                    **({"memory": str(lim.memory)} if lim.memory else {}),
                                                    **({"pids": lim.pids} if lim.pids else {})}}}
        if s.replicas is not None:
            d.setdefault("deploy", {})["replicas"] = s.replicas
        if s.dns:
            d["dns"] = list(s.dns)
        if s.entrypoint is not None:
            d["entrypoint"] = list(s.entrypoint)
        if s.environment:
            d["environment"] = dict(sorted(s.environment.items()))
        if s.expose:
            d["expose"] = list(s.expose)
        if s.extra_hosts:
            d["extra_hosts"] = list(s.extra_hosts)
        if s.healthcheck:
            h = s.healthcheck
            d["healthcheck"] = {"disable": True} if h.disable else {
                "test": list(h.test), "timeout": _dur(h.timeout), "interval": _dur(h.interval), "retries": h.retries,
                **({"start_period": _dur(h.start_period)} if h.start_period else {})}
        if s.hostname:
            d["hostname"] = s.hostname
        if s.image:
            d["image"] = s.image
        if s.init:
            d["init"] = True
        if s.labels:
            d["labels"] = dict(sorted(s.labels.items()))
        if s.network_mode:
            d["network_mode"] = s.network_mode
        if s.networks:
            d["networks"] = {k: (None if v is None else {**({"aliases": list(v.aliases)} if v.aliases else {}),
                                                         **({"ipv4_address": v.ipv4_address} if v.ipv4_address
                                                            else {}),
                                                         **({"ipv6_address": v.ipv6_address} if v.ipv6_address
                                                            else {})} or None)
                             for k, v in sorted(s.networks.items())}
        if s.ports:
            d["ports"] = [{"mode": pt.mode, **({"host_ip": pt.host_ip} if pt.host_ip else {}), "target": pt.target,
                           **({"published": pt.published} if pt.published else {}), "protocol": pt.protocol}
                          for pt in s.ports]
        for key in ("privileged", "read_only", "stdin_open", "tty"):
            if getattr(s, key):
                d[key] = True
        if s.restart:
            d["restart"] = s.restart
        if s.stop_grace_period is not None:
            d["stop_grace_period"] = _dur(s.stop_grace_period)
        if s.stop_signal:
            d["stop_signal"] = s.stop_signal
        if s.user:
            d["user"] = s.user
        if s.volumes:
            vols = []
            for m in s.volumes:
                v: dict[str, Any] = {"type": m.type}
                if m.source:
                    v["source"] = m.source
                v["target"] = m.target
                if m.read_only:
                    v["read_only"] = True
                if m.type == "bind":
                    v["bind"] = {"create_host_path": True}
                elif m.type == "volume":
                    v["volume"] = {}
                elif m.tmpfs_size:
                    v["tmpfs"] = {"size": m.tmpfs_size}
                vols.append(v)
            d["volumes"] = vols
        if s.working_dir:
            d["working_dir"] = s.working_dir
        services[name] = d
    out: dict[str, Any] = {"name": p.name, "services": services}
    if p.networks:
        out["networks"] = {k: {"name": n.name, **({"external": True} if n.external else {}),
                               **({"driver": n.driver} if n.driver and not n.external else {}),
                               **({"labels": dict(n.labels)} if n.labels else {}),
                               **({"internal": True} if n.internal else {}),
                               **({"enable_ipv6": True} if n.enable_ipv6 else {}),
                               **({"ipam": {"config": [dict(c) for c in n.ipam]}} if n.ipam else {})}
                           for k, n in sorted(p.networks.items())}
    if p.volumes:
        out["volumes"] = {k: {"name": v.name, **({"external": True} if v.external else {}),
                              **({"driver": v.driver} if v.driver and not v.external else {}),
                              **({"labels": dict(v.labels)} if v.labels else {})}
                          for k, v in sorted(p.volumes.items())}
    return out
