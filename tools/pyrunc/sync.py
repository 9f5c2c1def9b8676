"""The parent <-> init channel: a SOCK_SEQPACKET socketpair carrying small JSON messages (and pty fds)."""

from __future__ import annotations

import json
import socket

from .errors import RuntimeFailure


def pair() -> tuple[socket.socket, socket.socket]:
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


def send(sock: socket.socket, kind: str, fds: list[int] | None = None, **fields) -> None:
    data = json.dumps(dict(fields, t=kind)).encode()
    if fds:
        socket.send_fds(sock, [data], fds)
    else:
        sock.send(data)


def recv(sock: socket.socket, expect: str | None = None) -> tuple[dict, list[int]]:
    """The next message; EOF or an "error" message raise RuntimeFailure."""
    data, fds, _, _ = socket.recv_fds(sock, 65536, 4)
    if not data:
        raise RuntimeFailure("container init exited unexpectedly")
    msg = json.loads(data)
    if msg["t"] == "error":
        raise RuntimeFailure(msg["msg"])
    if expect and msg["t"] != expect:
        raise RuntimeFailure(f"unexpected message from container init: {msg['t']} (expected {expect})")
    return msg, fds
