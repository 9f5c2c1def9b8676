"""Containers: containerd's container records (metadata only; running them is the Tasks service's).

A record: `{id, labels, image, runtime: {name, options}, spec, snapshotter, snapshot_key,
created_at, updated_at, extensions}`, stored as `<root>/containers/<ns>/<id>.json` (compact JSON: the C
encoder; an indented dump of a spec with docker's seccomp profile goes through the pure-Python one).

Combined calls (docs/protocol.md, "Combined calls"): Create with `snapshot` prepares the snapshot and
writes the record as one step, with `unique_label` refusing a label value another record holds (an
in-memory index per namespace and label key, built on first use and kept by create/update/delete);
Delete with `force` deletes the task first and with `remove_anonymous_volumes` releases the volumes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import threading
from pathlib import Path

from pyoci.fsutil import atomic_write

from .. import errdefs
from ..events import matcher
from ..metadata import now
from ..timing import stage

log = logging.getLogger("pycontainerd.containers")

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,75}$")
# the fields a `brief` Create reply leaves out: the caller sent them (the spec alone is ~30 KB)
_SENT_FIELDS = ("spec", "extensions")
_FIELDS = ("labels", "image", "runtime", "spec", "snapshotter", "snapshot_key", "extensions", "sandbox")


class ContainerStore:
    def __init__(self, root: str | os.PathLike, daemon) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o711)
        self.daemon = daemon
        self._lock = threading.RLock()
        # (namespace, label key) → {value: container id}, for Create's unique_label; kept under _lock
        self._unique: dict[tuple[str, str], dict[str, str]] = {}

    def _path(self, namespace: str, cid: str) -> Path:
        if not _ID.match(cid or ""):
            raise errdefs.InvalidArgument(f"container id {cid!r}: want letters, digits, _ . - (at most 76)")
        return self.root / namespace / f"{cid}.json"

    def namespaces(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir()) if self.root.is_dir() else []

    def get(self, namespace: str, cid: str) -> dict:
        try:
            return json.loads(self._path(namespace, cid).read_bytes())
        except FileNotFoundError:
            raise errdefs.NotFound(f"container \"{cid}\" in namespace \"{namespace}\": not found") from None

    def list(self, namespace: str, filters: list[str] | None = None) -> list[dict]:
        d = self.root / namespace
        out = []
        match = matcher(filters)
        for p in sorted(d.glob("*.json")) if d.is_dir() else []:
            try:
                row = json.loads(p.read_bytes())
            except (FileNotFoundError, ValueError):
                continue
            if match(row):
                out.append(row)
        return out

    def _write(self, namespace: str, row: dict) -> None:
        path = self._path(namespace, row["id"])
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o711)
        atomic_write(path, json.dumps(row, separators=(",", ":")).encode(), mode=0o600, fsync=False)

    def _label_owners(self, namespace: str, key: str) -> dict[str, str]:
        """{label value: container id} of the namespace's records (under _lock)."""
        index = self._unique.get((namespace, key))
        if index is None:
            index = {}
            for row in self.list(namespace):
                value = (row.get("labels") or {}).get(key)
                if value:
                    index.setdefault(value, row["id"])
            self._unique[(namespace, key)] = index
        return index

    def _reindex(self, namespace: str, cid: str, labels: dict | None) -> None:
        """The unique-label indexes after a record changed (labels None: deleted)."""
        for (ns, key), index in self._unique.items():
            if ns != namespace:
                continue
            for value in [v for v, owner in index.items() if owner == cid]:
                del index[value]
            value = (labels or {}).get(key)
            if value:
                index.setdefault(value, cid)

    def create(self, namespace: str, container: dict, snapshot: dict | None = None,
               unique_label: str = "") -> dict:
        """The record; with `snapshot` {key, parent, labels} its snapshot prepared first (removed again if
        the record cannot be written); with `unique_label` AlreadyExists when another record has that
        label's value: `name "<value>" is already in use by container "<id>"`."""
        cid = container.get("id", "")
        path = self._path(namespace, cid)
        runtime = container.get("runtime") or {}
        if not runtime.get("name"):
            runtime = {"name": "io.containerd.runc.v2", "options": runtime.get("options") or {}}
        stamp = now()
        row = {"id": cid, "labels": container.get("labels") or {}, "image": container.get("image", ""),
               "runtime": runtime, "spec": container.get("spec") or {},
               "snapshotter": container.get("snapshotter") or (self.daemon.snapshots.name
                                                                if container.get("snapshot_key") else ""),
               "snapshot_key": container.get("snapshot_key", ""), "created_at": stamp, "updated_at": stamp,
               "extensions": container.get("extensions") or {}, "sandbox": container.get("sandbox", "")}
        if snapshot is not None:
            row["snapshot_key"] = snapshot.get("key") or cid
            row["snapshotter"] = self.daemon.snapshots.name
        value = row["labels"].get(unique_label) if unique_label else None
        with self._lock:
            if path.exists():
                raise errdefs.AlreadyExists(f"container \"{cid}\": already exists")
            if value:
                owner = self._label_owners(namespace, unique_label).get(value)
                if owner is not None:
                    raise errdefs.AlreadyExists(f"name \"{value}\" is already in use by container \"{owner}\"")
            self.daemon.ensure_namespace(namespace)
            if snapshot is None:
                self._write(namespace, row)
            else:  # under the collector's shared lock: it never sees the snapshot without its record
                with self.daemon.gc.lock.shared():
                    self.daemon.snapshots.prepare(namespace, row["snapshot_key"], snapshot.get("parent", ""),
                                                  snapshot.get("labels"))
                    try:
                        self._write(namespace, row)
                    except BaseException:
                        self.daemon.snapshots.remove(namespace, row["snapshot_key"])
                        raise
            self._reindex(namespace, cid, row["labels"])
        if snapshot is not None:
            self.daemon.publish(namespace, "/snapshot/prepare", {"key": row["snapshot_key"],
                                                                 "parent": snapshot.get("parent", ""),
                                                                 "snapshotter": row["snapshotter"]})
        self.daemon.publish(namespace, "/containers/create",  # labels: names for `pyctr events --since` replays
                            {"id": cid, "image": row["image"], "runtime": {"name": runtime["name"]},
                             "labels": row.get("labels") or {}})
        return row

    def update(self, namespace: str, container: dict, fields: list[str] | None = None) -> dict:
        cid = container.get("id", "")
        with self._lock:
            row = self.get(namespace, cid)
            for f in fields or [f for f in _FIELDS if f in container]:
                if f.startswith("labels."):
                    key = f[len("labels."):]
                    value = (container.get("labels") or {}).get(key)
                    if value:
                        row["labels"][key] = value
                    else:
                        row["labels"].pop(key, None)
                elif f.startswith("extensions."):
                    key = f[len("extensions."):]
                    if key in (container.get("extensions") or {}):
                        row["extensions"][key] = container["extensions"][key]
                    else:
                        row["extensions"].pop(key, None)
                elif f in ("runtime", "snapshotter", "snapshot_key") and row.get(f) and \
                        container.get(f) != row.get(f):
                    raise errdefs.InvalidArgument(f"container \"{cid}\": {f} cannot be changed")
                elif f in _FIELDS:
                    row[f] = container.get(f)
                else:
                    raise errdefs.InvalidArgument(f"container update: unknown field {f!r}")
            row["updated_at"] = now()
            self._write(namespace, row)
            self._reindex(namespace, cid, row["labels"])
        self.daemon.publish(namespace, "/containers/update", {"id": cid, "image": row["image"],
                                                              "labels": row["labels"],
                                                              "snapshot_key": row["snapshot_key"]})
        return row

    def merge_extension(self, namespace: str, cid: str, key: str, values: dict,
                        clear_labels: list[str] | None = None) -> dict:
        """One update: `values` merged into extension `key` (a dict; none when key is ""), `clear_labels`
        dropped; read and written under the store's lock, so no other writer's change is lost. No change:
        no write."""
        with self._lock:
            row = self.get(namespace, cid)
            fields = [f"labels.{k}" for k in clear_labels or [] if k in (row.get("labels") or {})]
            ext = {}
            if key:
                ext = dict((row.get("extensions") or {}).get(key) or {})
                ext.update(values)
                fields.append(f"extensions.{key}")
            if not fields:
                return row
            return self.update(namespace, {"id": cid, "labels": {}, "extensions": {key: ext} if key else {}},
                               fields)

    def has_task(self, namespace: str, cid: str) -> bool:
        """Whether the Tasks service (if loaded) holds a task for the container."""
        tasks = getattr(self.daemon, "tasks", None)
        if tasks is None:
            return False
        if hasattr(tasks, "has_task"):
            return bool(tasks.has_task(namespace, cid))
        return (namespace, cid) in getattr(tasks, "tasks", {})

    def delete(self, namespace: str, cid: str, cleanup_snapshot: bool = False) -> dict:
        with self._lock:
            row = self.get(namespace, cid)
            if self.has_task(namespace, cid):
                raise errdefs.FailedPrecondition(f"cannot delete container \"{cid}\": it has a task "
                                                 f"(delete the task first)")
            if cleanup_snapshot and row.get("snapshot_key"):
                try:
                    with stage(log, "container %s: snapshot removal", cid):
                        self.daemon.snapshots.remove(namespace, row["snapshot_key"])
                    self.daemon.publish(namespace, "/snapshot/remove", {"key": row["snapshot_key"],
                                                                        "snapshotter": row["snapshotter"]})
                except errdefs.NotFound:
                    pass
            self._path(namespace, cid).unlink()
            self._reindex(namespace, cid, None)
        self.daemon.publish(namespace, "/containers/delete", {"id": cid})
        return row


