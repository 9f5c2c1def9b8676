"""The filesystem driver, laid out exactly like Distribution's, so either registry can serve the other's root:

  <root>/docker/registry/v2/blobs/<alg>/<2 hex>/<hex>/data
  <root>/docker/registry/v2/repositories/<name>/_layers/<alg>/<hex>/link
                                              /_manifests/revisions/<alg>/<hex>/link
                                              /_manifests/tags/<tag>/current/link
                                              /_manifests/tags/<tag>/index/<alg>/<hex>/link
                                              /_uploads/<uuid>/data|startedat|hashstates/
Links hold the digest text. Every file that becomes visible appears by rename: blobs move from the upload's
data file (same filesystem) only after their digest is verified, links are written to a temp file and renamed.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import os
import re
import shutil
import uuid as uuidlib
from concurrent.futures import Future, ThreadPoolExecutor
from typing import AsyncContextManager, AsyncIterable, BinaryIO

from pyoci import digest as dg
from pyoci.errors import DigestMismatch
from pyoci.fsutil import atomic_write

from .base import BlobInfo, StorageDriver, UploadInfo, UploadOffsetMismatch, UploadUnknown
from .body import SocketBody
from .lock import SharedLock, exclusive

# Defence in depth: handlers validate names with the distribution grammar; the driver still refuses
# anything that could leave the root or collide with the `_`-prefixed metadata directories.
_REPO_RE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*)*")
_TAG_RE = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
WRITE_BUFFER = 1 << 20   # bytes gathered before one hash+write step: few syscalls, still in L2 when hashed
RECV_BUFFER = 1 << 20    # a direct upload's buffer: large writes, still warm in cache when hashed


def _split(digest: str) -> tuple[str, str]:
    d = dg.Digest.parse(digest)
    return d.algorithm, d.encoded


class _Session:
    """In-memory hash state of an upload this process is writing (Python cannot persist sha256 state the way
    Distribution's hashstates do, so after a restart the data file is re-hashed at commit)."""

    __slots__ = ("hasher", "size", "lock")

    def __init__(self, hasher: "hashlib._Hash", size: int) -> None:
        self.hasher = hasher
        self.size = size
        self.lock = asyncio.Lock()


class FilesystemDriver(StorageDriver):
    def __init__(self, root: str | os.PathLike) -> None:
        self.root = os.path.abspath(os.fspath(root))
        self.base = os.path.join(self.root, "docker", "registry", "v2")
        self.blobs_dir = os.path.join(self.base, "blobs")
        self.repos_dir = os.path.join(self.base, "repositories")
        self._sessions: dict[str, _Session] = {}
        # garbage-collect's lock, outside docker/ so Distribution never sees it
        self.lock_path = os.path.join(self.root, "pyregistry-gc.lock")
        self._lock = SharedLock(self.lock_path)
        # A direct upload holds a thread for its whole body: their own pool keeps them off the default one.
        self._upload_pool = ThreadPoolExecutor(64, thread_name_prefix="upload")
        # ... and hand each buffer to one of these to be hashed and written (never waits on the readers).
        self._hash_pool = ThreadPoolExecutor(8, thread_name_prefix="upload-hash")

    async def close(self) -> None:
        self._upload_pool.shutdown(wait=False, cancel_futures=True)
        self._hash_pool.shutdown(wait=False, cancel_futures=True)
        self._lock.close()

    def reference_lock(self) -> AsyncContextManager[None]:
        return self._lock.held()

    def sweep_lock(self) -> AsyncContextManager[None]:
        return exclusive(self.lock_path)

    # -- paths --------------------------------------------------------------------------------------------------
    def blob_path(self, digest: str) -> str:
        alg, hexd = _split(digest)
        return os.path.join(self.blobs_dir, alg, hexd[:2], hexd, "data")

    def _repo(self, repo: str) -> str:
        if not _REPO_RE.fullmatch(repo):
            raise ValueError(f"invalid repository name {repo!r}")
        return os.path.join(self.repos_dir, repo)

    def _layer_link(self, repo: str, digest: str) -> str:
        alg, hexd = _split(digest)
        return os.path.join(self._repo(repo), "_layers", alg, hexd, "link")

    def _revision_link(self, repo: str, digest: str) -> str:
        alg, hexd = _split(digest)
        return os.path.join(self._repo(repo), "_manifests", "revisions", alg, hexd, "link")

    def _tag_dir(self, repo: str, tag: str) -> str:
        if not _TAG_RE.fullmatch(tag):
            raise ValueError(f"invalid tag {tag!r}")
        return os.path.join(self._repo(repo), "_manifests", "tags", tag)

    def _upload_dir(self, repo: str, uuid: str) -> str:
        if not _UUID_RE.fullmatch(uuid):
            raise UploadUnknown(uuid)
        return os.path.join(self._repo(repo), "_uploads", uuid)

    @staticmethod
    def _write_link(path: str, digest: str) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        atomic_write(path, digest.encode(), fsync=False)

    @staticmethod
    def _read_link(path: str) -> str | None:
        try:
            with open(path, "rb") as f:
                text = f.read(200).decode("ascii", "replace").strip()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return text if dg.is_valid(text) else None

    # -- blobs --------------------------------------------------------------------------------------------------
    async def stat_blob(self, digest: str) -> BlobInfo | None:
        path = self.blob_path(digest)
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return BlobInfo(digest, st.st_size, path, st.st_mtime)

    async def read_blob(self, digest: str) -> bytes | None:
        try:
            with open(self.blob_path(digest), "rb") as f:
                return f.read()
        except (FileNotFoundError, NotADirectoryError):
            return None

    async def open_blob(self, digest: str) -> BinaryIO | None:
        try:
            return open(self.blob_path(digest), "rb")
        except (FileNotFoundError, NotADirectoryError):
            return None

    async def put_blob(self, digest: str, data: bytes) -> None:
        path = self.blob_path(digest)
        if _touch(path):
            return
        os.makedirs(os.path.dirname(path), exist_ok=True)
        atomic_write(path, data, fsync=False)

    async def delete_blob(self, digest: str) -> None:
        path = os.path.dirname(self.blob_path(digest))
        await asyncio.to_thread(shutil.rmtree, path, True)

    async def list_blobs(self) -> list[str]:
        return await asyncio.to_thread(self._list_blobs)

    def _list_blobs(self) -> list[str]:
        out = []
        for alg in _listdir(self.blobs_dir):
            for prefix in _listdir(os.path.join(self.blobs_dir, alg)):
                for hexd in _listdir(os.path.join(self.blobs_dir, alg, prefix)):
                    d = f"{alg}:{hexd}"
                    if dg.is_valid(d) and os.path.exists(os.path.join(self.blobs_dir, alg, prefix, hexd, "data")):
                        out.append(d)
        return sorted(out)

    # -- repository links ---------------------------------------------------------------------------------------
    async def link_blob(self, repo: str, digest: str) -> None:
        path = self._layer_link(repo, digest)
        if self._read_link(path) != digest:
            self._write_link(path, digest)
        _touch(self.blob_path(digest))  # pushed again or mounted: young again for gc's grace period

    async def unlink_blob(self, repo: str, digest: str) -> bool:
        path = os.path.dirname(self._layer_link(repo, digest))
        if not os.path.exists(path):
            return False
        shutil.rmtree(path, ignore_errors=True)
        return True

    async def blob_linked(self, repo: str, digest: str) -> bool:
        return os.path.exists(self._layer_link(repo, digest))

    async def list_blob_links(self, repo: str) -> list[str]:
        return _list_links(os.path.join(self._repo(repo), "_layers"))

    # -- manifests and tags -------------------------------------------------------------------------------------
    async def put_manifest(self, repo: str, digest: str, data: bytes) -> None:
        await self.put_blob(digest, data)
        path = self._revision_link(repo, digest)
        if self._read_link(path) != digest:
            self._write_link(path, digest)

    async def manifest_linked(self, repo: str, digest: str) -> bool:
        return os.path.exists(self._revision_link(repo, digest))

    async def delete_manifest(self, repo: str, digest: str) -> bool:
        path = os.path.dirname(self._revision_link(repo, digest))
        if not os.path.exists(path):
            return False
        shutil.rmtree(path, ignore_errors=True)
        # As Distribution: tags that pointed at the deleted manifest go with it.
        for tag in await self.list_tags(repo) or []:
            if await self.resolve_tag(repo, tag) == digest:
                shutil.rmtree(self._tag_dir(repo, tag), ignore_errors=True)
        return True

    async def list_manifests(self, repo: str) -> list[str]:
        return _list_links(os.path.join(self._repo(repo), "_manifests", "revisions"))

    async def tag(self, repo: str, tag: str, digest: str) -> None:
        tag_dir = self._tag_dir(repo, tag)
        alg, hexd = _split(digest)
        index_link = os.path.join(tag_dir, "index", alg, hexd, "link")
        if self._read_link(index_link) != digest:
            self._write_link(index_link, digest)
        current = os.path.join(tag_dir, "current", "link")
        if self._read_link(current) != digest:
            self._write_link(current, digest)

    async def resolve_tag(self, repo: str, tag: str) -> str | None:
        return self._read_link(os.path.join(self._tag_dir(repo, tag), "current", "link"))

    async def delete_tag(self, repo: str, tag: str) -> bool:
        path = self._tag_dir(repo, tag)
        if not os.path.exists(os.path.join(path, "current", "link")):
            return False
        shutil.rmtree(path, ignore_errors=True)
        return True

    async def list_tags(self, repo: str) -> list[str] | None:
        manifests = os.path.join(self._repo(repo), "_manifests")
        if not os.path.isdir(manifests):
            return None
        tags_dir = os.path.join(manifests, "tags")
        return sorted(t for t in _listdir(tags_dir) if os.path.exists(os.path.join(tags_dir, t, "current", "link")))

    async def list_repositories(self) -> list[str]:
        return await asyncio.to_thread(self._list_repositories)

    def _list_repositories(self) -> list[str]:
        out = []
        for dirpath, dirnames, _ in os.walk(self.repos_dir):
            if "_manifests" in dirnames:
                out.append(os.path.relpath(dirpath, self.repos_dir).replace(os.sep, "/"))
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("_"))
        return sorted(out)

    async def repository_exists(self, repo: str) -> bool:
        return os.path.isdir(os.path.join(self._repo(repo), "_manifests"))

    # -- uploads ------------------------------------------------------------------------------------------------
    async def create_upload(self, repo: str) -> UploadInfo:
        uuid = str(uuidlib.uuid4())
        path = self._upload_dir(repo, uuid)
        os.makedirs(path)
        now = datetime.datetime.now(datetime.timezone.utc)
        atomic_write(os.path.join(path, "startedat"), now.strftime("%Y-%m-%dT%H:%M:%SZ").encode(), fsync=False)
        open(os.path.join(path, "data"), "wb").close()
        self._sessions[uuid] = _Session(hashlib.sha256(), 0)
        return UploadInfo(repo, uuid, 0, now.timestamp())

    async def upload_info(self, repo: str, uuid: str) -> UploadInfo:
        path = self._upload_dir(repo, uuid)
        try:
            size = os.stat(os.path.join(path, "data")).st_size
        except (FileNotFoundError, NotADirectoryError):
            raise UploadUnknown(uuid) from None
        return UploadInfo(repo, uuid, size, _started_at(path))

    async def append_upload(self, repo: str, uuid: str, chunks: AsyncIterable[bytes],
                            offset: int | None = None) -> int:
        data_path = os.path.join(self._upload_dir(repo, uuid), "data")
        session = self._sessions.get(uuid)
        if session is None:
            session = self._sessions[uuid] = _Session(hashlib.sha256(), -1)
        async with session.lock:  # one writer per session; a second PATCH waits and then sees the new offset
            try:
                fd = os.open(data_path, os.O_WRONLY | os.O_APPEND)
            except (FileNotFoundError, NotADirectoryError):
                self._sessions.pop(uuid, None)
                raise UploadUnknown(uuid) from None
            try:
                size = os.fstat(fd).st_size
                if offset is not None and offset != size:
                    raise UploadOffsetMismatch(size)
                if session.size != size:  # state lost (restart) or out of step: hash what is there
                    session.hasher, session.size = await asyncio.to_thread(_rehash, data_path, "sha256")
                session.size = -1  # until this append completes: a failure leaves hash and file out of step
                if isinstance(chunks, SocketBody):
                    size = await self._pull(fd, session.hasher, chunks, size)
                else:
                    size = await _pipe(fd, session.hasher, chunks, size)
                session.size = size
                return size
            finally:
                os.close(fd)

    async def _pull(self, fd: int, hasher: "hashlib._Hash", body: SocketBody, size: int) -> int:
        """The rest of the body read off the socket, hashed and written by worker threads (see SocketBody)."""
        fut = asyncio.get_running_loop().run_in_executor(self._upload_pool, _recv_hash_write, fd, hasher, body,
                                                               self._hash_pool)
        try:
            return size + await asyncio.shield(fut)
        except asyncio.CancelledError:
            body.abort()  # wake the thread; the fd must outlive it
            await asyncio.wait([fut])
            raise

    async def commit_upload(self, repo: str, uuid: str, digest: str) -> BlobInfo:
        upload_dir = self._upload_dir(repo, uuid)
        data_path = os.path.join(upload_dir, "data")
        expected = dg.Digest.parse(digest)
        session = self._sessions.get(uuid) or _Session(hashlib.sha256(), -1)
        async with session.lock:
            try:
                size = os.stat(data_path).st_size
            except (FileNotFoundError, NotADirectoryError):
                self._sessions.pop(uuid, None)
                raise UploadUnknown(uuid) from None
            if expected.algorithm == "sha256" and session.size == size:
                got = session.hasher.hexdigest()
            else:
                got = (await asyncio.to_thread(_rehash, data_path, expected.algorithm))[0].hexdigest()
            self._sessions.pop(uuid, None)
            if got != expected.encoded:
                shutil.rmtree(upload_dir, ignore_errors=True)
                raise DigestMismatch(f"digest mismatch: expected {expected}, got {expected.algorithm}:{got} "
                                     f"({size} bytes)")
            dest = self.blob_path(digest)
            if not os.path.exists(dest):  # deduplicated: a blob already stored is not rewritten
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                os.replace(data_path, dest)
            await self.link_blob(repo, digest)
            shutil.rmtree(upload_dir, ignore_errors=True)
            return BlobInfo(digest, size, dest)

    async def cancel_upload(self, repo: str, uuid: str) -> bool:
        path = self._upload_dir(repo, uuid)
        self._sessions.pop(uuid, None)
        if not os.path.isdir(path):
            return False
        shutil.rmtree(path, ignore_errors=True)
        return True

    async def list_uploads(self) -> list[UploadInfo]:
        return await asyncio.to_thread(self._list_uploads)

    def _list_uploads(self) -> list[UploadInfo]:
        out = []
        for dirpath, dirnames, _ in os.walk(self.repos_dir):
            if "_uploads" in dirnames:
                repo = os.path.relpath(dirpath, self.repos_dir).replace(os.sep, "/")
                for uuid in _listdir(os.path.join(dirpath, "_uploads")):
                    path = os.path.join(dirpath, "_uploads", uuid)
                    try:
                        size = os.stat(os.path.join(path, "data")).st_size
                    except OSError:
                        size = 0
                    out.append(UploadInfo(repo, uuid, size, _started_at(path)))
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("_"))
        return out


