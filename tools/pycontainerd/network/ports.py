"""Port publishing specs: `-p`/`-P` parsed exactly as docker's nat.ParsePortSpecs, and host-port choice."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from pycontainerd import errdefs

PROTOCOLS = ("tcp", "udp", "sctp")


@dataclass(frozen=True)
class PortSpec:
    """One container port and its requested binding; host_port "" = random, "a-b" = first free in range."""

    container_port: int
    protocol: str = "tcp"
    host_ip: str = ""
    host_port: str = ""

    @property
    def key(self) -> str:
        return f"{self.container_port}/{self.protocol}"


@dataclass(frozen=True)
class PublishedPort:
    """A binding in force: what `docker port` prints and portmap's runtimeConfig receives."""

    container_port: int
    protocol: str
    host_ip: str
    host_port: int

    def portmap(self) -> dict:
        entry = {"hostPort": self.host_port, "containerPort": self.container_port, "protocol": self.protocol}
        if self.host_ip and self.host_ip not in ("0.0.0.0", "::"):
            entry["hostIP"] = self.host_ip
        return entry

    def docker(self) -> dict:
        """NetworkSettings.Ports value entry: {"HostIp": …, "HostPort": "…"}."""
        return {"HostIp": self.host_ip or "0.0.0.0", "HostPort": str(self.host_port)}

    def to_json(self) -> dict:
        return {"container_port": self.container_port, "protocol": self.protocol,
                "host_ip": self.host_ip, "host_port": self.host_port}

    @classmethod
    def from_json(cls, d: dict) -> "PublishedPort":
        return cls(int(d["container_port"]), d["protocol"], d.get("host_ip", ""), int(d["host_port"]))


def _split_parts(raw: str) -> tuple[str, str, str]:
    parts = raw.split(":")
    n = len(parts)
    if n == 1:
        return "", "", parts[0]
    if n == 2:
        return "", parts[0], parts[1]
    if n == 3:
        return parts[0], parts[1], parts[2]
    return ":".join(parts[: n - 2]), parts[n - 2], parts[n - 1]


def split_proto_port(raw: str) -> tuple[str, str]:
    """nat.SplitProtoPort: "80/udp" -> ("udp", "80"); a missing protocol is tcp."""
    parts = raw.split("/")
    if not raw or not parts[0]:
        return "", ""
    if len(parts) == 1 or not parts[1]:
        return "tcp", parts[0]
    return parts[1], parts[0]


