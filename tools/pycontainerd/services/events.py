"""Events: Publish, Forward and Subscribe (a server stream of envelopes matching filters)."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime

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
        says the subscription is in place (the caller can then act and be sure to see its events).
        `since` (unix seconds) first replays the daemon's recent envelopes from then on; `until` ends
        the stream at that time (at once after the replay when it is past), as docker events."""
        filters = params.get("filters") or []
        if isinstance(filters, str):
            filters = [filters]
        since, until = _seconds_param(params, "since"), _seconds_param(params, "until")
        bus = self.daemon.events
        sub, backlog = bus.subscribe_with_backlog(filters)
        try:
            if params.get("ready"):
                yield {"ready": True}
            if since is not None:
                for env in backlog:
                    t = envelope_seconds(env)
                    if t >= since and (until is None or t <= until):
                        yield env
            while True:
                if until is None:
                    env = await sub.queue.get()
                else:
                    left = until - time.time()
                    if left <= 0:
                        return
                    try:
                        env = await asyncio.wait_for(sub.queue.get(), left)
                    except asyncio.TimeoutError:
                        return
                    if envelope_seconds(env) > until:
                        return
                if since is None or envelope_seconds(env) >= since:
                    yield env
        finally:
            bus.unsubscribe(sub)


_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


def envelope_seconds(envelope: dict) -> float:
    """An envelope's RFC 3339 (nanosecond) timestamp as unix seconds."""
    m = _RFC3339.match(envelope.get("timestamp") or "")
    if not m:
        return 0.0
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    base = datetime.fromisoformat(m.group(1) + zone).timestamp()
    return base + float("0." + (m.group(2) or "0"))


def _seconds_param(params: dict, key: str) -> float | None:
    value = params.get(key)
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise errdefs.InvalidArgument(f"{key} must be unix seconds, not {value!r}") from None


def register(daemon) -> None:
    daemon.server.register("Events", EventsService(daemon))
