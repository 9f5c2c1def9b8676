"""The image store (name → target descriptor, per namespace) and the work on images: pull, push,
unpack into snapshots, import/export of docker-archive and oci-archive, platform selection.

Image records are containerd's: `{name, target, labels, created_at, updated_at}`. Pulled content is
held by a lease until the image record exists, so a concurrent gc never removes it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from pyoci import mediatypes as mt
from pyoci import platform as platforms
from pyoci.errors import NotFound as OCINotFound
from pyoci.layout import Layout, REF_NAME, children, dumps
from pyoci.reference import parse as parse_reference
from pyoci.registry.copy import client_for

from . import errdefs
from .metadata import NamespacedTables, now
from .snapshots import chain_ids, remove_tree

log = logging.getLogger("pycontainerd.images")

Progress = Callable[[dict], None]
IMAGE_NAME_ANNOTATION = "io.containerd.image.name"
DOWNLOAD_WORKERS = 3
UNPACK_WORKERS = 2
_DOC_TYPES = mt.MANIFEST_TYPES + mt.INDEX_TYPES


def normalize_name(name: str) -> str:
    """`busybox` → `docker.io/library/busybox:latest`, as containerd's clients store names."""
    try:
        return str(parse_reference(name).docker_ref())
    except Exception as exc:  # pyoci's InvalidReference, with its one-line message
        raise errdefs.InvalidArgument(f"invalid reference {name!r}: {exc}") from None


class _View(Layout):
    """The content layout seen with a made-up index.json (for pyoci's archive writers)."""

    def __init__(self, path: Path, manifests: list[dict]) -> None:
        super().__init__(path)
        self._doc = dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": manifests})

    def _index_bytes(self) -> bytes:
        return self._doc


