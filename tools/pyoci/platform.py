"""Platforms (`linux/arm/v7`): parsing, normalisation, matching and selection from an index, as containerd does.

Normalisation follows containerd's `platforms` package (aarch64 -> arm64, x86_64/x86-64 -> amd64, i386 -> 386,
armhf -> arm/v7, armel -> arm/v6, macos -> darwin, amd64/v1 -> amd64) with one visible difference: the
default variants are written out -- arm64 is `arm64/v8` and arm is `arm/v7` -- where containerd leaves
them empty. Both spellings compare equal, so `linux/arm64` matches an index entry `arm64` with or without
`variant: v8`.

Selection (`select`) is containerd's `platforms.Only(want)`: the exact platform first, then the platforms
the wanted one can also run, best first:
  amd64/vN -> amd64/v(N-1) ... amd64 -> 386
  arm/vN   -> arm/v(N-1) ... arm/v5
  arm64    -> arm64 lower minor versions -> arm/v8 -> arm/v7 -> arm/v6 -> arm/v5
(so an arm64 host pulls an arm/v7 image when there is no arm64 one). `strict=True` is `OnlyStrict`: the
exact platform only. Index entries without a platform match as a last resort (containerd does the same);
fields a matcher does not know (`features`, unknown keys) are ignored. os.version only matters on Windows
(major.minor.build must agree), os.features of a candidate must be a subset of the wanted ones.
"""

from __future__ import annotations

import os as _os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from .errors import NotFound, OCIError


class InvalidPlatform(OCIError):
    """A platform specifier or platform object that cannot be understood."""


KNOWN_OS = frozenset((
    "aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "js", "linux", "nacl", "netbsd",
    "openbsd", "plan9", "solaris", "wasip1", "windows", "zos"))
KNOWN_ARCH = frozenset((
    "386", "amd64", "amd64p32", "arm", "armbe", "arm64", "arm64be", "ppc64", "ppc64le", "loong64", "mips", "mipsle",
    "mips64", "mips64le", "mips64p32", "mips64p32le", "ppc", "riscv", "riscv64", "s390", "s390x", "sparc", "sparc64",
    "wasm"))

_OS_RE = re.compile(r"([A-Za-z0-9_-]+)(?:\(([A-Za-z0-9_.%-]*)((?:\+[A-Za-z0-9_.%-]+)*)\))?")
_SPECIFIER_RE = re.compile(r"[A-Za-z0-9_.-]+")

# uname -m values that are not Go architecture names.
_UNAME_MACHINES = {
    "x86_64": ("amd64", ""), "amd64": ("amd64", ""), "i386": ("386", ""), "i486": ("386", ""), "i586": ("386", ""),
    "i686": ("386", ""), "aarch64": ("arm64", "v8"), "arm64": ("arm64", "v8"), "armv8l": ("arm", "v8"),
    "armv7l": ("arm", "v7"), "armv7": ("arm", "v7"), "armv6l": ("arm", "v6"), "armv5tel": ("arm", "v5"),
    "armv5l": ("arm", "v5"), "ppc64le": ("ppc64le", ""), "ppc64": ("ppc64", ""), "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""), "loongarch64": ("loong64", ""), "mips64": ("mips64", ""), "mips": ("mips", ""),
}


