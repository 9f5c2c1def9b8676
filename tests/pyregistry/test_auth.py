"""pyregistry.auth on its own (a small aiohttp app that only authorizes), and its tokens against Distribution.

The checks the registry makes are the Authorizer's; test_clients.py drives the same through `pyregistry serve`.
"""

from __future__ import annotations

import base64
import os
import re
import time
from pathlib import Path

import jwt
import pytest
import requests
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec

from pyoci.errors import AuthError
from pyoci.registry import RegistryClient
from pyregistry import auth, config, tokens
from pyregistry.errors import ConfigError, RegistryHTTPError
from tests.pyoci.registry_fixtures import Registry, _stop, _wait_ready
from tests.pyregistry.test_auth_helpers import (PASSWORD, USER, htpasswd_auth, htpasswd_file, run_app,
                                                self_signed, token_auth)
from tests.support import free_port, require

ACL = ("      - {account: alice, name: 'alice/*', actions: ['*']}\n"
       "      - {account: '*', name: 'shared/*', actions: [pull]}\n"
       "      - {account: admin, name: '*', actions: ['*']}\n"
       "      - {account: bob, name: 'bob/*', actions: [pull, delete]}\n")


def _config(text: str) -> config.Config:
    import yaml

    return config.parse(yaml.safe_load(text))


def _app(authorizer: auth.Authorizer) -> web.Application:
    async def check(request: web.Request, repo: str | None, actions: set[str]) -> web.Response:
        try:
            account = await authorizer.authorize(request, repo, actions)
        except RegistryHTTPError as e:
            return web.Response(status=e.status, body=e.body(), headers=e.headers, content_type="application/json")
        return web.json_response({"account": account})

    async def base(request):
        return await check(request, None, set())

    async def catalog(request):
        return await check(request, None, {"*"})

    async def pull(request):
        return await check(request, request.match_info["repo"], {"pull"})

    async def push(request):
        return await check(request, request.match_info["repo"], {"pull", "push"})

    app = web.Application()
    app.add_routes([web.get("/v2/", base), web.get("/v2/_catalog", catalog),
                    web.get(r"/v2/{repo:.+}/pull", pull), web.put(r"/v2/{repo:.+}/push", push),
                    *authorizer.routes()])
    return app


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


# --- htpasswd -------------------------------------------------------------------------------------------------


@pytest.fixture
def htpasswd(tmp_path: Path) -> Path:
    return htpasswd_file(tmp_path / "htpasswd", {USER: PASSWORD, "bob": "builder"})


def test_htpasswd_basic_auth(htpasswd: Path):
    authz = auth.make_authorizer(_config(htpasswd_auth(htpasswd)))
    assert isinstance(authz, auth.HtpasswdAuthorizer)
    with run_app(_app(authz)) as url:
        r = requests.get(url + "/v2/")
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"] == 'Basic realm="pyregistry-test"'
        assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"
        for user, pw in ((USER, "wrong"), ("nobody", PASSWORD), ("", "x"), (USER, "")):
            r = requests.get(url + "/v2/", headers=_basic(user, pw))
            assert r.status_code == 401, (user, pw)
            assert r.headers["WWW-Authenticate"] == 'Basic realm="pyregistry-test"'
        r = requests.put(url + "/v2/a/b/push", headers=_basic(USER, "wrong"))
        assert r.status_code == 401
        assert {"Type": "repository", "Name": "a/b", "Action": "push"} in r.json()["errors"][0]["detail"]
        # a malformed header is a failed login, not a crash
        assert requests.get(url + "/v2/", headers={"Authorization": "Basic %%%"}).status_code == 401
        for _ in range(2):  # the second time from the verified-password cache
            r = requests.put(url + "/v2/a/b/push", headers=_basic(USER, PASSWORD))
            assert r.status_code == 200 and r.json() == {"account": USER}
        assert requests.get(url + "/v2/_catalog", headers=_basic("bob", "builder")).json() == {"account": "bob"}
        # without anonymous pull, pulling needs a login too; `Basic Og==` (empty credentials) is anonymous
        assert requests.get(url + "/v2/a/pull").status_code == 401
        assert requests.get(url + "/v2/a/pull", headers={"Authorization": "Basic Og=="}).status_code == 401


