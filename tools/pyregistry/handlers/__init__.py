"""The /v2/ API: one dispatcher over the route kinds (names contain `/`, so routes are matched by regex here)."""

from __future__ import annotations

from typing import Awaitable, Callable

from aiohttp import web

from .. import errors
from . import blobs, manifests, referrers, tags, uploads
from .base import Route

Handler = Callable[[web.Request, Route], Awaitable[web.StreamResponse]]

# (kind, method) -> handler; HEAD is served by the GET handlers.
TABLE: dict[tuple[str, str], Handler] = {
    ("base", "GET"): tags.base,
    ("catalog", "GET"): tags.catalog,
    ("tags", "GET"): tags.tags,
    ("manifest", "GET"): manifests.get,
    ("manifest", "PUT"): manifests.put,
    ("manifest", "DELETE"): manifests.delete,
    ("referrers", "GET"): referrers.referrers,
    ("blob", "GET"): blobs.get,
    ("blob", "DELETE"): blobs.delete,
    ("upload", "POST"): uploads.start,
    ("upload", "PATCH"): uploads.patch,
    ("upload", "PUT"): uploads.finish,
    ("upload", "GET"): uploads.status,
    ("upload", "DELETE"): uploads.cancel,
}

ALLOWED: dict[str, str] = {}
for (_kind, _method) in TABLE:
    ALLOWED[_kind] = ", ".join(sorted({*ALLOWED.get(_kind, "").split(", "), _method, *(
        ["HEAD"] if _method == "GET" else [])} - {""}))


def lookup(route: Route, method: str) -> Handler:
    if route.kind == "upload" and method == "POST" and route.ref:
        raise errors.unsupported(headers={"Allow": "GET, PATCH, PUT, DELETE"})
    if route.kind == "upload" and method != "POST" and not route.ref:
        raise errors.blob_upload_unknown()
    handler = TABLE.get((route.kind, "GET" if method == "HEAD" else method))
    if handler is None:
        raise errors.unsupported(f"method {method} not allowed here", headers={"Allow": ALLOWED[route.kind]})
    return handler


# The action each method needs (auth middleware).
ACTIONS = {"GET": "pull", "HEAD": "pull", "POST": "push", "PUT": "push", "PATCH": "push", "DELETE": "delete"}
