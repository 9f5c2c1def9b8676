"""Events: Publish, Forward and Subscribe (a server stream of envelopes matching filters)."""

from __future__ import annotations

from .. import errdefs
from ..events import validate_topic


class EventsService:
    def __init__(self, daemon) -> None:
        self.daemon = daemon

    async def Publish(self, ctx, params):
        event = params.get("event") or {}
        if not isinstance(event, dict):
            raise errdefs.InvalidArgument("event must be an object")
        self.daemon.events.publish(ctx.namespace, validate_topic(params.get("topic", "")), event)
        return {}

    async def Forward(self, ctx, params):
        env = params.get("envelope") or {}
        self.daemon.events.publish(env.get("namespace") or ctx.namespace, validate_topic(env.get("topic", "")),
                                   env.get("event") or {})
        return {}

    async def Subscribe(self, ctx, params):
        """Envelopes until the caller cancels. With `"ready": true` a first `{"ready": true}` frame
        says the subscription is in place (the caller can then act and be sure to see its events)."""
        filters = params.get("filters") or []
        if isinstance(filters, str):
            filters = [filters]
        bus = self.daemon.events
        sub = bus.subscribe(filters)
        try:
            if params.get("ready"):
                yield {"ready": True}
            while True:
                yield await sub.queue.get()
        finally:
            bus.unsubscribe(sub)


def register(daemon) -> None:
    daemon.server.register("Events", EventsService(daemon))
