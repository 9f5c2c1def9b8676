"""oci-archive and docker-archive, read and written, against skopeo and umoci."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from pyoci import mediatypes as mt
from pyoci.archive_docker import (DockerArchive, DockerArchiveWriter, go_compact, normalize_repo_tag,
                                  raw_members, read_docker_archive, write_docker_archive)
from pyoci.archive_oci import OCIArchive, extract_oci_archive, import_oci_archive, write_oci_archive
from pyoci.errors import DigestMismatch, InvalidDocument, InvalidReference, NotFound, UnsafeArchive
from pyoci.layout import Layout
from tests.pyoci.test_layout import (assert_index_valid, assert_layout_files_valid, blob_files, build_image,
                                     compress, layer_tar, oci_image_tool_ok, run)
from tests.support import assert_valid, containerd


def members(path: Path) -> dict[str, tuple]:
    """name -> (type, mode, mtime, uid, gid, linkname, content) of every entry of a tar."""
    out = {}
    with tarfile.open(path) as tar:
        for m in tar:
            data = tar.extractfile(m).read() if m.isreg() else b""
            out[m.name] = (m.type, m.mode, m.mtime, m.uid, m.gid, m.linkname, data)
    return out


@pytest.fixture
def image(tmp_path) -> Layout:
    layout = Layout.init(tmp_path / "L")
    build_image(layout, "t", [{"etc/hello": b"hello\n"}, {"data/x": b"x" * 3000, "etc/hello": b"two\n"}])
    build_image(layout, "other", [{"etc/hello": b"hello\n"}, {"other": b"o"}])
    return layout


# -- oci-archive ------------------------------------------------------------------------------------------

def test_oci_archive_is_deterministic_and_skopeo_reads_it(tmp_path, image):
    write_oci_archive(image, tmp_path / "a.tar")
    write_oci_archive(image, tmp_path / "b.tar")
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    listing = members(tmp_path / "a.tar")
    names = list(listing)
    assert names[:4] == ["oci-layout", "index.json", "blobs", "blobs/sha256"]
    assert names[4:] == sorted(names[4:]) and {n[6:].replace("/", ":") for n in names[4:]} == blob_files(image.path)
    assert all(v[2] == 0 and v[3] == v[4] == 0 for v in listing.values())
    assert_valid(json.loads(listing["oci-layout"][6]), "layout")
    assert_index_valid(json.loads(listing["index.json"][6]))
    desc = image.resolve("t")
    info = json.loads(run("skopeo", "inspect", f"oci-archive:{tmp_path}/a.tar:t").stdout)
    assert info["Digest"] == desc["digest"]
    run("skopeo", "copy", f"oci-archive:{tmp_path}/a.tar:other", f"oci:{tmp_path}/L2:t")
    assert Layout.open(tmp_path / "L2").resolve("t")["digest"] == image.resolve("other")["digest"]
    run("umoci", "unpack", "--image", f"{tmp_path}/L2:t", str(tmp_path / "bundle"))
    assert (tmp_path / "bundle/rootfs/other").read_bytes() == b"o"


def test_oci_archive_of_some_tags_holds_only_their_blobs(tmp_path, image):
    write_oci_archive(image, tmp_path / "one.tar", tags=["other"])
    with OCIArchive(tmp_path / "one.tar") as archive:
        assert archive.tags() == ["other"]
        assert archive.problems() == []
        want = set(image.reachable([image.resolve("other")]))
        assert {n[6:].replace("/", ":") for n in members(tmp_path / "one.tar") if n.count("/") == 2} == want


def test_reads_skopeo_oci_archive_in_place_and_imports_it(tmp_path, image):
    run("skopeo", "copy", f"oci:{image.path}:t", f"oci-archive:{tmp_path}/s.tar:skopeo-tag")
    with OCIArchive(tmp_path / "s.tar") as archive:
        assert archive.tags() == ["skopeo-tag"]
        desc, manifest = archive.manifest_for("skopeo-tag")
        assert desc["digest"] == image.resolve("t")["digest"]
        assert archive.read_blob(manifest["config"]["digest"]) == image.read_blob(manifest["config"]["digest"])
        assert archive.problems() == []
    target = Layout.init(tmp_path / "T")
    added = import_oci_archive(tmp_path / "s.tar", target, rename={"skopeo-tag": "mine"})
    assert [d["digest"] for d in added] == [desc["digest"]] and target.tags() == ["mine"]
    target.validate()
    extracted = extract_oci_archive(tmp_path / "s.tar", tmp_path / "X")
    assert extracted.tags() == ["skopeo-tag"] and blob_files(tmp_path / "X") == set(image.reachable([desc]))
    assert_layout_files_valid(tmp_path / "X")
    oci_image_tool_ok(tmp_path / "X")
    run("umoci", "unpack", "--image", f"{tmp_path}/X:skopeo-tag", str(tmp_path / "bundle"))
    assert (tmp_path / "bundle/rootfs/etc/hello").read_bytes() == b"two\n"


def _tar_with(path: Path, entries: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)


def _entries_of(path: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(path) as tar:
        return [(m, tar.extractfile(m).read() if m.isreg() else b"") for m in tar]


def test_hostile_oci_archive_writes_nothing_outside(tmp_path, image):
    write_oci_archive(image, tmp_path / "good.tar", tags=["t"])
    entries = _entries_of(tmp_path / "good.tar")
    evil = []
    for name in ("../evil", "/tmp/evil-abs", "blobs/../../evil2", "./../evil3"):
        info = tarfile.TarInfo(name)
        evil.append((info, b"pwned"))
    _tar_with(tmp_path / "hostile.tar", evil + entries)
    (tmp_path / "in").mkdir()
    layout = extract_oci_archive(tmp_path / "hostile.tar", tmp_path / "in/X")
    assert layout.tags() == ["t"]
    assert not list(tmp_path.glob("evil*")) and not (tmp_path / "in/evil").exists()
    assert sorted(p.name for p in (tmp_path / "in/X").iterdir()) == ["blobs", "index.json", "oci-layout"]
    # A layout entry that is a link is refused outright.
    blob_name = next(m.name for m, _ in entries if m.name.count("/") == 2)
    link = tarfile.TarInfo(blob_name)
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    _tar_with(tmp_path / "link.tar", [e for e in entries if e[0].name != blob_name] + [(link, b"")])
    with pytest.raises(UnsafeArchive, match=r"is a symlink to '/etc/passwd'"):
        OCIArchive(tmp_path / "link.tar")


def test_writing_an_archive_of_a_corrupt_layout_leaves_no_archive(tmp_path, image):
    _, manifest = image.manifest_for("t")
    path = image.blob_path(manifest["layers"][0]["digest"])
    data = bytearray(path.read_bytes())
    data[20] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(DigestMismatch, match=manifest["layers"][0]["digest"][7:]):
        write_oci_archive(image, tmp_path / "o.tar")
    with pytest.raises(DigestMismatch):
        write_docker_archive(tmp_path / "d.tar", [(image, "t", ["r:t"])])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["L"]


def test_tampered_oci_archive_commits_nothing(tmp_path, image):
    write_oci_archive(image, tmp_path / "good.tar", tags=["t"])
    _, manifest = image.manifest_for("t")
    victim = manifest["layers"][1]["digest"].replace(":", "/")
    entries = [(m, (data[:-1] + bytes([data[-1] ^ 1])) if m.name.endswith(victim) else data)
               for m, data in _entries_of(tmp_path / "good.tar")]
    _tar_with(tmp_path / "bad.tar", entries)
    target = Layout.init(tmp_path / "T")
    index_before = (tmp_path / "T/index.json").read_bytes()
    with pytest.raises(DigestMismatch, match=f"expected {manifest['layers'][1]['digest']}"):
        import_oci_archive(tmp_path / "bad.tar", target)
    assert (tmp_path / "T/index.json").read_bytes() == index_before
    assert blob_files(tmp_path / "T") == set()  # the good blobs written before the bad one are rolled back
    assert not list((tmp_path / "T").rglob(".tmp-*"))
    (tmp_path / "notar").write_bytes(b"not a tar at all" * 100)
    with pytest.raises(InvalidDocument, match="notar"):
        OCIArchive(tmp_path / "notar")
    with pytest.raises(NotFound):
        OCIArchive(tmp_path / "missing.tar")


# -- docker-archive: writing ------------------------------------------------------------------------------

def test_docker_archive_is_byte_for_byte_what_skopeo_writes(tmp_path):
    layout = Layout.init(tmp_path / "L")
    # Characters Go's JSON encoder escapes (<, >, &, U+2028) in the config: the v1 ids must still match.
    build_image(layout, "one", [{"etc/hello": b"hello\n"}],
                extra_config={"config": {"Env": ["A=<b>&c\u2028"], "Labels": {"k": "v"}}})
    run("skopeo", "copy", f"oci:{layout.path}:one", f"docker-archive:{tmp_path}/skopeo.tar:repo:one")
    write_docker_archive(tmp_path / "ours.tar", [(layout, "one", ["repo:one"])])
    assert (tmp_path / "ours.tar").read_bytes() == (tmp_path / "skopeo.tar").read_bytes()


@pytest.mark.parametrize("compression", ["gzip", "zstd", ""])
def test_docker_archive_of_a_multi_layer_image_matches_skopeo(tmp_path, compression):
    layers = [{"a": b"1"}, {"b": b"2" * 2000}, {"a": b"3"}]
    layout = Layout.init(tmp_path / "L")
    build_image(layout, "t", layers, compression=compression)
    # skopeo refuses zstd layers for docker-archive ("not supported for docker images"): it gets a gzip twin,
    # which has the same config and uncompressed layers, so the same archive is expected.
    twin = Layout.init(tmp_path / "twin")
    build_image(twin, "t", layers, compression="gzip")
    run("skopeo", "copy", f"oci:{twin.path}:t", f"docker-archive:{tmp_path}/skopeo.tar:example.com/ns/repo:t")
    write_docker_archive(tmp_path / "ours.tar", [(layout, "t", ["example.com/ns/repo:t"])])
    # skopeo copies layers in parallel, so only the order of the layer entries may differ.
    assert members(tmp_path / "ours.tar") == members(tmp_path / "skopeo.tar")
    manifest = json.loads(members(tmp_path / "ours.tar")["manifest.json"][6])
    assert manifest[0]["RepoTags"] == ["example.com/ns/repo:t"] and len(manifest[0]["Layers"]) == 3


def test_docker_archive_with_several_images_is_read_by_skopeo(tmp_path, image):
    write_docker_archive(tmp_path / "multi.tar", [(image, "t", ["repo:t", "repo:latest"]),
                                                 (image, "other", ["example.org/other:v1"])])
    with DockerArchive(tmp_path / "multi.tar") as archive:
        assert archive.repo_tags() == [["docker.io/library/repo:t", "docker.io/library/repo:latest"],
                                       ["example.org/other:v1"]]
        repositories = json.loads(archive.read("repositories"))
    assert set(repositories) == {"docker.io/library/repo", "example.org/other"}
    assert repositories["docker.io/library/repo"]["t"] == repositories["docker.io/library/repo"]["latest"]
    for ref, tag in (("repo:t", "t"), ("example.org/other:v1", "other")):
        _, manifest = image.manifest_for(tag)
        config = json.loads(image.read_blob(manifest["config"]["digest"]))
        run("skopeo", "copy", f"docker-archive:{tmp_path}/multi.tar:{ref}", f"oci:{tmp_path}/back:{tag}")
        back = Layout.open(tmp_path / "back")
        _, got = back.manifest_for(tag)
        assert got["config"]["digest"] == manifest["config"]["digest"]  # config bytes unchanged
        assert json.loads(back.read_blob(got["config"]["digest"]))["rootfs"]["diff_ids"] == config["rootfs"]["diff_ids"]
    info = json.loads(run("skopeo", "inspect", f"docker-archive:{tmp_path}/multi.tar:example.org/other:v1").stdout)
    assert info["Architecture"] == "amd64"
    # The shared first layer is stored once.
    assert sum(1 for n in members(tmp_path / "multi.tar") if n.endswith(".tar") and "/" not in n) == 3


def test_docker_archive_writer_checks_diff_ids_and_commits_nothing_on_error(tmp_path):
    layout = Layout.init(tmp_path / "L")
    good = build_image(layout, "good", [{"a": b"1"}])
    bad = build_image(layout, "bad", [{"a": b"1"}], extra_config={"rootfs": {"type": "layers",
                                                                       "diff_ids": ["sha256:" + "0" * 64]}})
    with pytest.raises(DigestMismatch, match="is not the config's diff_id sha256:0000"):
        write_docker_archive(tmp_path / "out.tar", [(layout, good, ["a:b"]), (layout, "bad", ["c:d"])])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["L"]  # no archive, no temp file
    with pytest.raises(InvalidReference):
        write_docker_archive(tmp_path / "out.tar", [(layout, "good", ["repo@sha256:" + "0" * 64])])
    assert bad["digest"] in blob_files(layout.path)


def test_oci_archive_to_docker_archive_without_extracting(tmp_path, image):
    write_oci_archive(image, tmp_path / "oci.tar", tags=["t"])
    run("skopeo", "copy", f"oci-archive:{tmp_path}/oci.tar:t", f"docker-archive:{tmp_path}/skopeo.tar:repo:t")
    with OCIArchive(tmp_path / "oci.tar") as source, DockerArchiveWriter(tmp_path / "ours.tar") as writer:
        writer.add_image(source, "t", ["repo:t"])
    assert members(tmp_path / "ours.tar") == members(tmp_path / "skopeo.tar")


@pytest.mark.parametrize("value,want", [
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36"),
    ("user/app:v1", "docker.io/user/app:v1"),
    ("docker.io/busybox:x", "docker.io/library/busybox:x"),
    ("index.docker.io/user/app", "docker.io/user/app:latest"),
    ("localhost/app:1", "localhost/app:1"),
    ("localhost:5000/a/b:c", "localhost:5000/a/b:c"),
    ("quay.io/ns/repo_name.x:tag-1.2", "quay.io/ns/repo_name.x:tag-1.2"),
])
def test_normalize_repo_tag(value, want):
    assert normalize_repo_tag(value) == want


@pytest.mark.parametrize("value", ["Busybox", "repo@sha256:" + "0" * 64, "repo:", "repo:-x", "a//b", ""])
def test_normalize_repo_tag_refuses(value):
    with pytest.raises(InvalidReference):
        normalize_repo_tag(value)


def test_go_compatible_json():
    text = '{ "b" : [1, 2,\n 3], "a":"x < y & \u2028", "c" : {"z": 1, "y": "s p"} }'
    raw = raw_members(text)
    assert list(raw) == ["b", "a", "c"]
    assert go_compact(raw["b"]) == "[1,2,3]"
    assert go_compact(raw["a"]) == '"x \\u003c y \\u0026 \\u2028"'
    assert go_compact(raw["c"]) == '{"z":1,"y":"s p"}'  # order kept, spaces inside strings kept


# -- docker-archive: reading ------------------------------------------------------------------------------

def test_reads_skopeo_docker_archive(tmp_path, image):
    run("skopeo", "copy", f"oci:{image.path}:t", f"docker-archive:{tmp_path}/d.tar:repo:t")
    _, manifest = image.manifest_for("t")
    for mode, layer_type in (("gzip", mt.OCI_LAYER_GZIP), (None, mt.OCI_LAYER)):
        target = Layout.init(tmp_path / f"T-{mode}")
        [imported] = read_docker_archive(tmp_path / "d.tar", target, compress=mode)
        assert imported.repo_tags == ["docker.io/library/repo:t"]
        assert target.tags() == ["docker.io/library/repo:t"]
        desc, got = target.manifest_for("docker.io/library/repo:t")
        assert_valid(got, "manifest")
        assert_valid(json.loads(target.read_blob(got["config"]["digest"])), "config")
        assert_index_valid(target.index())
        assert got["config"] == {**manifest["config"]}
        assert [l["mediaType"] for l in got["layers"]] == [layer_type] * 2
        if mode is None:
            config = json.loads(target.read_blob(got["config"]["digest"]))
            assert [l["digest"] for l in got["layers"]] == config["rootfs"]["diff_ids"]
        target.validate()
        oci_image_tool_ok(target.path)
        run("umoci", "unpack", "--image", f"{target.path}:docker.io/library/repo:t", str(tmp_path / f"b-{mode}"))
        assert (tmp_path / f"b-{mode}/rootfs/etc/hello").read_bytes() == b"two\n"
        info = json.loads(run("skopeo", "inspect", f"oci:{target.path}:docker.io/library/repo:t").stdout)
        assert info["Digest"] == desc["digest"]
    # A deterministic import: the same archive gives the same manifest digest.
    again = Layout.init(tmp_path / "again")
    read_docker_archive(tmp_path / "d.tar", again)
    assert again.resolve("docker.io/library/repo:t")["digest"] == \
        Layout.open(tmp_path / "T-gzip").resolve("docker.io/library/repo:t")["digest"]


def docker_save_tar(path: Path, images: list[tuple[list[dict[str, bytes]], list[str]]],
                    tamper: bool = False, escape: tuple[bytes, str] | None = None, compression: str = "") -> list[str]:
    """A `docker save` archive of Docker 20.10's shape: `<id>/layer.tar` files, a symlink for a layer
    seen before, VERSION and json per layer, `<config hex>.json`, manifest.json, repositories."""
    manifest, repositories, seen, configs = [], {}, {}, []
    entries: list[tuple[tarfile.TarInfo, bytes]] = []

    def add(name: str, data: bytes = b"", type_=tarfile.REGTYPE, link: str = "") -> None:
        info = tarfile.TarInfo(name)
        info.type, info.linkname, info.mtime = type_, link, 1700000000
        info.mode = 0o755 if type_ == tarfile.DIRTYPE else 0o644
        entries.append((info, data))

    for number, (layers, tags) in enumerate(images):
        parent, layer_paths, diff_ids = "", [], []
        for files in layers:
            raw = layer_tar(files)
            diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
            diff_ids.append(diff_id)
            v1 = hashlib.sha256(f"{number}|{parent}|{diff_id}".encode()).hexdigest()  # ids differ per image
            add(v1 + "/", type_=tarfile.DIRTYPE)
            add(f"{v1}/VERSION", b"1.0")
            add(f"{v1}/json", json.dumps({"id": v1, **({"parent": parent} if parent else {})}).encode())
            if escape:
                add(f"{v1}/layer.tar", type_=escape[0], link=escape[1])
            elif diff_id in seen:
                add(f"{v1}/layer.tar", type_=tarfile.SYMTYPE, link=f"../{seen[diff_id]}/layer.tar")
            else:
                add(f"{v1}/layer.tar", compress(raw + (b"\0" if tamper else b""), compression))
                seen[diff_id] = v1
            layer_paths.append(f"{v1}/layer.tar")
            parent = v1
        config = json.dumps({"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
                             "config": {"Cmd": ["sh"]}, "rootfs": {"type": "layers", "diff_ids": diff_ids},
                             "docker_version": "20.10.24"}, indent=2).encode()
        name = hashlib.sha256(config).hexdigest()
        add(f"{name}.json", config)
        configs.append(f"sha256:{name}")
        manifest.append({"Config": f"{name}.json", "RepoTags": tags, "Layers": layer_paths})
        for t in tags:
            repo, _, tag = t.rpartition(":")
            repositories.setdefault(repo, {})[tag] = parent
    add("manifest.json", json.dumps(manifest).encode())
    add("repositories", json.dumps(repositories).encode())
    _tar_with(path, entries)
    return configs


def test_reads_docker_20_10_save_format_with_several_images(tmp_path):
    shared = {"bin/sh": b"#!shell\n"}
    configs = docker_save_tar(tmp_path / "save.tar", [([shared, {"etc/a": b"a"}], ["busybox:latest", "busybox:1"]),
                                                      ([shared], ["example.com/x/y:2"]),
                                                      ([{"etc/u": b"untagged"}], [])])
    layout = Layout.init(tmp_path / "L")
    imported = read_docker_archive(tmp_path / "save.tar", layout)
    assert [i.config_digest for i in imported] == configs
    assert [i.repo_tags for i in imported] == [["docker.io/library/busybox:latest", "docker.io/library/busybox:1"],
                                               ["example.com/x/y:2"], []]
    assert layout.tags() == ["docker.io/library/busybox:latest", "docker.io/library/busybox:1", "example.com/x/y:2"]
    assert len(layout.index()["manifests"]) == 4  # the untagged image is listed, so gc keeps it
    assert layout.gc().blobs == []
    _, first = layout.manifest_for("docker.io/library/busybox:1")
    _, second = layout.manifest_for("example.com/x/y:2")
    assert first["layers"][0] == second["layers"][0]  # the symlinked layer is the same blob
    layout.validate()
    assert_index_valid(layout.index())
    oci_image_tool_ok(layout.path)
    run("umoci", "unpack", "--image", f"{layout.path}:example.com/x/y:2", str(tmp_path / "bundle"))
    assert (tmp_path / "bundle/rootfs/bin/sh").read_bytes() == b"#!shell\n"
    # And back out: skopeo reads our docker-archive of what we imported.
    write_docker_archive(tmp_path / "out.tar", [(layout, "docker.io/library/busybox:1", ["busybox:1"])])
    info = json.loads(run("skopeo", "inspect", f"docker-archive:{tmp_path}/out.tar").stdout)
    diff_ids = json.loads(layout.read_blob(first["config"]["digest"]))["rootfs"]["diff_ids"]
    assert info["Layers"] == diff_ids and len(diff_ids) == 2  # uncompressed in a docker-archive
    with DockerArchive(tmp_path / "out.tar") as archive:
        assert archive.repo_tags() == [["docker.io/library/busybox:1"]]


def test_docker_archive_diff_id_mismatch_commits_nothing(tmp_path):
    docker_save_tar(tmp_path / "bad.tar", [([{"a": b"fine"}], ["ok:1"]), ([{"b": b"x"}], ["bad:1"])], tamper=True)
    layout = Layout.init(tmp_path / "L")
    keep = build_image(layout, "existing", [{"a": b"fine"}])
    before_blobs, before_index = blob_files(layout.path), (layout.path / "index.json").read_bytes()
    with pytest.raises(DigestMismatch, match=r"layer '[0-9a-f]{64}/layer.tar' is sha256:[0-9a-f]{64}, but the config's diff_id"):
        read_docker_archive(tmp_path / "bad.tar", layout)
    assert blob_files(layout.path) == before_blobs
    assert (layout.path / "index.json").read_bytes() == before_index
    assert layout.resolve("existing")["digest"] == keep["digest"]


@pytest.mark.parametrize("escape", [(tarfile.SYMTYPE, "../../../etc/passwd"), (tarfile.SYMTYPE, "/etc/passwd"),
                                    (tarfile.LNKTYPE, "../outside")])
def test_docker_archive_link_out_of_the_archive_is_refused(tmp_path, escape):
    docker_save_tar(tmp_path / "evil.tar", [([{"a": b"1"}], ["evil:1"])], escape=escape)
    layout = Layout.init(tmp_path / "L")
    with pytest.raises(UnsafeArchive, match="outside the archive"):
        read_docker_archive(tmp_path / "evil.tar", layout)
    assert layout.tags() == [] and blob_files(layout.path) == set()
    (tmp_path / "nomanifest.tar").write_bytes(b"")
    _tar_with(tmp_path / "nomanifest.tar", [(tarfile.TarInfo("repositories"), b"{}")])
    with pytest.raises(InvalidDocument, match="no manifest.json"):
        read_docker_archive(tmp_path / "nomanifest.tar", layout)


@pytest.mark.parametrize("compression,media_type", [("gzip", mt.OCI_LAYER_GZIP), ("zstd", mt.OCI_LAYER_ZSTD)])
def test_layers_compressed_inside_a_docker_archive_are_kept_as_they_are(tmp_path, compression, media_type):
    files = {"etc/motd": b"compressed in the archive\n"}
    docker_save_tar(tmp_path / "c.tar", [([files], ["c:1"])], compression=compression)
    layout = Layout.init(tmp_path / "L")
    read_docker_archive(tmp_path / "c.tar", layout, compress=None)
    _, manifest = layout.manifest_for("docker.io/library/c:1")
    [layer] = manifest["layers"]
    with DockerArchive(tmp_path / "c.tar") as archive:
        stored = archive.read(archive.manifest[0]["Layers"][0])
    assert layer == {"mediaType": media_type, "digest": "sha256:" + hashlib.sha256(stored).hexdigest(),
                     "size": len(stored)}
    layout.validate()
    # A compressed layer whose content is not the diff_id is refused like a plain one.
    docker_save_tar(tmp_path / "bad.tar", [([files], ["c:2"])], compression=compression, tamper=True)
    with pytest.raises(DigestMismatch, match="but the config's diff_id"):
        read_docker_archive(tmp_path / "bad.tar", layout)
    assert layout.tags() == ["docker.io/library/c:1"]


# -- containerd: ctr images import / export ---------------------------------------------------------------

@pytest.fixture
def ctr(tmp_path):
    """A private containerd (no CRI, its own root/state/socket under tmp_path); yields a `ctr ...` runner."""
    with containerd(tmp_path / "ctd") as sock:
        yield lambda *args: run("ctr", "-a", sock, *args)


def _ctr_images(ctr) -> dict[str, tuple[str, str]]:
    """name -> (media type, digest) from `ctr images ls`."""
    lines = ctr("images", "ls").stdout.splitlines()[1:]
    return {f[0]: (f[1], f[2]) for f in (line.split() for line in lines)}


def test_containerd_imports_our_archives_and_we_read_its_export(tmp_path, ctr):
    layout = Layout.init(tmp_path / "L")
    img = build_image(layout, "example.com/pyoci/img:1", [{"a": b"1"}, {"b": b"2" * 3000}])
    other = build_image(layout, "t2", [{"c": b"3"}])
    write_oci_archive(layout, tmp_path / "o.tar", tags=["example.com/pyoci/img:1"])
    write_docker_archive(tmp_path / "d.tar", [(layout, img, ["repo:a", "repo:b"]), (layout, other, ["other.io/x/y:z"])])
    ctr("images", "import", "--no-unpack", str(tmp_path / "o.tar"))
    ctr("images", "import", "--no-unpack", str(tmp_path / "d.tar"))
    images = _ctr_images(ctr)
    assert images["example.com/pyoci/img:1"] == (mt.OCI_MANIFEST, img["digest"])  # OCI import keeps our digest
    assert images["docker.io/library/repo:a"] == images["docker.io/library/repo:b"]
    assert images["docker.io/library/repo:a"][0] == mt.DOCKER_MANIFEST and "other.io/x/y:z" in images
    # containerd rebuilt a schema2 manifest from our docker-archive: same config, so the same image.
    rebuilt = json.loads(ctr("content", "get", images["docker.io/library/repo:a"][1]).stdout)
    assert rebuilt["config"]["digest"] == layout.manifest_for(img)[1]["config"]["digest"]

    # Its export is an oci-archive with a docker manifest.json (compressed layers, shared config): read both ways.
    ctr("images", "export", "--platform", "linux/amd64", str(tmp_path / "e.tar"),
        "example.com/pyoci/img:1", "docker.io/library/repo:b")
    with OCIArchive(tmp_path / "e.tar") as archive:
        assert sorted(archive.tags()) == ["1", "b"]
        assert archive.resolve("1")["digest"] == img["digest"]
        assert archive.problems() == []
    from_oci = Layout.init(tmp_path / "from-oci")
    import_oci_archive(tmp_path / "e.tar", from_oci)  # the docker manifest comes along as it is
    assert from_oci.resolve("b")["mediaType"] == mt.DOCKER_MANIFEST
    from_oci.validate()
    only_oci = Layout.init(tmp_path / "only-oci")
    import_oci_archive(tmp_path / "e.tar", only_oci, tags=["1"])  # oci-image-tool knows no docker types
    oci_image_tool_ok(only_oci.path)
    from_docker = Layout.init(tmp_path / "from-docker")
    imported = read_docker_archive(tmp_path / "e.tar", from_docker)
    # (containerd writes the manifest.json entries in no fixed order)
    assert sorted(i.repo_tags for i in imported) == [["docker.io/library/repo:b"], ["example.com/pyoci/img:1"]]
    assert len({i.config_digest for i in imported}) == 1
    _, first = from_docker.manifest_for("example.com/pyoci/img:1")
    assert first["layers"] == layout.manifest_for(img)[1]["layers"]  # gzip blobs in the export kept as they are
    from_docker.validate()
    run("umoci", "unpack", "--image", f"{from_docker.path}:docker.io/library/repo:b", str(tmp_path / "bundle"))
    assert (tmp_path / "bundle/rootfs/b").read_bytes() == b"2" * 3000


def test_truncated_archives_are_clear_errors(tmp_path, image):
    write_oci_archive(image, tmp_path / "o.tar")
    write_docker_archive(tmp_path / "d.tar", [(image, "t", ["r:t"])])
    for name in ("o.tar", "d.tar"):
        data = (tmp_path / name).read_bytes()
        for cut in (700, len(data) // 2):
            (tmp_path / "cut.tar").write_bytes(data[:cut])
            target = Layout.init(tmp_path / f"T-{name}-{cut}")
            with pytest.raises(InvalidDocument, match=r"cut\.tar: truncated or corrupt tar archive"):
                if name == "o.tar":
                    import_oci_archive(tmp_path / "cut.tar", target)
                else:
                    read_docker_archive(tmp_path / "cut.tar", target)
            assert target.tags() == [] and blob_files(target.path) == set()
