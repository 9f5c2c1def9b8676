"""pyregistry's configuration: Distribution's config.yml shape (the keys pyregistry uses) plus a few additions.

Distribution keys understood:
  version; log: {level, formatter, accesslog: {disabled}}; storage: {filesystem: {rootdirectory}, delete: {enabled},
  maintenance: {uploadpurging: {enabled, age, interval, dryrun}}}; http: {addr, host, tls: {certificate, key}};
  auth: {htpasswd: {realm, path}} or {token: {realm, service, issuer, rootcertbundle}}.
pyregistry's additions: auth.token.signingkey (PEM private key that signs the built-in token endpoint's JWTs),
  auth.token.acl: [{account, name (glob), actions: [pull, push, delete, '*']}], auth.anonymous: {pull: bool},
  http.maxmanifestsize (bytes, default 4 MiB).
Sections of Distribution's config that pyregistry does not use (storage.cache, http.headers, health,
notifications, ...) are accepted and ignored so that an existing config.yml loads as it is; any other key is an error.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import ConfigError

DEFAULT_ROOT = "/var/lib/pyregistry"
DEFAULT_ADDR = "127.0.0.1:5000"
DEFAULT_MAX_MANIFEST_SIZE = 4 * 1024 * 1024
ACTIONS = ("pull", "push", "delete", "*")


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"          # debug | info | warn | error
    formatter: str = "text"      # text | json | logstash (treated as json)
    accesslog: bool = True       # log.accesslog.disabled: true turns the per-request lines off


@dataclass(frozen=True)
class UploadPurging:
    enabled: bool = True
    age: float = 168 * 3600.0     # seconds; an upload session older than this is removed
    interval: float = 24 * 3600.0  # seconds between purges
    dryrun: bool = False


@dataclass(frozen=True)
class StorageConfig:
    rootdirectory: str = DEFAULT_ROOT
    delete_enabled: bool = False
    uploadpurging: UploadPurging = field(default_factory=UploadPurging)


@dataclass(frozen=True)
class HTTPConfig:
    addr: str = DEFAULT_ADDR
    host: str = ""               # external base URL (e.g. https://registry.example); "" = from the request
    tls_certificate: str = ""
    tls_key: str = ""
    maxmanifestsize: int = DEFAULT_MAX_MANIFEST_SIZE

    @property
    def tls(self) -> bool:
        return bool(self.tls_certificate and self.tls_key)

    @property
    def host_port(self) -> tuple[str, int]:
        """addr split for binding; Distribution's ":5000" means every interface."""
        host, _, port = self.addr.rpartition(":")
        host = host.strip("[]") or "0.0.0.0"
        return host, int(port)


@dataclass(frozen=True)
class HtpasswdConfig:
    realm: str
    path: str


@dataclass(frozen=True)
class AclEntry:
    account: str                 # htpasswd user name, or "*" for any authenticated user
    name: str                    # repository glob (fnmatch), e.g. "team/*"
    actions: tuple[str, ...]     # subset of pull, push, delete, *


@dataclass(frozen=True)
class TokenConfig:
    realm: str
    service: str
    issuer: str
    rootcertbundle: str = ""     # PEM certificate(s) or public key(s) that verify tokens
    signingkey: str = ""         # PEM private key for the built-in token endpoint
    acl: tuple[AclEntry, ...] = ()


@dataclass(frozen=True)
class AuthConfig:
    htpasswd: HtpasswdConfig | None = None
    token: TokenConfig | None = None
    anonymous_pull: bool = False

    @property
    def enabled(self) -> bool:
        return self.htpasswd is not None or self.token is not None


