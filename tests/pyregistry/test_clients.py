"""Real clients against `pyregistry serve --config` with auth: skopeo, containerd's ctr, the docker CLI,
pyoci's client, curl/requests; basic (htpasswd) and token auth, anonymous pull, TLS.

The docker CLI has no daemon here: `docker login` (client-side since docker 23), `docker logout`,
`docker manifest inspect` and `docker manifest create/push` run without one and are tested;
`docker push/pull` need a daemon and are not.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Iterator

import pytest
import requests

from pyoci.errors import AuthError
from pyoci.registry import RegistryClient
from tests.pyoci.registry_fixtures import umoci_image
from tests.pyregistry.test_auth_helpers import (PASSWORD, USER, Server, htpasswd_auth, htpasswd_file, self_signed,
                                                serve, token_auth)
from tests.support import containerd, require

ACL = ("      - {account: alice, name: 'alice/*', actions: ['*']}\n"
       "      - {account: '*', name: 'shared/*', actions: [pull]}\n"
       "      - {account: admin, name: '*', actions: ['*']}\n")
USERS = {USER: PASSWORD, "bob": "builder", "admin": "root"}


def run(*args: str, input: str | None = None, env: dict | None = None, timeout: float = 90
        ) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, input=input, timeout=timeout,
                          env={**os.environ, **env} if env else None)


def skopeo(*args: str) -> subprocess.CompletedProcess:
    return run(require("skopeo"), "--insecure-policy", *args)


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"{proc.args} failed ({proc.returncode}): {proc.stderr[-2000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("clients")
    htpasswd_file(d / "htpasswd", USERS)
    return d


@pytest.fixture(scope="module")
def layout(workdir: Path) -> Path:
    return umoci_image(workdir / "img")


@pytest.fixture(scope="module")
def basic(workdir: Path) -> Iterator[Server]:
    with serve(workdir / "basic", htpasswd_auth(workdir / "htpasswd")) as s:
        yield s


@pytest.fixture(scope="module")
def token(workdir: Path) -> Iterator[Server]:
    key, cert = self_signed(workdir)
    with serve(workdir / "token", token_auth(workdir / "htpasswd", key, cert, "/auth/token", ACL)) as s:
        yield s


def test_skopeo_basic_auth(basic: Server, layout: Path, tmp_path: Path):
    dest = f"docker://{basic.host}/team/app:v1"
    creds = f"{USER}:{PASSWORD}"
    ok(skopeo("copy", "--dest-tls-verify=false", "--dest-creds", creds, f"oci:{layout}:t", dest))
    # wrong or no credentials: refused, and nothing is written
    for extra in (["--dest-creds", f"{USER}:wrong"], ["--dest-no-creds"] if _has_no_creds() else []):
        if not extra:
            continue
        proc = skopeo("copy", "--dest-tls-verify=false", *extra, f"oci:{layout}:t", f"docker://{basic.host}/team/x:v1")
        assert proc.returncode != 0 and "unauthorized" in proc.stderr.lower(), proc.stderr
    info = json.loads(ok(skopeo("inspect", "--tls-verify=false", "--creds", creds, dest)))
    assert info["RepoTags"] == ["v1"]
    tags = json.loads(ok(skopeo("list-tags", "--tls-verify=false", "--creds", creds,
                                f"docker://{basic.host}/team/app")))
    assert tags["Tags"] == ["v1"]
    proc = skopeo("inspect", "--tls-verify=false", "--creds", f"{USER}:wrong", dest)
    assert proc.returncode != 0 and "invalid username or password" in proc.stderr
    # copy out, byte for byte the manifest we pushed
    out = tmp_path / "out"
    ok(skopeo("copy", "--src-tls-verify=false", "--src-creds", creds, dest, f"oci:{out}:t"))
    index = json.loads((out / "index.json").read_text())
    assert index["manifests"][0]["digest"] == info["Digest"]
    # requests: the challenge on a wrong password, the manifest with the right one
    r = requests.get(f"{basic.url}/v2/team/app/manifests/v1", auth=(USER, "nope"))
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == 'Basic realm="pyregistry-test"'
    assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"
    ok(skopeo("delete", "--tls-verify=false", "--creds", creds, dest))
    assert requests.get(f"{basic.url}/v2/team/app/manifests/{info['Digest']}", auth=(USER, PASSWORD)).status_code == 404


def _has_no_creds() -> bool:
    return "--dest-no-creds" in run(require("skopeo"), "copy", "--help").stdout


def test_skopeo_token_auth(token: Server, layout: Path, tmp_path: Path):
    creds = f"{USER}:{PASSWORD}"
    dest = f"docker://{token.host}/alice/app:v1"
    ok(skopeo("copy", "--dest-tls-verify=false", "--dest-creds", creds, f"oci:{layout}:t", dest))
    info = json.loads(ok(skopeo("inspect", "--tls-verify=false", "--creds", creds, dest)))
    tags = json.loads(ok(skopeo("list-tags", "--tls-verify=false", "--creds", creds,
                                f"docker://{token.host}/alice/app")))
    assert tags["Tags"] == ["v1"]
    ok(skopeo("copy", "--src-tls-verify=false", "--src-creds", creds, dest, f"oci:{tmp_path / 'out'}:t"))
    # alice's token for shared/* is pull-only: pushing there is refused; bob cannot read alice/*
    proc = skopeo("copy", "--dest-tls-verify=false", "--dest-creds", creds, f"oci:{layout}:t",
                  f"docker://{token.host}/shared/base:v1")
    assert proc.returncode != 0 and "unauthorized" in proc.stderr.lower(), proc.stderr
    proc = skopeo("inspect", "--tls-verify=false", "--creds", "bob:builder", dest)
    assert proc.returncode != 0
    proc = skopeo("inspect", "--tls-verify=false", "--creds", f"{USER}:wrong", dest)
    assert proc.returncode != 0
    # admin pushes to shared/, then everybody logged in pulls from it
    ok(skopeo("copy", "--dest-tls-verify=false", "--dest-creds", "admin:root", f"oci:{layout}:t",
              f"docker://{token.host}/shared/base:v1"))
    assert json.loads(ok(skopeo("inspect", "--tls-verify=false", "--creds", "bob:builder",
                                f"docker://{token.host}/shared/base:v1")))["Digest"] == info["Digest"]
    ok(skopeo("delete", "--tls-verify=false", "--creds", creds, dest))


@pytest.fixture
def ctr(tmp_path: Path):
    """Debian's containerd on private paths (no CRI); yields a `ctr -a SOCK ...` runner."""
    require("ctr")
    with containerd(tmp_path / "ctd") as sock:
        yield lambda *args: run("ctr", "-a", sock, *args)


