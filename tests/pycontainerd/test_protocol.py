"""The wire protocol, the server and the client, in process (no daemon): framing, multiplexing,
streams both ways, cancellation, errors as codes, the not-running message."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from pathlib import Path

import pytest

from pycontainerd import errdefs, protocol
from pycontainerd.client import Client
from pycontainerd.server import Result, Server


class Echo:
    def __init__(self) -> None:
        self.cancelled = threading.Event()

    async def Hello(self, ctx, params):
        return {"hello": params.get("name", ""), "namespace": ctx.namespace}

    async def Sleep(self, ctx, params):
        await asyncio.sleep(params["seconds"])
        return {"slept": params["seconds"]}

    async def Count(self, ctx, params):
        for i in range(params["n"]):
            yield {"i": i}
        yield Result({"total": params["n"]})

    async def Upper(self, ctx, params):
        """Duplex: each client frame back upper-cased; the result counts them."""
        n = 0
        while (frame := await ctx.recv()) is not None:
            n += 1
            data = protocol.b64decode(frame["data"]).upper()
            await ctx.send({"data": protocol.b64encode(data)})
        return {"frames": n}

    async def Forever(self, ctx, params):
        try:
            while True:
                yield {"tick": True}
                await asyncio.sleep(0.01)
        finally:
            self.cancelled.set()

    async def Missing(self, ctx, params):
        raise errdefs.NotFound("thing \"x\": not found")

    async def Broken(self, ctx, params):
        raise RuntimeError("boom")

    def Blocking(self, ctx, params):
        time.sleep(0.05)
        return {"thread": threading.current_thread().name != "MainThread"}

    def Chunks(self, ctx, params):
        for i in range(3):
            yield {"chunk": i}


@pytest.fixture
def server(tmp_path: Path):
    path = str(Path("/tmp") / f"pcd-test-{tmp_path.name[-20:]}-{time.monotonic_ns()}.sock")
    loop = asyncio.new_event_loop()
    srv = Server()
    echo = Echo()
    srv.register("Echo", echo)
    ready = threading.Event()

    def run():
        asyncio.set_event_loop(loop)
        loop.run_until_complete(srv.start(path))
        ready.set()
        loop.run_forever()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    assert ready.wait(5)
    try:
        yield path, echo
    finally:
        asyncio.run_coroutine_threadsafe(srv.close(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        t.join(5)


def test_frame_roundtrip_and_limits():
    data = protocol.encode({"id": 1, "result": {"x": "ü"}})
    assert data[:4] == struct.pack(">I", len(data) - 4)
    assert protocol.decode(data[4:]) == {"id": 1, "result": {"x": "ü"}}
    with pytest.raises(protocol.ProtocolError):
        protocol.decode(b"[1]")
    with pytest.raises(protocol.ProtocolError):
        protocol.decode(b"\xff")


def test_socket_mode_is_0660(server):
    path, _ = server
    assert oct(Path(path).stat().st_mode & 0o777) == "0o660"


def test_unary_and_namespace(server):
    path, _ = server
    with Client(path, namespace="ns1") as c:
        assert c.call("Echo", "Hello", {"name": "x"}) == {"hello": "x", "namespace": "ns1"}
        assert c.call("Echo", "Hello", {}, namespace="other")["namespace"] == "other"
        with pytest.raises(errdefs.InvalidArgument):
            c.call("Echo", "Hello", {}, namespace="bad ns!")


def test_errors_map_to_codes_and_back(server):
    path, _ = server
    with Client(path) as c:
        with pytest.raises(errdefs.NotFound, match='thing "x": not found') as e:
            c.call("Echo", "Missing")
        assert e.value.code == 5
        with pytest.raises(errdefs.Unknown, match="boom"):
            c.call("Echo", "Broken")
        with pytest.raises(errdefs.Unimplemented):
            c.call("Nope", "X")
        with pytest.raises(errdefs.Unimplemented):
            c.call("Echo", "_private")
    # and the raw frame carries the integer code
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.sendall(protocol.encode({"id": 9, "service": "Echo", "method": "Missing", "params": {}}))
    assert protocol.recv_frame(s) == {"id": 9, "error": {"code": 5, "message": 'thing "x": not found'}}
    s.close()


def test_multiplexing_one_connection_many_threads(server):
    path, _ = server
    with Client(path) as c:
        results = {}

        def worker(i):
            results[i] = c.call("Echo", "Sleep", {"seconds": 0.3})

        start = time.monotonic()
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - start
        assert len(results) == 10 and all(r == {"slept": 0.3} for r in results.values())
        assert elapsed < 2.0, f"calls were serialised ({elapsed:.2f}s for 10 x 0.3s)"


def test_server_stream_and_result(server):
    path, _ = server
    with Client(path) as c:
        assert list(c.stream("Echo", "Count", {"n": 5})) == [{"i": i} for i in range(5)]
        call = c.duplex("Echo", "Count", {"n": 3})
        assert call.result() == {"total": 3}
        assert list(c.stream("Echo", "Chunks")) == [{"chunk": i} for i in range(3)]
        assert c.call("Echo", "Blocking") == {"thread": True}


def test_stream_raises_at_end(server):
    path, _ = server
    with Client(path) as c:
        with pytest.raises(errdefs.NotFound):
            list(c.stream("Echo", "Missing"))


def test_duplex(server):
    path, _ = server
    with Client(path) as c:
        call = c.duplex("Echo", "Upper")
        call.send_data(b"abc")
        call.send_data(b"def")
        call.close_send()
        got = [protocol.b64decode(f["data"]) for f in call]
        assert got == [b"ABC", b"DEF"]
        assert call.result() == {"frames": 2}


def test_cancel_stops_handler(server):
    path, echo = server
    with Client(path) as c:
        it = c.stream("Echo", "Forever")
        assert next(it) == {"tick": True}
        it.close()  # leaving the loop cancels the call in the server
        assert echo.cancelled.wait(5)
        call = c.duplex("Echo", "Sleep", {"seconds": 30})
        call.cancel()
        with pytest.raises(errdefs.Canceled):
            call.result(timeout=5)
        assert c.call("Echo", "Hello", {"name": "still works"})["hello"] == "still works"


def test_disconnect_cancels_calls(server):
    path, echo = server
    c = Client(path)
    it = c.stream("Echo", "Forever")
    next(it)
    c.close()
    assert echo.cancelled.wait(5)


def test_not_running_message(tmp_path):
    sock = tmp_path / "none.sock"
    with pytest.raises(errdefs.Unavailable) as e:
        Client(str(sock)).call("Version", "Version")
    assert str(e.value) == (f"Cannot connect to the pycontainerd daemon at unix://{sock}. "
                            "Is the daemon running?")


def test_garbage_frame_closes_connection_only(server):
    path, _ = server
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.sendall(struct.pack(">I", 3) + b"{{{")
    s.settimeout(5)
    assert s.recv(10) == b""
    s.close()
    with Client(path) as c:
        assert c.call("Echo", "Hello", {"name": "ok"})["hello"] == "ok"
