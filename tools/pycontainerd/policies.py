"""Lifecycle policies the daemon applies to pyctr's containers: auto-remove and restart policies.

Registered by daemon.load_services into the task manager's exit hooks (tasks.py):
  * label `nerdctl/auto-remove=true` (`pyctr run -d --rm`): once the task exits, the task, the
    container record, its snapshot and its anonymous volumes go;
  * `HostConfig.RestartPolicy` of the container's docker document (`no`, `on-failure` with
    `MaximumRetryCount`, `always`, `unless-stopped`): a task whose process died is started again
    after docker's back-off (100 ms doubling, back to 100 ms once it ran 10 s), counted in the
    record's State (`RestartCount`). A task pyctr stopped or killed carries the label
    `pyctr/manually-stopped=true` (set before the signal): it is not restarted.
  * at daemon start (a handler's start hook, after Tasks recovered what survived): containers with
    `always`, or `unless-stopped` and not stopped by the user, that had been started and have no
    task now are started again — docker's rule for a daemon restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from . import errdefs
from .logs import rfc3339nano

log = logging.getLogger("pycontainerd.policies")

DOCKER_EXT = "pyctr/docker"
STATE_EXT = "pyctr/state"
AUTO_REMOVE_LABEL = "nerdctl/auto-remove"
MANUAL_STOP_LABEL = "pyctr/manually-stopped"
BACKOFF_START = 0.1     # docker's restart manager: 100 ms, doubled per quick failure
BACKOFF_MAX = 60.0
BACKOFF_RESET = 10.0    # a run this long resets the back-off


@dataclass
class RestartPolicy:
    name: str = "no"
    maximum_retry_count: int = 0

    @classmethod
    def from_docker(cls, docker: dict) -> "RestartPolicy":
        rp = (docker.get("HostConfig") or {}).get("RestartPolicy") or {}
        return cls(str(rp.get("Name") or "no"), int(rp.get("MaximumRetryCount") or 0))

    def should_restart(self, exit_status: int, manually_stopped: bool, restart_count: int) -> bool:
        if manually_stopped:
            return False
        if self.name in ("always", "unless-stopped"):
            return True
        if self.name == "on-failure":
            return exit_status != 0 and (self.maximum_retry_count == 0 or restart_count < self.maximum_retry_count)
        return False


def parse_restart(value: str) -> dict:
    """`--restart` → HostConfig.RestartPolicy; ValueError with docker's wording when bad."""
    name, _, count = (value or "no").partition(":")
    if name not in ("no", "always", "unless-stopped", "on-failure"):
        raise ValueError(f"invalid restart policy '{name}'")
    if count and name != "on-failure":
        raise ValueError(f"maximum retry count cannot be used with restart policy '{name}'")
    try:
        n = int(count) if count else 0
    except ValueError:
        raise ValueError(f"invalid restart policy format: maximum retry count must be an integer: {count}") from None
    if n < 0:
        raise ValueError("invalid restart policy: maximum retry count cannot be negative")
    return {"Name": name, "MaximumRetryCount": n}


@dataclass
class _Backoff:
    delay: float = 0.0
    started: float = field(default_factory=time.monotonic)


