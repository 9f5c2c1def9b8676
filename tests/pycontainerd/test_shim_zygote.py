"""The run path's fast pieces: mount(2)/umount2(2) through ctypes (mounts.py) and the shim zygote
(shim/zygote.py, shimfork.py): shims forked from it, detached from it and from the daemon, the
zygote gone with the daemon (even SIGKILLed) and started again when it died."""

from __future__ import annotations

import errno
import json
import os
import signal
import time
import uuid
from pathlib import Path

import pytest

from pycontainerd import mounts, ocispec
from pycontainerd.shimfork import ShimForker
from tests.pycontainerd.daemon_fixture import kill_leftovers, running_daemon
from tests.support import make_busybox_rootfs


def mountinfo(target: Path) -> list[list[str]]:
    with open("/proc/self/mountinfo") as f:
        return [line.split() for line in f if line.split()[4] == str(target)]


def test_parse_options_flags_propagation_and_data() -> None:
    p = mounts.parse_options(["rbind", "ro", "nosuid", "rprivate", "index=off", "lowerdir=/a:/b"])
    assert p.flags == mounts.MS_BIND | mounts.MS_REC | mounts.MS_RDONLY | mounts.MS_NOSUID
    assert p.propagation == mounts.MS_PRIVATE | mounts.MS_REC
    assert p.data == "index=off,lowerdir=/a:/b"
    assert mounts.parse_options(["ro", "rw"]).flags == 0  # the last word wins, as mount(8)


def test_bind_ro_and_overlay_mounts(tmp_path: Path) -> None:
    src, target = tmp_path / "src", tmp_path / "target"
    src.mkdir()
    target.mkdir()
    (src / "f").write_text("hello")
    mounts.mount("bind", str(src), str(target), ["rbind", "ro"])
    try:
        info = mountinfo(target)
        assert info and "ro" in info[-1][5].split(","), info
        assert (target / "f").read_text() == "hello"
        with pytest.raises(OSError) as exc:
            (target / "g").write_text("no")
        assert exc.value.errno == errno.EROFS
    finally:
        mounts.unmount(str(target))
    assert not mountinfo(target)

    lower, upper, work = tmp_path / "lower", tmp_path / "upper", tmp_path / "work"
    for d in (lower, upper, work):
        d.mkdir()
    (lower / "base").write_text("from lower")
    mounts.mount("overlay", "overlay", str(target),
                 ["index=off", f"workdir={work}", f"upperdir={upper}", f"lowerdir={lower}"])
    try:
        assert mountinfo(target)[-1][8] == "overlay"
        assert (target / "base").read_text() == "from lower"
        (target / "new").write_text("to upper")
        assert (upper / "new").read_text() == "to upper" and not (lower / "new").exists()
    finally:
        mounts.unmount(str(target), lazy=True)
    assert not mountinfo(target)


def test_mount_errors_name_the_target(tmp_path: Path) -> None:
    with pytest.raises(mounts.MountError) as exc:
        mounts.mount("bind", str(tmp_path / "missing"), str(tmp_path), ["rbind"])
    assert exc.value.errno == errno.ENOENT and str(tmp_path) in str(exc.value)
    with pytest.raises(mounts.MountError) as exc:
        mounts.unmount(str(tmp_path / "not-mounted"))
    assert exc.value.errno in (errno.EINVAL, errno.ENOENT)


def _pids_with(text: str) -> list[int]:
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if text in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                out.append(int(pid))
        except OSError:
            pass
    return out


def _running(pid: int) -> bool:
    """Alive and not a zombie (a killed zygote stays one until the daemon polls it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _wait_until(cond, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def test_forker_stop_ends_the_zygote(tmp_path: Path) -> None:
    forker = ShimForker(tmp_path)
    forker.warm()
    try:
        pid = forker.proc.pid
        assert Path(forker.socket_path).exists() and (os.stat(forker.socket_path).st_mode & 0o777) == 0o600
        forker.warm()  # running: nothing new
        assert forker.proc.pid == pid
    finally:
        forker.stop()
    assert not os.path.exists(f"/proc/{pid}") and not Path(forker.socket_path).exists()


def test_zygote_request_with_a_long_state_path_and_a_bad_bundle(tmp_path: Path) -> None:
    """Its socket is bound and reached relative to the state dir (socket addresses hold 108 bytes); a
    bundle without shim.json gets the forked child's one-line error, not a hang."""
    import asyncio

    state = tmp_path / ("s" * 60) / ("t" * 60)
    state.mkdir(parents=True)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    forker = ShimForker(state)
    try:
        reply = asyncio.run(forker.start(bundle, 10))
        assert reply["code"] == 3 and "shim.json" in reply["error"], reply
        assert len(forker.socket_path) > 108 and os.path.exists(forker.socket_path)
    finally:
        forker.stop()


