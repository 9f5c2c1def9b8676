"""Address management of a bridge network as docker's default IPAM does it, over host-local ranges.

    pools()            --subnet/--gateway/--ip-range (repeatable, IPv4 and IPv6) into IPAM.Config
                       entries, with the docker CLI's own errors (`no matching subnet for range …`)
    host_local_ranges  IPAM.Config → host-local's `ranges` (one range set per address family)
    check_static       --ip/--ip6 checked against the network as dockerd checks them at start

host-local does the allocation (lease files in the daemon's ipam dir). A static address is handed to
it as the `ips` capability; its own range set must then be the whole subnet (docker lets a static
address lie outside --ip-range), and the lease file it writes keeps the address from dynamic use.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from pycontainerd import errdefs

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# kept in the stored network document, stripped from what `network inspect` shows
PRIVATE_KEY = "PyctrIPAM"


class PoolError(errdefs.InvalidArgument):
    """An error the docker CLI reports itself (no `Error response from daemon:` prefix), status 1."""


@dataclass(frozen=True)
class Pool:
    subnet: IPNetwork
    gateway: IPAddress | None = None
    ip_range: IPNetwork | None = None
    aux: tuple[tuple[str, str], ...] = ()   # --aux-address NAME=IP: reserved, never handed out

    def config(self) -> dict:
        """docker inspect's IPAM.Config entry (IPRange, Gateway, AuxiliaryAddresses only when given)."""
        out = {"Subnet": str(self.subnet)}
        if self.ip_range is not None:
            out["IPRange"] = str(self.ip_range)
        if self.gateway is not None:
            out["Gateway"] = str(self.gateway)
        if self.aux:
            out["AuxiliaryAddresses"] = dict(self.aux)
        return out


def _network(text: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise errdefs.InvalidArgument(f"invalid CIDR address: {text}") from None


def pools(subnets: list[str], gateways: list[str], ranges: list[str], aux: dict[str, str] | None = None) -> list[Pool]:
    """The docker CLI's consolidateIpam: each range, gateway and aux address belongs to exactly one subnet."""
    aux = aux or {}
    if not subnets and (gateways or ranges or aux):
        raise PoolError("every ip-range or gateway must have a corresponding subnet")
    nets = [_network(s) for s in subnets]
    for s, n in zip(subnets, nets):
        if ipaddress.ip_interface(s).ip != n.network_address:  # host bits set (leading zeros are fine)
            raise errdefs.InvalidArgument(f"invalid subnet {s}: it should be {n}")
    for i, a in enumerate(nets):
        for b in nets[i + 1:]:
            if a.version == b.version and a.overlaps(b):
                raise PoolError("multiple overlapping subnet configuration is not allowed")
    gw: dict[int, IPAddress] = {}
    rng: dict[int, IPNetwork] = {}
    for r in ranges:
        rn = _network(r)
        idx = next((i for i, n in enumerate(nets) if n.version == rn.version and rn.subnet_of(n)), None)
        if idx is None:
            raise PoolError(f"no matching subnet for range {r}")
        if idx in rng:
            raise PoolError(f"cannot configure multiple ranges ({r}, {rng[idx]}) on the same subnet ({nets[idx]})")
        rng[idx] = rn
    for g in gateways:
        try:
            ga = ipaddress.ip_address(g)
        except ValueError:
            raise errdefs.InvalidArgument(f"invalid gateway address {g}") from None
        idx = next((i for i, n in enumerate(nets) if ga in n and n.version == ga.version), None)
        if idx is None:
            raise PoolError(f"no matching subnet for gateway {g}")
        if idx in gw:
            raise PoolError(f"cannot configure multiple gateways ({g}, {gw[idx]}) for the same subnet ({nets[idx]})")
        gw[idx] = ga
    reserved: dict[int, list[tuple[str, str]]] = {}
    for name, a in aux.items():
        try:
            aa = ipaddress.ip_address(a)
        except ValueError:
            raise errdefs.InvalidArgument(f"invalid aux-address {a}") from None
        idx = next((i for i, n in enumerate(nets) if aa in n and n.version == aa.version), None)
        if idx is None:
            raise PoolError(f"no matching subnet for aux-address {a}")
        reserved.setdefault(idx, []).append((name, str(aa)))
    out = [Pool(n, gw.get(i), rng.get(i), tuple(reserved.get(i, ()))) for i, n in enumerate(nets)]
    for p in out:
        if p.gateway is not None and p.subnet.version == 4 and p.subnet.prefixlen < 31 and \
                p.gateway in (p.subnet.network_address, p.subnet.broadcast_address):
            raise errdefs.AlreadyExists(f"failed to allocate gateway ({p.gateway}): Address already in use")
    return out


def default_gateway(subnet: IPNetwork) -> IPAddress:
    return subnet.network_address + 1


def host_local_range(pool: Pool, gateway: IPAddress, whole_subnet: bool = False) -> dict:
    """One host-local range; --ip-range becomes rangeStart/rangeEnd (docker never hands out the
    subnet's own address nor, on IPv4, its broadcast)."""
    r = {"subnet": str(pool.subnet), "gateway": str(gateway)}
    if pool.ip_range is not None and not whole_subnet:
        start = max(pool.ip_range.network_address, pool.subnet.network_address + 1)
        last = pool.subnet.broadcast_address - (1 if pool.subnet.version == 4 else 0)
        end = min(pool.ip_range.broadcast_address, last)
        r.update(rangeStart=str(start), rangeEnd=str(end))
    return r


def check_static(address: str, version: int, subnets: list[IPNetwork], user_subnets: bool) -> IPAddress:
    """dockerd's checks of --ip/--ip6 against one user network (the predefined ones are refused by
    the caller): the network's subnets must be the user's own, and the address in one of them."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise errdefs.InvalidArgument(f"invalid IPv{version} address: {address}") from None
    if ip.version != version:
        raise errdefs.InvalidArgument(f"invalid IPv{version} address: {address}")
    if not user_subnets:
        raise errdefs.InvalidArgument(
            "user specified IP address is supported only when connecting to networks with user configured subnets")
    if not any(ip in n for n in subnets if n.version == version):
        raise errdefs.InvalidArgument(f"Invalid address {address}: It does not belong to any of this network's subnets")
    return ip
