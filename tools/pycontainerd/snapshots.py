"""Snapshotters: `overlayfs` (each layer unpacked once into its own directory, stacked with overlay
mounts) and `native` (a full copy per snapshot) when overlay is unavailable.

Storage is shared by namespaces: a committed layer snapshot is named and stored by its chainID, so
every image and container using that layer, in any namespace, uses the one directory. Each namespace
has its own records (name → storage id, parent, kind, labels), as containerd's metadata snapshotter.
Storage: `<root>/<snapshotter>/snapshots/<id>/{fs,work}`, staging under `<root>/<snapshotter>/tmp/`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import BinaryIO

from pyoci.layer.apply import apply_layer

from . import errdefs
from .metadata import NamespacedTables, Table, now

log = logging.getLogger("pycontainerd.snapshots")

ACTIVE, COMMITTED, VIEW = "active", "committed", "view"
_KIND_NUM = {VIEW: 1, ACTIVE: 2, COMMITTED: 3}  # containerd's snapshots.Kind values


def chain_ids(diff_ids: list[str]) -> list[str]:
    """containerd's identity.ChainIDs: chain[0] = diff[0], chain[n] = sha256(chain[n-1] + " " + diff[n])."""
    out: list[str] = []
    for d in diff_ids:
        out.append(d if not out else "sha256:" + hashlib.sha256(f"{out[-1]} {d}".encode()).hexdigest())
    return out


def overlay_supported(root: Path) -> bool:
    """Try one overlay mount under `root` (the kernel, the backing filesystem and our privileges all count)."""
    base = Path(tempfile.mkdtemp(prefix="overlay-check-", dir=root))
    try:
        for d in ("lower1", "lower2", "upper", "work", "merged"):
            (base / d).mkdir()
        opts = f"lowerdir={base}/lower2:{base}/lower1,upperdir={base}/upper,workdir={base}/work"
        r = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(base / "merged")],
                           capture_output=True)
        if r.returncode != 0:
            return False
        subprocess.run(["umount", str(base / "merged")], capture_output=True)
        return True
    except OSError:
        return False
    finally:
        shutil.rmtree(base, ignore_errors=True)


