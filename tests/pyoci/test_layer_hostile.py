"""Hostile layer tars: each one is refused (or, where documented, contained) and nothing outside the rootfs changes.

Layout per test: tmp_path/root is the rootfs, tmp_path/outside/sentinel is what an attacker wants.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import uuid
from pathlib import Path

import pytest

from pyoci.errors import OCIError, UnsafeArchive
from pyoci.layer import InvalidLayer, apply_layer, create_layer

SENTINEL = b"precious, do not touch\n"
HOST_NAME = f"pyoci-hostile-{uuid.uuid4().hex[:12]}"  # for cases aiming at the host's /etc


def _ti(name: str, type_: bytes = tarfile.REGTYPE, **kw) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.mtime = type_, kw.pop("mode", 0o644), 1_600_000_000
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti


def F(name: str, data: bytes = b"pwned\n", **kw):
    ti = _ti(name, **kw)
    ti.size = len(data)
    return ti, data


def D(name: str):
    return _ti(name, tarfile.DIRTYPE, mode=0o755), None


def S(name: str, target: str):
    return _ti(name, tarfile.SYMTYPE, linkname=target, mode=0o777), None


def H(name: str, target: str):
    return _ti(name, tarfile.LNKTYPE, linkname=target), None


def C(name: str):
    return _ti(name, tarfile.CHRTYPE, devmajor=1, devminor=3), None


def P(name: str):
    return _ti(name, tarfile.FIFOTYPE), None


def tar(*members, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for ti, data in members:
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _pax_path(real: str):
    ti = _ti("benign-name")
    ti.pax_headers = {"path": real}
    ti.size = 5
    return ti, b"pwned"


def _patched_size(field: bytes) -> bytes:
    """A one-file tar whose size field is replaced by `field` (checksum fixed up)."""
    raw = bytearray(tar(F("f", b"")))
    raw[124:136] = field
    raw[148:156] = b" " * 8
    raw[148:156] = b"%06o\0 " % sum(raw[:512])
    return bytes(raw)


# name, layers (each a tar), expected error, fragment the message must contain (the entry's name)
REFUSED = [
    ("dotdot", [tar(F("../x"))], UnsafeArchive, "'../x'"),
    ("nested-dotdot", [tar(D("a"), F("a/../../x"))], UnsafeArchive, "'a/../../x'"),
    ("pax-path-dotdot", [tar(_pax_path("../pax-escape"))], UnsafeArchive, "'../pax-escape'"),
    ("gnu-longname-dotdot", [tar(F("../" + "g" * 120), fmt=tarfile.GNU_FORMAT)], UnsafeArchive, "../ggg"),
    ("symlink-updir-then-write", [tar(S("l", "../.."), F("l/x"))], UnsafeArchive, "'l/x'"),
    ("symlink-outside-then-overwrite", [tar(S("l", "../outside"), F("l/sentinel"))], UnsafeArchive,
     "'l/sentinel'"),
    ("symlink-abs-dotdot", [tar(S("l", "/../../outside"), F("l/sentinel"))], UnsafeArchive, "'l/sentinel'"),
    ("symlink-planted-by-lower-layer", [tar(S("l", "../outside")), tar(F("l/sentinel"))], UnsafeArchive,
     "'l/sentinel'"),
    ("symlink-chain", [tar(D("d"), S("d/s1", "../s2"), S("s2", "d/s3"), S("d/s3", "../../outside"),
                           F("d/s1/sentinel"))], UnsafeArchive, "'d/s1/sentinel'"),
    ("symlink-loop", [tar(S("a", "b"), S("b", "a"), F("a/x"))], UnsafeArchive, "'a/x'"),
    ("symlink-fanout-bomb", [tar(*[S(f"s{i}", "/".join([f"s{i + 1}"] * 8)) for i in range(8)], S("s8", "."),
                                 F("s0/x"))], UnsafeArchive, "too many levels of symbolic links"),
    ("hardlink-abs-etc-passwd", [tar(H("h", "/etc/passwd"))], UnsafeArchive, "'h'"),
    ("hardlink-updir", [tar(H("h", "../outside/sentinel"))], UnsafeArchive, "'h'"),
    ("hardlink-through-symlink-dir", [tar(S("l", ".."), H("h", "l/outside/sentinel"))], UnsafeArchive, "'h'"),
    ("hardlink-to-escaping-symlink", [tar(S("s", "../outside/sentinel"), H("h", "s"))], UnsafeArchive, "'h'"),
    ("hardlink-to-absolute-symlink", [tar(S("s", "/etc/shadow"), H("h", "s"))], UnsafeArchive, "'h'"),
    ("whiteout-dotdot", [tar(F(".wh..."))], UnsafeArchive, "'.wh...'"),
    ("whiteout-empty-name", [tar(D("d"), F("d/.wh."))], UnsafeArchive, "'d/.wh.'"),
    ("whiteout-in-parent", [tar(F("../.wh.outside"))], UnsafeArchive, "'../.wh.outside'"),
    ("whiteout-through-symlink", [tar(S("l", "../outside"), F("l/.wh.sentinel"))], UnsafeArchive,
     "'l/.wh.sentinel'"),
    ("opaque-through-symlink", [tar(S("l", "../outside"), F("l/.wh..wh..opq"))], UnsafeArchive,
     "'l/.wh..wh..opq'"),
    ("device-through-symlink", [tar(S("l", "../outside"), C("l/null"))], UnsafeArchive, "'l/null'"),
    ("fifo-through-symlink", [tar(S("l", "../../"), P("l/fifo"))], UnsafeArchive, "'l/fifo'"),
    ("huge-size", [_patched_size(b"77777777777\0")], InvalidLayer, "'f'"),
    ("negative-size", [_patched_size(b"\xff" * 12)], InvalidLayer, "of 'f' at offset 0: negative size"),
]


def outside_state(base: Path) -> dict:
    """Every path under tmp_path except the rootfs, with type, size, mtime and content hash."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(base):
        if Path(dirpath) == base:
            dirnames[:] = [d for d in dirnames if d != "root"]
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            digest = hashlib.sha256(Path(p).read_bytes()).hexdigest() if os.path.isfile(p) else None
            state[os.path.relpath(p, base)] = (st.st_mode, st.st_size, st.st_mtime_ns, st.st_nlink, digest)
    st = os.lstat(base)
    state["."] = (st.st_mode, st.st_mtime_ns)
    return state