@dataclass(frozen=True)
class Platform:
    """An OCI platform. Sequences are tuples so that platforms hash; `extra` keeps unknown JSON keys."""

    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def __str__(self) -> str:
        return format(self)

    @classmethod
    def parse(cls, specifier: str) -> Platform:
        return parse(specifier)

    def normalized(self) -> Platform:
        return normalize(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON object in the Go struct's field order (ocispec.Platform, then Docker's `features`)."""
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        if self.variant:
            out["variant"] = self.variant
        if self.features:
            out["features"] = list(self.features)
        for k, v in self.extra.items():
            out.setdefault(k, v)
        return out

    @classmethod
    def from_dict(cls, d: Any, where: str = "platform") -> Platform:
        """Read a JSON platform object as it is (no normalisation); errors name the field."""
        if not isinstance(d, dict):
            raise InvalidPlatform(f"{where}: must be an object, got {_jtype(d)}")
        for key in ("architecture", "os"):
            if not isinstance(d.get(key), str):
                raise InvalidPlatform(f"{where}.{key}: must be a string, got {_jtype(d.get(key))}")
        for key in ("os.version", "variant"):
            if key in d and not isinstance(d[key], str):
                raise InvalidPlatform(f"{where}.{key}: must be a string, got {_jtype(d[key])}")
        for key in ("os.features", "features"):
            v = d.get(key)
            if v is not None and not (isinstance(v, list) and all(isinstance(x, str) for x in v)):
                raise InvalidPlatform(f"{where}.{key}: must be an array of strings")
        known = ("architecture", "os", "os.version", "os.features", "variant", "features")
        return cls(os=d["os"], architecture=d["architecture"], variant=d.get("variant", ""),
                   os_version=d.get("os.version", ""), os_features=tuple(d.get("os.features") or ()),
                   features=tuple(d.get("features") or ()),
                   extra={k: v for k, v in d.items() if k not in known})


def _jtype(v: Any) -> str:
    if v is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object"}.get(
        type(v), type(v).__name__)


def normalize_os(os_name: str) -> str:
    if not os_name:
        return default().os
    os_name = os_name.lower()
    return "darwin" if os_name == "macos" else os_name


def normalize_arch(arch: str, variant: str) -> tuple[str, str]:
    """containerd's normalizeArch, with arm64's and arm's default variants written out (v8, v7)."""
    arch, variant = arch.lower(), variant.lower()
    if arch == "i386":
        return "386", ""
    if arch in ("x86_64", "x86-64", "amd64"):
        return "amd64", "" if variant == "v1" else variant
    if arch in ("aarch64", "arm64"):
        return "arm64", "v8" if variant in ("", "8", "v8", "v8.0") else variant
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm":
        if variant in ("", "7"):
            return "arm", "v7"
        if variant in ("5", "6", "8"):
            return "arm", "v" + variant
    return arch, variant


def normalize(p: Platform) -> Platform:
    arch, variant = normalize_arch(p.architecture, p.variant)
    return replace(p, os=normalize_os(p.os), architecture=arch, variant=variant,
                   os_features=tuple(sorted(set(p.os_features))))


def parse(specifier: str) -> Platform:
    """containerd's specifier syntax: `os`, `arch`, `os/arch`, `os/arch/variant`, `windows(10.0.17763+win32k)/amd64`."""
    if not isinstance(specifier, str):
        raise InvalidPlatform(f"invalid platform {specifier!r}: not a string")
    if "*" in specifier:
        raise InvalidPlatform(f"{specifier!r}: wildcards not yet supported")
    parts = specifier.split("/", 3)
    m = _OS_RE.fullmatch(parts[0])
    if m is None:
        raise InvalidPlatform(f"{parts[0]!r} is an invalid OS component of {specifier!r}: "
                              f"it must look like os or os(version+feature)")
    for part in parts[1:]:
        if not _SPECIFIER_RE.fullmatch(part):
            raise InvalidPlatform(f"{part!r} is an invalid component of {specifier!r}: "
                                  f"platform specifier components are [A-Za-z0-9_.-]+")
    from urllib.parse import unquote

    os_name = normalize_os(m.group(1))
    os_version = unquote(m.group(2) or "")
    os_features = tuple(unquote(f) for f in (m.group(3) or "").split("+")[1:])
    if len(parts) == 1:
        if os_name in KNOWN_OS:
            host = default()
            return Platform(os_name, host.architecture, host.variant, os_version, os_features)
        arch, variant = normalize_arch(parts[0], "")
        if arch in KNOWN_ARCH:
            return Platform(default().os, arch, variant)
        raise InvalidPlatform(f"{specifier!r}: unknown operating system or architecture")
    if len(parts) == 2:
        arch, variant = normalize_arch(parts[1], "")
        return Platform(os_name, arch, variant, os_version, os_features)
    if len(parts) == 3:
        arch, variant = normalize_arch(parts[1], parts[2])
        return Platform(os_name, arch, variant, os_version, os_features)
    raise InvalidPlatform(f"{specifier!r}: cannot parse platform specifier (want os[/arch[/variant]])")


def default() -> Platform:
    """This machine's platform, from uname (arm variants from the machine name, e.g. armv7l -> arm/v7)."""
    u = _os.uname()
    machine = u.machine.lower()
    arch, variant = _UNAME_MACHINES.get(machine, (machine, ""))
    return Platform(u.sysname.lower(), arch, variant)


def format(p: Platform) -> str:  # noqa: A001 - the containerd name
    """`os/arch[/variant]` (containerd's Format)."""
    if not p.os:
        return "unknown"
    return "/".join(x for x in (p.os, p.architecture, p.variant) if x)


def format_all(p: Platform) -> str:
    """Like format(), with os.version and os.features: `windows(10.0.17763+win32k)/amd64`."""
    if not p.os:
        return "unknown"
    opts = _enc(p.os_version) + "".join("+" + _enc(f) for f in sorted(p.os_features))
    head = f"{p.os}({opts})" if opts else p.os
    return "/".join(x for x in (head, p.architecture, p.variant) if x)


