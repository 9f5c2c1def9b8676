"""The daemon as pyctr sees it: container and image lookup by id, prefix or name, docker's state of a
container (from its record and its task), and where docker's own metadata lives in a record.

Docker-only metadata is kept as nerdctl does, in the container record: labels `nerdctl/name`,
`nerdctl/hostname`; extension `pyctr/docker` {Created, Path, Args, Config, HostConfig, ImageID} and
`pyctr/state` {StartedAt, FinishedAt, ExitCode, Error} (kept across the task's deletion).
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from ..records import field, record

from pyoci.errors import OCIError

from .. import errdefs
from ..client import Client
from .errors import CLIError
from .humanize import ago, human_duration, parse_time

TYPE_CHECKING = False  # typing only for type checkers: pyctr pays for every import it starts with
if TYPE_CHECKING:
    from typing import Any, Iterator

NAME_LABEL = "nerdctl/name"
HOSTNAME_LABEL = "nerdctl/hostname"
AUTO_REMOVE_LABEL = "nerdctl/auto-remove"  # `run -d --rm`: removed once exited (by us until the daemon does it)
MANUAL_STOP_LABEL = "pyctr/manually-stopped"  # set by stop/kill: the daemon's restart policies leave it alone
DOCKER_EXT = "pyctr/docker"
STATE_EXT = "pyctr/state"
HEALTH_EXT = "pyctr/health"  # State.Health, written by the daemon's health monitor (pycontainerd.health)


def no_such_container(ref: str, daemon: bool = False) -> CLIError:
    prefix = "Error response from daemon: " if daemon else "Error: "
    return CLIError(f"{prefix}No such container: {ref}")


def daemon_error(exc: Exception) -> CLIError:
    return CLIError(f"Error response from daemon: {exc}")


@record
class ContainerView:
    """A container record with its task's state, in docker's terms."""

    record: dict
    task: dict | None = None

    @property
    def id(self) -> str:
        return self.record["id"]

    @property
    def name(self) -> str:
        return (self.record.get("labels") or {}).get(NAME_LABEL) or self.id[:12]

    @property
    def docker(self) -> dict:
        return (self.record.get("extensions") or {}).get(DOCKER_EXT) or {}

    @property
    def saved_state(self) -> dict:
        return (self.record.get("extensions") or {}).get(STATE_EXT) or {}

    @property
    def health(self) -> dict | None:
        """docker's State.Health {Status, FailingStreak, Log}: None when no check ever ran."""
        return (self.record.get("extensions") or {}).get(HEALTH_EXT) or None

    @property
    def status(self) -> str:
        """docker's State.Status: created, running, paused, exited."""
        if self.task is not None:
            st = self.task.get("status")
            if st in ("running", "paused"):
                return st
            if st == "stopped":
                return "exited"
            if st == "created":
                return "created"
            return "exited" if self.task.get("exit_status") is not None else "created"
        # started once and its task gone (e.g. found dead at a daemon restart): exited, not created
        return "exited" if self.saved_state.get("FinishedAt") or self.saved_state.get("StartedAt") else "created"

    @property
    def running(self) -> bool:
        return self.status in ("running", "paused")

    @property
    def pid(self) -> int:
        return int(self.task.get("pid") or 0) if self.running and self.task else 0

    @property
    def exit_code(self) -> int:
        if self.task is not None and self.task.get("status") == "stopped" and self.task.get("exit_status") is not None:
            return int(self.task["exit_status"])
        return int(self.saved_state.get("ExitCode") or 0)

    @property
    def started_at(self) -> float:
        return parse_time(self.saved_state.get("StartedAt"))

    @property
    def finished_at(self) -> float:
        if self.task is not None and self.task.get("status") == "stopped" and self.task.get("exited_at"):
            return parse_time(self.task["exited_at"])
        return parse_time(self.saved_state.get("FinishedAt"))

    @property
    def created(self) -> float:
        return parse_time(self.docker.get("Created") or self.record.get("created_at"))

    def status_text(self, now: float | None = None) -> str:
        """docker ps's STATUS: "Up 3 seconds", "Up 2 minutes (Paused)", "Exited (0) 5 seconds ago", "Created"."""
        now = now or time.time()
        st = self.status
        if st in ("running", "paused"):
            text = "Up " + human_duration(now - (self.started_at or self.created))
            if st == "paused":
                return text + " (Paused)"
            h = (self.health or {}).get("Status")
            return f"{text} (health: {h})" if h == "starting" else f"{text} ({h})" if h else text
        if st == "exited":
            finished = self.finished_at
            # the daemon's restart policy is waiting out its back-off
            word = "Restarting" if self.saved_state.get("Restarting") else "Exited"
            return f"{word} ({self.exit_code}) " + (ago(finished, now) if finished else "")
        return "Created"

    @property
    def image_name(self) -> str:
        """What the user typed for the image (docker's Config.Image), else the familiar name."""
        return self.docker.get("Config", {}).get("Image") or familiar(self.record.get("image", ""))

    @property
    def command(self) -> str:
        args = [self.docker.get("Path", "")] + list(self.docker.get("Args") or [])
        if not args[0]:
            args = list((self.record.get("spec") or {}).get("process", {}).get("args") or [])
        return " ".join(a for a in args if a is not None)


