"""Pure value conversions between the OCI (cgroup v1 flavoured) resources and cgroup v2 files, as runc 1.1."""

from __future__ import annotations

from pyrunc.errors import ConfigError

MAX_UINT64 = (1 << 64) - 1


def cpu_shares_to_weight(shares: int) -> int:
    """runc's ConvertCPUSharesToCgroupV2Value: [2, 262144] shares onto [1, 10000] cpu.weight; 0 stays unset."""
    if shares == 0:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_weight_to_io_weight(weight: int) -> int:
    """runc's ConvertBlkIOToIOWeightValue: [10, 1000] blkio.weight onto [1, 10000] io.weight; 0 stays unset."""
    if weight == 0:
        return 0
    return 1 + (weight - 10) * 9999 // 990


def memory_swap_to_v2(swap: int, memory: int) -> int:
    """runc's ConvertMemorySwapToCgroupV2Value: v1's memory+swap limit -> v2's swap-only memory.swap.max.

    -1 means unlimited and 0 means unset, in and out.
    """
    if memory == -1 and swap == 0:
        return -1  # "memory unlimited" without a swap value means both unlimited, as on v1
    if swap in (-1, 0):
        return swap
    if memory in (0, -1):
        raise ConfigError("linux.resources.memory.swap: unable to set swap limit without memory limit")
    if memory < 0:
        raise ConfigError(f"linux.resources.memory.limit: invalid memory value: {memory}")
    if swap < memory:
        raise ConfigError("linux.resources.memory.swap: memory+swap limit should be >= memory limit")
    return swap - memory


def num_to_str(value: int | None) -> str:
    """runc's numToStr for v2 files: 0/None -> "" (leave unset), -1 -> "max"."""
    if not value:
        return ""
    return "max" if value == -1 else str(value)


def cpu_max(quota: int | None, period: int | None) -> str:
    """runc's cpu.max from cpu.quota/period: "max" unless quota > 0, period 100000 by default; "" when unset."""
    if not quota and not period:
        return ""
    text = str(quota) if quota and quota > 0 else "max"
    return f"{text} {period or 100000}"


def parse_cpu_list(text: str) -> list[int]:
    """"0-2,4" -> [0, 1, 2, 4] (cpuset.cpus / cpuset.mems)."""
    out: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out
