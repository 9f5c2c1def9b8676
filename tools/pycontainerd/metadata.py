"""Small persistent tables for the daemon's records (namespaces, images, containers, leases, snapshots).

A table is one JSON object in one file, cached in memory and rewritten atomically (temp file +
rename) on every change, so a crash leaves either the old or the new table, never half of one.
"""

from __future__ import annotations

import copy
import json
import os
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

from pyoci.fsutil import atomic_write

from . import errdefs


class Table:
    """`name → record` (a JSON object), thread-safe."""

    def __init__(self, path: str | os.PathLike, what: str = "record") -> None:
        self.path = Path(path)
        self.what = what
        self._lock = threading.RLock()
        self._rows: dict[str, dict] | None = None

    def _load(self) -> dict[str, dict]:
        if self._rows is None:
            try:
                self._rows = json.loads(self.path.read_bytes())
            except FileNotFoundError:
                self._rows = {}
            except ValueError as exc:
                raise errdefs.Internal(f"{self.path}: corrupt metadata: {exc}") from None
        return self._rows

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # compact: json.dumps with an indent runs the pure-Python encoder over the whole table at every change
        atomic_write(self.path, json.dumps(self._rows, sort_keys=True, separators=(",", ":")).encode(), mode=0o600,
                     fsync=False)

    def get(self, key: str) -> dict:
        with self._lock:
            row = self._load().get(key)
            if row is None:
                raise errdefs.NotFound(f"{self.what} {key!r}: not found")
            return copy.deepcopy(row)

    def find(self, key: str) -> dict | None:
        with self._lock:
            row = self._load().get(key)
            return copy.deepcopy(row) if row is not None else None

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._load()

    def list(self) -> list[dict]:
        with self._lock:
            return copy.deepcopy(list(self._load().values()))

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._load())

    def create(self, key: str, row: dict) -> dict:
        with self._lock:
            rows = self._load()
            if key in rows:
                raise errdefs.AlreadyExists(f"{self.what} {key!r}: already exists")
            rows[key] = copy.deepcopy(row)
            self._save()
            return copy.deepcopy(row)

    def put(self, key: str, row: dict) -> dict:
        with self._lock:
            self._load()[key] = copy.deepcopy(row)
            self._save()
            return copy.deepcopy(row)

    def update(self, key: str, change: Callable[[dict], Any]) -> dict:
        """Apply `change` to a copy of the row and store it, under the table's lock."""
        with self._lock:
            rows = self._load()
            if key not in rows:
                raise errdefs.NotFound(f"{self.what} {key!r}: not found")
            row = copy.deepcopy(rows[key])
            change(row)
            rows[key] = row
            self._save()
            return copy.deepcopy(row)

    def delete(self, key: str) -> dict:
        with self._lock:
            rows = self._load()
            if key not in rows:
                raise errdefs.NotFound(f"{self.what} {key!r}: not found")
            row = rows.pop(key)
            self._save()
            return row

    def discard(self, key: str) -> None:
        with self._lock:
            if self._load().pop(key, None) is not None:
                self._save()


class NamespacedTables:
    """One Table per namespace under `root/<ns>/<file>`."""

    def __init__(self, root: str | os.PathLike, filename: str, what: str) -> None:
        self.root = Path(root)
        self.filename = filename
        self.what = what
        self._lock = threading.Lock()
        self._tables: dict[str, Table] = {}

    def __call__(self, namespace: str) -> Table:
        with self._lock:
            table = self._tables.get(namespace)
            if table is None:
                table = self._tables[namespace] = Table(self.root / namespace / self.filename, self.what)
            return table

    def namespaces(self) -> list[str]:
        try:
            return sorted(p.name for p in self.root.iterdir() if (p / self.filename).exists())
        except FileNotFoundError:
            return []

    def all(self) -> Iterator[tuple[str, Table]]:
        for ns in self.namespaces():
            yield ns, self(ns)


def now() -> str:
    """RFC 3339 with nanoseconds in UTC, as Go's time.Time marshals."""
    import time

    ns = time.time_ns()
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"
