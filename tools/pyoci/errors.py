"""The few exception classes pyoci raises; each CLI maps them to exit codes in one place."""

from __future__ import annotations


class OCIError(Exception):
    """Base class: a one-line message fit to show a user as it is."""


class InvalidDigest(OCIError):
    """A digest string that does not parse (algorithm, encoding or length)."""


class DigestMismatch(OCIError):
    """Content whose bytes do not hash to the digest (or size) it was announced with."""


class InvalidReference(OCIError):
    """An image reference that does not match the distribution grammar."""


class InvalidDocument(OCIError):
    """A manifest, index, config or layout file that is malformed or of the wrong media type."""


class NotFound(OCIError):
    """A blob, manifest, tag or platform that is not there."""


class UnsafeArchive(OCIError):
    """A tar entry that would write outside the target (traversal, absolute path, planted link)."""


class RegistryError(OCIError):
    """A registry answered with an error; carries the HTTP status and the spec's error code."""

    def __init__(self, message: str, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class AuthError(RegistryError):
    """Credentials missing or refused (HTTP 401/403)."""
