"""Docker-style volumes and mount flags: the `local` volume store and `-v`/`--mount`/`--tmpfs` parsing.

    <root>/volumes/<name>/_data          the volume's content (its Mountpoint)
    <root>/volumes/<name>/volume.json    CreatedAt, Labels, Options, seeded
    <root>/volumes/<name>/refs/<cid>     one empty file per container using it (no read-modify-write)

Parsing follows docker's CLI (opts/mount.go) and daemon (volume/mounts/linux_parser.go), errors included;
resolve() turns parsed mounts plus an image's VOLUMEs into OCI runtime-spec mount dicts.
"""

from __future__ import annotations

import csv
import json
import os
import re
import secrets
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from pycontainerd import errdefs
from pyoci.fsutil import atomic_write

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
ANONYMOUS_LABEL = "com.docker.volume.anonymous"
LOCAL_OPTIONS = ("type", "device", "o", "size")
PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")
MODE_GROUPS = (("rw", "ro"), ("z", "Z"), PROPAGATIONS, ("nocopy",), ("consistent", "cached", "delegated"))


def _created_at() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _dir_size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


class VolumeStore:
    def __init__(self, root: str | os.PathLike) -> None:
        self.dir = Path(root) / "volumes"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()

    def _meta_path(self, name: str) -> Path:
        return self.dir / name / "volume.json"

    def _doc(self, name: str) -> dict:
        meta = json.loads(self._meta_path(name).read_text())
        return {
            "CreatedAt": meta["CreatedAt"],
            "Driver": "local",
            "Labels": meta.get("Labels") or {},
            "Mountpoint": str(self.dir / name / "_data"),
            "Name": name,
            "Options": meta.get("Options") or {},
            "Scope": "local",
        }

    def exists(self, name: str) -> bool:
        return bool(NAME_RE.match(name)) and self._meta_path(name).exists()

    def create(self, name: str | None = None, driver: str = "local", labels: dict | None = None,
               options: dict | None = None) -> dict:
        """`volume create`; an existing name is returned as it is (docker is idempotent here)."""
        if driver != "local":
            raise errdefs.NotFound(f'error looking up volume plugin {driver}: plugin "{driver}" not found')
        labels = dict(labels or {})
        if name is None:
            name = secrets.token_hex(32)
            labels.setdefault(ANONYMOUS_LABEL, "")
        if not NAME_RE.match(name):
            raise errdefs.InvalidArgument(
                f'create {name}: "{name}" includes invalid characters for a local volume name, only '
                f'"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path')
        for key in options or {}:
            if key not in LOCAL_OPTIONS:
                raise errdefs.InvalidArgument(f'create {name}: invalid option key: "{key}"')
        with self._lock:
            if self._meta_path(name).exists():
                return self._doc(name)
            (self.dir / name / "_data").mkdir(parents=True, exist_ok=True)
            (self.dir / name / "refs").mkdir(exist_ok=True)
            meta = {"CreatedAt": _created_at(), "Labels": labels, "Options": dict(options or {}), "seeded": False}
            atomic_write(self._meta_path(name), json.dumps(meta).encode())
            return self._doc(name)

    def inspect(self, name: str) -> dict:
        if not self.exists(name):
            raise errdefs.NotFound(f"get {name}: no such volume")
        return self._doc(name)

    def ls(self, dangling: bool | None = None, label: str | None = None) -> list[dict]:
        """`volume ls` data sorted by name; filters as docker's dangling=… and label=key[=value]."""
        out = []
        for meta in sorted(self.dir.glob("*/volume.json")):
            name = meta.parent.name
            try:
                doc = self._doc(name)
            except (OSError, ValueError):
                continue
            if dangling is not None and (not self.users(name)) != dangling:
                continue
            if label:
                k, has_v, v = label.partition("=")
                if k not in doc["Labels"] or (has_v and doc["Labels"][k] != v):
                    continue
            out.append(doc)
        return out

    # reference counting

    def users(self, name: str) -> list[str]:
        refs = self.dir / name / "refs"
        return sorted(p.name for p in refs.iterdir()) if refs.is_dir() else []

    def acquire(self, name: str, container_id: str) -> None:
        if not self.exists(name):
            raise errdefs.NotFound(f"get {name}: no such volume")
        (self.dir / name / "refs").mkdir(exist_ok=True)
        (self.dir / name / "refs" / container_id).touch()

    def release(self, name: str, container_id: str) -> None:
        (self.dir / name / "refs" / container_id).unlink(missing_ok=True)

    def used_by(self, container_id: str) -> list[str]:
        """The volumes a container holds references to."""
        return sorted(ref.parent.parent.name for ref in self.dir.glob(f"*/refs/{container_id}"))

    # inspect's Mounts of each container, kept from its last start until the container is deleted
    def save_mounts(self, container_id: str, mounts: list[dict]) -> None:
        d = self.dir / ".mounts"
        d.mkdir(exist_ok=True)
        atomic_write(d / f"{container_id}.json", json.dumps(mounts).encode())

    def mounts(self, container_id: str) -> list[dict]:
        try:
            return json.loads((self.dir / ".mounts" / f"{container_id}.json").read_text())
        except (OSError, ValueError):
            return []

    def release_all(self, container_id: str, remove_anonymous: bool = False) -> list[str]:
        """At container removal: drops its references; returns the volumes it used.

        remove_anonymous (docker rm -v, run --rm): its anonymous volumes that nobody else uses go too.
        """
        names = []
        for ref in self.dir.glob(f"*/refs/{container_id}"):
            ref.unlink(missing_ok=True)
            names.append(ref.parent.parent.name)
        (self.dir / ".mounts" / f"{container_id}.json").unlink(missing_ok=True)
        if remove_anonymous:
            for name in names:
                try:
                    if ANONYMOUS_LABEL in self._doc(name)["Labels"] and not self.users(name):
                        self.rm(name)
                except (OSError, ValueError, errdefs.Error):
                    pass  # gone or taken meanwhile: leave it to prune
        return sorted(names)

    def rm(self, name: str, force: bool = False) -> None:
        """`volume rm`: refused while a container uses it, even with force (as docker)."""
        with self._lock:
            if not self.exists(name):
                if force:
                    return
                raise errdefs.NotFound(f"get {name}: no such volume")
            users = self.users(name)
            if users:
                raise errdefs.FailedPrecondition(f"remove {name}: volume is in use - [{', '.join(users)}]")
            # rename first so a crash mid-delete never leaves a half-volume that still lists
            trash = self.dir / f".rm-{name}-{secrets.token_hex(4)}"
            os.rename(self.dir / name, trash)
            shutil.rmtree(trash)

    def prune(self, all: bool = False) -> tuple[list[str], int]:
        """`volume prune [-a]`: unused anonymous volumes (all unused with all=True); names and bytes freed."""
        removed, reclaimed = [], 0
        for doc in self.ls(dangling=True):
            if not all and ANONYMOUS_LABEL not in doc["Labels"]:
                continue
            size = _dir_size(Path(doc["Mountpoint"]))
            try:
                self.rm(doc["Name"])
            except errdefs.FailedPrecondition:
                continue  # taken meanwhile
            removed.append(doc["Name"])
            reclaimed += size
        return removed, reclaimed

    # content

    def seed(self, name: str, source: str | os.PathLike) -> bool:
        """Copy the image's content at the mount target into a new, empty volume, once (docker's copy-up).

        Ownership, modes, timestamps and xattrs are kept (cp -a); the volume root takes the mode and
        owner of the source directory. Returns whether anything was copied.
        """
        with self._lock:
            meta_path = self._meta_path(name)
            meta = json.loads(meta_path.read_text())
            data = self.dir / name / "_data"
            if meta.get("seeded") or any(data.iterdir()):
                return False
            src = Path(source)
            copied = False
            if src.is_dir() and not src.is_symlink():
                st = src.stat()
                entries = list(src.iterdir())
                if entries:
                    proc = subprocess.run(["cp", "-a", "--", *map(str, entries), str(data)], capture_output=True, text=True)
                    if proc.returncode != 0:
                        raise errdefs.Internal(f"seed volume {name} from {src}: {proc.stderr.strip()}")
                    copied = True
                os.chown(data, st.st_uid, st.st_gid)
                os.chmod(data, st.st_mode & 0o7777)
            meta["seeded"] = True
            atomic_write(meta_path, json.dumps(meta).encode())
            return copied

    # mounts

    def resolve(self, mounts: list["MountSpec"], container_id: str, image_volumes: list[str] | tuple[str, ...] = (),
                rootfs: str | os.PathLike | None = None) -> list[dict]:
        """OCI mounts for a container: named volumes created/seeded, anonymous ones for the image's VOLUMEs
        not covered by a mount, references taken. `rootfs` is the image's rootfs for seeding."""
        specs = list(mounts)
        targets = {os.path.normpath(m.target) for m in specs}
        for v in image_volumes:
            if os.path.normpath(v) not in targets:
                specs.append(MountSpec("volume", "", os.path.normpath(v)))
        out, acquired = [], []
        try:
            for m in specs:
                if m.type == "volume":
                    doc = self.create(m.source or None, labels=m.volume_labels or None, options=m.volume_options or None)
                    name = doc["Name"]
                    self.acquire(name, container_id)
                    acquired.append(name)
                    if rootfs is not None and not m.nocopy:
                        self.seed(name, Path(rootfs) / m.target.lstrip("/"))
                    out.append(m.oci(doc["Mountpoint"]))
                else:
                    out.append(m.oci())
        except BaseException:
            for name in acquired:
                self.release(name, container_id)
            raise
        return out


