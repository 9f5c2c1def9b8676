"""pybuild's exceptions: each str() is the one-line message shown to the user (the CLI exits 1 on them)."""

from __future__ import annotations

import os
from typing import Any

from pyoci.errors import OCIError


def _go_quote(s: str) -> str:
    """Go's %q for the common case (BuildKit quotes the process argv with it)."""
    out = []
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


class BuildError(OCIError):
    """Base class: str() is the one-line user message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class DockerfileError(BuildError):
    """A problem at a line of the Dockerfile: renders as `Dockerfile:7: unknown instruction: FORM`.

    `path` is the Dockerfile as given by -f; only its basename is shown (as BuildKit does).
    `line` 0 means the error is about the file as a whole (no line shown).
    """

    def __init__(self, path: str | os.PathLike[str] | None, line: int, message: str) -> None:
        self.path = os.fspath(path) if path is not None else "Dockerfile"
        self.line = line
        self.detail = message
        name = os.path.basename(self.path) or "Dockerfile"
        super().__init__(f"{name}:{line}: {message}" if line > 0 else f"{name}: {message}")


class ContextError(BuildError):
    """The build context (or a named --build-context) is missing, unreadable or lacks a COPY source."""


class StepFailed(BuildError):
    """A RUN step exited non-zero.

    Message as BuildKit: `Dockerfile:LINE: RUN <cmd>: process "/bin/sh -c <cmd>" did not complete
    successfully: exit code: 2`. `instruction` is the source text shown (e.g. `RUN make`), `argv` the
    process argv, `output` the tail of its combined output (kept for the CLI to print above the error).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        line: int,
        instruction: str,
        argv: list[str],
        exit_code: int,
        output: str | bytes = "",
        step: Any = None,
    ) -> None:
        self.path = os.fspath(path) if path is not None else "Dockerfile"
        self.line = line
        self.instruction = instruction
        self.argv = list(argv)
        self.exit_code = exit_code
        self.output = output.decode("utf-8", "replace") if isinstance(output, bytes) else output
        self.step = step
        name = os.path.basename(self.path) or "Dockerfile"
        super().__init__(
            f"{name}:{line}: {instruction}: process {_go_quote(' '.join(self.argv))} "
            f"did not complete successfully: exit code: {exit_code}"
        )


def source_context(data: str | bytes, start: int, end: int | None = None, filename: str = "Dockerfile") -> str:
    """The Dockerfile excerpt BuildKit prints above an error (errdefs.Source.Print): the file name and
    first line, then the lines around [start, end] with `>>>` marking the failing ones.

        Dockerfile:3
        --------------------
           1 |     FROM busybox
           2 |     ENV A=1
           3 | >>> RUN exit 2
        --------------------
    """
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    lines = text.split("\n")
    end = start if end is None else end
    if start < 1 or start > len(lines):
        return ""
    end = min(end, len(lines))
    first, last = start, end
    pad = 4 if end == start else 2
    p = 0
    while p < pad:  # widen by the same steps as BuildKit
        if first > 1:
            first -= 1
            p += 1
        if last != len(lines):
            last += 1
            p += 1
        p += 1
    out = [f"{os.path.basename(filename) or 'Dockerfile'}:{start}", "-" * 20]
    for i in range(first, last + 1):
        mark = ">>>" if start <= i <= end else "   "
        out.append(f" {i:3d} | {mark} {lines[i - 1]}")
    out.append("-" * 20)
    return "\n".join(out) + "\n"