class Policies:
    """The exit hook and the start-up scan; holds each container's back-off (not persisted: docker's
    restart manager starts over after a daemon restart too)."""

    def __init__(self, daemon) -> None:
        self.daemon = daemon
        self._backoff: dict[tuple[str, str], _Backoff] = {}
        self._pending: set[asyncio.Task] = set()

    # -- hooks -------------------------------------------------------------------------------------
    async def start(self) -> None:
        tasks = getattr(self.daemon, "tasks", None)
        if tasks is None:
            log.warning("no Tasks service: restart policies and auto-remove are not applied")
            return
        tasks.exit_hooks.append(self.on_exit)
        self._spawn(self._restart_after_daemon_start())

    async def stop(self) -> None:
        for t in list(self._pending):
            t.cancel()

    def on_exit(self, namespace: str, cid: str, exit: dict) -> None:
        """Task exit hook (on the loop): decide now, act in a task of our own."""
        try:
            record = self.daemon.containers.get(namespace, cid)
        except errdefs.NotFound:
            return
        labels = record.get("labels") or {}
        docker = (record.get("extensions") or {}).get(DOCKER_EXT)
        if labels.get(AUTO_REMOVE_LABEL) == "true":
            self._spawn(self._auto_remove(namespace, cid))
            return
        if not docker:
            return
        policy = RestartPolicy.from_docker(docker)
        state = (record.get("extensions") or {}).get(STATE_EXT) or {}
        status = int(exit.get("exit_status") or 0)
        if policy.should_restart(status, labels.get(MANUAL_STOP_LABEL) == "true", int(state.get("RestartCount") or 0)):
            self._spawn(self._restart(namespace, cid, status))

    def _spawn(self, coro) -> None:
        t = asyncio.ensure_future(coro)
        self._pending.add(t)
        t.add_done_callback(self._pending.discard)

    # -- actions -----------------------------------------------------------------------------------
    async def _auto_remove(self, namespace: str, cid: str) -> None:
        try:
            await self.daemon.tasks.delete(namespace, cid, force=True)
        except errdefs.NotFound:
            pass
        except errdefs.Error as exc:
            log.warning("auto-remove of %s: task delete failed: %s", cid, exc)
        volumes = getattr(self.daemon, "volumes", None)
        if volumes is not None:
            # before the record goes: the delete event's own release would leave anonymous volumes behind
            try:
                await asyncio.to_thread(volumes.release_all, cid, True)  # docker run --rm: anonymous ones too
            except Exception:
                log.exception("auto-remove of %s: releasing its volumes failed", cid)
        try:
            await asyncio.to_thread(self.daemon.containers.delete, namespace, cid, True)
        except errdefs.NotFound:
            return
        except errdefs.Error as exc:
            log.warning("auto-remove of %s failed: %s", cid, exc)
            return
        self.daemon.schedule_gc()
        log.info("container %s removed after its exit (auto-remove)", cid)

    async def _restart(self, namespace: str, cid: str, status: int) -> None:
        key = (namespace, cid)
        b = self._backoff.get(key)
        if b is None or time.monotonic() - b.started >= BACKOFF_RESET:
            b = _Backoff(BACKOFF_START)
        else:
            b.delay = min(max(b.delay * 2, BACKOFF_START), BACKOFF_MAX)
        self._backoff[key] = b
        self._set_state(namespace, cid, Restarting=True, ExitCode=status, FinishedAt=rfc3339nano())
        try:
            await asyncio.sleep(b.delay)
        except asyncio.CancelledError:  # the daemon stops: no restart pending in the record
            self._set_state(namespace, cid, Restarting=False)
            raise
        try:
            record = self.daemon.containers.get(namespace, cid)
        except errdefs.NotFound:
            return
        task = self.daemon.tasks.tasks.get(key)
        if (record.get("labels") or {}).get(MANUAL_STOP_LABEL) == "true" or task is None or task.exit is None:
            # stopped by the user while we waited, or its task deleted (rm -f) or started again by pyctr
            self._set_state(namespace, cid, Restarting=False)
            return
        count = int(((record.get("extensions") or {}).get(STATE_EXT) or {}).get("RestartCount") or 0) + 1
        try:
            await self._start_task(namespace, cid, record)
        except (errdefs.Error, OSError) as exc:
            log.warning("restart of %s failed: %s", cid, exc)
            self._set_state(namespace, cid, Restarting=False, Error=str(exc), RestartCount=count)
            return
        b.started = time.monotonic()
        self._set_state(namespace, cid, Restarting=False, RestartCount=count, StartedAt=rfc3339nano(),
                        FinishedAt="", Error="", ExitCode=0)
        log.info("container %s restarted (policy %s, restart %d)", cid,
                 RestartPolicy.from_docker((record.get("extensions") or {}).get(DOCKER_EXT) or {}).name, count)

    async def _start_task(self, namespace: str, cid: str, record: dict) -> None:
        """What `pyctr start` does: the old task goes, a new one is created and started."""
        tasks = self.daemon.tasks
        if (namespace, cid) in tasks.tasks:
            await tasks.delete(namespace, cid, force=True)
        docker = (record.get("extensions") or {}).get(DOCKER_EXT) or {}
        cfg = docker.get("Config") or {}
        log_cfg = ((docker.get("HostConfig") or {}).get("LogConfig") or {}).get("Config") or {}
        params = {"container_id": cid, "terminal": bool(cfg.get("Tty")), "stdin": bool(cfg.get("OpenStdin"))}
        if log_cfg:
            params["log"] = {"max_size": log_cfg.get("max-size"), "max_file": log_cfg.get("max-file")}
        task = await tasks.create(namespace, cid, params)
        try:
            result = await task.client.call("start", {"exec_id": ""})
        except errdefs.Error:
            await tasks.delete(namespace, cid, force=True)
            raise
        self.daemon.publish(namespace, "/tasks/start", {"container_id": cid, "pid": result.get("pid", 0)})

    async def _restart_after_daemon_start(self) -> None:
        """docker's restore: `always`, and `unless-stopped` not stopped by the user, come back."""
        for namespace in self.daemon.containers.namespaces():
            for record in self.daemon.containers.list(namespace):
                cid = record["id"]
                docker = (record.get("extensions") or {}).get(DOCKER_EXT)
                if not docker or (namespace, cid) in self.daemon.tasks.tasks:
                    continue
                state = (record.get("extensions") or {}).get(STATE_EXT) or {}
                if not state.get("StartedAt"):
                    continue  # created, never started
                policy = RestartPolicy.from_docker(docker).name
                manual = (record.get("labels") or {}).get(MANUAL_STOP_LABEL) == "true"
                if policy == "always" or (policy == "unless-stopped" and not manual):
                    if manual:
                        self._set_labels(namespace, cid, {MANUAL_STOP_LABEL: ""})
                    try:
                        await self._start_task(namespace, cid, record)
                    except (errdefs.Error, OSError) as exc:
                        log.warning("restart of %s at daemon start failed: %s", cid, exc)
                        continue
                    self._set_state(namespace, cid, StartedAt=rfc3339nano(), FinishedAt="", Error="",
                                    ExitCode=0, Restarting=False)
                    log.info("container %s started again (restart policy %s)", cid, policy)

    # -- record ------------------------------------------------------------------------------------
    def _set_state(self, namespace: str, cid: str, **values) -> None:
        try:
            record = self.daemon.containers.get(namespace, cid)
            state = dict((record.get("extensions") or {}).get(STATE_EXT) or {})
            state.update(values)
            self.daemon.containers.update(namespace, {"id": cid, "extensions": {STATE_EXT: state}},
                                          [f"extensions.{STATE_EXT}"])
        except errdefs.NotFound:
            pass

    def _set_labels(self, namespace: str, cid: str, labels: dict) -> None:
        try:
            self.daemon.containers.update(namespace, {"id": cid, "labels": labels}, [f"labels.{k}" for k in labels])
        except errdefs.NotFound:
            pass


def register(daemon) -> Policies:
    policies = Policies(daemon)
    daemon.server.register("Policies", policies)  # no public methods: start/stop only
    return policies
