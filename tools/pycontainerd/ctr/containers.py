"""Container verbs: create, run, start, stop, kill, rm, pause, unpause, wait, rename, ps, prune."""

from __future__ import annotations

import os
import sys
import time
from ..records import field, record

from .. import errdefs, ocispec
from .backend import (AUTO_REMOVE_LABEL, DOCKER_EXT, HOSTNAME_LABEL, MANUAL_STOP_LABEL, NAME_LABEL, STATE_EXT,
                      Backend, CLIError, ContainerView, familiar)
from .humanize import ago, parse_duration, rfc3339nano
from .names import NAME_RE, new_id, random_name
from .stdio import BAD_DETACH_KEYS, DEFAULT_DETACH_KEYS, Detached, attach, parse_detach_keys

# Imported where used so that a plain `run` never loads them: the daemon's health and policies modules
# (they import asyncio), the image verbs (gzip, hashlib, pyoci.reference), table formatting, socket.

PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
              "RunningFor": "CREATED", "Status": "STATUS", "Ports": "PORTS", "Names": "NAMES", "Labels": "LABELS",
              "Size": "SIZE", "Mounts": "MOUNTS", "Networks": "NETWORKS", "State": "STATE",
              "LocalVolumes": "LOCAL VOLUMES"}
DEFAULT_STOP_TIMEOUT = 10


@record
class CreateOptions:
    image: str
    args: list[str] = field(default_factory=list)
    name: str = ""
    env: list[str] = field(default_factory=list)
    env_files: list[str] = field(default_factory=list)
    workdir: str = ""
    user: str = ""
    entrypoint: str | None = None
    interactive: bool = False
    tty: bool = False
    cpus: float = 0.0
    memory: str = ""
    pids_limit: int = 0
    read_only: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    init: bool = False
    hostname: str = ""
    labels: list[str] = field(default_factory=list)
    rm: bool = False
    detach: bool = False
    restart: str = "no"
    log_opts: list[str] = field(default_factory=list)
    pull: str = "missing"
    publish: list[str] = field(default_factory=list)       # -p
    publish_all: bool = False                              # -P
    expose: list[str] = field(default_factory=list)
    network: str = "default"                               # --network
    network_aliases: list[str] = field(default_factory=list)
    ip: str = ""                                           # --ip
    ip6: str = ""                                          # --ip6
    mac_address: str = ""                                  # --mac-address (Config.MacAddress)
    extra_endpoints: dict = field(default_factory=dict)    # more networks: {name: EndpointsConfig entry}
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    add_hosts: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)       # -v
    mounts: list[str] = field(default_factory=list)        # --mount
    tmpfs: list[str] = field(default_factory=list)         # --tmpfs
    healthcheck: dict | None = None                        # --health-*, --no-healthcheck: Config.Healthcheck
    security_opt: list[str] = field(default_factory=list)  # --security-opt
    detach_keys: str = ""                                  # --detach-keys (default ctrl-p,ctrl-q)


def _network_or_mount_flags(o: CreateOptions) -> bool:
    """Any flag the daemon's network and volume parsers read (check_flags, parse_publish, parse_volume…);
    with none of them they have nothing to say. Extend this with any flag those checks come to read."""
    return bool(o.publish or o.publish_all or o.volumes or o.mounts or o.tmpfs or o.ip or o.ip6 or o.mac_address
                or (o.network or "default").startswith("container:"))


