"""Layer-specific errors; UnsafeArchive and DigestMismatch come from pyoci.errors."""

from __future__ import annotations

from ..errors import OCIError


class InvalidLayer(OCIError):
    """A layer tar that is malformed (bad header, truncated data, unsupported entry type)."""


class CompressionError(InvalidLayer):
    """A layer stream that is not gzip/zstd/tar as announced, or a compression that is not supported."""
