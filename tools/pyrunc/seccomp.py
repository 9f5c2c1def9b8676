"""OCI `linux.seccomp` with libseccomp (through the pyseccomp binding), converted and installed as runc 1.1 does.

``validate(spec)`` raises ConfigError with runc's messages (unknown action, operator or arch, argument index > 5,
NOTIFY misuse) and returns the syscall names this libseccomp does not know: runc skips those rules (with a debug
log), so do we. ``compiled`` makes the same checks when it compiles, i.e. at create time on a cache miss.

``compiled(spec, root)`` runs in the runtime before it forks the init: it validates and compiles the profile into
the final program (or takes it from ROOT's cache, seccomp_cache.py: docker's default profile costs 45-100 ms of
libseccomp work to compile) and returns the profile as a ``Compiled`` dict carrying it.

``install(spec)`` loads that program in the container init (a plain dict is compiled first). Call it where runc
does:
- without ``process.noNewPrivileges``: before the capabilities are dropped (loading a filter without NNP needs
  CAP_SYS_ADMIN), i.e. before ``capabilities.apply``;
- with ``noNewPrivileges``: as late as possible, right before execve, after PR_SET_NO_NEW_PRIVS.
The filter does not set NNP itself (runc unsets libseccomp's NNP attribute). It returns the listener fd when a
rule uses SCMP_ACT_NOTIFY (then ``send_to_listener`` hands it to ``listenerPath``), else -1.

Loading follows runc's PatchAndLoad: libseccomp's BPF is exported, prefixed with a stub that answers -ENOSYS
to syscalls newer than any the profile names (for the listed architectures), and loaded with seccomp(2).
Flags: SECCOMP_FILTER_FLAG_LOG and _SPEC_ALLOW are set, _TSYNC is accepted and ignored, others are refused
(runc 1.1.5 itself still refuses any flag: "seccomp flags are not yet supported by runc").

pyseccomp is imported inside the functions, only to compile: pyrunc's start-up does not pay for it when there is
no seccomp or the program is cached, and the init never needs it (``preload()`` imports ctypes for seccomp(2)).
"""

from __future__ import annotations

import errno
import os
from .records import record

from pyrunc.errors import ConfigError, RuntimeFailure

# runc 1.1's tables (libcontainer/seccomp/config.go); `runc features` prints them.
ACTIONS = ("SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
           "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP")
OPERATORS = {"SCMP_CMP_NE": "NE", "SCMP_CMP_LT": "LT", "SCMP_CMP_LE": "LE", "SCMP_CMP_EQ": "EQ",
             "SCMP_CMP_GE": "GE", "SCMP_CMP_GT": "GT", "SCMP_CMP_MASKED_EQ": "MASKED_EQ"}
ARCHES = {"SCMP_ARCH_X86": "X86", "SCMP_ARCH_X86_64": "X86_64", "SCMP_ARCH_X32": "X32", "SCMP_ARCH_ARM": "ARM",
          "SCMP_ARCH_AARCH64": "AARCH64", "SCMP_ARCH_MIPS": "MIPS", "SCMP_ARCH_MIPS64": "MIPS64",
          "SCMP_ARCH_MIPS64N32": "MIPS64N32", "SCMP_ARCH_MIPSEL": "MIPSEL", "SCMP_ARCH_MIPSEL64": "MIPSEL64",
          "SCMP_ARCH_MIPSEL64N32": "MIPSEL64N32", "SCMP_ARCH_PPC": "PPC", "SCMP_ARCH_PPC64": "PPC64",
          "SCMP_ARCH_PPC64LE": "PPC64LE", "SCMP_ARCH_S390": "S390", "SCMP_ARCH_S390X": "S390X"}
# Filter flags and the libseccomp attribute that sets each (TSYNC is accepted and ignored, as in runc).
FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": None, "SECCOMP_FILTER_FLAG_LOG": "CTL_LOG",
         "SECCOMP_FILTER_FLAG_SPEC_ALLOW": "CTL_SSB"}
MAX_ARGS = 6


# records (records.py) rather than dataclasses: importing dataclasses costs ~15ms on the container start path.
Arg = record("Arg", "index op value value_two")
Syscall = record("Syscall", "name action errno_ret args")
# linux.seccomp flattened as runc's configs.Seccomp: one Syscall per name.
Profile = record("Profile", "default_action default_errno_ret architectures flags syscalls listener_path "
                                "listener_metadata")


