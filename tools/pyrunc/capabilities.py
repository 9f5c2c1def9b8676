"""OCI `process.capabilities`: the five capability sets, applied as runc 1.1 does, with ctypes on libc only.

How the container init must call this module (runc's finalizeNamespace order):

1. while still uid 0 with full capabilities: ``apply_bounding(caps)`` (optional: ``apply`` does it too,
   as long as CAP_SETPCAP is still in the permitted set);
2. ``set_keepcaps(True)``, then setgroups/setgid/setuid, then ``set_keepcaps(False)`` -- without KEEPCAPS a
   switch away from uid 0 empties the permitted set and nothing can be granted any more;
3. ``apply(caps)``: bounding (again), then capset(effective, permitted, inheritable), then ambient (an ambient
   cap that the kernel refuses, because it is not in both permitted and inheritable, is skipped as runc does).

Names unknown to this kernel (or misspelt) are ignored with a warning, exactly as runc 1.1 does:
``validate`` returns them and ``warning(names)`` gives runc's message for the log. ``caps=None`` (no
``process.capabilities`` in config.json) means every set is empty, as in runc.
"""

from __future__ import annotations

import ctypes
import errno
import os

from pyrunc.errors import ConfigError, RuntimeFailure

# Every capability name the runtime knows, by number (linux/capability.h up to 6.x); `runc features` lists these.
KNOWN: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)
SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")
CAP_SETPCAP = 8

PR_GET_KEEPCAPS = 7
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_IS_SET = 1
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _libc() -> ctypes.CDLL:
    from .syscalls import libc  # the process's libc, prctl's argument types set (loaded once there)

    return libc()


def _read_last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        return len(KNOWN) - 1


def last_cap(_known: list[int] = []) -> int:  # noqa: B006 - the one-value cache (functools costs ~0.5 ms of import)
    """The highest capability number this kernel knows (/proc/sys/kernel/cap_last_cap), read once."""
    if not _known:
        _known.append(_read_last_cap())
    return _known[0]


def all_caps() -> tuple[str, ...]:
    """The capability names this kernel knows."""
    return KNOWN[: last_cap() + 1]


def __getattr__(name: str):
    # `ALL` is computed on first use so that importing the module reads nothing from /proc.
    if name == "ALL":
        return all_caps()
    raise AttributeError(name)


def _number(name: str) -> int | None:
    try:
        n = KNOWN.index(name)
    except ValueError:
        return None
    return n if n <= last_cap() else None


def parse(names: list[str] | tuple[str, ...]) -> int:
    """Bit mask of the known names in `names`; unknown or unavailable ones are left out (as runc does)."""
    mask = 0
    for name in names:
        n = _number(name)
        if n is not None:
            mask |= 1 << n
    return mask


def names(mask: int) -> list[str]:
    """Capability names of the bits set in `mask`, in number order."""
    return [KNOWN[i] for i in range(len(KNOWN)) if mask >> i & 1]


def unknown(caps: dict | None) -> list[str]:
    """Sorted names in `caps` that this kernel does not know (runc ignores them with a warning)."""
    bad: set[str] = set()
    for key in SETS:
        for name in (caps or {}).get(key) or ():
            if _number(name) is None:
                bad.add(name)
    return sorted(bad)


def warning(unknown_names: list[str]) -> str:
    """runc 1.1's warning text for ignored capabilities."""
    return "ignoring unknown or unavailable capabilities: [" + " ".join(unknown_names) + "]"


def validate(caps: dict | None, strict: bool = False) -> list[str]:
    """Check the shape of `caps`; return the unknown names to warn about (ConfigError for them if `strict`)."""
    if caps is None:
        return []
    if not isinstance(caps, dict):
        raise ConfigError("process.capabilities: must be an object")
    for key, value in caps.items():
        if key not in SETS:
            raise ConfigError(f"process.capabilities.{key}: unknown capability set")
        if value is None:
            continue
        if not isinstance(value, list):
            raise ConfigError(f"process.capabilities.{key}: must be an array of strings")
        for i, name in enumerate(value):
            if not isinstance(name, str):
                raise ConfigError(f"process.capabilities.{key}[{i}]: must be a string")
            if strict and _number(name) is None:
                raise ConfigError(f"process.capabilities.{key}[{i}]: unknown capability {name!r}")
    return unknown(caps)


