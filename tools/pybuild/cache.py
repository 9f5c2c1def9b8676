"""The build cache under --cache-dir: content-addressed step results, layer blobs, unpacked layer dirs.

    <cache>/oci/           an OCI layout holding every layer, config and manifest blob (and base images)
    <cache>/steps/<key>    a step's result (JSON: the layer it added, or none), written atomically
    <cache>/ovl/<id>       a built layer's overlay upper dir, kept as an overlayfs lowerdir (made once)
    <cache>/flat/<id>      a chain of layers applied into one directory (base images, fallback)
    <cache>/mounts/<id>    RUN --mount=type=cache directories
    <cache>/run            the runtime's --root; <cache>/tmp scratch space (same filesystem)

Keys are sha256 of everything a step's result depends on (see solver.step_key). Writers take
flocks under <cache>/locks so parallel builds sharing a cache never see half-written entries.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

from pyoci.fsutil import atomic_write
from pyoci.layer import apply_layer
from pyoci.layout import Layout

from .errors import BuildError

DEFAULT_DIR = "~/.cache/pybuild"


def default_cache_dir() -> str:
    return os.environ.get("PYBUILD_CACHE") or os.path.expanduser(DEFAULT_DIR)


@dataclass(frozen=True)
class Layer:
    """One layer of a snapshot: its blob (in the cache layout) and its uncompressed diff_id."""

    digest: str
    diff_id: str
    size: int
    media_type: str

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


Chain = tuple[Layer, ...]


def chain_id(chain: Chain) -> str:
    """The OCI ChainID of a list of layers (hex), "" for the empty chain."""
    cur = ""
    for layer in chain:
        cur = layer.diff_id if not cur else "sha256:" + hashlib.sha256(f"{cur} {layer.diff_id}".encode()).hexdigest()
    return cur.split(":", 1)[-1]


def short_id(diff_id: str) -> str:
    # short names keep overlayfs' lowerdir option (one page at most) small: ~200 layers fit
    return diff_id.split(":", 1)[-1][:20]


@dataclass(frozen=True)
class StepResult:
    """What the cache keeps per step key: the layer the step added (None: no filesystem change)."""

    layer: Layer | None
    empty: bool = False  # the step ran but changed nothing (history gets empty_layer)

    def to_json(self) -> bytes:
        return json.dumps({"layer": asdict(self.layer) if self.layer else None, "empty": self.empty},
                          sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "StepResult":
        doc = json.loads(data)
        layer = Layer(**doc["layer"]) if doc.get("layer") else None
        return cls(layer, bool(doc.get("empty")))


class BuildCache:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(os.path.abspath(os.path.expanduser(os.fspath(root))))
        try:
            for sub in ("steps", "ovl", "flat", "mounts", "run", "tmp", "locks", "empty"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
            oci = self.root / "oci"
            # our own layout: skip re-validating oci-layout on every build (startup time)
            self.layout = Layout(oci) if (oci / "oci-layout").is_file() else Layout.init(oci)
        except OSError as e:
            raise BuildError(f"cache dir {self.root}: {e.strerror or e}") from None

    # -- locking --------------------------------------------------------------------------------
    @contextmanager
    def lock(self, name: str, exclusive: bool = True) -> Iterator[None]:
        path = self.root / "locks" / hashlib.sha256(name.encode()).hexdigest()[:32]
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    @contextmanager
    def try_lock(self, name: str) -> Iterator[bool]:
        """An exclusive flock if free right now: yields whether it was taken."""
        path = self.root / "locks" / hashlib.sha256(name.encode()).hexdigest()[:32]
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                got = True
            except BlockingIOError:
                got = False
            yield got
        finally:
            os.close(fd)

    # -- step results ---------------------------------------------------------------------------
    def _step_path(self, key: str) -> Path:
        return self.root / "steps" / key[:2] / key

    def get(self, key: str) -> StepResult | None:
        try:
            res = StepResult.from_json(self._step_path(key).read_bytes())
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if res.layer is not None and not self.layout.has_blob(res.layer.digest):
            return None  # blob gone (gc): rebuild
        return res

    def put(self, key: str, result: StepResult) -> None:
        path = self._step_path(key)
        path.parent.mkdir(exist_ok=True)
        atomic_write(path, result.to_json(), fsync=False)

    # -- directories ----------------------------------------------------------------------------
    def tmpdir(self, prefix: str) -> Path:
        # the pid in the name lets a later build sweep what a killed one left behind
        return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=self.root / "tmp"))

    def sweep(self) -> None:
        """Unmount and remove the scratch dirs of builds that died (SIGKILL, power loss)."""
        tmp = self.root / "tmp"
        try:
            names = os.listdir(tmp)
        except OSError:
            return
        dead = []
        for name in names:
            parts = name.split("-")
            if len(parts) < 3 or not parts[1].isdigit():
                continue
            try:
                os.kill(int(parts[1]), 0)
            except ProcessLookupError:
                dead.append(tmp / name)
            except PermissionError:
                pass
        if not dead:
            return
        from .snapshot import umount

        with open("/proc/self/mountinfo") as f:
            mounts = [line.split()[4] for line in f]
        for d in dead:
            for mp in reversed(mounts):
                if mp == str(d) or mp.startswith(str(d) + "/"):
                    try:
                        umount(mp)
                    except BuildError:
                        pass
            shutil.rmtree(d, ignore_errors=True)

    def ovl_dir(self, layer: Layer) -> Path:
        return self.root / "ovl" / short_id(layer.diff_id)

    def keep_upper(self, layer: Layer, upper: Path) -> None:
        """Keep a step's overlay upper dir as the unpacked form of its layer (first one wins)."""
        dest = self.ovl_dir(layer)
        try:
            os.rename(upper, dest)
        except OSError:  # already there (a concurrent or earlier build): ours is redundant
            shutil.rmtree(upper, ignore_errors=True)

    def flat_dir(self, chain: Chain) -> Path:
        """The chain applied into one directory, made once (under a lock) from the layout's blobs."""
        if not chain:
            return self.root / "empty"
        dest = self.root / "flat" / chain_id(chain)[:24]
        if dest.is_dir():
            return dest
        with self.lock("flat:" + dest.name):
            if dest.is_dir():
                return dest
            tmp = self.tmpdir("flat-")
            try:
                for layer in chain:
                    with self.layout.open_blob(layer.digest, verify=False) as f:
                        apply_layer(f, tmp, expected_diff_id=layer.diff_id)
                os.rename(tmp, dest)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        return dest

    def lower_dirs(self, chain: Chain) -> list[Path]:
        """Overlay lowerdirs for a chain, top first: kept upper dirs for the built layers on top of one
        flattened dir for the rest (base image layers, or layers whose upper dir is not here)."""
        tops: list[Path] = []
        i = len(chain)
        while i > 0 and self.ovl_dir(chain[i - 1]).is_dir() and len(tops) < 120:
            tops.append(self.ovl_dir(chain[i - 1]))
            i -= 1
        if i > 0:
            tops.append(self.flat_dir(chain[:i]))
        return tops

    def cache_mount_dir(self, ident: str) -> Path:
        d = self.root / "mounts" / hashlib.sha256(ident.encode()).hexdigest()[:32]
        d.mkdir(exist_ok=True)
        return d
