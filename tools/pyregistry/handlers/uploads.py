"""Upload sessions: POST (monolithic ?digest=, cross-repo mount, or a new session), PATCH chunks (Content-Range,
416 out of order) or streams, PUT ?digest= to close with verification, GET status, DELETE to cancel."""

from __future__ import annotations

import re

from aiohttp import web

from pyoci.errors import DigestMismatch

from .. import errors
from ..storage import UploadInfo, UploadOffsetMismatch, UploadUnknown
from .base import REGISTRY, Registry, Route, check_digest, check_name, release_direct_body, upload_body

_CONTENT_RANGE = re.compile(r"^(?:bytes[ =])?(\d+)-(\d+)(?:/(?:\d+|\*))?$")


def _session_headers(info: UploadInfo) -> dict[str, str]:
    return {"Location": f"/v2/{info.repo}/blobs/uploads/{info.uuid}", "Docker-Upload-UUID": info.uuid,
            "Range": f"0-{max(info.size - 1, 0)}"}


def _created(repo: str, digest: str) -> web.Response:
    return web.Response(status=201, headers={"Location": f"/v2/{repo}/blobs/{digest}",
                                             "Docker-Content-Digest": digest, "Content-Length": "0"})


async def start(request: web.Request, route: Route) -> web.StreamResponse:
    """POST /v2/<name>/blobs/uploads/: mount, monolithic (?digest=) or a new session."""
    reg = request.app[REGISTRY]
    repo = route.name
    mount, source = request.query.get("mount"), request.query.get("from")
    if mount and source:
        digest = str(check_digest(mount))
        async with reg.driver.reference_lock():  # gc cannot sweep the blob between the check and the link
            mounted = await _may_mount(request, reg, check_name(source), digest)
            if mounted:
                await reg.driver.link_blob(repo, digest)
        if mounted:
            return _created(repo, digest)
    info = await reg.driver.create_upload(repo)
    if "digest" in request.query:
        return await _finish(request, reg, info, request.query["digest"])
    return web.Response(status=202, headers=_session_headers(info))


async def _may_mount(request: web.Request, reg: Registry, source: str, digest: str) -> bool:
    if not await reg.driver.blob_linked(source, digest) or await reg.driver.stat_blob(digest) is None:
        return False
    if reg.authorizer is not None:
        try:
            await reg.authorizer.authorize(request, source, {"pull"})
        except errors.RegistryHTTPError:
            return False  # not allowed to read the source: fall back to an upload, as Distribution does
    return True


async def _append(request: web.Request, reg: Registry, info: UploadInfo) -> int:
    offset = None
    content_range = request.headers.get("Content-Range")
    if content_range:
        m = _CONTENT_RANGE.match(content_range.strip())
        if m is None:
            raise errors.range_invalid(detail={"Content-Range": content_range}, headers=_session_headers(info))
        start, end = int(m.group(1)), int(m.group(2))
        length = request.content_length
        if end < start or (length is not None and length != end - start + 1):
            raise errors.range_invalid(detail={"Content-Range": content_range, "Content-Length": length},
                                       headers=_session_headers(info))
        offset = start
        if offset != info.size:  # refused before the body is touched, so the connection stays usable
            raise errors.range_invalid(f"chunk starts at {offset} but the upload is at {info.size}",
                                       detail={"Content-Range": content_range}, headers=_session_headers(info))
    body = upload_body(request)
    try:
        return await reg.driver.append_upload(info.repo, info.uuid, body, offset)
    except UploadOffsetMismatch as e:
        cur = UploadInfo(info.repo, info.uuid, e.size, info.started)
        raise errors.range_invalid(f"chunk starts at {offset} but the upload is at {e.size}",
                                   detail={"Content-Range": content_range}, headers=_session_headers(cur)) from None
    finally:
        release_direct_body(request, body)


async def _session(reg: Registry, route: Route) -> UploadInfo:
    try:
        return await reg.driver.upload_info(route.name, route.ref)
    except UploadUnknown:
        raise errors.blob_upload_unknown(detail={"uuid": route.ref}) from None


async def patch(request: web.Request, route: Route) -> web.StreamResponse:
    reg = request.app[REGISTRY]
    info = await _session(reg, route)
    try:
        size = await _append(request, reg, info)
    except UploadUnknown:
        raise errors.blob_upload_unknown(detail={"uuid": route.ref}) from None
    return web.Response(status=202, headers=_session_headers(UploadInfo(info.repo, info.uuid, size, info.started)))


async def finish(request: web.Request, route: Route) -> web.StreamResponse:
    """PUT /v2/<name>/blobs/uploads/<uuid>?digest=: the last chunk (optional) and verification."""
    reg = request.app[REGISTRY]
    info = await _session(reg, route)
    if "digest" not in request.query:
        raise errors.digest_invalid("digest parameter is required to close an upload")
    return await _finish(request, reg, info, request.query["digest"])


async def _finish(request: web.Request, reg: Registry, info: UploadInfo, digest_param: str) -> web.StreamResponse:
    try:
        digest = str(check_digest(digest_param))
    except errors.RegistryHTTPError:
        await reg.driver.cancel_upload(info.repo, info.uuid)
        raise
    try:
        if request.body_exists or request.headers.get("Content-Range"):
            await _append(request, reg, info)
        async with reg.driver.reference_lock():  # a deduplicated commit links a blob gc may be sweeping
            await reg.driver.commit_upload(info.repo, info.uuid, digest)
    except UploadUnknown:
        raise errors.blob_upload_unknown(detail={"uuid": info.uuid}) from None
    except DigestMismatch as e:
        raise errors.digest_invalid(str(e), detail={"digest": digest}) from None
    return _created(info.repo, digest)


async def status(request: web.Request, route: Route) -> web.StreamResponse:
    info = await _session(request.app[REGISTRY], route)
    return web.Response(status=204, headers=_session_headers(info))


async def cancel(request: web.Request, route: Route) -> web.StreamResponse:
    reg = request.app[REGISTRY]
    if not await reg.driver.cancel_upload(route.name, route.ref):
        raise errors.blob_upload_unknown(detail={"uuid": route.ref})
    return web.Response(status=204, headers={"Content-Length": "0"})
