"""System (ours, not containerd's): daemon info for `pyctr info`, and garbage collection on demand
(`pyctr system prune` removes what it wants to, then asks for a collection)."""

from __future__ import annotations

import os
import platform

from .. import protocol


class SystemService:
    def __init__(self, daemon) -> None:
        self.daemon = daemon

    def Info(self, ctx, params):
        d = self.daemon
        return {
            "version": protocol.VERSION,
            "root": str(d.root), "state": str(d.state), "address": d.address,
            "runtime": d.runtime, "snapshotter": d.snapshots.name,
            "namespaces": sorted(d.namespaces.keys()),
            "images": len(d.images.tables(ctx.namespace).keys()),
            "containers": len(d.containers.list(ctx.namespace)),
            "kernel": platform.release(), "os": platform.system().lower(), "arch": platform.machine(),
            "cpus": os.cpu_count() or 1, "pid": os.getpid(),
            "services": sorted(d.server.services),
        }

    def GC(self, ctx, params):
        return self.daemon.gc.collect().to_dict()


def register(daemon) -> None:
    daemon.server.register("System", SystemService(daemon))
