"""One container's networking, read from docker's HostConfig: what the daemon calls around a task.

    prepare(manager, cid, spec, request)  before `runc create`: netns, CNI attach, spec edits
    release(manager, cid)                 after the task is gone: CNI DEL, netns removed (idempotent)
    network_settings(manager, cid)        `inspect`'s NetworkSettings

pyctr fills HostConfig/Config/NetworkingConfig exactly as docker stores them (port_bindings() turns
parsed -p specs into PortBindings/ExposedPorts); NetworkRequest.from_docker reads them back.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
from dataclasses import dataclass, field
from typing import Callable

from pycontainerd import errdefs
from pycontainerd.timing import stage

from . import hosts, netns
from .manager import Attachment, NetworkManager
from .ports import PortSpec, parse_port_range, split_proto_port

log = logging.getLogger("pycontainerd.network")

HOST_FILES = ("/etc/hosts", "/etc/hostname", "/etc/resolv.conf")


@dataclass
class ExtraEndpoint:
    """A network the container was connected to besides its --network (`network connect`, kept in
    NetworkingConfig.EndpointsConfig as docker keeps it): joined again at every start."""
    network: str
    aliases: list[str] = field(default_factory=list)
    ipv4_address: str = ""
    ipv6_address: str = ""


@dataclass
class NetworkRequest:
    mode: str = "bridge"                    # --network: bridge | none | host | NAME
    name: str = ""                          # the container name (resolvable on user networks)
    hostname: str = ""
    aliases: list[str] = field(default_factory=list)
    ports: list[PortSpec] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    extra_hosts: list[str] = field(default_factory=list)
    ipv4_address: str = ""                  # --ip (the endpoint's IPAMConfig)
    ipv6_address: str = ""                  # --ip6
    mac_address: str = ""                   # --mac-address (Config.MacAddress): the first network's
    extra: list[ExtraEndpoint] = field(default_factory=list)

    @property
    def joined(self) -> str:
        """The container whose netns this one shares (--network container:ID), else ""."""
        return self.mode[len("container:"):] if self.mode.startswith("container:") else ""

    @classmethod
    def from_docker(cls, docker: dict, name: str = "") -> "NetworkRequest":
        """From the container's docker document ({"Config", "HostConfig", "NetworkingConfig"})."""
        hc = docker.get("HostConfig") or {}
        cfg = docker.get("Config") or {}
        mode = hc.get("NetworkMode") or "default"
        mode = "bridge" if mode == "default" else mode
        endpoints = (docker.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
        aliases = list((endpoints.get(mode) or {}).get("Aliases") or [])
        ipam_cfg = (endpoints.get(mode) or {}).get("IPAMConfig") or {}
        extra = [] if mode in ("host", "none") or mode.startswith("container:") else [
            ExtraEndpoint(net, list((ep or {}).get("Aliases") or []),
                          ((ep or {}).get("IPAMConfig") or {}).get("IPv4Address") or "",
                          ((ep or {}).get("IPAMConfig") or {}).get("IPv6Address") or "")
            for net, ep in endpoints.items() if net != mode]
        return cls(mode=mode, name=name.lstrip("/"), hostname=cfg.get("Hostname") or "", aliases=aliases,
                   extra=extra, mac_address=cfg.get("MacAddress") or "",
                   ipv4_address=ipam_cfg.get("IPv4Address") or "", ipv6_address=ipam_cfg.get("IPv6Address") or "",
                   ports=specs_from_bindings(hc.get("PortBindings") or {}, cfg.get("ExposedPorts") or {},
                                             bool(hc.get("PublishAllPorts"))),
                   dns=list(hc.get("Dns") or []), dns_search=list(hc.get("DnsSearch") or []),
                   dns_options=list(hc.get("DnsOptions") or []), extra_hosts=list(hc.get("ExtraHosts") or []))


def port_bindings(specs: list[PortSpec]) -> tuple[dict, dict]:
    """(HostConfig.PortBindings, Config.ExposedPorts) for parsed -p specs, as docker stores them."""
    bindings: dict[str, list[dict]] = {}
    for s in specs:
        bindings.setdefault(s.key, []).append({"HostIp": s.host_ip, "HostPort": s.host_port})
    return bindings, {key: {} for key in bindings}


def specs_from_bindings(bindings: dict, exposed: dict | list, publish_all: bool) -> list[PortSpec]:
    specs = []
    for key, entries in bindings.items():
        proto, port = split_proto_port(key)
        for entry in entries or [{}]:
            specs.append(PortSpec(int(port), proto or "tcp", entry.get("HostIp") or "", entry.get("HostPort") or ""))
    if publish_all:
        bound = {s.key for s in specs}
        for key in exposed:
            proto, port = split_proto_port(key)
            lo, hi = parse_port_range(port)
            for p in range(lo, hi + 1):
                if f"{p}/{proto or 'tcp'}" not in bound:
                    specs.append(PortSpec(p, proto or "tcp"))
    return specs


def prepare(manager: NetworkManager, container_id: str, spec: dict, request: NetworkRequest,
            running: Callable[[str], bool] | None = None) -> list[Attachment]:
    """Network the container before its task exists; edits `spec` in place (namespace path, /etc files).
    `running(cid)` says whether a container's task is up (for --network container:ID)."""
    if request.joined:
        join(manager, spec, request.joined, running)
        return []
    namespaces = spec.setdefault("linux", {}).setdefault("namespaces", [])
    kept = [n for n in namespaces if n.get("type") != "network"]
    hostname = request.hostname or spec.get("hostname") or container_id[:12]
    if request.mode == "host":
        namespaces[:] = kept  # the host's netns: no CNI, the host's hosts file
        hostname = request.hostname or socket.gethostname()
        path = ""
    else:
        with stage(log, "network %s: netns create", container_id):
            path = netns.create(container_id, manager.netns_prefix)
        namespaces[:] = kept + [netns.spec_namespace(path)]
    try:
        with stage(log, "network %s: attach (CNI ADD)", container_id):
            att = manager.attach(container_id, request.mode, path, container_name=request.name,
                                 aliases=request.aliases, ports=request.ports if request.mode != "host" else [],
                                 hostname=hostname, extra_hosts=request.extra_hosts,
                                 ipv4_address=request.ipv4_address if request.mode != "host" else "",
                                 ipv6_address=request.ipv6_address if request.mode != "host" else "",
                                 mac_address=request.mac_address if request.mode != "host" else "")
            if request.mode != "host":
                attach_extra(manager, container_id, path, request, hostname)
        mounts = manager.spec_mounts(container_id, request.dns, request.dns_search, request.dns_options)
    except BaseException:
        release(manager, container_id)
        raise
    spec["hostname"] = hostname
    spec["mounts"] = [m for m in spec.get("mounts") or [] if m.get("destination") not in HOST_FILES] + mounts
    return [att]


def prepare_deferred(manager: NetworkManager, container_id: str, spec: dict, request: NetworkRequest,
                     running: Callable[[str], bool] | None = None) -> Callable[[], None] | None:
    """prepare() in two steps, so that CNI ADD runs while the runtime creates the container: now the
    netns and the spec (its path, the /etc files' mounts with placeholder content); the returned
    `finish()` attaches (CNI ADD) and rewrites the /etc files in place (the bind mounts see it), and
    must be done before the container starts. None when there is nothing to defer (host, joined)."""
    if request.joined or request.mode == "host":
        prepare(manager, container_id, spec, request, running)
        return None
    hostname = request.hostname or spec.get("hostname") or container_id[:12]
    with stage(log, "network %s: netns create", container_id):
        path = netns.create(container_id, manager.netns_prefix)
    try:
        hosts.write_in_place(manager.hostname_file(container_id), hostname + "\n")
        mounts = manager.spec_mounts(container_id, request.dns, request.dns_search, request.dns_options)
    except BaseException:
        release(manager, container_id)
        raise
    namespaces = spec.setdefault("linux", {}).setdefault("namespaces", [])
    namespaces[:] = [n for n in namespaces if n.get("type") != "network"] + [netns.spec_namespace(path)]
    spec["hostname"] = hostname
    spec["mounts"] = [m for m in spec.get("mounts") or [] if m.get("destination") not in HOST_FILES] + mounts

    def finish() -> None:
        try:
            with stage(log, "network %s: attach (CNI ADD)", container_id):
                manager.attach(container_id, request.mode, path, container_name=request.name,
                               aliases=request.aliases, ports=request.ports, hostname=hostname,
                               extra_hosts=request.extra_hosts, ipv4_address=request.ipv4_address,
                               ipv6_address=request.ipv6_address, mac_address=request.mac_address)
                attach_extra(manager, container_id, path, request, hostname)
            final = manager.spec_mounts(container_id, request.dns, request.dns_search, request.dns_options)
            if [m["source"] for m in final] != [m["source"] for m in mounts]:
                raise errdefs.Internal(f"container {container_id}: its /etc files moved during the attach")
        except BaseException:
            release(manager, container_id)
            raise

    return finish


def attach_extra(manager: NetworkManager, container_id: str, path: str, request: NetworkRequest,
                 hostname: str) -> None:
    """The networks `network connect` added, after the container's own (docker's order: eth1, eth2…)."""
    for ep in request.extra:
        manager.attach(container_id, ep.network, path, container_name=request.name, aliases=ep.aliases,
                       hostname=hostname, extra_hosts=request.extra_hosts, ipv4_address=ep.ipv4_address,
                       ipv6_address=ep.ipv6_address)


def join(manager: NetworkManager, spec: dict, base: str, running: Callable[[str], bool] | None) -> None:
    """--network container:BASE: BASE's netns (or the host's, when BASE uses the host network), its
    hostname and its /etc files, as docker shares them; nothing of our own to release later."""
    base_ns = netns.path_for(base, manager.netns_prefix)
    mine = manager.store.container_endpoints(base)
    host = any(ep["driver"] == "host" for ep in mine)
    if (running is not None and not running(base)) or not (host or os.path.exists(base_ns)):
        raise errdefs.FailedPrecondition(f"cannot join network of a non running container: {base}")
    namespaces = spec.setdefault("linux", {}).setdefault("namespaces", [])
    namespaces[:] = [n for n in namespaces if n.get("type") != "network"] + \
        ([] if host else [netns.spec_namespace(base_ns)])
    files = {"/etc/hosts": manager.hosts_file(base), "/etc/hostname": manager.hostname_file(base),
             "/etc/resolv.conf": str(manager.state / base / "resolv.conf")}
    try:
        spec["hostname"] = open(files["/etc/hostname"]).read().strip() or spec.get("hostname", "")
    except OSError:
        pass
    spec["mounts"] = [m for m in spec.get("mounts") or [] if m.get("destination") not in HOST_FILES] + \
        [{"destination": d, "type": "bind", "source": src, "options": ["rbind", "rprivate"]}
         for d, src in files.items() if os.path.exists(src)]


def release(manager: NetworkManager, container_id: str) -> None:
    """Everything prepare() made; safe to call twice or for a container that never had networking."""
    # the netns first: its interfaces go with it, so CNI DEL only has leases (and rules) to release
    with stage(log, "network %s: netns delete", container_id):
        netns.delete(container_id, manager.netns_prefix)
    with stage(log, "network %s: detach (CNI DEL)", container_id):
        manager.detach_all(container_id)


def network_settings(manager: NetworkManager, container_id: str) -> dict:
    """docker inspect's NetworkSettings for a running container (empty values when not attached)."""
    atts = manager.attachments(container_id)
    networks = {}
    for a in atts:
        doc = manager.inspect(a.network)
        ep = manager.store.endpoints_dir / doc["Id"] / f"{container_id}.json"
        aliases = None
        if ep.exists():
            aliases = json.loads(ep.read_text()).get("aliases") or None
        networks[a.network] = {
            "IPAMConfig": a.ipam_config or None, "Links": None, "Aliases": aliases, "NetworkID": doc["Id"],
            "EndpointID": a.endpoint_id, "Gateway": a.gateway, "IPAddress": a.ip, "IPPrefixLen": a.prefix_len,
            "IPv6Gateway": a.gateway6, "GlobalIPv6Address": a.ip6, "GlobalIPv6PrefixLen": a.prefix_len6,
            "MacAddress": a.mac, "DriverOpts": None,
        }
    default = next((a for a in atts if a.network == "bridge"), None)
    return {
        "Bridge": "", "SandboxID": "", "HairpinMode": False, "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
        "Ports": manager.ports(container_id), "SandboxKey": netns.path_for(container_id, manager.netns_prefix)
        if atts and any(a.ifname for a in atts) else "",
        "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None,
        "EndpointID": default.endpoint_id if default else "", "Gateway": default.gateway if default else "",
        "GlobalIPv6Address": default.ip6 if default else "",
        "GlobalIPv6PrefixLen": default.prefix_len6 if default else 0, "IPAddress": default.ip if default else "",
        "IPPrefixLen": default.prefix_len if default else 0, "IPv6Gateway": default.gateway6 if default else "",
        "MacAddress": default.mac if default else "", "Networks": networks,
    }


def host_config_fields(network: str = "default", publish: list[str] = (), publish_all: bool = False,
                       exposed: list[str] = (), dns: list[str] = (), dns_search: list[str] = (),
                       dns_options: list[str] = (), add_hosts: list[str] = (), aliases: list[str] = ()) -> dict:
    """pyctr's network flags validated (docker's errors) and stored as docker stores them:
    {"HostConfig": {...}, "Config": {"ExposedPorts"}, "NetworkingConfig": {...}} to merge into the
    container's docker document; NetworkRequest.from_docker reads them back in the daemon."""
    from . import hosts
    from .ports import parse_publish

    for h in add_hosts:
        hosts.parse_add_host(h)
    hosts.render_resolv("", list(dns))  # validates the addresses
    specs = parse_publish(list(publish))
    bindings, exposed_ports = port_bindings(specs)
    for e in exposed:
        proto, port = split_proto_port(e)
        exposed_ports.setdefault(f"{port}/{proto or 'tcp'}", {})
    mode = network or "default"
    if aliases and mode in ("default", "bridge", "host", "none"):
        raise errdefs.InvalidArgument("network-scoped alias is supported only for containers in user defined networks")
    return {
        "HostConfig": {"NetworkMode": mode, "PortBindings": bindings, "PublishAllPorts": publish_all,
                       "Dns": list(dns), "DnsSearch": list(dns_search), "DnsOptions": list(dns_options),
                       "ExtraHosts": list(add_hosts) or None},
        "Config": {"ExposedPorts": exposed_ports or None},
        "NetworkingConfig": {"EndpointsConfig": {mode: {"Aliases": list(aliases) or None}}},
    }


class FlagError(errdefs.InvalidArgument):
    """A flag the docker CLI itself refuses (its message carries no `Error response from daemon:`)."""


MAC_RE = re.compile(r"^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$")


def check_flags(network: str, hostname: str = "", publish: list[str] | tuple[str, ...] = (), publish_all: bool = False,
                dns: list[str] | tuple[str, ...] = (), add_hosts: list[str] | tuple[str, ...] = (),
                aliases: list[str] | tuple[str, ...] = (), ipv4_address: str = "", ipv6_address: str = "",
                mac_address: str = "") -> None:
    """docker's create-time checks of the network flags: --network container: refuses what the shared
    netns decides (hostname, ports, dns, hosts); --ip/--ip6 must be addresses of their family."""
    import ipaddress

    if network.startswith("container:"):
        if not network[len("container:"):]:
            raise errdefs.InvalidArgument("Invalid network mode: invalid container format container:<name|id>")
        if hostname:
            raise errdefs.InvalidArgument("conflicting options: hostname and the network mode")
        if publish or publish_all:
            raise errdefs.InvalidArgument("conflicting options: port publishing and the container type network mode")
        if dns:
            raise errdefs.InvalidArgument("conflicting options: dns and the network mode")
        if add_hosts:
            raise errdefs.InvalidArgument("conflicting options: custom host-to-IP mapping and the network mode")
        if aliases:
            raise errdefs.InvalidArgument("network-scoped aliases are only supported for user-defined networks")
        if mac_address:
            raise errdefs.InvalidArgument("conflicting options: mac-address and the network mode")
    if mac_address and not MAC_RE.match(mac_address):
        raise FlagError(f"{mac_address} is not a valid mac address")
    for version, addr in ((4, ipv4_address), (6, ipv6_address)):
        if not addr:
            continue
        try:
            ok = ipaddress.ip_address(addr).version == version
        except ValueError:
            ok = False
        if not ok:
            raise errdefs.InvalidArgument(f"invalid IPv{version} address: {addr}")
