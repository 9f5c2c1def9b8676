"""Namespaces: containerd's API over the namespaces table (created on first use of a name)."""

from __future__ import annotations

from .. import errdefs
from ..metadata import now
from ..server import validate_namespace


class NamespacesService:
    def __init__(self, daemon) -> None:
        self.daemon = daemon

    def Get(self, ctx, params):
        return {"namespace": self.daemon.namespaces.get(params.get("name", ""))}

    def List(self, ctx, params):
        return {"namespaces": sorted(self.daemon.namespaces.list(), key=lambda n: n["name"])}

    def Create(self, ctx, params):
        ns = params.get("namespace") or {}
        name = validate_namespace(ns.get("name", ""))
        row = self.daemon.namespaces.create(name, {"name": name, "labels": ns.get("labels") or {},
                                                  "created_at": now()})
        self.daemon.publish(name, "/namespaces/create", {"name": name, "labels": row["labels"]})
        return {"namespace": row}

    def Update(self, ctx, params):
        ns = params.get("namespace") or {}
        name = ns.get("name", "")

        def change(row):
            row["labels"] = {k: v for k, v in (ns.get("labels") or {}).items() if v}

        row = self.daemon.namespaces.update(name, change)
        self.daemon.publish(name, "/namespaces/update", {"name": name, "labels": row["labels"]})
        return {"namespace": row}

    def Delete(self, ctx, params):
        name = params.get("name", "")
        d = self.daemon
        self.daemon.namespaces.get(name)
        busy = [what for what, n in (("images", len(d.images.tables(name).keys())),
                                     ("containers", len(d.containers.list(name))),
                                     ("snapshots", len(d.snapshots.records(name).keys())),
                                     ("content", len(d.content.records(name).keys())),
                                     ("leases", len(d.leases.tables(name).keys()))) if n]
        if busy:
            raise errdefs.FailedPrecondition(f"namespace {name} must be empty, but it still has "
                                             f"{', '.join(busy)}")
        d.namespaces.delete(name)
        d.publish(name, "/namespaces/delete", {"name": name})
        return {}


def register(daemon) -> None:
    daemon.server.register("Namespaces", NamespacesService(daemon))
