"""The container side of `create`: runs in the forked children, never returns.

bootstrap (child C): waits for the parent to place it in the cgroup, enters the user namespace (the parent writes
the id maps), joins/unshares the other namespaces and forks the init G (pid 1 of a new pid namespace), reports
G's pid and exits.  container_init (G): rootfs, hooks, pivot_root, hostname, sysctl, console, user, caps,
rlimits; then reports "ready", parks on the exec FIFO until `start`, and execs the process.
Every failure goes back to the parent as one "error" message so `create` prints a one-line error.
"""

from __future__ import annotations

import os

from . import namespaces, sync
from . import syscalls as sc
from .errors import PyruncError
from .specconv import Spec


def preload(terminal: bool, hooks: bool, seccomp: bool) -> None:
    """Import now every module the children need later: after setns(mnt) or pivot_root the interpreter's
    files are out of reach, so a lazy import there would fail."""
    from . import capabilities, process, rlimits, rootfs, devices  # noqa: F401

    if terminal:
        import array  # noqa: F401 - used by socket.send_fds (console socket)
        import termios  # noqa: F401

        from . import console  # noqa: F401
    if hooks:
        import subprocess  # noqa: F401

        from . import hooks as _hooks  # noqa: F401
    if seccomp:
        import struct  # noqa: F401 - seccomp.install imports it lazily

        from . import seccomp as _seccomp

        loader = getattr(_seccomp, "preload", None)
        if loader is not None:
            loader()
        else:
            try:
                import pyseccomp  # noqa: F401
            except ImportError:
                pass


def _fail(sock, msg: str) -> None:
    try:
        sync.send(sock, "error", msg=msg)
    except OSError:
        pass
    os._exit(1)


def _message(e: BaseException) -> str:
    if isinstance(e, PyruncError):
        return e.message
    if isinstance(e, OSError):
        return f"{e.strerror.lower() if e.strerror else e}" + (f": {e.filename}" if e.filename else "")
    return f"{type(e).__name__}: {e}"


def direct_fork(spec: Spec) -> bool:
    """Whether the runtime can fork the init itself, skipping the bootstrap child: not with a user namespace
    (the others must be created inside it, so they belong to it), a time namespace or a pid namespace joined by
    path (both apply to children only, set up by the bootstrap child)."""
    return not any(ns.type in ("user", "time") or (ns.type == "pid" and ns.path) for ns in spec.linux.namespaces)


def fork_direct(spec: Spec, child, fork) -> tuple[int, list[str] | None]:
    """Fork the init straight into its new pid namespace (for a direct_fork spec): `fork()` gives (pid, the v1
    cgroups the child joins itself or None), `child(those)` runs in the child and never returns.  unshare(CLONE_NEWPID)
    changes only the namespace our next child is born in, and setns back to our own right after the fork
    restores that: one fork and no bootstrap round trip (~2 ms of every start)."""
    own = None
    if spec.linux.namespace("pid") is not None:
        own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        try:
            sc.unshare(sc.CLONE_NEWPID)
        except OSError as e:
            os.close(own)
            raise PyruncError(f"unshare namespaces: {os.strerror(e.errno).lower()}") from None
    try:
        pid, joins = fork()
    except BaseException:
        if own is not None:
            _restore_pid_ns(own)
        raise
    if pid == 0:
        if own is not None:
            os.close(own)
        child(joins)
        os._exit(1)  # not reached
    if own is not None:
        try:
            _restore_pid_ns(own)
        except BaseException:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise
    return pid, joins


def _restore_pid_ns(own: int) -> None:
    try:
        sc.setns(own, sc.CLONE_NEWPID)
    except OSError as e:
        raise PyruncError(f"setns back to the runtime's pid namespace: {os.strerror(e.errno).lower()}") from None
    finally:
        os.close(own)


def direct(spec: Spec, sock, state_dir: str, opts, fifo_fd: int, joins: list[str] | None) -> None:
    """The init forked by fork_direct (pid 1 of its namespace already): its cgroups and the other namespaces,
    then the init."""
    try:
        _enter_cgroups(spec, sock, joins)
        _enter_namespaces(spec, {ns.type for ns in spec.linux.namespaces} - {"user", "pid"})
    except BaseException as e:  # noqa: BLE001 - everything must reach the parent as one line
        _fail(sock, _message(e))
    container_init(spec, sock, state_dir, opts, False, fifo_fd)


