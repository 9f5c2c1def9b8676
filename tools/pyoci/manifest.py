"""OCI descriptors, image manifests, indexes and image configs, and Docker's schema2 manifest and manifest list.

Reading (`from_json`) checks the shape and names the bad field
(`manifest sha256:ab…: layers[2].digest: invalid digest …`); keys this module does not know are kept in
`extra` and written back, so a round trip loses nothing (JSON `null` reads as "absent", as in Go).

Writing (`to_json`) produces the bytes the Go tools produce for the same document: image-spec's
(or distribution's, for Docker documents) struct field order, Go's `omitempty` rules, map keys sorted, no
whitespace, and Go's HTML-safe escaping of `<`, `>`, `&`. Keys kept in `extra` follow the known ones. This is
a canonical form for documents we create; a document read from elsewhere must keep its original bytes
wherever its digest matters (a registry's manifest, a config blob), since re-serialising can change them.

Docker's schema2 manifest and manifest list use the same classes (`Manifest`/`Index` with a Docker
`media_type`); `to_oci()` and `to_docker()` convert between the two. A Docker image config is the same
JSON as an OCI one: converting an image only changes the config descriptor's media type.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from . import digest as _digest
from . import mediatypes as mt
from .errors import InvalidDigest, InvalidDocument
from .platform import InvalidPlatform, Platform

_MEDIA_TYPE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}")
_RFC3339_RE = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})", re.ASCII)
_MAX_INT64 = (1 << 63) - 1

DOCKER_TYPES = (mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST_LIST)


# ---------------------------------------------------------------- JSON in and out


def go_json(obj: Any, indent: int | None = None) -> bytes:
    """Serialise like Go's encoding/json (Marshal, or MarshalIndent with `indent` spaces).

    Key order is the caller's (build dicts in struct order, maps sorted); Go escapes <, >, & and
    U+2028/U+2029 and writes other non-ASCII as UTF-8.
    """
    if indent is None:
        text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    else:
        text = json.dumps(obj, ensure_ascii=False, indent=indent, separators=(",", ": "), allow_nan=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                    ("\u2029", "\\u2029")):
        if ch in text:
            text = text.replace(ch, esc)
    # A lone surrogate (from a "\ud800" escape in the input) stays an escape rather than failing.
    return text.encode("utf-8", errors="backslashreplace")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _load(data: bytes | bytearray | memoryview | str | Mapping[str, Any], source: str, what: str) -> dict:
    if isinstance(data, Mapping):
        doc = data
    else:
        try:
            if isinstance(data, (bytes, bytearray, memoryview)):
                data = bytes(data).decode("utf-8")
            doc = json.loads(data, parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError) as e:
            raise InvalidDocument(f"{_prefix(source)}{what} is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise InvalidDocument(f"{_prefix(source)}{what} must be a JSON object, got {_jtype(doc)}")
    return dict(doc)


def _prefix(source: str) -> str:
    return f"{source}: " if source else ""


def _jtype(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(v), type(v).__name__)


class _Reader:
    """Typed access to one JSON object; every error names `source: path.key`."""

    def __init__(self, doc: Any, source: str, path: str) -> None:
        self.source, self.path = source, path
        if not isinstance(doc, dict):
            raise self.error("", f"must be an object, got {_jtype(doc)}")
        self.doc = doc

    def where(self, key: str) -> str:
        if not key:
            return self.path or "(top level)"
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, message: str) -> InvalidDocument:
        return InvalidDocument(f"{_prefix(self.source)}{self.where(key)}: {message}")

    def get(self, key: str) -> Any:
        return self.doc.get(key)

    def str(self, key: str, required: bool = False) -> str:
        v = self.doc.get(key)
        if v is None:
            if required:
                raise self.error(key, "is required")
            return ""
        if not isinstance(v, str):
            raise self.error(key, f"must be a string, got {_jtype(v)}")
        return v

    def media_type(self, key: str, required: bool = False) -> str:
        v = self.str(key, required)
        if v and not _MEDIA_TYPE_RE.fullmatch(v):
            raise self.error(key, f"invalid media type {v!r}")
        if required and not v:
            raise self.error(key, "is required")
        return v

    def digest(self, key: str, required: bool = True) -> str:
        v = self.str(key, required)
        if not v and not required:
            return ""
        try:
            return str(_digest.Digest.parse(v))
        except InvalidDigest as e:
            raise self.error(key, str(e)) from None

    def int(self, key: str, required: bool = False, minimum: int = 0) -> int:
        v = self.doc.get(key)
        if v is None:
            if required:
                raise self.error(key, "is required")
            return 0
        if isinstance(v, bool) or not isinstance(v, int) or not minimum <= v <= _MAX_INT64:
            raise self.error(key, f"must be an integer >= {minimum}, got {v!r}")
        return v

    def bool(self, key: str) -> bool:
        v = self.doc.get(key)
        if v is None:
            return False
        if not isinstance(v, bool):
            raise self.error(key, f"must be a boolean, got {_jtype(v)}")
        return v

    def str_list(self, key: str, required: bool = False) -> tuple[str, ...]:
        v = self.doc.get(key)
        if v is None:
            if required:
                raise self.error(key, "is required")
            return ()
        if not isinstance(v, list):
            raise self.error(key, f"must be an array of strings, got {_jtype(v)}")
        for i, x in enumerate(v):
            if not isinstance(x, str):
                raise self.error(f"{key}[{i}]", f"must be a string, got {_jtype(x)}")
        return tuple(v)

    def str_map(self, key: str) -> dict[str, str]:
        v = self.doc.get(key)
        if v is None:
            return {}
        if not isinstance(v, dict):
            raise self.error(key, f"must be an object of strings, got {_jtype(v)}")
        for k, x in v.items():
            if not isinstance(x, str):
                raise self.error(f"{key}[{k!r}]", f"must be a string, got {_jtype(x)}")
        return dict(v)

    def key_set(self, key: str) -> tuple[str, ...]:
        """A Go map[string]struct{} (ExposedPorts, Volumes): the keys, sorted as Go writes them."""
        v = self.doc.get(key)
        if v is None:
            return ()
        if not isinstance(v, dict):
            raise self.error(key, f"must be an object, got {_jtype(v)}")
        for k, x in v.items():
            if not isinstance(x, dict):
                raise self.error(f"{key}[{k!r}]", f"must be an object, got {_jtype(x)}")
        return tuple(sorted(v))

    def list(self, key: str, required: bool = False) -> list:
        v = self.doc.get(key)
        if v is None:
            if required:
                raise self.error(key, "is required")
            return []
        if not isinstance(v, list):
            raise self.error(key, f"must be an array, got {_jtype(v)}")
        return v

    def child(self, key: str) -> _Reader:
        return _Reader(self.doc.get(key), self.source, self.where(key))

    def item(self, key: str, i: int, value: Any) -> _Reader:
        return _Reader(value, self.source, f"{self.where(key)}[{i}]")

    def created(self, key: str) -> str:
        v = self.str(key)
        return _go_time(v, lambda msg: self.error(key, msg)) if v else ""

    def extra(self, known: Iterable[str], always: Iterable[str] = ()) -> dict[str, Any]:
        """Unknown keys, plus known omitempty ones given empty (null, "", false, [], {}): Go reads those as
        absent and omitempty drops them, but keeping them here makes the round trip lossless (Docker
        writes `"User":""`, `"Volumes":null`). They are written back after the known fields. `always`
        names the known keys that are written even when empty."""
        names, kept = set(known), set(always)
        return {k: v for k, v in self.doc.items() if k not in names or (k not in kept and _is_empty(v))}


def _is_empty(v: Any) -> bool:
    return v is None or v is False or (isinstance(v, (str, list, dict)) and not v)


def _go_time(value: str, error) -> str:
    """An RFC 3339 time as Go's time.Time marshals it back: fraction without trailing zeros, `Z` for UTC."""
    m = _RFC3339_RE.fullmatch(value)
    if m is None:
        raise error(f"invalid RFC 3339 time {value!r}")
    base, frac, zone = m.groups()
    frac = (frac or "").rstrip("0")
    if frac == ".":
        frac = ""
    if zone in ("+00:00", "-00:00"):
        zone = "Z"
    return base + frac + zone


