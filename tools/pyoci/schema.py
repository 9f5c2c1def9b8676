"""Validation against the official OCI JSON schemas (image-spec and runtime-spec, draft-04).

The schemas ship inside the package (copied unchanged from the specs); tests point `schema_dir` at
`../shared/oci-schemas` to validate against the official copies.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

from .errors import InvalidDocument

BUNDLED = Path(__file__).with_name("schemas")

# Friendly names -> (spec folder, file).
SCHEMAS = {
    "manifest": ("image-spec", "image-manifest-schema.json"),
    "index": ("image-spec", "image-index-schema.json"),
    "config": ("image-spec", "config-schema.json"),
    "layout": ("image-spec", "image-layout-schema.json"),
    "descriptor": ("image-spec", "content-descriptor.json"),
    "runtime-config": ("runtime-spec", "config-schema.json"),
    "state": ("runtime-spec", "state-schema.json"),
    "features": ("runtime-spec", "features-schema.json"),
}


@functools.lru_cache(maxsize=None)
def validator(name: str, schema_dir: str | None = None):
    """A cached draft-04 validator whose relative `$ref`s resolve to sibling files."""
    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    spec, filename = SCHEMAS[name]
    folder = Path(schema_dir or BUNDLED) / spec
    base = folder.resolve().as_uri() + "/"

    def retrieve(uri: str) -> Resource:
        # Nested "id"s rebase refs onto https://opencontainers.org/schema/...; every schema file is a sibling.
        name = uri.split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        with open(folder / name) as f:
            return Resource.from_contents(json.load(f), default_specification=DRAFT4)

    with open(folder / filename) as f:
        root = json.load(f)
    root = dict(root, id=base + filename)
    registry = Registry(retrieve=retrieve)
    return jsonschema.Draft4Validator(root, registry=registry)


def errors(document: Any, name: str, schema_dir: str | os.PathLike | None = None) -> list[str]:
    """All schema violations of `document`, each as 'path: message'."""
    v = validator(name, os.fspath(schema_dir) if schema_dir else None)
    out = []
    for e in sorted(v.iter_errors(document), key=lambda e: list(e.absolute_path)):
        where = ".".join(str(p) for p in e.absolute_path) or "(top level)"
        out.append(f"{where}: {e.message}")
    return out


def validate(document: Any, name: str, schema_dir: str | os.PathLike | None = None, source: str = "") -> None:
    """Raise InvalidDocument naming the first bad field."""
    problems = errors(document, name, schema_dir)
    if problems:
        prefix = f"{source}: " if source else ""
        raise InvalidDocument(f"{prefix}invalid {name}: {problems[0]}")
