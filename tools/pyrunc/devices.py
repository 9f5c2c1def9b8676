"""/dev inside the container as runc sets it up: default devices, linux.devices, /dev/pts, ptmx and fd symlinks."""

from __future__ import annotations

import os
import stat

from . import syscalls as sc
from .specconv import Device

# runc's AllowedDevices that it creates in every container.
DEFAULT_DEVICES = (
    Device("/dev/null", "c", 1, 3, 0o666, 0, 0),
    Device("/dev/zero", "c", 1, 5, 0o666, 0, 0),
    Device("/dev/full", "c", 1, 7, 0o666, 0, 0),
    Device("/dev/random", "c", 1, 8, 0o666, 0, 0),
    Device("/dev/urandom", "c", 1, 9, 0o666, 0, 0),
    Device("/dev/tty", "c", 5, 0, 0o666, 0, 0),
)

SYMLINKS = (
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
)


def _type_bits(kind: str) -> int:
    return {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[kind]


def create_device(rootfs: str, dev: Device, bind: bool) -> None:
    """mknod the device under rootfs, or (in a user namespace, where mknod is refused) bind the host's node."""
    from .rootfs import secure_join

    dest = secure_join(rootfs, dev.path)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    if bind:
        if not os.path.exists(dest):
            os.close(os.open(dest, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o755))
        sc.mount(dev.path, dest, "bind", sc.MS_BIND)
        return
    try:
        os.unlink(dest)
    except FileNotFoundError:
        pass
    mode = dev.file_mode if dev.file_mode is not None else 0o666
    os.mknod(dest, (mode & 0o7777) | _type_bits(dev.type), os.makedev(dev.major, dev.minor))
    os.chmod(dest, mode & 0o7777)  # mknod is subject to the umask
    os.chown(dest, dev.uid or 0, dev.gid or 0)


def setup_dev(rootfs: str, devices: tuple[Device, ...], in_userns: bool) -> None:
    old = os.umask(0)
    try:
        seen = set()
        for dev in tuple(devices) + DEFAULT_DEVICES:
            if dev.path in seen:
                continue
            seen.add(dev.path)
            create_device(rootfs, dev, in_userns)
    finally:
        os.umask(old)
    devdir = os.path.join(rootfs, "dev")
    for target, link in SYMLINKS + (("/proc/kcore", "/dev/core"),):
        if link == "/dev/core" and not os.path.exists("/proc/kcore"):
            continue
        path = os.path.join(devdir, os.path.basename(link))
        try:
            os.symlink(target, path)
        except FileExistsError:
            pass
    ptmx = os.path.join(devdir, "ptmx")
    try:
        os.unlink(ptmx)
    except FileNotFoundError:
        pass
    os.symlink("pts/ptmx", ptmx)