def test_zygote_that_cannot_start_is_not_retried_at_once(tmp_path: Path) -> None:
    from pycontainerd.shimfork import ZygoteUnavailable

    forker = ShimForker(tmp_path / "missing")  # no state dir: nowhere for its socket
    with pytest.raises(ZygoteUnavailable):
        forker.warm()
    (tmp_path / "missing").mkdir()
    t = time.monotonic()
    with pytest.raises(ZygoteUnavailable, match="recently"):
        forker.warm()
    assert time.monotonic() - t < 0.5 and forker.proc is None


def test_shims_forked_by_the_zygote_outlive_it_and_the_daemon(tmp_path: Path) -> None:
    rootfs = make_busybox_rootfs(tmp_path / "rootfs")
    namespace = "z" + uuid.uuid4().hex[:8]
    started: list[int] = []
    with running_daemon(tmp_path / "d") as d:
        try:
            c = d.new_client(namespace)

            def run(cid: str, args: list[str]) -> int:
                spec = ocispec.default_spec(namespace, cid)
                spec["process"].update(args=args, terminal=False, env=["PATH=/bin:/usr/bin"])
                spec["root"] = {"path": str(rootfs), "readonly": True}
                c.call("Containers", "Create", {"container": {"id": cid, "image": "", "spec": spec}})
                c.call("Tasks", "Create", {"container_id": cid})
                started.append(c.call("Tasks", "Start", {"container_id": cid})["pid"])
                return started[-1]

            pid = run("one", ["sleep", "100"])
            zygotes = [p for p in _pids_with("zygote.py") if _ppid(p) == d.proc.pid]
            assert len(zygotes) == 1, _pids_with("zygote.py")
            shim = int((Path(d.state) / "tasks" / namespace / "one" / "shim.pid").read_text())
            assert "zygote.py" in Path(f"/proc/{shim}/cmdline").read_text()  # forked, no new interpreter
            assert _ppid(shim) not in (zygotes[0], d.proc.pid)  # detached: a grandchild of the zygote
            # a dead zygote is started again by the next Create
            os.kill(zygotes[0], signal.SIGKILL)
            assert _wait_until(lambda: not _running(zygotes[0]))
            run("two", ["true"])
            assert c.call("Tasks", "Wait", {"container_id": "two"}, timeout=30)["exit_status"] == 0
            assert [p for p in _pids_with("zygote.py") if p != shim and _ppid(p) == d.proc.pid]
            # SIGKILL of the daemon: the zygote sees its lifeline close and leaves; shims stay
            d.kill()
            assert _wait_until(lambda: not [p for p in _pids_with(f"{d.state}/shimfork.sock")
                                            if p not in _shims(d, namespace)])
            assert os.path.exists(f"/proc/{pid}") and os.path.exists(f"/proc/{shim}")
            d.start()
            c = d.new_client(namespace)
            assert c.call("Tasks", "Get", {"container_id": "one"})["process"]["status"] == "running"
            for cid in ("one", "two"):
                c.call("Tasks", "Delete", {"container_id": cid, "force": True})
                c.call("Containers", "Delete", {"id": cid})
            assert _wait_until(lambda: not _running(shim))
        finally:
            kill_leftovers([str(d.state)])
            for pid in started:  # the containers' processes, should a failure leave them
                if _running(pid):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
            for cg in Path("/sys/fs/cgroup").glob(f"*/{namespace}"):
                for child in [x for x in cg.iterdir() if x.is_dir()] + [cg]:
                    try:
                        child.rmdir()
                    except OSError:
                        pass


def _shims(d, namespace: str) -> set[int]:
    out = set()
    for f in (Path(d.state) / "tasks" / namespace).glob("*/shim.pid"):
        try:
            out.add(int(f.read_text()))
        except (OSError, ValueError):
            pass
    return out


