"""top, stats, events: watching containers."""

from __future__ import annotations

import re
import subprocess
import sys
import time

from .. import errdefs
from .backend import Backend, CLIError, ContainerView, familiar
from .formatting import print_rows, render, tabulate
from .humanize import bytes_size, human_size, parse_time, rfc3339nano

STATS_HEADERS = {"Container": "CONTAINER ID", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
                 "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O",
                 "PIDs": "PIDS"}
STATS_FORMAT = ("table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}"
                "\t{{.PIDs}}")


def top(b: Backend, ref: str, ps_args: list[str]) -> None:
    """docker top: the host's `ps -ef` (or the given ps options) restricted to the container's pids."""
    c = b.container(ref, daemon_wording=True)
    if c.status not in ("running", "paused"):
        raise CLIError(f"Error response from daemon: Container {c.id} is not running")
    pids = {int(p["pid"]) for p in b.call("Tasks", "ListPids", {"container_id": c.id}).get("processes", [])}
    proc = subprocess.run(["ps", *(ps_args or ["-ef"])], capture_output=True, text=True)
    if proc.returncode != 0:
        raise CLIError(f"Error response from daemon: ps: {proc.stderr.strip()}")
    lines = proc.stdout.splitlines()
    header = lines[0].split()
    try:
        pid_col = header.index("PID")
    except ValueError:
        raise CLIError('Error response from daemon: Couldn\'t find PID field in ps output') from None
    rows = ["\t".join(header)]
    for line in lines[1:]:
        fields = line.split(None, len(header) - 1)
        if len(fields) > pid_col and fields[pid_col].isdigit() and int(fields[pid_col]) in pids:
            rows.append("\t".join(fields))
    sys.stdout.write(tabulate(rows, minwidth=20, padding=3))


def _sample(b: Backend, views: list[ContainerView]) -> dict[str, dict]:
    ids = [c.id for c in views if c.running]
    if not ids:
        return {}
    metrics = b.call("Tasks", "Metrics", {"container_ids": ids}).get("metrics", [])
    return {m["id"]: {"data": m.get("data") or {}, "time": m.get("timestamp") or time.time()} for m in metrics}


