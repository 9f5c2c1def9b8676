"""Docker's human texts: durations ("About a minute ago", "Up 3 seconds"), sizes ("1.24MB"), times."""

from __future__ import annotations

import math
import time

# re is imported where a text is parsed: `run` parses none, and re (with enum) is ~5 ms of its start-up


def parse_time(text: str | float | int | None) -> float:
    """RFC3339(Nano) or Unix seconds → Unix seconds (0 for empty)."""
    if text in (None, "", 0):
        return 0.0
    if isinstance(text, (int, float)):
        return float(text)
    import re

    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$", text)
    if not m:
        try:
            return float(text)
        except ValueError:
            return 0.0
    import datetime as _dt  # here: `run` formats times (rfc3339nano) but parses none

    base = _dt.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")
    tz = m.group(3) or "Z"
    offset = 0 if tz == "Z" else (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60) * (1 if tz[0] == "+" else -1)
    frac = float(m.group(2)) if m.group(2) else 0.0
    return base.replace(tzinfo=_dt.timezone.utc).timestamp() - offset + frac


def rfc3339nano(ts: float) -> str:
    """Go's time.RFC3339Nano in UTC (trailing zeros of the fraction dropped)."""
    if not ts:
        return "0001-01-01T00:00:00Z"
    sec = int(ts)
    nanos = int(round((ts - sec) * 1e9))
    if nanos >= 1_000_000_000:
        sec, nanos = sec + 1, nanos - 1_000_000_000
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    frac = f"{nanos:09d}".rstrip("0")
    return base + (f".{frac}" if frac else "") + "Z"


def human_duration(seconds: float) -> str:
    """go-units HumanDuration."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(round(seconds / 3600))
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def ago(ts: float, now: float | None = None) -> str:
    return human_duration((now or time.time()) - ts) + " ago"


def human_size(size: float, precision: int = 3) -> str:
    """go-units HumanSizeWithPrecision(size, 3), as `docker images` prints sizes ("1.24MB")."""
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
    i = 0
    size = float(size)
    while size >= 1000 and i < len(units) - 1:
        size /= 1000
        i += 1
    return f"{_g(size, precision)}{units[i]}"


def bytes_size(size: float) -> str:
    """go-units BytesSize: binary units ("1.5MiB"), as docker stats prints memory."""
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    i = 0
    size = float(size)
    while size >= 1024 and i < len(units) - 1:
        size /= 1024
        i += 1
    return f"{_g(size, 4)}{units[i]}"


def _g(value: float, precision: int) -> str:
    """Go's %.<precision>g: significant digits, no trailing zeros."""
    if value == 0:
        return "0"
    text = f"{value:.{precision}g}"
    if "e" in text:
        text = f"{value:.0f}"
    return text


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration in seconds ("10s", "1m30s", "1.5h"), or plain seconds."""
    from pyoci import goduration

    try:
        return goduration.seconds(text)
    except ValueError:
        return float(text)


def ceil_int(x: float) -> int:
    return int(math.ceil(x))
