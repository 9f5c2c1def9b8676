"""`pyregistry garbage-collect` on the storage of a running `pyregistry serve`, against Distribution's own
garbage-collect on a copy of the same tree."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest
import requests

from pyoci.registry import RegistryClient
from pyregistry import config as cfgmod
from pyregistry import gc
from tests.pyregistry.test_auth_helpers import Server, pyregistry, serve
from tests.support import require

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with serve(tmp_path / "reg") as s:
        yield s


def _blob_files(root: Path) -> dict[str, Path]:
    base = root / "docker/registry/v2/blobs/sha256"
    return {f"sha256:{p.parent.name}": p for p in base.glob("*/*/data")} if base.is_dir() else {}


def _backdate(root: Path, seconds: float = 7200) -> None:
    """Make every stored blob look older than the default grace period."""
    t = time.time() - seconds
    for p in _blob_files(root).values():
        os.utime(p, (t, t))


def _image(client: RegistryClient, repo: str, tag: str | None, layers: list[bytes], label: str = "",
           subject: dict | None = None, artifact_type: str = "") -> tuple[str, dict]:
    """Push an image (or, with subject, an artifact); returns (manifest digest, its digests by role)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": {"l": label}},
                         "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    cfg = client.push_blob(repo, config)
    descs = []
    for data in layers:
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": client.push_blob(repo, data),
                      "size": len(data)})
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": len(config)},
           "layers": descs}
    if subject:
        doc["subject"] = subject
        doc["artifactType"] = artifact_type or "application/vnd.example+json"
    data = json.dumps(doc).encode()
    digest = client.put_manifest(repo, tag or f"sha256:{hashlib.sha256(data).hexdigest()}", data,
                                 OCI_MANIFEST, update_referrers=False)
    return digest, {"config": cfg, "layers": [d["digest"] for d in descs], "size": len(data)}


def _config(server: Server) -> cfgmod.Config:
    return cfgmod.load(server.config)


def test_gc_shared_layers_dry_run_then_sweep(server: Server, tmp_path: Path):
    c = RegistryClient(server.host)
    shared, only_a, only_b = b"shared layer" * 1000, b"layer of a" * 1000, b"layer of b" * 1000
    a, pa = _image(c, "gc/a", "v1", [shared, only_a], "a")
    b, pb = _image(c, "gc/b", "v1", [shared, only_b], "b")
    c.delete_manifest("gc/b", b)
    before = set(_blob_files(server.root))
    unreferenced = {b, pb["config"], pb["layers"][1]}
    assert unreferenced <= before

    # Distribution's verdict on a copy of the same tree
    dist_root = tmp_path / "dist-copy"
    shutil.copytree(server.root, dist_root)
    dist_cfg = tmp_path / "dist.yml"
    dist_cfg.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {dist_root}\n"
                        "http:\n  addr: 127.0.0.1:0\n")
    proc = subprocess.run([require("docker-registry"), "garbage-collect", "--dry-run", str(dist_cfg)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    theirs = set(re.findall(r"blob eligible for deletion: (sha256:[0-9a-f]{64})", proc.stdout + proc.stderr))
    assert theirs == unreferenced

    # --dry-run: reports, deletes nothing
    res = pyregistry("garbage-collect", "--dry-run", "--config", str(server.config))
    assert res.returncode == 0, res.stderr
    ours = set(re.findall(r"^blob eligible for deletion: (sha256:[0-9a-f]{64})$", res.stdout, re.M))
    assert ours == theirs
    assert re.search(rf"^\d+ blobs marked, {len(unreferenced)} blobs and 0 manifests eligible for deletion$",
                     res.stdout, re.M), res.stdout
    assert f"gc/a: marking manifest {a}" in res.stdout
    assert set(_blob_files(server.root)) == before

    # the default grace period keeps blobs written in the last hour
    res = pyregistry("garbage-collect", "--config", str(server.config))
    assert res.returncode == 0 and set(_blob_files(server.root)) == before, res.stdout

    # older: exactly the unreferenced blobs go, the rest is still pullable
    _backdate(server.root)
    res = pyregistry("garbage-collect", "--config", str(server.config))
    assert res.returncode == 0, res.stderr
    assert set(_blob_files(server.root)) == before - unreferenced
    _, _, digest = c.get_manifest("gc/a", "v1")
    assert digest == a
    for d in [pa["config"], *pa["layers"]]:
        assert c.blob_exists("gc/a", d)
        r = requests.get(f"{server.url}/v2/gc/a/blobs/{d}")
        assert r.status_code == 200 and f"sha256:{hashlib.sha256(r.content).hexdigest()}" == d
    assert not c.blob_exists("gc/b", pb["layers"][1])
    # and a real client pulls the survivor whole (skopeo verifies every digest)
    out = tmp_path / "pulled"
    proc = subprocess.run([require("skopeo"), "--insecure-policy", "copy", "--preserve-digests",
                           "--src-tls-verify=false", f"docker://{server.host}/gc/a:v1", f"oci:{out}:a"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "index.json").read_text())["manifests"][0]["digest"] == a
    # the layer shared with a is still served from gc/b's link as well
    assert c.blob_exists("gc/b", pb["layers"][0])


def test_gc_delete_untagged_keeps_index_children_and_referrers(server: Server):
    c = RegistryClient(server.host)
    old, pold = _image(c, "gc/u", "v1", [b"old layer" * 500], "old")
    new, pnew = _image(c, "gc/u", "v1", [b"new layer" * 500], "new")  # retags v1: old is untagged now
    # an index whose children are pushed by digest only
    child, pchild = _image(c, "gc/u", None, [b"child layer" * 500], "child")
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": child, "size": pchild["size"],
         "platform": {"architecture": "arm64", "os": "linux"}}]}).encode()
    idx = c.put_manifest("gc/u", "multi", index, OCI_INDEX)
    # referrers: one of the tagged image (kept), one of the untagged old image (goes with it)
    sig_new, psig_new = _image(c, "gc/u", None, [b"signature of new"], "sig",
                               subject={"mediaType": OCI_MANIFEST, "digest": new, "size": pnew["size"]})
    sig_old, psig_old = _image(c, "gc/u", None, [b"signature of old"], "sig-old",
                               subject={"mediaType": OCI_MANIFEST, "digest": old, "size": pold["size"]})
    _backdate(server.root)

    # without --delete-untagged every revision is a root: nothing to collect
    report = gc.run(_config(server), dry_run=False, delete_untagged=False, emit=lambda _: None)
    assert report.eligible == [] and report.manifests == []

    lines: list[str] = []
    report = gc.run(_config(server), dry_run=False, delete_untagged=True, emit=lines.append)
    assert sorted(d for _, d in report.manifests) == sorted([old, sig_old])
    assert f"manifest eligible for deletion: {old}" in lines
    gone = {old, sig_old, pold["config"], pold["layers"][0], psig_old["layers"][0], psig_old["config"]}
    assert set(report.deleted) == gone
    assert not gone & set(_blob_files(server.root))
    for digest in (new, idx, child, sig_new):
        assert c.get_manifest("gc/u", digest)[2] == digest
    for d in (*pnew["layers"], *pchild["layers"], *psig_new["layers"]):
        assert c.blob_exists("gc/u", d)
    assert c.get_manifest("gc/u", "v1")[2] == new
    assert requests.head(f"{server.url}/v2/gc/u/manifests/{old}", headers={"Accept": OCI_MANIFEST}).status_code == 404


