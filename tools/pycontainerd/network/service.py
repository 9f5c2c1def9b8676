"""The daemon side: "Networks" and "Volumes" services, and the task hooks that network containers.

Wiring (daemon.load_services): `from pycontainerd.network.service import register; register(daemon)`
after the Tasks service is registered. Then:
  * every task whose container carries pyctr's docker document (extension "pyctr/docker") is
    networked before `runc create` (TaskManager.create_hooks) and released when the task goes
    (release_hooks); plain containerd containers (ctr run) are left alone, as containerd does;
  * its -v/--mount/--tmpfs and the image's VOLUMEs become spec mounts (seeded on first use);
  * at start, endpoints whose task did not survive a daemon restart are released (cleanup_stale);
  * a deleted container's volume references are dropped (/containers/delete).
"""

from __future__ import annotations

import asyncio
import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from pycontainerd import errdefs
from pycontainerd.volumes import VolumeStore, docker_mounts, mounts_from_host_config

from . import cni
from . import container as netcontainer
from . import netns
from .manager import NetworkManager

log = logging.getLogger("pycontainerd.network")

# prefixes a networking error of a task create, so pyctr shows it as docker's daemon does (not as a
# runtime failure); ctr/containers.start_error strips it
DAEMON_ERROR_MARK = "network: "
DOCKER_EXT = "pyctr/docker"   # pyctr's docker document in a container record (ctr/backend.py)
NAME_LABEL = "nerdctl/name"


class ContainerHooks:
    """create/release hooks for TaskManager; also usable without a daemon (tests)."""

    def __init__(self, networks: NetworkManager, volumes: VolumeStore, bundle_of=None, running=None) -> None:
        self.networks = networks
        self.volumes = volumes
        self.bundle_of = bundle_of  # (namespace, id) -> bundle dir, for a relative root.path
        self.running = running      # (namespace, id) -> bool: is its task up (--network container:ID)

    def on_create(self, namespace: str, cid: str, spec: dict, container: dict) -> Callable[[], None] | None:
        """Edits `spec`; returns the CNI ADD to run while the runtime creates the container (tasks.py)."""
        docker = (container.get("extensions") or {}).get(DOCKER_EXT)
        if not docker:
            return None
        name = (container.get("labels") or {}).get(NAME_LABEL, "")
        running = None if self.running is None else (lambda other: self.running(namespace, other))
        with _daemon_errors():
            finish = netcontainer.prepare_deferred(self.networks, cid, spec,
                                                   netcontainer.NetworkRequest.from_docker(docker, name), running)
        hc = docker.get("HostConfig") or {}
        image_volumes = list((docker.get("Config") or {}).get("Volumes") or {})
        specs = mounts_from_host_config(hc)
        if specs or image_volumes:
            root = (spec.get("root") or {}).get("path", "")
            if root and not os.path.isabs(root) and self.bundle_of is not None:
                root = str(Path(self.bundle_of(namespace, cid)) / root)
            oci = self.volumes.resolve(specs, cid, image_volumes, rootfs=root or None)
            spec["mounts"] = (spec.get("mounts") or []) + oci
            self.volumes.save_mounts(cid, docker_mounts(self.volumes, specs, oci))
        if finish is None:
            return None

        def attach() -> None:
            with _daemon_errors():
                finish()

        return attach

    def on_release(self, namespace: str, cid: str) -> None:
        netcontainer.release(self.networks, cid)


@contextmanager
def _daemon_errors() -> Iterator[None]:
    """docker's own daemon errors (addresses, ports, joins) marked for pyctr; a plugin's as they are."""
    try:
        yield
    except cni.CNIError:
        raise
    except errdefs.Error as exc:
        raise type(exc)(DAEMON_ERROR_MARK + str(exc)) from None


def _filters(params: dict) -> dict:
    return params.get("filters") or {}


class NetworksService:
    def __init__(self, daemon, manager: NetworkManager) -> None:
        self.daemon = daemon
        self.manager = manager

    def Create(self, ctx, params):
        doc = self.manager.create(params.get("name", ""), subnet=params.get("subnet") or None,
                                  gateway=params.get("gateway") or None, driver=params.get("driver") or "bridge",
                                  internal=bool(params.get("internal")), attachable=bool(params.get("attachable")),
                                  labels=params.get("labels") or None, options=params.get("options") or None,
                                  ip_range=params.get("ip_range") or None, ipv6=bool(params.get("ipv6")),
                                  aux_addresses=params.get("aux_addresses") or None)
        return {"network": doc}

    def List(self, ctx, params):
        return {"networks": self.manager.list()}

    def Inspect(self, ctx, params):
        return {"network": self.manager.inspect(params.get("name", ""))}

    def Remove(self, ctx, params):
        self.manager.remove(params.get("name", ""))
        return {}

    def Prune(self, ctx, params):
        return {"removed": self.manager.prune()}

    def Connect(self, ctx, params):
        """`network connect NET CONTAINER`: the container must be running (its netns exists)."""
        cid = params.get("container_id", "")
        path = netns.path_for(cid, self.manager.netns_prefix)
        if not os.path.exists(path):
            raise errdefs.FailedPrecondition(f"container {cid} is not running")
        att = self.manager.attach(cid, params.get("network", ""), path, container_name=params.get("name", ""),
                                  aliases=params.get("aliases") or [], ipv4_address=params.get("ipv4_address") or "",
                                  ipv6_address=params.get("ipv6_address") or "")
        return {"ip": att.ip, "endpoint_id": att.endpoint_id}

    def Disconnect(self, ctx, params):
        self.manager.detach(params.get("container_id", ""), params.get("network", ""))
        return {}

    def Settings(self, ctx, params):
        """docker inspect's NetworkSettings of one container (Ports for `docker port`)."""
        return {"settings": netcontainer.network_settings(self.manager, params.get("container_id", ""))}


