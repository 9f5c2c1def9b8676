"""One function per runc command: parse flags into options, call the lifecycle code, print as runc prints."""

from __future__ import annotations

from pyoci import fastjson as json  # `json` imports re and enum: ~8 ms a start
import os
import sys

import _signal as signal  # the C module: `signal` imports enum (~4 ms a start)

from .errors import ConfigError, RuntimeFailure, StateError


def _bundle(path: str) -> str:
    return os.path.abspath(path or ".")


def _cgroups_manager(st):
    mgr = st.cgroup_manager() if st.cgroup else None
    if mgr is None:
        raise RuntimeFailure(f"container {st.id} has no cgroup")
    return mgr


def _warn_caps(spec, log) -> None:
    """The warnings runc logs before it creates a container: unknown capabilities, ignored cgroup settings."""
    if spec.process and spec.process.capabilities:
        from . import capabilities

        bad = capabilities.validate(spec.process.capabilities)
        if bad:
            log.warning(capabilities.warning(bad))
    resources = spec.linux.resources
    if resources and (resources.get("memory") or {}):
        _warn_resources(resources, log)


def _warn_resources(resources: dict, log) -> None:
    from . import cgroups

    for w in cgroups.warnings(resources):
        log.warning(w)


def cmd_spec(args, log) -> int:
    from . import config

    doc = config.example()
    if args.rootless:
        doc = config.to_rootless(doc)
    bundle = args.bundle or "."
    try:
        os.chdir(bundle)
    except OSError as e:
        raise ConfigError(f"chdir {bundle}: {e.strerror.lower()}") from None
    if os.path.exists("config.json"):
        raise ConfigError("File config.json exists. Remove it first")
    with open("config.json", "wb") as f:
        f.write(config.render(doc))
    return 0


def _create(args, detach: bool):
    from . import container, specconv

    bundle = _bundle(args.bundle)
    # relative paths are the caller's, and loading the bundle chdirs into it
    pid_file = os.path.abspath(args.pid_file) if args.pid_file else None
    console_socket = os.path.abspath(args.console_socket) if args.console_socket else None
    spec = specconv.load_bundle(bundle)
    opts = container.CreateOptions(
        root=os.path.abspath(args.root), id=args.id, bundle=bundle, console_socket=console_socket, pid_file=pid_file,
        no_pivot=args.no_pivot, preserve_fds=args.preserve_fds, detach=detach, new_keyring=not args.no_new_keyring,
    )
    return spec, opts


def cmd_create(args, log) -> int:
    from . import container

    spec, opts = _create(args, detach=True)
    _warn_caps(spec, log)
    st, _, _ = container.create(spec, opts)
    log.debug(f"created container {st.id}: init pid {st.pid}, bundle {st.bundle}")
    return 0


# signal.Signals' members as numbers (SIGRTMIN and SIGRTMAX are among them, the rest of the RT range is not)
FORWARDED = tuple(sorted(
    {v for k, v in vars(signal).items() if k.startswith("SIG") and not k.startswith("SIG_") and isinstance(v, int)}
    - {signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD, signal.SIGURG}))


def cmd_run(args, log) -> int:
    from . import container
    from . import syscalls as sc

    spec, opts = _create(args, detach=args.detach)
    _warn_caps(spec, log)
    if not args.detach:
        # Become the init's parent once the bootstrap child exits, so we can wait for it and get its status.
        sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
    st, master, reader = container.create(spec, opts, starting=True)
    log.debug(f"created container {st.id}: init pid {st.pid}, bundle {st.bundle}")
    try:
        container.start(st, reader)
    except BaseException:
        if not args.detach:
            container.delete(st, force=True)
        raise
    log.debug(f"started container {st.id}")
    if args.detach:
        return 0
    status = _wait_foreground(st, master, keep=args.keep)
    log.debug(f"container {st.id} exited with status {status}")
    return status


def _wait_foreground(st, master, keep: bool) -> int:
    from . import container

    pid = st.pid

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

        console.relay(master, st.alive)
    status = _reap(pid, st.start_time)
    if not keep:
        container.destroy(st)
    return status


