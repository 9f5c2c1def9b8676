"""Runtime-spec config.json for an image: runc's default spec, filled from an image config as umoci does."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import InvalidDocument

OCI_VERSION = "1.0.2-dev"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


def default_spec() -> dict:
    """runc 1.1's `runc spec` (specconv.Example), key order included."""
    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [DEFAULT_PATH, "TERM=xterm"],
            "cwd": "/",
            "capabilities": {k: list(DEFAULT_CAPS) for k in ("bounding", "effective", "permitted", "ambient")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "runc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
            ],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    }


def _read_db(path: Path) -> list[list[str]]:
    try:
        return [line.split(":") for line in path.read_text(errors="replace").splitlines() if line and line[0] != "#"]
    except OSError:
        return []


def resolve_user(user: str, rootfs: str | os.PathLike) -> tuple[int, int, list[int]]:
    """Image `User` ("name", "uid", "name:group", "uid:gid") → (uid, gid, additional gids) via the rootfs's
    /etc/passwd and /etc/group, as runc's user package does for docker images."""
    root = Path(rootfs)
    name, _, group = (user or "").partition(":")
    passwd = _read_db(root / "etc" / "passwd")
    groups = _read_db(root / "etc" / "group")
    uid, gid, login = 0, 0, None
    if name:
        if name.isdigit():
            uid = int(name)
            match = next((e for e in passwd if len(e) > 3 and e[2] == name), None)
        else:
            match = next((e for e in passwd if len(e) > 3 and e[0] == name), None)
            if match is None:
                raise InvalidDocument(f"unable to find user {name}: no matching entries in passwd file")
            uid = int(match[2])
        if match is not None:
            gid, login = int(match[3]), match[0]
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            g = next((e for e in groups if len(e) > 2 and e[0] == group), None)
            if g is None:
                raise InvalidDocument(f"unable to find group {group}: no matching entries in group file")
            gid = int(g[2])
    extra = []
    if login is not None and not group:
        extra = sorted({int(e[2]) for e in groups
                        if len(e) > 3 and login in e[3].split(",") and e[2].isdigit() and int(e[2]) != gid})
    return uid, gid, extra


def spec_for_image(image_config: dict[str, Any], rootfs: str | os.PathLike, *, terminal: bool = False,
                   args: list[str] | None = None) -> dict:
    """config.json for running an image (umoci unpack's rules): entrypoint+cmd, env, cwd, user, annotations."""
    cfg = image_config.get("config") or {}
    spec = default_spec()
    process = spec["process"]
    process["terminal"] = terminal
    process["args"] = args if args is not None else list(cfg.get("Entrypoint") or []) + list(cfg.get("Cmd") or [])
    if not process["args"]:
        raise InvalidDocument("image config has neither Entrypoint nor Cmd: give the command to run")
    env = list(cfg.get("Env") or [])
    if not any(e.startswith("PATH=") for e in env):
        env.insert(0, DEFAULT_PATH)
    if terminal and not any(e.startswith("TERM=") for e in env):
        env.append("TERM=xterm")
    process["env"] = env
    process["cwd"] = cfg.get("WorkingDir") or "/"
    uid, gid, extra = resolve_user(cfg.get("User") or "", rootfs)
    process["user"] = {"uid": uid, "gid": gid, **({"additionalGids": extra} if extra else {})}
    annotations = {"org.opencontainers.image.os": image_config.get("os", "linux"),
                   "org.opencontainers.image.architecture": image_config.get("architecture", "")}
    for key, field in (("org.opencontainers.image.author", "author"), ("org.opencontainers.image.created", "created")):
        if image_config.get(field):
            annotations[key] = image_config[field]
    if cfg.get("StopSignal"):
        annotations["org.opencontainers.image.stopSignal"] = cfg["StopSignal"]
    if cfg.get("ExposedPorts"):
        annotations["org.opencontainers.image.exposedPorts"] = ",".join(sorted(cfg["ExposedPorts"]))
    annotations.update(cfg.get("Labels") or {})
    spec["annotations"] = annotations
    return spec