@dataclass
class MountSpec:
    """One parsed -v/--mount/--tmpfs flag, validated as docker's daemon does."""

    type: str                     # bind | volume | tmpfs
    source: str                   # host path, volume name ("" = anonymous) or "" for tmpfs
    target: str
    readonly: bool = False
    propagation: str = ""
    nocopy: bool = False
    create_host_path: bool = False  # -v creates a missing host dir; --mount refuses it
    tmpfs_options: list[str] = field(default_factory=list)
    volume_labels: dict = field(default_factory=dict)
    volume_options: dict = field(default_factory=dict)

    def oci(self, volume_path: str = "") -> dict:
        """The runtime-spec mount (docker's daemon shapes: rbind + rprivate by default)."""
        if self.type == "tmpfs":
            opts = ["nosuid", "nodev", "noexec", *self.tmpfs_options]
            if self.readonly:
                opts.append("ro")
            return {"destination": self.target, "type": "tmpfs", "source": "tmpfs", "options": opts}
        source = volume_path if self.type == "volume" else self.source
        if self.type == "bind" and self.create_host_path:
            os.makedirs(source, exist_ok=True)
        opts = ["rbind", self.propagation or "rprivate"]
        if self.readonly:
            opts.append("ro")
        return {"destination": self.target, "type": "bind", "source": source, "options": opts}


