"""Apply a layer tar to a rootfs: whiteouts, hard links, symlinks, devices, fifos, xattrs, owners, modes, mtimes.

Safety model -- a hostile tar can never touch anything outside `rootfs`:
  * every operation is an *at() syscall relative to a directory fd that was reached from the rootfs fd
    one component at a time with O_NOFOLLOW; no path string is ever resolved by the kernel from `/`;
  * absolute entry names are taken relative to the rootfs (as umoci and containerd do; umoci itself
    writes a `/` root entry); any `..` component in an entry name or hard-link target is refused;
  * a symlink met in an entry's *parent* path (planted by a lower layer or earlier in this one) is
    followed inside the rootfs as a container would see it: an absolute target restarts at the rootfs,
    and a target that climbs above the rootfs with `..` is refused (never clamped);
  * the entry's last component is never followed: an existing file/symlink there is replaced;
  * hard links must name an existing non-directory inside the rootfs; a link to a symlink whose
    target is absolute or climbs out is refused; whiteouts must name one plain component.
Each refusal raises pyoci.errors.UnsafeArchive naming the entry; a malformed tar raises InvalidLayer.

Semantics: whiteouts (`.wh.NAME`) remove NAME from lower layers, never entries of their own layer;
`.wh..wh..opq` empties its directory of everything but this layer's entries (wherever it appears in
the directory's listing); a directory entry over a directory merges (metadata and xattrs replaced),
any other collision replaces the old path. Directory mtimes are set last. xattrs the filesystem
refuses (EPERM/ENOTSUP, e.g. user.* on a symlink) are skipped, as umoci does. Small files are
created by `workers` threads so that file-system latency overlaps parsing; the main thread waits for
them before any operation that could touch the same paths.

Digests: the diff_id (uncompressed) and, if given, the blob digest (compressed) are verified while
streaming and checked at the end. A mismatch raises DigestMismatch *after* the entries were applied:
callers must apply into a fresh snapshot directory and discard it on any error.
"""

from __future__ import annotations

import errno
import os
import queue
import stat
import threading
from typing import BinaryIO

from ..digest import Digest
from ..errors import DigestMismatch, OCIError, UnsafeArchive
from . import tarformat as tf
from .compression import DecompressingReader
from .errors import InvalidLayer

WHITEOUT_PREFIX = b".wh."
OPAQUE = b".wh..wh..opq"
OVERLAY_OPAQUE = "trusted.overlay.opaque"
OVERLAY_XATTRS = "trusted.overlay."
MAX_SYMLINKS = 40
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CACHE_MAX = 512
_CACHE_DEPTH = 64
SMALL_FILE = 1 << 20  # regular files up to this size may be written by the worker threads


def _components(name: bytes, what: str, entry: tf.Entry) -> tuple[bytes, ...]:
    """Entry name -> path components inside the root; absolute names are rooted at the rootfs."""
    parts = tuple(p for p in name.split(b"/") if p and p != b".")
    if b".." in parts:
        if what == "path":
            raise UnsafeArchive(f"layer entry {entry.display!r}: '..' in its path would escape the rootfs")
        raise UnsafeArchive(f"layer entry {entry.display!r}: {what} {name.decode('utf-8', 'replace')!r}"
                            f" has a '..' component (would escape the rootfs)")
    return parts


def _xattr_errors_ignored(e: OSError) -> bool:
    # user.* xattrs are not allowed on symlinks/devices, some filesystems lack xattrs: skip, as umoci does.
    return e.errno in (errno.ENOTSUP, errno.EPERM)


