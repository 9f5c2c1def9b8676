"""Compiled seccomp programs kept under the runtime root, so a profile is compiled once per root, not per container.

Docker's default profile (~350 rules) costs pyrunc ~100 ms of libseccomp work per container (loading the library,
building the filter, the ENOSYS stub, the BPF export); the result depends only on the profile and the code that
compiled it, so the final program (exactly the bytes `seccomp.install` hands to seccomp(2)) is stored as

    ROOT/@seccomp-cache/<sha256 of the key>.bpf      (0600; MAGIC + sha256(program) + program)

The key covers the canonical JSON of `linux.seccomp` (sorted keys; listenerPath and listenerMetadata only as
"a listener path is set", which is all the program depends on), the native architecture and kernel release, the
libseccomp shared object the binding would load (its realpath, size and mtime, found through ld.so.cache, without
loading it), the binding's and pyrunc's seccomp sources (size and mtime) and FORMAT. A hit thus stands for a
profile that was validated and compiled by the same code against the same library.

'@' cannot appear in a container id (runc's ^[\\w+-\\.]+$), so the directory never collides with a container's
state dir; `list` only looks at directories holding a state.json. At most MAX_ENTRIES programs are kept: a store
drops the least recently used (a hit refreshes its file's mtime). Any unreadable, short or corrupt file is a miss,
and the fresh program replaces it. Writes are atomic (temp file + rename); errors writing are ignored (a cache).
"""

from __future__ import annotations

import os
import sys

import _json
from _sha256 import sha256  # hashlib would load OpenSSL: ~4 ms

FORMAT = 1
DIRNAME = "@seccomp-cache"
SUFFIX = ".bpf"
MAGIC = b"pyrunc-seccomp-bpf\x01\n"
MAX_ENTRIES = 64
_STALE_TMP_SECONDS = 60
SONAME = "libseccomp.so.2"  # what pyrunc.seccomp's binding loads
# ld.so.cache entry flags of the native ABI (glibc's FLAG_ELF_LIBC6 | FLAG_<arch>_LIB64); others match any entry
_LDCACHE_FLAGS = {"x86_64": 0x0303, "aarch64": 0x0a03, "ppc64le": 0x0503, "s390x": 0x0603, "riscv64": 0x1003}
_LDCACHE_MAGIC = b"glibc-ld.so.cache1.1"


def _canonical(profile: dict) -> str:
    """JSON with sorted keys and no spaces; the listener's path and metadata reduced to whether a path is set."""
    doc = {k: v for k, v in profile.items() if k not in ("listenerPath", "listenerMetadata")}
    doc["listenerPath"] = bool(profile.get("listenerPath"))
    encode = _json.make_encoder(None, _unencodable, _json.encode_basestring_ascii, None, ":", ",", True, False,
                                True)
    return "".join(encode(doc, 0))


def _unencodable(o: object):
    raise TypeError(f"linux.seccomp: a {type(o).__name__} is not JSON")


def _stat_id(path: str | None) -> str:
    """realpath:size:mtime_ns of a file, or "-" when it is not there."""
    if not path:
        return "-"
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except OSError:
        return "-"
    return f"{real}:{st.st_size}:{st.st_mtime_ns}"


def _ldcache_lookup(soname: str, cache: str = "/etc/ld.so.cache") -> str | None:
    """The path ld.so.cache gives `soname` (glibc's new format; a file with the old one ahead is searched for it)."""
    import _struct

    try:
        with open(cache, "rb") as f:
            data = f.read()
    except OSError:
        return None
    base = data.find(_LDCACHE_MAGIC)
    if base < 0 or len(data) < base + 48:
        return None
    nlibs = _struct.unpack_from("<I", data, base + 20)[0]
    want = _LDCACHE_FLAGS.get(os.uname().machine)
    key = soname.encode() + b"\0"
    entries = base + 48
    if len(data) < entries + 24 * nlibs:
        return None
    for flags, k, v, _, _ in _struct.iter_unpack("<iIIIQ", data[entries:entries + 24 * nlibs]):
        if data[base + k:base + k + len(key)] == key and (want is None or flags == want):
            end = data.find(b"\0", base + v)
            return data[base + v:end].decode(errors="surrogateescape")
    return None


