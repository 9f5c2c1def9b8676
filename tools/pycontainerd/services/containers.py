"""Containers: containerd's container records (metadata only; running them is the Tasks service's).

A record: `{id, labels, image, runtime: {name, options}, spec, snapshotter, snapshot_key,
created_at, updated_at, extensions}`, stored as `<root>/containers/<ns>/<id>.json`.
"""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path

from pyoci.fsutil import atomic_write

from .. import errdefs
from ..events import matcher
from ..metadata import now

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,75}$")
_FIELDS = ("labels", "image", "runtime", "spec", "snapshotter", "snapshot_key", "extensions", "sandbox")


class ContainerStore:
    def __init__(self, root: str | os.PathLike, daemon) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o711)
        self.daemon = daemon
        self._lock = threading.RLock()

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
        atomic_write(path, json.dumps(row, indent=1).encode(), mode=0o600, fsync=False)

    def create(self, namespace: str, container: dict) -> dict:
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
        with self._lock:
            if path.exists():
                raise errdefs.AlreadyExists(f"container \"{cid}\": already exists")
            self.daemon.ensure_namespace(namespace)
            self._write(namespace, row)
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
        self.daemon.publish(namespace, "/containers/update", {"id": cid, "image": row["image"],
                                                              "labels": row["labels"],
                                                              "snapshot_key": row["snapshot_key"]})
        return row

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
                    self.daemon.snapshots.remove(namespace, row["snapshot_key"])
                    self.daemon.publish(namespace, "/snapshot/remove", {"key": row["snapshot_key"],
                                                                        "snapshotter": row["snapshotter"]})
                except errdefs.NotFound:
                    pass
            self._path(namespace, cid).unlink()
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
        return {"container": self.store.create(ctx.namespace, params.get("container") or {})}

    def Update(self, ctx, params):
        return {"container": self.store.update(ctx.namespace, params.get("container") or {},
                                               params.get("update_mask"))}

    def Delete(self, ctx, params):
        """`{"id", "cleanup_snapshot": bool}`: with cleanup_snapshot its snapshot goes too (as
        containerd's client WithSnapshotCleanup); a gc follows either way."""
        self.store.delete(ctx.namespace, params.get("id", ""), bool(params.get("cleanup_snapshot")))
        self.daemon.schedule_gc()
        return {}


def register(daemon) -> None:
    daemon.server.register("Containers", ContainersService(daemon))
