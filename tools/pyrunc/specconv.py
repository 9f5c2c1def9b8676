"""config.json -> immutable records, validated once at the edge (schema, then the checks runc's validator makes).

The records are tuple subclasses (records.py) with annotated fields: frozen like a frozen dataclass, but without
importing dataclasses (≈20 ms, most of it `inspect`) on every container start."""

from __future__ import annotations

from pyoci import fastjson as json  # `json` imports re and enum: ~8 ms a start
import os
from .records import record

from .errors import ConfigError

NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")


class IDMap(record("IDMap", "container_id host_id size")):
    __slots__ = ()
    container_id: int
    host_id: int
    size: int


class User(record("User", "uid gid umask additional_gids", defaults=(0, 0, None, ()))):
    __slots__ = ()
    uid: int
    gid: int
    umask: int | None
    additional_gids: tuple[int, ...]


class Process(record("Process", "args env cwd terminal console_size user capabilities rlimits no_new_privileges oom_score_adj apparmor_profile selinux_label", defaults=((), "/", False, None, User(), None, (), False, None, "", ""))):
    __slots__ = ()
    args: tuple[str, ...]
    env: tuple[str, ...]
    cwd: str
    terminal: bool
    console_size: tuple[int, int] | None  # (height, width)
    user: User
    capabilities: dict | None
    rlimits: tuple[dict, ...]
    no_new_privileges: bool
    oom_score_adj: int | None
    apparmor_profile: str
    selinux_label: str


class Mount(record("Mount", "destination type source options", defaults=("", "", ()))):
    __slots__ = ()
    destination: str
    type: str
    source: str
    options: tuple[str, ...]


class Namespace(record("Namespace", "type path", defaults=("",))):
    __slots__ = ()
    type: str
    path: str


class Device(record("Device", "path type major minor file_mode uid gid", defaults=(0, 0, None, None, None))):
    __slots__ = ()
    path: str
    type: str
    major: int
    minor: int
    file_mode: int | None
    uid: int | None
    gid: int | None


class Hook(record("Hook", "path args env timeout", defaults=((), (), None))):
    __slots__ = ()
    path: str
    args: tuple[str, ...]
    env: tuple[str, ...]
    timeout: int | None


class Linux(record("Linux", "namespaces uid_mappings gid_mappings devices cgroups_path resources rootfs_propagation seccomp sysctl masked_paths readonly_paths personality time_offsets", defaults=((), (), (), (), None, None, "", None, None, (), (), None, None))):
    __slots__ = ()
    namespaces: tuple[Namespace, ...]
    uid_mappings: tuple[IDMap, ...]
    gid_mappings: tuple[IDMap, ...]
    devices: tuple[Device, ...]
    cgroups_path: str | None
    resources: dict | None
    rootfs_propagation: str
    seccomp: dict | None
    sysctl: dict
    masked_paths: tuple[str, ...]
    readonly_paths: tuple[str, ...]
    personality: dict | None
    time_offsets: dict | None

    def namespace(self, kind: str) -> Namespace | None:
        for ns in self.namespaces:
            if ns.type == kind:
                return ns
        return None


class Spec(record("Spec", "oci_version process rootfs readonly_root hostname domainname mounts hooks annotations linux raw")):
    __slots__ = ()
    oci_version: str
    process: Process | None
    rootfs: str  # absolute
    readonly_root: bool
    hostname: str
    domainname: str
    mounts: tuple[Mount, ...]
    hooks: dict[str, tuple[Hook, ...]]
    annotations: dict[str, str]
    linux: Linux
    raw: dict  # the document as read, saved in state.json for exec/delete



def _validate_schema(doc: object, source: str) -> None:
    from . import _config_schema

    try:
        _config_schema.validate(doc)
    except _config_schema.JsonSchemaValueException as e:
        msg = e.message.replace("data.", "", 1) if e.message.startswith("data.") else e.message
        raise ConfigError(f"{source}: invalid config: {msg}") from None


