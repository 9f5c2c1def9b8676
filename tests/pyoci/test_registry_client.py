"""pyoci.registry.RegistryClient against Debian's docker-registry (Distribution 2.8) on 127.0.0.1."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pyoci import digest as dg
from pyoci import mediatypes as mt
from pyoci.errors import DigestMismatch, NotFound, RegistryError
from pyoci.registry import RegistryClient
from tests.pyoci.registry_fixtures import Registry, registry  # noqa: F401  (fixture)
from tests.support import free_port

pytestmark = pytest.mark.interop


def _client(reg: Registry, events: list | None = None) -> RegistryClient:
    progress = (lambda *e: events.append(e)) if events is not None else None
    return RegistryClient(reg.host, progress=progress)


def _push_image(c: RegistryClient, repo: str, tag: str, *, docker: bool = False,
                payload: bytes = b"layer") -> tuple[bytes, str]:
    """Push a config, one layer and a manifest (OCI or Docker schema2); returns (manifest bytes, digest)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
                         "config": {}, "history": [{"created_by": repo + tag}]}).encode()
    layer = payload + repo.encode() + tag.encode()
    cd = c.push_blob(repo, config)
    ld = c.push_blob(repo, layer)
    manifest = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST if docker else mt.OCI_MANIFEST,
        "config": {"mediaType": mt.DOCKER_CONFIG if docker else mt.OCI_CONFIG, "digest": cd, "size": len(config)},
        "layers": [{"mediaType": mt.DOCKER_LAYER_GZIP if docker else mt.OCI_LAYER_GZIP, "digest": ld,
                    "size": len(layer)}],
    }
    data = json.dumps(manifest, separators=(",", ":")).encode()
    d = c.put_manifest(repo, tag, data, manifest["mediaType"])
    return data, d


def test_ping(registry: Registry) -> None:
    assert _client(registry).ping() is True


def test_connection_refused_names_the_host() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(RegistryError) as e:
        RegistryClient(f"127.0.0.1:{port}").ping()
    msg = str(e.value)
    assert f"127.0.0.1:{port}" in msg and "connection refused" in msg and "\n" not in msg


def test_localhost_is_plain_http_others_https() -> None:
    assert RegistryClient("127.0.0.1:5000").base == "http://127.0.0.1:5000"
    assert RegistryClient("localhost:5000").base == "http://localhost:5000"
    assert RegistryClient("[::1]:5000").base == "http://[::1]:5000"
    assert RegistryClient("ghcr.io").base == "https://ghcr.io"
    assert RegistryClient("docker.io").base == "https://registry-1.docker.io"
    assert RegistryClient("10.0.0.1:5000", insecure=True).base == "http://10.0.0.1:5000"
    assert RegistryClient("localhost:5000", insecure=False).base == "https://localhost:5000"
    assert RegistryClient("http://reg.example:5000/").base == "http://reg.example:5000"
    assert RegistryClient("https://127.0.0.1:5000").base == "https://127.0.0.1:5000"


def test_push_blob_monolithic_then_pull(registry: Registry, tmp_path: Path) -> None:
    events: list = []
    c = _client(registry, events)
    data = os.urandom(300_000)
    src = tmp_path / "blob"
    src.write_bytes(data)
    d = c.push_blob("mono/blob", src)
    assert d == str(dg.of_bytes(data))
    assert c.blob_exists("mono/blob", d)
    assert ("done", d, len(data), len(data)) in events
    # A second push is skipped after HEAD.
    events.clear()
    assert c.push_blob("mono/blob", data) == d
    assert events == [("exists", d, len(data), len(data))]
    out = tmp_path / "out" / "blob"
    assert c.get_blob("mono/blob", d, out, size=len(data)) == d
    assert out.read_bytes() == data
    assert not Path(str(out) + ".partial").exists()
    assert events[-1] == ("done", d, len(data), len(data))
    assert any(e[0] == "download" for e in events)
    assert c.head_blob("mono/blob", d).size == len(data)


@pytest.mark.parametrize("source", ["bytes", "file"])
def test_push_blob_chunked(registry: Registry, tmp_path: Path, source: str) -> None:
    events: list = []
    c = _client(registry, events)
    data = os.urandom(10_000 + 17)
    src = tmp_path / "blob"
    src.write_bytes(data)
    repo = f"chunked/{source}"
    d = c.push_blob(repo, data if source == "bytes" else src, chunk_size=1000)
    uploads = [e for e in events if e[0] == "upload"]
    assert len(uploads) == 11 and uploads[-1][2:] == (len(data), len(data))
    with c.open_blob(repo, d) as r:
        assert r.read() == data


