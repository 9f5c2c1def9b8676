"""The storage driver interface: everything the handlers and garbage-collect need, and no paths.

Blobs are content-addressed and shared by every repository; a repository sees a blob only through a link
(`link_blob`), a manifest only through a revision link (`put_manifest`), a tag through its current link.
All methods are coroutines so that a network driver (S3) fits; the filesystem driver runs small metadata
operations inline (they are a few syscalls) and offloads only the large ones.
"""

from __future__ import annotations

import abc
import contextlib
from dataclasses import dataclass, field
from typing import AsyncContextManager, AsyncIterable, AsyncIterator, BinaryIO


@dataclass(frozen=True)
class BlobInfo:
    digest: str
    size: int
    path: str | None = None      # a real file the server may sendfile(); None for drivers without one
    modified: float | None = None  # UNIX time the content was last written, pushed again or mounted (gc grace)


@dataclass(frozen=True)
class UploadInfo:
    repo: str
    uuid: str
    size: int
    started: float               # UNIX time the session was created


@dataclass(frozen=True)
class RepositoryState:
    """One repository as garbage-collect sees it."""

    name: str
    tags: dict[str, str] = field(default_factory=dict)        # tag -> manifest digest
    manifests: tuple[str, ...] = ()                             # revision links (digests)
    layers: tuple[str, ...] = ()                                # blob links (digests)
    uploads: tuple[UploadInfo, ...] = ()


class UploadUnknown(Exception):
    """No such upload session (never created, finished, cancelled or purged)."""


class UploadOffsetMismatch(Exception):
    """A chunk whose start does not continue the upload; carries the current size."""

    def __init__(self, size: int) -> None:
        super().__init__(f"upload is at offset {size}")
        self.size = size


class StorageDriver(abc.ABC):
    # -- blobs (global, content-addressed) --------------------------------------------------------------------
    @abc.abstractmethod
    async def stat_blob(self, digest: str) -> BlobInfo | None:
        """Size (and file path when there is one) of a stored blob, or None."""

    @abc.abstractmethod
    async def read_blob(self, digest: str) -> bytes | None:
        """The whole content of a (small) blob, e.g. a manifest; None when absent."""

    @abc.abstractmethod
    async def open_blob(self, digest: str) -> BinaryIO | None:
        """A readable, seekable binary file of the blob (for drivers without a path); None when absent."""

    @abc.abstractmethod
    async def put_blob(self, digest: str, data: bytes) -> None:
        """Store small verified content (the caller hashed it) under its digest, atomically."""

    @abc.abstractmethod
    async def delete_blob(self, digest: str) -> None:
        """Remove a blob's content from the store (garbage-collect only); absent is fine."""

    @abc.abstractmethod
    async def list_blobs(self) -> list[str]:
        """Every digest in the blob store."""

    # -- repository links -------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def link_blob(self, repo: str, digest: str) -> None:
        """Make a stored blob visible in `repo` (idempotent, atomic) and refresh its `modified` time: a blob
        pushed again or mounted counts as new for garbage-collect's grace period."""

    @abc.abstractmethod
    async def unlink_blob(self, repo: str, digest: str) -> bool:
        """Hide a blob from `repo`; False when it was not linked."""

    @abc.abstractmethod
    async def blob_linked(self, repo: str, digest: str) -> bool:
        ...

    @abc.abstractmethod
    async def list_blob_links(self, repo: str) -> list[str]:
        ...

    # -- manifests and tags -----------------------------------------------------------------------------------
    @abc.abstractmethod
    async def put_manifest(self, repo: str, digest: str, data: bytes) -> None:
        """Store manifest bytes as a blob and link the revision into `repo`."""

    @abc.abstractmethod
    async def manifest_linked(self, repo: str, digest: str) -> bool:
        ...

    @abc.abstractmethod
    async def delete_manifest(self, repo: str, digest: str) -> bool:
        """Remove the revision link and every tag pointing at it; False when it was not linked."""

    @abc.abstractmethod
    async def list_manifests(self, repo: str) -> list[str]:
        ...

    @abc.abstractmethod
    async def tag(self, repo: str, tag: str, digest: str) -> None:
        """Point `tag` at a manifest digest (atomic replace)."""

    @abc.abstractmethod
    async def resolve_tag(self, repo: str, tag: str) -> str | None:
        ...

    @abc.abstractmethod
    async def delete_tag(self, repo: str, tag: str) -> bool:
        ...

    @abc.abstractmethod
    async def list_tags(self, repo: str) -> list[str] | None:
        """Tags sorted; None when the repository does not exist."""

    @abc.abstractmethod
    async def list_repositories(self) -> list[str]:
        """Every repository that holds manifests, sorted."""

    @abc.abstractmethod
    async def repository_exists(self, repo: str) -> bool:
        ...

    # -- upload sessions --------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def create_upload(self, repo: str) -> UploadInfo:
        ...

    @abc.abstractmethod
    async def upload_info(self, repo: str, uuid: str) -> UploadInfo:
        """Raises UploadUnknown."""

    @abc.abstractmethod
    async def append_upload(self, repo: str, uuid: str, chunks: AsyncIterable[bytes],
                            offset: int | None = None) -> int:
        """Append a stream; `offset` (from Content-Range) must equal the current size, else
        UploadOffsetMismatch. Returns the new size. Raises UploadUnknown. `chunks` may be a
        storage.body.SocketBody, which a driver may read in a worker thread instead of iterating it."""

    @abc.abstractmethod
    async def commit_upload(self, repo: str, uuid: str, digest: str) -> BlobInfo:
        """Verify the upload hashes to `digest`, move it into the blob store (dedupes), link it into `repo` and
        end the session. On mismatch raises pyoci.errors.DigestMismatch and commits nothing (the session is
        removed). Raises UploadUnknown."""

    @abc.abstractmethod
    async def cancel_upload(self, repo: str, uuid: str) -> bool:
        ...

    @abc.abstractmethod
    async def list_uploads(self) -> list[UploadInfo]:
        """Every open session in every repository (for purging)."""

    # -- garbage-collect --------------------------------------------------------------------------------------
    async def walk(self) -> AsyncIterator[RepositoryState]:
        """Every repository with its tags, manifest revisions, blob links and uploads."""
        uploads: dict[str, list[UploadInfo]] = {}
        for u in await self.list_uploads():
            uploads.setdefault(u.repo, []).append(u)
        for name in await self.list_repositories():
            tags = {}
            for t in await self.list_tags(name) or []:
                d = await self.resolve_tag(name, t)
                if d is not None:
                    tags[t] = d
            yield RepositoryState(name, tags, tuple(await self.list_manifests(name)),
                                  tuple(await self.list_blob_links(name)), tuple(uploads.get(name, ())))

    # -- the garbage-collect lock ----------------------------------------------------------------------------
    def reference_lock(self) -> AsyncContextManager[None]:
        """Held, shared, by the server around each check-then-link step (manifest validate-then-link, upload
        commit-then-link, mount); garbage-collect's `sweep_lock` excludes it. Default: no lock."""
        return contextlib.nullcontext()

    def sweep_lock(self) -> AsyncContextManager[None]:
        """Held by garbage-collect from its final mark to the end of its sweep. Default: no lock."""
        return contextlib.nullcontext()

    async def close(self) -> None:
        """Release resources (sessions, thread pools)."""
