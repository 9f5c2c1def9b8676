"""oci-archive: an OCI image layout in a tar. Written deterministically, read in place or imported.

Writing: `oci-layout`, `index.json`, `blobs/`, `blobs/<alg>/`, then the blobs in name order; uid/gid 0,
no user names, mtime 0, modes 0644/0755, PAX headers only where a name needs them, no padding to a
tar record (as Go's archive/tar). Only blobs reachable from the archived index are included.

Reading: `OCIArchive` reads index.json and blobs straight out of the tar (random access via tarfile,
nothing extracted); `import_oci_archive` copies images into a layout through the verifying put_blob.
Only the entries an image layout defines are ever looked at, so a hostile entry (`../x`, `/etc/x`,
a symlink) is never written anywhere; a layout entry that is not a regular file is refused.
"""

from __future__ import annotations

import os
import re
import tarfile
from typing import Any, BinaryIO, Iterable

from .digest import CHUNK, Digest
from .errors import InvalidDocument, NotFound, OCIError, UnsafeArchive
from .fsutil import atomic_open
from .layout import (BLOBS_DIR, INDEX_FILE, LAYOUT_FILE, REF_NAME, BlobSource, Layout, as_dict,
                     check_layout_file, dumps, ordered_descriptor)
from . import mediatypes as mt

BLOCK = 512
_BLOB_NAME = re.compile(r"^blobs/([a-z0-9]+)/([a-f0-9]+)$")


class TarWriter:
    """A minimal deterministic tar writer: headers from tarfile, no record padding at the end."""

    def __init__(self, out: BinaryIO, format: int = tarfile.PAX_FORMAT) -> None:
        self.out = out
        self.format = format

    def _header(self, name: str, type_: bytes, size: int = 0, mode: int = 0o644, linkname: str = "") -> None:
        info = tarfile.TarInfo(name)
        info.type, info.size, info.mode, info.mtime = type_, size, mode, 0
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.linkname = linkname
        buf = bytearray(info.tobuf(self.format, "utf-8", "surrogateescape"))
        # Python >= 3.11 leaves devmajor/devminor NUL for non-devices; Go writes zeros: do as Go does.
        hdr = len(buf) - BLOCK
        buf[hdr + 329:hdr + 345] = b"0000000\0" * 2
        buf[hdr + 148:hdr + 156] = b" " * 8
        buf[hdr + 148:hdr + 155] = b"%06o\0" % sum(buf[hdr:hdr + BLOCK])
        self.out.write(buf)

    def add_dir(self, name: str, mode: int = 0o755) -> None:
        self._header(name.rstrip("/") + "/", tarfile.DIRTYPE, mode=mode)

    def add_symlink(self, name: str, target: str, mode: int = 0) -> None:
        self._header(name, tarfile.SYMTYPE, mode=mode, linkname=target)

    def add_bytes(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._header(name, tarfile.REGTYPE, len(data), mode)
        self.out.write(data)
        self._pad(len(data))

    def add_stream(self, name: str, stream: BinaryIO, size: int, mode: int = 0o644) -> None:
        """Copy exactly `size` bytes of `stream`; a short or long stream is an error (the header is written)."""
        self._header(name, tarfile.REGTYPE, size, mode)
        left = size
        while left:
            chunk = stream.read(min(CHUNK, left))
            if not chunk:
                raise OCIError(f"{name}: source ended {left} bytes early")
            self.out.write(chunk)
            left -= len(chunk)
        if stream.read(1):
            raise OCIError(f"{name}: source is longer than {size} bytes")
        self._pad(size)

    def _pad(self, size: int) -> None:
        if size % BLOCK:
            self.out.write(b"\0" * (BLOCK - size % BLOCK))

    def close(self) -> None:
        self.out.write(b"\0" * (2 * BLOCK))


def write_oci_archive(layout: Layout, dest: str | os.PathLike, tags: Iterable[str] | None = None) -> None:
    """Write `layout` (or only the images tagged `tags`) as a deterministic oci-archive at `dest` (atomically).

    Every blob is verified as it is copied: a corrupt one raises DigestMismatch and no archive appears.
    """
    with layout.lock(exclusive=False):  # a concurrent gc waits until the archive is written
        index = layout.index()
        if tags is not None:
            index = {**index, "manifests": [layout.resolve(t) for t in tags]}
        roots = [ordered_descriptor(as_dict(m)) for m in index["manifests"]]
        blobs = layout.reachable(roots, missing_ok=False)
        present = sorted((Digest.parse(dg) for dg, d in blobs.items()
                          if layout.has_blob(dg) or not d.get("urls")), key=str)
        doc = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX,
               **{k: v for k, v in index.items() if k != "schemaVersion"}, "manifests": roots}
        with atomic_open(dest) as out:
            tar = TarWriter(out)
            tar.add_bytes(LAYOUT_FILE, dumps({"imageLayoutVersion": mt.OCI_LAYOUT_VERSION}))
            tar.add_bytes(INDEX_FILE, dumps(doc))
            tar.add_dir(BLOBS_DIR)
            for alg in sorted({d.algorithm for d in present} or {"sha256"}):
                tar.add_dir(f"{BLOBS_DIR}/{alg}")
            for d in present:
                size = layout.blob_size(d)
                with layout.open_blob(d, size=size) as f:
                    tar.add_stream(f"{BLOBS_DIR}/{d.algorithm}/{d.encoded}", f, size)
            tar.close()