@pytest.fixture
def arena(tmp_path: Path) -> Path:
    (tmp_path / "root").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "sentinel").write_bytes(SENTINEL)
    return tmp_path


def _host_untouched() -> None:
    assert not os.path.lexists(f"/etc/{HOST_NAME}") and not os.path.lexists(f"/{HOST_NAME}")


@pytest.mark.parametrize("workers", [2, 0], ids=["writer-threads", "inline"])
@pytest.mark.parametrize("case", REFUSED, ids=[c[0] for c in REFUSED])
def test_hostile_tar_is_refused(arena: Path, case, workers: int) -> None:
    _, layers, error, fragment = case
    passwd = os.stat("/etc/passwd")
    before = outside_state(arena)
    with pytest.raises(error) as info:
        for layer in layers:
            apply_layer(io.BytesIO(layer), arena / "root", workers=workers)
    message = str(info.value)
    assert "\n" not in message and fragment in message, message
    assert isinstance(info.value, OCIError)
    assert outside_state(arena) == before
    assert (arena / "outside" / "sentinel").read_bytes() == SENTINEL
    assert os.stat("/etc/passwd").st_nlink == passwd.st_nlink
    _host_untouched()


def test_refusal_suite_is_large_enough() -> None:
    assert sum(1 for c in REFUSED if c[2] is UnsafeArchive) >= 12


