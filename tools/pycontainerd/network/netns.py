"""Named network namespaces for containers (`ip netns add pyctr-<id12>`), made before the task exists.

A named netns outlives the container's processes, so networking is set up once before `runc create`
(the spec joins it by path) and torn down by CNI DEL while the interfaces are still there; iproute2
does the kernel work.
"""

from __future__ import annotations

import os
import subprocess

from pycontainerd import errdefs

from .cni import tool

NETNS_DIR = "/var/run/netns"
PREFIX = "pyctr-"


def name_for(container_id: str, prefix: str = PREFIX) -> str:
    return f"{prefix}{container_id[:12]}"


def path_for(container_id: str, prefix: str = PREFIX) -> str:
    return os.path.join(NETNS_DIR, name_for(container_id, prefix))


def create(container_id: str, prefix: str = PREFIX) -> str:
    """Create (or reuse) the container's netns; returns its path for the spec and for CNI."""
    path = path_for(container_id, prefix)
    if os.path.exists(path):
        return path
    proc = subprocess.run([tool("ip"), "netns", "add", name_for(container_id, prefix)], capture_output=True, text=True)
    if proc.returncode != 0 and not os.path.exists(path):
        raise errdefs.Internal(f"ip netns add {name_for(container_id, prefix)}: {proc.stderr.strip()}")
    return path


def delete(container_id: str, prefix: str = PREFIX) -> None:
    """Remove it (idempotent); call after NetworkManager.detach_all so CNI DEL still sees the veth."""
    if os.path.exists(path_for(container_id, prefix)):
        subprocess.run([tool("ip"), "netns", "del", name_for(container_id, prefix)], capture_output=True)


def spec_namespace(path: str) -> dict:
    """The runtime-spec entry that makes the container join `path` instead of a new netns."""
    return {"type": "network", "path": path}