def _binding():
    """The pyseccomp module, imported with its two find_library() lookups answered by soname.

    pyseccomp resolves libc and libseccomp with ctypes.util.find_library at import, which runs `ldconfig -p` in
    a subprocess each time (~20ms together, on the container start path); the stdlib function is swapped only
    for the duration of that import, and falls back to itself if a soname does not load.
    """
    import sys

    module = sys.modules.get("pyseccomp")
    if module is not None:
        return module
    import ctypes
    import ctypes.util

    real = ctypes.util.find_library

    def find(name: str):
        soname = {"c": "libc.so.6", "seccomp": "libseccomp.so.2"}.get(name)
        if soname:
            try:
                ctypes.CDLL(soname)
                return soname
            except OSError:
                pass
        return real(name)

    ctypes.util.find_library = find
    try:
        import pyseccomp
    finally:
        ctypes.util.find_library = real
    return pyseccomp


def parse(spec: dict | None) -> Profile | None:
    """The profile, or None when seccomp is off (no spec, or neither defaultAction nor syscalls, as runc)."""
    if not spec or (not spec.get("defaultAction") and not spec.get("syscalls")):
        return None
    for flag in spec.get("flags") or ():
        if flag not in FLAGS:
            raise ConfigError(f"seccomp flag {flag} is not known to runc")
    for arch in spec.get("architectures") or ():
        if arch not in ARCHES:
            raise ConfigError(f"string {arch} is not a valid arch for seccomp")
    default = spec.get("defaultAction", "")
    if default not in ACTIONS:
        raise ConfigError(f"string {default} is not a valid action for seccomp")
    calls: list[Syscall] = []
    for i, rule in enumerate(spec.get("syscalls") or ()):
        action = rule.get("action", "")
        if action not in ACTIONS:
            raise ConfigError(f"string {action} is not a valid action for seccomp")
        args = []
        for arg in rule.get("args") or ():
            op = arg.get("op", "")
            if op not in OPERATORS:
                raise ConfigError(f"string {op} is not a valid operator for seccomp")
            args.append(Arg(arg.get("index", 0), op, arg.get("value", 0), arg.get("valueTwo", 0)))
        for name in rule.get("names") or ():
            calls.append(Syscall(name, action, rule.get("errnoRet"), args))
    return Profile(default, spec.get("defaultErrnoRet"), list(spec.get("architectures") or ()),
                   list(spec.get("flags") or ()), calls, spec.get("listenerPath", ""),
                   spec.get("listenerMetadata", ""))


def _check(p: Profile) -> None:
    """The errors runc only finds while initialising seccomp, found at create time instead."""
    if p.default_action == "SCMP_ACT_NOTIFY":
        raise ConfigError("SCMP_ACT_NOTIFY cannot be used as default action")
    notify = False
    for call in p.syscalls:
        if not call.name:
            raise ConfigError("empty string is not a valid syscall")
        for arg in call.args:
            if not 0 <= arg.index < MAX_ARGS:
                raise ConfigError(f"error creating seccomp syscall condition for syscall {call.name}: "
                                  f"syscalls only have up to {MAX_ARGS} arguments ({arg.index} given)")
        if call.action == "SCMP_ACT_NOTIFY":
            notify = True
            if call.name == "write":
                raise ConfigError("SCMP_ACT_NOTIFY cannot be used for the write syscall")
    if notify and not p.listener_path:
        raise ConfigError("listenerPath is not set")


def validate(spec: dict | None) -> list[str]:
    """ConfigError for what runc refuses; returns the syscall names unknown here (their rules are skipped)."""
    p = parse(spec)
    if p is None:
        return []
    _check(p)
    sc = _binding()
    return sorted({c.name for c in p.syscalls if sc.resolve_syscall(sc.Arch.NATIVE, c.name) < 0})


