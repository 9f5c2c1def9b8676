"""`exec`: run a new process inside a running container, joining its namespaces (setns on /proc/PID/ns/*;
the pid namespace takes effect in a child, hence the second fork) and its cgroup."""

from __future__ import annotations

import json
import os

from . import namespaces, sync
from .errors import ConfigError, PyruncError, StateError
from .specconv import Process, User


def build_process(args, base: Process | None) -> Process:
    """The process to run: -p process.json, or the container's process with the command and flags applied."""
    from . import specconv

    if args.process:
        try:
            with open(args.process) as f:
                doc = json.load(f)
        except OSError as e:
            raise ConfigError(f"open {args.process}: {e.strerror.lower()}") from None
        except ValueError as e:
            raise ConfigError(f"{args.process}: invalid JSON: {e}") from None
        proc = specconv.validate_process(doc, args.process)
    else:
        if not args.argv:
            raise ConfigError("exec args cannot be empty")
        if base is None:
            raise ConfigError("container has no process configuration")
        caps = base.capabilities
        if args.cap:
            caps = {k: list((caps or {}).get(k) or ()) for k in ("bounding", "effective", "permitted", "inheritable", "ambient")}
            for c in args.cap:
                for k in ("bounding", "effective", "permitted", "ambient"):
                    caps[k].append(c)
        proc = base._replace(args=tuple(args.argv), env=base.env + tuple(args.env), cwd=args.cwd or base.cwd,
            terminal=args.tty, capabilities=caps, no_new_privileges=base.no_new_privileges or args.no_new_privs,
            console_size=None,
        )
    if args.process and args.cwd:
        proc = proc._replace(cwd=args.cwd)
    if args.user:
        uid, _, gid = args.user.partition(":")
        try:
            proc = proc._replace(user=User(int(uid), int(gid or 0), proc.user.umask, proc.user.additional_gids))
        except ValueError:
            raise ConfigError(f"invalid user {args.user!r}: want uid[:gid]") from None
    if args.additional_gids:
        gids = tuple(int(g) for a in args.additional_gids for g in a.split(","))
        proc = proc._replace(user=proc.user._replace(additional_gids=gids))
    if args.tty and not proc.terminal:
        proc = proc._replace(terminal=True)
    return proc


def run(args, log) -> int:
    from . import container, specconv
    from . import syscalls as sc

    st = container.load(args.root, args.id)
    status = st.status()
    if status == "stopped":
        raise StateError("cannot exec in a stopped container")
    if status == "paused" and not args.ignore_paused:
        raise StateError("cannot exec in a paused container (use --ignore-paused to override)")
    spec = specconv.convert(st.config, st.bundle, validate=False)
    proc = build_process(args, spec.process)
    if proc.capabilities:
        from . import capabilities

        bad = capabilities.validate(proc.capabilities)
        if bad:
            log.warning(capabilities.warning(bad))
    if proc.rlimits:
        from . import rlimits

        rlimits.validate(list(proc.rlimits))
    if proc.terminal or args.console_socket:
        from . import console

        console.check_socket(args.console_socket, proc.terminal, args.detach)
    # Keep the process our child until we exit, even detached: containerd's shim learns its pid from the pid
    # file after we return, and must not see it exit before that (runc's exec process is its child too).
    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
    from .init import preload

    preload(proc.terminal, False, bool(spec.linux.seccomp))
    profile = spec.linux.seccomp
    if profile:  # compiled (or read from the root's cache) before the fork: the process only loads it
        from . import seccomp

        profile = seccomp.compiled(profile, os.path.dirname(st.dir))
    container._close_extra_fds(args.preserve_fds)
    mgr = st.cgroup_manager() if st.cgroup else None
    if mgr is not None:
        mgr.create()  # normally there already; the child is born in it (container._fork_in_cgroups)
    parent_sock, child_sock = sync.pair()
    child, joins = container._fork_in_cgroups(mgr)
    if child == 0:
        parent_sock.close()
        _bootstrap(st, proc, child_sock, profile, joins)
        os._exit(1)
    child_sock.close()
    pid = 0
    master = None
    try:
        try:
            if mgr is not None and joins is None:
                mgr.apply(child)  # clone3 refused: move it in by pid, as runc does
            sync.send(parent_sock, "go")
            while True:
                msg, fds = sync.recv(parent_sock)
                if msg["t"] == "pid":
                    pid = msg["pid"]
                    os.waitpid(child, 0)
                    child = 0
                    sync.send(parent_sock, "continue")  # the process's messages must follow its pid
                elif msg["t"] == "console":
                    master = fds[0]
                    if args.console_socket:
                        from . import console

                        console.send_to_socket(args.console_socket, master)
                        os.close(master)
                        master = None
                elif msg["t"] == "seccomp":
                    container._send_seccomp_fd(spec.linux.seccomp, fds, st.oci_state(), pid)
                elif msg["t"] == "ready":
                    break
        finally:
            parent_sock.close()
    except BaseException:
        for p in (pid, child):
            if p:
                try:
                    os.kill(p, 9)
                except ProcessLookupError:
                    pass
        if child:
            os.waitpid(child, 0)
        raise
    from .state import proc_start_time

    start_time = (proc_start_time(pid) or (0,))[0]
    if args.pid_file:
        container._write_pid_file(args.pid_file, pid)
    if args.detach:
        return 0
    from .commands import _reap, FORWARDED
    import signal

    def forward(signum, frame):
        if signum == signal.SIGWINCH and master is not None:
            from . import console

            console.copy_size(0, master)
            return
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for s in FORWARDED:
        try:
            signal.signal(s, forward)
        except (OSError, ValueError):
            pass
    if master is not None:
        from . import console
        from .state import proc_start_time

        console.relay(master, lambda: (proc_start_time(pid) or (0, "Z"))[1] != "Z")
    return _reap(pid, start_time)