def _uint16(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise ValueError(text)
    return int(text)


def parse_port_range(ports: str) -> tuple[int, int]:
    """nat.ParsePortRange: "80" or "8000-8010"."""
    if not ports:
        raise errdefs.InvalidArgument("empty string specified for ports")
    if "-" not in ports:
        p = _uint16(ports)
        return p, p
    first, _, last = ports.partition("-")
    start, end = _uint16(first), _uint16(last)
    if end < start:
        raise errdefs.InvalidArgument(f"invalid range specified for port: {ports}")
    return start, end


def parse_port_spec(raw: str) -> list[PortSpec]:
    """nat.ParsePortSpec, with docker's error messages."""
    ip, host_port, container_port = _split_parts(raw)
    proto, container_port = split_proto_port(container_port)
    if ip.startswith("["):
        if not ip.endswith("]"):
            raise errdefs.InvalidArgument(f"invalid IP address {ip}: missing ']' in address")
        ip = ip[1:-1]
    if ip:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise errdefs.InvalidArgument(f"invalid IP address: {ip}") from None
    if not container_port:
        raise errdefs.InvalidArgument(f"no port specified: {raw}<empty>")
    try:
        start, end = parse_port_range(container_port)
    except (ValueError, errdefs.InvalidArgument):
        raise errdefs.InvalidArgument(f"invalid containerPort: {container_port}") from None
    hstart = hend = 0
    if host_port:
        try:
            hstart, hend = parse_port_range(host_port)
        except (ValueError, errdefs.InvalidArgument):
            raise errdefs.InvalidArgument(f"invalid hostPort: {host_port}") from None
        if (end - start) != (hend - hstart) and end != start:
            raise errdefs.InvalidArgument(
                f"invalid ranges specified for container and host Ports: {container_port} and {host_port}")
    proto = proto.lower()
    if proto not in PROTOCOLS:
        raise errdefs.InvalidArgument(f"invalid proto: {proto}")
    count = end - start + 1
    specs = []
    for i in range(count):
        hp = ""
        if host_port:
            hp = str(hstart + i)
            if count == 1 and hstart != hend:
                hp += f"-{hend}"  # a single container port may take any free port of a host range
        specs.append(PortSpec(start + i, proto, ip, hp))
    return specs


def parse_publish(specs: list[str] | tuple[str, ...] = (), exposed: list[str] | tuple[str, ...] = (),
                  publish_all: bool = False) -> list[PortSpec]:
    """`-p` specs plus, with `-P`, every exposed port ("80/tcp", image ExposedPorts keys) to a random host port."""
    out: list[PortSpec] = []
    for raw in specs:
        out.extend(parse_port_spec(raw))
    if publish_all:
        bound = {s.key for s in out}
        for e in exposed:
            proto, port = split_proto_port(e)
            for p in range(*(lambda r: (r[0], r[1] + 1))(parse_port_range(port))):
                spec = PortSpec(p, proto.lower() or "tcp")
                if spec.key not in bound:
                    out.append(spec)
    return out


def _free(host_ip: str, port: int, proto: str) -> int:
    """Bind to see whether (host_ip, port) is free; returns the port the kernel gave (port 0 = random)."""
    family = socket.AF_INET6 if ":" in host_ip else socket.AF_INET
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    with socket.socket(family, kind) as s:
        s.bind((host_ip or "0.0.0.0", port))
        return s.getsockname()[1]


def allocate(spec: PortSpec, taken: set[tuple[int, str]]) -> PublishedPort:
    """Choose the host port: the one asked for, the first free one of a range, or a free ephemeral one."""
    proto = "tcp" if spec.protocol == "sctp" else spec.protocol
    if spec.host_port and "-" not in spec.host_port:
        port = int(spec.host_port)
        if spec.protocol != "sctp":
            try:
                _free(spec.host_ip, port, proto)
            except OSError as e:
                # docker-proxy would fail to listen here: refuse instead of shadowing the host's service
                family = "tcp6" if ":" in spec.host_ip else "tcp4" if proto == "tcp" else "udp4"
                raise errdefs.Unavailable(f"Error starting userland proxy: listen {family} "
                                          f"{spec.host_ip or '0.0.0.0'}:{port}: bind: {e.strerror.lower()}") from None
        return PublishedPort(spec.container_port, spec.protocol, spec.host_ip, port)
    if spec.host_port:
        lo, hi = parse_port_range(spec.host_port)
        candidates = range(lo, hi + 1)
    else:
        candidates = range(0, 50)  # 50 tries at a kernel-chosen ephemeral port
    for cand in candidates:
        try:
            port = _free(spec.host_ip, cand, proto)
        except OSError:
            continue
        if (port, spec.protocol) not in taken:
            return PublishedPort(spec.container_port, spec.protocol, spec.host_ip, port)
    raise errdefs.Unavailable(
        f"Bind for {spec.host_ip or '0.0.0.0'}:{spec.host_port or '0'} failed: port is already allocated")


def port_lines(ports: dict[str, list[dict]], private: str = "") -> list[str]:
    """`docker port CONTAINER [PRIVATE[/PROTO]]` output from NetworkSettings.Ports, e.g. "80/tcp -> 0.0.0.0:8080"."""
    if private:
        proto, port = split_proto_port(private)
        wanted = f"{port}/{proto or 'tcp'}"
        if wanted not in ports:
            raise errdefs.NotFound(f"No public port '{wanted}' published for container")
        return [f"{b['HostIp']}:{b['HostPort']}" for b in ports[wanted]]
    def order(key: str) -> tuple[int, str]:
        proto, port = split_proto_port(key)
        return int(port), proto
    return [f"{key} -> {b['HostIp']}:{b['HostPort']}" for key in sorted(ports, key=order) for b in ports[key]]
