"""Registry authentication: `WWW-Authenticate` challenges, Docker's credential store, and the token flow.

The token flow is the one of the distribution spec ("docker/distribution token auth"): the registry
answers 401 with `Bearer realm=...,service=...,scope=...`; we GET the realm with that service and the
scopes we need (basic credentials if we have any, anonymous otherwise) and retry with the token.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping

import requests

from ..errors import AuthError, RegistryError

# RFC 7230 token characters, and the RFC 7235 token68 form.
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PARAM = re.compile(r"(" + _TOKEN + r")\s*=\s*(?:\"((?:[^\"\\]|\\.)*)\"|(" + _TOKEN + r"))")
_SCHEME = re.compile(_TOKEN)
_TOKEN68 = re.compile(r"[A-Za-z0-9._~+/-]+=*")

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
DOCKER_HUB_HOSTS = ("docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com")
DEFAULT_TOKEN_LIFETIME = 60  # seconds; the token spec's default when expires_in is absent


@dataclass(frozen=True)
class Challenge:
    """One challenge of a `WWW-Authenticate` header; `scheme` is lower-case, param names too."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=dict)
    token68: str = ""

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def service(self) -> str:
        return self.params.get("service", "")

    @property
    def scopes(self) -> tuple[str, ...]:
        # Several scopes may be space-separated in one parameter.
        return tuple(self.params.get("scope", "").split())


def parse_www_authenticate(header: str) -> list[Challenge]:
    """All challenges of a `WWW-Authenticate` value, e.g. `Basic realm="r", Bearer realm="x",scope="a,b"`."""
    challenges: list[Challenge] = []
    pos, n = 0, len(header)

    def skip(chars: str) -> None:
        nonlocal pos
        while pos < n and header[pos] in chars:
            pos += 1

    while True:
        skip(" \t,")
        if pos >= n:
            break
        m = _SCHEME.match(header, pos)
        if not m:
            raise AuthError(f"malformed WWW-Authenticate header {header!r} at offset {pos}")
        scheme, pos = m.group(0).lower(), m.end()
        params: dict[str, str] = {}
        token68 = ""
        skip(" \t")
        # After the scheme: auth-params (name=value, comma-separated), a token68, or nothing.
        while pos < n:
            p = _PARAM.match(header, pos)
            if p is None:
                t = _TOKEN68.match(header, pos)
                if t and not params and not token68 and _at_separator(header, t.end()):
                    token68, pos = t.group(0), t.end()
                    skip(" \t")
                    continue
                break  # next challenge's scheme
            name = p.group(1).lower()
            value = re.sub(r"\\(.)", r"\1", p.group(2)) if p.group(2) is not None else p.group(3)
            params[name] = value
            pos = p.end()
            skip(" \t")
            if pos < n and header[pos] != ",":
                raise AuthError(f"malformed WWW-Authenticate header {header!r} at offset {pos}")
            skip(" \t,")
            # A bare token not followed by '=' starts the next challenge.
            if pos < n and not _PARAM.match(header, pos):
                break
        challenges.append(Challenge(scheme, params, token68))
    return challenges


def _at_separator(s: str, i: int) -> bool:
    while i < len(s) and s[i] in " \t":
        i += 1
    return i >= len(s) or s[i] == ","


# --- credentials ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    username: str = ""
    password: str = ""
    identity_token: str = ""  # an OAuth2 refresh token (docker login to some registries stores this)

    def __repr__(self) -> str:  # never print secrets
        return f"Credentials(username={self.username!r}, password=***)"


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """The Docker client config: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`."""
    env = os.environ if env is None else env
    if env.get("DOCKER_CONFIG"):
        return Path(env["DOCKER_CONFIG"]) / "config.json"
    home = env.get("HOME") or os.path.expanduser("~")
    return Path(home) / ".docker" / "config.json"


def normalize_registry(host: str) -> str:
    """The key form Docker compares config entries with: no scheme, no path; Docker Hub as `docker.io`."""
    host = re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", "", host.strip()).split("/", 1)[0].lower()
    return "docker.io" if host in DOCKER_HUB_HOSTS else host


def _helper_server_url(registry: str) -> str:
    # Helpers store Docker Hub under its legacy v1 URL, everything else under the bare host.
    return DOCKER_HUB_KEY if registry == "docker.io" else registry