def action_value(action: str, errno_ret: int | None) -> int:
    """The libseccomp action word: ERRNO and TRACE carry errnoRet (EPERM when unset), KILL is KILL_THREAD."""
    sc = _binding()

    ret = errno.EPERM if errno_ret is None else errno_ret
    if action == "SCMP_ACT_ERRNO":
        return sc.ERRNO(ret)
    if action == "SCMP_ACT_TRACE":
        return sc.TRACE(ret)
    return {"SCMP_ACT_KILL": sc.KILL_THREAD, "SCMP_ACT_KILL_THREAD": sc.KILL_THREAD,
            "SCMP_ACT_KILL_PROCESS": sc.KILL_PROCESS, "SCMP_ACT_TRAP": sc.TRAP, "SCMP_ACT_ALLOW": sc.ALLOW,
            "SCMP_ACT_LOG": sc.LOG, "SCMP_ACT_NOTIFY": sc.NOTIFY}[action]


def _reason(e: OSError) -> str:
    return os.strerror(e.errno).lower() if e.errno else str(e)


def build(spec: dict):
    """A pyseccomp.SyscallFilter for `spec` (not loaded), or None when seccomp is off."""
    sc = _binding()

    p = parse(spec)
    if p is None:
        return None
    _check(p)
    default = action_value(p.default_action, p.default_errno_ret)
    try:
        f = sc.SyscallFilter(default)
    except OSError as e:
        raise RuntimeFailure(f"error creating filter: {_reason(e)}") from None
    for arch in p.architectures:
        try:
            f.add_arch(getattr(sc.Arch, ARCHES[arch]))
        except OSError as e:
            if e.errno != errno.EEXIST:  # the native arch is always there already
                raise RuntimeFailure(f"error adding architecture to seccomp filter: {_reason(e)}") from None
    for flag in p.flags:
        attr = FLAGS[flag]
        if attr is None:
            continue
        try:
            f.set_attr(getattr(sc.Attr, attr), 1)
        except OSError as e:
            what = "log" if attr == "CTL_LOG" else "SSB"
            raise RuntimeFailure(f"error adding {what} flag to seccomp filter: {_reason(e)}") from None
    if len(p.syscalls) > 32:
        try:
            f.set_attr(sc.Attr.CTL_OPTIMIZE, 2)  # libseccomp's binary tree for long lists, as runc
        except OSError:
            pass
    f.set_attr(sc.Attr.CTL_NNP, 0)  # NNP is the caller's business (process.noNewPrivileges)
    ops = {name: getattr(sc, attr) for name, attr in OPERATORS.items()}
    for call in p.syscalls:
        act = action_value(call.action, call.errno_ret)
        if act == default:
            continue  # redundant with the default action: runc skips it (libseccomp would refuse it)
        nr = sc.resolve_syscall(sc.Arch.NATIVE, call.name)
        if nr == -1:
            continue  # unknown to this libseccomp: ignored, as runc does
        conds = [sc.Arg(a.index, ops[a.op], a.value, a.value_two) for a in call.args]
        # Two conditions on the same argument cannot be ANDed by libseccomp: runc then adds one rule per condition.
        indexes = [a.index for a in call.args]
        groups = [[c] for c in conds] if len(set(indexes)) != len(indexes) else [conds]
        for group in groups:
            try:
                f.add_rule(act, nr, *group)
            except OSError as e:
                raise RuntimeFailure(f"error adding seccomp filter rule for syscall {call.name}: {_reason(e)}") \
                    from None
    return f


# -- loading: runc's patchbpf -----------------------------------------------------------------------------------
# runc does not let libseccomp load the filter: it exports the BPF, prepends a stub that answers -ENOSYS for
# syscalls newer than any the profile names (so that e.g. glibc falls back from clone3 instead of failing on the
# default EPERM), and loads it with seccomp(2) itself, which also gives the NOTIFY listener fd.

_SYS_SECCOMP = {"x86_64": 317, "aarch64": 277, "ppc64le": 358, "s390x": 348, "riscv64": 277, "i686": 354}
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_LOG, SECCOMP_FILTER_FLAG_SPEC_ALLOW, SECCOMP_FILTER_FLAG_NEW_LISTENER = 2, 4, 8
SECCOMP_RET_ERRNO = 0x00050000
_X32_BIT = 0x40000000
_LD_W_ABS, _JMP_JA, _JMP_JEQ_K, _JMP_JGT_K, _JMP_JSET_K, _RET_K = 0x20, 0x05, 0x15, 0x25, 0x45, 0x06


def _resolve(arch: int, name: str) -> int:
    import ctypes

    sc = _binding()
    # pyseccomp's resolve_syscall passes the arch as a C int, which overflows for 64-bit audit arches.
    return sc._libseccomp.seccomp_syscall_resolve_name_arch(ctypes.c_uint32(arch), name.encode())


