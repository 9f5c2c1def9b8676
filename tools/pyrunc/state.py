"""A container's on-disk state (`<root>/<id>/state.json`, `exec.fifo`) and its status as runc computes it."""

from __future__ import annotations

from pyoci import fastjson as json  # `json` imports re and enum: ~8 ms a start
import os
import time

from .errors import ConfigError, NotFoundError, RuntimeFailure

OCI_VERSION = "1.0.2-dev"
STATE_FILE = "state.json"
FIFO = "exec.fifo"
# runc's ^[\w+-\.]+$ (Go's \w is ASCII); a set, not `re`: its import (with enum) costs ~6 ms a start
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")


def check_id(cid: str) -> None:
    if not cid or cid in (".", "..") or not _ID_CHARS.issuperset(cid):
        raise ConfigError(f"invalid container id format: {cid}")


def rfc3339nano(ns: int) -> str:
    """Go's time.RFC3339Nano in UTC: trailing zeros of the fraction trimmed."""
    secs, frac = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    return base + (("." + f"{frac:09d}".rstrip("0")) if frac else "") + "Z"


def proc_start_time(pid: int) -> tuple[int, str] | None:
    """(start time in clock ticks, state letter) from /proc/PID/stat, or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(b")") + 2:].split()
    return int(rest[19]), rest[0].decode()


class ContainerState:
    """What state.json records about a container (mutable: `update` rewrites the saved resources)."""

    def __init__(self, id: str, dir: str, pid: int, start_time: int, created: str, bundle: str, rootfs: str,
                 annotations: dict | None = None, config: dict | None = None, cgroup: dict | None = None,
                 namespaces: list | None = None, owner_uid: int = 0) -> None:
        self.id, self.dir, self.pid, self.start_time, self.created = id, dir, pid, start_time, created
        self.bundle, self.rootfs = bundle, rootfs
        self.annotations = annotations or {}
        self.config = config or {}
        self.cgroup = cgroup
        self.namespaces = namespaces or []  # the config's namespace types, joined by exec
        self.owner_uid = owner_uid

    # -- persistence -------------------------------------------------------------------------------------------
    def to_json(self) -> dict:
        return {
            "id": self.id,
            "init_process_pid": self.pid,
            "init_process_start": self.start_time,
            "created": self.created,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "annotations": self.annotations,
            "cgroup": self.cgroup,
            "namespaces": self.namespaces,
            "config": self.config,
        }

    def save(self) -> None:
        path = os.path.join(self.dir, STATE_FILE)
        tmp = f"{path}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.to_json(), f)
        os.replace(tmp, path)

    @classmethod
    def load(cls, root: str, cid: str) -> "ContainerState":
        check_id(cid)
        d = os.path.join(root, cid)
        try:
            with open(os.path.join(d, STATE_FILE)) as f:
                doc = json.load(f)
            owner = os.stat(d).st_uid
        except FileNotFoundError:
            raise NotFoundError("container does not exist") from None
        except (OSError, ValueError) as e:
            raise RuntimeFailure(f"cannot read state of container {cid}: {e}") from None
        return cls(
            id=doc["id"], dir=d, pid=doc["init_process_pid"], start_time=doc["init_process_start"],
            created=doc["created"], bundle=doc["bundle"], rootfs=doc["rootfs"],
            annotations=doc.get("annotations") or {}, config=doc.get("config") or {}, cgroup=doc.get("cgroup"),
            namespaces=doc.get("namespaces") or [], owner_uid=owner,
        )

    # -- status ------------------------------------------------------------------------------------------------
    def alive(self) -> bool:
        if self.pid <= 0:
            return False
        st = proc_start_time(self.pid)
        return st is not None and st[0] == self.start_time and st[1] not in ("Z", "X")

    def cgroup_manager(self):
        if not self.cgroup:
            return None
        from . import cgroups

        return cgroups.load(self.cgroup)

    def status(self) -> str:
        if not self.alive():
            return "stopped"
        if os.path.exists(os.path.join(self.dir, FIFO)):
            return "created"
        if self.cgroup:
            try:
                mgr = self.cgroup_manager()
                if mgr is not None and mgr.freezer_state() == "FROZEN":
                    return "paused"
            except Exception:  # a vanished or unreadable cgroup: not paused
                pass
        return "running"

    def oci_state(self, status: str | None = None) -> dict:
        """The runtime-spec state object, as `runc state` prints it (pid 0 once stopped)."""
        status = status or self.status()
        doc = {
            "ociVersion": OCI_VERSION,
            "id": self.id,
            "pid": 0 if status == "stopped" else self.pid,
            "status": status,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": "",
        }
        if self.annotations:
            doc["annotations"] = self.annotations
        return doc


def list_ids(root: str) -> list[str]:
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    return [n for n in names if os.path.isfile(os.path.join(root, n, STATE_FILE))]
