"""OCI image layout directories: blobs, index.json and its tags, walking, garbage collection, validation.

Works on plain dicts (descriptors as the JSON objects they are) and bytes; pyoci.manifest objects are
accepted wherever a descriptor or document is (anything with to_dict()/to_json()).

Concurrency, with two flocks on directories (no lock file, so nothing stray ends up in a layout or in
an archive of it):
- the blob lock on `blobs/` (`Layout.lock()`): held shared by `put_blob`, `copy_from`, `tag` and by any
  caller that writes blobs and then tags them (`with layout.lock(exclusive=False): ...`), exclusive
  by `gc` -- so gc never removes a temp file being written nor a blob about to be tagged;
- the index lock on the layout directory: every change to index.json is a read-modify-write under it,
  so two taggers never lose each other's tags. Always taken after the blob lock, never before.
Both are thread-safe: one Layout may be shared by threads (shared holds coexist, exclusive waits for
the other threads), and re-entrant within a thread.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import re
import threading
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator

from . import mediatypes as mt
from . import platform as platforms
from . import schema
from .digest import CHUNK, Digest, VerifyingWriter
from .errors import DigestMismatch, InvalidDigest, InvalidDocument, InvalidReference, NotFound, OCIError
from .fsutil import atomic_write

REF_NAME = "org.opencontainers.image.ref.name"
LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
BLOBS_DIR = "blobs"

# The image-spec grammar for ref.name values (umoci enforces the same one).
_COMPONENT = r"[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*"
_REF_NAME_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")

# Key order of Go's image-spec structs, which umoci and skopeo serialise: keeps our JSON familiar.
_DESCRIPTOR_ORDER = ("mediaType", "digest", "size", "urls", "annotations", "data", "platform", "artifactType")
_INDEX_ORDER = ("schemaVersion", "mediaType", "artifactType", "manifests", "subject", "annotations")

_TEMP_PREFIXES = (".tmp-",)
_TEMP_SUFFIXES = (".partial",)


def dumps(obj: Any) -> bytes:
    """Compact JSON as the Go tools write it (no spaces, no trailing newline)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def as_dict(descriptor: Any) -> dict:
    """A descriptor as a plain dict, from a dict or from an object with to_dict()/to_json()."""
    if isinstance(descriptor, dict):
        return dict(descriptor)
    for attr in ("to_dict", "to_json"):
        fn = getattr(descriptor, attr, None)
        if fn is not None:
            value = fn()
            if isinstance(value, (bytes, str)):
                value = json.loads(value)
            return dict(value)
    raise TypeError(f"not a descriptor: {descriptor!r}")


def ordered_descriptor(d: dict) -> dict:
    out = {k: d[k] for k in _DESCRIPTOR_ORDER if k in d}
    out.update((k, v) for k, v in d.items() if k not in out)
    return out


def check_ref_name(name: str) -> str:
    if not isinstance(name, str) or not _REF_NAME_RE.match(name):
        raise InvalidReference(f"invalid tag {name!r}: want components of [A-Za-z0-9] joined by - . _ : @ + -- or /")
    return name


def _want_platform(value: Any) -> Any:
    """None (this machine), 'os/arch[/variant]', a platform dict or a pyoci.platform.Platform."""
    if isinstance(value, dict):
        return platforms.Platform.from_dict(value)
    return value


@dataclass(frozen=True)
class Blob:
    """What put_blob stored: enough to make a descriptor."""
    digest: Digest
    size: int

    def descriptor(self, media_type: str, **fields: Any) -> dict:
        return ordered_descriptor({"mediaType": media_type, "digest": str(self.digest), "size": self.size, **fields})


@dataclass
class GCResult:
    blobs: list[str] = field(default_factory=list)        # digests of the blobs removed
    temp_files: list[str] = field(default_factory=list)   # stray temp files, relative to the layout
    bytes_freed: int = 0


