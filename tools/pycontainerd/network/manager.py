"""NetworkManager: docker-style networks over CNI plugins, with hosts/resolv.conf per container.

The daemon calls attach() once the task's netns exists and detach_all() when the container goes;
cleanup_stale() at start-up releases whatever a crashed daemon left attached.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from pycontainerd import errdefs

from . import cni, forwarding, hosts, ipam, isolation, netns, ports as portspec
from .ports import PortSpec, PublishedPort
from .store import BRIDGE_OPTION, NAME_RE, PREDEFINED, NetworkStore, network_doc

DEFAULT_BRIDGE = "pyctr0"
# Not docker's 172.17-31/16 nor podman's 10.88-89/16 nor nerdctl's 10.4/16: all can run side by side.
DEFAULT_SUBNET = "10.213.0.0/24"
DEFAULT_POOL = "10.213.0.0/16"
DEFAULT_POOL_PREFIX = 24
LOOPBACK = {"cniVersion": cni.CNI_VERSION, "name": "pyctr-loopback", "plugins": [{"type": "loopback"}]}


@dataclass
class Attachment:
    network: str
    ip: str = ""           # "10.213.0.2" ("" on host/none)
    prefix_len: int = 0
    mac: str = ""
    gateway: str = ""
    ifname: str = ""
    endpoint_id: str = ""
    ports: list[PublishedPort] = field(default_factory=list)
    ip6: str = ""          # on a network created with --ipv6
    prefix_len6: int = 0
    gateway6: str = ""
    ipam_config: dict = field(default_factory=dict)  # --ip/--ip6 as given: inspect's IPAMConfig
    aliases: list[str] = field(default_factory=list)


class NetworkManager:
    def __init__(self, root: str | os.PathLike, state: str | os.PathLike, cni_path: str = "/usr/lib/cni",
                 default_bridge: str = DEFAULT_BRIDGE, default_subnet: str = DEFAULT_SUBNET,
                 pool: str = DEFAULT_POOL, pool_prefix: int = DEFAULT_POOL_PREFIX,
                 host_resolv: str = "/etc/resolv.conf", netns_prefix: str = netns.PREFIX) -> None:
        self.store = NetworkStore(root)
        self.state = Path(state) / "network"
        self.cni_path = cni_path
        self.default_bridge = default_bridge
        self.default_subnet = default_subnet
        self.pool = pool
        self.pool_prefix = pool_prefix
        self.host_resolv = host_resolv
        self.netns_prefix = netns_prefix
        self._forwarding: set[str] = set()  # bridges whose per-network rules this daemon checked

    # networks

    def _ensure_defaults(self) -> None:
        """docker's three predefined networks, created on first use."""
        for name in PREDEFINED:
            if self.store.find(name) is not None:
                continue
            if name == "bridge":
                # a subnet (10.213.0.0/24) or docker's --bip form, the gateway's address (10.213.0.1/24)
                iface = ipaddress.ip_interface(self.default_subnet)
                net = iface.network
                gateway = iface.ip if iface.ip != net.network_address else net.network_address + 1
                doc = network_doc("bridge", "bridge", str(net), str(gateway),
                                  options={BRIDGE_OPTION: self.default_bridge,
                                           "com.docker.network.bridge.default_bridge": "true",
                                           "com.docker.network.bridge.enable_icc": "true",
                                           "com.docker.network.bridge.enable_ip_masquerade": "true"})
            else:
                doc = network_doc(name, "host" if name == "host" else "null")
            self.store.save(doc)
            if name == "bridge":
                self._isolate(doc)

    def create(self, name: str, subnet: str | list[str] | None = None, gateway: str | list[str] | None = None,
               driver: str = "bridge", internal: bool = False, attachable: bool = False, labels: dict | None = None,
               options: dict | None = None, ip_range: str | list[str] | None = None,
               ipv6: bool = False, aux_addresses: dict[str, str] | None = None) -> dict:
        """`network create`; returns the inspect document. subnet/gateway/ip_range: one or a list (IPv4
        and IPv6); with `ipv6` the network is dual stack (an IPv6 subnet is then required, as docker has
        no default IPv6 pool), and without a user IPv4 subnet one comes from the pool, as docker does."""
        if driver != "bridge":
            raise errdefs.NotFound(f'plugin "{driver}" not found')
        if not NAME_RE.match(name):
            raise errdefs.InvalidArgument(f'invalid network name "{name}": must match [a-zA-Z0-9][a-zA-Z0-9_.-]*')
        as_list = lambda v: [v] if isinstance(v, str) and v else list(v or [])  # noqa: E731
        pools = ipam.pools(as_list(subnet), as_list(gateway), as_list(ip_range), aux_addresses)
        with self.store.locked():
            self._ensure_defaults()
            if self.store.exists(name):
                raise errdefs.AlreadyExists(f"network with name {name} already exists")
            for p in pools:
                if self.store.overlaps(p.subnet):
                    raise errdefs.AlreadyExists("Pool overlaps with other one on this address space")
            v4 = [p for p in pools if p.subnet.version == 4]
            v6 = [p for p in pools if p.subnet.version == 6]
            if ipv6 and not v6:
                raise errdefs.Unavailable("could not find an available, non-overlapping IPv6 address pool among "
                                          "the defaults to assign to the network")
            if not v4:  # docker shows the gateway it chose for a pool of its own, not for the user's
                auto = self.store.allocate_subnet(self.pool, self.pool_prefix)
                v4 = [ipam.Pool(auto, ipam.default_gateway(auto))]
            doc = network_doc(name, "bridge", "", "", internal, attachable, options, labels)
            doc["EnableIPv6"] = bool(ipv6)
            doc["IPAM"]["Config"] = [p.config() for p in v4 + v6]
            # docker keeps whether a subnet was the user's (--ip needs one) and the IPv6 gateway it
            # picked without showing them: kept beside the document, never in inspect
            doc[ipam.PRIVATE_KEY] = {"UserSubnets": [str(p.subnet) for p in pools],
                                     "Gateways": {str(p.subnet): str(p.gateway or ipam.default_gateway(p.subnet))
                                                  for p in v4 + v6}}
            bridge = doc["Options"].setdefault(BRIDGE_OPTION, "pyctr-" + doc["Id"][:9])
            if len(bridge) > 15:
                raise errdefs.InvalidArgument(f"bridge name {bridge!r} is longer than 15 characters")
            self.store.save(doc)
            self._reserve_aux(doc, pools)
            self._isolate(doc)
            return self._with_containers(doc)

    def _reserve_aux(self, doc: dict, pools: list[ipam.Pool]) -> None:
        """--aux-address: a host-local lease file per address, owned by no container (host-local skips
        it; ReleaseByID never matches it); they go with the network's IPAM dir at `network rm`."""
        d = self.store.ipam_dir / self._cni_name(doc)
        for p in pools:
            for _name, addr in p.aux:
                d.mkdir(parents=True, exist_ok=True)
                (d / addr).write_text("pyctr-aux-address\r\nnone")

    def _with_containers(self, doc: dict) -> dict:
        containers = {}
        for ep in self.store.endpoints(doc["Id"]):
            containers[ep["container_id"]] = {
                "Name": ep.get("container_name", ""),
                "EndpointID": ep["endpoint_id"],
                "MacAddress": ep.get("mac", ""),
                "IPv4Address": f"{ep['ip']}/{ep['prefix_len']}" if ep.get("ip") else "",
                "IPv6Address": f"{ep['ip6']}/{ep['prefix_len6']}" if ep.get("ip6") else "",
            }
        shown = {k: v for k, v in doc.items() if k != ipam.PRIVATE_KEY}
        return {**shown, "Containers": containers}

    def inspect(self, ref: str) -> dict:
        with self.store.locked():
            self._ensure_defaults()
            return self._with_containers(self.store.get(ref))

    def list(self) -> list[dict]:
        """`network ls` data: inspect documents sorted by name."""
        with self.store.locked():
            self._ensure_defaults()
            return sorted((self._with_containers(d) for d in self.store.all()), key=lambda d: d["Name"])

    def remove(self, ref: str) -> None:
        """`network rm`: refused while containers are attached; deletes the bridge and the IPAM leases."""
        with self.store.locked():
            self._ensure_defaults()
            doc = self.store.get(ref)
            if doc["Name"] in PREDEFINED:
                raise errdefs.FailedPrecondition(f"{doc['Name']} is a pre-defined network and cannot be removed")
            if self.store.endpoints(doc["Id"]):
                raise errdefs.FailedPrecondition(
                    f"error while removing network: network {doc['Name']} id {doc['Id']} has active endpoints")
            self._teardown(doc)
            self.store.delete(doc)

    def _bridges(self) -> list[str]:
        return [d["Options"][BRIDGE_OPTION] for d in self.store.all() if d["Driver"] == "bridge"]

    def _isolate(self, doc: dict) -> None:
        isolation.isolate(doc["Options"][BRIDGE_OPTION], self._bridges(), doc["Internal"])

    def _teardown(self, doc: dict) -> None:
        bridge = doc["Options"].get(BRIDGE_OPTION, "")
        if bridge:
            isolation.remove(bridge)
            forwarding.remove(bridge)
            self._forwarding.discard(bridge)
        if bridge and Path(f"/sys/class/net/{bridge}").exists():
            subprocess.run([cni.tool("ip"), "link", "del", bridge], capture_output=True)
        shutil.rmtree(self.store.ipam_dir / self._cni_name(doc), ignore_errors=True)

    def prune(self) -> list[str]:
        """`network prune`: user networks without endpoints; returns the removed names."""
        removed = []
        for doc in self.list():
            if doc["Name"] not in PREDEFINED and not doc["Containers"]:
                try:
                    self.remove(doc["Id"])
                    removed.append(doc["Name"])
                except errdefs.Error:
                    pass
        return removed

    # CNI configuration

    @staticmethod
    def _cni_name(doc: dict) -> str:
        return "pyctr-" + doc["Name"]  # the name lands in iptables comments: marks our rules

    def conflist(self, doc: dict, published: list[PublishedPort], static: dict[int, str] | None = None,
                 mac: str = "") -> dict:
        """The network's CNI config for one attachment: bridge + host-local (a range set per address
        family; IPv6 only when the network enables it), firewall, portmap when ports are published.
        `static` ({4: "10.0.0.9", 6: "fd00::9"}): --ip/--ip6 handed to host-local as the `ips` capability."""
        static = static or {}
        private = doc.get(ipam.PRIVATE_KEY) or {}
        range_sets: dict[int, list[dict]] = {}
        for cfg in doc["IPAM"]["Config"]:
            net = ipaddress.ip_network(cfg["Subnet"], strict=False)
            if net.version == 6 and not doc.get("EnableIPv6"):
                continue  # docker: an IPv6 subnet without --ipv6 is recorded, not configured
            gw = (private.get("Gateways") or {}).get(cfg["Subnet"]) or cfg.get("Gateway") or \
                str(ipam.default_gateway(net))
            pool = ipam.Pool(net, None, ipaddress.ip_network(cfg["IPRange"]) if cfg.get("IPRange") else None)
            range_sets.setdefault(net.version, []).append(
                ipam.host_local_range(pool, ipaddress.ip_address(gw), whole_subnet=net.version in static))
        routes = [] if doc["Internal"] else [{"dst": "0.0.0.0/0"}] + ([{"dst": "::/0"}] if 6 in range_sets else [])
        bridge = {
            "type": "bridge",
            "bridge": doc["Options"][BRIDGE_OPTION],
            "isGateway": not doc["Internal"],
            "ipMasq": not doc["Internal"] and 6 in range_sets,  # IPv4: per network, see forwarding.py
            "hairpinMode": True,
            "ipam": {
                "type": "host-local",
                "ranges": [range_sets[v] for v in sorted(range_sets)],
                "routes": routes,
                "dataDir": str(self.store.ipam_dir),
            },
        }
        if static:
            bridge.setdefault("capabilities", {})["ips"] = True
            bridge.setdefault("runtimeConfig", {})["ips"] = [static[v] for v in sorted(static)]
        if mac:  # --mac-address: the bridge plugin's `mac` capability sets the container's interface
            bridge.setdefault("capabilities", {})["mac"] = True
            bridge.setdefault("runtimeConfig", {})["mac"] = mac.replace("-", ":").lower()
        plugins = [bridge] + [{"type": "firewall", "backend": "iptables"}] * (6 in range_sets)
        if published:
            plugins.append({"type": "portmap", "capabilities": {"portMappings": True}, "snat": True,
                            "runtimeConfig": {"portMappings": [p.portmap() for p in published]}})
        return {"cniVersion": cni.CNI_VERSION, "name": self._cni_name(doc), "plugins": plugins}

    def _static_addresses(self, doc: dict, ipv4: str, ipv6: str) -> dict[int, str]:
        """--ip/--ip6 checked as dockerd does before the endpoint exists; {4: addr, 6: addr}."""
        if not (ipv4 or ipv6):
            return {}
        if doc["Name"] in PREDEFINED:
            raise errdefs.InvalidArgument("user specified IP address is supported on user defined networks only")
        subnets = [ipaddress.ip_network(c["Subnet"], strict=False) for c in doc["IPAM"]["Config"]]
        user = {str(n) for n in (doc.get(ipam.PRIVATE_KEY) or {}).get("UserSubnets", [])}
        leases = self.store.ipam_dir / self._cni_name(doc)
        gateways = set(((doc.get(ipam.PRIVATE_KEY) or {}).get("Gateways") or {}).values())
        gateways |= {c.get("Gateway") for c in doc["IPAM"]["Config"] if c.get("Gateway")}
        out = {}
        for version, addr in ((4, ipv4), (6, ipv6)):
            if not addr:
                continue
            family = [n for n in subnets if n.version == version]
            ip = ipam.check_static(addr, version, family, any(str(n) in user for n in family))
            if version == 6 and not doc.get("EnableIPv6"):
                raise errdefs.InvalidArgument(
                    "user specified IP address is supported only when connecting to networks with user configured subnets")
            if str(ip) in gateways or (leases / str(ip)).exists():
                raise errdefs.AlreadyExists("Address already in use")
            out[version] = str(ip)
        return out

    @contextlib.contextmanager
    def _dynamic_cursor_kept(self, doc: dict, static: bool) -> Iterator[None]:
        """host-local moves its "last reserved" cursor to a requested address too; docker's next
        dynamic address does not jump past a static one, so the cursor is put back."""
        files = list((self.store.ipam_dir / self._cni_name(doc)).glob("last_reserved_ip.*")) if static else []
        before = {f: f.read_bytes() for f in files}
        try:
            yield
        finally:
            if static:
                for f in (self.store.ipam_dir / self._cni_name(doc)).glob("last_reserved_ip.*"):
                    if f in before:
                        f.write_bytes(before[f])
                    else:
                        f.unlink(missing_ok=True)

    # attachments

    def attach(self, container_id: str, network: str, netns_path: str, *, container_name: str = "",
               aliases: list[str] | tuple[str, ...] = (), ports: list[PortSpec] | tuple[PortSpec, ...] = (),
               hostname: str = "", extra_hosts: list[str] | tuple[str, ...] = (), ipv4_address: str = "",
               ipv6_address: str = "", mac_address: str = "") -> Attachment:
        """Connect the netns to the network (docker run --network / network connect).

        `ports` come from parse_publish(); they are published only on bridge networks, as docker does.
        ipv4_address/ipv6_address: --ip/--ip6, a static address from the network's own subnets.
        """
        if hostname and not hosts.HOSTNAME_RE.match(hostname):
            raise errdefs.InvalidArgument(f"invalid hostname format: {hostname}")
        for h in extra_hosts:
            hosts.parse_add_host(h)  # validate before anything is created
        with self.store.locked():
            self._ensure_defaults()
            doc = self.store.get(network)
            if self.store.endpoints_dir.joinpath(doc["Id"], f"{container_id}.json").exists():
                raise errdefs.AlreadyExists(
                    f"endpoint with name {container_name or container_id} already exists in network {doc['Name']}")
            if aliases and doc["Name"] in PREDEFINED:
                raise errdefs.InvalidArgument("network-scoped alias is supported only for containers in user defined networks")
            static = self._static_addresses(doc, ipv4_address, ipv6_address)
            mine = self.store.container_endpoints(container_id)
            if doc["Driver"] != "bridge" or any(e["driver"] != "bridge" for e in mine):
                if mine:
                    raise errdefs.FailedPrecondition(
                        "container cannot be disconnected from host network or connected to host network"
                        if "host" in (doc["Name"], *[e["network"] for e in mine]) else
                        "container cannot be connected to multiple networks with one of the networks in private (none) mode")
            ep = {
                "container_id": container_id, "container_name": container_name.lstrip("/"),
                "network": doc["Name"], "network_id": doc["Id"], "driver": doc["Driver"],
                "endpoint_id": secrets.token_hex(32), "netns": netns_path, "aliases": list(aliases),
                "hostname": hostname, "extra_hosts": list(extra_hosts), "ifname": "", "ip": "", "prefix_len": 0,
                "mac": "", "gateway": "", "ports": [], "conflist": None, "result": None,
                "ip6": "", "prefix_len6": 0, "gateway6": "",
                "ipam_config": {k: v for k, v in (("IPv4Address", ipv4_address), ("IPv6Address", ipv6_address)) if v},
            }
            if doc["Driver"] in ("bridge", "null"):
                cni.add(LOOPBACK, container_id, netns_path, "lo", self.cni_path)
            if doc["Driver"] == "bridge":
                used_if = {e["ifname"] for e in mine}
                ep["ifname"] = next(f"eth{i}" for i in range(64) if f"eth{i}" not in used_if)
                taken = {(p["host_port"], p["protocol"]) for e in self.store.all_endpoints() for p in e["ports"]}
                published = []
                for spec in ports:
                    pub = portspec.allocate(spec, taken)
                    if (pub.host_port, pub.protocol) in taken:
                        raise errdefs.Unavailable(
                            f"Bind for {pub.host_ip or '0.0.0.0'}:{pub.host_port} failed: port is already allocated")
                    taken.add((pub.host_port, pub.protocol))
                    published.append(pub)
                conf = self.conflist(doc, published, static, mac_address)
                self._ensure_forwarding(doc)
                with self._dynamic_cursor_kept(doc, bool(static)):
                    result = cni.add(conf, container_id, netns_path, ep["ifname"], self.cni_path)
                cidr = ipaddress.ip_interface(result.ip_cidr) if result.ip_cidr else None
                cidr6 = ipaddress.ip_interface(result.ip6_cidr) if result.ip6_cidr else None
                ep.update(conflist=conf, result=result.raw, mac=result.mac, gateway=result.gateway,
                          ip=str(cidr.ip) if cidr else "", prefix_len=cidr.network.prefixlen if cidr else 0,
                          ip6=str(cidr6.ip) if cidr6 else "", prefix_len6=cidr6.network.prefixlen if cidr6 else 0,
                          gateway6=result.gateway6, ports=[p.to_json() for p in published])
            self.store.save_endpoint(ep)
            self._write_container_files(container_id, ep)
            self._refresh_hosts(doc["Id"])
            return self._attachment(ep)

    def _ensure_forwarding(self, doc: dict) -> None:
        """The network's IPv4 forwarding/masquerade rules (forwarding.py), checked once per daemon."""
        bridge = doc["Options"][BRIDGE_OPTION]
        if bridge not in self._forwarding:
            subnets = [c["Subnet"] for c in doc["IPAM"]["Config"] if ":" not in c.get("Subnet", ":")]
            forwarding.ensure(bridge, subnets, doc["Internal"])
            self._forwarding.add(bridge)

    @staticmethod
    def _attachment(ep: dict) -> Attachment:
        return Attachment(ep["network"], ep["ip"], ep["prefix_len"], ep["mac"], ep["gateway"], ep["ifname"],
                          ep["endpoint_id"], [PublishedPort.from_json(p) for p in ep["ports"]],
                          ep.get("ip6", ""), ep.get("prefix_len6", 0), ep.get("gateway6", ""),
                          dict(ep.get("ipam_config") or {}), list(ep.get("aliases") or []))

    def attachments(self, container_id: str) -> list[Attachment]:
        return [self._attachment(ep) for ep in self.store.container_endpoints(container_id)]

    def detach(self, container_id: str, network: str) -> None:
        """`network disconnect`: CNI DEL (veth, iptables rules, lease), then the peers' hosts files."""
        with self.store.locked():
            doc = self.store.get(network)
            path = self.store.endpoints_dir / doc["Id"] / f"{container_id}.json"
            if not path.exists():
                raise errdefs.NotFound(f"container {container_id} is not connected to network {doc['Name']}")
            self._release(json.loads(path.read_text()))
            self._refresh_hosts(doc["Id"])
            if not self.store.container_endpoints(container_id):
                shutil.rmtree(self.state / container_id, ignore_errors=True)

    def detach_all(self, container_id: str) -> None:
        """Everything of one container, at container removal; a no-op when nothing is attached."""
        with self.store.locked():
            eps = self.store.container_endpoints(container_id)
            for ep in eps:
                self._release(ep)
            for net_id in {ep["network_id"] for ep in eps}:
                self._refresh_hosts(net_id)
            shutil.rmtree(self.state / container_id, ignore_errors=True)

    def _release(self, ep: dict) -> None:
        if ep.get("conflist"):
            netns = ep["netns"] if ep["netns"] and os.path.exists(ep["netns"]) else ""
            cni.delete(ep["conflist"], ep["container_id"], netns, ep["ifname"], self.cni_path, ep["result"])
            if not netns and ep["conflist"]["plugins"][0].get("ipMasq"):
                cni.sweep_masquerade(ep["conflist"]["name"], ep["container_id"])
        self.store.delete_endpoint(ep["network_id"], ep["container_id"])

    def cleanup_stale(self, live_ids: set[str] | list[str]) -> list[str]:
        """After a daemon restart: release every endpoint whose container is gone; returns their ids."""
        live = set(live_ids)
        gone: list[str] = []
        with self.store.locked():
            touched = set()
            for ep in self.store.all_endpoints():
                if ep["container_id"] not in live:
                    try:
                        self._release(ep)
                    except cni.CNIError:
                        continue  # kept for the next try rather than leaking the rules silently
                    # a named netns we made for the container (see netns.py) goes with it
                    if os.path.dirname(ep["netns"]) == netns.NETNS_DIR and \
                            os.path.basename(ep["netns"]) == netns.name_for(ep["container_id"], self.netns_prefix):
                        netns.delete(ep["container_id"], self.netns_prefix)
                    touched.add(ep["network_id"])
                    gone.append(ep["container_id"])
            for net_id in touched:
                self._refresh_hosts(net_id)
            if self.state.is_dir():
                for d in self.state.iterdir():
                    if d.name not in live:
                        shutil.rmtree(d, ignore_errors=True)
        return sorted(set(gone))

    def purge(self, remove_default_bridge: bool = False) -> None:
        """Everything this root made, for a test fixture or an uninstall: every endpoint released (and
        our named netns), every user network removed; the default bridge device only when asked,
        as other daemons on the host may share it."""
        self.cleanup_stale(set())
        for doc in self.list():
            if doc["Name"] not in PREDEFINED:
                self.remove(doc["Id"])
            elif doc["Name"] == "bridge" and remove_default_bridge:
                with self.store.locked():
                    self._teardown(doc)

    # hosts, hostname, resolv.conf

    def _write_container_files(self, container_id: str, ep: dict) -> None:
        d = self.state / container_id
        d.mkdir(parents=True, exist_ok=True)
        meta = d / "meta.json"
        info = json.loads(meta.read_text()) if meta.exists() else {}
        info.setdefault("hostname", ep["hostname"] or container_id[:12])
        info.setdefault("extra_hosts", ep["extra_hosts"])
        info.setdefault("driver", ep["driver"])
        meta.write_text(json.dumps(info))
        hosts.write_in_place(str(d / "hostname"), info["hostname"] + "\n")

    def hosts_file(self, container_id: str) -> str:
        """Path of the container's /etc/hosts (bind-mount it), regenerated now."""
        with self.store.locked():
            return self._render_hosts(container_id)

    def _render_hosts(self, container_id: str) -> str:
        d = self.state / container_id
        meta = json.loads((d / "meta.json").read_text()) if (d / "meta.json").exists() else {}
        hostname = meta.get("hostname", container_id[:12])
        extra = [hosts.parse_add_host(h) for h in meta.get("extra_hosts", [])]
        mine = self.store.container_endpoints(container_id)
        if meta.get("driver") == "host":
            # host networking: the host's own hosts file, as docker copies it
            try:
                text = Path("/etc/hosts").read_text()
            except OSError:
                text = hosts.BASE_HOSTS
            text += "".join(f"{e.ip}\t{' '.join(e.names)}\n" for e in extra)
        else:
            own, peers = [], []
            for ep in mine:
                if not ep["ip"]:
                    continue
                names = [hostname]
                if ep["network"] not in PREDEFINED:
                    names += [ep["container_name"], *ep["aliases"]]
                own.append(hosts.HostEntry(ep["ip"], names))
                if ep.get("ip6"):
                    own.append(hosts.HostEntry(ep["ip6"], names))
                if ep["network"] in PREDEFINED:
                    continue  # docker's default bridge has no name resolution
                # a name several peers share (a scaled service's alias) resolves to the first line a
                # resolver finds: each container gets its own stable order of them, which spreads
                # clients over the replicas as the round robin of docker's embedded DNS does
                order = lambda peer: hashlib.sha256((container_id + peer["container_id"]).encode()).digest()  # noqa: E731
                for peer in sorted(self.store.endpoints(ep["network_id"]), key=order):
                    if peer["container_id"] != container_id and peer["ip"]:
                        pnames = [peer["container_name"], *peer["aliases"],
                                  *([peer["hostname"]] if peer["hostname"] else [])]
                        peers.append(hosts.HostEntry(peer["ip"], pnames))
                        if peer.get("ip6"):  # AAAA by hosts file: getaddrinfo returns both
                            peers.append(hosts.HostEntry(peer["ip6"], pnames))
            if not mine or not own:
                own = [hosts.HostEntry("127.0.0.1", [hostname])] if meta.get("driver") == "null" else own
            text = hosts.render_hosts(own, extra, peers)
        path = d / "hosts"
        hosts.write_in_place(str(path), text)
        return str(path)

    def _refresh_hosts(self, network_id: str) -> None:
        for ep in self.store.endpoints(network_id):
            self._render_hosts(ep["container_id"])

    def hostname_file(self, container_id: str) -> str:
        return str(self.state / container_id / "hostname")

    def resolv_conf(self, container_id: str, dns: list[str] | tuple[str, ...] = (),
                    dns_search: list[str] | tuple[str, ...] = (), dns_options: list[str] | tuple[str, ...] = ()) -> str:
        """Path of the container's /etc/resolv.conf: the host's, loopback servers dropped, --dns applied."""
        try:
            host = Path(self.host_resolv).read_text()
        except OSError:
            host = ""
        path = self.state / container_id / "resolv.conf"
        hosts.write_in_place(str(path), hosts.render_resolv(host, list(dns), list(dns_search), list(dns_options)))
        return str(path)

    def spec_mounts(self, container_id: str, dns: list[str] | tuple[str, ...] = (),
                    dns_search: list[str] | tuple[str, ...] = (),
                    dns_options: list[str] | tuple[str, ...] = ()) -> list[dict]:
        """The runtime-spec mounts for /etc/hosts, /etc/hostname and /etc/resolv.conf (after attach)."""
        files = {"/etc/hosts": self.hosts_file(container_id),
                 "/etc/hostname": self.hostname_file(container_id),
                 "/etc/resolv.conf": self.resolv_conf(container_id, dns, dns_search, dns_options)}
        return [{"destination": dest, "type": "bind", "source": src, "options": ["rbind", "rprivate"]}
                for dest, src in files.items()]

    # `docker port`

    def ports(self, container_id: str) -> dict[str, list[dict]]:
        """NetworkSettings.Ports: {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}."""
        out: dict[str, list[dict]] = {}
        for att in self.attachments(container_id):
            for p in att.ports:
                out.setdefault(f"{p.container_port}/{p.protocol}", []).append(p.docker())
        return out