def test_cni_add_overlapping_the_runtime_create(tmp_path: Path, busybox_rootfs: Path) -> None:
    """The network is attached while the runtime creates the container (tasks.py runs the network hook's
    rest beside the shim): the container still starts with its address and its /etc files' final
    content; an attach that fails (a port taken) fails the Create and leaves nothing behind."""
    from pycontainerd import errdefs
    from pycontainerd.network import container as netcontainer
    from pycontainerd.network.ports import parse_publish
    from tests.support import free_port, require

    runc = require("runc")
    with running_daemon(tmp_path / "d", runtime=runc) as d:
        c = d.client
        port = free_port()
        bindings, exposed = netcontainer.port_bindings(parse_publish([f"{port}:80"]))

        def create(cid: str, args: list[str], docker: dict) -> None:
            spec = ocispec.default_spec("default", cid)
            spec["process"].update(args=args, terminal=False, env=["PATH=/bin:/usr/bin"])
            spec["root"] = {"path": str(busybox_rootfs), "readonly": False}
            c.call("Containers", "Create", {"container": {"id": cid, "image": "", "spec": spec,
                                                           "labels": {"nerdctl/name": cid[:6]},
                                                           "extensions": {"pyctr/docker": docker}}})

        first, second = "a" * 63 + "1", "b" * 63 + "2"
        published = {"Config": {"ExposedPorts": exposed, "Hostname": "web"},
                     "HostConfig": {"NetworkMode": "bridge", "PortBindings": bindings}}
        create(first, ["sh", "-c", "cat /etc/hosts /etc/hostname; sleep 100"], published)
        try:
            c.call("Tasks", "Create", {"container_id": first})
            c.call("Tasks", "Start", {"container_id": first})
            ip = c.call("Networks", "Settings", {"container_id": first})["settings"]["IPAddress"]
            assert ip.startswith(f"10.{d.subnet_octet}.")
            log = Path(d.root) / "containers" / "default" / first / f"{first}-json.log"
            def logged() -> str:
                return "".join(json.loads(line)["log"] for line in log.read_text().splitlines()) \
                    if log.exists() else ""

            assert _wait_until(lambda: f"{ip}\tweb\n" in logged() and logged().endswith("web\n"), 10), logged()
            # the same host port again: the deferred attach fails, and the created container goes
            create(second, ["true"], published)
            with pytest.raises(errdefs.Error, match="port is already allocated"):
                c.call("Tasks", "Create", {"container_id": second})
            assert not os.path.exists(f"/var/run/netns/pyctr-{second[:12]}")
            assert not (Path(d.state) / "tasks" / "default" / second).exists()
            assert not _pids_with(f"tasks/default/{second}")
            assert second not in c.call("Networks", "Inspect", {"name": "bridge"})["network"]["Containers"]
            with pytest.raises(errdefs.NotFound):
                c.call("Tasks", "Get", {"container_id": second})
        finally:
            for cid in (first, second):
                try:
                    c.call("Tasks", "Delete", {"container_id": cid, "force": True})
                except errdefs.NotFound:
                    pass
                c.call("Containers", "Delete", {"id": cid})


def test_netns_made_and_removed_without_ip() -> None:
    """network/netns.py makes a named netns with unshare+bind mount in a thread of its own (as `ip netns
    add`), leaving the daemon's threads in the host's netns, and removes it as `ip netns del`."""
    import subprocess
    import threading

    from pycontainerd.network import netns

    prefix = f"pytest{uuid.uuid4().hex[:4]}-"
    cid = uuid.uuid4().hex * 2
    before = os.readlink(f"/proc/self/task/{threading.get_native_id()}/ns/net")
    path = netns.create(cid, prefix)
    try:
        assert path == netns.path_for(cid, prefix) and os.path.exists(path)
        assert netns.create(cid, prefix) == path  # reused
        assert os.stat(path).st_ino != os.stat("/proc/self/ns/net").st_ino  # a netns of its own
        assert os.readlink(f"/proc/self/task/{threading.get_native_id()}/ns/net") == before
        links = subprocess.run(["ip", "-n", netns.name_for(cid, prefix), "-o", "link"], capture_output=True,
                               text=True, check=True).stdout
        assert [line.split(":")[1].strip() for line in links.splitlines()] == ["lo"]
    finally:
        netns.delete(cid, prefix)
    assert not os.path.exists(path)
    with open("/proc/self/mountinfo") as f:
        assert not [line for line in f if netns.name_for(cid, prefix) in line]
    netns.delete(cid, prefix)  # idempotent
