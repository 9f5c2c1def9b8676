"""The daemon's API edge: a unix-socket server dispatching framed JSON requests to service objects.

Services register with `server.register("Images", obj)`. A request for `Images.List` calls
`obj.List(ctx, params)`; only methods whose name starts with an upper-case letter are reachable.
A handler may be:
  * `async def M(self, ctx, params) -> dict`            unary (None means `{}`)
  * `async def M(self, ctx, params)` with `yield`        server-streaming: each yielded dict is a
    `stream` frame; yielding `Result({...})` ends the call with that result (default `{}`)
  * `def M(self, ctx, params)` / a plain generator        run in a worker thread (blocking store work);
    they may poll `ctx.cancelled.is_set()`
Client-streaming frames reach the handler through `await ctx.recv()` (None after `close_send`);
`await ctx.send(dict)` pushes a stream frame from anywhere (e.g. a task copying stdout).
Exceptions become `{"code", "message"}` here and nowhere else (errdefs.to_wire).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from . import errdefs, protocol
from .aioframes import read_frame

log = logging.getLogger("pycontainerd.server")

# containerd's namespace grammar (namespaces/validate.go)
_NAMESPACE = re.compile(r"^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$")


class Result(dict):
    """Yielded by a streaming handler: the call's final result (ends the stream)."""


def validate_namespace(namespace: str) -> str:
    if not isinstance(namespace, str) or len(namespace) > 76 or not _NAMESPACE.match(namespace):
        raise errdefs.InvalidArgument(f"namespace {namespace!r}: invalid namespace name")
    return namespace


@dataclass
class Context:
    """What a handler knows about the call it serves."""

    id: int
    service: str
    method: str
    namespace: str
    daemon: Any
    connection: "Connection"
    cancelled: threading.Event = field(default_factory=threading.Event)
    _inbox: asyncio.Queue = field(default_factory=asyncio.Queue)
    _closed_send: bool = False
    replied: bool = False

    async def recv(self) -> dict | None:
        """The next client `stream` frame's payload; None once the client sent `close_send`."""
        if self._closed_send:
            return None
        frame = await self._inbox.get()
        if frame is None:
            self._closed_send = True
        return frame

    async def send(self, payload: dict) -> None:
        """Send one `stream` frame to the caller."""
        await self.connection.send({"id": self.id, "stream": payload})

    def send_threadsafe(self, payload: dict) -> None:
        """`send` for code running in a worker thread; waits until the frame is queued."""
        loop = self.connection.loop
        asyncio.run_coroutine_threadsafe(self.send(payload), loop).result()