@dataclass(frozen=True)
class Config:
    version: str = "0.1"
    log: LogConfig = field(default_factory=LogConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    http: HTTPConfig = field(default_factory=HTTPConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    source: str = ""             # the file it was loaded from ("" = defaults)

    @property
    def root(self) -> str:
        return self.storage.rootdirectory

    @property
    def addr(self) -> str:
        return self.http.addr

    def with_overrides(self, addr: str | None = None, root: str | None = None) -> "Config":
        """Command-line flags win over the file."""
        cfg = self
        if addr:
            _check_addr(addr, "--addr")
            cfg = dataclasses.replace(cfg, http=dataclasses.replace(cfg.http, addr=addr))
        if root:
            cfg = dataclasses.replace(cfg, storage=dataclasses.replace(cfg.storage, rootdirectory=os.path.abspath(root)))
        return cfg


# --- loading ---------------------------------------------------------------------------------------------------

# Distribution sections accepted and ignored (pyregistry has no use for them).
_IGNORED = {
    "": {"health", "notifications", "redis", "reporting", "middleware", "proxy", "compatibility", "validation",
         "loglevel", "policy"},
    "log": {"fields", "hooks", "reportcaller"},
    "storage": {"cache", "redirect", "tag"},
    "storage.filesystem": {"maxthreads"},
    "storage.maintenance": {"readonly"},
    "http": {"headers", "secret", "prefix", "relativeurls", "debug", "http2", "draintimeout", "net"},
    "http.tls": {"clientcas", "letsencrypt", "minimumtls", "ciphersuites"},
}


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.source}: {key}: {problem}")

    def section(self, doc: Any, key: str, allowed: set[str]) -> dict:
        if doc is None:
            return {}
        if not isinstance(doc, dict):
            raise self.fail(key or "(top level)", "must be a mapping")
        ignored = _IGNORED.get(key, set())
        for k in doc:
            if not isinstance(k, str) or (k not in allowed and k not in ignored):
                name = f"{key}.{k}" if key else str(k)
                raise self.fail(name, "unknown key")
        return doc

    def get(self, doc: dict, key: str, name: str, conv: Callable[[Any, str], Any], default: Any) -> Any:
        if key not in doc or doc[key] is None:
            return default
        return conv(doc[key], name)

    # converters
    def boolean(self, v: Any, name: str) -> bool:
        if isinstance(v, bool):
            return v
        if isinstance(v, str) and v.lower() in ("true", "false"):
            return v.lower() == "true"
        raise self.fail(name, "must be a boolean")

    def string(self, v: Any, name: str) -> str:
        if isinstance(v, (str, int, float)) and not isinstance(v, bool):
            return str(v)
        raise self.fail(name, "must be a string")

    def integer(self, v: Any, name: str) -> int:
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
        raise self.fail(name, "must be a positive integer")

    def duration(self, v: Any, name: str) -> float:
        """Go durations as Distribution takes them ("168h", "10m30s", "500ms"); a bare number is nanoseconds."""
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v) / 1e9
        if isinstance(v, str):
            parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", v.strip())
            if parts and "".join(n + u for n, u in parts) == v.strip():
                scale = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
                return sum(float(n) * scale[u] for n, u in parts)
        raise self.fail(name, "must be a duration such as 168h, 10m or 30s")

    def level(self, v: Any, name: str) -> str:
        s = self.string(v, name).lower()
        s = {"warning": "warn", "fatal": "error", "panic": "error"}.get(s, s)
        if s not in ("debug", "info", "warn", "error"):
            raise self.fail(name, "must be one of debug, info, warn, error")
        return s

    def formatter(self, v: Any, name: str) -> str:
        s = self.string(v, name).lower()
        if s not in ("text", "json", "logstash"):
            raise self.fail(name, "must be one of text, json, logstash")
        return s


def _check_addr(addr: str, name: str, reader: _Reader | None = None) -> str:
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        msg = f"{name}: must be HOST:PORT (e.g. 127.0.0.1:5000 or :5000), got {addr!r}"
        raise reader.fail(name, f"must be HOST:PORT, got {addr!r}") if reader else ConfigError(msg)
    return addr


def parse(doc: Any, source: str = "config") -> Config:
    """A Config from an already-parsed YAML document."""
    r = _Reader(source)
    top = r.section(doc, "", {"version", "log", "storage", "http", "auth"})
    version = r.get(top, "version", "version", r.string, "0.1")

    log_doc = r.section(top.get("log"), "log", {"level", "formatter", "accesslog"})
    access_doc = r.section(log_doc.get("accesslog"), "log.accesslog", {"disabled"})
    log = LogConfig(level=r.get(log_doc, "level", "log.level", r.level, "info"),
                    formatter=r.get(log_doc, "formatter", "log.formatter", r.formatter, "text"),
                    accesslog=not r.get(access_doc, "disabled", "log.accesslog.disabled", r.boolean, False))
    if "loglevel" in top and top["loglevel"] is not None and "level" not in log_doc:
        log = dataclasses.replace(log, level=r.level(top["loglevel"], "loglevel"))

    st = r.section(top.get("storage"), "storage", {"filesystem", "delete", "maintenance"})
    fs = r.section(st.get("filesystem"), "storage.filesystem", {"rootdirectory"})
    root = r.get(fs, "rootdirectory", "storage.filesystem.rootdirectory", r.string, DEFAULT_ROOT)
    dl = r.section(st.get("delete"), "storage.delete", {"enabled"})
    mt = r.section(st.get("maintenance"), "storage.maintenance", {"uploadpurging"})
    up = r.section(mt.get("uploadpurging"), "storage.maintenance.uploadpurging",
                   {"enabled", "age", "interval", "dryrun"})
    p = "storage.maintenance.uploadpurging."
    purging = UploadPurging(enabled=r.get(up, "enabled", p + "enabled", r.boolean, True),
                            age=r.get(up, "age", p + "age", r.duration, 168 * 3600.0),
                            interval=r.get(up, "interval", p + "interval", r.duration, 24 * 3600.0),
                            dryrun=r.get(up, "dryrun", p + "dryrun", r.boolean, False))
    storage = StorageConfig(rootdirectory=root,
                            delete_enabled=r.get(dl, "enabled", "storage.delete.enabled", r.boolean, False),
                            uploadpurging=purging)

    hd = r.section(top.get("http"), "http", {"addr", "host", "tls", "maxmanifestsize"})
    tls = r.section(hd.get("tls"), "http.tls", {"certificate", "key"})
    addr = r.get(hd, "addr", "http.addr", r.string, DEFAULT_ADDR)
    _check_addr(addr, "http.addr", r)
    http = HTTPConfig(addr=addr, host=r.get(hd, "host", "http.host", r.string, ""),
                      tls_certificate=r.get(tls, "certificate", "http.tls.certificate", r.string, ""),
                      tls_key=r.get(tls, "key", "http.tls.key", r.string, ""),
                      maxmanifestsize=r.get(hd, "maxmanifestsize", "http.maxmanifestsize", r.integer,
                                            DEFAULT_MAX_MANIFEST_SIZE))
    if bool(http.tls_certificate) != bool(http.tls_key):
        raise r.fail("http.tls", "needs both certificate and key")

    return Config(version=version, log=log, storage=storage, http=http, auth=_auth(r, top.get("auth")),
                  source=source if source != "config" else "")


