"""The parent <-> init channel: a SOCK_SEQPACKET socketpair carrying small JSON messages (and pty fds).

Built on the C `_socket` module: `socket.py` costs several milliseconds of imports (enum conversions, selectors)
that every container start would pay."""

from __future__ import annotations

from pyoci import fastjson as json  # `json` imports re and enum: ~8 ms a start
import _socket

from .errors import RuntimeFailure

_INT = 4


def pair():
    a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
    return a, b


def send_fds(sock, data: bytes, fds: list[int]) -> None:
    payload = b"".join(fd.to_bytes(_INT, "little" if _LITTLE else "big", signed=True) for fd in fds)
    sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, payload)])


def recv_fds(sock, size: int, maxfds: int) -> tuple[bytes, list[int]]:
    data, anc, _flags, _addr = sock.recvmsg(size, _socket.CMSG_SPACE(maxfds * _INT))
    fds: list[int] = []
    for level, kind, payload in anc:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            n = len(payload) - len(payload) % _INT
            fds += [int.from_bytes(payload[i:i + _INT], "little" if _LITTLE else "big", signed=True)
                    for i in range(0, n, _INT)]
    return data, fds


def send(sock, kind: str, fds: list[int] | None = None, **fields) -> None:
    data = json.dumps(dict(fields, t=kind)).encode()
    if fds:
        send_fds(sock, data, fds)
    else:
        sock.send(data)


def recv(sock, expect: str | None = None) -> tuple[dict, list[int]]:
    """The next message; EOF or an "error" message raise RuntimeFailure."""
    data, fds = recv_fds(sock, 65536, 4)
    if not data:
        raise RuntimeFailure("container init exited unexpectedly")
    msg = json.loads(data)
    if msg["t"] == "error":
        raise RuntimeFailure(msg["msg"])
    if expect and msg["t"] != expect:
        raise RuntimeFailure(f"unexpected message from container init: {msg['t']} (expected {expect})")
    return msg, fds


import sys as _sys  # noqa: E402 - only for the byte order of SCM_RIGHTS payloads

_LITTLE = _sys.byteorder == "little"
