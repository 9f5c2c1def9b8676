"""Listings: the /v2/ base, tags of a repository and the catalog, paginated with n/last and a Link header."""

from __future__ import annotations

import json

from aiohttp import web

from .. import errors
from .base import REGISTRY, Route, json_response, paginate

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
