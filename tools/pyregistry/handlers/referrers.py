"""The referrers API: GET /v2/<name>/referrers/<digest>, an index of the manifests whose subject is <digest>
(artifactType and annotations in each descriptor; ?artifactType= filters, said by OCI-Filters-Applied)."""

from __future__ import annotations

import json

from aiohttp import web

from pyoci import mediatypes as mt

from .base import REGISTRY, Route, check_digest, json_response
from .manifests import load


async def referrers(request: web.Request, route: Route) -> web.StreamResponse:
    reg = request.app[REGISTRY]
    subject = str(check_digest(route.ref))
    want = request.query.get("artifactType")
    out = []
    if await reg.driver.repository_exists(route.name):
        for digest in await reg.driver.list_manifests(route.name):
            item = await load(reg, route.name, digest)
            if item is None:
                continue
            desc = _referrer(item[0], item[1], digest, subject)
            if desc is not None and (not want or desc.get("artifactType") == want):
                out.append(desc)
    body = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": out}).encode()
    headers = {"OCI-Filters-Applied": "artifactType"} if want else {}
    return json_response(body, headers=headers, content_type=mt.OCI_INDEX)


def _referrer(data: bytes, media_type: str, digest: str, subject: str) -> dict | None:
    if b'"subject"' not in data:  # cheap pre-filter before parsing
        return None
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    sub = doc.get("subject")
    if not isinstance(sub, dict) or sub.get("digest") != subject:
        return None
    desc: dict = {"mediaType": media_type, "digest": digest, "size": len(data)}
    artifact_type = doc.get("artifactType")
    if not artifact_type and isinstance(doc.get("config"), dict):
        artifact_type = doc["config"].get("mediaType")
    if artifact_type:
        desc["artifactType"] = artifact_type
    if isinstance(doc.get("annotations"), dict) and doc["annotations"]:
        desc["annotations"] = doc["annotations"]
    return desc
