"""Layers from a real overlayfs upper dir (char-device whiteouts, opaque dirs) and from a plain tree diff."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pyoci.layer import apply_layer, create_layer, create_layer_from_diff
from tests.pyoci.test_layer_roundtrip import make_rich_tree, snapshot, tar_entries


@pytest.fixture
def overlay(tmp_path: Path):
    """lower (a rich tree), upper, work, merged mounted; always unmounted at the end."""
    lower, upper, work, merged = (tmp_path / n for n in ("lower", "upper", "work", "merged"))
    make_rich_tree(lower)
    (lower / "gone-dir" / "sub").mkdir(parents=True)
    (lower / "gone-dir" / "sub" / "f").write_text("f\n")
    (lower / "replaced").mkdir()
    (lower / "replaced" / "old-a").write_text("a\n")
    (lower / "replaced" / "old-b").write_text("b\n")
    for d in (upper, work, merged):
        d.mkdir()
    opts = f"lowerdir={lower},upperdir={upper},workdir={work}"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(merged)], check=True, capture_output=True)
    try:
        yield lower, upper, merged
    finally:
        subprocess.run(["umount", str(merged)], check=False, capture_output=True)
        subprocess.run(["umount", "-l", str(merged)], check=False, capture_output=True)
        assert not os.path.ismount(merged)


def _modify(merged: Path) -> None:
    (merged / "empty").unlink()                              # deleted file -> .wh.empty
    shutil.rmtree(merged / "gone-dir")                       # deleted dir -> .wh.gone-dir
    shutil.rmtree(merged / "replaced")                       # dir deleted and made again -> opaque
    (merged / "replaced").mkdir()
    (merged / "replaced" / "new").write_text("new\n")
    (merged / "etc" / "passwd").write_text("changed\n")     # copied up, modified
    (merged / "private" / "secret").unlink()                 # whiteout inside a lower dir
    (merged / "added.txt").write_text("added\n")
    (merged / "bin" / "sg").chmod(0o700)                     # metadata-only change
    (merged / "etc" / "rel").unlink()
    (merged / "etc" / "rel").symlink_to("passwd")            # symlink retargeted


def test_layer_from_overlay_upper_dir(overlay, tmp_path: Path) -> None:
    lower, upper, merged = overlay
    _modify(merged)
    expected = snapshot(merged, mtimes=False)
    subprocess.run(["umount", str(merged)], check=True)
    # the upper dir really holds overlayfs whiteouts (char 0:0) and an opaque marker
    assert (upper / "empty").is_char_device() and os.stat(upper / "empty", follow_symlinks=False).st_rdev == 0
    assert os.getxattr(upper / "replaced", "trusted.overlay.opaque") == b"y"

    base = create_layer(lower, tmp_path / "base.tgz")
    info = create_layer(upper, tmp_path / "upper.tgz", whiteouts="overlay")
    entries = tar_entries((tmp_path / "upper.tgz").read_bytes())
    names = [e.name for e in entries]
    assert b".wh.empty" in names and b".wh.gone-dir" in names and b"private/.wh.secret" in names
    # the opaque marker directly follows its directory's own entry
    assert names[names.index(b"replaced/") + 1] == b"replaced/.wh..wh..opq"
    assert b"empty" not in names and not any(b"trusted.overlay" in k.encode() for e in entries for k in e.xattrs)
    wh = entries[names.index(b".wh.empty")]
    assert (wh.type, wh.mode, wh.size, wh.mtime, wh.uid) == (b"0", 0, 0, 0, 0)

    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    apply_layer(tmp_path / "base.tgz", rootfs, expected_diff_id=base.diff_id)
    apply_layer(tmp_path / "upper.tgz", rootfs, expected_diff_id=info.diff_id, expected_digest=info.digest)
    assert snapshot(rootfs, mtimes=False) == expected
    assert sorted(os.listdir(rootfs / "replaced")) == ["new"]

    # the same change computed by diffing trees (builders without overlayfs) gives the same result
    merged_copy = tmp_path / "merged-copy"
    merged_copy.mkdir()
    apply_layer(tmp_path / "base.tgz", merged_copy)
    apply_layer(tmp_path / "upper.tgz", merged_copy)
    diff = create_layer_from_diff(lower, merged_copy, tmp_path / "diff.tgz")
    rootfs2 = tmp_path / "rootfs2"
    rootfs2.mkdir()
    apply_layer(tmp_path / "base.tgz", rootfs2)
    apply_layer(tmp_path / "diff.tgz", rootfs2, expected_diff_id=diff.diff_id)
    assert snapshot(rootfs2, mtimes=False) == expected
