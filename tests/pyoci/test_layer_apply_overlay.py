"""apply_layer(whiteouts="overlay") -- layers applied into their own dirs and stacked by a real overlay
mount -- and apply_layer(blob_verified=True), which skips hashing the compressed blob."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from pyoci.errors import DigestMismatch, OCIError
from pyoci.layer import apply_layer


def _tar(entries: list[tuple]) -> bytes:
    """entries: (name, 'dir'|'file'|'empty', content, pax_headers)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, content, pax in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_600_000_000
            info.pax_headers = dict(pax or {})
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                t.addfile(info)
            else:
                data = content.encode() if content else b""
                info.size, info.mode = len(data), 0o644
                t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


LOWER = [("a", "dir", None, None), ("a/f1", "file", "one\n", None), ("a/f2", "file", "two\n", None),
         ("b", "dir", None, None), ("b/old", "file", "old\n", None), ("b/sub", "dir", None, None),
         ("b/sub/deep", "file", "deep\n", None), ("c", "file", "c\n", None), ("gone", "dir", None, None),
         ("gone/x", "file", "x\n", None)]
# the opaque marker comes before b's own entry: the dir entry must not drop the marker
UPPER = [("b/.wh..wh..opq", "empty", None, None), ("b", "dir", None, None), ("b/new", "file", "new\n", None),
         ("a", "dir", None, None), ("a/.wh.f1", "empty", None, None), (".wh.c", "empty", None, None),
         (".wh.gone", "empty", None, None), ("d", "file", "d\n", None),
         # a whiteout of a path this layer itself creates is ignored
         ("e", "file", "e\n", None), (".wh.e", "empty", None, None)]


def _listing(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames:
            out[os.path.relpath(os.path.join(dirpath, n), root)] = "dir"
        for n in filenames:
            out[os.path.relpath(os.path.join(dirpath, n), root)] = Path(dirpath, n).read_text()
    return out


@pytest.fixture
def stacked(tmp_path: Path):
    """Both layers applied with overlay whiteouts into l1/ and l2/, mounted read-only as l2 over l1."""
    l1, l2, merged = tmp_path / "l1", tmp_path / "l2", tmp_path / "merged"
    for d in (l1, l2, merged):
        d.mkdir()
    apply_layer(io.BytesIO(_tar(LOWER)), l1, whiteouts="overlay")
    apply_layer(io.BytesIO(_tar(UPPER)), l2, whiteouts="overlay")
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={l2}:{l1}", str(merged)],
                   check=True, capture_output=True)
    try:
        yield l1, l2, merged
    finally:
        subprocess.run(["umount", str(merged)], check=False, capture_output=True)
        subprocess.run(["umount", "-l", str(merged)], check=False, capture_output=True)
        assert not os.path.ismount(merged)


def test_overlay_whiteouts_written_not_deleted(stacked) -> None:
    _l1, l2, _merged = stacked
    for victim in ("a/f1", "c", "gone"):
        st = os.stat(l2 / victim, follow_symlinks=False)
        assert (l2 / victim).is_char_device() and st.st_rdev == os.makedev(0, 0), victim
    assert not any(p.name.startswith(".wh.") for p in l2.rglob("*"))
    assert os.getxattr(l2 / "b", "trusted.overlay.opaque") == b"y"
    assert (l2 / "e").read_text() == "e\n"  # its own layer's file survives its whiteout
    with pytest.raises(OSError):
        os.getxattr(l2 / "a", "trusted.overlay.opaque")


def test_overlay_mount_matches_flattened_apply(stacked, tmp_path: Path) -> None:
    _l1, _l2, merged = stacked
    seen = _listing(merged)
    assert "a/f1" not in seen and seen["a/f2"] == "two\n"
    assert "c" not in seen and "gone" not in seen and "gone/x" not in seen
    assert {k for k in seen if k.startswith("b/")} == {"b/new"}  # opaque: b's lower contents hidden
    assert seen["d"] == "d\n" and seen["e"] == "e\n"
    flat = tmp_path / "flat"
    flat.mkdir()
    apply_layer(io.BytesIO(_tar(LOWER)), flat)
    apply_layer(io.BytesIO(_tar(UPPER)), flat)
    assert _listing(flat) == seen