def _plain(text: str) -> bool:
    """Letters, digits, _ . - only (a container name or id): safe in a filter's quoted value."""
    return bool(text) and all(c.isascii() and (c.isalnum() or c in "_.-") for c in text)


def _reference():
    """pyoci.reference, imported on first use (its grammar's regexes cost a few ms to compile)."""
    from pyoci import reference

    return reference


_LOWER = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_HOST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_WORD = _HOST | {"_"}


def _component(text: str) -> bool:
    """distribution's path component, [a-z0-9]+(?:[._-][a-z0-9]+)* with one separator at a time."""
    if not text or text[0] not in _LOWER or text[-1] not in _LOWER:
        return False
    separated = False
    for ch in text:
        if ch in _LOWER:
            separated = False
        elif ch in "._-" and not separated:
            separated = True
        else:
            return False
    return True


def _host(text: str) -> bool:
    """A domain[:port]: labels [a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])? joined by dots (no IPv6: parse reads it)."""
    host, colon, port = text.partition(":")
    if colon and not (port.isascii() and port.isdigit()):
        return False
    return all(label and label[0] in _HOST and label[-1] in _HOST and all(c in _HOST or c == "-" for c in label)
               for label in host.split("."))


def _plain_hub_name(ref: str) -> str | None:
    """`busybox`, `library/busybox:1.36`, `user/app:v1`, `host:5000/a/b:v1` normalized as reference.parse does
    (docker.io/…, :latest), without loading its grammar or `re` (pyoci.reference, pyoci.digest and re are
    ~15 ms of a run); None for anything else (a digest, an IPv6 host, a long or an odd name), which
    reference.parse reads. tests/pycontainerd/test_ctr_startup.py checks the two agree."""
    if len(ref) > 128 or len(ref) == 64 and all(c in "0123456789abcdef" for c in ref):
        return None
    first, slash, rest = ref.partition("/")
    if not slash:
        first, rest = None, ref
    path, colon, tag = rest.partition(":")
    if colon and not (tag and tag[0] in _WORD and all(c in _WORD or c in ".-" for c in tag)):
        return None
    if not all(_component(c) for c in path.split("/")):
        return None
    tag = f":{tag}" if colon else ":latest"
    if first is None:
        return f"docker.io/{'' if slash else 'library/'}{path}{tag}"
    # distribution's splitDockerDomain: a first component with a dot, a port or capitals, or localhost, is a host
    if "." in first or ":" in first or first == "localhost" or first != first.lower():
        return f"{first}/{path}{tag}" if _host(first) and first not in ("docker.io", "index.docker.io") else None
    return f"docker.io/{first}/{path}{tag}" if _component(first) else None


def familiar(name: str) -> str:
    try:
        return _reference().parse_normalized_named(name).familiar
    except OCIError:
        return name


def normalize(name: str) -> str:
    """`busybox` → `docker.io/library/busybox:latest`; raises CLIError on a bad reference."""
    try:
        return str(_reference().parse(name))
    except OCIError as exc:
        raise CLIError(f"Error: invalid reference format: {exc}", 1) from None