def last_syscalls(p: Profile) -> dict[int, dict[str, int]]:
    """runc's findLastSyscalls: per audit arch, per listed arch, the highest syscall number the profile names.

    Only the architectures listed in the profile count (none listed: no stub at all, as in runc).
    """
    sc = _binding()

    out: dict[int, dict[str, int]] = {}
    for name in p.architectures:
        arch = getattr(sc.Arch, ARCHES[name])
        audit = sc.Arch.X86_64 if ARCHES[name] == "X32" else arch  # x32 calls arrive as x86_64, nr | 1<<30
        largest = max((_resolve(arch, c.name) for c in p.syscalls), default=0)
        if largest > 0:
            out.setdefault(audit, {})[ARCHES[name]] = largest
    return out


def enosys_stub(p: Profile) -> list[tuple[int, int, int, int]]:
    """cBPF (code, jt, jf, k) run before libseccomp's filter: ENOSYS above the last known syscall of each arch."""
    if p.default_errno_ret == errno.ENOSYS or p.default_action in ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG",
                                                                   "SCMP_ACT_TRACE"):
        return []
    lasts = last_syscalls(p)
    if not lasts:
        return []
    ENOSYS, PASS = "ENOSYS", "PASS"
    # Each instruction: (code, jt, jf, k) where jt/jf may be labels; "ja" targets sit in k.
    body: list[list] = [[_LD_W_ABS, 0, 0, 4]]  # A = seccomp_data.arch
    for audit, maxes in sorted(lasts.items()):
        section: list[list] = [[_LD_W_ABS, 0, 0, 0]]  # A = seccomp_data.nr
        amd64, x32 = maxes.get("X86_64"), maxes.get("X32")
        if amd64 is not None or x32 is not None:
            if amd64 is not None and x32 is not None:
                section += [[_JMP_JSET_K, 0, 1, _X32_BIT], [_JMP_JGT_K, ENOSYS, PASS, x32],
                            [_JMP_JGT_K, ENOSYS, PASS, amd64]]
            elif amd64 is not None:
                section += [[_JMP_JSET_K, PASS, 0, _X32_BIT], [_JMP_JGT_K, ENOSYS, PASS, amd64]]
            else:
                section += [[_JMP_JSET_K, 0, PASS, _X32_BIT], [_JMP_JGT_K, ENOSYS, PASS, x32]]
        else:
            section += [[_JMP_JGT_K, ENOSYS, PASS, max(maxes.values())]]
        body.append([_JMP_JEQ_K, 0, len(section), audit])
        body += section
    body.append([_JMP_JA, 0, 0, PASS])
    labels = {ENOSYS: len(body), PASS: len(body) + 1}
    body.append([_RET_K, 0, 0, SECCOMP_RET_ERRNO | errno.ENOSYS])
    out = []
    for i, (code, jt, jf, k) in enumerate(body):
        jt = labels[jt] - i - 1 if isinstance(jt, str) else jt
        jf = labels[jf] - i - 1 if isinstance(jf, str) else jf
        k = labels[k] - i - 1 if isinstance(k, str) else k
        out.append((code, jt, jf, k))
    return out


def _exported(f) -> bytes:
    with open(os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC), "w+b") as m:
        f.export_bpf(m)
        m.seek(0)
        return m.read()