class VerifyingReader(io.RawIOBase):
    """Reads a blob and raises DigestMismatch at EOF (or as soon as it is too long) if it is not what was announced."""

    def __init__(self, f: BinaryIO, expected: Digest, expected_size: int | None = None, name: str = "") -> None:
        super().__init__()
        self._f = f
        self.expected = expected
        self.expected_size = expected_size
        self.name = name
        self._hash = expected.hasher()
        self.size = 0
        self._checked = False

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = self._f.readinto(b)
        if n:
            self._hash.update(memoryview(b)[:n])
            self.size += n
            if self.expected_size is not None and self.size > self.expected_size:
                raise DigestMismatch(f"{self.name or self.expected}: longer than its announced size {self.expected_size}")
        elif len(b):
            self.check()
        return n or 0

    def readall(self) -> bytes:
        chunks = []
        while chunk := self.read(CHUNK):
            chunks.append(chunk)
        return b"".join(chunks)

    def check(self) -> None:
        if self._checked:
            return
        got = Digest(self.expected.algorithm, self._hash.hexdigest())
        if got != self.expected:
            raise DigestMismatch(f"{self.name or 'blob'}: digest mismatch: expected {self.expected}, got {got}")
        if self.expected_size is not None and self.size != self.expected_size:
            raise DigestMismatch(f"{self.name or 'blob'}: size mismatch: expected {self.expected_size} bytes, got {self.size}")
        self._checked = True

    def close(self) -> None:
        try:
            self._f.close()
        finally:
            super().close()


def schema_errors(doc: Any, name: str) -> list[str]:
    return schema.errors(doc, name)


def schema_validate(doc: Any, name: str, source: str) -> None:
    problems = schema_errors(doc, name)
    if problems:
        raise InvalidDocument(f"{source}: invalid {name}: {problems[0]}")


