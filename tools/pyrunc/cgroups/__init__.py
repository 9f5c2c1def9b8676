"""Container cgroups as runc 1.1's cgroupfs driver makes them: v1 (legacy and hybrid hosts) or v2 (unified).

Use: ``m = new_manager(spec_linux.get("cgroupsPath"), container_id, spec_linux.get("resources"),
linux_devices=spec_linux.get("devices"))``, then ``m.apply(pid)`` (creates the cgroups, moves pid in, writes the
resources and the device allow list), later ``m.set(resources)`` for `update`, ``m.freeze()/thaw()``,
``m.stats()``, ``m.destroy()``.  ``m.to_state()`` is JSON for state.json; ``load(state)`` reopens it.
"""

from __future__ import annotations

from pyrunc.errors import ConfigError

from . import fs


def inner_path(cgroups_path: str | None, container_id: str, systemd: bool = False) -> str:
    """The cgroup name runc uses: cgroupsPath cleaned (absolute, or relative to ours), or the container id.

    Without --systemd-cgroup runc 1.1 takes a "slice:prefix:name" cgroupsPath as a plain relative name (checked:
    it makes /sys/fs/cgroup/<ctrl>/system.slice:runc:abc), so that is what happens here too; the systemd driver
    itself (systemd=True) is refused.
    """
    if systemd:
        raise ConfigError("systemd cgroup driver is not supported yet")
    return fs.clean_path(cgroups_path or "") or container_id


def new_manager(cgroups_path: str | None, container_id: str, resources: dict | None = None,
                linux_devices: list[dict] | None = None, systemd: bool = False):
    """A V1Manager or V2Manager for the host's cgroup mode (hybrid hosts use v1, plus the cgroup2 directory)."""
    inner = inner_path(cgroups_path, container_id, systemd)
    mounts = fs.mounts()
    own = fs.own_cgroups()
    if fs.mode(mounts) == "unified":
        from .v2 import V2Manager, resolve_path

        return V2Manager(resolve_path(inner, mounts, own), resources, linux_devices)
    from .v1 import V1Manager, resolve_paths

    return V1Manager(resolve_paths(inner, mounts, own), resources, linux_devices)


def warnings(resources: dict | None) -> list[str]:
    """The warnings runc 1.1.5 logs for these resources (the settings themselves are ignored)."""
    memory = (resources or {}).get("memory") or {}
    if memory.get("kernel") or memory.get("kernelTCP"):
        return ["Kernel memory settings are ignored and will be removed"]
    return []


# What `runc update` takes from its resources (update.go): everything else in the file is ignored.
UPDATABLE = {
    "blockIO": ("weight", "throttleReadBpsDevice", "throttleWriteBpsDevice", "throttleReadIOPSDevice",
                "throttleWriteIOPSDevice"),
    "cpu": ("shares", "quota", "period", "realtimeRuntime", "realtimePeriod", "cpus", "mems"),
    "memory": ("limit", "reservation", "swap", "kernel", "kernelTCP"),
    "pids": ("limit",),
}


def update_resources(resources: dict) -> dict:
    """The part of an `update` request runc 1.1 applies (no devices, hugepages, network...; unified as given)."""
    out: dict = {}
    for section, keys in UPDATABLE.items():
        given = resources.get(section) or {}
        kept = {k: given[k] for k in keys if given.get(k) is not None}
        if kept:
            out[section] = kept
    if resources.get("unified"):
        out["unified"] = dict(resources["unified"])
    return out


def load(state: dict):
    """The manager saved by ``to_state()``."""
    if state.get("version") == 2:
        from .v2 import V2Manager

        return V2Manager(state["path"], None, state.get("linux_devices"))
    from .v1 import V1Manager

    return V1Manager(dict(state["paths"]), None, state.get("linux_devices"))