def _load(program: bytes, flags: int) -> int:
    import ctypes
    import struct

    nr = _SYS_SECCOMP.get(os.uname().machine)
    if nr is None:
        raise RuntimeFailure(f"error loading seccomp filter into kernel: unknown seccomp(2) on {os.uname().machine}")
    buf = ctypes.create_string_buffer(program, len(program))
    fprog = ctypes.create_string_buffer(struct.pack("HxxxxxxQ", len(program) // 8, ctypes.addressof(buf)))
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.syscall.restype = ctypes.c_long
    ret = libc.syscall(ctypes.c_long(nr), ctypes.c_uint(SECCOMP_SET_MODE_FILTER), ctypes.c_uint(flags), fprog)
    if ret < 0:
        err = ctypes.get_errno()
        raise RuntimeFailure(f"error loading seccomp filter into kernel: {os.strerror(err).lower()}")
    return ret


def program(spec: dict) -> bytes:
    """The filter of an enabled profile as seccomp(2) takes it: runc's ENOSYS stub, then libseccomp's BPF."""
    import struct

    f = build(spec)  # parses and checks: ConfigError/RuntimeFailure naming what is wrong
    p = parse(spec)
    return b"".join(struct.pack("<HBBI", *ins) for ins in enosys_stub(p)) + _exported(f)


def load_flags(spec: dict) -> int:
    """The seccomp(2) flags of a (validated) profile: LOG, SPEC_ALLOW, and NEW_LISTENER when a rule notifies."""
    flags = 0
    names = spec.get("flags") or ()
    if "SECCOMP_FILTER_FLAG_LOG" in names:
        flags |= SECCOMP_FILTER_FLAG_LOG
    if "SECCOMP_FILTER_FLAG_SPEC_ALLOW" in names:
        flags |= SECCOMP_FILTER_FLAG_SPEC_ALLOW
    if uses_notify(spec):
        flags |= SECCOMP_FILTER_FLAG_NEW_LISTENER
    return flags


class Compiled(dict):
    """A `linux.seccomp` profile (the same dict to every reader) carrying the program `install` loads.

    Made by `compiled` in the runtime before it forks, so the init only calls seccomp(2): no libseccomp in the
    container's process, nothing to reach after pivot_root.
    """

    __slots__ = ("bpf", "flags")

    def __init__(self, spec: dict, bpf: bytes, flags: int) -> None:
        super().__init__(spec)
        self.bpf, self.flags = bpf, flags


def compiled(spec: dict | None, root: str | None = None) -> dict | None:
    """`spec` with its program attached (a Compiled), taken from ROOT's cache or compiled (and validated: the
    errors of `validate` and `build`) and stored there. A disabled profile comes back unchanged."""
    if not spec or (not spec.get("defaultAction") and not spec.get("syscalls")) or isinstance(spec, Compiled):
        return spec
    from . import seccomp_cache

    key = seccomp_cache.key(spec) if root else ""
    bpf = seccomp_cache.lookup(root, key) if root else None
    if bpf is None:
        bpf = program(spec)
        if root:
            seccomp_cache.store(root, key, bpf)
    return Compiled(spec, bpf, load_flags(spec))


def install(spec: dict | None) -> int:
    """Load the filter into this thread, as runc's PatchAndLoad (built here unless `spec` is a Compiled).

    Returns the notify listener fd when a rule uses SCMP_ACT_NOTIFY, else -1.
    """
    if not isinstance(spec, Compiled):
        spec = compiled(spec)
        if not isinstance(spec, Compiled):
            return -1
    fd = _load(spec.bpf, spec.flags)
    return fd if spec.flags & SECCOMP_FILTER_FLAG_NEW_LISTENER else -1


def uses_notify(spec: dict | None) -> bool:
    """Whether a rule returns SCMP_ACT_NOTIFY (the filter then has a listener fd for the agent)."""
    return any(r.get("action") == "SCMP_ACT_NOTIFY" for r in (spec or {}).get("syscalls") or ())


def preload() -> None:
    """Import what `install` needs while the host's files are reachable, i.e. before pivot_root. Not the
    binding: the runtime hands the init a Compiled profile, so libseccomp is never needed there."""
    __import__("ctypes")
    __import__("struct")


def send_to_listener(listener_path: str, fd: int, state: dict, pid: int, metadata: str = "") -> None:
    """Send the notify fd to the seccomp agent at listenerPath with runc's ContainerProcessState JSON."""
    import socket

    from pyoci import fastjson as json  # `json` imports re and enum: ~7 ms of a create under seccomp

    message = {"ociVersion": state.get("ociVersion", "1.0.2-dev"), "fds": ["seccompFd"], "pid": pid,
               "metadata": metadata, "state": state}
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(listener_path)
            socket.send_fds(s, [json.dumps(message).encode()], [fd])
    except OSError as e:
        raise RuntimeFailure(f"cannot send seccomp fd to {listener_path}: {_reason(e)}") from None


def exported_pfc(spec: dict) -> str:
    """The filter in libseccomp's pseudo-filter-code text (for debugging and tests)."""
    import tempfile

    f = build(spec)
    with tempfile.TemporaryFile() as t:
        f.export_pfc(t)
        t.seek(0)
        return t.read().decode()