async def _pipe(fd: int, hasher: "hashlib._Hash", chunks: AsyncIterable[bytes], size: int) -> int:
    """Stream chunks to fd while hashing: the network is read on the event loop while the previous batch is
    hashed and written (one writev, no copying into a buffer) in a worker thread -- hashlib and os.writev
    release the GIL, so both cores work."""
    loop = asyncio.get_running_loop()
    pending: asyncio.Future | None = None
    batch: list[bytes] = []
    batched = 0
    try:
        async for chunk in chunks:
            batch.append(chunk)
            batched += len(chunk)
            if batched >= WRITE_BUFFER or len(batch) >= 512:
                if pending is not None:
                    await pending
                pending = loop.run_in_executor(None, _hash_write, fd, hasher, batch)
                size += batched
                batch, batched = [], 0
        if pending is not None:
            await pending
            pending = None
        if batch:
            _hash_write(fd, hasher, batch)
            size += batched
    finally:
        if pending is not None:  # the client went away: let the write finish before the fd is closed
            await asyncio.wait([pending])
    return size


def _recv_hash_write(fd: int, hasher: "hashlib._Hash", body: SocketBody, pool: ThreadPoolExecutor) -> int:
    """Worker thread: socket -> two alternating buffers; while one is being filled by recv_into(), the other is
    hashed and written by a thread of `pool` (hashlib, recv and write all release the GIL). Returns the bytes
    appended."""
    total = len(body.head)
    if body.head:
        _hash_write_view(fd, hasher, memoryview(body.head))
    size = min(RECV_BUFFER, body.remaining)
    bufs = [memoryview(bytearray(size)), memoryview(bytearray(size))] if body.remaining else []
    pending: Future | None = None
    i = 0
    try:
        while body.remaining:
            n = body.readinto(bufs[i])
            if pending is not None:
                pending.result()  # the other buffer is free again; hashing stays in order
            pending = pool.submit(_hash_write_view, fd, hasher, bufs[i][:n])
            total += n
            i ^= 1
    finally:
        if pending is not None:
            pending.result()
    return total


