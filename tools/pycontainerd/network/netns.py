"""Named network namespaces for containers (`ip netns add pyctr-<id12>`), made before the task exists.

A named netns outlives the container's processes, so networking is set up once before `runc create`
(the spec joins it by path) and torn down by CNI DEL while the interfaces are still there; iproute2
does the kernel work.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import threading

from pycontainerd import errdefs, mounts

from .cni import tool

NETNS_DIR = "/var/run/netns"
PREFIX = "pyctr-"
CLONE_NEWNET = 0x40000000


def name_for(container_id: str, prefix: str = PREFIX) -> str:
    return f"{prefix}{container_id[:12]}"


def path_for(container_id: str, prefix: str = PREFIX) -> str:
    return os.path.join(NETNS_DIR, name_for(container_id, prefix))


def _shared_run_dir() -> bool:
    """NETNS_DIR as `ip netns add` leaves it: a mount point with shared propagation (made so here when
    it is a mount point already; the first netns of a host is left to iproute2)."""
    real = os.path.realpath(NETNS_DIR)
    try:
        with open("/proc/self/mountinfo") as f:
            if not any(line.split()[4] == real for line in f):
                return False
        mounts.propagate(real, "rshared")
    except OSError:
        return False
    return True


def _create_in_thread(path: str) -> None:
    """`ip netns add` without the exec: a new netns in a thread of our own (a netns is per thread),
    pinned by a bind mount of the thread's ns file on `path`; the thread ends, the netns stays."""
    errors: list[OSError] = []

    def run() -> None:
        try:
            libc = mounts._libc()
            if libc.unshare(CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"unshare(CLONE_NEWNET): {os.strerror(err)}")
            mounts.mount("bind", f"/proc/self/task/{threading.get_native_id()}/ns/net", path, ["bind"])
        except OSError as exc:
            errors.append(exc)

    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0)
    os.close(fd)
    t = threading.Thread(target=run, name="netns-create")
    t.start()
    t.join()
    if errors:
        os.unlink(path)
        raise errors[0]


def create(container_id: str, prefix: str = PREFIX) -> str:
    """Create (or reuse) the container's netns; returns its path for the spec and for CNI."""
    path = path_for(container_id, prefix)
    if os.path.exists(path):
        return path
    if _shared_run_dir():
        try:
            _create_in_thread(path)
            return path
        except FileExistsError:
            return path
        except OSError:
            pass  # iproute2 says why
    proc = subprocess.run([tool("ip"), "netns", "add", name_for(container_id, prefix)], capture_output=True, text=True)
    if proc.returncode != 0 and not os.path.exists(path):
        raise errdefs.Internal(f"ip netns add {name_for(container_id, prefix)}: {proc.stderr.strip()}")
    return path


def delete(container_id: str, prefix: str = PREFIX) -> None:
    """Remove it (idempotent); call after NetworkManager.detach_all so CNI DEL still sees the veth."""
    path = path_for(container_id, prefix)
    if not os.path.exists(path):
        return
    try:  # what `ip netns del` does, without the exec
        mounts.unmount(path, lazy=True)
        os.unlink(path)
    except OSError:
        subprocess.run([tool("ip"), "netns", "del", name_for(container_id, prefix)], capture_output=True)


def spec_namespace(path: str) -> dict:
    """The runtime-spec entry that makes the container join `path` instead of a new netns."""
    return {"type": "network", "path": path}
