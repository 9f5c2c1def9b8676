"""Bad configs and bad input: exit 1 (as runc), one line on stderr, never a traceback, nothing left behind
(the env fixture fails the test on a leftover state dir, mount, process or cgroup)."""

from __future__ import annotations

import json
import os

import pytest

pytestmark = pytest.mark.interop


def _one_line(r):
    assert "Traceback" not in r.err, r.err
    assert r.err.count("\n") == 1 and r.err.endswith("\n"), r.err


def _both_fail(env, *args, input=None):
    out = []
    for rt in (env.runc, env.pyrunc):
        r = rt(*args, input=input)
        assert r.rc == 1, (rt.name, r)
        if rt is env.pyrunc:  # runc sometimes adds warning lines
            _one_line(r)
        out.append(r)
    return out


def test_missing_bundle(env):
    r1, r2 = _both_fail(env, "run", "-b", str(env.tmp / "nope"), env.new_id())
    assert "chdir" in r2.err and "no such file or directory" in r2.err
    assert not (env.tmp / "pyrunc").exists() or not os.listdir(env.tmp / "pyrunc")


def test_missing_config(env):
    (env.tmp / "empty").mkdir()
    _, r2 = _both_fail(env, "create", "-b", str(env.tmp / "empty"), env.new_id())
    assert "config.json" in r2.err


def test_invalid_json(env):
    bundle = env.bundle()
    (bundle.path / "config.json").write_text("{not json")
    _, r2 = _both_fail(env, "create", "-b", str(bundle.path), env.new_id())
    assert "config.json" in r2.err


@pytest.mark.parametrize("edit,field", [
    (lambda d: d["process"].__setitem__("args", "sh"), "process.args"),
    (lambda d: d["process"].__setitem__("terminal", "yes"), "process.terminal"),
    (lambda d: d["root"].__setitem__("path", 42), "root.path"),
    (lambda d: d["linux"].__setitem__("namespaces", [{"type": "bogus"}]), "linux.namespaces"),
    (lambda d: d["process"]["user"].__setitem__("uid", -1), "process.user.uid"),
    (lambda d: d.__setitem__("mounts", [{"type": "tmpfs"}]), "mounts"),
])
def test_wrong_types_name_the_field(env, edit, field):
    bundle = env.bundle("true")
    bundle.edit(edit)
    _, r2 = _both_fail(env, "run", "-b", str(bundle.path), env.new_id())
    assert field in r2.err, r2.err


def test_nonexistent_executable(env):
    bundle = env.bundle("/bin/definitely-not-here")
    r1, r2 = _both_fail(env, "create", "-b", str(bundle.path), env.new_id())
    assert "/bin/definitely-not-here" in r2.err and "no such file or directory" in r2.err
    bundle.args("not-in-path")
    r1, r2 = _both_fail(env, "run", "-b", str(bundle.path), env.new_id())
    assert 'exec: \\"not-in-path\\": executable file not found in $PATH' in r2.err


def test_semantic_errors(env):
    bundle = env.bundle("true")
    bundle.edit(lambda d: d["linux"].__setitem__("namespaces", [n for n in d["linux"]["namespaces"] if n["type"] != "uts"]))
    _, r2 = _both_fail(env, "run", "-b", str(bundle.path), env.new_id())
    assert "UTS namespace" in r2.err
    bundle = env.bundle("true")
    bundle.edit(lambda d: d.__setitem__("mounts", d["mounts"] + [{"destination": "/x", "type": "bind", "source": "/nonexistent/src", "options": ["bind"]}]))
    _, r2 = _both_fail(env, "run", "-b", str(bundle.path), env.new_id())
    assert "/nonexistent/src" in r2.err


@pytest.mark.parametrize("cmd", [["start"], ["state"], ["kill"], ["delete"], ["pause"], ["resume"], ["ps"], ["events", "--stats"]])
def test_unknown_container(env, cmd):
    r1, r2 = _both_fail(env, *cmd, "no-such-container")
    assert "container does not exist" in r2.err


def test_double_create(env):
    bundle = env.bundle("sleep", "30")
    for rt in (env.runc, env.pyrunc):
        cid = env.new_id()
        assert rt("create", "-b", str(bundle.path), cid).rc == 0
        pid = rt.state(cid)["pid"]
        r = rt("create", "-b", str(bundle.path), cid)
        assert r.rc == 1 and "already exists" in r.err
        _one_line(r)
        assert rt.state(cid)["pid"] == pid  # the first one is untouched
        assert rt("delete", "-f", cid).rc == 0