def _enter_cgroups(spec: Spec, sock, joins: list[str] | None) -> None:
    """Our v1 cgroups joined ourselves (`joins`: we were born in the cgroup2 one, container._fork_in_cgroups), or,
    with a cgroup namespace, the parent's word that it has moved us (the namespace is rooted where we are)."""
    if joins is not None:
        from .cgroups import fs

        fs.join_self(joins)
    elif spec.linux.namespace("cgroup") is not None:
        sync.recv(sock, "go")


def _enter_namespaces(spec: Spec, kinds: set[str]) -> None:
    """Join the namespaces given by path, in setns order, then unshare the new ones of `kinds` at once."""
    for kind in namespaces.ORDER:
        ns = spec.linux.namespace(kind)
        if ns is not None and ns.path and kind in kinds:
            namespaces.join(kind, ns.path)
    namespaces.unshare(spec.linux.namespaces, kinds)


def bootstrap(spec: Spec, sock, state_dir: str, opts, fifo_fd: int, joins: list[str] | None) -> None:
    """The bootstrap child: its cgroups (as direct()), the user namespace, the others; forks the init."""
    try:
        _enter_cgroups(spec, sock, joins)  # before the user namespace: as host root
        kinds = {ns.type for ns in spec.linux.namespaces}
        userns = spec.linux.namespace("user")
        if userns is not None:
            if userns.path:
                namespaces.join("user", userns.path)
            else:
                namespaces.unshare((userns,), {"user"})
                sync.send(sock, "maps")
                sync.recv(sock, "maps-done")
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        _enter_namespaces(spec, kinds - {"user"})
        if spec.linux.time_offsets and "time" in kinds:
            namespaces.write_time_offsets(spec.linux.time_offsets)
        pid = os.fork()
        if pid == 0:
            container_init(spec, sock, state_dir, opts, userns is not None, fifo_fd)
        sync.send(sock, "pid", pid=pid)
        os._exit(0)
    except BaseException as e:  # noqa: BLE001 - everything must reach the parent as one line
        _fail(sock, _message(e))


def container_init(spec: Spec, sock, state_dir: str, opts, in_userns: bool, fifo_fd: int) -> None:
    try:
        _init(spec, sock, state_dir, opts, in_userns, fifo_fd)
    except BaseException as e:  # noqa: BLE001
        _fail(sock, _message(e))


class _Gate:
    """The init waits for the parent's "continue" (sent once it knows our pid and has put us in the cgroup)
    before it sends anything or mounts cgroups; mount work before that overlaps with the parent's."""

    def __init__(self, sock) -> None:
        self.sock, self.open = sock, False

    def wait(self) -> None:
        if not self.open:
            sync.recv(self.sock, "continue")
            self.open = True
            # The runtime is our parent now (it reaped the bootstrap child before "continue"): die with it until
            # "ready", so a runtime killed mid-create leaves no init behind (socket EOF covers the blocking reads).
            sc.prctl(sc.PR_SET_PDEATHSIG, 9)


