"""Where the cgroup hierarchies are mounted, which cgroup we are in, and file access with runc's error texts."""

from __future__ import annotations

import errno
import os
import time
from pyrunc.errors import RuntimeFailure

CGROUP_ROOT = "/sys/fs/cgroup"
# The v1 controllers runc 1.1's fs manager drives (libcontainer/cgroups/fs subsystems), plus the named systemd one.
V1_SUBSYSTEMS = ("cpuset", "devices", "memory", "cpu", "cpuacct", "pids", "blkio", "hugetlb", "net_cls",
                 "net_prio", "perf_event", "freezer", "rdma", "name=systemd")
UNIFIED = ""  # key of the cgroup2 hierarchy in a paths dict, as in runc's state.json


class Mount:
    """One cgroup or cgroup2 mount (a plain class: dataclasses cost ~15ms of import on the hot path)."""

    __slots__ = ("mountpoint", "root", "version", "controllers")

    def __init__(self, mountpoint: str, root: str, version: int, controllers: set[str] | None = None) -> None:
        self.mountpoint = mountpoint
        self.root = root  # the cgroup shown at the mount point (not "/" inside a cgroup namespace)
        self.version = version
        self.controllers = controllers or set()


def _unescape(s: str) -> str:
    return s.encode().decode("unicode_escape") if "\\" in s else s


def mounts() -> list[Mount]:
    """The cgroup and cgroup2 mounts of this mount namespace, from /proc/self/mountinfo."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if " - cgroup" not in line:
                continue
            head, _, tail = line.partition(" - ")
            fstype, _source, superopts = tail.split(" ", 2)
            fields = head.split(" ")
            if fstype == "cgroup2":
                out.append(Mount(_unescape(fields[4]), _unescape(fields[3]), 2))
            elif fstype == "cgroup":
                ctrls = {o for o in superopts.strip().split(",") if o in V1_SUBSYSTEMS}
                out.append(Mount(_unescape(fields[4]), _unescape(fields[3]), 1, ctrls))
    return out


def mode(all_mounts: list[Mount] | None = None) -> str:
    """"unified" (cgroup2 only, at /sys/fs/cgroup), "hybrid" (v1 controllers plus a cgroup2), or "legacy"."""
    if os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers")):
        return "unified"
    all_mounts = mounts() if all_mounts is None else all_mounts
    return "hybrid" if any(m.version == 2 for m in all_mounts) else "legacy"


def own_cgroups(pid: str = "self") -> dict[str, str]:
    """Controller name (or UNIFIED) -> the cgroup the process is in, from /proc/PID/cgroup."""
    out: dict[str, str] = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if not ctrls:
                out[UNIFIED] = path
            for c in ctrls.split(","):
                out[c] = path
    return out


def clean_path(path: str) -> str:
    """runc's utils.CleanPath: a relative path cannot climb out with "..", an absolute one stays absolute."""
    if not path:
        return ""
    cleaned = os.path.normpath("/" + path.lstrip("/"))
    if os.path.isabs(path):
        return cleaned
    rel = os.path.relpath(cleaned, "/")
    return "" if rel == "." else rel


def join(mount: Mount, own: str, inner: str) -> str:
    """Directory of cgroup `inner` in `mount`: absolute from the hierarchy root, relative under `own`."""
    if os.path.isabs(inner):
        return os.path.normpath(mount.mountpoint + inner)
    rel = own
    if mount.root != "/" and (own == mount.root or own.startswith(mount.root + "/")):
        rel = own[len(mount.root):]
    return os.path.normpath(os.path.join(mount.mountpoint + rel, inner))


def _reason(e: OSError) -> str:
    return os.strerror(e.errno).lower() if e.errno else str(e)


def write(directory: str, name: str, value: str | int) -> None:
    """Write one value to a cgroup file; RuntimeFailure "cgroup: write V to PATH: reason" when refused."""
    path = os.path.join(directory, name)
    data = str(value).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as e:
        raise RuntimeFailure(f"cgroup: write {value} to {path}: {_reason(e)}") from None
    try:
        os.write(fd, data)
    except OSError as e:
        raise RuntimeFailure(f"cgroup: write {value} to {path}: {_reason(e)}") from None
    finally:
        os.close(fd)


def join_self(directories: list[str]) -> None:
    """Move the calling thread (the whole process, when single-threaded) into these v1 cgroups.

    Writing 0 to `tasks` moves only the caller, which the kernel does without its global threadgroup lock;
    writing a pid to cgroup.procs takes that lock and, after a quiet spell, waits out an RCU grace period
    (7-20 ms) first."""
    for d in directories:
        write(d, "tasks", 0)


def read(directory: str, name: str) -> str:
    path = os.path.join(directory, name)
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        raise RuntimeFailure(f"cgroup: read {path}: {_reason(e)}") from None


def read_or(directory: str, name: str, default: str = "") -> str:
    try:
        with open(os.path.join(directory, name)) as f:
            return f.read()
    except OSError:
        return default


def read_int(directory: str, name: str, default: int = 0) -> int:
    """An integer file ("max" reads as 2**64-1, like runc's ParseUint of a cgroup value)."""
    text = read_or(directory, name).strip()
    if text == "max":
        return (1 << 64) - 1
    try:
        return int(text)
    except ValueError:
        return default


def read_keyed(directory: str, name: str) -> dict[str, int]:
    """A flat "key value" file such as memory.stat or cpu.stat."""
    out: dict[str, int] = {}
    for line in read_or(directory, name).splitlines():
        key, _, value = line.partition(" ")
        try:
            out[key] = int(value)
        except ValueError:
            continue
    return out


def procs(path: str, recursive: bool = True) -> list[int]:
    """PIDs in cgroup.procs of `path` and, if recursive, of every cgroup under it (runc's GetAllPids)."""
    pids: list[int] = []
    for dirpath, dirnames, _ in os.walk(path) if recursive else [(path, [], [])]:
        dirnames.sort()
        for line in read_or(dirpath, "cgroup.procs").split():
            pids.append(int(line))
    return pids


def _rmdir(path: str, deadline: float) -> None:
    """rmdir, ignoring a missing directory, waiting out EBUSY (the last processes still exiting) until the
    deadline, 1ms doubling as runc's rmdir does."""
    delay = 0.001
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _remove_tree(path: str, deadline: float) -> None:
    """runc's RemovePath: a fast rmdir; else the sub-cgroups first, then rmdir again, waiting while busy."""
    try:
        _rmdir(path, 0)
        return
    except OSError:
        pass
    try:
        entries = list(os.scandir(path))
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            _remove_tree(entry.path, deadline)
    _rmdir(path, deadline)


def remove_paths(paths: dict[str, str], busy_wait: float = 1.5) -> None:
    """runc's RemovePaths: rounds with a doubling delay from 10ms, each directory waiting out EBUSY while the
    shared `busy_wait` seconds last; error naming what is still there."""
    left = {p for p in paths.values() if p}
    deadline = time.monotonic() + busy_wait
    delay = 0.01
    last_error: OSError | None = None
    for attempt in range(5):
        if attempt:
            time.sleep(delay)
            delay *= 2
        for p in sorted(left, key=len, reverse=True):
            try:
                _remove_tree(p, deadline)
            except OSError as e:
                last_error = e
            if not os.path.exists(p):
                left.discard(p)
        if not left:
            return
    reason = f": {_reason(last_error)}" if last_error else (": " + os.strerror(errno.EBUSY).lower())
    raise RuntimeFailure(f"cgroup: failed to remove paths {sorted(left)}{reason}")
