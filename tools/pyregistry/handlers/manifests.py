"""Manifests: GET/HEAD/PUT/DELETE by tag or digest (validation, Accept negotiation, the OCI-Subject header)."""

from __future__ import annotations

import hashlib
import json

from aiohttp import web

from pyoci import digest as dg
from pyoci import manifest as pm
from pyoci import mediatypes as mt
from pyoci.errors import InvalidDocument

from .. import errors
from .base import REGISTRY, Registry, Route, check_digest, is_digest, read_limited

KNOWN_TYPES = (mt.OCI_MANIFEST, mt.OCI_INDEX, mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST_LIST)
# Layers that live elsewhere (urls) need not be in the registry, as Distribution allows.
_FOREIGN = (mt.DOCKER_LAYER_FOREIGN_GZIP, mt.OCI_LAYER_NONDIST, mt.OCI_LAYER_NONDIST_GZIP, mt.OCI_LAYER_NONDIST_ZSTD)


def sniff_media_type(data: bytes) -> str:
    """The media type a stored manifest is served with: its own mediaType, else what its shape says."""
    try:
        doc = json.loads(data)
    except ValueError:
        return mt.OCI_MANIFEST
    if not isinstance(doc, dict):
        return mt.OCI_MANIFEST
    return pm.detect_media_type(doc) or mt.OCI_MANIFEST


async def load(reg: Registry, repo: str, digest: str) -> tuple[bytes, str] | None:
    """Bytes and media type of a manifest linked in `repo` (cached by digest)."""
    if not await reg.driver.manifest_linked(repo, digest):
        return None
    cached = reg.manifests.get(digest)
    if cached is not None:
        return cached
    data = await reg.driver.read_blob(digest)
    if data is None:
        return None
    item = (data, sniff_media_type(data))
    reg.manifests.put(digest, *item)
    return item


def _accepted(request: web.Request) -> set[str]:
    out = set()
    for value in request.headers.getall("Accept", ()):
        for part in value.split(","):
            out.add(part.split(";", 1)[0].strip())
    return out


async def get(request: web.Request, route: Route) -> web.StreamResponse:
    reg = request.app[REGISTRY]
    repo, ref = route.name, route.ref
    tag = None
    if is_digest(ref):
        digest = str(check_digest(ref))
    else:
        tag = ref
        if not _is_tag(tag):
            raise errors.manifest_unknown("invalid tag", detail={"tag": tag})
        resolved = await reg.driver.resolve_tag(repo, tag)
        if resolved is None:
            raise errors.manifest_unknown(detail={"tag": tag})
        digest = resolved
    item = await load(reg, repo, digest)
    if item is None:
        raise errors.manifest_unknown(detail={"digest": digest} if tag is None else {"tag": tag})
    data, media_type = item
    if tag is not None:
        # Distribution's negotiation: a tag names what the client says it can read.
        accepted = _accepted(request)
        if media_type == mt.OCI_MANIFEST and mt.OCI_MANIFEST not in accepted:
            raise errors.manifest_unknown("OCI manifest found, but accept header does not support OCI manifests")
        if media_type == mt.OCI_INDEX and mt.OCI_INDEX not in accepted:
            raise errors.manifest_unknown("OCI index found, but accept header does not support OCI indexes")
        if media_type == mt.DOCKER_MANIFEST_LIST and mt.DOCKER_MANIFEST_LIST not in accepted:
            child = _default_platform_child(data)
            if child is not None:
                item = await load(reg, repo, child)
                if item is None:
                    raise errors.manifest_unknown(detail={"digest": child})
                data, media_type = item
                digest = child
    headers = {"Content-Type": media_type, "Docker-Content-Digest": digest, "Etag": f'"{digest}"'}
    if request.headers.get("If-None-Match") == f'"{digest}"':
        return web.Response(status=304, headers={"Docker-Content-Digest": digest, "Etag": f'"{digest}"'})
    return web.Response(body=data, status=200, headers=headers)


def _default_platform_child(data: bytes) -> str | None:
    """linux/amd64 of a manifest list, which Distribution serves to clients that cannot read lists."""
    try:
        for m in json.loads(data).get("manifests", []):
            p = m.get("platform") or {}
            if p.get("os") == "linux" and p.get("architecture") == "amd64":
                return m.get("digest")
    except (ValueError, AttributeError):
        return None
    return None