@record
class Backend:
    client: Client
    namespace: str
    _info: dict | None = field(default=None, repr=False)
    _configs: dict = field(default_factory=dict, repr=False)  # image name → Images.Config's reply

    def call(self, service: str, method: str, params: dict | None = None, **kw) -> dict:
        return self.client.call(service, method, params or {}, **kw)

    @contextmanager
    def lease(self, expire_seconds: int = 3600) -> Iterator[str]:
        """A lease protecting what a multi-call operation writes until its records reference it."""
        lid = "pyctr-" + os.urandom(8).hex()
        self.call("Leases", "Create", {"id": lid, "expire_seconds": expire_seconds})
        try:
            yield lid
        finally:
            try:
                self.call("Leases", "Delete", {"id": lid})
            except errdefs.Error:
                pass

    def info(self) -> dict:
        if self._info is None:
            self._info = self.call("System", "Info")
        return self._info

    # -- containers ----------------------------------------------------------------------------
    def tasks(self) -> dict[str, dict]:
        return {t["container_id"]: t for t in self.call("Tasks", "List").get("tasks", [])}

    def task(self, cid: str) -> dict | None:
        try:
            return self.call("Tasks", "Get", {"container_id": cid})["process"]
        except errdefs.NotFound:
            return None

    def containers(self) -> list[ContainerView]:
        tasks = self.tasks()
        views = [ContainerView(r, tasks.get(r["id"])) for r in self.call("Containers", "List").get("containers", [])]
        return [v for v in views if not self._reap(v)]

    def _reap(self, v: ContainerView) -> bool:
        """Remove an exited `--rm -d` container (the daemon has no auto-remove hook yet); True if gone."""
        if (v.record.get("labels") or {}).get(AUTO_REMOVE_LABEL) != "true" or v.status != "exited":
            return False
        try:  # one call: the task (if any), the snapshot, the record
            self.call("Containers", "Delete", {"id": v.id, "cleanup_snapshot": True, "force": v.task is not None})
        except errdefs.NotFound:
            pass
        return True

    def find_record(self, ref: str) -> dict | None:
        """docker's lookup order: full id, exact name, unique id prefix."""
        if not ref:
            return None
        name = ref[1:] if ref.startswith("/") else ref
        if _plain(ref) and _plain(name):  # one call: the daemon sends the record named so, or with that prefix
            records = self.call("Containers", "List", {"filters": [
                f'labels."{NAME_LABEL}"=="{name}"', f'id~="^{ref}"'.replace(".", "\\.")]}).get("containers", [])
            for r in records:
                if r["id"] == ref:
                    return r
        else:
            try:
                return self.call("Containers", "Get", {"id": ref})["container"]
            except (errdefs.NotFound, errdefs.InvalidArgument):
                pass
            records = self.call("Containers", "List").get("containers", [])
        for r in records:
            if (r.get("labels") or {}).get(NAME_LABEL) == name:
                return r
        hits = [r for r in records if r["id"].startswith(ref)]
        if len(hits) > 1:
            raise CLIError(f"Error response from daemon: Multiple IDs found with provided prefix: {ref}")
        return hits[0] if hits else None

    def container(self, ref: str, daemon_wording: bool = False) -> ContainerView:
        record = self.find_record(ref)
        if record is None:
            raise no_such_container(ref, daemon_wording)
        view = ContainerView(record, self.task(record["id"]))
        if self._reap(view):
            raise no_such_container(ref, daemon_wording)
        return view

    def name_owner(self, name: str) -> dict | None:
        """The record named `name` (filtered by the daemon: a container name needs no quoting in a filter,
        and only that record crosses the socket)."""
        params = {"filters": [f'labels."{NAME_LABEL}"=="{name}"']} if _plain(name) else {}
        for r in self.call("Containers", "List", params).get("containers", []):
            if (r.get("labels") or {}).get(NAME_LABEL) == name:
                return r
        return None

    def save_state(self, cid: str, base: dict | None = None, **values: Any) -> None:
        """Merge docker's State fields into the record (they outlive the task): one call, the daemon merges
        under its lock (no read-modify-write here, so no write of the daemon's, e.g. RestartCount, is lost).
        `base` is accepted for older callers and not needed."""
        try:
            self.call("Containers", "Update", {"container": {"id": cid, "extensions": {STATE_EXT: values}},
                                               "merge": True})
        except errdefs.NotFound:
            pass

    # -- images --------------------------------------------------------------------------------
    def images(self) -> list[dict]:
        return self.call("Images", "List").get("images", [])

    def find_image(self, ref: str, with_config: bool = False) -> dict | None:
        """An image record by name (normalized), by full or short image id (the config digest).
        with_config: looked up by Images.Config (one call that also answers image_config's)."""
        if not ref:
            return None
        name = _plain_hub_name(ref)
        if name is None:
            try:
                name = str(_reference().parse(ref))
            except OCIError:
                name = None
        if name is not None:
            try:
                if with_config:
                    cfg = self.call("Images", "Config", {"name": name})
                    self._configs[cfg["image"]["name"]] = cfg
                    return cfg["image"]
                return self.call("Images", "Get", {"name": name})["image"]
            except errdefs.NotFound:
                pass
        hexpart = ref[len("sha256:"):] if ref.startswith("sha256:") else ref
        if len(hexpart) >= 4 and all(c in "0123456789abcdef" for c in hexpart):
            for image in self.images():
                if self.image_id(image["name"]).split(":", 1)[1].startswith(hexpart):
                    return image
        return None

    def image_config(self, name: str) -> dict:
        cfg = self._configs.get(name)
        return cfg if cfg is not None else self.call("Images", "Config", {"name": name})

    def unpacked_size(self, chain_id: str) -> int:
        """What docker calls an image's size: its layers unpacked (the snapshot chain's usage), as nerdctl."""
        total, key, seen = 0, chain_id, set()
        while key and key not in seen:
            seen.add(key)
            try:
                total += int(self.call("Snapshots", "Usage", {"key": key}).get("size") or 0)
                key = self.call("Snapshots", "Stat", {"key": key}).get("info", {}).get("parent") or ""
            except errdefs.Error:
                return 0
        return total

    def image_id(self, name: str) -> str:
        return self.image_config(name)["manifest"]["config"]["digest"]


def eprint(*args: Any) -> None:
    print(*args, file=sys.stderr, flush=True)
