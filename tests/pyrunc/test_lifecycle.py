"""create / start / state / list / kill / delete / exec / ps / pause / resume / events / update, side by side."""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.pyrunc.conftest import same, strip_state
from tests.support import assert_valid, run_on_pty

pytestmark = pytest.mark.interop


def _wait_status(rt, cid, status, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        st = rt.state(cid)
        if st["status"] == status or time.monotonic() > deadline:
            return st
        time.sleep(0.02)


def test_create_start_kill_delete(env):
    bundle = env.bundle("sleep", "30")
    bundle.edit(lambda d: d.__setitem__("annotations", {"org.example/key": "value"}))
    seen = {}
    for rt in (env.runc, env.pyrunc):
        cid = env.new_id()
        steps = []
        r = rt("create", "-b", str(bundle.path), cid)
        assert r.rc == 0, r.err
        st = rt.state(cid)
        assert_valid(st, "state")
        assert st["id"] == cid and st["pid"] > 0
        steps.append(strip_state(st))
        assert rt("start", cid).rc == 0
        steps.append(strip_state(rt.state(cid)))
        r = rt("start", cid)
        steps.append((r.rc, "already running" in r.err))
        r = rt("delete", cid)
        steps.append((r.rc, "not stopped" in r.err))
        assert rt("kill", cid, "KILL").rc == 0
        st = _wait_status(rt, cid, "stopped")
        assert_valid(st, "state")
        steps.append(strip_state(st))
        assert st["pid"] == 0
        r = rt("kill", cid, "KILL")
        steps.append((r.rc, "not running" in r.err))
        r = rt("start", cid)
        steps.append(r.rc)
        assert rt("delete", cid).rc == 0
        r = rt("state", cid)
        steps.append((r.rc, "does not exist" in r.err))
        seen[rt.name] = steps
        assert not (rt.root / cid).exists()
    assert seen["pyrunc"] == seen["runc"]


def test_delete_created_container(env):
    """A created (never started) container is deleted without -f, its init killed."""
    bundle = env.bundle("sleep", "30")
    for rt in (env.runc, env.pyrunc):
        cid = env.new_id()
        assert rt("create", "-b", str(bundle.path), cid).rc == 0
        pid = rt.state(cid)["pid"]
        r = rt("delete", cid)
        assert r.rc == 0, (rt.name, r.err)
        time.sleep(0.1)
        import os

        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split(") ")[1][0] == "Z"


def test_delete_force_running(env):
    bundle = env.bundle("sleep", "30")
    for rt in (env.runc, env.pyrunc):
        cid = env.new_id()
        assert rt("run", "-d", "-b", str(bundle.path), cid).rc == 0
        assert rt.state(cid)["status"] == "running"
        r = rt("delete", "-f", cid)
        assert r.rc == 0, (rt.name, r.err)
        assert rt("state", cid).rc == 1


def test_list_formats(env):
    bundle = env.bundle("sleep", "30")
    outs = {}
    for rt in (env.runc, env.pyrunc):
        empty = rt("list", "-f", "json")
        cid = env.new_id()
        assert rt("run", "-d", "-b", str(bundle.path), cid).rc == 0
        table = rt("list").out.splitlines()
        js = json.loads(rt("list", "-f", "json").out)
        quiet = rt("list", "-q").out
        assert quiet == cid + "\n"
        assert js[0]["id"] == cid and js[0]["owner"] == "root" and js[0]["status"] == "running"
        header = table[0]
        row = table[1].split()
        # (column widths follow the data: RFC3339Nano drops trailing zeros, so compare the words)
        outs[rt.name] = (empty.out, header.split(), row[2], row[3], row[5], len(table))
        assert header.index("PID") == max(12, len(cid) + 3)
        # column alignment as Go's tabwriter: CREATED starts where the header says
        assert table[1][header.index("CREATED"):].startswith(js[0]["created"])
        rt("delete", "-f", cid)
    assert outs["pyrunc"] == outs["runc"], outs


@pytest.mark.parametrize("sig", ["KILL", "SIGKILL", "9"])
def test_kill_signal_forms(env, sig):
    bundle = env.bundle("sleep", "30")
    for rt in (env.runc, env.pyrunc):
        cid = env.new_id()
        assert rt("run", "-d", "-b", str(bundle.path), cid).rc == 0
        assert rt("kill", cid, sig).rc == 0
        assert _wait_status(rt, cid, "stopped")["status"] == "stopped"
        assert rt("delete", cid).rc == 0


def test_kill_all_and_bad_signal(env):
    bundle = env.bundle("sh", "-c", "sleep 30 & sleep 30")
    for rt in (env.runc, env.pyrunc):
        cid = env.new_id()
        assert rt("run", "-d", "-b", str(bundle.path), cid).rc == 0
        r = rt("kill", cid, "NOSUCHSIG")
        assert r.rc == 1 and r.err.count("\n") == 1
        assert rt("kill", "--all", cid, "KILL").rc == 0
        assert _wait_status(rt, cid, "stopped")["status"] == "stopped"
        rt("delete", cid)


def test_exec(env):
    bundle = env.bundle("sleep", "30")
    results = {}
    for rt in (env.runc, env.pyrunc):
        cid = env.new_id()
        assert rt("run", "-d", "-b", str(bundle.path), cid).rc == 0
        out = []
        for args in (
            ["sh", "-c", "echo hi; exit 5"],
            ["--cwd", "/tmp", "pwd"],
            ["-e", "FOO=bar", "sh", "-c", "echo $FOO"],
            ["-u", "65534:65534", "id"],
            ["--cap", "CAP_SYS_ADMIN", "grep", "CapEff", "/proc/self/status"],
            ["hostname"],
            ["sh", "-c", "ps -o pid,comm | grep -c sleep"],
            ["nosuchcommand"],
        ):
            r = rt("exec", cid, *args)
            out.append((r.rc, r.out))
        pf = env.tmp / f"{rt.name}-exec.pid"
        r = rt("exec", "-d", "--pid-file", str(pf), cid, "sleep", "5")
        assert r.rc == 0 and pf.read_text().strip().isdigit()
        ps = json.loads(rt("ps", "-f", "json", cid).out)
        out.append(len(ps))
        results[rt.name] = out
        rt("delete", "-f", cid)
    assert results["pyrunc"] == results["runc"]


def test_exec_process_json(env):
    bundle = env.bundle("sleep", "30")
    proc = {"args": ["sh", "-c", "id; pwd; echo $X"], "cwd": "/etc", "env": ["PATH=/bin", "X=1"],
            "user": {"uid": 1, "gid": 2}}
    pj = env.tmp / "process.json"
    pj.write_text(json.dumps(proc))
    rs = []
    for rt in (env.runc, env.pyrunc):
        cid = env.new_id()
        assert rt("run", "-d", "-b", str(bundle.path), cid).rc == 0
        rs.append(rt("exec", "-p", str(pj), cid))
        rt("delete", "-f", cid)
    same(*rs)


def test_exec_stopped_and_unknown(env):
    bundle = env.bundle("true")
    for rt in (env.runc, env.pyrunc):
        cid = env.new_id()
        assert rt("run", "-d", "-b", str(bundle.path), cid).rc == 0
        _wait_status(rt, cid, "stopped")
        r = rt("exec", cid, "true")
        assert r.rc == 255 and "stopped" in r.err
        r = rt("exec", "nosuchcontainer", "true")
        assert r.rc == 255 and "does not exist" in r.err
        rt("delete", cid)


def test_ps_table(env):
    bundle = env.bundle("sleep", "30")
    outs = {}
    for rt in (env.runc, env.pyrunc):
        cid = env.new_id()
        assert rt("run", "-d", "-b", str(bundle.path), cid).rc == 0
        lines = rt("ps", cid).out.splitlines()
        outs[rt.name] = (lines[0].split(), len(lines), lines[1].split()[-2:])
        rt("delete", "-f", cid)
    assert outs["pyrunc"] == outs["runc"]


def test_pause_resume(env):
    bundle = env.bundle("sleep", "30")
    outs = {}
    for rt in (env.runc, env.pyrunc):
        cid = env.new_id()
        assert rt("run", "-d", "-b", str(bundle.path), cid).rc == 0
        steps = [rt("resume", cid).rc]
        assert rt("pause", cid).rc == 0
        st = rt.state(cid)
        assert_valid(dict(st, status="running"), "state")  # the spec's schema has no "paused"
        steps.append(st["status"])
        steps.append(rt("exec", cid, "true").rc)
        steps.append(rt("delete", cid).rc)
        assert rt("resume", cid).rc == 0
        steps.append(rt.state(cid)["status"])
        outs[rt.name] = steps
        rt("delete", "-f", cid)
    assert outs["pyrunc"] == outs["runc"]


def test_delete_force_paused(env):
    bundle = env.bundle("sleep", "30")
    for rt in (env.runc, env.pyrunc):
        cid = env.new_id()
        assert rt("run", "-d", "-b", str(bundle.path), cid).rc == 0
        assert rt("pause", cid).rc == 0
        r = rt("delete", "-f", cid)
        assert r.rc == 0, (rt.name, r.err)


def test_events_stats_and_update(env):
    bundle = env.bundle("sleep", "30")
    outs = {}
    for rt in (env.runc, env.pyrunc):
        cid = env.new_id()
        assert rt("run", "-d", "-b", str(bundle.path), cid).rc == 0
        ev = json.loads(rt("events", "--stats", cid).out)
        assert ev["type"] == "stats" and ev["id"] == cid
        steps = [sorted(ev["data"])]
        assert rt("update", "--memory", "64M", "--pids-limit", "77", cid).rc == 0
        steps.append(rt("exec", cid, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/pids/pids.max").out)
        res = env.tmp / f"{rt.name}-res.json"
        res.write_text(json.dumps({"pids": {"limit": 99}}))
        assert rt("update", "-r", str(res), cid).rc == 0
        assert rt("update", "-r", "-", cid, input=json.dumps({"memory": {"limit": 33554432}})).rc == 0
        steps.append(rt("exec", cid, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/pids/pids.max").out)
        outs[rt.name] = steps
        rt("delete", "-f", cid)
    assert outs["pyrunc"] == outs["runc"]


def test_run_detached_then_wait(env):
    bundle = env.bundle("sh", "-c", "echo detached > /tmp/out")
    bundle.edit(lambda d: d["root"].__setitem__("readonly", False))
    for rt in (env.runc, env.pyrunc):
        cid = env.new_id()
        r = rt("run", "-d", "-b", str(bundle.path), cid)
        assert r.rc == 0 and r.out == ""
        assert _wait_status(rt, cid, "stopped")["status"] == "stopped"
        assert (bundle.rootfs / "tmp" / "out").read_text() == "detached\n"
        assert rt("delete", cid).rc == 0


def test_run_keep(env):
    bundle = env.bundle("true")
    for rt in (env.runc, env.pyrunc):
        cid = env.new_id()
        assert rt("run", "--keep", "-b", str(bundle.path), cid).rc == 0
        assert rt.state(cid)["status"] == "stopped"
        assert rt("delete", cid).rc == 0


def test_hooks(env, tmp_path):
    """Each hook gets the state on stdin; runtime hooks run on the host, container hooks in the container."""
    script = tmp_path / "hook.sh"
    script.write_text("#!/bin/sh\ncat > \"$1\"\n")
    script.chmod(0o755)
    results = {}
    for rt in (env.runc, env.pyrunc):
        outdir = tmp_path / f"hooks-{rt.name}"
        outdir.mkdir()
        bundle = env.bundle("sh", "-c", "echo main")
        bundle.edit(lambda d: d["root"].__setitem__("readonly", False))
        (bundle.rootfs / "hook.sh").write_text("#!/bin/sh\ncat > /hookout-$1\n")
        (bundle.rootfs / "hook.sh").chmod(0o755)
        hooks = {k: [{"path": str(script), "args": ["hook.sh", str(outdir / k)]}]
                 for k in ("prestart", "createRuntime", "poststart", "poststop")}
        hooks["createContainer"] = [{"path": str(script), "args": ["hook.sh", str(outdir / "createContainer")]}]
        hooks["startContainer"] = [{"path": "/hook.sh", "args": ["hook.sh", "startContainer"]}]
        bundle.edit(lambda d: d.__setitem__("hooks", hooks))
        cid = env.new_id()
        r = rt("run", "-b", str(bundle.path), cid)
        assert (r.rc, r.out) == (0, "main\n"), (rt.name, r.err)
        got = {}
        for k in ("prestart", "createRuntime", "createContainer", "poststart", "poststop"):
            doc = json.loads((outdir / k).read_text())
            assert doc["id"] == cid and doc["bundle"] == str(bundle.path)
            got[k] = doc["status"]
        doc = json.loads((bundle.rootfs / "hookout-startContainer").read_text())
        got["startContainer"] = doc["status"]
        results[rt.name] = got
    assert results["pyrunc"] == results["runc"]


def test_hook_failure_and_timeout(env, tmp_path):
    for rt in (env.runc, env.pyrunc):
        for hook in ({"path": "/bin/false"}, {"path": "/bin/sleep", "args": ["sleep", "5"], "timeout": 1}):
            bundle = env.bundle("true")
            bundle.edit(lambda d: d.__setitem__("hooks", {"createRuntime": [hook]}))
            cid = env.new_id()
            r = rt("run", "-b", str(bundle.path), cid)
            assert r.rc == 1 and r.err.count("\n") == 1, (rt.name, r.err)
            assert not (rt.root / cid).exists()


def test_relative_paths(env):
    """--root, --pid-file and --log relative to the caller's directory, although create chdirs into the bundle."""
    bundle = env.bundle("sleep", "30")
    for rt in (env.runc, env.pyrunc):
        cid = env.new_id()
        import subprocess

        # not pipes: the detached container keeps its stdio
        p = subprocess.run([*rt.argv, "--root", rt.name + "-rel", "--log", rt.name + ".log", "run", "-d",
                            "--pid-file", rt.name + ".pid", "-b", str(bundle.path), cid],
                           cwd=env.tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           stdin=subprocess.DEVNULL, timeout=30)
        assert p.returncode == 0, (rt.name, (env.tmp / f"{rt.name}.log").read_text())
        assert (env.tmp / f"{rt.name}.pid").read_text().strip().isdigit()
        assert (env.tmp / f"{rt.name}-rel" / cid).is_dir()
        subprocess.run([*rt.argv, "--root", rt.name + "-rel", "delete", "-f", cid], cwd=env.tmp, timeout=30)


def test_exec_in_user_namespace(env):
    """exec joins the user namespace first (it grants the capabilities to join the rest)."""
    from tests.pyrunc.test_interop import USERNS

    bundle = env.bundle("sleep", "30")
    bundle.edit(USERNS)
    outs = {}
    for rt in (env.runc, env.pyrunc):
        cid = env.new_id()
        r = rt("run", "-d", "-b", str(bundle.path), cid)
        assert r.rc == 0, (rt.name, r.err)
        r = rt("exec", "-u", "1000:1000", cid, "sh", "-c", "cat /proc/self/uid_map; id; hostname")
        outs[rt.name] = (r.rc, r.out)
        rt("delete", "-f", cid)
    assert outs["pyrunc"] == outs["runc"]
    assert outs["pyrunc"][0] == 0


def test_exec_tty_foreground(env):
    """`exec -t` in the foreground relays our tty (a pty here) to the process's pty."""
    bundle = env.bundle("sleep", "30")
    outs = {}
    for rt in (env.runc, env.pyrunc):
        cid = env.new_id()
        assert rt("run", "-d", "-b", str(bundle.path), cid).rc == 0
        rc, out = run_on_pty([*rt.argv, "--root", str(rt.root), "exec", "-t", cid, "sh", "-c",
                              "tty; test -t 0 && echo tty-in; exit 4"])
        outs[rt.name] = (rc, b"tty-in" in out, b"/dev/pts/" in out)
        rt("delete", "-f", cid)
    assert outs["pyrunc"] == outs["runc"] == (4, True, True)


def test_direct_fork_keeps_runtime_pid_namespace(env, tmp_path):
    """Without a user or time namespace the init is forked straight into its pid namespace (no bootstrap child):
    the container still sees itself as pid 1, and the runtime's own later children (its hooks) are born in the
    host's pid namespace, as under runc."""
    from pyrunc import init, specconv

    script = tmp_path / "hook.sh"
    script.write_text("#!/bin/sh\nreadlink /proc/self/ns/pid > \"$1\"\n")
    script.chmod(0o755)
    host_ns = os.readlink("/proc/self/ns/pid")
    for rt in (env.runc, env.pyrunc):
        outdir = tmp_path / f"ns-{rt.name}"
        outdir.mkdir()
        bundle = env.bundle("sh", "-c", "echo $$; readlink /proc/self/ns/pid")
        hooks = {k: [{"path": str(script), "args": ["hook.sh", str(outdir / k)]}]
                 for k in ("prestart", "poststart", "poststop")}
        bundle.edit(lambda d: d.__setitem__("hooks", hooks))
        assert init.direct_fork(specconv.convert(bundle.config, str(bundle.path), validate=False))
        r = rt("run", "-b", str(bundle.path), env.new_id())
        assert r.rc == 0, (rt.name, r.err)
        pid, ns = r.out.split()
        assert pid == "1" and ns != host_ns, (rt.name, r.out)
        for k in hooks:
            assert (outdir / k).read_text().strip() == host_ns, (rt.name, k)


def test_direct_fork_eligibility():
    from pyrunc import init, specconv

    def spec(*namespaces):
        doc = {"ociVersion": "1.0.2", "process": {"args": ["true"], "cwd": "/"}, "root": {"path": "rootfs"},
               "linux": {"namespaces": list(namespaces)}}
        return specconv.convert(doc, "/b", validate=False)

    assert init.direct_fork(spec({"type": "pid"}, {"type": "mount"}, {"type": "network", "path": "/proc/1/ns/net"}))
    assert init.direct_fork(spec({"type": "mount"}, {"type": "cgroup"}))
    assert not init.direct_fork(spec({"type": "pid"}, {"type": "mount"}, {"type": "user"}))
    assert not init.direct_fork(spec({"type": "mount"}, {"type": "time"}))
    assert not init.direct_fork(spec({"type": "pid", "path": "/proc/1/ns/pid"}, {"type": "mount"}))


def test_init_born_in_its_cgroups_and_fallback(env):
    """The init is born in its cgroups (clone3 into the cgroup2 one, the v1 ones joined by itself); where clone3 is
    refused (old kernel, seccomp) the runtime moves it in by pid as runc does: the same cgroups either way."""
    import subprocess
    import sys

    bundle = env.bundle("cat", "/proc/self/cgroup")
    want = env.runc("run", "-b", str(bundle.path), env.new_id())
    assert want.rc == 0, want.err
    cid = env.new_id()
    got = env.pyrunc("run", "-b", str(bundle.path), cid)
    assert got.rc == 0, got.err
    refuse = ("import errno, sys\nfrom pyrunc import cli, syscalls\n"
              "def refuse(fd):\n    raise OSError(errno.ENOSYS, 'clone3: Function not implemented')\n"
              "syscalls.fork_into_cgroup = refuse\nsys.exit(cli.main(sys.argv[1:]))\n")
    cid2 = env.new_id()
    fallback = subprocess.run([sys.executable, "-c", refuse, "--root", str(env.pyrunc.root), "run", "-b",
                               str(bundle.path), cid2], capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)
    assert fallback.returncode == 0, fallback.stderr

    def shape(out: str, cid: str) -> list[str]:
        return [line.rsplit(":", 1)[0] + ":" + line.rsplit(":", 1)[1].replace(cid, "ID") for line in out.split()]

    assert shape(got.out, cid) == shape(want.out, env.ids[-3]) == shape(fallback.stdout, cid2)
    assert all(line.endswith("/ID") for line in shape(got.out, cid))


def test_exec_born_in_container_cgroups(env):
    """exec's process is born in the container's cgroups too (clone3 + its own v1 joins)."""
    bundle = env.bundle("sleep", "30")
    cid = env.new_id()
    r = env.pyrunc("run", "-d", "-b", str(bundle.path), cid)
    assert r.rc == 0, r.err
    init = env.pyrunc("exec", cid, "cat", "/proc/1/cgroup")
    mine = env.pyrunc("exec", cid, "cat", "/proc/self/cgroup")
    assert init.rc == 0 and mine.rc == 0, (init.err, mine.err)
    assert mine.out == init.out and f"/{cid}\n" in mine.out
    assert all(line.endswith(f"/{cid}") for line in mine.out.split())
