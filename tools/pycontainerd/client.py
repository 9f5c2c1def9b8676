"""A thread-safe client for the pycontainerd socket: unary calls, server streams and duplex streams.

    with Client("/run/pycontainerd/pycontainerd.sock", namespace="default") as c:
        c.call("Images", "List", {})                         # -> dict, or raises an errdefs class
        for event in c.stream("Events", "Subscribe", {}):   # stream frames; raises at the end on error
            ...
        call = c.duplex("Tasks", "Attach", {"id": "x"})    # .send({...}), .close_send(), iterate, .result()

All calls share one connection (multiplexed by id); a reader thread routes replies to their call.
"""

from __future__ import annotations

import _socket
import itertools
import threading
from _queue import Empty, SimpleQueue

from . import errdefs, protocol

# _socket and _queue rather than socket and queue: the same objects without the Python wrappers' imports
# (enum, selectors, heapq), a few ms of every pyctr command
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterator

_END = object()


def not_running_message(address: str) -> str:
    return (f"Cannot connect to the pycontainerd daemon at {protocol.address_url(address)}. "
            "Is the daemon running?")


class Call:
    """One in-flight request: stream frames arrive on a queue, then a result or an error."""

    def __init__(self, client: "Client", call_id: int) -> None:
        self._client = client
        self.id = call_id
        self._frames: SimpleQueue = SimpleQueue()
        self._result: dict | None = None
        self._error: Exception | None = None
        self.done = False

    # -- sending (client-streaming) ---------------------------------------------------------
    def send(self, payload: dict) -> None:
        self._client._send({"id": self.id, "stream": payload})

    def send_data(self, data: bytes, **extra) -> None:
        self.send({"data": protocol.b64encode(data), **extra})

    def close_send(self) -> None:
        self._client._send({"id": self.id, "close_send": True})

    def cancel(self) -> None:
        if not self.done:
            try:
                self._client._send({"id": self.id, "cancel": True})
            except errdefs.Error:
                pass

    # -- receiving --------------------------------------------------------------------------
    def _deliver(self, frame: dict) -> None:
        self._frames.put(frame)

    def _next(self, timeout: float | None = None):
        """The next stream payload, or _END once the call finished (result or error stored)."""
        if self.done:
            return _END
        try:
            frame = self._frames.get(timeout=timeout)
        except Empty:
            self.cancel()
            raise errdefs.DeadlineExceeded(f"no reply from the daemon within {timeout} s") from None
        if "stream" in frame:
            return frame["stream"]
        self.done = True
        self._client._forget(self.id)
        if "error" in frame:
            self._error = errdefs.from_wire(frame["error"])
        else:
            self._result = frame.get("result") or {}
        return _END

    def __iter__(self) -> Iterator[dict]:
        """Stream payloads until the call ends; raises the call's error at the end."""
        try:
            while True:
                item = self._next()
                if item is _END:
                    break
                yield item
        except GeneratorExit:
            self.cancel()
            raise
        if self._error is not None:
            raise self._error

    def result(self, timeout: float | None = None) -> dict:
        """Wait for the end (dropping stream frames not consumed) and return the result or raise."""
        while self._next(timeout) is not _END:
            pass
        if self._error is not None:
            raise self._error
        return self._result or {}


class Client:
    def __init__(self, address: str = protocol.DEFAULT_ADDRESS, namespace: str = protocol.DEFAULT_NAMESPACE,
                 timeout: float | None = None) -> None:
        self.address = protocol.address_path(address)
        self.namespace = namespace
        self.timeout = timeout  # default for unary calls; None waits as long as the daemon works
        self._lock = threading.Lock()       # guards connection state and the calls table
        self._send_lock = threading.Lock()  # one frame at a time on the socket
        self._sock: _socket.socket | None = None
        self._reader: threading.Thread | None = None
        self._calls: dict[int, Call] = {}
        self._ids = itertools.count(1)

    # -- connection -------------------------------------------------------------------------
    def connect(self) -> "Client":
        with self._lock:
            self._ensure_connected()
        return self

    def _ensure_connected(self) -> _socket.socket:
        if self._sock is not None:
            return self._sock
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            sock.connect(self.address)
        except OSError:
            sock.close()
            raise errdefs.Unavailable(not_running_message(self.address)) from None
        self._sock = sock
        self._reader = threading.Thread(target=self._read_loop, args=(sock,), name="pycontainerd-client",
                                        daemon=True)
        self._reader.start()
        return sock

    def _read_loop(self, sock: _socket.socket) -> None:
        reason = "the daemon closed the connection"
        try:
            while True:
                frame = protocol.recv_frame(sock)
                if frame is None:
                    break
                with self._lock:
                    call = self._calls.get(frame.get("id"))
                if call is not None:
                    call._deliver(frame)
        except (OSError, protocol.ProtocolError) as exc:
            reason = f"connection to the daemon lost: {exc}"
        with self._lock:
            if self._sock is sock:
                self._sock = None
            pending, self._calls = self._calls, {}
        try:
            sock.close()
        except OSError:
            pass
        for call in pending.values():
            call._deliver({"id": call.id, "error": {"code": errdefs.UNAVAILABLE, "message": reason}})

    def close(self) -> None:
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(_socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(5)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _send(self, message: dict) -> None:
        data = protocol.encode(message)
        with self._lock:
            sock = self._sock
        if sock is None:
            raise errdefs.Unavailable("connection to the daemon lost")
        with self._send_lock:
            try:
                sock.sendall(data)
            except OSError as exc:
                raise errdefs.Unavailable(f"connection to the daemon lost: {exc}") from None

    def _forget(self, call_id: int) -> None:
        with self._lock:
            self._calls.pop(call_id, None)

    # -- calls ------------------------------------------------------------------------------
    def _start(self, service: str, method: str, params: dict | None, namespace: str | None) -> Call:
        with self._lock:
            self._ensure_connected()
            call = Call(self, next(self._ids))
            self._calls[call.id] = call
        try:
            self._send({"id": call.id, "service": service, "method": method, "params": params or {},
                        "namespace": namespace or self.namespace})
        except errdefs.Error:
            self._forget(call.id)
            raise
        return call

    def call(self, service: str, method: str, params: dict | None = None, namespace: str | None = None,
             timeout: float | None = None) -> dict:
        """A unary call: the result object, or the daemon's error raised as its errdefs class."""
        return self._start(service, method, params, namespace).result(timeout if timeout is not None
                                                                       else self.timeout)

    def stream(self, service: str, method: str, params: dict | None = None,
               namespace: str | None = None) -> Iterator[dict]:
        """A server-streaming call: yields each stream payload; raises at the end on error.
        Leaving the loop early cancels the call in the daemon."""
        return iter(self._start(service, method, params, namespace))

    def duplex(self, service: str, method: str, params: dict | None = None, namespace: str | None = None) -> Call:
        """A call the caller both feeds (`send`, `close_send`) and reads (iterate, `result`)."""
        return self._start(service, method, params, namespace)
