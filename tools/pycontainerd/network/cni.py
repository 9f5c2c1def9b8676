"""The CNI protocol: run a conflist's plugins (ADD in order, DEL in reverse) and read their results.

Plugins come from Debian's containernetworking-plugins (/usr/lib/cni): they do all the netlink and
iptables work, so nothing here touches the kernel directly.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass

from pycontainerd import errdefs
from pycontainerd.timing import stage

log = logging.getLogger("pycontainerd.network")

CNI_VERSION = "1.0.0"
TIMEOUT = 30


def tool(name: str) -> str:
    """iptables and friends by path when our PATH lacks the sbin directories."""
    return shutil.which(name) or shutil.which(name, path="/usr/local/sbin:/usr/sbin:/sbin") or name


@dataclass(frozen=True)
class CNIResult:
    """The parts of a CNI result a runtime needs: the container interface's address, gateway and MAC."""

    raw: dict

    def _container_iface(self) -> int | None:
        for i, iface in enumerate(self.raw.get("interfaces", [])):
            if iface.get("sandbox"):
                return i
        return None

    @property
    def ip_cidr(self) -> str:
        for ip in self.raw.get("ips", []):
            if ":" not in ip.get("address", ""):
                return ip["address"]
        return ""

    @property
    def gateway(self) -> str:
        for ip in self.raw.get("ips", []):
            if ":" not in ip.get("address", ""):
                return ip.get("gateway", "")
        return ""

    @property
    def ip6_cidr(self) -> str:
        for ip in self.raw.get("ips", []):
            if ":" in ip.get("address", ""):
                return ip["address"]
        return ""

    @property
    def gateway6(self) -> str:
        for ip in self.raw.get("ips", []):
            if ":" in ip.get("address", ""):
                return ip.get("gateway", "")
        return ""

    @property
    def mac(self) -> str:
        idx = self._container_iface()
        return self.raw["interfaces"][idx].get("mac", "") if idx is not None else ""


class CNIError(errdefs.Internal):
    """A plugin failed; the message carries the plugin's own `msg`/`details`."""


def _run(plugin: dict, conf_name: str, command: str, container_id: str, netns: str, ifname: str,
         cni_path: str, prev: dict | None) -> dict:
    conf = {**plugin, "cniVersion": CNI_VERSION, "name": conf_name}
    if prev is not None:
        conf["prevResult"] = prev
    env = {
        # the plugins run iptables/ip: make sure the sbin directories are there whatever our PATH is
        "PATH": os.environ.get("PATH", "/usr/bin:/bin") + ":/usr/local/sbin:/usr/sbin:/sbin",
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": container_id,
        "CNI_NETNS": netns,
        "CNI_IFNAME": ifname,
        "CNI_PATH": cni_path,
    }
    exe = os.path.join(cni_path, plugin["type"])
    if not os.access(exe, os.X_OK):
        raise CNIError(f"CNI plugin {plugin['type']!r} not found in {cni_path} (apt-get install containernetworking-plugins)")
    try:
        with stage(log, "CNI %s %s", plugin["type"], command):
            proc = subprocess.run([exe], input=json.dumps(conf).encode(), env=env, capture_output=True,
                                  timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        raise CNIError(f"CNI plugin {plugin['type']} {command} timed out after {TIMEOUT}s") from None
    out = proc.stdout.strip()
    if proc.returncode != 0:
        try:
            err = json.loads(out)
            msg = err.get("msg", "") + (f": {err['details']}" if err.get("details") else "")
        except ValueError:
            msg = (out or proc.stderr).decode(errors="replace").strip()
        raise CNIError(f"CNI plugin {plugin['type']} {command} failed: {msg}")
    if command != "ADD" or not out:
        return prev or {}
    return json.loads(out)


def add(conflist: dict, container_id: str, netns: str, ifname: str, cni_path: str) -> CNIResult:
    """ADD every plugin in order, each getting the previous result; on failure, DEL what was added."""
    prev: dict | None = None
    try:
        for plugin in conflist["plugins"]:
            prev = _run(plugin, conflist["name"], "ADD", container_id, netns, ifname, cni_path, prev)
    except BaseException:
        delete(conflist, container_id, netns, ifname, cni_path, prev, strict=False)
        raise
    return CNIResult(prev or {})


def delete(conflist: dict, container_id: str, netns: str, ifname: str, cni_path: str,
           prev: dict | None = None, strict: bool = True) -> None:
    """DEL in reverse order with the cached ADD result (firewall/portmap need it); idempotent by CNI spec.

    Every plugin is tried even when one fails, so a half-gone container still loses its rules and lease.
    """
    errors = []
    for plugin in reversed(conflist["plugins"]):
        try:
            _run(plugin, conflist["name"], "DEL", container_id, netns, ifname, cni_path, prev)
        except CNIError as e:
            errors.append(str(e))
    if errors and strict:
        raise CNIError(errors[0])


def check(conflist: dict, container_id: str, netns: str, ifname: str, cni_path: str, prev: dict) -> None:
    for plugin in conflist["plugins"]:
        _run(plugin, conflist["name"], "CHECK", container_id, netns, ifname, cni_path, prev)


def sweep_masquerade(conf_name: str, container_id: str) -> int:
    """Remove the bridge plugin's ipMasq rules of one container, for when its netns is already gone.

    The bridge plugin's DEL only tears masquerading down after reading the addresses inside the netns,
    so a container that died with the daemon would leak them; they carry the comment
    `name: "<network>" id: "<container>"`, which is what we match. Returns how many rules went.
    """
    comment = f'name: "{conf_name}" id: "{container_id}"'
    # IPv4 and, for dual-stack networks, IPv6 (the bridge plugin masquerades each family)
    return sum(_sweep(save, iptables, comment) for save, iptables in (("iptables-save", "iptables"),
                                                                       ("ip6tables-save", "ip6tables")))


def _sweep(save: str, iptables: str, comment: str) -> int:
    import shlex

    try:
        saved = subprocess.run([tool(save), "-t", "nat"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return 0
    rules, chains = [], set()
    for line in saved.splitlines():
        if not line.startswith("-A "):
            continue
        words = shlex.split(line)
        if comment not in words:
            continue
        rules.append(words[1:])
        if "-j" in words and words[words.index("-j") + 1].startswith("CNI-"):
            chains.add(words[words.index("-j") + 1])
    # rules jumping into the per-container chain first, then the chain itself
    rules.sort(key=lambda w: w[0] in chains)
    removed = 0
    for words in rules:
        if words[0] in chains:
            continue  # flushed below with its chain
        if subprocess.run([tool(iptables), "-w", "-t", "nat", "-D", *words], capture_output=True).returncode == 0:
            removed += 1
    for chain in chains:
        subprocess.run([tool(iptables), "-w", "-t", "nat", "-F", chain], capture_output=True)
        if subprocess.run([tool(iptables), "-w", "-t", "nat", "-X", chain], capture_output=True).returncode == 0:
            removed += 1
    return removed
