"""The daemon's task manager: one shim per container, found again when the daemon restarts.

`<state>/tasks/<ns>/<id>/` is a task's bundle: `config.json`, `rootfs/` (the snapshot mounted
there), `shim.json` (the shim's options), `shim.sock`, `shim.pid`, `init.pid`, `exit-status`.
Logs go to `<root>/containers/<ns>/<id>/<id>-json.log`. The runtime keeps its state under
`<state>/runtime/<ns>` (a namespace each, as containerd's `/run/containerd/runc/<ns>`).

Each task has a watcher (a `wait` call on its shim) that publishes `/tasks/exit` and runs the
exit hooks. Hooks other subsystems add (e.g. networking, restart policies), each called with
exceptions of its own: a `create_hooks` failure fails the Create (and `release_hooks` run):
  manager.create_hooks:  fn(namespace, id, spec, container) in a worker thread, before the runtime's
                         create: may edit `spec` (network namespace path, /etc/hosts mounts, …);
                         may return a callable that finishes the work (CNI ADD) in another worker
                         thread while the shim runs the runtime's create — done before Create returns
  manager.release_hooks: fn(namespace, id) in a worker thread, once the task is gone (deleted, or
                         found dead at daemon start); must be idempotent
  manager.exit_hooks:    fn(namespace, id, exit) on the event loop, once per exit (not again after a
                         daemon restart), e.g. restart policies or auto-remove
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import select
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator, Callable

from . import errdefs, ocispec, protocol
from . import mounts as mounts_mod
from .logs import parse_size, rfc3339nano
from .shimfork import ShimForker, ZygoteUnavailable
from .timing import stage

log = logging.getLogger("pycontainerd.tasks")

SHIM_MAIN = Path(__file__).resolve().parent / "shim" / "main.py"
SHIM_START_TIMEOUT = 90


class ShimClient:
    """An asyncio client of one shim socket, calls multiplexed by id."""

    def __init__(self, bundle: Path) -> None:
        self.bundle = bundle
        self._ids = itertools.count(1)
        self._calls: dict[int, asyncio.Queue] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task | None = None
        self.closed = False

    async def connect(self) -> "ShimClient":
        # through /proc/self/fd: a bundle path may be longer than a socket address may be (108 bytes)
        dirfd = os.open(self.bundle, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            reader, writer = await asyncio.open_unix_connection(f"/proc/self/fd/{dirfd}/shim.sock",
                                                                limit=protocol.MAX_FRAME)
        except OSError as exc:
            raise errdefs.Unavailable(f"shim of {self.bundle.name}: {exc.strerror or exc}") from None
        finally:
            os.close(dirfd)
        self._writer = writer
        self._reader_task = asyncio.ensure_future(self._read(reader))
        return self

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                frame = await protocol.read_frame(reader)
                if frame is None:
                    break
                queue = self._calls.get(frame.get("id"))
                if queue is not None:
                    queue.put_nowait(frame)
        except (protocol.ProtocolError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.closed = True
            for queue in self._calls.values():
                queue.put_nowait(None)

    def _send(self, message: dict) -> None:
        if self.closed or self._writer is None:
            raise errdefs.Unavailable(f"shim of {self.bundle.name}: connection closed")
        self._writer.write(protocol.encode(message))

    async def stream(self, method: str, params: dict | None = None,
                     on_open: Callable[[int], None] | None = None) -> AsyncIterator[dict]:
        """Stream payloads of a call; the final result is yielded as `{"__result__": {...}}`."""
        call_id = next(self._ids)
        queue: asyncio.Queue = asyncio.Queue()
        self._calls[call_id] = queue
        finished = False
        try:
            self._send({"id": call_id, "method": method, "params": params or {}})
            if on_open:
                on_open(call_id)
            while True:
                frame = await queue.get()
                if frame is None:
                    raise errdefs.Unavailable(f"shim of {self.bundle.name}: connection closed during {method}")
                if "stream" in frame:
                    yield frame["stream"]
                    continue
                finished = True
                if "error" in frame:
                    raise errdefs.from_wire(frame["error"])
                yield {"__result__": frame.get("result") or {}}
                return
        finally:
            self._calls.pop(call_id, None)
            if not finished and not self.closed:
                try:
                    self._send({"id": call_id, "cancel": True})
                except errdefs.Error:
                    pass

    def send_frame(self, call_id: int, frame: dict) -> None:
        self._send({"id": call_id, **frame})

    async def call(self, method: str, params: dict | None = None) -> dict:
        async for item in self.stream(method, params):
            if "__result__" in item:
                return item["__result__"]
        return {}

    async def close(self) -> None:
        self.closed = True
        if self._writer is not None:
            self._writer.close()
        if self._reader_task is not None:
            self._reader_task.cancel()


@dataclass
class Task:
    namespace: str
    id: str
    bundle: Path
    client: ShimClient
    pid: int = 0
    terminal: bool = False
    stdin: bool = False
    exit: dict | None = None
    watcher: asyncio.Task | None = None
    exited: asyncio.Event = field(default_factory=asyncio.Event)


def _mount(mounts: list[dict], target: Path) -> None:
    for m in mounts:
        try:
            mounts_mod.mount(m.get("type", ""), m.get("source", "none"), str(target), list(m.get("options") or []))
        except OSError as exc:
            raise errdefs.Internal(f"{exc.strerror}") from None


def unmount_all(target: Path) -> None:
    """Unmount everything at/below `target` (deepest first); lazily if busy."""
    try:
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4].replace("\\040", " ") for line in f]
    except OSError:
        return
    prefix = str(target)
    for mp in sorted({p for p in points if p == prefix or p.startswith(prefix + "/")}, key=lambda p: -p.count("/")):
        try:
            mounts_mod.unmount(mp)
        except OSError:
            try:
                mounts_mod.unmount(mp, lazy=True)
            except OSError:
                pass


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_gone(pid: int, timeout: float) -> None:
    """Until `pid` (not our child) exits: woken by its pidfd at once, polled where there is none."""
    try:
        fd = os.pidfd_open(pid)
    except (OSError, AttributeError):
        fd = -1
    if fd >= 0:
        try:
            select.select([fd], [], [], timeout)
        finally:
            os.close(fd)
        return
    deadline = time.monotonic() + timeout
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)


class TaskManager:
    def __init__(self, daemon) -> None:
        self.daemon = daemon
        self.root = Path(daemon.state) / "tasks"
        self.tasks: dict[tuple[str, str], Task] = {}
        self.exit_hooks: list[Callable[[str, str, dict], None]] = []
        self.create_hooks: list[Callable[[str, str, dict, dict], None]] = []
        self.release_hooks: list[Callable[[str, str], None]] = []
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self.forker = ShimForker(Path(daemon.state))

    # -- paths -----------------------------------------------------------------------------------
    def bundle(self, namespace: str, cid: str) -> Path:
        return self.root / namespace / cid

    def runtime_root(self, namespace: str) -> Path:
        return Path(self.daemon.state) / "runtime" / namespace

    def log_path(self, namespace: str, cid: str) -> Path:
        return Path(self.daemon.root) / "containers" / namespace / cid / f"{cid}-json.log"

    def lock(self, namespace: str, cid: str) -> asyncio.Lock:
        return self._locks.setdefault((namespace, cid), asyncio.Lock())

    def get(self, namespace: str, cid: str) -> Task:
        task = self.tasks.get((namespace, cid))
        if task is None:
            raise errdefs.NotFound(f"task {cid}: no running task found")
        return task

    # -- create ----------------------------------------------------------------------------------
    async def create(self, namespace: str, cid: str, params: dict) -> Task:
        async with self.lock(namespace, cid):
            if (namespace, cid) in self.tasks:
                raise errdefs.AlreadyExists(f"task {cid}: already exists")
            container = self.daemon.containers.get(namespace, cid)
            task, finishers = await asyncio.to_thread(self._prepare, namespace, cid, container, params)
            with stage(log, "task %s: shim start + runtime create (with the hooks' rest)", cid):
                results = await asyncio.gather(self._start_shim(task), *[asyncio.to_thread(f) for f in finishers],
                                               return_exceptions=True)
            errors = [r for r in results[1:] + results[:1] if isinstance(r, BaseException)]
            if errors:  # a hook's error first: it is why the runtime's create was not worth it
                await asyncio.to_thread(self._cleanup_dead, namespace, cid)
                raise errors[0]
            task.pid = results[0]
            self.tasks[(namespace, cid)] = task
            try:
                await task.client.connect()
            except errdefs.Error:
                self.tasks.pop((namespace, cid), None)
                await asyncio.to_thread(self._cleanup_dead, namespace, cid)
                raise
            task.watcher = asyncio.ensure_future(self._watch(task))
        self.daemon.publish(namespace, "/tasks/create", {"container_id": cid, "bundle": str(task.bundle),
                                                         "pid": task.pid, "io": {"terminal": task.terminal}})
        return task

    async def _start_shim(self, task: Task) -> int:
        """Start the task's shim (forked by the zygote; a fresh interpreter when that fails): the pid."""
        try:
            reply = await self.forker.start(task.bundle, SHIM_START_TIMEOUT)
        except asyncio.TimeoutError:
            raise errdefs.DeadlineExceeded(f"task {task.id}: shim did not start in {SHIM_START_TIMEOUT}s") from None
        except ZygoteUnavailable as exc:
            log.warning("task %s: %s; starting the shim as a script", task.id, exc)
            reply = await asyncio.to_thread(self._run_shim_script, task)
        if reply.get("error"):
            raise errdefs.from_wire({"code": reply.get("code", 2), "message": reply["error"]})
        return int(reply.get("pid", 0))

    def _run_shim_script(self, task: Task) -> dict:
        try:
            p = subprocess.run([sys.executable, str(SHIM_MAIN), str(task.bundle)], capture_output=True,
                               timeout=SHIM_START_TIMEOUT, stdin=subprocess.DEVNULL, cwd="/")
        except subprocess.TimeoutExpired:
            raise errdefs.DeadlineExceeded(f"task {task.id}: shim did not start in {SHIM_START_TIMEOUT}s") from None
        try:
            return json.loads(p.stdout.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise errdefs.Internal(f"task {task.id}: shim failed: {p.stderr.decode(errors='replace').strip()[-300:]}") \
                from None

    def _prepare(self, namespace: str, cid: str, container: dict,
                 params: dict) -> tuple[Task, list[Callable[[], None]]]:
        """The bundle: rootfs mounted, create hooks run, config.json and shim.json written; the hooks'
        finishers, to run while the runtime creates the container."""
        bundle = self.bundle(namespace, cid)
        if bundle.exists():
            self._cleanup_dead(namespace, cid)  # a leftover of a task whose shim is gone
        spec = json.loads(json.dumps(container.get("spec") or {}))
        if not spec.get("process"):
            raise errdefs.InvalidArgument(f"container {cid}: its spec has no process")
        rootfs = bundle / "rootfs"
        mounts = params.get("rootfs")
        if mounts is None and container.get("snapshot_key"):
            mounts = self.daemon.snapshots.mounts(namespace, container["snapshot_key"])
        bundle.mkdir(parents=True, mode=0o711)
        try:
            if mounts:
                rootfs.mkdir(mode=0o755)
                with stage(log, "task %s: rootfs mount", cid):
                    _mount(mounts, rootfs)
                spec.setdefault("root", {})["path"] = "rootfs"
            elif not os.path.isabs((spec.get("root") or {}).get("path", "")):
                raise errdefs.InvalidArgument(f"container {cid}: no snapshot and no absolute root.path in its spec")
            terminal = bool(params.get("terminal", spec["process"].get("terminal", False)))
            stdin = bool(params.get("stdin", False)) or terminal
            spec["process"]["terminal"] = terminal
            ocispec.finalize(spec, spec["root"]["path"] if os.path.isabs(spec["root"]["path"]) else rootfs)
            finishers = []
            for hook in list(self.create_hooks):
                with stage(log, "task %s: create hook %s", cid, getattr(hook, "__qualname__", hook)):
                    finish = hook(namespace, cid, spec, container)
                if callable(finish):
                    finishers.append(finish)
            (bundle / "config.json").write_text(json.dumps(spec, indent=1))
            logopts = params.get("log") or {}
            log_path = "" if logopts.get("driver") == "none" else str(self.log_path(namespace, cid))
            runtime_root = self.runtime_root(namespace)
            runtime_root.mkdir(parents=True, exist_ok=True, mode=0o711)
            shim_cfg = {"id": cid, "namespace": namespace, "runtime": self.daemon.runtime,
                        "runtime_root": str(runtime_root), "log_path": log_path,
                        "log_max_size": parse_size(logopts.get("max_size") or logopts.get("max-size")),
                        "log_max_file": int(logopts.get("max_file") or logopts.get("max-file") or 1),
                        "stdin": stdin, "terminal": terminal, "daemon": self.daemon.address}
            (bundle / "shim.json").write_text(json.dumps(shim_cfg))
        except BaseException:
            self._cleanup_dead(namespace, cid)
            raise
        return Task(namespace, cid, bundle, ShimClient(bundle), terminal=terminal, stdin=stdin), finishers

    # -- exits -----------------------------------------------------------------------------------
    async def _watch(self, task: Task) -> None:
        try:
            result = await task.client.call("wait", {})
        except asyncio.CancelledError:
            return
        except errdefs.Error as exc:
            # the shim is gone (killed): the container went with it or is unreachable now
            result = self._read_exit(task.bundle) or {"exit_status": 255, "exited_at": _now(), "pid": task.pid,
                                                     "error": str(exc)}
        task.exit = result
        task.exited.set()
        log.debug("task %s: exit seen (%s)", task.id, result.get("exited_at"))
        marker = task.bundle / "exit-published"
        if marker.exists():
            return  # seen by an earlier daemon: published, and its hooks ran
        try:
            marker.write_text("1")
        except OSError:
            pass
        if result.get("oom_killed"):
            self.daemon.publish(task.namespace, "/tasks/oom", {"container_id": task.id})
        self.daemon.publish(task.namespace, "/tasks/exit", {
            "container_id": task.id, "id": task.id, "pid": result.get("pid", task.pid),
            "exit_status": result.get("exit_status"), "exited_at": result.get("exited_at")})
        for hook in list(self.exit_hooks):
            try:
                hook(task.namespace, task.id, result)
            except Exception:
                log.exception("exit hook for %s failed", task.id)

    @staticmethod
    def _read_exit(bundle: Path) -> dict | None:
        try:
            return json.loads((bundle / "exit-status").read_text())
        except (OSError, ValueError):
            return None

    # -- recovery --------------------------------------------------------------------------------
    async def recover(self) -> None:
        """After a daemon (re)start: reconnect to every live shim, clean up after dead ones."""
        if not self.root.is_dir():
            return
        for ns_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            for bundle in sorted(p for p in ns_dir.iterdir() if p.is_dir()):
                namespace, cid = ns_dir.name, bundle.name
                client = ShimClient(bundle)
                try:
                    await client.connect()
                    state = await asyncio.wait_for(client.call("state", {}), 10)
                except (errdefs.Error, asyncio.TimeoutError) as exc:
                    log.info("task %s/%s: shim gone (%s); cleaning up", namespace, cid, exc)
                    await client.close()
                    await asyncio.to_thread(self._cleanup_dead, namespace, cid)
                    continue
                task = Task(namespace, cid, bundle, client, pid=int(state.get("pid") or 0),
                            terminal=bool(state.get("terminal")), stdin=bool(state.get("stdin")))
                self.tasks[(namespace, cid)] = task
                task.watcher = asyncio.ensure_future(self._watch(task))
                log.info("task %s/%s: reconnected to its shim (%s)", namespace, cid, state.get("status"))

    def _cleanup_dead(self, namespace: str, cid: str, runtime_delete: bool = True, release: bool = True) -> None:
        """Remove what a task left when its shim is not there: runtime state, mounts, the bundle (and
        what the release hooks hold, unless the caller runs them)."""
        bundle = self.bundle(namespace, cid)
        try:
            pid = int((bundle / "shim.pid").read_text())
            if _pid_alive(pid):
                os.kill(pid, 9)
        except (OSError, ValueError):
            pass
        if runtime_delete:
            with stage(log, "task %s: runtime delete", cid):
                subprocess.run([self.daemon.runtime, "--root", str(self.runtime_root(namespace)), "delete", "--force",
                            cid], capture_output=True, stdin=subprocess.DEVNULL)
        with stage(log, "task %s: unmount", cid):
            unmount_all(bundle / "rootfs")
        with stage(log, "task %s: bundle removal", cid):
            shutil.rmtree(bundle, ignore_errors=True)
        if release:
            self._release(namespace, cid)

    def _release(self, namespace: str, cid: str) -> None:
        """The release hooks (networking, …), each with exceptions of its own."""
        for hook in list(self.release_hooks):
            try:
                with stage(log, "task %s: release hook %s", cid, getattr(hook, "__qualname__", hook)):
                    hook(namespace, cid)
            except Exception:
                log.exception("release hook for %s/%s failed", namespace, cid)

    async def close(self) -> None:
        """Daemon shutdown: stop watching; the shims and their containers keep running."""
        for task in list(self.tasks.values()):
            if task.watcher is not None:
                task.watcher.cancel()
            await task.client.close()
        self.tasks.clear()
        await asyncio.to_thread(self.forker.stop)

    # -- operations --------------------------------------------------------------------------------
    async def delete(self, namespace: str, cid: str, force: bool = False) -> dict:
        async with self.lock(namespace, cid):
            task = self.get(namespace, cid)
            if force and task.exit is None:
                try:
                    await task.client.call("kill", {"signal": 9, "all": True})
                except errdefs.Error:
                    pass
                try:
                    await asyncio.wait_for(task.exited.wait(), 10)
                except asyncio.TimeoutError:
                    pass
            # an exited task's networking is released while the shim runs the runtime's delete
            release = asyncio.ensure_future(asyncio.to_thread(self._release, namespace, cid)) \
                if task.exit is not None else None
            shim_deleted = True
            try:
                result = await task.client.call("delete", {"force": force})
            except errdefs.Unavailable:
                shim_deleted = False  # the shim is gone: the runtime's state is ours to remove
                result = self._read_exit(task.bundle) or {"exit_status": 255, "exited_at": _now(), "pid": task.pid}
            except BaseException:
                if release is not None:
                    await release
                raise
            if task.watcher is not None and not task.watcher.done():
                try:
                    await asyncio.wait_for(asyncio.shield(task.watcher), 3)
                except (asyncio.TimeoutError, Exception):
                    task.watcher.cancel()
            await task.client.close()
            self.tasks.pop((namespace, cid), None)
            await asyncio.to_thread(self._finish_delete, namespace, cid, not shim_deleted, release is None)
            if release is not None:
                await release
        self.daemon.publish(namespace, "/tasks/delete", {"container_id": cid, "id": cid, "pid": result.get("pid"),
                                                         "exit_status": result.get("exit_status"),
                                                         "exited_at": result.get("exited_at")})
        return result

    def _finish_delete(self, namespace: str, cid: str, runtime_delete: bool, release: bool) -> None:
        bundle = self.bundle(namespace, cid)
        try:
            pid = int((bundle / "shim.pid").read_text())
        except (OSError, ValueError):
            pid = 0
        if pid:
            with stage(log, "task %s: shim exit", cid):
                _wait_gone(pid, 3.0)
        self._cleanup_dead(namespace, cid, runtime_delete, release)

    async def state(self, namespace: str, cid: str, exec_id: str = "") -> dict:
        task = self.get(namespace, cid)
        try:
            st = await task.client.call("state", {"exec_id": exec_id})
        except errdefs.Unavailable:
            st = {"id": exec_id, "pid": task.pid, "status": "unknown", **(task.exit or {})}
        return {"id": exec_id or cid, "container_id": cid, "pid": st.get("pid", 0), "status": st.get("status"),
                "exit_status": st.get("exit_status"), "exited_at": st.get("exited_at") or "",
                "terminal": st.get("terminal", task.terminal), "stdin": st.get("stdin", task.stdin),
                "oom_killed": bool(st.get("oom_killed")),
                "bundle": str(task.bundle), **({"execs": st["execs"]} if "execs" in st else {})}

    def exec_process(self, namespace: str, cid: str, params: dict) -> dict:
        """An exec's OCI process: the container's process with the caller's fields over it (as
        containerd's client builds it), `user` names resolved in the container's rootfs."""
        container = self.daemon.containers.get(namespace, cid)
        base = json.loads(json.dumps((container.get("spec") or {}).get("process") or {}))
        given = params.get("spec") or params.get("process") or {}
        if isinstance(given, list):
            given = {"args": given}
        base.update({k: v for k, v in given.items() if k != "user"})
        base["terminal"] = bool(params.get("terminal", given.get("terminal", False)))
        user = given.get("user")
        if isinstance(user, str):
            base["user"] = ocispec.user_for(user, self.bundle(namespace, cid) / "rootfs")
        elif isinstance(user, dict):
            base["user"] = user
        if params.get("env"):
            base["env"] = ocispec.merge_env(base.get("env") or [], params["env"])
        if params.get("cwd"):
            base["cwd"] = params["cwd"]
        if not base.get("args"):
            raise errdefs.InvalidArgument("exec: the process needs args")
        return base


def _now() -> str:
    return rfc3339nano()
