"""Who may do what: htpasswd basic auth, or the Docker token flow with a built-in token endpoint.

`make_authorizer(config)` gives None (no `auth` section) or an Authorizer. Handlers call
`await authorizer.authorize(request, repo, actions)` before doing anything:
  - repo "NAME", actions ⊆ {pull, push, delete}: access to that repository (push implies pull, as in
    Distribution, so a push is challenged with `scope="repository:NAME:pull,push"`);
  - repo None, actions empty: the `/v2/` base (any valid login or token; anonymous gets the challenge,
    as Distribution, so that clients learn the realm and `docker login` works);
  - repo None, actions non-empty: the catalog, scope `registry:catalog:*`.
It returns the account name (None when anonymous access was enough) or raises RegistryHTTPError
UNAUTHORIZED (401) carrying the `WWW-Authenticate` challenge. Like Distribution, a bearer token lacking
the scope is answered 401 with `error="insufficient_scope"` (not 403), so clients fetch a new token.

Token mode (auth.token): tokens are verified against `rootcertbundle` (and the signing key's public key);
with `signingkey`, `routes()` serves the token endpoint at the realm's path (GET with Basic credentials
from auth.htpasswd, as the Docker token spec; POST with grant_type=password, as OAuth2 clients send it).
Granted actions are requested ∩ ACL: entries match the account (or `*`, any logged-in user) and the
repository glob (`${account}` expands to the account). No ACL at all grants every logged-in user
everything; `registry:catalog:*` goes to accounts holding an entry with name `*` and action `*`.
`auth.anonymous.pull` lets anyone pull (and gets anonymous token requests a pull token).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterable
from urllib.parse import urlsplit

import bcrypt
from aiohttp import web

from . import tokens
from .config import AuthConfig, Config, HtpasswdConfig, TokenConfig
from .errors import ConfigError, RegistryHTTPError, unauthorized

log = logging.getLogger("pyregistry.auth")

ACTION_ORDER = ("pull", "push", "delete", "*")
CATALOG = tokens.Access("registry", "catalog", ("*",))
DEFAULT_TOKEN_PATH = "/auth/token"
BCRYPT_MAX = 72  # bcrypt reads only this many bytes of a password (Go's bcrypt, like Distribution)
TOKEN_CACHE = 1024  # verified tokens remembered (until they expire), so hot pulls skip the signature check


def _sorted_actions(actions: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(actions), key=lambda a: ACTION_ORDER.index(a) if a in ACTION_ORDER else 99))


def _wanted(repo: str | None, actions: set[str]) -> list[tokens.Access]:
    if repo is not None:
        if "push" in actions:  # as Distribution: writing a repository needs pull and push
            actions = actions | {"pull"}
        return [tokens.Access("repository", repo, _sorted_actions(actions))] if actions else []
    return [CATALOG] if actions else []


def _detail(wanted: list[tokens.Access]) -> list[dict]:
    # Distribution puts the access records it wanted into the error's detail.
    return [{"Type": a.type, "Name": a.name, "Action": act} for a in wanted for act in a.actions]


def _basic_credentials(request: web.Request) -> tuple[str, str] | None:
    """USER, PASSWORD of a Basic Authorization header; None when absent or empty (clients that have no
    credentials send `Basic Og==`: that is anonymous, not a wrong password)."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return ("\0", "")  # malformed: never a valid login
    if not user and not password:
        return None
    return user, password


# --- htpasswd ---------------------------------------------------------------------------------------------


