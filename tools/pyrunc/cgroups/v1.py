"""cgroup v1 manager (runc 1.1's fs driver): one directory per controller, plus the cgroup2 one in hybrid mode."""

from __future__ import annotations

import os
import time

from pyrunc.errors import ConfigError, RuntimeFailure

from . import fs

FROZEN, THAWED, UNDEFINED = "FROZEN", "THAWED", ""


def resolve_paths(inner: str, all_mounts: list[fs.Mount], own: dict[str, str]) -> dict[str, str]:
    """Controller -> directory for cgroup `inner` (absolute: from each hierarchy root; relative: under ours)."""
    paths: dict[str, str] = {}
    for m in all_mounts:
        if m.version == 2:
            paths[fs.UNIFIED] = fs.join(m, own.get(fs.UNIFIED, "/"), inner)
            continue
        for ctrl in m.controllers:
            paths[ctrl] = fs.join(m, own.get(ctrl, "/"), inner)
    return paths


class V1Manager:
    version = 1

    def __init__(self, paths: dict[str, str], resources: dict | None = None,
                 linux_devices: list[dict] | None = None) -> None:
        self.paths = paths
        self.resources = resources
        self.linux_devices = linux_devices

    # -- life cycle -------------------------------------------------------------------------------------------
    def apply(self, pid: int) -> None:
        """Create every directory, move `pid` in, then write the resources given to new_manager (if any)."""
        self.create()
        for ctrl, path in sorted(self.paths.items()):
            if ctrl == "cpuacct" and self.paths.get("cpu") == path:
                continue
            fs.write(path, "cgroup.procs", pid)
        self.configure()

    def configure(self) -> None:
        """Write the resources given to new_manager (if any): limits and the device rules."""
        if self.resources is not None:
            self.set(self.resources, initial=True)

    def clone_into(self) -> str | None:
        """The cgroup2 directory a child can be born in (clone3 CLONE_INTO_CGROUP): hybrid mode's unified one."""
        return self.paths.get(fs.UNIFIED) or None

    def self_join_dirs(self) -> list[str]:
        """The v1 directories a child joins itself, writing 0 to their `tasks` (fs.join_self)."""
        return sorted({p for ctrl, p in self.paths.items() if ctrl != fs.UNIFIED})

    def create(self) -> None:
        """Create every directory (cpuset's cpus and mems filled in, the RT budget set: both needed to join)."""
        for ctrl, path in sorted(self.paths.items()):
            if ctrl == "cpuset":
                self._make_cpuset(path)
            else:
                try:
                    os.makedirs(path, exist_ok=True)
                except OSError as e:
                    raise RuntimeFailure(f"cgroup: mkdir {path}: {os.strerror(e.errno).lower()}") from None
            if ctrl == "cpu" and self.resources:
                self._set_rt(path, self.resources.get("cpu") or {})  # RT budget must exist before joining

    def _make_cpuset(self, path: str) -> None:
        # A new cpuset has empty cpus/mems and refuses tasks: copy each level's from its parent, top down.
        mount = _mountpoint_of(path)
        current = mount
        for part in os.path.relpath(path, mount).split("/"):
            if part in (".", ""):
                continue
            parent, current = current, os.path.join(current, part)
            try:
                os.mkdir(current)
            except FileExistsError:
                pass
            except OSError as e:
                raise RuntimeFailure(f"cgroup: mkdir {current}: {os.strerror(e.errno).lower()}") from None
            for name in ("cpuset.cpus", "cpuset.mems"):
                if not fs.read_or(current, name).strip():
                    fs.write(current, name, fs.read(parent, name).strip() or "\n")

    def destroy(self) -> None:
        """Remove every directory (sub-cgroups first), retrying while busy as runc does; kills nothing."""
        fs.remove_paths(self.paths)

    def to_state(self) -> dict:
        return {"version": 1, "paths": dict(self.paths), "linux_devices": self.linux_devices}

    def path(self, ctrl: str) -> str:
        return self.paths.get(ctrl, "")

    def exists(self) -> bool:
        return any(os.path.isdir(p) for p in self.paths.values())

    def pids(self) -> list[int]:
        """Every process in the container's cgroup and its sub-cgroups (runc reads the devices hierarchy)."""
        path = self.paths.get("devices") or self.paths.get("freezer") or next(iter(self.paths.values()), "")
        return fs.procs(path) if path and os.path.isdir(path) else []

    # -- resources --------------------------------------------------------------------------------------------
    def _need(self, ctrl: str) -> str:
        path = self.paths.get(ctrl)
        if not path:
            raise RuntimeFailure(f"cannot set {ctrl} limit: container could not join or create cgroup")
        return path

    def set(self, resources: dict | None, initial: bool = False) -> None:
        """Write linux.resources (OCI names) to the controllers, in runc's subsystem order.

        Device rules are (re)written when `resources` has "devices" or on the first set after apply (runc always
        installs its allow list); an update without "devices" leaves them.
        """
        r = resources or {}
        if r.get("unified"):
            raise ConfigError("invalid configuration: cannot use unified on cgroup v1")
        cpu = r.get("cpu") or {}
        if cpu.get("cpus") or cpu.get("mems"):
            path = self._need("cpuset")
            if cpu.get("cpus"):
                fs.write(path, "cpuset.cpus", cpu["cpus"])
            if cpu.get("mems"):
                fs.write(path, "cpuset.mems", cpu["mems"])
        if initial or "devices" in r:
            self._set_devices(r.get("devices"))
        if r.get("memory"):
            self._set_memory(r["memory"])
        if cpu:
            self._set_cpu(cpu)
        pids = r.get("pids") or {}
        if pids.get("limit"):
            fs.write(self._need("pids"), "pids.max", "max" if pids["limit"] < 0 else pids["limit"])
        if r.get("blockIO"):
            self._set_blkio(r["blockIO"])
        for h in r.get("hugepageLimits") or ():
            fs.write(self._need("hugetlb"), f"hugetlb.{h['pageSize']}.limit_in_bytes", h["limit"])
        net = r.get("network") or {}
        if net.get("classID"):
            fs.write(self._need("net_cls"), "net_cls.classid", net["classID"])
        for p in net.get("priorities") or ():
            fs.write(self._need("net_prio"), "net_prio.ifpriomap", f"{p['name']} {p['priority']}")
        for key, value in (r.get("rdma") or {}).items():
            parts = [f"{k}={value[v]}" for k, v in (("hca_handle", "hcaHandles"), ("hca_object", "hcaObjects"))
                     if value.get(v) is not None]
            fs.write(self._need("rdma"), "rdma.max", f"{key} {' '.join(parts)}")

    def _set_devices(self, rules: list[dict] | None) -> None:
        path = self.paths.get("devices")
        if not path:
            return
        from . import devices as devrules  # here: delete and kill need no device rules

        wanted = devrules.from_spec(rules, self.linux_devices)
        if devrules.v1_current(fs.read_or(path, "devices.list")) == devrules.v1_target(wanted):
            return  # unchanged: do not blink the running container through deny-all
        for name, line in devrules.v1_writes(wanted):
            fs.write(path, name, line)

    def _set_memory(self, m: dict) -> None:
        path = self._need("memory")
        limit, swap = m.get("limit") or 0, m.get("swap") or 0
        if limit == -1 and swap == 0:
            swap = -1  # unlimited memory means unlimited memory+swap too (runc)
        if limit and swap:
            # Order the two writes so the kernel's memsw >= memory check holds before and after.
            current = fs.read_int(path, "memory.limit_in_bytes")
            if swap == -1 or current < swap:
                fs.write(path, "memory.memsw.limit_in_bytes", swap)
                fs.write(path, "memory.limit_in_bytes", limit)
            else:
                fs.write(path, "memory.limit_in_bytes", limit)
                fs.write(path, "memory.memsw.limit_in_bytes", swap)
        else:
            if limit:
                fs.write(path, "memory.limit_in_bytes", limit)
            if swap:
                fs.write(path, "memory.memsw.limit_in_bytes", swap)
        if m.get("reservation"):
            fs.write(path, "memory.soft_limit_in_bytes", m["reservation"])
        # kernel and kernelTCP are ignored, as runc 1.1.5 does (see cgroups.warnings for its warning).
        if m.get("disableOOMKiller"):
            fs.write(path, "memory.oom_control", "1")
        swappiness = m.get("swappiness")
        if swappiness is not None and swappiness != -1:
            if not 0 <= swappiness <= 100:
                raise ConfigError(f"invalid memory swappiness value: {swappiness} (valid range is 0-100)")
            fs.write(path, "memory.swappiness", swappiness)

    def _set_cpu(self, c: dict) -> None:
        if not any(c.get(k) for k in ("shares", "quota", "period", "realtimeRuntime", "realtimePeriod")):
            return
        path = self._need("cpu")
        if c.get("shares"):
            fs.write(path, "cpu.shares", c["shares"])
            got = fs.read_int(path, "cpu.shares")
            if c["shares"] > got:
                raise ConfigError(f"the maximum allowed cpu-shares is {got}")
            if c["shares"] < got:
                raise ConfigError(f"the minimum allowed cpu-shares is {got}")
        period = ""
        if c.get("period"):
            try:
                fs.write(path, "cpu.cfs_period_us", c["period"])
            except RuntimeFailure as e:
                # A smaller period can be refused until the quota is lowered: retry after the quota (runc).
                if "invalid argument" not in str(e) or not c.get("quota"):
                    raise
                period = str(c["period"])
        if c.get("quota"):
            fs.write(path, "cpu.cfs_quota_us", c["quota"])
            if period:
                fs.write(path, "cpu.cfs_period_us", period)
        # cpu.idle is not written: runc 1.1.5 (runtime-spec 1.0.2) ignores linux.resources.cpu.idle.
        self._set_rt(path, c)

    @staticmethod
    def _set_rt(path: str, c: dict) -> None:
        if c.get("realtimePeriod"):
            fs.write(path, "cpu.rt_period_us", c["realtimePeriod"])
        if c.get("realtimeRuntime"):
            fs.write(path, "cpu.rt_runtime_us", c["realtimeRuntime"])

    def _set_blkio(self, b: dict) -> None:
        path = self._need("blkio")
        # runc's detectWeightFilenames: CFQ's blkio.weight if there, else BFQ's (even when that is missing too).
        cfq = os.path.exists(os.path.join(path, "blkio.weight"))
        weight_file = "blkio.weight" if cfq else "blkio.bfq.weight"
        if b.get("weight"):
            fs.write(path, weight_file, b["weight"])
        if b.get("leafWeight"):
            fs.write(path, "blkio.leaf_weight", b["leafWeight"])
        for wd in b.get("weightDevice") or ():
            dev = f"{wd['major']}:{wd['minor']}"
            if wd.get("weight"):
                fs.write(path, weight_file + "_device", f"{dev} {wd['weight']}")
            if wd.get("leafWeight"):
                fs.write(path, "blkio.leaf_weight_device", f"{dev} {wd['leafWeight']}")
        for key, name in (("throttleReadBpsDevice", "read_bps_device"), ("throttleWriteBpsDevice", "write_bps_device"),
                          ("throttleReadIOPSDevice", "read_iops_device"),
                          ("throttleWriteIOPSDevice", "write_iops_device")):
            for td in b.get(key) or ():
                fs.write(path, f"blkio.throttle.{name}", f"{td['major']}:{td['minor']} {td['rate']}")

    # -- freezer ----------------------------------------------------------------------------------------------
    def freeze(self) -> None:
        """runc's v1 freeze: write FROZEN and read back, thawing now and then if it sticks in FREEZING."""
        path = self._need("freezer")
        for i in range(1000):
            if i % 50 == 49:
                fs.write(path, "freezer.state", THAWED)
                time.sleep(0.01)
            fs.write(path, "freezer.state", FROZEN)
            if i % 25 == 24:
                time.sleep(0.00001)
            state = fs.read(path, "freezer.state").strip()
            if state == FROZEN:
                return
            if state != "FREEZING":
                raise RuntimeFailure(f"unexpected state {state} after writing {FROZEN}")
        fs.write(path, "freezer.state", THAWED)
        raise RuntimeFailure("unable to freeze")

    def thaw(self) -> None:
        fs.write(self._need("freezer"), "freezer.state", THAWED)

    def freezer_state(self) -> str:
        """"FROZEN", "THAWED", or "" (no freezer): frozen only when this cgroup itself is (not an ancestor)."""
        path = self.paths.get("freezer")
        if not path or not os.path.isdir(path):
            return UNDEFINED
        while True:
            state = fs.read(path, "freezer.state").strip()
            if state == THAWED:
                return THAWED
            if state == FROZEN:
                self_freezing = fs.read_or(path, "freezer.self_freezing", "1\n").strip()
                return FROZEN if self_freezing == "1" else THAWED
            if state == "FREEZING":
                time.sleep(0.001)
                continue
            raise RuntimeFailure(f"unknown freezer.state {state!r}")

    # -- stats ------------------------------------------------------------------------------------------------
    def stats(self) -> dict:
        """The `runc events --stats` "data" object (Go's omitempty applied)."""
        from .convert import parse_cpu_list  # here, not at the top: not on the container start path
        from .stats import blkio_v1, hugetlb_entry, memory_entry, omit_empty

        cpu_path, acct = self.paths.get("cpu", ""), self.paths.get("cpuacct", "")
        throttle = fs.read_keyed(cpu_path, "cpu.stat") if cpu_path else {}
        usage: dict = {}
        if acct:
            usage["total"] = fs.read_int(acct, "cpuacct.usage")
            usage["percpu"] = [int(x) for x in fs.read_or(acct, "cpuacct.usage_percpu").split()]
            rows = [line.split() for line in fs.read_or(acct, "cpuacct.usage_all").splitlines()[1:]]
            usage["percpu_kernel"] = [int(r[2]) for r in rows if len(r) == 3]
            usage["percpu_user"] = [int(r[1]) for r in rows if len(r) == 3]
            ticks = fs.read_keyed(acct, "cpuacct.stat")
            hz = os.sysconf("SC_CLK_TCK")
            usage["kernel"] = ticks.get("system", 0) * 1_000_000_000 // hz
            usage["user"] = ticks.get("user", 0) * 1_000_000_000 // hz
        usage = omit_empty(usage, keep=("kernel", "user"))
        usage.setdefault("kernel", 0)
        usage.setdefault("user", 0)
        out: dict = {
            "cpu": {"usage": usage, "throttling": omit_empty({
                "periods": throttle.get("nr_periods", 0), "throttledPeriods": throttle.get("nr_throttled", 0),
                "throttledTime": throttle.get("throttled_time", 0)})},
        }
        cs = self.paths.get("cpuset", "")
        if cs:
            out["cpuset"] = omit_empty({
                "cpus": parse_cpu_list(fs.read_or(cs, "cpuset.effective_cpus") or fs.read_or(cs, "cpuset.cpus")),
                "cpu_exclusive": fs.read_int(cs, "cpuset.cpu_exclusive"),
                "mems": parse_cpu_list(fs.read_or(cs, "cpuset.effective_mems") or fs.read_or(cs, "cpuset.mems")),
                "mem_hardwall": fs.read_int(cs, "cpuset.mem_hardwall"),
                "mem_exclusive": fs.read_int(cs, "cpuset.mem_exclusive"),
                "memory_migrate": fs.read_int(cs, "cpuset.memory_migrate"),
                "memory_spread_page": fs.read_int(cs, "cpuset.memory_spread_page"),
                "memory_spread_slab": fs.read_int(cs, "cpuset.memory_spread_slab"),
                "memory_pressure": fs.read_int(cs, "cpuset.memory_pressure"),
                "sched_load_balance": fs.read_int(cs, "cpuset.sched_load_balance"),
                "sched_relax_domain_level": fs.read_int(cs, "cpuset.sched_relax_domain_level"),
            }, keep=("cpu_exclusive", "mem_hardwall", "mem_exclusive", "memory_migrate", "memory_spread_page",
                     "memory_spread_slab", "memory_pressure", "sched_load_balance", "sched_relax_domain_level"))
        mem = self.paths.get("memory", "")
        memory: dict = {}
        if mem:
            raw = fs.read_keyed(mem, "memory.stat")
            if raw.get("cache"):
                memory["cache"] = raw["cache"]
            memory["usage"] = memory_entry(mem, "memory")
            memory["swap"] = memory_entry(mem, "memory.memsw")
            memory["kernel"] = memory_entry(mem, "memory.kmem")
            memory["kernelTCP"] = memory_entry(mem, "memory.kmem.tcp")
            if raw:
                memory["raw"] = raw
        for key in ("usage", "swap", "kernel", "kernelTCP"):  # Go never omits these (struct fields)
            memory.setdefault(key, {"limit": 0, "failcnt": 0})
        out["memory"] = memory
        pids_path = self.paths.get("pids", "")
        limit = fs.read_int(pids_path, "pids.max") if pids_path else 0
        out["pids"] = omit_empty({"current": fs.read_int(pids_path, "pids.current") if pids_path else 0,
                                  "limit": 0 if limit == (1 << 64) - 1 else limit})
        out["blkio"] = blkio_v1(self.paths.get("blkio", ""))
        hugetlb: dict = {}
        ht = self.paths.get("hugetlb", "")
        if ht and os.path.isdir(ht):
            for name in sorted(os.listdir(ht)):
                if name.startswith("hugetlb.") and name.endswith(".usage_in_bytes"):
                    size = name[len("hugetlb."):-len(".usage_in_bytes")]
                    hugetlb[size] = hugetlb_entry(ht, f"hugetlb.{size}", "max_usage_in_bytes", "failcnt")
        out["hugetlb"] = hugetlb
        out["intel_rdt"] = {}
        out["network_interfaces"] = None
        return out


def _mountpoint_of(path: str) -> str:
    """The hierarchy root directory that holds `path` (/sys/fs/cgroup/<ctrl> on a normal host)."""
    for m in sorted(fs.mounts(), key=lambda m: len(m.mountpoint), reverse=True):
        if path == m.mountpoint or path.startswith(m.mountpoint.rstrip("/") + "/"):
            return m.mountpoint
    raise RuntimeFailure(f"cgroup: {path} is not in a mounted cgroup hierarchy")
