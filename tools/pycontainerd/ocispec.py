"""A container's runtime config (config.json) from its image config and the user's options, as
containerd's `oci.populateDefaultUnixSpec` plus nerdctl's `run` flags build it.

    spec = generate(image_config, SpecOptions(args=["sh"], env=["A=1"], memory="64m"), "default", cid)

A user *name* (`-u app`) needs the container's /etc/passwd: with `rootfs` it is resolved here,
otherwise it is kept as the `io.pycontainerd.user` annotation and `finalize(spec, rootfs)` (called
by the Tasks service once the snapshot is mounted) resolves it, as containerd's WithUser does.
"""

from __future__ import annotations

import os

from pyoci.errors import InvalidDocument

# shutil, pathlib (and urllib.parse with it) and pyoci.runtime are imported where used: pyctr imports
# this module for every create, which needs none of them

from . import errdefs
from .records import field, record

TYPE_CHECKING = False  # typing only for type checkers: pyctr pays for every import it starts with
if TYPE_CHECKING:
    from typing import Any

SPEC_VERSION = "1.0.2-dev"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
USER_ANNOTATION = "io.pycontainerd.user"
STOP_SIGNAL_ANNOTATION = "org.opencontainers.image.stopSignal"
INIT_PATH = "/sbin/docker-init"

# containerd 1.6 oci/spec.go defaultUnixCaps()
DEFAULT_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
]
# every capability of Linux 5.9+ (for --privileged and --cap-add ALL), in number order
ALL_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
]
# containerd 1.6 oci/spec.go
DEFAULT_MASKED_PATHS = [
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
]
DEFAULT_READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


def default_mounts() -> list[dict]:
    """containerd 1.6 oci/mounts.go defaultMounts()."""
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/run", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    ]


def default_spec(namespace: str, cid: str) -> dict:
    """containerd's populateDefaultUnixSpec: the spec before any image or user option."""
    return {
        "ociVersion": SPEC_VERSION,
        "process": {
            "user": {"uid": 0, "gid": 0},
            "cwd": "/",
            "capabilities": {k: list(DEFAULT_CAPS) for k in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs"},
        "mounts": default_mounts(),
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "cgroupsPath": f"/{namespace}/{cid}",
            "namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount", "network")],
            "maskedPaths": list(DEFAULT_MASKED_PATHS),
            "readonlyPaths": list(DEFAULT_READONLY_PATHS),
        },
    }


@record
class SpecOptions:
    """`pyctr run`'s flags that shape the spec (None/empty: the image's value)."""

    args: list[str] | None = None            # the command after the image name (replaces Cmd)
    entrypoint: list[str] | None = None      # --entrypoint ([""] or []: none)
    env: list[str] = field(default_factory=list)   # -e / --env-file, KEY=VALUE or KEY (from os.environ)
    workdir: str = ""                         # -w
    user: str = ""                            # -u name|uid[:group|gid]
    hostname: str = ""                        # -h (default: the id's first 12 characters, as docker)
    tty: bool = False                         # -t
    stdin: bool = False                       # -i
    cpus: float = 0.0                         # --cpus
    memory: int | str = 0                     # --memory (bytes or 64m, 1g)
    pids_limit: int = 0                       # --pids-limit (0: unlimited)
    read_only: bool = False                   # --read-only
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    init: bool = False                        # --init: tini as pid 1 (docker-init)
    annotations: dict[str, str] = field(default_factory=dict)
    seccomp: str = ""                         # "" or "builtin": docker's default; "unconfined"; a profile's JSON
    no_new_privileges: bool | None = None     # None: containerd's default (true); pyctr passes docker's


def parse_bytes(value: int | str) -> int:
    """docker's RAMInBytes: 64m, 1g, 512k, 1024, 1.5g."""
    if isinstance(value, int):
        return value
    text = str(value).strip().lower()
    if not text:
        return 0
    units = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    number = text.rstrip("bkmgt") if text[-1] in "bkmgt" else text
    suffix = text[len(number):].rstrip("b") or "b"
    try:
        amount = float(number)
    except ValueError:
        raise errdefs.InvalidArgument(f"invalid size: '{value}'") from None
    if suffix not in units or amount < 0:
        raise errdefs.InvalidArgument(f"invalid size: '{value}'")
    return int(amount * units[suffix])