def _load_json(data: bytes, where: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidDocument(f"{where}: not valid JSON ({e})") from None


def check_layout_file(data: bytes, where: str) -> dict:
    doc = _load_json(data, where)
    if not isinstance(doc, dict):
        raise InvalidDocument(f"{where}: want a JSON object")
    version = doc.get("imageLayoutVersion")
    if isinstance(version, str) and version != mt.OCI_LAYOUT_VERSION:
        raise InvalidDocument(f"{where}: unsupported imageLayoutVersion {version!r} (want {mt.OCI_LAYOUT_VERSION!r})")
    schema_validate(doc, "layout", where)
    return doc


def check_index(data: bytes, where: str) -> dict:
    doc = _load_json(data, where)
    if not isinstance(doc, dict):
        raise InvalidDocument(f"{where}: want a JSON object")
    if doc.get("manifests", []) is None:
        doc["manifests"] = []  # umoci 0.4 writes null for an empty layout
    doc.setdefault("manifests", [])
    if doc.get("schemaVersion") != 2:
        raise InvalidDocument(f"{where}: schemaVersion must be 2, got {doc.get('schemaVersion')!r}")
    schema_validate(doc, "index", where)
    if doc.get("mediaType", mt.OCI_INDEX) != mt.OCI_INDEX:
        raise InvalidDocument(f"{where}: mediaType must be {mt.OCI_INDEX}, got {doc['mediaType']!r}")
    return doc


def children(desc: dict, doc: dict) -> list[dict]:
    """The descriptors a manifest or index document points to (config, layers, manifests, subject)."""
    out: list[dict] = []
    media_type = desc.get("mediaType", "")
    if media_type in mt.INDEX_TYPES:
        out.extend(doc.get("manifests") or [])
    elif media_type in mt.MANIFEST_TYPES:
        if doc.get("config"):
            out.append(doc["config"])
        out.extend(doc.get("layers") or [])
    if doc.get("subject"):
        out.append(doc["subject"])
    return [d for d in out if isinstance(d, dict)]


class BlobSource:
    """The read side shared by a layout directory and an oci-archive read in place.

    Subclasses provide `_index_bytes()`, `has_blob(digest)`, `blob_size(digest)` and `_open_raw(digest)`.
    """

    where: str = ""

    def _index_bytes(self) -> bytes:
        raise NotImplementedError

    def has_blob(self, digest: "str | Digest") -> bool:
        raise NotImplementedError

    def blob_size(self, digest: "str | Digest") -> int:
        raise NotImplementedError

    def _open_raw(self, digest: Digest) -> BinaryIO:
        raise NotImplementedError

    def index(self) -> dict:
        """index.json, read afresh (another process may have changed it); `manifests` is always a list."""
        return check_index(self._index_bytes(), f"{self.where}/{INDEX_FILE}")

    def open_blob(self, digest: "str | Digest", verify: bool = True, size: int | None = None) -> BinaryIO:
        """A reader of the blob; with verify (the default) it raises DigestMismatch at EOF if the bytes are wrong."""
        d = Digest.parse(digest)
        f = self._open_raw(d)
        if not verify:
            return f
        return VerifyingReader(f, d, size, name=f"{self.where}/{BLOBS_DIR}/{d.algorithm}/{d.encoded}")

    def read_blob(self, digest: "str | Digest", size: int | None = None) -> bytes:
        with self.open_blob(digest, verify=True, size=size) as f:
            return f.read()

    def read_json(self, desc: dict) -> dict:
        where = f"{self.where}/{BLOBS_DIR}/{str(desc['digest']).replace(':', '/', 1)}"
        doc = _load_json(self.read_blob(desc["digest"], desc.get("size")), where)
        if not isinstance(doc, dict):
            raise InvalidDocument(f"{where}: want a JSON object")
        return doc

    def tags(self) -> list[str]:
        return [m["annotations"][REF_NAME] for m in self.index()["manifests"]
                if isinstance(m.get("annotations"), dict) and REF_NAME in m["annotations"]]

    def resolve(self, tag: str) -> dict:
        """The index.json descriptor tagged `tag`."""
        found = [m for m in self.index()["manifests"] if (m.get("annotations") or {}).get(REF_NAME) == tag]
        if not found:
            raise NotFound(f"{self.where}/{INDEX_FILE}: no tag {tag!r}")
        if len(found) > 1:
            raise InvalidDocument(f"{self.where}/{INDEX_FILE}: tag {tag!r} names {len(found)} descriptors")
        return dict(found[0])

    def _descriptor_for(self, ref: "str | dict") -> dict:
        if isinstance(ref, dict):
            return dict(ref)
        try:
            return self.resolve(ref)
        except NotFound:
            try:
                d = Digest.parse(ref)
            except InvalidDigest:
                raise NotFound(f"{self.where}/{INDEX_FILE}: no tag {ref!r}") from None
        for m in self.index()["manifests"]:
            if m.get("digest") == str(d):
                return dict(m)
        if not self.has_blob(d):
            raise NotFound(f"{self.where}: no blob {d}")
        doc = _load_json(self.read_blob(d), f"{self.where}/{BLOBS_DIR}/{d.algorithm}/{d.encoded}")
        media_type = doc.get("mediaType") or (mt.OCI_INDEX if "manifests" in doc else mt.OCI_MANIFEST)
        return {"mediaType": media_type, "digest": str(d), "size": self.blob_size(d)}

    def manifest_for(self, ref: "str | dict", platform: Any = None) -> tuple[dict, dict]:
        """(descriptor, manifest) of a tag, digest or descriptor, following indexes to `platform`'s manifest.

        platform: 'os/arch[/variant]', a dict or a pyoci.platform.Platform; None means this machine's.
        Selection is pyoci.platform.select's (containerd's rules: arm/v7 takes v6 if need be, entries
        without a platform come last).
        """
        desc = self._descriptor_for(ref)
        want = _want_platform(platform)
        for _ in range(8):  # nested indexes, bounded
            doc = self.read_json(desc)
            if desc.get("mediaType") not in mt.INDEX_TYPES:
                if desc.get("mediaType") not in mt.MANIFEST_TYPES:
                    raise InvalidDocument(f"{self.where}: {desc['digest']} is a {desc.get('mediaType')!r}, not a manifest")
                return desc, doc
            entries = [m for m in doc.get("manifests") or [] if m.get("mediaType") in mt.MANIFEST_TYPES + mt.INDEX_TYPES]
            try:
                desc = dict(platforms.select(entries, want))
            except NotFound as e:
                raise NotFound(f"{self.where}: index {desc['digest']}: {e}") from None
        raise InvalidDocument(f"{self.where}: indexes nested too deeply under {ref!r}")

    def walk(self, descriptor: Any, missing_ok: bool = False) -> Iterator[dict]:
        """Every descriptor reachable from `descriptor` (itself first), each digest once.

        Manifests and indexes are read (and verified) to find their children; a missing one raises
        NotFound unless missing_ok. Layers and configs are not read.
        """
        seen: set[str] = set()
        stack = [as_dict(descriptor)]
        while stack:
            desc = stack.pop()
            dg = desc.get("digest")
            if not isinstance(dg, str) or dg in seen:
                continue
            seen.add(dg)
            yield desc
            if desc.get("mediaType") not in mt.INDEX_TYPES + mt.MANIFEST_TYPES:
                continue
            if not self.has_blob(dg):
                if missing_ok:
                    continue
                raise NotFound(f"{self.where}: manifest {dg} is referenced but not in {BLOBS_DIR}/")
            stack.extend(reversed(children(desc, self.read_json(desc))))

    def reachable(self, roots: Iterable[dict] | None = None, missing_ok: bool = True) -> dict[str, dict]:
        """digest -> descriptor of everything reachable from `roots` (default: all of index.json)."""
        out: dict[str, dict] = {}
        for root in self.index()["manifests"] if roots is None else roots:
            for d in self.walk(root, missing_ok=missing_ok):
                out.setdefault(d["digest"], d)
        return out

    def problems(self, verify_digests: bool = True) -> list[str]:
        """Everything wrong with the content: missing or mismatching blobs, documents failing the schemas."""
        out: list[str] = []
        try:
            index = self.index()
        except OCIError as e:
            return [str(e)]
        seen: set[str] = set()
        stack = [dict(m) for m in reversed(index["manifests"])]  # popped in index order
        while stack:
            desc = stack.pop()
            dg = desc.get("digest", "")
            if dg in seen:
                continue
            seen.add(dg)
            label = f"{self.where}: {desc.get('mediaType', '?')} {dg}"
            if not self.has_blob(dg):
                if not desc.get("urls"):  # foreign layers may live elsewhere
                    out.append(f"{label}: blob missing")
                continue
            size = self.blob_size(dg)
            if size != desc.get("size"):
                out.append(f"{label}: size {size} on disk, descriptor says {desc.get('size')}")
                continue
            media_type = desc.get("mediaType")
            is_doc = media_type in mt.INDEX_TYPES + mt.MANIFEST_TYPES + mt.CONFIG_TYPES
            try:
                if is_doc:
                    doc = self.read_json(desc)
                elif verify_digests:
                    with self.open_blob(dg, size=desc.get("size")) as f:
                        while f.read(CHUNK):
                            pass
                    continue
                else:
                    continue
            except OCIError as e:
                out.append(str(e))
                continue
            name = {mt.OCI_INDEX: "index", mt.OCI_MANIFEST: "manifest", mt.OCI_CONFIG: "config"}.get(media_type)
            if name:
                out.extend(f"{label}: {p}" for p in schema_errors(doc, name))
            if media_type in mt.INDEX_TYPES + mt.MANIFEST_TYPES and doc.get("mediaType", media_type) != media_type:
                out.append(f"{label}: document says mediaType {doc.get('mediaType')!r}")
            stack.extend(reversed(children(desc, doc)))
        return out

    def validate(self, verify_digests: bool = True) -> None:
        """Raise InvalidDocument (or DigestMismatch) naming the first problem found."""
        found = self.problems(verify_digests)
        if found:
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            raise InvalidDocument(found[0] + more)


class _DirLock:
    """flock on a directory, shared by the threads of this process and re-entrant within a thread.

    One flock (one fd) stands for every holder in the process: a reader/writer lock over threads,
    guarded by a condition variable, counts who holds it shared and who exclusive; the fd is opened
    with the first holder and closed (releasing the flock) with the last. A thread holding it shared
    that asks for it exclusive waits for the other threads' shared holds to end, then upgrades the
    flock (flock upgrades are not atomic across processes, as before). Two threads upgrading at once
    would wait on each other: writers (gc) take it exclusive without holding it shared first.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cond = threading.Condition(threading.Lock())
        self._fd: int | None = None
        self._mode = 0  # flock mode held on _fd
        self._shared: dict[int, int] = {}  # thread id -> shared hold depth
        self._owner: int | None = None  # thread holding it exclusive
        self._depth = 0  # exclusive hold depth of _owner

    def _others_shared(self, me: int) -> bool:
        return any(n for t, n in self._shared.items() if t != me)

    def _flock(self, mode: int) -> None:
        if self._fd is None:
            self.path.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(self._fd, mode)
        except BaseException:
            if not self._shared and self._owner is None:
                self._close()
            raise
        self._mode = mode

    def _close(self) -> None:
        if self._fd is not None:
            fd, self._fd, self._mode = self._fd, None, 0
            os.close(fd)  # releases the flock

    @contextmanager
    def hold(self, exclusive: bool) -> Iterator[None]:
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                pass  # nested inside our own exclusive hold: nothing to take
            elif exclusive:
                self._cond.wait_for(lambda: self._owner is None and not self._others_shared(me))
                self._flock(fcntl.LOCK_EX)  # take or upgrade (only this thread holds it now)
            else:
                self._cond.wait_for(lambda: self._owner is None)
                if self._fd is None:
                    self._flock(fcntl.LOCK_SH)
            if exclusive or self._owner == me:
                self._owner = me
                self._depth += 1
                mine = "ex"
            else:
                self._shared[me] = self._shared.get(me, 0) + 1
                mine = "sh"
        try:
            yield
        finally:
            with self._cond:
                if mine == "ex":
                    self._depth -= 1
                    if self._depth == 0:
                        self._owner = None
                        if self._shared.get(me):
                            try:
                                fcntl.flock(self._fd, fcntl.LOCK_SH)  # back to our shared hold
                                self._mode = fcntl.LOCK_SH
                            except OSError:
                                pass
                else:
                    self._shared[me] -= 1
                    if not self._shared[me]:
                        del self._shared[me]
                if self._owner is None and not self._shared:
                    self._close()
                self._cond.notify_all()


class Layout(BlobSource):
    """An OCI image layout directory (oci-layout, index.json, blobs/<alg>/<hex>)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.where = str(self.path)
        self._blob_lock = _DirLock(self.path / BLOBS_DIR)
        self._index_lock = _DirLock(self.path)

    # -- creating and opening ---------------------------------------------------------------------------

    @classmethod
    def init(cls, path: str | os.PathLike) -> "Layout":
        """Create an empty layout (or open the one already there)."""
        p = Path(path)
        if (p / LAYOUT_FILE).exists():
            return cls.open(p)
        (p / BLOBS_DIR / "sha256").mkdir(parents=True, exist_ok=True)
        layout = cls(p)
        with layout._index_lock.hold(True):
            if not (p / INDEX_FILE).exists():
                atomic_write(p / INDEX_FILE, dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}))
            # oci-layout last: its presence marks a complete layout.
            atomic_write(p / LAYOUT_FILE, dumps({"imageLayoutVersion": mt.OCI_LAYOUT_VERSION}))
        return layout

    @classmethod
    def open(cls, path: str | os.PathLike) -> "Layout":
        """Open an existing layout, checking oci-layout and index.json (InvalidDocument names the bad file)."""
        p = Path(path)
        if not p.is_dir():
            raise NotFound(f"{p}: no such image layout directory")
        for name in (LAYOUT_FILE, INDEX_FILE):
            if not (p / name).is_file():
                raise InvalidDocument(f"{p / name}: missing, not an OCI image layout")
        check_layout_file((p / LAYOUT_FILE).read_bytes(), str(p / LAYOUT_FILE))
        layout = cls(p)
        layout.index()
        return layout

    # -- locking ----------------------------------------------------------------------------------------

    def lock(self, exclusive: bool = True) -> AbstractContextManager[None]:
        """The blob lock: hold it shared around writing blobs and tagging them, so that a concurrent
        gc (which holds it exclusive) cannot remove blobs not yet referenced. Re-entrant."""
        return self._blob_lock.hold(exclusive)

    # -- blobs ------------------------------------------------------------------------------------------

    def blob_path(self, digest: "str | Digest") -> Path:
        d = Digest.parse(digest)  # validated: no traversal through the hex part
        return self.path / BLOBS_DIR / d.algorithm / d.encoded

    def has_blob(self, digest: "str | Digest") -> bool:
        try:
            return self.blob_path(digest).is_file()
        except InvalidDigest:
            return False

    def blob_size(self, digest: "str | Digest") -> int:
        try:
            return self.blob_path(digest).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"{self.where}: no blob {digest}") from None

    def _index_bytes(self) -> bytes:
        try:
            return (self.path / INDEX_FILE).read_bytes()
        except FileNotFoundError:
            raise InvalidDocument(f"{self.path / INDEX_FILE}: missing, not an OCI image layout") from None

    def _open_raw(self, digest: Digest) -> BinaryIO:
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"{self.where}: no blob {digest}") from None

    def put_blob(self, data: "bytes | BinaryIO | Iterable[bytes]", expected_digest: "str | Digest | None" = None,
                 expected_size: int | None = None, algorithm: str = "sha256") -> Blob:
        """Store a blob from bytes, a readable stream or an iterable of chunks; verified before it is committed.

        With expected_digest, a mismatch raises DigestMismatch and nothing appears under blobs/. A blob
        already present under expected_digest is not rewritten (the stream is then not read).
        """
        expected = Digest.parse(expected_digest) if expected_digest is not None else None
        if expected is not None and self.has_blob(expected):
            size = self.blob_size(expected)
            if expected_size is None or size == expected_size:
                return Blob(expected, size)
        algo = expected.algorithm if expected else algorithm
        staging = self.path / BLOBS_DIR / algo / "staging"  # only names the temp file's directory
        with self.lock(exclusive=False):
            with VerifyingWriter(staging, expected, expected_size, algorithm=algo) as w:
                if isinstance(data, (bytes, bytearray, memoryview)):
                    w.write(bytes(data))
                elif hasattr(data, "read"):
                    while chunk := data.read(CHUNK):
                        w.write(chunk)
                else:
                    for chunk in data:
                        w.write(chunk)
                got = w.verify()
                w.dest = os.fspath(self.blob_path(got))
                w.commit(0o644)
                return Blob(got, w.size)

    def put_json(self, obj: Any, media_type: str, **fields: Any) -> dict:
        """Store a JSON document (bytes kept as given; a dict is written compactly; an object by its
        to_json()); returns its descriptor."""
        if isinstance(obj, (bytes, bytearray)):
            data = obj
        elif hasattr(obj, "to_json"):
            data = obj.to_json()
        else:
            data = dumps(obj)
        return self.put_blob(bytes(data)).descriptor(media_type, **fields)

    def copy_from(self, source: BlobSource, descriptor: Any, added: list[str] | None = None) -> dict:
        """Copy everything reachable from `descriptor` in `source` (layout or archive) into this layout.

        Blobs are verified on the way in; leaves are written before the manifests pointing to them.
        The digests of blobs that were not here before are appended to `added` (for a rollback).
        """
        desc = as_dict(descriptor)
        with self.lock(exclusive=False):
            for d in reversed(list(source.walk(desc))):
                if self.has_blob(d["digest"]) or (d.get("urls") and not source.has_blob(d["digest"])):
                    continue
                with source.open_blob(d["digest"], verify=False) as f:
                    self.put_blob(f, d["digest"], d.get("size"))
                if added is not None:
                    added.append(d["digest"])
        return desc

    def remove_blobs(self, digests: Iterable[str]) -> None:
        """Delete blobs (a rollback of a failed import, under the caller's blob lock); absent ones are ignored."""
        for dg in digests:
            try:
                self.blob_path(dg).unlink()
            except FileNotFoundError:
                pass

    # -- index.json -------------------------------------------------------------------------------------

    def write_index(self, index: dict) -> None:
        """Replace index.json atomically (validated first; keys in the order the Go tools write them)."""
        doc = {k: index[k] for k in _INDEX_ORDER if k in index}
        doc.update((k, v) for k, v in index.items() if k not in doc)
        doc["manifests"] = [ordered_descriptor(as_dict(m)) for m in doc.get("manifests") or []]
        schema_validate(doc, "index", str(self.path / INDEX_FILE))
        with self.lock(exclusive=False), self._index_lock.hold(True):
            atomic_write(self.path / INDEX_FILE, dumps(doc))

    @contextmanager
    def edit_index(self) -> Iterator[dict]:
        """Read-modify-write of index.json under the index lock (and the blob lock, shared, so that gc
        sees either the index before or after the change)."""
        with self.lock(exclusive=False), self._index_lock.hold(True):
            index = self.index()
            yield index
            self.write_index(index)

    def tag(self, name: str, descriptor: Any) -> dict:
        """Point tag `name` at `descriptor` (must be stored here); an existing tag of that name moves (as umoci)."""
        check_ref_name(name)
        desc = as_dict(descriptor)
        for key in ("mediaType", "digest", "size"):
            if key not in desc:
                raise InvalidDocument(f"descriptor to tag {name!r} lacks {key!r}")
        desc["annotations"] = {**(desc.get("annotations") or {}), REF_NAME: name}
        desc = ordered_descriptor(desc)
        with self.edit_index() as index:
            if not self.has_blob(desc["digest"]):
                raise NotFound(f"{self.where}: cannot tag {name!r}: no blob {desc['digest']}")
            index["manifests"] = [m for m in index["manifests"]
                                  if (m.get("annotations") or {}).get(REF_NAME) != name] + [desc]
        return desc

    def add_manifest(self, descriptor: Any) -> dict:
        """List an untagged descriptor in index.json (kept from gc); no-op if the same digest is there untagged."""
        desc = ordered_descriptor(as_dict(descriptor))
        with self.edit_index() as index:
            if not any(m.get("digest") == desc["digest"] and REF_NAME not in (m.get("annotations") or {})
                       for m in index["manifests"]):
                index["manifests"].append(desc)
        return desc

    def untag(self, name: str) -> dict:
        """Remove tag `name` from index.json (its blobs stay until gc); returns the descriptor it named."""
        with self.edit_index() as index:
            kept, gone = [], []
            for m in index["manifests"]:
                (gone if (m.get("annotations") or {}).get(REF_NAME) == name else kept).append(m)
            if not gone:
                raise NotFound(f"{self.path / INDEX_FILE}: no tag {name!r}")
            index["manifests"] = kept
        return gone[0]

    # -- garbage collection -----------------------------------------------------------------------------

    def gc(self) -> GCResult:
        """Remove blobs unreachable from index.json and stray temp files; returns what was removed."""
        result = GCResult()
        with self.lock():
            keep = set(self.reachable())
            blobs = self.path / BLOBS_DIR
            for alg_dir in sorted(blobs.iterdir()) if blobs.is_dir() else []:
                if not alg_dir.is_dir():
                    continue
                for entry in sorted(alg_dir.iterdir()):
                    name = entry.name
                    if name.startswith(_TEMP_PREFIXES) or name.endswith(_TEMP_SUFFIXES):
                        result.temp_files.append(str(entry.relative_to(self.path)))
                    elif f"{alg_dir.name}:{name}" in keep or not entry.is_file():
                        continue
                    else:
                        result.blobs.append(f"{alg_dir.name}:{name}")
                    result.bytes_freed += entry.stat().st_size
                    entry.unlink()
            for entry in sorted(self.path.iterdir()):
                if entry.is_file() and entry.name.startswith(_TEMP_PREFIXES):
                    result.temp_files.append(entry.name)
                    result.bytes_freed += entry.stat().st_size
                    entry.unlink()
        return result
