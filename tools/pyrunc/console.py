"""Terminals: a pty opened inside the container, its master sent over SCM_RIGHTS (to containerd's console
socket, or to a foreground `run`, which copies it to and from its own stdio)."""

from __future__ import annotations

import fcntl
import os
import socket
import struct

from .errors import ConfigError, RuntimeFailure

TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431
TIOCSWINSZ = 0x5414
TIOCGWINSZ = 0x5413


def open_pty() -> tuple[int, str]:
    """(master fd, slave path) from the container's /dev/ptmx (its own devpts instance)."""
    try:
        master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        raise RuntimeFailure(f"open /dev/ptmx: {e.strerror.lower()}") from None
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    n = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0\0\0\0"))[0]
    return master, f"/dev/pts/{n}"


def set_size(fd: int, height: int, width: int) -> None:
    fcntl.ioctl(fd, TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


def copy_size(src: int, dst: int) -> None:
    try:
        fcntl.ioctl(dst, TIOCSWINSZ, fcntl.ioctl(src, TIOCGWINSZ, b"\0" * 8))
    except OSError:
        pass


def attach_slave(slave_path: str) -> None:
    """In the init: the slave becomes stdio, the controlling terminal and /dev/console."""
    from . import syscalls as sc

    fd = os.open(slave_path, os.O_RDWR | os.O_NOCTTY)
    try:
        if not os.path.exists("/dev/console"):
            os.close(os.open("/dev/console", os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
        sc.mount(slave_path, "/dev/console", "bind", sc.MS_BIND)
    except OSError:
        pass
    for i in (0, 1, 2):
        os.dup2(fd, i)
    import fcntl as _f
    import termios

    _f.ioctl(0, termios.TIOCSCTTY, 0)
    if fd > 2:
        os.close(fd)


def send_to_socket(path: str, master: int) -> None:
    """Send the master to the --console-socket as runc does: one SCM_RIGHTS message naming the pty."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        socket.send_fds(s, [b"/dev/ptmx"], [master])
    except OSError as e:
        raise RuntimeFailure(f"failed to send console to {path}: {e.strerror.lower() if e.strerror else e}") from None
    finally:
        s.close()


def check_socket(path: str | None, terminal: bool, detach: bool) -> None:
    if path and not terminal:
        raise ConfigError("cannot use console socket if runc will not detach or allocate tty")
    if terminal and detach and not path:
        raise ConfigError("cannot allocate tty if runc will detach without setting console socket")


def relay(master: int, pid_alive) -> None:
    """Foreground run with a terminal: raw-mode our tty and copy bytes both ways until the master closes."""
    import select
    import termios
    import tty

    saved = None
    if os.isatty(0):
        saved = termios.tcgetattr(0)
        tty.setraw(0)
        copy_size(0, master)
    try:
        fds = [master, 0]
        while True:
            r, _, _ = select.select(fds, [], [], 0.2)
            if master in r:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""
                if not data:
                    return
                os.write(1, data)
            if 0 in r:
                data = os.read(0, 65536)
                if not data:
                    fds.remove(0)
                else:
                    os.write(master, data)
            if not r and not pid_alive():
                return
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
