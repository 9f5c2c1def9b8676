"""OCI hooks: run with the container state JSON on stdin, an optional timeout, failures as one-line errors."""

from __future__ import annotations

from pyoci import fastjson as json  # `json` imports re and enum: ~8 ms a start

from .errors import RuntimeFailure
from .specconv import Hook


def run(kind: str, hooks: tuple[Hook, ...], state: dict) -> None:
    if not hooks:
        return
    import subprocess

    data = json.dumps(state).encode()
    for i, h in enumerate(hooks):
        args = list(h.args) or [h.path]
        env = dict(e.partition("=")[::2] for e in h.env)
        try:
            p = subprocess.Popen(args, executable=h.path, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, close_fds=True)
        except OSError as e:
            raise RuntimeFailure(f"error running {kind} hook #{i}: fork/exec {h.path}: {e.strerror.lower()}") from None
        try:
            out, err = p.communicate(data, timeout=h.timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise RuntimeFailure(f"error running {kind} hook #{i}: timeout after {h.timeout}s") from None
        except BrokenPipeError:
            out, err = p.communicate()
        if p.returncode != 0:
            status = f"exit status {p.returncode}" if p.returncode > 0 else f"signal: {-p.returncode}"
            raise RuntimeFailure(
                f"error running {kind} hook #{i}: {status}, stdout: {out.decode(errors='replace').strip()}, "
                f"stderr: {err.decode(errors='replace').strip()}"
            )
