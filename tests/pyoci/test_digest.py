import hashlib
import io
import os

import pytest

from pyoci import digest
from pyoci.digest import Digest, VerifyingWriter
from pyoci.errors import DigestMismatch, InvalidDigest
from pyoci.fsutil import atomic_open, atomic_write

HELLO = hashlib.sha256(b"hello").hexdigest()


@pytest.mark.parametrize("value", [
    "sha256:" + HELLO,
    "sha512:" + hashlib.sha512(b"x").hexdigest(),
])
def test_parse_valid(value):
    d = Digest.parse(value)
    assert str(d) == value
    assert digest.is_valid(value)


@pytest.mark.parametrize("value,why", [
    ("", "want ALGORITHM:HEX"),
    ("sha256", "want ALGORITHM:HEX"),
    ("sha256:", "want ALGORITHM:HEX"),
    (":" + HELLO, "want ALGORITHM:HEX"),
    ("sha256:" + HELLO[:-1], "64 lower-case hex"),
    ("sha256:" + HELLO.upper(), "64 lower-case hex"),
    ("sha256:" + HELLO + "0", "64 lower-case hex"),
    ("sha512:" + HELLO, "128 lower-case hex"),
    ("md5:d41d8cd98f00b204e9800998ecf8427e", "unsupported algorithm"),
    ("SHA256:" + HELLO, "want ALGORITHM:HEX"),
    ("sha256:" + "g" * 64, "64 lower-case hex"),
])
def test_parse_invalid(value, why):
    with pytest.raises(InvalidDigest, match=why):
        Digest.parse(value)
    assert not digest.is_valid(value)


def test_of_bytes_file_stream(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"hello")
    assert str(digest.of_bytes(b"hello")) == "sha256:" + HELLO
    assert digest.of_file(p) == (Digest("sha256", HELLO), 5)
    assert digest.of_stream(io.BytesIO(b"hello")) == (Digest("sha256", HELLO), 5)
    assert digest.of_stream([b"he", b"llo"]) == (Digest("sha256", HELLO), 5)


def test_verifying_writer_commits_only_matching(tmp_path):
    dest = tmp_path / "blobs" / "sha256" / HELLO
    with VerifyingWriter(dest, "sha256:" + HELLO, 5) as w:
        w.write(b"hel")
        w.write(b"lo")
        assert w.commit() == Digest("sha256", HELLO)
    assert dest.read_bytes() == b"hello"
    assert os.listdir(dest.parent) == [HELLO]


def test_verifying_writer_refuses_tampered(tmp_path):
    dest = tmp_path / "blob"
    with pytest.raises(DigestMismatch, match="expected sha256:" + HELLO):
        with VerifyingWriter(dest, "sha256:" + HELLO) as w:
            w.write(b"jello")
            w.commit()
    assert os.listdir(tmp_path) == []


def test_verifying_writer_refuses_oversize(tmp_path):
    with pytest.raises(DigestMismatch, match="larger than its announced size 3"):
        with VerifyingWriter(tmp_path / "blob", "sha256:" + HELLO, 3) as w:
            w.write(b"hello")
    with pytest.raises(DigestMismatch, match="size mismatch"):
        with VerifyingWriter(tmp_path / "blob", "sha256:" + HELLO, 6) as w:
            w.write(b"hello")
            w.commit()
    assert os.listdir(tmp_path) == []


def test_verifying_writer_resumes_partial(tmp_path):
    dest = tmp_path / "blob"
    w = VerifyingWriter(dest, "sha256:" + HELLO, resume=True)
    w.write(b"he")
    w.abort(keep_partial=True)
    assert (tmp_path / "blob.partial").read_bytes() == b"he"
    w = VerifyingWriter(dest, "sha256:" + HELLO, resume=True)
    assert w.size == 2
    w.write(b"llo")
    w.commit()
    assert dest.read_bytes() == b"hello"
    assert not (tmp_path / "blob.partial").exists()


def test_atomic_write_leaves_old_content_on_error(tmp_path):
    p = tmp_path / "index.json"
    atomic_write(p, b"old")
    with pytest.raises(RuntimeError):
        with atomic_open(p) as f:
            f.write(b"new, half")
            raise RuntimeError("crash")
    assert p.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["index.json"]
    atomic_write(p, b"new", mode=0o600)
    assert p.read_bytes() == b"new" and (p.stat().st_mode & 0o777) == 0o600
