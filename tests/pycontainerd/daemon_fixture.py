"""A pycontainerd daemon on private paths for tests, shared by the daemon, tasks and pyctr tests.

    from tests.pycontainerd.daemon_fixture import daemon, running_daemon   # fixture / context manager

    def test_x(daemon):
        daemon.client.call("Version", "Version")
        daemon.restart()            # SIGTERM then start again on the same paths (containers keep running)
        daemon.kill()               # SIGKILL (then daemon.start() to bring it back)
        c = daemon.new_client(namespace="other")

`daemon.root`, `.state` (short, under /tmp, so socket paths fit), `.address`, `.log` (the daemon's
stderr), `.runtime`, `.bridge`/`.subnet`/`.pool` (each daemon's own default bridge `pytest<hex>` and
10.X.0.0/16, X held by a lock file for the daemon's life, so parallel daemons never share a subnet).
Teardown (also on failure): the daemon is stopped; every shim and container
process it left (found by our private paths in their command line, cwd or root) is killed by pid;
every mount under our paths is unmounted, deepest first; the daemon's networking (endpoints, netns,
iptables rules, user networks, its bridge) is purged; the paths are removed.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from pycontainerd.client import Client

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"


def default_runtime() -> str:
    pyrunc = VENV_BIN / "pyrunc"
    return str(pyrunc) if pyrunc.exists() else (shutil.which("pyrunc") or "runc")


@dataclass
class DaemonHandle:
    root: Path
    state: Path
    address: str
    log: Path
    runtime: str
    extra_args: list[str] = field(default_factory=list)
    env: dict | None = None
    bridge: str = ""
    subnet_octet: int = 0
    _octet_lock: int | None = None
    proc: subprocess.Popen | None = None
    clients: list[Client] = field(default_factory=list)
    _client: Client | None = None

    def __post_init__(self) -> None:
        if not self.subnet_octet:
            self.subnet_octet, self._octet_lock = _reserve_octet()
        if not self.bridge:
            self.bridge = f"pytest{secrets.token_hex(4)}"

    @property
    def bip(self) -> str:
        return f"10.{self.subnet_octet}.0.1/24"

    @property
    def pool(self) -> str:
        return f"10.{self.subnet_octet}.0.0/16"

    def network_args(self) -> list[str]:
        return ["--bridge", self.bridge, "--bip", self.bip, "--default-address-pool", self.pool]

    # -- lifecycle -----------------------------------------------------------------------------
    def command(self) -> list[str]:
        return [sys.executable, "-m", "pycontainerd.daemon", "--root", str(self.root), "--state", str(self.state),
                "--address", self.address, "--runtime", self.runtime, "--log-level", "debug",
                *self.network_args(), *self.extra_args]

    def start(self, timeout: float = 20.0) -> "DaemonHandle":
        assert self.proc is None or self.proc.poll() is not None, "daemon already running"
        env = {**os.environ, **(self.env or {})}
        env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
        logf = open(self.log, "ab")
        try:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                         env=env, start_new_session=True)
        finally:
            logf.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"pycontainerd exited with {self.proc.returncode} while starting:\n{self.log_text()}")
            try:
                Client(self.address, timeout=5).connect().close()
                break
            except Exception:
                time.sleep(0.05)
        else:
            pytest.fail(f"pycontainerd did not listen on {self.address} within {timeout}s:\n{self.log_text()}")
        self._client = None
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        """Stop the daemon (SIGTERM: graceful); returns its exit status."""
        for c in self.clients:
            c.close()
        self.clients.clear()
        self._client = None
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self) -> "DaemonHandle":
        self.stop()
        return self.start()

    # -- clients -------------------------------------------------------------------------------
    def new_client(self, namespace: str = "default") -> Client:
        c = Client(self.address, namespace=namespace, timeout=120)
        self.clients.append(c)
        return c

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = self.new_client()
        return self._client

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-6000:]
        except FileNotFoundError:
            return ""

    # -- teardown ------------------------------------------------------------------------------
    def cleanup(self) -> None:
        try:
            self.stop(timeout=10)
        finally:
            try:
                kill_leftovers([str(self.root), str(self.state)])
                self.purge_network()
            finally:
                unmount_under([str(self.root), str(self.state)])
                # the runtime leaves each namespace's parent cgroup (`/<ns>`, as runc under containerd does)
                for ns in {p.name for sub in ("tasks", "runtime") for p in (self.state / sub).glob("*") if p.is_dir()}:
                    remove_cgroups(ns)
                shutil.rmtree(self.state, ignore_errors=True)
                if self._octet_lock is not None:
                    os.close(self._octet_lock)
                    self._octet_lock = None

    def purge_network(self) -> None:
        """Endpoints (CNI DEL: veths, port rules, leases), netns, user networks and our bridge."""
        from pycontainerd.network import NetworkManager

        NetworkManager(self.root, self.state, default_bridge=self.bridge, default_subnet=self.bip,
                       pool=self.pool).purge(remove_default_bridge=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)  # made, never recorded


# X of 10.X.0.0/16: away from docker's 172.x, podman's 10.88-89, nerdctl's 10.4 and pyctr's 10.213
_OCTETS = range(100, 200)


def _reserve_octet() -> tuple[int, int]:
    """A 10.X/16 no other test daemon on this host holds: (X, the lock fd to close when done)."""
    start = secrets.randbelow(len(_OCTETS))
    for i in range(len(_OCTETS)):
        octet = _OCTETS[(start + i) % len(_OCTETS)]
        fd = os.open(f"/tmp/pytest-pycontainerd-net-{octet}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return octet, fd
        except BlockingIOError:
            os.close(fd)
    raise RuntimeError("no free 10.X/16 for a test daemon")


def _under(path: str, prefixes: list[str]) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes)


def kill_leftovers(prefixes: list[str]) -> list[int]:
    """SIGKILL every process (not us) whose command line names one of our paths, or whose root/cwd is
    below one: shims, runtimes and container processes the daemon left."""
    me = os.getpid()
    killed = []
    for _round in range(3):
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == me:
                continue
            pid = int(entry)
            try:
                cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            hit = any(p in cmd for p in prefixes)
            if not hit:
                for link in ("root", "cwd"):
                    try:
                        if _under(os.readlink(f"/proc/{pid}/{link}"), prefixes):
                            hit = True
                            break
                    except OSError:
                        pass
            if hit:
                found.append(pid)
        if not found:
            break
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    return killed


def unmount_under(prefixes: list[str]) -> list[str]:
    """Unmount (lazily, deepest first) every mount point under our paths."""
    points = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                mount_point = line.split()[4].replace("\\040", " ")
                if _under(mount_point, prefixes):
                    points.append(mount_point)
    except OSError:
        return []
    for mp in sorted(set(points), key=lambda p: -p.count("/")):
        subprocess.run(["umount", "-l", mp], capture_output=True)
    return points


@contextmanager
def running_daemon(tmp_path: Path, runtime: str | None = None, extra_args: list[str] | None = None,
                   env: dict | None = None, start: bool = True) -> Iterator[DaemonHandle]:
    root = tmp_path / "pycontainerd-root"
    root.mkdir(parents=True, exist_ok=True)
    state = Path(tempfile.mkdtemp(prefix="pcd-", dir="/tmp"))  # short: shim/daemon sockets must fit 108 bytes
    handle = DaemonHandle(root=root, state=state, address=str(state / "pycontainerd.sock"),
                          log=tmp_path / "pycontainerd.log", runtime=runtime or default_runtime(),
                          extra_args=list(extra_args or []), env=env)
    try:
        if start:
            handle.start()
        yield handle
    finally:
        handle.cleanup()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonHandle]:
    with running_daemon(tmp_path) as handle:
        yield handle


# -- images and a registry for tests ---------------------------------------------------------------

def build_image(layout_dir: Path, tag: str, layer_dirs: list[Path], config: dict | None = None,
                whiteouts: bool = True, architecture: str | None = None) -> dict:
    """A multi-layer image in an OCI layout: one gzip layer per directory, in order. A directory may
    hold overlay-style whiteouts (0:0 char devices, trusted.overlay.opaque=y dirs) that become OCI
    whiteouts. Returns the tagged manifest descriptor."""
    from pyoci import mediatypes as mt
    from pyoci import platform as platforms
    from pyoci.layer import create_layer
    from pyoci.layout import Layout
    from pyoci.manifest import go_json

    layout = Layout.init(layout_dir)
    layers, diff_ids = [], []
    for d in layer_dirs:
        fd, tmp = tempfile.mkstemp(dir=layout.path / "blobs", prefix=".tmp-layer-")
        os.close(fd)
        try:
            info = create_layer(d, tmp, "gzip", whiteouts="overlay" if whiteouts else None, mtime=0)
            with open(tmp, "rb") as f:
                layout.put_blob(f, info.digest, info.size)
        finally:
            os.unlink(tmp)
        layers.append(info.descriptor())
        diff_ids.append(str(info.diff_id))
    plat = platforms.default()
    cfg = {"created": "1970-01-01T00:00:00Z", "architecture": architecture or plat.architecture, "os": plat.os,
           "config": config if config is not None else {"Cmd": ["/bin/sh"],
                                                        "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},
           "rootfs": {"type": "layers", "diff_ids": diff_ids},
           "history": [{"created": "1970-01-01T00:00:00Z", "created_by": f"layer {i}"} for i in range(len(layers))]}
    config_desc = layout.put_json(go_json(cfg), mt.OCI_CONFIG)
    manifest = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": config_desc, "layers": layers}
    return layout.tag(tag, layout.put_json(go_json(manifest), mt.OCI_MANIFEST))


def build_index(layout_dir: Path, tag: str, manifests: dict[str, dict]) -> dict:
    """An image index tagged `tag` over manifests already in the layout: {"linux/amd64": descriptor}."""
    from pyoci import mediatypes as mt
    from pyoci.layout import Layout
    from pyoci.manifest import go_json

    layout = Layout.open(layout_dir)
    entries = []
    for plat, desc in manifests.items():
        os_, arch = plat.split("/")[:2]
        entries.append({"mediaType": desc["mediaType"], "digest": desc["digest"], "size": desc["size"],
                        "platform": {"architecture": arch, "os": os_}})
    index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries}
    return layout.tag(tag, layout.put_json(go_json(index), mt.OCI_INDEX))


def whiteout(path: Path) -> None:
    """An overlay whiteout at `path` (becomes `.wh.NAME` in a layer)."""
    os.mknod(path, 0o600 | 0o020000, os.makedev(0, 0))


def opaque(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.setxattr(path, "trusted.overlay.opaque", b"y")


@dataclass
class Registry:
    host: str
    proc: subprocess.Popen
    root: Path

    def ref(self, repo: str, tag: str = "latest") -> str:
        return f"{self.host}/{repo}:{tag}"

    def push(self, layout_dir: Path, tag: str, repo: str, dest_tag: str | None = None) -> str:
        from pyoci.registry.copy import push

        return push(layout_dir, tag, self.ref(repo, dest_tag or tag))


@contextmanager
def running_registry(tmp_path: Path, htpasswd: Path | None = None) -> Iterator[Registry]:
    """Debian's docker-registry (Distribution) on 127.0.0.1:<free port>, storage under tmp_path;
    with `htpasswd` (bcrypt entries) it asks for basic auth."""
    from tests.support import free_port, require

    binary = require("docker-registry")
    port = free_port()
    root = tmp_path / "registry"
    root.mkdir(parents=True, exist_ok=True)
    cfg = tmp_path / "registry.yml"
    auth = f"auth:\n  htpasswd:\n    realm: test\n    path: {htpasswd}\n" if htpasswd else ""
    cfg.write_text(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {root}\n"
                   f"  delete:\n    enabled: true\n{auth}http:\n  addr: 127.0.0.1:{port}\n")
    log = open(tmp_path / "registry.log", "wb")
    proc = subprocess.Popen([binary, "serve", str(cfg)], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    log.close()
    try:
        import socket

        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                pytest.fail(f"docker-registry exited: {(tmp_path / 'registry.log').read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("docker-registry did not start")
                time.sleep(0.05)
        yield Registry(f"127.0.0.1:{port}", proc, root)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    with running_registry(tmp_path) as r:
        yield r


def namespace_cgroups(namespace: str) -> list[Path]:
    """The namespace's parent cgroups (`/<ns>` in every hierarchy) that the runtime made for its containers."""
    return [d for d in Path("/sys/fs/cgroup").glob(f"*/{namespace}") if d.is_dir()]


def remove_cgroups(namespace: str) -> list[str]:
    """Remove the namespace's (empty) cgroups; returns the container cgroups that were still there."""
    leaked = []
    for d in namespace_cgroups(namespace):
        for child in [c for c in d.iterdir() if c.is_dir()]:
            leaked.append(str(child))
            try:
                child.rmdir()
            except OSError:
                pass
        try:
            d.rmdir()
        except OSError:
            pass
    return leaked
