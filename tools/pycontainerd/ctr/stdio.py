"""A process's stdio over Tasks.Attach: output to our stdout/stderr, our stdin to it, the terminal in
raw mode with window resizes for `-t`, signals proxied as docker's --sig-proxy."""

from __future__ import annotations

import os
import select
import sys
import termios
import threading
import tty
from _signal import SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH
from _signal import signal as set_handler  # signal.py's wrapper imports enum: ~2 ms of a run
from contextlib import contextmanager

from .. import errdefs, protocol
from ..client import Call, Client
from ..records import record

TYPE_CHECKING = False  # typing only for type checkers: pyctr pays for every import it starts with
if TYPE_CHECKING:
    from typing import Callable, Iterator

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"
# moby/term's keyMap: ctrl-a … ctrl-z and the five punctuation controls
_CTRL = {**{f"ctrl-{chr(c)}": c - 96 for c in range(ord("a"), ord("z") + 1)},
         "ctrl-@": 0, "ctrl-[": 27, "ctrl-\\": 28, "ctrl-]": 29, "ctrl-^": 30, "ctrl-_": 31}
# what docker 20.10's CLI prints when dockerd refuses the keys (the attach upgrade gets a 400)
BAD_DETACH_KEYS = "unable to upgrade to tcp, received 400"


class Detached(Exception):
    """The user typed the detach keys: the process keeps running, its stdin stays open."""


def parse_detach_keys(text: str) -> bytes:
    """moby/term's ToBytes: comma-separated single characters or ctrl-X names."""
    out = bytearray()
    for key in text.split(","):
        if len(key) == 1:
            out += key.encode()
        elif key.lower() in _CTRL:
            out.append(_CTRL[key.lower()])
        else:
            raise ValueError(f"Unknown character: '{key}'")
    return bytes(out)


@record
class EscapeProxy:
    """Watches typed input for the detach sequence; a partial match is held back, then passed on when the
    next key does not continue it (moby/term's escapeProxy)."""

    keys: bytes
    pos: int = 0

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(bytes for the process, whether the sequence completed)."""
        out = bytearray()
        for byte in data:
            if byte == self.keys[self.pos]:
                self.pos += 1
                if self.pos == len(self.keys):
                    self.pos = 0
                    return bytes(out), True
                continue
            out += self.keys[:self.pos]
            self.pos = 0
            if byte == self.keys[0]:
                self.pos = 1
                if len(self.keys) == 1:
                    return bytes(out), True
            else:
                out.append(byte)
        return bytes(out), False


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


def _stdin_pump(call: Call, stop: threading.Event, escape: EscapeProxy | None = None,
                detached: threading.Event | None = None) -> None:
    """Our stdin to the process until EOF (then close_send, which closes its stdin); with `escape`, the
    detach keys end the attach instead (cancelled, the process's stdin left open)."""
    fd = sys.stdin.fileno()
    try:
        while not stop.is_set():
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                continue
            data = os.read(fd, 32768)
            if not data:
                break
            done = False
            if escape is not None:
                data, done = escape.feed(data)
            if data:
                call.send_data(data)
            if done and detached is not None:
                detached.set()
                call.cancel()
                return
    except (OSError, errdefs.Error, ValueError):
        pass
    try:
        call.close_send()
    except errdefs.Error:
        pass


def attach(client: Client, cid: str, exec_id: str = "", stdin: bool = False, tty_: bool = False,
           on_attached: Callable[[], None] | None = None, proxy_signals: Callable[[int], None] | None = None,
           close_stdin: bool = True, detach_keys: bytes | None = None) -> int | None:
    """Stream a process's output (starting it with `on_attached` once attached, so nothing is missed);
    returns its exit status, or None when detached before it exited. With a terminal and stdin,
    `detach_keys` typed by the user raise Detached (docker applies them only to `-it`)."""
    escape = EscapeProxy(detach_keys) if detach_keys and tty_ and stdin else None
    detached = threading.Event()
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
                            old_handlers[SIGWINCH] = set_handler(SIGWINCH, on_winch)
                    if proxy_signals is not None and not tty_ and threading.current_thread() is threading.main_thread():
                        for sig in (SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2):
                            old_handlers[sig] = set_handler(sig, lambda s, _f: proxy_signals(s))
                    if stdin:
                        pump = threading.Thread(target=_stdin_pump, args=(call, stop, escape, detached),
                                                daemon=True)
                        pump.start()
                    continue
                data = frame.get("data")
                if data:
                    stream = sys.stderr if frame.get("stream") == "stderr" else sys.stdout
                    stream.buffer.write(protocol.b64decode(data))
                    stream.buffer.flush()
            result = call.result()
    except errdefs.Error:
        if detached.is_set():
            raise Detached() from None
        raise
    finally:
        stop.set()
        for sig, handler in old_handlers.items():
            set_handler(sig, handler)
    if detached.is_set():
        raise Detached()
    status = result.get("exit_status")
    return None if status is None else int(status)
