"""Docker's json-file log driver: the writer the shim feeds, and the reader behind `logs`.

A log file holds one JSON object per line, `{"log": "line\\n", "stream": "stdout", "time": RFC3339Nano}`,
as dockerd writes `<id>-json.log`. With `max_size` the file rotates to `<path>.1` … `<path>.<max_file-1>`
(the oldest dropped). Standard library only: the shim imports this module and must stay lean.
"""

from __future__ import annotations

import json
import os
import time
from typing import Callable, Iterator

# dockerd splits a line longer than this into partial messages (daemon/logger/copier.go bufSize)
MAX_LINE = 16 * 1024


def rfc3339nano(ns: int | None = None) -> str:
    """Go's time.RFC3339Nano in UTC (trailing zeros of the fraction trimmed, as Go formats it)."""
    ns = time.time_ns() if ns is None else ns
    secs, frac = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    fraction = f"{frac:09d}".rstrip("0")
    return f"{base}.{fraction}Z" if fraction else f"{base}Z"


def parse_time(text: str) -> float:
    """An RFC3339(Nano) timestamp → seconds since the epoch (nanoseconds beyond µs ignored)."""
    import datetime

    t = text.strip()
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    main, _, rest = t.partition(".")
    if rest:
        digits = "".join(c for c in rest if c.isdigit())
        tz = rest[len(digits):]
        t = f"{main}.{digits[:6].ljust(6, '0')}{tz}"
    try:
        return datetime.datetime.fromisoformat(t).timestamp()
    except ValueError:
        raise ValueError(f"{text!r} is not an RFC3339 timestamp") from None


def parse_size(value: str | int | None) -> int:
    """docker's `max-size` values: 10m, 1g, 500k, 1024 (bytes); 0/None/-1 means unlimited (-1)."""
    if value in (None, "", 0, "0", -1, "-1"):
        return -1
    if isinstance(value, int):
        return value
    text = str(value).strip().lower().rstrip("b")
    mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in "kmg" else text
    try:
        return int(float(number) * mult)
    except ValueError:
        raise ValueError(f"invalid max-size {value!r}") from None


class JSONFileWriter:
    """Appends entries to a json-file log, rotating by size. Lines are assembled per stream."""

    def __init__(self, path: str, max_size: int = -1, max_file: int = 1) -> None:
        self.path = path
        self.max_size = max_size if max_size and max_size > 0 else -1
        self.max_file = max(1, int(max_file or 1))
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self._size = os.fstat(self._fd).st_size
        self._pending: dict[str, bytes] = {}

    def write(self, stream: str, data: bytes) -> None:
        """Log `data` read from `stream`: complete lines now, a partial line when it grows past MAX_LINE."""
        buf = self._pending.get(stream, b"") + data
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            line = buf[start:nl + 1]
            while len(line) > MAX_LINE:  # as dockerd's copier: a long line goes out in 16K partials
                self._entry(stream, line[:MAX_LINE])
                line = line[MAX_LINE:]
            self._entry(stream, line)
            start = nl + 1
        rest = buf[start:]
        while len(rest) >= MAX_LINE:
            self._entry(stream, rest[:MAX_LINE])
            rest = rest[MAX_LINE:]
        self._pending[stream] = rest

    def flush(self, stream: str | None = None) -> None:
        """Write out partial lines (at EOF of a stream)."""
        for name in [stream] if stream else list(self._pending):
            rest = self._pending.pop(name, b"")
            if rest:
                self._entry(name, rest)

    def _entry(self, stream: str, line: bytes) -> None:
        record = json.dumps({"log": line.decode("utf-8", "replace"), "stream": stream, "time": rfc3339nano()},
                            ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        if self.max_size > 0 and self._size > 0 and self._size + len(record) > self.max_size:
            self._rotate()
        os.write(self._fd, record)
        self._size += len(record)

    def _rotate(self) -> None:
        os.close(self._fd)
        if self.max_file > 1:
            for i in range(self.max_file - 1, 0, -1):
                src = self.path if i == 1 else f"{self.path}.{i - 1}"
                try:
                    os.replace(src, f"{self.path}.{i}")
                except FileNotFoundError:
                    pass
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        else:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        self._fd = os.open(self.path, flags, 0o640)
        self._size = 0

    def close(self) -> None:
        self.flush()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class LogEntry:
    """One json-file record (a plain class: dataclasses would pull inspect/ast into the shim)."""

    __slots__ = ("stream", "log", "time")

    def __init__(self, stream: str, log: str, time: str) -> None:
        self.stream, self.log, self.time = stream, log, time

    def __repr__(self) -> str:
        return f"LogEntry({self.stream!r}, {self.log!r}, {self.time!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LogEntry) and (self.stream, self.log, self.time) == (other.stream, other.log,
                                                                                     other.time)

    def timestamp(self) -> float:
        return parse_time(self.time)