def network_and_mounts(o: CreateOptions, image_cfg: dict) -> tuple[dict, dict, dict]:
    """(Config, HostConfig, NetworkingConfig) fields of the network and mount flags, checked with the
    daemon's own parsers (pycontainerd.network, pycontainerd.volumes) so errors come before anything exists."""
    exposed_keys = [e if "/" in e else f"{e}/tcp" for e in o.expose] + list(image_cfg.get("ExposedPorts") or {})
    if _network_or_mount_flags(o):
        from ..network.container import FlagError, check_flags, port_bindings
        from ..network.ports import parse_publish
        from ..volumes import check_duplicates, mount_to_docker, parse_mount, parse_tmpfs, parse_volume

        try:
            check_flags(o.network or "default", o.hostname, o.publish, o.publish_all, o.dns, o.add_hosts,
                        o.network_aliases, o.ip, o.ip6, o.mac_address)
        except errdefs.InvalidArgument as exc:
            raise CLIError(f"{'' if isinstance(exc, FlagError) else 'Error response from daemon: '}{exc}", 125) \
                from None
        if o.network == "host" and (o.publish or o.publish_all):
            print("WARNING: Published ports are discarded when using host network mode", file=sys.stderr)

        try:
            bindings, exposed = port_bindings(parse_publish(o.publish, exposed_keys, o.publish_all))
            specs = [parse_volume(v) for v in o.volumes] + [parse_mount(m) for m in o.mounts] + \
                [parse_tmpfs(t) for t in o.tmpfs]
            check_duplicates(specs)
        except (errdefs.Error, ValueError) as exc:
            raise CLIError(f"Error response from daemon: {exc}", 125) from None
    else:  # none given: what the parsers would answer, without importing pycontainerd.network (~25 ms)
        bindings, exposed = {}, {}
    exposed.update({k: {} for k in exposed_keys})
    config = {"ExposedPorts": exposed} if exposed else {}
    tmpfs = {}
    for t in o.tmpfs:
        path, _, opts = t.partition(":")
        tmpfs[path] = opts
    host = {"Binds": list(o.volumes) or None, "NetworkMode": o.network or "default", "PortBindings": bindings,
            "PublishAllPorts": o.publish_all, "Dns": list(o.dns), "DnsOptions": list(o.dns_options),
            "DnsSearch": list(o.dns_search), "ExtraHosts": list(o.add_hosts) or None,
            **({"Mounts": [mount_to_docker(parse_mount(m)) for m in o.mounts]} if o.mounts else {}),
            **({"Tmpfs": tmpfs} if tmpfs else {})}
    mode = "bridge" if (o.network or "default") == "default" else o.network
    ipam_cfg = {k: v for k, v in (("IPv4Address", o.ip), ("IPv6Address", o.ip6)) if v}
    networking = {"EndpointsConfig": {mode: {"Aliases": list(o.network_aliases) or None,
                                             **({"IPAMConfig": ipam_cfg} if ipam_cfg else {})},
                                      **o.extra_endpoints}}  # joined by the daemon at every start
    return config, host, networking


def joined_network(b: Backend, o: CreateOptions) -> CreateOptions:
    """--network container:REF stored as docker stores it, container:<full id>; the hostname is the
    other container's (its UTS name is what the shared netns's /etc/hostname says)."""
    from ..records import replace

    ref = o.network[len("container:"):] if o.network.startswith("container:") else ""
    if not ref:
        return o
    try:
        base = b.container(ref, daemon_wording=True)
    except CLIError as exc:
        raise CLIError(exc.message, 125) from None
    return replace(o, network=f"container:{base.id}")


def read_env_file(path: str) -> list[str]:
    """docker's --env-file: KEY=VALUE lines, # comments, a bare KEY takes our value."""
    out = []
    try:
        with open(path) as f:
            for line in f:
                line = line.rstrip("\n")
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                key = line.split("=", 1)[0]
                if "=" in line:
                    out.append(line.lstrip())
                elif key.strip() in os.environ:
                    out.append(f"{key.strip()}={os.environ[key.strip()]}")
    except OSError as exc:
        raise CLIError(f"open {path}: {exc.strerror.lower() if exc.strerror else exc}", 125) from None
    return out