def test_get_blob_detects_tampered_storage(registry: Registry, tmp_path: Path) -> None:
    c = _client(registry)
    data = b"the genuine bytes " * 1000
    d = c.push_blob("tamper/me", data)
    stored = registry.blob_data_path(d)
    assert stored.read_bytes() == data
    stored.write_bytes(data.replace(b"genuine", b"GENUINE"))  # same size, other bytes
    dest = tmp_path / "dest"
    with pytest.raises(DigestMismatch) as e:
        c.get_blob("tamper/me", d, dest)
    assert d in str(e.value) and "\n" not in str(e.value)
    assert not dest.exists() and not Path(str(dest) + ".partial").exists()
    assert os.listdir(tmp_path) == []  # no temp file left behind either
    with pytest.raises(DigestMismatch):
        with c.open_blob("tamper/me", d) as r:
            r.read()


def test_get_blob_resumes_a_partial_download(registry: Registry, tmp_path: Path) -> None:
    events: list = []
    c = _client(registry, events)
    data = os.urandom(2_500_000)
    d = c.push_blob("resume/blob", data)
    dest = tmp_path / "blob"
    Path(str(dest) + ".partial").write_bytes(data[:1_000_000])
    events.clear()
    c.get_blob("resume/blob", d, dest, size=len(data))
    assert dest.read_bytes() == data
    downloads = [e for e in events if e[0] == "download"]
    assert downloads[0][2] == 1_000_000  # started from the partial bytes, via Range
    assert downloads[0][3] == len(data)
    assert not Path(str(dest) + ".partial").exists()


def test_get_blob_retries_from_scratch_when_the_partial_is_bad(registry: Registry, tmp_path: Path) -> None:
    c = _client(registry)
    data = os.urandom(200_000)
    d = c.push_blob("resume/bad", data)
    dest = tmp_path / "blob"
    Path(str(dest) + ".partial").write_bytes(b"\0" * 50_000)  # not the blob's first bytes
    c.get_blob("resume/bad", d, dest)
    assert dest.read_bytes() == data


def test_get_blob_with_a_complete_partial_commits_without_downloading(registry: Registry, tmp_path: Path) -> None:
    events: list = []
    c = _client(registry, events)
    data = os.urandom(1000)
    d = c.push_blob("resume/full", data)
    dest = tmp_path / "blob"
    Path(str(dest) + ".partial").write_bytes(data)
    events.clear()
    c.get_blob("resume/full", d, dest)  # size unknown: the registry answers 416 to the range
    assert dest.read_bytes() == data
    assert events == [("done", d, 1000, 1000)]


def test_missing_blob_is_a_one_line_registry_error(registry: Registry, tmp_path: Path) -> None:
    c = _client(registry)
    d = str(dg.of_bytes(b"never pushed"))
    assert not c.blob_exists("missing/repo", d)
    assert c.head_blob("missing/repo", d) is None
    with pytest.raises(RegistryError) as e:
        c.get_blob("missing/repo", d, tmp_path / "x")
    assert e.value.status == 404 and e.value.code == "BLOB_UNKNOWN"
    assert str(e.value) == (f"GET http://{registry.host}/v2/missing/repo/blobs/{d}: "
                            "404 BLOB_UNKNOWN: blob unknown to registry")
    assert list(tmp_path.iterdir()) == []


def test_cross_repo_mount(registry: Registry) -> None:
    events: list = []
    c = _client(registry, events)
    data = os.urandom(4096)
    d = c.push_blob("mount/source", data)
    assert not c.blob_exists("mount/target", d)
    assert c.mount_blob("mount/target", d, "mount/source") is True
    assert ("mounted", d, 0, 0) in events
    assert c.blob_exists("mount/target", d)
    with c.open_blob("mount/target", d) as r:
        assert r.read() == data


