"""Blobs: GET/HEAD (zero-copy sendfile, Range) and DELETE."""

from __future__ import annotations

import asyncio
import os
import re
import select
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from .. import errors
from .base import REGISTRY, Registry, Route, check_digest
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