# Documented containment rather than refusal: absolute names and absolute symlinks are rooted at the rootfs.
def test_absolute_path_is_taken_relative_to_root(arena: Path) -> None:
    before = outside_state(arena)
    apply_layer(io.BytesIO(tar(F(f"/{HOST_NAME}/x"), F(f"/etc/{HOST_NAME}"))), arena / "root")
    assert (arena / "root" / HOST_NAME / "x").read_bytes() == b"pwned\n"
    assert (arena / "root" / "etc" / HOST_NAME).is_file()
    assert outside_state(arena) == before
    _host_untouched()


def test_symlink_to_root_stays_in_root(arena: Path) -> None:
    before = outside_state(arena)
    apply_layer(io.BytesIO(tar(S("l", "/"), F(f"l/etc/{HOST_NAME}"), S("dev", "/"), C("dev/null"))),
                arena / "root")
    assert (arena / "root" / "etc" / HOST_NAME).read_bytes() == b"pwned\n"
    assert (arena / "root" / "null").is_char_device()
    assert outside_state(arena) == before
    _host_untouched()


def test_existing_symlink_is_replaced_not_followed(arena: Path) -> None:
    before = outside_state(arena)
    root = arena / "root"
    apply_layer(io.BytesIO(tar(S("victim", "../outside/sentinel"), S("vdir", "../outside"))), root)
    apply_layer(io.BytesIO(tar(F("victim"), D("vdir"), F("vdir/new"))), root)
    assert not (root / "victim").is_symlink() and (root / "victim").read_bytes() == b"pwned\n"
    assert not (root / "vdir").is_symlink() and (root / "vdir" / "new").is_file()
    assert outside_state(arena) == before


def test_hardlink_to_absolute_name_links_inside_root(arena: Path) -> None:
    root = arena / "root"
    apply_layer(io.BytesIO(tar(D("etc"), F("etc/passwd", b"image passwd\n"), H("h", "/etc/passwd"))), root)
    assert os.stat(root / "h").st_ino == os.stat(root / "etc" / "passwd").st_ino
    assert os.stat(root / "h").st_ino != os.stat("/etc/passwd").st_ino
    assert (root / "h").read_bytes() == b"image passwd\n"


def test_relative_symlink_inside_root_is_followed(arena: Path) -> None:
    root = arena / "root"
    # merged-/usr style: lib -> usr/lib, then an entry written through it
    apply_layer(io.BytesIO(tar(D("usr"), D("usr/lib"), S("lib", "usr/lib"), F("lib/libx.so", b"so"))), root)
    assert (root / "usr" / "lib" / "libx.so").read_bytes() == b"so" and (root / "lib").is_symlink()


def test_cached_path_through_replaced_symlink_is_not_reused(arena: Path) -> None:
    root = arena / "root"
    layer = tar(D("d"), S("l", "d"), F("l/x", b"via link"), F("l", b"now a file"), F("l/y"))
    with pytest.raises(InvalidLayer, match="'l/y': l is not a directory"):
        apply_layer(io.BytesIO(layer), root)
    assert (root / "d" / "x").read_bytes() == b"via link" and not (root / "d" / "y").exists()
    assert (root / "l").read_bytes() == b"now a file"


def test_very_deep_path_is_handled_without_recursion_errors(arena: Path) -> None:
    from pyoci.layer.apply import _rmtree

    deep = "/".join(["a"] * 1500)
    root = arena / "root"
    try:
        apply_layer(io.BytesIO(tar(F(deep + "/leaf", b"deep"))), root)
        assert (root / deep / "leaf").read_bytes() == b"deep"
        out = io.BytesIO()
        create_layer(root, out, "")  # creating from such a tree does not recurse either
        assert out.getvalue().count(b"ustar\x0000") >= 1501
        apply_layer(io.BytesIO(tar(F(".wh.a"))), root)  # removing it must not recurse either
        assert os.listdir(root) == []
    finally:
        if (root / "a").exists():  # pytest's own cleanup (shutil.rmtree) would hit the recursion limit
            fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
            try:
                _rmtree(b"a", dir_fd=fd)
            finally:
                os.close(fd)
