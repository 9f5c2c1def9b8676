"""The seccomp cache through the CLI, against runc 1.1: docker's default profile (as pycontainerd converts it)
blocks unshare from busybox with EPERM on a miss and on a hit, as under runc; the filter order (noNewPrivileges),
NOTIFY and `exec` behave the same from a hit; delete leaves the shared cache alone."""

from __future__ import annotations

import json
import os

import pytest

from pyrunc import seccomp_cache
from tests.pyrunc.conftest import same
from tests.pyrunc.test_seccomp_cache import docker_default
from tests.pyrunc.test_seccomp_interop import PROFILE, SCRIPT
from tests.pyrunc.test_seccomp_notify import Agent

UNSHARE = "unshare -u true 2>&1; echo rc=$?"
EPERM_OUT = "unshare: unshare(0x4000000): Operation not permitted\nrc=1\n"


def docker_bundle(env, *argv: str, seccomp: bool = True):
    """A busybox bundle whose process has CAP_SYS_ADMIN, under docker's profile for runc's default capabilities:
    only the filter stands between it and unshare."""
    b = env.bundle(*argv)

    def edit(d: dict) -> None:
        caps = d["process"]["capabilities"]
        for k in caps:
            caps[k] = caps[k] + ["CAP_SYS_ADMIN"]
        if seccomp:
            d["linux"]["seccomp"] = docker_default()

    return b.edit(edit)


def cache_files(env) -> dict[str, int]:
    d = env.pyrunc.root / seccomp_cache.DIRNAME
    return {n: os.stat(d / n).st_ino for n in os.listdir(d)} if d.exists() else {}


def test_docker_default_profile_blocks_unshare_on_miss_and_hit_like_runc(env):
    open_bundle = docker_bundle(env, "sh", "-c", UNSHARE, seccomp=False)
    control = env.pyrunc("run", "-b", str(open_bundle.path), env.new_id())
    assert (control.rc, control.out) == (0, "rc=0\n"), control.err  # without the filter unshare works

    b = docker_bundle(env, "sh", "-c", UNSHARE)
    theirs = env.runc("run", "-b", str(b.path), env.new_id())
    assert theirs.out == EPERM_OUT, theirs.err
    miss = env.pyrunc("run", "-b", str(b.path), env.new_id())
    same(theirs, miss)
    files = cache_files(env)
    assert len(files) == 1
    assert os.stat(env.pyrunc.root).st_mode & 0o777 == os.stat(env.runc.root).st_mode & 0o777 == 0o700
    hit = env.pyrunc("run", "-b", str(b.path), env.new_id())
    same(theirs, hit)
    assert cache_files(env) == files  # the same file, read (a store renames a new inode in)

    # create + delete: the shared cache stays, and is no container to `list`
    cid = env.new_id()
    assert env.pyrunc("create", "-b", str(b.path), cid).rc == 0
    assert env.pyrunc("delete", "-f", cid).rc == 0
    assert cache_files(env) == files
    listed = env.pyrunc("list", "-q")
    assert listed.rc == 0 and listed.out == ""


def test_a_hit_loads_the_cached_program(env):
    """The program in the cache file is what the init loads: replaced by an allow-all one, unshare works."""
    b = docker_bundle(env, "sh", "-c", UNSHARE)
    assert env.pyrunc("run", "-b", str(b.path), env.new_id()).out == EPERM_OUT
    (name,) = cache_files(env)
    seccomp_cache.store(str(env.pyrunc.root), name[:-len(seccomp_cache.SUFFIX)], b"\x06\0\0\0\0\0\xff\x7f")
    r = env.pyrunc("run", "-b", str(b.path), env.new_id())
    assert (r.rc, r.out) == (0, "rc=0\n"), r.err
    # a damaged file is rebuilt from the profile
    (env.pyrunc.root / seccomp_cache.DIRNAME / name).write_bytes(b"garbage")
    assert env.pyrunc("run", "-b", str(b.path), env.new_id()).out == EPERM_OUT
    assert len(cache_files(env)) == 1


@pytest.mark.parametrize("nnp", [False, True])
def test_filter_order_from_a_hit_matches_runc(env, nnp):
    """A profile refusing capset: loaded early (no noNewPrivileges) it stops the init's capability switch."""
    profile = json.loads(json.dumps(PROFILE))
    profile["syscalls"].append({"names": ["capset"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1})
    b = env.bundle("sh", "-c", SCRIPT)
    b.edit(lambda d: (d["process"].__setitem__("noNewPrivileges", nnp),
                      d["linux"].__setitem__("seccomp", profile)))
    theirs = env.runc("run", "-b", str(b.path), env.new_id())
    for _ in ("miss", "hit"):
        mine = env.pyrunc("run", "-b", str(b.path), env.new_id())
        same(theirs, mine)
    assert len(cache_files(env)) == 1
    assert (mine.rc == 0) == nnp, mine.err


def test_notify_from_a_hit(env, tmp_path):
    b = env.bundle("sh", "-c", "mkdir /tmp/x; echo mkdir=$?")
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}
    for run in ("miss", "hit"):
        sock = str(tmp_path / f"agent-{run}.sock")  # another path: still the same program
        agent = Agent(sock)
        try:
            b.edit(lambda d: d["linux"].__setitem__("seccomp", {**profile, "listenerPath": sock}))
            r = env.pyrunc("run", "-b", str(b.path), env.new_id())
            assert (r.rc, r.out) == (0, "mkdir=1\n"), r.err
        finally:
            agent.close()
        assert agent.fd_kind == "anon_inode:seccomp notify"
    assert len(cache_files(env)) == 1


def test_exec_uses_the_cached_program_like_runc(env):
    b = docker_bundle(env, "sleep", "30")
    outs = []
    for rt in (env.runc, env.pyrunc):
        cid = env.new_id()
        assert rt("run", "-d", "-b", str(b.path), cid).rc == 0
        try:
            r = rt("exec", cid, "sh", "-c", UNSHARE)
            outs.append((r.rc, r.out))
        finally:
            rt("delete", "-f", cid)
    assert outs[0] == outs[1] == (0, EPERM_OUT)
    assert len(cache_files(env)) == 1