class ImageStore:
    def __init__(self, metadata: str | os.PathLike, daemon) -> None:
        self.tables = NamespacedTables(metadata, "images.json", "image")
        self.daemon = daemon
        self._import_lock = threading.Lock()
        self._lock = threading.Lock()
        self._downloading: dict[str, threading.Lock] = {}

    @property
    def content(self):
        return self.daemon.content

    # -- records -----------------------------------------------------------------------------------
    def get(self, namespace: str, name: str) -> dict:
        row = self.tables(namespace).find(name)
        if row is None:
            raise errdefs.NotFound(f"image \"{name}\": not found")
        return row

    def list(self, namespace: str, filters: list[str] | None = None) -> list[dict]:
        from .events import matcher

        match = matcher(filters)
        return sorted((r for r in self.tables(namespace).list() if match(r)), key=lambda r: r["name"])

    def create(self, namespace: str, image: dict) -> dict:
        name = image.get("name") or ""
        target = image.get("target") or {}
        if not name:
            raise errdefs.InvalidArgument("image name must not be empty")
        for key in ("mediaType", "digest", "size"):
            if key not in target:
                raise errdefs.InvalidArgument(f"image {name!r}: target lacks {key!r}")
        stamp = now()
        row = {"name": name, "labels": image.get("labels") or {}, "target": target, "created_at": stamp,
               "updated_at": stamp}
        self.daemon.ensure_namespace(namespace)
        self.tables(namespace).create(name, row)
        self.daemon.publish(namespace, "/images/create", {"name": name, "labels": row["labels"]})
        return row

    def put(self, namespace: str, name: str, target: dict, labels: dict | None = None) -> dict:
        """Create or move `name` to `target` (a pull or an import of a name already there)."""
        existing = self.tables(namespace).find(name)
        if existing is None:
            try:
                return self.create(namespace, {"name": name, "target": target, "labels": labels or {}})
            except errdefs.AlreadyExists:
                existing = self.tables(namespace).get(name)

        def change(row: dict) -> None:
            row["target"] = target
            if labels:
                row["labels"] = {**row["labels"], **labels}
            row["updated_at"] = now()

        row = self.tables(namespace).update(name, change)
        self.daemon.publish(namespace, "/images/update", {"name": name, "labels": row["labels"]})
        return row

    def update(self, namespace: str, image: dict, fields: list[str] | None = None) -> dict:
        name = image.get("name") or ""

        def change(row: dict) -> None:
            if not fields or "target" in fields:
                if image.get("target"):
                    row["target"] = image["target"]
            if not fields or "labels" in fields:
                row["labels"] = image.get("labels") or {}
            for f in fields or []:
                if f.startswith("labels."):
                    key = f[len("labels."):]
                    value = (image.get("labels") or {}).get(key)
                    if value:
                        row["labels"][key] = value
                    else:
                        row["labels"].pop(key, None)
            row["updated_at"] = now()

        row = self.tables(namespace).update(name, change)
        self.daemon.publish(namespace, "/images/update", {"name": name, "labels": row["labels"]})
        return row

    def delete(self, namespace: str, name: str) -> None:
        try:
            self.tables(namespace).delete(name)
        except errdefs.NotFound:
            raise errdefs.NotFound(f"image \"{name}\": not found") from None
        self.daemon.publish(namespace, "/images/delete", {"name": name})

    # -- reading images ----------------------------------------------------------------------------
    def manifest(self, namespace: str, target: dict, platform: Any = None) -> tuple[dict, dict]:
        """(descriptor, manifest) for `platform` (None: this machine's) under an image target."""
        try:
            return self.content.layout.manifest_for(target, platform)
        except OCINotFound as exc:
            raise errdefs.NotFound(str(exc)) from None

    def config(self, namespace: str, name: str, platform: Any = None) -> tuple[dict, dict, dict]:
        """(manifest descriptor, manifest, config) of an image for a platform."""
        image = self.get(namespace, name)
        desc, manifest = self.manifest(namespace, image["target"], platform)
        cfg = self.content.read_json(namespace, manifest["config"]["digest"])
        return desc, manifest, cfg

    def chain_id(self, namespace: str, name: str, platform: Any = None) -> str:
        """The chainID of an image's top layer: the parent for a container's snapshot."""
        _, _, cfg = self.config(namespace, name, platform)
        chain = chain_ids(list((cfg.get("rootfs") or {}).get("diff_ids") or []))
        return chain[-1] if chain else ""

    def platforms_of(self, namespace: str, target: dict) -> list[dict]:
        layout = self.content.layout
        if target.get("mediaType") not in mt.INDEX_TYPES:
            return []
        try:
            doc = layout.read_json(target)
        except OCINotFound:
            return []
        return [m.get("platform") or {} for m in doc.get("manifests") or []]

    def size(self, namespace: str, target: dict, platform: Any = None) -> int:
        """Bytes of the content of one platform's image (manifest, config, layers), as `ctr images ls`."""
        try:
            desc, manifest = self.manifest(namespace, target, platform)
        except (errdefs.NotFound, OCINotFound):
            return int(target.get("size", 0))
        total = int(desc.get("size", 0)) + int(manifest.get("config", {}).get("size", 0))
        return total + sum(int(layer.get("size", 0)) for layer in manifest.get("layers") or [])

    # -- unpack -------------------------------------------------------------------------------------
    def unpack(self, namespace: str, name: str, platform: Any = None, progress: Progress | None = None,
               lease: str | None = None) -> str:
        """Make sure every layer of the image has its committed snapshot; returns the top chainID."""
        image = self.get(namespace, name)
        _, manifest = self.manifest(namespace, image["target"], platform)
        cfg = self.content.read_json(namespace, manifest["config"]["digest"])
        layers = manifest.get("layers") or []
        diff_ids = list((cfg.get("rootfs") or {}).get("diff_ids") or [])
        if len(diff_ids) != len(layers):
            raise errdefs.InvalidArgument(f"image {name}: {len(layers)} layers but {len(diff_ids)} diff_ids")
        chain = chain_ids(diff_ids)
        with self.daemon.gc.lock.shared():
            for i, layer in enumerate(layers):
                self._unpack_one(namespace, chain, diff_ids, i, layer, progress, lease)
        return chain[-1] if chain else ""

    def _unpack_one(self, namespace: str, chain: list[str], diff_ids: list[str], i: int, layer: dict,
                    progress: Progress | None, lease: str | None) -> None:
        snaps = self.daemon.snapshots
        if snaps.has_committed(namespace, chain[i]):
            return
        if lease:
            self.daemon.leases.add_resource(namespace, lease, f"snapshots/{snaps.name}", chain[i])
        if snaps.storage.find(chain[i]) is not None:  # unpacked for another namespace: share it
            snaps.unpack_layer(namespace, chain[i], chain[i - 1] if i else "", "", diff_ids[i])
            return
        if progress:
            progress({"ref": f"layer-{layer['digest']}", "status": "unpacking", "offset": 0,
                      "total": layer.get("size", 0)})
        path = self.content.blob_path(layer["digest"])
        if not path.exists():
            raise errdefs.NotFound(f"layer {layer['digest']}: content not found (pull the image again)")
        started = time.monotonic()
        if snaps.unpack_layer(namespace, chain[i], chain[i - 1] if i else "", path, diff_ids[i]):
            self.daemon.publish(namespace, "/snapshot/commit", {"key": f"extract-{chain[i]}", "name": chain[i],
                                                                 "snapshotter": snaps.name})
            log.debug("unpacked %s in %.2fs", layer["digest"], time.monotonic() - started)
        if progress:
            progress({"ref": f"layer-{layer['digest']}", "status": "unpacked", "offset": layer.get("size", 0),
                      "total": layer.get("size", 0)})

    # -- pull ---------------------------------------------------------------------------------------
    def pull(self, namespace: str, ref: str, platform: Any = None, progress: Progress | None = None,
             unpack: bool = True, cancelled: threading.Event | None = None, username: str = "",
             password: str = "", plain_http: bool | None = None, all_platforms: bool = False) -> dict:
        """Pull `ref` into the content store, unpack it (each layer while the next ones download) and
        record the image. Blobs download in parallel, each verified once as it arrives."""
        emit = progress or (lambda _f: None)
        name = normalize_name(ref)
        r = parse_reference(name)
        self.daemon.ensure_namespace(namespace)

        def check() -> None:
            if cancelled is not None and cancelled.is_set():
                raise errdefs.Canceled(f"pull {name}: canceled")

        last_emit: dict[str, float] = {}

        def on_progress(event: str, digest: str, done: int, total: int) -> None:
            check()  # raising here aborts a download mid-blob; its .partial is resumed next time
            t = time.monotonic()
            if event != "done" and t - last_emit.get(digest, 0) < 0.1:
                return
            last_emit[digest] = t
            emit({"ref": digest, "status": "done" if event == "done" else "downloading", "offset": done,
                  "total": total})

        options: dict[str, Any] = {}
        if username or password:
            options.update(username=username, password=password)
        if plain_http is not None:
            options["insecure"] = plain_http
        client = client_for(r, on_progress, **options)
        gc = self.daemon.gc
        layout = self.content.layout
        with gc.lock.shared(), self.daemon.leases.temporary(namespace) as lease, \
                ThreadPoolExecutor(DOWNLOAD_WORKERS, thread_name_prefix="pull") as pool:
            try:
                data, media_type, digest = client.get_manifest(r.repository, r.manifest_reference)
            except Exception as exc:
                raise _pull_error(name, exc) from None
            top = {"mediaType": media_type, "digest": digest, "size": len(data)}
            emit({"ref": name, "status": "resolved", "offset": 0, "total": 0, "digest": digest})
            self.content.ingest(namespace, data, digest, len(data), lease=lease)
            emit({"ref": _kind_ref(top), "status": "done", "offset": len(data), "total": len(data)})
            manifests = self._fetch_manifests(namespace, client, r.repository, top, data, platform, all_platforms,
                                              lease, emit)
            check()
            # Every layer and config of the chosen manifest(s), downloaded by a pool; unpack follows
            # in order, each layer as soon as it (and its parents) are in.
            futures: dict[str, Future] = {}

            def fetch(desc: dict) -> None:
                dgst = desc["digest"]
                if dgst in futures:
                    return
                self.daemon.leases.add_resource(namespace, lease, "content", dgst)
                if layout.has_blob(dgst):
                    emit({"ref": _kind_ref(desc), "status": "exists", "offset": desc.get("size", 0),
                          "total": desc.get("size", 0)})
                    f: Future = Future()
                    f.set_result(None)
                    futures[dgst] = f
                    self.content.record(namespace, dgst, desc.get("size"))
                    return
                emit({"ref": _kind_ref(desc), "status": "waiting", "offset": 0, "total": desc.get("size", 0)})
                futures[dgst] = pool.submit(self._download, namespace, client, r.repository, desc, check)

            for _mdesc, manifest in manifests:
                fetch(manifest["config"])
                for layer in manifest.get("layers") or []:
                    if not layer.get("urls"):
                        fetch(layer)
            unpack_pool = ThreadPoolExecutor(UNPACK_WORKERS, thread_name_prefix="unpack")
            staged: dict[str, Future] = {}
            try:
                for _mdesc, manifest in manifests:
                    futures[manifest["config"]["digest"]].result()
                    if not unpack or all_platforms:
                        continue
                    cfg = self.content.read_json(namespace, manifest["config"]["digest"])
                    diff_ids = list((cfg.get("rootfs") or {}).get("diff_ids") or [])
                    layers = manifest.get("layers") or []
                    if len(diff_ids) != len(layers):
                        raise errdefs.InvalidArgument(f"{name}: {len(layers)} layers but {len(diff_ids)} diff_ids")
                    chain = chain_ids(diff_ids)
                    snaps = self.daemon.snapshots
                    if snaps.parallel_unpack:
                        # each layer is applied as soon as it is downloaded, several at once
                        for i, layer in enumerate(layers):
                            if chain[i] not in staged and not snaps.stored(chain[i]):
                                self.daemon.leases.add_resource(namespace, lease, f"snapshots/{snaps.name}",
                                                                chain[i])
                                staged[chain[i]] = unpack_pool.submit(self._stage, futures[layer["digest"]],
                                                                      layer, diff_ids[i], emit, check)
                    for i, layer in enumerate(layers):
                        futures[layer["digest"]].result()
                        check()
                        if chain[i] in staged:
                            staging = staged.pop(chain[i]).result()
                            snaps.commit_staged(namespace, chain[i], chain[i - 1] if i else "", staging)
                            emit({"ref": f"layer-{layer['digest']}", "status": "unpacked",
                                  "offset": layer.get("size", 0), "total": layer.get("size", 0)})
                        else:
                            self._unpack_one(namespace, chain, diff_ids, i, layer, emit, lease)
                for f in futures.values():
                    f.result()
            except BaseException:
                if cancelled is not None:
                    cancelled.set()  # the pool's downloads stop at their next chunk
                for f in staged.values():
                    f.cancel()
                raise
            finally:
                unpack_pool.shutdown(wait=True)
                for f in staged.values():  # staged but never committed (an error): not a snapshot
                    if f.done() and not f.cancelled() and f.exception() is None:
                        remove_tree(f.result())
            image = self.put(namespace, name, top)
        emit({"ref": name, "status": "done", "offset": 0, "total": 0, "digest": digest})
        return image

    def _stage(self, download: Future, layer: dict, diff_id: str, emit: Progress,
               check: Callable[[], None]) -> Path:
        download.result()
        check()
        emit({"ref": f"layer-{layer['digest']}", "status": "unpacking", "offset": 0, "total": layer.get("size", 0)})
        return self.daemon.snapshots.stage_layer(self.content.blob_path(layer["digest"]), diff_id)

    def _fetch_manifests(self, namespace: str, client, repo: str, top: dict, data: bytes, platform: Any,
                         all_platforms: bool, lease: str, emit: Progress) -> list[tuple[dict, dict]]:
        """Store the index/manifest tree for the wanted platform(s); returns the image manifests."""
        out: list[tuple[dict, dict]] = []
        stack = [(top, data, 0)]
        while stack:
            desc, body, depth = stack.pop()
            if depth > 8:
                raise errdefs.InvalidArgument(f"{repo}: indexes nested too deeply")
            try:
                doc = json.loads(body)
            except ValueError:
                raise errdefs.InvalidArgument(f"{repo}@{desc['digest']}: manifest is not JSON") from None
            if desc["mediaType"] in mt.MANIFEST_TYPES or "layers" in doc:
                out.append((desc, doc))
                continue
            entries = [m for m in doc.get("manifests") or [] if m.get("mediaType") in _DOC_TYPES]
            if not all_platforms:
                try:
                    entries = [platforms.select(entries, platform)]
                except OCINotFound as exc:
                    raise errdefs.NotFound(f"{repo}@{desc['digest']}: {exc}") from None
            for entry in entries:
                got, mtype, dgst = client.get_manifest(repo, entry["digest"])
                if dgst != entry["digest"]:
                    raise errdefs.FailedPrecondition(f"{repo}: manifest {entry['digest']} came back as {dgst}")
                self.content.ingest(namespace, got, dgst, len(got), lease=lease)
                emit({"ref": _kind_ref(entry), "status": "done", "offset": len(got), "total": len(got)})
                stack.append(({"mediaType": entry.get("mediaType") or mtype, "digest": dgst, "size": len(got)},
                              got, depth + 1))
        return out

    def _download(self, namespace: str, client, repo: str, desc: dict, check: Callable[[], None]) -> None:
        check()
        dest = self.content.blob_path(desc["digest"])
        # one download per blob at a time: concurrent pulls of one image share the .partial file
        with self._lock:
            lock = self._downloading.setdefault(desc["digest"], threading.Lock())
        with lock:
            if not dest.exists():
                try:
                    client.get_blob(repo, desc["digest"], dest, size=desc.get("size"))
                except errdefs.Error:
                    raise
                except Exception as exc:
                    raise _pull_error(repo, exc) from None
        self.content.record(namespace, desc["digest"], desc.get("size"))

    # -- push ---------------------------------------------------------------------------------------
    def push(self, namespace: str, name: str, ref: str = "", platform: Any = None,
             progress: Progress | None = None, username: str = "", password: str = "",
             plain_http: bool | None = None) -> dict:
        emit = progress or (lambda _f: None)
        image = self.get(namespace, name)
        dest = parse_reference(normalize_name(ref or name))
        layout = self.content.layout
        top = image["target"]
        # The whole index when all its manifests are here (or no platform asked), else one platform's.
        if top.get("mediaType") in mt.INDEX_TYPES and (platform or not all(
                layout.has_blob(m["digest"]) for m in children(top, layout.read_json(top)))):
            top, _ = self.manifest(namespace, top, platform)
        options: dict[str, Any] = {}
        if username or password:
            options.update(username=username, password=password)
        if plain_http is not None:
            options["insecure"] = plain_http

        def on_progress(event: str, digest: str, done: int, total: int) -> None:
            emit({"ref": digest, "status": "done" if event == "done" else "uploading", "offset": done,
                  "total": total})

        client = client_for(dest, on_progress, **options)
        repo = dest.repository
        blobs: dict[str, dict] = {}
        manifests: list[dict] = []

        def visit(desc: dict, depth: int) -> None:
            doc = layout.read_json(desc)
            for child in children(desc, doc):
                if child is doc.get("subject"):
                    continue
                if child.get("mediaType") in _DOC_TYPES:
                    if layout.has_blob(child["digest"]):
                        visit(child, depth + 1)
                        manifests.append(child)
                else:
                    blobs.setdefault(child["digest"], child)

        visit(top, 0)
        with self.daemon.gc.lock.shared():
            for d in blobs.values():
                if layout.has_blob(d["digest"]):
                    client.push_blob(repo, layout.blob_path(d["digest"]), d["digest"])
                    emit({"ref": _kind_ref(d), "status": "done", "offset": d.get("size", 0),
                          "total": d.get("size", 0)})
                elif not d.get("urls"):
                    raise errdefs.NotFound(f"content {d['digest']} of {name} is missing (pull it with all"
                                           f" platforms, or push one platform)")
            for d in manifests:
                client.put_manifest(repo, d["digest"], layout.read_blob(d["digest"]), d["mediaType"])
            digest = client.put_manifest(repo, dest.tag or dest.digest or top["digest"],
                                         layout.read_blob(top["digest"]), top["mediaType"])
        emit({"ref": str(dest), "status": "pushed", "offset": 0, "total": 0, "digest": digest})
        return {"name": str(dest), "digest": digest, "mediaType": top["mediaType"], "size": top["size"]}

    # -- import / export ----------------------------------------------------------------------------
    def import_archive(self, namespace: str, path: str, base_name: str = "", platform: Any = None,
                       unpack: bool = True, progress: Progress | None = None, digests: bool = False) -> list[dict]:
        """Import a docker-archive or an oci-archive (told apart by their files) and name its images."""
        from pyoci.archive import OCIArchive, read_docker_archive

        emit = progress or (lambda _f: None)
        layout = self.content.layout
        named: list[tuple[str, dict]] = []
        with self.daemon.gc.lock.shared(), self.daemon.leases.temporary(namespace) as lease:
            kind = _archive_kind(path)
            if kind == "docker":
                with self._import_lock:
                    before = {m["digest"] for m in layout.index()["manifests"]}
                    imported = read_docker_archive(path, layout, compress=None)
                    # pyoci tags index.json; our names live in the image store, so take them out again
                    with layout.edit_index() as index:
                        index["manifests"] = [m for m in index["manifests"] if m["digest"] in before]
                for image in imported:
                    desc = image.descriptor
                    for d in layout.walk(desc, missing_ok=True):
                        self.daemon.leases.add_resource(namespace, lease, "content", d["digest"])
                        self.content.record(namespace, d["digest"], d.get("size"))
                    names = image.repo_tags or [f"{base_name or 'import'}@{desc['digest']}"]
                    named.extend((normalize_name(n) if "@" not in n else n, desc) for n in names)
            else:
                with OCIArchive(path) as archive:
                    for desc in archive.index()["manifests"]:
                        annotations = desc.get("annotations") or {}
                        added: list[str] = []
                        for d in archive.walk(desc, missing_ok=True):
                            self.daemon.leases.add_resource(namespace, lease, "content", d["digest"])
                        layout.copy_from(archive, desc, added)
                        for d in layout.walk(desc, missing_ok=True):
                            if layout.has_blob(d["digest"]):
                                self.content.record(namespace, d["digest"], d.get("size"))
                        target = {k: v for k, v in desc.items() if k in ("mediaType", "digest", "size")}
                        named.append((_oci_image_name(annotations, base_name, desc["digest"]), target))
            records = []
            for name, target in named:
                records.append(self.put(namespace, name, {k: v for k, v in target.items()
                                                          if k in ("mediaType", "digest", "size")}))
                emit({"ref": name, "status": "imported", "offset": 0, "total": 0, "digest": target["digest"]})
                if unpack:
                    try:
                        self.unpack(namespace, name, platform, emit, lease)
                    except (errdefs.NotFound, OCINotFound) as exc:
                        log.info("not unpacking %s: %s", name, exc)
        return records

    def export(self, namespace: str, names: list[str], path: str, fmt: str = "oci", platform: Any = None,
               all_platforms: bool = False) -> None:
        """Write images to an archive: `oci` (an image layout tar, names annotated as containerd) or
        `docker` (`docker save`'s format)."""
        from pyoci.archive import write_docker_archive, write_oci_archive

        if not names:
            raise errdefs.InvalidArgument("export: no image named")
        images = [self.get(namespace, n) for n in names]
        layout = self.content.layout
        with self.daemon.gc.lock.shared():
            if fmt == "docker":
                view = _View(layout.path, [])
                write_docker_archive(path, [(view, _target_for(self, namespace, im, platform, all_platforms),
                                             [t for t in [_familiar(im["name"])] if t]) for im in images], platform)
                return
            if fmt != "oci":
                raise errdefs.InvalidArgument(f"export format {fmt!r}: want oci or docker")
            manifests = []
            for im in images:
                target = _target_for(self, namespace, im, platform, all_platforms)
                ref = parse_reference(im["name"]) if "@" not in im["name"] else None
                annotations = {IMAGE_NAME_ANNOTATION: im["name"]}
                if ref is not None and ref.tag:
                    annotations[REF_NAME] = ref.tag
                manifests.append({**{k: target[k] for k in ("mediaType", "digest", "size")},
                                  "annotations": annotations})
            write_oci_archive(_View(layout.path, manifests), path)


