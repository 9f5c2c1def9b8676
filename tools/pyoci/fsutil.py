"""Atomic file writes: a temp file in the same directory, fsync, then rename."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from typing import IO, Iterator


@contextmanager
def atomic_open(path: str | os.PathLike, mode: int = 0o644, fsync: bool = True) -> Iterator[IO[bytes]]:
    """Yield a binary file; on clean exit it replaces `path` in one rename, on error it vanishes."""
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix="-" + os.path.basename(path)[:32])
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write(path: str | os.PathLike, data: bytes, mode: int = 0o644, fsync: bool = True) -> None:
    with atomic_open(path, mode, fsync) as f:
        f.write(data)
