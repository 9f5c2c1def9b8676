"""Garbage collection, as containerd's: mark from the roots (images, containers, leases, gc.root
labels) through images → content → snapshots, then sweep what is unmarked.

Work in progress holds `lock.shared()` (a pull, an import, an unpack); a collection holds it
exclusively, so it sees either none or all of such an operation's records. Leases keep content
and snapshots that no image refers to yet.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from pyoci import mediatypes as mt
from pyoci.errors import OCIError

from .snapshots import COMMITTED, chain_ids

log = logging.getLogger("pycontainerd.gc")

ROOT_LABEL = "containerd.io/gc.root"
PARTIAL_GRACE = 600.0  # seconds an unfinished blob is left alone


class SharedLock:
    """Many shared holders or one exclusive; shared holds are re-entrant (readers are not starved
    by a waiting writer, so a thread holding it shared may take it shared again)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer: int | None = None
        self._depth = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        me = threading.get_ident()
        with self._cond:
            while self._writer is not None and self._writer != me:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        me = threading.get_ident()
        with self._cond:
            if self._writer == me:
                self._depth += 1
            else:
                while self._writer is not None or self._readers:
                    self._cond.wait()
                self._writer, self._depth = me, 1
        try:
            yield
        finally:
            with self._cond:
                self._depth -= 1
                if self._depth == 0:
                    self._writer = None
                    self._cond.notify_all()


@dataclass
class Result:
    content: list[str] = field(default_factory=list)
    snapshots: list[str] = field(default_factory=list)
    records: int = 0
    bytes_freed: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"content": self.content, "snapshots": self.snapshots, "records": self.records,
                "bytes_freed": self.bytes_freed, "seconds": round(self.seconds, 6)}


class Collector:
    def __init__(self, daemon) -> None:
        self.daemon = daemon
        self.lock = SharedLock()

    def collect(self) -> Result:
        started = time.monotonic()
        result = Result()
        d = self.daemon
        with self.lock.exclusive():
            leased = d.leases.protected()
            namespaces = set(d.images.tables.namespaces()) | set(d.content.records.namespaces()) | \
                set(d.snapshots.records.namespaces()) | set(leased) | set(d.containers.namespaces())
            keep_blobs: set[str] = set()
            for ns in sorted(namespaces):
                blobs, snaps = self._mark(ns, leased.get(ns, set()))
                keep_blobs |= blobs
                result.records += self._sweep_records(ns, blobs, snaps, result)
            for digest in d.content.all_blobs():
                if digest in keep_blobs:
                    continue
                path = d.content.blob_path(digest)
                try:
                    result.bytes_freed += path.stat().st_size
                    path.unlink()
                    result.content.append(digest)
                except FileNotFoundError:
                    pass
            self._sweep_partials(d.content.path / "blobs", result)
            result.snapshots.extend(d.snapshots.sweep_storage())
        result.seconds = time.monotonic() - started
        if result.content or result.snapshots:
            log.info("gc removed %d blobs, %d snapshots (%d bytes) in %.3fs", len(result.content),
                     len(result.snapshots), result.bytes_freed, result.seconds)
        return result

    def _mark(self, ns: str, leased: set[tuple[str, str]]) -> tuple[set[str], set[str]]:
        d = self.daemon
        layout = d.content.layout
        snap_type = f"snapshots/{d.snapshots.name}"
        blobs = {rid for kind, rid in leased if kind == "content"}
        snaps = {rid for kind, rid in leased if kind == snap_type}
        for row in d.content.records(ns).list():
            if (row.get("labels") or {}).get(ROOT_LABEL):
                blobs.add(row["digest"])
        for image in d.images.tables(ns).list():
            for desc in _walk(layout, image["target"]):
                blobs.add(desc["digest"])
                if desc.get("mediaType") in mt.MANIFEST_TYPES:
                    snaps.update(self._image_chains(layout, desc))
        for container in d.containers.list(ns):
            if container.get("snapshot_key"):
                snaps.add(container["snapshot_key"])
        # active and view snapshots are the work of their creator: they go when removed, not by gc
        table = d.snapshots.records(ns)
        rows = {r["name"]: r for r in table.list()}
        snaps.update(name for name, r in rows.items() if r["kind"] != COMMITTED)
        for row in rows.values():
            if (row.get("labels") or {}).get(ROOT_LABEL):
                snaps.add(row["name"])
        stack = list(snaps)
        while stack:
            row = rows.get(stack.pop())
            if row and row.get("parent") and row["parent"] not in snaps:
                snaps.add(row["parent"])
                stack.append(row["parent"])
        return blobs, snaps

    @staticmethod
    def _image_chains(layout, desc: dict) -> set[str]:
        try:
            manifest = layout.read_json(desc)
            config = layout.read_json(manifest["config"])
            return set(chain_ids(list((config.get("rootfs") or {}).get("diff_ids") or [])))
        except (OCIError, KeyError, TypeError, ValueError):
            return set()

    def _sweep_records(self, ns: str, blobs: set[str], snaps: set[str], result: Result) -> int:
        d = self.daemon
        removed = 0
        content = d.content.records(ns)
        for digest in content.keys():
            if digest not in blobs:
                content.discard(digest)
                d.publish(ns, "/content/delete", {"digest": digest})
                removed += 1
        table = d.snapshots.records(ns)
        # children before parents: a parent is unmarked only if all its children are
        for name in sorted(table.keys(), key=lambda n: -_depth(table, n)):
            if name not in snaps:
                table.discard(name)
                d.publish(ns, "/snapshot/remove", {"key": name, "snapshotter": d.snapshots.name})
                removed += 1
        return removed

    @staticmethod
    def _sweep_partials(blobs: Path, result: Result) -> None:
        """Interrupted downloads and ingests untouched for a while (a live upload keeps its file's
        mtime fresh; a recent .partial is worth resuming)."""
        cutoff = time.time() - PARTIAL_GRACE
        for alg in blobs.iterdir() if blobs.is_dir() else []:
            if not alg.is_dir():
                continue
            for entry in alg.iterdir():
                if not (entry.name.endswith(".partial") or entry.name.startswith(".tmp")):
                    continue
                try:
                    st = entry.stat()
                    if st.st_mtime < cutoff:
                        entry.unlink()
                        result.bytes_freed += st.st_size
                except FileNotFoundError:
                    pass


def _walk(layout, target: dict):
    try:
        yield from layout.walk(target, missing_ok=True)
    except (OCIError, ValueError):
        yield target


def _depth(table, name: str) -> int:
    n = 0
    row = table.find(name)
    while row and row.get("parent") and n < 1000:
        n += 1
        row = table.find(row["parent"])
    return n
