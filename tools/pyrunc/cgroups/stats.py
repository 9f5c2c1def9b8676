"""Helpers that read cgroup statistics into runc's `events --stats` JSON shape (types/events.go)."""

from __future__ import annotations

import os

from . import fs


def omit_empty(d: dict, keep: tuple[str, ...] = ()) -> dict:
    """Go's `omitempty`: drop zero, empty and None values except the fields listed in `keep`."""
    return {k: v for k, v in d.items() if k in keep or v not in (0, None, "", [], {})}


def memory_entry(path: str, prefix: str) -> dict:
    """{"limit", "usage", "max", "failcnt"} of a v1 memory counter family (memory, memory.memsw, ...)."""
    return omit_empty({
        "limit": fs.read_int(path, f"{prefix}.limit_in_bytes"),
        "usage": fs.read_int(path, f"{prefix}.usage_in_bytes"),
        "max": fs.read_int(path, f"{prefix}.max_usage_in_bytes"),
        "failcnt": fs.read_int(path, f"{prefix}.failcnt"),
    }, keep=("limit", "failcnt"))


def hugetlb_entry(path: str, prefix: str, max_name: str, failcnt_name: str) -> dict:
    usage_name = "usage_in_bytes" if max_name == "max_usage_in_bytes" else "current"
    failcnt = fs.read_int(path, f"{prefix}.{failcnt_name}") if failcnt_name != "events" else \
        fs.read_keyed(path, f"{prefix}.events").get("max", 0)
    return omit_empty({
        "usage": fs.read_int(path, f"{prefix}.{usage_name}"),
        "max": fs.read_int(path, f"{prefix}.{max_name}") if max_name != "-" else 0,
        "failcnt": failcnt,
    }, keep=("failcnt",))


def _blkio_entries(path: str, name: str) -> list[dict]:
    out = []
    for line in fs.read_or(path, name).splitlines():
        parts = line.split()
        if len(parts) == 3 and ":" in parts[0]:
            major, minor = parts[0].split(":")
            out.append(omit_empty({"major": int(major), "minor": int(minor), "op": parts[1], "value": int(parts[2])}))
        elif len(parts) == 2 and ":" in parts[0]:
            major, minor = parts[0].split(":")
            out.append(omit_empty({"major": int(major), "minor": int(minor), "op": "", "value": int(parts[1])}))
    return out


_ORDER = ("ioServiceBytesRecursive", "ioServicedRecursive", "ioQueueRecursive", "ioServiceTimeRecursive",
          "ioWaitTimeRecursive", "ioMergedRecursive", "ioTimeRecursive", "sectorsRecursive")


def _group(prefix: str, debug: bool) -> list[tuple[str, str]]:
    files = [("ioServicedRecursive", "io_serviced_recursive"), ("ioServiceBytesRecursive", "io_service_bytes_recursive")]
    if debug:
        files = [("sectorsRecursive", "sectors_recursive"), ("ioServiceTimeRecursive", "io_service_time_recursive"),
                 ("ioWaitTimeRecursive", "io_wait_time_recursive"), ("ioMergedRecursive", "io_merged_recursive"),
                 ("ioQueueRecursive", "io_queued_recursive"), ("ioTimeRecursive", "time_recursive")] + files
    return [(key, prefix + name) for key, name in files]


# runc's order of preference: BFQ with debug counters, BFQ, CFQ, throttle (recursive), throttle.
_GROUPS = (_group("blkio.bfq.", True), _group("blkio.bfq.", False), _group("blkio.", True),
           _group("blkio.throttle.", False),
           [("ioServicedRecursive", "blkio.throttle.io_serviced"),
            ("ioServiceBytesRecursive", "blkio.throttle.io_service_bytes")])


def blkio_v1(path: str) -> dict:
    """runc's v1 blkio stats: the first group of files whose first file has entries."""
    if not path or not os.path.isdir(path):
        return {}
    for group in _GROUPS:
        found: dict[str, list] = {}
        for i, (key, name) in enumerate(group):
            entries = _blkio_entries(path, name)
            if not entries:
                if i == 0:
                    break
                return omit_empty({k: found[k] for k in _ORDER if k in found})
            found[key] = entries
        else:
            return omit_empty({k: found[k] for k in _ORDER if k in found})
    return {}


def io_v2(path: str) -> dict:
    """runc's v2 io.stat conversion: rbytes/wbytes -> ioServiceBytesRecursive, rios/wios -> ioServicedRecursive."""
    service_bytes, serviced = [], []
    ops = {"rbytes": ("Read", service_bytes), "wbytes": ("Write", service_bytes),
           "rios": ("Read", serviced), "wios": ("Write", serviced)}
    for line in fs.read_or(path, "io.stat").splitlines():
        parts = line.split()
        if not parts or ":" not in parts[0]:
            continue
        major, minor = (int(x) for x in parts[0].split(":"))
        for kv in parts[1:]:
            key, _, value = kv.partition("=")
            if key in ops:
                op, bucket = ops[key]
                bucket.append(omit_empty({"major": major, "minor": minor, "op": op, "value": int(value)}))
    return omit_empty({"ioServiceBytesRecursive": service_bytes, "ioServicedRecursive": serviced})