class Htpasswd:
    """An htpasswd file of bcrypt entries, as Distribution reads it (`user:hash` lines, `#` comments).

    Reloaded when its mtime/size/inode change. A password that verified once is remembered as an HMAC
    (under a per-process key) so later requests skip bcrypt; bcrypt runs off the event loop, and an
    unknown user costs a bcrypt check as well, so timing does not tell which users exist.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._signature: tuple[int, int, int] | None = None
        self._entries: dict[str, bytes] = {}
        self._verified: dict[str, bytes] = {}
        self._key = secrets.token_bytes(32)
        self._dummy: bytes | None = None
        self._reload(startup=True)

    def _reload(self, startup: bool = False) -> None:
        try:
            st = os.stat(self.path)
            sig = (st.st_mtime_ns, st.st_size, st.st_ino)
            if sig == self._signature:
                return
            with open(self.path, "rb") as f:
                data = f.read()
        except OSError as e:
            if startup:
                raise ConfigError(f"auth.htpasswd.path: cannot read {self.path}: {e.strerror}") from None
            log.warning("htpasswd %s unreadable (%s); keeping the users loaded before", self.path, e.strerror)
            return
        try:
            entries = parse_htpasswd(data, self.path)
        except ConfigError as e:
            if startup:
                raise
            log.warning("%s; keeping the users loaded before", e)
            return
        for user, h in entries.items():
            if not h.startswith((b"$2a$", b"$2b$", b"$2y$", b"$2x$")):
                log.warning("htpasswd %s: user %r has no bcrypt hash and cannot log in", self.path, user)
        self._entries, self._signature = entries, sig
        self._verified = {u: m for u, m in self._verified.items() if u in entries}

    def users(self) -> list[str]:
        self._reload()
        return sorted(self._entries)

    async def verify(self, user: str, password: str) -> bool:
        self._reload()
        entry = self._entries.get(user)
        pw = password.encode("utf-8")[:BCRYPT_MAX]
        if entry is not None:
            mac = hmac.digest(self._key, entry + b"\0" + pw, "sha256")
            known = self._verified.get(user)
            if known is not None and hmac.compare_digest(known, mac):
                return True
        if self._dummy is None:
            self._dummy = bcrypt.hashpw(b"not a password", bcrypt.gensalt(10))
        ok = await asyncio.get_running_loop().run_in_executor(None, _checkpw, pw, entry or self._dummy)
        if ok and entry is not None:
            self._verified[user] = mac
            return True
        return False


def _checkpw(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:  # not a bcrypt hash (crypt, MD5, SHA1 entries): Distribution refuses those too
        return False


def parse_htpasswd(data: bytes, path: str) -> dict[str, bytes]:
    entries: dict[str, bytes] = {}
    for n, raw in enumerate(data.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(b"#"):
            continue
        user, sep, h = line.partition(b":")
        if not sep or not user:
            raise ConfigError(f"auth.htpasswd.path: {path}: line {n} is not USER:HASH")
        try:
            entries[user.decode("utf-8")] = h.strip()
        except UnicodeDecodeError:
            raise ConfigError(f"auth.htpasswd.path: {path}: line {n}: user name is not UTF-8") from None
    return entries


# --- authorizers ------------------------------------------------------------------------------------------


class Authorizer:
    """The interface handlers use; see the module docstring."""

    async def authorize(self, request: web.Request, repo: str | None, actions: set[str]) -> str | None:
        raise NotImplementedError

    def routes(self) -> list[web.RouteDef]:
        return []


def _anonymous_ok(anonymous_pull: bool, repo: str | None, actions: set[str]) -> bool:
    return anonymous_pull and repo is not None and bool(actions) and actions <= {"pull"}


class HtpasswdAuthorizer(Authorizer):
    """Basic auth as Distribution's htpasswd controller: every logged-in user may do everything."""

    def __init__(self, conf: HtpasswdConfig, anonymous_pull: bool) -> None:
        self.realm = conf.realm
        self.htpasswd = Htpasswd(conf.path)
        self.anonymous_pull = anonymous_pull

    def _challenge(self, wanted: list[tokens.Access], message: str) -> RegistryHTTPError:
        return unauthorized(message, detail=_detail(wanted) or None,
                            headers={"WWW-Authenticate": f'Basic realm="{self.realm}"'})

    async def authorize(self, request: web.Request, repo: str | None, actions: set[str]) -> str | None:
        creds = _basic_credentials(request)
        if creds is None:
            if _anonymous_ok(self.anonymous_pull, repo, actions):
                return None
            raise self._challenge(_wanted(repo, actions), "authentication required")
        user, password = creds
        if await self.htpasswd.verify(user, password):
            return user
        log.info("htpasswd: authentication failed for user %r", user)
        raise self._challenge(_wanted(repo, actions), "invalid username or password")


