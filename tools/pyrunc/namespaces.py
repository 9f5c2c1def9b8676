"""Namespace kinds, their clone flags and /proc/PID/ns names; joining by path."""

from __future__ import annotations

import os

from . import syscalls as sc
from .errors import RuntimeFailure
from .specconv import Namespace

FLAGS = {
    "user": sc.CLONE_NEWUSER, "pid": sc.CLONE_NEWPID, "network": sc.CLONE_NEWNET, "mount": sc.CLONE_NEWNS,
    "ipc": sc.CLONE_NEWIPC, "uts": sc.CLONE_NEWUTS, "cgroup": sc.CLONE_NEWCGROUP, "time": sc.CLONE_NEWTIME,
}
PROC_NAME = {
    "user": "user", "pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts", "cgroup": "cgroup",
    "time": "time",
}
# setns order: the user namespace first (it grants the capabilities for the rest), the mount namespace last.
ORDER = ("user", "ipc", "uts", "network", "pid", "cgroup", "time", "mount")


def join(kind: str, path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise RuntimeFailure(f"failed to open {kind} namespace {path}: {e.strerror.lower()}") from None
    try:
        sc.setns(fd, FLAGS[kind])
    except OSError as e:
        raise RuntimeFailure(f"failed to join {kind} namespace {path}: {os.strerror(e.errno).lower()}") from None
    finally:
        os.close(fd)


def same_as_self(pid: int, kind: str) -> bool:
    name = PROC_NAME[kind]
    try:
        return os.stat(f"/proc/{pid}/ns/{name}").st_ino == os.stat(f"/proc/self/ns/{name}").st_ino
    except OSError:
        return False


def unshare(namespaces: tuple[Namespace, ...], kinds: set[str]) -> None:
    flags = 0
    for ns in namespaces:
        if ns.type in kinds and not ns.path:
            flags |= FLAGS[ns.type]
    if flags:
        try:
            sc.unshare(flags)
        except OSError as e:
            raise RuntimeFailure(f"unshare namespaces: {os.strerror(e.errno).lower()}") from None


def write_time_offsets(offsets: dict) -> None:
    lines = []
    for clock in ("monotonic", "boottime"):
        o = offsets.get(clock)
        if o:
            lines.append(f"{clock} {o.get('secs', 0)} {o.get('nanosecs', 0)}\n")
    if lines:
        with open("/proc/self/timens_offsets", "w") as f:
            f.write("".join(lines))
