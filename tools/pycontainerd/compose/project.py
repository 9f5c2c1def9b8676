"""A loaded compose Project against the daemon: its networks, volumes and containers, named and labelled
as docker compose makes them, created and removed through pyctr's own verb functions."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator, TextIO

from .. import errdefs
from ..client import Client
from ..ctr import containers, images
from ..ctr.backend import DOCKER_EXT, Backend, CLIError, ContainerView
from ..ctr.humanize import ago
from .health import to_docker, wait_completed, wait_healthy
from .model import ComposeError, Project, Service

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
NUMBER_LABEL = "com.docker.compose.container-number"
ONEOFF_LABEL = "com.docker.compose.oneoff"
HASH_LABEL = "com.docker.compose.config-hash"
WORKDIR_LABEL = "com.docker.compose.project.working_dir"
NETWORK_LABEL = "com.docker.compose.network"
VOLUME_LABEL = "com.docker.compose.volume"
DEFAULT_STOP_TIMEOUT = 10
COMPOSE_PS_HEADERS = {**containers.PS_HEADERS, "Name": "NAME", "Service": "SERVICE", "Project": "PROJECT",
                      "Health": "HEALTH", "ExitCode": "EXIT CODE", "Publishers": "PUBLISHERS",
                      "RunningFor": "CREATED"}


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """pyctr's verb functions print container refs as docker does; compose prints its own progress."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


