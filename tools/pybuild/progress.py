"""Progress as BuildKit's plain output, and a compact live view for terminals.

Plain (what CI logs show):

    #5 [2/4] RUN make
    #5 0.512 <output line>
    #5 DONE 1.2s

    #6 [3/4] COPY . /src
    #6 CACHED

The tty view (BuildKit's look, plain ANSI: no extra dependency) keeps a `[+] Building 3.2s (5/9)`
header and the running steps with their last output line at the bottom, redrawn on every event;
finished steps scroll up as ` => [2/4] RUN make  1.2s`. A step's output is shown in full only
when it fails (the CLI prints it).
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
        self._running: list[Vertex] = []
        self._drawn = 0  # lines of the live view currently on screen

    def vertex(self, name: str) -> Vertex:
        with self._lock:
            self._n += 1
            v = Vertex(self, self._n, name)
        self._emit(v, name, first=True)
        return v

    def message(self, text: str) -> None:
        with self._lock:
            self._erase()
            print(text, file=self.out, flush=True)
            if self.mode == "tty":
                self._draw()

    def _emit(self, v: Vertex, text: str, first: bool = False, last: bool = False, output: bool = False) -> None:
        if self.mode == "quiet":
            return
        with self._lock:
            if self.mode == "tty":
                self._tty_event(v, text, first, last, output)
                return
            if self._current is not v:  # another vertex printed meanwhile: a blank line, then ours again
                if self._current is not None:
                    print("", file=self.out)
                if not first:
                    print(f"#{v.number} {v.name}", file=self.out)
            self._current = v
            print(f"#{v.number} {text}", file=self.out, flush=True)

    # -- the live view: finished vertices scroll up, running ones are redrawn under a header --------
    def _tty_event(self, v: Vertex, text: str, first: bool, last: bool, output: bool) -> None:
        self._erase()
        if first:
            self._running.append(v)
        elif last:
            if v in self._running:
                self._running.remove(v)
            self._done += 1
            took = f"{time.monotonic() - v.started:.1f}s"
            state = "CACHED " if text == "CACHED" else "ERROR " if text.startswith("ERROR") else ""
            print(f" => {state}{v.name}  {took if not state else ''}".rstrip(), file=self.out)
            if text.startswith("ERROR"):
                print(f" => {text}", file=self.out)
        self._draw()

    def _erase(self) -> None:
        if self._drawn:
            self.out.write(f"\x1b[{self._drawn}A\r\x1b[J")
            self._drawn = 0

    def _draw(self) -> None:
        lines = [f"[+] Building {time.monotonic() - self._started:.1f}s ({self._done}/{self._n})"]
        for r in self._running[-8:]:
            lines.append(f" => {r.name[:100]}  {time.monotonic() - r.started:.1f}s")
            if r.output:
                lines.append(f" => => # {r.output[-1][:100]}")
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()
        self._drawn = len(lines)

    def close(self) -> None:
        with self._lock:
            if self.mode == "tty":
                self._erase()
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
