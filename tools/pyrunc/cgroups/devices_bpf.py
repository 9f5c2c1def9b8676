"""cgroup v2 device rules: the eBPF program runc 1.1 generates (cgroups/ebpf/devicefilter), loaded with bpf(2).

The rules are first reduced as on v1 (devices.v1_target: default action plus exceptions), then each exception
becomes one block "if type, access, major, minor match: return allow"; the program ends with the default.
The new program is attached with BPF_F_ALLOW_MULTI and the ones attached before are detached, as runc does.
"""

from __future__ import annotations

import ctypes
import os
import struct
from functools import lru_cache

from pyrunc.errors import RuntimeFailure

from .devices import Rule, v1_target

_SYS_BPF = {"x86_64": 321, "aarch64": 280, "ppc64le": 361, "s390x": 351, "riscv64": 280, "i686": 357}
BPF_PROG_LOAD, BPF_PROG_ATTACH, BPF_PROG_DETACH = 5, 8, 9
BPF_PROG_GET_FD_BY_ID, BPF_OBJ_GET_INFO_BY_FD, BPF_PROG_QUERY = 13, 15, 16
BPF_PROG_TYPE_CGROUP_DEVICE, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI = 15, 6, 2
DEV_BLOCK, DEV_CHAR = 1, 2
ACC_MKNOD, ACC_READ, ACC_WRITE = 1, 2, 4
LICENSE = b"Apache\0"

# eBPF opcodes used by the filter.
LDX_MEM_W = 0x61     # dst = *(u32 *)(src + off)
ALU_AND_K = 0x54     # dst &= imm (32-bit)
ALU_RSH_K = 0x74     # dst >>= imm (32-bit)
ALU_MOV_K = 0xB4     # dst = imm (32-bit)
ALU_MOV_X = 0xBC     # dst = src (32-bit)
JMP_JNE_K = 0x55     # if dst != imm goto +off
JMP_JNE_X = 0x5D     # if dst != src goto +off
JMP_EXIT = 0x95


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _block(rule: Rule) -> list[tuple]:
    """Instructions of one rule; a ("NEXT", code, dst, src) tuple jumps to the next block when not matched."""
    kind = {"c": DEV_CHAR, "b": DEV_BLOCK}[rule.type]
    access = sum({"m": ACC_MKNOD, "r": ACC_READ, "w": ACC_WRITE}[c] for c in set(rule.access))
    out: list[tuple] = [("NEXT", JMP_JNE_K, 2, 0, kind)]  # R2 = type
    if access != ACC_MKNOD | ACC_READ | ACC_WRITE:
        out += [(ALU_MOV_X, 1, 3, 0, 0), (ALU_AND_K, 1, 0, 0, access), ("NEXT", JMP_JNE_X, 1, 3, 0)]  # R3 = access
    if rule.major >= 0:
        out.append(("NEXT", JMP_JNE_K, 4, 0, rule.major))  # R4 = major
    if rule.minor >= 0:
        out.append(("NEXT", JMP_JNE_K, 5, 0, rule.minor))  # R5 = minor
    out += [(ALU_MOV_K, 0, 0, 0, 1 if rule.allow else 0), (JMP_EXIT, 0, 0, 0, 0)]
    return out


def program(rules: list[Rule]) -> bytes:
    """The filter for `rules` (in order, from deny-all), as runc's DeviceFilter builds it."""
    default_allow, lines = v1_target(rules)
    exceptions = []
    for line in lines:
        kind, nums, access = line.split(" ")
        major, minor = (-1 if x == "*" else int(x) for x in nums.split(":"))
        for t in (("c", "b") if kind == "a" else (kind,)):
            exceptions.append(Rule(t, major, minor, access, not default_allow))
    code = [_insn(LDX_MEM_W, 2, 1, 0), _insn(ALU_AND_K, 2, imm=0xFFFF),   # R2 = access_type & 0xffff: type
            _insn(LDX_MEM_W, 3, 1, 0), _insn(ALU_RSH_K, 3, imm=16),       # R3 = access_type >> 16: access
            _insn(LDX_MEM_W, 4, 1, 4), _insn(LDX_MEM_W, 5, 1, 8)]         # R4 = major, R5 = minor
    for rule in exceptions:
        block = _block(rule)
        for i, ins in enumerate(block):
            if ins[0] == "NEXT":
                _, op, dst, src, imm = ins
                code.append(_insn(op, dst, src, len(block) - i - 1, imm))
            else:
                op, dst, src, off, imm = ins
                code.append(_insn(op, dst, src, off, imm))
    code += [_insn(ALU_MOV_K, 0, imm=1 if default_allow else 0), _insn(JMP_EXIT)]
    return b"".join(code)