def test_overlay_mode_drops_forged_overlay_xattrs(tmp_path: Path) -> None:
    layer = _tar([("x", "dir", None, {"SCHILY.xattr.trusted.overlay.opaque": "y",
                                      "SCHILY.xattr.user.keep": "1"}),
                  ("x/f", "file", "f\n", {"SCHILY.xattr.trusted.overlay.redirect": "/etc"})])
    out = tmp_path / "o"
    out.mkdir()
    apply_layer(io.BytesIO(layer), out, whiteouts="overlay")
    assert "trusted.overlay.opaque" not in os.listxattr(out / "x")
    assert "trusted.overlay.redirect" not in os.listxattr(out / "x" / "f")
    assert os.getxattr(out / "x", "user.keep") == b"1"


def test_unknown_whiteouts_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OCIError, match="whiteouts"):
        apply_layer(io.BytesIO(_tar(LOWER)), tmp_path, whiteouts="aufs")


def test_blob_verified_skips_blob_digest_but_keeps_diff_id(tmp_path: Path) -> None:
    raw = _tar(LOWER)
    blob = gzip.compress(raw, mtime=0)
    diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    wrong = "sha256:" + "0" * 64
    for i, kw in enumerate([dict(expected_digest=wrong), dict(expected_digest=wrong, expected_diff_id=wrong)]):
        d = tmp_path / f"bad{i}"
        d.mkdir()
        with pytest.raises(DigestMismatch):
            apply_layer(io.BytesIO(blob), d, **kw)
    ok = tmp_path / "ok"
    ok.mkdir()
    assert str(apply_layer(io.BytesIO(blob), ok, expected_digest=wrong, expected_diff_id=diff_id,
                           blob_verified=True)) == diff_id
    assert (ok / "a" / "f2").read_text() == "two\n"
    bad = tmp_path / "bad-diff"
    bad.mkdir()
    with pytest.raises(DigestMismatch, match="diff_id"):
        apply_layer(io.BytesIO(blob), bad, expected_diff_id=wrong, blob_verified=True)


def test_blob_verified_does_not_hash_the_blob(tmp_path: Path, monkeypatch) -> None:
    """The compressed side is never hashed when the caller verified it (or asked for no check)."""
    from pyoci.layer import compression

    made: list[bool] = []
    real = compression._PrefixedReader.__init__

    def spy(self, head, stream, algorithm, hashing=True):
        made.append(hashing)
        real(self, head, stream, algorithm, hashing)

    monkeypatch.setattr(compression._PrefixedReader, "__init__", spy)
    blob = gzip.compress(_tar(LOWER), mtime=0)
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    for i, kw in enumerate([dict(expected_digest=digest, blob_verified=True), {}, dict(expected_digest=digest)]):
        d = tmp_path / str(i)
        d.mkdir()
        apply_layer(io.BytesIO(blob), d, **kw)
    assert made == [False, False, True]


def _tar_raw(members: list[tarfile.TarInfo]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for m in members:
            t.addfile(m, io.BytesIO(b"") if m.isreg() else None)
    return buf.getvalue()


def _member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    m = tarfile.TarInfo(name)
    m.type, m.linkname, m.mode = kind, linkname, 0o755 if kind == tarfile.DIRTYPE else 0o644
    return m


def test_overlay_whiteouts_stay_inside_the_rootfs(tmp_path: Path) -> None:
    from pyoci.errors import UnsafeArchive

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("keep\n")
    for i, members in enumerate([
        [_member("../.wh.victim")],
        [_member("esc", tarfile.SYMTYPE, "../../outside"), _member("esc/.wh.victim")],
        [_member("d", tarfile.DIRTYPE), _member("d/.wh..")],
    ]):
        root = tmp_path / f"r{i}"
        root.mkdir()
        with pytest.raises(UnsafeArchive):
            apply_layer(io.BytesIO(_tar_raw(members)), root, whiteouts="overlay")
    # an absolute symlink in the parent path is followed inside the rootfs, never on the host
    root = tmp_path / "abs"
    root.mkdir()
    apply_layer(io.BytesIO(_tar_raw([_member("abs", tarfile.SYMTYPE, str(outside)),
                                     _member("abs/.wh.victim")])), root, whiteouts="overlay")
    assert (outside / "victim").read_text() == "keep\n" and sorted(os.listdir(outside)) == ["victim"]
    assert (root / outside.relative_to("/") / "victim").is_char_device()