def _target_for(store: ImageStore, namespace: str, image: dict, platform: Any, all_platforms: bool) -> dict:
    """The image's target when all of it is here (or wanted), else its platform's manifest."""
    target = image["target"]
    layout = store.content.layout
    if target.get("mediaType") not in mt.INDEX_TYPES or all_platforms:
        return target
    present = all(layout.has_blob(m["digest"]) for m in children(target, layout.read_json(target)))
    if present and platform is None:
        return target
    desc, _ = store.manifest(namespace, target, platform)
    return {k: desc[k] for k in ("mediaType", "digest", "size")}


def _familiar(name: str) -> str:
    try:
        return parse_reference(name).familiar if "@" not in name else ""
    except Exception:
        return ""


def _oci_image_name(annotations: dict, base_name: str, digest: str) -> str:
    """containerd's naming of imported OCI images: io.containerd.image.name, else the ref.name
    (a full reference, or a tag appended to base_name), else base_name@digest."""
    full = annotations.get(IMAGE_NAME_ANNOTATION)
    if full:
        return normalize_name(full) if "@" not in full else full
    ref_name = annotations.get(REF_NAME, "")
    if ref_name:
        if "/" in ref_name or (":" in ref_name and not base_name):
            try:
                return normalize_name(ref_name)
            except errdefs.InvalidArgument:
                pass
        if base_name:
            return normalize_name(f"{base_name}:{ref_name}")
        return normalize_name(f"import-{time.strftime('%Y-%m-%d')}:{ref_name}")
    return f"{base_name or 'import'}@{digest}"