class Snapshotter:
    name = "native"

    def __init__(self, root: str | os.PathLike, metadata: str | os.PathLike) -> None:
        self.root = Path(root) / self.name
        self.dirs = self.root / "snapshots"
        self.tmp = self.root / "tmp"
        for d in (self.dirs, self.tmp):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
        for entry in self.tmp.iterdir():  # unpacks a killed daemon left half done: never committed
            remove_tree(entry)
        self.storage = Table(self.root / "metadata.json", "snapshot storage")
        self.records = NamespacedTables(metadata, f"snapshots.{self.name}.json", "snapshot")
        self._lock = threading.RLock()
        self._unpacking: dict[str, threading.Lock] = {}
        self._usage: dict[str, dict] = {}  # committed storage never changes: its usage is walked once

    # -- storage -----------------------------------------------------------------------------------
    def fs(self, sid: str) -> Path:
        return self.dirs / self.storage.get(sid)["id"] / "fs"

    def _new_dir(self) -> tuple[str, Path]:
        while True:
            dir_id = secrets.token_hex(4)
            path = self.dirs / dir_id
            try:
                path.mkdir(mode=0o700)
                return dir_id, path
            except FileExistsError:
                continue

    def _lowers(self, sid: str) -> list[str]:
        """The fs dirs of `sid` and its ancestors, nearest first."""
        out = []
        while sid:
            row = self.storage.get(sid)
            out.append(str(self.dirs / row["id"] / "fs"))
            sid = row.get("parent", "")
        return out

    # -- records -----------------------------------------------------------------------------------
    def _info(self, row: dict) -> dict:
        return {"name": row["name"], "parent": row.get("parent", ""), "kind": row["kind"],
                "labels": row.get("labels", {}), "created_at": row["created_at"], "updated_at": row["updated_at"]}

    def stat(self, namespace: str, key: str) -> dict:
        return self._info(self.records(namespace).get(key))

    def list(self, namespace: str) -> list[dict]:
        return sorted((self._info(r) for r in self.records(namespace).list()), key=lambda r: r["name"])

    def update(self, namespace: str, key: str, labels: dict) -> dict:
        def change(row: dict) -> None:
            row["labels"] = {k: v for k, v in labels.items() if v}
            row["updated_at"] = now()

        return self._info(self.records(namespace).update(key, change))

    def _parent_sid(self, namespace: str, parent: str) -> str:
        if not parent:
            return ""
        row = self.records(namespace).find(parent)
        if row is None:
            raise errdefs.NotFound(f"parent snapshot {parent!r}: not found")
        if row["kind"] != COMMITTED:
            raise errdefs.InvalidArgument(f"parent snapshot {parent!r} is not committed")
        return row["sid"]

    def _create(self, namespace: str, key: str, parent: str, kind: str, labels: dict | None) -> list[dict]:
        if not key:
            raise errdefs.InvalidArgument("snapshot key must not be empty")
        with self._lock:
            if key in self.records(namespace):
                raise errdefs.AlreadyExists(f"snapshot {key!r}: already exists")
            parent_sid = self._parent_sid(namespace, parent)
            dir_id, path = self._new_dir()
            try:
                self._populate(path, parent_sid, kind)
            except BaseException:
                shutil.rmtree(path, ignore_errors=True)
                raise
            sid = f"{kind}:{namespace}/{key}:{dir_id}"
            stamp = now()
            self.storage.put(sid, {"id": dir_id, "kind": kind, "parent": parent_sid, "created_at": stamp})
            self.records(namespace).put(key, {"name": key, "parent": parent, "kind": kind, "sid": sid,
                                              "labels": labels or {}, "created_at": stamp, "updated_at": stamp})
        return self.mounts(namespace, key)

    def _populate(self, path: Path, parent_sid: str, kind: str) -> None:
        (path / "fs").mkdir(mode=0o755)
        if parent_sid:
            copy_tree(self.fs(parent_sid), path / "fs")

    def prepare(self, namespace: str, key: str, parent: str = "", labels: dict | None = None) -> list[dict]:
        return self._create(namespace, key, parent, ACTIVE, labels)

    def view(self, namespace: str, key: str, parent: str = "", labels: dict | None = None) -> list[dict]:
        return self._create(namespace, key, parent, VIEW, labels)

    def mounts(self, namespace: str, key: str) -> list[dict]:
        row = self.records(namespace).get(key)
        if row["kind"] == COMMITTED:
            raise errdefs.FailedPrecondition(f"snapshot {key!r} is committed: prepare or view it to mount it")
        fs = str(self.fs(row["sid"]))
        return [{"type": "bind", "source": fs, "target": "",
                 "options": ["rbind", "ro" if row["kind"] == VIEW else "rw"]}]

    def commit(self, namespace: str, name: str, key: str, labels: dict | None = None) -> dict:
        with self._lock:
            table = self.records(namespace)
            row = table.get(key)
            if row["kind"] != ACTIVE:
                raise errdefs.FailedPrecondition(f"snapshot {key!r} is not active")
            if name in table:
                raise errdefs.AlreadyExists(f"snapshot {name!r}: already exists")
            self.storage.update(row["sid"], lambda r: r.update(kind=COMMITTED))
            work = self.dirs / self.storage.get(row["sid"])["id"] / "work"
            shutil.rmtree(work, ignore_errors=True)
            stamp = now()
            table.delete(key)
            new = table.put(name, {**row, "name": name, "kind": COMMITTED, "labels": labels or row.get("labels", {}),
                                   "updated_at": stamp})
        return self._info(new)

    def remove(self, namespace: str, key: str) -> None:
        """Remove a snapshot from `namespace`; an active/view one's storage goes at once, a committed
        layer's when no namespace uses it (gc)."""
        with self._lock:
            table = self.records(namespace)
            row = table.get(key)
            if any(r.get("parent") == key for r in table.list()):
                raise errdefs.FailedPrecondition(f"cannot remove snapshot {key!r}: it has children")
            table.delete(key)
            if row["kind"] != COMMITTED:
                self._remove_storage(row["sid"])

    def _remove_storage(self, sid: str) -> None:
        row = self.storage.find(sid)
        if row is None:
            return
        path = self.dirs / row["id"]
        if path.exists():
            # rename first: a half-removed tree is never mistaken for a snapshot
            trash = self.tmp / f"rm-{row['id']}-{secrets.token_hex(3)}"
            os.rename(path, trash)
            remove_tree(trash)
        self.storage.discard(sid)
        self._usage.pop(sid, None)

    def usage(self, namespace: str, key: str) -> dict:
        row = self.records(namespace).get(key)
        if row["kind"] == COMMITTED and row["sid"] in self._usage:
            return dict(self._usage[row["sid"]])
        size = inodes = 0
        root = self.dirs / self.storage.get(row["sid"])["id"] / "fs"
        for dirpath, dirnames, filenames in os.walk(root):
            for n in dirnames + filenames:
                try:
                    st = os.lstat(os.path.join(dirpath, n))
                except FileNotFoundError:
                    continue
                inodes += 1
                size += st.st_blocks * 512
        out = {"size": size, "inodes": inodes + 1}
        if row["kind"] == COMMITTED:
            self._usage[row["sid"]] = dict(out)
        return out

    # -- unpacking -----------------------------------------------------------------------------------
    def has_committed(self, namespace: str, chain_id: str) -> bool:
        row = self.records(namespace).find(chain_id)
        return row is not None and row["kind"] == COMMITTED

    # Overlay layers are independent directories, so they can be applied in parallel and committed
    # in chain order afterwards; a native snapshot starts as a copy of its parent, so it cannot.
    parallel_unpack = False

    def stored(self, chain_id: str) -> bool:
        return self.storage.find(chain_id) is not None

    def stage_layer(self, blob: "str | os.PathLike | BinaryIO", diff_id: str, parent_chain: str = "") -> Path:
        """Apply a layer into a fresh staging dir (verified against diff_id); commit it with commit_staged."""
        if parent_chain and not self.parallel_unpack and not self.stored(parent_chain):
            raise errdefs.FailedPrecondition(f"parent snapshot {parent_chain} is not unpacked")
        staging = Path(tempfile.mkdtemp(prefix="unpack-", dir=self.tmp))
        try:
            self._apply(staging, parent_chain, blob, diff_id)
        except BaseException:
            remove_tree(staging)
            raise
        return staging

    def commit_staged(self, namespace: str, chain_id: str, parent_chain: str, staging: Path | None,
                      labels: dict | None = None) -> bool:
        """Rename a staged layer into place as snapshot `chain_id` (unless another unpack won the race)
        and record it in `namespace`. Returns True if this staging became the snapshot."""
        committed = False
        with self._lock:
            if staging is not None and not self.stored(chain_id):
                if parent_chain and not self.stored(parent_chain):
                    remove_tree(staging)
                    raise errdefs.FailedPrecondition(f"parent snapshot {parent_chain} is not unpacked")
                dir_id, path = self._new_dir()
                path.rmdir()
                os.rename(staging, path)  # verified: only now does it become a snapshot
                self.storage.put(chain_id, {"id": dir_id, "kind": COMMITTED, "parent": parent_chain or "",
                                            "created_at": now()})
                committed = True
            elif staging is not None:
                remove_tree(staging)
            if not self.stored(chain_id):
                raise errdefs.NotFound(f"snapshot {chain_id} is not unpacked")
            table = self.records(namespace)
            if chain_id not in table:
                stamp = now()
                table.put(chain_id, {"name": chain_id, "parent": parent_chain or "", "kind": COMMITTED,
                                     "sid": chain_id, "labels": labels or {}, "created_at": stamp,
                                     "updated_at": stamp})
        return committed

    def unpack_layer(self, namespace: str, chain_id: str, parent_chain: str, blob: "str | os.PathLike | BinaryIO",
                     diff_id: str, labels: dict | None = None) -> bool:
        """Ensure the committed snapshot `chain_id` (layer `diff_id` over `parent_chain`) exists in
        `namespace`. The layer is applied once per daemon: later namespaces/images only add a record.
        Returns True if it was unpacked now."""
        with self._lock:
            lock = self._unpacking.setdefault(chain_id, threading.Lock())
        with lock:
            staging = None if self.stored(chain_id) else self.stage_layer(blob, diff_id, parent_chain)
            return self.commit_staged(namespace, chain_id, parent_chain, staging, labels)

    def _apply(self, staging: Path, parent_sid: str, blob, diff_id: str) -> None:
        (staging / "fs").mkdir(mode=0o755)
        if parent_sid:
            copy_tree(self.fs(parent_sid), staging / "fs")
        # content-store blobs were verified when written: only the diff_id is checked here
        apply_layer(blob, staging / "fs", expected_diff_id=diff_id, blob_verified=True, threads=1)

    # -- gc -------------------------------------------------------------------------------------------
    def sweep_storage(self) -> list[str]:
        """Remove storage no namespace record refers to, and stray staging/orphan dirs; returns sids."""
        with self._lock:
            used = set()
            for _ns, table in self.records.all():
                used.update(r["sid"] for r in table.list())
            # ancestors of used storage stay too
            stack = list(used)
            while stack:
                row = self.storage.find(stack.pop())
                if row and row.get("parent") and row["parent"] not in used:
                    used.add(row["parent"])
                    stack.append(row["parent"])
            removed = [sid for sid in self.storage.keys() if sid not in used]
            for sid in removed:
                self._remove_storage(sid)
            known = {r["id"] for r in self.storage.list()}
            for entry in self.dirs.iterdir():
                if entry.name not in known:
                    remove_tree(entry)
            for entry in self.tmp.iterdir():
                if not any(lock.locked() for lock in self._unpacking.values()):
                    remove_tree(entry)
        return removed


