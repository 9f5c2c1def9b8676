"""Go's time.Duration as image configs and docker's flags write it: ParseDuration and String, in nanoseconds.

HEALTHCHECK's durations, docker's `--health-*`/`--since` flags and compose's durations all use Go's syntax
(`300ms`, `1m30s`, `1.5h`, `-2us`) and its error texts. Hand-scanned (no `re`): pyctr parses these on its
start-up path.
"""

from __future__ import annotations

_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
            "m": 60_000_000_000, "h": 3_600_000_000_000}
_DIGITS = "0123456789"


def parse(text: str) -> int:
    """time.ParseDuration(text) in nanoseconds; ValueError with Go's message."""
    s, neg = text, False
    if s[:1] in ("-", "+") and s:
        neg, s = s[0] == "-", s[1:]
    if s == "0":
        return 0
    if not s:
        raise ValueError(f'time: invalid duration "{text}"')
    total = 0
    while s:
        if s[0] != "." and s[0] not in _DIGITS:
            raise ValueError(f'time: invalid duration "{text}"')
        i = 0
        while i < len(s) and s[i] in _DIGITS:
            i += 1
        whole, s = s[:i], s[i:]
        frac = ""
        if s[:1] == ".":
            j = 1
            while j < len(s) and s[j] in _DIGITS:
                j += 1
            frac, s = s[1:j], s[j:]
        if not whole and not frac:  # "." alone
            raise ValueError(f'time: invalid duration "{text}"')
        i = 0
        while i < len(s) and s[i] != "." and s[i] not in _DIGITS:
            i += 1
        if i == 0:
            raise ValueError(f'time: missing unit in duration "{text}"')
        unit, s = s[:i], s[i:]
        if unit not in _UNIT_NS:
            raise ValueError(f'time: unknown unit "{unit}" in duration "{text}"')
        scale = _UNIT_NS[unit]
        total += int(whole or 0) * scale
        if frac:  # as Go: the fraction's digits scaled in floating point, truncated
            total += int(int(frac) * (scale / 10 ** len(frac)))
    return -total if neg else total


def seconds(text: str) -> float:
    """parse(text) in seconds."""
    return parse(text) / 1e9


def format(ns: int) -> str:  # noqa: A001 - Go's name for it is String
    """Duration.String(): 0s, 1.5µs, 200ms, 1.5s, 1m30s, 2h0m0s."""
    if ns == 0:
        return "0s"
    sign, u = ("-", -ns) if ns < 0 else ("", ns)
    if u < 1_000_000_000:
        for unit, scale in (("ns", 1), ("µs", 1_000), ("ms", 1_000_000)):
            if u < scale * 1000:
                return sign + _frac(u, scale) + unit
    secs, rest = divmod(u, 1_000_000_000)
    h, rem = divmod(secs, 3600)
    m, sec = divmod(rem, 60)
    out = _frac(sec * 1_000_000_000 + rest, 1_000_000_000) + "s"
    if h or m:
        out = f"{m}m" + out
    if h:
        out = f"{h}h" + out
    return sign + out


def _frac(value: int, unit: int) -> str:
    whole, part = divmod(value, unit)
    if not part:
        return str(whole)
    return f"{whole}.{str(part).rjust(len(str(unit)) - 1, '0').rstrip('0')}"
