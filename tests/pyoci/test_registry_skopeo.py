"""Interop: skopeo pushes an umoci-made image that RegistryClient pulls, and RegistryClient pushes images
that skopeo inspects and copies out, all through Debian's docker-registry on 127.0.0.1."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest

from pyoci import digest as dg
from pyoci import mediatypes as mt
from pyoci.registry import RegistryClient
from tests.pyoci.registry_fixtures import Registry, registry, skopeo, umoci_image  # noqa: F401  (fixture)
from tests.support import assert_valid

pytestmark = pytest.mark.interop


def _tar_files(raw: bytes) -> dict[str, bytes | None]:
    """Entries of a layer tar; umoci 0.4.7's `insert` layers end without the tar trailer (GNU tar
    reports "Unexpected EOF" too), so reading stops quietly there."""
    files: dict[str, bytes | None] = {}
    tar = tarfile.open(fileobj=io.BytesIO(raw), mode="r|")
    try:
        for m in tar:
            files[m.name.lstrip("./")] = tar.extractfile(m).read() if m.isfile() else None
    except tarfile.ReadError:
        pass
    return files


def _layer(files: dict[str, bytes]) -> tuple[bytes, bytes]:
    """(gzip layer, uncompressed tar) with fixed metadata."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    return gzip.compress(raw, mtime=0), raw


def test_skopeo_push_then_client_pull(registry: Registry, tmp_path: Path) -> None:
    layout = umoci_image(tmp_path)
    ref = f"docker://{registry.host}/interop/umoci:t"
    skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:t", ref)
    inspected = json.loads(skopeo("inspect", "--tls-verify=false", ref))

    c = RegistryClient(registry.host)
    assert "t" in c.list_tags("interop/umoci")
    data, media_type, digest = c.get_manifest("interop/umoci", "t")
    assert media_type == mt.OCI_MANIFEST and digest == inspected["Digest"]
    manifest = json.loads(data)
    assert_valid(manifest, "manifest")
    cfg_path = tmp_path / "pulled" / "config"
    c.get_blob("interop/umoci", manifest["config"]["digest"], cfg_path, size=manifest["config"]["size"])
    config = json.loads(cfg_path.read_bytes())
    assert_valid(config, "config")
    assert [layer["digest"] for layer in manifest["layers"]] == inspected["Layers"]
    names = {}
    for i, layer in enumerate(manifest["layers"]):
        dest = tmp_path / "pulled" / f"layer{i}"
        c.get_blob("interop/umoci", layer["digest"], dest, size=layer["size"])
        raw = gzip.decompress(dest.read_bytes())
        assert str(dg.of_bytes(raw)) == config["rootfs"]["diff_ids"][i]  # diff_id: the uncompressed tar
        names.update(_tar_files(raw))
    assert names["etc/hello"] == b"hello from umoci\n"
    # And the same manifest, streamed through open_blob, matches umoci's own blob bytes.
    local = json.loads((layout / "index.json").read_text())["manifests"][0]
    assert local["digest"] == digest


@pytest.mark.parametrize("docker", [False, True], ids=["oci", "docker-schema2"])
def test_client_push_then_skopeo_inspect_and_copy(registry: Registry, tmp_path: Path, docker: bool) -> None:
    c = RegistryClient(registry.host)
    repo = "interop/ours-docker" if docker else "interop/ours-oci"
    gz, raw = _layer({"etc/motd": b"pushed by pyoci\n", "hello.txt": b"x" * 100_000})
    config = json.dumps({
        "created": "2024-01-01T00:00:00Z", "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [str(dg.of_bytes(raw))]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "pyoci test"}],
    }, separators=(",", ":")).encode()
    layer_path = tmp_path / "layer.tar.gz"
    layer_path.write_bytes(gz)
    cd = c.push_blob(repo, config)
    ld = c.push_blob(repo, layer_path, chunk_size=16_384)
    manifest = {
        "schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST if docker else mt.OCI_MANIFEST,
        "config": {"mediaType": mt.DOCKER_CONFIG if docker else mt.OCI_CONFIG, "digest": cd, "size": len(config)},
        "layers": [{"mediaType": mt.DOCKER_LAYER_GZIP if docker else mt.OCI_LAYER_GZIP, "digest": ld,
                    "size": len(gz)}],
    }
    if not docker:
        assert_valid(manifest, "manifest")
    data = json.dumps(manifest, separators=(",", ":")).encode()
    md = c.put_manifest(repo, "t", data, manifest["mediaType"])

    ref = f"docker://{registry.host}/{repo}:t"
    inspected = json.loads(skopeo("inspect", "--tls-verify=false", ref))
    assert inspected["Digest"] == md
    assert inspected["Layers"] == [ld]
    assert inspected["Architecture"] == "amd64" and inspected["Os"] == "linux"
    assert inspected["Env"] == ["PATH=/bin"]
    assert skopeo("inspect", "--tls-verify=false", "--raw", ref).encode() == data
    assert json.loads(skopeo("inspect", "--tls-verify=false", "--config", ref)) == json.loads(config)

    out = tmp_path / "copied"
    skopeo("copy", "--src-tls-verify=false", ref, f"oci:{out}:t")
    index = json.loads((out / "index.json").read_text())
    copied = json.loads((out / "blobs" / "sha256" / index["manifests"][0]["digest"].split(":")[1]).read_bytes())
    # skopeo converts a Docker manifest to OCI on the way into a layout; the layer bytes are untouched.
    assert copied["layers"][0]["digest"] == ld
    assert (out / "blobs" / "sha256" / ld.split(":")[1]).read_bytes() == gz


def test_client_push_index_skopeo_inspects_all(registry: Registry, tmp_path: Path) -> None:
    c = RegistryClient(registry.host)
    repo = "interop/multi"
    children, layers = [], {}
    for arch in ("amd64", "arm64"):
        gz, raw = _layer({"arch": arch.encode()})
        layers[arch] = [str(dg.of_bytes(gz))]
        config = json.dumps({"architecture": arch, "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": [str(dg.of_bytes(raw))]}}).encode()
        manifest = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                               "config": {"mediaType": mt.OCI_CONFIG, "digest": c.push_blob(repo, config),
                                          "size": len(config)},
                               "layers": [{"mediaType": mt.OCI_LAYER_GZIP, "digest": c.push_blob(repo, gz),
                                           "size": len(gz)}]}).encode()
        d = c.put_manifest(repo, str(dg.of_bytes(manifest)), manifest, mt.OCI_MANIFEST)
        children.append({"mediaType": mt.OCI_MANIFEST, "digest": d, "size": len(manifest),
                         "platform": {"architecture": arch, "os": "linux"}})
    index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": children}
    assert_valid(index, "index")
    data = json.dumps(index).encode()
    c.put_manifest(repo, "t", data, mt.OCI_INDEX)
    ref = f"docker://{registry.host}/{repo}:t"
    assert skopeo("inspect", "--tls-verify=false", "--raw", ref).encode() == data
    arm = json.loads(skopeo("inspect", "--tls-verify=false", "--override-arch", "arm64", ref))
    # skopeo reports the index's digest, and the arm64 instance's config and layers.
    assert arm["Digest"] == str(dg.of_bytes(data)) and arm["Architecture"] == "arm64"
    assert arm["Layers"] == layers["arm64"]
    out = tmp_path / "all"
    skopeo("copy", "--all", "--src-tls-verify=false", ref, f"oci:{out}:t")
    assert {p.name for p in (out / "blobs" / "sha256").iterdir()} >= {ch["digest"][7:] for ch in children}
