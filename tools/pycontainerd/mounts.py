"""mount(2) and umount2(2) through ctypes: a container's rootfs mounted without exec'ing mount(8).

`mount(8)` costs a fork+exec (~3-10 ms, more under load) per call; the syscall is microseconds.
Options are containerd's mount options: flag words (ro, rw, bind, rbind, nosuid, …) become MS_*
flags, everything else goes to the filesystem as data (overlay's lowerdir=…, upperdir=…).
Errors: MountError (an OSError) naming the target, as mount(8) would print it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from dataclasses import dataclass
from functools import lru_cache

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_DIRSYNC = 0x80
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2

# flag word → (flags to set, flags to clear)
_FLAGS = {
    "ro": (MS_RDONLY, 0), "rw": (0, MS_RDONLY), "nosuid": (MS_NOSUID, 0), "suid": (0, MS_NOSUID),
    "nodev": (MS_NODEV, 0), "dev": (0, MS_NODEV), "noexec": (MS_NOEXEC, 0), "exec": (0, MS_NOEXEC),
    "sync": (MS_SYNCHRONOUS, 0), "async": (0, MS_SYNCHRONOUS), "dirsync": (MS_DIRSYNC, 0),
    "noatime": (MS_NOATIME, 0), "atime": (0, MS_NOATIME), "nodiratime": (MS_NODIRATIME, 0),
    "diratime": (0, MS_NODIRATIME), "relatime": (MS_RELATIME, 0), "strictatime": (MS_STRICTATIME, 0),
    "bind": (MS_BIND, 0), "rbind": (MS_BIND | MS_REC, 0), "defaults": (0, 0),
}
_PROPAGATION = {"private": MS_PRIVATE, "rprivate": MS_PRIVATE | MS_REC, "slave": MS_SLAVE,
                "rslave": MS_SLAVE | MS_REC, "shared": MS_SHARED, "rshared": MS_SHARED | MS_REC}


class MountError(OSError):
    pass


@lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    return libc


@dataclass(frozen=True)
class Parsed:
    flags: int
    propagation: int
    data: str


def parse_options(options: list[str]) -> Parsed:
    flags, propagation, data = 0, 0, []
    for opt in options:
        if opt in _FLAGS:
            on, off = _FLAGS[opt]
            flags = (flags | on) & ~off
        elif opt in _PROPAGATION:
            propagation |= _PROPAGATION[opt]
        else:
            data.append(opt)
    return Parsed(flags, propagation, ",".join(data))


def _call(source: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    enc = os.fsencode
    rc = _libc().mount(enc(source) if source is not None else None, enc(target),
                       enc(fstype) if fstype else None, flags, enc(data) if data else None)
    if rc != 0:
        err = ctypes.get_errno()
        raise MountError(err, f"mount {target}: {os.strerror(err)}", target)


def mount(fstype: str, source: str, target: str, options: list[str]) -> None:
    """One mount as `mount -t TYPE -o OPTIONS SOURCE TARGET` (or `mount --[r]bind` for type bind)."""
    p = parse_options(options)
    if fstype == "bind" or p.flags & MS_BIND:
        flags = p.flags & (MS_BIND | MS_REC) | MS_BIND
        _call(source, target, None, flags, None)
        rest = p.flags & ~(MS_BIND | MS_REC)
        if rest:  # a bind mount takes ro/nosuid/… only on a remount
            _call(None, target, None, MS_REMOUNT | MS_BIND | rest, None)
    else:
        _call(source, target, fstype or None, p.flags, p.data or None)
    if p.propagation:
        _call(None, target, None, p.propagation, None)


def propagate(target: str, kind: str) -> None:
    """`mount --make-KIND TARGET` (shared, rshared, private, rprivate, slave, rslave)."""
    _call(None, target, None, _PROPAGATION[kind], None)


def unmount(target: str, lazy: bool = False) -> None:
    if _libc().umount2(os.fsencode(target), MNT_DETACH if lazy else 0) != 0:
        err = ctypes.get_errno()
        raise MountError(err, f"umount {target}: {os.strerror(err)}", target)