class _WriterPool:
    """Threads that create small regular files, so that file-system latency overlaps tar parsing.

    Workers only ever create a new file (O_CREAT|O_EXCL|O_NOFOLLOW) in a directory fd the main thread
    resolved and validated; the main thread drains the pool before anything that could conflict
    (replacing or removing paths, hard links, whiteouts, closing cached directory fds).
    """

    def __init__(self, workers: int, write) -> None:
        self._write = write
        self._queue: queue.Queue = queue.Queue(maxsize=64)
        self.error: tuple[tf.Entry, BaseException] | None = None
        self.pending: set[tuple[bytes, ...]] = set()
        self._threads = [threading.Thread(target=self._run, name=f"pyoci-apply-{i}", daemon=True)
                         for i in range(workers)]
        for t in self._threads:
            t.start()

    def _run(self) -> None:
        while True:
            task = self._queue.get()
            try:
                if task is None:
                    return
                if self.error is None:
                    entry, dfd, name, chunks = task
                    try:
                        self._write(entry, dfd, name, chunks)
                    except BaseException as e:  # reported by the main thread at the next drain
                        self.error = self.error or (entry, e)
            finally:
                self._queue.task_done()

    def submit(self, path: tuple[bytes, ...], task: tuple) -> None:
        self.pending.add(path)
        self._queue.put(task)

    def drain(self) -> None:
        if self.pending:
            self._queue.join()
            self.pending.clear()
        if self.error is not None:
            entry, e = self.error
            if isinstance(e, OSError):
                raise InvalidLayer(f"layer entry {entry.display!r}: {e.strerror or e}")
            raise e

    def close(self) -> None:
        """Stop the workers (after the tasks already queued); never raises."""
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join()
        self.pending.clear()