def log_files(path: str) -> list[str]:
    """The rotated files then the live one, oldest first."""
    rotated = []
    i = 1
    while os.path.exists(f"{path}.{i}"):
        rotated.append(f"{path}.{i}")
        i += 1
    return list(reversed(rotated)) + ([path] if os.path.exists(path) else [])


def _parse(line: bytes) -> LogEntry | None:
    try:
        obj = json.loads(line)
        return LogEntry(obj.get("stream", "stdout"), obj.get("log", ""), obj.get("time", ""))
    except (ValueError, AttributeError):
        return None  # a torn last line (the writer was killed mid-write) is skipped, as dockerd does


def read_logs(path: str, *, tail: int | None = None, since: float | None = None, until: float | None = None,
              follow: bool = False, stop: Callable[[], bool] | None = None,
              poll: float = 0.1) -> Iterator[LogEntry]:
    """Entries of a json-file log (with its rotated files): `tail` last N (None: all), `since`/`until`
    as epoch seconds; with `follow`, keep yielding new entries (across rotations) until `stop()`
    returns true and the file has been drained."""

    def wanted(e: LogEntry) -> bool:
        if since is None and until is None:
            return True
        try:
            t = e.timestamp()
        except ValueError:
            return False
        return (since is None or t >= since) and (until is None or t <= until)

    entries: list[LogEntry] = []
    position = (None, 0)  # (inode, offset) of the live file already read
    for f in log_files(path):
        try:
            with open(f, "rb") as fh:
                data = fh.read()
                if f == path:
                    complete = data.rfind(b"\n") + 1
                    position = (os.fstat(fh.fileno()).st_ino, complete)
                    data = data[:complete]
        except FileNotFoundError:
            continue
        for line in data.splitlines():
            e = _parse(line)
            if e is not None and wanted(e):
                entries.append(e)
    if tail is not None and tail >= 0:
        entries = entries[len(entries) - tail:] if tail else []
    yield from entries
    if not follow:
        return
    inode, offset = position
    buf = b""
    while True:
        finished = stop() if stop else False
        try:
            st = os.stat(path)
        except FileNotFoundError:
            st = None
        if st is not None and inode is not None and st.st_ino != inode:
            # rotated (maybe more than once): finish our file where it went, then the newer ones
            buf += _read_rotated_since(path, inode, offset)
            inode, offset = st.st_ino, 0
        elif st is not None and inode is None:
            inode, offset = st.st_ino, 0
        if st is not None:
            try:
                with open(path, "rb") as fh:
                    fh.seek(offset)
                    chunk = fh.read()
                    offset += len(chunk)
                    buf += chunk
            except FileNotFoundError:
                pass
        *lines, buf = buf.split(b"\n")
        for line in lines:
            e = _parse(line)
            if e is not None and wanted(e):
                yield e
        if finished:
            return
        time.sleep(poll)


def _read_rotated_since(path: str, inode: int, offset: int) -> bytes:
    """What was appended to the file `inode` after `offset`, plus every rotated file newer than it."""
    chunks: list[bytes] = []
    for f in reversed(log_files(path)[:-1] if os.path.exists(path) else log_files(path)):  # newest first
        try:
            with open(f, "rb") as fh:
                if os.fstat(fh.fileno()).st_ino == inode:
                    fh.seek(offset)
                    chunks.append(fh.read())
                    break
                chunks.append(fh.read())
        except FileNotFoundError:
            continue
    # not found: our file was dropped by rotation; every file still there is newer than it
    return b"".join(reversed(chunks))
