"""The same bundle run in the foreground under runc and pyrunc: stdout and exit code must match."""

from __future__ import annotations

import os

import pytest

from tests.pyrunc.conftest import same
from tests.support import run_on_pty

pytestmark = pytest.mark.interop


def _proc(key, value):
    return lambda d: d["process"].__setitem__(key, value)


def _linux(key, value):
    return lambda d: d["linux"].__setitem__(key, value)


def _add_mount(**m):
    return lambda d: d["mounts"].append(m)


def _chain(*fns):
    def run(d):
        for f in fns:
            f(d)
    return run


def _no_ns(kind):
    return lambda d: d["linux"].__setitem__("namespaces", [n for n in d["linux"]["namespaces"] if n["type"] != kind])


def _add_ns(kind):
    return lambda d: d["linux"]["namespaces"].append({"type": kind})


def _rw_root(d):
    d["root"]["readonly"] = False


# Root stays root on the host (the pytest tmp dirs are 0700), the rest of the range is shifted.
USERNS = _chain(
    _add_ns("user"),
    _linux("uidMappings", [{"containerID": 0, "hostID": 0, "size": 1}, {"containerID": 1, "hostID": 100001, "size": 65535}]),
    _linux("gidMappings", [{"containerID": 0, "hostID": 0, "size": 1}, {"containerID": 1, "hostID": 100001, "size": 65535}]),
)

