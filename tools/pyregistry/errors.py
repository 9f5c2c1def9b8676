"""The distribution-spec error codes as exceptions carrying their HTTP status, and the config error."""

from __future__ import annotations

import json
from typing import Any, Mapping

from pyoci.errors import OCIError


class ConfigError(OCIError):
    """A configuration file (or flag) that is missing, malformed or holds a bad key/value: one line naming it."""


class RegistryHTTPError(Exception):
    """One spec error (`code`, `message`, `detail`) answered with `status`; `headers` are added to the response
    (for example `WWW-Authenticate` on UNAUTHORIZED, `Allow` on UNSUPPORTED)."""

    def __init__(self, code: str, message: str, detail: Any = None, status: int = 400,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.detail = detail
        self.status = status
        self.headers: dict[str, str] = dict(headers or {})

    def body(self) -> bytes:
        """The spec's error body: {"errors": [{"code", "message", "detail"}]}."""
        entry: dict[str, Any] = {"code": self.code, "message": self.message}
        entry["detail"] = self.detail if self.detail is not None else {}
        return json.dumps({"errors": [entry]}).encode()


# code -> (HTTP status, the spec's default message)
CODES: dict[str, tuple[int, str]] = {
    "BLOB_UNKNOWN": (404, "blob unknown to registry"),
    "BLOB_UPLOAD_INVALID": (400, "blob upload invalid"),
    "BLOB_UPLOAD_UNKNOWN": (404, "blob upload unknown to registry"),
    "DIGEST_INVALID": (400, "provided digest did not match uploaded content"),
    "MANIFEST_BLOB_UNKNOWN": (400, "manifest references a manifest or blob unknown to registry"),
    "MANIFEST_INVALID": (400, "manifest invalid"),
    "MANIFEST_UNKNOWN": (404, "manifest unknown to registry"),
    "NAME_INVALID": (400, "invalid repository name"),
    "NAME_UNKNOWN": (404, "repository name not known to registry"),
    "SIZE_INVALID": (400, "provided length did not match content length"),
    "UNAUTHORIZED": (401, "authentication required"),
    "DENIED": (403, "requested access to the resource is denied"),
    "UNSUPPORTED": (405, "the operation is unsupported"),
    "TOOMANYREQUESTS": (429, "too many requests"),
    "RANGE_INVALID": (416, "invalid content range"),
    "PAGINATION_NUMBER_INVALID": (400, "invalid number of results requested"),
}


def _make(code: str):
    status, default = CODES[code]

    def helper(message: str | None = None, detail: Any = None, status: int = status,
               headers: Mapping[str, str] | None = None) -> RegistryHTTPError:
        return RegistryHTTPError(code, message or default, detail, status, headers)

    helper.__name__ = code.lower()
    helper.__doc__ = f"A {code} error (HTTP {status} by default)."
    return helper


# Helpers: `raise errors.blob_unknown(detail={"digest": d})`, `raise errors.unauthorized(headers={...})`.
blob_unknown = _make("BLOB_UNKNOWN")
blob_upload_invalid = _make("BLOB_UPLOAD_INVALID")
blob_upload_unknown = _make("BLOB_UPLOAD_UNKNOWN")
digest_invalid = _make("DIGEST_INVALID")
manifest_blob_unknown = _make("MANIFEST_BLOB_UNKNOWN")
manifest_invalid = _make("MANIFEST_INVALID")
manifest_unknown = _make("MANIFEST_UNKNOWN")
name_invalid = _make("NAME_INVALID")
name_unknown = _make("NAME_UNKNOWN")
size_invalid = _make("SIZE_INVALID")
unauthorized = _make("UNAUTHORIZED")
denied = _make("DENIED")
unsupported = _make("UNSUPPORTED")
toomanyrequests = _make("TOOMANYREQUESTS")
range_invalid = _make("RANGE_INVALID")
pagination_number_invalid = _make("PAGINATION_NUMBER_INVALID")