def test_bad_container_id(env):
    bundle = env.bundle("true")
    r = env.pyrunc("run", "-b", str(bundle.path), "bad/id")
    assert r.rc == 1
    _one_line(r)


def test_unknown_flag_and_command(env):
    for args in (["run", "--no-such-flag", "x"], ["nosuchcommand"], ["start"]):
        r = env.pyrunc(*args)
        assert r.rc == 1, args
        _one_line(r)


def test_json_log_format(env):
    """containerd reads `--log FILE --log-format json` records; the bare message still goes to stderr."""
    log = env.tmp / "log.json"
    r = env.pyrunc("--log", str(log), "--log-format", "json", "state", "nope")
    assert r.rc == 1 and r.err == "container does not exist\n"
    rec = json.loads(log.read_text().splitlines()[-1])
    assert rec["level"] == "error" and rec["msg"] == "container does not exist" and rec["time"].endswith("Z")
    r = env.pyrunc("--log-format", "json", "state", "nope")
    assert json.loads(r.err)["msg"] == "container does not exist"


def test_systemd_cgroup_unsupported(env):
    bundle = env.bundle("true")
    r = env.pyrunc("--systemd-cgroup", "run", "-b", str(bundle.path), env.new_id())
    assert r.rc == 1 and "not supported" in r.err
    _one_line(r)


def test_console_socket_rules(env):
    bundle = env.bundle("true")
    r = env.pyrunc("run", "--console-socket", str(env.tmp / "sock"), "-b", str(bundle.path), env.new_id())
    assert r.rc == 1 and "console socket" in r.err
    bundle.edit(lambda d: d["process"].__setitem__("terminal", True))
    r = env.pyrunc("create", "-b", str(bundle.path), env.new_id())
    assert r.rc == 1 and "console socket" in r.err


def test_failed_create_kills_cgroup_procs_first(env):
    """A failing createContainer hook that left a process in the container's cgroup (no pid namespace to take it
    down with the init): create fails with one line, and the process and the cgroups are gone (no EBUSY)."""
    b = env.bundle("true")
    b.edit(lambda d: (d["linux"].__setitem__("namespaces", [n for n in d["linux"]["namespaces"] if n["type"] != "pid"]),
                      d.__setitem__("hooks", {"createContainer": [
                          {"path": "/bin/sh", "args": ["sh", "-c", "sleep 300 </dev/null >/dev/null 2>&1 & exit 3"]}]})))
    cid = env.new_id()
    r = env.pyrunc("create", "-b", str(b.path), cid)
    assert r.rc == 1 and "createContainer" in r.err and "Traceback" not in r.err, r.err
    assert not (env.pyrunc.root / cid).exists()
    for d, _, _ in os.walk("/sys/fs/cgroup"):
        assert not d.endswith("/" + cid), d


def test_runtime_killed_mid_create_leaves_no_init(env):
    """`pyrunc create` SIGKILLed while its init runs a (slow) createContainer hook: the init dies with it
    (parent-death signal until "ready") instead of lingering with PPid 1."""
    import signal
    import subprocess
    import time

    from pyrunc import cgroups
    from tests.pyrunc.conftest import leftovers

    b = env.bundle("true")
    marker = env.tmp / "hook-ran"
    b.edit(lambda d: d.__setitem__("hooks", {"createContainer": [
        {"path": "/bin/sh", "args": ["sh", "-c", f"touch {marker}; sleep 20"]}]}))
    cid = env.new_id()
    p = subprocess.Popen([*env.pyrunc.argv, "--root", str(env.pyrunc.root), "create", "-b", str(b.path), cid],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert marker.exists()
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
    deadline = time.monotonic() + 5
    while True:
        stray = [x for x in leftovers(env.tmp, []) if x.startswith("process left")]
        if not stray or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not stray
    # the runtime died before it could clean up: its cgroups are ours to remove
    cgroups.new_manager(None, cid).destroy()
    env.ids.remove(cid)
    import shutil

    shutil.rmtree(env.pyrunc.root / cid, ignore_errors=True)
