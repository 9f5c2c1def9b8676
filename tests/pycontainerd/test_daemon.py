"""The daemon as a process: start/stop on private paths, one daemon per root, records surviving a
restart, several calls multiplexed, events with filters, and SIGKILL in the middle of a pull."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

import pytest

from pycontainerd import errdefs
from pycontainerd.client import Client
from tests.pycontainerd.daemon_fixture import build_image, daemon, registry, running_daemon  # noqa: F401
from tests.support import make_busybox_rootfs


@pytest.fixture(scope="module")
def big_image(tmp_path_factory) -> Path:
    """busybox plus a 48 MiB incompressible layer: a pull takes long enough to be killed in it."""
    base = tmp_path_factory.mktemp("bigimg")
    bb = make_busybox_rootfs(base / "bb")
    big = base / "big"
    big.mkdir()
    with open(big / "random.bin", "wb") as f:
        for _ in range(48):
            f.write(os.urandom(1 << 20))
    build_image(base / "layout", "v1", [bb, big])
    return base / "layout"


class _Gate:
    """A TCP forwarder in front of the registry that slows the registry's answers to a trickle once
    `hold_after` bytes went through (all connections together), until `release()`. A pull stopped
    on its first progress frame past the threshold is then mid-download for certain, however slow
    the test and however fast the daemon is."""

    def __init__(self, upstream: tuple[str, int], hold_after: int) -> None:
        self.upstream = upstream
        self.hold_after = hold_after
        self.sent = 0
        self.open = threading.Event()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def release(self) -> None:
        self.open.set()

    def close(self) -> None:
        self.open.set()
        self._listener.close()
        for s in list(self._socks):
            try:
                s.close()
            except OSError:
                pass

    def _accept(self) -> None:
        while True:
            try:
                down, _ = self._listener.accept()
            except OSError:
                return
            try:
                up = socket.create_connection(self.upstream)
            except OSError:
                down.close()
                continue
            self._socks += [down, up]
            threading.Thread(target=self._pipe, args=(down, up, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(up, down, True), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, gated: bool) -> None:
        try:
            while data := src.recv(1 << 16):
                if gated and not self.open.is_set():
                    with self._lock:
                        room = max(self.hold_after - self.sent, 0)
                        self.sent += min(room, len(data))
                    dst.sendall(data[:room])
                    data = data[room:]
                    # past the threshold: a trickle (64 KiB/s) until released, so progress frames keep
                    # coming but 40 MiB would take minutes
                    while data and not self.open.wait(0.25):
                        dst.sendall(data[:16 << 10])
                        data = data[16 << 10:]
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.fixture
def gate(registry) -> Iterator[_Gate]:
    """The registry behind a _Gate (a trickle after 8 MiB)."""
    host, port = registry.host.rsplit(":", 1)
    g = _Gate((host, int(port)), 8 << 20)
    try:
        yield g
    finally:
        g.close()


def test_start_stop_socket_and_single_daemon(tmp_path):
    with running_daemon(tmp_path) as d:
        sock = Path(d.address)
        st = sock.stat()
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660
        assert d.client.call("Version", "Version")["version"]
        # a second daemon on the same root refuses to start, naming the root
        r = subprocess.run([sys.executable, "-m", "pycontainerd.daemon", "--root", str(d.root), "--state",
                            str(d.state / "other"), "--address", str(d.state / "other.sock")],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 1 and str(d.root) in r.stderr and "Traceback" not in r.stderr
        assert d.stop() == 0, d.log_text()
        assert not sock.exists()
        with pytest.raises(errdefs.Unavailable, match="Is the daemon running"):
            Client(d.address).call("Version", "Version")


def test_records_survive_restart_and_calls_multiplex(daemon):
    c = daemon.client
    target = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + "a" * 64,
              "size": 10}
    c.call("Images", "Create", {"image": {"name": "example.com/x:1", "target": target, "labels": {"k": "v"}}})
    c.call("Containers", "Create", {"container": {"id": "box", "image": "example.com/x:1", "labels": {"a": "b"}}})
    with pytest.raises(errdefs.AlreadyExists):
        c.call("Containers", "Create", {"container": {"id": "box"}})
    daemon.restart()
    c = daemon.client
    assert c.call("Images", "Get", {"name": "example.com/x:1"})["image"]["labels"] == {"k": "v"}
    got = c.call("Containers", "Get", {"id": "box"})["container"]
    assert got["labels"] == {"a": "b"} and got["runtime"]["name"] == "io.containerd.runc.v2"
    assert c.call("Containers", "List", {"filters": ["labels.a==b"]})["containers"][0]["id"] == "box"
    assert c.call("Containers", "List", {"filters": ["labels.a==c"]})["containers"] == []
    updated = c.call("Containers", "Update", {"container": {"id": "box", "labels": {"a": "z"}},
                                              "update_mask": ["labels"]})["container"]
    assert updated["labels"] == {"a": "z"}
    # one connection, many threads, interleaved calls
    errors, results = [], []

    def worker(i):
        try:
            for _ in range(20):
                results.append(c.call("Containers", "Get", {"id": "box"})["container"]["id"])
                with pytest.raises(errdefs.NotFound):
                    c.call("Containers", "Get", {"id": f"missing-{i}"})
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and results == ["box"] * 160
    c.call("Containers", "Delete", {"id": "box"})
    with pytest.raises(errdefs.NotFound, match='container "box"'):
        c.call("Containers", "Get", {"id": "box"})


def test_events_subscribe_with_filters(daemon):
    c = daemon.client
    got: list[dict] = []
    sub = c.stream("Events", "Subscribe", {"filters": ['topic~="^/containers/"', "topic==/images/delete"],
                                           "ready": True})
    assert next(sub) == {"ready": True}
    other = daemon.new_client("elsewhere")
    other.call("Containers", "Create", {"container": {"id": "e1"}})
    other.call("Events", "Publish", {"topic": "/tasks/exit", "event": {"id": "e1", "exit_status": 3}})
    other.call("Containers", "Delete", {"id": "e1"})
    for envelope in sub:
        got.append(envelope)
        if len(got) == 2:
            break
    assert [(e["topic"], e["namespace"], e["event"]["id"]) for e in got] == [
        ("/containers/create", "elsewhere", "e1"), ("/containers/delete", "elsewhere", "e1")]
    assert got[0]["timestamp"].endswith("Z")
    # a namespace filter, and an event published by a client
    sub = c.stream("Events", "Subscribe", {"filters": ["namespace==default,topic==/tasks/exit"], "ready": True})
    next(sub)
    other.call("Events", "Publish", {"topic": "/tasks/exit", "event": {"id": "not-me"}})
    c.call("Events", "Publish", {"topic": "/tasks/exit", "event": {"id": "me", "exit_status": 1}})
    first = next(sub)
    assert first["event"] == {"id": "me", "exit_status": 1}
    sub.close()
    with pytest.raises(errdefs.InvalidArgument):
        c.call("Events", "Publish", {"topic": "no-slash"})


def _verify_store(root: Path) -> int:
    """Every committed blob hashes to its name; returns how many there are."""
    d = root / "content" / "blobs" / "sha256"
    n = 0
    for p in d.iterdir():
        if p.name.startswith(".") or "." in p.name:
            continue
        h = hashlib.sha256()
        with open(p, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        assert h.hexdigest() == p.name, f"corrupt blob {p.name}"
        n += 1
    return n


def test_sigkill_mid_pull_then_pull_succeeds(daemon, registry, gate, big_image, tmp_path):
    registry.push(big_image, "v1", "big/img")
    # pulled through a gate that slows the big layer to a trickle after 8 MiB: the kill lands mid-download
    ref = f"127.0.0.1:{gate.port}/big/img:v1"
    c = daemon.client
    killed = False
    try:
        for frame in c.stream("Images", "Pull", {"ref": ref}):
            if frame["status"] == "downloading" and frame["offset"] > (1 << 20) and frame["total"] > (40 << 20):
                os.kill(daemon.proc.pid, signal.SIGKILL)
                killed = True
                break
    except errdefs.Unavailable:
        pass
    assert killed, "the pull finished before it could be killed"
    gate.release()
    daemon.proc.wait(30)
    _verify_store(daemon.root)
    daemon.start()
    c = daemon.client
    with pytest.raises(errdefs.NotFound):
        c.call("Images", "Get", {"name": ref})  # no record of a half-done pull
    assert c.call("Leases", "List")["leases"] == [], "the killed pull's lease is gone with it"
    frames = list(c.stream("Images", "Pull", {"ref": ref}))
    assert frames[-1]["status"] == "done"
    assert _verify_store(daemon.root) == 4
    top = c.call("Images", "Config", {"name": ref})["chain_id"]
    (m,) = c.call("Snapshots", "View", {"key": "check", "parent": top})["mounts"]
    lowers = [o.split("=", 1)[1] for o in m["options"] if o.startswith("lowerdir=")]
    first = (lowers[0].split(":")[0] if lowers else m["source"])
    assert os.path.getsize(os.path.join(first, "random.bin")) == 48 << 20
    # nothing half-unpacked left over in the snapshotter's staging area
    assert os.listdir(daemon.root / "snapshots" / "overlayfs" / "tmp") == []


def test_sigterm_mid_pull_stops_gracefully(daemon, registry, gate, big_image):
    registry.push(big_image, "v1", "big/term")
    # pulled through a gate that slows the big layer to a trickle after 8 MiB: SIGTERM lands mid-download
    ref = f"127.0.0.1:{gate.port}/big/term:v1"
    c = daemon.client
    termed = False
    try:
        for frame in c.stream("Images", "Pull", {"ref": ref}):
            if frame["status"] == "downloading" and frame["offset"] > (1 << 20) and frame["total"] > (40 << 20):
                daemon.proc.send_signal(signal.SIGTERM)
                termed = True
                break
    except (errdefs.Unavailable, errdefs.Canceled):
        pass
    assert termed, "the pull finished before SIGTERM could be sent"
    try:
        assert daemon.proc.wait(30) == 0, daemon.log_text()
    except subprocess.TimeoutExpired:
        pytest.fail(f"the daemon did not stop within 30s of SIGTERM:\n{daemon.log_text()}")
    assert "stopping" in daemon.log_text() and "Traceback" not in daemon.log_text()
    assert not Path(daemon.address).exists()
    gate.release()
    daemon.start()
    list(daemon.client.stream("Images", "Pull", {"ref": ref}))
    assert _verify_store(daemon.root) == 4
