"""exec, attach, logs: a container's processes and output."""

from __future__ import annotations

import re
import secrets
import sys

from .. import errdefs
from .backend import Backend, CLIError
from .containers import _kill_proxy, detach_keys_or_exit, record_exit
from .humanize import rfc3339nano, parse_time
from .stdio import Detached, attach


def exec_(b: Backend, ref: str, args: list[str], interactive: bool, tty: bool, env: list[str], workdir: str,
          user: str, detach: bool, detach_keys: str = "") -> int:
    keys = b"" if detach else detach_keys_or_exit(detach_keys)
    c = b.container(ref)
    if c.status != "running":
        raise CLIError(f"Error response from daemon: Container {c.id} is "
                       f"{'paused, unpause the container before exec' if c.status == 'paused' else 'not running'}")
    # short: the shim's console socket path embeds it and must fit 108 bytes (docker's are 64 hex)
    exec_id = "e" + secrets.token_hex(3)
    spec: dict = {"args": args, "terminal": tty}
    if user:
        spec["user"] = user
    params = {"container_id": c.id, "exec_id": exec_id, "spec": spec, "terminal": tty,
              "stdin": interactive and not detach, "env": env, "cwd": workdir}
    try:
        b.call("Tasks", "Exec", params)
    except errdefs.Error as exc:
        raise CLIError(f"Error response from daemon: {exc}", 126) from None

    def start() -> None:
        try:
            b.call("Tasks", "Start", {"container_id": c.id, "exec_id": exec_id})
        except errdefs.Error as exc:
            # docker 20.10 exits 126 for every exec that cannot start (not found included)
            raise CLIError(f"OCI runtime exec failed: exec failed: {exc}: unknown", 126) from None

    if detach:
        start()
        return 0
    detached = False
    try:
        status = attach(b.client, c.id, exec_id, stdin=interactive, tty_=tty, on_attached=start, detach_keys=keys)
    except Detached:  # docker exec -it: the process runs on; the CLI says so and exits 1
        detached = True
        print("read escape sequence", file=sys.stderr)
        return 1
    finally:
        if not detached:
            try:
                b.call("Tasks", "DeleteProcess", {"container_id": c.id, "exec_id": exec_id})
            except errdefs.Error:
                pass
    return status or 0


def attach_(b: Backend, ref: str, no_stdin: bool, sig_proxy: bool = True, detach_keys: str = "") -> int:
    keys = detach_keys_or_exit(detach_keys)
    c = b.container(ref)
    if c.status != "running":
        raise CLIError("You cannot attach to a stopped container, start it first" if c.status != "paused" else
                       "You cannot attach to a paused container, unpause it first")
    cfg = c.docker.get("Config") or {}
    stdin = bool(cfg.get("OpenStdin")) and not no_stdin
    try:
        status = attach(b.client, c.id, stdin=stdin, tty_=bool(cfg.get("Tty")),
                        close_stdin=bool(cfg.get("StdinOnce")),
                        proxy_signals=_kill_proxy(b, c.id) if sig_proxy else None, detach_keys=keys)
    except Detached:  # docker attach: the container runs on; the CLI says so and exits 1
        print("read escape sequence", file=sys.stderr)
        return 1
    record_exit(b, c.id)
    return status or 0


def log_attrs(docker: dict) -> dict[str, str]:
    """docker's logger.Info.ExtraAttributes: the labels and env named by --log-opt labels/env (or matched by
    labels-regex/env-regex), as json-file records them in each entry's attrs."""
    opts = ((docker.get("HostConfig") or {}).get("LogConfig") or {}).get("Config") or {}
    cfg = docker.get("Config") or {}
    labels = cfg.get("Labels") or {}
    env = dict(e.split("=", 1) for e in cfg.get("Env") or [] if "=" in e)
    out: dict[str, str] = {}
    for key in filter(None, (opts.get("labels") or "").split(",")):
        if key in labels:
            out[key] = labels[key]
    if opts.get("labels-regex") and opts.get("labels"):  # dockerd checks `labels`, not `labels-regex` (its bug)
        out.update({k: v for k, v in labels.items() if re.search(opts["labels-regex"], k)})
    for key in filter(None, (opts.get("env") or "").split(",")):
        if key in env:
            out[key] = env[key]
    if opts.get("env-regex"):
        out.update({k: v for k, v in env.items() if re.search(opts["env-regex"], k)})
    return out


def details_prefix(attrs: dict[str, str]) -> str:
    """`docker logs --details`: the attrs as url-escaped k=v sorted by key, comma-joined, then a space."""
    from urllib.parse import quote_plus

    return ",".join(f"{quote_plus(k, safe='')}={quote_plus(v, safe='')}" for k, v in sorted(attrs.items())) + " "


def logs(b: Backend, ref: str, follow: bool, tail: str, timestamps: bool, since: str, until: str,
         details: bool = False) -> None:
    c = b.container(ref)
    params = {"container_id": c.id, "follow": follow, "tail": None if tail in ("all", "", None) else int(tail),
              "since": since or None, "until": until or None}
    prefix = details_prefix(log_attrs(c.docker)) if details else ""
    try:
        for entry in b.client.stream("Tasks", "Logs", params):
            text = entry.get("log", "")
            if details:
                text = (details_prefix(entry["attrs"]) if entry.get("attrs") else prefix) + text
            if timestamps:
                text = rfc3339nano(parse_time(entry.get("time"))) + " " + text
            out = sys.stderr if entry.get("stream") == "stderr" else sys.stdout
            out.write(text)
            out.flush()
    except errdefs.Error as exc:
        raise CLIError(f"Error response from daemon: {exc}") from None
