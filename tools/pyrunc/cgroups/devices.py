"""Device access rules: linux.resources.devices plus runc's default allow list, and their v1 cgroup form."""

from __future__ import annotations

from pyrunc.records import record

from pyrunc.errors import ConfigError

WILDCARD = -1


class Rule(record("Rule", "type major minor access allow")):
    """One device rule: type "a", "c" or "b"; major/minor (WILDCARD for any); access, a subset of "rwm"; allow.

    A record (records.py), not a dataclass: dataclasses and typing cost ~10-15ms of import on the start path.
    """

    __slots__ = ()

    def cgroup_string(self) -> str:
        """The v1 devices.allow/deny line, e.g. "c 1:3 rwm" or "a *:* rwm"."""
        major = "*" if self.major == WILDCARD else str(self.major)
        minor = "*" if self.minor == WILDCARD else str(self.minor)
        return f"{self.type} {major}:{minor} {self.access}"

    @property
    def is_everything(self) -> bool:
        return self.type == "a" and self.major == WILDCARD and self.minor == WILDCARD and set(self.access) == set("rwm")


# runc 1.1's specconv.AllowedDevices: mknod of anything, the standard character devices, ptys and tun/tap.
DEFAULT_ALLOWED: tuple[tuple[str, Rule], ...] = (
    ("", Rule("c", WILDCARD, WILDCARD, "m", True)),
    ("", Rule("b", WILDCARD, WILDCARD, "m", True)),
    ("/dev/null", Rule("c", 1, 3, "rwm", True)),
    ("/dev/random", Rule("c", 1, 8, "rwm", True)),
    ("/dev/full", Rule("c", 1, 7, "rwm", True)),
    ("/dev/tty", Rule("c", 5, 0, "rwm", True)),
    ("/dev/zero", Rule("c", 1, 5, "rwm", True)),
    ("/dev/urandom", Rule("c", 1, 9, "rwm", True)),
    ("", Rule("c", 136, WILDCARD, "rwm", True)),  # /dev/pts/*
    ("", Rule("c", 5, 2, "rwm", True)),  # /dev/ptmx
    ("", Rule("c", 10, 200, "rwm", True)),  # /dev/net/tun
)


def from_spec(rules: list[dict] | None, linux_devices: list[dict] | None = None) -> list[Rule]:
    """runc's order: the config's rules, then the default allow list.

    linux.devices entries get a device node but no cgroup rule of their own; one with the path of a default
    device takes that default's place, so its rule is dropped (runc 1.1 createDevices: checked against runc).
    """
    out: list[Rule] = []
    for i, d in enumerate(rules or ()):
        where = f"linux.resources.devices[{i}]"
        kind = d.get("type") or "a"
        if kind not in ("a", "c", "u", "b"):
            raise ConfigError(f"{where}.type: invalid cgroup device type {kind!r}")
        access = d.get("access") or ""
        if not access:
            raise ConfigError(f"device access at {i} field cannot be empty ({where}.access)")
        if set(access) - set("rwm"):
            raise ConfigError(f"{where}.access: invalid device access {access!r}")
        major = d.get("major")
        minor = d.get("minor")
        out.append(Rule("c" if kind == "u" else kind, WILDCARD if major is None else major,
                        WILDCARD if minor is None else minor, access, bool(d.get("allow"))))
    taken = {d.get("path") for d in linux_devices or ()}
    out.extend(rule for path, rule in DEFAULT_ALLOWED if not path or path not in taken)
    return out


def _sort_key(line: str) -> tuple:
    kind, nums, _ = line.split(" ")
    major, minor = (-1 if x == "*" else int(x) for x in nums.split(":"))
    return kind, major, minor


def v1_target(rules: list[Rule]) -> tuple[bool, list[str]]:
    """Replay the rules from runc's start (deny everything): (default allow?, sorted exception lines) after them.

    A model of the kernel's v1 device cgroup, like runc's devices emulator.
    """
    default_allow = False
    exceptions: dict[tuple[str, int, int], set[str]] = {}
    for r in rules:
        if r.type == "a" and r.major == WILDCARD and r.minor == WILDCARD:
            default_allow = r.allow
            exceptions.clear()
            continue
        key = (r.type, r.major, r.minor)
        if r.allow != default_allow:
            exceptions.setdefault(key, set()).update(r.access)
        elif key in exceptions:
            exceptions[key] -= set(r.access)
            if not exceptions[key]:
                del exceptions[key]
    lines = []
    for (kind, major, minor), perms in exceptions.items():
        access = "".join(p for p in "rwm" if p in perms)
        lines.append(Rule(kind, major, minor, access, not default_allow).cgroup_string())
    return default_allow, sorted(lines, key=_sort_key)


def v1_current(devices_list: str) -> tuple[bool, list[str]]:
    """Parse devices.list: "a *:* rwm" alone means allow everything."""
    lines = [line.strip() for line in devices_list.splitlines() if line.strip()]
    if lines == ["a *:* rwm"]:
        return True, []
    return False, sorted(lines, key=_sort_key)


def v1_writes(rules: list[Rule]) -> list[tuple[str, str]]:
    """(file, line) writes that put a v1 devices cgroup into the state the rules describe (sorted, as runc)."""
    default_allow, lines = v1_target(rules)
    if default_allow:
        return [("devices.allow", "a")] + [("devices.deny", line) for line in lines]
    return [("devices.deny", "a")] + [("devices.allow", line) for line in lines]
