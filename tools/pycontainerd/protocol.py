"""The wire format shared by the daemon and its clients (see docs/protocol.md).

Each frame is a 4-byte big-endian length then one UTF-8 JSON object. Requests carry
`id, service, method, params, namespace`; replies carry the same `id` and one of `result`,
`error` or `stream`; a client may send `stream`, `close_send` or `cancel` frames for an id.

This module is imported by every pyctr start, so it holds only the framing and blocking socket
reads: no asyncio (the daemon's stream reader is in aioframes.py), and JSON through pyoci.fastjson
(json's own C scanner and encoder without the `json` package, which imports `re` and `enum`).
"""

from __future__ import annotations

import binascii
import struct

from pyoci import fastjson

DEFAULT_ADDRESS = "/run/pycontainerd/pycontainerd.sock"
DEFAULT_ROOT = "/var/lib/pycontainerd"
DEFAULT_STATE = "/run/pycontainerd"
DEFAULT_NAMESPACE = "default"
MAX_FRAME = 64 << 20  # a frame larger than this is a protocol error, not a reason to allocate
HEADER = struct.Struct(">I")  # the body's length
HEADER_SIZE = HEADER.size
VERSION = "0.1.0"
PROTOCOL_VERSION = 1


class ProtocolError(Exception):
    """A malformed frame: the connection it came on is closed."""


def __getattr__(name: str):
    # the asyncio reader, for callers that still name it here; pyctr never does
    if name == "read_frame":
        from .aioframes import read_frame

        return read_frame
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def address_path(address: str) -> str:
    """`unix:///run/x.sock` or a plain path → the socket's path."""
    if address.startswith("unix://"):
        return address[len("unix://"):]
    return address


def address_url(address: str) -> str:
    return "unix://" + address_path(address)


def dumps(message) -> str:
    """json.dumps(message, separators=(",", ":"), ensure_ascii=False), through json's C encoder alone."""
    return fastjson.dumps(message, separators=(",", ":"), ensure_ascii=False)


def loads(body: bytes):
    """json.loads(body), through json's C scanner alone for UTF-8 bodies (errors in json's words)."""
    return fastjson.loads(body)


def encode(message: dict) -> bytes:
    body = dumps(message).encode()
    if len(body) > MAX_FRAME:
        raise ProtocolError(f"frame of {len(body)} bytes exceeds the {MAX_FRAME} byte limit")
    return HEADER.pack(len(body)) + body


def decode(body: bytes) -> dict:
    try:
        message = loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"frame is not UTF-8 JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError("frame is not a JSON object")
    return message


def frame_length(header: bytes) -> int:
    (n,) = HEADER.unpack(header)
    if n > MAX_FRAME:
        raise ProtocolError(f"frame of {n} bytes exceeds the {MAX_FRAME} byte limit")
    return n


def _recv_exactly(sock, n: int) -> bytes | None:
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


def recv_frame(sock) -> dict | None:
    """Blocking read of the next message from a socket; None at a clean end of stream."""
    header = _recv_exactly(sock, HEADER_SIZE)
    if header is None:
        return None
    n = frame_length(header)
    body = _recv_exactly(sock, n) if n else b""
    if body is None:
        raise ProtocolError("connection closed inside a frame")
    return decode(body)


def b64encode(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def b64decode(text: str) -> bytes:
    """base64.b64decode(text): non-alphabet characters discarded, ValueError on bad padding or non-ASCII."""
    if isinstance(text, str):
        try:
            text = text.encode("ascii")
        except UnicodeEncodeError:
            raise ValueError("string argument should contain only ASCII characters") from None
    return binascii.a2b_base64(text or b"")