def test_containerd_pull_push(basic: Server, token: Server, layout: Path, ctr):
    creds = f"{USER}:{PASSWORD}"
    ok(skopeo("copy", "--dest-tls-verify=false", "--dest-creds", creds, f"oci:{layout}:t",
              f"docker://{basic.host}/ctr/src:v1"))
    ok(ctr("images", "pull", "--plain-http", "--user", creds, f"{basic.host}/ctr/src:v1"))
    ok(ctr("images", "push", "--plain-http", "--user", creds, f"{basic.host}/ctr/copy:v1", f"{basic.host}/ctr/src:v1"))
    src = json.loads(ok(skopeo("inspect", "--tls-verify=false", "--creds", creds, f"docker://{basic.host}/ctr/src:v1")))
    copy = json.loads(ok(skopeo("inspect", "--tls-verify=false", "--creds", creds,
                                f"docker://{basic.host}/ctr/copy:v1")))
    assert copy["Digest"] == src["Digest"]
    proc = ctr("images", "pull", "--plain-http", "--user", f"{USER}:wrong", f"{basic.host}/ctr/src:v1")
    assert proc.returncode != 0 and "401" in proc.stderr
    # token flow: containerd tries the OAuth2 POST first, we answer it
    ok(ctr("images", "push", "--plain-http", "--user", creds, f"{token.host}/alice/ctr:v1", f"{basic.host}/ctr/src:v1"))
    ok(ctr("images", "pull", "--plain-http", "--user", creds, f"{token.host}/alice/ctr:v1"))
    proc = ctr("images", "push", "--plain-http", "--user", "bob:builder", f"{token.host}/alice/bob:v1",
               f"{basic.host}/ctr/src:v1")
    assert proc.returncode != 0
    ok(ctr("images", "rm", f"{basic.host}/ctr/src:v1", f"{token.host}/alice/ctr:v1"))


