"""docker-archive: the `docker save` tar (manifest.json, repositories, per-layer dirs), read and written.

Writing follows skopeo's docker-archive writer (containers/image), byte for byte for a given image:
layers uncompressed at the top as `<diff_id hex>.tar`, the config as `<config hex>.json`, one legacy
directory per layer `<v1 id>/` holding `VERSION` ("1.0"), `json` and `layer.tar` (a symlink to
`../<diff_id hex>.tar`), then `manifest.json` and `repositories`; ustar headers, mode 0444, mtime 0.
The v1 ids are skopeo's: sha256 of the Go-marshalled layer json carrying the chain id (docker's
own v1.CreateID also mixes in the whole config; `docker load` assigns fresh ids anyway).

Reading accepts both Docker 20.10's `docker save` (`<id>/layer.tar` regular files, symlinks for repeated
layers) and skopeo's layout; each layer's uncompressed digest is checked against the config's
rootfs.diff_ids before anything is committed. Layers are stored gzip-compressed by default
(`compress="gzip"`, application/vnd.oci.image.layer.v1.tar+gzip, as skopeo does for docker-archive ->
oci, so the image can be pushed as is), with pyoci.layer's deterministic gzip; `compress=None` keeps
them uncompressed (application/vnd.oci.image.layer.v1.tar, digest == diff_id). A layer that is already
gzip or zstd inside the archive is kept byte for byte. The config blob is kept byte for byte too, so
the image id (config digest) does not change.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import tarfile
import tempfile
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, Iterable, Sequence

from . import mediatypes as mt
from . import reference
from .archive_oci import TarWriter, _members_of, _norm
from .digest import CHUNK, Digest, VerifyingWriter
from .errors import DigestMismatch, InvalidDocument, InvalidReference, NotFound, OCIError, UnsafeArchive
from .fsutil import atomic_open
from .layer import compression as lc
from .layout import BlobSource, Layout, dumps

MANIFEST_FILE = "manifest.json"
REPOSITORIES_FILE = "repositories"
_LEGACY_ATTRS = ("architecture", "config", "container", "container_config", "created", "docker_version", "os")


# -- Go-compatible JSON, for skopeo's v1 ids -------------------------------------------------------------

def _skip_ws(s: str, i: int) -> int:
    while i < len(s) and s[i] in " \t\r\n":
        i += 1
    return i


def raw_members(text: str) -> dict[str, str]:
    """The top-level members of a JSON object as their raw JSON text (as Go's map[string]*json.RawMessage)."""
    dec = json.JSONDecoder()
    out: dict[str, str] = {}
    i = _skip_ws(text, 0)
    if text[i:i + 1] != "{":
        raise ValueError("not a JSON object")
    i = _skip_ws(text, i + 1)
    while text[i:i + 1] != "}":
        key, i = dec.raw_decode(text, i)
        i = _skip_ws(text, i)
        if text[i:i + 1] != ":":
            raise ValueError(f"expected ':' at {i}")
        i = _skip_ws(text, i + 1)
        _, end = dec.raw_decode(text, i)
        out[key] = text[i:end]
        i = _skip_ws(text, end)
        if text[i:i + 1] == ",":
            i = _skip_ws(text, i + 1)
    return out


_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def go_compact(raw: str) -> str:
    """What Go's json.Marshal makes of a json.RawMessage: whitespace outside strings dropped, HTML-escaped."""
    out = []
    in_str = escaped = False
    for c in raw:
        if in_str:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_str = False
        elif c in " \t\r\n":
            continue
        elif c == '"':
            in_str = True
        out.append(_GO_ESCAPES.get(c, c))
    return "".join(out)


def _go_object(members: dict[str, str]) -> bytes:
    """A Go map[string]any marshalled: keys sorted, values already JSON text."""
    return ("{" + ",".join(f"{go_compact(json.dumps(k))}:{members[k]}" for k in sorted(members)) + "}").encode()


def _go_string(value: str) -> str:
    return go_compact(json.dumps(value, ensure_ascii=False))


# -- repo tags ----------------------------------------------------------------------------------------------

def normalize_repo_tag(value: str) -> str:
    """'busybox' -> 'docker.io/library/busybox:latest', as skopeo writes RepoTags (pyoci.reference's
    Docker normalisation; a digest is refused: RepoTags hold tags only)."""
    ref = reference.parse(value)
    if ref.digest:
        raise InvalidReference(f"invalid repo tag {value!r}: a docker-archive tag cannot hold a digest")
    return f"{ref.name}:{ref.tag}"


def _split_repo_tag(repo_tag: str) -> tuple[str, str]:
    name, _, tag = repo_tag.rpartition(":")
    return name, tag


# -- writing ----------------------------------------------------------------------------------------------

class DockerArchiveWriter:
    """Builds a docker-archive holding one or more images; `close()` commits it atomically.

        with DockerArchiveWriter("out.tar") as w:
            w.add_image(layout, "t", ["repo:t"])
    """

    def __init__(self, dest: str | os.PathLike) -> None:
        self.dest = os.fspath(dest)
        self._ctx = atomic_open(self.dest)
        self._out = self._ctx.__enter__()
        self._tar = TarWriter(self._out, tarfile.USTAR_FORMAT)
        self._blobs: set[str] = set()
        self._legacy: set[str] = set()
        self._manifest: list[dict] = []
        self._by_config: dict[str, int] = {}
        self._repositories: dict[str, dict[str, str]] = {}
        self._closed = False

    def add_image(self, source: BlobSource, ref: "str | dict", repo_tags: Sequence[str] = (),
                  platform: "str | dict | None" = None) -> None:
        """Add the image `ref` (tag, digest or descriptor; an index is followed to `platform`) of `source`."""
        tags = [normalize_repo_tag(t) for t in repo_tags]
        _, manifest = source.manifest_for(ref, platform)
        cfg_desc = manifest["config"]
        config_bytes = source.read_blob(cfg_desc["digest"], cfg_desc.get("size"))
        try:
            config = json.loads(config_bytes)
            diff_ids = list(config["rootfs"]["diff_ids"])
        except (ValueError, KeyError, TypeError):
            raise InvalidDocument(f"config {cfg_desc['digest']}: no rootfs.diff_ids") from None
        layers = manifest.get("layers") or []
        if len(layers) != len(diff_ids):
            raise InvalidDocument(f"manifest has {len(layers)} layers but config {cfg_desc['digest']} lists {len(diff_ids)} diff_ids")
        for layer, diff_id in zip(layers, diff_ids):
            self._add_layer(source, layer, Digest.parse(diff_id))
        config_digest = Digest.parse(cfg_desc["digest"])
        config_name = f"{config_digest.encoded}.json"
        if config_name not in self._blobs:
            self._tar.add_bytes(config_name, config_bytes, 0o444)
            self._blobs.add(config_name)
        self._legacy_metadata(diff_ids, config_bytes, tags)
        self._manifest_item(str(config_digest), config_name, [f"{Digest.parse(d).encoded}.tar" for d in diff_ids], tags)

    def _add_layer(self, source: BlobSource, layer: dict, diff_id: Digest) -> None:
        name = f"{diff_id.encoded}.tar"
        if name in self._blobs:
            return
        compression = mt.layer_compression(layer.get("mediaType", ""))
        # The tar header needs the size first: decompress to a temp file beside the destination, checking diff_id.
        with tempfile.TemporaryFile(dir=os.path.dirname(os.path.abspath(self.dest))) as tmp:
            with source.open_blob(layer["digest"], size=layer.get("size")) as raw:
                try:
                    reader = lc.DecompressingReader(raw, compression, algorithm=diff_id.algorithm)
                    while chunk := reader.read(CHUNK):
                        tmp.write(chunk)
                    got = reader.finish()  # reads the blob to its end: the verifying reader checks its digest
                except lc.CompressionError:
                    # A stream that does not inflate is most often a damaged blob: name that if so.
                    while raw.read(CHUNK):
                        pass
                    raise
            if got.diff_id != diff_id:
                raise DigestMismatch(f"layer {layer['digest']}: uncompressed digest {got.diff_id} "
                                     f"is not the config's diff_id {diff_id}")
            tmp.seek(0)
            self._tar.add_stream(name, tmp, got.uncompressed_size, 0o444)
        self._blobs.add(name)

    def _legacy_metadata(self, diff_ids: list[str], config_bytes: bytes, tags: list[str]) -> None:
        try:
            config_raw = raw_members(config_bytes.decode())
        except (ValueError, UnicodeDecodeError):
            raise InvalidDocument("image config is not a JSON object") from None
        chain_id = ""
        last_id = ""
        for i, diff_id in enumerate(diff_ids):
            members: dict[str, str] = {}
            if last_id:
                members["parent"] = _go_string(last_id)
            if i == len(diff_ids) - 1:
                for attr in _LEGACY_ATTRS:
                    members[attr] = go_compact(config_raw[attr]) if attr in config_raw else "null"
            chain_id = diff_id if not chain_id else "sha256:" + hashlib.sha256(f"{chain_id} {diff_id}".encode()).hexdigest()
            layer_id = hashlib.sha256(_go_object({**members, "layer_id": _go_string(chain_id)})).hexdigest()
            members["id"] = _go_string(layer_id)
            if layer_id not in self._legacy:
                self._tar.add_symlink(f"{layer_id}/layer.tar", f"../{Digest.parse(diff_id).encoded}.tar")
                self._tar.add_bytes(f"{layer_id}/VERSION", b"1.0", 0o444)
                self._tar.add_bytes(f"{layer_id}/json", _go_object(members), 0o444)
                self._legacy.add(layer_id)
            last_id = layer_id
        if last_id:
            for repo_tag in tags:
                name, tag = _split_repo_tag(repo_tag)
                self._repositories.setdefault(name, {})[tag] = last_id

    def _manifest_item(self, config_digest: str, config_name: str, layer_names: list[str], tags: list[str]) -> None:
        if config_digest in self._by_config:
            item = self._manifest[self._by_config[config_digest]]
        else:
            item = {"Config": config_name, "RepoTags": [], "Layers": layer_names}
            self._by_config[config_digest] = len(self._manifest)
            self._manifest.append(item)
        for t in tags:
            if t not in item["RepoTags"]:
                item["RepoTags"].append(t)

    def close(self) -> None:
        """Write manifest.json and repositories and commit the archive."""
        if self._closed:
            return
        self._tar.add_bytes(MANIFEST_FILE, _go_json(self._manifest), 0o444)
        self._tar.add_bytes(REPOSITORIES_FILE, _go_json({k: dict(sorted(v.items())) for k, v in sorted(self._repositories.items())}), 0o444)
        self._tar.close()
        self._closed = True
        self._ctx.__exit__(None, None, None)

    def abort(self) -> None:
        """Drop the archive being written: nothing appears at `dest`."""
        if not self._closed:
            self._closed = True
            e = OCIError("docker-archive aborted")
            try:
                self._ctx.__exit__(OCIError, e, None)  # atomic_open removes its temp file
            except OCIError:
                pass

    def __enter__(self) -> "DockerArchiveWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _go_json(obj: Any) -> bytes:
    return go_compact(json.dumps(obj, separators=(",", ":"), ensure_ascii=False)).encode()


def write_docker_archive(dest: str | os.PathLike, images: Iterable[tuple[BlobSource, "str | dict", Sequence[str]]],
                         platform: "str | dict | None" = None) -> None:
    """Write a docker-archive of `images`: (source layout or archive, tag/digest/descriptor, repo tags)."""
    with DockerArchiveWriter(dest) as w:
        for source, ref, repo_tags in images:
            w.add_image(source, ref, repo_tags, platform)


# -- reading ----------------------------------------------------------------------------------------------

@dataclass
class ImportedImage:
    descriptor: dict                                  # of the OCI manifest written to the layout
    config_digest: str
    repo_tags: list[str] = field(default_factory=list)


class DockerArchive:
    """A docker-archive opened for reading (random access; nothing is extracted). A context manager."""

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
            if name:
                self._members[name] = m
        if MANIFEST_FILE not in self._members:
            self.close()
            raise InvalidDocument(f"{self.where}: no {MANIFEST_FILE} (not a docker-archive, or a pre-1.10 one)")
        where = f"{self.where}:{MANIFEST_FILE}"
        try:
            self.manifest = json.loads(self.read(MANIFEST_FILE))
        except ValueError as e:
            raise InvalidDocument(f"{where}: not valid JSON ({e})") from None
        if not isinstance(self.manifest, list) or not all(
                isinstance(i, dict) and isinstance(i.get("Config"), str) and isinstance(i.get("Layers"), list)
                for i in self.manifest):
            raise InvalidDocument(f"{where}: want a list of {{Config, RepoTags, Layers}}")

    def _resolve(self, name: str) -> tarfile.TarInfo:
        """The regular-file member `name` names, following symlinks that stay inside the archive."""
        path = _norm(name)
        for _ in range(16):
            m = self._members.get(path) if path else None
            if m is None:
                raise NotFound(f"{self.where}: no entry {name!r}")
            if m.isreg():
                return m
            if m.islnk():  # a hard link names another member, from the archive's root
                path = _norm(m.linkname)
            elif m.issym() and not m.linkname.startswith("/"):  # relative to the link's directory
                path = _norm(posixpath.normpath(posixpath.join(posixpath.dirname(path), m.linkname)))
            elif m.issym():
                path = None
            else:
                raise InvalidDocument(f"{self.where}: {name!r} is not a regular file")
            if path is None:
                raise UnsafeArchive(f"{self.where}: {m.name!r} links to {m.linkname!r}, outside the archive")
        raise UnsafeArchive(f"{self.where}: too many levels of links at {name!r}")

    def open(self, name: str) -> io.BufferedReader:
        f = self._tar.extractfile(self._resolve(name))
        assert f is not None
        return f  # type: ignore[return-value]

    def read(self, name: str) -> bytes:
        with self.open(name) as f:
            return f.read()

    def repo_tags(self) -> list[list[str]]:
        return [list(i.get("RepoTags") or []) for i in self.manifest]

    def close(self) -> None:
        self._tar.close()

    def __enter__(self) -> "DockerArchive":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def read_docker_archive(src: str | os.PathLike, layout: Layout, compress: str | None = "gzip",
                        ref_name: Callable[[str], str] | None = None) -> list[ImportedImage]:
    """Import every image of a docker-archive into `layout` as OCI manifests, tagging each RepoTag.

    A layer whose uncompressed digest is not its config's diff_id raises DigestMismatch, and then
    nothing of this import stays: neither blobs nor index.json entries. Tags are the RepoTags as written
    (e.g. 'docker.io/library/busybox:latest'), or `ref_name(repo_tag)`; an image without RepoTags is
    listed untagged in index.json.
    """
    if compress not in ("gzip", None):
        raise OCIError(f"compress must be 'gzip' or None, not {compress!r}")
    ref_name = ref_name or (lambda t: t)
    added: list[str] = []
    imported: list[ImportedImage] = []
    with DockerArchive(src) as archive, layout.lock(exclusive=False):  # gc keeps off until tagged
        try:
            for item in archive.manifest:
                imported.append(_import_image(archive, item, layout, compress, added))
        except BaseException:
            layout.remove_blobs(added)  # roll back: the blobs written by this import only
            raise
        for image in imported:
            if image.repo_tags:
                for t in image.repo_tags:
                    layout.tag(ref_name(t), image.descriptor)
            else:
                layout.add_manifest(image.descriptor)
    return imported


def _put_tracked(layout: Layout, added: list[str], data: bytes) -> Any:
    """put_blob, remembering the digest if the blob is new (so that a failed import can remove it)."""
    d = Digest("sha256", hashlib.sha256(data).hexdigest())
    existed = layout.has_blob(d)
    blob = layout.put_blob(data, d)
    if not existed:
        added.append(str(d))
    return blob


def _import_image(archive: DockerArchive, item: dict, layout: Layout, compress: str | None,
                  added: list[str]) -> ImportedImage:
    config_name = item["Config"]
    config_bytes = archive.read(config_name)
    config_digest = Digest("sha256", hashlib.sha256(config_bytes).hexdigest())
    stem = posixpath.basename(config_name).removesuffix(".json")
    if len(stem) == 64 and all(c in "0123456789abcdef" for c in stem) and stem != config_digest.encoded:
        raise DigestMismatch(f"{archive.where}: config {config_name!r} hashes to {config_digest}")
    try:
        config = json.loads(config_bytes)
        diff_ids = [Digest.parse(d) for d in config["rootfs"]["diff_ids"]]
    except (ValueError, KeyError, TypeError):
        raise InvalidDocument(f"{archive.where}: config {config_name!r} has no rootfs.diff_ids") from None
    if len(diff_ids) != len(item["Layers"]):
        raise InvalidDocument(f"{archive.where}: {len(item['Layers'])} layers for {len(diff_ids)} diff_ids in {config_name!r}")
    layers = [_import_layer(archive, name, diff_id, layout, compress, added) for name, diff_id in zip(item["Layers"], diff_ids)]
    cfg = _put_tracked(layout, added, config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": cfg.descriptor(mt.OCI_CONFIG),
        "layers": layers,
    }
    data = dumps(manifest)
    blob = _put_tracked(layout, added, data)
    return ImportedImage(blob.descriptor(mt.OCI_MANIFEST), str(config_digest),
                         [normalize_repo_tag(t) for t in item.get("RepoTags") or []])


class _WriterSink:
    """A VerifyingWriter seen as the file object pyoci.layer's compressing writer wants."""

    def __init__(self, w: VerifyingWriter) -> None:
        self.write = w.write

    def flush(self) -> None:
        pass


class _Tee(io.RawIOBase):
    """Reads `src` and copies every byte read into `w` (keeps a compressed layer's bytes as they are)."""

    def __init__(self, src: BinaryIO, w: VerifyingWriter) -> None:
        super().__init__()
        self._src, self._w = src, w

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self._src.read(len(b))
        b[:len(data)] = data
        if data:
            self._w.write(data)
        return len(data)


def _import_layer(archive: DockerArchive, name: str, diff_id: Digest, layout: Layout, compress: str | None,
                  added: list[str]) -> dict:
    staging = layout.path / "blobs" / diff_id.algorithm / "staging"
    with archive.open(name) as f, layout.lock(exclusive=False), VerifyingWriter(staging, algorithm=diff_id.algorithm) as w:
        found = lc.detect(f.peek(4)[:4])
        if found:
            # Already compressed in the archive: keep the bytes, check what they decompress to.
            reader = lc.DecompressingReader(_Tee(f, w), found, algorithm=diff_id.algorithm)
            got_diff_id = reader.finish().diff_id
            media_type = mt.OCI_LAYER_GZIP if found == "gzip" else mt.OCI_LAYER_ZSTD
        else:
            # pyoci.layer's writer: the same deterministic gzip as the layers pybuild creates.
            writer = lc.CompressingWriter(_WriterSink(w), compress or "", algorithm=diff_id.algorithm)  # type: ignore[arg-type]
            try:
                while chunk := f.read(CHUNK):
                    writer.write(chunk)
            except BaseException:
                writer.abort()
                raise
            got_diff_id = writer.close().diff_id
            media_type = mt.OCI_LAYER_GZIP if compress == "gzip" else mt.OCI_LAYER
        if got_diff_id != diff_id:
            raise DigestMismatch(f"{archive.where}: layer {name!r} is {got_diff_id}, but the config's diff_id is {diff_id}")
        got = w.verify()
        dest = layout.blob_path(got)
        if not dest.exists():
            added.append(str(got))
        w.dest = os.fspath(dest)
        w.commit(0o644)
        return {"mediaType": media_type, "digest": str(got), "size": w.size}