def test_mount_falls_back_to_upload_on_202(registry: Registry) -> None:
    c = _client(registry)
    data = os.urandom(2048)
    d = str(dg.of_bytes(data))
    # The source repository does not have it: Distribution opens a plain upload (202) instead.
    assert c.mount_blob("mount/fallback", d, "mount/nowhere", source=data) is False
    assert c.blob_exists("mount/fallback", d)
    with pytest.raises(NotFound):
        c.mount_blob("mount/fallback2", str(dg.of_bytes(b"nowhere")), "mount/nowhere")


@pytest.mark.parametrize("docker", [False, True], ids=["oci", "docker-schema2"])
def test_manifest_push_pull_head(registry: Registry, docker: bool) -> None:
    c = _client(registry)
    repo = "manifests/docker" if docker else "manifests/oci"
    data, d = _push_image(c, repo, "v1", docker=docker)
    assert d == str(dg.of_bytes(data))
    want_type = mt.DOCKER_MANIFEST if docker else mt.OCI_MANIFEST
    for ref in ("v1", d):
        got, media_type, got_digest = c.get_manifest(repo, ref)
        assert (got, media_type, got_digest) == (data, want_type, d)
    assert c.head_manifest(repo, "v1") == {"mediaType": want_type, "digest": d, "size": len(data)}
    assert c.head_manifest(repo, "nope") is None


@pytest.mark.parametrize("docker", [False, True], ids=["oci-index", "docker-manifest-list"])
def test_index_push_pull(registry: Registry, docker: bool) -> None:
    c = _client(registry)
    repo = "index/docker" if docker else "index/oci"
    children = []
    for arch in ("amd64", "arm64"):
        data, d = _push_image(c, repo, arch, docker=docker, payload=arch.encode())
        children.append({"mediaType": mt.DOCKER_MANIFEST if docker else mt.OCI_MANIFEST, "digest": d,
                         "size": len(data), "platform": {"os": "linux", "architecture": arch}})
    index_type = mt.DOCKER_MANIFEST_LIST if docker else mt.OCI_INDEX
    index = json.dumps({"schemaVersion": 2, "mediaType": index_type, "manifests": children}).encode()
    d = c.put_manifest(repo, "multi", index, index_type)
    got, media_type, got_digest = c.get_manifest(repo, "multi")
    assert (got, media_type, got_digest) == (index, index_type, d)
    # Asking for one type only: Distribution serves an index only to clients that accept it.
    got, media_type, _ = c.get_manifest(repo, children[0]["digest"], accept=(children[0]["mediaType"],))
    assert media_type == children[0]["mediaType"]


def test_put_manifest_by_digest_checks_the_bytes(registry: Registry) -> None:
    c = _client(registry)
    data, d = _push_image(c, "manifests/bydigest", "t")
    assert c.put_manifest("manifests/bydigest", d, data, mt.OCI_MANIFEST) == d
    with pytest.raises(DigestMismatch):
        c.put_manifest("manifests/bydigest", d, data + b" ", mt.OCI_MANIFEST)


def test_manifest_unknown_message(registry: Registry) -> None:
    c = _client(registry)
    with pytest.raises(RegistryError) as e:
        c.get_manifest("manifests/none", "latest")
    assert str(e.value) == (f"GET http://{registry.host}/v2/manifests/none/manifests/latest: "
                            "404 MANIFEST_UNKNOWN: manifest unknown")
    assert (e.value.status, e.value.code) == (404, "MANIFEST_UNKNOWN")


def test_invalid_manifest_is_refused_with_the_registry_code(registry: Registry) -> None:
    c = _client(registry)
    bad = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                      "config": {"mediaType": mt.OCI_CONFIG, "digest": str(dg.of_bytes(b"x")), "size": 1},
                      "layers": []}).encode()
    with pytest.raises(RegistryError) as e:
        c.put_manifest("manifests/bad", "t", bad, mt.OCI_MANIFEST)
    assert e.value.status == 400 and e.value.code == "MANIFEST_BLOB_UNKNOWN"


def test_tags_all_found_with_small_pages(registry: Registry) -> None:
    c = _client(registry)
    names = [f"t{i}" for i in range(7)]
    data, _ = _push_image(c, "tags/seven", names[0])
    for name in names[1:]:
        c.put_manifest("tags/seven", name, data, mt.OCI_MANIFEST)
    # Distribution 2.8 ignores n= for tags (one page); the Link walk is tested against a fake server.
    assert sorted(c.list_tags("tags/seven", page_size=2)) == names
    assert sorted(c.list_tags("tags/seven")) == names


