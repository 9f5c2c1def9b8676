"""Health checks the daemon runs, as dockerd 20.10 does (its daemon/health.go).

A container's check is `Config.Healthcheck` of its docker document (extension `pyctr/docker`): the
image's HEALTHCHECK merged with `pyctr run --health-*` (pycontainerd.healthcheck), durations in
nanoseconds, 0 = docker's default (30 s interval, 30 s timeout, 3 retries, no start period). No Test,
or `["NONE"]`: no check.

The monitor (registered by daemon._load_extensions after the policies) follows the daemon's events:
`/tasks/start` (init) sets the status to `starting` and runs a probe every interval; `/tasks/paused`
stops probing, `/tasks/resumed` resumes it; the init's `/tasks/exit`, `/tasks/delete` and
`/containers/delete` stop it (an exit leaves docker's `unhealthy`, the streak as it was). A probe is an exec
through the container's shim (CMD → its arguments, CMD-SHELL → `/bin/sh -c`), with the container's
user, env and working directory; its output (at most 4096 bytes, then `...`) is collected, never
logged. After `timeout` it is killed and counts as ExitCode -1, "Health check exceeded timeout (…)".
The execs publish /tasks/exec-added and /tasks/exec-started (with their `args`) as docker's probes
emit `exec_create: /bin/sh -c …` and `exec_start: …`, and are deleted once done, also when the monitor
is cancelled (the running one's id is kept in the bundle's `health-probe` for a daemon killed
meanwhile): none is left behind.

Rules (docker's handleProbeResult): exit 0 → healthy, streak 0; a failure while still `starting`
inside the start period does not count; otherwise the streak grows and reaching `retries` makes it
unhealthy. The last 5 results are kept. State `{Status, FailingStreak, Log}` lives in the record's
extension `pyctr/health` (a key of its own: pyctr's writes of `pyctr/state` cannot race it) and a
status change publishes `/containers/health_status` {id, status} (`health_status: healthy` in
`pyctr events`). After a daemon restart, running containers' monitors resume from the saved state.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from . import errdefs, protocol
from .healthcheck import (HEALTH_EXT, MAX_OUTPUT, STARTING, UNHEALTHY, HealthConfig, apply_result,
                          go_duration_string)
from .logs import parse_time, rfc3339nano

log = logging.getLogger("pycontainerd.health")
STATE_EXT = "pyctr/state"
HEALTH_TOPIC = "/containers/health_status"


# -- the monitor --------------------------------------------------------------------------------------------

@dataclass
class _Probe:
    task: asyncio.Task
    started: float  # wall clock of the container's start (the start period counts from it)


class HealthMonitor:
    """One probing loop per running container with a check; see the module's docstring."""

    def __init__(self, daemon) -> None:
        self.daemon = daemon
        self._probes: dict[tuple[str, str], _Probe] = {}
        self._follower: asyncio.Task | None = None

    async def start(self) -> None:
        if getattr(self.daemon, "tasks", None) is None:
            log.warning("no Tasks service: health checks are not run")
            return
        sub = self.daemon.events.subscribe(['topic~="^/tasks/(start|exit|delete|paused|resumed)$"',
                                            'topic=="/containers/delete"'])
        self._follower = asyncio.ensure_future(self._follow(sub))
        for (namespace, cid), task in list(self.daemon.tasks.tasks.items()):
            if task.exit is None and await self._status(namespace, cid) == "running":  # not paused ones
                await self._resume(namespace, cid)

    async def _status(self, namespace: str, cid: str) -> str:
        try:
            return (await self.daemon.tasks.state(namespace, cid)).get("status") or ""
        except errdefs.Error:
            return ""

    async def stop(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
        probes = [p.task for p in self._probes.values()]
        self._probes.clear()
        for t in probes:
            t.cancel()
        if probes:  # their finally blocks delete the execs they had running
            await asyncio.wait(probes, timeout=5)

    async def _follow(self, sub) -> None:
        try:
            while True:
                env = await sub.queue.get()
                try:
                    await self._on_event(env)
                except Exception:
                    log.exception("health monitor: handling %s failed", env.get("topic"))
        finally:
            self.daemon.events.unsubscribe(sub)

    async def _on_event(self, env: dict) -> None:
        topic, namespace, ev = env.get("topic"), env.get("namespace", ""), env.get("event") or {}
        cid = ev.get("container_id") or ev.get("id") or ""
        if not cid:
            return
        key = (namespace, cid)
        if topic == "/tasks/start":
            self._cancel(key)
            record = await self._record(namespace, cid)
            if record is None or HealthConfig.of_record(record) is None:
                return
            health = dict((record.get("extensions") or {}).get(HEALTH_EXT) or {})
            health.update(Status=STARTING, FailingStreak=0)  # docker keeps the log across restarts
            health.setdefault("Log", [])
            await self._save(namespace, cid, health)
            self._spawn(key, time.time())
        elif topic == "/tasks/paused":
            self._cancel(key)
        elif topic == "/tasks/resumed":
            await self._resume(namespace, cid)
        elif topic == "/tasks/exit":
            if ev.get("id") not in (None, "", cid):
                return  # an exec's exit
            if self._cancel(key):
                record = await self._record(namespace, cid)
                health = dict(((record or {}).get("extensions") or {}).get(HEALTH_EXT) or {})
                if health:
                    health["Status"] = UNHEALTHY  # what dockerd 20.10 shows of a stopped one (streak kept)
                    await self._save(namespace, cid, health)
        else:  # /tasks/delete, /containers/delete
            self._cancel(key)

    async def _resume(self, namespace: str, cid: str) -> None:
        """Probe a running container again (daemon restart, unpause), from its saved state."""
        key = (namespace, cid)
        if key in self._probes:
            return
        record = await self._record(namespace, cid)
        if record is None or HealthConfig.of_record(record) is None:
            return
        task = self.daemon.tasks.tasks.get(key)
        marker = self._in_flight(task) if task is not None else None
        if marker is not None and marker.exists():  # a killed daemon's probe: gone from the shim too
            await self._delete_exec(task, marker.read_text().strip())
            marker.unlink(missing_ok=True)
        state = (record.get("extensions") or {}).get(STATE_EXT) or {}
        started = parse_time(state.get("StartedAt")) if state.get("StartedAt") else time.time()
        if not (record.get("extensions") or {}).get(HEALTH_EXT):
            await self._save(namespace, cid, {"Status": STARTING, "FailingStreak": 0, "Log": []})
        self._spawn(key, started)

    def _spawn(self, key: tuple[str, str], started: float) -> None:
        self._probes[key] = _Probe(asyncio.ensure_future(self._loop(key, started)), started)

    def _cancel(self, key: tuple[str, str]) -> bool:
        probe = self._probes.pop(key, None)
        if probe is None:
            return False
        probe.task.cancel()
        return True

    async def _record(self, namespace: str, cid: str) -> dict | None:
        try:
            return await asyncio.to_thread(self.daemon.containers.get, namespace, cid)
        except errdefs.NotFound:
            return None

    async def _save(self, namespace: str, cid: str, health: dict) -> None:
        try:
            await asyncio.to_thread(self.daemon.containers.update, namespace,
                                    {"id": cid, "extensions": {HEALTH_EXT: health}}, [f"extensions.{HEALTH_EXT}"])
        except errdefs.NotFound:
            pass

    async def _loop(self, key: tuple[str, str], started: float) -> None:
        namespace, cid = key
        try:
            while True:
                record = await self._record(namespace, cid)
                cfg = HealthConfig.of_record(record) if record else None
                if cfg is None:
                    return
                await asyncio.sleep(cfg.interval)
                result = await self._probe(namespace, cid, cfg)
                if self._probes.get(key) is None or self._probes[key].task is not asyncio.current_task():
                    return  # stopped while probing: the result is not recorded (as docker)
                record = await self._record(namespace, cid)
                if record is None:
                    return
                old = (record.get("extensions") or {}).get(HEALTH_EXT) or {}
                health = apply_result(old, result, cfg, started)
                await self._save(namespace, cid, health)
                if health["Status"] != (old.get("Status") or STARTING):
                    self.daemon.publish(namespace, HEALTH_TOPIC, {"id": cid, "status": health["Status"]})
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("health monitor of %s failed", cid)
        finally:
            probe = self._probes.get(key)
            if probe is not None and probe.task is asyncio.current_task():
                del self._probes[key]

    async def _probe(self, namespace: str, cid: str, cfg: HealthConfig) -> dict:
        """One exec of the check: {Start, End, ExitCode, Output}."""
        start = rfc3339nano()
        task = self.daemon.tasks.tasks.get((namespace, cid))
        if task is None or task.exit is not None:
            return {"Start": start, "End": rfc3339nano(), "ExitCode": -1, "Output": "container is not running"}
        exec_id = secrets.token_hex(32)  # docker's exec ids: 64 hex digits
        output = bytearray()
        truncated = False
        attach = None
        created = False
        try:  # the attach has a connection of its own: the task's is shared with every other call
            process = await asyncio.to_thread(self.daemon.tasks.exec_process, namespace, cid,
                                              {"spec": {"args": cfg.args, "terminal": False}})
            await task.client.call("exec", {"exec_id": exec_id, "process": process, "terminal": False,
                                            "stdin": False})
            created = True
            self._in_flight(task).write_text(exec_id)
            self.daemon.publish(namespace, "/tasks/exec-added", {"container_id": cid, "exec_id": exec_id,
                                                                 "args": cfg.args})
            attach = await _shim(task.bundle).connect()
            status: int | None = None

            async def collect() -> None:
                nonlocal status, truncated
                async for item in attach.stream("attach", {"exec_id": exec_id, "stdin": False}):
                    if "__result__" in item:
                        status = item["__result__"].get("exit_status")
                        return
                    if item.get("attached"):
                        try:
                            result = await task.client.call("start", {"exec_id": exec_id})
                        except errdefs.Error as exc:  # dockerd's words for a probe that cannot start
                            raise errdefs.Unknown(f"OCI runtime exec failed: {exc}: unknown") from None
                        self.daemon.publish(namespace, "/tasks/exec-started",
                                            {"container_id": cid, "exec_id": exec_id, "pid": result.get("pid", 0),
                                             "args": cfg.args})
                    elif item.get("data"):
                        data = protocol.b64decode(item["data"])
                        room = MAX_OUTPUT - len(output)
                        if len(data) > room:
                            data, truncated = data[:max(room, 0)], True
                        output.extend(data)

            try:
                await asyncio.wait_for(collect(), cfg.timeout)
            except asyncio.TimeoutError:
                return {"Start": start, "End": rfc3339nano(), "ExitCode": -1,
                        "Output": f"Health check exceeded timeout ({go_duration_string(round(cfg.timeout * 1e9))})"}
            text = output.decode("utf-8", errors="replace") + ("..." if truncated else "")
            return {"Start": start, "End": rfc3339nano(), "ExitCode": -1 if status is None else int(status),
                    "Output": text}
        except errdefs.Error as exc:
            return {"Start": start, "End": rfc3339nano(), "ExitCode": -1, "Output": str(exc)}
        finally:
            if attach is not None:
                await attach.close()
            if created:  # killed if still running, and forgotten by the shim
                await asyncio.shield(self._delete_exec(task, exec_id))
                self._in_flight(task).unlink(missing_ok=True)

    @staticmethod
    def _in_flight(task) -> Path:
        """The running probe's exec id, in the task's bundle (goes with it): a daemon killed mid-probe
        leaves it for the next one to delete that exec."""
        return task.bundle / "health-probe"

    @staticmethod
    async def _delete_exec(task, exec_id: str) -> None:
        """Kill (if running) and forget the probe's exec. At daemon stop the task's connection may be
        closed already (Tasks stops first): a connection of our own then, the shim outlives the daemon."""
        params = {"exec_id": exec_id, "force": True}
        try:
            await asyncio.wait_for(task.client.call("delete", params), 10)
            return
        except errdefs.Unavailable:
            pass
        except (errdefs.Error, asyncio.TimeoutError):
            return
        client = _shim(task.bundle)
        try:
            await client.connect()
            await asyncio.wait_for(client.call("delete", params), 10)
        except (errdefs.Error, asyncio.TimeoutError):
            pass
        finally:
            await client.close()


def _shim(bundle):
    from .tasks import ShimClient  # here: pyctr imports this module for the flags' parsing, not for the shim

    return ShimClient(bundle)


def register(daemon) -> HealthMonitor:
    monitor = HealthMonitor(daemon)
    daemon.server.register("Health", monitor)  # no public methods: start/stop only
    return monitor