def _row(c: ContainerView, now: dict | None, before: dict | None, no_trunc: bool) -> dict:
    data = (now or {}).get("data") or {}
    cpu = ((data.get("cpu") or {}).get("usage") or {}).get("total", 0)
    cpu_perc = 0.0
    if before is not None and now is not None:
        prev = (((before.get("data") or {}).get("cpu") or {}).get("usage") or {}).get("total", 0)
        elapsed = (now["time"] - before["time"]) * 1e9
        if elapsed > 0 and cpu >= prev:
            cpu_perc = (cpu - prev) / elapsed * 100.0
    mem = data.get("memory") or {}
    usage = (mem.get("usage") or {}).get("usage", 0)
    cache = (mem.get("raw") or {}).get("inactive_file", (mem.get("raw") or {}).get("cache", 0))
    usage = max(usage - cache, 0)
    limit = (mem.get("usage") or {}).get("limit", 0)
    try:
        host = int(open("/proc/meminfo").read().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        host = 0
    if not limit or limit > host > 0:
        limit = host
    blk_r = blk_w = 0
    for entry in (data.get("blkio") or {}).get("ioServiceBytesRecursive") or []:
        op = (entry.get("op") or "").lower()
        if op == "read":
            blk_r += entry.get("value", 0)
        elif op == "write":
            blk_w += entry.get("value", 0)
    pids = (data.get("pids") or {}).get("current", 0)
    return {"BlockIO": f"{human_size(blk_r)} / {human_size(blk_w)}", "CPUPerc": f"{cpu_perc:.2f}%",
            "Container": c.id if no_trunc else c.id[:12], "ID": c.id if no_trunc else c.id[:12],
            "MemPerc": f"{(usage / limit * 100 if limit else 0):.2f}%",
            "MemUsage": f"{bytes_size(usage)} / {bytes_size(limit)}", "Name": c.name, "NetIO": net_io(c),
            "PIDs": str(pids)}


def net_io(c: ContainerView) -> str:
    """NET I/O as docker's: received / sent bytes of the container's interfaces (its netns's /proc/PID/net/dev,
    loopback left out); nothing for --network host or none, whose traffic is not the container's own."""
    mode = ((c.docker.get("HostConfig") or {}).get("NetworkMode") or "")
    rx = tx = 0
    if c.pid and mode not in ("host", "none"):
        try:
            with open(f"/proc/{c.pid}/net/dev") as f:
                lines = f.read().splitlines()[2:]
        except OSError:
            lines = []
        for line in lines:
            name, _, counters = line.partition(":")
            fields = counters.split()
            if name.strip() != "lo" and len(fields) >= 9:
                rx += int(fields[0])
                tx += int(fields[8])
    return f"{human_size(rx)} / {human_size(tx)}"


def stats(b: Backend, refs: list[str], all_: bool, no_stream: bool, fmt: str, no_trunc: bool) -> None:
    if refs:
        views = [b.container(r, daemon_wording=True) for r in refs]
    else:
        views = [c for c in b.containers() if all_ or c.running]
    before = _sample(b, views)
    time.sleep(0.5 if no_stream else 0.2)
    while True:
        now = _sample(b, views)
        rows = [_row(c, now.get(c.id), before.get(c.id), no_trunc) for c in views]
        if not no_stream:
            sys.stdout.write("\033[2J\033[H")
        print_rows(fmt or STATS_FORMAT, rows, STATS_HEADERS, sys.stdout.write)
        sys.stdout.flush()
        if no_stream:
            return
        before = now
        time.sleep(1)
        if not refs:
            views = [c for c in b.containers() if all_ or c.running]


# -- events --------------------------------------------------------------------------------------

_TOPICS = {"/containers/create": ("container", "create"), "/containers/delete": ("container", "destroy"),
"/tasks/start": ("container", "start"),
           "/tasks/exit": ("container", "die"), "/tasks/paused": ("container", "pause"),
           "/tasks/resumed": ("container", "unpause"), "/tasks/oom": ("container", "oom"),
           "/tasks/exec-added": ("container", "exec_create"), "/tasks/exec-started": ("container", "exec_start"),
           "/images/create": ("image", "tag"), "/images/update": ("image", "tag"),
           "/images/delete": ("image", "untag"),
           "/containers/health_status": ("container", "health_status")}  # pycontainerd.health's


def events(b: Backend, filters: list[str], fmt: str, since: str, until: str) -> None:
    """docker events: daemon events as `TIME type action id (attrs)`, filtered by type/event/container/image."""
    wanted: dict[str, set[str]] = {}
    for f in filters:
        k, sep, v = f.partition("=")
        if not sep:
            raise CLIError(f'Error: invalid argument "{f}" for "-f, --filter" flag: bad format of filter '
                           "(expected name=value)")
        wanted.setdefault(k.lower(), set()).add(v)
    names: dict[str, dict] = {}
    for c in b.call("Containers", "List").get("containers", []):
        names[c["id"]] = c
    now = time.time()
    start, end = docker_timestamp(since, now), docker_timestamp(until, now)
    params: dict = {"filters": []}
    if start is not None or end is not None:  # dockerd replays its recent events for either
        params["since"] = start or 0.0
    if end is not None:
        params["until"] = end
    try:
        for env in b.client.stream("Events", "Subscribe", params):
            topic = env.get("topic", "")
            if topic not in _TOPICS:
                continue
            typ, action = _TOPICS[topic]
            ev = env.get("event") or {}
            if action == "health_status":
                action = f"health_status: {ev.get('status', '')}"
            actor = ev.get("container_id") or ev.get("id") or ev.get("name") or ""
            attrs: dict[str, str] = {}
            if typ == "container":
                rec = names.get(actor)
                if topic == "/containers/create" or rec is None:
                    try:
                        rec = b.call("Containers", "Get", {"id": actor})["container"]
                        names[actor] = rec
                    except errdefs.Error:  # gone (a replayed event): the create event names the image
                        rec = rec or {"image": familiar(ev.get("image", "")).removesuffix(":latest"),
                                      "labels": ev.get("labels") or {}}
                        names[actor] = rec
                attrs["image"] = ((rec.get("extensions") or {}).get("pyctr/docker") or {}).get("Config", {}).get(
                    "Image") or familiar(rec.get("image", ""))
                attrs["name"] = (rec.get("labels") or {}).get("nerdctl/name", actor[:12])
                if action == "die":
                    attrs["exitCode"] = str(ev.get("exit_status", 0))
                if action.startswith("exec_"):
                    if ev.get("exec_id") == "" or ev.get("exec_id") is None:
                        continue
                    attrs["execID"] = ev.get("exec_id", "")
                    if ev.get("args"):  # docker's action names the command: `exec_create: /bin/sh -c …`
                        action = f"{action}: {' '.join(ev['args'])}"
            else:
                attrs["name"] = familiar(actor)
                actor = familiar(actor)
            if not _wanted(wanted, typ, action, actor, attrs):
                continue
            when = parse_time(env.get("timestamp")) or time.time()
            if fmt:
                obj = {"Type": typ, "Action": action, "Actor": {"ID": actor, "Attributes": attrs},
                       "status": action, "id": actor, "from": attrs.get("image", ""), "scope": "local",
                       "time": int(when), "timeNano": int(when * 1e9)}
                sys.stdout.write(render(fmt, obj) + "\n")
            else:
                text = ", ".join(f"{k}={v}" for k, v in sorted(attrs.items()))
                sys.stdout.write(f"{rfc3339nano(when)} {typ} {action} {actor} ({text})\n")
            sys.stdout.flush()
    except KeyboardInterrupt:
        return


_GO_DURATION = re.compile(r"^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h)(?:(?:\d+(?:\.\d*)?|\.\d+)"
                          r"(?:ns|us|µs|ms|s|m|h))*$")
_TIME_LAYOUTS = ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H", "%Y-%m-%d")


def docker_timestamp(value: str, now: float) -> float | None:
    """docker's timetypes.GetTimestamp: a Go duration counts back from now ("10m" is ten minutes ago), else
    RFC 3339 (local time without a zone), a date, or unix seconds."""
    import datetime as dt

    from .humanize import parse_duration

    if not value:
        return None
    if value != "0" and _GO_DURATION.match(value):
        sign = -1.0 if value.startswith("-") else 1.0
        return now - sign * parse_duration(value.lstrip("+-"))
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    if re.search(r"(Z|[+-]\d\d:\d\d)$", value):
        seconds = parse_time(value.replace("+00:00", "Z"))
        if seconds or value.startswith("1970-01-01T00:00:00"):
            if not value.endswith("Z") and not value.endswith("+00:00"):
                zone = dt.datetime.fromisoformat(value[:19] + value[-6:]).utcoffset() or dt.timedelta()
                seconds = dt.datetime.fromisoformat(value[:19]).replace(tzinfo=dt.timezone(zone)).timestamp() + \
                    (seconds % 1 if "." in value else 0.0)
            return seconds
    for layout in _TIME_LAYOUTS:
        try:
            return dt.datetime.strptime(value, layout).timestamp()
        except ValueError:
            continue
    raise CLIError(f'failed to parse value as time or duration: "{value}"')


def _wanted(wanted: dict[str, set[str]], typ: str, action: str, actor: str, attrs: dict[str, str]) -> bool:
    for key, values in wanted.items():
        if key == "type" and typ not in values:
            return False
        if key == "event" and action not in values and action.split(":")[0] not in values:
            return False
        if key == "container" and (typ != "container" or not any(
                v == attrs.get("name") or actor.startswith(v) for v in values)):
            return False
        if key == "image" and attrs.get("image") not in values and actor not in values:
            return False
        if key == "label":
            return True
    return True