def _labels(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        k, _, v = item.partition("=")
        out[k] = v
    return out


def create(b: Backend, o: CreateOptions) -> ContainerView:
    """docker create: the image (pulled if missing), a name, a snapshot, the spec, the record."""
    if o.name and not NAME_RE.match(o.name):
        raise CLIError(f"Error response from daemon: Invalid container name ({o.name}), only "
                       "[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", 125)
    image = b.find_image(o.image, with_config=True) if o.pull != "always" else None
    if image is None:
        from .images import ensure_image

        image = ensure_image(b, o.image, o.pull)
    cfg = b.image_config(image["name"])
    cid = new_id()
    name = o.name or random_name(0)  # the daemon refuses a name in use (Containers.Create's unique_label)
    env = []
    for f in o.env_files:
        env += read_env_file(f)
    env += o.env
    entrypoint = None if o.entrypoint is None else ([o.entrypoint] if o.entrypoint else [""])
    security_opt, security = _security(o)
    opts = ocispec.SpecOptions(args=list(o.args) or None, entrypoint=entrypoint, env=env, workdir=o.workdir,
                               user=o.user, hostname=o.hostname, tty=o.tty, stdin=o.interactive, cpus=o.cpus,
                               memory=o.memory or 0, pids_limit=o.pids_limit, read_only=o.read_only,
                               cap_add=list(o.cap_add), cap_drop=list(o.cap_drop), privileged=o.privileged,
                               init=o.init, seccomp=security.seccomp, no_new_privileges=security.no_new_privileges)
    try:
        spec = ocispec.generate(cfg.get("config") or {}, opts, b.namespace, cid)
    except (errdefs.Error, ValueError) as exc:
        raise CLIError(f"Error response from daemon: {exc}", 125) from None
    image_cfg = (cfg.get("config") or {}).get("config") or {}
    process = spec["process"]
    args = process["args"]
    o = joined_network(b, o)
    if o.network.startswith("container:"):
        base = b.container(o.network[len("container:"):])
        spec["hostname"] = (base.docker.get("Config") or {}).get("Hostname") or spec.get("hostname", cid[:12])
    if o.network == "host" and not o.hostname:
        import socket

        spec["hostname"] = socket.gethostname()  # docker: --network host shares the host's name too
    config = {"Hostname": spec.get("hostname", cid[:12]), "Domainname": "", "User": o.user or image_cfg.get("User", ""),
              "AttachStdin": o.interactive and not o.detach, "AttachStdout": not o.detach,
              "AttachStderr": not o.detach, "Tty": o.tty, "OpenStdin": o.interactive, "StdinOnce": o.interactive
              and not o.detach, "Env": process["env"],
              "Cmd": list(o.args) if o.args else (None if o.entrypoint is not None else image_cfg.get("Cmd")),
              "Image": o.image, "Volumes": None, "WorkingDir": o.workdir or image_cfg.get("WorkingDir", ""),
              "Entrypoint": ([o.entrypoint] if o.entrypoint else None) if o.entrypoint is not None
              else image_cfg.get("Entrypoint"),
              "OnBuild": None, "Labels": {**(image_cfg.get("Labels") or {}), **_labels(o.labels)}}
    if o.mac_address:
        config["MacAddress"] = o.mac_address  # docker 20.10: the container's, applied on its first network
    if image_cfg.get("StopSignal"):
        config["StopSignal"] = image_cfg["StopSignal"]
    config = _with_healthcheck(config, o.healthcheck, image_cfg.get("Healthcheck"))
    net_config, net_host, networking = network_and_mounts(o, image_cfg)
    try:
        restart_policy = _restart_policy(o.restart)
    except ValueError as exc:
        raise CLIError(f"Error response from daemon: {exc}", 125) from None
    if o.rm and restart_policy["Name"] != "no":
        raise CLIError("Conflicting options: --restart and --rm", 125)
    config.update(net_config)
    res = spec["linux"].get("resources") or {}
    host_config = {
        "Binds": None, "ContainerIDFile": "", "LogConfig": {"Type": "json-file", "Config": _labels(o.log_opts)},
        "NetworkMode": "default", "PortBindings": {}, "RestartPolicy": restart_policy,
        "AutoRemove": o.rm, "VolumeDriver": "", "VolumesFrom": None, "CapAdd": o.cap_add or None,
        "CapDrop": o.cap_drop or None, "CgroupnsMode": "private", "Dns": [], "DnsOptions": [], "DnsSearch": [],
        "ExtraHosts": None, "GroupAdd": None, "IpcMode": "private", "Cgroup": "", "Links": None,
        "OomScoreAdj": 0, "PidMode": "", "Privileged": o.privileged, "PublishAllPorts": False,
        "ReadonlyRootfs": o.read_only, "SecurityOpt": security_opt, "UTSMode": "", "UsernsMode": "", "ShmSize": 67108864,
        "Runtime": "runc", "ConsoleSize": [0, 0], "Isolation": "", "CpuShares": 0,
        "Memory": (res.get("memory") or {}).get("limit", 0), "NanoCpus": int(round(o.cpus * 1e9)),
        "CgroupParent": "", "BlkioWeight": 0, "BlkioWeightDevice": [], "BlkioDeviceReadBps": None,
        "BlkioDeviceWriteBps": None, "BlkioDeviceReadIOps": None, "BlkioDeviceWriteIOps": None, "CpuPeriod": 0,
        "CpuQuota": 0, "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0, "CpusetCpus": "", "CpusetMems": "",
        "Devices": [], "DeviceCgroupRules": None, "DeviceRequests": None, "KernelMemory": 0, "KernelMemoryTCP": 0,
        "MemoryReservation": 0, "MemorySwap": 0, "MemorySwappiness": None, "OomKillDisable": False,
        "PidsLimit": o.pids_limit or None, "Ulimits": None, "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0,
        "IOMaximumBandwidth": 0, "MaskedPaths": spec["linux"].get("maskedPaths"),
        "ReadonlyPaths": spec["linux"].get("readonlyPaths"), "Init": o.init or None}
    host_config.update(net_host)
    docker = {"Created": rfc3339nano(time.time()), "Path": args[0], "Args": args[1:], "Config": config,
              "HostConfig": host_config, "NetworkingConfig": networking,
              "ImageID": cfg["manifest"]["config"]["digest"]}
    labels = {**_labels(o.labels), NAME_LABEL: name, HOSTNAME_LABEL: config["Hostname"]}
    if o.rm and o.detach:
        labels[AUTO_REMOVE_LABEL] = "true"
    container = {"id": cid, "image": image["name"], "spec": spec, "labels": labels,
                 "extensions": {DOCKER_EXT: docker}}
    for attempt in range(1, 7):
        try:  # one call: the snapshot and the record, or neither; a name in use refused atomically
            record = b.call("Containers", "Create", {"container": container, "unique_label": NAME_LABEL,
                                                     "snapshot": {"key": cid, "parent": cfg["chain_id"]},
                                                     "brief": True})["container"]
            break
        except errdefs.AlreadyExists as exc:
            import re  # only on a conflict: re (with enum) is ~5 ms of a run's start-up

            m = re.match(_NAME_IN_USE, str(exc))
            if m is None:
                raise CLIError(f"Error response from daemon: {exc}", 125) from None
            if o.name or attempt == 6:
                raise CLIError(f'Error response from daemon: Conflict. The container name "/{name}" is already in '
                               f'use by container "{m.group(1)}". You have to remove (or rename) that container to '
                               "be able to reuse that name.", 125) from None
            name = random_name(attempt)  # moby's retries: a digit appended
            labels[NAME_LABEL] = name
        except errdefs.Error as exc:
            raise CLIError(f"Error response from daemon: {exc}", 125) from None
    return ContainerView({**container, **record}, None)  # the reply leaves out what we sent


# Containers.Create's refusal of a unique label's value (docs/protocol.md, "Combined calls")
_NAME_IN_USE = r'^name ".*" is already in use by container "([^"]+)"$'


def _security(o: CreateOptions):
    """--security-opt read as docker's CLI then dockerd do (a profile file is sent inline)."""
    from ..seccomp_opts import cli_security_opts, inspect_security_opt, parse_security_opts

    try:
        sent = cli_security_opts(o.security_opt)
    except ValueError as exc:
        raise CLIError(str(exc), 125) from None
    try:
        return inspect_security_opt(sent, o.privileged), parse_security_opts(sent)
    except errdefs.Error as exc:
        raise CLIError(f"Error response from daemon: {exc}", 125) from None


def _restart_policy(value: str) -> dict:
    """--restart → HostConfig.RestartPolicy (policies.parse_restart; the default without importing it)."""
    if value in ("", "no"):
        return {"Name": "no", "MaximumRetryCount": 0}
    from ..policies import parse_restart

    return parse_restart(value)


def _with_healthcheck(config: dict, given: dict | None, image: dict | None) -> dict:
    """Config with docker's Healthcheck (the flags' over the image's HEALTHCHECK) after Cmd, checked as
    dockerd does."""
    if given is None and not image:
        return config  # no health check: health.merge and validate would say so
    from .. import healthcheck as health  # the configuration only: no asyncio (the monitor is pycontainerd.health)

    check = health.merge(given, image)
    try:
        health.validate(check)
    except ValueError as exc:
        raise CLIError(f"Error response from daemon: {exc}", 125) from None
    if not check:
        return config
    out = {}
    for k, v in config.items():
        out[k] = v
        if k == "Cmd":
            out["Healthcheck"] = check
    return out


def start_error(exc: Exception) -> CLIError:
    """docker run's statuses for a process that cannot start: 127 not found, 126 cannot invoke, else 125."""
    text = str(exc)
    status = 125
    from ..network.service import DAEMON_ERROR_MARK
    if text.startswith(DAEMON_ERROR_MARK):  # networking refused it (an address, a port): dockerd's words
        return CLIError(f"Error response from daemon: {text[len(DAEMON_ERROR_MARK):]}", 125)
    if "executable file not found" in text or "no such file or directory" in text.lower():
        status = 127
    elif "permission denied" in text.lower() or "is a directory" in text.lower():
        status = 126
    return CLIError(f"Error response from daemon: failed to create shim task: OCI runtime create failed: {text}: "
                    "unknown", status)


def create_task(b: Backend, c: ContainerView) -> None:
    """A fresh task for the container (a stopped one is deleted first, as docker start does)."""
    if c.task is not None:
        b.call("Tasks", "Delete", {"container_id": c.id, "force": True})
    try:
        b.call("Tasks", "Create", task_params(c))
    except errdefs.Error as exc:
        raise create_failed(b, c.id, exc) from None


def task_params(c: ContainerView) -> dict:
    """Tasks.Create's params for the container as docker created it: its terminal, stdin, log options."""
    cfg = c.docker.get("Config") or {}
    log_cfg = (c.docker.get("HostConfig") or {}).get("LogConfig", {}).get("Config") or {}
    params = {"container_id": c.id, "terminal": bool(cfg.get("Tty")), "stdin": bool(cfg.get("OpenStdin"))}
    if log_cfg:
        params["log"] = {"max_size": log_cfg.get("max-size"), "max_file": log_cfg.get("max-file")}
    return params


# what the daemon records at a combined start: docker's State in STATE_EXT, a user's stop forgotten
RECORD_START = {"state_extension": STATE_EXT, "clear_labels": [MANUAL_STOP_LABEL]}


def create_failed(b: Backend, cid: str, exc: Exception) -> CLIError:
    """A task that could not be created: the error kept in the record's State, docker's status."""
    err = start_error(exc)
    b.save_state(cid, Error=str(exc), ExitCode=err.status, FinishedAt="")
    return err


class _AttachCreatingTask:
    """stdio.attach's client for `run`: its Tasks.Attach also creates the task and starts the process
    once attached, the daemon recording the start (docs/protocol.md, "Combined calls"): one call for
    what took Tasks.Create, Tasks.Attach, Tasks.Start and Containers.Update."""

    def __init__(self, b: Backend, c: ContainerView) -> None:
        self.b, self.c = b, c

    def duplex(self, service: str, method: str, params: dict | None = None, namespace: str | None = None):
        params = {**(params or {}), "create": task_params(self.c), "start": RECORD_START}
        return _PhasedCall(self.b, self.c.id, self.b.client.duplex(service, method, params, namespace))


class _PhasedCall:
    """The combined Attach's call: an error before {attached} is the task's create failing, one before
    {started} the process's start (the daemon has deleted the task again); both end as docker's."""

    def __init__(self, b: Backend, cid: str, call) -> None:
        self.b, self.cid, self.call = b, cid, call
        self.phase = "create"

    def __getattr__(self, name: str):
        return getattr(self.call, name)

    def __iter__(self):
        try:
            for frame in self.call:
                if frame.get("attached"):
                    self.phase = "start"
                elif "started" in frame:
                    self.phase = ""
                    continue
                yield frame
        except errdefs.Error as exc:
            if self.phase == "create":
                raise create_failed(self.b, self.cid, exc) from None
            if self.phase == "start":
                err = start_error(exc)
                self.b.save_state(self.cid, Error=str(exc), ExitCode=err.status)
                raise err from None
            raise


def mark_manually_stopped(b: Backend, cid: str, stopped: bool) -> None:
    """The daemon's restart policies leave a container the user stopped alone (docker's rule); set
    before the signal, so the exit it causes already sees it."""
    try:
        b.call("Containers", "Update", {"container": {"id": cid, "labels": {MANUAL_STOP_LABEL: "true" if stopped
                                                                            else ""}},
                                        "update_mask": [f"labels.{MANUAL_STOP_LABEL}"], "brief": True})
    except errdefs.NotFound:
        pass


def start_task(b: Backend, cid: str, record: dict | None = None) -> None:
    """Start the container's task; `record`: the container's record as just created, which saves the calls
    that would read back what it says (no manually-stopped label, no State yet)."""
    if record is None or MANUAL_STOP_LABEL in (record.get("labels") or {}):
        mark_manually_stopped(b, cid, False)
    try:
        b.call("Tasks", "Start", {"container_id": cid})
    except errdefs.Error as exc:
        err = start_error(exc)
        b.save_state(cid, Error=str(exc), ExitCode=err.status)
        try:
            b.call("Tasks", "Delete", {"container_id": cid, "force": True})
        except errdefs.Error:
            pass
        raise err from None
    base = None if record is None else (record.get("extensions") or {}).get(STATE_EXT) or {}
    b.save_state(cid, base, StartedAt=rfc3339nano(time.time()), FinishedAt="", Error="", ExitCode=0)


def record_exit(b: Backend, cid: str) -> None:
    """Keep the exit in the record (the task, and so its status, may go later)."""
    task = b.task(cid)
    if task is not None and task.get("status") == "stopped":
        b.save_state(cid, FinishedAt=task.get("exited_at") or rfc3339nano(time.time()),
                     ExitCode=int(task.get("exit_status") or 0))


def remove(b: Backend, c: ContainerView, force: bool = False, volumes: bool = False) -> None:
    if c.running and not force:
        raise CLIError(f"Error response from daemon: You cannot remove a running container {c.id}. Stop the "
                       "container before attempting removal or force remove")
    if c.running:
        mark_manually_stopped(b, c.id, True)
    # one call: the task (killed), the anonymous volumes with -v, the snapshot, the record
    b.call("Containers", "Delete", {"id": c.id, "cleanup_snapshot": True, "force": c.task is not None,
                                    "remove_anonymous_volumes": volumes})


def _kill_proxy(b: Backend, cid: str):
    def proxy(sig: int) -> None:
        try:
            b.call("Tasks", "Kill", {"container_id": cid, "signal": int(sig)})
        except errdefs.Error:
            pass
    return proxy


def run(b: Backend, o: CreateOptions) -> int:
    """docker run: create, start, and with no -d stream the output and exit with the container's status."""
    keys = b"" if o.detach else detach_keys_or_exit(o.detach_keys)
    c = create(b, o)
    detached = False
    exited = False  # and the exit status read: the view below is known without asking the daemon
    try:
        if o.detach:  # one call: the task created and started, the start recorded
            try:
                b.call("Tasks", "Start", {"container_id": c.id, "create": task_params(c), "record": RECORD_START})
            except errdefs.Error as exc:  # create or start: the task is gone either way, as State says
                raise create_failed(b, c.id, exc) from None
            print(c.id, flush=True)
            return 0
        try:  # the task created, attached to and started by one call
            status = attach(_AttachCreatingTask(b, c), c.id, stdin=o.interactive, tty_=o.tty,
                            proxy_signals=_kill_proxy(b, c.id), detach_keys=keys)
        except Detached:  # docker: exit 0, the container runs on (and --rm removes it when it exits)
            detached = True
            if o.rm:
                b.call("Containers", "Update", {"container": {"id": c.id, "labels": {
                    **(c.record.get("labels") or {}), AUTO_REMOVE_LABEL: "true"}}, "update_mask": ["labels"]})
            return 0
        except errdefs.Error as exc:
            raise CLIError(f"Error response from daemon: {exc}", 125) from None
        if status is None:
            status = int(b.call("Tasks", "Wait", {"container_id": c.id}).get("exit_status") or 0)
        exited = True
        if not o.rm:  # --rm removes it below: no State to keep
            record_exit(b, c.id)
        return status
    except CLIError as exc:
        raise CLIError(exc.message, exc.status if exc.status >= 125 else 125) from None
    finally:
        if o.rm and not o.detach and not detached:
            try:
                view = ContainerView(c.record, {"status": "stopped"}) if exited else b.container(c.id)
                remove(b, view, force=True, volumes=True)
            except (CLIError, errdefs.Error):
                pass


def detach_keys_or_exit(text: str) -> bytes:
    """--detach-keys parsed; keys dockerd would refuse end the verb with docker's line and status 1."""
    try:
        return parse_detach_keys(text or DEFAULT_DETACH_KEYS)
    except ValueError:
        raise CLIError(BAD_DETACH_KEYS) from None


def start(b: Backend, refs: list[str], attach_: bool = False, interactive: bool = False,
          detach_keys: str = "") -> int:
    keys = detach_keys_or_exit(detach_keys) if attach_ or interactive else b""
    failed = []
    status = 0
    for ref in refs:
        try:
            c = b.container(ref, daemon_wording=True)
            if c.running:
                if not attach_:
                    print(ref, flush=True)
                continue
            if attach_ or interactive:
                if c.task is not None:  # a stopped task goes first, as docker start does
                    b.call("Tasks", "Delete", {"container_id": c.id, "force": True})
                tty_ = bool(c.docker.get("Config", {}).get("Tty"))
                try:  # the task created, attached to and started by one call
                    result = attach(_AttachCreatingTask(b, c), c.id, stdin=interactive, tty_=tty_,
                                    proxy_signals=_kill_proxy(b, c.id), detach_keys=keys)
                except Detached:  # docker start -ai: silent, status 0
                    continue
                record_exit(b, c.id)
                status = result or 0
            else:
                create_task(b, c)
                start_task(b, c.id)
                print(ref, flush=True)
        except CLIError as exc:
            print(exc.message, file=sys.stderr)
            failed.append(ref)
    if failed:
        raise CLIError(f"Error: failed to start containers: {', '.join(failed)}")
    return status


def stop_signal(c: ContainerView) -> str:
    annotations = (c.record.get("spec") or {}).get("annotations") or {}
    return c.docker.get("Config", {}).get("StopSignal") or annotations.get(ocispec.STOP_SIGNAL_ANNOTATION) \
        or "SIGTERM"


def stop(b: Backend, refs: list[str], timeout: int | None) -> int:
    """SIGTERM (or the image's STOPSIGNAL), SIGKILL after the timeout (10 s)."""
    status = 0
    for ref in refs:
        try:
            c = b.container(ref, daemon_wording=True)
            mark_manually_stopped(b, c.id, True)  # also ends a restart policy's back-off wait
            if c.running:
                t = DEFAULT_STOP_TIMEOUT if timeout is None else timeout
                if c.status == "paused":
                    b.call("Tasks", "Resume", {"container_id": c.id})
                b.call("Tasks", "Kill", {"container_id": c.id, "signal": stop_signal(c) if t != 0 else "SIGKILL"})
                try:
                    b.call("Tasks", "Wait", {"container_id": c.id}, timeout=max(t, 0.001))
                except errdefs.DeadlineExceeded:
                    try:
                        b.call("Tasks", "Kill", {"container_id": c.id, "signal": "SIGKILL", "all": True})
                    except errdefs.Error:
                        pass  # it ended between the wait's timeout and this kill (the wait below tells)
                    b.call("Tasks", "Wait", {"container_id": c.id}, timeout=30)
                record_exit(b, c.id)
            print(ref, flush=True)
        except CLIError as exc:
            print(exc.message, file=sys.stderr)
            status = 1
        except errdefs.Error as exc:
            print(f"Error response from daemon: {exc}", file=sys.stderr)
            status = 1
    return status


def kill(b: Backend, refs: list[str], sig: str) -> int:
    status = 0
    for ref in refs:
        try:
            c = b.container(ref, daemon_wording=True)
        except CLIError:
            print(f"Error response from daemon: Cannot kill container: {ref}: No such container: {ref}",
                  file=sys.stderr)
            status = 1
            continue
        if not c.running:
            print(f"Error response from daemon: Cannot kill container: {ref}: Container {c.id} is not running",
                  file=sys.stderr)
            status = 1
            continue
        signame = sig.upper()
        value: int | str = int(signame) if signame.isdigit() else (signame if signame.startswith("SIG")
                                                                    else "SIG" + signame)
        import signal  # here: signal imports enum, ~2 ms of a run's start-up

        if isinstance(value, str) and not hasattr(signal, value):
            print(f"Error response from daemon: Cannot kill container: {ref}: Invalid signal: {sig}",
                  file=sys.stderr)
            status = 1
            continue
        mark_manually_stopped(b, c.id, True)
        b.call("Tasks", "Kill", {"container_id": c.id, "signal": value})
        print(ref, flush=True)
    return status


def rm(b: Backend, refs: list[str], force: bool, volumes: bool = False) -> int:
    status = 0
    for ref in refs:
        try:
            remove(b, b.container(ref), force, volumes)
            print(ref, flush=True)
        except CLIError as exc:
            print(exc.message, file=sys.stderr)
            status = 1
        except errdefs.Error as exc:
            print(f"Error response from daemon: {exc}", file=sys.stderr)
            status = 1
    return status


def pause(b: Backend, refs: list[str], resume: bool) -> int:
    status = 0
    for ref in refs:
        try:
            c = b.container(ref, daemon_wording=True)
            if resume and c.status != "paused":
                raise CLIError(f"Error response from daemon: Container {c.id} is not paused")
            if not resume and c.status == "paused":
                raise CLIError(f"Error response from daemon: Container {c.id} is already paused")
            if not c.running:
                raise CLIError(f"Error response from daemon: Container {c.id} is not running")
            b.call("Tasks", "Resume" if resume else "Pause", {"container_id": c.id})
            print(ref, flush=True)
        except CLIError as exc:
            print(exc.message, file=sys.stderr)
            status = 1
    return status


def wait(b: Backend, refs: list[str]) -> int:
    status = 0
    for ref in refs:
        try:
            c = b.container(ref, daemon_wording=True)
        except CLIError as exc:
            print(exc.message, file=sys.stderr)
            status = 1
            continue
        if c.task is None:
            code = c.exit_code
        else:
            code = int(b.call("Tasks", "Wait", {"container_id": c.id}).get("exit_status") or 0)
            record_exit(b, c.id)
        print(code, flush=True)
    return status


def rename(b: Backend, ref: str, new: str) -> None:
    c = b.find_record(ref)
    if c is None:
        raise CLIError(f"Error response from daemon: No such container: {ref}\n"
                       f"Error: failed to rename container named {ref}")
    new = new[1:] if new.startswith("/") else new
    if not NAME_RE.match(new):
        raise CLIError(f"Error response from daemon: Invalid container name ({new}), only "
                       "[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    owner = b.name_owner(new)
    if owner is not None:
        raise CLIError(f'Error response from daemon: Error when allocating new name: Conflict. The container name '
                       f'"/{new}" is already in use by container "{owner["id"]}". You have to remove (or rename) '
                       "that container to be able to reuse that name.")
    b.call("Containers", "Update", {"container": {"id": c["id"], "labels": {NAME_LABEL: new}},
                                    "update_mask": [f"labels.{NAME_LABEL}"], "brief": True})


# -- ps --------------------------------------------------------------------------------------------

def _filters(items: list[str]) -> list[tuple[str, str]]:
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise CLIError(f'Error: invalid argument "{item}" for "-f, --filter" flag: bad format of filter '
                           "(expected name=value)")
        key = key.lower()
        if key not in ("status", "name", "label", "id", "ancestor", "exited", "before", "since", "health"):
            raise CLIError(f"Error response from daemon: Invalid filter '{key}'")
        out.append((key, value))
    return out


def _match(c: ContainerView, key: str, value: str) -> bool:
    if key == "status":
        if value not in ("created", "restarting", "running", "removing", "paused", "exited", "dead"):
            raise CLIError(f"Error response from daemon: Invalid filter 'status={value}'")
        return c.status == value
    if key == "name":
        import re

        return re.search(value.lstrip("/"), c.name) is not None
    if key == "id":
        return c.id.startswith(value)
    if key == "label":
        k, sep, v = value.partition("=")
        labels = c.record.get("labels") or {}
        return k in labels and (not sep or labels[k] == v)
    if key == "ancestor":
        return familiar(c.record.get("image", "")) in (value, familiar(value) if ":" in value else value + ":latest")\
            or c.image_name == value
    if key == "exited":
        return c.status == "exited" and str(c.exit_code) == value
    if key == "health":
        if value not in ("starting", "healthy", "unhealthy", "none"):
            raise CLIError(f"Error response from daemon: Unrecognised filter value for health: {value}")
        return ((c.health or {}).get("Status") or "none") == value
    return True


def ps_rows(views: list[ContainerView], no_trunc: bool) -> list[dict]:
    now = time.time()
    rows = []
    for c in views:
        labels = c.record.get("labels") or {}
        user_labels = {k: v for k, v in labels.items() if not k.startswith("nerdctl/")}
        command = c.command
        if not no_trunc and len(command) > 20:
            command = command[:19] + "…"
        rows.append({"Command": f'"{command}"',
                     "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(c.created)),
                     "ID": c.id if no_trunc else c.id[:12], "Image": c.image_name,
                     "Labels": ",".join(f"{k}={v}" for k, v in sorted(user_labels.items())),
                     "LocalVolumes": "0", "Mounts": "", "Names": c.name,
                     "Networks": _networks(c), "Ports": _ports(c) if c.running else "",
                     "RunningFor": ago(c.created, now), "Size": "0B", "State": c.status,
                     "Status": c.status_text(now)})
    return rows


def _ports(c: ContainerView) -> str:
    """docker ps's PORTS from the bindings asked for (`0.0.0.0:8080->80/tcp`); random host ports unknown here."""
    out = []
    for key, entries in sorted(((c.docker.get("HostConfig") or {}).get("PortBindings") or {}).items()):
        for e in entries or []:
            if e.get("HostPort"):
                out.append(f"{e.get('HostIp') or '0.0.0.0'}:{e['HostPort']}->{key}")
            else:
                out.append(key)
    return ", ".join(out)


def _networks(c: ContainerView) -> str:
    mode = (c.docker.get("HostConfig") or {}).get("NetworkMode") or "default"
    if mode.startswith("container:"):
        return ""  # docker: no network of its own
    return "bridge" if mode == "default" else mode


def ps(b: Backend, args) -> None:
    views = b.containers()
    filters = _filters(args.filter or [])
    if not args.all and not args.latest and args.last in (None, -1) and \
            not any(k in ("status", "exited") for k, _ in filters):
        views = [c for c in views if c.running]
    for key, value in filters:
        views = [c for c in views if _match(c, key, value)]
    views.sort(key=lambda c: c.created, reverse=True)
    n = 1 if args.latest else args.last
    if n is not None and n >= 0:
        views = views[:n]
    if args.quiet:
        sys.stdout.write("".join((c.id if args.no_trunc else c.id[:12]) + "\n" for c in views))
        return
    fmt = args.format or "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}" + \
        ("\t{{.Size}}" if args.size else "")
    rows = ps_rows(views, args.no_trunc)
    if args.size or ".Size" in fmt:  # docker computes sizes for -s or a format that shows them
        from .humanize import human_size
        from .inspection import container_sizes
        for row, c in zip(rows, views):
            rw, rootfs = container_sizes(b, c)
            row["Size"] = f"{human_size(rw)} (virtual {human_size(rootfs)})"
    from .formatting import print_rows

    print_rows(fmt, rows, PS_HEADERS, sys.stdout.write)


def prune(b: Backend) -> list[str]:
    deleted = []
    for c in b.containers():
        if not c.running:
            remove(b, c, force=True)
            deleted.append(c.id)
    return deleted


def parse_stop_timeout(text) -> int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return int(parse_duration(str(text)))