class VolumesService:
    def __init__(self, daemon, store: VolumeStore) -> None:
        self.daemon = daemon
        self.store = store

    def Create(self, ctx, params):
        return {"volume": self.store.create(params.get("name") or None, driver=params.get("driver") or "local",
                                            labels=params.get("labels") or None,
                                            options=params.get("options") or None)}

    def List(self, ctx, params):
        f = _filters(params)
        dangling = f.get("dangling")
        return {"volumes": self.store.ls(dangling=None if dangling is None else str(dangling).lower() in ("1", "true"),
                                         label=f.get("label"))}

    def Inspect(self, ctx, params):
        return {"volume": self.store.inspect(params.get("name", ""))}

    def Remove(self, ctx, params):
        self.store.rm(params.get("name", ""), force=bool(params.get("force")))
        return {}

    def Prune(self, ctx, params):
        removed, reclaimed = self.store.prune(all=bool(params.get("all")))
        return {"removed": removed, "reclaimed": reclaimed}

    def Users(self, ctx, params):
        return {"containers": self.store.users(params.get("name", ""))}

    def UsedBy(self, ctx, params):
        """{container_id} → {"volumes": names}: for `rm -v` to remove its anonymous ones afterwards."""
        return {"volumes": self.store.used_by(params.get("container_id", ""))}

    def Mounts(self, ctx, params):
        """{container_id} → {"mounts": inspect's Mounts list as of its last start}."""
        return {"mounts": self.store.mounts(params.get("container_id", ""))}

    def Release(self, ctx, params):
        """{container_id, remove_anonymous} → {"volumes"}: what container delete does, on demand."""
        return {"volumes": self.store.release_all(params.get("container_id", ""),
                                                  bool(params.get("remove_anonymous")))}


class _Lifecycle:
    """Start/stop of the pair: hooks in, stale endpoints out, volume refs of deleted containers dropped."""

    def __init__(self, daemon, hooks: ContainerHooks) -> None:
        self.daemon = daemon
        self.hooks = hooks
        self._watcher: asyncio.Task | None = None

    async def start(self) -> None:
        tasks = getattr(self.daemon, "tasks", None)
        if tasks is None:
            log.warning("no Tasks service: containers are not networked")
            return
        tasks.create_hooks.append(self.hooks.on_create)
        tasks.release_hooks.append(self.hooks.on_release)
        live = {cid for (_ns, cid) in tasks.tasks}  # recovered by Tasks' start, which ran before ours
        released = await asyncio.to_thread(self.hooks.networks.cleanup_stale, live)
        if released:
            log.info("released the networking of %d containers gone while the daemon was down", len(released))
        self._watcher = asyncio.ensure_future(self._drop_volume_refs())

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()

    async def _drop_volume_refs(self) -> None:
        async for env in self.daemon.events.stream(['topic=="/containers/delete"']):
            cid = (env.get("event") or {}).get("id", "")
            if cid and "/" not in cid:
                await asyncio.to_thread(self.hooks.volumes.release_all, cid)


def register(daemon, **manager_options) -> ContainerHooks:
    """manager_options: NetworkManager's (default_bridge, default_subnet, pool, netns_prefix, …);
    daemon flags, when the daemon's Config has them (docker's --bridge/--bip, a --cni-path), fill
    the ones not given."""
    cfg = getattr(daemon, "config", None)
    for attr, key in (("bridge", "default_bridge"), ("bip", "default_subnet"), ("pool", "pool"),
                      ("cni_path", "cni_path")):
        value = getattr(cfg, attr, None)
        if value:
            manager_options.setdefault(key, value)
    networks = NetworkManager(daemon.root, daemon.state, **manager_options)
    volumes = VolumeStore(daemon.root)
    daemon.networks, daemon.volumes = networks, volumes
    tasks = getattr(daemon, "tasks", None)
    def running(namespace: str, cid: str) -> bool:
        task = tasks.tasks.get((namespace, cid)) if tasks is not None else None
        return task is not None and task.exit is None

    hooks = ContainerHooks(networks, volumes, tasks.bundle if tasks is not None else None,
                           running if tasks is not None else None)
    daemon.server.register("Networks", NetworksService(daemon, networks))
    daemon.server.register("Volumes", VolumesService(daemon, volumes))
    daemon.server.register("NetworkHooks", _Lifecycle(daemon, hooks))  # no public methods: start/stop only
    return hooks