class OverlaySnapshotter(Snapshotter):
    name = "overlayfs"
    parallel_unpack = True

    def _populate(self, path: Path, parent_sid: str, kind: str) -> None:
        (path / "fs").mkdir(mode=0o755)
        if kind == ACTIVE:
            (path / "work").mkdir(mode=0o711)

    def mounts(self, namespace: str, key: str) -> list[dict]:
        row = self.records(namespace).get(key)
        if row["kind"] == COMMITTED:
            raise errdefs.FailedPrecondition(f"snapshot {key!r} is committed: prepare or view it to mount it")
        store = self.storage.get(row["sid"])
        own = self.dirs / store["id"]
        lowers = self._lowers(store["parent"]) if store.get("parent") else []
        if row["kind"] == VIEW:
            if not lowers:
                return [{"type": "bind", "source": str(own / "fs"), "target": "", "options": ["rbind", "ro"]}]
            if len(lowers) == 1:
                return [{"type": "bind", "source": lowers[0], "target": "", "options": ["rbind", "ro"]}]
            return [{"type": "overlay", "source": "overlay", "target": "",
                     "options": ["index=off", "lowerdir=" + ":".join(lowers)]}]
        if not lowers:
            return [{"type": "bind", "source": str(own / "fs"), "target": "", "options": ["rbind", "rw"]}]
        return [{"type": "overlay", "source": "overlay", "target": "",
                 "options": ["index=off", f"workdir={own / 'work'}", f"upperdir={own / 'fs'}",
                             "lowerdir=" + ":".join(lowers)]}]

    def _apply(self, staging: Path, parent_sid: str, blob, diff_id: str) -> None:
        (staging / "fs").mkdir(mode=0o755)
        apply_overlay_layer(blob, staging / "fs", diff_id)


