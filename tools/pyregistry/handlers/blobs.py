"""Blobs (GET/HEAD with Range, DELETE) and upload sessions (POST, PATCH, PUT, GET status, DELETE, mount)."""

from __future__ import annotations

import asyncio
import os
import re
import select
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from pyoci.errors import DigestMismatch

from .. import errors
from ..storage import UploadInfo, UploadOffsetMismatch, UploadUnknown
from .base import REGISTRY, Registry, Route, body_chunks, check_digest, check_name

_CONTENT_RANGE = re.compile(r"^(?:bytes[ =])?(\d+)-(\d+)(?:/(?:\d+|\*))?$")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


async def _visible(reg: Registry, repo: str, digest: str) -> bool:
    # Manifests are readable through the blob endpoint too, as in Distribution.
    return await reg.driver.blob_linked(repo, digest) or await reg.driver.manifest_linked(repo, digest)


async def get(request: web.Request, route: Route) -> web.StreamResponse:
    reg = request.app[REGISTRY]
    digest = str(check_digest(route.ref))
    info = await reg.driver.stat_blob(digest) if await _visible(reg, route.name, digest) else None
    if info is None:
        raise errors.blob_unknown(detail={"digest": digest})
    headers = {"Docker-Content-Digest": digest, "Content-Type": "application/octet-stream",
               "Accept-Ranges": "bytes", "Etag": f'"{digest}"', "Cache-Control": "max-age=31536000"}
    if info.path is not None:
        # Zero-copy sendfile; FileResponse answers Range with 206/Content-Range and out-of-bounds with 416.
        rng = request.headers.get("Range")
        if rng and not _range_ok(rng, info.size):
            raise errors.range_invalid(detail={"range": rng, "size": info.size},
                                       headers={"Content-Range": f"bytes */{info.size}"})
        return SendfileResponse(info.path, reg.sendfile_pool, chunk_size=1 << 20, headers=headers)
    return await _stream(request, reg, digest, info.size, headers)


class SendfileResponse(web.FileResponse):
    """FileResponse with real zero-copy: uvloop has no loop.sendfile(), so aiohttp would fall back to reading
    the file into Python and writing it. Here os.sendfile() runs in a worker thread straight from the page
    cache to the socket once the headers have left the transport (TLS still takes aiohttp's path)."""

    SEND_TIMEOUT = 60.0  # seconds a client may leave the socket unwritable

    def __init__(self, path: str, pool: ThreadPoolExecutor, **kwargs) -> None:
        super().__init__(path, **kwargs)
        self._pool = pool

    async def _sendfile(self, request, fobj, offset: int, count: int):
        writer = await web.StreamResponse.prepare(self, request)
        transport = request.transport
        if transport is None:
            raise ConnectionResetError("Connection lost")
        sock = transport.get_extra_info("socket")
        if (sock is None or transport.get_extra_info("sslcontext") is not None or self.compression
                or transport.get_write_buffer_size() != 0 or count == 0):
            return await self._sendfile_fallback(writer, fobj, offset, count)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, _sendfile_blocking, sock.fileno(), fobj.fileno(), offset, count,
                                   self.SEND_TIMEOUT)
        await web.StreamResponse.write_eof(self)
        return writer


def _sendfile_blocking(out_fd: int, in_fd: int, offset: int, count: int, timeout: float) -> None:
    """os.sendfile on a non-blocking socket, waiting with poll() whenever the socket buffer is full."""
    poller = select.poll()
    poller.register(out_fd, select.POLLOUT)
    while count > 0:
        try:
            sent = os.sendfile(out_fd, in_fd, offset, count)
        except BlockingIOError:
            if not poller.poll(timeout * 1000):
                raise ConnectionResetError("client stopped reading") from None
            continue
        if sent == 0:
            raise ConnectionResetError("file ended early")
        offset += sent
        count -= sent


def _range_ok(value: str, size: int) -> bool:
    m = _RANGE.match(value.strip())
    if m is None:
        return True  # not a single byte range: FileResponse decides
    start, end = m.group(1), m.group(2)
    if start == "":
        return end != "" and int(end) > 0
    return int(start) < size and (end == "" or int(end) >= int(start))


async def _stream(request: web.Request, reg: Registry, digest: str, size: int, headers: dict) -> web.StreamResponse:
    """For drivers without a local file: a plain (Range-aware) copy."""
    start, end, status = 0, size - 1, 200
    rng = request.headers.get("Range")
    if rng:
        m = _RANGE.match(rng.strip())
        if m is None or not _range_ok(rng, size):
            raise errors.range_invalid(headers={"Content-Range": f"bytes */{size}"})
        if m.group(1) == "":
            start = max(0, size - int(m.group(2)))
        else:
            start = int(m.group(1))
            end = min(size - 1, int(m.group(2))) if m.group(2) else size - 1
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1)
    resp = web.StreamResponse(status=status, headers=headers)
    await resp.prepare(request)
    if request.method == "HEAD":
        return resp
    f = await reg.driver.open_blob(digest)
    if f is None:
        raise errors.blob_unknown(detail={"digest": digest})
    with f:
        f.seek(start)
        left = end - start + 1
        while left > 0:
            chunk = f.read(min(left, 1 << 20))
            if not chunk:
                break
            left -= len(chunk)
            await resp.write(chunk)
    await resp.write_eof()
    return resp


async def delete(request: web.Request, route: Route) -> web.StreamResponse:
    reg = request.app[REGISTRY]
    if not reg.config.storage.delete_enabled:
        raise errors.unsupported("The operation is unsupported. (storage.delete.enabled is false)")
    digest = str(check_digest(route.ref))
    if not await reg.driver.unlink_blob(route.name, digest):
        raise errors.blob_unknown(detail={"digest": digest})
    return web.Response(status=202, headers={"Content-Length": "0", "Docker-Content-Digest": digest})


# -- uploads ---------------------------------------------------------------------------------------------------

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
        if await _may_mount(request, reg, check_name(source), digest):
            await reg.driver.link_blob(repo, digest)
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
    try:
        return await reg.driver.append_upload(info.repo, info.uuid, body_chunks(request), offset)
    except UploadOffsetMismatch as e:
        cur = UploadInfo(info.repo, info.uuid, e.size, info.started)
        raise errors.range_invalid(f"chunk starts at {offset} but the upload is at {e.size}",
                                   detail={"Content-Range": content_range}, headers=_session_headers(cur)) from None


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
