"""pyrunc.seccomp: runc's validation messages, and real filters loaded in forked children."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import traceback

import pytest

from pyrunc import seccomp
from pyrunc.errors import ConfigError


def in_child(fn, spec):
    """Fork; the child installs `spec` then runs fn(); returns (fn's JSON result or None, wait status)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            seccomp.install(spec)
            out = {"ok": fn()}
        except BaseException as e:  # the child must never return into pytest
            out = {"error": f"{type(e).__name__}: {e}", "tb": traceback.format_exc()}
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    out = json.loads(data) if data else None
    if out and "error" in out:
        raise AssertionError(out["error"] + "\n" + out["tb"])
    return (out or {}).get("ok"), status


def mkdir_errno(path: str, mode: int):
    try:
        os.mkdir(path, mode)
    except OSError as e:
        return e.errno
    return 0


def mkdir_rules(action: str, conds_mkdir: list, conds_mkdirat: list, **extra) -> list[dict]:
    # glibc may use mkdir or mkdirat: the mode is argument 1 of one and argument 2 of the other.
    return [dict(names=["mkdir"], action=action, args=conds_mkdir, **extra),
            dict(names=["mkdirat"], action=action, args=conds_mkdirat, **extra)]


def eq(index: int, value: int, op: str = "SCMP_CMP_EQ", two: int = 0) -> dict:
    return {"index": index, "value": value, "valueTwo": two, "op": op}


def test_errno_rule_with_argument_condition_and_allowed_getpid(tmp_path):
    spec = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": mkdir_rules("SCMP_ACT_ERRNO", [eq(1, 0o700)], [eq(2, 0o700)], errnoRet=1)
        + [{"names": ["getpid", "no_such_syscall"], "action": "SCMP_ACT_ALLOW"}],  # redundant and unknown: skipped
    }
    assert seccomp.validate(spec) == ["no_such_syscall"]

    def child():
        return [mkdir_errno(str(tmp_path / "a"), 0o700), mkdir_errno(str(tmp_path / "b"), 0o755), os.getpid() > 0]

    out, status = in_child(child, spec)
    assert out == [errno.EPERM, 0, True]
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert not (tmp_path / "a").exists() and (tmp_path / "b").is_dir()


def test_errno_defaults_to_eperm_and_masked_eq(tmp_path):
    # MASKED_EQ: (mode & 0o077) == 0 -> refused; a group/other readable mode is let through.
    spec = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": mkdir_rules(
        "SCMP_ACT_ERRNO", [eq(1, 0o077, "SCMP_CMP_MASKED_EQ", 0)], [eq(2, 0o077, "SCMP_CMP_MASKED_EQ", 0)])}
    out, _ = in_child(lambda: [mkdir_errno(str(tmp_path / "p"), 0o700), mkdir_errno(str(tmp_path / "q"), 0o750)],
                      spec)
    assert out == [errno.EPERM, 0]


def test_two_conditions_on_one_argument_are_ored_like_runc(tmp_path):
    spec = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": mkdir_rules(
        "SCMP_ACT_ERRNO", [eq(1, 0o700), eq(1, 0o711)], [eq(2, 0o700), eq(2, 0o711)], errnoRet=errno.EACCES)}
    out, _ = in_child(lambda: [mkdir_errno(str(tmp_path / m), int(m, 8)) for m in ("700", "711", "755")], spec)
    assert out == [errno.EACCES, errno.EACCES, 0]


def test_same_syscall_in_several_rules(tmp_path):
    spec = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls":
            mkdir_rules("SCMP_ACT_ERRNO", [eq(1, 0o700)], [eq(2, 0o700)], errnoRet=errno.EEXIST)
            + mkdir_rules("SCMP_ACT_ERRNO", [eq(1, 0o711)], [eq(2, 0o711)], errnoRet=errno.EROFS)}
    out, _ = in_child(lambda: [mkdir_errno(str(tmp_path / m), int(m, 8)) for m in ("700", "711", "750")], spec)
    assert out == [errno.EEXIST, errno.EROFS, 0]


def test_default_errno_ret_with_an_allow_list(tmp_path):
    # Default refuse with ENOSYS; allow just what the child needs to report and exit.
    allowed = ["write", "exit_group", "exit", "brk", "mmap", "munmap", "mremap", "madvise", "rt_sigprocmask",
               "rt_sigaction", "futex", "getpid", "close", "fstat", "newfstatat", "lseek", "ioctl"]
    spec = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.ENOSYS,
            "syscalls": [{"names": allowed, "action": "SCMP_ACT_ALLOW"}]}
    out, status = in_child(lambda: [mkdir_errno(str(tmp_path / "x"), 0o755), os.getpid() > 0], spec)
    assert out == [errno.ENOSYS, True]
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD",
                                    "SCMP_ACT_TRAP"])
def test_killing_actions_end_the_child_with_sigsys(tmp_path, action):
    spec = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": mkdir_rules(action, [], [])}
    out, status = in_child(lambda: mkdir_errno(str(tmp_path / "k"), 0o755), spec)
    assert out is None
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS
    assert not (tmp_path / "k").exists()


def test_log_and_flags_allow(tmp_path):
    spec = {"defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC"],
            "syscalls": mkdir_rules("SCMP_ACT_LOG", [], [])}
    out, _ = in_child(lambda: mkdir_errno(str(tmp_path / "l"), 0o755), spec)
    assert out == 0


