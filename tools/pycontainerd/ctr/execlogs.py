"""exec, attach, logs: a container's processes and output."""

from __future__ import annotations

import secrets
import sys

from .. import errdefs
from .backend import Backend, CLIError
from .containers import _kill_proxy, record_exit
from .humanize import rfc3339nano, parse_time
from .stdio import attach


def exec_(b: Backend, ref: str, args: list[str], interactive: bool, tty: bool, env: list[str], workdir: str,
          user: str, detach: bool) -> int:
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
    try:
        status = attach(b.client, c.id, exec_id, stdin=interactive, tty_=tty, on_attached=start)
    finally:
        try:
            b.call("Tasks", "DeleteProcess", {"container_id": c.id, "exec_id": exec_id})
        except errdefs.Error:
            pass
    return status or 0


def attach_(b: Backend, ref: str, no_stdin: bool, sig_proxy: bool = True) -> int:
    c = b.container(ref)
    if c.status != "running":
        raise CLIError("You cannot attach to a stopped container, start it first" if c.status != "paused" else
                       "You cannot attach to a paused container, unpause it first")
    cfg = c.docker.get("Config") or {}
    stdin = bool(cfg.get("OpenStdin")) and not no_stdin
    status = attach(b.client, c.id, stdin=stdin, tty_=bool(cfg.get("Tty")), close_stdin=bool(cfg.get("StdinOnce")),
                    proxy_signals=_kill_proxy(b, c.id) if sig_proxy else None)
    record_exit(b, c.id)
    return status or 0


def logs(b: Backend, ref: str, follow: bool, tail: str, timestamps: bool, since: str, until: str) -> None:
    c = b.container(ref)
    params = {"container_id": c.id, "follow": follow, "tail": None if tail in ("all", "", None) else int(tail),
              "since": since or None, "until": until or None}
    try:
        for entry in b.client.stream("Tasks", "Logs", params):
            text = entry.get("log", "")
            if timestamps:
                text = rfc3339nano(parse_time(entry.get("time"))) + " " + text
            out = sys.stderr if entry.get("stream") == "stderr" else sys.stdout
            out.write(text)
            out.flush()
    except errdefs.Error as exc:
        raise CLIError(f"Error response from daemon: {exc}") from None
