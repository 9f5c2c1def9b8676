"""Compressed layer streams: gzip (fastest binding present), zstd, or none, with digests on both sides.

A layer has two digests and they must never be confused:
  * ``digest``  -- sha256 of the blob as stored and transferred (the *compressed* bytes); goes in the manifest;
  * ``diff_id`` -- sha256 of the *uncompressed* tar; goes in the config's ``rootfs.diff_ids``.
For an uncompressed layer both are equal. The writer and reader here compute both in one pass.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from typing import BinaryIO

from ..digest import Digest
from ..errors import OCIError
from .errors import CompressionError

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
COMPRESSIONS = ("gzip", "zstd", "")
BLOCK = 1 << 20  # compression block size; also the chunk the tar writer feeds, which keeps output deterministic


def _gzip_backend() -> str:
    """Name of the fastest gzip implementation importable here (isal > zlib-ng > stdlib)."""
    for name in ("isal", "zlib_ng"):
        try:
            __import__(name)
            return name
        except ImportError:
            continue
    return "zlib"


GZIP_BACKEND = _gzip_backend()


def check_compression(compression: str) -> str:
    if compression not in COMPRESSIONS:
        raise CompressionError(f"unsupported layer compression {compression!r}: want 'gzip', 'zstd' or ''")
    return compression


def detect(head: bytes) -> str:
    """'gzip', 'zstd' or '' (plain tar) from the first bytes of a layer blob."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return ""


class _HashingSink(io.RawIOBase):
    """Write-through file object that hashes and counts what passes (the compressed side)."""

    def __init__(self, out: BinaryIO, algorithm: str) -> None:
        self._out = out
        self.hash = hashlib.new(algorithm)
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        self.hash.update(data)
        n = len(data) if not isinstance(data, memoryview) else data.nbytes
        self.size += n
        self._out.write(data)
        return n

    def flush(self) -> None:
        self._out.flush()


@dataclass(frozen=True)
class StreamDigests:
    digest: Digest | None  # of the compressed bytes (the blob); None if the reader was told not to hash it
    diff_id: Digest  # of the uncompressed tar
    size: int        # compressed size in bytes (the blob's size)
    uncompressed_size: int


class CompressingWriter:
    """Compress into `out` while hashing the uncompressed input (diff_id) and the compressed output (digest).

    Gzip output is deterministic: fixed header (mtime 0, no name) and, with isal, independent 1 MiB blocks
    that do not depend on the thread count. Call `close()` to get the digests; `out` itself is not closed.
    """

    def __init__(self, out: BinaryIO, compression: str = "gzip", *, level: int | None = None,
                 threads: int = 0, algorithm: str = "sha256") -> None:
        self.compression = check_compression(compression)
        self._sink = _HashingSink(out, algorithm)
        self._diff = hashlib.new(algorithm)
        self._usize = 0
        self._algorithm = algorithm
        threads = threads or min(4, len(os.sched_getaffinity(0)))
        self._stream: BinaryIO
        if compression == "gzip":
            self._stream = _open_gzip_writer(self._sink, level, threads)
        elif compression == "zstd":
            import zstandard

            # threads>=1 gives the same bytes for any worker count (zstd MT format), so digests are stable.
            cctx = zstandard.ZstdCompressor(level=3 if level is None else level, threads=threads)
            self._stream = cctx.stream_writer(self._sink, closefd=False)  # type: ignore[assignment]
        else:
            self._stream = self._sink  # type: ignore[assignment]
        self._result: StreamDigests | None = None

    def write(self, data) -> int:
        self._diff.update(data)
        n = len(data) if not isinstance(data, memoryview) else data.nbytes
        self._usize += n
        self._stream.write(data)
        return n

    def close(self) -> StreamDigests:
        if self._result is None:
            if self._stream is not self._sink:
                self._stream.close()
            self._sink.flush()
            diff_id = Digest(self._algorithm, self._diff.hexdigest())
            digest = Digest(self._algorithm, self._sink.hash.hexdigest()) if self.compression else diff_id
            self._result = StreamDigests(digest, diff_id, self._sink.size, self._usize)
        return self._result

    def abort(self) -> None:
        """Stop compression threads without producing a result (after an error)."""
        try:
            if self._stream is not self._sink:
                self._stream.close()
        except Exception:  # the caller is already handling the original error
            pass


def _open_gzip_writer(sink: BinaryIO, level: int | None, threads: int) -> BinaryIO:
    if GZIP_BACKEND == "isal":
        from isal import igzip_threaded

        # isal levels are 0..3; 2 is its default (ratio close to zlib -6, several times faster).
        return igzip_threaded.open(sink, "wb", compresslevel=2 if level is None else min(level, 3),
                                   threads=threads, block_size=BLOCK)
    if GZIP_BACKEND == "zlib_ng":
        from zlib_ng import gzip_ng_threaded

        return gzip_ng_threaded.open(sink, "wb", compresslevel=1 if level is None else level, threads=threads)
    import gzip

    return gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=6 if level is None else level, mtime=0,
                         filename="")


