"""What every handler shares: the registry context, route matching, name/digest checks, request bodies."""

from __future__ import annotations

import re
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from aiohttp import web

from pyoci import digest as dg
from pyoci import reference
from pyoci.errors import InvalidDigest

from .. import errors
from ..config import Config
from ..storage import StorageDriver

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
