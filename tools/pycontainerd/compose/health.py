"""A service's healthcheck handed to the daemon, and the waits of `depends_on` conditions.

The daemon runs the checks (pycontainerd.health): compose passes the service's healthcheck as the
container's Config.Healthcheck (`to_docker`; pyctr's create merges the image's HEALTHCHECK under it, as
dockerd does) and `service_healthy` waits for the daemon's State.Health of the dependency.
"""

from __future__ import annotations

import time

from ..ctr.backend import Backend, ContainerView
from ..ctr.humanize import parse_time
from ..healthcheck import HealthConfig
from .model import ComposeError, Healthcheck

POLL = 0.1  # seconds between looks at the dependency's State.Health
_DEFAULTS = Healthcheck()


def to_docker(h: Healthcheck | None) -> dict | None:
    """docker's Config.Healthcheck (durations in ns) of a service's healthcheck. Fields left at compose's
    defaults are omitted, so the image's HEALTHCHECK fills them (compose sends zeros for unset ones)."""
    if h is None:
        return None
    if h.disable:
        return {"Test": ["NONE"]}
    doc: dict = {"Test": list(h.test)} if h.test else {}
    for key, attr in (("Interval", "interval"), ("Timeout", "timeout"), ("StartPeriod", "start_period")):
        value = getattr(h, attr)
        if value != getattr(_DEFAULTS, attr):
            doc[key] = int(round(value * 1e9))
    if h.retries != _DEFAULTS.retries:
        doc["Retries"] = h.retries
    return doc


def _current(c: ContainerView) -> str:
    """The health status the daemon recorded since the container's last start ("" before its first probe:
    a status kept from an earlier run does not count)."""
    h = c.health or {}
    log = h.get("Log") or []
    if not log or not c.started_at or parse_time(log[-1].get("Start")) < c.started_at:
        return ""
    return h.get("Status") or ""


def wait_healthy(b: Backend, container_name: str, deadline: float | None = None) -> None:
    """Block until the daemon reports the container healthy; ComposeError (compose's wording) when it is
    unhealthy, exits, or has no check."""
    c = b.container(container_name)
    if HealthConfig.from_docker((c.docker.get("Config") or {}).get("Healthcheck")) is None:
        raise ComposeError(f"dependency failed to start: container {container_name} has no healthcheck configured")
    while True:
        status = _current(c)
        if status == "healthy":
            return
        if status == "unhealthy":
            raise ComposeError(f"dependency failed to start: container {container_name} is unhealthy")
        if not c.running:
            raise ComposeError(f"dependency failed to start: container {container_name} exited ({c.exit_code})")
        if deadline is not None and time.monotonic() > deadline:
            raise ComposeError(f"dependency failed to start: container {container_name} is not healthy in time")
        time.sleep(POLL)
        c = b.container(container_name)


def wait_completed(b: Backend, container_name: str) -> None:
    """service_completed_successfully: the dependency ran to exit status 0."""
    c = b.container(container_name)
    if c.running:
        b.call("Tasks", "Wait", {"container_id": c.id}, timeout=24 * 3600)
        c = b.container(container_name)
    if c.exit_code != 0:
        raise ComposeError(f"service \"{container_name}\" didn't complete successfully: exit {c.exit_code}")
