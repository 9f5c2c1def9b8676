"""SCMP_ACT_NOTIFY: the init hands its listener fd to the parent, which sends it with the container's state to
the agent at listenerPath (a tiny agent here: it records the message, checks the fd and closes it, after which
the notified syscall fails with ENOSYS in the container)."""

from __future__ import annotations

import json
import os
import socket
import threading

import pytest


class Agent:
    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(1)
        self.sock.settimeout(30)
        self.message: dict | None = None
        self.fd_kind = ""
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            msg, fds, _, _ = socket.recv_fds(conn, 1 << 16, 4)
            self.message = json.loads(msg)
            for fd in fds:
                self.fd_kind = os.readlink(f"/proc/self/fd/{fd}")
                os.close(fd)  # no supervisor: the pending and later notified calls fail with ENOSYS

    def close(self) -> None:
        self.sock.close()
        self.thread.join(5)


@pytest.mark.parametrize("nnp", [False, True])
def test_notify_fd_reaches_listener(env, tmp_path, nnp):
    agent = Agent(str(tmp_path / "agent.sock"))
    try:
        b = env.bundle("sh", "-c", "mkdir /tmp/x; echo mkdir=$?; echo done")
        profile = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": str(tmp_path / "agent.sock"),
                   "listenerMetadata": "meta-data", "syscalls": [
                       {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}
        b.edit(lambda d: (d["process"].__setitem__("noNewPrivileges", nnp),
                          d["linux"].__setitem__("seccomp", profile)))
        cid = env.new_id()
        r = env.pyrunc("run", "-b", str(b.path), cid)
        assert r.rc == 0, r.err
        assert r.out == "mkdir=1\ndone\n"
    finally:
        agent.close()
    m = agent.message
    assert m is not None
    assert m["fds"] == ["seccompFd"] and m["metadata"] == "meta-data" and m["ociVersion"]
    assert m["state"]["id"] == cid and m["state"]["status"] == "creating" and m["state"]["pid"] == m["pid"] > 0
    assert m["state"]["bundle"] == str(b.path)
    assert agent.fd_kind == "anon_inode:seccomp notify"


def test_notify_listener_missing(env, tmp_path):
    b = env.bundle("true")
    b.edit(lambda d: d["linux"].__setitem__("seccomp", {
        "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": str(tmp_path / "nobody.sock"),
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}))
    r = env.pyrunc("run", "-b", str(b.path), env.new_id())
    assert r.rc == 1
    assert "cannot send seccomp fd to" in r.err and "traceback" not in r.err.lower()
