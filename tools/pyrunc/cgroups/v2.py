"""cgroup v2 manager (runc 1.1's fs2 driver): one directory in the unified hierarchy."""

from __future__ import annotations

import os
import time

from pyrunc.errors import ConfigError, RuntimeFailure

from . import devices as devrules
from . import fs
from .convert import blkio_weight_to_io_weight, cpu_max, cpu_shares_to_weight, memory_swap_to_v2, num_to_str
from .stats import hugetlb_entry, io_v2, omit_empty

FROZEN, THAWED, UNDEFINED = "FROZEN", "THAWED", ""
MAX_UINT64 = (1 << 64) - 1


def resolve_path(inner: str, all_mounts: list[fs.Mount], own: dict[str, str]) -> str:
    mount = next((m for m in all_mounts if m.version == 2), None)
    if mount is None:
        raise RuntimeFailure("cgroup: no cgroup2 hierarchy is mounted")
    return fs.join(mount, own.get(fs.UNIFIED, "/"), inner)


def _mountpoint_of(path: str) -> str:
    for m in sorted(fs.mounts(), key=lambda m: len(m.mountpoint), reverse=True):
        if m.version == 2 and (path == m.mountpoint or path.startswith(m.mountpoint.rstrip("/") + "/")):
            return m.mountpoint
    raise RuntimeFailure(f"cgroup: {path} is not in a cgroup2 hierarchy")


