"""Publish/subscribe of daemon events, with containerd's topics and filter syntax.

An envelope is `{"timestamp", "namespace", "topic", "event"}` (containerd's events.Envelope).
Filters are containerd's: `topic=="/tasks/exit"`, `namespace==default`, `topic~="^/images/"`,
`event.id==abc`, `topic!=/tasks/oom`; comma-separated conditions AND, several filters OR.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections import deque
from dataclasses import dataclass, field

from . import errdefs
from .metadata import now

# The topics containerd publishes (and we do), for reference and validation of Publish.
TOPICS = (
    "/images/create", "/images/update", "/images/delete",
    "/containers/create", "/containers/update", "/containers/delete",
    "/content/delete", "/snapshot/prepare", "/snapshot/commit", "/snapshot/remove",
    "/namespaces/create", "/namespaces/update", "/namespaces/delete",
    "/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete", "/tasks/oom", "/tasks/exec-added",
    "/tasks/exec-started", "/tasks/paused", "/tasks/resumed", "/tasks/checkpointed",
)
_TOPIC = re.compile(r"^/[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*$")
# a field path's segments may be quoted, as containerd's: labels."nerdctl/name"==x
_COND = re.compile(r'^\s*((?:[A-Za-z0-9_.]+|"[^"]*")+)\s*(==|!=|~=)?\s*(.*?)\s*$')
_SEGMENT = re.compile(r'"([^"]*)"|([^."]+)')


def validate_topic(topic: str) -> str:
    if not isinstance(topic, str) or not _TOPIC.match(topic):
        raise errdefs.InvalidArgument(f"event topic {topic!r}: must be a /-separated path like /tasks/exit")
    return topic


@dataclass
class _Condition:
    path: list[str]
    op: str | None
    value: str
    regex: re.Pattern | None = None

    def match(self, envelope: dict) -> bool:
        target: object = envelope
        for part in self.path:
            if not isinstance(target, dict) or part not in target:
                return self.op == "!="
            target = target[part]
        if self.op is None:
            return target not in (None, "", {}, [])
        text = target if isinstance(target, str) else str(target).lower() if isinstance(target, bool) else str(target)
        if self.op == "==":
            return text == self.value
        if self.op == "!=":
            return text != self.value
        return bool(self.regex.search(text))


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'/":
        return value[1:-1]
    return value


def parse_filter(text: str) -> list[_Condition]:
    conditions = []
    for part in (p for p in text.split(",") if p.strip()):
        m = _COND.match(part)
        if not m:
            raise errdefs.InvalidArgument(f"filter {text!r}: cannot parse {part!r}")
        path, op, value = m.group(1), m.group(2), _unquote(m.group(3))
        if op is None and m.group(3):
            raise errdefs.InvalidArgument(f"filter {text!r}: want FIELD==VALUE, FIELD!=VALUE or FIELD~=REGEX")
        cond = _Condition([q or p for q, p in _SEGMENT.findall(path)], op, value)
        if op == "~=":
            try:
                cond.regex = re.compile(value)
            except re.error as exc:
                raise errdefs.InvalidArgument(f"filter {text!r}: bad regular expression: {exc}") from None
        conditions.append(cond)
    return conditions


def matcher(filters: list[str] | None):
    """A predicate over envelopes: any filter matches (each filter: all its conditions)."""
    parsed = [parse_filter(f) for f in (filters or []) if f.strip()]
    if not parsed:
        return lambda envelope: True
    return lambda envelope: any(all(c.match(envelope) for c in conds) for conds in parsed)


@dataclass
class _Subscriber:
    queue: asyncio.Queue
    loop: asyncio.AbstractEventLoop
    match: object
    dropped: int = 0


# dockerd keeps its last 256 events for `docker events --since` (daemon/events eventsLimit)
RECENT_EVENTS = 256


@dataclass
class EventBus:
    """Fan-out of envelopes to subscribers; `publish` is safe from any thread. The last RECENT_EVENTS
    envelopes are kept so that a subscriber can replay them (docker events --since)."""

    max_queue: int = 4096
    _subs: list[_Subscriber] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _recent: deque = field(default_factory=lambda: deque(maxlen=RECENT_EVENTS))

    def publish(self, namespace: str, topic: str, event: dict | None = None) -> dict:
        envelope = {"timestamp": now(), "namespace": namespace, "topic": validate_topic(topic),
                    "event": event or {}}
        with self._lock:  # one lock with subscribe(): an envelope is either replayed or delivered, once
            self._recent.append(envelope)
            subs = list(self._subs)
        for sub in subs:
            if sub.match(envelope):
                try:
                    sub.loop.call_soon_threadsafe(self._offer, sub, envelope)
                except RuntimeError:
                    self.unsubscribe(sub)  # its loop is closed: the daemon is stopping
        return envelope

    @staticmethod
    def _offer(sub: _Subscriber, envelope: dict) -> None:
        try:
            sub.queue.put_nowait(envelope)
        except asyncio.QueueFull:
            sub.dropped += 1  # a stuck subscriber must not grow the daemon without bound

    def subscribe(self, filters: list[str] | None = None) -> _Subscriber:
        return self.subscribe_with_backlog(filters)[0]

    def subscribe_with_backlog(self, filters: list[str] | None = None) -> tuple[_Subscriber, list[dict]]:
        """A subscriber, and the kept envelopes (oldest first) that match its filters."""
        sub = _Subscriber(asyncio.Queue(self.max_queue), asyncio.get_running_loop(), matcher(filters))
        with self._lock:
            backlog = list(self._recent)
            self._subs.append(sub)
        return sub, [e for e in backlog if sub.match(e)]

    def unsubscribe(self, sub: _Subscriber) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    async def stream(self, filters: list[str] | None = None):
        """Async iterator of envelopes matching `filters` until cancelled."""
        sub = self.subscribe(filters)
        try:
            while True:
                yield await sub.queue.get()
        finally:
            self.unsubscribe(sub)
