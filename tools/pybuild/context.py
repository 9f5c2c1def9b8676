"""Build contexts: the main local directory (filtered by .dockerignore) and named `--build-context`s
(`NAME=DIR`, `NAME=oci-layout://DIR[:TAG|@DIGEST]`, `NAME=docker-image://REF`).

A local context answers which paths a COPY source names, walks them, and hashes them (path, mode,
owner, content or link target) for the step cache key.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from dataclasses import dataclass
from typing import Iterator

from .dockerignore import ContextFilter
from .errors import BuildError, ContextError


@dataclass(frozen=True)
class NamedContext:
    """kind: local | oci-layout | docker-image. `path` for local/oci-layout, `ref` the tag/digest
    (oci-layout) or image reference (docker-image)."""

    name: str
    kind: str
    path: str = ""
    ref: str = ""


def parse_build_context(spec: str) -> NamedContext:
    name, sep, value = spec.partition("=")
    name = name.strip()
    if not sep or not name or not value:
        raise BuildError(f"invalid --build-context {spec!r}: want NAME=VALUE")
    if value.startswith("oci-layout://"):
        rest = value[len("oci-layout://"):]
        ref = ""
        if "@" in rest:
            rest, ref = rest.rsplit("@", 1)
        else:
            head, colon, tail = rest.rpartition(":")
            if colon and "/" not in tail and head:
                rest, ref = head, tail
        if not os.path.isdir(rest):
            raise ContextError(f"--build-context {name}: no OCI layout at {rest}")
        return NamedContext(name.lower(), "oci-layout", os.path.abspath(rest), ref or "latest")
    if value.startswith("docker-image://"):
        return NamedContext(name.lower(), "docker-image", ref=value[len("docker-image://"):])
    if "://" in value or value.startswith("git@"):
        raise BuildError(f"not supported yet: --build-context {name}={value} (only local dirs, "
                         "oci-layout:// and docker-image://)")
    if not os.path.isdir(value):
        raise ContextError(f"--build-context {name}: {value} is not a directory")
    return NamedContext(name.lower(), "local", os.path.abspath(value))


class LocalContext:
    """A local directory context. The main one honours .dockerignore (`dockerfile` decides which
    ignore file applies); named local contexts are sent whole, as BuildKit does."""

    def __init__(self, root: str, dockerfile: str | None = None, main: bool = True) -> None:
        self.root = os.path.abspath(root)
        self.filter = ContextFilter.for_build(self.root, dockerfile) if main else ContextFilter(self.root)
        self._hashes: dict[tuple, str] = {}
        self._lock = threading.Lock()

    def match(self, src: str) -> list[str]:
        """Context-relative paths a source (glob) names, excluded ones dropped; [] when none."""
        return self.filter.match_sources(src)

    def entries(self, rel: str) -> Iterator[str]:
        """`rel` and, for a directory, everything included below it (parents first)."""
        full = os.path.join(self.root, rel) if rel else self.root
        if os.path.isdir(full) and not os.path.islink(full):
            if rel == "":
                yield ""
            yield from self.filter.walk(rel)
        else:
            yield rel

    def path(self, rel: str) -> str:
        return os.path.join(self.root, rel) if rel else self.root

    def _file_hash(self, full: str, st: os.stat_result) -> str:
        k = (full, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        with self._lock:
            if k in self._hashes:
                return self._hashes[k]
        h = hashlib.sha256()
        with open(full, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        with self._lock:
            self._hashes[k] = h.hexdigest()
        return self._hashes[k]

    def checksum(self, srcs: list[str], missing: "callable[[str], Exception]") -> str:  # type: ignore[valid-type]
        """sha256 over every included path the sources name: path, mode, uid/gid, content/link target."""
        h = hashlib.sha256()
        for src in srcs:
            found = self.match(src)
            if not found:
                raise missing(src)
            h.update(f"src {src}\n".encode())
            for top in found:
                for rel in self.entries(top):
                    full = self.path(rel)
                    try:
                        st = os.lstat(full)
                    except FileNotFoundError:
                        continue
                    if stat.S_ISREG(st.st_mode):
                        what = self._file_hash(full, st)
                    elif stat.S_ISLNK(st.st_mode):
                        what = os.readlink(full)
                    else:
                        what = ""
                    h.update(f"{rel}\0{st.st_mode:o}\0{st.st_uid}:{st.st_gid}\0{what}\n".encode())
        return h.hexdigest()