class ContainersService:
    def __init__(self, daemon) -> None:
        self.daemon = daemon

    @property
    def store(self) -> ContainerStore:
        return self.daemon.containers

    def Get(self, ctx, params):
        return {"container": self.store.get(ctx.namespace, params.get("id", ""))}

    def List(self, ctx, params):
        return {"containers": self.store.list(ctx.namespace, params.get("filters"))}

    def Create(self, ctx, params):
        """`{container}`; combined (pyctr's fast path): `snapshot: {key, parent, labels}` prepares the
        snapshot with the record, `unique_label` refuses a duplicate value of that label, `brief` leaves
        out of the reply what the caller sent (spec, extensions)."""
        snapshot = params.get("snapshot")
        if snapshot is not None and not isinstance(snapshot, dict):
            raise errdefs.InvalidArgument("container create: snapshot must be {key, parent, labels}")
        row = self.store.create(ctx.namespace, params.get("container") or {}, snapshot,
                                str(params.get("unique_label") or ""))
        if params.get("brief"):
            row = {k: v for k, v in row.items() if k not in _SENT_FIELDS}
        return {"container": row}

    def Update(self, ctx, params):
        """`{container, update_mask, brief}` (brief: the reply without spec and extensions); combined
        (pyctr's fast path): `merge: true` merges each of
        container.extensions (dicts) into the record's, under the store's lock (no read-modify-write
        by the caller), and leaves everything else alone."""
        container = params.get("container") or {}
        if params.get("merge"):
            cid, row = container.get("id", ""), None
            for key, values in (container.get("extensions") or {}).items():
                if not isinstance(values, dict):
                    raise errdefs.InvalidArgument(f"container update: extension {key!r} to merge is not an object")
                row = self.store.merge_extension(ctx.namespace, cid, key, values)
            row = row if row is not None else self.store.get(ctx.namespace, cid)
            return {"container": {k: v for k, v in row.items() if k not in _SENT_FIELDS}}
        row = self.store.update(ctx.namespace, container, params.get("update_mask"))
        if params.get("brief"):
            row = {k: v for k, v in row.items() if k not in _SENT_FIELDS}
        return {"container": row}

    async def Delete(self, ctx, params):
        """`{"id", "cleanup_snapshot": bool}`: with cleanup_snapshot its snapshot goes too (as
        containerd's client WithSnapshotCleanup); a gc follows either way. Combined (pyctr's fast path):
        `force` deletes the container's task first (killing it), `remove_anonymous_volumes` releases its
        volumes and removes the anonymous ones (docker rm -v) before the record goes."""
        cid = params.get("id", "")
        tasks = getattr(self.daemon, "tasks", None)
        if params.get("force") and tasks is not None and self.store.has_task(ctx.namespace, cid):
            try:
                await tasks.delete(ctx.namespace, cid, True)
            except errdefs.NotFound:
                pass  # deleted meanwhile
        volumes = getattr(self.daemon, "volumes", None)
        if params.get("remove_anonymous_volumes") and volumes is not None:
            await asyncio.to_thread(volumes.release_all, cid, True)
        await asyncio.to_thread(self.store.delete, ctx.namespace, cid, bool(params.get("cleanup_snapshot")))
        self.daemon.schedule_gc()
        return {}


def register(daemon) -> None:
    daemon.server.register("Containers", ContainersService(daemon))
