"""Registry auth: WWW-Authenticate parsing, Docker config credentials, basic auth against docker-registry,
and the bearer token flow against an in-process fake registry and token server."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from pyoci import digest as dg
from pyoci import mediatypes as mt
from pyoci.errors import AuthError
from pyoci.registry import RegistryClient
from pyoci.registry.auth import Challenge, Credentials, load_credentials, merge_scopes, parse_www_authenticate
from tests.pyoci.registry_fixtures import FakeServer, Registry, auth_registry  # noqa: F401  (fixture)

# --- WWW-Authenticate ------------------------------------------------------------------------------

PARSE_CASES = [
    ('Basic realm="Registry Realm"', [("basic", {"realm": "Registry Realm"})]),
    ('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
     'scope="repository:samalba/my-app:pull,push"',
     [("bearer", {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                  "scope": "repository:samalba/my-app:pull,push"})]),
    # several challenges, commas inside quoted strings, spaces around '='
    ('Basic realm="a, b", Bearer realm = "https://t/x" , scope="repository:a:pull,push"',
     [("basic", {"realm": "a, b"}), ("bearer", {"realm": "https://t/x", "scope": "repository:a:pull,push"})]),
    # RFC 7235's own example: unquoted values, an escaped quote
    ('Newauth realm="apps", type=1, title="Login to \\"apps\\"", Basic realm="simple"',
     [("newauth", {"realm": "apps", "type": "1", "title": 'Login to "apps"'}), ("basic", {"realm": "simple"})]),
    ('BEARER Realm="r"', [("bearer", {"realm": "r"})]),
    ('Negotiate, Basic realm="x"', [("negotiate", {}), ("basic", {"realm": "x"})]),
    ("", []),
]


@pytest.mark.parametrize("header,want", PARSE_CASES)
def test_parse_www_authenticate(header: str, want: list) -> None:
    got = parse_www_authenticate(header)
    assert [(c.scheme, dict(c.params)) for c in got] == want


def test_parse_token68_and_scopes() -> None:
    (neg, basic) = parse_www_authenticate("Negotiate abc+/de==, Basic realm=x")
    assert (neg.scheme, neg.token68, basic.realm) == ("negotiate", "abc+/de==", "x")
    ch = parse_www_authenticate('Bearer realm="r",scope="repository:a:pull repository:b:pull,push"')[0]
    assert ch.scopes == ("repository:a:pull", "repository:b:pull,push")


def test_parse_malformed_header_is_an_auth_error() -> None:
    with pytest.raises(AuthError):
        parse_www_authenticate('Bearer realm="unterminated')


def test_merge_scopes() -> None:
    assert merge_scopes(["repository:a:pull", "repository:a:push", "repository:b:pull", "repository:a:pull"]) == (
        "repository:a:pull,push", "repository:b:pull")
    assert merge_scopes(["registry:catalog:*"]) == ("registry:catalog:*",)


# --- Docker config credentials -----------------------------------------------------------------------


def _config(dirpath: Path, doc: dict) -> dict[str, str]:
    dirpath.mkdir(parents=True, exist_ok=True)
    (dirpath / "config.json").write_text(json.dumps(doc))
    return {"DOCKER_CONFIG": str(dirpath), "PATH": os.environ.get("PATH", "")}


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def test_credentials_from_auth_field_and_username_password(tmp_path: Path) -> None:
    env = _config(tmp_path / "cfg", {"auths": {
        "127.0.0.1:5000": {"auth": _b64("alice:s3cr:et")},
        "https://ghcr.io": {"username": "bob", "password": "pw"},
        "https://index.docker.io/v1/": {"auth": _b64("hubuser:hubpw")},
    }})
    assert load_credentials("127.0.0.1:5000", env) == Credentials("alice", "s3cr:et")
    assert load_credentials("ghcr.io", env) == Credentials("bob", "pw")
    for hub in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        assert load_credentials(hub, env) == Credentials("hubuser", "hubpw")
    assert load_credentials("quay.io", env) is None
    assert "s3cr" not in repr(load_credentials("127.0.0.1:5000", env))


def test_docker_io_key_finds_the_v1_entry_and_the_reverse(tmp_path: Path) -> None:
    env = _config(tmp_path / "cfg", {"auths": {"docker.io": {"auth": _b64("u:p")}}})
    assert load_credentials("https://index.docker.io/v1/", env) == Credentials("u", "p")


def test_home_docker_config_when_no_DOCKER_CONFIG(tmp_path: Path) -> None:
    _config(tmp_path / "home" / ".docker", {"auths": {"r.example": {"auth": _b64("h:p")}}})
    assert load_credentials("r.example", {"HOME": str(tmp_path / "home")}) == Credentials("h", "p")
    assert load_credentials("r.example", {"HOME": str(tmp_path / "nohome")}) is None


def test_bad_auth_field_and_bad_json_are_one_line_errors(tmp_path: Path) -> None:
    env = _config(tmp_path / "a", {"auths": {"r.example": {"auth": _b64("no-colon")}}})
    with pytest.raises(AuthError, match=r"auths\['r.example'\].auth"):
        load_credentials("r.example", env)
    (tmp_path / "a" / "config.json").write_text("{not json")
    with pytest.raises(AuthError, match="config.json: not valid JSON"):
        load_credentials("r.example", env)


def _helper(bindir: Path, name: str, script: str) -> None:
    bindir.mkdir(parents=True, exist_ok=True)
    exe = bindir / f"docker-credential-{name}"
    exe.write_text("#!/bin/sh\n" + script)
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)


def test_credential_helpers(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    # The helper protocol: `get` reads the server URL on stdin, prints {ServerURL, Username, Secret}.
    _helper(bindir, "fake", 'read url; [ "$1" = get ] || exit 3\n'
            'case "$url" in *index.docker.io*) echo \'{"ServerURL":"x","Username":"<token>","Secret":"idtok"}\';;\n'
            'nf.example) echo "credentials not found in native keychain"; exit 1;;\n'
            '*) printf \'{"ServerURL":"%s","Username":"helper-%s","Secret":"pw"}\' "$url" "$url";; esac\n')
    env = _config(tmp_path / "cfg", {"credsStore": "fake", "credHelpers": {"special.example": "missing"},
                                     "auths": {"inline.example": {"auth": _b64("i:p")}}})
    env["PATH"] = f"{bindir}:{env['PATH']}"
    assert load_credentials("127.0.0.1:5000", env) == Credentials("helper-127.0.0.1:5000", "pw")
    assert load_credentials("docker.io", env) == Credentials(identity_token="idtok")
    assert load_credentials("nf.example", env) is None
    assert load_credentials("inline.example", env) == Credentials("i", "p")
    with pytest.raises(AuthError) as e:
        load_credentials("special.example", env)
    assert "docker-credential-missing is not in PATH" in str(e.value) and "credHelpers" in str(e.value)


def test_missing_creds_store_is_a_clear_error(tmp_path: Path) -> None:
    env = _config(tmp_path / "cfg", {"credsStore": "desktop"})
    env["PATH"] = str(tmp_path / "empty")
    with pytest.raises(AuthError, match="credsStore names 'desktop' but docker-credential-desktop is not in PATH"):
        load_credentials("127.0.0.1:5000", env)


# --- basic auth against docker-registry with an htpasswd file ---------------------------------------


def test_basic_auth_right_password_works(auth_registry: Registry) -> None:
    c = RegistryClient(auth_registry.host, username="user", password="pass")
    assert c.ping()
    d = c.push_blob("basic/repo", b"hello basic")
    with c.open_blob("basic/repo", d) as r:
        assert r.read() == b"hello basic"


def test_basic_auth_wrong_password(auth_registry: Registry, tmp_path: Path) -> None:
    c = RegistryClient(auth_registry.host, username="user", password="wrong")
    with pytest.raises(AuthError) as e:
        c.ping()
    assert str(e.value) == f"unauthorized: wrong username or password for {auth_registry.host}"
    assert e.value.status == 401


def test_basic_auth_anonymous_is_refused(auth_registry: Registry, tmp_path: Path) -> None:
    c = RegistryClient(auth_registry.host, env={"DOCKER_CONFIG": str(tmp_path / "none")})
    with pytest.raises(AuthError) as e:
        c.get_manifest("basic/repo", "latest")
    msg = str(e.value)
    assert msg.startswith(f"unauthorized: authentication required for {auth_registry.host}") and "\n" not in msg


def test_basic_auth_from_DOCKER_CONFIG(auth_registry: Registry, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "docker"
    _config(cfg, {"auths": {f"http://{auth_registry.host}": {"auth": _b64("user:pass")}}})
    monkeypatch.setenv("DOCKER_CONFIG", str(cfg))
    c = RegistryClient(auth_registry.host)
    assert c.push_blob("basic/config", b"via config") == str(dg.of_bytes(b"via config"))
    # Explicit credentials override the config.
    with pytest.raises(AuthError, match="wrong username or password"):
        RegistryClient(auth_registry.host, username="user", password="nope").ping()


# --- bearer tokens: a fake registry in front of a fake token server -----------------------------------


class TokenWorld:
    """A token server issuing `tok-N` for the scopes asked, and a registry demanding the right scopes."""

    def __init__(self, users: dict[str, str] | None = None, field: str = "token", expires_in: int = 300,
                 grant_push: bool = True) -> None:
        self.users = users
        self.grant_push = grant_push
        self.field = field
        self.expires_in = expires_in
        self.issued: dict[str, set[str]] = {}
        self.token_queries: list[dict] = []
        self.revoked: set[str] = set()
        self.manifest = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}).encode()
        self.tokens = FakeServer(self._token)
        self.registry = FakeServer(self._registry)

    def __enter__(self) -> "TokenWorld":
        self.tokens.__enter__()
        self.registry.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.registry.__exit__(*exc)
        self.tokens.__exit__(*exc)

    def _token(self, method: str, path: str, headers: dict, body: bytes):
        query = parse_qs(urlsplit(path).query)
        if method == "POST":  # OAuth2 refresh-token grant: form fields, scopes space-separated
            query = parse_qs(body.decode())
            query["scope"] = " ".join(query.get("scope", [])).split()
            if query.get("grant_type") != ["refresh_token"] or query.get("refresh_token") != ["idtok"]:
                return 401, {}, b'{"error":"invalid_grant"}'
            self.token_queries.append(dict(query, authorization=[""]))
            return self._issue(query)
        self.token_queries.append(dict(query, authorization=[headers.get("authorization", "")]))
        if self.users is not None:
            auth = headers.get("authorization", "")
            basic = base64.b64decode(auth[6:]).decode() if auth.startswith("Basic ") else ""
            user, _, pw = basic.partition(":")
            if self.users.get(user) != pw or not user:
                return 401, {"Content-Type": "application/json"}, b'{"details":"incorrect username or password"}'
        return self._issue(query)

    def _issue(self, query: dict) -> tuple[int, dict, bytes]:
        token = f"tok-{len(self.issued)}"
        granted = set()
        for scope in query.get("scope", []):
            kind, name, actions = scope.split(":")
            granted |= {f"{kind}:{name}:{a}" for a in actions.split(",") if a != "push" or self.grant_push}
        self.issued[token] = granted
        return 200, {"Content-Type": "application/json"}, json.dumps(
            {self.field: token, "expires_in": self.expires_in}).encode()

    def _registry(self, method: str, path: str, headers: dict, body: bytes):
        url = urlsplit(path)
        parts = url.path.split("/")
        need: set[str] = set()
        if url.path != "/v2/":
            # /v2/<repo...>/<kind>/<ref>
            kind_at = max(i for i, p in enumerate(parts) if p in ("manifests", "blobs", "tags"))
            repo = "/".join(parts[2:kind_at])
            need.add(f"repository:{repo}:{'pull' if method in ('GET', 'HEAD') else 'push'}")
            source = parse_qs(url.query).get("from")
            if source:
                need.add(f"repository:{source[0]}:pull")
        auth = headers.get("authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        if token not in self.issued or token in self.revoked or not need <= self.issued[token]:
            scope = " ".join(sorted(need))
            challenge = f'Bearer realm="{self.tokens.url}/token",service="fake-registry"'
            if scope:
                challenge += f',scope="{scope}"'
            return 401, {"WWW-Authenticate": challenge, "Content-Type": "application/json"}, \
                b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
        if url.path == "/v2/":
            return 200, {}, b"{}"
        if "/manifests/" in url.path:
            return 200, {"Content-Type": mt.OCI_INDEX,
                         "Docker-Content-Digest": str(dg.of_bytes(self.manifest))}, self.manifest
        if method == "POST" and "mount=" in url.query:
            return 201, {"Location": "/v2/x/blobs/" + parse_qs(url.query)["mount"][0]}, b""
        return 404, {}, b""


def test_token_flow_fetches_once_and_caches(tmp_path: Path) -> None:
    with TokenWorld() as w:
        c = RegistryClient(w.registry.host, env={"DOCKER_CONFIG": str(tmp_path)})
        data, media_type, _ = c.get_manifest("lib/app", "v1")
        assert data == w.manifest and media_type == mt.OCI_INDEX
        assert len(w.token_queries) == 1
        q = w.token_queries[0]
        assert q["service"] == ["fake-registry"] and q["scope"] == ["repository:lib/app:pull"]
        assert q["authorization"] == [""]  # anonymous: no credentials anywhere
        challenges = sum(1 for s in w.registry.seen if not s.headers.get("authorization"))
        c.get_manifest("lib/app", "v2")
        c.head_manifest("lib/app", "v2")
        assert len(w.token_queries) == 1  # cached for the same scope
        assert sum(1 for s in w.registry.seen if not s.headers.get("authorization")) == challenges  # sent up front


def test_token_flow_rechallenges_for_a_new_scope_and_mount(tmp_path: Path) -> None:
    with TokenWorld() as w:
        c = RegistryClient(w.registry.host, env={"DOCKER_CONFIG": str(tmp_path)})
        c.get_manifest("src/repo", "v1")
        d = str(dg.of_bytes(b"blob"))
        assert c.mount_blob("dst/repo", d, "src/repo") is True
        scopes = [sorted(q["scope"]) for q in w.token_queries]
        assert scopes[0] == ["repository:src/repo:pull"]
        # The mount needs push on the target and pull on the source, in one token.
        assert ["repository:dst/repo:pull,push", "repository:src/repo:pull"] in scopes
        assert w.issued[f"tok-{len(w.issued) - 1}"] >= {"repository:dst/repo:push", "repository:src/repo:pull"}


def test_token_flow_with_basic_credentials_and_access_token(tmp_path: Path) -> None:
    with TokenWorld(users={"alice": "pw"}, field="access_token") as w:
        c = RegistryClient(w.registry.host, username="alice", password="pw")
        assert c.ping()
        assert w.token_queries[0]["authorization"] == ["Basic " + base64.b64encode(b"alice:pw").decode()]
        bad = RegistryClient(w.registry.host, username="alice", password="nope")
        with pytest.raises(AuthError) as e:
            bad.ping()
        assert str(e.value).startswith(f"unauthorized: wrong username or password for {w.registry.host}")
        anon = RegistryClient(w.registry.host, env={"DOCKER_CONFIG": str(tmp_path)})
        with pytest.raises(AuthError, match="anonymous access refused"):
            anon.get_manifest("lib/app", "v1")


def test_identity_token_from_a_credential_helper(tmp_path: Path) -> None:
    with TokenWorld() as w:
        _helper(tmp_path / "bin", "idt", 'read url; echo \'{"ServerURL":"x","Username":"<token>","Secret":"idtok"}\'\n')
        env = _config(tmp_path / "cfg", {"credHelpers": {w.registry.host: "idt"}})
        env["PATH"] = f"{tmp_path / 'bin'}:{env['PATH']}"
        c = RegistryClient(w.registry.host, env=env)
        assert c.get_manifest("lib/app", "v1")[0] == w.manifest
        q = w.token_queries[-1]
        assert q["grant_type"] == ["refresh_token"] and q["scope"] == ["repository:lib/app:pull"]
        assert q["service"] == ["fake-registry"]


def test_anonymous_token_without_push_rights(tmp_path: Path) -> None:
    with TokenWorld(grant_push=False) as w:
        c = RegistryClient(w.registry.host, env={"DOCKER_CONFIG": str(tmp_path)})
        c.get_manifest("lib/app", "v1")  # pull is granted
        with pytest.raises(AuthError) as e:
            c.put_manifest("lib/app", "v2", w.manifest, mt.OCI_INDEX)
        assert str(e.value) == f"unauthorized: authentication required for {w.registry.host}"
        assert w.token_queries[-1]["scope"] == ["repository:lib/app:pull,push"]


def test_token_expiry_and_revocation(tmp_path: Path) -> None:
    with TokenWorld(expires_in=60) as w:
        c = RegistryClient(w.registry.host, env={"DOCKER_CONFIG": str(tmp_path)})
        now = [1000.0]
        c.auth.clock = lambda: now[0]
        c.get_manifest("lib/app", "v1")
        now[0] += 30
        c.get_manifest("lib/app", "v1")
        assert len(w.token_queries) == 1
        now[0] += 60  # past expires_in: a fresh token
        c.get_manifest("lib/app", "v1")
        assert len(w.token_queries) == 2
        w.revoked.add("tok-1")  # the registry stops taking the cached token: one re-fetch, no error
        c.get_manifest("lib/app", "v1")
        assert len(w.token_queries) == 3


def test_unsupported_challenge_is_an_auth_error() -> None:
    def handler(method, path, headers, body):
        return 401, {"WWW-Authenticate": 'Negotiate abc=='}, b""

    with FakeServer(handler) as srv:
        with pytest.raises(AuthError, match="unsupported authentication scheme"):
            RegistryClient(srv.host).ping()


def test_challenge_dataclass_accessors() -> None:
    ch = Challenge("bearer", {"realm": "https://a/token", "service": "s", "scope": "x y"})
    assert (ch.realm, ch.service, ch.scopes) == ("https://a/token", "s", ("x", "y"))