def _reap(pid: int, start_time: int = 0) -> int:
    """Wait for pid (reparented to us as subreaper), reaping any other orphans meanwhile.

    When it is not our child (a handoff went wrong), poll it, comparing its start time: the pid space wraps on
    busy hosts, so a reused pid or a zombie another parent never reaps must not keep us waiting forever."""
    import time

    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        if got == pid:
            return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
    from .state import proc_start_time

    while True:
        st = proc_start_time(pid)
        if st is None or st[1] in ("Z", "X") or (start_time and st[0] != start_time):
            return 0  # its status went to another parent: unknown
        time.sleep(0.01)


def _load(args):
    from . import container

    return container.load(args.root, args.id)


def cmd_start(args, log) -> int:
    from . import container

    container.start(_load(args))
    return 0


def cmd_state(args, log) -> int:
    st = _load(args)
    sys.stdout.write(json.dumps(st.oci_state(), indent=2))
    return 0


def _owner(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"#{uid}"


def cmd_list(args, log) -> int:
    from .state import ContainerState, list_ids

    states = []
    for cid in list_ids(args.root):
        try:
            st = ContainerState.load(args.root, cid)
        except Exception:  # a half-written or vanished container: runc skips it too
            continue
        doc = st.oci_state()
        doc["owner"] = _owner(st.owner_uid)
        states.append(doc)
    if args.quiet:
        sys.stdout.write("".join(s["id"] + "\n" for s in states))
    elif args.format == "json":
        sys.stdout.write(json.dumps(states or None, separators=(",", ":")) + "\n")
    else:
        rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
        rows += [[s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], s["owner"]] for s in states]
        sys.stdout.write(tabwrite(rows))
    return 0


def tabwrite(rows: list[list[str]], minwidth: int = 12, padding: int = 3) -> str:
    """Go's tabwriter.NewWriter(out, 12, 1, 3, ' ', 0): every cell but the last padded to its column width."""
    widths = [max(minwidth, max(len(r[i]) for r in rows) + padding) for i in range(len(rows[0]) - 1)]
    return "".join("".join(c.ljust(w) for c, w in zip(r, widths)) + r[-1] + "\n" for r in rows)


def cmd_kill(args, log) -> int:
    from . import container

    sig = container.parse_signal(args.signal)
    container.kill(_load(args), sig, all_procs=args.all)
    return 0


def cmd_delete(args, log) -> int:
    from . import container
    from .errors import NotFoundError

    try:
        st = _load(args)
    except NotFoundError:
        if args.force:
            return 0
        raise
    container.delete(st, force=args.force)
    return 0


def cmd_pause(args, log) -> int:
    st = _load(args)
    status = st.status()
    if status not in ("running", "created"):
        raise StateError("container not running")
    _cgroups_manager(st).freeze()
    return 0


def cmd_resume(args, log) -> int:
    st = _load(args)
    if st.status() != "paused":
        raise StateError("container not paused")
    _cgroups_manager(st).thaw()
    return 0