def test_htpasswd_reloads_on_change_and_refuses_non_bcrypt(htpasswd: Path):
    from pyregistry import users

    authz = auth.make_authorizer(_config(htpasswd_auth(htpasswd)))
    with run_app(_app(authz)) as url:
        assert requests.get(url + "/v2/", headers=_basic("carol", "c1")).status_code == 401
        users.add(htpasswd, "carol", "c1", cost=4)
        assert requests.get(url + "/v2/", headers=_basic("carol", "c1")).status_code == 200
        users.add(htpasswd, "carol", "c2", cost=4)  # re-adding replaces: the old password stops working
        assert requests.get(url + "/v2/", headers=_basic("carol", "c1")).status_code == 401
        assert requests.get(url + "/v2/", headers=_basic("carol", "c2")).status_code == 200
        # an apr1 (MD5) entry, as `htpasswd -m` writes: Distribution accepts bcrypt only
        md5 = "dave:$apr1$Zb6Fk5cu$WW7c1mpxyHrCo.EiXqHfw/"
        htpasswd.write_text(htpasswd.read_text() + md5 + "\n")
        os.utime(htpasswd, ns=(time.time_ns(), time.time_ns() + 10**9))
        assert requests.get(url + "/v2/", headers=_basic("dave", "secret")).status_code == 401
        assert requests.get(url + "/v2/", headers=_basic("carol", "c2")).status_code == 200


def test_htpasswd_written_by_apache_htpasswd(tmp_path: Path):
    line = os.popen(f"{require('htpasswd')} -Bbn eve s3cret").read().strip()  # $2y$05$
    path = tmp_path / "htpasswd"
    path.write_text("# a comment\n\n" + line + "\n")
    authz = auth.make_authorizer(_config(htpasswd_auth(path)))
    with run_app(_app(authz)) as url:
        assert requests.get(url + "/v2/", headers=_basic("eve", "s3cret")).status_code == 200
        assert requests.get(url + "/v2/", headers=_basic("eve", "s3cre")).status_code == 401


def test_htpasswd_anonymous_pull(htpasswd: Path):
    authz = auth.make_authorizer(_config(htpasswd_auth(htpasswd, anonymous_pull=True)))
    with run_app(_app(authz)) as url:
        assert requests.get(url + "/v2/x/pull").json() == {"account": None}
        assert requests.get(url + "/v2/x/pull", headers={"Authorization": "Basic Og=="}).status_code == 200
        r = requests.put(url + "/v2/x/push")
        assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic ")
        assert requests.get(url + "/v2/_catalog").status_code == 401
        assert requests.get(url + "/v2/").status_code == 401  # the challenge clients log in with
        # credentials given are checked even where anonymous access would do
        assert requests.get(url + "/v2/x/pull", headers=_basic(USER, "bad")).status_code == 401
        assert requests.put(url + "/v2/x/push", headers=_basic(USER, PASSWORD)).status_code == 200


def test_startup_errors_are_one_line(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"auth.htpasswd.path: cannot read .*missing"):
        auth.make_authorizer(_config(htpasswd_auth(tmp_path / "missing")))
    bad = tmp_path / "bad"
    bad.write_text("no colon here\n")
    with pytest.raises(ConfigError, match="line 1 is not USER:HASH"):
        auth.make_authorizer(_config(htpasswd_auth(bad)))
    key = tmp_path / "key.pem"
    key.write_text("not a key")
    with pytest.raises(ConfigError, match="signingkey"):
        auth.make_authorizer(_config(token_auth(bad, key, None, "/auth/token")))
    assert auth.make_authorizer(config.Config()) is None


# --- token ----------------------------------------------------------------------------------------------------


