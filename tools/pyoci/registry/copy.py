"""Copy images between a registry and an OCI image layout: `pull(ref, layout, tag)`, `push(layout, tag, ref)`.

Content is copied byte for byte (a Docker schema2 manifest stays one, so digests are kept), every blob
is verified before it is committed, and blobs already present on the other side are skipped.
"""

from __future__ import annotations

import json
import os

from .. import mediatypes as mt
from .. import platform as platforms
from ..errors import InvalidDocument, NotFound, RegistryError
from ..layout import Layout, check_ref_name, children
from ..reference import Reference, is_localhost, parse as parse_reference
from .client import Progress, RegistryClient

ALL_PLATFORMS = "all"
_DOC_TYPES = mt.MANIFEST_TYPES + mt.INDEX_TYPES
_MAX_DEPTH = 8  # nested indexes, bounded


def client_for(ref: Reference, progress: Progress | None = None, **options: object) -> RegistryClient:
    """A client for the registry of `ref` (plain HTTP for loopback registries, as docker does)."""
    options.setdefault("insecure", True if is_localhost(ref) else None)
    return RegistryClient(ref.domain, progress=progress, **options)  # type: ignore[arg-type]


def _ref(ref: "Reference | str") -> Reference:
    return ref if isinstance(ref, Reference) else parse_reference(ref)


def _layout(layout: "Layout | str | os.PathLike", create: bool) -> Layout:
    if isinstance(layout, Layout):
        return layout
    return Layout.init(layout) if create else Layout.open(layout)


def pull(ref: "Reference | str", layout: "Layout | str | os.PathLike", tag: str | None = None,
         platform: "str | platforms.Platform | None" = None, progress: Progress | None = None,
         client: RegistryClient | None = None) -> dict:
    """Pull `ref` into `layout` (created if need be) and tag it `tag` (default: the reference's tag).

    platform: None picks this machine's manifest from an index (as `docker pull`), "os/arch[/variant]"
    picks that one, "all" copies the whole index with every manifest it lists. Returns the descriptor
    that was tagged. An interrupted pull leaves `.partial` blobs that the next pull resumes. With
    `client` given, its own credentials and progress callback are used.
    """
    r = _ref(ref)
    out = _layout(layout, create=True)
    name = check_ref_name(tag or r.tag or (r.digest or "").replace(":", "-"))  # before any download
    c = client or client_for(r, progress)
    repo = r.repository
    with out.lock(exclusive=False):  # keeps a concurrent gc off our half-written blobs
        data, media_type, digest = c.get_manifest(repo, r.manifest_reference)
        desc = {"mediaType": media_type, "digest": digest, "size": len(data)}
        if media_type in mt.INDEX_TYPES and platform != ALL_PLATFORMS:
            desc, data = _choose(c, repo, desc, data, platform)
        _fetch_tree(c, repo, out, desc, data, depth=0)
        return out.tag(name, desc)


def _choose(c: RegistryClient, repo: str, desc: dict, data: bytes,
            platform: "str | platforms.Platform | None") -> tuple[dict, bytes]:
    """Follow indexes down to the manifest for `platform`."""
    for _ in range(_MAX_DEPTH):
        if desc["mediaType"] not in mt.INDEX_TYPES:
            return desc, data
        doc = _json(data, f"{repo}@{desc['digest']}")
        entries = [m for m in doc.get("manifests") or [] if m.get("mediaType") in _DOC_TYPES]
        try:
            chosen = platforms.select(entries, platform)
        except NotFound as e:
            raise NotFound(f"{repo}@{desc['digest']}: {e}") from None
        got, media_type, digest = c.get_manifest(repo, chosen["digest"])
        _check_descriptor(chosen, got, digest, repo)
        desc, data = {"mediaType": chosen["mediaType"], "digest": digest, "size": len(got)}, got
    raise InvalidDocument(f"{repo}@{desc['digest']}: indexes nested too deeply")