def test_gc_during_an_upload_and_grace(server: Server):
    c = RegistryClient(server.host)
    keep, _ = _image(c, "gc/up", "v1", [b"kept" * 100])
    # an orphan blob pushed just now (its manifest "still on its way")
    orphan = c.push_blob("gc/up", b"orphan layer, manifest not pushed yet")
    # an upload session in flight: opened, one chunk sent, not closed
    payload = os.urandom(300_000)
    r = requests.post(f"{server.url}/v2/gc/up/blobs/uploads/")
    assert r.status_code == 202
    location = r.headers["Location"]
    if location.startswith("/"):
        location = server.url + location
    r = requests.patch(location, data=payload[:100_000], headers={"Content-Type": "application/octet-stream",
                                                                  "Content-Range": "0-99999"})
    assert r.status_code == 202, r.text
    location = r.headers["Location"] if r.headers["Location"].startswith("http") else server.url + r.headers["Location"]

    report = gc.run(_config(server), dry_run=False, delete_untagged=True, emit=lambda _: None)
    assert report.eligible == [orphan] and report.kept_young == [orphan] and report.deleted == []
    report = gc.run(_config(server), dry_run=False, delete_untagged=True, grace=0, emit=lambda _: None)
    assert report.deleted == [orphan]

    # the upload carries on and completes after both runs
    r = requests.patch(location, data=payload[100_000:], headers={"Content-Type": "application/octet-stream",
                                                                  "Content-Range": f"100000-{len(payload) - 1}"})
    assert r.status_code == 202, r.text
    location = r.headers["Location"] if r.headers["Location"].startswith("http") else server.url + r.headers["Location"]
    digest = f"sha256:{hashlib.sha256(payload).hexdigest()}"
    r = requests.put(location, params={"digest": digest})
    assert r.status_code == 201, r.text
    assert requests.get(f"{server.url}/v2/gc/up/blobs/{digest}").content == payload
    assert c.get_manifest("gc/up", "v1")[2] == keep


def test_gc_refuses_to_sweep_with_an_unreadable_manifest(server: Server):
    c = RegistryClient(server.host)
    digest, parts = _image(c, "gc/bad", "v1", [b"layer"])
    _backdate(server.root)
    _blob_files(server.root)[digest].write_bytes(b"{not json")
    with pytest.raises(gc.GCError, match="does not parse"):
        gc.run(_config(server), dry_run=False, delete_untagged=False, grace=0, emit=lambda _: None)
    assert parts["layers"][0] in _blob_files(server.root)
    res = pyregistry("garbage-collect", "--config", str(server.config))
    assert res.returncode == 1 and res.stderr.startswith("pyregistry: garbage-collect: manifest")
    assert "Traceback" not in res.stderr