def load_credentials(registry: str, env: Mapping[str, str] | None = None,
                     runner: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> Credentials | None:
    """Credentials for `registry` from the Docker config (credHelpers > credsStore > auths), or None."""
    path = config_path(env)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise AuthError(f"cannot read {path}: {e.strerror}") from None
    try:
        config = json.loads(raw or b"{}")
    except ValueError as e:
        raise AuthError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(config, dict):
        raise AuthError(f"{path}: not a JSON object")
    key = normalize_registry(registry)

    helpers = config.get("credHelpers") or {}
    helper = next((h for k, h in helpers.items() if normalize_registry(k) == key), None)
    if helper:
        return _from_helper(helper, key, path, "credHelpers", env, runner)

    entry = next((v for k, v in (config.get("auths") or {}).items() if normalize_registry(k) == key), None)
    if isinstance(entry, dict):
        creds = _from_auth_entry(entry, key, path)
        if creds is not None:
            return creds

    if config.get("credsStore"):
        return _from_helper(config["credsStore"], key, path, "credsStore", env, runner)
    return None


def _from_auth_entry(entry: dict, key: str, path: Path) -> Credentials | None:
    username, password = entry.get("username") or "", entry.get("password") or ""
    if entry.get("auth"):
        try:
            decoded = base64.b64decode(entry["auth"], validate=False).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            raise AuthError(f"{path}: auths[{key!r}].auth is not base64 of USER:PASSWORD") from None
        if ":" not in decoded:
            raise AuthError(f"{path}: auths[{key!r}].auth is not base64 of USER:PASSWORD")
        username, password = decoded.split(":", 1)
    token = entry.get("identitytoken") or ""
    if not (username or password or token):
        return None
    return Credentials(username, password, token)


def _from_helper(name: str, key: str, path: Path, field_name: str, env: Mapping[str, str] | None,
                 runner: Callable[..., subprocess.CompletedProcess]) -> Credentials | None:
    program = f"docker-credential-{name}"
    search_path = (os.environ if env is None else env).get("PATH")
    exe = shutil.which(program, path=search_path)
    if exe is None:
        raise AuthError(f"{path}: {field_name} names {name!r} but {program} is not in PATH")
    proc = runner([exe, "get"], input=_helper_server_url(key).encode(), capture_output=True, timeout=60,
                  env=None if env is None else dict(env))
    out = proc.stdout.decode("utf-8", "replace").strip()
    if proc.returncode != 0:
        err = (out or proc.stderr.decode("utf-8", "replace")).strip().splitlines()
        if err and "credentials not found" in err[0].lower():
            return None
        raise AuthError(f"{program} get failed for {key}: {err[0] if err else f'exit status {proc.returncode}'}")
    try:
        doc = json.loads(out)
        username, secret = doc.get("Username", ""), doc.get("Secret", "")
    except (ValueError, AttributeError):
        raise AuthError(f"{program} get returned invalid JSON for {key}") from None
    if username == "<token>":  # the helper protocol's marker for an identity token
        return Credentials(identity_token=secret)
    return Credentials(username, secret)


# --- scopes and tokens -----------------------------------------------------------------------------


def repo_scope(repo: str, *actions: str) -> str:
    return f"repository:{repo}:{','.join(actions)}"


def merge_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """Union of scopes, actions merged per resource: `repository:a:pull` + `repository:a:push` -> `...:pull,push`."""
    merged: dict[str, list[str]] = {}
    for scope in scopes:
        resource, _, actions = scope.rpartition(":")
        if not resource:
            resource, actions = scope, ""
        acts = merged.setdefault(resource, [])
        for a in filter(None, actions.split(",")):
            if a not in acts:
                acts.append(a)
    return tuple(sorted(f"{r}:{','.join(sorted(a))}" if a else r for r, a in merged.items()))


@dataclass
class _Token:
    value: str
    expires: float  # time.monotonic() deadline


class TokenAuth:
    """Answers registry challenges for one registry host, caching bearer tokens per scope set.

    `session` is the client's requests.Session (keep-alive); `credentials` is called at most once,
    lazily, so the Docker config is read only when a registry actually asks for credentials.
    """

    def __init__(self, registry: str, session: requests.Session,
                 credentials: Callable[[], Credentials | None], timeout: float | tuple[float, float] = 60,
                 clock: Callable[[], float] = time.monotonic, config_file: str = "") -> None:
        self.registry = registry
        self.config_file = config_file or str(config_path())
        self.session = session
        self._credentials_fn = credentials
        self._credentials: Credentials | None = None
        self._loaded = False
        self.timeout = timeout
        self.clock = clock
        self.tokens: dict[tuple[str, frozenset[str]], _Token] = {}
        self.challenge: Challenge | None = None  # the last one the registry sent, reused up front
        self.token_requests = 0  # counted for tests and diagnostics

    @property
    def credentials(self) -> Credentials | None:
        if not self._loaded:
            self._credentials = self._credentials_fn()
            self._loaded = True
        return self._credentials

    def header(self, scopes: Iterable[str]) -> str | None:
        """An Authorization value to send before any challenge, from what an earlier one taught us."""
        ch = self.challenge
        if ch is None:
            return None
        if ch.scheme == "basic":
            return self._basic()
        if ch.scheme == "bearer":
            tok = self.tokens.get(self._key(ch, scopes, with_challenge=False))
            if tok is not None and tok.expires > self.clock():
                return f"Bearer {tok.value}"
        return None

    def answer(self, www_authenticate: str, scopes: Iterable[str]) -> str:
        """The Authorization value answering a 401's challenges for `scopes` (fetching a token if needed)."""
        challenges = parse_www_authenticate(www_authenticate or "")
        by_scheme = {c.scheme: c for c in challenges}
        ch = by_scheme.get("bearer") or by_scheme.get("basic")
        if ch is None:
            raise AuthError(f"unauthorized: {self.registry} asks for an unsupported authentication scheme "
                            f"({www_authenticate or 'no WWW-Authenticate header'})")
        self.challenge = ch
        if ch.scheme == "basic":
            value = self._basic()
            if value is None:
                raise AuthError(f"unauthorized: authentication required for {self.registry} "
                                f"(no credentials given or found in {self.config_file})")
            return value
        return f"Bearer {self._token(ch, scopes)}"

    def forget(self, scopes: Iterable[str]) -> None:
        """Drop the cached token for `scopes` (the registry refused it: revoked or expired early)."""
        if self.challenge is not None:
            self.tokens.pop(self._key(self.challenge, scopes, with_challenge=False), None)

    def _basic(self) -> str | None:
        c = self.credentials
        if c is None or not (c.username or c.password):
            return None
        return "Basic " + base64.b64encode(f"{c.username}:{c.password}".encode()).decode()

    def _key(self, ch: Challenge, scopes: Iterable[str], with_challenge: bool = True) -> tuple[str, frozenset[str]]:
        wanted = [*ch.scopes, *scopes] if with_challenge else list(scopes)
        return (ch.realm + "|" + ch.service, frozenset(merge_scopes(wanted)))

    def _token(self, ch: Challenge, scopes: Iterable[str]) -> str:
        scopes = tuple(scopes)
        key = self._key(ch, scopes)
        tok = self.tokens.get(key)
        now = self.clock()
        if tok is not None and tok.expires > now:
            return tok.value
        if not ch.realm.startswith(("http://", "https://")):
            raise AuthError(f"unauthorized: {self.registry} sent a bearer challenge without a usable realm "
                            f"({ch.realm!r})")
        wanted = sorted(key[1])
        creds = self.credentials
        try:
            if creds is not None and creds.identity_token:
                # OAuth2 refresh-token grant, as docker does for identity tokens.
                resp = self.session.post(ch.realm, timeout=self.timeout, data={
                    "grant_type": "refresh_token", "refresh_token": creds.identity_token,
                    "service": ch.service, "scope": " ".join(wanted), "client_id": "pyoci"})
            else:
                params = [("service", ch.service)] if ch.service else []
                params += [("scope", s) for s in wanted]
                auth = (creds.username, creds.password) if creds and (creds.username or creds.password) else None
                resp = self.session.get(ch.realm, params=params, auth=auth, timeout=self.timeout)
        except requests.RequestException as e:
            raise RegistryError(f"token request to {ch.realm} failed: {_reason(e)}") from None
        self.token_requests += 1
        if resp.status_code in (401, 403):
            what = "wrong username or password" if creds else "anonymous access refused"
            raise AuthError(f"unauthorized: {what} for {self.registry} (token server {ch.realm} answered "
                            f"{resp.status_code})", resp.status_code, "UNAUTHORIZED")
        if resp.status_code != 200:
            raise RegistryError(f"token request to {ch.realm} failed: HTTP {resp.status_code}", resp.status_code)
        try:
            doc = resp.json()
            value = doc.get("token") or doc.get("access_token")
        except (ValueError, AttributeError):
            value = None
        if not value or not isinstance(value, str):
            raise AuthError(f"token server {ch.realm} returned no token for {self.registry}")
        try:
            lifetime = max(int(doc.get("expires_in") or DEFAULT_TOKEN_LIFETIME), 1)
        except (TypeError, ValueError):
            lifetime = DEFAULT_TOKEN_LIFETIME
        # Renew a little early so a token does not expire between our check and the request.
        tok = _Token(value, now + lifetime - min(5, lifetime / 10))
        # Cached under the merged scope set and under what the caller asked for, so the next call for
        # the same scopes sends the token up front instead of collecting another 401.
        self.tokens[key] = tok
        self.tokens[self._key(ch, scopes, with_challenge=False)] = tok
        return value


def _reason(e: Exception) -> str:
    """A short reason for a transport error (requests nests urllib3's, whose str() is a repr soup)."""
    text = str(e)
    for needle, reason in (("Connection refused", "connection refused"), ("timed out", "timed out"),
                           ("Name or service not known", "host name does not resolve"),
                           ("NameResolutionError", "host name does not resolve"),
                           ("CERTIFICATE_VERIFY_FAILED", "TLS certificate verification failed"),
                           ("WRONG_VERSION_NUMBER", "TLS handshake failed (is it plain HTTP?)")):
        if needle in text:
            return reason
    if e.args and isinstance(e.args[0], str):
        text = e.args[0]
    return text.splitlines()[0][:200] if text else type(e).__name__
