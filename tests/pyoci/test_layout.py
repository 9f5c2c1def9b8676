"""pyoci.layout against the spec schemas and the real peers (umoci, skopeo, oci-image-tool)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from pyoci import mediatypes as mt
from pyoci.errors import DigestMismatch, InvalidDocument, InvalidReference, NotFound
from pyoci.layout import REF_NAME, Layout
from tests.support import assert_valid, require

CREATED = "2024-01-02T03:04:05Z"


# -- helpers shared with test_archive ------------------------------------------------------------------------

def run(*cmd: str, **kw) -> subprocess.CompletedProcess:
    p = subprocess.run([require(cmd[0]), *cmd[1:]], capture_output=True, text=True, **kw)
    assert p.returncode == 0, f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()}"
    return p


def layer_tar(files: dict[str, bytes]) -> bytes:
    """A small deterministic layer tar: parent dirs first, then the files (root-owned, fixed mtime)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = sorted({"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)})
        for d in dirs:
            info = tarfile.TarInfo(d + "/")
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1700000000
            tar.addfile(info)
        for path, data in sorted(files.items()):
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o644, 1700000000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def compress(data: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.compress(data, mtime=0)
    if compression == "zstd":
        import zstandard
        return zstandard.ZstdCompressor().compress(data)
    return data


LAYER_TYPES = {"gzip": mt.OCI_LAYER_GZIP, "zstd": mt.OCI_LAYER_ZSTD, "": mt.OCI_LAYER}


def build_image(layout: Layout, tag: str | None, layers: list[dict[str, bytes]], compression: str = "gzip",
                arch: str = "amd64", variant: str = "", extra_config: dict | None = None) -> dict:
    """Store layers, config and manifest in `layout`; tag it if `tag`; return the manifest descriptor."""
    layer_descs, diff_ids = [], []
    for files in layers:
        raw = layer_tar(files)
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        layer_descs.append(layout.put_blob(compress(raw, compression)).descriptor(LAYER_TYPES[compression]))
    config = {"created": CREATED, "architecture": arch, "os": "linux",
              "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
              "rootfs": {"type": "layers", "diff_ids": diff_ids},
              "history": [{"created": CREATED, "created_by": f"test layer {i}"} for i in range(len(layers))]}
    if variant:
        config["variant"] = variant
    config.update(extra_config or {})
    assert_valid(config, "config")
    cfg = layout.put_json(config, mt.OCI_CONFIG)
    manifest = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": cfg, "layers": layer_descs}
    assert_valid(manifest, "manifest")
    desc = layout.put_json(manifest, mt.OCI_MANIFEST)
    if tag:
        layout.tag(tag, desc)
    return desc


def assert_index_valid(doc: dict) -> None:
    assert_valid(doc, "index")


def assert_layout_files_valid(path: Path) -> None:
    assert_valid(json.loads((path / "oci-layout").read_bytes()), "layout")
    assert_index_valid(json.loads((path / "index.json").read_bytes()))


def oci_image_tool_ok(path: Path) -> None:
    # `--type imageLayout` is "unimplemented" in Debian's oci-image-tool 1.0.0-rc1; `--type image`
    # autodetects a layout directory and validates every ref (manifests, configs, layers) in it.
    p = run("oci-image-tool", "validate", "--type", "image", str(path))
    assert "Validation succeeded" in p.stdout, p.stdout


def blob_files(path: Path) -> set[str]:
    return {f"{p.parent.name}:{p.name}" for p in (path / "blobs").glob("*/*")}


# -- init / open ------------------------------------------------------------------------------------------

def test_init_writes_the_files_umoci_and_skopeo_write(tmp_path):
    layout = Layout.init(tmp_path / "L")
    assert (tmp_path / "L/oci-layout").read_bytes() == b'{"imageLayoutVersion":"1.0.0"}'
    index = json.loads((tmp_path / "L/index.json").read_bytes())
    assert index == {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}
    assert (tmp_path / "L/blobs/sha256").is_dir()
    assert_layout_files_valid(tmp_path / "L")
    assert Layout.init(tmp_path / "L").tags() == []  # idempotent
    # umoci writes into the layout we made, and we read what it wrote (including its manifests: null).
    run("umoci", "new", "--image", f"{tmp_path}/L:fresh")
    assert Layout.open(tmp_path / "L").tags() == ["fresh"]
    run("umoci", "init", "--layout", str(tmp_path / "U"))
    assert json.loads((tmp_path / "U/index.json").read_bytes())["manifests"] is None
    assert Layout.open(tmp_path / "U").index()["manifests"] == []
    assert layout.path == tmp_path / "L"


def test_open_errors_name_the_file(tmp_path):
    layout = Layout.init(tmp_path / "L")
    build_image(layout, "t", [{"a": b"1"}])
    index = tmp_path / "L/index.json"
    good = index.read_bytes()
    index.write_bytes(good[: len(good) // 2])  # truncated
    with pytest.raises(InvalidDocument, match=r"L/index\.json: not valid JSON"):
        Layout.open(tmp_path / "L")
    with pytest.raises(InvalidDocument, match=r"L/index\.json"):
        layout.tags()
    index.write_bytes(b'{"schemaVersion":1,"manifests":[]}')
    with pytest.raises(InvalidDocument, match=r"index\.json: schemaVersion must be 2"):
        Layout.open(tmp_path / "L")
    index.write_bytes(b'{"schemaVersion":2,"manifests":[{"digest":"sha256:abc"}]}')
    with pytest.raises(InvalidDocument, match=r"index\.json: invalid index: manifests\.0"):
        Layout.open(tmp_path / "L")
    index.write_bytes(good)
    (tmp_path / "L/oci-layout").write_bytes(b'{"imageLayoutVersion":"2.0.0"}')
    with pytest.raises(InvalidDocument, match=r"L/oci-layout: unsupported imageLayoutVersion '2\.0\.0'"):
        Layout.open(tmp_path / "L")
    (tmp_path / "L/oci-layout").unlink()
    with pytest.raises(InvalidDocument, match=r"L/oci-layout: missing"):
        Layout.open(tmp_path / "L")
    with pytest.raises(NotFound, match="no such image layout"):
        Layout.open(tmp_path / "nowhere")


# -- blobs ------------------------------------------------------------------------------------------------

def test_put_blob_from_bytes_stream_and_chunks(tmp_path):
    layout = Layout.init(tmp_path / "L")
    data = os.urandom(3 << 20)
    want = "sha256:" + hashlib.sha256(data).hexdigest()
    a = layout.put_blob(data)
    b = layout.put_blob(io.BytesIO(data), want, len(data))
    c = layout.put_blob(iter([data[:10], data[10:]]))
    assert str(a.digest) == str(b.digest) == str(c.digest) == want and a.size == len(data)
    assert layout.blob_path(want) == tmp_path / "L/blobs/sha256" / want[7:]
    assert layout.read_blob(want) == data
    assert oct(layout.blob_path(want).stat().st_mode & 0o777) == "0o644"
    assert blob_files(tmp_path / "L") == {want}  # no temp files left
    s512 = layout.put_blob(b"x", algorithm="sha512")
    assert layout.blob_path(s512.digest).parent.name == "sha512" and layout.read_blob(s512.digest) == b"x"
    assert a.descriptor(mt.OCI_LAYER) == {"mediaType": mt.OCI_LAYER, "digest": want, "size": len(data)}


def test_put_blob_mismatch_commits_nothing(tmp_path):
    layout = Layout.init(tmp_path / "L")
    wrong = "sha256:" + hashlib.sha256(b"other").hexdigest()
    with pytest.raises(DigestMismatch, match=f"expected {wrong}"):
        layout.put_blob(io.BytesIO(b"payload" * 100000), wrong)
    with pytest.raises(DigestMismatch, match="size"):
        layout.put_blob(b"payload", expected_size=3)
    right = "sha256:" + hashlib.sha256(b"payload").hexdigest()
    with pytest.raises(DigestMismatch, match="size"):
        layout.put_blob(b"payload", right, 8)
    assert list((tmp_path / "L/blobs/sha256").iterdir()) == []  # neither a blob nor a temp file


def test_tampered_blob_is_a_clear_digest_mismatch(tmp_path):
    layout = Layout.init(tmp_path / "L")
    blob = layout.put_blob(b"original content")
    layout.blob_path(blob.digest).write_bytes(b"tampered content")
    with pytest.raises(DigestMismatch, match=rf"blobs/sha256/{blob.digest.encoded}: digest mismatch"):
        layout.read_blob(blob.digest)
    with layout.open_blob(blob.digest) as f:
        assert f.read(4) == b"tamp"  # streaming: the check comes at EOF
        with pytest.raises(DigestMismatch):
            f.read()
    with layout.open_blob(blob.digest, verify=False) as f:
        assert f.read() == b"tampered content"
    xyz = layout.put_blob(b"xyz").digest
    with pytest.raises(DigestMismatch, match="longer than its announced size 2"):
        layout.read_blob(xyz, size=2)
    with pytest.raises(DigestMismatch, match="size mismatch: expected 4 bytes, got 3"):
        layout.read_blob(xyz, size=4)
    with pytest.raises(NotFound, match="no blob"):
        layout.read_blob("sha256:" + "0" * 64)


# -- tags -------------------------------------------------------------------------------------------------

def test_tags_move_as_umoci_moves_them(tmp_path):
    ours = Layout.init(tmp_path / "ours")
    run("umoci", "init", "--layout", str(tmp_path / "theirs"))
    for name in ("a", "b", "c"):
        run("umoci", "new", "--image", f"{tmp_path}/theirs:{name}")
    run("umoci", "tag", "--image", f"{tmp_path}/theirs:c", "a")  # a now names c's manifest
    theirs = Layout.open(tmp_path / "theirs")
    descs = {n: ours.tag(n, build_image(ours, None, [{n: n.encode()}])) for n in ("a", "b", "c")}
    ours.tag("a", descs["c"])
    assert ours.tags() == theirs.tags() == ["b", "c", "a"]
    assert ours.resolve("a")["digest"] == descs["c"]["digest"]
    assert theirs.resolve("a")["digest"] == theirs.resolve("c")["digest"]
    assert ours.resolve("a")["annotations"] == {REF_NAME: "a"}
    assert list(ours.resolve("a")) == ["mediaType", "digest", "size", "annotations"]  # Go's key order
    ours.tag("docker.io/library/busybox:1.36", descs["b"])
    assert ours.resolve("docker.io/library/busybox:1.36")["digest"] == descs["b"]["digest"]
    assert ours.untag("b")["digest"] == descs["b"]["digest"]
    assert ours.tags() == ["c", "a", "docker.io/library/busybox:1.36"]
    with pytest.raises(NotFound, match="no tag 'b'"):
        ours.resolve("b")
    with pytest.raises(NotFound, match="no tag 'b'"):
        ours.untag("b")
    for bad in ("", "a b", "-x", "x/", "UPPER/../x", "a//b", "é"):
        with pytest.raises(InvalidReference, match="invalid tag"):
            ours.tag(bad, descs["c"])
    with pytest.raises(NotFound, match="no blob"):
        ours.tag("ghost", {"mediaType": mt.OCI_MANIFEST, "digest": "sha256:" + "1" * 64, "size": 3})
    assert_layout_files_valid(tmp_path / "ours")
    run("umoci", "ls", "--layout", str(tmp_path / "ours"))


def test_accepts_pyoci_manifest_objects(tmp_path):
    from pyoci.manifest import Descriptor, Manifest

    layout = Layout.init(tmp_path / "L")
    desc = build_image(layout, None, [{"a": b"1"}])
    manifest = Manifest.from_json(layout.read_blob(desc["digest"]))
    again = layout.put_json(manifest, mt.OCI_MANIFEST)
    assert again["digest"] == desc["digest"]  # to_json() gives the same bytes back
    tagged = layout.tag("obj", Descriptor.from_json(desc))
    assert tagged == {**desc, "annotations": {REF_NAME: "obj"}}
    assert [d["digest"] for d in layout.walk(Descriptor.from_json(desc))][0] == desc["digest"]


# -- images and the peers ---------------------------------------------------------------------------------

def test_image_we_write_is_read_by_skopeo_umoci_and_oci_image_tool(tmp_path):
    layout = Layout.init(tmp_path / "L")
    desc = build_image(layout, "t", [{"etc/hello": b"hello\n", "bin/tool": b"#!/bin/sh\n"},
                                     {"etc/hello": b"second\n", "data/x": b"x" * 5000}])
    assert_layout_files_valid(tmp_path / "L")
    layout.validate()
    oci_image_tool_ok(tmp_path / "L")
    info = json.loads(run("skopeo", "inspect", f"oci:{tmp_path}/L:t").stdout)
    _, manifest = layout.manifest_for("t")
    assert info["Digest"] == desc["digest"]
    assert info["Layers"] == [l["digest"] for l in manifest["layers"]]
    assert info["Architecture"] == "amd64" and info["Env"] == ["PATH=/usr/bin:/bin"]
    run("skopeo", "copy", f"oci:{tmp_path}/L:t", f"dir:{tmp_path}/D")
    assert (tmp_path / "D/manifest.json").read_bytes() == layout.read_blob(desc["digest"])
    for l in manifest["layers"]:
        assert (tmp_path / "D" / l["digest"][7:]).read_bytes() == layout.read_blob(l["digest"])
    run("umoci", "unpack", "--image", f"{tmp_path}/L:t", str(tmp_path / "bundle"))
    rootfs = tmp_path / "bundle/rootfs"
    assert (rootfs / "etc/hello").read_bytes() == b"second\n"
    assert (rootfs / "data/x").read_bytes() == b"x" * 5000 and (rootfs / "bin/tool").exists()


def test_reads_layouts_umoci_writes(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub/file").write_bytes(b"from umoci\n")
    L = f"{tmp_path}/U"
    run("umoci", "init", "--layout", L)
    run("umoci", "new", "--image", f"{L}:t")
    run("umoci", "insert", "--image", f"{L}:t", str(src), "/opt")
    run("umoci", "config", "--image", f"{L}:t", "--config.env", "A=1", "--tag", "t2")
    layout = Layout.open(L)
    assert set(layout.tags()) >= {"t", "t2"}
    desc, manifest = layout.manifest_for("t2")
    config = json.loads(layout.read_blob(manifest["config"]["digest"]))
    assert "A=1" in config["config"]["Env"]
    assert len(manifest["layers"]) == 1 and manifest["layers"][0]["mediaType"] == mt.OCI_LAYER_GZIP
    raw = gzip.decompress(layout.read_blob(manifest["layers"][0]["digest"]))
    # umoci 0.4.7 ends its layer tars right after the last file's data (no padding, no end blocks).
    raw += b"\0" * (-len(raw) % 512 + 1024)
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        assert tar.extractfile("opt/sub/file").read() == b"from umoci\n"
    # Every blob umoci wrote is reachable from t or t2, except the manifest/config of the empty `new` image.
    reachable = set(layout.reachable())
    assert reachable <= blob_files(Path(L))
    assert {d["digest"] for d in layout.walk(desc)} == {desc["digest"], manifest["config"]["digest"],
                                                       manifest["layers"][0]["digest"]}
    assert layout.problems(verify_digests=True) == []
    assert layout.manifest_for(desc["digest"])[1] == manifest  # by digest too


def test_manifest_for_follows_an_index_to_a_platform(tmp_path):
    layout = Layout.init(tmp_path / "L")
    plats = [("amd64", ""), ("arm64", "v8"), ("arm", "v7"), ("arm", "v6")]
    entries = []
    for arch, variant in plats:
        d = build_image(layout, None, [{"arch": f"{arch}{variant}".encode()}], arch=arch, variant=variant)
        d["platform"] = {"architecture": arch, "os": "linux", **({"variant": variant} if variant else {})}
        entries.append(d)
    index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries}
    assert_index_valid(index)
    idx = layout.put_json(index, mt.OCI_INDEX)
    layout.tag("multi", idx)

    def arch_of(platform):
        _, m = layout.manifest_for("multi", platform)
        return json.loads(layout.read_blob(m["config"]["digest"]))["architecture"], m

    assert arch_of("linux/amd64")[0] == "amd64"
    assert arch_of(None)[0] == "amd64"  # this (x86_64) machine
    assert arch_of("linux/arm64")[1] == arch_of("linux/arm64/v8")[1]
    assert arch_of({"os": "linux", "architecture": "arm", "variant": "v7"})[1]["layers"] == \
        layout.manifest_for(entries[2])[1]["layers"]
    assert layout.manifest_for("multi", "linux/arm/v6")[0]["digest"] == entries[3]["digest"]
    with pytest.raises(NotFound, match=rf"index {idx['digest']}: no manifest for platform linux/s390x \(available: "):
        layout.manifest_for("multi", "linux/s390x")
    # arm/v8 (32-bit) runs v7 code: the v7 manifest is the best one there is.
    assert layout.manifest_for("multi", {"os": "linux", "architecture": "arm", "variant": "v8"})[0] == entries[2]
    # skopeo picks the same instances out of our index.
    for arch, want in (("arm64", entries[1]), ("amd64", entries[0])):
        out = run("skopeo", "--override-arch", arch, "--override-os", "linux", "inspect", "--raw",
                  f"oci:{tmp_path}/L:multi").stdout
        assert json.loads(out)["mediaType"] == mt.OCI_INDEX
        info = json.loads(run("skopeo", "--override-arch", arch, "inspect", f"oci:{tmp_path}/L:multi").stdout)
        assert info["Digest"] == idx["digest"]  # skopeo reports the index's digest ...
        assert info["Architecture"] == arch  # ... and the chosen instance's contents
        assert info["Layers"] == [l["digest"] for l in layout.manifest_for(want)[1]["layers"]]
    oci_image_tool_ok(tmp_path / "L")


def test_walk_reaches_index_manifests_config_layers_and_subject(tmp_path):
    layout = Layout.init(tmp_path / "L")
    base = build_image(layout, "base", [{"a": b"a"}, {"b": b"b"}])
    empty = layout.put_json({}, mt.OCI_EMPTY)
    sig = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "artifactType": "application/vnd.example.sig",
           "config": empty, "layers": [layout.put_blob(b"signature").descriptor("application/octet-stream")],
           "subject": base}
    assert_valid(sig, "manifest")
    sig_desc = layout.put_json(sig, mt.OCI_MANIFEST)
    idx = layout.put_json({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [sig_desc]}, mt.OCI_INDEX)
    walked = [d["digest"] for d in layout.walk(idx)]
    _, base_manifest = layout.manifest_for("base")
    want = {idx["digest"], sig_desc["digest"], empty["digest"], sig["layers"][0]["digest"], base["digest"],
            base_manifest["config"]["digest"], *(l["digest"] for l in base_manifest["layers"])}
    assert set(walked) == want and len(walked) == len(want) and walked[0] == idx["digest"]
    layout.blob_path(base["digest"]).unlink()
    with pytest.raises(NotFound, match="referenced but not"):
        list(layout.walk(idx))
    assert base["digest"] in {d["digest"] for d in layout.walk(idx, missing_ok=True)}


# -- gc and validation ------------------------------------------------------------------------------------

def test_gc_removes_exactly_the_unreferenced_blobs_and_temp_files(tmp_path):
    layout = Layout.init(tmp_path / "L")
    shared = {"shared": b"in both images"}
    keep = build_image(layout, "keep", [shared, {"k": b"keep"}])
    drop = build_image(layout, "drop", [shared, {"d": b"drop"}])
    untagged = build_image(layout, None, [{"u": b"listed but untagged"}])
    layout.add_manifest(untagged)
    stray = layout.put_blob(b"never referenced")
    before = blob_files(tmp_path / "L")
    keep_set = set(layout.reachable([keep])) | set(layout.reachable([untagged]))
    drop_only = set(layout.reachable([drop])) - keep_set
    assert len(drop_only) == 3  # manifest, config, its own layer (the shared layer stays)
    layout.untag("drop")
    (tmp_path / "L/blobs/sha256/.tmp-blob-crashed").write_bytes(b"partial")
    (tmp_path / "L/.tmp-crashed-index.json").write_bytes(b"{")
    result = layout.gc()
    assert set(result.blobs) == drop_only | {str(stray.digest)}
    assert sorted(result.temp_files) == [".tmp-crashed-index.json", "blobs/sha256/.tmp-blob-crashed"]
    assert result.bytes_freed > 0
    assert blob_files(tmp_path / "L") == before - set(result.blobs) == keep_set
    assert layout.gc().blobs == []  # idempotent
    layout.validate()
    oci_image_tool_ok(tmp_path / "L")
    run("umoci", "unpack", "--image", f"{tmp_path}/L:keep", str(tmp_path / "bundle"))


def test_validate_names_missing_and_corrupt_blobs(tmp_path):
    layout = Layout.init(tmp_path / "L")
    desc = build_image(layout, "t", [{"a": b"1"}, {"b": b"2"}])
    _, manifest = layout.manifest_for("t")
    assert layout.problems() == []
    first, second = (layout.blob_path(l["digest"]) for l in manifest["layers"])
    first.unlink()
    data = bytearray(second.read_bytes())
    data[-5] ^= 0xFF  # same size, wrong bytes
    second.write_bytes(bytes(data))
    problems = layout.problems()
    assert any("blob missing" in p and manifest["layers"][0]["digest"] in p for p in problems), problems
    assert any("digest mismatch" in p for p in problems), problems
    assert layout.problems(verify_digests=False) == [p for p in problems if "blob missing" in p]
    with pytest.raises(InvalidDocument, match=r"blob missing \(and 1 more\)"):
        layout.validate()
    assert desc["digest"] in {d["digest"] for d in layout.walk(desc)}


# -- concurrency ------------------------------------------------------------------------------------------

WRITER = r"""
import sys
from pyoci.layout import Layout
from pyoci import mediatypes as mt
layout = Layout.open(sys.argv[1])
who = sys.argv[2]
for i in range(int(sys.argv[3])):
    shared = layout.put_blob(b"the same blob from both writers" * 1000)
    own = layout.put_blob(f"{who}-{i}".encode() * 1000)
    cfg = layout.put_json({"architecture": "amd64", "os": "linux",
                           "rootfs": {"type": "layers", "diff_ids": [str(shared.digest)]}, "who": f"{who}-{i}"},
                          mt.OCI_CONFIG)
    desc = layout.put_json({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": cfg,
                            "layers": [shared.descriptor(mt.OCI_LAYER), own.descriptor(mt.OCI_LAYER)]}, mt.OCI_MANIFEST)
    layout.tag(f"{who}-{i}", desc)
    layout.tag("contended", desc)
"""


def test_two_processes_putting_and_tagging_leave_a_valid_index(tmp_path):
    layout = Layout.init(tmp_path / "L")
    n = 15  # without the lock, about a third of the tags get lost at this count
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "L"), who, str(n)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for who in ("p", "q")]
    try:
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err.decode()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    tags = layout.tags()
    assert sorted(tags) == sorted([f"{w}-{i}" for w in "pq" for i in range(n)] + ["contended"])
    assert_layout_files_valid(tmp_path / "L")
    assert layout.problems() == []
    assert not [p for p in (tmp_path / "L").rglob(".tmp-*")]


GC_LOOP = r"""
import os, sys
from pyoci.layout import Layout
layout = Layout.open(sys.argv[1])
removed = 0
open(sys.argv[2] + ".started", "w").close()
while not os.path.exists(sys.argv[2]):
    removed += len(layout.gc().blobs)
print(removed)
"""


def test_gc_running_beside_a_writer_never_breaks_a_tagged_image(tmp_path):
    layout = Layout.init(tmp_path / "L")
    done = tmp_path / "writer-done"
    gc = subprocess.Popen([sys.executable, "-c", GC_LOOP, str(tmp_path / "L"), str(done)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not Path(f"{done}.started").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        for i in range(15):
            with layout.lock(exclusive=False):  # blobs written here survive a concurrent gc until tagged
                build_image(layout, f"img-{i}", [{f"f{i}": os.urandom(20000)}])
            layout.put_blob(os.urandom(100))  # garbage for the collector
    finally:
        done.touch()
        out, err = gc.communicate(timeout=60)
    assert gc.returncode == 0, err.decode()
    assert layout.tags() == [f"img-{i}" for i in range(15)]
    assert layout.problems() == []
    assert int(out) >= 1  # the collector did run alongside and removed garbage
    layout.gc()
    assert blob_files(layout.path) == set(layout.reachable())


# -- one Layout shared by threads -----------------------------------------------------------------------

def _run_threads(targets) -> None:
    import threading

    errors: list[BaseException] = []

    def wrap(fn):
        def run():
            try:
                fn()
            except BaseException as e:  # reported by the test thread
                errors.append(e)
        return run

    threads = [threading.Thread(target=wrap(t)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread is stuck"
    assert not errors, errors


def test_threads_sharing_one_layout_put_and_tag_without_losing_tags(tmp_path):
    layout = Layout.init(tmp_path / "L")

    def writer(who: str):
        def run():
            for i in range(10):
                with layout.lock(exclusive=False):
                    build_image(layout, f"{who}-{i}", [{f"{who}{i}": f"{who}-{i}".encode() * 500}],
                                compression="")
                layout.tag("contended", layout.resolve(f"{who}-{i}"))
        return run

    def collector():
        for _ in range(20):
            layout.gc()  # exclusive beside the writers' shared holds, on the same object
            time.sleep(0.005)

    _run_threads([writer(w) for w in "abcd"] + [collector])
    assert sorted(layout.tags()) == sorted([f"{w}-{i}" for w in "abcd" for i in range(10)] + ["contended"])
    assert layout.problems() == []
    assert_layout_files_valid(tmp_path / "L")


def test_exclusive_hold_waits_for_other_threads_shared_holds(tmp_path):
    import threading

    layout = Layout.init(tmp_path / "L")
    held, release, gc_done = threading.Event(), threading.Event(), threading.Event()
    both_inside = threading.Barrier(2, timeout=10)

    def reader():
        with layout.lock(exclusive=False):
            both_inside.wait()  # a second thread's shared hold is granted while this one is held
            held.set()
            release.wait(10)

    def second_reader():
        with layout.lock(exclusive=False):
            both_inside.wait()

    def collector():
        held.wait(10)
        with layout.lock():  # must wait for the reader (the old lock let a second thread straight in)
            gc_done.set()

    threads = [threading.Thread(target=f) for f in (reader, second_reader, collector)]
    for t in threads:
        t.start()
    try:
        assert held.wait(10)
        assert not gc_done.wait(0.3), "exclusive hold granted while another thread held the lock shared"
    finally:
        release.set()
        for t in threads:
            t.join(10)
    assert gc_done.is_set()


def test_flock_released_with_the_last_thread_and_reentrant_within_one(tmp_path):
    import fcntl
    import threading

    layout = Layout.init(tmp_path / "L")

    def try_exclusive_elsewhere() -> bool:
        fd = os.open(tmp_path / "L" / "blobs", os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        finally:
            os.close(fd)

    inner_in, inner_out = threading.Event(), threading.Event()

    def other():
        with layout.lock(exclusive=False):
            inner_in.set()
            inner_out.wait(10)

    t = threading.Thread(target=other)
    with layout.lock(exclusive=False):
        with layout.lock(exclusive=False):  # re-entrant
            t.start()
            assert inner_in.wait(10)
        assert not try_exclusive_elsewhere()
    assert not try_exclusive_elsewhere()  # the other thread still holds it
    inner_out.set()
    t.join(10)
    assert try_exclusive_elsewhere()  # last holder gone: flock released
    with layout.lock():
        with layout.lock(exclusive=False):  # shared inside exclusive: no deadlock, still exclusive
            assert not try_exclusive_elsewhere()
    assert try_exclusive_elsewhere()