def _init(spec: Spec, sock, state_dir: str, opts, in_userns: bool, fifo_fd: int) -> None:
    from . import process, rootfs

    gate = _Gate(sock)
    if opts.new_keyring:
        sc.join_session_keyring("_ses." + opts.id)

    proc = spec.process
    bundle = os.getcwd()  # create chdir'd to the bundle
    os.setsid()
    fifo = fifo_fd
    if spec.linux.namespace("mount") is not None:
        rootfs.prepare(spec, in_userns, gate.wait)
    gate.wait()
    if spec.hooks.get("prestart") or spec.hooks.get("createRuntime"):
        sync.send(sock, "hooks")
        sync.recv(sock, "hooks-done")
    if spec.hooks.get("createContainer"):
        from . import hooks

        hooks.run("createContainer", spec.hooks["createContainer"], _state(spec, state_dir, bundle, "creating"))
    if spec.linux.namespace("mount") is not None:
        rootfs.finalize(spec, opts.no_pivot)
    else:
        os.chroot(spec.rootfs)
        os.chdir("/")
    if spec.hostname:
        sc.sethostname(spec.hostname)
    if spec.domainname:
        sc.setdomainname(spec.domainname)
    for key, value in spec.linux.sysctl.items():
        try:
            with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
                f.write(value)
        except OSError as e:
            raise PyruncError(f"write sysctl {key}: {e.strerror.lower()}") from None
    if spec.linux.namespace("mount") is not None:
        rootfs.protect_paths(spec)
    if proc.terminal:
        from . import console

        master, slave = console.open_pty()
        if proc.console_size:
            console.set_size(master, *proc.console_size)
        sync.send(sock, "console", fds=[master])
        os.close(master)
        console.attach_slave(slave)
    process.oom_score_adj(proc.oom_score_adj)
    if spec.linux.personality:
        sc.personality({"LINUX": 0, "LINUX32": 0x0008}.get(spec.linux.personality.get("domain", "LINUX"), 0))
    process.apply_rlimits(proc)
    try:
        os.chdir(proc.cwd)
    except OSError as e:
        raise PyruncError(f"chdir to cwd ({proc.cwd!r}) set in config.json failed: {e.strerror.lower()}") from None
    try:
        path, argv, env = process.prepare_exec(proc)
    except PyruncError as e:
        raise PyruncError(f"unable to start container process: {e.message}") from None
    # runc's order: no_new_privs before "ready"; without it seccomp is privileged and goes in before the
    # capabilities are dropped (with it, as late as possible: right before execve).  A notify listener fd must
    # reach the parent before "ready" (the parent stops listening then), so a NOTIFY filter goes in early too.
    process.no_new_privs(proc)
    seccomp = late_seccomp = None
    if spec.linux.seccomp:
        from . import seccomp

        if not proc.no_new_privileges or seccomp.uses_notify(spec.linux.seccomp):
            install_early(seccomp, spec.linux.seccomp, sock)
        else:
            late_seccomp = spec.linux.seccomp
    sc.prctl(sc.PR_SET_PDEATHSIG, 0)  # a created container outlives `pyrunc create`
    sync.send(sock, "ready")
    # Park until `start` opens the FIFO for reading (the path is reached through our O_PATH fd after pivot_root;
    # opened before the uid switch, which makes /proc/self/fd unreadable to us).
    w = os.open(f"/proc/self/fd/{fifo}", os.O_WRONLY | os.O_CLOEXEC)
    os.write(w, b"0")
    os.close(fifo)
    try:
        bounded = process.drop_bounding(proc)
        process.set_user(proc.user)
        process.apply_caps(proc, bounded)
        if spec.hooks.get("startContainer"):
            from . import hooks

            hooks.run("startContainer", spec.hooks["startContainer"], _state(spec, state_dir, bundle, "created"))
        if late_seccomp is not None:
            seccomp.install(late_seccomp)
    except PyruncError as e:
        os.write(2, f"pyrunc init: {e.message}\n".encode())
        os._exit(1)
    _reset_signals()
    os.execve(path, argv, env)


def install_early(seccomp, profile: dict, sock) -> None:
    """Load the filter now; a NOTIFY listener fd goes to the parent (which hands it to listenerPath)."""
    fd = seccomp.install(profile)
    if fd >= 0:
        sync.send(sock, "seccomp", fds=[fd])
        os.close(fd)


def _reset_signals() -> None:
    """Python ignores SIGPIPE and SIGXFSZ; an ignored disposition survives execve, so restore the defaults."""
    import _signal as signal

    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)


def _state(spec: Spec, state_dir: str, bundle: str, status: str) -> dict:
    """The state the container-side hooks get (runc 1.1 says "creating" and "created" for them)."""
    from .state import OCI_VERSION

    doc = {"ociVersion": OCI_VERSION, "id": os.path.basename(state_dir), "pid": os.getpid(), "status": status,
           "bundle": bundle, "rootfs": spec.rootfs, "owner": ""}
    if spec.annotations:
        doc["annotations"] = spec.annotations
    return doc
