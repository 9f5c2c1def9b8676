"""Version: the daemon's version and protocol."""

from __future__ import annotations

from .. import protocol


class VersionService:
    def __init__(self, daemon) -> None:
        self.daemon = daemon

    async def Version(self, ctx, params):
        return {"version": protocol.VERSION, "revision": "", "protocol": protocol.PROTOCOL_VERSION}


def register(daemon) -> None:
    daemon.server.register("Version", VersionService(daemon))
