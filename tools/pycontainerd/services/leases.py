"""Leases: create/delete/list leases and the resources (content, snapshots) they hold."""

from __future__ import annotations

from .. import errdefs


class LeasesService:
    def __init__(self, daemon) -> None:
        self.daemon = daemon

    def Create(self, ctx, params):
        expire = params.get("expire_seconds")
        lease = self.daemon.leases.create(ctx.namespace, params.get("id", ""), params.get("labels"),
                                          float(expire) if expire else None)
        return {"lease": lease}

    def Delete(self, ctx, params):
        self.daemon.leases.delete(ctx.namespace, params.get("id", ""))
        if params.get("sync"):
            self.daemon.gc.collect()
        else:
            self.daemon.schedule_gc()
        return {}

    def List(self, ctx, params):
        return {"leases": self.daemon.leases.list(ctx.namespace)}

    def _resource(self, params) -> tuple[str, str]:
        r = params.get("resource") or {}
        if not r.get("id") or not r.get("type"):
            raise errdefs.InvalidArgument("resource needs an id and a type (content, snapshots/<snapshotter>)")
        return r["type"], r["id"]

    def AddResource(self, ctx, params):
        t, rid = self._resource(params)
        self.daemon.leases.add_resource(ctx.namespace, params.get("id", ""), t, rid)
        return {}

    def DeleteResource(self, ctx, params):
        t, rid = self._resource(params)
        self.daemon.leases.delete_resource(ctx.namespace, params.get("id", ""), t, rid)
        return {}

    def ListResources(self, ctx, params):
        return {"resources": self.daemon.leases.get(ctx.namespace, params.get("id", ""))["resources"]}


def register(daemon) -> None:
    daemon.server.register("Leases", LeasesService(daemon))
