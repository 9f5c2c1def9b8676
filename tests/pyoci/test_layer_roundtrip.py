"""create_layer -> apply_layer round trips, determinism, compression, digests, whiteouts, diff layers.

Also holds the tree helpers (`make_rich_tree`, `snapshot`) the other test_layer_* modules import.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from pyoci.digest import Digest
from pyoci.errors import DigestMismatch
from pyoci.layer import CompressionError, InvalidLayer, apply_layer, create_layer, create_layer_from_diff
from pyoci.layer import compression as comp
from pyoci.layer import tarformat as tf
from pyoci import mediatypes

T0 = 1_600_000_000
LONG_DIR = "deep-" + "d" * 90
LONG_FILE = "long-" + "f" * 120  # > 100 bytes: needs a PAX path record (no '/' to split at)


def make_rich_tree(root: Path, *, devices: bool = True) -> Path:
    """A tree with every kind of entry a layer must carry."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (root / "bin").mkdir()
    (root / "bin" / "tool").write_bytes(b"#!/bin/sh\necho tool\n")
    (root / "bin" / "tool").chmod(0o4755)                      # setuid
    (root / "bin" / "sg").write_bytes(b"sg")
    (root / "bin" / "sg").chmod(0o2711)                        # setgid
    os.link(root / "bin" / "tool", root / "bin" / "tool-hl")  # hard link (3 names)
    os.link(root / "bin" / "tool", root / "etc" / "tool-hl2")
    (root / "bin" / "sh").symlink_to("/bin/tool")             # absolute symlink
    (root / "etc" / "rel").symlink_to("../bin/sg")            # relative symlink
    (root / "etc" / "dangling").symlink_to("nowhere/at/all")
    (root / "tmp").mkdir()
    (root / "tmp").chmod(0o1777)                               # sticky
    (root / "private").mkdir(mode=0o700)
    (root / "private" / "secret").write_bytes(b"s3cret")
    (root / "private" / "secret").chmod(0o600)
    (root / "empty").write_bytes(b"")
    big = hashlib.sha256(b"seed").digest() * (3 * 1024 * 1024 // 32 + 7)  # > 3 MiB, crosses chunk borders
    (root / "big.bin").write_bytes(big)
    (root / "ünïcode-名前.txt").write_text("unicode\n")
    (root / LONG_DIR / "sub").mkdir(parents=True)
    (root / LONG_DIR / "sub" / LONG_FILE).write_text("long\n")
    (root / LONG_FILE).write_text("long at top\n")
    (root / "owned").write_text("owned\n")
    os.chown(root / "owned", 1000, 1001)
    (root / "bigid").write_text("big uid\n")
    os.chown(root / "bigid", 3_000_000, 3_000_001)             # > 07777777: PAX uid/gid records
    os.chown(root / "tmp", 65534, 65534)
    os.lchown(root / "etc" / "rel", 7, 8)
    os.setxattr(root / "etc" / "passwd", "user.comment", b"hello")
    os.setxattr(root / "private", "user.dirattr", b"\x00\x01binary")
    os.setxattr(root / "bin" / "tool", "trusted.pyoci", b"t")
    os.mkfifo(root / "fifo", 0o640)
    if devices:
        os.mknod(root / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        os.mknod(root / "loop9", 0o660 | stat.S_IFBLK, os.makedev(7, 9))
    # Fixed mtimes everywhere, deepest first so directories keep theirs.
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for i, name in enumerate(sorted(filenames + dirnames)):
            os.utime(os.path.join(dirpath, name), (T0 + i, T0 + i), follow_symlinks=False)
    return root


def snapshot(root: Path, *, mtimes: bool = True, xattrs: bool = True) -> dict:
    """Everything a layer must preserve, per path; plus the hard-link groups."""
    out: dict = {}
    inodes: dict[tuple[int, int], list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            rec: dict = {"type": stat.S_IFMT(st.st_mode), "mode": oct(stat.S_IMODE(st.st_mode)),
                         "uid": st.st_uid, "gid": st.st_gid}
            if mtimes and not stat.S_ISDIR(st.st_mode):
                rec["mtime"] = st.st_mtime_ns // 10**9
            if stat.S_ISREG(st.st_mode):
                rec["sha256"] = hashlib.sha256(Path(p).read_bytes()).hexdigest()
                if st.st_nlink > 1:
                    inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
            elif stat.S_ISLNK(st.st_mode):
                rec["target"] = os.readlink(p)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                rec["rdev"] = (os.major(st.st_rdev), os.minor(st.st_rdev))
            if xattrs and not stat.S_ISLNK(st.st_mode):
                rec["xattrs"] = {k: os.getxattr(p, k) for k in sorted(os.listxattr(p))
                                 if not k.startswith("security.")}
            out[rel] = rec
    out["<hardlinks>"] = sorted(sorted(v) for v in inodes.values())
    return out


def dir_mtimes(root: Path) -> dict:
    return {os.path.relpath(d, root): os.lstat(d).st_mtime_ns // 10**9 for d, _, _ in os.walk(root) if d != str(root)}


def tar_entries(blob: bytes) -> list[tf.Entry]:
    reader = comp.DecompressingReader(io.BytesIO(blob))
    tar = tf.TarReader(reader.read)
    out = []
    for e in tar:
        b"".join(bytes(c) for c in tar.data(e))
        out.append(e)
    return out


@pytest.fixture
def rich(tmp_path: Path) -> Path:
    return make_rich_tree(tmp_path / "src")


@pytest.mark.parametrize("compression,workers", [("gzip", 2), ("zstd", 2), ("", 2), ("gzip", 0)])
def test_round_trip_preserves_everything(rich: Path, tmp_path: Path, compression: str, workers: int) -> None:
    blob = tmp_path / "layer.blob"
    info = create_layer(rich, blob, compression)
    assert info.media_type == {"gzip": mediatypes.OCI_LAYER_GZIP, "zstd": mediatypes.OCI_LAYER_ZSTD,
                               "": mediatypes.OCI_LAYER}[compression]
    data = blob.read_bytes()
    assert info.size == len(data)
    assert info.digest == Digest("sha256", hashlib.sha256(data).hexdigest())
    assert comp.detect(data[:4]) == compression
    if compression == "":
        assert info.digest == info.diff_id
    else:
        assert info.digest != info.diff_id
    dest = tmp_path / "dest"
    dest.mkdir()
    diff_id = apply_layer(blob, dest, expected_diff_id=info.diff_id, expected_digest=info.digest, workers=workers)
    assert diff_id == info.diff_id
    assert snapshot(dest) == snapshot(rich)
    assert dir_mtimes(dest) == dir_mtimes(rich)
    got = snapshot(dest)
    assert got["bin/tool"]["mode"] == oct(0o4755) and got["tmp"]["mode"] == oct(0o1777)
    assert got["bigid"]["uid"] == 3_000_000 and got["etc/rel"]["uid"] == 7
    assert ["bin/tool", "bin/tool-hl", "etc/tool-hl2"] in got["<hardlinks>"]
    assert got["private"]["xattrs"] == {"user.dirattr": b"\x00\x01binary"}
    assert got["null"]["rdev"] == (1, 3) and got["loop9"]["type"] == stat.S_IFBLK


def test_diff_id_is_the_uncompressed_tar_digest(rich: Path, tmp_path: Path) -> None:
    info = create_layer(rich, tmp_path / "l.tgz", "gzip")
    raw = gzip.decompress((tmp_path / "l.tgz").read_bytes())
    assert info.diff_id == Digest("sha256", hashlib.sha256(raw).hexdigest())
    plain = create_layer(rich, tmp_path / "l.tar", "")
    assert plain.diff_id == info.diff_id and plain.digest == info.diff_id


def test_tar_conventions_match_go_archive_tar(rich: Path, tmp_path: Path) -> None:
    create_layer(rich, tmp_path / "l.tar", "")
    raw = (tmp_path / "l.tar").read_bytes()
    assert raw.endswith(bytes(1024)) and len(raw) % 512 == 0
    names = [e.name.decode() for e in tar_entries(raw)]
    assert not any(n.startswith(("./", "/")) for n in names)
    assert "tmp/" in names and "bin/" in names and "bin/tool" in names
    # directory-walk order: a directory's contents follow it, names sorted bytewise
    assert names.index("bin/") < names.index("bin/sg") < names.index("bin/sh") < names.index("bin/tool")
    with tarfile.open(tmp_path / "l.tar") as t:  # a second, independent reader agrees
        members = {m.name: m for m in t.getmembers()}
    tool = members["bin/tool"]
    assert tool.uname == "" and tool.gname == "" and tool.mode == 0o4755 and tool.isreg()
    assert members["bin/tool-hl"].islnk() and members["bin/tool-hl"].linkname == "bin/tool"
    assert members["etc/passwd"].pax_headers == {"SCHILY.xattr.user.comment": "hello"}
    assert members["bin/tool"].pax_headers.get("SCHILY.xattr.trusted.pyoci") == "t"
    assert members[LONG_FILE].pax_headers["path"] == LONG_FILE
    long_nested = f"{LONG_DIR}/sub/{LONG_FILE}"
    assert long_nested in members
    assert members["bigid"].uid == 3_000_000 and members["bigid"].pax_headers["uid"] == "3000000"
    assert members["null"].ischr() and (members["null"].devmajor, members["null"].devminor) == (1, 3)
    # USTAR header only (no PAX) where everything fits, with Go's field layout
    first = raw[:512]
    assert first[257:265] == b"ustar\x0000" and first[156:157] == b"0" and first[:8] == b"big.bin\0"
    assert first[148:156].endswith(b"\x00 ") and first[265:329] == bytes(64)


def test_two_creates_are_byte_identical(rich: Path, tmp_path: Path) -> None:
    for compression in ("gzip", "zstd", ""):
        a = create_layer(rich, tmp_path / "a", compression)
        b = create_layer(rich, tmp_path / "b", compression, threads=1)
        assert a == b, compression
        assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()
    copy = tmp_path / "copy"
    # the same content in another place (other inode numbers, other creation order) gives the same layer
    apply_layer(tmp_path / "a", copy.mkdir() or copy)
    assert create_layer(copy, tmp_path / "c", "") == create_layer(rich, tmp_path / "d", "")


def test_source_date_epoch_clamps_mtimes(rich: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = create_layer(rich, tmp_path / "a", "")
    clamp = T0 + 3
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(clamp))
    clamped = create_layer(rich, tmp_path / "b", "")
    assert clamped.diff_id != before.diff_id
    mtimes = [e.mtime for e in tar_entries((tmp_path / "b").read_bytes())]
    assert max(mtimes) == clamp and min(mtimes) == T0  # older times are kept, newer ones clamped
    assert os.lstat(rich / "owned").st_mtime > clamp
    os.utime(rich / "owned", (T0 + 999, T0 + 999))  # a change above the clamp is invisible
    assert create_layer(rich, tmp_path / "c", "").diff_id == clamped.diff_id
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    assert create_layer(rich, tmp_path / "d", "", mtime=clamp).diff_id == clamped.diff_id
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(InvalidLayer, match="SOURCE_DATE_EPOCH"):
        create_layer(rich, tmp_path / "e", "")


def test_digest_mismatch_is_reported_after_streaming(rich: Path, tmp_path: Path) -> None:
    info = create_layer(rich, tmp_path / "l", "gzip")
    wrong = Digest("sha256", "0" * 64)
    with pytest.raises(DigestMismatch, match="diff_id mismatch: expected sha256:0{64}, got " + str(info.diff_id)):
        apply_layer(tmp_path / "l", (tmp_path / "r1").mkdir() or tmp_path / "r1", expected_diff_id=wrong)
    with pytest.raises(DigestMismatch, match="blob digest mismatch"):
        apply_layer(tmp_path / "l", (tmp_path / "r2").mkdir() or tmp_path / "r2", expected_digest=wrong,
                    expected_diff_id=info.diff_id)
    # the right pair passes
    assert apply_layer(tmp_path / "l", (tmp_path / "r3").mkdir() or tmp_path / "r3",
                       expected_digest=info.digest, expected_diff_id=info.diff_id) == info.diff_id


def test_compression_detection_and_refusals(rich: Path, tmp_path: Path) -> None:
    create_layer(rich, tmp_path / "l.tgz", "gzip")
    with pytest.raises(CompressionError, match="layer blob is not zstd"):
        apply_layer(tmp_path / "l.tgz", tmp_path, compression="zstd")
    with pytest.raises(CompressionError, match="unsupported layer compression 'lz4'"):
        create_layer(rich, tmp_path / "x", "lz4")
    assert not (tmp_path / "x").exists()  # nothing half-written left at the destination
    corrupt = bytearray((tmp_path / "l.tgz").read_bytes())
    corrupt[len(corrupt) // 2] ^= 0xFF
    (tmp_path / "bad.tgz").write_bytes(bytes(corrupt))
    with pytest.raises((CompressionError, InvalidLayer, DigestMismatch)):
        apply_layer(tmp_path / "bad.tgz", (tmp_path / "r").mkdir() or tmp_path / "r",
                    expected_digest=Digest("sha256", hashlib.sha256(bytes(corrupt)).hexdigest()),
                    expected_diff_id=create_layer(rich, io.BytesIO(), "gzip").diff_id)
    with pytest.raises(InvalidLayer, match="tar header at offset 0: .*checksum"):
        apply_layer(io.BytesIO(b"not a tar at all" * 64), (tmp_path / "r2").mkdir() or tmp_path / "r2")


def test_compressing_writer_streams_and_reports_both_digests() -> None:
    payload = os.urandom(1 << 16) * 40 + b"tail"
    for compression in ("gzip", "zstd", ""):
        out = io.BytesIO()
        w = comp.open_writer(out, compression)
        for i in range(0, len(payload), 100_000):
            w.write(payload[i:i + 100_000])
        d = w.close()
        blob = out.getvalue()
        assert d.diff_id.encoded == hashlib.sha256(payload).hexdigest()
        assert d.digest.encoded == hashlib.sha256(blob).hexdigest() and d.size == len(blob)
        r = comp.open_reader(io.BytesIO(blob))
        assert r.compression == compression
        back = b"".join(iter(lambda: r.read(65536), b""))
        assert back == payload and r.finish() == d


def _tar(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for info, data in members:
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _file(name: str, data: bytes = b"x", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime = len(data), mode, T0
    return ti, data


def _dir(name: str, mode: int = 0o755) -> tuple[tarfile.TarInfo, None]:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, mode, T0
    return ti, None


def _sym(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, target, 0o777
    return ti, None


def test_whiteouts_and_opaque_dirs(tmp_path: Path) -> None:
    root = tmp_path / "root"
    base = _tar(_dir("a"), _file("a/keep"), _file("a/gone"), _dir("a/sub"), _file("a/sub/x"),
                _dir("opq"), _file("opq/old1"), _dir("opq/olddir"), _file("opq/olddir/y"), _file("f"),
                _dir("dir2file"), _file("dir2file/inner"), _file("file2dir"), _sym("link", "a"))
    root.mkdir()
    apply_layer(io.BytesIO(base), root)
    upper = _tar(_file("a/.wh.gone"), _file("a/.wh.sub"), _file(".wh.f"),
                 _dir("opq"), _file("opq/new"), _file("opq/.wh..wh..opq"),  # opaque after a same-layer entry
                 _file("dir2file", b"now a file"), _dir("file2dir"), _file("file2dir/child"),
                 _file("link", b"symlink replaced, not followed"), _file(".wh.never-existed"),
                 _file("a/.wh..wh.plnk"))  # aufs metadata: ignored
    apply_layer(io.BytesIO(upper), root)
    tree = {str(p.relative_to(root)) for p in root.rglob("*")}
    assert tree == {"a", "a/keep", "opq", "opq/new", "dir2file", "file2dir", "file2dir/child", "link"}
    assert (root / "dir2file").read_bytes() == b"now a file"
    assert not (root / "link").is_symlink() and (root / "a" / "keep").read_bytes() == b"x"


def test_opaque_marker_first_as_umoci_writes_it(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    apply_layer(io.BytesIO(_tar(_dir("d"), _file("d/old"), _dir("d/e"), _file("d/e/old"))), root)
    apply_layer(io.BytesIO(_tar(_file("d/.wh..wh..opq"), _dir("d"), _dir("d/e"), _file("d/e/new"))), root)
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == ["d", "d/e", "d/e/new"]


def test_whiteout_in_same_layer_does_not_hide_own_entries(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    apply_layer(io.BytesIO(_tar(_file("x", b"mine"), _file(".wh.x"))), root)
    assert (root / "x").read_bytes() == b"mine"


def test_layer_from_diff_reproduces_the_upper_tree(rich: Path, tmp_path: Path) -> None:
    lower = rich
    upper = tmp_path / "upper"
    apply_layer(create_layer(lower, tmp_path / "base.tar", "") and tmp_path / "base.tar", upper.mkdir() or upper)
    # a build step: delete, modify, add, replace dir by file and file by dir, chmod, new hard link
    (upper / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/bash\n")
    (upper / "empty").unlink()
    import shutil
    shutil.rmtree(upper / "private")
    (upper / "private").write_text("was a dir\n")
    (upper / "owned").unlink()
    (upper / "owned").mkdir()
    (upper / "owned" / "inside").write_text("in\n")
    (upper / "bin" / "sg").chmod(0o755)
    (upper / "new").write_text("new\n")
    os.link(upper / "new", upper / "new-hl")
    (upper / LONG_DIR / "sub" / LONG_FILE).unlink()
    info = create_layer_from_diff(lower, upper, tmp_path / "diff.tgz")
    names = [e.name for e in tar_entries((tmp_path / "diff.tgz").read_bytes())]
    assert b".wh.empty" in names and f"{LONG_DIR}/sub/.wh.{LONG_FILE}".encode() in names
    assert b"big.bin" not in names and b"bin/tool" not in names  # unchanged files are not repeated
    assert b"private" in names and b"owned/" in names and b"owned/inside" in names
    result = tmp_path / "result"
    apply_layer(tmp_path / "base.tar", result.mkdir() or result)
    apply_layer(tmp_path / "diff.tgz", result, expected_diff_id=info.diff_id)
    assert snapshot(result, mtimes=False) == snapshot(upper, mtimes=False)


def test_missing_end_of_archive_is_tolerated_but_truncated_data_is_not(tmp_path: Path) -> None:
    whole = _tar(_file("a", b"hello"), _file("b", b"world!"))
    root = tmp_path / "r"
    root.mkdir()
    # umoci 0.4 writes neither the end-of-archive blocks nor the last entry's padding
    cut = whole[:512 * 3 + 6]
    apply_layer(io.BytesIO(cut), root)
    assert (root / "b").read_bytes() == b"world!"
    with pytest.raises(InvalidLayer, match=r"entry 'b'.*ends 3 bytes before"):
        apply_layer(io.BytesIO(whole[:512 * 3 + 3]), tmp_path)


def test_blob_digest_and_diff_id_may_use_different_algorithms(rich: Path, tmp_path: Path) -> None:
    info = create_layer(rich, tmp_path / "l", "zstd")
    blob = (tmp_path / "l").read_bytes()
    sha512 = Digest("sha512", hashlib.sha512(blob).hexdigest())
    dest = tmp_path / "d"
    dest.mkdir()
    assert apply_layer(io.BytesIO(blob), dest, expected_digest=sha512, expected_diff_id=info.diff_id) == info.diff_id


def test_create_errors_are_one_line_oci_errors(rich: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidLayer, match=r"no-such-dir/l.tgz: cannot write the layer: No such file"):
        create_layer(rich, tmp_path / "no-such-dir" / "l.tgz")
    with pytest.raises(InvalidLayer, match="not a directory"):
        create_layer(tmp_path / "missing", tmp_path / "l.tgz")
    with pytest.raises(InvalidLayer, match="unsupported whiteouts mode 'aufs'"):
        create_layer(rich, tmp_path / "l.tgz", whiteouts="aufs")
    assert not (tmp_path / "l.tgz").exists()


def test_apply_errors_are_one_line_oci_errors(rich: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidLayer, match=r"missing.tgz: cannot open layer: No such file"):
        apply_layer(tmp_path / "missing.tgz", tmp_path)
    create_layer(rich, tmp_path / "l.tgz")
    with pytest.raises(InvalidLayer, match=r"nope: cannot open rootfs"):
        apply_layer(tmp_path / "l.tgz", tmp_path / "nope")


@pytest.mark.parametrize("workers", [0, 1, 4])
def test_same_layer_rewrites_are_ordered_with_writer_threads(tmp_path: Path, workers: int) -> None:
    def H(name: str, target: str):
        ti = tarfile.TarInfo(name)
        ti.type, ti.linkname = tarfile.LNKTYPE, target
        return ti, None

    members = [_file("x", b"1"), _file("x", b"2"), H("y", "x"), _dir("d"), _file("d/f"),
               _file("d", b"file replaces a dir whose child was just written"), _file("z"), _sym("z", "x"),
               _dir("e"), _file("e/keep"), _file("e/.wh..wh..opq")]
    members += [_file(f"many/f{i:04d}", b"%d" % i) for i in range(300)]
    members += [_file("many/f0007", b"rewritten"), _file("many/.wh.f0008")]
    root = tmp_path / "root"
    root.mkdir()
    apply_layer(io.BytesIO(_tar(*members)), root, workers=workers)
    assert (root / "x").read_bytes() == b"2" and os.stat(root / "y").st_ino == os.stat(root / "x").st_ino
    assert (root / "d").read_bytes().startswith(b"file replaces") and os.readlink(root / "z") == "x"
    assert os.listdir(root / "e") == ["keep"]
    assert (root / "many" / "f0007").read_bytes() == b"rewritten" and (root / "many" / "f0299").read_bytes() == b"299"
    assert (root / "many" / "f0008").exists()  # a whiteout never hides its own layer's entries
    assert len(os.listdir(root / "many")) == 300


@pytest.mark.parametrize("workers", [0, 2])
def test_file_used_as_a_directory_is_an_error_in_both_modes(tmp_path: Path, workers: int) -> None:
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(InvalidLayer, match="layer entry 'a/b': a is not a directory"):
        apply_layer(io.BytesIO(_tar(_file("a"), _file("a/b"))), root, workers=workers)