def _hash_write_view(fd: int, hasher: "hashlib._Hash", view: memoryview) -> None:
    hasher.update(view)
    _write_all(fd, view)


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        view = view[os.write(fd, view):]


def _hash_write(fd: int, hasher: "hashlib._Hash", batch: list[bytes]) -> None:
    for chunk in batch:
        hasher.update(chunk)
    views = [memoryview(c) for c in batch]
    while views:
        n = os.writev(fd, views)
        while views and n >= len(views[0]):
            n -= len(views[0])
            views.pop(0)
        if views and n:
            views[0] = views[0][n:]


def _rehash(path: str, algorithm: str) -> tuple["hashlib._Hash", int]:
    h = hashlib.new(algorithm)
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(WRITE_BUFFER):
            h.update(chunk)
            size += len(chunk)
    return h, size


def _touch(path: str) -> bool:
    """Set a blob's mtime to now; False when it does not exist."""
    try:
        os.utime(path)
        return True
    except (FileNotFoundError, NotADirectoryError):
        return False


def _started_at(upload_dir: str) -> float:
    try:
        with open(os.path.join(upload_dir, "startedat"), encoding="ascii") as f:
            text = f.read().strip()
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except (OSError, ValueError):
        try:
            return os.stat(upload_dir).st_mtime
        except OSError:
            return 0.0


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _list_links(top: str) -> list[str]:
    """Digests of <top>/<alg>/<hex>/link entries."""
    out = []
    for alg in _listdir(top):
        for hexd in _listdir(os.path.join(top, alg)):
            d = f"{alg}:{hexd}"
            if dg.is_valid(d) and os.path.exists(os.path.join(top, alg, hexd, "link")):
                out.append(d)
    return out