def load_bundle(bundle: str) -> Spec:
    """Read, validate and convert `<bundle>/config.json` (runc chdirs to the bundle first, hence its messages)."""
    try:
        os.chdir(bundle)
    except OSError as e:
        raise ConfigError(f"chdir {bundle}: {e.strerror.lower()}") from None
    try:
        with open("config.json", "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ConfigError("JSON specification file config.json not found") from None
    except OSError as e:
        raise ConfigError(f"open config.json: {e.strerror.lower()}") from None
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise ConfigError(f"config.json: invalid JSON: {e}") from None
    return convert(doc, os.path.abspath(bundle), validate=True)


def _idmaps(items: list | None) -> tuple[IDMap, ...]:
    return tuple(IDMap(m["containerID"], m["hostID"], m["size"]) for m in items or ())


def parse_process(p: dict) -> Process:
    user = p.get("user") or {}
    size = p.get("consoleSize")
    return Process(
        args=tuple(p.get("args") or ()),
        env=tuple(p.get("env") or ()),
        cwd=p.get("cwd", "/"),
        terminal=bool(p.get("terminal", False)),
        console_size=(size["height"], size["width"]) if size else None,
        user=User(user.get("uid", 0), user.get("gid", 0), user.get("umask"), tuple(user.get("additionalGids") or ())),
        capabilities=p.get("capabilities"),
        rlimits=tuple(p.get("rlimits") or ()),
        no_new_privileges=bool(p.get("noNewPrivileges", False)),
        oom_score_adj=p.get("oomScoreAdj"),
        apparmor_profile=p.get("apparmorProfile", ""),
        selinux_label=p.get("selinuxLabel", ""),
    )


def validate_process(p: dict, source: str = "process.json") -> Process:
    """A process.json for `exec -p`: schema-checked by wrapping it in a minimal config."""
    _validate_schema({"ociVersion": "1.0.0", "process": p}, source)
    proc = parse_process(p)
    if not proc.args:
        raise ConfigError("args must not be empty")
    return proc


def convert(doc: object, bundle: str, validate: bool = True) -> Spec:
    if validate:
        _validate_schema(doc, "config.json")
    proc = parse_process(doc["process"]) if doc.get("process") is not None else None
    root = doc.get("root") or {}
    if validate and not root.get("path"):
        raise ConfigError("config.json: root.path is required")
    rootfs = root.get("path", "")
    if rootfs and not os.path.isabs(rootfs):
        rootfs = os.path.join(bundle, rootfs)
    lx = doc.get("linux") or {}
    linux = Linux(
        namespaces=tuple(Namespace(n["type"], n.get("path", "")) for n in lx.get("namespaces") or ()),
        uid_mappings=_idmaps(lx.get("uidMappings")),
        gid_mappings=_idmaps(lx.get("gidMappings")),
        devices=tuple(
            Device(d["path"], d["type"], d.get("major", 0), d.get("minor", 0), d.get("fileMode"), d.get("uid"), d.get("gid"))
            for d in lx.get("devices") or ()
        ),
        cgroups_path=lx.get("cgroupsPath"),
        resources=lx.get("resources"),
        rootfs_propagation=lx.get("rootfsPropagation", ""),
        seccomp=lx.get("seccomp"),
        sysctl=dict(lx.get("sysctl") or {}),
        masked_paths=tuple(lx.get("maskedPaths") or ()),
        readonly_paths=tuple(lx.get("readonlyPaths") or ()),
        personality=lx.get("personality"),
        time_offsets=lx.get("timeOffsets"),
    )
    hooks = {
        name: tuple(Hook(h["path"], tuple(h.get("args") or ()), tuple(h.get("env") or ()), h.get("timeout")) for h in hs)
        for name, hs in (doc.get("hooks") or {}).items()
    }
    spec = Spec(
        oci_version=doc.get("ociVersion", ""),
        process=proc,
        rootfs=os.path.normpath(rootfs) if rootfs else "",
        readonly_root=bool(root.get("readonly", False)),
        hostname=doc.get("hostname", ""),
        domainname=doc.get("domainname", ""),
        mounts=tuple(
            Mount(m["destination"], m.get("type", ""), m.get("source", ""), tuple(m.get("options") or ()))
            for m in doc.get("mounts") or ()
        ),
        hooks=hooks,
        annotations=dict(doc.get("annotations") or {}),
        linux=linux,
        raw=doc,
    )
    if validate:
        check(spec)
    return spec


def check(spec: Spec) -> None:
    """The semantic checks runc's libcontainer/configs/validate makes before anything is set up."""
    if spec.process is None:
        raise ConfigError("process property must not be empty")
    if not spec.process.args:
        raise ConfigError("args must not be empty")
    if not os.path.isabs(spec.process.cwd):
        raise ConfigError(f"cwd property must be an absolute path: {spec.process.cwd}")
    try:
        st = os.stat(spec.rootfs)
    except OSError:
        raise ConfigError(f"invalid rootfs: stat {spec.rootfs}: no such file or directory") from None
    import stat as _stat

    if not _stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"invalid rootfs: not a directory: {spec.rootfs}")
    if os.path.realpath(spec.rootfs) != spec.rootfs:
        raise ConfigError("invalid rootfs: not an absolute path, or a symlink")
    seen = set()
    for ns in spec.linux.namespaces:
        if ns.type not in NAMESPACE_TYPES:
            raise ConfigError(f"namespace {ns.type!r} does not exist")
        if ns.type in seen:
            raise ConfigError(f"malformed spec file: duplicated ns {ns.type!r}")
        seen.add(ns.type)
        if ns.path and not os.path.exists(ns.path):
            raise ConfigError(f"invalid namespace path: stat {ns.path}: no such file or directory")
    if spec.hostname and "uts" not in seen:
        raise ConfigError("unable to set hostname without a private UTS namespace")
    if spec.domainname and "uts" not in seen:
        raise ConfigError("unable to set domainname without a private UTS namespace")
    if "user" in seen:
        if not spec.linux.uid_mappings or not spec.linux.gid_mappings:
            if not spec.linux.namespace("user").path:
                raise ConfigError("user namespaces enabled, but no user mapping found")
    elif spec.linux.uid_mappings or spec.linux.gid_mappings:
        raise ConfigError("user namespaces not enabled in config, but mappings found")
    if spec.linux.time_offsets and "time" not in seen:
        raise ConfigError("time namespace not enabled, but timeOffsets specified")
    for m in spec.mounts:
        if not os.path.isabs(m.destination):
            raise ConfigError(f"invalid mount {m.destination!r}: mount destination not absolute")
    for key in spec.linux.sysctl:
        if key.startswith("net.") and "network" not in seen:
            raise ConfigError(f"sysctl {key!r} is not allowed in the hosts network namespace")
        if (key.startswith("kernel.hostname") or key.startswith("kernel.domainname")) and "uts" not in seen:
            raise ConfigError(f"sysctl {key!r} is not allowed as it conflicts with the OCI uts field")