def _enc(v: str) -> str:
    return v.replace("%", "%25").replace("+", "%2B").replace("(", "%28").replace(")", "%29").replace("/", "%2F")


def _windows_build(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:3])


def matches(want: Platform, have: Platform) -> bool:
    """Whether an image for `have` is exactly what `want` asks for (after normalising both)."""
    w, h = normalize(want), normalize(have)
    if (w.os, w.architecture, w.variant) != (h.os, h.architecture, h.variant):
        return False
    if w.os == "windows" and w.os_version and h.os_version \
            and _windows_build(w.os_version) != _windows_build(h.os_version):
        return False
    return set(h.os_features) <= set(w.os_features)


def compatible(want: Platform, strict: bool = False) -> list[Platform]:
    """The platforms `want` accepts, best first (containerd's platformVector; just `want` when strict)."""
    p = normalize(want)
    if strict:
        return [p]
    return _vector(p)


def _vnum(variant: str) -> int | None:
    try:
        return int(variant[1:]) if variant.startswith("v") else int(variant)
    except ValueError:
        return None


def _vector(p: Platform) -> list[Platform]:
    out = [p]
    if p.architecture == "amd64":
        n = _vnum(p.variant)
        if n is not None and n > 1:
            out += [replace(p, variant="" if v == 1 else f"v{v}") for v in range(n - 1, 0, -1)]
        out.append(replace(p, architecture="386", variant=""))
    elif p.architecture == "arm":
        n = _vnum(p.variant)
        if n is not None and n > 5:
            out += [replace(p, variant=f"v{v}") for v in range(n - 1, 4, -1)]
    elif p.architecture == "arm64":
        variant = p.variant or "v8"
        major_s, _, minor_s = variant.partition(".")
        major = _vnum(major_s)
        if major is not None and major >= 8:
            minor = int(minor_s) if minor_s.isdigit() else 0
            if major == 9:
                out += [replace(p, variant="v9" if m == 0 else f"v9.{m}") for m in range(minor - 1, -1, -1)]
                # v9.x is compatible with v8.(x+5)
                minor, major = minor + 5, 8
                out.append(replace(p, variant=f"v8.{minor}"))
            out += [replace(p, variant="v8" if m == 0 else f"v8.{m}") for m in range(minor - 1, -1, -1)]
        if variant.startswith(("v8.", "v9.")):
            variant = "v8"
        out += _vector(replace(p, architecture="arm", variant=variant))
    return out


def _platform_of(candidate: Any) -> Platform | None:
    if isinstance(candidate, Platform):
        return candidate
    if isinstance(candidate, dict):
        raw = candidate.get("platform")
        return Platform.from_dict(raw) if raw is not None else None
    return getattr(candidate, "platform", None)


T = TypeVar("T")


def rank(candidate_platform: Platform | None, want: Platform, strict: bool = False) -> int | None:
    """Position of a candidate in want's preference order (0 is best); None when it does not match."""
    if candidate_platform is None:
        return None
    for i, p in enumerate(compatible(want, strict)):
        if matches(p, candidate_platform):
            return i
    return None


def select_all(candidates: Iterable[T], want: Platform | str | None = None, strict: bool = False) -> list[T]:
    """Every matching candidate, best first; candidates without a platform come last (stable order)."""
    w = _want(want)
    ranked: list[tuple[int, int, T]] = []
    vector = compatible(w, strict)
    for i, c in enumerate(candidates):
        cp = _platform_of(c)
        if cp is None:
            ranked.append((len(vector), i, c))
            continue
        for r, p in enumerate(vector):
            if matches(p, cp):
                ranked.append((r, i, c))
                break
    return [c for _, _, c in sorted(ranked, key=lambda t: (t[0], t[1]))]


def select(candidates: Sequence[T] | Iterable[T], want: Platform | str | None = None, strict: bool = False) -> T:
    """The best candidate (a descriptor, a descriptor dict with "platform", or a Platform) for `want`.

    `want` defaults to this machine's platform. Raises NotFound naming the wanted platform and what
    the candidates offer.
    """
    items = list(candidates)
    best = select_all(items, want, strict)
    if best:
        return best[0]
    w = _want(want)
    offered = sorted({format(p) for p in (_platform_of(c) for c in items) if p is not None})
    raise NotFound(f"no manifest for platform {format(w)}"
                   + (f" (available: {', '.join(offered)})" if offered else " (no candidates)"))


def _want(want: Platform | str | None) -> Platform:
    if want is None:
        return default()
    if isinstance(want, str):
        return parse(want)
    return want
