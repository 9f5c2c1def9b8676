"""Interop with umoci: its layers applied by us match `umoci unpack`, ours unpacked by umoci match the source,
and our tar headers are byte-identical to the ones umoci writes for the same tree."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pyoci import mediatypes
from pyoci.layer import apply_layer, create_layer, create_layer_from_diff
from tests.pyoci.test_layer_roundtrip import make_rich_tree, snapshot
from tests.support import require

pytestmark = pytest.mark.interop


def umoci(*args: str | os.PathLike) -> str:
    proc = subprocess.run([require("umoci"), *map(str, args)], capture_output=True, text=True)
    assert proc.returncode == 0, f"umoci {' '.join(map(str, args))} failed: {proc.stderr.strip()}"
    return proc.stdout


def blob_path(layout: Path, digest: str) -> Path:
    algo, enc = digest.split(":", 1)
    return layout / "blobs" / algo / enc


def read_image(layout: Path, tag: str) -> tuple[dict, dict, dict]:
    index = json.loads((layout / "index.json").read_text())
    desc = next(m for m in index["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == tag)
    manifest = json.loads(blob_path(layout, desc["digest"]).read_bytes())
    config = json.loads(blob_path(layout, manifest["config"]["digest"]).read_bytes())
    return index, manifest, config


def write_blob(layout: Path, data: bytes) -> dict:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blob_path(layout, digest).write_bytes(data)
    return {"digest": digest, "size": len(data)}


def add_layer(layout: Path, tag: str, blob: Path, info) -> None:
    """Append one of our layers to an umoci-made image by editing its manifest and config as plain JSON."""
    index, manifest, config = read_image(layout, tag)
    shutil.copyfile(blob, blob_path(layout, str(info.digest)))
    manifest["layers"].append(info.descriptor())
    config["rootfs"]["diff_ids"].append(str(info.diff_id))
    config.setdefault("history", []).append({"created_by": "pyoci create_layer"})
    manifest["config"].update(write_blob(layout, json.dumps(config).encode()))
    new = write_blob(layout, json.dumps(manifest).encode())
    for m in index["manifests"]:
        if m["annotations"]["org.opencontainers.image.ref.name"] == tag:
            m.update(new)
    (layout / "index.json").write_text(json.dumps(index))


def apply_image(layout: Path, tag: str, rootfs: Path) -> None:
    _, manifest, config = read_image(layout, tag)
    rootfs.mkdir()
    assert len(manifest["layers"]) == len(config["rootfs"]["diff_ids"])
    for layer, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"]):
        got = apply_layer(blob_path(layout, layer["digest"]), rootfs, expected_digest=layer["digest"],
                          expected_diff_id=diff_id)
        assert str(got) == diff_id


def test_umoci_image_applied_by_us_matches_umoci_unpack(tmp_path: Path) -> None:
    layout = tmp_path / "L"
    src = make_rich_tree(tmp_path / "src")
    umoci("init", "--layout", layout)
    umoci("new", "--image", f"{layout}:t")
    umoci("insert", "--image", f"{layout}:t", src, "/")
    umoci("insert", "--image", f"{layout}:t", "--whiteout", "/empty")          # removal entry
    repl = tmp_path / "replacement"
    repl.mkdir()
    (repl / "only-this").write_text("opaque\n")
    umoci("insert", "--image", f"{layout}:t", "--opaque", repl, "/private")      # replaces a directory
    # unpack, modify, repack: deletions, a dir replaced by a file and a file by a dir, new hard link
    work = tmp_path / "work"
    umoci("unpack", "--image", f"{layout}:t", work)
    shutil.rmtree(work / "rootfs" / "etc")
    (work / "rootfs" / "etc").write_text("etc is a file now\n")
    (work / "rootfs" / "owned").unlink()
    (work / "rootfs" / "owned").mkdir()
    (work / "rootfs" / "owned" / "x").write_text("x\n")
    (work / "rootfs" / "bin" / "sg").unlink()
    os.link(work / "rootfs" / "big.bin", work / "rootfs" / "big-hl")
    umoci("repack", "--image", f"{layout}:t", work)
    _, manifest, _ = read_image(layout, "t")
    assert len(manifest["layers"]) == 4

    ours = tmp_path / "ours"
    apply_image(layout, "t", ours)
    bundle = tmp_path / "bundle"
    umoci("unpack", "--image", f"{layout}:t", bundle)
    expected = snapshot(bundle / "rootfs")
    got = snapshot(ours)
    assert got == expected
    assert "empty" not in got and sorted(os.listdir(ours / "private")) == ["only-this"]
    assert got["etc"]["type"] == 0o100000 and got["owned/x"]["sha256"]
    assert ["big-hl", "big.bin"] in got["<hardlinks>"]


def test_our_headers_are_byte_identical_to_umoci_insert(tmp_path: Path) -> None:
    layout = tmp_path / "L"
    src = make_rich_tree(tmp_path / "src")
    umoci("init", "--layout", layout)
    umoci("new", "--image", f"{layout}:t")
    umoci("insert", "--image", f"{layout}:t", src, "/")
    _, manifest, config = read_image(layout, "t")
    theirs = gzip.decompress(blob_path(layout, manifest["layers"][0]["digest"]).read_bytes())
    assert theirs[:2] == b"/\0"  # umoci's root entry, which we do not write
    theirs = theirs[512:]
    create_layer(src, tmp_path / "ours.tar", "")
    ours = (tmp_path / "ours.tar").read_bytes()
    # same headers, same order, same data; we add the end-of-archive blocks umoci 0.4 leaves out
    assert ours[:len(theirs)] == theirs
    assert ours[len(theirs):].strip(b"\0") == b"" and len(ours) % 512 == 0


@pytest.mark.parametrize("compression", ["gzip", ""])
def test_our_layers_unpacked_by_umoci(tmp_path: Path, compression: str) -> None:
    src = make_rich_tree(tmp_path / "src")
    # second layer: a build step computed by diffing trees (deletions, replaced dir, new files)
    upper = tmp_path / "upper"
    base = create_layer(src, tmp_path / "base.blob", compression)
    upper.mkdir()
    apply_layer(tmp_path / "base.blob", upper)
    (upper / "empty").unlink()
    shutil.rmtree(upper / "private")
    (upper / "private").mkdir()
    (upper / "private" / "fresh").write_text("fresh\n")
    (upper / "tmp").rmdir()
    (upper / "tmp").write_text("tmp is a file\n")
    (upper / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/ash\n")
    diff = create_layer_from_diff(src, upper, tmp_path / "diff.blob", compression)
    assert diff.media_type == (mediatypes.OCI_LAYER_GZIP if compression else mediatypes.OCI_LAYER)

    layout = tmp_path / "L"
    umoci("init", "--layout", layout)
    umoci("new", "--image", f"{layout}:t")
    add_layer(layout, "t", tmp_path / "base.blob", base)
    bundle1 = tmp_path / "b1"
    umoci("unpack", "--image", f"{layout}:t", bundle1)
    assert snapshot(bundle1 / "rootfs") == snapshot(src)
    add_layer(layout, "t", tmp_path / "diff.blob", diff)
    bundle2 = tmp_path / "b2"
    umoci("unpack", "--image", f"{layout}:t", bundle2)
    assert snapshot(bundle2 / "rootfs", mtimes=False) == snapshot(upper, mtimes=False)
    assert sorted(os.listdir(bundle2 / "rootfs" / "private")) == ["fresh"]