def _err_config(mtype: str, msg: str) -> errdefs.InvalidArgument:
    return errdefs.InvalidArgument(f'invalid mount config for type "{mtype}": {msg}')


def _validate(m: MountSpec) -> MountSpec:
    """linux_parser.validateMountConfig."""
    if m.type not in ("bind", "volume", "tmpfs"):
        raise _err_config(m.type, "mount type unknown")
    if not m.target:
        raise _err_config(m.type, "field Target must not be empty")
    if not m.target.startswith("/"):
        raise errdefs.InvalidArgument(f"invalid mount config for type \"{m.type}\": invalid mount path: '{m.target}' mount path must be absolute")
    if os.path.normpath(m.target) == "/":
        raise errdefs.InvalidArgument("invalid specification: destination can't be '/'")
    if m.type == "bind":
        if not m.source:
            raise _err_config("bind", "field Source must not be empty")
        if not m.source.startswith("/"):
            raise _err_config("bind", f"invalid mount path: '{m.source}' mount path must be absolute")
        if not m.create_host_path and not os.path.exists(m.source):
            raise _err_config("bind", f"bind source path does not exist: {m.source}")
        if m.volume_labels or m.volume_options or m.nocopy:
            raise _err_config("bind", "field VolumeOptions must not be specified")
    elif m.type == "volume":
        if m.propagation:
            raise _err_config("volume", "field BindOptions must not be specified")
        if m.source and not NAME_RE.match(m.source):
            raise _err_config("volume", f'invalid volume name "{m.source}": only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed')
    elif m.type == "tmpfs":
        if m.source:
            raise _err_config("tmpfs", "field Source must not be specified")
    m.target = os.path.normpath(m.target)
    return m


