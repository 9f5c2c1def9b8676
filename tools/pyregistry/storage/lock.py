"""The garbage-collect lock: a lock file (flock) under the storage root.

The server holds it shared around each check-then-link step (manifest validate-then-link, upload
commit-then-link, cross-repo mount); `garbage-collect` holds it exclusively from its final mark to the end of
its sweep. So a manifest whose blobs were found present is linked before the sweep starts -- and then marks
them -- or is validated after the sweep, when a swept blob is already gone and the client is told so.

flock() is per open file description, so one process takes the shared lock once for all its concurrent
holders (a count); a blocking acquisition runs in a thread so the event loop never waits on gc.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from typing import AsyncIterator


def _open(path: str) -> int:
    # read-only is enough for flock, and works when gc (say, as root) created the file for a server user
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)


class SharedLock:
    """The server's side: `async with lock.held():` -- shared with every other holder in any process,
    excluded only by an exclusive holder (gc)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._locked = False                      # this process holds LOCK_SH on _fd
        self._holders = 0
        self._waiting: asyncio.Future | None = None  # a thread blocked in flock (gc holds the lock)

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        await self._acquire()
        try:
            yield
        finally:
            self._holders -= 1
            if self._holders == 0:
                self._unlock()

    async def _acquire(self) -> None:
        while not self._locked:
            if self._waiting is None:
                if self._fd is None:
                    self._fd = _open(self.path)
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # the usual case: no gc running
                    self._locked = True
                    break
                except BlockingIOError:
                    fut = asyncio.get_running_loop().run_in_executor(None, fcntl.flock, self._fd, fcntl.LOCK_SH)
                    fut.add_done_callback(self._thread_done)
                    self._waiting = fut
            # shared by every waiter; a cancelled waiter leaves the thread's lock to _thread_done
            await asyncio.shield(self._waiting)
        self._holders += 1

    def _thread_done(self, fut: asyncio.Future) -> None:
        self._waiting = None
        if not fut.cancelled() and fut.exception() is None:
            self._locked = True
            # the waiters re-check once they run; if they were all cancelled, nobody holds it: let go
            asyncio.get_running_loop().call_soon(self._unlock_if_unused)

    def _unlock_if_unused(self) -> None:
        if self._holders == 0:
            self._unlock()

    def _unlock(self) -> None:
        if self._locked and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._locked = False

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@contextlib.asynccontextmanager
async def exclusive(path: str) -> AsyncIterator[None]:
    """gc's side: waits (in a thread) until no server is inside a check-then-link step."""
    fd = _open(path)
    try:
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock
