"""Tasks: running containers (containerd's Tasks API), each held by its shim (see tasks.py, shim/).

Methods (params → result); `container_id` names the container, `exec_id` ("" or absent: its init):
  Create      {container_id, rootfs?: [mounts], terminal, stdin, log?: {max_size, max_file, driver}}
                                                   → {container_id, pid}
              (rootfs defaults to the container's snapshot mounts; the spec is the container record's)
  Start       {container_id, exec_id}              → {pid}
  Delete      {container_id, force}                → {id, pid, exit_status, exited_at}  (the shim exits)
  DeleteProcess {container_id, exec_id}            → {id, pid, exit_status, exited_at}
  Kill        {container_id, exec_id, signal (int or "SIGTERM"/"TERM"), all} → {}
  Stop        {container_id, signal?, timeout?}      → {exit_status, exited_at, oom_killed}   docker stop:
              the signal (default: the image's STOPSIGNAL, else SIGTERM), SIGKILL after timeout (10 s)
  Exec        {container_id, exec_id, spec: {args, env, cwd, user: "name"|{uid,gid}, ...}, terminal, stdin,
              env?: ["K=V"], cwd?}  → {}   the process is the container's with spec's fields over it;
              `env` is merged into the container's env (docker exec -e), spec.env replaces it;
              a user name is looked up in the container's /etc/passwd. Then Start {exec_id}.
  ResizePty   {container_id, exec_id, width, height} → {}
  CloseIO     {container_id, exec_id, stdin: true}  → {}
  Pause, Resume {container_id}                      → {}
  ListPids    {container_id}                        → {processes: [{pid, exec_id}]}
  Wait        {container_id, exec_id}               → {exit_status, exited_at, oom_killed}   (once exited)
  Get         {container_id, exec_id}               → {process: {id, container_id, pid, status, exit_status,
                                                       exited_at, terminal, stdin, oom_killed}}
                                                       status: created|running|paused|stopped
  List        {filters}                             → {tasks: [process, …]}
  Metrics     {filters | container_ids}             → {metrics: [{id, data}]}   (runtime events --stats)
  Attach (duplex) {container_id, exec_id, stdin, close_stdin}: first frame {attached: true} (start the
              process after it to miss nothing), then {stream: "stdout"|"stderr", data: base64}…;
              client frames {data: base64} (stdin), {resize: {width, height}}, close_send (closes the
              process's stdin when close_stdin); ends with {exit_status, exited_at} when the process has
              exited and its output is drained.
              Combined (pyctr's fast path, docs/protocol.md): `create: {…Create's params}` creates the
              task before attaching (a failure before the {attached} frame is the create's); `start: true`
              or `{state_extension, clear_labels}` starts the process after {attached: true}, then sends
              {started: {pid}} (a failure before it is the start's: the task is deleted again); the
              record's `clear_labels` are dropped before the start and with `state_extension` that
              extension gets {StartedAt (taken just before the start), FinishedAt: "", Error: "",
              ExitCode: 0} merged in, before {started}.
  Start's combined form: {container_id, create?: {…}, record?: {state_extension, clear_labels}} → {pid}.
  Logs (stream) {container_id, follow, tail, since, until} → frames {stream, log, time}
              (since/until: RFC3339, Unix seconds, or a duration before now such as "10m", as docker)
              (the json-file log at <root>/containers/<ns>/<id>/<id>-json.log; works after exit)
Exit codes are docker's: 128+N when killed by signal N. Events: /tasks/{create,start,exit,delete,
exec-added,exec-started,paused,resumed,oom} (/tasks/oom before /tasks/exit when the OOM killer struck).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from pathlib import Path

from pyoci import goduration

from .. import errdefs, ocispec
from ..events import matcher
from ..logs import parse_time, read_logs
from ..server import Result
from ..shimfork import ZygoteUnavailable
from ..tasks import ShimClient, TaskManager


log = logging.getLogger("pycontainerd.tasks")


def _cid(params: dict) -> str:
    cid = params.get("container_id") or params.get("id") or ""
    if not cid:
        raise errdefs.InvalidArgument("container_id is required")
    return cid


def _since(value) -> float | None:
    if value in (None, "", 0):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value)
    try:
        return float(text)
    except ValueError:
        pass
    duration = _go_duration(text)
    if duration is not None:
        return time.time() - duration  # docker's relative form: --since 10m
    try:
        return parse_time(text)
    except ValueError:
        raise errdefs.InvalidArgument(f"invalid time {value!r}: want RFC3339 or Unix seconds") from None


def _go_duration(text: str) -> float | None:
    """Go's time.ParseDuration ("1h30m", "42m", "1.5s") in seconds, or None."""
    try:
        return goduration.seconds(text)
    except ValueError:
        return None