SCENARIOS = {
    "echo": (["echo", "hello world"], None),
    "exit-code": (["sh", "-c", "echo out; exit 3"], None),
    "exit-code-false": (["false"], None),
    "env": (["env"], _proc("env", ["PATH=/bin:/usr/bin", "FOO=bar", "EMPTY=", "TERM=dumb"])),
    "env-home-kept": (["sh", "-c", "echo $HOME"], _proc("env", ["PATH=/bin", "HOME=/elsewhere"])),
    "cwd": (["pwd"], _proc("cwd", "/tmp")),
    "cwd-created": (["pwd"], _chain(_rw_root, _proc("cwd", "/new/dir"))),
    "user": (["id"], _proc("user", {"uid": 65534, "gid": 65534})),
    "user-groups": (["id"], _proc("user", {"uid": 1000, "gid": 1000, "additionalGids": [10, 20]})),
    "umask": (["sh", "-c", "umask"], _proc("user", {"uid": 0, "gid": 0, "umask": 0o077})),
    "umask-default": (["sh", "-c", "umask"], None),
    "hostname": (["hostname"], lambda d: d.__setitem__("hostname", "box1")),
    "readonly-root": (["sh", "-c", "touch /x 2>/dev/null; echo $?"], None),
    "readwrite-root": (["sh", "-c", "touch /x && echo ok && rm /x"], _rw_root),
    "proc-mounted": (["sh", "-c", "echo $$; cat /proc/1/cmdline | tr '\\0' ' '"], None),
    "mounts-table": (["sh", "-c", "cut -d' ' -f2,3 /proc/self/mounts"], None),
    "mount-options": (["sh", "-c", "grep -E ' /(dev|dev/shm|dev/pts|dev/mqueue|sys|proc) ' /proc/self/mounts | cut -d' ' -f2-4"], None),
    "dev-listing": (["sh", "-c", "ls -a /dev; stat -c '%n %F %a %u:%g %t:%T %N' /dev/* | sort"], None),  # no times
    "dev-nodes": (["sh", "-c", "stat -c '%n %F %t:%T %a %u:%g' /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty"], None),
    "dev-symlinks": (["sh", "-c", "for l in fd stdin stdout stderr ptmx; do readlink /dev/$l; done"], None),
    "linux-devices": (
        ["sh", "-c", "stat -c '%n %F %t:%T %a %u:%g' /dev/mydev /dev/myblk"],
        _linux("devices", [
            {"path": "/dev/mydev", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640, "uid": 0, "gid": 0},
            {"path": "/dev/myblk", "type": "b", "major": 7, "minor": 200, "fileMode": 0o600, "uid": 0, "gid": 0},
        ]),
    ),
    "tmpfs-size-mode": (
        ["sh", "-c", "stat -c '%a' /scratch; df -k /scratch | tail -1 | awk '{print $2}'; grep ' /scratch ' /proc/mounts | cut -d' ' -f3,4"],
        _add_mount(destination="/scratch", type="tmpfs", source="tmpfs", options=["nosuid", "nodev", "size=2m", "mode=1700"]),
    ),
    "tmpfs-noexec": (
        ["sh", "-c", "cp /bin/busybox /scratch/bb && /scratch/bb true; echo $?"],
        _add_mount(destination="/scratch", type="tmpfs", source="tmpfs", options=["noexec"]),
    ),
    "masked-paths": (["sh", "-c", "cat /proc/kcore | wc -c; ls /sys/firmware | wc -l; stat -c %F /proc/keys"], None),
    "readonly-paths": (["sh", "-c", "echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null; echo $?; grep ' /proc/sys ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1"], None),
    "sysfs-ro": (["sh", "-c", "touch /sys/kernel/x 2>/dev/null; echo $?"], None),
    "pid-ns": (["sh", "-c", "ps -o pid,comm"], None),
    "host-pid-ns": (["sh", "-c", "test $$ -ne 1 && echo not-pid-1"], _no_ns("pid")),
    "net-ns": (["sh", "-c", "cat /proc/net/dev | cut -d: -f1 | tr -d ' '"], None),
    "ipc-ns": (["sh", "-c", "cat /proc/sysvipc/shm | wc -l"], None),
    "cgroup-ns": (["cat", "/proc/self/cgroup"], _add_ns("cgroup")),
    "userns-maps": (["sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; id; ls -ln /bin/busybox | cut -c1-30"], USERNS),
    "userns-nonroot": (["id"], _chain(USERNS, _proc("user", {"uid": 1000, "gid": 1000}))),
    "rlimits": (
        ["sh", "-c", "ulimit -n; ulimit -Hn; ulimit -c"],
        _proc("rlimits", [{"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 2048}, {"type": "RLIMIT_CORE", "hard": 0, "soft": 0}]),
    ),
    "caps-default": (["grep", "Cap", "/proc/self/status"], None),
    "caps-custom": (
        ["grep", "Cap", "/proc/self/status"],
        _proc("capabilities", {k: ["CAP_CHOWN", "CAP_NET_RAW", "CAP_SYS_ADMIN"] for k in ("bounding", "effective", "permitted", "inheritable", "ambient")}),
    ),
    "caps-nonroot": (
        ["grep", "Cap", "/proc/self/status"],
        _chain(_proc("user", {"uid": 1000, "gid": 1000}),
               _proc("capabilities", {k: ["CAP_NET_BIND_SERVICE", "CAP_KILL"] for k in ("bounding", "effective", "permitted", "inheritable", "ambient")})),
    ),
    "no-new-privs": (["grep", "NoNewPrivs", "/proc/self/status"], None),
    "no-new-privs-off": (["grep", "NoNewPrivs", "/proc/self/status"], _proc("noNewPrivileges", False)),
    "oom-score-adj": (["cat", "/proc/self/oom_score_adj"], _proc("oomScoreAdj", 500)),
    "sysctl": (["cat", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/kernel/msgmax"],
               _linux("sysctl", {"net.ipv4.ip_forward": "1", "kernel.msgmax": "12345"})),
    "bind-ro": (["sh", "-c", "cat /data/file; echo x > /data/file 2>/dev/null; echo $?"], "BIND_RO"),
    "bind-rw": (["sh", "-c", "echo written > /data/out; cat /data/out"], "BIND_RW"),
    "bind-file": (["cat", "/etc/motd-bound"], "BIND_FILE"),
    "rbind-proc-options": (["sh", "-c", "grep ' /data ' /proc/mounts | cut -d' ' -f4 | tr , '\\n' | grep -E '^(ro|rw|nosuid|nodev|noexec)$'"], "BIND_OPTS"),
    "bind-propagation": (["sh", "-c", "grep ' /data ' /proc/self/mountinfo | grep -o -E 'shared:|master:' | sort -u; grep ' /data2 ' /proc/self/mountinfo | grep -c -E 'shared:|master:'"], "BIND_PROP"),
    "mqueue": (["sh", "-c", "grep mqueue /proc/mounts | cut -d' ' -f1-3"], None),
    "devpts": (["sh", "-c", "grep devpts /proc/mounts | cut -d' ' -f1-4"], None),
    "shm": (["sh", "-c", "grep /dev/shm /proc/mounts | cut -d' ' -f1-4"], None),
    "cgroup-mount": (["sh", "-c", "ls /sys/fs/cgroup"], None),
    "cgroup-memory-limit": (["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"],
                            lambda d: d["linux"]["resources"].__setitem__("memory", {"limit": 64 * 1024 * 1024})),
    "cgroup-pids-limit": (["cat", "/sys/fs/cgroup/pids/pids.max"],
                          lambda d: d["linux"]["resources"].__setitem__("pids", {"limit": 42})),
    "stdin": (["sh", "-c", "cat; echo done"], "STDIN"),
    "rootfs-propagation": (["sh", "-c", "echo ok"], _linux("rootfsPropagation", "private")),
    "seccomp-errno": (
        ["sh", "-c", "mkdir /tmp/x 2>&1; echo $?; touch /tmp/y && echo touched"],
        _chain(_rw_root, _linux("seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                                           "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]})),
    ),
    "seccomp-default-errno": (
        ["sh", "-c", "echo start; chmod 777 /tmp 2>&1; echo $?"],
        _linux("seccomp", {"defaultAction": "SCMP_ACT_ALLOW",
                           "syscalls": [{"names": ["chmod", "fchmodat", "fchmod"], "action": "SCMP_ACT_ERRNO"}]}),
    ),
    "missing-exe": (["/no/such/binary"], None),
    "missing-exe-path": (["nosuchcommand"], None),
}


def _bind(env, bundle, kind):
    data = env.tmp / f"data-{kind}"
    data.mkdir()
    (data / "file").write_text("from host\n")
    if kind == "BIND_RO":
        m = {"destination": "/data", "type": "bind", "source": str(data), "options": ["rbind", "ro"]}
    elif kind == "BIND_RW":
        m = {"destination": "/data", "type": "bind", "source": str(data), "options": ["bind", "rw"]}
    elif kind == "BIND_OPTS":
        m = {"destination": "/data", "type": "none", "source": str(data), "options": ["rbind", "nosuid", "nodev", "noexec", "ro"]}
    elif kind == "BIND_PROP":
        m = {"destination": "/data", "type": "bind", "source": str(data), "options": ["rbind", "rshared"]}
        bundle.edit(lambda d: d["mounts"].append(
            {"destination": "/data2", "type": "bind", "source": str(data), "options": ["rbind", "rprivate"]}))
    else:
        m = {"destination": "/etc/motd-bound", "type": "bind", "source": str(data / "file"), "options": ["bind", "ro"]}
    bundle.edit(lambda d: d["mounts"].append(m))


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_same_output(env, name):
    argv, edit = SCENARIOS[name]
    bundle = env.bundle(*argv)
    stdin = None
    if isinstance(edit, str) and edit.startswith("BIND"):
        _bind(env, bundle, edit)
    elif edit == "STDIN":
        stdin = "line one\nline two\n"
    elif edit is not None:
        bundle.edit(edit)
    r1, r2 = env.both(bundle, input=stdin)
    same(r1, r2)
    if r1.rc == 1 and "failed: " in r1.err:
        # a create failure: one line on stderr, naming the same problem
        assert r2.err.count("\n") == 1, r2.err
        assert "Traceback" not in r2.err
        tail = r1.err.split("failed: ", 1)[-1].rstrip('"\n')
        assert tail.replace('\\"', '"') in r2.err.replace('\\"', '"'), (r1.err, r2.err)
    if name == "bind-rw":
        assert (env.tmp / "data-BIND_RW" / "out").read_text() == "written\n"


def test_no_pivot(env):
    bundle = env.bundle("sh", "-c", "cat /proc/self/mountinfo | grep -c ' / / '; echo ok")
    r1 = env.runc("run", "--no-pivot", "-b", str(bundle.path), env.new_id())
    r2 = env.pyrunc("run", "--no-pivot", "-b", str(bundle.path), env.new_id())
    same(r1, r2)


def test_signal_exit_status(env):
    """A foreground run killed by SIGKILL exits 137 under both."""
    import subprocess
    import time

    bundle = env.bundle("sleep", "30")
    for rt in (env.runc, env.pyrunc):
        cid = env.new_id()
        p = subprocess.Popen([*rt.argv, "--root", str(rt.root), "run", "-b", str(bundle.path), cid])
        for _ in range(200):
            r = rt("state", cid)
            if r.rc == 0 and '"running"' in r.out:
                break
            time.sleep(0.02)
        assert rt("kill", cid, "KILL").rc == 0
        assert p.wait(10) == 137, rt.name


def test_signal_forwarded(env):
    """SIGTERM to a foreground run reaches the container (a shell trapping it exits 7)."""
    import signal
    import subprocess
    import time

    bundle = env.bundle("sh", "-c", "trap 'exit 7' TERM; echo ready; while true; do sleep 0.05; done")
    for rt in (env.runc, env.pyrunc):
        cid = env.new_id()
        p = subprocess.Popen([*rt.argv, "--root", str(rt.root), "run", "-b", str(bundle.path), cid],
                             stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline() == "ready\n"
        time.sleep(0.1)
        p.send_signal(signal.SIGTERM)
        assert p.wait(10) == 7, rt.name
        p.stdout.close()


def test_preserve_fds_and_pid_file(env):
    bundle = env.bundle("sh", "-c", "cat <&3")
    for rt in (env.runc, env.pyrunc):
        r, w = os.pipe()
        os.write(w, b"via fd 3\n")
        os.close(w)
        import subprocess

        cid = env.new_id()
        pidfile = env.tmp / f"{rt.name}.pid"
        p = subprocess.run([*rt.argv, "--root", str(rt.root), "run", "--preserve-fds", "1", "--pid-file",
                            str(pidfile), "-b", str(bundle.path), cid], pass_fds=(3,), capture_output=True,
                           text=True, stdin=subprocess.DEVNULL, timeout=30,
                           preexec_fn=lambda r=r: os.dup2(r, 3))
        os.close(r)
        assert (p.returncode, p.stdout) == (0, "via fd 3\n"), (rt.name, p.stderr)
        assert pidfile.read_text().strip().isdigit()


def test_terminal_foreground(env):
    """`run` in the foreground with process.terminal attaches our tty (a pty here) to the container's."""
    bundle = env.bundle("sh", "-c", "tty; test -t 0 && echo in-tty; read line; echo got:$line")
    bundle.edit(lambda d: d["process"].__setitem__("terminal", True))
    outs = {}
    for rt in (env.runc, env.pyrunc):
        rc, out = run_on_pty([*rt.argv, "--root", str(rt.root), "run", "-b", str(bundle.path), env.new_id()],
                             reply=(b"in-tty", b"hello\n"))
        text = out.replace(b"\r\n", b"\n")
        outs[rt.name] = (rc, text.count(b"got:hello"), b"/dev/pts/0" in text, b"in-tty" in text)
    assert outs["pyrunc"] == outs["runc"]
    assert outs["pyrunc"] == (0, 1, True, True)


def test_join_namespace_by_path(env):
    """A second container joins the first one's network and uts namespaces by path."""
    results = {}
    for rt in (env.runc, env.pyrunc):
        first = env.bundle("sleep", "30")
        first.edit(lambda d: d.__setitem__("hostname", "shared-host"))
        a = env.new_id()
        assert rt("run", "-d", "-b", str(first.path), a).rc == 0
        pid = rt.state(a)["pid"]
        second = env.bundle("sh", "-c", "hostname; readlink /proc/self/ns/net")

        def join(d):
            d.pop("hostname", None)
            d["linux"]["namespaces"] = [n for n in d["linux"]["namespaces"] if n["type"] not in ("network", "uts")]
            d["linux"]["namespaces"] += [{"type": "network", "path": f"/proc/{pid}/ns/net"},
                                         {"type": "uts", "path": f"/proc/{pid}/ns/uts"}]

        second.edit(join)
        r = rt("run", "-b", str(second.path), env.new_id())
        assert r.rc == 0, (rt.name, r.err)
        host, netns = r.out.split()
        assert netns == os.readlink(f"/proc/{pid}/ns/net")
        results[rt.name] = host
        rt("delete", "-f", a)
    assert results["pyrunc"] == results["runc"] == "shared-host"


def test_time_namespace(env):
    """linux.timeOffsets in a time namespace (pyrunc only: runc 1.1 has no time namespace support)."""
    bundle = env.bundle("cat", "/proc/uptime")
    bundle.edit(lambda d: d["linux"]["namespaces"].append({"type": "time"}))
    bundle.edit(lambda d: d["linux"].__setitem__("timeOffsets", {"boottime": {"secs": 86400 * 400, "nanosecs": 0}}))
    r = env.pyrunc("run", "-b", str(bundle.path), env.new_id())
    assert r.rc == 0, r.err
    assert float(r.out.split()[0]) > 86400 * 400


def test_domainname_and_personality(env):
    """pyrunc applies domainname and personality (runc 1.1.5 ignores both; the runtime spec defines them)."""
    bundle = env.bundle("sh", "-c", "cat /proc/sys/kernel/domainname; uname -m")
    bundle.edit(lambda d: d.__setitem__("domainname", "example.org"))
    bundle.edit(lambda d: d["linux"].__setitem__("personality", {"domain": "LINUX32"}))
    r = env.pyrunc("run", "-b", str(bundle.path), env.new_id())
    assert (r.rc, r.out) == (0, "example.org\ni686\n"), r.err


def test_mount_destination_symlink_stays_inside(env):
    """A destination through a symlink pointing out of the rootfs is resolved inside it (no host path touched)."""
    marker = f"pyrunc-escape-{os.getpid()}-{env.new_id()}"
    bundle = env.bundle("sh", "-c", f"grep -c ' /tmp/{marker} ' /proc/self/mounts")
    (bundle.rootfs / "escape").symlink_to("/../../../../../tmp")
    bundle.edit(lambda d: d["mounts"].append({"destination": f"/escape/{marker}", "type": "tmpfs", "source": "tmpfs"}))
    r1, r2 = env.both(bundle)
    same(r1, r2)
    assert r2.out == "1\n"
    assert not os.path.exists(f"/tmp/{marker}")