def _members_of(tar: tarfile.TarFile, where: str) -> list[tarfile.TarInfo]:
    """Every header of the archive (read up front, which also finds a truncated archive)."""
    try:
        return tar.getmembers()
    except (tarfile.TarError, EOFError, OSError) as e:
        tar.close()
        raise InvalidDocument(f"{where}: truncated or corrupt tar archive ({e})") from None


def _norm(name: str) -> str | None:
    """A member name relative to the archive root, or None if it is absolute or climbs out."""
    if name.startswith("/"):
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None
    return "/".join(parts)


class OCIArchive(BlobSource):
    """An oci-archive opened for reading in place: the BlobSource API (index, tags, resolve, manifest_for,
    walk, open_blob, read_blob, problems) over the tar's members. Use as a context manager."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.where = os.fspath(path)
        try:
            self._tar = tarfile.open(self.where, "r:*")
        except FileNotFoundError:
            raise NotFound(f"{self.where}: no such file") from None
        except tarfile.TarError as e:
            raise InvalidDocument(f"{self.where}: not a tar archive ({e})") from None
        self._members: dict[str, tarfile.TarInfo] = {}
        for m in _members_of(self._tar, self.where):
            name = _norm(m.name)
            if name is None or not (name in (LAYOUT_FILE, INDEX_FILE) or _BLOB_NAME.match(name)):
                continue  # never looked at, never extracted
            if not m.isreg():
                raise UnsafeArchive(f"{self.where}: {m.name!r} is a {_kind(m)}, a layout file must be a regular file")
            self._members[name] = m  # a later duplicate wins, as with tar -x
        if LAYOUT_FILE not in self._members:
            self.close()
            raise InvalidDocument(f"{self.where}: no {LAYOUT_FILE}, not an oci-archive")
        check_layout_file(self._read(LAYOUT_FILE), f"{self.where}:{LAYOUT_FILE}")

    def _read(self, name: str) -> bytes:
        f = self._tar.extractfile(self._members[name])
        assert f is not None
        return f.read()

    def _index_bytes(self) -> bytes:
        if INDEX_FILE not in self._members:
            raise InvalidDocument(f"{self.where}: no {INDEX_FILE}, not an oci-archive")
        return self._read(INDEX_FILE)

    def _member(self, digest: "str | Digest") -> tarfile.TarInfo | None:
        d = Digest.parse(digest)
        return self._members.get(f"{BLOBS_DIR}/{d.algorithm}/{d.encoded}")

    def has_blob(self, digest: "str | Digest") -> bool:
        try:
            return self._member(digest) is not None
        except OCIError:
            return False

    def blob_size(self, digest: "str | Digest") -> int:
        m = self._member(digest)
        if m is None:
            raise NotFound(f"{self.where}: no blob {digest}")
        return m.size

    def _open_raw(self, digest: Digest) -> BinaryIO:
        m = self._member(digest)
        if m is None:
            raise NotFound(f"{self.where}: no blob {digest}")
        f = self._tar.extractfile(m)
        assert f is not None
        return f  # type: ignore[return-value]

    def close(self) -> None:
        self._tar.close()

    def __enter__(self) -> "OCIArchive":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _kind(m: tarfile.TarInfo) -> str:
    if m.issym():
        return f"symlink to {m.linkname!r}"
    if m.islnk():
        return f"hard link to {m.linkname!r}"
    return "directory" if m.isdir() else "special file"


def import_oci_archive(src: str | os.PathLike, layout: Layout, tags: Iterable[str] | None = None,
                       rename: dict[str, str] | None = None) -> list[dict]:
    """Copy the images of an oci-archive (all, or those tagged `tags`) into `layout`, verifying every blob.

    Tagged images keep their tag (or `rename[tag]`); untagged index entries are listed untagged.
    On any error (a blob that does not match its digest, a missing one) the blobs this import wrote
    are removed again and index.json is left as it was. Returns the descriptors added to index.json.
    """
    rename = rename or {}
    out = []
    with OCIArchive(src) as archive:
        entries = archive.index()["manifests"] if tags is None else [archive.resolve(t) for t in tags]
        with layout.lock(exclusive=False):  # gc keeps off the new blobs until they are tagged
            added: list[str] = []
            try:
                for desc in entries:
                    layout.copy_from(archive, desc, added)
            except BaseException:
                layout.remove_blobs(added)
                raise
            for desc in entries:
                name = (desc.get("annotations") or {}).get(REF_NAME)
                out.append(layout.tag(rename.get(name, name), desc) if name else layout.add_manifest(desc))
    return out


def extract_oci_archive(src: str | os.PathLike, dest: str | os.PathLike) -> Layout:
    """Unpack an oci-archive into a (new or existing) layout directory `dest`."""
    layout = Layout.init(dest)
    import_oci_archive(src, layout)
    return layout
