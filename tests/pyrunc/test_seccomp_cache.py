"""pyrunc.seccomp_cache: compiled programs under ROOT/@seccomp-cache — hits and misses, byte-identical programs,
what changes the key, corrupt entries rebuilt, the size bound, and docker's default profile loaded from a hit."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import subprocess
import sys
import time

import pytest

from pycontainerd import seccomp as docker_seccomp
from pyrunc import seccomp, seccomp_cache
from pyrunc.errors import ConfigError

RUNC_DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]  # `runc spec`'s bounding set
CLONE_NEWUTS = 0x04000000
PROFILE = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
           "syscalls": [{"names": ["uname"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                        {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
                         "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]}]}


def docker_default() -> dict:
    """linux.seccomp as pycontainerd gives a container with runc's default capabilities (no CAP_SYS_ADMIN)."""
    return docker_seccomp.to_oci(docker_seccomp.default_profile(), RUNC_DEFAULT_CAPS)


def entries(root) -> list[str]:
    d = root / seccomp_cache.DIRNAME
    return sorted(os.listdir(d)) if d.exists() else []


def only_entry(root):
    names = entries(root)
    assert len(names) == 1 and names[0].endswith(".bpf"), names
    return root / seccomp_cache.DIRNAME / names[0]


def test_miss_then_hit_same_program_and_file(tmp_path):
    root = tmp_path / "a" / "root"  # made by the cache, as create makes it: 0700
    first = seccomp.compiled(PROFILE, str(root))
    path = only_entry(root)
    st = os.stat(path)
    assert st.st_mode & 0o777 == 0o600 and os.stat(path.parent).st_mode & 0o777 == 0o700
    assert os.stat(root).st_mode & 0o777 == 0o700
    assert path.name == seccomp_cache.key(PROFILE) + ".bpf"
    second = seccomp.compiled(json.loads(json.dumps(PROFILE)), str(root))
    assert os.stat(path).st_ino == st.st_ino  # read, not rewritten (a store renames a new file in)
    assert second.bpf == first.bpf and second.flags == first.flags == 0
    assert second == PROFILE  # still the profile to every reader of the dict
    # exactly what a fresh compile without any cache loads, and what the file holds
    fresh = seccomp.compiled(PROFILE)
    assert fresh.bpf == first.bpf == seccomp.program(PROFILE)
    assert path.read_bytes().endswith(first.bpf) and len(first.bpf) % 8 == 0


def test_hit_does_not_import_the_binding(tmp_path):
    seccomp.compiled(PROFILE, str(tmp_path))
    code = ("import json, sys; from pyrunc import seccomp; "
            f"c = seccomp.compiled(json.loads({json.dumps(json.dumps(PROFILE))}), {str(tmp_path)!r}); "
            "print(len(c.bpf), 'pyseccomp' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(len(seccomp.compiled(PROFILE).bpf)), "False"]


def test_changed_profile_misses(tmp_path):
    base = seccomp.compiled(PROFILE, str(tmp_path))
    changed = json.loads(json.dumps(PROFILE))
    changed["syscalls"][0]["errnoRet"] = 1
    other = seccomp.compiled(changed, str(tmp_path))
    assert len(entries(tmp_path)) == 2 and other.bpf != base.bpf
    assert seccomp_cache.key(changed) != seccomp_cache.key(PROFILE)
    # key order does not matter (canonical JSON); the listener's path only as "set or not"
    reordered = dict(reversed(list(PROFILE.items())))
    assert seccomp_cache.key(reordered) == seccomp_cache.key(PROFILE)
    notify = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/a.sock", "listenerMetadata": "x",
              "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}
    assert seccomp_cache.key(notify) == seccomp_cache.key({**notify, "listenerPath": "/run/b.sock",
                                                           "listenerMetadata": "y"})
    assert seccomp_cache.key(notify) != seccomp_cache.key({**notify, "listenerPath": ""})


def test_notify_and_flags_survive_a_hit(tmp_path):
    notify = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/a.sock", "flags": ["SECCOMP_FILTER_FLAG_LOG"],
              "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}
    miss = seccomp.compiled(notify, str(tmp_path))
    hit = seccomp.compiled(notify, str(tmp_path))
    want = seccomp.SECCOMP_FILTER_FLAG_LOG | seccomp.SECCOMP_FILTER_FLAG_NEW_LISTENER
    assert miss.flags == hit.flags == want and hit.bpf == miss.bpf and hit["listenerPath"] == "/run/a.sock"


@pytest.mark.parametrize("damage", ["empty", "truncated", "flipped", "garbage", "odd-length"])
def test_corrupt_entry_is_rebuilt(tmp_path, damage):
    good = seccomp.compiled(PROFILE, str(tmp_path)).bpf
    path = only_entry(tmp_path)
    data = path.read_bytes()
    bad = {"empty": b"", "truncated": data[:-8], "flipped": data[:-1] + bytes([data[-1] ^ 1]),
           "garbage": os.urandom(len(data)), "odd-length": data + b"\0\0\0"}[damage]
    path.write_bytes(bad)
    assert seccomp_cache.lookup(str(tmp_path), seccomp_cache.key(PROFILE)) is None
    again = seccomp.compiled(PROFILE, str(tmp_path))
    assert again.bpf == good
    assert path.read_bytes() == data  # repaired
    assert seccomp_cache.lookup(str(tmp_path), seccomp_cache.key(PROFILE)) == good


def test_entry_written_by_someone_else_is_not_trusted(tmp_path):
    good = seccomp.compiled(PROFILE, str(tmp_path)).bpf
    path = only_entry(tmp_path)
    os.chmod(path, 0o666)
    assert seccomp_cache.lookup(str(tmp_path), seccomp_cache.key(PROFILE)) is None
    os.chmod(path, 0o600)
    os.chown(path, 65534, 65534)
    assert seccomp_cache.lookup(str(tmp_path), seccomp_cache.key(PROFILE)) is None
    assert seccomp.compiled(PROFILE, str(tmp_path)).bpf == good and os.stat(path).st_uid == os.geteuid()


def test_bad_profile_fails_on_first_use_and_stores_nothing(tmp_path):
    bad = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOPE"}]}
    for _ in range(2):
        with pytest.raises(ConfigError, match="string SCMP_ACT_NOPE is not a valid action for seccomp"):
            seccomp.compiled(bad, str(tmp_path))
    notify = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}
    with pytest.raises(ConfigError, match="listenerPath is not set"):
        seccomp.compiled(notify, str(tmp_path))
    assert [n for n in entries(tmp_path) if n.endswith(".bpf")] == []


