"""pyregistry with real clients and with Distribution: pyoci's client, skopeo, and one storage root shared with
Debian's docker-registry in both directions; 20 concurrent pushes of overlapping images."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pyoci import mediatypes as mt
from pyoci.layout import Layout
from pyoci.registry import RegistryClient
from pyoci.registry import copy as regcopy
from tests.pyoci.registry_fixtures import skopeo, start_registry, umoci_image
from tests.pyregistry.server import pyregistry, start_pyregistry  # noqa: F401 (fixture)
from tests.support import require

pytestmark = pytest.mark.interop


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_pyoci_client_round_trip(pyregistry, tmp_path: Path):
    c = RegistryClient(pyregistry.host)
    assert c.ping()
    big = os.urandom(3 << 20)
    d = c.push_blob("client/rt", big, chunk_size=1 << 20)  # chunked PATCH with Content-Range
    assert d == sha(big) and c.head_blob("client/rt", d).size == len(big)
    src = tmp_path / "blob.bin"
    src.write_bytes(os.urandom(1 << 20))
    d2 = c.push_blob("client/rt", src)  # monolithic from a file
    c.get_blob("client/rt", d2, tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()
    assert c.mount_blob("client/rt2", d, "client/rt") is not None
    assert c.blob_exists("client/rt2", d)
    cfg = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    dc = c.push_blob("client/rt", cfg)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                           "config": {"mediaType": mt.OCI_CONFIG, "digest": dc, "size": len(cfg)},
                           "layers": [{"mediaType": mt.OCI_LAYER_GZIP, "digest": d, "size": len(big)}]}).encode()
    md = c.put_manifest("client/rt", "v1", manifest, mt.OCI_MANIFEST)
    assert md == sha(manifest)
    data, media_type, digest = c.get_manifest("client/rt", "v1")
    assert (data, media_type, digest) == (manifest, mt.OCI_MANIFEST, md)
    assert c.list_tags("client/rt") == ["v1"]
    assert "client/rt" in c.catalog(page_size=1)
    # an artifact referring to the image, found through the referrers API
    empty = c.push_blob("client/rt", b"{}")
    art = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "artifactType": "application/x-test",
                      "config": {"mediaType": mt.OCI_EMPTY, "digest": empty, "size": 2}, "layers": [],
                      "subject": {"mediaType": mt.OCI_MANIFEST, "digest": md, "size": len(manifest)}}).encode()
    ad = c.put_manifest("client/rt", sha(art), art, mt.OCI_MANIFEST)
    refs = c.referrers("client/rt", md)
    assert [r["digest"] for r in refs] == [ad] and refs[0]["artifactType"] == "application/x-test"
    c.delete_manifest("client/rt", ad)
    assert c.referrers("client/rt", md) == []


def test_layout_push_pull_with_pyoci_copy(pyregistry, tmp_path: Path):
    layout = umoci_image(tmp_path)
    top = regcopy.push(layout, "t", f"{pyregistry.host}/copy/img:t")
    out = tmp_path / "pulled"
    desc = regcopy.pull(f"{pyregistry.host}/copy/img:t", out, "t")
    assert desc["digest"] == top
    src, dst = Layout.open(layout), Layout.open(out)
    assert dst.resolve("t")["digest"] == src.resolve("t")["digest"]


def test_skopeo_copy_inspect_list_tags_delete(pyregistry, tmp_path: Path):
    layout = umoci_image(tmp_path)
    dest = f"docker://{pyregistry.host}/skopeo/img"
    skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:t", f"{dest}:oci")
    skopeo("copy", "--dest-tls-verify=false", "--format", "v2s2", f"oci:{layout}:t", f"{dest}:docker")
    info = json.loads(skopeo("inspect", "--tls-verify=false", f"{dest}:oci"))
    assert info["Name"] == f"{pyregistry.host}/skopeo/img" and sorted(info["RepoTags"]) == ["docker", "oci"]
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"{dest}:docker")
    assert json.loads(raw)["mediaType"] == mt.DOCKER_MANIFEST
    tags = json.loads(skopeo("list-tags", "--tls-verify=false", dest))["Tags"]
    assert sorted(tags) == ["docker", "oci"]
    out = tmp_path / "out"
    skopeo("copy", "--src-tls-verify=false", f"{dest}:oci", f"oci:{out}:t")
    assert Layout.open(out).resolve("t")["digest"] == Layout.open(layout).resolve("t")["digest"]
    skopeo("delete", "--tls-verify=false", f"{dest}:docker")
    tags = json.loads(skopeo("list-tags", "--tls-verify=false", dest))["Tags"]
    assert tags == ["oci"]
    proc = subprocess.run([require("skopeo"), "inspect", "--tls-verify=false", f"{dest}:docker"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "manifest unknown" in proc.stderr


def test_root_written_by_distribution_served_by_pyregistry_and_back(tmp_path: Path):
    layout = umoci_image(tmp_path)
    with start_registry(tmp_path / "dist") as dist:
        skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:t", f"docker://{dist.host}/from/dist:t")
        skopeo("copy", "--dest-tls-verify=false", "--format", "v2s2", f"oci:{layout}:t",
               f"docker://{dist.host}/from/dist:docker")
        dist_digest = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{dist.host}/from/dist:t"))["Digest"]
    root = dist.root
    # pyregistry serves what Distribution wrote, then writes into the same root
    with start_pyregistry(tmp_path / "py", root=root) as py:
        info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{py.host}/from/dist:t"))
        assert info["Digest"] == dist_digest and sorted(info["RepoTags"]) == ["docker", "t"]
        out = tmp_path / "out1"
        skopeo("copy", "--src-tls-verify=false", f"docker://{py.host}/from/dist:docker", f"oci:{out}:t")
        skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:t", f"docker://{py.host}/from/py:t")
        py_digest = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{py.host}/from/py:t"))["Digest"]
    # Distribution serves what pyregistry wrote
    with start_registry(tmp_path / "dist", ) as dist2:
        assert dist2.root == root
        info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{dist2.host}/from/py:t"))
        assert info["Digest"] == py_digest
        out = tmp_path / "out2"
        skopeo("copy", "--src-tls-verify=false", f"docker://{dist2.host}/from/py:t", f"oci:{out}:t")
        assert Layout.open(out).resolve("t")["digest"] == py_digest
        cat = json.loads(subprocess.run(["curl", "-sf", f"{dist2.url}/v2/_catalog"], capture_output=True,
                                        check=True).stdout)
        assert cat["repositories"] == ["from/dist", "from/py"]


def test_concurrent_pushes_of_overlapping_images(pyregistry, tmp_path: Path):
    """20 threads push images sharing base layers (same blobs, same tags in one repo) at the same time."""
    shared = [os.urandom(256 << 10) for _ in range(3)]

    def push(i: int) -> tuple[str, str, bytes]:
        c = RegistryClient(pyregistry.host)
        repo = f"conc/r{i % 4}"
        own = os.urandom(64 << 10)
        cfg = json.dumps({"architecture": "amd64", "os": "linux", "n": i,
                          "rootfs": {"type": "layers", "diff_ids": []}}).encode()
        layers = [*shared, own]
        for b in layers:
            c.push_blob(repo, b)
        dc = c.push_blob(repo, cfg)
        m = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                        "config": {"mediaType": mt.OCI_CONFIG, "digest": dc, "size": len(cfg)},
                        "layers": [{"mediaType": mt.OCI_LAYER_GZIP, "digest": sha(b), "size": len(b)}
                                   for b in layers]}).encode()
        c.put_manifest(repo, f"i{i}", m, mt.OCI_MANIFEST)
        c.put_manifest(repo, "latest", m, mt.OCI_MANIFEST)  # the same tag raced by five threads
        return repo, f"i{i}", m

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(push, range(20)))
    c = RegistryClient(pyregistry.host)
    for repo, tag, m in results:
        data, _, digest = c.get_manifest(repo, tag)
        assert data == m and digest == sha(m)
        for layer in json.loads(m)["layers"]:
            c.get_blob(repo, layer["digest"], tmp_path / "x", size=layer["size"])  # verified by digest
    for r in range(4):
        latest = c.get_manifest(f"conc/r{r}", "latest")[0]
        assert latest in [m for repo, _, m in results if repo == f"conc/r{r}"]
    tmp_files = [p for p in pyregistry.root.rglob(".tmp*")]
    assert tmp_files == []