@lru_cache(maxsize=None)
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def _bpf(cmd: int, attr: ctypes.Array, what: str) -> int:
    nr = _SYS_BPF.get(os.uname().machine)
    if nr is None:
        raise RuntimeFailure(f"cgroup v2 device filter: bpf(2) number unknown on {os.uname().machine}")
    ret = _libc().syscall(ctypes.c_long(nr), ctypes.c_int(cmd), attr, ctypes.c_uint(len(attr)))
    if ret < 0:
        err = ctypes.get_errno()
        raise RuntimeFailure(f"cgroup v2 device filter: {what}: {os.strerror(err).lower()}")
    return ret


def _attr(*fields: tuple[int, str, int]) -> ctypes.Array:
    buf = ctypes.create_string_buffer(128)
    for offset, fmt, value in fields:
        struct.pack_into(fmt, buf, offset, value)
    return buf


def _load(insns: bytes) -> int:
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(LICENSE, len(LICENSE))
    log = ctypes.create_string_buffer(4096)
    attr = _attr((0, "<I", BPF_PROG_TYPE_CGROUP_DEVICE), (4, "<I", len(insns) // 8),
                 (8, "<Q", ctypes.addressof(code)), (16, "<Q", ctypes.addressof(lic)))
    try:
        return _bpf(BPF_PROG_LOAD, attr, "BPF_PROG_LOAD")
    except RuntimeFailure:
        # Load again with the verifier log so that the error says why.
        attr = _attr((0, "<I", BPF_PROG_TYPE_CGROUP_DEVICE), (4, "<I", len(insns) // 8),
                     (8, "<Q", ctypes.addressof(code)), (16, "<Q", ctypes.addressof(lic)), (24, "<I", 1),
                     (28, "<I", len(log)), (32, "<Q", ctypes.addressof(log)))
        try:
            return _bpf(BPF_PROG_LOAD, attr, "BPF_PROG_LOAD")
        except RuntimeFailure as e:
            detail = log.value.decode(errors="replace").strip().splitlines()
            raise RuntimeFailure(f"{e}{': ' + detail[-1] if detail else ''}") from None


def _prog_id(fd: int) -> int:
    info = ctypes.create_string_buffer(256)
    attr = _attr((0, "<I", fd), (4, "<I", len(info)), (8, "<Q", ctypes.addressof(info)))
    _bpf(BPF_OBJ_GET_INFO_BY_FD, attr, "BPF_OBJ_GET_INFO_BY_FD")
    return struct.unpack_from("<I", info, 4)[0]


def attached(dirfd: int) -> list[int]:
    """IDs of the device programs attached to the cgroup."""
    ids = (ctypes.c_uint32 * 64)()
    attr = _attr((0, "<I", dirfd), (4, "<I", BPF_CGROUP_DEVICE), (16, "<Q", ctypes.addressof(ids)), (24, "<I", 64))
    _bpf(BPF_PROG_QUERY, attr, "BPF_PROG_QUERY")
    return list(ids[: struct.unpack_from("<I", attr, 24)[0]])


def apply(path: str, rules: list[Rule]) -> None:
    """Load the filter for `rules` and make it the only device program of cgroup `path`."""
    insns = program(rules)
    try:
        dirfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise RuntimeFailure(f"cgroup: open {path}: {os.strerror(e.errno).lower()}") from None
    try:
        old = attached(dirfd)
        prog = _load(insns)
        try:
            _bpf(BPF_PROG_ATTACH, _attr((0, "<I", dirfd), (4, "<I", prog), (8, "<I", BPF_CGROUP_DEVICE),
                                        (12, "<I", BPF_F_ALLOW_MULTI)), "BPF_PROG_ATTACH")
            new_id = _prog_id(prog)
        finally:
            os.close(prog)
        for prog_id in old:
            if prog_id == new_id:
                continue
            fd = _bpf(BPF_PROG_GET_FD_BY_ID, _attr((0, "<I", prog_id)), "BPF_PROG_GET_FD_BY_ID")
            try:
                _bpf(BPF_PROG_DETACH, _attr((0, "<I", dirfd), (4, "<I", fd), (8, "<I", BPF_CGROUP_DEVICE)),
                     "failed to call BPF_PROG_DETACH (BPF_CGROUP_DEVICE) on old filter program")
            finally:
                os.close(fd)
    finally:
        os.close(dirfd)
