"""pyregistry.config (Distribution's config.yml shape plus our keys), pyregistry.errors, and the `serve` command:
one-line errors, SIGTERM shutdown, upload purging, logging."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from pyregistry import config, errors
from tests.pyregistry.server import PYREGISTRY, launch, stop
from tests.support import free_port


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config.yml"
    p.write_text(text)
    return p


def test_defaults_without_a_file():
    c = config.load(None)
    assert c.root == "/var/lib/pyregistry" and c.addr == "127.0.0.1:5000"
    assert c.http.maxmanifestsize == 4 << 20 and not c.storage.delete_enabled and not c.auth.enabled
    assert c.log.level == "info" and c.log.formatter == "text"
    o = c.with_overrides(addr="0.0.0.0:6000", root="rel/dir")
    assert o.addr == "0.0.0.0:6000" and o.root.endswith("/rel/dir") and o.root.startswith("/")
    assert c.addr == "127.0.0.1:5000"  # frozen: overrides make a new Config
    with pytest.raises(errors.ConfigError, match="--addr"):
        c.with_overrides(addr="nope")


def test_full_config(tmp_path: Path):
    c = config.load(write(tmp_path, """
version: 0.1
log: {level: debug, formatter: json, fields: {service: registry}, accesslog: {disabled: true}}
storage:
  cache: {blobdescriptor: inmemory}
  filesystem: {rootdirectory: /srv/reg}
  delete: {enabled: true}
  maintenance: {uploadpurging: {enabled: true, age: 2h30m, interval: 10m, dryrun: true}}
http:
  addr: :5001
  host: https://reg.example
  headers: {X-Content-Type-Options: [nosniff]}
  tls: {certificate: /c.pem, key: /k.pem}
  maxmanifestsize: 1000
auth:
  token:
    realm: https://reg.example/auth/token
    service: reg
    issuer: pyregistry
    rootcertbundle: /cert.pem
    signingkey: /key.pem
    acl:
      - {account: alice, name: 'alice/*', actions: ['*']}
      - {account: '*', name: 'pub/*', actions: [pull]}
  anonymous: {pull: true}