class _NoHash:
    """Stands in for the blob hash when the caller verified the blob already (saves a sha256 pass)."""

    def update(self, data) -> None:
        pass

    def hexdigest(self) -> str:
        return ""


class _PrefixedReader(io.RawIOBase):
    """Give back bytes already read to sniff the magic, then continue with the stream; hashes everything read."""

    def __init__(self, head: bytes, stream: BinaryIO, algorithm: str, hashing: bool = True) -> None:
        self._head = head
        self._stream = stream
        self.hash = hashlib.new(algorithm) if hashing else _NoHash()
        self.hash.update(head)
        self.size = len(head)

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(b), len(self._head))
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._stream.read(len(b))
        if not data:
            return 0
        n = len(data)
        b[:n] = data
        self.hash.update(data)
        self.size += n
        return n

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n >= 0:
                data, self._head = self._head[:n], self._head[n:]
                return data
            head, self._head = self._head, b""
            return head + self.read()
        data = self._stream.read(n)
        self.hash.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        """Read the blob to its end so that its digest covers every byte."""
        while self.read(BLOCK):
            pass


class DecompressingReader:
    """Read a layer blob as an uncompressed tar stream; `.digest` and `.diff_id` are known once drained.

    `read()` returns decompressed bytes and feeds the diff_id hash; the compressed bytes feed the digest.
    Call `finish()` after the tar is consumed: it reads both sides to their ends and returns the digests.
    """

    def __init__(self, stream: BinaryIO, compression: str | None = None, *, algorithm: str = "sha256",
                 digest_algorithm: str | None = None, threads: int = 1, hash_blob: bool = True) -> None:
        head = _read_exactly(stream, 4)
        found = detect(head)
        if compression is None or compression == "auto":
            compression = found
        check_compression(compression)
        if compression != found:
            want = compression or "an uncompressed tar"
            raise CompressionError(f"layer blob is not {want}: it starts with {head.hex() or 'nothing'}"
                                   f" ({found or 'no compression magic'})")
        self.compression = compression
        self._digest_algorithm = digest_algorithm or algorithm  # blob digest and diff_id may differ
        self._raw = _PrefixedReader(head, stream, self._digest_algorithm, hash_blob)
        self._hash_blob = hash_blob
        self._algorithm = algorithm
        self._diff = hashlib.new(algorithm)
        self.uncompressed_size = 0
        self._stream: BinaryIO
        if compression == "gzip":
            self._stream = _open_gzip_reader(self._raw, threads)
        elif compression == "zstd":
            import zstandard

            self._stream = zstandard.ZstdDecompressor().stream_reader(  # type: ignore[assignment]
                self._raw, read_across_frames=True, closefd=False)
        else:
            self._stream = self._raw  # type: ignore[assignment]

    def read(self, n: int) -> bytes:
        try:
            data = self._stream.read(n)
        except OCIError:
            raise  # e.g. a registry stream's own error
        except Exception as e:  # gzip/isal OSError, EOFError, zstandard.ZstdError, ...
            raise CompressionError(f"corrupt {self.compression or 'tar'} layer stream: {e}") from None
        if data:
            self._diff.update(data)
            self.uncompressed_size += len(data)
        return data

    def finish(self) -> StreamDigests:
        while self.read(BLOCK):
            pass
        self._raw.drain()
        self.close()
        diff_id = Digest(self._algorithm, self._diff.hexdigest())
        # without hash_blob the blob digest is unknown: None (callers that asked not to hash never read it)
        digest = Digest(self._digest_algorithm, self._raw.hash.hexdigest()) if self._hash_blob else None
        return StreamDigests(digest, diff_id, self._raw.size, self.uncompressed_size)

    def close(self) -> None:
        if self._stream is not self._raw:
            try:
                self._stream.close()
            except Exception:  # closing after a corrupt stream; the original error matters
                pass


def _open_gzip_reader(raw: BinaryIO, threads: int) -> BinaryIO:
    if GZIP_BACKEND == "isal":
        from isal import igzip, igzip_threaded

        # A decompression thread overlaps inflate with the caller's tar parsing and file writes.
        if threads > 0:
            return igzip_threaded.open(raw, "rb", threads=1)
        return igzip.IGzipFile(fileobj=raw, mode="rb")
    if GZIP_BACKEND == "zlib_ng":
        from zlib_ng import gzip_ng

        return gzip_ng.GzipFile(fileobj=raw, mode="rb")
    import gzip

    return gzip.GzipFile(fileobj=raw, mode="rb")


def _read_exactly(stream: BinaryIO, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def open_writer(out: BinaryIO, compression: str = "gzip", **kw) -> CompressingWriter:
    return CompressingWriter(out, compression, **kw)


def open_reader(stream: BinaryIO, compression: str | None = None, **kw) -> DecompressingReader:
    return DecompressingReader(stream, compression, **kw)