def _archive_kind(path: str) -> str:
    import tarfile

    try:
        with tarfile.open(path, "r:*") as tar:
            names = {m.name.lstrip("./") for m in tar.getmembers()}
    except FileNotFoundError:
        raise errdefs.NotFound(f"{path}: no such file") from None
    except (tarfile.TarError, OSError) as exc:
        raise errdefs.InvalidArgument(f"{path}: not a tar archive: {exc}") from None
    if "oci-layout" in names and "index.json" in names:
        return "oci"
    if "manifest.json" in names:
        return "docker"
    raise errdefs.InvalidArgument(f"{path}: neither an oci-archive nor a docker-archive")


def _kind_ref(desc: dict) -> str:
    """ctr's progress names: index-sha256:…, manifest-sha256:…, config-sha256:…, layer-sha256:…"""
    media_type = desc.get("mediaType", "")
    if media_type in mt.INDEX_TYPES:
        kind = "index"
    elif media_type in mt.MANIFEST_TYPES:
        kind = "manifest"
    elif "config" in media_type:
        kind = "config"
    else:
        kind = "layer"
    return f"{kind}-{desc['digest']}"


def _pull_error(name: str, exc: Exception) -> Exception:
    from pyoci.errors import OCIError, RegistryError

    if isinstance(exc, errdefs.Error):
        return exc
    if isinstance(exc, RegistryError) and getattr(exc, "status", 0) == 404:
        return errdefs.NotFound(f"failed to resolve reference \"{name}\": {exc}")
    if isinstance(exc, OCIError):
        return exc
    import requests

    if isinstance(exc, requests.RequestException):
        return errdefs.Unavailable(f"failed to resolve reference \"{name}\": {exc}")
    return exc
