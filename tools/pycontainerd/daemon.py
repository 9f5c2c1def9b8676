"""The pycontainerd daemon: stores, services and the socket server, run in the foreground.

    pycontainerd [--root DIR] [--state DIR] [--address SOCK] [--runtime PATH] [--log-level LEVEL]
                 [--bridge NAME] [--bip CIDR] [--default-address-pool CIDR] [--cni-path DIR]

`--log-level debug` also logs every call's duration and the stages of a task's create/delete
(mount, network hooks, CNI plugins, shim start + runtime create, release…): where the time goes.

SIGTERM/SIGINT stop the daemon gracefully: calls are cancelled, the socket removed; containers
(held by their shims) keep running and are found again by the next daemon.

Services live in `pycontainerd.services.<name>` modules, each with `register(daemon)` that calls
`daemon.server.register("Name", handler)`. After them, networking and volumes
(`pycontainerd.network.service`: the Networks and Volumes services and the task create/release
hooks; --bridge/--bip/--default-address-pool/--cni-path configure them) and the lifecycle policies
(`pycontainerd.policies`: auto-remove and restart policies as task exit hooks) and health checks
(`pycontainerd.health`). A handler object
may define `async def start(self)` (called before the socket opens, e.g. to reconnect to shims) and
`async def stop(self)`.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import importlib
import logging
import os
import shutil
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from . import errdefs, protocol
from .events import EventBus
from .metadata import Table
from .server import Server

log = logging.getLogger("pycontainerd")

SERVICES = ("version", "system", "namespaces", "events", "content", "images", "snapshots", "containers",
            "leases", "tasks")
OPTIONAL_SERVICES = ("tasks",)
STOP_TIMEOUT = 10.0  # seconds SIGTERM waits for cancelled store work  # engineer L's; the daemon runs (without Tasks) if it is not there yet


@dataclass
class Config:
    root: str = protocol.DEFAULT_ROOT
    state: str = protocol.DEFAULT_STATE
    address: str = protocol.DEFAULT_ADDRESS
    runtime: str = ""
    log_level: str = "info"
    snapshotter: str = ""  # "" picks overlayfs when the kernel allows it, else native
    bridge: str = ""       # docker's --bridge: the default network's device ("" = pyctr0)
    bip: str = ""          # docker's --bip: the default bridge's gateway/prefix, e.g. 10.213.0.1/24
    pool: str = ""         # the range user networks' subnets come from ("" = 10.213.0.0/16)
    cni_path: str = ""     # where the CNI plugins are ("" = /usr/lib/cni)

    def __post_init__(self) -> None:
        self.root = os.path.abspath(self.root)
        self.state = os.path.abspath(self.state)
        self.address = os.path.abspath(protocol.address_path(self.address))
        if not self.runtime:
            self.runtime = default_runtime()


def default_runtime() -> str:
    """pyrunc next to this interpreter (the project's venv), else on PATH, else runc."""
    here = Path(sys.executable).parent / "pyrunc"
    if here.exists():
        return str(here)
    return shutil.which("pyrunc") or shutil.which("runc") or "runc"


@dataclass
class Daemon:
    """Everything a service needs: paths, stores, the event bus and the server."""

    config: Config
    server: Server = field(init=False)
    events: EventBus = field(init=False)
    namespaces: Table = field(init=False)

    def __post_init__(self) -> None:
        from .content import ContentStore
        from .gc import Collector
        from .images import ImageStore
        from .leases import LeaseManager
        from .services.containers import ContainerStore
        from .snapshots import open_snapshotter

        self.root = Path(self.config.root)
        self.state = Path(self.config.state)
        self.address = self.config.address
        self.runtime = self.config.runtime
        for d in (self.root, self.state, self.root / "metadata"):
            d.mkdir(parents=True, exist_ok=True, mode=0o711)
        self.server = Server(self)
        self.events = EventBus()
        self.namespaces = Table(self.root / "metadata" / "namespaces.json", "namespace")
        self.leases = LeaseManager(self.root / "metadata")
        self.content = ContentStore(self.root / "content", self.root / "metadata", self)
        self.images = ImageStore(self.root / "metadata", self)
        self.snapshots = open_snapshotter(self.root / "snapshots", self.config.snapshotter, self)
        self.containers = ContainerStore(self.root / "containers", self)
        self.gc = Collector(self)
        self._lock_fd: int | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._gc_pending = False

    @property
    def tasks_state(self) -> Path:
        return self.state / "tasks"

    def ensure_namespace(self, namespace: str) -> None:
        """containerd creates a namespace on first use."""
        from .metadata import now

        if namespace not in self.namespaces:
            try:
                self.namespaces.create(namespace, {"name": namespace, "labels": {}, "created_at": now()})
            except errdefs.AlreadyExists:
                return
            self.events.publish(namespace, "/namespaces/create", {"name": namespace, "labels": {}})

    def publish(self, namespace: str, topic: str, event: dict | None = None) -> None:
        self.events.publish(namespace, topic, event)

    def schedule_gc(self, delay: float = 0.2) -> None:
        """Collect soon (after deletes); calls within `delay` share one collection. Any thread."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return

        def arm() -> None:
            if not self._gc_pending:
                self._gc_pending = True
                loop.call_later(delay, lambda: loop.run_in_executor(None, self._run_gc))

        loop.call_soon_threadsafe(arm)

    def _run_gc(self) -> None:
        self._gc_pending = False
        try:
            self.gc.collect()
        except Exception:
            log.exception("garbage collection failed")

    # -- lifecycle ---------------------------------------------------------------------------------
    def _take_lock(self) -> None:
        """One daemon per root: a second one fails instead of corrupting the first's state."""
        fd = os.open(self.root / "pycontainerd.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise errdefs.FailedPrecondition(f"{self.root}: another pycontainerd is using this root") from None
        self._lock_fd = fd

    def _check_socket_free(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(self.address)
        except OSError:
            return  # nothing listens: a stale socket file is replaced
        finally:
            s.close()
        raise errdefs.FailedPrecondition(f"{self.address}: a daemon is already listening on this socket")

    def load_services(self) -> None:
        for name in SERVICES:
            try:
                module = importlib.import_module(f"pycontainerd.services.{name}")
            except ModuleNotFoundError as exc:
                if name in OPTIONAL_SERVICES and exc.name == f"pycontainerd.services.{name}":
                    log.warning("service module %s not available; %s calls are unimplemented", name, name)
                    continue
                raise
            module.register(self)
        self._load_extensions()

    def _load_extensions(self) -> None:
        """Networks/Volumes (after Tasks: their hooks go into its manager), then lifecycle policies."""
        from .network import service as network_service

        network_service.register(self)
        try:
            policies = importlib.import_module("pycontainerd.policies")
        except ModuleNotFoundError as exc:
            if exc.name != "pycontainerd.policies":
                raise
            return
        policies.register(self)
        from . import health  # after the policies: a restart's /tasks/start is seen by the health monitor

        health.register(self)

    async def _hooks(self, name: str) -> None:
        for service, handler in list(self.server.services.items()):
            hook = getattr(handler, name, None)
            if hook is None:
                continue
            try:
                await hook()
            except Exception:
                log.exception("%s.%s failed", service, name)
                if name == "start":
                    raise

    async def run(self, ready: asyncio.Event | None = None) -> None:
        loop = asyncio.get_running_loop()
        self.loop = loop
        executor = ThreadPoolExecutor(max_workers=64, thread_name_prefix="pycontainerd")
        loop.set_default_executor(executor)
        self._take_lock()
        self._check_socket_free()
        for stale in [*self.root.glob("import-*"), *self.root.glob("export-*")]:
            stale.unlink(missing_ok=True)  # archives of calls the previous daemon did not finish
        dropped = self.leases.drop_temporary()
        if dropped:
            log.info("dropped %d leases of calls interrupted by the previous daemon's end", dropped)
        self.load_services()
        if log.isEnabledFor(logging.DEBUG):
            self._time_calls()
        await self._hooks("start")
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.server.start(self.address)
        log.info("pycontainerd %s serving on %s (root %s, state %s, runtime %s, snapshotter %s)",
                 protocol.VERSION, protocol.address_url(self.address), self.root, self.state, self.runtime,
                 self.snapshots.name)
        if ready is not None:
            ready.set()
        try:
            await stop.wait()
        finally:
            log.info("stopping (containers keep running)")
            await self.server.close()
            await self._hooks("stop")
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            await self._drain_workers(executor)

    def _time_calls(self) -> None:
        """Debug log: every call's duration (with the task stages tasks.py logs, where time goes)."""
        invoke = self.server.invoke

        async def timed(ctx, params):
            t = time.perf_counter()
            try:
                return await invoke(ctx, params)
            finally:
                log.debug("call %s.%s took %.1f ms", ctx.service, ctx.method, (time.perf_counter() - t) * 1e3)

        self.server.invoke = timed

    async def _drain_workers(self, executor: ThreadPoolExecutor, timeout: float = STOP_TIMEOUT) -> None:
        """Give cancelled store work (an unpack, a download) a bounded time to finish. Whatever is
        still running after that is abandoned: every store write is crash-safe (temp + rename,
        staging cleaned at start), exactly as if the daemon had been killed."""
        done = threading.Event()
        threading.Thread(target=lambda: (executor.shutdown(wait=True, cancel_futures=True), done.set()),
                         daemon=True).start()
        deadline = time.monotonic() + timeout
        while not done.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if not done.is_set():
            log.warning("store work still running after %.0fs: abandoned", timeout)
        # asyncio.run shuts the default executor down with no time limit: hand it an idle one
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=1))


def parse_args(argv: list[str] | None) -> Config:
    p = argparse.ArgumentParser(prog="pycontainerd", description="The pycontainerd container daemon (foreground).")
    p.add_argument("--root", default=protocol.DEFAULT_ROOT, help="persistent state (default %(default)s)")
    p.add_argument("--state", default=protocol.DEFAULT_STATE, help="runtime state (default %(default)s)")
    p.add_argument("--address", "-a", default=protocol.DEFAULT_ADDRESS, help="socket (default %(default)s)")
    p.add_argument("--runtime", default="", help="runc-compatible runtime binary (default: pyrunc)")
    p.add_argument("--snapshotter", default="", choices=["", "overlayfs", "native"],
                   help="default: overlayfs when available, else native")
    p.add_argument("--bridge", "-b", default="", help="the default network's bridge device (default pyctr0)")
    p.add_argument("--bip", default="", help="the default bridge's address/prefix (default 10.213.0.1/24)")
    p.add_argument("--default-address-pool", dest="pool", default="",
                   help="range user networks' /24 subnets are taken from (default 10.213.0.0/16)")
    p.add_argument("--cni-path", default="", help="directory of the CNI plugins (default /usr/lib/cni)")
    p.add_argument("--log-level", "-l", default="info",
                   choices=["trace", "debug", "info", "warn", "warning", "error", "fatal", "panic"])
    a = p.parse_args(argv)
    return Config(root=a.root, state=a.state, address=a.address, runtime=a.runtime, log_level=a.log_level,
                  snapshotter=a.snapshotter, bridge=a.bridge, bip=a.bip, pool=a.pool, cni_path=a.cni_path)


def _level(name: str) -> int:
    return {"trace": logging.DEBUG, "debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
            "warning": logging.WARNING, "error": logging.ERROR, "fatal": logging.CRITICAL,
            "panic": logging.CRITICAL}[name]


class _LogfmtFormatter(logging.Formatter):
    """containerd's log lines: time="RFC3339Nano" level=info msg="..." """

    def format(self, record: logging.LogRecord) -> str:
        import datetime
        import json

        when = datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
        msg = record.getMessage()
        if record.exc_info:
            msg += "\n" + self.formatException(record.exc_info)
        level = {"WARNING": "warning", "CRITICAL": "fatal"}.get(record.levelname, record.levelname.lower())
        return f'time="{when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}" level={level} msg={json.dumps(msg)}'


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LogfmtFormatter())
    logging.basicConfig(level=_level(config.log_level), handlers=[handler])
    try:
        daemon = Daemon(config)
        try:
            import uvloop  # faster loop when installed; the daemon works without it
            runner = uvloop.run
        except ImportError:
            runner = asyncio.run
        runner(daemon.run())
        # worker threads abandoned at stop must not hold the exit (the interpreter would join them)
        logging.shutdown()
        sys.stderr.flush()
        os._exit(0)
    except errdefs.Error as exc:
        print(f"pycontainerd: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"pycontainerd: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: one line for the user, the traceback in the debug log
        log.debug("fatal error", exc_info=True)
        print(f"pycontainerd: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
