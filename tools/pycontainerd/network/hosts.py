"""/etc/hosts and /etc/resolv.conf for containers, as docker and nerdctl write them.

The files live under the daemon state dir and are bind-mounted into the container; they are rewritten
IN PLACE (not by rename) because a bind mount pins the inode: a renamed-over file would never be seen.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field

from pycontainerd import errdefs

BASE_HOSTS = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)
DEFAULT_DNS = ("8.8.8.8", "8.8.4.4")  # docker's fallback when the host only has loopback resolvers


@dataclass
class HostEntry:
    ip: str
    names: list[str] = field(default_factory=list)


def parse_add_host(spec: str) -> HostEntry:
    """`--add-host name:ip` (also name=ip); docker: `invalid argument "…" for "--add-host" flag`."""
    sep = "=" if "=" in spec else ":"
    name, _, ip = spec.partition(sep)
    ip = ip.strip("[]")
    if ip == "host-gateway":
        raise errdefs.InvalidArgument(f'invalid argument "{spec}" for "--add-host" flag: host-gateway is not supported')
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        raise errdefs.InvalidArgument(f'invalid argument "{spec}" for "--add-host" flag: invalid IP address') from None
    if not name:
        raise errdefs.InvalidArgument(f'invalid argument "{spec}" for "--add-host" flag: empty hostname')
    return HostEntry(ip, [name])


def render_hosts(own: list[HostEntry], extra: list[HostEntry], peers: list[HostEntry]) -> str:
    """Docker's order: the fixed block, --add-host entries, the container's own addresses, then its peers."""
    lines = [BASE_HOSTS]
    for block in (extra, own, peers):
        for e in block:
            names = list(dict.fromkeys(n for n in e.names if n))
            if names:
                lines.append(f"{e.ip}\t{' '.join(names)}\n")
    return "".join(lines)


def render_resolv(host_resolv: str, dns: list[str] = (), search: list[str] = (), options: list[str] = ()) -> str:
    """The host's resolv.conf minus loopback nameservers (unreachable from a netns), with the overrides."""
    nameservers, searches, opts, other = [], [], [], []
    for line in host_resolv.splitlines():
        words = line.split()
        if not words or words[0].startswith(("#", ";")):
            continue
        if words[0] == "nameserver" and len(words) > 1:
            try:
                if not ipaddress.ip_address(words[1].split("%")[0]).is_loopback:
                    nameservers.append(words[1])
            except ValueError:
                continue
        elif words[0] in ("search", "domain"):
            searches = words[1:]
        elif words[0] == "options":
            opts.extend(words[1:])
        else:
            other.append(line)
    for d in dns:
        try:
            ipaddress.ip_address(d)
        except ValueError:
            raise errdefs.InvalidArgument(f"{d} is not an ip address") from None
    nameservers = list(dns) or nameservers or list(DEFAULT_DNS)
    searches = [s for s in search if s != "."] if search else searches
    opts = list(options) or opts
    out = "".join(f"nameserver {n}\n" for n in nameservers)
    if searches:
        out += "search " + " ".join(searches) + "\n"
    if opts:
        out += "options " + " ".join(opts) + "\n"
    return out


HOSTNAME_RE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9.\-]{0,253}[a-zA-Z0-9])?$")


def write_in_place(path: str, text: str) -> None:
    """Rewrite without changing the inode (see the module docstring); created 0644 when missing."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        data = text.encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
    finally:
        os.close(fd)
