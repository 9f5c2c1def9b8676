"""Reading protocol frames from an asyncio stream: the daemon's side and its shim connections.

Apart from protocol.py so that a client (pyctr, one process per command) never imports asyncio.
"""

from __future__ import annotations

import asyncio

from .protocol import HEADER_SIZE, ProtocolError, decode, frame_length


async def read_frame(reader: asyncio.StreamReader) -> dict | None:
    """The next message, or None at a clean end of stream."""
    try:
        header = await reader.readexactly(HEADER_SIZE)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise ProtocolError("connection closed inside a frame header") from None
        return None
    try:
        body = await reader.readexactly(frame_length(header))
    except asyncio.IncompleteReadError:
        raise ProtocolError("connection closed inside a frame") from None
    return decode(body)