def _fetch_tree(c: RegistryClient, repo: str, out: Layout, desc: dict, data: bytes, depth: int) -> None:
    """Store a manifest or index and everything below it; each child is committed before its parent."""
    if depth > _MAX_DEPTH:
        raise InvalidDocument(f"{repo}@{desc['digest']}: indexes nested too deeply")
    doc = _json(data, f"{repo}@{desc['digest']}")
    for child in children(desc, doc):
        d = child.get("digest", "")
        if child is doc.get("subject") or out.has_blob(d):
            continue  # a referrer's subject is not part of the image
        if child.get("mediaType") in _DOC_TYPES:
            got, _, digest = c.get_manifest(repo, d)
            _check_descriptor(child, got, digest, repo)
            _fetch_tree(c, repo, out, child, got, depth + 1)
            continue
        try:
            c.get_blob(repo, d, out.blob_path(d), size=child.get("size"))
        except RegistryError as e:
            if e.status == 404 and child.get("urls"):
                continue  # a foreign layer, not distributed by registries
            raise
    out.put_blob(data, desc["digest"], len(data))


def _check_descriptor(desc: dict, data: bytes, digest: str, repo: str) -> None:
    if digest != desc.get("digest") or len(data) != desc.get("size", len(data)):
        raise InvalidDocument(f"{repo}: manifest {desc.get('digest')} came back as {digest} ({len(data)} bytes, "
                              f"descriptor says {desc.get('size')})")


def push(layout: "Layout | str | os.PathLike", tag: str, ref: "Reference | str", progress: Progress | None = None,
         client: RegistryClient | None = None) -> str:
    """Push the image tagged `tag` in `layout` to `ref`; returns the digest of its top manifest or index.

    Blobs go first, then manifests children-first, so the registry never sees a manifest whose
    content it lacks; the top one is put under the reference's tag (or its digest).
    """
    src = _layout(layout, create=False)
    r = _ref(ref)
    c = client or client_for(r, progress)
    repo = r.repository
    top = src.resolve(tag)
    if r.digest and r.digest != top["digest"]:
        raise InvalidDocument(f"{src.where}: tag {tag!r} is {top['digest']}, not the digest of {r}")
    blobs, manifests = _plan(src, top)
    for d in blobs:
        if src.has_blob(d["digest"]):
            c.push_blob(repo, src.blob_path(d["digest"]), d["digest"])
        elif not d.get("urls"):
            raise NotFound(f"{src.where}: blob {d['digest']} ({d.get('mediaType')}) is missing")
    for d in manifests:
        data = src.read_blob(d["digest"], d.get("size"))
        c.put_manifest(repo, d["digest"], data, d["mediaType"])
    data = src.read_blob(top["digest"], top.get("size"))
    return c.put_manifest(repo, r.tag or r.digest or top["digest"], data, top["mediaType"])


def _plan(src: Layout, top: dict) -> tuple[list[dict], list[dict]]:
    """(blobs, manifests below the top one in post-order) of the image under `top`, each digest once."""
    blobs: dict[str, dict] = {}
    manifests: dict[str, dict] = {}

    def visit(desc: dict, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise InvalidDocument(f"{src.where}: indexes nested too deeply under {top['digest']}")
        doc = src.read_json(desc)
        for child in children(desc, doc):
            d = child["digest"]
            if child is doc.get("subject"):
                continue  # a referrer's subject is not part of the image
            if child.get("mediaType") in _DOC_TYPES:
                if d not in manifests:
                    visit(child, depth + 1)
                    manifests[d] = child
            else:
                blobs.setdefault(d, child)

    visit(top, 0)
    manifests.pop(top["digest"], None)
    return list(blobs.values()), list(manifests.values())


def _json(data: bytes, where: str) -> dict:
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise InvalidDocument(f"{where}: not valid JSON ({e})") from None
    if not isinstance(doc, dict):
        raise InvalidDocument(f"{where}: want a JSON object")
    return doc


__all__ = ["ALL_PLATFORMS", "client_for", "pull", "push"]