@pytest.fixture
def keypair(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed(tmp_path)


def _token(url: str, *scopes: str, creds: tuple[str, str] | None = (USER, PASSWORD), **params) -> requests.Response:
    q = [("service", "pyregistry-test"), *(("scope", s) for s in scopes), *params.items()]
    return requests.get(url + "/auth/token", params=q, auth=creds)


def test_token_flow(htpasswd: Path, keypair: tuple[Path, Path]):
    key, cert = keypair
    authz = auth.make_authorizer(_config(token_auth(htpasswd, key, cert, "/auth/token", ACL)))
    assert isinstance(authz, auth.TokenAuthorizer)
    with run_app(_app(authz)) as url:
        r = requests.put(url + "/v2/alice/app/push")
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"] == (
            f'Bearer realm="{url}/auth/token",service="pyregistry-test",scope="repository:alice/app:pull,push"')
        assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"

        r = _token(url, "repository:alice/app:pull,push", account=USER)
        assert r.status_code == 200, r.text
        doc = r.json()
        assert set(doc) == {"token", "access_token", "expires_in", "issued_at"}
        assert doc["token"] == doc["access_token"] and doc["expires_in"] == 300
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", doc["issued_at"])
        header = jwt.get_unverified_header(doc["token"])
        assert header["alg"] == "ES256" and header["typ"] == "JWT"
        assert re.fullmatch(r"([A-Z2-7]{4}:){11}[A-Z2-7]{4}", header["kid"])
        claims = jwt.decode(doc["token"], options={"verify_signature": False})
        assert set(claims) == {"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "access"}
        assert (claims["iss"], claims["sub"], claims["aud"]) == ("pyregistry-issuer", USER, "pyregistry-test")
        assert claims["exp"] - claims["iat"] == 300 and claims["nbf"] <= claims["iat"] <= time.time() + 1
        assert claims["access"] == [{"type": "repository", "name": "alice/app", "actions": ["pull", "push"]}]
        tok = {"Authorization": f"Bearer {doc['token']}"}
        assert requests.put(url + "/v2/alice/app/push", headers=tok).json() == {"account": USER}
        assert requests.get(url + "/v2/alice/app/pull", headers=tok).status_code == 200
        assert requests.get(url + "/v2/", headers=tok).status_code == 200

        # A token scoped to alice/app does not push (nor pull) alice/other: 401 insufficient_scope, as Distribution
        r = requests.put(url + "/v2/alice/other/push", headers=tok)
        assert r.status_code == 401
        assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
        assert 'scope="repository:alice/other:pull,push"' in r.headers["WWW-Authenticate"]

        # ACL: requested ∩ allowed; shared/* is pull-only for everyone, alice/* is alice's alone
        claims = _claims(_token(url, "repository:shared/base:pull,push", "repository:bob/x:pull",
                                "registry:catalog:*"))
        assert claims["access"] == [{"type": "repository", "name": "shared/base", "actions": ["pull"]}]
        tok = {"Authorization": f"Bearer {_token(url, 'repository:shared/base:pull,push').json()['token']}"}
        assert requests.get(url + "/v2/shared/base/pull", headers=tok).status_code == 200
        assert requests.put(url + "/v2/shared/base/push", headers=tok).status_code == 401
        assert _claims(_token(url, "repository:alice/app:push", creds=("bob", "builder")))["access"] == []
        # `*` asked for: the concrete actions the ACL allows
        assert _claims(_token(url, "repository:bob/x:*", creds=("bob", "builder")))["access"] == [
            {"type": "repository", "name": "bob/x", "actions": ["pull", "delete"]}]
        assert _claims(_token(url, "repository:alice/x:*"))["access"] == [
            {"type": "repository", "name": "alice/x", "actions": ["*"]}]
        # catalog needs registry:catalog:*, which only an account with name '*' and action '*' gets
        assert requests.get(url + "/v2/_catalog", headers=tok).status_code == 401
        htpasswd_file(htpasswd, {"admin": "root"})
        admin = _token(url, "registry:catalog:*", "repository:any/thing:delete", creds=("admin", "root"))
        assert _claims(admin)["access"] == [{"type": "registry", "name": "catalog", "actions": ["*"]},
                                            {"type": "repository", "name": "any/thing", "actions": ["delete"]}]
        assert requests.get(url + "/v2/_catalog",
                            headers={"Authorization": f"Bearer {admin.json()['token']}"}).status_code == 200

        # wrong password, wrong account, wrong service at the token endpoint
        r = _token(url, "repository:alice/app:pull", creds=(USER, "nope"))
        assert r.status_code == 401 and r.json()["errors"][0]["code"] == "UNAUTHORIZED"
        assert _token(url, "repository:alice/app:pull", account="bob").status_code == 400
        assert requests.get(url + "/auth/token", params={"service": "other"}, auth=(USER, PASSWORD)).status_code == 400
        # anonymous: a token without access
        assert _claims(_token(url, "repository:shared/base:pull", creds=None))["access"] == []

        # OAuth2 password grant (containerd tries POST first)
        r = requests.post(url + "/auth/token", data={"grant_type": "password", "username": USER,
                                                     "password": PASSWORD, "service": "pyregistry-test",
                                                     "scope": "repository:alice/app:pull", "client_id": "t"})
        assert r.status_code == 200 and r.json()["scope"] == "repository:alice/app:pull"
        r = requests.post(url + "/auth/token", data={"grant_type": "refresh_token", "refresh_token": "x"})
        assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"


def _claims(resp: requests.Response) -> dict:
    assert resp.status_code == 200, resp.text
    return jwt.decode(resp.json()["token"], options={"verify_signature": False})


def test_forged_expired_and_foreign_tokens_are_refused(htpasswd: Path, keypair: tuple[Path, Path]):
    key, cert = keypair
    authz = auth.make_authorizer(_config(token_auth(htpasswd, key, cert, "/auth/token")))
    own = tokens.load_private_key(str(key))
    other = ec.generate_private_key(ec.SECP256R1())
    access = [tokens.Access("repository", "r", ("pull", "push"))]
    with run_app(_app(authz)) as url:
        def status(token: str) -> tuple[int, str]:
            r = requests.put(url + "/v2/r/push", headers={"Authorization": f"Bearer {token}"})
            return r.status_code, r.headers.get("WWW-Authenticate", "")

        good, _ = tokens.issue(own, "pyregistry-issuer", "u", "pyregistry-test", access)
        assert status(good)[0] == 200
        for bad in (tokens.issue(other, "pyregistry-issuer", "u", "pyregistry-test", access)[0],  # untrusted key
                    tokens.issue(own, "someone-else", "u", "pyregistry-test", access)[0],       # issuer
                    tokens.issue(own, "pyregistry-issuer", "u", "another-service", access)[0],  # audience
                    tokens.issue(own, "pyregistry-issuer", "u", "pyregistry-test", access,       # expired
                                 expiry=10, now=time.time() - 3600)[0],
                    good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"),                # signature
                    jwt.encode({"iss": "pyregistry-issuer", "aud": "pyregistry-test", "exp": time.time() + 60,
                                "access": [a.to_json() for a in access]}, None, algorithm="none"),
                    "not-a-jwt"):
            code, challenge = status(bad)
            assert code == 401 and 'error="invalid_token"' in challenge, bad
        # a token naming its key by x5c (the certificate of the bundle) verifies too
        x5c = base64.b64encode(_der(cert)).decode()
        claims = {"iss": "pyregistry-issuer", "sub": "u", "aud": "pyregistry-test", "exp": int(time.time()) + 60,
                  "access": [a.to_json() for a in access]}
        assert status(jwt.encode(claims, own, algorithm="ES256", headers={"x5c": [x5c]}))[0] == 200
        other_cert = self_signed(Path(cert).parent, "other")[1]
        foreign = base64.b64encode(_der(other_cert)).decode()
        forged = jwt.encode(claims, own, algorithm="ES256", headers={"x5c": [foreign]})
        assert status(forged)[0] == 401


def _der(cert_pem: Path) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    return x509.load_pem_x509_certificate(cert_pem.read_bytes()).public_bytes(serialization.Encoding.DER)


def test_token_anonymous_pull(htpasswd: Path, keypair: tuple[Path, Path]):
    key, cert = keypair
    authz = auth.make_authorizer(_config(token_auth(htpasswd, key, cert, "/auth/token", ACL, anonymous_pull=True)))
    with run_app(_app(authz)) as url:
        assert requests.get(url + "/v2/private/x/pull").json() == {"account": None}
        r = requests.put(url + "/v2/private/x/push")
        assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer realm=")
        # anonymous token requests get pull, never push
        assert _claims(_token(url, "repository:p/x:pull,push", creds=None))["access"] == [
            {"type": "repository", "name": "p/x", "actions": ["pull"]}]


def test_libtrust_key_id_is_distributions():
    # A fixed key and the kid Distribution (libtrust) derives for it: SHA-256 of the DER public key, 240 bits,
    # base32, 12 groups.
    from cryptography.hazmat.primitives import hashes, serialization

    key = ec.derive_private_key(1234567, ec.SECP256R1())
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    h = hashes.Hash(hashes.SHA256())
    h.update(der)
    expected = base64.b32encode(h.finalize()[:30]).decode()
    kid = tokens.libtrust_key_id(key.public_key())
    assert kid.replace(":", "") == expected and len(kid.split(":")) == 12


@pytest.mark.parametrize("kind", ["ec", "rsa"])
def test_distribution_accepts_our_tokens(tmp_path: Path, htpasswd: Path, kind: str):
    """Debian's docker-registry with token auth, its realm our token endpoint: it verifies our JWTs (kid,
    ES256 or RS256, claims) with the certificate bundle, and enforces the ACL we granted."""
    import subprocess

    exe = require("docker-registry")
    key, cert = self_signed(tmp_path, kind=kind)
    assert jwt.get_unverified_header(tokens.issue(tokens.load_private_key(str(key)), "i", "s", "a", [])[0])["alg"] \
        == {"ec": "ES256", "rsa": "RS256"}[kind]
    authz = auth.make_authorizer(_config(token_auth(htpasswd, key, cert, "/auth/token", ACL)))
    with run_app(_app(authz)) as token_url:
        port = free_port()
        root = tmp_path / "dist"
        root.mkdir()
        cfg = tmp_path / "dist.yml"
        cfg.write_text(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {root}\n"
            f"http:\n  addr: 127.0.0.1:{port}\n  secret: t\n"
            f"auth:\n  token:\n    realm: {token_url}/auth/token\n    service: pyregistry-test\n"
            f"    issuer: pyregistry-issuer\n    rootcertbundle: {cert}\n")
        log = tmp_path / "dist.log"
        with open(log, "wb") as logf:
            proc = subprocess.Popen([exe, "serve", str(cfg)], stdout=logf, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            reg = Registry(f"127.0.0.1:{port}", port, root, proc.pid, log)
            _wait_ready(reg.url, proc, log)
            client = RegistryClient(reg.host, username=USER, password=PASSWORD)
            blob = os.urandom(1000)
            digest = client.push_blob("alice/app", blob)
            assert client.blob_exists("alice/app", digest)
            with pytest.raises(AuthError):
                client.push_blob("shared/base", blob)  # pull-only for alice: Distribution refuses the token
            bob = RegistryClient(reg.host, username="bob", password="builder")
            with pytest.raises(AuthError):
                bob.blob_exists("alice/app", digest)
            assert client.auth.token_requests >= 2
        finally:
            _stop(proc)
        assert "invalid token" not in log.read_text().lower()


def test_serve_refuses_to_start_on_bad_auth_files(tmp_path: Path):
    from tests.pyregistry.test_auth_helpers import pyregistry, write_config

    config = write_config(tmp_path, free_port(), htpasswd_auth(tmp_path / "no-such-htpasswd"))
    res = pyregistry("serve", "--config", str(config), timeout=30)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1] == (
        f"pyregistry: auth.htpasswd.path: cannot read {tmp_path / 'no-such-htpasswd'}: No such file or directory")
    key = tmp_path / "key.pem"
    key.write_text("garbage")
    config = write_config(tmp_path, free_port(), token_auth(tmp_path / "h", key, None, "/auth/token"))
    res = pyregistry("serve", "--config", str(config), timeout=30)
    assert res.returncode == 1 and "auth.token.signingkey" in res.stderr and "Traceback" not in res.stderr
