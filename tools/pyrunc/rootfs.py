"""The container's root filesystem, as runc's rootfs_linux.go builds it: propagation, the rootfs bind, each mount,
/dev, pivot_root (or MS_MOVE + chroot), masked and read-only paths, read-only root."""

from __future__ import annotations

import os
import stat

from . import syscalls as sc
from .errors import ConfigError, RuntimeFailure
from .specconv import Mount, Spec

# option -> (clear?, flag), from runc's specconv.
FLAGS: dict[str, tuple[bool, int]] = {
    "acl": (False, 1 << 16), "async": (True, sc.MS_SYNCHRONOUS), "atime": (True, sc.MS_NOATIME),
    "bind": (False, sc.MS_BIND), "defaults": (False, 0), "dev": (True, sc.MS_NODEV),
    "diratime": (True, sc.MS_NODIRATIME), "dirsync": (False, sc.MS_DIRSYNC), "exec": (True, sc.MS_NOEXEC),
    "iversion": (False, sc.MS_I_VERSION), "lazytime": (False, sc.MS_LAZYTIME), "loud": (True, sc.MS_SILENT),
    "mand": (False, sc.MS_MANDLOCK), "noacl": (True, 1 << 16), "noatime": (False, sc.MS_NOATIME),
    "nodev": (False, sc.MS_NODEV), "nodiratime": (False, sc.MS_NODIRATIME), "noexec": (False, sc.MS_NOEXEC),
    "noiversion": (True, sc.MS_I_VERSION), "nolazytime": (True, sc.MS_LAZYTIME), "nomand": (True, sc.MS_MANDLOCK),
    "norelatime": (True, sc.MS_RELATIME), "nostrictatime": (True, sc.MS_STRICTATIME), "nosuid": (False, sc.MS_NOSUID),
    "nosymfollow": (False, sc.MS_NOSYMFOLLOW), "rbind": (False, sc.MS_BIND | sc.MS_REC),
    "relatime": (False, sc.MS_RELATIME), "remount": (False, sc.MS_REMOUNT), "ro": (False, sc.MS_RDONLY),
    "rw": (True, sc.MS_RDONLY), "silent": (False, sc.MS_SILENT), "strictatime": (False, sc.MS_STRICTATIME),
    "suid": (True, sc.MS_NOSUID), "symfollow": (True, sc.MS_NOSYMFOLLOW), "sync": (False, sc.MS_SYNCHRONOUS),
}
PROPAGATION = {
    "private": sc.MS_PRIVATE, "shared": sc.MS_SHARED, "slave": sc.MS_SLAVE, "unbindable": sc.MS_UNBINDABLE,
    "rprivate": sc.MS_PRIVATE | sc.MS_REC, "rshared": sc.MS_SHARED | sc.MS_REC, "rslave": sc.MS_SLAVE | sc.MS_REC,
    "runbindable": sc.MS_UNBINDABLE | sc.MS_REC,
}
# Recursive attributes need mount_setattr(2); accepted and ignored like unknown extensions.
IGNORED = {"tmpcopyup", "rro", "rrw", "rnosuid", "rsuid", "rnodev", "rdev", "rnoexec", "rexec", "rnoatime", "ratime",
           "rnodiratime", "rdiratime", "rrelatime", "rnorelatime", "rstrictatime", "rnostrictatime", "rnosymfollow",
           "rsymfollow", "idmap", "ridmap"}


def parse_options(options: tuple[str, ...]) -> tuple[int, list[int], str]:
    """(mount flags, propagation flags, data string) for a mount's options."""
    flags, prop, data = 0, [], []
    for o in options:
        if o in FLAGS:
            clear, f = FLAGS[o]
            flags = flags & ~f if clear else flags | f
        elif o in PROPAGATION:
            prop.append(PROPAGATION[o])
        elif o not in IGNORED:
            data.append(o)
    return flags, prop, ",".join(data)


def secure_join(root: str, unsafe: str) -> str:
    """root + unsafe with every symlink resolved as if root were '/', so nothing escapes root."""
    todo = [c for c in unsafe.split("/") if c]
    resolved = ""
    links = 0
    while todo:
        c = todo.pop(0)
        if c == ".":
            continue
        if c == "..":
            resolved = os.path.dirname(resolved) if resolved else ""
            if resolved == "/":
                resolved = ""
            continue
        cand = resolved + "/" + c
        try:
            st = os.lstat(root + cand)
        except OSError:
            resolved = cand
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > 255:
                raise RuntimeFailure(f"secure join {unsafe}: too many levels of symbolic links")
            target = os.readlink(root + cand)
            if target.startswith("/"):
                resolved = ""
            todo = [x for x in target.split("/") if x] + todo
        else:
            resolved = cand
    return root.rstrip("/") + (resolved or "/") if resolved else root


def _mkdir_in(rootfs: str, dest: str, as_file: bool = False) -> None:
    if as_file:
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if not os.path.exists(dest):
            os.close(os.open(dest, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o755))
    else:
        os.makedirs(dest, 0o755, exist_ok=True)