class Connection:
    """One client connection: several calls in flight, each a task keyed by request id."""

    def __init__(self, server: "Server", reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.loop = asyncio.get_running_loop()
        self.calls: dict[int, tuple[asyncio.Task, Context]] = {}
        self._write_lock = asyncio.Lock()
        self._closed = False

    async def send(self, message: dict) -> None:
        if self._closed:
            return
        data = protocol.encode(message)
        async with self._write_lock:
            try:
                self.writer.write(data)
                await self.writer.drain()
            except (ConnectionError, RuntimeError):
                self._closed = True

    async def serve(self) -> None:
        try:
            while True:
                try:
                    frame = await read_frame(self.reader)
                except protocol.ProtocolError as exc:
                    log.warning("closing connection: %s", exc)
                    break
                except ConnectionError:
                    break
                if frame is None:
                    break
                self._dispatch(frame)
        finally:
            self._closed = True
            for task, ctx in list(self.calls.values()):
                ctx.cancelled.set()
                task.cancel()
            self.writer.close()

    def _dispatch(self, frame: dict) -> None:
        call_id = frame.get("id")
        if not isinstance(call_id, int):
            log.warning("dropping a frame without an integer id")
            return
        running = self.calls.get(call_id)
        if "service" in frame:
            if running is not None:
                asyncio.ensure_future(self.send({"id": call_id, "error": errdefs.to_wire(
                    errdefs.InvalidArgument(f"request id {call_id} is already in use on this connection"))}))
                return
            self._start(call_id, frame)
        elif running is None:
            return  # frames for a finished call are expected (races with its end)
        elif frame.get("cancel"):
            running[1].cancelled.set()
            running[0].cancel()
        elif frame.get("close_send"):
            running[1]._inbox.put_nowait(None)
        elif "stream" in frame:
            running[1]._inbox.put_nowait(frame["stream"] if isinstance(frame["stream"], dict) else {})

    def _start(self, call_id: int, frame: dict) -> None:
        ctx = Context(id=call_id, service=str(frame.get("service", "")), method=str(frame.get("method", "")),
                      namespace=frame.get("namespace") or protocol.DEFAULT_NAMESPACE,
                      daemon=self.server.daemon, connection=self)
        params = frame.get("params") or {}
        task = asyncio.ensure_future(self._run(ctx, params))
        self.calls[call_id] = (task, ctx)
        task.add_done_callback(lambda t: self._finished(t, ctx))

    def _finished(self, task: asyncio.Task, ctx: Context) -> None:
        self.calls.pop(ctx.id, None)
        if task.cancelled() and not ctx.replied:
            # cancelled before its first step: _run never ran to say so
            ctx.cancelled.set()
            err = errdefs.to_wire(errdefs.Canceled(f"{ctx.service}.{ctx.method}: canceled"))
            asyncio.ensure_future(self.send({"id": ctx.id, "error": err}))

    async def _run(self, ctx: Context, params: dict) -> None:
        try:
            result = await self.server.invoke(ctx, params)
            reply = {"id": ctx.id, "result": result}
        except asyncio.CancelledError:
            ctx.cancelled.set()
            reply = {"id": ctx.id, "error": errdefs.to_wire(errdefs.Canceled(f"{ctx.service}.{ctx.method}: canceled"))}
        except Exception as exc:  # the API edge: every failure becomes a status code
            if not isinstance(exc, (errdefs.Error,)) and errdefs.code_of(exc) == errdefs.UNKNOWN:
                log.exception("%s.%s failed", ctx.service, ctx.method)
            else:
                log.debug("%s.%s: %s", ctx.service, ctx.method, exc)
            reply = {"id": ctx.id, "error": errdefs.to_wire(exc)}
        ctx.replied = True
        await self.send(reply)


class Server:
    def __init__(self, daemon: Any = None) -> None:
        self.daemon = daemon
        self.services: dict[str, Any] = {}
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[asyncio.Task] = set()
        self.path = ""

    def register(self, name: str, handler: object) -> None:
        """Expose `handler`'s upper-case methods as `name.Method`."""
        if name in self.services:
            raise errdefs.AlreadyExists(f"service {name} is already registered")
        self.services[name] = handler

    def lookup(self, service: str, method: str):
        handler = self.services.get(service)
        if handler is None:
            raise errdefs.Unimplemented(f"unknown service {service!r}")
        fn = getattr(handler, method, None) if method[:1].isupper() else None
        if fn is None or not callable(fn):
            raise errdefs.Unimplemented(f"unknown method {service}.{method}")
        return fn

    async def invoke(self, ctx: Context, params: dict) -> dict:
        if not isinstance(params, dict):
            raise errdefs.InvalidArgument("params must be a JSON object")
        validate_namespace(ctx.namespace)
        fn = self.lookup(ctx.service, ctx.method)
        if inspect.isasyncgenfunction(fn):
            return await self._drain_async(ctx, fn(ctx, params))
        if inspect.iscoroutinefunction(fn):
            return _as_result(await fn(ctx, params))
        if inspect.isgeneratorfunction(fn):
            return await self._drain_sync(ctx, fn(ctx, params))
        return _as_result(await asyncio.to_thread(fn, ctx, params))

    async def _drain_async(self, ctx: Context, agen) -> dict:
        try:
            async for item in agen:
                if isinstance(item, Result):
                    return dict(item)
                await ctx.send(item)
            return {}
        finally:
            await agen.aclose()

    async def _drain_sync(self, ctx: Context, gen) -> dict:
        done = object()

        def step():
            try:
                return next(gen)
            except StopIteration as stop:
                return Result(stop.value or {}) if stop.value is not None else done

        try:
            while True:
                item = await asyncio.to_thread(step)
                if item is done:
                    return {}
                if isinstance(item, Result):
                    return dict(item)
                await ctx.send(item)
        except BaseException:
            ctx.cancelled.set()  # the worker thread may still be inside the generator: tell it to stop
            raise
        finally:
            try:
                await asyncio.to_thread(gen.close)
            except ValueError:
                pass  # still executing in its thread; it sees ctx.cancelled and ends on its own

    async def start(self, path: str, mode: int = 0o660) -> None:
        path = protocol.address_path(path)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        if os.path.exists(path):
            os.unlink(path)  # a stale socket from a crashed daemon; a live one was checked by the daemon
        old = os.umask(0o117)  # the socket is born 0660, never briefly world-writable
        try:
            self._server = await asyncio.start_unix_server(self._accept, path=path, limit=protocol.MAX_FRAME)
        finally:
            os.umask(old)
        os.chmod(path, mode)
        self.path = path

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._connections.add(task)
        try:
            await Connection(self, reader, writer).serve()
        except asyncio.CancelledError:
            pass  # the server is closing; asyncio's stream callback must not see a cancelled task
        finally:
            self._connections.discard(task)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            try:
                await asyncio.wait_for(self._server.wait_closed(), 2)
            except asyncio.TimeoutError:
                pass
            self._server = None
        if self.path:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


def _as_result(value: Any) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise errdefs.Internal(f"handler returned {type(value).__name__}, not an object")
    return value