def apply_overlay_layer(blob, fs: Path, diff_id: str) -> None:
    """Apply a layer into an empty dir as an overlay layer: OCI whiteouts become overlay whiteouts
    (0/0 char devices) and opaque markers the trusted.overlay.opaque xattr (pyoci's whiteouts="overlay").
    Blobs come from the content store, verified when they were written: only the diff_id is checked."""
    apply_layer(blob, fs, expected_diff_id=diff_id, whiteouts="overlay", blob_verified=True, threads=1)


def copy_tree(src: Path, dst: Path) -> None:
    """Copy a rootfs with owners, modes, xattrs, links and devices (cp -a, reflinks when possible)."""
    r = subprocess.run(["cp", "-a", "--reflink=auto", f"{src}/.", str(dst)], capture_output=True, text=True)
    if r.returncode != 0:
        raise errdefs.Internal(f"copying snapshot {src}: {r.stderr.strip().splitlines()[-1:] or r.returncode}")


def remove_tree(path: Path) -> None:
    def onerror(func, p, exc):
        if isinstance(exc[1], FileNotFoundError):
            return
        try:
            os.chmod(p, 0o700)
            func(p)
        except OSError:
            pass

    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, onerror=onerror)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def open_snapshotter(root: str | os.PathLike, name: str, daemon) -> Snapshotter:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    metadata = Path(daemon.root) / "metadata" if daemon is not None else root / "metadata"
    if name == "native":
        return Snapshotter(root, metadata)
    if name in ("overlayfs", "overlay") or overlay_supported(root):
        return OverlaySnapshotter(root, metadata)
    log.warning("overlayfs is not available under %s: using the native (copying) snapshotter", root)
    return Snapshotter(root, metadata)
