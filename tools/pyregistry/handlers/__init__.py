"""The /v2/ API: one dispatcher over the route kinds (names contain `/`, so routes are matched by regex here)."""

from __future__ import annotations

import json
from typing import Awaitable, Callable

from aiohttp import web

from .. import errors
from . import blobs, manifests
from .base import REGISTRY, Route, json_response, paginate

Handler = Callable[[web.Request, Route], Awaitable[web.StreamResponse]]

CATALOG_DEFAULT_N = 100   # Distribution's page size when the client gives none


async def base(request: web.Request, route: Route) -> web.StreamResponse:
    return json_response(b"{}")


async def catalog(request: web.Request, route: Route) -> web.StreamResponse:
    repos = await request.app[REGISTRY].driver.list_repositories()
    page, headers = paginate(repos, request, CATALOG_DEFAULT_N, "/v2/_catalog")
    return json_response(json.dumps({"repositories": page}).encode(), headers=headers)


async def tags(request: web.Request, route: Route) -> web.StreamResponse:
    all_tags = await request.app[REGISTRY].driver.list_tags(route.name)
    if all_tags is None:
        raise errors.name_unknown(detail={"name": route.name})
    page, headers = paginate(all_tags, request, None, f"/v2/{route.name}/tags/list")
    return json_response(json.dumps({"name": route.name, "tags": page}).encode(), headers=headers)


# (kind, method) -> handler; HEAD is served by the GET handlers.
TABLE: dict[tuple[str, str], Handler] = {
    ("base", "GET"): base,
    ("catalog", "GET"): catalog,
    ("tags", "GET"): tags,
    ("manifest", "GET"): manifests.get,
    ("manifest", "PUT"): manifests.put,
    ("manifest", "DELETE"): manifests.delete,
    ("referrers", "GET"): manifests.referrers,
    ("blob", "GET"): blobs.get,
    ("blob", "DELETE"): blobs.delete,
    ("upload", "POST"): blobs.start,
    ("upload", "PATCH"): blobs.patch,
    ("upload", "PUT"): blobs.finish,
    ("upload", "GET"): blobs.status,
    ("upload", "DELETE"): blobs.cancel,
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
