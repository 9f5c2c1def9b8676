"""pyoci.registry.copy: pull into and push from OCI image layouts, checked with skopeo and umoci."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from pyoci import digest as dg
from pyoci import mediatypes as mt
from pyoci.errors import InvalidReference, NotFound
from pyoci.layout import Layout
from pyoci.registry import RegistryClient
from pyoci.registry.copy import pull, push
from tests.pyoci.registry_fixtures import Registry, registry, skopeo, umoci_image  # noqa: F401  (fixture)
from tests.support import require

pytestmark = pytest.mark.interop


def _blob_names(layout: Path) -> set[str]:
    return {p.name for p in (layout / "blobs" / "sha256").iterdir()}


def _reachable(layout: Path) -> set[str]:
    """Blobs an image uses (umoci leaves the pre-insert manifest and config behind as garbage)."""
    return {d.split(":")[1] for d in Layout.open(layout).reachable()}


def _multiarch_layout(path: Path) -> tuple[Layout, dict[str, dict]]:
    """A layout whose tag `multi` is an index of linux/amd64 and linux/arm64 images sharing a base layer."""
    out = Layout.init(path)
    base = gzip.compress(_tar({"etc/base": b"shared\n"}), mtime=0)
    base_desc = out.put_blob(base).descriptor(mt.OCI_LAYER_GZIP)
    entries, by_arch = [], {}
    for arch in ("amd64", "arm64"):
        raw = _tar({"arch": arch.encode()})
        layer = out.put_blob(gzip.compress(raw, mtime=0)).descriptor(mt.OCI_LAYER_GZIP)
        config = out.put_json({"architecture": arch, "os": "linux", "config": {},
                               "rootfs": {"type": "layers", "diff_ids": [
                                   str(dg.of_bytes(gzip.decompress(base))), str(dg.of_bytes(raw))]}}, mt.OCI_CONFIG)
        manifest = out.put_json({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": config,
                                 "layers": [base_desc, layer]}, mt.OCI_MANIFEST)
        by_arch[arch] = manifest
        entries.append(dict(manifest, platform={"architecture": arch, "os": "linux"}))
    index = out.put_json({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries}, mt.OCI_INDEX)
    out.tag("multi", index)
    return out, by_arch


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_skopeo_push_then_pull_into_a_layout_umoci_unpacks(registry: Registry, tmp_path: Path) -> None:
    src = umoci_image(tmp_path)
    skopeo("copy", "--dest-tls-verify=false", f"oci:{src}:t", f"docker://{registry.host}/copy/umoci:t")
    events: list = []
    dest = tmp_path / "pulled"
    desc = pull(f"{registry.host}/copy/umoci:t", dest, "mine", progress=lambda *e: events.append(e))
    want = json.loads((src / "index.json").read_text())["manifests"][0]
    assert desc["digest"] == want["digest"] and desc["annotations"] == {"org.opencontainers.image.ref.name": "mine"}
    assert _blob_names(dest) == _reachable(src)  # same bytes, same digests
    Layout.open(dest).validate()
    assert any(e[0] == "done" for e in events)
    # The real tools read what we wrote.
    assert json.loads(skopeo("inspect", f"oci:{dest}:mine"))["Digest"] == want["digest"]
    bundle = tmp_path / "bundle"
    subprocess.run([require("umoci"), "unpack", "--image", f"{dest}:mine", str(bundle)], check=True,
                   capture_output=True, timeout=60)
    assert (bundle / "rootfs" / "etc" / "hello").read_text() == "hello from umoci\n"
    # A second pull finds everything present: only the manifest is fetched, no blob downloaded.
    events.clear()
    pull(f"{registry.host}/copy/umoci:t", dest, "again", progress=lambda *e: events.append(e))
    assert not [e for e in events if e[0] == "download"]
    assert sorted(Layout.open(dest).tags()) == ["again", "mine"]


def test_push_then_skopeo_inspect_and_copy(registry: Registry, tmp_path: Path) -> None:
    src = umoci_image(tmp_path)
    ref = f"{registry.host}/copy/pushed:v1"
    digest = push(src, "t", ref)
    want = json.loads((src / "index.json").read_text())["manifests"][0]["digest"]
    assert digest == want
    inspected = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{ref}"))
    assert inspected["Digest"] == want
    out = tmp_path / "out"
    skopeo("copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{out}:t")
    assert _blob_names(out) == _reachable(src)
    # Pushing again skips every blob (HEAD finds them).
    events: list = []
    c = RegistryClient(registry.host, progress=lambda *e: events.append(e))
    push(src, "t", ref, client=c)
    assert events and all(e[0] == "exists" for e in events)


def test_multiarch_push_and_pull_by_platform(registry: Registry, tmp_path: Path) -> None:
    src, by_arch = _multiarch_layout(tmp_path / "src")
    ref = f"{registry.host}/copy/multi:latest"
    index_digest = push(src, "multi", ref)
    assert index_digest == src.resolve("multi")["digest"]
    arm = json.loads(skopeo("inspect", "--tls-verify=false", "--override-arch", "arm64", f"docker://{ref}"))
    assert arm["Architecture"] == "arm64"

    one = tmp_path / "arm64"
    desc = pull(ref, one, "t", platform="linux/arm64")
    assert desc["digest"] == by_arch["arm64"]["digest"] and desc["mediaType"] == mt.OCI_MANIFEST
    layout = Layout.open(one)
    layout.validate()
    assert not layout.has_blob(by_arch["amd64"]["digest"])
    assert json.loads(skopeo("inspect", f"oci:{one}:t"))["Architecture"] == "arm64"

    every = tmp_path / "all"
    desc = pull(ref, every, "t", platform="all")
    assert desc["digest"] == index_digest and desc["mediaType"] == mt.OCI_INDEX
    Layout.open(every).validate()
    assert _blob_names(every) == _blob_names(tmp_path / "src")

    with pytest.raises(NotFound, match=f"copy/multi@{index_digest}: no manifest for platform linux/s390x"):
        pull(ref, tmp_path / "none", "t", platform="linux/s390x")
    with pytest.raises(InvalidReference):
        pull(ref, tmp_path / "none", "bad tag!")


def test_pull_by_digest_and_docker_schema2(registry: Registry, tmp_path: Path) -> None:
    src = umoci_image(tmp_path)
    ref = f"docker://{registry.host}/copy/v2s2:t"
    skopeo("copy", "--dest-tls-verify=false", "--format", "v2s2", f"oci:{src}:t", ref)
    digest = json.loads(skopeo("inspect", "--tls-verify=false", ref))["Digest"]
    dest = tmp_path / "pulled"
    desc = pull(f"{registry.host}/copy/v2s2@{digest}", dest, "bydigest")
    assert desc["digest"] == digest and desc["mediaType"] == mt.DOCKER_MANIFEST  # kept byte for byte
    layout = Layout.open(dest)
    manifest = layout.read_json(desc)
    assert manifest["config"]["mediaType"] == mt.DOCKER_CONFIG
    assert all(layout.has_blob(layer["digest"]) for layer in manifest["layers"])
    # And back out: the registry gets the identical manifest.
    assert push(dest, "bydigest", f"{registry.host}/copy/v2s2-back:t") == digest


def test_pull_resumes_partial_blobs_left_in_the_layout(registry: Registry, tmp_path: Path) -> None:
    src = umoci_image(tmp_path)
    ref = f"{registry.host}/copy/resume:t"
    push(src, "t", ref)
    manifest = json.loads(RegistryClient(registry.host).get_manifest("copy/resume", "t")[0])
    layer = manifest["layers"][0]
    hexd = layer["digest"].split(":")[1]
    dest = Layout.init(tmp_path / "dest")
    data = (src / "blobs" / "sha256" / hexd).read_bytes()
    (tmp_path / "dest" / "blobs" / "sha256" / (hexd + ".partial")).write_bytes(data[: len(data) // 2])
    events: list = []
    pull(ref, dest, "t", progress=lambda *e: events.append(e))
    first = next(e for e in events if e[0] == "download" and e[1] == layer["digest"])
    assert first[2] == len(data) // 2
    assert not list((tmp_path / "dest" / "blobs" / "sha256").glob("*.partial"))
    dest.validate()