class TasksService:
    def __init__(self, daemon) -> None:
        self.daemon = daemon
        self.manager = TaskManager(daemon)
        daemon.tasks = self.manager  # for other services (and hooks) to find tasks
        self._cleaner: asyncio.Task | None = None
        self._warmer: asyncio.Task | None = None

    async def start(self) -> None:
        await self.manager.recover()
        self._cleaner = asyncio.ensure_future(self._remove_logs_of_deleted())
        self._warmer = asyncio.ensure_future(self._warm_zygote())

    async def _warm_zygote(self) -> None:
        """The shim zygote up before the first Create needs it (started on demand otherwise)."""
        try:
            await asyncio.to_thread(self.manager.forker.warm)
        except ZygoteUnavailable as exc:
            log.warning("%s: shims start as scripts", exc)

    async def stop(self) -> None:
        for t in (self._cleaner, self._warmer):
            if t is not None:
                t.cancel()
        await self.manager.close()

    async def _remove_logs_of_deleted(self) -> None:
        """A container's log directory goes with its record (docker rm)."""
        async for env in self.daemon.events.stream(['topic=="/containers/delete"']):
            cid = (env.get("event") or {}).get("id", "")
            if cid and "/" not in cid and cid not in (".", ".."):
                d = Path(self.daemon.root) / "containers" / env["namespace"] / cid
                await asyncio.to_thread(shutil.rmtree, d, True)

    # -- lifecycle ---------------------------------------------------------------------------------
    async def Create(self, ctx, params):
        task = await self.manager.create(ctx.namespace, _cid(params), params)
        return {"container_id": task.id, "pid": task.pid}

    async def Start(self, ctx, params):
        """`{container_id, exec_id}`; combined (pyctr's fast path, docs/protocol.md): `create` (Create's
        params) creates the task first, `record: {state_extension, clear_labels}` records the start as
        Attach's `start` does (a task created here and failing to start is deleted again)."""
        cid, exec_id = _cid(params), params.get("exec_id") or ""
        create, record = params.get("create"), params.get("record")
        if (create is not None or record) and exec_id:
            raise errdefs.InvalidArgument("start: create and record are for a container's task (no exec_id)")
        if create is None and not record:
            return await self._start(ctx, cid, exec_id)
        if create is not None:
            if not isinstance(create, dict):
                raise errdefs.InvalidArgument("start: create must be Tasks.Create's params")
            await self.manager.create(ctx.namespace, cid, create)
        return (await self._start_recorded(ctx, cid, record or True, delete_on_failure=create is not None))

    async def _start(self, ctx, cid: str, exec_id: str) -> dict:
        task = self.manager.get(ctx.namespace, cid)
        result = await task.client.call("start", {"exec_id": exec_id})
        if exec_id:
            self.daemon.publish(ctx.namespace, "/tasks/exec-started",
                                {"container_id": cid, "exec_id": exec_id, "pid": result.get("pid", 0)})
        else:
            self.daemon.publish(ctx.namespace, "/tasks/start", {"container_id": cid, "pid": result.get("pid", 0)})
        return {"pid": result.get("pid", 0)}

    async def Delete(self, ctx, params):
        cid = _cid(params)
        result = await self.manager.delete(ctx.namespace, cid, bool(params.get("force")))
        return {"id": cid, "pid": result.get("pid", 0), "exit_status": result.get("exit_status"),
                "exited_at": result.get("exited_at", "")}

    async def DeleteProcess(self, ctx, params):
        cid = _cid(params)
        exec_id = params.get("exec_id") or ""
        if not exec_id:
            raise errdefs.InvalidArgument("DeleteProcess: exec_id is required (Delete removes the task)")
        task = self.manager.get(ctx.namespace, cid)
        result = await task.client.call("delete", {"exec_id": exec_id, "force": bool(params.get("force"))})
        return {"id": exec_id, "pid": result.get("pid", 0), "exit_status": result.get("exit_status"),
                "exited_at": result.get("exited_at", "")}

    async def Kill(self, ctx, params):
        task = self.manager.get(ctx.namespace, _cid(params))
        await task.client.call("kill", {"exec_id": params.get("exec_id") or "",
                                        "signal": params.get("signal", 15), "all": bool(params.get("all"))})
        return {}

    async def Stop(self, ctx, params):
        """docker stop in one call (not containerd's API): the signal (default: the image's STOPSIGNAL
        annotation, else SIGTERM), up to `timeout` seconds (default 10), then SIGKILL to every process."""
        cid = _cid(params)
        task = self.manager.get(ctx.namespace, cid)
        timeout = float(params.get("timeout", 10) if params.get("timeout") is not None else 10)
        sig = params.get("signal")
        if not sig:
            container = await asyncio.to_thread(self.daemon.containers.get, ctx.namespace, cid)
            annotations = (container.get("spec") or {}).get("annotations") or {}
            sig = annotations.get(ocispec.STOP_SIGNAL_ANNOTATION) or "SIGTERM"
        if task.exit is None:
            try:
                await task.client.call("kill", {"signal": sig})
                if timeout > 0:
                    await asyncio.wait_for(asyncio.shield(task.exited.wait()), timeout)
            except (asyncio.TimeoutError, errdefs.NotFound):
                pass
        if task.exit is None:
            try:
                await task.client.call("kill", {"signal": "SIGKILL", "all": True})
            except errdefs.NotFound:
                pass  # it exited meanwhile
            await task.exited.wait()
        return {"exit_status": task.exit.get("exit_status"), "exited_at": task.exit.get("exited_at", ""),
                "oom_killed": bool(task.exit.get("oom_killed"))}

    async def Exec(self, ctx, params):
        cid = _cid(params)
        exec_id = params.get("exec_id") or ""
        if not exec_id:
            raise errdefs.InvalidArgument("Exec: exec_id is required")
        task = self.manager.get(ctx.namespace, cid)
        process = await asyncio.to_thread(self.manager.exec_process, ctx.namespace, cid, params)
        await task.client.call("exec", {"exec_id": exec_id, "process": process,
                                        "terminal": process.get("terminal", False),
                                        "stdin": bool(params.get("stdin")) or process.get("terminal", False)})
        self.daemon.publish(ctx.namespace, "/tasks/exec-added", {"container_id": cid, "exec_id": exec_id})
        return {}

    async def ResizePty(self, ctx, params):
        task = self.manager.get(ctx.namespace, _cid(params))
        await task.client.call("resize", {"exec_id": params.get("exec_id") or "",
                                          "width": int(params.get("width", 80)),
                                          "height": int(params.get("height", 24))})
        return {}

    async def CloseIO(self, ctx, params):
        task = self.manager.get(ctx.namespace, _cid(params))
        if params.get("stdin", True):
            await task.client.call("close_stdin", {"exec_id": params.get("exec_id") or ""})
        return {}

    async def Pause(self, ctx, params):
        cid = _cid(params)
        await self.manager.get(ctx.namespace, cid).client.call("pause", {})
        self.daemon.publish(ctx.namespace, "/tasks/paused", {"container_id": cid})
        return {}

    async def Resume(self, ctx, params):
        cid = _cid(params)
        await self.manager.get(ctx.namespace, cid).client.call("resume", {})
        self.daemon.publish(ctx.namespace, "/tasks/resumed", {"container_id": cid})
        return {}

    async def ListPids(self, ctx, params):
        result = await self.manager.get(ctx.namespace, _cid(params)).client.call("pids", {})
        return {"processes": result.get("pids", [])}

    async def Wait(self, ctx, params):
        task = self.manager.get(ctx.namespace, _cid(params))
        exec_id = params.get("exec_id") or ""
        if not exec_id and task.exit is not None:
            return {"exit_status": task.exit.get("exit_status"), "exited_at": task.exit.get("exited_at", ""),
                    "oom_killed": bool(task.exit.get("oom_killed"))}
        # a connection of its own: a long wait must not hold up the task's other calls
        client = ShimClient(task.bundle)
        try:
            await client.connect()
            result = await client.call("wait", {"exec_id": exec_id})
        except errdefs.Unavailable:
            if exec_id:
                raise
            await task.exited.wait()  # the shim is gone: its watcher records what can be known
            result = task.exit or {}
        finally:
            await client.close()
        return {"exit_status": result.get("exit_status"), "exited_at": result.get("exited_at", ""),
                "oom_killed": bool(result.get("oom_killed"))}

    async def Get(self, ctx, params):
        return {"process": await self.manager.state(ctx.namespace, _cid(params), params.get("exec_id") or "")}

    async def List(self, ctx, params):
        match = matcher(params.get("filters"))
        out = []
        for (ns, cid) in list(self.manager.tasks):
            if ns != ctx.namespace:
                continue
            try:
                state = await self.manager.state(ns, cid)
            except errdefs.NotFound:
                continue
            if match(state):
                out.append(state)
        return {"tasks": out}

    async def Metrics(self, ctx, params):
        wanted = set(params.get("container_ids") or [])
        match = matcher(params.get("filters"))
        out = []
        for (ns, cid), task in list(self.manager.tasks.items()):
            if ns != ctx.namespace or (wanted and cid not in wanted) or not match({"id": cid}):
                continue
            try:
                result = await task.client.call("stats", {})
            except errdefs.Error:
                continue  # exited meanwhile: no metrics, as containerd
            out.append({"id": cid, "timestamp": time.time(), "data": result.get("stats", {})})
        return {"metrics": out}

    # -- streams -----------------------------------------------------------------------------------
    async def Attach(self, ctx, params):
        cid = _cid(params)
        exec_id = params.get("exec_id") or ""
        create, start = params.get("create"), params.get("start")
        if (create is not None or start) and exec_id:
            raise errdefs.InvalidArgument("attach: create and start are for a container's task (no exec_id)")
        if create is not None:
            if not isinstance(create, dict):
                raise errdefs.InvalidArgument("attach: create must be Tasks.Create's params")
            await self.manager.create(ctx.namespace, cid, create)
        task = self.manager.get(ctx.namespace, cid)
        try:
            client = await ShimClient(task.bundle).connect()
        except BaseException:
            if create is not None:
                await self._delete_quietly(ctx.namespace, cid)
            raise
        opened: dict[str, int] = {}
        pump = None

        async def stdin_pump() -> None:
            while True:
                frame = await ctx.recv()
                if frame is None:
                    client.send_frame(opened["id"], {"close_send": True})
                    return
                if "resize" in frame:
                    size = frame["resize"] or {}
                    await task.client.call("resize", {"exec_id": exec_id, "width": int(size.get("width", 80)),
                                                      "height": int(size.get("height", 24))})
                if frame.get("data"):
                    client.send_frame(opened["id"], {"stream": {"data": frame["data"]}})

        try:
            async for item in client.stream("attach", {"exec_id": exec_id, "stdin": bool(params.get("stdin")),
                                                       "close_stdin": bool(params.get("close_stdin"))},
                                            on_open=lambda i: opened.__setitem__("id", i)):
                if "__result__" in item:
                    res = item["__result__"]
                    yield Result({"exit_status": res.get("exit_status"), "exited_at": res.get("exited_at", "")})
                    return
                if item.get("attached") and pump is None:
                    pump = asyncio.ensure_future(stdin_pump())
                    yield item
                    if start:
                        yield {"started": await self._start_recorded(ctx, cid, start)}
                    continue
                yield item
        finally:
            if pump is not None:
                pump.cancel()
            await client.close()

    async def _start_recorded(self, ctx, cid: str, start, delete_on_failure: bool = True) -> dict:
        """Attach's `start`, Start's `record`: `clear_labels` dropped before the start (an exit at once
        already sees them gone: the restart policies read them), the process started (its task deleted
        again if it cannot start), then {StartedAt, …} merged into `state_extension`."""
        opts = start if isinstance(start, dict) else {}
        store = self.daemon.containers
        if opts.get("clear_labels"):
            await asyncio.to_thread(store.merge_extension, ctx.namespace, cid, "", {},
                                    [str(k) for k in opts["clear_labels"]])
        started_at = time.time()  # before the start: a process that exits at once has FinishedAt ≥ StartedAt
        try:
            result = await self._start(ctx, cid, "")
        except BaseException:
            if delete_on_failure:
                await self._delete_quietly(ctx.namespace, cid)
            raise
        if opts.get("state_extension"):
            from ..ctr.humanize import rfc3339nano  # pyctr's own format for these fields

            values = {"StartedAt": rfc3339nano(started_at), "FinishedAt": "", "Error": "", "ExitCode": 0}
            await asyncio.to_thread(store.merge_extension, ctx.namespace, cid, str(opts["state_extension"]), values)
        return {"pid": result.get("pid", 0)}

    async def _delete_quietly(self, namespace: str, cid: str) -> None:
        try:
            await self.manager.delete(namespace, cid, True)
        except errdefs.Error as exc:
            log.warning("task %s: delete after a failed start: %s", cid, exc)

    def Logs(self, ctx, params):
        cid = _cid(params)
        path = self.manager.log_path(ctx.namespace, cid)
        self.daemon.containers.get(ctx.namespace, cid)  # NotFound for a container that does not exist
        follow = bool(params.get("follow"))
        tail = params.get("tail")
        tail = None if tail in (None, "", "all") else int(tail)
        since, until = _since(params.get("since")), _since(params.get("until"))
        key = (ctx.namespace, cid)

        def stopped() -> bool:
            if ctx.cancelled.is_set():
                return True
            task = self.manager.tasks.get(key)
            return task is None or task.exit is not None

        for entry in read_logs(str(path), tail=tail, since=since, until=until, follow=follow, stop=stopped):
            if ctx.cancelled.is_set():
                return
            yield {"stream": entry.stream, "log": entry.log, "time": entry.time}


def register(daemon) -> None:
    daemon.server.register("Tasks", TasksService(daemon))

