"""Deterministic layer tars from a directory, an overlay upper dir, or the difference of two trees.

Header conventions follow umoci (Go's archive/tar): entries in directory-walk order (each directory's
names sorted bytewise, a directory's contents right after it), no leading `./` and no root entry,
directories with a trailing `/`, numeric uid/gid with empty uname/gname, mtimes rounded to the second,
hard links (same dev+ino) as link entries to the first name seen, xattrs as `SCHILY.xattr.*` PAX
records, whiteouts as empty regular files with mode 0 and mtime 0. The tar is streamed through the
compressor while both digests are computed; no layer is ever held in memory.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from typing import BinaryIO, Callable

from .. import mediatypes
from ..digest import Digest
from ..fsutil import atomic_open
from . import tarformat as tf
from .compression import BLOCK, CompressingWriter, check_compression
from .errors import InvalidLayer

WHITEOUT_PREFIX = b".wh."
OPAQUE = b".wh..wh..opq"
OVERLAY_OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
# Overlayfs bookkeeping that must not leak into an image.
SKIPPED_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")
READ_CHUNK = 1 << 20

MEDIA_TYPES = {"gzip": mediatypes.OCI_LAYER_GZIP, "zstd": mediatypes.OCI_LAYER_ZSTD, "": mediatypes.OCI_LAYER}


@dataclass(frozen=True)
class LayerInfo:
    digest: Digest    # of the blob (compressed bytes): the manifest's layer descriptor digest
    diff_id: Digest   # of the uncompressed tar: the config's rootfs.diff_ids entry
    size: int         # blob size in bytes
    media_type: str

    def descriptor(self) -> dict:
        return {"mediaType": self.media_type, "digest": str(self.digest), "size": self.size}


class _BlockSink:
    """Collect tar bytes and hand them to the compressor in fixed 1 MiB pieces (deterministic gzip blocks)."""

    def __init__(self, writer: CompressingWriter) -> None:
        self._w = writer
        self._buf = bytearray()

    def write(self, data) -> None:
        self._buf += data
        if len(self._buf) >= BLOCK:
            view = memoryview(self._buf)
            n = len(self._buf) - len(self._buf) % BLOCK
            for i in range(0, n, BLOCK):
                self._w.write(view[i:i + BLOCK])
            view.release()
            del self._buf[:n]

    def close(self) -> None:
        if self._buf:
            self._w.write(bytes(self._buf))
            self._buf.clear()


def source_date_epoch(mtime: int | None) -> int | None:
    """The clamp for mtimes: the explicit argument, else $SOURCE_DATE_EPOCH when set, else none."""
    if mtime is not None:
        return int(mtime)
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidLayer(f"SOURCE_DATE_EPOCH={value!r} is not an integer number of seconds") from None


def _round_seconds(ns: int) -> int:
    # archive/tar rounds ModTime to the nearest second (halves away from zero).
    return (ns + 500_000_000) // 1_000_000_000 if ns >= 0 else -((-ns + 500_000_000) // 1_000_000_000)


class _Builder:
    def __init__(self, sink: _BlockSink, *, whiteouts: str | None, clamp: int | None, include_selinux: bool) -> None:
        self.sink = sink
        self.overlay = whiteouts == "overlay"
        self.clamp = clamp
        self.include_selinux = include_selinux
        self.inodes: dict[tuple[int, int], bytes] = {}

    # -- attributes
    def mtime(self, st: os.stat_result) -> int:
        t = _round_seconds(st.st_mtime_ns)
        return min(t, self.clamp) if self.clamp is not None else t

    def xattrs(self, path: bytes) -> dict[str, bytes]:
        try:
            names = os.listxattr(path, follow_symlinks=False)
        except OSError as e:
            if e.errno in (errno.ENOTSUP, errno.EPERM):
                return {}
            raise
        out = {}
        for name in sorted(names):
            if name.startswith(SKIPPED_XATTR_PREFIXES):
                continue
            if name == "security.selinux" and not self.include_selinux:
                continue
            try:
                out[name] = os.getxattr(path, name, follow_symlinks=False)
            except OSError as e:
                if e.errno != errno.ENODATA:  # removed meanwhile
                    raise
        return out

    @staticmethod
    def is_opaque(path: bytes) -> bool:
        for name in OVERLAY_OPAQUE_XATTRS:
            try:
                if os.getxattr(path, name, follow_symlinks=False) == b"y":
                    return True
            except OSError:
                continue
        return False

    def is_overlay_whiteout(self, path: bytes, st: os.stat_result) -> bool:
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            return True
        # overlayfs can also mark whiteouts as empty files carrying an xattr (nested/"xwhiteout" mode)
        if stat.S_ISREG(st.st_mode) and st.st_size == 0:
            for name in ("trusted.overlay.whiteout", "user.overlay.whiteout"):
                try:
                    os.getxattr(path, name, follow_symlinks=False)
                    return True
                except OSError:
                    continue
        return False

    # -- entries
    def whiteout(self, rel_dir: bytes, name: bytes) -> None:
        self.sink.write(tf.encode_header(_join(rel_dir, WHITEOUT_PREFIX + name), tf.REG))

    def opaque(self, rel_dir: bytes) -> None:
        self.sink.write(tf.encode_header(_join(rel_dir, OPAQUE), tf.REG))

    def entry(self, rel: bytes, path: bytes, st: os.stat_result) -> None:
        """Emit one path (not its children)."""
        mode = st.st_mode
        common = dict(mode=stat.S_IMODE(mode), uid=st.st_uid, gid=st.st_gid, mtime=self.mtime(st))
        if self.overlay and self.is_overlay_whiteout(path, st):
            head, _, base = rel.rpartition(b"/")
            self.whiteout(head, base)
            return
        if stat.S_ISSOCK(mode):
            return  # sockets cannot be archived (archive/tar refuses them too)
        records = {tf.XATTR_PREFIX.encode() + k.encode("utf-8", "surrogateescape"): v
                   for k, v in self.xattrs(path).items()}
        if stat.S_ISDIR(mode):
            self.sink.write(tf.encode_header(rel + b"/", tf.DIR, records=records, **common))
            if self.overlay and self.is_opaque(path):
                self.opaque(rel)
            return
        if st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            first = self.inodes.get(key)
            if first is not None:
                self.sink.write(tf.encode_header(rel, tf.LNK, linkname=first, records=records, **common))
                return
            self.inodes[key] = rel
        if stat.S_ISREG(mode):
            self.regular(rel, path, st, records, common)
        elif stat.S_ISLNK(mode):
            self.sink.write(tf.encode_header(rel, tf.SYM, linkname=os.readlink(path), records=records, **common))
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            self.sink.write(tf.encode_header(rel, tf.CHR if stat.S_ISCHR(mode) else tf.BLK, records=records,
                                             devmajor=os.major(st.st_rdev), devminor=os.minor(st.st_rdev), **common))
        elif stat.S_ISFIFO(mode):
            self.sink.write(tf.encode_header(rel, tf.FIFO, records=records, **common))

    def regular(self, rel: bytes, path: bytes, st: os.stat_result, records: dict, common: dict) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            size = st.st_size
            self.sink.write(tf.encode_header(rel, tf.REG, size=size, records=records, **common))
            left = size
            while left > 0:
                chunk = os.read(fd, min(left, READ_CHUNK))
                if not chunk:
                    raise InvalidLayer(f"{os.fsdecode(path)}: file shrank while being archived")
                self.sink.write(chunk)
                left -= len(chunk)
            pad = -size % tf.BLOCK
            if pad:
                self.sink.write(bytes(pad))
        finally:
            os.close(fd)

    # -- trees
    def tree(self, rel: bytes, path: bytes) -> None:
        """Emit the children of directory `path` (archive name `rel`), depth first, names sorted."""
        # An explicit stack of reversed listings: no recursion limit on deep trees.
        stack = [(rel, path, sorted(os.listdir(path), reverse=True))]
        while stack:
            rel, path, names = stack[-1]
            if not names:
                stack.pop()
                continue
            name = names.pop()
            child_rel, child = _join(rel, name), path + b"/" + name
            st = os.lstat(child)
            self.entry(child_rel, child, st)
            if stat.S_ISDIR(st.st_mode):
                stack.append((child_rel, child, sorted(os.listdir(child), reverse=True)))

    def diff(self, rel: bytes, lower: bytes, upper: bytes) -> None:
        """Emit what changed from directory `lower` to directory `upper` under archive name `rel`."""
        upper_names = os.listdir(upper)
        try:
            lower_names = set(os.listdir(lower))
        except (FileNotFoundError, NotADirectoryError):
            lower_names = set()
        deleted = lower_names.difference(upper_names)
        items = [(n, False) for n in upper_names] + [(WHITEOUT_PREFIX + n, True) for n in deleted]
        for key, is_whiteout in sorted(items):
            if is_whiteout:
                self.whiteout(rel, key[len(WHITEOUT_PREFIX):])
                continue
            child_rel, u = _join(rel, key), upper + b"/" + key
            ust = os.lstat(u)
            lst = os.lstat(lower + b"/" + key) if key in lower_names else None
            if stat.S_ISDIR(ust.st_mode):
                if lst is not None and stat.S_ISDIR(lst.st_mode):
                    if self.changed(lower + b"/" + key, lst, u, ust):
                        self.entry(child_rel, u, ust)
                    self.diff(child_rel, lower + b"/" + key, u)
                else:
                    self.entry(child_rel, u, ust)  # replaces a non-dir (or is new): all of it is new
                    self.tree(child_rel, u)
            elif lst is None or self.changed(lower + b"/" + key, lst, u, ust):
                self.entry(child_rel, u, ust)

    def changed(self, lpath: bytes, lst: os.stat_result, upath: bytes, ust: os.stat_result) -> bool:
        if (stat.S_IFMT(lst.st_mode) != stat.S_IFMT(ust.st_mode) or lst.st_mode != ust.st_mode
                or lst.st_uid != ust.st_uid or lst.st_gid != ust.st_gid):
            return True
        if self.xattrs(lpath) != self.xattrs(upath):
            return True
        if stat.S_ISDIR(ust.st_mode):
            return lst.st_mtime_ns != ust.st_mtime_ns
        if stat.S_ISLNK(ust.st_mode):
            return os.readlink(lpath) != os.readlink(upath) or lst.st_mtime_ns != ust.st_mtime_ns
        if stat.S_ISCHR(ust.st_mode) or stat.S_ISBLK(ust.st_mode):
            return lst.st_rdev != ust.st_rdev or lst.st_mtime_ns != ust.st_mtime_ns
        if not stat.S_ISREG(ust.st_mode):
            return lst.st_mtime_ns != ust.st_mtime_ns
        if lst.st_size != ust.st_size or lst.st_mtime_ns != ust.st_mtime_ns:
            return True
        if (lst.st_dev, lst.st_ino) == (ust.st_dev, ust.st_ino):
            return False
        # Same size and mtime: trust it unless the mtime has whole-second precision (copied trees often do).
        return ust.st_mtime_ns % 1_000_000_000 == 0 and not _same_content(lpath, upath)


def _same_content(a: bytes, b: bytes) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            ca, cb = fa.read(READ_CHUNK), fb.read(READ_CHUNK)
            if ca != cb:
                return False
            if not ca:
                return True


def _join(rel: bytes, name: bytes) -> bytes:
    return rel + b"/" + name if rel else name


def _build(out: BinaryIO | str | os.PathLike, compression: str, produce: Callable[[_Builder], None], *,
           whiteouts: str | None, mtime: int | None, include_selinux: bool, level: int | None,
           threads: int) -> LayerInfo:
    check_compression(compression)
    if whiteouts not in (None, "overlay"):
        raise InvalidLayer(f"unsupported whiteouts mode {whiteouts!r}: want None or 'overlay'")
    clamp = source_date_epoch(mtime)

    def run(stream: BinaryIO) -> LayerInfo:
        writer = CompressingWriter(stream, compression, level=level, threads=threads)
        try:
            sink = _BlockSink(writer)
            try:
                produce(_Builder(sink, whiteouts=whiteouts, clamp=clamp, include_selinux=include_selinux))
            except FileNotFoundError as e:
                raise InvalidLayer(f"{os.fsdecode(e.filename)}: vanished while creating the layer") from None
            except OSError as e:
                where = os.fsdecode(e.filename) if e.filename else "source tree"
                raise InvalidLayer(f"{where}: cannot archive: {e.strerror or e}") from None
            except RecursionError:
                raise InvalidLayer("directories nested too deep to diff") from None
            sink.write(tf.end_of_archive())
            sink.close()
        except BaseException:
            writer.abort()
            raise
        d = writer.close()
        return LayerInfo(d.digest, d.diff_id, d.size, MEDIA_TYPES[compression])

    if not isinstance(out, (str, bytes, os.PathLike)):
        return run(out)
    try:
        with atomic_open(out) as f:  # a half-written layer never appears at `out`
            return run(f)
    except OSError as e:
        raise InvalidLayer(f"{os.fsdecode(os.fspath(out))}: cannot write the layer: {e.strerror or e}") from None


def create_layer(src_dir: str | os.PathLike, out: BinaryIO | str | os.PathLike, compression: str = "gzip", *,
                 whiteouts: str | None = None, mtime: int | None = None, include_selinux: bool = False,
                 level: int | None = None, threads: int = 0) -> LayerInfo:
    """Archive the tree under `src_dir` (not the directory itself) as a layer written to `out`.

    whiteouts="overlay": `src_dir` is an overlayfs upper dir; char devices 0:0 become `.wh.NAME` and
    directories marked opaque get a `DIR/.wh..wh..opq` entry right after their own.
    mtime: clamp every mtime to at most this (default: $SOURCE_DATE_EPOCH if set).
    """
    src = os.fsencode(os.fspath(src_dir))
    if not os.path.isdir(src):
        raise InvalidLayer(f"{os.fsdecode(src)}: not a directory")
    return _build(out, compression, lambda b: b.tree(b"", src), whiteouts=whiteouts, mtime=mtime,
                  include_selinux=include_selinux, level=level, threads=threads)


def create_layer_from_diff(lower: str | os.PathLike, upper_full: str | os.PathLike,
                           out: BinaryIO | str | os.PathLike, compression: str = "gzip", *,
                           mtime: int | None = None, include_selinux: bool = False, level: int | None = None,
                           threads: int = 0) -> LayerInfo:
    """The layer that turns tree `lower` into tree `upper_full` (a complete rootfs, not an overlay upper).

    Added and changed paths are archived, deleted ones become `.wh.NAME` whiteouts (one per deleted
    directory, not per file in it), a directory replacing a non-directory is archived whole. For
    builders without overlayfs: copy the lower rootfs, run the step, diff.
    """
    lo, up = os.fsencode(os.fspath(lower)), os.fsencode(os.fspath(upper_full))
    for p in (lo, up):
        if not os.path.isdir(p):
            raise InvalidLayer(f"{os.fsdecode(p)}: not a directory")
    return _build(out, compression, lambda b: b.diff(b"", lo, up), whiteouts=None, mtime=mtime,
                  include_selinux=include_selinux, level=level, threads=threads)
