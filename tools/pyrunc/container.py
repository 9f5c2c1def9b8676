"""Container lifecycle on the runtime side (the parent): create, start, run, kill, delete."""

from __future__ import annotations

import os
import time

import _signal as signal  # the C module: `signal` converts its constants to enums (enum: ~4 ms a start)
from .records import record

from .errors import ConfigError, PyruncError, RuntimeFailure, StateError
from .state import FIFO, ContainerState, check_id, proc_start_time, rfc3339nano

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing; start/kill/delete need no spec or socket
if TYPE_CHECKING:
    from .specconv import Spec


class CreateOptions(record("CreateOptions", "root id bundle console_socket pid_file no_pivot preserve_fds detach "
                               "new_keyring", defaults=(None, None, False, 0, True, True))):
    """create/run flags (detach: create and run -d; a foreground run keeps a terminal's master itself)."""

    __slots__ = ()
    root: str
    id: str
    bundle: str
    console_socket: str | None
    pid_file: str | None
    no_pivot: bool
    preserve_fds: int
    detach: bool
    new_keyring: bool  # a session keyring named _ses.<id> (off with --no-new-keyring)


def _validate_extras(spec: Spec, root: str) -> Spec:
    """The other modules' checks, before anything is set up; the spec with its seccomp program compiled."""
    proc = spec.process
    if proc.capabilities:
        from . import capabilities

        capabilities.validate(proc.capabilities)
    if proc.rlimits:
        from . import rlimits

        rlimits.validate(list(proc.rlimits))
    if spec.linux.seccomp:
        from . import seccomp

        # validated and compiled here (or read from ROOT's cache): the init only loads the program
        spec = spec._replace(linux=spec.linux._replace(seccomp=seccomp.compiled(spec.linux.seccomp, root)))
    if spec.linux.namespace("mount") is None:
        raise ConfigError("pyrunc requires a mount namespace (linux.namespaces has no \"mount\")")
    return spec


def _write_pid_file(path: str, pid: int) -> None:
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), "." + os.path.basename(path))
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.replace(tmp, path)


def _close_extra_fds(keep: int) -> None:
    """The init inherits only stdio and --preserve-fds (3 .. 3+N-1); everything else is close-on-exec."""
    try:
        fds = [int(x) for x in os.listdir("/proc/self/fd")]
    except OSError:
        return
    for fd in fds:
        if fd > 2 + keep:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass
        elif fd > 2:
            try:
                os.set_inheritable(fd, True)
            except OSError:
                pass