health: {storagedriver: {enabled: true}}
"""))
    assert c.storage == config.StorageConfig("/srv/reg", True, config.UploadPurging(True, 9000.0, 600.0, True))
    assert c.log == config.LogConfig("debug", "json", accesslog=False)
    assert c.http.addr == ":5001" and c.http.host_port == ("0.0.0.0", 5001) and c.http.tls
    assert c.http.maxmanifestsize == 1000 and c.http.host == "https://reg.example"
    t = c.auth.token
    assert t is not None and t.signingkey == "/key.pem" and t.rootcertbundle == "/cert.pem"
    assert t.acl == (config.AclEntry("alice", "alice/*", ("*",)), config.AclEntry("*", "pub/*", ("pull",)))
    assert c.auth.anonymous_pull and c.auth.htpasswd is None and c.auth.enabled
    assert c.source.endswith("config.yml")


def test_debian_default_config_loads():
    c = config.load("/etc/docker/registry/config.yml")
    assert c.root == "/var/lib/docker-registry" and c.storage.delete_enabled
    assert c.auth.htpasswd == config.HtpasswdConfig("basic-realm", "/etc/docker/registry")


@pytest.mark.parametrize("text, message", [
    ("storage:\n  delete:\n    enabled: 3\n", "config.yml: storage.delete.enabled: must be a boolean"),
    ("storage:\n  filesystem:\n    rootdir: /x\n", "config.yml: storage.filesystem.rootdir: unknown key"),
    ("bogus: 1\n", "config.yml: bogus: unknown key"),
    ("http:\n  addr: nope\n", "config.yml: http.addr: must be HOST:PORT"),
    ("http:\n  maxmanifestsize: -1\n", "config.yml: http.maxmanifestsize: must be a positive integer"),
    ("log:\n  level: loud\n", "config.yml: log.level: must be one of"),
    ("storage:\n  maintenance:\n    uploadpurging:\n      age: soon\n", "uploadpurging.age: must be a duration"),
    ("auth:\n  htpasswd:\n    realm: r\n", "config.yml: auth.htpasswd.path: is required"),
    ("auth:\n  token: {realm: r, service: s, issuer: i, acl: [{account: a, name: b, actions: [fly]}]}\n",
     "auth.token.acl[0].actions: must be a list"),
    ("http:\n  tls:\n    certificate: /c.pem\n", "http.tls: needs both certificate and key"),
    ("storage: [1]\n", "config.yml: storage: must be a mapping"),
    ("a: [unclosed\n", "config.yml: not valid YAML"),
])
def test_bad_config_names_the_key(tmp_path: Path, text: str, message: str):
    with pytest.raises(errors.ConfigError) as e:
        config.load(write(tmp_path, text))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_error_helpers_map_codes_to_status():
    expected = {"BLOB_UNKNOWN": 404, "BLOB_UPLOAD_INVALID": 400, "BLOB_UPLOAD_UNKNOWN": 404, "DIGEST_INVALID": 400,
                "MANIFEST_BLOB_UNKNOWN": 400, "MANIFEST_INVALID": 400, "MANIFEST_UNKNOWN": 404,
                "NAME_INVALID": 400, "NAME_UNKNOWN": 404, "SIZE_INVALID": 400, "UNAUTHORIZED": 401,
                "DENIED": 403, "UNSUPPORTED": 405, "TOOMANYREQUESTS": 429, "RANGE_INVALID": 416}
    for code, status in expected.items():
        e = getattr(errors, code.lower())(detail={"x": 1}, headers={"H": "v"})
        assert isinstance(e, errors.RegistryHTTPError) and (e.code, e.status) == (code, status)
        assert json.loads(e.body()) == {"errors": [{"code": code, "message": errors.CODES[code][1], "detail": {"x": 1}}]}
        assert e.headers == {"H": "v"}


def test_serve_errors_are_one_line(tmp_path: Path):
    bad = write(tmp_path, "storage:\n  delete:\n    enabled: maybe\n")
    p = subprocess.run([*PYREGISTRY, "serve", "--config", str(bad)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and p.stderr == "pyregistry: config.yml: storage.delete.enabled: must be a boolean\n"
    p = subprocess.run([*PYREGISTRY, "serve", "--config", str(tmp_path / "missing.yml")], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 1 and p.stderr.startswith("pyregistry: ") and p.stderr.count("\n") == 1
    port = free_port()
    with __import__("socket").socket() as s:  # the port is taken
        s.bind(("127.0.0.1", port))
        s.listen()
        p = subprocess.run([*PYREGISTRY, "serve", "--addr", f"127.0.0.1:{port}", "--root", str(tmp_path / "r")],
                           capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in p.stderr and "Traceback" not in p.stderr


def test_sigterm_shuts_down_gracefully_and_access_log(tmp_path: Path):
    server = launch(tmp_path, config="log:\n  level: info\n  formatter: json\n")
    try:
        requests.get(server.v2(""), headers={"User-Agent": "test-agent/1"})
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=15) == 0
    finally:
        stop(server.proc)
    log = server.log.read_text()
    assert '"GET /v2/ HTTP/1.1" 200' in log and '"test-agent/1"' in log
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert any(line["msg"].startswith("listening on http://127.0.0.1:") for line in lines)
    assert any(line["msg"] == "shutting down" for line in lines)


def test_upload_purging(tmp_path: Path):
    cfg = "storage:\n  maintenance:\n    uploadpurging:\n      enabled: true\n      age: 1s\n      interval: 500ms\n"
    cfg += "http:\n  host: https://reg.example:8443\n"
    server = launch(tmp_path, config=cfg)
    try:
        r = requests.post(server.v2("purge/me/blobs/uploads/"))
        url = r.headers["Location"].replace("https://reg.example:8443", server.url)
        assert requests.get(url).status_code == 204
        assert r.headers["Location"].startswith("https://reg.example:8443/v2/purge/me/blobs/uploads/")
        deadline = time.monotonic() + 10
        while requests.get(url).status_code == 204 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert requests.get(url).status_code == 404
        assert not list((server.root / "docker/registry/v2/repositories/purge/me/_uploads").iterdir())
    finally:
        stop(server.proc)
