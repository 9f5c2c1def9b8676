"""Health of a service's container for `depends_on: condition: service_healthy`.

The daemon does not run health checks yet, so compose runs the service's healthcheck test itself, as an
exec in the container (CMD → the arguments, CMD-SHELL → `/bin/sh -c`), every `interval`, each probe killed
after `timeout`: healthy at the first success; unhealthy after `retries` failures in a row once
`start_period` is over. A health status the daemon does record (State.Health.Status) wins when present.
"""

from __future__ import annotations

import secrets
import threading
import time

from .. import errdefs, protocol
from ..ctr.backend import Backend
from .model import ComposeError, Healthcheck


def from_image(doc: dict | None) -> Healthcheck | None:
    """An image config's Healthcheck (docker's: Test, durations in nanoseconds) in compose's terms."""
    if not doc or not doc.get("Test"):
        return None
    h = Healthcheck(test=list(doc["Test"]))
    if h.test == ["NONE"]:
        return Healthcheck(disable=True)
    for key, attr in (("Interval", "interval"), ("Timeout", "timeout"), ("StartPeriod", "start_period")):
        if doc.get(key):
            setattr(h, attr, int(doc[key]) / 1e9)
    if doc.get("Retries"):
        h.retries = int(doc["Retries"])
    return h


def effective(service_check: Healthcheck | None, image_check: Healthcheck | None) -> Healthcheck | None:
    """The service's healthcheck over the image's HEALTHCHECK: a check without a test keeps the image's."""
    if service_check is None:
        return image_check
    if service_check.disable or service_check.test or image_check is None:
        return service_check
    return Healthcheck(image_check.test, service_check.interval, service_check.timeout, service_check.retries,
                       service_check.start_period)


def probe_args(h: Healthcheck) -> list[str]:
    if h.test and h.test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(h.test[1:])]
    return list(h.test[1:]) if h.test and h.test[0] == "CMD" else list(h.test)


def run_probe(b: Backend, cid: str, args: list[str], timeout: float) -> tuple[int, bytes]:
    """Run `args` in the container, its output collected (never shown): (exit status, output); -1 on timeout."""
    exec_id = "h" + secrets.token_hex(3)
    b.call("Tasks", "Exec", {"container_id": cid, "exec_id": exec_id, "spec": {"args": args, "terminal": False},
                             "terminal": False, "stdin": False})
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        try:
            b.call("Tasks", "Kill", {"container_id": cid, "exec_id": exec_id, "signal": "SIGKILL"})
        except errdefs.Error:
            pass

    timer = threading.Timer(timeout, kill)
    output = bytearray()
    try:
        call = b.client.duplex("Tasks", "Attach", {"container_id": cid, "exec_id": exec_id, "stdin": False})
        for frame in call:
            if frame.get("attached"):
                b.call("Tasks", "Start", {"container_id": cid, "exec_id": exec_id})
                timer.start()
                continue
            if frame.get("data"):
                output += protocol.b64decode(frame["data"])
        status = call.result().get("exit_status")
    finally:
        timer.cancel()
        try:
            b.call("Tasks", "DeleteProcess", {"container_id": cid, "exec_id": exec_id})
        except errdefs.Error:
            pass
    if timed_out.is_set():
        return -1, bytes(output)
    return (1 if status is None else int(status)), bytes(output)


def wait_healthy(b: Backend, container_name: str, h: Healthcheck | None, deadline: float | None = None) -> None:
    """Block until the container is healthy; ComposeError when it is unhealthy, exits, or has no check."""
    if h is None or h.disable or not h.test:
        raise ComposeError(f"dependency failed to start: container {container_name} has no healthcheck configured")
    args = probe_args(h)
    started = time.monotonic()
    failures = 0
    while True:
        c = b.container(container_name)
        recorded = ((c.saved_state.get("Health") or {}).get("Status") or "")
        if recorded == "healthy":
            return
        if not c.running:
            raise ComposeError(f"dependency failed to start: container {container_name} exited "
                               f"({c.exit_code})")
        try:
            status, _ = run_probe(b, c.id, args, h.timeout)
        except errdefs.Error:
            status = 1
        if status == 0:
            return
        if time.monotonic() - started >= h.start_period:
            failures += 1
            if failures >= h.retries:
                raise ComposeError(f"dependency failed to start: container {container_name} is unhealthy")
        if deadline is not None and time.monotonic() > deadline:
            raise ComposeError(f"dependency failed to start: container {container_name} is not healthy in time")
        time.sleep(h.interval)


def wait_completed(b: Backend, container_name: str) -> None:
    """service_completed_successfully: the dependency ran to exit status 0."""
    c = b.container(container_name)
    if c.running:
        b.call("Tasks", "Wait", {"container_id": c.id}, timeout=24 * 3600)
        c = b.container(container_name)
    if c.exit_code != 0:
        raise ComposeError(f"service \"{container_name}\" didn't complete successfully: exit {c.exit_code}")
