"""A process's stdio over Tasks.Attach: output to our stdout/stderr, our stdin to it, the terminal in
raw mode with window resizes for `-t`, signals proxied as docker's --sig-proxy."""

from __future__ import annotations

import os
import select
import signal
import sys
import termios
import threading
import tty
from contextlib import contextmanager
from typing import Callable, Iterator

from .. import errdefs, protocol
from ..client import Call, Client


@contextmanager
def raw_terminal(enabled: bool) -> Iterator[None]:
    """The local terminal in raw mode while a `-t` session runs (restored even on errors)."""
    fd = sys.stdin.fileno() if enabled else -1
    saved = None
    if enabled and os.isatty(fd):
        saved = termios.tcgetattr(fd)
        tty.setraw(fd)
    try:
        yield
    finally:
        if saved is not None:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def terminal_size() -> tuple[int, int]:
    for fd in (sys.stdin.fileno(), sys.stdout.fileno()):
        try:
            size = os.get_terminal_size(fd)
            return size.columns, size.lines
        except OSError:
            continue
    return 80, 24


def _stdin_pump(call: Call, stop: threading.Event) -> None:
    """Our stdin to the process until EOF (then close_send, which closes its stdin)."""
    fd = sys.stdin.fileno()
    try:
        while not stop.is_set():
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                continue
            data = os.read(fd, 32768)
            if not data:
                break
            call.send_data(data)
    except (OSError, errdefs.Error, ValueError):
        pass
    try:
        call.close_send()
    except errdefs.Error:
        pass


def attach(client: Client, cid: str, exec_id: str = "", stdin: bool = False, tty_: bool = False,
           on_attached: Callable[[], None] | None = None, proxy_signals: Callable[[int], None] | None = None,
           close_stdin: bool = True) -> int | None:
    """Stream a process's output (starting it with `on_attached` once attached, so nothing is missed);
    returns its exit status, or None when detached before it exited."""
    call = client.duplex("Tasks", "Attach", {"container_id": cid, "exec_id": exec_id, "stdin": stdin,
                                             "close_stdin": close_stdin})
    stop = threading.Event()
    pump: threading.Thread | None = None
    old_handlers: dict[int, object] = {}

    def on_winch(_sig, _frame) -> None:
        w, h = terminal_size()
        try:
            call.send({"resize": {"width": w, "height": h}})
        except errdefs.Error:
            pass

    try:
        with raw_terminal(tty_ and stdin):
            for frame in call:
                if frame.get("attached"):
                    if on_attached is not None:
                        on_attached()
                    if tty_:
                        on_winch(None, None)
                        if threading.current_thread() is threading.main_thread():
                            old_handlers[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, on_winch)
                    if proxy_signals is not None and not tty_ and threading.current_thread() is threading.main_thread():
                        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
                            old_handlers[sig] = signal.signal(sig, lambda s, _f: proxy_signals(s))
                    if stdin:
                        pump = threading.Thread(target=_stdin_pump, args=(call, stop), daemon=True)
                        pump.start()
                    continue
                data = frame.get("data")
                if data:
                    stream = sys.stderr if frame.get("stream") == "stderr" else sys.stdout
                    stream.buffer.write(protocol.b64decode(data))
                    stream.buffer.flush()
            result = call.result()
    finally:
        stop.set()
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
    status = result.get("exit_status")
    return None if status is None else int(status)