def library_path(soname: str = SONAME) -> str | None:
    """Where the dynamic loader would find `soname`: LD_LIBRARY_PATH, ld.so.cache, then the default dirs."""
    for d in (os.environ.get("LD_LIBRARY_PATH") or "").split(":"):
        if d and os.path.exists(os.path.join(d, soname)):
            return os.path.join(d, soname)
    found = _ldcache_lookup(soname)
    if found and os.path.exists(found):
        return found
    for d in ("/lib", "/usr/lib", "/lib64", "/usr/lib64"):
        if os.path.exists(os.path.join(d, soname)):
            return os.path.join(d, soname)
    return None


def _module_file(name: str) -> str | None:
    """A top-level module's file found on sys.path without importing it (pyseccomp is one file)."""
    for d in sys.path:
        path = os.path.join(d or ".", name + ".py")
        if os.path.exists(path):
            return path
        path = os.path.join(d or ".", name, "__init__.py")
        if os.path.exists(path):
            return path
    return None


def key(profile: dict) -> str:
    """The cache key (hex sha256) of the program compiled from `profile` on this host by this code."""
    here = os.path.dirname(os.path.abspath(__file__))
    u = os.uname()
    parts = [f"format={FORMAT}", f"arch={u.machine}", f"kernel={u.release}",
             f"libseccomp={_stat_id(library_path())}", f"pyseccomp={_stat_id(_module_file('pyseccomp'))}",
             f"compiler={_stat_id(os.path.join(here, 'seccomp.py'))}",
             f"cache={_stat_id(os.path.join(here, 'seccomp_cache.py'))}", "profile=" + _canonical(profile)]
    return sha256("\n".join(parts).encode("utf-8", "surrogateescape")).hexdigest()


def cache_dir(root: str) -> str:
    return os.path.join(root, DIRNAME)


def entry_path(root: str, k: str) -> str:
    return os.path.join(cache_dir(root), k + SUFFIX)


def lookup(root: str, k: str) -> bytes | None:
    """The cached program for key `k`, or None (absent, not ours, short or corrupt: the caller rebuilds it)."""
    path = entry_path(root, k)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        # only a regular file we wrote ourselves: a program loaded into the container must not come from elsewhere
        if (st.st_mode & 0o170000) != 0o100000 or st.st_uid != os.geteuid() or st.st_mode & 0o022:
            return None
        data = os.read(fd, st.st_size + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    head = len(MAGIC) + 32
    program = data[head:]
    if not data.startswith(MAGIC) or not program or len(program) % 8 or \
            sha256(program).digest() != data[len(MAGIC):head]:
        return None
    try:
        os.utime(path)  # least recently used goes first when the cache is full
    except OSError:
        pass
    return program


def store(root: str, k: str, program: bytes) -> None:
    """Save `program` under `k` atomically (0600), then keep at most MAX_ENTRIES; failures are ignored."""
    d = cache_dir(root)
    tmp = os.path.join(d, f".tmp-{os.getpid()}-{k}")
    try:
        os.makedirs(root, 0o700, exist_ok=True)  # as create makes it (makedirs gives parents the umask's mode)
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:
            pass
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            data = MAGIC + sha256(program).digest() + program
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
        finally:
            os.close(fd)
        os.replace(tmp, entry_path(root, k))
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return
    prune(root)


def prune(root: str, keep: int = MAX_ENTRIES) -> list[str]:
    """Drop the least recently used programs beyond `keep`, and temp files left by a writer that died."""
    import time

    d = cache_dir(root)
    try:
        names = os.listdir(d)
    except OSError:
        return []
    entries, removed = [], []
    now = time.time()
    for n in names:
        path = os.path.join(d, n)
        try:
            st = os.stat(path)
        except OSError:
            continue
        if n.endswith(SUFFIX):
            entries.append((st.st_mtime_ns, n))
        elif n.startswith(".tmp-") and now - st.st_mtime > _STALE_TMP_SECONDS:
            entries.append((-1, n))  # always removed
    entries.sort(reverse=True)
    kept = 0
    for mtime, n in entries:
        if mtime >= 0 and kept < keep:
            kept += 1
            continue
        try:
            os.unlink(os.path.join(d, n))
            removed.append(n)
        except OSError:
            pass
    return removed