def _propagate(dest: str, props: list[int]) -> None:
    for p in props:
        sc.mount(None, dest, None, p)


def _fs_flags(path: str) -> int:
    """The locked per-mount flags of `path` (a remount in a user namespace must keep them)."""
    st = os.statvfs(path)
    out = 0
    for bit, flag in ((os.ST_NOSUID, sc.MS_NOSUID), (os.ST_NODEV, sc.MS_NODEV), (os.ST_NOEXEC, sc.MS_NOEXEC),
                      (os.ST_RDONLY, sc.MS_RDONLY), (os.ST_NOATIME, sc.MS_NOATIME),
                      (os.ST_NODIRATIME, sc.MS_NODIRATIME), (os.ST_RELATIME, sc.MS_RELATIME)):
        if st.f_flag & bit:
            out |= flag
    return out


def mount_one(rootfs: str, m: Mount, cgroup_paths: dict[str, str] | None = None) -> None:
    flags, props, data = parse_options(m.options)
    dest = secure_join(rootfs, m.destination)
    kind = m.type
    if flags & sc.MS_BIND:
        kind = "bind"
    if kind == "bind":
        src = m.source
        try:
            st = os.stat(src)
        except OSError as e:
            raise RuntimeFailure(f"error mounting {src!r} to rootfs at {m.destination!r}: stat {src}: {e.strerror.lower()}")
        _mkdir_in(rootfs, dest, as_file=not stat.S_ISDIR(st.st_mode))
        sc.mount(src, dest, "bind", flags & (sc.MS_BIND | sc.MS_REC))
        extra = flags & ~(sc.MS_BIND | sc.MS_REC | sc.MS_REMOUNT)
        if extra:  # a bind mount ignores flags: apply them with a remount
            locked = _fs_flags(dest) & (sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)
            sc.mount(None, dest, None, extra | sc.MS_BIND | sc.MS_REMOUNT | locked)
        _propagate(dest, props)
        return
    if kind == "cgroup":
        mount_cgroup(rootfs, m, dest, flags, props)
        return
    if os.path.lexists(dest) and not os.path.isdir(dest):
        raise RuntimeFailure(f"error mounting {m.source!r} to rootfs at {m.destination!r}: not a directory")
    _mkdir_in(rootfs, dest)
    sc.mount(m.source or kind, dest, kind or None, flags, data or None)
    _propagate(dest, props)


def _cgroup_dirs() -> dict[str, str]:
    """name -> host directory of this process's own cgroup in every mounted hierarchy (v1, named, unified)."""
    mounts = {}
    order: list[str] = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fields, pfields = pre.split(), post.split()
            if pfields[0] not in ("cgroup", "cgroup2"):
                continue
            root, mp = fields[3], fields[4]
            order.append(mp)
            if pfields[0] == "cgroup2":
                mounts["0::"] = (mp, root)
            else:
                for opt in pfields[2].split(","):
                    if opt in ("rw", "ro") or opt.startswith("relatime") or opt.startswith("noexec") or opt.startswith("nosuid") or opt.startswith("nodev"):
                        continue
                    mounts.setdefault(opt, (mp, root))
    if len(mounts) > 1:
        mounts.pop("0::", None)  # hybrid: runc 1.1 binds only the v1 hierarchies
    own = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            own["0::" if not ctrls else ctrls.split(",")[0]] = path
    out = {}
    # in mountinfo order, as runc lists them
    for key, (mp, root) in sorted(mounts.items(), key=lambda kv: order.index(kv[1][0])):
        if key not in own:
            continue
        path = own[key]
        rel = os.path.relpath(path, root) if root != "/" else path.lstrip("/")
        out[os.path.basename(mp)] = os.path.join(mp, rel) if rel not in (".", "") else mp
    return out


def mount_cgroup(rootfs: str, m: Mount, dest: str, flags: int, props: list[int]) -> None:
    _mkdir_in(rootfs, dest)
    dirs = _cgroup_dirs()
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        # pure cgroup v2, as runc's mountCgroupV2: a cgroup2 mount (our cgroup namespace shows its root), or a
        # bind of our own cgroup where the kernel refuses the mount (user namespace without a cgroup namespace).
        try:
            sc.mount("cgroup2", dest, "cgroup2", flags & ~sc.MS_REMOUNT)
        except OSError as e:
            if e.errno not in (1, 16) or not dirs:  # EPERM, EBUSY
                raise
            sc.mount(next(iter(dirs.values())), dest, "bind", sc.MS_BIND | sc.MS_REC)
            if flags & sc.MS_RDONLY:
                sc.mount(None, dest, None, sc.MS_BIND | sc.MS_REMOUNT | flags | _fs_flags(dest))
        _propagate(dest, props)
        return
    else:
        sc.mount("tmpfs", dest, "tmpfs", flags & ~sc.MS_RDONLY, "mode=755")
        for name, src in dirs.items():
            sub = os.path.join(dest, name)
            os.makedirs(sub, exist_ok=True)
            sc.mount(src, sub, "bind", sc.MS_BIND | sc.MS_REC)
            sc.mount(None, sub, None, sc.MS_BIND | sc.MS_REMOUNT | (flags & ~sc.MS_REMOUNT) | _fs_flags(sub))
    if flags & sc.MS_RDONLY:
        sc.mount(None, dest, None, sc.MS_BIND | sc.MS_REMOUNT | flags | _fs_flags(dest))
    _propagate(dest, props)