def test_disabled_profile_is_not_cached(tmp_path):
    assert seccomp.compiled({}, str(tmp_path)) == {}
    assert seccomp.compiled({"architectures": ["SCMP_ARCH_X86"]}, str(tmp_path)) == {"architectures": ["SCMP_ARCH_X86"]}
    assert seccomp.compiled(None, str(tmp_path)) is None
    assert entries(tmp_path) == []


def test_size_bound_drops_least_recently_used(tmp_path):
    root = str(tmp_path)
    keys = [f"{i:064x}" for i in range(seccomp_cache.MAX_ENTRIES + 3)]
    now = time.time()
    for i, k in enumerate(keys):
        seccomp_cache.store(root, k, b"\x06\0\0\0\0\0\xff\x7f")  # ret ALLOW
        os.utime(seccomp_cache.entry_path(root, k), (now - 1000 + i, now - 1000 + i))
    assert seccomp_cache.lookup(root, keys[0]) is None and seccomp_cache.lookup(root, keys[2]) is None
    assert len(entries(tmp_path)) == seccomp_cache.MAX_ENTRIES
    # a hit makes an entry the newest: the next store drops the oldest other one
    assert seccomp_cache.lookup(root, keys[3]) is not None
    stale = tmp_path / seccomp_cache.DIRNAME / ".tmp-1-dead"
    stale.write_bytes(b"x")
    os.utime(stale, (now - 3600, now - 3600))
    seccomp_cache.store(root, "f" * 64, b"\x06\0\0\0\0\0\xff\x7f")
    assert seccomp_cache.lookup(root, keys[3]) is not None and seccomp_cache.lookup(root, keys[4]) is None
    assert not stale.exists() and len(entries(tmp_path)) == seccomp_cache.MAX_ENTRIES


def test_unwritable_root_still_compiles(tmp_path):
    blocker = tmp_path / "root"
    blocker.write_text("a file where the root should be")
    assert seccomp.compiled(PROFILE, str(blocker)).bpf == seccomp.program(PROFILE)


def test_library_identity_is_the_loaded_libseccomp():
    """The file the key names is the one the binding maps (read from ld.so.cache, not by loading it)."""
    code = "import pyrunc.seccomp as s; s._binding(); print(open('/proc/self/maps').read())"
    maps = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = {line.split()[-1] for line in maps.splitlines() if "libseccomp" in line}
    path = seccomp_cache.library_path()
    assert path is not None and loaded == {os.path.realpath(path)}
    assert seccomp_cache._ldcache_lookup("libseccomp.so.2") is not None
    assert seccomp_cache._ldcache_lookup("libno-such-library.so.9") is None


def unshare_errno(flags: int) -> int:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    ctypes.set_errno(0)
    return ctypes.get_errno() if libc.unshare(flags) == -1 else 0


def child_result(spec) -> int:
    """Fork; the child (root, every capability) loads `spec`'s program and tries unshare(CLONE_NEWUTS)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 255
        try:
            os.close(r)
            seccomp.install(spec)
            code = unshare_errno(CLONE_NEWUTS)
        finally:
            os.write(w, bytes([code]))
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return data[0]


def test_docker_default_profile_blocks_unshare_on_miss_and_hit(tmp_path):
    unshare_errno(0)  # ctypes and libc loaded before any filter
    profile = docker_default()
    assert len(profile["syscalls"]) > 5 and profile["defaultAction"] == "SCMP_ACT_ERRNO"
    assert child_result({}) == 0  # without the filter the child may unshare
    miss = seccomp.compiled(profile, str(tmp_path))
    hit = seccomp.compiled(profile, str(tmp_path))
    assert hit.bpf == miss.bpf
    assert child_result(miss) == errno.EPERM
    assert child_result(hit) == errno.EPERM