@dataclass
class TokenAuthorizer(Authorizer):
    conf: TokenConfig
    anonymous_pull: bool
    trust: tokens.TrustStore
    signing_key: tokens.PrivateKey | None = None
    htpasswd: Htpasswd | None = None
    public_host: str = ""  # http.host: the external base URL, for a realm given as a bare path
    _cache: dict[str, tokens.Claims] = field(default_factory=dict)

    # -- verifying ---------------------------------------------------------------------------------------

    def realm_url(self, request: web.Request) -> str:
        realm = self.conf.realm or DEFAULT_TOKEN_PATH
        if realm.startswith("/"):
            base = self.public_host.rstrip("/") or f"{request.scheme}://{request.host}"
            realm = base + realm
        return realm

    def _challenge(self, request: web.Request, wanted: list[tokens.Access], error: str = "",
                   message: str = "authentication required") -> RegistryHTTPError:
        value = f'Bearer realm="{self.realm_url(request)}",service="{self.conf.service}"'
        if wanted:
            value += f',scope="{" ".join(a.scope() for a in wanted)}"'
        if error:
            value += f',error="{error}"'
        return unauthorized(message, detail=_detail(wanted) or None, headers={"WWW-Authenticate": value})

    def _claims(self, token: str) -> tokens.Claims:
        claims = self._cache.get(token)
        if claims is not None and claims.expires + tokens.LEEWAY > time.time():
            return claims
        claims = tokens.verify(token, self.trust, self.conf.issuer, self.conf.service)
        if len(self._cache) >= TOKEN_CACHE:
            self._cache.clear()
        self._cache[token] = claims
        return claims

    async def authorize(self, request: web.Request, repo: str | None, actions: set[str]) -> str | None:
        wanted = _wanted(repo, actions)
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            if _anonymous_ok(self.anonymous_pull, repo, actions):
                return None
            raise self._challenge(request, wanted)
        try:
            claims = self._claims(value.strip())
        except tokens.TokenInvalid as e:
            log.info("token auth: %s", e)
            raise self._challenge(request, wanted, "invalid_token", "invalid token") from None
        if all(claims.allows(a.type, a.name, act) for a in wanted for act in a.actions):
            return claims.subject or None
        if _anonymous_ok(self.anonymous_pull, repo, actions):
            return None
        raise self._challenge(request, wanted, "insufficient_scope", "insufficient scope")

    # -- issuing -----------------------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        if self.signing_key is None:
            return []
        path = urlsplit(self.conf.realm).path or DEFAULT_TOKEN_PATH
        return [web.get(path, self.token_endpoint), web.post(path, self.token_endpoint)]

    def granted(self, account: str | None, want: tokens.Access) -> tokens.Access | None:
        """want ∩ what the ACL gives `account` (None = anonymous)."""
        allowed: set[str] = set()
        if want.type == "repository":
            if self.anonymous_pull:
                allowed.add("pull")
            if account is not None:
                if not self.conf.acl:
                    allowed.add("*")
                for e in self.conf.acl:
                    if e.account in (account, "*") and tokens.name_matches(e.name, want.name, account):
                        allowed.update(e.actions)
        elif want.type == "registry" and want.name == "catalog" and account is not None:
            if not self.conf.acl or any(e.account in (account, "*") and e.name == "*" and "*" in e.actions
                                        for e in self.conf.acl):
                allowed.add("*")
        if "*" in allowed:
            acts = want.actions
        else:  # a request for `*` (skopeo asks so to delete) gets whatever concrete actions are allowed
            asked = [a for w in want.actions for a in (("pull", "push", "delete") if w == "*" else (w,))]
            acts = _sorted_actions(a for a in asked if a in allowed)
        return tokens.Access(want.type, want.name, acts) if acts else None

    async def token_endpoint(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            form = await request.post()
            grant = str(form.get("grant_type", ""))
            if grant != "password":
                return _oauth_error(400, "unsupported_grant_type", f"grant_type {grant!r} is not supported")
            creds: tuple[str, str] | None = (str(form.get("username", "")), str(form.get("password", "")))
            service = str(form.get("service", ""))
            scopes = str(form.get("scope", "")).split()
            account_param = ""
        else:
            q = request.query
            creds = _basic_credentials(request)
            service = q.get("service", "")
            scopes = [s for v in q.getall("scope", []) for s in v.split()]
            account_param = q.get("account", "")
        if service and service != self.conf.service:
            return _token_error(400, "DENIED", f"unknown service {service!r}")
        account: str | None = None
        if creds is not None:
            user, password = creds
            if self.htpasswd is None or not await self.htpasswd.verify(user, password):
                log.info("token endpoint: authentication failed for user %r", user)
                return _token_error(401, "UNAUTHORIZED", "invalid username or password",
                                    {"WWW-Authenticate": 'Basic realm="pyregistry token"'})
            account = user
        if account_param and account_param != account:
            return _token_error(400, "DENIED", "account does not match the credentials")
        granted = []
        for scope in scopes:
            want = tokens.parse_scope(scope)
            if want is None:
                return _token_error(400, "DENIED", f"malformed scope {scope!r}")
            g = self.granted(account, want)
            if g is not None:
                granted.append(g)
        assert self.signing_key is not None
        token, iat = tokens.issue(self.signing_key, self.conf.issuer, account or "", self.conf.service, granted)
        issued = datetime.fromtimestamp(iat, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {"token": token, "access_token": token, "expires_in": tokens.DEFAULT_EXPIRY, "issued_at": issued}
        if request.method == "POST":
            body["scope"] = " ".join(a.scope() for a in granted)
        return web.json_response(body, headers={"Cache-Control": "no-store"})


def _token_error(status: int, code: str, message: str, headers: dict | None = None) -> web.Response:
    err = RegistryHTTPError(code, message, status=status, headers=headers)
    return web.Response(status=status, body=err.body(), content_type="application/json", headers=err.headers)


def _oauth_error(status: int, error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)


def make_authorizer(config: Config | AuthConfig) -> Authorizer | None:
    """The authorizer the config asks for; None without auth. Bad files are ConfigErrors, raised now."""
    auth = config.auth if isinstance(config, Config) else config
    public_host = config.http.host if isinstance(config, Config) else ""
    if auth.token is not None:
        t = auth.token
        key = tokens.load_private_key(t.signingkey) if t.signingkey else None
        if key is None and not t.rootcertbundle:
            raise ConfigError("auth.token: needs rootcertbundle (to verify tokens) or signingkey (to issue them)")
        trust = tokens.TrustStore.load(t.rootcertbundle, [key.public_key()] if key is not None else [])
        htpasswd = Htpasswd(auth.htpasswd.path) if auth.htpasswd is not None else None
        if key is not None and htpasswd is None and not auth.anonymous_pull:
            raise ConfigError("auth.token.signingkey: the token endpoint needs auth.htpasswd.path (its users)")
        return TokenAuthorizer(t, auth.anonymous_pull, trust, key, htpasswd, public_host)
    if auth.htpasswd is not None:
        return HtpasswdAuthorizer(auth.htpasswd, auth.anonymous_pull)
    return None
