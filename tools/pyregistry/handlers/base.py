"""What every handler shares: the registry context, route matching, name/digest checks, request bodies."""

from __future__ import annotations

import os
import re
import socket
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, AsyncIterable, AsyncIterator

from aiohttp import web

from pyoci import digest as dg
from pyoci import reference
from pyoci.errors import InvalidDigest

from .. import errors
from ..config import Config
from ..storage import StorageDriver
from ..storage.body import SocketBody

API_VERSION_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")
JSON = "application/json; charset=utf-8"


class ManifestCache:
    """Manifest bytes and media type by digest (content-addressed, so never stale); bounded in bytes."""

    def __init__(self, max_bytes: int = 64 << 20) -> None:
        self.max_bytes = max_bytes
        self.used = 0
        self._items: OrderedDict[str, tuple[bytes, str]] = OrderedDict()

    def get(self, digest: str) -> tuple[bytes, str] | None:
        item = self._items.get(digest)
        if item is not None:
            self._items.move_to_end(digest)
        return item

    def put(self, digest: str, data: bytes, media_type: str) -> None:
        if digest in self._items or len(data) > self.max_bytes // 16:
            return
        self._items[digest] = (data, media_type)
        self.used += len(data)
        while self.used > self.max_bytes:
            _, (old, _) = self._items.popitem(last=False)
            self.used -= len(old)


@dataclass
class Registry:
    """The per-application state handlers work with (kept on the app, not in globals)."""

    config: Config
    driver: StorageDriver
    authorizer: Any = None          # pyregistry.auth.Authorizer or None
    manifests: ManifestCache = field(default_factory=ManifestCache)
    # Blob downloads block a thread each for their duration: their own pool keeps them off the default one.
    sendfile_pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(64, thread_name_prefix="sendfile"))


REGISTRY = web.AppKey("registry", Registry)
# the body was taken off the socket: close the connection after the response
DIRECT_BODY = web.RequestKey("direct_body", bool)


@dataclass(frozen=True)
class Route:
    kind: str        # base, catalog, tags, manifest, blob, upload, referrers
    name: str = ""   # repository
    ref: str = ""    # tag/digest, blob digest, upload uuid


_ROUTES = [
    ("upload", re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/(?P<ref>[^/]*)$")),
    ("blob", re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<ref>[^/]+)$")),
    ("manifest", re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)$")),
    ("tags", re.compile(r"^/v2/(?P<name>.+)/tags/list$")),
    ("referrers", re.compile(r"^/v2/(?P<name>.+)/referrers/(?P<ref>[^/]+)$")),
]


def match(path: str) -> Route | None:
    if path in ("/v2/", "/v2"):
        return Route("base")
    if path == "/v2/_catalog":
        return Route("catalog")
    for kind, rx in _ROUTES:
        m = rx.match(path)
        if m is not None:
            return Route(kind, m.group("name"), m.groupdict().get("ref") or "")
    return None


# The distribution-spec's <name> grammar (path components only, as Distribution's router takes them).
_NAME_RE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*)*")


def check_name(name: str) -> str:
    """A repository name: lower case components joined by `/`, no `..`, at most 255 characters."""
    if len(name) > reference.NAME_TOTAL_LENGTH_MAX:
        raise errors.name_invalid(reference.ERR_NAME_TOO_LONG, detail={"name": name[:300]})
    if not _NAME_RE.fullmatch(name):
        reason = (reference.ERR_NAME_CONTAINS_UPPERCASE if _NAME_RE.fullmatch(name.lower())
                  else reference.ERR_REFERENCE_INVALID_FORMAT)
        raise errors.name_invalid(f"invalid repository name: {reason}", detail={"name": name})
    return name


def check_digest(value: str) -> dg.Digest:
    try:
        return dg.Digest.parse(value)
    except InvalidDigest as e:
        raise errors.digest_invalid(str(e), detail={"digest": value}) from None


def is_digest(ref: str) -> bool:
    return ":" in ref


async def body_chunks(request: web.Request) -> AsyncIterator[bytes]:
    """The body as the buffers arrived: readchunk() hands them over as they are, where iter_any() would
    join (copy) everything buffered into one bytes object first."""
    content = request.content
    while True:
        data, end_of_http_chunk = await content.readchunk()
        if data:
            yield data
        elif not end_of_http_chunk:
            return


DIRECT_BODY_MIN = 1 << 20   # bodies at least this large are read by the driver's thread straight off the socket


def upload_body(request: web.Request) -> AsyncIterable[bytes]:
    """The body of a blob upload: a SocketBody (read off the socket in a worker thread) for a large plain
    Content-Length body on a clear-text connection, else the chunks as aiohttp delivers them.

    Taking the body over: the HTTP layer has parsed the headers and buffered the first part of the body; we
    take that buffer, stop the transport from reading, and leave the rest of the body in the socket for the
    worker's recv_into(). aiohttp's parser then never sees the end of that body, so the payload is marked
    complete by hand and the response closes the connection (`release_direct_body`)."""
    length = request.content_length
    transport = request.transport
    if (length is None or length < DIRECT_BODY_MIN or transport is None or request.headers.get("Content-Encoding")
            or "chunked" in request.headers.get("Transfer-Encoding", "").lower()
            or transport.get_extra_info("sslcontext") is not None):
        return body_chunks(request)
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX):
        return body_chunks(request)
    content = request.content
    # All synchronous (no await): the loop cannot read the socket between the drain and the pause.
    head = content.read_nowait()
    if len(head) >= length:
        return _one(head)
    transport.pause_reading()
    dup = socket.socket(sock.family, sock.type, fileno=os.dup(sock.fileno()))
    request[DIRECT_BODY] = True   # whatever the answer, the connection closes after it
    return SocketBody(head, dup, length - len(head))


async def _one(data: bytes) -> AsyncIterator[bytes]:
    if data:
        yield data


def release_direct_body(request: web.Request, body: AsyncIterable[bytes]) -> None:
    """After a SocketBody: close our dup and end aiohttp's payload (its parser never saw those bytes); the
    middleware then makes the response close the connection, whose parser state is now out of step."""
    if isinstance(body, SocketBody):
        body.close()
        request.content.feed_eof()


async def read_limited(request: web.Request, limit: int) -> bytes | None:
    """The whole body, or None when it is larger than `limit`."""
    if request.content_length is not None and request.content_length > limit:
        return None
    buf = bytearray()
    async for chunk in request.content.iter_any():
        buf += chunk
        if len(buf) > limit:
            return None
    return bytes(buf)


def parse_n(request: web.Request, default: int | None) -> int | None:
    raw = request.query.get("n")
    if raw is None or raw == "":
        return default
    try:
        n = int(raw)
    except ValueError:
        n = -1
    if n < 0:
        raise errors.pagination_number_invalid(detail={"n": raw})
    return n


def paginate(items: list[str], request: web.Request, default_n: int | None, link_path: str,
             ) -> tuple[list[str], dict[str, str]]:
    """Items after `last`, at most `n`, and the Link header to the next page when more remain."""
    n = parse_n(request, default_n)
    last = request.query.get("last")
    if last:
        items = [i for i in items if i > last]
    if n is None or len(items) <= n:
        return items, {}
    page = items[:n]
    headers = {}
    if page:
        headers["Link"] = f'<{link_path}?n={n}&last={page[-1]}>; rel="next"'
    return page, headers


def json_response(body: bytes, status: int = 200, headers: dict[str, str] | None = None,
                  content_type: str = JSON) -> web.Response:
    h = {"Content-Type": content_type}
    if headers:
        h.update(headers)
    return web.Response(body=body, status=status, headers=h)
