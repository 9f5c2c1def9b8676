"""Docker's seccomp profiles turned into the OCI `linux.seccomp` of a container's config.

    linux["seccomp"] = to_oci(default_profile(), caps)          # what docker 20.10 applies to every container
    linux["seccomp"] = to_oci(load_profile(text), caps)         # --security-opt seccomp=PATH (docker's format)

The default profile is moby 20.10's (`profiles/seccomp/default.json`, as dockerd 20.10.24 generates it),
kept as `seccomp_default.json` next to this module and read only when a container is created. The
conversion is moby's `setupSeccomp`: the archMap entry of the host's architecture, and a rule only when
its `includes` match (arch, every cap granted, kernel >= minKernel) and its `excludes` do not.
"""

from __future__ import annotations

import os

from . import errdefs, protocol
from .records import record

TYPE_CHECKING = False  # typing only for type checkers: pyctr pays for every import it starts with
if TYPE_CHECKING:
    from typing import Any

# a str, not a pathlib.Path, and os.uname() rather than the platform module: pyctr loads this module for
# every create, and those two imports were most of its cost
DEFAULT_PROFILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seccomp_default.json")

# Go's runtime.GOARCH for platform.machine(), and libseccomp's name of that native arch (moby's nativeToSeccomp)
GOARCH = {"x86_64": "amd64", "amd64": "amd64", "i386": "386", "i686": "386", "aarch64": "arm64", "arm64": "arm64",
          "armv7l": "arm", "armv6l": "arm", "ppc64le": "ppc64le", "s390x": "s390x", "mips64": "mips64",
          "mips64el": "mips64le", "riscv64": "riscv64"}
NATIVE = {"amd64": "SCMP_ARCH_X86_64", "386": "SCMP_ARCH_X86", "arm64": "SCMP_ARCH_AARCH64", "arm": "SCMP_ARCH_ARM",
          "ppc64le": "SCMP_ARCH_PPC64LE", "s390x": "SCMP_ARCH_S390X", "mips64": "SCMP_ARCH_MIPS64",
          "mips64le": "SCMP_ARCH_MIPSEL64", "riscv64": "SCMP_ARCH_RISCV64"}


@record(frozen=True)
class Host:
    """What a profile's filters are matched against."""

    goarch: str
    kernel: tuple[int, int]

    @classmethod
    def current(cls) -> "Host":
        machine = os.uname().machine
        return cls(GOARCH.get(machine, machine), parse_kernel(os.uname().release))


def _digits(text: str) -> str:
    """The leading decimal digits of `text` (what regexp \\d+ matches there; `re` is not loaded for this)."""
    i = 0
    while i < len(text) and text[i].isdecimal():
        i += 1
    return text[:i]


def parse_kernel(release: str) -> tuple[int, int]:
    """`5.10.0-18-amd64` → (5, 10); (0, 0) when it does not start MAJOR.MINOR."""
    major = _digits(release)
    minor = _digits(release[len(major) + 1:]) if release[len(major):len(major) + 1] == "." else ""
    return (int(major), int(minor)) if major and minor else (0, 0)


def default_profile() -> dict:
    # protocol.loads: json's C scanner without importing the json package (and re, enum with it)
    with open(DEFAULT_PROFILE, "rb") as f:
        return protocol.loads(f.read())


def load_profile(text: str) -> dict:
    """A profile given inline (the CLI sends the file's compacted JSON), checked as moby's loadProfile."""
    import json  # a custom profile only: its errors are worded by json

    try:
        profile = json.loads(text)
    except ValueError as exc:
        raise errdefs.InvalidArgument(f"Decoding seccomp profile failed: {exc}") from None
    if not isinstance(profile, dict):
        raise errdefs.InvalidArgument("Decoding seccomp profile failed: json: cannot unmarshal into Go value of "
                                      "type seccomp.Seccomp")
    return profile


def _kernel_at_least(host: Host, text: str) -> bool:
    major, dot, minor = text.strip().partition(".")
    if not (dot and major.isdecimal() and minor.isdecimal()):
        raise errdefs.InvalidArgument(f"invalid kernel version: {text}")
    return host.kernel >= (int(major), int(minor))


def _arg(a: dict) -> dict:
    # the runtime-spec's Go struct drops a zero valueTwo (omitempty), as docker's generated config
    out = {"index": a.get("index", 0), "value": a.get("value", 0)}
    if a.get("valueTwo"):
        out["valueTwo"] = a["valueTwo"]
    out["op"] = a.get("op", "")
    return out


def _selected(rule: dict, caps: set[str], host: Host) -> bool:
    excludes = rule.get("excludes") or {}
    includes = rule.get("includes") or {}
    if host.goarch in (excludes.get("arches") or []):
        return False
    if any(c in caps for c in excludes.get("caps") or []):
        return False
    if excludes.get("minKernel") and _kernel_at_least(host, excludes["minKernel"]):
        return False
    if includes.get("arches") and host.goarch not in includes["arches"]:
        return False
    if any(c not in caps for c in includes.get("caps") or []):
        return False
    if includes.get("minKernel") and not _kernel_at_least(host, includes["minKernel"]):
        return False
    return True


def to_oci(profile: dict[str, Any], caps: list[str], host: Host | None = None) -> dict:
    """moby's setupSeccomp: `caps` is the container's bounding set."""
    host = host or Host.current()
    if profile.get("architectures") and profile.get("archMap"):
        raise errdefs.InvalidArgument("'architectures' and 'archMap' were specified in the seccomp profile, use "
                                      "either 'architectures' or 'archMap'")
    out: dict[str, Any] = {"defaultAction": profile.get("defaultAction", "")}
    if profile.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    arches = list(profile.get("architectures") or [])
    native = NATIVE.get(host.goarch, "")
    for entry in profile.get("archMap") or []:
        if entry.get("architecture") == native:
            arches = [entry["architecture"], *(entry.get("subArchitectures") or [])]
    if arches:
        out["architectures"] = arches
    for key in ("listenerPath", "listenerMetadata", "flags"):
        if profile.get(key):
            out[key] = profile[key]
    granted = set(caps)
    rules = []
    for rule in profile.get("syscalls") or []:
        if rule.get("name") and rule.get("names"):
            raise errdefs.InvalidArgument("'name' and 'names' were specified in the seccomp profile, use either "
                                          "'name' or 'names'")
        if not _selected(rule, granted, host):
            continue
        names = list(rule.get("names") or ([rule["name"]] if rule.get("name") else []))
        item: dict[str, Any] = {"names": names, "action": rule.get("action", "")}
        if rule.get("errnoRet") is not None:
            item["errnoRet"] = rule["errnoRet"]
        if rule.get("args"):
            item["args"] = [_arg(a) for a in rule["args"]]
        rules.append(item)
    if rules:
        out["syscalls"] = rules
    return out