def _auth(r: _Reader, doc: Any) -> AuthConfig:
    ad = r.section(doc, "auth", {"htpasswd", "token", "anonymous", "silly", "none"})
    for unsupported in ("silly",):
        if unsupported in ad:
            raise r.fail(f"auth.{unsupported}", "not supported by pyregistry (use htpasswd or token)")
    htpasswd = token = None
    if ad.get("htpasswd") is not None:
        hp = r.section(ad["htpasswd"], "auth.htpasswd", {"realm", "path"})
        for k in ("realm", "path"):
            if hp.get(k) is None:
                raise r.fail(f"auth.htpasswd.{k}", "is required")
        htpasswd = HtpasswdConfig(realm=r.string(hp["realm"], "auth.htpasswd.realm"),
                                  path=r.string(hp["path"], "auth.htpasswd.path"))
    if ad.get("token") is not None:
        td = r.section(ad["token"], "auth.token",
                       {"realm", "service", "issuer", "rootcertbundle", "signingkey", "acl", "autoredirect",
                        "jwks"})
        for k in ("realm", "service", "issuer"):
            if td.get(k) is None:
                raise r.fail(f"auth.token.{k}", "is required")
        acl = []
        raw_acl = td.get("acl") or []
        if not isinstance(raw_acl, list):
            raise r.fail("auth.token.acl", "must be a list")
        for i, entry in enumerate(raw_acl):
            key = f"auth.token.acl[{i}]"
            e = r.section(entry, key, {"account", "name", "actions"})
            actions = e.get("actions")
            if not isinstance(actions, list) or not all(a in ACTIONS for a in actions):
                raise r.fail(f"{key}.actions", "must be a list of pull, push, delete, '*'")
            acl.append(AclEntry(account=r.get(e, "account", f"{key}.account", r.string, "*"),
                                name=r.get(e, "name", f"{key}.name", r.string, "*"),
                                actions=tuple(actions)))
        token = TokenConfig(realm=r.string(td["realm"], "auth.token.realm"),
                            service=r.string(td["service"], "auth.token.service"),
                            issuer=r.string(td["issuer"], "auth.token.issuer"),
                            rootcertbundle=r.get(td, "rootcertbundle", "auth.token.rootcertbundle", r.string, ""),
                            signingkey=r.get(td, "signingkey", "auth.token.signingkey", r.string, ""),
                            acl=tuple(acl))
    an = r.section(ad.get("anonymous"), "auth.anonymous", {"pull"})
    return AuthConfig(htpasswd=htpasswd, token=token,
                      anonymous_pull=r.get(an, "pull", "auth.anonymous.pull", r.boolean, False))


def load(path: str | os.PathLike | None) -> Config:
    """Read a config.yml; None gives the defaults (root /var/lib/pyregistry, addr 127.0.0.1:5000)."""
    if path is None:
        return Config()
    import yaml

    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except OSError as e:
        raise ConfigError(f"{source}: cannot read: {e.strerror}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{source}: not valid YAML{where}: {getattr(e, 'problem', None) or e}") from None
    cfg = parse(doc if doc is not None else {}, os.path.basename(source))
    return dataclasses.replace(cfg, source=source)
