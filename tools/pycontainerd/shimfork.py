"""The daemon's side of the shim zygote (shim/zygote.py): start it, ask it for shims, stop it.

A shim started through the zygote costs a fork (~2 ms) instead of a fresh interpreter (~40 ms).
The zygote is started lazily (or by `warm()` at daemon start), by pid, in a session of its own,
with the read end of a pipe whose write end only the daemon holds: when the daemon exits, even by
SIGKILL, the zygote sees EOF and exits too (shims it forked are detached and keep running).
When the zygote cannot be used, `start()` raises ZygoteUnavailable and the caller falls back to
running shim/main.py as a script.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("pycontainerd.shimfork")

ZYGOTE = Path(__file__).resolve().parent / "shim" / "zygote.py"
RETRY_AFTER = 30.0  # seconds without trying the zygote again once it could not be started


class ZygoteUnavailable(Exception):
    """The zygote could not be started or reached (the caller starts the shim the slow way)."""


@dataclass
class ShimForker:
    state: Path                               # the daemon's state dir: the zygote's socket lives there
    proc: subprocess.Popen | None = None
    _wfd: int = -1                            # our end of the zygote's lifeline pipe
    _ready: bool = False                      # the zygote said "ready": its socket listens
    _failed_at: float = -RETRY_AFTER          # when it last failed to start (monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def socket_path(self) -> str:
        return str(self.state / "shimfork.sock")

    def _alive(self) -> bool:
        return self._ready and self.proc is not None and self.proc.poll() is None

    def warm(self) -> None:
        """Start the zygote if it is not running (blocking, ~50 ms: call it from a worker thread)."""
        with self._lock:
            if self._alive():
                return
            self._stop_locked()  # a dead one's pipe and pid
            if time.monotonic() - self._failed_at < RETRY_AFTER:
                raise ZygoteUnavailable("shim zygote: failed to start recently")
            try:
                self._start_locked()
            except ZygoteUnavailable:
                self._failed_at = time.monotonic()
                raise

    def _start_locked(self) -> None:
        """Popen the zygote and wait for its "ready" line (the caller holds the lock)."""
        r, w = os.pipe2(os.O_CLOEXEC)
        try:
            os.set_inheritable(r, True)
            with open(self.state / "shimfork.log", "ab") as errlog:  # the zygote's own troubles
                proc = subprocess.Popen(
                    [sys.executable, "-I", "-S", str(ZYGOTE), self.socket_path, str(r)],
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errlog,
                    pass_fds=(r,), cwd="/", start_new_session=True)
        except OSError as exc:
            os.close(w)
            raise ZygoteUnavailable(f"shim zygote: {exc.strerror or exc}") from None
        finally:
            os.close(r)
        self._wfd = w
        self.proc = proc  # (not _alive() for start() until it is ready: start() waits on our lock)
        line = proc.stdout.readline() if proc.stdout else b""
        if line.strip() != b"ready":
            self._stop_locked()
            raise ZygoteUnavailable("shim zygote: did not start")
        proc.stdout.close()
        self._ready = True
        log.debug("shim zygote started (pid %d)", proc.pid)

    async def start(self, bundle: Path, timeout: float) -> dict:
        """Have the zygote fork a shim for `bundle`; its one-line JSON report."""
        if not self._alive():
            await asyncio.to_thread(self.warm)
        # through /proc/self/fd: a long state path does not fit a socket address (108 bytes)
        dirfd = os.open(self.state, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            reader, writer = await asyncio.open_unix_connection(f"/proc/self/fd/{dirfd}/shimfork.sock")
        except OSError as exc:
            raise ZygoteUnavailable(f"shim zygote: {exc.strerror or exc}") from None
        finally:
            os.close(dirfd)
        try:
            writer.write(str(bundle).encode() + b"\n")
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), timeout)
        finally:
            writer.close()
        text = line.decode(errors="replace").strip()
        if not text:
            return {"error": "shim exited before reporting", "code": 2}
        try:
            return json.loads(text)
        except ValueError:
            return {"error": f"shim: bad report {text[:200]!r}", "code": 2}

    def stop(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._stop_locked(timeout)

    def _stop_locked(self, timeout: float = 5.0) -> None:
        self._ready = False
        if self._wfd >= 0:
            os.close(self._wfd)  # EOF: the zygote leaves
            self._wfd = -1
        if self.proc is not None:
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            if self.proc.stdout and not self.proc.stdout.closed:
                self.proc.stdout.close()
            self.proc = None
