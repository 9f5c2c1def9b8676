"""Per-network forwarding and masquerading rules, installed once per network instead of per container.

The CNI firewall plugin and the bridge plugin's `ipMasq` add iptables rules for every container
(~15 iptables execs per start and again per stop, ~100 ms); docker instead has a few rules per
network. So do we, tagged with a comment naming the bridge (`pyctr-net <bridge>`):

  filter CNI-FORWARD  -d SUBNET -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT    (replies in)
  filter CNI-FORWARD  -s SUBNET -j ACCEPT                                               (traffic out)
  nat    POSTROUTING  -s SUBNET ! -o BRIDGE -j MASQUERADE                (not for internal networks)

in the chains the firewall plugin uses (FORWARD → CNI-FORWARD → CNI-ADMIN first), so the isolation
rules in CNI-ADMIN (isolation.py) still come before the accepts, and endpoints attached by older
versions (their conflist still names the firewall plugin) are released as they were made.
IPv4 only: a network with IPv6 enabled keeps the plugins' per-container rules (ip6tables too).
"""

from __future__ import annotations

import shlex
import subprocess

from .cni import tool
from .isolation import CHAIN as ADMIN_CHAIN

FORWARD_CHAIN = "CNI-FORWARD"
TAG = "pyctr-net"
_FORWARD_JUMP = ["-m", "comment", "--comment", "CNI firewall plugin rules", "-j", FORWARD_CHAIN]
_ADMIN_JUMP = ["-m", "comment", "--comment", "CNI firewall plugin admin overrides", "-j", ADMIN_CHAIN]


def _iptables(table: str, *args: str) -> int:
    return subprocess.run([tool("iptables"), "-w", "-t", table, *args], capture_output=True).returncode


def _saved(table: str) -> list[list[str]]:
    """`iptables-save -t TABLE` as argument lists: ["-A", chain, …] and [":CHAIN", …] for chains."""
    try:
        out = subprocess.run([tool("iptables-save"), "-t", table], capture_output=True, text=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    rules = []
    for line in out.splitlines():
        if line.startswith("-A "):
            rules.append(shlex.split(line))
        elif line.startswith(":"):
            rules.append([line.split()[0]])
    return rules


def rules(bridge: str, subnets: list[str], internal: bool) -> dict[str, list[list[str]]]:
    """The network's rules by table, each as the arguments after `-A` (IPv4 subnets)."""
    comment = ["-m", "comment", "--comment", f"{TAG} {bridge}"]
    out: dict[str, list[list[str]]] = {"filter": [], "nat": []}
    for subnet in subnets:
        out["filter"] += [[FORWARD_CHAIN, "-d", subnet, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED",
                           *comment, "-j", "ACCEPT"],
                          [FORWARD_CHAIN, "-s", subnet, *comment, "-j", "ACCEPT"]]
        if not internal:
            out["nat"].append(["POSTROUTING", "-s", subnet, "!", "-o", bridge, *comment, "-j", "MASQUERADE"])
    return out


def _has(saved: list[list[str]], rule: list[str], marker: str) -> bool:
    """Whether a saved rule in `rule[0]`'s chain carries `marker` (a comment) and the rule's target."""
    return any(r[:2] == ["-A", rule[0]] and marker in r and r[-1] == rule[-1] and
               all(word in r for word in rule if not word.startswith("-")) for r in saved)


def ensure(bridge: str, subnets: list[str], internal: bool) -> None:
    """Install what is missing (one iptables-save per table; nothing else when all is there)."""
    filt = _saved("filter")
    chains = {r[0][1:] for r in filt if r[0].startswith(":")}
    for chain in (FORWARD_CHAIN, ADMIN_CHAIN):
        if chain not in chains:
            _iptables("filter", "-N", chain)
    if not any(r[:2] == ["-A", "FORWARD"] and r[-1] == FORWARD_CHAIN for r in filt):
        _iptables("filter", "-A", "FORWARD", *_FORWARD_JUMP)
    if not any(r[:2] == ["-A", FORWARD_CHAIN] and r[-1] == ADMIN_CHAIN for r in filt):
        _iptables("filter", "-I", FORWARD_CHAIN, "1", *_ADMIN_JUMP)  # isolation's drops come first
    want = rules(bridge, subnets, internal)
    for table, saved in (("filter", filt), ("nat", _saved("nat") if want["nat"] else [])):
        for rule in want[table]:
            if not _has(saved, rule, f"{TAG} {bridge}"):
                _iptables(table, "-A", *rule)


def remove(bridge: str) -> int:
    """Delete the network's rules (those tagged with its bridge); returns how many went."""
    removed = 0
    marker = f"{TAG} {bridge}"
    for table in ("filter", "nat"):
        for r in _saved(table):
            if r[0] == "-A" and marker in r:
                if _iptables(table, "-D", *r[1:]) == 0:
                    removed += 1
    return removed
