"""Network and endpoint records under the daemon root, in docker's `network inspect` shape.

    <root>/networks/<name>.json                      the network (Containers kept empty on disk)
    <root>/networks/endpoints/<network id>/<cid>.json one attachment: CNI config + cached ADD result
    <root>/networks/ipam/                            host-local's lease files (its dataDir)

Writes are atomic (temp + rename); mutations hold an flock on <root>/networks/.lock so a daemon and a
pyctr process (or two threads) never interleave a read-modify-write.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import re
import secrets
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from pycontainerd import errdefs
from pyoci.fsutil import atomic_write

from .cni import tool

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
BRIDGE_OPTION = "com.docker.network.bridge.name"
PREDEFINED = ("bridge", "host", "none")


def now_rfc3339() -> str:
    """Docker's timestamp form: RFC 3339 with nanoseconds, UTC."""
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


def network_doc(name: str, driver: str, subnet: str = "", gateway: str = "", internal: bool = False,
                attachable: bool = False, options: dict | None = None, labels: dict | None = None,
                ipam_driver: str = "default") -> dict:
    config = [{"Subnet": subnet, "Gateway": gateway}] if subnet else []
    return {
        "Name": name,
        "Id": secrets.token_hex(32),
        "Created": now_rfc3339(),
        "Scope": "local",
        "Driver": driver,
        "EnableIPv6": False,
        "IPAM": {"Driver": ipam_driver, "Options": None if driver != "bridge" else {}, "Config": config},
        "Internal": internal,
        "Attachable": attachable,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": {},
        "Options": dict(options or {}),
        "Labels": dict(labels or {}),
    }


def host_routes() -> list[ipaddress.IPv4Network]:
    """IPv4 destinations the host already routes (so a new subnet does not shadow the LAN)."""
    try:
        out = subprocess.run([tool("ip"), "-j", "-4", "route", "show"], capture_output=True, text=True, check=True).stdout
        routes = json.loads(out or "[]")
    except (OSError, subprocess.CalledProcessError, ValueError):
        return []
    nets = []
    for r in routes:
        dst = r.get("dst", "")
        if dst and dst != "default":
            try:
                nets.append(ipaddress.ip_network(dst, strict=False))
            except ValueError:
                pass
    return nets


class NetworkStore:
    def __init__(self, root: str | os.PathLike) -> None:
        self.dir = Path(root) / "networks"
        self.endpoints_dir = self.dir / "endpoints"
        self.ipam_dir = self.dir / "ipam"
        for d in (self.dir, self.endpoints_dir, self.ipam_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._thread_lock = threading.RLock()

    @contextmanager
    def locked(self) -> Iterator[None]:
        with self._thread_lock:
            fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

    # networks

    def _path(self, name: str) -> Path:
        return self.dir / f"{name}.json"

    def exists(self, name: str) -> bool:
        return bool(NAME_RE.match(name)) and self._path(name).exists()

    def all(self) -> list[dict]:
        docs = []
        for p in sorted(self.dir.glob("*.json")):
            try:
                docs.append(json.loads(p.read_text()))
            except (OSError, ValueError):
                continue  # a half-removed file: rm is in flight
        return docs

    def find(self, ref: str) -> dict | None:
        """By name, full id, or unique id prefix (docker's lookup order)."""
        if NAME_RE.match(ref) and self._path(ref).exists():
            return json.loads(self._path(ref).read_text())
        docs = self.all()
        for d in docs:
            if d["Id"] == ref:
                return d
        matches = [d for d in docs if ref and d["Id"].startswith(ref)]
        if len(matches) > 1:
            raise errdefs.InvalidArgument(f"network {ref} is ambiguous ({len(matches)} matches found based on ID prefix)")
        return matches[0] if matches else None

    def get(self, ref: str) -> dict:
        doc = self.find(ref)
        if doc is None:
            raise errdefs.NotFound(f"network {ref} not found")
        return doc

    def save(self, doc: dict) -> None:
        stored = {**doc, "Containers": {}}
        atomic_write(self._path(doc["Name"]), json.dumps(stored, indent=2).encode() + b"\n")

    def delete(self, doc: dict) -> None:
        self._path(doc["Name"]).unlink(missing_ok=True)
        d = self.endpoints_dir / doc["Id"]
        if d.is_dir():
            for p in d.iterdir():
                p.unlink()
            d.rmdir()

    def allocate_subnet(self, pool: str, prefix: int) -> ipaddress.IPv4Network:
        """The first /prefix of `pool` overlapping neither our networks nor the host's routes."""
        used = [ipaddress.ip_network(c["Subnet"], strict=False)
                for d in self.all() for c in d["IPAM"]["Config"] if c.get("Subnet")]
        used += host_routes()
        for cand in ipaddress.ip_network(pool).subnets(new_prefix=prefix):
            if not any(cand.overlaps(u) for u in used if u.version == 4):
                return cand
        raise errdefs.Unavailable(f"could not find an available, non-overlapping IPv4 address pool among the defaults ({pool}) to assign to the network")

    def overlaps(self, subnet: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
        """Against our networks' subnets of the same family (ipaddress compares across families wrongly)."""
        nets = [ipaddress.ip_network(c["Subnet"], strict=False)
                for d in self.all() for c in d["IPAM"]["Config"] if c.get("Subnet")]
        return any(n.version == subnet.version and n.overlaps(subnet) for n in nets)

    # endpoints

    def endpoints(self, network_id: str) -> list[dict]:
        d = self.endpoints_dir / network_id
        return [json.loads(p.read_text()) for p in sorted(d.glob("*.json"))] if d.is_dir() else []

    def all_endpoints(self) -> list[dict]:
        return [json.loads(p.read_text()) for p in sorted(self.endpoints_dir.glob("*/*.json"))]

    def container_endpoints(self, container_id: str) -> list[dict]:
        return [json.loads(p.read_text()) for p in sorted(self.endpoints_dir.glob(f"*/{container_id}.json"))]

    def save_endpoint(self, ep: dict) -> None:
        d = self.endpoints_dir / ep["network_id"]
        d.mkdir(exist_ok=True)
        atomic_write(d / f"{ep['container_id']}.json", json.dumps(ep, indent=2).encode() + b"\n")

    def delete_endpoint(self, network_id: str, container_id: str) -> None:
        (self.endpoints_dir / network_id / f"{container_id}.json").unlink(missing_ok=True)
