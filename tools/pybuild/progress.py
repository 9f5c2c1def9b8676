"""Progress as BuildKit's plain output, and a compact live view for terminals.

Plain (what CI logs show):

    #5 [2/4] RUN make
    #5 0.512 <output line>
    #5 DONE 1.2s

    #6 [3/4] COPY . /src
    #6 CACHED

The tty view prints the same vertices but shows a step's output only when it fails, and rewrites a
single status line (`[+] Building 3.2s (5/9)`) while steps run.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TextIO


@dataclass
class Vertex:
    progress: "Progress"
    number: int
    name: str
    started: float = field(default_factory=time.monotonic)
    output: list[str] = field(default_factory=list)
    _partial: bytes = b""
    closed: bool = False

    def log(self, data: bytes) -> None:
        """Output of the step's process: printed line by line with the time since the vertex started."""
        buf = self._partial + data
        *lines, self._partial = buf.split(b"\n")
        for raw in lines:
            self._line(raw.decode("utf-8", "replace").rstrip("\r"))

    def _line(self, text: str) -> None:
        self.output.append(text)
        if len(self.output) > 200:
            del self.output[:100]
        self.progress._emit(self, f"{time.monotonic() - self.started:.3f} {text}", output=True)

    def info(self, text: str) -> None:
        self.progress._emit(self, text)

    def flush(self) -> None:
        if self._partial:
            self._line(self._partial.decode("utf-8", "replace"))
            self._partial = b""

    def done(self) -> None:
        self.flush()
        self._close(f"DONE {time.monotonic() - self.started:.1f}s")

    def cached(self) -> None:
        self._close("CACHED")

    def error(self, message: str) -> None:
        self.flush()
        self._close(f"ERROR: {message}")

    def _close(self, text: str) -> None:
        if not self.closed:
            self.closed = True
            self.progress._emit(self, text, last=True)


class Progress:
    """Thread-safe vertex numbering and printing. mode: plain | tty | quiet."""

    def __init__(self, mode: str = "plain", out: TextIO | None = None) -> None:
        self.out = out or sys.stderr
        self.mode = mode
        self._n = 0
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._current: Vertex | None = None
        self._done = 0

    def vertex(self, name: str) -> Vertex:
        with self._lock:
            self._n += 1
            v = Vertex(self, self._n, name)
        self._emit(v, name, first=True)
        return v

    def message(self, text: str) -> None:
        with self._lock:
            self._clear_status()
            print(text, file=self.out, flush=True)

    def _emit(self, v: Vertex, text: str, first: bool = False, last: bool = False, output: bool = False) -> None:
        if self.mode == "quiet":
            return
        with self._lock:
            if self.mode == "tty":
                self._clear_status()
                if output:
                    pass  # kept in v.output; shown on failure by the CLI
                elif first:
                    print(f"#{v.number} {text}", file=self.out)
                elif last:
                    self._done += 1
                    print(f"#{v.number} {text}", file=self.out)
                self._status()
                return
            if self._current is not v:  # another vertex printed meanwhile: a blank line, then ours again
                if self._current is not None:
                    print("", file=self.out)
                if not first:
                    print(f"#{v.number} {v.name}", file=self.out)
            self._current = v
            print(f"#{v.number} {text}", file=self.out, flush=True)

    def _status(self) -> None:
        line = f"[+] Building {time.monotonic() - self._started:.1f}s ({self._done}/{self._n})"
        self.out.write(line + "\r")
        self.out.flush()

    def _clear_status(self) -> None:
        if self.mode == "tty":
            self.out.write("\x1b[2K\r")

    def close(self) -> None:
        with self._lock:
            if self.mode == "tty":
                self._clear_status()
                print(f"[+] Building {time.monotonic() - self._started:.1f}s ({self._done}/{self._n}) FINISHED",
                      file=self.out, flush=True)
            elif self.mode == "plain" and self._current is not None:
                print("", file=self.out, flush=True)


def choose_mode(requested: str, stream: TextIO | None = None) -> str:
    s = stream or sys.stderr
    if requested in ("plain", "tty", "quiet"):
        return requested
    try:
        return "tty" if s.isatty() else "plain"
    except (AttributeError, ValueError):
        return "plain"
