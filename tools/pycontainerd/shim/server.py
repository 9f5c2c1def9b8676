"""The shim's state and its single-threaded API server (selectors, no asyncio: it stays small).

API over `<bundle>/shim.sock`, the daemon protocol's framing: a request `{"id", "method", "params"}`,
replies `{"id", "result"}` / `{"id", "error": {"code", "message"}}` / `{"id", "stream"}`; a client
may send `{"id", "stream": {"data"}}` (stdin of an attach), `{"id", "close_send": true}`, `{"id",
"cancel": true}`. Methods (`exec_id` "" or absent means the container's init process):

  state {exec_id}                       → {id, pid, status, exit_status, exited_at, terminal, stdin, execs}
  start {exec_id}                       → {pid}                 runtime start, or runtime exec --detach
  kill {signal, all, exec_id}           → {}                    runtime kill [--all] (init); kill(2) (exec)
  exec {exec_id, process, terminal, stdin} → {}                 registers an exec process (start runs it)
  resize {exec_id, width, height}       → {}                    TIOCSWINSZ on the pty master
  close_stdin {exec_id}                 → {}
  attach {exec_id, stdin, close_stdin}  → stream {attached} then {stream, data}…; result {exit_status}
  wait {exec_id}                        → {exit_status, exited_at, pid}   once exited and output drained
  delete {exec_id, force}               → {exit_status, exited_at, pid}   runtime delete; init: shim exits
  pids / pause / resume / stats         → runtime ps / pause / resume / events --stats
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import time

from ..logs import JSONFileWriter, rfc3339nano
from ..protocol import HEADER, MAX_FRAME, ProtocolError, b64decode, b64encode, decode, encode

# gRPC codes as the daemon's errdefs (the shim does not import the daemon's modules)
INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION, UNKNOWN, CANCELED = 3, 5, 6, 9, 2, 1
EXEC_BUFFER = 4 << 20  # exec output kept until someone attaches (the exec's stdio lives only here)
DRAIN_AFTER_EXIT = 2.0  # seconds to wait for a dead process's pipes to reach EOF (held by strays)
RUNTIME_TIMEOUT = 60


class ShimError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class Process:
    """The init process or one exec: its pid, stdio and who waits on it."""

    def __init__(self, exec_id: str, terminal: bool, stdin: bool) -> None:
        self.id = exec_id
        self.terminal = terminal
        self.stdin = stdin
        self.pid = 0
        self.status = "created"
        self.exit_status: int | None = None
        self.exited_at = ""
        self.stdin_fd = -1
        self.stdin_buf = bytearray()
        self.close_stdin_pending = False
        self.master = -1
        self.outputs: dict[int, str] = {}  # fd → "stdout"/"stderr"
        self.attachers: list[tuple["Conn", int, bool]] = []  # (conn, call id, close stdin at EOF)
        self.waiters: list[tuple["Conn", int]] = []
        self.buffer: list[tuple[str, bytes]] = []
        self.buffered = 0
        self.drain_deadline = 0.0
        self.done = False  # exited and its output drained: waiters answered
        self.oom_killed = False

    def info(self) -> dict:
        return {"id": self.id, "pid": self.pid, "status": self.status, "exit_status": self.exit_status,
                "exited_at": self.exited_at, "terminal": self.terminal, "stdin": self.stdin,
                "oom_killed": self.oom_killed}

    def exit_info(self) -> dict:
        return {"exit_status": self.exit_status, "exited_at": self.exited_at, "pid": self.pid,
                "oom_killed": self.oom_killed}


class Conn:
    def __init__(self, shim: "Shim", sock: socket.socket) -> None:
        self.shim = shim
        self.sock = sock
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.closed = False

    def send(self, message: dict) -> None:
        if self.closed:
            return
        self.outbuf += encode(message)
        self.flush()

    def flush(self) -> None:
        while self.outbuf and not self.closed:
            try:
                n = self.sock.send(self.outbuf)
            except BlockingIOError:
                break
            except OSError:
                self.shim.drop(self)
                return
            del self.outbuf[:n]
        if not self.closed:
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if self.outbuf else 0)
            self.shim.sel.modify(self.sock, events, self.on_event)

    def on_event(self, mask: int) -> None:
        if mask & selectors.EVENT_WRITE:
            self.flush()
        if mask & selectors.EVENT_READ and not self.closed:
            try:
                data = self.sock.recv(1 << 16)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self.shim.drop(self)
                return
            self.inbuf += data
            try:
                while len(self.inbuf) >= HEADER.size:
                    (n,) = HEADER.unpack_from(self.inbuf)
                    if n > MAX_FRAME:
                        raise ProtocolError("frame too large")
                    if len(self.inbuf) < HEADER.size + n:
                        break
                    frame = decode(bytes(self.inbuf[HEADER.size:HEADER.size + n]))
                    del self.inbuf[:HEADER.size + n]
                    self.shim.dispatch(self, frame)
            except ProtocolError:
                self.shim.drop(self)


class Shim:
    def __init__(self, cfg: dict) -> None:
        self.cfg = cfg
        self.id = cfg["id"]
        self.bundle = cfg["bundle"]
        self.sel = selectors.DefaultSelector()
        self.init = Process("", bool(cfg.get("terminal")), bool(cfg.get("stdin")))
        self.execs: dict[str, Process] = {}
        self.conns: list[Conn] = []
        self.log: JSONFileWriter | None = None
        self.exiting = 0.0
        self.listener: socket.socket | None = None
        self._sigfd = -1

    # -- paths and the runtime ----------------------------------------------------------------------
    def path(self, name: str) -> str:
        return os.path.join(self.bundle, name)

    def runtime_argv(self, *args: str) -> list[str]:
        return [self.cfg["runtime"], "--root", self.cfg["runtime_root"], "--log", self.path("log.json"),
                "--log-format", "json", *args]

    def log_mark(self) -> int:
        """Where the runtime's json log ends now: an error is looked for only in what follows."""
        try:
            return os.stat(self.path("log.json")).st_size
        except OSError:
            return 0

    def runtime_error(self, what: str, proc_stderr: bytes = b"", mark: int = 0) -> str:
        """The runtime's error message: from its json log (as containerd reads it), else its stderr."""
        message = ""
        try:
            with open(self.path("log.json"), "rb") as f:
                f.seek(mark)
                for line in f.read().splitlines()[-20:]:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue
                    if entry.get("level") in ("error", "fatal"):
                        message = entry.get("msg", "")
        except OSError:
            pass
        if not message:
            message = proc_stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
            message = message[0]
        if " failed: " in message.split(":", 1)[0] + ": ":
            return message  # "runc create failed: …" already says who failed at what, as docker shows it
        return f"{what}: {message or 'runtime failed'}"

    def run_runtime(self, *args: str) -> bytes:
        mark = self.log_mark()
        try:
            p = subprocess.run(self.runtime_argv(*args), stdin=subprocess.DEVNULL, capture_output=True,
                               cwd=self.bundle, timeout=RUNTIME_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise ShimError(UNKNOWN, f"runtime {args[0]}: timed out after {RUNTIME_TIMEOUT}s") from None
        except OSError as exc:
            raise ShimError(UNKNOWN, f"runtime {self.cfg['runtime']}: {exc.strerror}") from None
        if p.returncode != 0:
            text = self.runtime_error(f"runtime {args[0]}", p.stderr, mark)
            code = NOT_FOUND if "does not exist" in text or "not exist" in text else UNKNOWN
            raise ShimError(code, text)
        return p.stdout

    # -- setup ---------------------------------------------------------------------------------------
    def setup(self) -> dict:
        """Listen on shim.sock, create the container (runtime create) and hold its stdio."""
        sigr, sigw = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(sigw)
        signal.signal(signal.SIGCHLD, _ignore)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
            # only `delete` (or SIGKILL) ends a shim. A handler, not SIG_IGN: ignored signals stay ignored
            # across exec, and a container's shell could not trap them (this also undoes inherited ignores)
            signal.signal(sig, _ignore)
        self._sigfd = sigr
        self.sel.register(sigr, selectors.EVENT_READ, lambda _m: self.reap())
        try:
            os.unlink(self.path("shim.sock"))
        except FileNotFoundError:
            pass
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        old = os.umask(0o177)
        try:
            self.listener.bind("shim.sock")  # relative: the bundle is our cwd (long paths do not fit 108 bytes)
        finally:
            os.umask(old)
        self.listener.listen(64)
        self.listener.setblocking(False)
        self.sel.register(self.listener, selectors.EVENT_READ, self.accept)
        if self.cfg.get("log_path"):
            self.log = JSONFileWriter(self.cfg["log_path"], int(self.cfg.get("log_max_size") or -1),
                                      int(self.cfg.get("log_max_file") or 1))
        argv = ["create", "--bundle", self.bundle, "--pid-file", self.path("init.pid")]
        self.spawn(self.init, argv + ["--no-pivot"] * bool(self.cfg.get("no_pivot")) + [self.id],
                   self.path("init.pid"), "create")
        self.write_pid("shim.pid", os.getpid())
        return {"pid": self.init.pid, "shim_pid": os.getpid()}

    def write_pid(self, name: str, pid: int) -> None:
        tmp = self.path(f".{name}.tmp")
        with open(tmp, "w") as f:
            f.write(str(pid))
        os.replace(tmp, self.path(name))

    def spawn(self, proc: Process, argv: list[str], pid_file: str, what: str) -> None:
        """Run `runtime create`/`runtime exec --detach` with our pipes (or a console socket) as the
        process's stdio; on return the process exists and its pid is known."""
        console = None
        theirs: list[int] = []
        devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        stdio = [devnull, devnull, devnull]
        try:
            if proc.terminal:
                # in a short private dir of its own, as containerd's NewTempConsoleSocket: the runtime
                # makes the path absolute, and one under a long bundle path would not fit 108 bytes
                console_dir = f"/tmp/pty{os.urandom(6).hex()}"
                os.mkdir(console_dir, 0o700)
                console_path = console_dir + "/pty.sock"
                console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
                console.bind(console_path)
                console.listen(1)
                argv = argv[:-1] + ["--console-socket", console_path, argv[-1]]
            else:
                if proc.stdin:
                    r, w = os.pipe2(os.O_CLOEXEC)
                    stdio[0] = r
                    theirs.append(r)
                    proc.stdin_fd = w
                for i, name in ((1, "stdout"), (2, "stderr")):
                    r, w = os.pipe2(os.O_CLOEXEC)
                    stdio[i] = w
                    theirs.append(w)
                    proc.outputs[r] = name
            mark = self.log_mark()
            try:
                child = subprocess.Popen(self.runtime_argv(*argv), stdin=stdio[0], stdout=stdio[1],
                                         stderr=stdio[2], cwd=self.bundle)
            except OSError as exc:
                raise ShimError(UNKNOWN, f"runtime {self.cfg['runtime']}: {exc.strerror}") from None
            if console is not None:
                proc.master = self._receive_master(console, child)
            try:
                rc = child.wait(RUNTIME_TIMEOUT)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
                rc = -1
            for fd in theirs:
                os.close(fd)
            theirs.clear()
            if rc != 0:
                stderr = b""
                for fd, name in proc.outputs.items():
                    if name == "stderr":
                        os.set_blocking(fd, False)
                        try:
                            stderr = os.read(fd, 1 << 16)
                        except OSError:
                            pass
                raise ShimError(UNKNOWN, self.runtime_error(f"runtime {what}", stderr, mark))
            try:
                with open(pid_file) as f:
                    proc.pid = int(f.read().strip())
            except (OSError, ValueError):
                raise ShimError(UNKNOWN, f"runtime {what}: no pid in {pid_file}") from None
        except BaseException:
            self.close_stdio(proc)
            for fd in theirs:
                os.close(fd)
            raise
        finally:
            os.close(devnull)
            if console is not None:
                console.close()
                for remove in (os.unlink, os.rmdir):
                    try:
                        remove(console_path if remove is os.unlink else console_dir)
                    except OSError:
                        pass
        if proc.master >= 0:
            proc.outputs[proc.master] = "stdout"
            proc.stdin_fd = os.dup(proc.master) if proc.stdin else -1
        for fd in proc.outputs:
            os.set_blocking(fd, False)
            self.sel.register(fd, selectors.EVENT_READ, lambda _m, fd=fd, p=proc: self.on_output(p, fd))
        if proc.stdin_fd >= 0:
            os.set_blocking(proc.stdin_fd, False)
            if proc.stdin_buf or proc.close_stdin_pending:
                self.flush_stdin(proc)  # what an attacher sent before the process existed

    def _receive_master(self, console: socket.socket, child: subprocess.Popen) -> int:
        """The pty master the runtime sends over the console socket (SCM_RIGHTS)."""
        console.settimeout(0.05)
        deadline = time.monotonic() + RUNTIME_TIMEOUT
        while time.monotonic() < deadline:
            try:
                conn, _ = console.accept()
            except socket.timeout:
                if child.poll() is not None:
                    console.settimeout(0)
                    try:
                        conn, _ = console.accept()
                    except (BlockingIOError, socket.timeout):
                        return -1
                else:
                    continue
            with conn:
                conn.settimeout(RUNTIME_TIMEOUT)
                _msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 1)
            return fds[0] if fds else -1
        return -1

    # -- stdio ---------------------------------------------------------------------------------------
    def on_output(self, proc: Process, fd: int) -> None:
        try:
            data = os.read(fd, 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""  # EIO: the pty's last slave closed; treated as the end of output like EOF
        if not data:
            self.close_output(proc, fd)
            self.maybe_done(proc)
            return
        stream = proc.outputs.get(fd, "stdout")
        if proc is self.init and self.log is not None:
            try:
                self.log.write(stream, data)
            except OSError:
                pass  # a full disk must not kill the container's shim
        if proc.attachers:
            payload = {"stream": stream, "data": b64encode(data)}
            for conn, call_id, _ in list(proc.attachers):
                if len(conn.outbuf) < (64 << 20):  # a stuck reader loses output rather than grow the shim
                    conn.send({"id": call_id, "stream": payload})
        elif proc is not self.init and proc.buffered < EXEC_BUFFER:
            proc.buffer.append((stream, data))
            proc.buffered += len(data)

    def close_output(self, proc: Process, fd: int) -> None:
        name = proc.outputs.pop(fd, None)
        if name is None:
            return
        try:
            self.sel.unregister(fd)
        except (KeyError, ValueError):
            pass
        if self.log is not None and proc is self.init:
            self.log.flush(name)
        if fd == proc.master:
            proc.master = -1  # a stdin dup of it (if any) closes with close_stdin
        os.close(fd)

    def close_stdio(self, proc: Process) -> None:
        for fd in list(proc.outputs):
            self.close_output(proc, fd)
        self.close_stdin(proc)

    def write_stdin(self, proc: Process, data: bytes) -> None:
        if proc.stdin_fd < 0:
            if proc.stdin and proc.pid == 0 and proc.exit_status is None:
                proc.stdin_buf += data  # an exec not started yet: its stdin gets this once it exists
            return
        proc.stdin_buf += data
        self.flush_stdin(proc)

    def flush_stdin(self, proc: Process) -> None:
        while proc.stdin_buf and proc.stdin_fd >= 0:
            try:
                n = os.write(proc.stdin_fd, proc.stdin_buf)
            except BlockingIOError:
                break
            except OSError:
                proc.stdin_buf.clear()
                break
            del proc.stdin_buf[:n]
        if proc.stdin_fd < 0:
            return
        key = self.sel.get_map().get(proc.stdin_fd)
        if proc.stdin_buf and key is None and proc.stdin_fd not in proc.outputs:
            self.sel.register(proc.stdin_fd, selectors.EVENT_WRITE, lambda _m, p=proc: self.flush_stdin(p))
        elif not proc.stdin_buf and key is not None and proc.stdin_fd not in proc.outputs:
            self.sel.unregister(proc.stdin_fd)
        if not proc.stdin_buf and proc.close_stdin_pending:
            self.close_stdin(proc)

    def close_stdin(self, proc: Process) -> None:
        if proc.stdin_fd < 0:
            if proc.stdin and proc.pid == 0 and proc.exit_status is None:
                proc.close_stdin_pending = True  # not started yet: close right after it starts
            return
        if proc.stdin_buf:
            proc.close_stdin_pending = True  # after what is queued has been written
            return
        if self.sel.get_map().get(proc.stdin_fd) is not None:
            self.sel.unregister(proc.stdin_fd)
        if proc.terminal and proc.status == "running":
            try:
                os.write(proc.stdin_fd, b"\x04")  # a terminal has no EOF of its own: ^D as a tty user
            except OSError:
                pass
        os.close(proc.stdin_fd)
        proc.stdin_fd = -1

    # -- exits ---------------------------------------------------------------------------------------
    def reap(self) -> None:
        try:
            while os.read(self._sigfd, 4096):
                pass
        except BlockingIOError:
            pass
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            code = os.waitstatus_to_exitcode(status)
            code = 128 - code if code < 0 else code  # killed by signal N → 128+N, as docker reports
            for proc in [self.init, *self.execs.values()]:
                if proc.pid == pid and proc.exit_status is None:
                    self.exited(proc, code)

    def exited(self, proc: Process, code: int) -> None:
        proc.exit_status = code
        proc.exited_at = rfc3339nano()
        proc.status = "stopped"
        proc.drain_deadline = time.monotonic() + DRAIN_AFTER_EXIT
        if proc is self.init:
            proc.oom_killed = self.oom_kills() > 0
            tmp = self.path(".exit-status.tmp")
            with open(tmp, "w") as f:
                json.dump(proc.exit_info(), f)
            os.replace(tmp, self.path("exit-status"))
            for other in self.execs.values():  # the pid namespace is gone with its init
                if other.exit_status is None and other.pid == 0:
                    other.status = "stopped"
        self.maybe_done(proc)

    def maybe_done(self, proc: Process, force: bool = False) -> None:
        if proc.done or proc.exit_status is None or (proc.outputs and not force):
            return
        self.close_stdio(proc)
        proc.done = True
        result = proc.exit_info()
        for conn, call_id in proc.waiters:
            conn.send({"id": call_id, "result": result})
        for conn, call_id, _ in proc.attachers:
            conn.send({"id": call_id, "result": result})
        proc.waiters.clear()
        proc.attachers.clear()

    def oom_kills(self) -> int:
        """How many processes the kernel's OOM killer took in the container's cgroup (read at its exit,
        before the runtime's delete removes the cgroup): cgroup v1 memory.oom_control, v2 memory.events."""
        try:
            with open(self.path("config.json")) as f:
                cgroup = (json.load(f).get("linux") or {}).get("cgroupsPath") or ""
        except (OSError, ValueError):
            return 0
        if not cgroup.startswith("/"):
            return 0  # relative to the runtime's own cgroup: not worth guessing
        for name in (f"/sys/fs/cgroup/memory{cgroup}/memory.oom_control", f"/sys/fs/cgroup{cgroup}/memory.events"):
            try:
                with open(name) as f:
                    for line in f:
                        key, _, value = line.partition(" ")
                        if key == "oom_kill":
                            return int(value)
            except (OSError, ValueError):
                continue
        return 0

    # -- connections ---------------------------------------------------------------------------------
    def accept(self, _mask: int) -> None:
        try:
            sock, _ = self.listener.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        conn = Conn(self, sock)
        self.conns.append(conn)
        self.sel.register(sock, selectors.EVENT_READ, conn.on_event)

    def drop(self, conn: Conn) -> None:
        if conn.closed:
            return
        conn.closed = True
        try:
            self.sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()
        if conn in self.conns:
            self.conns.remove(conn)
        for proc in [self.init, *self.execs.values()]:
            proc.attachers = [a for a in proc.attachers if a[0] is not conn]
            proc.waiters = [w for w in proc.waiters if w[0] is not conn]

    def dispatch(self, conn: Conn, frame: dict) -> None:
        call_id = frame.get("id")
        if "method" not in frame:
            self.client_frame(conn, call_id, frame)
            return
        method = str(frame.get("method", ""))
        params = frame.get("params") or {}
        fn = getattr(self, "m_" + method, None)
        try:
            if fn is None:
                raise ShimError(12, f"unknown shim method {method!r}")
            result = fn(conn, call_id, params)
        except ShimError as exc:
            conn.send({"id": call_id, "error": {"code": exc.code, "message": str(exc)}})
            return
        except Exception as exc:  # the shim must survive anything a request does
            conn.send({"id": call_id, "error": {"code": UNKNOWN, "message": f"{type(exc).__name__}: {exc}"}})
            return
        if result is not None:
            conn.send({"id": call_id, "result": result})

    def client_frame(self, conn: Conn, call_id, frame: dict) -> None:
        for proc in [self.init, *self.execs.values()]:
            for attached in proc.attachers:
                if attached[0] is conn and attached[1] == call_id:
                    if "stream" in frame:
                        self.write_stdin(proc, b64decode((frame.get("stream") or {}).get("data", "")))
                    elif frame.get("close_send"):
                        if attached[2]:
                            self.close_stdin(proc)
                    elif frame.get("cancel"):
                        proc.attachers.remove(attached)
                        conn.send({"id": call_id, "error": {"code": CANCELED, "message": "attach: canceled"}})
                    return
            for waiter in proc.waiters:
                if waiter[0] is conn and waiter[1] == call_id and frame.get("cancel"):
                    proc.waiters.remove(waiter)
                    conn.send({"id": call_id, "error": {"code": CANCELED, "message": "wait: canceled"}})
                    return

    def process(self, params: dict) -> Process:
        exec_id = params.get("exec_id") or ""
        if not exec_id:
            return self.init
        proc = self.execs.get(exec_id)
        if proc is None:
            raise ShimError(NOT_FOUND, f"exec {exec_id!r} in container {self.id!r}: not found")
        return proc

    # -- methods -------------------------------------------------------------------------------------
    def m_state(self, conn, call_id, params):
        proc = self.process(params)
        info = proc.info()
        info["container_id"] = self.id
        info["bundle"] = self.bundle
        if proc is self.init:
            info["execs"] = {k: v.info() for k, v in self.execs.items()}
        return info

    def m_start(self, conn, call_id, params):
        proc = self.process(params)
        if proc.status != "created" or proc.exit_status is not None:
            raise ShimError(FAILED_PRECONDITION,
                            f"process {proc.id or self.id!r}: cannot start a {proc.status} process")
        if proc is self.init:
            self.run_runtime("start", self.id)
            proc.status = "running" if proc.exit_status is None else proc.status
        else:
            if self.init.status not in ("running", "paused"):
                raise ShimError(FAILED_PRECONDITION, f"container {self.id!r} is not running")
            argv = ["exec", "--detach", "--pid-file", self.path(f"exec-{proc.id}.pid"),
                    "--process", self.path(f"exec-{proc.id}.json"), self.id]
            self.spawn(proc, argv, self.path(f"exec-{proc.id}.pid"), "exec")
            proc.status = "running"
        return {"pid": proc.pid}

    def m_kill(self, conn, call_id, params):
        proc = self.process(params)
        sig = parse_signal(params.get("signal", "SIGTERM"))
        if proc.exit_status is not None:
            raise ShimError(NOT_FOUND, f"process {proc.id or self.id!r}: process already finished")
        if proc is self.init:
            self.run_runtime("kill", *(["--all"] if params.get("all") else []), self.id, str(sig))
        else:
            try:
                os.kill(proc.pid, sig)
            except ProcessLookupError:
                raise ShimError(NOT_FOUND, f"exec {proc.id!r}: process already finished") from None
        return {}

    def m_exec(self, conn, call_id, params):
        exec_id = params.get("exec_id") or ""
        if not exec_id or "/" in exec_id or len(exec_id) > 76:
            raise ShimError(INVALID_ARGUMENT, f"exec id {exec_id!r}: want a short name")
        if exec_id in self.execs:
            raise ShimError(ALREADY_EXISTS, f"exec {exec_id!r} in container {self.id!r}: already exists")
        if self.init.status not in ("running", "paused", "created") or self.init.exit_status is not None:
            raise ShimError(FAILED_PRECONDITION, f"container {self.id!r} is not running")
        spec = params.get("process")
        if not isinstance(spec, dict) or not spec.get("args"):
            raise ShimError(INVALID_ARGUMENT, "exec: process.args is required")
        terminal = bool(params.get("terminal", spec.get("terminal")))
        spec = {**spec, "terminal": terminal}
        tmp = self.path(f".exec-{exec_id}.json.tmp")
        with open(tmp, "w") as f:
            json.dump(spec, f)
        os.replace(tmp, self.path(f"exec-{exec_id}.json"))
        self.execs[exec_id] = Process(exec_id, terminal, bool(params.get("stdin")))
        return {}

    def m_resize(self, conn, call_id, params):
        import fcntl
        import struct
        import termios

        proc = self.process(params)
        fd = proc.master if proc.master >= 0 else proc.stdin_fd if proc.terminal else -1
        if fd < 0:
            raise ShimError(FAILED_PRECONDITION, f"process {proc.id or self.id!r} has no terminal")
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", int(params.get("height", 24)),
                                                        int(params.get("width", 80)), 0, 0))
        return {}

    def m_close_stdin(self, conn, call_id, params):
        self.close_stdin(self.process(params))
        return {}

    def m_attach(self, conn, call_id, params):
        proc = self.process(params)
        conn.send({"id": call_id, "stream": {"attached": True}})
        for stream, data in proc.buffer:
            conn.send({"id": call_id, "stream": {"stream": stream, "data": b64encode(data)}})
        if proc.buffer or proc is not self.init:
            proc.buffered = EXEC_BUFFER  # the backlog goes to the first attacher only
        proc.buffer.clear()
        if proc.done:
            return proc.exit_info()
        proc.attachers.append((conn, call_id, bool(params.get("close_stdin"))))
        return None

    def m_wait(self, conn, call_id, params):
        proc = self.process(params)
        if proc.done:
            return proc.exit_info()
        if proc.status == "stopped" and proc.pid == 0:  # an exec never started, its container gone
            return {"exit_status": 255, "exited_at": proc.exited_at or rfc3339nano(), "pid": 0}
        proc.waiters.append((conn, call_id))
        return None

    def m_delete(self, conn, call_id, params):
        proc = self.process(params)
        force = bool(params.get("force"))
        result = {"exit_status": proc.exit_status if proc.exit_status is not None else 255,
                  "exited_at": proc.exited_at, "pid": proc.pid}
        if proc is not self.init:
            if proc.status == "running" and not force:
                raise ShimError(FAILED_PRECONDITION, f"exec {proc.id!r} is still running")
            if proc.status == "running":
                try:
                    os.kill(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.close_stdio(proc)
            del self.execs[proc.id]
            for name in (f"exec-{proc.id}.json", f"exec-{proc.id}.pid"):
                try:
                    os.unlink(self.path(name))
                except FileNotFoundError:
                    pass
            return result
        if proc.status in ("running", "paused") and not force:
            raise ShimError(FAILED_PRECONDITION, f"container {self.id!r} is {proc.status}: stop it first or force")
        try:
            self.run_runtime("delete", *(["--force"] if force or proc.status == "created" else []), self.id)
        except ShimError as exc:
            if exc.code != NOT_FOUND:
                raise
        self.maybe_done(proc, force=True)
        if self.log is not None:
            self.log.close()
            self.log = None
        self.exiting = time.monotonic() + 1.0  # answer, flush, then leave
        return result

    def m_pids(self, conn, call_id, params):
        out = self.run_runtime("ps", "--format", "json", self.id)
        try:
            pids = json.loads(out or b"[]") or []
        except ValueError:
            raise ShimError(UNKNOWN, "runtime ps: output is not JSON") from None
        execs = {p.pid: p.id for p in self.execs.values()}
        return {"pids": [{"pid": pid, "exec_id": execs.get(pid, "")} for pid in pids]}

    def m_pause(self, conn, call_id, params):
        self.run_runtime("pause", self.id)
        self.init.status = "paused"
        return {}

    def m_resume(self, conn, call_id, params):
        self.run_runtime("resume", self.id)
        if self.init.exit_status is None:
            self.init.status = "running"
        return {}

    def m_stats(self, conn, call_id, params):
        out = self.run_runtime("events", "--stats", self.id)
        try:
            event = json.loads(out.strip().splitlines()[0]) if out.strip() else {}
        except ValueError:
            raise ShimError(UNKNOWN, "runtime events --stats: output is not JSON") from None
        return {"stats": event.get("data", event)}

    def m_shutdown(self, conn, call_id, params):
        if self.init.status in ("running", "paused") and self.init.exit_status is None:
            raise ShimError(FAILED_PRECONDITION, f"container {self.id!r} is running")
        self.exiting = time.monotonic() + 1.0
        return {}

    # -- the loop ------------------------------------------------------------------------------------
    def serve(self) -> None:
        while True:
            now = time.monotonic()
            timeout: float | None = None  # idle shims sleep: SIGCHLD and sockets wake us through the selector
            pending = [p for p in [self.init, *self.execs.values()] if p.exit_status is not None and not p.done]
            for proc in pending:
                if now >= proc.drain_deadline:
                    self.maybe_done(proc, force=True)  # strays hold the pipes: stop waiting for EOF
                else:
                    timeout = min(timeout if timeout is not None else 60.0, proc.drain_deadline - now)
            if self.exiting:
                if now >= self.exiting or not any(c.outbuf for c in self.conns):
                    break
                timeout = 0.05
            for key, mask in self.sel.select(None if timeout is None else max(timeout, 0.0)):
                key.data(mask)
            self.reap()  # a SIGCHLD coalesced with the wakeup byte of another must not be missed
        self.close()

    def close(self) -> None:
        for conn in list(self.conns):
            self.drop(conn)
        if self.listener is not None:
            self.listener.close()
        for name in ("shim.sock", "shim.pid"):
            try:
                os.unlink(self.path(name))
            except FileNotFoundError:
                pass


def _ignore(_signum, _frame) -> None:
    pass


_SIGNALS = {name: int(getattr(signal, name)) for name in dir(signal)
            if name.startswith("SIG") and not name.startswith("SIG_") and isinstance(getattr(signal, name), int)}


def parse_signal(value) -> int:
    """9, "9", "KILL", "SIGKILL", "sigkill" → 9 (as `docker kill -s`)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 < value < 65:
            return value
    text = str(value).strip().upper()
    if text.isdigit() and 0 < int(text) < 65:
        return int(text)
    name = text if text.startswith("SIG") else "SIG" + text
    if name in _SIGNALS:
        return _SIGNALS[name]
    if name.startswith("SIGRTMIN+") and name[9:].isdigit():
        return int(signal.SIGRTMIN) + int(name[9:])
    raise ShimError(INVALID_ARGUMENT, f"invalid signal: {value}")
