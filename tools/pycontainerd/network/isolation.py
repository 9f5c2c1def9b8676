"""Docker's network isolation: containers on different bridge networks do not reach each other.

The CNI firewall plugin accepts all traffic of a container's address in CNI-FORWARD, after jumping
to CNI-ADMIN ("admin overrides"); the DROP rules go there, one pair per two bridges, each tagged
with a comment naming the bridge so removing a network finds its rules again. An internal network
drops everything that is not bridge-local.
"""

from __future__ import annotations

import shlex
import subprocess

from .cni import tool

CHAIN = "CNI-ADMIN"
TAG = "pyctr-isolation"


def _iptables(*args: str) -> int:
    return subprocess.run([tool("iptables"), "-w", "-t", "filter", *args], capture_output=True).returncode


def _ensure_chain() -> None:
    if _iptables("-n", "-L", CHAIN) != 0:
        _iptables("-N", CHAIN)


def _add(rule: list[str]) -> None:
    if _iptables("-C", CHAIN, *rule) != 0:
        _iptables("-A", CHAIN, *rule)


def isolate(bridge: str, others: list[str], internal: bool = False) -> None:
    """Drop forwarding between `bridge` and each of `others` (both ways); for internal, everything off-bridge."""
    _ensure_chain()
    comment = ["-m", "comment", "--comment", f"{TAG} {bridge}"]
    for other in others:
        if other != bridge:
            _add(["-i", bridge, "-o", other, *comment, "-j", "DROP"])
            _add(["-i", other, "-o", bridge, *comment, "-j", "DROP"])
    if internal:
        _add(["-i", bridge, "!", "-o", bridge, *comment, "-j", "DROP"])
        _add(["-o", bridge, "!", "-i", bridge, *comment, "-j", "DROP"])


def remove(bridge: str) -> int:
    """Delete every isolation rule naming `bridge` (its own and the other networks' towards it)."""
    try:
        saved = subprocess.run([tool("iptables-save"), "-t", "filter"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return 0
    removed = 0
    for line in saved.splitlines():
        if not line.startswith(f"-A {CHAIN} ") or TAG not in line:
            continue
        words = shlex.split(line)
        if bridge in (words[words.index("-i") + 1] if "-i" in words else "",
                      words[words.index("-o") + 1] if "-o" in words else ""):
            if _iptables("-D", *words[1:]) == 0:
                removed += 1
    return removed