def test_docker_cli_without_daemon(basic: Server, layout: Path, tmp_path: Path):
    docker = require("docker")
    env = {"DOCKER_CONFIG": str(tmp_path / "docker"), "DOCKER_HOST": f"unix://{tmp_path}/no-daemon.sock"}
    creds = f"{USER}:{PASSWORD}"
    ok(skopeo("copy", "--dest-tls-verify=false", "--dest-creds", creds, f"oci:{layout}:t",
              f"docker://{basic.host}/dock/app:v1"))
    proc = run(docker, "login", "-u", USER, "--password-stdin", basic.host, input="wrong\n", env=env)
    assert proc.returncode != 0 and "401" in proc.stderr
    out = ok(run(docker, "login", "-u", USER, "--password-stdin", basic.host, input=PASSWORD + "\n", env=env))
    assert "Login Succeeded" in out
    stored = json.loads((tmp_path / "docker" / "config.json").read_text())["auths"][basic.host]["auth"]
    assert base64.b64decode(stored).decode() == creds
    manifest = json.loads(ok(run(docker, "manifest", "inspect", "--insecure", f"{basic.host}/dock/app:v1", env=env)))
    assert manifest["schemaVersion"] == 2 and len(manifest["layers"]) == 1
    # docker manifest create/push: the CLI pushes an index by itself
    ok(run(docker, "manifest", "create", "--insecure", f"{basic.host}/dock/app:list", f"{basic.host}/dock/app:v1",
           env=env))
    digest = ok(run(docker, "manifest", "push", "--insecure", f"{basic.host}/dock/app:list", env=env)).strip()
    r = requests.get(f"{basic.url}/v2/dock/app/manifests/list", auth=(USER, PASSWORD),
                     headers={"Accept": "application/vnd.oci.image.index.v1+json, "
                                        "application/vnd.docker.distribution.manifest.list.v2+json"})
    assert r.status_code == 200 and r.headers["Docker-Content-Digest"] == digest
    ok(run(docker, "logout", basic.host, env=env))
    proc = run(docker, "manifest", "inspect", "--insecure", f"{basic.host}/dock/app:v1", env=env)
    assert proc.returncode != 0


def test_docker_cli_token_login(token: Server, layout: Path, tmp_path: Path):
    docker = require("docker")
    env = {"DOCKER_CONFIG": str(tmp_path / "docker"), "DOCKER_HOST": f"unix://{tmp_path}/no-daemon.sock"}
    ok(skopeo("copy", "--dest-tls-verify=false", "--dest-creds", f"{USER}:{PASSWORD}", f"oci:{layout}:t",
              f"docker://{token.host}/alice/dock:v1"))
    proc = run(docker, "login", "-u", USER, "--password-stdin", token.host, input="wrong\n", env=env)
    assert proc.returncode != 0
    assert "Login Succeeded" in ok(run(docker, "login", "-u", USER, "--password-stdin", token.host,
                                       input=PASSWORD + "\n", env=env))
    manifest = json.loads(ok(run(docker, "manifest", "inspect", "--insecure", f"{token.host}/alice/dock:v1", env=env)))
    assert manifest["schemaVersion"] == 2
    ok(run(docker, "manifest", "create", "--insecure", f"{token.host}/alice/dock:list", f"{token.host}/alice/dock:v1",
           env=env))
    ok(run(docker, "manifest", "push", "--insecure", f"{token.host}/alice/dock:list", env=env))
    # bob may log in, but not read alice's repositories
    ok(run(docker, "login", "-u", "bob", "--password-stdin", token.host, input="builder\n", env=env))
    proc = run(docker, "manifest", "inspect", "--insecure", f"{token.host}/alice/dock:v1", env=env)
    assert proc.returncode != 0


def _push_image(client: RegistryClient, repo: str, tag: str, payload: bytes) -> str:
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    cfg = client.push_blob(repo, config)
    layer = client.push_blob(repo, payload)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": len(payload)}],
    }).encode()
    return client.put_manifest(repo, tag, manifest, "application/vnd.oci.image.manifest.v1+json")


