"""SocketBody: an upload body read straight from the connection's socket by a worker thread.

The HTTP layer's path costs three copies and an event-loop round trip per 256 KiB read (uvloop's read buffer,
a bytes object per read, the parser's body slice); reading with recv_into() into one reusable buffer in a
worker thread costs one copy and no Python objects per read. A driver that can use it (the filesystem driver)
calls `readinto` in its thread; any other driver simply iterates it asynchronously.
"""

from __future__ import annotations

import asyncio
import socket
from typing import AsyncIterator


class SocketBody:
    """`head` (what the HTTP layer had already buffered) followed by `remaining` bytes still in `sock`.

    `sock` is a dup of the connection's socket, non-blocking with a timeout so a stalled client cannot hold
    a worker thread for ever; `abort()` (from the event loop, e.g. on cancellation) wakes a blocked reader."""

    READ_TIMEOUT = 120.0   # seconds a client may leave the connection silent mid-body

    def __init__(self, head: bytes, sock: socket.socket, remaining: int) -> None:
        self.head = head
        self.sock = sock
        self.remaining = remaining
        self._eof = False
        self._why = "client closed the connection"
        self.sock.settimeout(self.READ_TIMEOUT)

    def readinto(self, view: memoryview) -> int:
        """Blocking (call it from a worker thread): fill up to len(view) bytes, at most `remaining`; returns
        the count, > 0 while anything remains. A client that hangs up early raises ConnectionResetError once
        what it did send has been returned (an upload keeps what arrived, as Distribution's does)."""
        want = min(len(view), self.remaining)
        got = 0
        while got < want and not self._eof:
            try:
                n = self.sock.recv_into(view[got:want])
            except TimeoutError:
                self._eof, self._why = True, f"client sent nothing for {self.READ_TIMEOUT:g}s"
                break
            if n == 0:
                self._eof = True
            got += n
        self.remaining -= got
        if got == 0 and want:
            raise ConnectionResetError(f"{self._why} with {self.remaining} body bytes to come")
        return got

    def abort(self) -> None:
        """Make a blocked readinto() return (EOF) at once; the connection is abandoned anyway."""
        try:
            self.sock.shutdown(socket.SHUT_RD)
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()  # the dup only; the transport still owns the connection

    async def __aiter__(self) -> AsyncIterator[bytes]:
        """For drivers that take chunks: the head, then 4 MiB reads in the default executor."""
        if self.head:
            yield self.head
        loop = asyncio.get_running_loop()
        while self.remaining:
            buf = bytearray(min(4 << 20, self.remaining))
            n = await loop.run_in_executor(None, self.readinto, memoryview(buf))
            yield bytes(buf[:n]) if n < len(buf) else bytes(buf)