def test_notify_hands_the_listener_fd_over(tmp_path):
    listener = str(tmp_path / "agent.sock")
    spec = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": listener, "listenerMetadata": "meta",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as srv:
        srv.bind(listener)
        srv.listen(1)
        srv.settimeout(10)

        def child():
            fd = seccomp.install(spec)
            seccomp.send_to_listener(listener, fd, {"ociVersion": "1.0.2", "id": "c1", "status": "creating"},
                                     os.getpid(), "meta")
            return fd

        pid = os.fork()
        if pid == 0:
            try:
                child()
                os._exit(0)
            except BaseException:
                os._exit(3)
        try:
            conn, _ = srv.accept()
            with conn:
                msg, fds, _, _ = socket.recv_fds(conn, 65536, 1)
            assert len(fds) == 1
            assert os.readlink(f"/proc/self/fd/{fds[0]}") == "anon_inode:seccomp notify"
            os.close(fds[0])
            state = json.loads(msg)
            assert state["fds"] == ["seccompFd"] and state["metadata"] == "meta" and state["pid"] == pid
            assert state["state"]["id"] == "c1"
        finally:
            _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


@pytest.mark.parametrize("spec,message", [
    ({"defaultAction": "SCMP_ACT_FOO"}, "string SCMP_ACT_FOO is not a valid action for seccomp"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_FOO"]},
     "string SCMP_ARCH_FOO is not a valid arch for seccomp"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                                                      "args": [eq(0, 1, "SCMP_CMP_FOO")]}]},
     "string SCMP_CMP_FOO is not a valid operator for seccomp"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_BAR"}]},
     "string SCMP_ACT_BAR is not a valid action for seccomp"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                                                      "args": [eq(7, 1)]}]},
     r"syscalls only have up to 6 arguments \(7 given\)"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]},
     "listenerPath is not set"),
    ({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/x"}, "SCMP_ACT_NOTIFY cannot be used as default action"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x",
      "syscalls": [{"names": ["write"], "action": "SCMP_ACT_NOTIFY"}]},
     "SCMP_ACT_NOTIFY cannot be used for the write syscall"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_NEW_LISTENER"]},
     "seccomp flag SECCOMP_FILTER_FLAG_NEW_LISTENER is not known to runc"),
    ({"syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}, "string  is not a valid action for seccomp"),
])
def test_validate_messages_match_runc(spec, message):
    with pytest.raises(ConfigError, match=message):
        seccomp.validate(spec)


def test_disabled_when_empty():
    assert seccomp.parse(None) is None and seccomp.parse({}) is None
    assert seccomp.validate({"architectures": ["SCMP_ARCH_X86"]}) == []
    assert seccomp.install(None) == -1


def test_pfc_shows_skipped_and_kept_rules():
    spec = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["getppid"], "action": "SCMP_ACT_ERRNO"},  # same as the default: skipped
        {"names": ["gettid"], "action": "SCMP_ACT_TRACE", "errnoRet": 5}]}
    pfc = seccomp.exported_pfc(spec)
    assert '"getpid"' in pfc and '"getppid"' not in pfc
    assert "action TRACE(5)" in pfc and "action ERRNO(1)" in pfc


def raw_syscall_errno(nr: int) -> int:
    import ctypes

    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    ctypes.set_errno(0)
    ret = libc.syscall(nr, 0, 0, 0)
    return ctypes.get_errno() if ret == -1 else 0


# Enough for the child to report and exit; the highest of these on x86_64 is newfstatat (262).
ALLOW_LIST = ["write", "exit_group", "exit", "brk", "mmap", "munmap", "mremap", "madvise", "rt_sigprocmask",
              "rt_sigaction", "futex", "getpid", "close", "fstat", "newfstatat", "lseek", "ioctl"]


@pytest.mark.parametrize("arches,beyond", [
    (["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"], errno.ENOSYS),
    (["SCMP_ARCH_X86_64"], errno.ENOSYS),
    ([], errno.EPERM),  # no architectures listed: runc adds no stub either
])
def test_enosys_stub_for_syscalls_newer_than_the_profile(arches, beyond):
    import ctypes  # noqa: F401  (loaded before the filter)

    spec = {"defaultAction": "SCMP_ACT_ERRNO", "architectures": arches,
            "syscalls": [{"names": ALLOW_LIST, "action": "SCMP_ACT_ALLOW"}]}
    raw_syscall_errno(39)  # warm ctypes up before the filter is in place
    out, _ = in_child(lambda: [raw_syscall_errno(100), raw_syscall_errno(300), raw_syscall_errno(39)], spec)
    # times (100) is older than newfstatat: the default EPERM; fanotify_init (300) is newer: ENOSYS; getpid works
    assert out == [errno.EPERM, beyond, 0]


def test_enosys_stub_shape():
    p = seccomp.parse({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X32"],
                       "syscalls": [{"names": ["read", "newfstatat"], "action": "SCMP_ACT_ALLOW"}]})
    stub = seccomp.enosys_stub(p)
    assert stub[0] == (0x20, 0, 0, 4)  # load arch
    assert stub[-1] == (0x06, 0, 0, 0x50000 | errno.ENOSYS)
    ks = [k for code, _, _, k in stub if code == 0x25]
    assert ks == [0x40000000 + 262, 262]  # x32 and amd64 limits
    for allow_default in ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG"):
        assert seccomp.enosys_stub(seccomp.parse(dict(defaultAction=allow_default, architectures=["SCMP_ARCH_X86"],
                                                      syscalls=[{"names": ["read"], "action": "SCMP_ACT_ERRNO"}])))\
            == []
    assert seccomp.enosys_stub(seccomp.parse({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.ENOSYS,
                                              "architectures": ["SCMP_ARCH_X86_64"],
                                              "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]})) == []
