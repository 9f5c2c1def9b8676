"""The shim zygote: a small process with the shim's modules loaded that forks a shim per request.

    python -I -S zygote.py SOCKET PARENT_FD        (started by the daemon, see pycontainerd/shimfork.py)

Starting a shim as a fresh interpreter costs ~40 ms (interpreter, imports); a fork of this process
~2 ms. The zygote listens on SOCKET (0600); a request is one connection carrying one line, the bundle
path. The zygote forks: the child starts a new session and forks the shim proper (as main.run does,
so the shim outlives the zygote and the daemon), which sets itself up (`runtime create`) and writes
its one-line JSON report (`{"pid", "shim_pid"}` or `{"error", "code"}`) on the connection.
PARENT_FD is the read end of a pipe the daemon holds: at EOF (the daemon stopped or died) the zygote
exits; running shims are not its children and are unaffected. Single-threaded, so fork is safe.
"""

from __future__ import annotations

import os
import select
import socket
import sys

# -I -S: no site, no user paths; the package is found next to this file (tools/pycontainerd/shim/)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import ctypes  # noqa: E402,F401  the shim's prctl(PR_SET_CHILD_SUBREAPER): imported once, here

from pycontainerd.shim import main as shim_main  # noqa: E402  (after the path)
from pycontainerd.shim import server as _server  # noqa: E402,F401  loaded once, shared by every fork

REQUEST_TIMEOUT = 10.0  # seconds a connection may take to send its bundle path
MAX_REQUEST = 4096


def _read_request(conn: socket.socket) -> str:
    conn.settimeout(REQUEST_TIMEOUT)
    data = b""
    while b"\n" not in data and len(data) < MAX_REQUEST:
        chunk = conn.recv(MAX_REQUEST)
        if not chunk:
            break
        data += chunk
    return data.split(b"\n", 1)[0].decode(errors="replace").strip()


def _child(conn: socket.socket, bundle: str, keep: list[int]) -> None:
    """In the forked child: detach (new session, second fork), then become the shim; never returns."""
    fd = conn.fileno()
    try:
        for k in keep:
            os.close(k)
        conn.settimeout(None)
        fd = conn.detach()
        os.set_inheritable(fd, False)
        os.setsid()
        if os.fork():
            os._exit(0)
        try:
            cfg = shim_main.load_config(bundle)
        except (OSError, ValueError) as exc:
            shim_main._report(fd, {"error": f"{bundle}/shim.json: {exc}", "code": 3})
            os._exit(1)
        shim_main.become_shim(cfg, fd)
    except BaseException as exc:  # noqa: BLE001  a forked child must never return into the zygote's loop
        try:
            shim_main._report(fd, {"error": f"shim: {type(exc).__name__}: {exc}", "code": 2})
        except Exception:
            pass
    os._exit(1)


def serve(path: str, parent_fd: int) -> int:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    old = os.umask(0o177)
    try:
        os.chdir(os.path.dirname(path) or ".")  # relative: a long state path does not fit 108 bytes
        listener.bind(os.path.basename(path))
    finally:
        os.umask(old)
        os.chdir("/")
    listener.listen(128)
    os.write(1, b"ready\n")  # the daemon waits for this line before its first request
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 1)
    os.close(null)
    try:
        while True:
            ready, _, _ = select.select([listener, parent_fd], [], [])
            if parent_fd in ready:
                return 0  # the daemon is gone (EOF) or asks us to leave
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            try:
                bundle = _read_request(conn)
            except OSError:
                conn.close()
                continue
            if not bundle or not os.path.isabs(bundle):
                conn.close()
                continue
            pid = os.fork()
            if pid == 0:
                _child(conn, bundle, [listener.fileno(), parent_fd])
            conn.close()
            os.waitpid(pid, 0)  # the child exits right after its own fork: no zombies here
    finally:
        listener.close()
        try:
            os.unlink(path)
        except OSError:
            pass


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or not args[1].isdigit():
        print("usage: zygote.py SOCKET PARENT_FD   (started by pycontainerd)", file=sys.stderr)
        return 2
    return serve(args[0], int(args[1]))


if __name__ == "__main__":
    sys.exit(main())