def _bootstrap(st, proc: Process, sock, seccomp_spec, joins: list[str] | None) -> None:
    from .init import _fail, _message

    try:
        if joins is not None:  # born in the cgroup2 cgroup; the v1 ones we join ourselves
            from .cgroups import fs

            fs.join_self(joins)
        sync.recv(sock, "go")
        for kind in namespaces.ORDER:
            if kind in st.namespaces and not namespaces.same_as_self(st.pid, kind):
                namespaces.join(kind, f"/proc/{st.pid}/ns/{namespaces.PROC_NAME[kind]}")
        pid = os.fork()
        if pid == 0:
            try:
                _exec_init(proc, sock, seccomp_spec)
            except BaseException as e:  # noqa: BLE001
                _fail(sock, _message(e))
        sync.send(sock, "pid", pid=pid)
        os._exit(0)
    except BaseException as e:  # noqa: BLE001
        _fail(sock, _message(e))


def _exec_init(proc: Process, sock, seccomp_spec) -> None:
    from . import process
    from .init import _reset_signals

    sync.recv(sock, "continue")

    if proc.terminal:
        from . import console

        os.setsid()
        master, slave = console.open_pty()
        sync.send(sock, "console", fds=[master])
        os.close(master)
        console.attach_slave(slave)
    process.apply_rlimits(proc)
    try:
        os.chdir(proc.cwd)
    except OSError as e:
        raise PyruncError(f"chdir to cwd ({proc.cwd!r}) set in config.json failed: {e.strerror.lower()}") from None
    try:
        path, argv, env = process.prepare_exec(proc)
    except PyruncError as e:
        raise PyruncError(f"unable to start container process: {e.message}") from None
    # runc's setns init: without no_new_privs seccomp is loaded before the capabilities are dropped, with it
    # right before execve; a NOTIFY listener fd must reach the parent, so that filter goes in before "ready".
    process.no_new_privs(proc)
    late = None
    if seccomp_spec:
        from . import seccomp
        from .init import install_early

        if not proc.no_new_privileges or seccomp.uses_notify(seccomp_spec):
            install_early(seccomp, seccomp_spec, sock)
        else:
            late = seccomp_spec
    bounded = process.drop_bounding(proc)
    process.set_user(proc.user)
    process.apply_caps(proc, bounded)
    sync.send(sock, "ready")
    sock.close()
    if late is not None:
        seccomp.install(late)
    _reset_signals()
    os.execve(path, argv, env)