def test_catalog_follows_link_pages(registry: Registry) -> None:
    c = _client(registry)
    repos = [f"catalog/r{i}" for i in range(5)]
    for r in repos:
        c.push_blob(r, r.encode())  # a repository exists once it holds a blob link
    everything = c.catalog()
    pages: list[str] = []
    c.session.hooks["response"].append(lambda r, *a, **k: pages.append(r.url))
    paged = c.catalog(page_size=2)
    assert len(pages) >= 3 and "last=" in pages[1]  # the Link header was followed
    assert set(repos) <= set(paged)
    assert paged == everything and len(paged) == len(set(paged))


def test_delete_manifest_and_blob(registry: Registry) -> None:
    c = _client(registry)
    data, d = _push_image(c, "delete/me", "gone")
    layer = json.loads(data)["layers"][0]["digest"]
    c.delete_manifest("delete/me", d)
    assert c.head_manifest("delete/me", d) is None
    with pytest.raises(RegistryError) as e:
        c.get_manifest("delete/me", "gone")
    assert e.value.status == 404
    with pytest.raises(NotFound):
        c.delete_manifest("delete/me", d)
    c.delete_blob("delete/me", layer)
    assert not c.blob_exists("delete/me", layer)
    with pytest.raises(NotFound):
        c.delete_blob("delete/me", layer)


def test_referrers_fall_back_to_the_tag_schema(registry: Registry) -> None:
    c = _client(registry)
    repo = "referrers/fallback"
    data, subject = _push_image(c, repo, "subject")
    assert c.referrers(repo, subject) == []  # 404 from the API, and no fallback tag yet
    # An artifact (OCI 1.1: artifactType + subject) and the fallback index a 1.0 registry needs.
    empty = c.push_blob(repo, b"{}")
    sbom = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "artifactType": "application/spdx+json",
                       "config": {"mediaType": mt.OCI_EMPTY, "digest": empty, "size": 2}, "layers": [],
                       "subject": {"mediaType": mt.OCI_MANIFEST, "digest": subject, "size": len(data)}}).encode()
    sd = c.put_manifest(repo, str(dg.of_bytes(sbom)), sbom, mt.OCI_MANIFEST)
    entry = {"mediaType": mt.OCI_MANIFEST, "digest": sd, "size": len(sbom), "artifactType": "application/spdx+json"}
    other = dict(entry, artifactType="application/vnd.example.sig")
    index = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [entry, other]}).encode()
    c.put_manifest(repo, "sha256-" + subject.split(":")[1], index, mt.OCI_INDEX)
    assert c.referrers(repo, subject) == [entry, other]
    assert c.referrers(repo, subject, artifact_type="application/spdx+json") == [entry]


def test_pushing_a_referrer_maintains_the_fallback_tag(registry: Registry) -> None:
    c = _client(registry)
    repo = "referrers/auto"
    data, subject = _push_image(c, repo, "subject")
    empty = c.push_blob(repo, b"{}")
    found = []
    for kind in ("application/spdx+json", "application/vnd.example.sig"):
        artifact = json.dumps({
            "schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "artifactType": kind,
            "config": {"mediaType": mt.OCI_EMPTY, "digest": empty, "size": 2}, "layers": [],
            "subject": {"mediaType": mt.OCI_MANIFEST, "digest": subject, "size": len(data)},
            "annotations": {"org.example.kind": kind}}).encode()
        d = c.put_manifest(repo, str(dg.of_bytes(artifact)), artifact, mt.OCI_MANIFEST)
        found.append({"mediaType": mt.OCI_MANIFEST, "digest": d, "size": len(artifact), "artifactType": kind,
                      "annotations": {"org.example.kind": kind}})
    # Pushing one again does not list it twice.
    again, _, _ = c.get_manifest(repo, found[0]["digest"])
    c.put_manifest(repo, found[0]["digest"], again, mt.OCI_MANIFEST)
    got = c.referrers(repo, subject)
    assert sorted(got, key=lambda m: m["digest"]) == sorted(found, key=lambda m: m["digest"])
    assert c.referrers(repo, subject, artifact_type="application/vnd.example.sig") == [found[1]]
    assert "sha256-" + subject.split(":")[1] in c.list_tags(repo)