def _valid_mode(mode: str) -> bool:
    """linux_parser.ValidMountMode: comma-separated, at most one of each group."""
    if not mode:
        return True
    counts = [0] * len(MODE_GROUPS)
    for o in mode.split(","):
        for i, group in enumerate(MODE_GROUPS):
            if o in group:
                counts[i] += 1
                break
        else:
            return False
    return all(c <= 1 for c in counts)


def parse_volume(raw: str) -> MountSpec:
    """`-v [SRC:]DST[:MODE]`: SRC absolute = bind (dir created if missing), else a volume name."""
    if raw.count(":") > 2 or raw.split(":", 1)[0] == "":
        raise errdefs.InvalidArgument(f"invalid volume specification: '{raw}'")
    arr = raw.split(":", 2)
    source, mode = "", ""
    if len(arr) == 1:
        target = arr[0]
    elif len(arr) == 2:
        if _valid_mode(arr[1]):
            raise errdefs.InvalidArgument(f"invalid volume specification: '{raw}'")
        source, target = arr
    else:
        source, target, mode = arr
    if not _valid_mode(mode):
        raise errdefs.InvalidArgument(f"invalid mode: {mode}")
    opts = mode.split(",") if mode else []
    m = MountSpec("bind" if source.startswith("/") else "volume", source, target,
                  readonly="ro" in opts, nocopy="nocopy" in opts, create_host_path=True,
                  propagation=next((o for o in opts if o in PROPAGATIONS), ""))
    if m.type == "volume" and m.propagation:
        raise errdefs.InvalidArgument(f"invalid volume specification: '{raw}'")
    if m.type == "volume" and source and not NAME_RE.match(source):
        raise errdefs.InvalidArgument(
            f'"{source}" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are '
            f'allowed. If you intended to pass a host directory, use absolute path')
    try:
        return _validate(m)
    except errdefs.InvalidArgument as e:
        raise errdefs.InvalidArgument(f"invalid volume specification: '{raw}': {e}") from None


_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2, "mib": 1024**2,
          "g": 1024**3, "gb": 1024**3, "gib": 1024**3, "t": 1024**4, "tb": 1024**4, "tib": 1024**4}


