"""The wire format shared by the daemon and its clients (see docs/protocol.md).

Each frame is a 4-byte big-endian length then one UTF-8 JSON object. Requests carry
`id, service, method, params, namespace`; replies carry the same `id` and one of `result`,
`error` or `stream`; a client may send `stream`, `close_send` or `cancel` frames for an id.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import struct

DEFAULT_ADDRESS = "/run/pycontainerd/pycontainerd.sock"
DEFAULT_ROOT = "/var/lib/pycontainerd"
DEFAULT_STATE = "/run/pycontainerd"
DEFAULT_NAMESPACE = "default"
MAX_FRAME = 64 << 20  # a frame larger than this is a protocol error, not a reason to allocate
HEADER = struct.Struct(">I")
VERSION = "0.1.0"
PROTOCOL_VERSION = 1


class ProtocolError(Exception):
    """A malformed frame: the connection it came on is closed."""


def address_path(address: str) -> str:
    """`unix:///run/x.sock` or a plain path → the socket's path."""
    if address.startswith("unix://"):
        return address[len("unix://"):]
    return address


def address_url(address: str) -> str:
    return "unix://" + address_path(address)


def encode(message: dict) -> bytes:
    body = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
    if len(body) > MAX_FRAME:
        raise ProtocolError(f"frame of {len(body)} bytes exceeds the {MAX_FRAME} byte limit")
    return HEADER.pack(len(body)) + body


def decode(body: bytes) -> dict:
    try:
        message = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"frame is not UTF-8 JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError("frame is not a JSON object")
    return message


def _length(header: bytes) -> int:
    (n,) = HEADER.unpack(header)
    if n > MAX_FRAME:
        raise ProtocolError(f"frame of {n} bytes exceeds the {MAX_FRAME} byte limit")
    return n


async def read_frame(reader: asyncio.StreamReader) -> dict | None:
    """The next message, or None at a clean end of stream."""
    try:
        header = await reader.readexactly(HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise ProtocolError("connection closed inside a frame header") from None
        return None
    try:
        body = await reader.readexactly(_length(header))
    except asyncio.IncompleteReadError:
        raise ProtocolError("connection closed inside a frame") from None
    return decode(body)


def _recv_exactly(sock: socket.socket, n: int) -> bytes | None:
    chunks = []
    while n:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            if chunks:
                raise ProtocolError("connection closed inside a frame")
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def recv_frame(sock: socket.socket) -> dict | None:
    """Blocking read of the next message from a socket; None at a clean end of stream."""
    header = _recv_exactly(sock, HEADER.size)
    if header is None:
        return None
    n = _length(header)
    body = _recv_exactly(sock, n) if n else b""
    if body is None:
        raise ProtocolError("connection closed inside a frame")
    return decode(body)


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str) -> bytes:
    return base64.b64decode(text or "")