def current_caps() -> list[str]:
    """The capabilities this process holds (containerd's WithAllCurrentCapabilities, which nerdctl's
    --privileged uses): a host or outer container without some capability cannot grant it."""
    try:
        with open("/proc/self/status") as f:
            line = next(x for x in f if x.startswith("CapEff:"))
        mask = int(line.split()[1], 16)
    except (OSError, StopIteration, ValueError):
        return list(ALL_CAPS)
    return [c for i, c in enumerate(ALL_CAPS) if mask >> i & 1]


def normalize_cap(name: str) -> str:
    text = name.strip().upper()
    if text == "ALL":
        return text
    cap = text if text.startswith("CAP_") else "CAP_" + text
    if cap not in ALL_CAPS:
        raise errdefs.InvalidArgument(f"invalid capability: {name}")
    return cap


def capabilities(add: list[str], drop: list[str], privileged: bool) -> list[str]:
    """docker's TweakCapabilities: ALL in add starts from every cap, ALL in drop from none."""
    if privileged:
        return current_caps()
    adds = [normalize_cap(c) for c in add]
    drops = [normalize_cap(c) for c in drop]
    if "ALL" in adds:
        caps = current_caps()
    elif "ALL" in drops:
        caps = []
    else:
        caps = list(DEFAULT_CAPS)
    if "ALL" not in drops:
        caps = [c for c in caps if c not in drops]
    for c in adds:
        if c != "ALL" and c not in caps:
            caps.append(c)
    return caps


def merge_env(base: list[str], extra: list[str]) -> list[str]:
    """Image Env then -e values; a later KEY replaces an earlier one in place (docker's ReplaceOrAppendEnvValues).
    A bare `KEY` takes the caller's value of KEY, or is dropped when unset (as docker's -e KEY)."""
    out = list(base)
    index = {e.split("=", 1)[0]: i for i, e in enumerate(out)}
    for item in extra:
        if "=" not in item:
            value = os.environ.get(item)
            if value is None:
                continue
            item = f"{item}={value}"
        key = item.split("=", 1)[0]
        if key in index:
            out[index[key]] = item
        else:
            index[key] = len(out)
            out.append(item)
    return out


def user_for(user: str, rootfs: str | os.PathLike) -> dict:
    """`-u` value → the OCI process user, names looked up in the rootfs's /etc/passwd and /etc/group."""
    from pyoci.runtime import resolve_user

    try:
        uid, gid, extra = resolve_user(user, rootfs)
    except InvalidDocument as exc:
        raise errdefs.InvalidArgument(str(exc)) from None
    return {"uid": uid, "gid": gid, **({"additionalGids": extra} if extra else {})}


def _numeric_user(user: str) -> dict | None:
    name, _, group = user.partition(":")
    if name.isdigit() and (not group or group.isdigit()):
        return {"uid": int(name), "gid": int(group) if group else 0}
    return None


def find_init() -> str:
    """The host's tini, for --init (Debian: tini's /usr/bin/tini-static, docker.io's docker-init)."""
    import shutil

    for candidate in ("docker-init", "tini-static", "tini"):
        path = shutil.which(candidate)
        if path:
            return path
    raise errdefs.FailedPrecondition("--init: not supported yet on this host (no tini or docker-init binary found)")