class _Applier:
    def __init__(self, root_fd: int, *, same_owner: bool, xattrs: bool, workers: int = 0,
                 overlay: bool = False) -> None:
        self.root = root_fd
        self.overlay = overlay  # write overlayfs whiteouts instead of deleting (see apply_layer)
        self.opaque_dirs: set[tuple[bytes, ...]] = set()  # overlay mode: dirs this layer marked opaque
        self.same_owner = same_owner
        self.apply_xattrs = xattrs
        self.cache: dict[tuple[bytes, ...], tuple[int, tuple[bytes, ...]]] = {}
        self.layer_paths: set[tuple[bytes, ...]] = set()  # real paths this layer created (for opaque dirs)
        self.dir_times: list[tuple[tuple[bytes, ...], int]] = []
        self.hops = 0  # symlinks followed for the current entry (bounded like the kernel's 40)
        self.pool = _WriterPool(workers, self.write_small) if workers > 0 else None

    # ------------------------------------------------------------------ resolution
    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()  # workers use cached fds: stop them before closing those
            self.pool = None
        self.invalidate()

    def drain(self) -> None:
        if self.pool is not None:
            self.pool.drain()

    def pending(self, path: tuple[bytes, ...]) -> bool:
        return self.pool is not None and path in self.pool.pending

    def invalidate(self) -> None:
        """Forget cached directory fds: something was removed, a cached fd may point at a deleted dir."""
        self.drain()
        for fd, _ in self.cache.values():
            os.close(fd)
        self.cache.clear()

    def resolve_dir(self, comps: tuple[bytes, ...], entry: tf.Entry, create: bool
                    ) -> tuple[int, tuple[bytes, ...]] | None:
        """(fd, real components) of directory `comps` inside the root; None if missing and not `create`.

        The fd belongs to the cache; callers must not close it.
        """
        # Iterative (a hostile path may have thousands of components): longest cached prefix, then walk.
        n = len(comps)
        while n and comps[:n] not in self.cache:
            n -= 1
        found = self.cache[comps[:n]] if n else (self.root, ())
        owned = False  # whether `found` is an uncached fd this loop must close
        try:
            while n < len(comps):
                nxt = self._open_child(found[0], found[1], comps[n], entry, create, 0)
                if owned:
                    os.close(found[0])
                if nxt is None:
                    owned = False
                    return None
                n += 1
                found, owned = nxt, True
                if n <= _CACHE_DEPTH or n == len(comps):  # bound the fds one deep path can hold
                    self.cache[comps[:n]] = nxt
                    owned = False
            return found
        finally:
            if owned:
                os.close(found[0])

    def _open_child(self, dfd: int, real: tuple[bytes, ...], name: bytes, entry: tf.Entry, create: bool,
                    hops: int) -> tuple[int, tuple[bytes, ...]] | None:
        """Open directory `name` in `dfd` (at real path `real`), following a symlink there inside the root."""
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=dfd), real + (name,)
        except FileNotFoundError:
            if self.pending(real + (name,)):  # a file of this layer is still being written there
                self.drain()
                return self._open_child(dfd, real, name, entry, create, hops)
            if not create:
                return None
            os.mkdir(name, 0o755, dir_fd=dfd)  # implicit parent, as umoci/containerd create them
            self.layer_paths.add(real + (name,))
            return os.open(name, _DIR_FLAGS, dir_fd=dfd), real + (name,)
        except OSError as e:
            if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode):
            if not create:
                return None  # e.g. whiteouts below a dir that this layer replaced by a file (umoci repack)
            raise InvalidLayer(f"layer entry {entry.display!r}: {b'/'.join(real + (name,)).decode(errors='replace')}"
                               f" is not a directory")
        return self._follow(os.readlink(name, dir_fd=dfd), real, entry, create, hops + 1)

    def _follow(self, target: bytes, real: tuple[bytes, ...], entry: tf.Entry, create: bool,
                hops: int) -> tuple[int, tuple[bytes, ...]] | None:
        self.hops += 1
        if hops > MAX_SYMLINKS or self.hops > MAX_SYMLINKS:
            raise UnsafeArchive(f"layer entry {entry.display!r}: too many levels of symbolic links")
        # Build the target's real path lexically from the symlink's directory (or the root if absolute).
        path = [] if target.startswith(b"/") else list(real)
        for part in target.split(b"/"):
            if part in (b"", b"."):
                continue
            if part == b"..":
                if not path:
                    raise UnsafeArchive(f"layer entry {entry.display!r}: symlink to"
                                        f" {target.decode(errors='replace')!r} in its path leads outside the rootfs")
                path.pop()
            else:
                path.append(part)
        fd, cur = os.dup(self.root), ()
        try:
            for part in path:
                nxt = self._open_child(fd, cur, part, entry, create, hops)
                if nxt is None:
                    return None
                os.close(fd)
                fd, cur = nxt
            return fd, cur
        except BaseException:
            os.close(fd)
            raise

    # ------------------------------------------------------------------ entries
    def apply(self, entry: tf.Entry, data) -> None:
        if len(self.cache) >= _CACHE_MAX:
            self.invalidate()  # only between entries: fds handed out during one entry stay open
        self.hops = 0
        comps = _components(entry.name, "path", entry)
        if not comps:
            self.root_entry(entry, data)
            return
        parent_comps, name = comps[:-1], comps[-1]
        if name.startswith(WHITEOUT_PREFIX):
            self.drain()
            self.whiteout(entry, parent_comps, name)
            _drain(data)
            return
        parent = self.resolve_dir(parent_comps, entry, create=True)
        assert parent is not None
        dfd, real = parent
        path = real + (name,)
        t = entry.type
        if t == tf.LNK:
            self.drain()  # the target may still be being written
            self.hardlink(entry, dfd, name, path)
            return
        if self.pending(path):
            self.drain()  # this layer wrote the path already: let that finish before replacing it
        try:
            existing = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            existing = None
        if existing is None and self.pool is not None and t in (tf.REG, tf.AREG, tf.CONT) \
                and entry.size <= SMALL_FILE:
            self.layer_paths.add(path)
            # a copy, so a queued task never pins one of the reader's (up to 8 MiB) buffers
            self.pool.submit(path, (entry, dfd, name, [b"".join(data)]))
            return
        if existing is not None:
            if t == tf.DIR and stat.S_ISDIR(existing.st_mode):
                pass  # directories merge
            elif stat.S_ISDIR(existing.st_mode):
                self.drain()  # files of this layer may be being written below it
                _rmtree(name, dir_fd=dfd)  # fd-based, never follows symlinks inside
                self.invalidate()
                dfd = self.resolve_dir(parent_comps, entry, create=True)[0]  # type: ignore[index]
            else:
                os.unlink(name, dir_fd=dfd)
                if stat.S_ISLNK(existing.st_mode):
                    self.invalidate()  # cached paths may have gone through this symlink
                    dfd = self.resolve_dir(parent_comps, entry, create=True)[0]  # type: ignore[index]
        self.layer_paths.add(path)
        if t in (tf.REG, tf.AREG, tf.CONT):
            self.regular(entry, dfd, name, data)
        elif t == tf.DIR:
            if existing is None or not stat.S_ISDIR(existing.st_mode):
                os.mkdir(name, 0o700, dir_fd=dfd)
            fd = os.open(name, _DIR_FLAGS, dir_fd=dfd)
            try:
                if existing is not None and self.apply_xattrs:
                    self.clear_xattrs(fd, entry)  # a merged dir takes this entry's xattrs, as umoci does
                self.fd_metadata(fd, entry)
                if real + (name,) in self.opaque_dirs:
                    os.setxattr(fd, OVERLAY_OPAQUE, b"y")  # the marker came before its dir's own entry
            finally:
                os.close(fd)
            self.dir_times.append((comps, _ns(entry.mtime)))
        elif t == tf.SYM:
            os.symlink(entry.linkname, name, dir_fd=dfd)
            self.path_metadata(dfd, name, entry, chmod=False)
        elif t in (tf.CHR, tf.BLK):
            kind = stat.S_IFCHR if t == tf.CHR else stat.S_IFBLK
            os.mknod(name, kind | 0o600, os.makedev(entry.devmajor, entry.devminor), dir_fd=dfd)
            self.path_metadata(dfd, name, entry)
        elif t == tf.FIFO:
            os.mkfifo(name, 0o600, dir_fd=dfd)
            self.path_metadata(dfd, name, entry)

    def root_entry(self, entry: tf.Entry, data) -> None:
        _drain(data)
        if entry.type != tf.DIR:
            raise UnsafeArchive(f"layer entry {entry.display!r}: names the rootfs itself but is not a directory")
        self.fd_metadata(self.root, entry)
        self.dir_times.append(((), _ns(entry.mtime)))

    def write_small(self, entry: tf.Entry, dfd: int, name: bytes, chunks: list) -> None:
        self.regular(entry, dfd, name, chunks)

    def regular(self, entry: tf.Entry, dfd: int, name: bytes, data) -> None:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd)
        try:
            for chunk in data:
                while chunk:
                    n = os.write(fd, chunk)
                    chunk = chunk[n:]
            self.fd_metadata(fd, entry)
            mt = _ns(entry.mtime)
            os.utime(fd, ns=(mt, mt))
        finally:
            os.close(fd)

    def fd_metadata(self, fd: int, entry: tf.Entry) -> None:
        if self.same_owner:
            os.fchown(fd, entry.uid, entry.gid)
        os.fchmod(fd, entry.mode)  # after chown, which clears setuid/setgid
        if self.apply_xattrs:
            for key, value in entry.xattrs.items():
                if self.overlay and key.startswith(OVERLAY_XATTRS):
                    continue  # a layer must not forge overlay metadata (opaque, redirect) in a lowerdir
                try:
                    os.setxattr(fd, key, value)
                except OSError as e:
                    if not _xattr_errors_ignored(e):
                        raise

    @staticmethod
    def clear_xattrs(fd: int, entry: tf.Entry) -> None:
        for key in os.listxattr(fd):
            if key not in entry.xattrs and key != "security.selinux":
                try:
                    os.removexattr(fd, key)
                except OSError as e:
                    if not _xattr_errors_ignored(e):
                        raise

    def path_metadata(self, dfd: int, name: bytes, entry: tf.Entry, chmod: bool = True) -> None:
        """Metadata of a node that cannot be opened (symlink, device, fifo), addressed via its parent fd."""
        if self.same_owner:
            os.chown(name, entry.uid, entry.gid, dir_fd=dfd, follow_symlinks=False)
        if chmod:
            os.chmod(name, entry.mode, dir_fd=dfd)  # a node this call just created: not a symlink
        if self.apply_xattrs and entry.xattrs:
            # /proc/self/fd/N/NAME reaches NAME through the already-resolved parent; the last component
            # is not followed (l*xattr).
            proc = b"/proc/self/fd/%d/%s" % (dfd, name)
            for key, value in entry.xattrs.items():
                if self.overlay and key.startswith(OVERLAY_XATTRS):
                    continue
                try:
                    os.setxattr(proc, key, value, follow_symlinks=False)
                except OSError as e:
                    if not _xattr_errors_ignored(e):
                        raise
        mt = _ns(entry.mtime)
        os.utime(name, ns=(mt, mt), dir_fd=dfd, follow_symlinks=False)

    def hardlink(self, entry: tf.Entry, dfd: int, name: bytes, path: tuple[bytes, ...]) -> None:
        tcomps = _components(entry.linkname, "hard link target", entry)
        if not tcomps:
            raise UnsafeArchive(f"layer entry {entry.display!r}: hard link to the rootfs itself")
        tparent = self.resolve_dir(tcomps[:-1], entry, create=False)
        target = entry.linkname.decode("utf-8", "replace")
        if tparent is None:
            raise UnsafeArchive(f"layer entry {entry.display!r}: hard link target {target!r} does not exist"
                                f" inside the rootfs")
        tdfd, treal = tparent
        tname = tcomps[-1]
        if treal + (tname,) == path:
            return  # a link to itself: nothing to do
        try:
            tst = os.stat(tname, dir_fd=tdfd, follow_symlinks=False)
        except FileNotFoundError:
            raise UnsafeArchive(f"layer entry {entry.display!r}: hard link target {target!r} does not exist"
                                f" inside the rootfs") from None
        if stat.S_ISDIR(tst.st_mode):
            raise UnsafeArchive(f"layer entry {entry.display!r}: hard link to directory {target!r}")
        if stat.S_ISLNK(tst.st_mode):
            dest = os.readlink(tname, dir_fd=tdfd)
            if dest.startswith(b"/") or _climbs_out(treal, dest):
                raise UnsafeArchive(f"layer entry {entry.display!r}: hard link to symlink {target!r} that points"
                                    f" outside the rootfs ({dest.decode(errors='replace')!r})")
        try:
            existing = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            existing = None
        if existing is not None:
            if stat.S_ISDIR(existing.st_mode):
                _rmtree(name, dir_fd=dfd)
                self.invalidate()
                # Both parents may have been cached: resolve again (they were not under the removed dir,
                # unless the target was -- then it is gone and that is an error).
                dfd = self.resolve_dir(path[:-1], entry, create=True)[0]  # type: ignore[index]
                again = self.resolve_dir(tcomps[:-1], entry, create=False)
                if again is None:
                    raise InvalidLayer(f"layer entry {entry.display!r}: hard link target {target!r} vanished")
                tdfd = again[0]
            else:
                os.unlink(name, dir_fd=dfd)
                if stat.S_ISLNK(existing.st_mode):
                    self.invalidate()
                    dfd = self.resolve_dir(path[:-1], entry, create=True)[0]  # type: ignore[index]
                    again = self.resolve_dir(tcomps[:-1], entry, create=False)
                    if again is None:
                        raise UnsafeArchive(f"layer entry {entry.display!r}: hard link target {target!r} vanished")
                    tdfd = again[0]
        os.link(tname, name, src_dir_fd=tdfd, dst_dir_fd=dfd, follow_symlinks=False)
        self.layer_paths.add(path)

    def whiteout(self, entry: tf.Entry, parent_comps: tuple[bytes, ...], name: bytes) -> None:
        if self.overlay:
            self.overlay_whiteout(entry, parent_comps, name)
            return
        if name == OPAQUE:
            parent = self.resolve_dir(parent_comps, entry, create=True)
            assert parent is not None
            self.clear_opaque(parent[0], parent[1])
            self.invalidate()
            return
        if name.startswith(b".wh..wh."):
            return  # other aufs metadata (.wh..wh.plnk etc.): nothing to apply
        victim = name[len(WHITEOUT_PREFIX):]
        if victim in (b"", b".", b".."):
            raise UnsafeArchive(f"layer entry {entry.display!r}: whiteout of {victim.decode(errors='replace')!r}"
                                f" is not a valid name")
        parent = self.resolve_dir(parent_comps, entry, create=False)
        if parent is None:
            return  # nothing below to hide
        dfd, real = parent
        if real + (victim,) in self.layer_paths:
            return  # whiteouts hide lower layers only, never entries of their own layer
        try:
            st = os.stat(victim, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            _rmtree(victim, dir_fd=dfd)
        else:
            os.unlink(victim, dir_fd=dfd)
        self.invalidate()

    def overlay_whiteout(self, entry: tf.Entry, parent_comps: tuple[bytes, ...], name: bytes) -> None:
        """Record the whiteout for overlayfs to apply at mount time: a 0/0 char device for `.wh.NAME`,
        the trusted.overlay.opaque xattr for an opaque dir (there is no lower layer here to delete from)."""
        if name.startswith(b".wh..wh.") and name != OPAQUE:
            return  # other aufs metadata (.wh..wh.plnk etc.): nothing to apply
        victim = name[len(WHITEOUT_PREFIX):]
        if name != OPAQUE and victim in (b"", b".", b".."):
            raise UnsafeArchive(f"layer entry {entry.display!r}: whiteout of {victim.decode(errors='replace')!r}"
                                f" is not a valid name")
        # The parent must exist in this layer to hold the marker (docker's tars list it anyway).
        parent = self.resolve_dir(parent_comps, entry, create=True)
        assert parent is not None
        dfd, real = parent
        if name == OPAQUE:
            os.setxattr(dfd, OVERLAY_OPAQUE, b"y")
            self.opaque_dirs.add(real)
            return
        if real + (victim,) in self.layer_paths:
            return  # whiteouts hide lower layers only, never entries of their own layer
        try:
            os.mknod(victim, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=dfd)
        except FileExistsError:
            return
        if self.same_owner:
            os.chown(victim, 0, 0, dir_fd=dfd, follow_symlinks=False)

    def clear_opaque(self, dfd: int, real: tuple[bytes, ...]) -> None:
        """Remove what lower layers put in this directory, keeping what this layer created."""
        for child in os.listdir(dfd):
            child = os.fsencode(child)
            cpath = real + (child,)
            st = os.stat(child, dir_fd=dfd, follow_symlinks=False)
            if cpath not in self.layer_paths:
                if stat.S_ISDIR(st.st_mode):
                    _rmtree(child, dir_fd=dfd)
                else:
                    os.unlink(child, dir_fd=dfd)
            elif stat.S_ISDIR(st.st_mode):
                sub = os.open(child, _DIR_FLAGS, dir_fd=dfd)
                try:
                    self.clear_opaque(sub, cpath)
                finally:
                    os.close(sub)

    def finish_dir_times(self) -> None:
        """Directory mtimes last (deepest first), since creating their contents changed them."""
        self.invalidate()  # also waits for the file writers
        for comps, mt in reversed(self.dir_times):
            self.hops = 0
            if not comps:
                os.utime(self.root, ns=(mt, mt))
                continue
            try:
                parent = self.resolve_dir(comps[:-1], _DUMMY, create=False)
                if parent is not None:
                    os.utime(comps[-1], ns=(mt, mt), dir_fd=parent[0], follow_symlinks=False)
            except (FileNotFoundError, NotADirectoryError, OCIError):
                continue  # removed or replaced later in the layer
        self.invalidate()


_DUMMY = tf.Entry(b"", tf.DIR, 0, 0, 0, 0, 0)


def _rmtree(name: bytes, *, dir_fd: int) -> None:
    """Remove directory `name` in `dir_fd` and everything below, by fds, never following symlinks.

    Iterative: shutil.rmtree recurses and a hostile layer can nest directories thousands deep.
    """
    stack: list[tuple[int, bytes, int, list[str] | None]] = [(dir_fd, name, os.open(name, _DIR_FLAGS, dir_fd=dir_fd),
                                                               None)]
    try:
        while stack:
            parent, nm, fd, names = stack[-1]
            if names is None:
                names = os.listdir(fd)
                stack[-1] = (parent, nm, fd, names)
            if names:
                child = os.fsencode(names.pop())
                st = os.stat(child, dir_fd=fd, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    stack.append((fd, child, os.open(child, _DIR_FLAGS, dir_fd=fd), None))
                else:
                    os.unlink(child, dir_fd=fd)
            else:
                stack.pop()
                os.close(fd)
                os.rmdir(nm, dir_fd=parent)
    finally:
        for _, _, fd, _ in stack:
            os.close(fd)


def _climbs_out(real_dir: tuple[bytes, ...], target: bytes) -> bool:
    depth = len(real_dir)
    for part in target.split(b"/"):
        if part == b"..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in (b"", b"."):
            depth += 1
    return False


def _ns(mtime: float) -> int:
    return int(round(mtime * 1_000_000_000)) if isinstance(mtime, float) else int(mtime) * 1_000_000_000


def _drain(data) -> None:
    for _ in data:
        pass


def apply_layer(src: BinaryIO | str | os.PathLike, rootfs: str | os.PathLike, *, compression: str | None = None,
                expected_diff_id: "str | Digest | None" = None, expected_digest: "str | Digest | None" = None,
                same_owner: bool = True, xattrs: bool = True, threads: int = 1, workers: int = 2,
                whiteouts: str | None = None, blob_verified: bool = False) -> Digest:
    """Apply the layer blob `src` (a stream or a path) on top of the directory `rootfs`; return its diff_id.

    compression: None/'auto' sniffs the magic; 'gzip', 'zstd' or '' insist on one.
    same_owner: lchown entries to their uid/gid (False for rootless use).
    threads: gzip decompression threads (0: inline). workers: threads creating small files (0: inline).
    whiteouts: None deletes what `.wh.NAME` / `.wh..wh..opq` hide (a flattened rootfs); "overlay" writes
      overlayfs whiteouts instead -- a 0/0 char device NAME and the xattr trusted.overlay.opaque=y on opaque
      dirs -- for a snapshotter applying each layer into its own (fresh) dir used as an overlay lowerdir.
      In that mode trusted.overlay.* xattrs carried by the layer itself are dropped.
    blob_verified: the caller already verified the compressed blob's digest (e.g. while downloading it):
      the compressed bytes are not hashed again and expected_digest is not checked; diff_id still is.
      Without expected_digest the compressed bytes are never hashed either.
    Raises UnsafeArchive for entries that would leave the rootfs, InvalidLayer for malformed tars,
    DigestMismatch if the stream does not match expected_diff_id/expected_digest (after applying!).
    """
    if whiteouts not in (None, "overlay"):
        raise OCIError(f"apply_layer: unknown whiteouts mode {whiteouts!r} (want None or 'overlay')")
    want_diff = Digest.parse(expected_diff_id) if expected_diff_id is not None else None
    want_digest = Digest.parse(expected_digest) if expected_digest is not None and not blob_verified else None
    if isinstance(src, (str, bytes, os.PathLike)):
        try:
            f = open(src, "rb")
        except OSError as e:
            raise InvalidLayer(f"{os.fsdecode(os.fspath(src))}: cannot open layer: {e.strerror or e}") from None
        with f:
            return apply_layer(f, rootfs, compression=compression, expected_diff_id=want_diff,
                               expected_digest=want_digest, same_owner=same_owner, xattrs=xattrs, threads=threads,
                               workers=workers, whiteouts=whiteouts)

    try:
        root_fd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise InvalidLayer(f"{os.fspath(rootfs)}: cannot open rootfs: {e.strerror}") from None
    reader = DecompressingReader(src, compression, algorithm=want_diff.algorithm if want_diff else "sha256",
                                 digest_algorithm=want_digest.algorithm if want_digest else None, threads=threads,
                                 hash_blob=want_digest is not None)
    applier = _Applier(root_fd, same_owner=same_owner, xattrs=xattrs, workers=workers,
                       overlay=whiteouts == "overlay")
    try:
        tar = tf.TarReader(reader.read)
        for entry in tar:
            try:
                applier.apply(entry, tar.data(entry))
            except OSError as e:
                raise InvalidLayer(f"layer entry {entry.display!r}: {e.strerror or e}") from None
            except ValueError as e:  # e.g. embedded NUL reaching an os.* call
                raise UnsafeArchive(f"layer entry {entry.display!r}: {e}") from None
            except RecursionError:
                raise InvalidLayer(f"layer entry {entry.display!r}: directories nested too deep") from None
        try:
            applier.finish_dir_times()
        except OSError as e:
            raise InvalidLayer(f"{os.fspath(rootfs)}: setting directory times: {e.strerror or e}") from None
        got = reader.finish()
    finally:
        reader.close()
        applier.close()
        os.close(root_fd)
    if want_digest is not None and got.digest != want_digest:
        raise DigestMismatch(f"layer blob digest mismatch: expected {want_digest}, got {got.digest}"
                             f" (rootfs may be partly applied: discard it)")
    if want_diff is not None and got.diff_id != want_diff:
        raise DigestMismatch(f"layer diff_id mismatch: expected {want_diff}, got {got.diff_id}"
                             f" (rootfs may be partly applied: discard it)")
    return got.diff_id