def test_pyoci_client_basic_and_token(basic: Server, token: Server):
    c = RegistryClient(basic.host, username=USER, password=PASSWORD)
    d = _push_image(c, "py/basic", "v1", b"basic layer" * 100)
    assert c.get_manifest("py/basic", "v1")[2] == d
    assert c.list_tags("py/basic") == ["v1"]
    assert "py/basic" in c.catalog()
    with pytest.raises(AuthError):
        RegistryClient(basic.host, username=USER, password="wrong").list_tags("py/basic")

    t = RegistryClient(token.host, username=USER, password=PASSWORD)
    d = _push_image(t, "alice/py", "v1", b"token layer" * 100)
    assert t.get_manifest("alice/py", "v1")[2] == d
    assert t.list_tags("alice/py") == ["v1"]
    assert t.auth.token_requests >= 1
    with pytest.raises(AuthError):
        t.catalog()  # registry:catalog:* is the admin's
    assert "alice/py" in RegistryClient(token.host, username="admin", password="root").catalog()
    with pytest.raises(AuthError):
        _push_image(t, "bob/py", "v1", b"x")  # a token for alice/* cannot push to bob/
    with pytest.raises(AuthError):
        RegistryClient(token.host, username="bob", password="builder").get_manifest("alice/py", "v1")
    t.delete_manifest("alice/py", d)
    with pytest.raises(Exception):
        t.get_manifest("alice/py", d)


def test_anonymous_pull_push_needs_login(workdir: Path, layout: Path):
    with serve(workdir / "anon", htpasswd_auth(workdir / "htpasswd", anonymous_pull=True)) as s:
        ok(skopeo("copy", "--dest-tls-verify=false", "--dest-creds", f"{USER}:{PASSWORD}", f"oci:{layout}:t",
                  f"docker://{s.host}/pub/app:v1"))
        info = json.loads(ok(skopeo("inspect", "--tls-verify=false", f"docker://{s.host}/pub/app:v1")))
        assert info["RepoTags"] == ["v1"]
        oci = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
        assert requests.get(f"{s.url}/v2/pub/app/manifests/v1", headers=oci).status_code == 200
        r = requests.post(f"{s.url}/v2/pub/app/blobs/uploads/")
        assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic ")
        proc = skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:t", f"docker://{s.host}/pub/other:v1")
        assert proc.returncode != 0
        assert RegistryClient(s.host).list_tags("pub/app") == ["v1"]


def test_token_anonymous_pull(workdir: Path, layout: Path):
    key, cert = self_signed(workdir, "anon-token")
    auth = token_auth(workdir / "htpasswd", key, cert, "/auth/token", ACL, anonymous_pull=True)
    with serve(workdir / "anon-token", auth) as s:
        ok(skopeo("copy", "--dest-tls-verify=false", "--dest-creds", f"{USER}:{PASSWORD}", f"oci:{layout}:t",
                  f"docker://{s.host}/alice/pub:v1"))
        # skopeo without credentials: the 401 sends it to the token endpoint, which gives anonymous pull tokens
        info = json.loads(ok(skopeo("inspect", "--tls-verify=false", f"docker://{s.host}/alice/pub:v1")))
        assert info["RepoTags"] == ["v1"]
        proc = skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:t", f"docker://{s.host}/alice/pub:v2")
        assert proc.returncode != 0 and "unauthorized" in proc.stderr.lower(), proc.stderr
        assert RegistryClient(s.host).list_tags("alice/pub") == ["v1"]


def test_tls_serve(workdir: Path, layout: Path, tmp_path: Path):
    key, cert = self_signed(tmp_path, "tls")
    with serve(workdir / "tls", htpasswd_auth(workdir / "htpasswd"), tls=(key, cert)) as s:
        assert s.url.startswith("https://")
        r = requests.get(s.url + "/v2/", verify=str(cert))
        assert r.status_code == 401 and r.headers["WWW-Authenticate"] == 'Basic realm="pyregistry-test"'
        assert requests.get(s.url + "/v2/", verify=str(cert), auth=(USER, PASSWORD)).status_code == 200
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(s.url + "/v2/")  # not a CA the system trusts
        with pytest.raises(requests.RequestException):
            requests.get(f"http://{s.host}/v2/", timeout=5)  # no plain HTTP on a TLS port
        # skopeo verifying the server against the certificate (a cert dir holding it as a CA)
        certs = tmp_path / "certs"
        certs.mkdir()
        (certs / "ca.crt").write_bytes(cert.read_bytes())
        ok(skopeo("copy", "--dest-cert-dir", str(certs), "--dest-creds", f"{USER}:{PASSWORD}", f"oci:{layout}:t",
                  f"docker://{s.host}/tls/app:v1"))
        proc = skopeo("inspect", "--creds", f"{USER}:{PASSWORD}", f"docker://{s.host}/tls/app:v1")
        assert proc.returncode != 0 and "certificate" in proc.stderr
        ok(skopeo("inspect", "--cert-dir", str(certs), "--creds", f"{USER}:{PASSWORD}",
                  f"docker://{s.host}/tls/app:v1"))