class V2Manager:
    version = 2

    def __init__(self, path: str, resources: dict | None = None, linux_devices: list[dict] | None = None) -> None:
        self.path = path
        self.resources = resources
        self.linux_devices = linux_devices

    @property
    def paths(self) -> dict[str, str]:
        return {fs.UNIFIED: self.path}

    # -- life cycle -------------------------------------------------------------------------------------------
    def create(self) -> None:
        """mkdir -p, enabling in every ancestor the controllers the hierarchy offers (runc's CreateCgroupPath)."""
        mount = _mountpoint_of(self.path)
        offered = fs.read_or(mount, "cgroup.controllers").split()
        enable = " ".join("+" + c for c in offered)
        current = mount
        parts = [p for p in os.path.relpath(self.path, mount).split("/") if p not in (".", "")]
        for i, part in enumerate(parts):
            if enable:
                try:
                    fs.write(current, "cgroup.subtree_control", enable)
                except RuntimeFailure:
                    for one in enable.split():  # some may be refused (busy, threaded): enable what we can
                        try:
                            fs.write(current, "cgroup.subtree_control", one)
                        except RuntimeFailure:
                            pass
            current = os.path.join(current, part)
            try:
                os.mkdir(current, 0o755)
            except FileExistsError:
                pass
            except OSError as e:
                raise RuntimeFailure(f"cgroup: mkdir {current}: {os.strerror(e.errno).lower()}") from None

    def apply(self, pid: int) -> None:
        """Create the cgroup, move `pid` in, then write the resources given to new_manager (if any)."""
        self.create()
        fs.write(self.path, "cgroup.procs", pid)
        self.configure()

    def configure(self) -> None:
        """Write the resources given to new_manager (if any): limits and the device rules."""
        if self.resources is not None:
            self.set(self.resources, initial=True)

    def clone_into(self) -> str | None:
        """The directory a child can be born in (clone3 CLONE_INTO_CGROUP)."""
        return self.path

    def self_join_dirs(self) -> list[str]:
        return []  # no v1 hierarchies

    def destroy(self) -> None:
        fs.remove_paths(self.paths)

    def to_state(self) -> dict:
        return {"version": 2, "path": self.path, "linux_devices": self.linux_devices}

    def exists(self) -> bool:
        return os.path.isdir(self.path)

    def pids(self) -> list[int]:
        return fs.procs(self.path) if os.path.isdir(self.path) else []

    def controllers(self) -> set[str]:
        return set(fs.read_or(self.path, "cgroup.controllers").split())

    # -- resources --------------------------------------------------------------------------------------------
    def set(self, resources: dict | None, initial: bool = False) -> None:
        """linux.resources onto v2 files in runc's order: pids, memory, io, cpu, devices, cpuset, hugetlb, rdma,
        unified. v1-only knobs (swappiness, kernel memory, OOM killer, network) are ignored, as in runc."""
        r = resources or {}
        p = self.path
        pids = r.get("pids") or {}
        if num_to_str(pids.get("limit")):
            fs.write(p, "pids.max", num_to_str(pids["limit"]))
        self._set_memory(r.get("memory") or {})
        self._set_io(r.get("blockIO") or {})
        cpu = r.get("cpu") or {}
        self._set_cpu(cpu)
        if initial or "devices" in r:
            self._set_devices(r.get("devices"))
        if cpu.get("cpus"):
            fs.write(p, "cpuset.cpus", cpu["cpus"])
        if cpu.get("mems"):
            fs.write(p, "cpuset.mems", cpu["mems"])
        for h in r.get("hugepageLimits") or ():
            fs.write(p, f"hugetlb.{h['pageSize']}.max", h["limit"])
        for key, value in (r.get("rdma") or {}).items():
            parts = [f"{k}={value[v]}" for k, v in (("hca_handle", "hcaHandles"), ("hca_object", "hcaObjects"))
                     if value.get(v) is not None]
            fs.write(p, "rdma.max", f"{key} {' '.join(parts)}")
        self._set_unified(r.get("unified") or {})

    def _set_memory(self, m: dict) -> None:
        limit, swap = m.get("limit") or 0, m.get("swap") or 0
        if not (limit or swap or m.get("reservation")):
            return
        v2swap = memory_swap_to_v2(swap, limit)
        text = num_to_str(v2swap)
        if text == "" and v2swap == 0 and swap > 0:
            text = "0"  # memory and memory+swap equal: no swap at all
        if text:
            try:
                fs.write(self.path, "memory.swap.max", text)
            except RuntimeFailure as e:
                # Without swap accounting the file is missing: only "max" and "0" may then be dropped silently.
                if not ("no such file" in str(e) and text in ("max", "0")):
                    raise
        if num_to_str(limit):
            fs.write(self.path, "memory.max", num_to_str(limit))
        if num_to_str(m.get("reservation")):
            fs.write(self.path, "memory.low", num_to_str(m["reservation"]))

    def _set_io(self, b: dict) -> None:
        p = self.path
        if b.get("weight"):
            if os.path.exists(os.path.join(p, "io.bfq.weight")):
                fs.write(p, "io.bfq.weight", b["weight"])
            else:
                fs.write(p, "io.weight", blkio_weight_to_io_weight(b["weight"]))
        if os.path.exists(os.path.join(p, "io.bfq.weight_device")):
            for wd in b.get("weightDevice") or ():
                if wd.get("weight"):
                    fs.write(p, "io.bfq.weight_device", f"{wd['major']}:{wd['minor']} {wd['weight']}")
        for key, name in (("throttleReadBpsDevice", "rbps"), ("throttleWriteBpsDevice", "wbps"),
                          ("throttleReadIOPSDevice", "riops"), ("throttleWriteIOPSDevice", "wiops")):
            for td in b.get(key) or ():
                fs.write(p, "io.max", f"{td['major']}:{td['minor']} {name}={td['rate']}")

    def _set_cpu(self, c: dict) -> None:
        if c.get("realtimeRuntime") or c.get("realtimePeriod"):
            raise ConfigError("linux.resources.cpu: realtime settings are not supported on cgroup v2")
        if c.get("shares"):
            fs.write(self.path, "cpu.weight", cpu_shares_to_weight(c["shares"]))
        text = cpu_max(c.get("quota"), c.get("period"))
        if text:
            fs.write(self.path, "cpu.max", text)

    def _set_devices(self, rules: list[dict] | None) -> None:
        wanted = devrules.from_spec(rules, self.linux_devices)
        from . import devices_bpf

        devices_bpf.apply(self.path, wanted)

    def _set_unified(self, unified: dict) -> None:
        available = self.controllers()
        for key, value in unified.items():
            if "/" in key:
                raise ConfigError(f"unified resource {key!r} must be a file name (no slashes)")
            try:
                fs.write(self.path, key, value)
            except RuntimeFailure as e:
                ctrl, dot, _ = key.partition(".")
                if not dot:
                    raise ConfigError(f"unified resource {key!r} must be in the form CONTROLLER.PARAMETER") \
                        from None
                if ctrl not in available and ctrl != "cgroup":
                    raise ConfigError(f"unified resource {key!r} can't be set: controller {ctrl!r} not available") \
                        from None
                raise RuntimeFailure(f"unable to set unified resource {key!r}: {e}") from None

    # -- freezer ----------------------------------------------------------------------------------------------
    def _set_freeze(self, value: str) -> None:
        if not os.path.exists(os.path.join(self.path, "cgroup.freeze")):
            if value == "1":
                raise RuntimeFailure("freezer not supported: cgroup.freeze is missing")
            return
        fs.write(self.path, "cgroup.freeze", value)

    def freeze(self) -> None:
        """Write 1 to cgroup.freeze, then poll cgroup.events until "frozen 1" (runc: every 10ms, 1000 times)."""
        self._set_freeze("1")
        state = self.freezer_state()
        if state != FROZEN:
            raise RuntimeFailure(f'expected "cgroup.freeze" to be in state "FROZEN" but was in "{state}"')

    def thaw(self) -> None:
        self._set_freeze("0")

    def freezer_state(self) -> str:
        text = fs.read_or(self.path, "cgroup.freeze")
        if text == "":
            return UNDEFINED
        if text == "0\n":
            return THAWED
        if text != "1\n":
            raise RuntimeFailure(f'unknown "cgroup.freeze" state: {text!r}')
        for _ in range(1000):
            if "frozen 1" in fs.read(self.path, "cgroup.events").splitlines():
                return FROZEN
            time.sleep(0.01)
        raise RuntimeFailure("timeout of 10s reached waiting for the cgroup to freeze")

    # -- stats ------------------------------------------------------------------------------------------------
    def stats(self) -> dict:
        """The `runc events --stats` "data" object from v2 files, in v1's terms as runc reports them."""
        p = self.path
        cs = fs.read_keyed(p, "cpu.stat")
        usage = omit_empty({"total": cs.get("usage_usec", 0) * 1000}, keep=())
        usage["kernel"] = cs.get("system_usec", 0) * 1000
        usage["user"] = cs.get("user_usec", 0) * 1000
        out: dict = {"cpu": {"usage": usage, "throttling": omit_empty({
            "periods": cs.get("nr_periods", 0), "throttledPeriods": cs.get("nr_throttled", 0),
            "throttledTime": cs.get("throttled_usec", 0) * 1000})}}
        out["cpuset"] = {k: 0 for k in ("cpu_exclusive", "mem_hardwall", "mem_exclusive", "memory_migrate",
                                        "memory_spread_page", "memory_spread_slab", "memory_pressure",
                                        "sched_load_balance", "sched_relax_domain_level")}
        memory: dict = {}
        if os.path.exists(os.path.join(p, "memory.current")):
            raw = fs.read_keyed(p, "memory.stat")
            if raw.get("file"):
                memory["cache"] = raw["file"]
            use = {"limit": fs.read_int(p, "memory.max"), "usage": fs.read_int(p, "memory.current")}
            swap = {"limit": fs.read_int(p, "memory.swap.max"), "usage": fs.read_int(p, "memory.swap.current")}
            if not os.path.exists(os.path.join(p, "memory.swap.current")):
                swap = {"limit": 0, "usage": 0}
            swap["usage"] += use["usage"]  # v1 reports memory+swap; runc keeps that meaning on v2
            if swap["limit"] != MAX_UINT64:
                swap["limit"] = min(swap["limit"] + use["limit"], MAX_UINT64)
            memory["usage"] = omit_empty({**use, "failcnt": 0}, keep=("limit", "failcnt"))
            memory["swap"] = omit_empty({**swap, "failcnt": 0}, keep=("limit", "failcnt"))
            memory["kernel"] = {"limit": 0, "failcnt": 0}
            memory["kernelTCP"] = {"limit": 0, "failcnt": 0}
            if raw:
                memory["raw"] = raw
        for key in ("usage", "swap", "kernel", "kernelTCP"):  # Go never omits these (struct fields)
            memory.setdefault(key, {"limit": 0, "failcnt": 0})
        out["memory"] = memory
        if os.path.exists(os.path.join(p, "pids.current")):
            limit = fs.read_int(p, "pids.max")
            out["pids"] = omit_empty({"current": fs.read_int(p, "pids.current"),
                                      "limit": 0 if limit == MAX_UINT64 else limit})
        else:  # no pids controller: count cgroup.procs as runc does
            out["pids"] = omit_empty({"current": len(self.pids())})
        out["blkio"] = io_v2(p)
        hugetlb: dict = {}
        if os.path.isdir(p):
            for name in sorted(os.listdir(p)):
                if name.startswith("hugetlb.") and name.endswith(".current") and name.count(".") == 2:
                    size = name.split(".")[1]
                    hugetlb[size] = hugetlb_entry(p, f"hugetlb.{size}", "-", "events")
        out["hugetlb"] = hugetlb
        out["intel_rdt"] = {}
        out["network_interfaces"] = None
        return out
