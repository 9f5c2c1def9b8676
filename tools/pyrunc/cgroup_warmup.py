"""Pay the kernel's cgroup migration lock warm-up in the background, from the first moment of a start.

The first write to a cgroup.procs file after a quiet spell waits out an RCU grace period (the global threadgroup
rwsem switching to its slow mode: 7-20 ms on these hosts, longer under load) while holding the cgroup mutex, so
every other cgroup mkdir or write waits too; for ~one grace period after the last such write they are cheap.
runc pays it inline.  `start()` begins paying it in a thread while the interpreter imports the runtime and reads
config.json, so the container's own cgroup writes, a few milliseconds later, find it passed.

Only os calls in the thread (no locks a fork could inherit held); best effort: errors are ignored.  Imports
nothing but builtins: it runs before the rest of pyrunc is imported.
"""

from __future__ import annotations

import os


def _procs_file() -> str | None:
    """A cgroup.procs to rewrite with our own pid (a no-op move): the pids hierarchy's (v1), else cgroup2's."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    path = None
    for line in lines:
        _, controllers, rel = line.split(":", 2)
        if "pids" in controllers.split(","):
            return f"/sys/fs/cgroup/pids{rel}/cgroup.procs"
        if controllers == "":
            for mnt in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
                if os.path.exists(f"{mnt}/cgroup.controllers"):
                    path = f"{mnt}{rel}/cgroup.procs"
                    break
    return path


def _write(path: str, data: bytes) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
    except OSError:
        pass


def start() -> None:
    """Start the warm-up thread (returns at once)."""
    path = _procs_file()
    if path is None:
        return
    import _thread

    _thread.start_new_thread(_write, (path, str(os.getpid()).encode()))
