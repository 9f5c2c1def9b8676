"""process.terminal with --console-socket: the pty master arrives over SCM_RIGHTS (containerd's shim relies on it)."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

pytestmark = pytest.mark.interop


class ConsoleSocket:
    """A unix socket server receiving one fd, as containerd's shim does."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(1)
        self.fd: int | None = None
        self.name = b""
        self.t = threading.Thread(target=self._accept, daemon=True)
        self.t.start()

    def _accept(self) -> None:
        conn, _ = self.srv.accept()
        with conn:
            msg, fds, _, _ = socket.recv_fds(conn, 4096, 1)
            self.name, self.fd = msg, fds[0]

    def read_all(self, timeout: float = 10) -> bytes:
        self.t.join(timeout)
        assert self.fd is not None, "no fd received"
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:  # EIO once the slave side is closed
                break
            if not chunk:
                break
            out += chunk
        return out

    def close(self) -> None:
        self.srv.close()
        if self.fd is not None:
            os.close(self.fd)


def test_console_socket(env):
    bundle = env.bundle("sh", "-c", "tty; test -t 0 && echo stdin-is-tty; ls -l /dev/console | cut -c1-10; stty size")
    bundle.edit(lambda d: d["process"].__setitem__("terminal", True))
    bundle.edit(lambda d: d["process"].__setitem__("consoleSize", {"height": 30, "width": 100}))
    outs = {}
    for rt in (env.runc, env.pyrunc):
        cs = ConsoleSocket(str(env.tmp / f"{rt.name}.sock"))
        cid = env.new_id()
        try:
            r = rt("create", "--console-socket", cs.path, "-b", str(bundle.path), cid)
            assert r.rc == 0, (rt.name, r.err)
            assert rt("start", cid).rc == 0
            outs[rt.name] = (cs.name, cs.read_all().replace(b"\r\n", b"\n"))
        finally:
            cs.close()
        for _ in range(100):
            if rt.state(cid)["status"] == "stopped":
                break
            time.sleep(0.02)
        assert rt("delete", cid).rc == 0
    assert outs["pyrunc"] == outs["runc"]
    assert b"stdin-is-tty" in outs["pyrunc"][1] and b"30 100" in outs["pyrunc"][1]


def test_exec_tty_console_socket(env):
    bundle = env.bundle("sleep", "30")
    outs = {}
    for rt in (env.runc, env.pyrunc):
        cid = env.new_id()
        assert rt("run", "-d", "-b", str(bundle.path), cid).rc == 0
        cs = ConsoleSocket(str(env.tmp / f"{rt.name}-exec.sock"))
        try:
            r = rt("exec", "-t", "-d", "--console-socket", cs.path, cid, "sh", "-c", "tty; test -t 1 && echo tty-out")
            assert r.rc == 0, (rt.name, r.err)
            outs[rt.name] = cs.read_all().replace(b"\r\n", b"\n")
        finally:
            cs.close()
        rt("delete", "-f", cid)
    assert outs["pyrunc"] == outs["runc"]
