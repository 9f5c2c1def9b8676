"""Filesystem views of a chain of layers: overlayfs (lowerdirs = unpacked layers, a fresh upper dir),
or a copy-based fallback when overlay mounts are not possible.

A writable view's changes become the step's layer: the overlay upper dir archived with overlay
whiteouts (then kept in the cache as that layer's lowerdir), or, in copy mode, the diff between the
flattened parent and the modified copy.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from pyoci.layer import create_layer, create_layer_from_diff

from .cache import BuildCache, Chain, Layer
from .errors import BuildError

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
MNT_DETACH = 2


def umount(path: str | os.PathLike[str]) -> None:
    p = os.fsencode(os.fspath(path))
    if _libc.umount2(p, 0) != 0:
        err = ctypes.get_errno()
        if err == 22:  # EINVAL: not mounted
            return
        if _libc.umount2(p, MNT_DETACH) != 0:  # busy: detach lazily rather than leak it
            raise BuildError(f"cannot unmount {os.fsdecode(p)}: {os.strerror(ctypes.get_errno())}")


def mount_overlay(cache_root: Path, lowers: list[Path], target: Path, upper: Path | None = None,
                  work: Path | None = None) -> None:
    """mount -t overlay with lowerdirs relative to the cache root (cwd of the mount), keeping the
    option string short."""
    rel = [os.path.relpath(p, cache_root) for p in lowers]
    opts = "lowerdir=" + ":".join(rel)
    if upper is not None:
        opts += f",upperdir={os.path.relpath(upper, cache_root)},workdir={os.path.relpath(work, cache_root)}"
    opts += ",index=off,redirect_dir=off,metacopy=off"
    r = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(target)], cwd=cache_root,
                       capture_output=True, text=True)
    if r.returncode != 0:
        # older kernels reject some of the feature options: retry without them
        opts = opts.replace(",index=off,redirect_dir=off,metacopy=off", "")
        r = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(target)], cwd=cache_root,
                           capture_output=True, text=True)
    if r.returncode != 0:
        raise BuildError(f"cannot mount an overlay at {target}: {r.stderr.strip() or 'mount failed'}")


@dataclass
class View:
    """A writable rootfs for one step. `upper` is the overlay upper dir (None in copy mode)."""

    root: Path
    upper: Path | None
    base: Path | None  # copy mode: the unmodified flattened parent
    layer: Layer | None = None  # set by commit(); the upper dir is then kept for it


def overlay_supported(cache: BuildCache) -> bool:
    mode = os.environ.get("PYBUILD_SNAPSHOTTER", "").strip()
    if mode in ("copy", "overlay"):
        return mode == "overlay"
    probe = cache.tmpdir("probe-")
    try:
        for d in ("l", "u", "w", "m"):
            (probe / d).mkdir()
        try:
            mount_overlay(cache.root, [probe / "l"], probe / "m", probe / "u", probe / "w")
        except BuildError:
            return False
        umount(probe / "m")
        return True
    finally:
        shutil.rmtree(probe, ignore_errors=True)


class Snapshotter:
    def __init__(self, cache: BuildCache, overlay: bool | None = None) -> None:
        self.cache = cache
        self._overlay = overlay

    @property
    def overlay(self) -> bool:
        # probed on first use only: a fully cached build never mounts anything
        if self._overlay is None:
            self._overlay = overlay_supported(self.cache)
        return self._overlay

    @contextmanager
    def writable(self, chain: Chain) -> Iterator[View]:
        tmp = self.cache.tmpdir("step-")
        try:
            if self.overlay:
                lowers = self.cache.lower_dirs(chain) or [self.cache.root / "empty"]
                for d in ("upper", "work", "merged"):
                    (tmp / d).mkdir()
                os.chmod(tmp / "upper", 0o755)
                mount_overlay(self.cache.root, lowers, tmp / "merged", tmp / "upper", tmp / "work")
                view = View(tmp / "merged", tmp / "upper", None)
                try:
                    yield view
                finally:
                    umount(tmp / "merged")
                if view.layer is not None:
                    self.cache.keep_upper(view.layer, tmp / "upper")
            else:
                base = self.cache.flat_dir(chain)
                root = tmp / "rootfs"
                _copy_tree(base, root)
                yield View(root, None, base)
        finally:
            _rmtree(tmp)

    def commit(self, view: View, epoch: int | None) -> Layer | None:
        """The layer of the view's changes (None when nothing changed), stored in the cache layout."""
        layout = self.cache.layout
        fd, tmp = tempfile.mkstemp(prefix=".tmp-layer-", dir=layout.path / "blobs")
        os.close(fd)
        try:
            if view.upper is not None:
                if not any(os.scandir(view.upper)):
                    return None
                info = create_layer(view.upper, tmp, whiteouts="overlay", mtime=epoch)
            else:
                info = create_layer_from_diff(view.base, view.root, tmp, mtime=epoch)  # type: ignore[arg-type]
                if info.size <= 64 and _tar_is_empty(tmp):
                    return None
            with open(tmp, "rb") as f:
                layout.put_blob(f, info.digest, info.size)
        finally:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        view.layer = Layer(str(info.digest), str(info.diff_id), info.size, info.media_type)
        return view.layer

    @contextmanager
    def readonly(self, chain: Chain) -> Iterator[Path]:
        """A read-only rootfs of the chain (for COPY --from and RUN --mount from=)."""
        if not self.overlay:
            yield self.cache.flat_dir(chain)
            return
        lowers = self.cache.lower_dirs(chain)
        if not lowers:
            yield self.cache.root / "empty"
            return
        if len(lowers) == 1 and not lowers[0].is_relative_to(self.cache.root / "ovl"):
            yield lowers[0]  # a flattened dir is already the rootfs
            return
        tmp = self.cache.tmpdir("ro-")
        try:
            for d in ("upper", "work", "merged"):
                (tmp / d).mkdir()
            # an upper dir nobody writes: works for a single lowerdir on every kernel
            mount_overlay(self.cache.root, lowers, tmp / "merged", tmp / "upper", tmp / "work")
            try:
                yield tmp / "merged"
            finally:
                umount(tmp / "merged")
        finally:
            _rmtree(tmp)


def _tar_is_empty(path: str) -> bool:
    from pyoci.layer import open_reader

    with open(path, "rb") as f:
        r = open_reader(f)
        data = r.read(1024)
    return not data.strip(b"\0")


def _copy_tree(src: Path, dst: Path) -> None:
    r = subprocess.run(["cp", "-a", "--", str(src), str(dst)], capture_output=True, text=True)
    if r.returncode != 0:
        raise BuildError(f"cannot copy {src}: {r.stderr.strip()}")


def _rmtree(path: Path) -> None:
    if not path.exists():
        return
    # never follow into a still-mounted dir: the mount was unmounted (or detached) before this
    shutil.rmtree(path, ignore_errors=True)
    if path.exists():
        subprocess.run(["rm", "-rf", "--one-file-system", str(path)], capture_output=True)
