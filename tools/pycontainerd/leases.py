"""Leases: named, optionally expiring sets of resources (content, snapshots) that gc must keep,
protecting work in progress such as a pull before its image record exists (containerd's leases)."""

from __future__ import annotations

import datetime
import os
import secrets
import time
from contextlib import contextmanager
from typing import Iterator

from . import errdefs
from .metadata import NamespacedTables, now

EXPIRE_LABEL = "containerd.io/gc.expire"
TEMPORARY_LABEL = "pycontainerd/temporary"  # a lease held by one call: meaningless once the daemon restarts


class LeaseManager:
    def __init__(self, metadata: str | os.PathLike) -> None:
        self.tables = NamespacedTables(metadata, "leases.json", "lease")

    def create(self, namespace: str, lease_id: str = "", labels: dict | None = None,
               expire_seconds: float | None = None) -> dict:
        lease_id = lease_id or f"lease-{secrets.token_hex(8)}"
        labels = dict(labels or {})
        if expire_seconds:
            when = datetime.datetime.fromtimestamp(time.time() + expire_seconds, datetime.timezone.utc)
            labels[EXPIRE_LABEL] = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return self.tables(namespace).create(lease_id, {"id": lease_id, "created_at": now(), "labels": labels,
                                                        "resources": []})

    def get(self, namespace: str, lease_id: str) -> dict:
        return self.tables(namespace).get(lease_id)

    def list(self, namespace: str) -> list[dict]:
        return sorted(self.tables(namespace).list(), key=lambda r: r["created_at"])

    def delete(self, namespace: str, lease_id: str) -> None:
        self.tables(namespace).delete(lease_id)

    def add_resource(self, namespace: str, lease_id: str, type_: str, resource_id: str) -> None:
        def change(row: dict) -> None:
            item = {"id": resource_id, "type": type_}
            if item not in row["resources"]:
                row["resources"].append(item)

        self.tables(namespace).update(lease_id, change)

    def delete_resource(self, namespace: str, lease_id: str, type_: str, resource_id: str) -> None:
        def change(row: dict) -> None:
            row["resources"] = [r for r in row["resources"] if r != {"id": resource_id, "type": type_}]

        self.tables(namespace).update(lease_id, change)

    def expired(self, row: dict) -> bool:
        stamp = (row.get("labels") or {}).get(EXPIRE_LABEL)
        if not stamp:
            return False
        try:
            when = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except ValueError:
            return False
        try:
            return when.timestamp() < time.time()
        except ValueError:
            return False

    def protected(self) -> dict[str, set[tuple[str, str]]]:
        """namespace → {(type, id)} held by live leases (expired ones are dropped on the way)."""
        out: dict[str, set[tuple[str, str]]] = {}
        for ns, table in self.tables.all():
            for row in table.list():
                if self.expired(row):
                    table.discard(row["id"])
                    continue
                out.setdefault(ns, set()).update((r["type"], r["id"]) for r in row["resources"])
        return out

    @contextmanager
    def temporary(self, namespace: str, expire_seconds: float = 24 * 3600) -> Iterator[str]:
        """A lease for one operation, removed at its end (a crash leaves it to expire)."""
        row = self.create(namespace, labels={TEMPORARY_LABEL: "true"}, expire_seconds=expire_seconds)
        try:
            yield row["id"]
        finally:
            try:
                self.delete(namespace, row["id"])
            except errdefs.NotFound:
                pass

    def drop_temporary(self) -> int:
        """At daemon start: the calls that held temporary leases died with the previous daemon."""
        n = 0
        for _ns, table in self.tables.all():
            for row in table.list():
                if (row.get("labels") or {}).get(TEMPORARY_LABEL):
                    table.discard(row["id"])
                    n += 1
        return n