def cmd_ps(args, log) -> int:
    import subprocess

    st = _load(args)
    if st.status() == "stopped":
        raise StateError("container not running")
    pids = _cgroups_manager(st).pids()
    if args.format == "json":
        sys.stdout.write(json.dumps(pids, separators=(",", ":")) + "\n")
        return 0
    ps_args = args.ps_args or ["-ef"]
    out = subprocess.run(["ps", *ps_args], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeFailure(f"ps: {out.stderr.strip()}")
    lines = out.stdout.splitlines()
    if not lines:
        return 0
    header = lines[0].split()
    try:
        col = header.index("PID")
    except ValueError:
        raise RuntimeFailure("couldn't find PID field in ps output") from None
    keep = [lines[0]]
    wanted = set(pids)
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in wanted:
            keep.append(line)
    sys.stdout.write("\n".join(keep) + "\n")
    return 0


def _interval(text: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for u in ("ms", "s", "m", "h"):
        if text.endswith(u) and text[: -len(u)].replace(".", "", 1).isdigit():
            return float(text[: -len(u)]) * units[u]
    raise ConfigError(f"invalid interval {text!r}")


def cmd_events(args, log) -> int:
    import time

    st = _load(args)
    if st.status() == "stopped":
        raise StateError(f"container with id {st.id} is not running")
    mgr = _cgroups_manager(st)
    if args.stats:
        sys.stdout.write(json.dumps({"type": "stats", "id": st.id, "data": mgr.stats()}) + "\n")
        return 0
    interval = _interval(args.interval)
    while st.alive():
        sys.stdout.write(json.dumps({"type": "stats", "id": st.id, "data": mgr.stats()}) + "\n")
        sys.stdout.flush()
        time.sleep(interval)
    return 0


def _bytes(text: str) -> int:
    """docker/go-units RAMInBytes: 1024-based suffixes b k m g t p, -1 for unlimited."""
    t = text.strip().lower()
    if t == "-1":
        return -1
    mult = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
    num = t.rstrip("ib").rstrip() if t.endswith(("ib", "b")) and len(t) > 1 and t[-2:-1].isalpha() else t
    unit = num[-1] if num and num[-1] in mult else "b"
    digits = num[:-1] if num and num[-1] in mult else num
    try:
        return int(float(digits) * mult[unit])
    except ValueError:
        raise ConfigError(f"invalid size: {text!r}") from None


def cmd_update(args, log) -> int:
    st = _load(args)
    if st.status() == "stopped":
        raise StateError(f"cannot update container {st.id} that is stopped")
    resources: dict = {}
    if args.resources:
        try:
            data = sys.stdin.read() if args.resources == "-" else open(args.resources).read()
            resources = json.loads(data)
        except (OSError, ValueError) as e:
            raise ConfigError(f"invalid resources {args.resources}: {e}") from None
        if not isinstance(resources, dict):
            raise ConfigError("invalid resources: must be a JSON object")
    def put(section: str, key: str, value) -> None:
        resources.setdefault(section, {})[key] = value

    if args.blkio_weight is not None:
        put("blockIO", "weight", int(args.blkio_weight))
    for flag, key in (("cpu_period", "period"), ("cpu_quota", "quota"), ("cpu_share", "shares"),
                      ("cpu_rt_period", "realtimePeriod"), ("cpu_rt_runtime", "realtimeRuntime")):
        v = getattr(args, flag)
        if v is not None:
            put("cpu", key, int(v))
    if args.cpuset_cpus is not None:
        put("cpu", "cpus", args.cpuset_cpus)
    if args.cpuset_mems is not None:
        put("cpu", "mems", args.cpuset_mems)
    for flag, key in (("memory", "limit"), ("memory_reservation", "reservation"), ("memory_swap", "swap"),
                      ("kernel_memory", "kernel"), ("kernel_memory_tcp", "kernelTCP")):
        v = getattr(args, flag)
        if v is not None:
            put("memory", key, _bytes(v))
    if args.pids_limit is not None:
        put("pids", "limit", int(args.pids_limit))
    from . import cgroups

    resources = cgroups.update_resources(resources)  # what runc's update applies; the rest is ignored
    _warn_resources(resources, log)
    mgr = _cgroups_manager(st)
    mgr.set(resources)
    # keep the saved config in step so a later `update` or `state` sees the new limits
    linux = st.config.setdefault("linux", {})
    merged = linux.setdefault("resources", {})
    for k, v in resources.items():
        if isinstance(v, dict) and isinstance(merged.get(k), dict):
            merged[k].update(v)
        else:
            merged[k] = v
    st.save()
    return 0


def cmd_exec(args, log) -> int:
    from . import exec as execmod
    from .errors import PyruncError

    try:
        return execmod.run(args, log)
    except PyruncError as e:
        e.from_exec = True  # runc: fatalWithCode(err, 255)
        raise


def cmd_features(args, log) -> int:
    from . import features

    sys.stdout.write(json.dumps(features.document(), indent=4) + "\n")
    return 0
