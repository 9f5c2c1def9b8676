"""Content digests (`sha256:<hex>`, `sha512:<hex>`) and writers that verify them before committing."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from typing import BinaryIO, Iterable

from .errors import DigestMismatch, InvalidDigest

# The image-spec grammar, then the per-algorithm encodings it registers.
_GRAMMAR = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_ENCODED = {"sha256": re.compile(r"^[a-f0-9]{64}$"), "sha512": re.compile(r"^[a-f0-9]{128}$")}
CHUNK = 1 << 20


@dataclass(frozen=True, order=True)
class Digest:
    algorithm: str
    encoded: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.encoded}"

    @classmethod
    def parse(cls, value: "str | Digest") -> "Digest":
        if isinstance(value, Digest):
            return value
        if not isinstance(value, str) or not _GRAMMAR.match(value):
            raise InvalidDigest(f"invalid digest {value!r}: want ALGORITHM:HEX, e.g. sha256:<64 hex digits>")
        algorithm, encoded = value.split(":", 1)
        pattern = _ENCODED.get(algorithm)
        if pattern is None:
            raise InvalidDigest(f"invalid digest {value!r}: unsupported algorithm {algorithm!r} (sha256, sha512)")
        if not pattern.match(encoded):
            raise InvalidDigest(f"invalid digest {value!r}: {algorithm} wants {_hexlen(algorithm)} lower-case hex digits")
        return cls(algorithm, encoded)

    def hasher(self) -> "hashlib._Hash":
        return hashlib.new(self.algorithm)

    @property
    def short(self) -> str:
        return self.encoded[:12]


def _hexlen(algorithm: str) -> int:
    return {"sha256": 64, "sha512": 128}[algorithm]


def parse(value: "str | Digest") -> Digest:
    return Digest.parse(value)


def is_valid(value: str) -> bool:
    try:
        Digest.parse(value)
        return True
    except InvalidDigest:
        return False


def of_bytes(data: bytes, algorithm: str = "sha256") -> Digest:
    return Digest(algorithm, hashlib.new(algorithm, data).hexdigest())


def of_file(path: str | os.PathLike, algorithm: str = "sha256") -> tuple[Digest, int]:
    """Digest and size of a file, read in chunks."""
    h = hashlib.new(algorithm)
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return Digest(algorithm, h.hexdigest()), size


def of_stream(stream: BinaryIO | Iterable[bytes], algorithm: str = "sha256") -> tuple[Digest, int]:
    h = hashlib.new(algorithm)
    size = 0
    chunks = iter(lambda: stream.read(CHUNK), b"") if hasattr(stream, "read") else stream
    for chunk in chunks:
        h.update(chunk)
        size += len(chunk)
    return Digest(algorithm, h.hexdigest()), size


class VerifyingWriter:
    """Write a blob to a temp file beside `dest`; `commit()` renames it there only if digest (and size) match.

    Used as a context manager: leaving the block without commit (or on error) removes the temp file,
    so a blob whose bytes do not match its digest never appears at `dest`.
    """

    def __init__(self, dest: str | os.PathLike, expected: "str | Digest | None" = None,
                 expected_size: int | None = None, algorithm: str = "sha256", resume: bool = False) -> None:
        self.dest = os.fspath(dest)
        self.expected = Digest.parse(expected) if expected is not None else None
        self.expected_size = expected_size
        algo = self.expected.algorithm if self.expected else algorithm
        self._hash = hashlib.new(algo)
        self.size = 0
        os.makedirs(os.path.dirname(self.dest) or ".", exist_ok=True)
        if resume:
            # A stable partial name lets an interrupted download continue where it stopped.
            self.tmp = self.dest + ".partial"
            self._file = open(self.tmp, "ab+")
            self._file.seek(0)
            while chunk := self._file.read(CHUNK):
                self._hash.update(chunk)
                self.size += len(chunk)
        else:
            fd, self.tmp = tempfile.mkstemp(dir=os.path.dirname(self.dest) or ".", prefix=".tmp-blob-")
            self._file = os.fdopen(fd, "wb")
        self._done = False

    def write(self, data: bytes) -> int:
        self._hash.update(data)
        self.size += len(data)
        if self.expected_size is not None and self.size > self.expected_size:
            raise DigestMismatch(f"blob {self.expected or ''} is larger than its announced size {self.expected_size}".replace("  ", " "))
        return self._file.write(data)

    @property
    def digest(self) -> Digest:
        return Digest(self._hash.name, self._hash.hexdigest())

    def verify(self) -> Digest:
        got = self.digest
        if self.expected is not None and got != self.expected:
            raise DigestMismatch(f"digest mismatch: expected {self.expected}, got {got} ({self.size} bytes)")
        if self.expected_size is not None and self.size != self.expected_size:
            raise DigestMismatch(f"size mismatch for {got}: expected {self.expected_size} bytes, got {self.size}")
        return got

    def commit(self, mode: int = 0o644) -> Digest:
        got = self.verify()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.chmod(self.tmp, mode)
        os.replace(self.tmp, self.dest)
        self._done = True
        return got

    def abort(self, keep_partial: bool = False) -> None:
        if self._done:
            return
        self._file.close()
        if not keep_partial:
            try:
                os.unlink(self.tmp)
            except FileNotFoundError:
                pass
        self._done = True

    def __enter__(self) -> "VerifyingWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.abort()
