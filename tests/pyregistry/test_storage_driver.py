"""The storage driver contract: one suite every StorageDriver implementation must pass (parametrised by driver)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import AsyncIterator, Callable

import pytest

from pyoci.errors import DigestMismatch
from pyregistry.storage import (FilesystemDriver, StorageDriver, UploadOffsetMismatch, UploadUnknown)


def _filesystem(tmp_path: Path) -> StorageDriver:
    return FilesystemDriver(tmp_path / "root")


# Add a factory here for each new driver (an S3 driver against a local S3 server, ...).
DRIVERS: dict[str, Callable[[Path], StorageDriver]] = {"filesystem": _filesystem}


@pytest.fixture(params=sorted(DRIVERS))
def driver(request, tmp_path: Path) -> StorageDriver:
    return DRIVERS[request.param](tmp_path)


def run(coro):
    return asyncio.run(coro)


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for p in parts:
        yield p


async def upload(d: StorageDriver, repo: str, data: bytes) -> str:
    u = await d.create_upload(repo)
    await d.append_upload(repo, u.uuid, chunks(data))
    await d.commit_upload(repo, u.uuid, sha(data))
    return sha(data)


def test_blob_upload_commit_stat_read(driver: StorageDriver):
    async def go():
        data = os.urandom(5 << 20) + b"tail"  # more than one write buffer
        u = await driver.create_upload("a/b")
        assert u.size == 0 and u.repo == "a/b"
        assert await driver.append_upload("a/b", u.uuid, chunks(data[:100]), offset=0) == 100
        with pytest.raises(UploadOffsetMismatch) as e:
            await driver.append_upload("a/b", u.uuid, chunks(b"x"), offset=50)
        assert e.value.size == 100
        assert await driver.append_upload("a/b", u.uuid, chunks(data[100:3 << 20], data[3 << 20:])) == len(data)
        assert (await driver.upload_info("a/b", u.uuid)).size == len(data)
        assert await driver.stat_blob(sha(data)) is None
        info = await driver.commit_upload("a/b", u.uuid, sha(data))
        assert info.size == len(data)
        st = await driver.stat_blob(sha(data))
        assert st is not None and st.size == len(data)
        assert await driver.read_blob(sha(data)) == data
        f = await driver.open_blob(sha(data))
        with f:
            f.seek(len(data) - 4)
            assert f.read() == b"tail"
        assert await driver.blob_linked("a/b", sha(data))
        assert not await driver.blob_linked("a/c", sha(data))
        assert await driver.list_blob_links("a/b") == [sha(data)]
        with pytest.raises(UploadUnknown):
            await driver.upload_info("a/b", u.uuid)
        assert sha(data) in await driver.list_blobs()
    run(go())


def test_commit_with_wrong_digest_commits_nothing(driver: StorageDriver):
    async def go():
        u = await driver.create_upload("r")
        await driver.append_upload("r", u.uuid, chunks(b"real"))
        with pytest.raises(DigestMismatch):
            await driver.commit_upload("r", u.uuid, sha(b"claimed"))
        assert await driver.stat_blob(sha(b"claimed")) is None
        assert await driver.stat_blob(sha(b"real")) is None
        assert not await driver.blob_linked("r", sha(b"claimed"))
        assert await driver.list_uploads() == []
    run(go())


def test_hash_state_survives_a_new_driver_instance(driver: StorageDriver, tmp_path: Path):
    """A restarted server (new driver object) can continue and finish a session it did not start."""
    async def go():
        u = await driver.create_upload("r")
        await driver.append_upload("r", u.uuid, chunks(b"first half "))
        again = FilesystemDriver(driver.root) if isinstance(driver, FilesystemDriver) else driver
        await again.append_upload("r", u.uuid, chunks(b"second half"), offset=11)
        await again.commit_upload("r", u.uuid, sha(b"first half second half"))
        assert await again.read_blob(sha(b"first half second half")) == b"first half second half"
    run(go())


def test_dedup_and_concurrent_commits_of_one_blob(driver: StorageDriver):
    async def go():
        data = os.urandom(1 << 20)
        await asyncio.gather(*(upload(driver, f"repo{i}", data) for i in range(8)))
        assert await driver.read_blob(sha(data)) == data
        for i in range(8):
            assert await driver.blob_linked(f"repo{i}", sha(data))
        assert (await driver.list_blobs()).count(sha(data)) == 1
    run(go())


def test_manifests_tags_and_repositories(driver: StorageDriver):
    async def go():
        m1, m2 = b'{"m":1}', b'{"m":2}'
        await driver.put_manifest("x/y", sha(m1), m1)
        await driver.put_manifest("x/y", sha(m2), m2)
        assert await driver.manifest_linked("x/y", sha(m1))
        assert not await driver.manifest_linked("x/z", sha(m1))
        assert sorted(await driver.list_manifests("x/y")) == sorted([sha(m1), sha(m2)])
        assert await driver.list_tags("x/y") == []
        assert await driver.list_tags("nope") is None
        await driver.tag("x/y", "b", sha(m1))
        await driver.tag("x/y", "a", sha(m1))
        await driver.tag("x/y", "b", sha(m2))  # retag
        assert await driver.list_tags("x/y") == ["a", "b"]
        assert await driver.resolve_tag("x/y", "b") == sha(m2)
        assert await driver.resolve_tag("x/y", "c") is None
        assert await driver.delete_tag("x/y", "b")
        assert not await driver.delete_tag("x/y", "b")
        assert await driver.list_tags("x/y") == ["a"]
        await driver.put_manifest("x", sha(m1), m1)
        await driver.create_upload("only/uploads")
        assert await driver.list_repositories() == ["x", "x/y"]
        assert await driver.repository_exists("x/y") and not await driver.repository_exists("only/uploads")
        # deleting a manifest removes the tags that point at it
        assert await driver.delete_manifest("x/y", sha(m1))
        assert not await driver.delete_manifest("x/y", sha(m1))
        assert await driver.list_tags("x/y") == []
        assert await driver.read_blob(sha(m1)) == m1  # content stays until garbage-collect
    run(go())


def test_links_unlink_delete_and_walk(driver: StorageDriver):
    async def go():
        d = await upload(driver, "w", b"layer")
        m = b'{"manifest":true}'
        await driver.put_manifest("w", sha(m), m)
        await driver.tag("w", "latest", sha(m))
        u = await driver.create_upload("w")
        states = [s async for s in driver.walk()]
        assert len(states) == 1
        s = states[0]
        assert s.name == "w" and s.tags == {"latest": sha(m)} and s.manifests == (sha(m),) and s.layers == (d,)
        assert [x.uuid for x in s.uploads] == [u.uuid]
        assert await driver.unlink_blob("w", d) and not await driver.unlink_blob("w", d)
        assert await driver.stat_blob(d) is not None
        await driver.delete_blob(d)
        assert await driver.stat_blob(d) is None and await driver.read_blob(d) is None
        assert await driver.cancel_upload("w", u.uuid) and not await driver.cancel_upload("w", u.uuid)
        assert await driver.list_uploads() == []
    run(go())


def test_uploads_listed_for_purging(driver: StorageDriver):
    async def go():
        a = await driver.create_upload("p/one")
        b = await driver.create_upload("p/two")
        await driver.append_upload("p/two", b.uuid, chunks(b"12345"))
        got = {(u.repo, u.uuid, u.size) for u in await driver.list_uploads()}
        assert got == {("p/one", a.uuid, 0), ("p/two", b.uuid, 5)}
        assert all(u.started > 0 for u in await driver.list_uploads())
        with pytest.raises(UploadUnknown):
            await driver.append_upload("p/one", "00000000-0000-0000-0000-000000000000", chunks(b"x"))
        with pytest.raises(UploadUnknown):
            await driver.upload_info("p/one", "../../../etc")
    run(go())


def test_filesystem_layout_is_distributions(tmp_path: Path):
    d = FilesystemDriver(tmp_path)

    async def go():
        await upload(d, "lib/img", b"content")
        m = b"{}"
        await d.put_manifest("lib/img", sha(m), m)
        await d.tag("lib/img", "v1", sha(m))
    run(go())
    v2 = tmp_path / "docker/registry/v2"
    h = hashlib.sha256(b"content").hexdigest()
    hm = hashlib.sha256(b"{}").hexdigest()
    assert (v2 / f"blobs/sha256/{h[:2]}/{h}/data").read_bytes() == b"content"
    assert (v2 / f"blobs/sha256/{hm[:2]}/{hm}/data").read_bytes() == b"{}"
    repo = v2 / "repositories/lib/img"
    assert (repo / f"_layers/sha256/{h}/link").read_text() == f"sha256:{h}"
    assert (repo / f"_manifests/revisions/sha256/{hm}/link").read_text() == f"sha256:{hm}"
    assert (repo / "_manifests/tags/v1/current/link").read_text() == f"sha256:{hm}"
    assert (repo / f"_manifests/tags/v1/index/sha256/{hm}/link").read_text() == f"sha256:{hm}"
    # no temp files left behind
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".tmp")]


def test_filesystem_refuses_names_that_escape(tmp_path: Path):
    d = FilesystemDriver(tmp_path)
    for bad in ("../x", "a/../../b", "/abs", "A", "a/_layers"):
        with pytest.raises(ValueError):
            run(d.create_upload(bad))
