"""Storage drivers behind one interface (base.StorageDriver); `open_driver(config)` picks the configured one."""

from __future__ import annotations

from .base import BlobInfo, RepositoryState, StorageDriver, UploadInfo, UploadOffsetMismatch, UploadUnknown
from .filesystem import FilesystemDriver

__all__ = ["BlobInfo", "FilesystemDriver", "RepositoryState", "StorageDriver", "UploadInfo", "UploadOffsetMismatch",
           "UploadUnknown", "open_driver"]


def open_driver(config) -> StorageDriver:
    """The driver for a pyregistry.config.Config (only the filesystem driver so far)."""
    return FilesystemDriver(config.storage.rootdirectory)
