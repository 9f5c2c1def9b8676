"""The CNI protocol: run a conflist's plugins (ADD in order, DEL in reverse) and read their results.

Plugins come from Debian's containernetworking-plugins (/usr/lib/cni): they do all the netlink and
iptables work, so nothing here touches the kernel directly.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass

from pycontainerd import errdefs

CNI_VERSION = "1.0.0"
TIMEOUT = 30


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
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
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
        proc = subprocess.run([exe], input=json.dumps(conf).encode(), env=env, capture_output=True, timeout=TIMEOUT)
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