def masks(caps: dict | None) -> dict[str, int]:
    """Each of the five sets as a bit mask (missing sets, or caps=None, are empty)."""
    caps = caps or {}
    return {key: parse(caps.get(key) or ()) for key in SETS}


def _fail(what: str) -> RuntimeFailure:
    err = ctypes.get_errno()
    return RuntimeFailure(f"{what}: {os.strerror(err).lower()}")


def _prctl(option: int, arg2: int = 0, arg3: int = 0) -> int:
    return _libc().prctl(option, arg2, arg3, 0, 0)


def capget() -> tuple[int, int, int]:
    """This thread's (effective, permitted, inheritable) masks."""
    hdr = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)()
    if _libc().capget(ctypes.byref(hdr), data) != 0:
        raise _fail("capget")
    eff, prm, inh = (getattr(data[0], f) | getattr(data[1], f) << 32 for f in ("effective", "permitted", "inheritable"))
    return eff, prm, inh


def capset(effective: int, permitted: int, inheritable: int) -> None:
    hdr = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)()
    for i in range(2):
        shift = 32 * i
        data[i].effective = effective >> shift & 0xFFFFFFFF
        data[i].permitted = permitted >> shift & 0xFFFFFFFF
        data[i].inheritable = inheritable >> shift & 0xFFFFFFFF
    if _libc().capset(ctypes.byref(hdr), data) != 0:
        raise _fail("unable to apply caps")


def set_keepcaps(on: bool) -> None:
    """PR_SET_KEEPCAPS: keep the permitted set across the switch away from uid 0."""
    if _prctl(PR_SET_KEEPCAPS, 1 if on else 0) != 0:
        raise _fail("prctl(PR_SET_KEEPCAPS)")


def set_no_new_privs() -> None:
    if _prctl(PR_SET_NO_NEW_PRIVS, 1) != 0:
        raise _fail("prctl(PR_SET_NO_NEW_PRIVS)")


def _drop_bounding(keep: int) -> None:
    for n in range(last_cap() + 1):
        if keep >> n & 1:
            continue
        if _prctl(PR_CAPBSET_DROP, n) != 0 and ctypes.get_errno() != errno.EINVAL:
            raise _fail("unable to apply bounding set")


def apply_bounding(caps: dict | None) -> bool:
    """Drop from the bounding set every capability not listed (needs CAP_SETPCAP in the effective set); whether
    it could (apply() then need not drop them again)."""
    keep = masks(caps)["bounding"]
    effective, permitted, _ = capget()
    if effective >> CAP_SETPCAP & 1:
        _drop_bounding(keep)
        return True
    return False


def apply(caps: dict | None, bounding_done: bool = False) -> None:
    """Set all five sets for this thread: bounding, then effective/permitted/inheritable, then ambient."""
    m = masks(caps)
    effective, permitted, inheritable = capget()
    if permitted >> CAP_SETPCAP & 1 and not bounding_done:
        # After a KEEPCAPS uid switch the effective set is empty: raise it from permitted for the drops.
        if not effective >> CAP_SETPCAP & 1:
            capset(permitted, permitted, inheritable)
        _drop_bounding(m["bounding"])
    capset(m["effective"], m["permitted"], m["inheritable"])
    if _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL) != 0 and ctypes.get_errno() != errno.EINVAL:
        raise _fail("unable to apply caps")
    for n in range(last_cap() + 1):
        if m["ambient"] >> n & 1:
            # The kernel refuses caps missing from permitted or inheritable; runc 1.1 ignores that (checked:
            # such a config runs, without those ambient caps), so do we.
            _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, n)


def bounding_mask() -> int:
    """This thread's bounding set, read with PR_CAPBSET_READ."""
    return sum(1 << n for n in range(last_cap() + 1) if _prctl(PR_CAPBSET_READ, n) == 1)