def _host_devices() -> list[dict]:
    """--privileged: the host's /dev device nodes (top level, as docker adds them)."""
    import stat

    out = []
    for name in sorted(os.listdir("/dev")):
        path = f"/dev/{name}"
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            if name in ("console", "ptmx", "tty") or name.startswith("tty") and name[3:].isdigit():
                continue
            out.append({"path": path, "type": "c" if stat.S_ISCHR(st.st_mode) else "b",
                        "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
                        "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid})
    return out


def generate(image_config: dict[str, Any], opts: SpecOptions, namespace: str, cid: str,
             rootfs: str | os.PathLike | None = None) -> dict:
    """The container's config.json from its image config (the whole config blob) and run options."""
    cfg = (image_config or {}).get("config") or {}
    spec = default_spec(namespace, cid)
    process = spec["process"]
    # entrypoint/cmd as docker: --entrypoint replaces Entrypoint and resets Cmd; args replace Cmd
    entrypoint = list(cfg.get("Entrypoint") or [])
    cmd = list(cfg.get("Cmd") or [])
    if opts.entrypoint is not None:
        entrypoint = [a for a in opts.entrypoint if a != ""] if opts.entrypoint != [""] else []
        cmd = []
    if opts.args:
        cmd = list(opts.args)
    args = entrypoint + cmd
    if not args:
        raise errdefs.InvalidArgument("no command specified")
    if opts.init:
        spec["mounts"].append({"destination": INIT_PATH, "type": "bind", "source": find_init(),
                               "options": ["bind", "ro"]})
        args = [INIT_PATH, "--"] + args
    process["args"] = args
    process["terminal"] = bool(opts.tty)
    hostname = opts.hostname or cid[:12]
    spec["hostname"] = hostname
    env = list(cfg.get("Env") or [])
    if not any(e.startswith("PATH=") for e in env):
        env.insert(0, DEFAULT_PATH)
    env = merge_env(env, [f"HOSTNAME={hostname}"] + (["TERM=xterm"] if opts.tty else []))
    process["env"] = merge_env(env, opts.env)
    process["cwd"] = opts.workdir or cfg.get("WorkingDir") or "/"
    if not process["cwd"].startswith("/"):
        raise errdefs.InvalidArgument(f"the working directory '{process['cwd']}' is invalid, it needs to be an "
                                      "absolute path")
    user = opts.user or cfg.get("User") or ""
    annotations = dict(opts.annotations)
    if user:
        if rootfs is not None:
            process["user"] = user_for(user, rootfs)
        elif _numeric_user(user) is not None and ":" in user:
            process["user"] = _numeric_user(user)
        else:
            annotations[USER_ANNOTATION] = user  # resolved by finalize() once the rootfs is mounted
    caps = capabilities(opts.cap_add, opts.cap_drop, opts.privileged)
    process["capabilities"] = {k: list(caps) for k in ("bounding", "effective", "permitted")}
    linux = spec["linux"]
    if opts.privileged:
        linux["maskedPaths"] = []
        linux["readonlyPaths"] = []
        linux["resources"]["devices"] = [{"allow": True, "access": "rwm"}]
        linux["devices"] = _host_devices()
        for m in spec["mounts"]:
            if m["destination"] == "/sys":
                m["options"] = [o for o in m["options"] if o != "ro"]
        process["noNewPrivileges"] = False
    resources = linux["resources"]
    if opts.cpus:
        if opts.cpus < 0.01:
            raise errdefs.InvalidArgument("range of CPUs is from 0.01 to the number of CPUs available")
        resources["cpu"] = {"quota": int(round(opts.cpus * 100000)), "period": 100000}
    memory = parse_bytes(opts.memory) if opts.memory else 0
    if memory:
        if memory < 6 * 1024 * 1024:
            raise errdefs.InvalidArgument("Minimum memory limit allowed is 6MB")
        resources["memory"] = {"limit": memory}
    if opts.pids_limit and opts.pids_limit > 0:
        resources["pids"] = {"limit": int(opts.pids_limit)}
    if opts.read_only:
        spec["root"]["readonly"] = True
    if cfg.get("StopSignal"):
        annotations[STOP_SIGNAL_ANNOTATION] = cfg["StopSignal"]
    if annotations:
        spec["annotations"] = annotations
    apply_security(spec, opts)
    return spec


def apply_security(spec: dict, opts: SpecOptions) -> None:
    """linux.seccomp and noNewPrivileges as dockerd's WithSeccomp: --privileged or seccomp=unconfined runs
    without a filter; the profile's cap-gated rules follow the bounding set computed above."""
    if opts.no_new_privileges is not None:
        spec["process"]["noNewPrivileges"] = opts.no_new_privileges
    if opts.privileged or opts.seccomp == "unconfined":
        return
    from . import seccomp  # the profile is read only when a container is made

    profile = seccomp.default_profile() if opts.seccomp in ("", "builtin") else seccomp.load_profile(opts.seccomp)
    spec["linux"]["seccomp"] = seccomp.to_oci(profile, spec["process"]["capabilities"]["bounding"])


def finalize(spec: dict, rootfs: str | os.PathLike) -> dict:
    """Resolve what needed the mounted rootfs (a user name); in place, returns `spec`."""
    annotations = spec.get("annotations") or {}
    user = annotations.pop(USER_ANNOTATION, None)
    if user:
        from pathlib import Path

        spec["process"]["user"] = user_for(user, Path(rootfs))
    if "annotations" in spec and not spec["annotations"]:
        del spec["annotations"]
    return spec


def clone(spec: dict) -> dict:
    import copy  # here: pyctr's create needs no clone (copy with weakref is ~1 ms of its start-up)

    return copy.deepcopy(spec)