def _sorted_map(m: Mapping[str, Any]) -> dict[str, Any]:
    return {k: m[k] for k in sorted(m)}


def _add_extra(out: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    for k, v in extra.items():
        out.setdefault(k, v)
    return out


# ---------------------------------------------------------------- descriptors


@dataclass(frozen=True)
class Descriptor:
    """A content descriptor. `digest` is a canonical digest string; `data` is the decoded embedded content."""

    media_type: str
    digest: str
    size: int
    urls: tuple[str, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Platform | None = None
    artifact_type: str = ""
    data: bytes | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def __hash__(self) -> int:  # annotations are a dict: hash what identifies the content
        return hash((self.media_type, self.digest, self.size))

    @classmethod
    def for_bytes(cls, media_type: str, content: bytes, /, *, embed: bool = False, **fields: Any) -> Descriptor:
        """The descriptor of `content` (sha256); `embed=True` also carries it in `data`."""
        if embed:
            fields["data"] = bytes(content)
        return cls(media_type, str(_digest.of_bytes(content)), len(content), **fields)

    @property
    def digest_obj(self) -> _digest.Digest:
        return _digest.Digest.parse(self.digest)

    def to_dict(self, docker: bool = False) -> dict[str, Any]:
        """image-spec's field order, or distribution's (mediaType, size, digest …) when `docker`."""
        if docker:
            out: dict[str, Any] = {"mediaType": self.media_type, "size": self.size, "digest": self.digest}
        else:
            out = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = _sorted_map(self.annotations)
        if self.data:
            out["data"] = base64.b64encode(self.data).decode("ascii")
        if self.platform is not None:
            out["platform"] = self.platform.to_dict()
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return _add_extra(out, self.extra)

    def to_json(self) -> bytes:
        return go_json(self.to_dict())

    @classmethod
    def from_json(cls, data: bytes | str | Mapping[str, Any], source: str = "") -> Descriptor:
        return cls._read(_Reader(_load(data, source, "descriptor"), source, ""))

    @classmethod
    def _read(cls, r: _Reader) -> Descriptor:
        media_type = r.media_type("mediaType", required=True)
        digest = r.digest("digest")
        size = r.int("size", required=True)
        platform = None
        if r.get("platform") is not None:
            try:
                platform = Platform.from_dict(r.get("platform"), r.where("platform"))
            except InvalidPlatform as e:
                raise InvalidDocument(f"{_prefix(r.source)}{e}") from None
        data = None
        if r.get("data") is not None:
            text = r.str("data")
            try:
                data = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raise r.error("data", "is not valid base64") from None
            if len(data) != size or str(_digest.of_bytes(data, _digest.Digest.parse(digest).algorithm)) != digest:
                raise r.error("data", f"does not match the descriptor's digest {digest} and size {size}")
        return cls(media_type=media_type, digest=digest, size=size, urls=r.str_list("urls"),
                   annotations=r.str_map("annotations"), platform=platform,
                   artifact_type=r.media_type("artifactType"), data=data,
                   extra=r.extra(("mediaType", "digest", "size", "urls", "annotations", "data", "platform",
                                  "artifactType"), always=("mediaType", "digest", "size")))


def _descriptor(r: _Reader, key: str, required: bool = True) -> Descriptor | None:
    if r.get(key) is None:
        if required:
            raise r.error(key, "is required")
        return None
    return Descriptor._read(r.child(key))


def _descriptors(r: _Reader, key: str) -> tuple[Descriptor, ...]:
    return tuple(Descriptor._read(r.item(key, i, v)) for i, v in enumerate(r.list(key, required=True)))


def _schema_version(r: _Reader) -> int:
    v = r.get("schemaVersion")
    if v is None:
        raise r.error("schemaVersion", "is required")
    if isinstance(v, bool) or v != 2:
        raise r.error("schemaVersion", f"must be 2, got {v!r}")
    return 2


def _check_media_type(r: _Reader, allowed: tuple[str, ...], what: str) -> str:
    media_type = r.media_type("mediaType")
    if media_type and media_type not in allowed:
        raise r.error("mediaType", f"{media_type!r} is not {what} ({', '.join(allowed)})")
    return media_type


def _convert_type(media_type: str, table: Mapping[str, str], where: str, target: str, keep: Iterable[str]) -> str:
    if media_type in table:
        return table[media_type]
    if media_type in keep:
        return media_type
    raise InvalidDocument(f"{where}: media type {media_type!r} has no {target} equivalent")


# ---------------------------------------------------------------- manifests


@dataclass(frozen=True)
class Manifest:
    """An OCI image manifest, or a Docker schema2 manifest when `media_type` is Docker's."""

    config: Descriptor
    layers: tuple[Descriptor, ...] = ()
    media_type: str = mt.OCI_MANIFEST  # "" when the document has none (allowed by image-spec)
    schema_version: int = 2
    subject: Descriptor | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    artifact_type: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    __hash__ = None  # type: ignore[assignment]  # holds dicts

    @property
    def is_docker(self) -> bool:
        return self.media_type == mt.DOCKER_MANIFEST

    def to_dict(self) -> dict[str, Any]:
        docker = self.is_docker
        out: dict[str, Any] = {"schemaVersion": self.schema_version}
        if self.media_type:
            out["mediaType"] = self.media_type
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        out["config"] = self.config.to_dict(docker)
        out["layers"] = [d.to_dict(docker) for d in self.layers]
        if self.subject is not None:
            out["subject"] = self.subject.to_dict(docker)
        if self.annotations:
            out["annotations"] = _sorted_map(self.annotations)
        return _add_extra(out, self.extra)

    def to_json(self, indent: int | None = None) -> bytes:
        """Go's bytes; `indent=3` gives what `docker push` sends for a schema2 manifest."""
        return go_json(self.to_dict(), indent)

    def to_descriptor(self, **fields: Any) -> Descriptor:
        """The descriptor of the bytes `to_json()` returns."""
        return Descriptor.for_bytes(self.media_type or mt.OCI_MANIFEST, self.to_json(), **fields)

    @classmethod
    def from_json(cls, data: bytes | str | Mapping[str, Any], source: str = "") -> Manifest:
        r = _Reader(_load(data, source, "manifest"), source, "")
        version = _schema_version(r)
        media_type = _check_media_type(r, mt.MANIFEST_TYPES, "an image manifest")
        return cls(config=_descriptor(r, "config"), layers=_descriptors(r, "layers"), media_type=media_type,
                   schema_version=version, subject=_descriptor(r, "subject", required=False),
                   annotations=r.str_map("annotations"), artifact_type=r.media_type("artifactType"),
                   extra=r.extra(("schemaVersion", "mediaType", "artifactType", "config", "layers", "subject",
                                  "annotations"), always=("schemaVersion", "config", "layers")))

    def to_oci(self, config: Descriptor | None = None) -> Manifest:
        """The OCI form: media types mapped with DOCKER_TO_OCI; layer blobs (and their digests) are unchanged.

        The config blob is kept as it is (a Docker config is valid OCI config JSON) unless `config` gives
        the descriptor of a rewritten one -- skopeo rewrites it with `ImageConfig.to_oci()`.
        """
        if not self.is_docker and config is None:
            return self
        config = config or replace(self.config, media_type=_convert_type(
            self.config.media_type, mt.DOCKER_TO_OCI, "config.mediaType", "OCI", (mt.OCI_CONFIG,)))
        layers = tuple(replace(d, media_type=_convert_type(d.media_type, mt.DOCKER_TO_OCI,
                                                           f"layers[{i}].mediaType", "OCI", mt.LAYER_TYPES))
                       for i, d in enumerate(self.layers))
        return replace(self, media_type=mt.OCI_MANIFEST, config=config, layers=layers)

    def to_docker(self) -> Manifest:
        """The Docker schema2 form; InvalidDocument when something has no schema2 equivalent (zstd, subject,
        artifactType). Manifest annotations are dropped, as skopeo drops them."""
        if self.is_docker:
            return self
        for name, value in (("subject", self.subject), ("artifactType", self.artifact_type)):
            if value:
                raise InvalidDocument(f"{name}: a Docker schema2 manifest cannot carry {name}")
        config = _to_docker_descriptor(self.config, "config", (mt.DOCKER_CONFIG,))
        layers = tuple(_to_docker_descriptor(d, f"layers[{i}]", (mt.DOCKER_LAYER_GZIP, mt.DOCKER_LAYER,
                                                                 mt.DOCKER_LAYER_FOREIGN_GZIP))
                       for i, d in enumerate(self.layers))
        return replace(self, media_type=mt.DOCKER_MANIFEST, config=config, layers=layers, annotations={})


def _to_docker_descriptor(d: Descriptor, where: str, keep: tuple[str, ...]) -> Descriptor:
    if d.artifact_type:
        raise InvalidDocument(f"{where}.artifactType: a Docker schema2 descriptor cannot carry artifactType")
    media_type = _convert_type(d.media_type, mt.OCI_TO_DOCKER, f"{where}.mediaType", "Docker schema2", keep)
    return replace(d, media_type=media_type, data=None)  # `data` only embeds what the blob already holds


@dataclass(frozen=True)
class Index:
    """An OCI image index, or a Docker manifest list when `media_type` is Docker's."""

    manifests: tuple[Descriptor, ...] = ()
    media_type: str = mt.OCI_INDEX  # "" when the document has none
    schema_version: int = 2
    subject: Descriptor | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    artifact_type: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    __hash__ = None  # type: ignore[assignment]

    @property
    def is_docker(self) -> bool:
        return self.media_type == mt.DOCKER_MANIFEST_LIST

    def to_dict(self) -> dict[str, Any]:
        docker = self.is_docker
        out: dict[str, Any] = {"schemaVersion": self.schema_version}
        if self.media_type:
            out["mediaType"] = self.media_type
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        out["manifests"] = [d.to_dict(docker) for d in self.manifests]
        if self.subject is not None:
            out["subject"] = self.subject.to_dict(docker)
        if self.annotations:
            out["annotations"] = _sorted_map(self.annotations)
        return _add_extra(out, self.extra)

    def to_json(self, indent: int | None = None) -> bytes:
        return go_json(self.to_dict(), indent)

    def to_descriptor(self, **fields: Any) -> Descriptor:
        return Descriptor.for_bytes(self.media_type or mt.OCI_INDEX, self.to_json(), **fields)

    @classmethod
    def from_json(cls, data: bytes | str | Mapping[str, Any], source: str = "") -> Index:
        r = _Reader(_load(data, source, "index"), source, "")
        version = _schema_version(r)
        media_type = _check_media_type(r, mt.INDEX_TYPES, "an image index")
        return cls(manifests=_descriptors(r, "manifests"), media_type=media_type, schema_version=version,
                   subject=_descriptor(r, "subject", required=False), annotations=r.str_map("annotations"),
                   artifact_type=r.media_type("artifactType"),
                   extra=r.extra(("schemaVersion", "mediaType", "artifactType", "manifests", "subject",
                                  "annotations"), always=("schemaVersion", "manifests")))

    def _swap(self, children: Mapping[str, Descriptor] | None) -> tuple[Descriptor, ...]:
        out = []
        for d in self.manifests:
            new = (children or {}).get(d.digest)
            if new is None:
                out.append(d)
                continue
            out.append(replace(d, media_type=new.media_type, digest=new.digest, size=new.size,
                               platform=new.platform or d.platform,
                               annotations={**d.annotations, **new.annotations}))
        return tuple(out)

    def to_oci(self, children: Mapping[str, Descriptor] | None = None) -> Index:
        """The OCI form of a manifest list.

        Converting a child manifest changes its bytes and digest, so pass `children`
        ({old digest: descriptor of the converted child}); entries not in it keep pointing at the
        unchanged documents with their own (possibly Docker) media types, which is still correct.
        """
        return replace(self, media_type=mt.OCI_INDEX, manifests=self._swap(children))

    def to_docker(self, children: Mapping[str, Descriptor] | None = None) -> Index:
        """The Docker manifest list form; every entry needs a platform and a Docker-compatible type.
        Index annotations are dropped (a manifest list has none)."""
        if self.is_docker and not children:
            return self
        for name, value in (("subject", self.subject), ("artifactType", self.artifact_type)):
            if value:
                raise InvalidDocument(f"{name}: a Docker manifest list cannot carry {name}")
        manifests = self._swap(children)
        for i, d in enumerate(manifests):
            if d.platform is None:
                raise InvalidDocument(f"manifests[{i}].platform: a Docker manifest list entry needs a platform")
            if d.media_type not in (mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST_LIST):
                raise InvalidDocument(f"manifests[{i}].mediaType: {d.media_type!r} entries must be converted "
                                      f"to Docker schema2 first (pass `children`)")
        return replace(self, media_type=mt.DOCKER_MANIFEST_LIST, annotations={},
                       manifests=tuple(replace(d, data=None) for d in manifests))


# ---------------------------------------------------------------- image config


@dataclass(frozen=True)
class ContainerConfig:
    """The image config's `config` object: image-spec's ImageConfig plus Docker's Healthcheck/OnBuild/Shell."""

    user: str = ""
    exposed_ports: tuple[str, ...] = ()  # "80/tcp", … (a Go map[string]struct{}: sorted keys)
    env: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    working_dir: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    stop_signal: str = ""
    args_escaped: bool = False
    healthcheck: Mapping[str, Any] | None = None
    on_build: tuple[str, ...] = ()
    shell: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    __hash__ = None  # type: ignore[assignment]

    _KNOWN = ("User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir", "Labels", "StopSignal",
              "ArgsEscaped", "Healthcheck", "OnBuild", "Shell")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.user:
            out["User"] = self.user
        if self.exposed_ports:
            out["ExposedPorts"] = {p: {} for p in sorted(self.exposed_ports)}
        for key, value in (("Env", self.env), ("Entrypoint", self.entrypoint), ("Cmd", self.cmd)):
            if value:
                out[key] = list(value)
        if self.volumes:
            out["Volumes"] = {v: {} for v in sorted(self.volumes)}
        if self.working_dir:
            out["WorkingDir"] = self.working_dir
        if self.labels:
            out["Labels"] = _sorted_map(self.labels)
        if self.stop_signal:
            out["StopSignal"] = self.stop_signal
        if self.args_escaped:
            out["ArgsEscaped"] = True
        if self.healthcheck:
            out["Healthcheck"] = dict(self.healthcheck)
        if self.on_build:
            out["OnBuild"] = list(self.on_build)
        if self.shell:
            out["Shell"] = list(self.shell)
        return _add_extra(out, self.extra)

    @classmethod
    def _read(cls, r: _Reader) -> ContainerConfig:
        healthcheck = r.get("Healthcheck")
        if healthcheck is not None and not isinstance(healthcheck, dict):
            raise r.error("Healthcheck", f"must be an object, got {_jtype(healthcheck)}")
        if healthcheck is not None and healthcheck.get("Test") is not None:
            r.child("Healthcheck").str_list("Test")
        return cls(user=r.str("User"), exposed_ports=r.key_set("ExposedPorts"), env=r.str_list("Env"),
                   entrypoint=r.str_list("Entrypoint"), cmd=r.str_list("Cmd"), volumes=r.key_set("Volumes"),
                   working_dir=r.str("WorkingDir"), labels=r.str_map("Labels"), stop_signal=r.str("StopSignal"),
                   args_escaped=r.bool("ArgsEscaped"), healthcheck=healthcheck, on_build=r.str_list("OnBuild"),
                   shell=r.str_list("Shell"), extra=r.extra(cls._KNOWN))


@dataclass(frozen=True)
class RootFS:
    type: str = "layers"
    diff_ids: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return _add_extra({"type": self.type, "diff_ids": list(self.diff_ids)}, self.extra)


@dataclass(frozen=True)
class History:
    created: str = ""
    created_by: str = ""
    author: str = ""
    comment: str = ""
    empty_layer: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in (("created", self.created), ("created_by", self.created_by), ("author", self.author),
                           ("comment", self.comment), ("empty_layer", self.empty_layer)):
            if value:
                out[key] = value
        return _add_extra(out, self.extra)


@dataclass(frozen=True)
class ImageConfig:
    """An image config (OCI or Docker: the same JSON). `created` times are kept as Go writes them."""

    architecture: str
    os: str
    rootfs: RootFS = RootFS()
    created: str = ""
    author: str = ""
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()
    config: ContainerConfig = field(default_factory=ContainerConfig)
    history: tuple[History, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    __hash__ = None  # type: ignore[assignment]

    _KNOWN = ("created", "author", "architecture", "os", "os.version", "os.features", "variant", "config",
              "rootfs", "history")

    @property
    def diff_ids(self) -> tuple[str, ...]:
        return self.rootfs.diff_ids

    @property
    def platform(self) -> Platform:
        return Platform(self.os, self.architecture, self.variant, self.os_version, self.os_features)

    def to_dict(self) -> dict[str, Any]:
        """image-spec's `Image` struct order (created, author, platform fields, config, rootfs, history)."""
        out: dict[str, Any] = {}
        if self.created:
            out["created"] = self.created
        if self.author:
            out["author"] = self.author
        out["architecture"] = self.architecture
        out["os"] = self.os
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        if self.variant:
            out["variant"] = self.variant
        out["config"] = self.config.to_dict()  # a struct: Go's omitempty never drops it
        out["rootfs"] = self.rootfs.to_dict()
        if self.history:
            out["history"] = [h.to_dict() for h in self.history]
        return _add_extra(out, self.extra)

    def to_json(self, indent: int | None = None) -> bytes:
        return go_json(self.to_dict(), indent)

    def to_oci(self) -> ImageConfig:
        """Only what image-spec's Go `Image` struct holds, as skopeo writes a config it converts from Docker:
        Docker-only keys (container_config, Healthcheck, OnBuild, Shell, …) are dropped."""
        config = replace(self.config, healthcheck=None, on_build=(), shell=(), extra={})
        return replace(self, config=config, history=tuple(replace(h, extra={}) for h in self.history), extra={})

    def to_descriptor(self, media_type: str = mt.OCI_CONFIG, **fields: Any) -> Descriptor:
        return Descriptor.for_bytes(media_type, self.to_json(), **fields)

    @classmethod
    def from_json(cls, data: bytes | str | Mapping[str, Any], source: str = "") -> ImageConfig:
        r = _Reader(_load(data, source, "config"), source, "")
        if r.get("rootfs") is None:
            raise r.error("rootfs", "is required")
        rr = r.child("rootfs")
        rootfs_type = rr.str("type", required=True)
        if rootfs_type != "layers":
            raise rr.error("type", f"must be \"layers\", got {rootfs_type!r}")
        if "diff_ids" not in rr.doc:
            raise rr.error("diff_ids", "is required")
        # null (Go's nil slice) reads as no layers
        diff_ids = tuple(_reader_digest(rr, "diff_ids", i, v) for i, v in enumerate(rr.list("diff_ids")))
        history = []
        for i, h in enumerate(r.list("history")):
            hr = r.item("history", i, h)
            history.append(History(created=hr.created("created"), created_by=hr.str("created_by"),
                                   author=hr.str("author"), comment=hr.str("comment"),
                                   empty_layer=hr.bool("empty_layer"),
                                   extra=hr.extra(("created", "created_by", "author", "comment", "empty_layer"))))
        config = ContainerConfig._read(r.child("config")) if r.get("config") is not None else ContainerConfig()
        rootfs = RootFS(rootfs_type, diff_ids, rr.extra(("type", "diff_ids"), always=("type", "diff_ids")))
        return cls(architecture=r.str("architecture", required=True), os=r.str("os", required=True),
                   rootfs=rootfs, created=r.created("created"), author=r.str("author"),
                   variant=r.str("variant"), os_version=r.str("os.version"), os_features=r.str_list("os.features"),
                   config=config, history=tuple(history),
                   extra=r.extra(cls._KNOWN, always=("architecture", "os", "config", "rootfs")))


def _reader_digest(r: _Reader, key: str, i: int, value: Any) -> str:
    if not isinstance(value, str):
        raise r.error(f"{key}[{i}]", f"must be a digest string, got {_jtype(value)}")
    try:
        return str(_digest.Digest.parse(value))
    except InvalidDigest as e:
        raise r.error(f"{key}[{i}]", str(e)) from None


# ---------------------------------------------------------------- detection

Document = Manifest | Index | ImageConfig


def detect_media_type(doc: Mapping[str, Any]) -> str:
    """The media type a JSON document declares, or the one its shape implies ("" when it is not a manifest,
    index or config)."""
    declared = doc.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    if doc.get("schemaVersion") == 1:
        return mt.DOCKER_MANIFEST_V1_SIGNED
    if "manifests" in doc:
        return mt.OCI_INDEX
    if "config" in doc and "layers" in doc:
        return mt.OCI_MANIFEST
    if "rootfs" in doc and "architecture" in doc:
        return mt.OCI_CONFIG
    return ""


def parse_document(data: bytes | str | Mapping[str, Any], media_type: str | None = None,
                   source: str = "") -> Document:
    """A Manifest, Index or ImageConfig from JSON, told apart by `mediaType` (the document's, else the
    `media_type` it was served or described with) or, failing both, by shape."""
    doc = _load(data, source, "document")
    declared = doc.get("mediaType") if isinstance(doc.get("mediaType"), str) else ""
    if media_type and declared and declared != media_type:
        raise InvalidDocument(f"{_prefix(source)}mediaType: document says {declared!r} but it was described "
                              f"as {media_type!r}")
    kind = declared or media_type or detect_media_type(doc)
    if kind in mt.MANIFEST_TYPES:
        return Manifest.from_json(doc, source)
    if kind in mt.INDEX_TYPES:
        return Index.from_json(doc, source)
    if kind in mt.CONFIG_TYPES:
        return ImageConfig.from_json(doc, source)
    if kind in (mt.DOCKER_MANIFEST_V1_SIGNED, "application/vnd.docker.distribution.manifest.v1+json"):
        raise InvalidDocument(f"{_prefix(source)}Docker schema 1 manifests are not supported")
    if not kind:
        raise InvalidDocument(f"{_prefix(source)}not an image manifest, index or config (no mediaType and "
                              f"no recognisable shape)")
    raise InvalidDocument(f"{_prefix(source)}mediaType: unsupported document type {kind!r}")
