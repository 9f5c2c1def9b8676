"""`pycontainerd-shim BUNDLE`: start one container's shim, detached from its caller.

The daemon writes `BUNDLE/shim.json` (`id`, `namespace`, `bundle`, `runtime`, `runtime_root`,
`log_path`, `log_max_size`, `log_max_file`, `stdin`, `terminal`) and runs this. It double-forks and
setsid()s, so the shim outlives the daemon; the shim makes itself a child subreaper (the container's
init, reparented when the runtime exits, is its child to reap), listens on `BUNDLE/shim.sock`,
runs `runtime create`, then reports one JSON line on stdout — `{"pid", "shim_pid"}` or `{"error",
"code"}` — and the original process exits (0 or 1). The daemon normally forks shims from a zygote
(zygote.py) that has this module and the server loaded; this script is its fallback. The shim imports no asyncio: the protocol's
framing (pycontainerd.protocol) is asyncio-free, the daemon's stream reader is in aioframes.py.
"""

from __future__ import annotations

import json
import os
import sys

PR_SET_CHILD_SUBREAPER = 36


def _subreaper() -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def _report(fd: int, message: dict) -> None:
    os.write(fd, json.dumps(message).encode() + b"\n")


def run(bundle: str) -> int:
    try:
        cfg = load_config(bundle)
    except (OSError, ValueError) as exc:
        print(json.dumps({"error": f"{bundle}/shim.json: {exc}", "code": 3}))
        return 1
    r, w = os.pipe()
    first = os.fork()
    if first:
        os.close(w)
        chunks = []
        while True:
            chunk = os.read(r, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        os.close(r)
        os.waitpid(first, 0)
        line = b"".join(chunks).decode(errors="replace").strip() or json.dumps(
            {"error": "shim exited before reporting", "code": 2})
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        try:
            return 1 if json.loads(line).get("error") else 0
        except ValueError:
            return 1
    # first child: a new session, then the shim proper in a grandchild no terminal can reach
    os.close(r)
    os.setsid()
    if os.fork():
        os._exit(0)
    become_shim(cfg, w)


def load_config(bundle: str) -> dict:
    """BUNDLE/shim.json, with the bundle's absolute path; OSError/ValueError when unreadable."""
    with open(os.path.join(bundle, "shim.json")) as f:
        cfg = json.load(f)
    cfg["bundle"] = os.path.abspath(bundle)
    return cfg


def become_shim(cfg: dict, w: int) -> None:
    """In the detached grandchild: set the shim up, report on `w` (then closed), serve; never returns."""
    try:
        os.chdir(cfg["bundle"])
        null = os.open(os.devnull, os.O_RDWR)
        logfd = os.open(os.path.join(cfg["bundle"], "shim.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(null, 0)
        os.dup2(logfd, 1)
        os.dup2(logfd, 2)
        os.close(null)
        os.close(logfd)
        _subreaper()
        from pycontainerd.shim.server import Shim, ShimError

        shim = Shim(cfg)
        try:
            info = shim.setup()
        except ShimError as exc:
            shim.close()
            _report(w, {"error": str(exc), "code": exc.code})
            os._exit(1)
    except Exception as exc:  # anything before the shim serves: tell the daemon, in one line
        _report(w, {"error": f"shim: {type(exc).__name__}: {exc}", "code": 2})
        os._exit(1)
    _report(w, info)
    os.close(w)
    try:
        shim.serve()
    except Exception as exc:
        print(f"shim {cfg.get('id')}: {type(exc).__name__}: {exc}", file=sys.stderr)
        os._exit(2)
    os._exit(0)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: pycontainerd-shim BUNDLE   (started by pycontainerd; reads BUNDLE/shim.json)",
              file=sys.stderr)
        return 2
    return run(args[0])


if __name__ == "__main__":
    sys.exit(main())
