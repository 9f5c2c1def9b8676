"""Snapshots: containerd's snapshotter API (Prepare, View, Mounts, Commit, Remove, Stat, Update,
List, Usage) over the daemon's snapshotter; `snapshotter` in params is checked, not switched."""

from __future__ import annotations

from .. import errdefs


class SnapshotsService:
    def __init__(self, daemon) -> None:
        self.daemon = daemon

    def _snap(self, params):
        snaps = self.daemon.snapshots
        wanted = params.get("snapshotter") or snaps.name
        if wanted not in (snaps.name, "overlay" if snaps.name == "overlayfs" else snaps.name):
            raise errdefs.NotFound(f"snapshotter {wanted!r} not loaded (this daemon uses {snaps.name})")
        return snaps

    def _lease(self, ctx, params, key: str) -> None:
        if params.get("lease"):
            self.daemon.leases.add_resource(ctx.namespace, params["lease"],
                                            f"snapshots/{self.daemon.snapshots.name}", key)

    def Prepare(self, ctx, params):
        snaps = self._snap(params)
        key = params.get("key", "")
        self._lease(ctx, params, key)
        self.daemon.ensure_namespace(ctx.namespace)
        with self.daemon.gc.lock.shared():
            mounts = snaps.prepare(ctx.namespace, key, params.get("parent", ""), params.get("labels"))
        self.daemon.publish(ctx.namespace, "/snapshot/prepare", {"key": key, "parent": params.get("parent", ""),
                                                                 "snapshotter": snaps.name})
        return {"mounts": mounts}

    def View(self, ctx, params):
        snaps = self._snap(params)
        key = params.get("key", "")
        self._lease(ctx, params, key)
        with self.daemon.gc.lock.shared():
            mounts = snaps.view(ctx.namespace, key, params.get("parent", ""), params.get("labels"))
        return {"mounts": mounts}

    def Mounts(self, ctx, params):
        return {"mounts": self._snap(params).mounts(ctx.namespace, params.get("key", ""))}

    def Commit(self, ctx, params):
        snaps = self._snap(params)
        name = params.get("name", "")
        self._lease(ctx, params, name)
        info = snaps.commit(ctx.namespace, name, params.get("key", ""), params.get("labels"))
        self.daemon.publish(ctx.namespace, "/snapshot/commit", {"key": params.get("key", ""), "name": name,
                                                                "snapshotter": snaps.name})
        return {"info": info}

    def Remove(self, ctx, params):
        snaps = self._snap(params)
        key = params.get("key", "")
        with self.daemon.gc.lock.shared():
            snaps.remove(ctx.namespace, key)
        self.daemon.publish(ctx.namespace, "/snapshot/remove", {"key": key, "snapshotter": snaps.name})
        self.daemon.schedule_gc()
        return {}

    def Stat(self, ctx, params):
        return {"info": self._snap(params).stat(ctx.namespace, params.get("key", ""))}

    def Update(self, ctx, params):
        info = params.get("info") or {}
        return {"info": self._snap(params).update(ctx.namespace, info.get("name", ""), info.get("labels") or {})}

    def List(self, ctx, params):
        from ..events import matcher

        match = matcher(params.get("filters"))
        return {"info": [i for i in self._snap(params).list(ctx.namespace) if match(i)]}

    def Usage(self, ctx, params):
        return self._snap(params).usage(ctx.namespace, params.get("key", ""))

    def Cleanup(self, ctx, params):
        self.daemon.gc.collect()
        return {}


def register(daemon) -> None:
    daemon.server.register("Snapshots", SnapshotsService(daemon))