def create(spec: Spec, opts: CreateOptions, starting: bool = False) -> tuple[ContainerState, int | None, int | None]:
    """Set everything up and park the init on the exec FIFO; returns the state, (foreground tty) the master and,
    when `starting` (`run`), the FIFO's read end: opened before the init reaches the FIFO, it lets the process start
    as soon as it is ready, while we save the state (`start(st, reader)` then only collects the init's byte)."""
    from . import init, rootfs, sync

    check_id(opts.id)
    spec = _validate_extras(spec, opts.root)
    rootfs.check_mounts(spec)
    if spec.process.terminal or opts.console_socket:
        from . import console

        console.check_socket(opts.console_socket, spec.process.terminal, opts.detach)
    os.makedirs(opts.root, 0o700, exist_ok=True)
    cdir = os.path.join(opts.root, opts.id)
    try:
        os.mkdir(cdir, 0o711)
    except FileExistsError:
        raise StateError("container with given ID already exists") from None
    manager = None
    child = init_pid = 0
    master = reader = None
    try:
        os.mkfifo(os.path.join(cdir, FIFO), 0o622)
        manager = _new_manager(spec, opts.id)
        init.preload(spec.process.terminal, bool(spec.hooks), bool(spec.linux.seccomp))
        from . import syscalls as sc

        # The init stays our child until we return (a failed create reaps it; the caller's subreaper gets it after).
        sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
        parent_sock, child_sock = sync.pair()
        _close_extra_fds(opts.preserve_fds)
        # opened here: a user-namespaced init may not be able to reach the state dir
        fifo_fd = os.open(os.path.join(cdir, FIFO), os.O_PATH | os.O_CLOEXEC)
        if manager is not None:
            manager.create()  # before the fork: the child is born in its cgroups (_fork_in_cgroups)
        direct = init.direct_fork(spec)
        if direct:  # the init is our child from the start: no bootstrap child, no "pid" message
            def run_init(joins: list[str] | None) -> None:
                parent_sock.close()
                init.direct(spec, child_sock, cdir, opts, fifo_fd, joins)

            init_pid, joins = init.fork_direct(spec, run_init, lambda: _fork_in_cgroups(manager))
        else:
            child, joins = _fork_in_cgroups(manager)
            if child == 0:
                parent_sock.close()
                init.bootstrap(spec, child_sock, cdir, opts, fifo_fd, joins)
                os._exit(1)  # not reached
        in_cgroup = joins is not None
        child_sock.close()
        os.close(fifo_fd)
        if starting:
            reader = os.open(os.path.join(cdir, FIFO), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            late_cgroup = manager is not None and spec.linux.namespace("cgroup") is None and not in_cgroup
            early_cgroup = False
            if in_cgroup:
                # Limits and device rules while the child joins and the init sets up its mounts; the init waits
                # for "continue" before anything that needs them.
                manager.configure()
                if direct:
                    sync.send(parent_sock, "continue")
            elif direct:
                # The init sets up its mounts meanwhile, up to the cgroup ones (it waits for "continue").
                if manager is not None:
                    manager.apply(init_pid)
                if spec.linux.namespace("cgroup") is not None:
                    sync.send(parent_sock, "go")
                sync.send(parent_sock, "continue")
            elif spec.linux.namespace("cgroup") is not None:
                # The bootstrap child must be in the cgroup before it unshares the cgroup namespace.
                if manager is not None:
                    manager.apply(child)  # also writes the resources and the device rules
                sync.send(parent_sock, "go")  # only then may the child unshare its cgroup namespace
            elif manager is not None:
                # Move the bootstrap child in while it unshares and forks; the init joins by pid once known; if
                # the child has already gone, apply() again then.
                try:
                    manager.apply(child)
                    early_cgroup = True
                except PyruncError:
                    early_cgroup = False
            created = rfc3339nano(time.time_ns())
            while True:
                msg, fds = sync.recv(parent_sock)
                kind = msg["t"]
                if kind == "maps":
                    _write_id_maps(child, spec)
                    sync.send(parent_sock, "maps-done")
                elif kind == "pid":
                    init_pid = msg["pid"]
                    os.waitpid(child, 0)
                    child = 0
                    if late_cgroup:
                        if early_cgroup:
                            _join_cgroups(manager, init_pid)
                        else:
                            manager.apply(init_pid)
                    sync.send(parent_sock, "continue")
                elif kind == "hooks":
                    from . import hooks

                    st = _oci_state(spec, opts, init_pid, created, "creating")
                    hooks.run("prestart", spec.hooks.get("prestart", ()), st)
                    hooks.run("createRuntime", spec.hooks.get("createRuntime", ()), st)
                    sync.send(parent_sock, "hooks-done")
                elif kind == "console":
                    master = fds[0]
                    if opts.console_socket:
                        from . import console

                        console.send_to_socket(opts.console_socket, master)
                        os.close(master)
                        master = None
                elif kind == "seccomp":
                    _send_seccomp_fd(spec.linux.seccomp, fds, _oci_state(spec, opts, init_pid, created,
                                                                                    "creating"), init_pid)
                elif kind == "ready":
                    break
        finally:
            parent_sock.close()
        start = proc_start_time(init_pid)
        st = ContainerState(
            id=opts.id, dir=cdir, pid=init_pid, start_time=start[0] if start else 0, created=created,
            bundle=opts.bundle, rootfs=spec.rootfs, annotations=spec.annotations, config=spec.raw,
            cgroup=manager.to_state() if manager is not None else None,
            namespaces=[ns.type for ns in spec.linux.namespaces],
        )
        st.save()
        if opts.pid_file:
            _write_pid_file(opts.pid_file, init_pid)
        return st, master, reader
    except BaseException:
        for pid in (init_pid, child):
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if child:
            try:
                os.waitpid(child, 0)
            except ChildProcessError:
                pass
        if init_pid:
            _wait_gone(init_pid, 2.0)
        if manager is not None:
            # Anything else the init left in the cgroup (hook processes, children without a pid namespace) goes
            # first: a populated cgroup cannot be removed.
            _kill_cgroup_procs(manager, 2.0)
            try:
                manager.destroy()
            except Exception:  # best effort: the original error matters
                pass
        for fd in (master, reader):
            if fd is not None:
                os.close(fd)
        _remove_dir(cdir)
        raise


def _fork_in_cgroups(manager) -> tuple[int, list[str] | None]:
    """os.fork(); with a cgroup manager (its directories made), the child is born in its cgroups: clone3 into the
    cgroup2 one (no cgroup.procs write, so no RCU grace period of 7-20 ms: syscalls.fork_into_cgroup), plus the
    v1 ones returned, which the child joins itself (cgroups.fs.join_self).  None instead: the caller moves the
    child in by pid, as runc does (no manager, or clone3 refused: old kernel, seccomp)."""
    if manager is None:
        return os.fork(), None
    joins = manager.self_join_dirs()
    target = manager.clone_into()
    if target is None:
        return os.fork(), joins  # v1 only: the child joins every hierarchy itself
    from . import syscalls as sc

    fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return sc.fork_into_cgroup(fd), joins
    except OSError:
        return os.fork(), None
    finally:
        os.close(fd)  # in the child too


def _join_cgroups(manager, pid: int) -> None:
    """Move pid into the container's (already set up) cgroups."""
    from .cgroups import fs

    for path in sorted(set(manager.paths.values())):
        fs.write(path, "cgroup.procs", pid)


def _kill_cgroup_procs(manager, timeout: float) -> None:
    """SIGKILL every process in the container's cgroup until it is empty (or timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            pids = manager.pids()
        except Exception:  # no cgroup made yet
            return
        if not pids or time.monotonic() > deadline:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _wait_gone(pid, 0.0)  # reaps it when it is ours (the subreaper gets the init's orphans)
        time.sleep(0.005)


def _send_seccomp_fd(profile: dict, fds: list[int], state: dict, pid: int) -> None:
    """Hand the init's notify listener fd to the agent at listenerPath (unreachable from the init after pivot_root)."""
    from . import seccomp

    try:
        if not fds:
            raise RuntimeFailure("seccomp listener fd missing from the init's message")
        if not profile.get("listenerPath"):
            raise RuntimeFailure("seccomp: SCMP_ACT_NOTIFY requires listenerPath")
        seccomp.send_to_listener(profile["listenerPath"], fds[0], state, pid, profile.get("listenerMetadata", ""))
    finally:
        for fd in fds:
            os.close(fd)


def _new_manager(spec: Spec, cid: str):
    """The cgroup manager for the container (None only while the cgroups package is not installed)."""
    try:
        from . import cgroups
    except ImportError:
        return None
    new = getattr(cgroups, "new_manager", None)
    if new is None:
        return None
    return new(spec.linux.cgroups_path, cid, spec.linux.resources, (spec.raw.get("linux") or {}).get("devices"))


def _write_id_maps(pid: int, spec: Spec) -> None:
    def fmt(maps) -> str:
        return "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in maps)

    try:
        with open(f"/proc/{pid}/uid_map", "w") as f:
            f.write(fmt(spec.linux.uid_mappings))
        with open(f"/proc/{pid}/gid_map", "w") as f:
            f.write(fmt(spec.linux.gid_mappings))
    except OSError as e:
        raise RuntimeFailure(f"failed to write uid/gid mappings: {e.strerror.lower()}") from None


def _oci_state(spec: Spec, opts: CreateOptions, pid: int, created: str, status: str) -> dict:
    doc = {"ociVersion": "1.0.2-dev", "id": opts.id, "pid": pid, "status": status, "bundle": opts.bundle,
           "rootfs": spec.rootfs, "created": created, "owner": ""}
    if spec.annotations:
        doc["annotations"] = spec.annotations
    return doc


def _remove_dir(cdir: str) -> None:
    """The state dir holds only files (state.json, exec.fifo, temp files): no shutil import needed."""
    try:
        names = os.listdir(cdir)
    except FileNotFoundError:
        return
    for n in names:
        try:
            os.unlink(os.path.join(cdir, n))
        except OSError:
            pass
    try:
        os.rmdir(cdir)
    except OSError:
        pass


def _wait_gone(pid: int, timeout: float) -> bool:
    """Wait for pid to exit (reaping it if it is our child); True when it is gone or a zombie."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            pass
        st = proc_start_time(pid)
        if st is None or st[1] in ("Z", "X"):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)


def start(st: ContainerState, reader: int | None = None) -> None:
    """Let the created init exec its process (`reader`: the FIFO end create(starting=True) opened, which we own)."""
    fifo = os.path.join(st.dir, FIFO)
    if reader is not None:
        fd = reader  # the init may have started, even finished, already: its byte waits in the FIFO
    else:
        status = st.status()
        if status == "stopped":
            raise StateError("cannot start a container that has stopped")
        if status != "created":
            raise StateError("cannot start an already running container")
        try:
            fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise StateError("cannot start an already running container") from None
    try:
        data = _await_fifo(fd, st)
    finally:
        os.close(fd)
    try:
        os.unlink(fifo)
    except FileNotFoundError:
        pass
    if not data:
        raise StateError("cannot start an already running container")
    hooks_cfg = (st.config.get("hooks") or {}).get("poststart")
    if hooks_cfg:
        from . import hooks, specconv

        spec = specconv.convert(st.config, st.bundle, validate=False)
        try:
            hooks.run("poststart", spec.hooks["poststart"], st.oci_state("created"))  # as runc 1.1 reports it
        except PyruncError:
            kill(st, signal.SIGKILL, all_procs=False, check=False)
            raise


def _await_fifo(fd: int, st: ContainerState) -> bytes:
    """Our open woke the init blocked opening the FIFO for writing; wait for its byte, or for it to die."""
    import select

    while True:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try:
                return os.read(fd, 16)
            except BlockingIOError:
                continue
        if not st.alive():
            raise StateError("cannot start a container that has stopped")


SIGNALS = {name[3:]: int(getattr(signal, name)) for name in dir(signal)
           if name.startswith("SIG") and not name.startswith("SIG_") and name not in ("SIGCLD", "SIGPOLL", "SIGIOT")}


def parse_signal(text: str) -> int:
    if text.isdigit():
        n = int(text)
        if n <= 0 or n > 64:
            raise ConfigError(f"unknown signal {text!r}")
        return n
    name = text.upper()
    if name.startswith("SIG"):
        name = name[3:]
    if name not in SIGNALS:
        raise ConfigError(f"unknown signal {text!r}")
    return SIGNALS[name]


def kill(st: ContainerState, sig: int, all_procs: bool, check: bool = True) -> None:
    status = st.status()
    if check and status == "stopped":
        raise StateError("container not running")
    if all_procs and st.cgroup:
        mgr = st.cgroup_manager()
        pids = mgr.pids() if mgr is not None else [st.pid]
        frozen = status == "paused"
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if frozen and sig == signal.SIGKILL and mgr is not None:
            mgr.thaw()
        return
    if not st.alive():
        if check:
            raise StateError("container not running")
        return
    try:
        os.kill(st.pid, sig)
    except ProcessLookupError:
        if check:
            raise StateError("container not running") from None


def delete(st: ContainerState, force: bool) -> None:
    status = st.status()
    if status in ("running", "paused") and not force:
        raise StateError(f"cannot delete container {st.id} that is not stopped: {status}")
    if status != "stopped":
        mgr = st.cgroup_manager() if st.cgroup else None
        if mgr is not None:
            for pid in mgr.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if status == "paused":
                mgr.thaw()
        kill(st, signal.SIGKILL, all_procs=False, check=False)
        _wait_gone(st.pid, 5.0)
    destroy(st)


def destroy(st: ContainerState) -> None:
    """Remove cgroups and state, then run the poststop hooks (errors from hooks are reported after cleanup)."""
    mgr = None
    if st.cgroup:
        try:
            mgr = st.cgroup_manager()
        except PyruncError:
            mgr = None
    if mgr is not None:
        deadline = time.monotonic() + 2
        while True:
            try:
                mgr.destroy()
                break
            except PyruncError:
                if time.monotonic() > deadline:
                    raise
                # processes left without a pid namespace to take them down with the init: kill them (runc too)
                for pid in mgr.pids():
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.01)
    _remove_dir(st.dir)
    hooks_cfg = (st.config.get("hooks") or {}).get("poststop")
    if hooks_cfg:
        from . import hooks, specconv

        spec = specconv.convert(st.config, st.bundle, validate=False)
        hooks.run("poststop", spec.hooks["poststop"], st.oci_state("stopped"))


def load(root: str, cid: str) -> ContainerState:
    """The saved state of container `cid` (NotFoundError: "container does not exist")."""
    return ContainerState.load(root, cid)
