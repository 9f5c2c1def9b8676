"""OCI `process.rlimits`: validated at create time, applied with setrlimit/prlimit as runc does.

runc sets them from the parent on the init process (prlimit) while init still runs as root, so raising a hard
limit works; call ``apply`` in the init before the uid switch and capability drop (or with pid= from the parent).
"""

from __future__ import annotations

import os
import resource

from pyrunc.errors import ConfigError, RuntimeFailure

# The names runc accepts (libcontainer/specconv strToRlimit) and their Linux numbers; `resource` lacks
# RLIMIT_LOCKS, and setrlimit/prlimit take the raw number for any of them.
NUMBERS: dict[str, int] = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}
_UINT64_MAX = (1 << 64) - 1
_RLIM_MAX = (1 << 63) - 1  # what CPython's rlim_t conversion accepts; 2**64-1 means unlimited


def _value(v: int) -> int:
    return resource.RLIM_INFINITY if v == _UINT64_MAX else v


def validate(rlimits: list[dict] | None) -> None:
    """ConfigError naming process.rlimits[i] for an unknown type, a bad value or soft > hard."""
    for i, rl in enumerate(rlimits or ()):
        where = f"process.rlimits[{i}]"
        if not isinstance(rl, dict):
            raise ConfigError(f"{where}: must be an object")
        kind = rl.get("type")
        if kind not in NUMBERS:
            raise ConfigError(f"wrong rlimit value: {kind} ({where}.type)")
        for key in ("hard", "soft"):
            v = rl.get(key)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0 or v > _UINT64_MAX:
                raise ConfigError(f"{where}.{key}: must be an unsigned 64-bit integer")
            if _RLIM_MAX < v < _UINT64_MAX:
                raise ConfigError(f"{where}.{key}: {v} is out of range")
        if rl["soft"] > rl["hard"]:
            raise ConfigError(f"{where}: soft limit {rl['soft']} of {kind} is greater than its hard limit {rl['hard']}")


def apply(rlimits: list[dict] | None, pid: int = 0) -> None:
    """setrlimit each entry on this process (pid=0) or prlimit it on `pid`; runc's message on failure."""
    for rl in rlimits or ():
        num = NUMBERS[rl["type"]]
        limits = (_value(rl["soft"]), _value(rl["hard"]))
        try:
            if pid:
                resource.prlimit(pid, num, limits)
            else:
                resource.setrlimit(num, limits)
        except (OSError, ValueError) as e:
            # CPython turns EPERM (raising a hard limit, or past fs.nr_open) into a ValueError
            if isinstance(e, OSError) and e.errno:
                reason = os.strerror(e.errno).lower()
            elif "not allowed" in str(e):
                reason = "operation not permitted"
            else:
                reason = "invalid argument"
            raise RuntimeFailure(f"error setting rlimit type {num}: {reason}") from None


def current(kind: str, pid: int = 0) -> tuple[int, int]:
    """(soft, hard) of `kind` for this process or `pid`, unlimited as 2**64-1 as in config.json."""
    soft, hard = resource.prlimit(pid, NUMBERS[kind]) if pid else resource.getrlimit(NUMBERS[kind])
    return tuple(_UINT64_MAX if v == resource.RLIM_INFINITY else v for v in (soft, hard))  # type: ignore[return-value]