def needs_dev_setup(spec: Spec) -> bool:
    """runc creates /dev nodes unless /dev itself is bind-mounted from somewhere."""
    for m in spec.mounts:
        if m.destination.rstrip("/") == "/dev" and ("bind" in m.options or "rbind" in m.options or m.type == "bind"):
            return False
    return True


def prepare(spec: Spec, in_userns: bool, before_cgroup=lambda: None) -> None:
    """Everything up to (not including) pivot_root, run in the container's fresh mount namespace."""
    from . import devices

    rootfs = spec.rootfs
    prop = PROPAGATION.get(spec.linux.rootfs_propagation, sc.MS_SLAVE | sc.MS_REC) if spec.linux.rootfs_propagation else sc.MS_SLAVE | sc.MS_REC
    sc.mount(None, "/", None, prop)
    # the parent of the rootfs must be private or pivot_root refuses; runc's prepareRoot does the same.
    if prop & sc.MS_SHARED == 0:
        _make_parent_private(rootfs)
    sc.mount(rootfs, rootfs, "bind", sc.MS_BIND | sc.MS_REC)
    for m in spec.mounts:
        if m.type == "cgroup":
            before_cgroup()  # our cgroup must be final before its directories are bound
        try:
            mount_one(rootfs, m)
        except OSError as e:
            raise RuntimeFailure(f"error mounting {m.source!r} to rootfs at {m.destination!r}: {e.strerror.lower() if e.strerror else e}") from None
    if needs_dev_setup(spec):
        # mknod needs the devices cgroup's final rules: an init born in its cgroups (clone3) may get here while
        # the runtime is between "deny all" and the allow list (a flaky EPERM), so wait for its word first.
        before_cgroup()
        try:
            devices.setup_dev(rootfs, spec.linux.devices, in_userns)
        except OSError as e:
            raise RuntimeFailure(f"error creating device nodes: {e}") from None


def _make_parent_private(rootfs: str) -> None:
    """If the mount holding rootfs is shared, make it private (runc's rootfsParentMountPrivate)."""
    best, opts = "", ""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split(" - ")[0].split()
            mp = fields[4]
            if (rootfs == mp or rootfs.startswith(mp.rstrip("/") + "/")) and len(mp) >= len(best):
                best, opts = mp, " ".join(fields[6:])
    if "shared:" in opts:
        sc.mount(None, best, None, sc.MS_PRIVATE)


def pivot(rootfs: str) -> None:
    old = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    new = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchdir(new)
        sc.pivot_root(".", ".")
        os.fchdir(old)
        sc.mount(None, ".", None, sc.MS_SLAVE | sc.MS_REC)
        sc.umount2(".", sc.MNT_DETACH)
        os.chdir("/")
    finally:
        os.close(old)
        os.close(new)


def move_root(rootfs: str) -> None:
    """--no-pivot: move the rootfs over / and chroot into it."""
    os.chdir(rootfs)
    sc.mount(rootfs, "/", None, sc.MS_MOVE)
    os.chroot(".")
    os.chdir("/")


def mask_path(path: str) -> None:
    try:
        if os.path.isdir(path):
            sc.mount("tmpfs", path, "tmpfs", sc.MS_RDONLY)
        else:
            sc.mount("/dev/null", path, "bind", sc.MS_BIND)
    except OSError as e:
        if e.errno != 2:
            raise


def readonly_path(path: str) -> None:
    try:
        sc.mount(path, path, "bind", sc.MS_BIND | sc.MS_REC)
    except OSError as e:
        if e.errno == 2:
            return
        raise
    sc.mount(None, path, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | sc.MS_REC | _fs_flags(path))


def finalize(spec: Spec, no_pivot: bool) -> None:
    """pivot_root (or MS_MOVE + chroot) into the rootfs."""
    try:
        if no_pivot:
            move_root(spec.rootfs)
        else:
            pivot(spec.rootfs)
    except OSError as e:
        raise RuntimeFailure(f"error jailing process inside rootfs: {e}") from None


def protect_paths(spec: Spec) -> None:
    """readonlyPaths, maskedPaths and the read-only root: after sysctl has been written, as runc orders it."""
    try:
        for p in spec.linux.readonly_paths:
            readonly_path(p)
        for p in spec.linux.masked_paths:
            mask_path(p)
        if spec.readonly_root:
            sc.mount(None, "/", None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | _fs_flags("/"))
    except OSError as e:
        raise RuntimeFailure(f"error setting up rootfs paths: {e}") from None


def check_mounts(spec: Spec) -> None:
    """Checks made at create time, before anything is set up."""
    for m in spec.mounts:
        if m.type == "bind" or "bind" in m.options or "rbind" in m.options:
            if not m.source:
                raise ConfigError(f"invalid mount {m.destination!r}: bind mount without a source")