@dataclass
class Compose:
    b: Backend
    project: Project
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)

    # -- naming --------------------------------------------------------------------------------------
    def container_name(self, s: Service, number: int = 1) -> str:
        """PROJECT-SERVICE-N (compose v2's form; N is the replica's com.docker.compose.container-number)."""
        return s.container_name or f"{self.project.name}-{s.name}-{number}"

    def image_name(self, s: Service) -> str:
        return s.image or f"{self.project.name}-{s.name}"

    def progress(self, kind: str, name: str, what: str) -> None:
        print(f" {kind} {name}  {what}", file=self.err, flush=True)

    def services(self, names: list[str] | None) -> list[Service]:
        return [self.project.service(n) for n in (names or sorted(self.project.services))]

    def project_containers(self, names: list[str] | None = None, all_: bool = True,
                           oneoff: bool | None = None) -> list[ContainerView]:
        """This project's containers (of the given services), in service order then replica number;
        `oneoff` False/True: only the services' own / only `compose run`'s containers."""
        found = []
        for c in self.b.containers():
            labels = c.record.get("labels") or {}
            if labels.get(PROJECT_LABEL) != self.project.name:
                continue
            if names and labels.get(SERVICE_LABEL) not in names:
                continue
            if oneoff is not None and (labels.get(ONEOFF_LABEL) == "True") != oneoff:
                continue
            if all_ or c.running:
                found.append(c)
        order = {n: i for i, n in enumerate(self.project.order())}

        def key(c: ContainerView) -> tuple:
            labels = c.record.get("labels") or {}
            number = labels.get(NUMBER_LABEL, "")
            return (order.get(labels.get(SERVICE_LABEL), 1 << 30), labels.get(ONEOFF_LABEL) == "True",
                    int(number) if number.isdigit() else 0, c.name)
        return sorted(found, key=key)

    def replicas(self, s: Service) -> dict[int, ContainerView]:
        """The service's own containers by replica number (one-off `run` containers are not replicas)."""
        out: dict[int, ContainerView] = {}
        for c in self.project_containers([s.name], oneoff=False):
            number = (c.record.get("labels") or {}).get(NUMBER_LABEL, "1")
            out.setdefault(int(number) if number.isdigit() else 1, c)
        return out

    def existing(self, s: Service) -> ContainerView | None:
        return self.replicas(s).get(1) or next(iter(self.replicas(s).values()), None)

    def scale_of(self, s: Service, scale: dict[str, int] | None = None) -> int:
        """How many containers `up` keeps: --scale, else deploy.replicas, else 1."""
        n = (scale or {}).get(s.name, s.replicas if s.replicas is not None else 1)
        if n > 1 and s.container_name:
            raise ComposeError(f'services.{s.name}: the service is using the custom container name '
                               f'"{s.container_name}"; container names must be unique: remove the custom name '
                               "to scale the service")
        return n

    # -- networks and volumes ------------------------------------------------------------------------
    def ensure_networks(self, services: list[Service]) -> None:
        wanted = {n for s in services for n in s.networks}
        for key in sorted(wanted):
            net = self.project.networks[key]
            try:
                self.b.call("Networks", "Inspect", {"name": net.name})
                continue
            except errdefs.NotFound:
                if net.external:
                    raise ComposeError(f"network {net.name} declared as external, but could not be found") from None
            labels = {**net.labels, PROJECT_LABEL: self.project.name, NETWORK_LABEL: key}
            self.b.call("Networks", "Create", {
                "name": net.name, "driver": net.driver, "labels": labels, "internal": net.internal,
                "ipv6": net.enable_ipv6, "subnet": [c["subnet"] for c in net.ipam if c.get("subnet")],
                "gateway": [c["gateway"] for c in net.ipam if c.get("gateway")],
                "ip_range": [c["ip_range"] for c in net.ipam if c.get("ip_range")],
                "aux_addresses": {k: v for c in net.ipam for k, v in (c.get("aux_addresses") or {}).items()}})
            self.progress("Network", net.name, "Created")

    def ensure_volumes(self, services: list[Service]) -> None:
        wanted = {m.source for s in services for m in s.volumes if m.type == "volume" and m.source}
        for key in sorted(wanted):
            vol = self.project.volumes[key]
            try:
                self.b.call("Volumes", "Inspect", {"name": vol.name})
                continue
            except errdefs.NotFound:
                if vol.external:
                    raise ComposeError(f"external volume \"{vol.name}\" not found") from None
            labels = {**vol.labels, PROJECT_LABEL: self.project.name, VOLUME_LABEL: key}
            self.b.call("Volumes", "Create", {"name": vol.name, "driver": vol.driver, "labels": labels})
            self.progress("Volume", vol.name, "Created")

    # -- containers ----------------------------------------------------------------------------------
    def create_options(self, s: Service, number: int = 1) -> containers.CreateOptions:
        p = self.project
        if s.network_mode.startswith("service:"):  # the other service's (first) container's netns
            network, aliases = f"container:{self.container_name(p.services[s.network_mode[8:]])}", []
        elif s.network_mode:
            network, aliases = s.network_mode, []
        else:
            first = next(iter(s.networks))
            cfg = s.networks[first]
            network, aliases = p.networks[first].name, [s.name, *(cfg.aliases if cfg else [])]
        first_cfg = s.networks.get(next(iter(s.networks), ""), None) if not s.network_mode else None
        volumes, tmpfs = [], []
        for m in s.volumes:
            ro = ":ro" if m.read_only else ""
            if m.type == "tmpfs":
                tmpfs.append(m.target + (f":size={m.tmpfs_size}" if m.tmpfs_size else ""))
            elif m.type == "volume" and not m.source:
                volumes.append(m.target)
            else:
                src = p.volumes[m.source].name if m.type == "volume" else m.source
                if m.type == "bind":
                    os.makedirs(src, exist_ok=True)  # compose's create_host_path
                volumes.append(f"{src}:{m.target}{ro}")
        entrypoint, args = None, list(s.command or [])
        if s.entrypoint is not None:
            entrypoint = s.entrypoint[0] if s.entrypoint else ""
            args = list(s.entrypoint[1:]) + args
        labels = {**s.labels, PROJECT_LABEL: p.name, SERVICE_LABEL: s.name, NUMBER_LABEL: str(number),
                  ONEOFF_LABEL: "False", HASH_LABEL: s.config_hash(), WORKDIR_LABEL: p.working_dir}
        return containers.CreateOptions(
            image=self.image_name(s), args=args, name=self.container_name(s, number), entrypoint=entrypoint,
            env=[f"{k}={v}" for k, v in s.environment.items() if v is not None], workdir=s.working_dir,
            user=s.user, interactive=s.stdin_open, tty=s.tty, cpus=s.limits.cpus,
            memory=str(s.limits.memory) if s.limits.memory else "", pids_limit=s.limits.pids,
            read_only=s.read_only, cap_add=list(s.cap_add), cap_drop=list(s.cap_drop), privileged=s.privileged,
            init=s.init, hostname=s.hostname, labels=[f"{k}={v}" for k, v in labels.items()], detach=True,
            restart=s.restart or "no", publish=[pt.publish_flag() for pt in s.ports], expose=list(s.expose),
            network=network, network_aliases=aliases, dns=list(s.dns), add_hosts=list(s.extra_hosts),
            ip=first_cfg.ipv4_address if first_cfg else "", ip6=first_cfg.ipv6_address if first_cfg else "",
            volumes=volumes, tmpfs=tmpfs, extra_endpoints=self.extra_endpoints(s),
            healthcheck=to_docker(s.healthcheck))

    def create(self, s: Service, number: int = 1, options: containers.CreateOptions | None = None) -> ContainerView:
        try:
            c = containers.create(self.b, options or self.create_options(s, number))
        except CLIError as exc:
            raise ComposeError(f"service {s.name}: {exc.message}") from None
        if s.stop_signal:  # pyctr's create has no --stop-signal: docker keeps it in Config.StopSignal
            docker = dict(c.docker)
            docker["Config"] = {**(docker.get("Config") or {}), "StopSignal": s.stop_signal}
            self.b.call("Containers", "Update", {"container": {"id": c.id, "extensions": {DOCKER_EXT: docker}},
                                                 "update_mask": [f"extensions.{DOCKER_EXT}"]})
        self.progress("Container", c.name, "Created")
        return c

    def extra_endpoints(self, s: Service) -> dict:
        """EndpointsConfig entries of the service's networks after its first: the daemon joins them at
        every start (restart policies and daemon restarts keep them)."""
        out = {}
        for key in list(s.networks)[1:] if not s.network_mode else []:
            cfg = s.networks[key]
            ipam_cfg = {k: v for k, v in (("IPv4Address", cfg.ipv4_address if cfg else ""),
                                          ("IPv6Address", cfg.ipv6_address if cfg else "")) if v}
            out[self.project.networks[key].name] = {"Aliases": [s.name, *(cfg.aliases if cfg else [])],
                                                    **({"IPAMConfig": ipam_cfg} if ipam_cfg else {})}
        return out

    def start_container(self, s: Service, number: int = 1, name: str = "") -> None:
        name = name or self.container_name(s, number)
        c = self.b.container(name)
        if c.running:
            return
        try:
            containers.create_task(self.b, c)
            containers.start_task(self.b, c.id)
        except CLIError as exc:
            raise ComposeError(f"service {s.name}: {exc.message}") from None
        known = ((c.docker.get("NetworkingConfig") or {}).get("EndpointsConfig") or {})
        for net, ep in self.extra_endpoints(s).items():  # containers made before they were recorded
            if net not in known:
                self.b.call("Networks", "Connect", {
                    "container_id": c.id, "network": net, "name": name, "aliases": ep["Aliases"],
                    "ipv4_address": (ep.get("IPAMConfig") or {}).get("IPv4Address", ""),
                    "ipv6_address": (ep.get("IPAMConfig") or {}).get("IPv6Address", "")})
        self.progress("Container", name, "Started")

    def stop_timeout(self, s: Service | None) -> int:
        if s is None or s.stop_grace_period is None:
            return DEFAULT_STOP_TIMEOUT
        return int(s.stop_grace_period)

    def stop_container(self, c: ContainerView) -> None:
        service = self.project.services.get((c.record.get("labels") or {}).get(SERVICE_LABEL, ""))
        if c.running:
            with quiet():
                containers.stop(self.b, [c.id], self.stop_timeout(service))
            self.progress("Container", c.name, "Stopped")

    def remove_container(self, c: ContainerView) -> list[str]:
        """Stop and remove; returns the volumes it used (for `down -v`)."""
        try:
            used = self.b.call("Volumes", "UsedBy", {"container_id": c.id}).get("volumes", [])
        except errdefs.Error:
            used = []
        self.stop_container(c)
        containers.remove(self.b, self.b.container(c.id), True)
        self.progress("Container", c.name, "Removed")
        return used

    def wait_dependencies(self, s: Service) -> None:
        for dep, d in sorted(s.depends_on.items()):
            ds = self.project.services[dep]
            name = self.container_name(ds)
            if d.condition == "service_healthy":
                self.progress("Container", name, "Waiting")
                wait_healthy(self.b, name)
                self.progress("Container", name, "Healthy")
            elif d.condition == "service_completed_successfully":
                self.progress("Container", name, "Waiting")
                wait_completed(self.b, name)
                self.progress("Container", name, "Exited")

    # -- verbs ---------------------------------------------------------------------------------------
    def up(self, names: list[str] | None = None, build: bool = False, no_start: bool = False,
           force_recreate: bool = False, scale: dict[str, int] | None = None, converge: bool = True) -> list[str]:
        """Create what is missing or changed and start it in dependency order; the container names.
        `scale` ({service: N}, --scale) over deploy.replicas: replicas 1..N, the higher numbers removed.
        `converge=False` (a one-off's dependencies, compose's ConvergenceStrategy.never): the replicas there
        are kept as they are, whatever their number or config, and started; a service with none comes up as `up` makes it."""
        order = self.project.order(names or None)
        services = [self.project.services[n] for n in order]
        if build:
            self.build([s.name for s in services if s.build])
        else:
            missing = [s.name for s in services if s.build and self.b.find_image(self.image_name(s)) is None]
            if missing:
                self.build(missing)
        self.ensure_networks(services)
        self.ensure_volumes(services)
        started = []
        for s in services:
            have = self.replicas(s)
            if not converge and have:  # kept as they are: no replica removed, recreated nor added
                for number, c in sorted(have.items()):
                    if c.running:
                        self.progress("Container", c.name, "Running")
                    started.append(c.name)
                if not no_start:
                    self.wait_dependencies(s)
                    for number, c in sorted(have.items()):
                        self.start_container(s, number, c.name)
                continue
            want = self.scale_of(s, scale)
            for number in sorted((n for n in have if n > want), reverse=True):  # scaling down: highest first
                self.remove_container(have.pop(number))
            for number in range(1, want + 1):
                c = have.get(number)
                if c is not None and (force_recreate or
                                      (c.record.get("labels") or {}).get(HASH_LABEL) != s.config_hash()):
                    self.remove_container(c)
                    c = None
                if c is None:
                    self.create(s, number)
                elif c.running:
                    self.progress("Container", self.container_name(s, number), "Running")
                started.append(self.container_name(s, number))
            if want and not no_start:  # created even when a dependency then fails, as compose does
                self.wait_dependencies(s)
                for number in range(1, want + 1):
                    self.start_container(s, number)
        return started

    def down(self, volumes: bool = False, rmi: str = "") -> None:
        used: set[str] = set()
        for c in reversed(self.project_containers()):
            used.update(self.remove_container(c))
        networks = {n.name for n in self.project.networks.values() if not n.external}
        for doc in self.b.call("Networks", "List").get("networks", []):
            if (doc.get("Labels") or {}).get(PROJECT_LABEL) == self.project.name:
                networks.add(doc["Name"])
        for name in sorted(networks):
            try:
                self.b.call("Networks", "Remove", {"name": name})
                self.progress("Network", name, "Removed")
            except errdefs.NotFound:
                pass
        if volumes:
            names = {v.name for v in self.project.volumes.values() if not v.external}
            for doc in self.b.call("Volumes", "List").get("volumes", []):
                labels = doc.get("Labels") or {}
                if labels.get(PROJECT_LABEL) == self.project.name:
                    names.add(doc["Name"])
                elif doc["Name"] in used and len(doc["Name"]) == 64:  # the containers' anonymous volumes
                    names.add(doc["Name"])
            for name in sorted(names):
                try:
                    self.b.call("Volumes", "Remove", {"name": name})
                    self.progress("Volume", name, "Removed")
                except errdefs.NotFound:
                    pass
        if rmi:
            for s in self.project.services.values():
                if rmi == "all" or (s.build and not s.image):
                    if self.b.find_image(self.image_name(s)) is not None:
                        with quiet():
                            images.rmi(self.b, [self.image_name(s)], True)
                        self.progress("Image", self.image_name(s), "Removed")

    def start(self, names: list[str] | None = None) -> None:
        for n in self.project.order(names or None):
            s = self.project.services[n]
            have = self.replicas(s)
            if not have:
                continue
            self.wait_dependencies(s)
            for number, c in sorted(have.items()):
                self.start_container(s, number, c.name)

    def stop(self, names: list[str] | None = None) -> None:
        for c in reversed(self.project_containers(names or None)):
            self.stop_container(c)

    def restart(self, names: list[str] | None = None) -> None:
        self.stop(names)
        self.start(names)

    def ps(self, all_: bool = False, quiet_: bool = False, services_only: bool = False, fmt: str = "") -> None:
        """`fmt` as docker compose v2's --format: `table` (the default), `table TEMPLATE`, `json` (an object
        a line) or a Go template per container over the row `ps_rows` makes."""
        views = self.project_containers(all_=all_)
        if fmt and fmt != "table" and not services_only and not quiet_:
            from ..ctr.formatting import print_rows

            print_rows(fmt, self.ps_rows(views), COMPOSE_PS_HEADERS, self.out.write)
            return
        if services_only:
            for c in views:
                print((c.record.get("labels") or {}).get(SERVICE_LABEL, ""), file=self.out)
            return
        if quiet_:
            for c in views:
                print(c.id, file=self.out)
            return
        now = time.time()
        rows = [["NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS", "PORTS"]]
        for c in views:
            cmd = c.command
            cmd = f'"{cmd[:19]}…"' if len(cmd) > 20 else f'"{cmd}"'
            rows.append([c.name, c.image_name, cmd, (c.record.get("labels") or {}).get(SERVICE_LABEL, ""),
                         ago(c.created, now), c.status_text(now).strip(), containers._ports(c)])
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            print("   ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip(), file=self.out)

    def ps_rows(self, views: list[ContainerView]) -> list[dict]:
        """docker ps's row of each container plus compose v2's Name, Service, Project, Health, ExitCode and
        Publishers (keys sorted, as `{{json .}}` prints them)."""
        rows = []
        for c, row in zip(views, containers.ps_rows(views, no_trunc=False)):
            labels = c.record.get("labels") or {}
            publishers = []
            for key, entries in sorted(((c.docker.get("HostConfig") or {}).get("PortBindings") or {}).items()):
                port, _, proto = key.partition("/")
                for e in entries or []:
                    publishers.append({"URL": e.get("HostIp") or "0.0.0.0", "TargetPort": int(port),
                                       "PublishedPort": int(e.get("HostPort") or 0), "Protocol": proto or "tcp"})
            health = c.health or {}
            row.update(ID=c.id, Name=c.name, Service=labels.get(SERVICE_LABEL, ""), Project=self.project.name,
                       Health=health.get("Status", "") if isinstance(health, dict) else "",
                       ExitCode=0 if c.running else c.exit_code, Publishers=publishers)
            rows.append(dict(sorted(row.items())))
        return rows

    def logs(self, names: list[str] | None = None, follow: bool = False, tail: str = "all",
             timestamps: bool = False, no_prefix: bool = False, address: str = "") -> None:
        """Each container's output, lines prefixed `NAME  | ` as compose does; -f follows until all exit."""
        if tail not in ("all", "") and not tail.isdigit():
            raise ComposeError(f'invalid value "{tail}" for flag -n/--tail: a number or "all"')
        for n in names or []:
            self.project.service(n)
        views = self.project_containers(names or None)
        width = max((len(c.name) for c in views), default=0)
        lock = threading.Lock()

        def emit(c: ContainerView, client: Client) -> None:
            prefix = "" if no_prefix else f"{c.name.ljust(width)}  | "
            params = {"container_id": c.id, "follow": follow, "tail": None if tail in ("all", "") else int(tail)}
            pending = ""
            for entry in client.stream("Tasks", "Logs", params):
                text = pending + entry.get("log", "")
                lines = text.split("\n")
                pending = lines.pop()
                with lock:
                    for line in lines:
                        stamp = f"{entry.get('time', '')} " if timestamps else ""
                        self.out.write(f"{prefix}{stamp}{line}\n")
                    self.out.flush()
            if pending:
                with lock:
                    self.out.write(f"{prefix}{pending}\n")
                    self.out.flush()

        if not follow:
            for c in views:
                emit(c, self.b.client)
            return
        threads = []
        clients = []
        for c in views:  # one connection per follower: each stream holds its own call open
            client = Client(address or self.b.client.address, namespace=self.b.namespace, timeout=None)
            clients.append(client)
            t = threading.Thread(target=self._follow, args=(emit, c, client), daemon=True)
            t.start()
            threads.append(t)
        try:
            for t in threads:
                while t.is_alive():
                    t.join(0.2)
        finally:
            for client in clients:
                client.close()

    @staticmethod
    def _follow(emit, c: ContainerView, client: Client) -> None:
        try:
            emit(c, client)
        except (errdefs.Error, OSError):
            pass

    def pull(self, names: list[str] | None = None) -> None:
        for s in self.services(names):
            if not s.image:
                continue
            try:
                images.pull(self.b, s.image, quiet=True, out=io.StringIO())
            except CLIError as exc:
                if s.build:  # compose: a service that can be built may lack a pullable image
                    continue
                raise ComposeError(f"service {s.name}: {exc.message}") from None
            self.progress("Image", s.image, "Pulled")

    def build(self, names: list[str] | None = None) -> None:
        """pybuild (a subprocess) for each service with a build section, then loaded as `pyctr load`."""
        pybuild = self.pybuild()
        for s in self.services(names):
            if not s.build:
                continue
            tag = self.image_name(s)
            with tempfile.TemporaryDirectory(prefix="pyctr-compose-") as tmp:
                dest = os.path.join(tmp, "image.tar")
                cmd = [pybuild, "build", "-t", tag, "-f", os.path.join(s.build.context, s.build.dockerfile),
                       "-o", f"type=docker,dest={dest}", "--progress", "plain"]
                for k, v in s.build.args.items():
                    cmd += ["--build-arg", f"{k}={v}"]
                if s.build.target:
                    cmd += ["--target", s.build.target]
                cmd.append(s.build.context)
                self.progress("Image", tag, "Building")
                proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                if proc.returncode != 0:
                    tail = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
                    raise ComposeError(f"service {s.name}: build failed: {tail}")
                with quiet():
                    images.load(self.b, dest, quiet=True)
            self.progress("Image", tag, "Built")

    @staticmethod
    def pybuild() -> str:
        beside = os.path.join(os.path.dirname(sys.executable), "pybuild")
        found = beside if os.path.exists(beside) else shutil.which("pybuild")
        if not found:
            raise ComposeError("pybuild not found: install it (make install) to build services")
        return found