async def put(request: web.Request, route: Route) -> web.StreamResponse:
    reg = request.app[REGISTRY]
    repo, ref = route.name, route.ref
    limit = reg.config.http.maxmanifestsize
    data = await read_limited(request, limit)
    if data is None:
        raise errors.manifest_invalid(f"manifest is larger than the {limit} bytes allowed", status=413,
                                      detail={"limit": limit})
    expected = check_digest(ref) if is_digest(ref) else None
    if expected is None and not _is_tag(ref):
        raise errors.manifest_invalid("invalid tag", detail={"tag": ref})
    algorithm = expected.algorithm if expected else "sha256"
    digest = dg.Digest(algorithm, hashlib.new(algorithm, data).hexdigest())
    if expected is not None and digest != expected:
        raise errors.digest_invalid(f"manifest digest {digest} does not match {expected}",
                                    detail={"expected": str(expected), "got": str(digest)})
    content_type = (request.headers.get("Content-Type") or "").split(";", 1)[0].strip()
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise errors.manifest_invalid(f"manifest is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise errors.manifest_invalid("manifest is not a JSON object")
    try:
        parsed = pm.parse_document(doc, content_type if content_type in KNOWN_TYPES else None, "manifest")
    except InvalidDocument as e:
        raise errors.manifest_invalid(str(e)) from None
    if isinstance(parsed, pm.ImageConfig):
        raise errors.manifest_invalid("an image config is not a manifest")
    media_type = parsed.media_type or (mt.OCI_INDEX if isinstance(parsed, pm.Index) else mt.OCI_MANIFEST)
    digest_s = str(digest)
    # Validate-then-link under the gc lock: a sweep cannot delete what was just found present.
    async with reg.driver.reference_lock():
        await _verify_references(reg, repo, parsed)
        await reg.driver.put_manifest(repo, digest_s, data)
        if expected is None:
            await reg.driver.tag(repo, ref, digest_s)
    reg.manifests.put(digest_s, data, media_type)
    headers = {"Location": f"/v2/{repo}/manifests/{digest_s}", "Docker-Content-Digest": digest_s,
               "Content-Length": "0"}
    if parsed.subject is not None:
        headers["OCI-Subject"] = parsed.subject.digest
    return web.Response(status=201, headers=headers)


def _is_tag(ref: str) -> bool:
    from pyoci.reference import is_valid_tag

    return is_valid_tag(ref)


async def _verify_references(reg: Registry, repo: str, parsed: pm.Manifest | pm.Index) -> None:
    """Every blob and child manifest a manifest names must be in the repository (the subject need not be)."""
    driver = reg.driver
    missing = []
    if isinstance(parsed, pm.Manifest):
        for d in (parsed.config, *parsed.layers):
            if d.urls and d.media_type in _FOREIGN:
                continue
            if not await driver.blob_linked(repo, d.digest) or await driver.stat_blob(d.digest) is None:
                # A manifest used as a blob (artifacts) is fine too.
                if not await driver.manifest_linked(repo, d.digest):
                    missing.append(d.digest)
    else:
        for d in parsed.manifests:
            if not await driver.manifest_linked(repo, d.digest):
                missing.append(d.digest)
    if missing:
        raise errors.manifest_blob_unknown(f"manifest references unknown blob {missing[0]}", detail=missing[0])


async def delete(request: web.Request, route: Route) -> web.StreamResponse:
    reg = request.app[REGISTRY]
    if not reg.config.storage.delete_enabled:
        raise errors.unsupported("The operation is unsupported. (storage.delete.enabled is false)")
    repo, ref = route.name, route.ref
    if is_digest(ref):
        digest = str(check_digest(ref))
        if not await reg.driver.delete_manifest(repo, digest):
            raise errors.manifest_unknown(detail={"digest": digest})
    elif not _is_tag(ref) or not await reg.driver.delete_tag(repo, ref):
        raise errors.manifest_unknown(detail={"tag": ref})
    return web.Response(status=202, headers={"Content-Length": "0"})
