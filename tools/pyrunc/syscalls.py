"""Thin ctypes wrappers over the libc calls Python 3.11's os module lacks (unshare, setns, mount, pivot_root ...).

libc is loaded once, at import (dlopen of the running process: microseconds), and returned by `libc()`; every wrapper raises OSError with errno and a short description, which the
callers turn into one-line RuntimeFailure messages.
"""

from __future__ import annotations

import ctypes
import os

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_I_VERSION = 1 << 23
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

MNT_DETACH = 2

PR_SET_PDEATHSIG = 1
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36

SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}.get(os.uname().machine, 155)


def _load() -> ctypes.CDLL:
    lib = ctypes.CDLL(None, use_errno=True)
    lib.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    lib.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    lib.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    lib.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    lib.setdomainname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    lib.syscall.restype = ctypes.c_long
    return lib


_LIBC = _load()  # set up once; not changed afterwards (functools.lru_cache would cost ~0.5 ms of import)


def libc() -> ctypes.CDLL:
    return _LIBC


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def _b(s: str | None) -> bytes | None:
    return None if s is None else os.fsencode(s)


def unshare(flags: int) -> None:
    _check(libc().unshare(flags), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    _check(libc().setns(fd, nstype), "setns")


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    ret = libc().mount(_b(source), _b(target), _b(fstype), flags, _b(data) if data else None)
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source or ''}:{target} ({fstype or 'none'}): {os.strerror(err)}")


def umount2(target: str, flags: int = 0) -> None:
    _check(libc().umount2(_b(target), flags), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    _check(libc().syscall(SYS_PIVOT_ROOT, _b(new_root), _b(put_old)), "pivot_root")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _check(libc().prctl(option, arg2, arg3, arg4, arg5), "prctl")


def sethostname(name: str) -> None:
    b = name.encode()
    _check(libc().sethostname(b, len(b)), "sethostname")


def setdomainname(name: str) -> None:
    b = name.encode()
    _check(libc().setdomainname(b, len(b)), "setdomainname")


def personality(persona: int) -> None:
    _check(libc().personality(ctypes.c_ulong(persona)), "personality")


SYS_KEYCTL = {"x86_64": 250, "aarch64": 219}.get(os.uname().machine, 250)
KEYCTL_JOIN_SESSION_KEYRING = 1


def join_session_keyring(name: str) -> None:
    """A fresh session keyring for the container, as runc does; best effort (keyrings may be unavailable)."""
    libc().syscall(SYS_KEYCTL, KEYCTL_JOIN_SESSION_KEYRING, _b(name))


SYS_CLONE3 = 435  # the same number on every architecture
CLONE_INTO_CGROUP = 0x200000000
_SIGCHLD = 17


class _CloneArgs(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in ("flags", "pidfd", "child_tid", "parent_tid", "exit_signal",
                                                      "stack", "stack_size", "tls", "set_tid", "set_tid_size",
                                                      "cgroup")]


def fork_into_cgroup(cgroup_fd: int) -> int:
    """os.fork(), the child born in the cgroup2 directory `cgroup_fd` (clone3 CLONE_INTO_CGROUP, Linux 5.7+).

    Moving a process by writing cgroup.procs takes the kernel's threadgroup lock for writing, which after a
    quiet spell waits out an RCU grace period (7-20 ms here: runc pays it on every start); a child born in its
    cgroup takes it only for reading.  Python has no clone3, so this is os.fork()'s own sequence with clone3 for
    fork(2): PyOS_BeforeFork, the syscall with the GIL held (PyDLL), PyOS_AfterFork_Child/_Parent.  glibc's
    fork wrapper and its atfork handlers are skipped: no other thread may be inside libc at that moment (the
    GIL keeps Python threads out; pyrunc's create starts none), and the child only execs or exits in the end.
    OSError (ENOSYS on old kernels or under seccomp, E2BIG without CLONE_INTO_CGROUP...) leaves nothing behind.
    """
    api = ctypes.pythonapi
    raw = ctypes.PyDLL(None, use_errno=True).syscall
    raw.restype = ctypes.c_long
    args = _CloneArgs(flags=CLONE_INTO_CGROUP, exit_signal=_SIGCHLD, cgroup=cgroup_fd)
    api.PyOS_BeforeFork()
    pid = raw(ctypes.c_long(SYS_CLONE3), ctypes.byref(args), ctypes.c_size_t(ctypes.sizeof(args)))
    if pid == 0:
        api.PyOS_AfterFork_Child()
        return 0
    err = ctypes.get_errno()
    api.PyOS_AfterFork_Parent()
    if pid < 0:
        raise OSError(err, f"clone3: {os.strerror(err)}")
    return pid
