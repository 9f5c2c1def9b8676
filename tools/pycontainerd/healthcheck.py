"""docker's health-check configuration and rules, without the monitor (pyctr imports this at `run`):
`--health-*` flags (Go durations) → Config.Healthcheck, its merge over the image's HEALTHCHECK and the
daemon's checks, with dockerd's wording; the check in seconds with docker's defaults (`HealthConfig`);
and docker's handleProbeResult (`apply_result`). The daemon's monitor is pycontainerd.health."""

from __future__ import annotations

from pyoci import goduration

from .logs import parse_time
from .records import record

DOCKER_EXT = "pyctr/docker"
HEALTH_EXT = "pyctr/health"
DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
MAX_LOG_ENTRIES = 5
MAX_OUTPUT = 4096
MINIMUM_NS = 1_000_000  # docker's MinimumDuration (1 ms)
STARTING, HEALTHY, UNHEALTHY, NONE = "starting", "healthy", "unhealthy", "none"

# -- Go durations (docker's flag values, and the timeout message): pyoci.goduration -------------------------

parse_go_duration = goduration.parse
go_duration_string = goduration.format


# -- the configuration ------------------------------------------------------------------------------------

def from_flags(cmd: str = "", interval: str = "", timeout: str = "", retries: int = 0, start_period: str = "",
               disable: bool = False) -> dict | None:
    """docker run's --health-* / --no-healthcheck → Config.Healthcheck (None: none given). ValueError with
    docker's message for a bad combination or value (a bad duration: Go's parse error)."""
    ns = {name: parse_go_duration(v) if v else 0
          for name, v in (("interval", interval), ("timeout", timeout), ("start-period", start_period))}
    given = bool(cmd) or any(ns.values()) or retries != 0
    if disable:
        if given:
            raise ValueError("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if not given:
        return None
    for name in ("interval", "timeout"):
        if ns[name] < 0:
            raise ValueError(f"--health-{name} cannot be negative")
    if retries < 0:
        raise ValueError("--health-retries cannot be negative")
    if ns["start-period"] < 0:
        raise ValueError("--health-start-period cannot be negative")
    doc: dict = {"Test": ["CMD-SHELL", cmd]} if cmd else {}
    for key, name in (("Interval", "interval"), ("Timeout", "timeout"), ("StartPeriod", "start-period")):
        if ns[name]:
            doc[key] = ns[name]
    if retries:
        doc["Retries"] = retries
    return doc


def merge(user: dict | None, image: dict | None) -> dict | None:
    """docker's merge of the container's Healthcheck over the image's: unset fields come from the image."""
    if user is None:
        return dict(image) if image else None
    out = dict(user)
    if image:
        for key in ("Test", "Interval", "Timeout", "StartPeriod", "Retries"):
            if not out.get(key) and image.get(key):
                out[key] = image[key]
    return out


def validate(doc: dict | None) -> None:
    """The daemon's checks of a Healthcheck (docker's wording)."""
    if not doc:
        return
    for key in ("Interval", "Timeout"):
        if doc.get(key) and int(doc[key]) < MINIMUM_NS:
            raise ValueError(f"{key} in Healthcheck cannot be less than 1ms")
    if int(doc.get("Retries") or 0) < 0:
        raise ValueError("Retries in Healthcheck cannot be negative")
    if doc.get("StartPeriod") and int(doc["StartPeriod"]) < MINIMUM_NS:
        raise ValueError("StartPeriod in Healthcheck cannot be less than 1ms")


@record
class HealthConfig:
    """A container's check in seconds, docker's defaults applied."""

    test: list[str]
    interval: float = DEFAULT_INTERVAL
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    start_period: float = 0.0

    @classmethod
    def from_docker(cls, doc: dict | None) -> "HealthConfig | None":
        """None when there is nothing to probe (no Test, or NONE)."""
        test = list((doc or {}).get("Test") or [])
        if not test or test[0] == "NONE":
            return None
        return cls(test, int(doc.get("Interval") or 0) / 1e9 or DEFAULT_INTERVAL,
                   int(doc.get("Timeout") or 0) / 1e9 or DEFAULT_TIMEOUT,
                   int(doc.get("Retries") or 0) if int(doc.get("Retries") or 0) > 0 else DEFAULT_RETRIES,
                   int(doc.get("StartPeriod") or 0) / 1e9)

    @classmethod
    def of_record(cls, record: dict) -> "HealthConfig | None":
        docker = (record.get("extensions") or {}).get(DOCKER_EXT) or {}
        return cls.from_docker((docker.get("Config") or {}).get("Healthcheck"))

    @property
    def args(self) -> list[str]:
        if self.test[0] == "CMD-SHELL":
            return ["/bin/sh", "-c", " ".join(self.test[1:])]
        return list(self.test[1:]) if self.test[0] == "CMD" else list(self.test)


def apply_result(health: dict, result: dict, cfg: HealthConfig, started: float) -> dict:
    """docker's handleProbeResult on `health` ({Status, FailingStreak, Log}): the new state."""
    h = {"Status": health.get("Status") or STARTING, "FailingStreak": int(health.get("FailingStreak") or 0),
         "Log": list(health.get("Log") or [])[-(MAX_LOG_ENTRIES - 1):] + [result]}
    if result["ExitCode"] == 0:
        h["FailingStreak"] = 0
        h["Status"] = HEALTHY
        return h
    if h["Status"] == STARTING and parse_time(result["Start"]) - started < cfg.start_period:
        return h  # inside the start period: not counted
    h["FailingStreak"] += 1
    if h["FailingStreak"] >= cfg.retries:
        h["Status"] = UNHEALTHY
    return h