def ram_in_bytes(text: str) -> int:
    """go-units RAMInBytes: "64m", "1g", "65536k", "1.5g"."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([a-zA-Z]*)", text.strip())
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(text)
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def _size_option(size: int) -> str:
    for suffix, unit in (("g", 1024**3), ("m", 1024**2), ("k", 1024)):
        if size % unit == 0:
            return f"size={size // unit}{suffix}"
    return f"size={size}"


def parse_mount(raw: str) -> MountSpec:
    """`--mount type=…,source=…,target=…,readonly,…` (a CSV line, as docker's CLI reads it)."""
    try:
        fields = next(csv.reader([raw]))
    except (csv.Error, StopIteration):
        raise errdefs.InvalidArgument(f"invalid argument \"{raw}\" for \"--mount\" flag") from None
    mtype = source = target = ""
    readonly = nocopy = False
    propagation = ""
    labels: dict = {}
    vopts: dict = {}
    tmpfs: list[str] = []
    seen_volume = seen_bind = seen_tmpfs = False
    for f in fields:
        key, has_val, val = f.partition("=")
        key = key.lower()
        if not has_val:
            if key in ("readonly", "ro"):
                readonly = True
                continue
            if key == "volume-nocopy":
                nocopy = seen_volume = True
                continue
            raise errdefs.InvalidArgument(f"invalid field '{f}' must be a key=value pair")
        if key == "type":
            mtype = val.lower()
        elif key in ("source", "src"):
            source = val
        elif key in ("target", "dst", "destination"):
            target = val
        elif key in ("readonly", "ro", "volume-nocopy"):
            b = {"1": True, "t": True, "true": True, "TRUE": True, "True": True,
                 "0": False, "f": False, "false": False, "FALSE": False, "False": False}.get(val)
            if b is None:
                raise errdefs.InvalidArgument(f"invalid value for {key}: {val}")
            if key == "volume-nocopy":
                nocopy, seen_volume = b, True
            else:
                readonly = b
        elif key == "bind-propagation":
            propagation, seen_bind = val.lower(), True
            if propagation not in PROPAGATIONS:
                raise errdefs.InvalidArgument(f"invalid value for {key}: {val}")
        elif key == "volume-label":
            k, _, v = val.partition("=")
            labels[k] = v
            seen_volume = True
        elif key == "volume-opt":
            k, ok, v = val.partition("=")
            if not ok:
                raise errdefs.InvalidArgument(f"invalid value for {key}: {val}")
            vopts[k] = v
            seen_volume = True
        elif key == "volume-driver":
            seen_volume = True
            if val != "local":
                raise errdefs.NotFound(f'error looking up volume plugin {val}: plugin "{val}" not found')
        elif key == "tmpfs-size":
            try:
                tmpfs.append(_size_option(ram_in_bytes(val)))
            except ValueError:
                raise errdefs.InvalidArgument(f"invalid value for {key}: {val}") from None
            seen_tmpfs = True
        elif key == "tmpfs-mode":
            try:
                tmpfs.append(f"mode={int(val, 8):o}")
            except ValueError:
                raise errdefs.InvalidArgument(f"invalid value for {key}: {val}") from None
            seen_tmpfs = True
        elif key == "consistency":
            continue
        else:
            raise errdefs.InvalidArgument(f"unexpected key '{key}' in '{f}'")
    if not mtype:
        raise errdefs.InvalidArgument("type is required")
    if not target:
        raise errdefs.InvalidArgument("target is required")
    for seen, kind in ((seen_volume, "volume"), (seen_bind, "bind"), (seen_tmpfs, "tmpfs")):
        if seen and mtype != kind:
            raise errdefs.InvalidArgument(f"cannot mix '{kind}-*' options with mount type '{mtype}'")
    return _validate(MountSpec(mtype, source, target, readonly, propagation, nocopy, False, tmpfs, labels, vopts))


def parse_tmpfs(raw: str) -> MountSpec:
    """`--tmpfs /path[:opts]`: opts are mount(8) options (size=64m,mode=1777,…)."""
    target, _, opts = raw.partition(":")
    options = [o for o in opts.split(",") if o] if opts else []
    readonly = "ro" in options
    options = [o for o in options if o not in ("ro", "rw")]
    return _validate(MountSpec("tmpfs", "", target, readonly, tmpfs_options=options))


def check_duplicates(mounts: list[MountSpec]) -> None:
    """Docker refuses two mounts on one destination."""
    seen = set()
    for m in mounts:
        if m.target in seen:
            raise errdefs.InvalidArgument(f"Duplicate mount point: {m.target}")
        seen.add(m.target)


# docker's HostConfig shapes: pyctr stores the flags this way, the daemon reads them back

def mount_to_docker(m: MountSpec) -> dict:
    """A --mount flag as HostConfig.Mounts holds it."""
    doc: dict = {"Type": m.type, "Source": m.source, "Target": m.target}
    if m.readonly:
        doc["ReadOnly"] = True
    if m.propagation:
        doc["BindOptions"] = {"Propagation": m.propagation}
    if m.nocopy or m.volume_labels or m.volume_options:
        vo: dict = {}
        if m.nocopy:
            vo["NoCopy"] = True
        if m.volume_labels:
            vo["Labels"] = dict(m.volume_labels)
        if m.volume_options:
            vo["DriverConfig"] = {"Name": "local", "Options": dict(m.volume_options)}
        doc["VolumeOptions"] = vo
    if m.tmpfs_options:
        to: dict = {}
        for o in m.tmpfs_options:
            key, _, val = o.partition("=")
            if key == "size":
                to["SizeBytes"] = ram_in_bytes(val)
            elif key == "mode":
                to["Mode"] = int(val, 8)
        doc["TmpfsOptions"] = to
    return doc


def mount_from_docker(doc: dict) -> MountSpec:
    vo = doc.get("VolumeOptions") or {}
    to = doc.get("TmpfsOptions") or {}
    tmpfs = []
    if to.get("SizeBytes"):
        tmpfs.append(_size_option(int(to["SizeBytes"])))
    if to.get("Mode"):
        tmpfs.append(f"mode={int(to['Mode']):o}")
    return _validate(MountSpec(doc.get("Type", ""), doc.get("Source", ""), doc.get("Target", ""),
                               bool(doc.get("ReadOnly")), (doc.get("BindOptions") or {}).get("Propagation", ""),
                               bool(vo.get("NoCopy")), False, tmpfs, dict(vo.get("Labels") or {}),
                               dict((vo.get("DriverConfig") or {}).get("Options") or {})))


def mounts_from_host_config(host_config: dict) -> list[MountSpec]:
    """HostConfig.Binds (-v), .Mounts (--mount) and .Tmpfs (--tmpfs), in that order, duplicates refused."""
    specs = [parse_volume(b) for b in host_config.get("Binds") or []]
    specs += [mount_from_docker(d) for d in host_config.get("Mounts") or []]
    specs += [parse_tmpfs(f"{path}:{opts}" if opts else path) for path, opts in (host_config.get("Tmpfs") or {}).items()]
    check_duplicates(specs)
    return specs


def docker_mounts(store: VolumeStore, specs: list[MountSpec], oci: list[dict]) -> list[dict]:
    """`inspect`'s Mounts list for resolved mounts (same order as resolve() returned them)."""
    out = []
    for m, o in zip(list(specs) + [MountSpec("volume", "", o["destination"]) for o in oci[len(specs):]], oci):
        rw = "ro" not in o.get("options", [])
        if m.type == "volume":
            name = (m.source or os.path.basename(os.path.dirname(o["source"])))
            out.append({"Type": "volume", "Name": name, "Source": o["source"], "Destination": o["destination"],
                        "Driver": "local", "Mode": "z", "RW": rw, "Propagation": ""})
        elif m.type == "bind":
            out.append({"Type": "bind", "Source": o["source"], "Destination": o["destination"], "Mode": "",
                        "RW": rw, "Propagation": m.propagation or "rprivate"})
        else:
            out.append({"Type": "tmpfs", "Source": "", "Destination": o["destination"], "Mode": "", "RW": rw,
                        "Propagation": ""})
    return out


def host_config_fields(volumes: list[str] = (), mounts: list[str] = (), tmpfs: list[str] = (),
                       image_volumes: dict | list = ()) -> tuple[dict, dict]:
    """pyctr's `-v`/`--mount`/`--tmpfs` flags validated (docker's errors) and stored as docker does:
    (HostConfig fields {"Binds", "Mounts", "Tmpfs"}, Config.Volumes). `-v /path` alone is an anonymous
    volume: it goes to Config.Volumes, beside the image's VOLUMEs, not to Binds."""
    binds, config_volumes = [], {v: {} for v in image_volumes}
    parsed = []
    for raw in volumes:
        m = parse_volume(raw)
        parsed.append(m)
        if m.type == "volume" and not m.source:
            config_volumes[m.target] = {}
        else:
            binds.append(raw)
    mount_specs = [parse_mount(raw) for raw in mounts]
    tmpfs_map = {}
    for raw in tmpfs:
        spec = parse_tmpfs(raw)
        tmpfs_map[spec.target] = raw.partition(":")[2]
    check_duplicates(parsed + mount_specs + [MountSpec("tmpfs", "", t) for t in tmpfs_map])
    fields: dict = {"Binds": binds or None, "Tmpfs": tmpfs_map or None}
    if mount_specs:
        fields["Mounts"] = [mount_to_docker(m) for m in mount_specs]
    return fields, config_volumes
