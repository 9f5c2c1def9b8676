"""garbage-collect beside a running server: re-pushes and mounts refresh a blob's age, `--grace`, and the gc lock
(the server's check-then-link steps wait for a sweep; a sweep waits for them)."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
import requests

from pyregistry import config as cfgmod
from pyregistry import gc
from pyregistry.storage.filesystem import FilesystemDriver
from pyregistry.storage.lock import SharedLock, exclusive
from tests.pyregistry.test_auth_helpers import Server, pyregistry, serve

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OLD = 7200.0  # seconds: older than the default grace period


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with serve(tmp_path / "reg") as s:
        yield s


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def blob_file(server: Server, digest: str) -> Path:
    hexd = digest.split(":", 1)[1]
    return server.root / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"


def push(server: Server, repo: str, data: bytes) -> str:
    r = requests.post(f"{server.url}/v2/{repo}/blobs/uploads/", params={"digest": sha(data)}, data=data)
    assert r.status_code == 201, r.text
    return sha(data)


def backdate(path: Path, seconds: float = OLD) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


def age(path: Path) -> float:
    return time.time() - path.stat().st_mtime


def manifest(config: str, layer: str, layer_size: int) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config,
                                  "size": 2},
                       "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer,
                                   "size": layer_size}]}).encode()


def run_gc(server: Server, **kw) -> gc.GCReport:
    return gc.run(cfgmod.load(server.config), dry_run=False, delete_untagged=False, emit=lambda _: None, **kw)


@pytest.mark.parametrize("how", ["repush", "mount"])
def test_an_old_orphan_pushed_again_or_mounted_survives_gc(server: Server, how: str):
    data = f"layer for {how}".encode()
    digest = push(server, "safe/src", data)
    path = blob_file(server, digest)
    backdate(path)
    info = asyncio.run(FilesystemDriver(server.root).stat_blob(digest))
    assert info is not None and abs((time.time() - info.modified) - OLD) < 60  # BlobInfo.modified is the mtime
    if how == "repush":  # an upload that deduplicates to the stored blob
        assert push(server, "safe/other", data) == digest
    else:
        r = requests.post(f"{server.url}/v2/safe/other/blobs/uploads/", params={"mount": digest, "from": "safe/src"})
        assert r.status_code == 201 and r.headers["Docker-Content-Digest"] == digest
    assert age(path) < 60
    report = run_gc(server)  # default grace: kept, as a blob pushed just now
    assert report.eligible == [digest] and report.kept_young == [digest] and report.deleted == []
    assert requests.head(f"{server.url}/v2/safe/other/blobs/{digest}").status_code == 200
    backdate(path)  # the same blob left alone for two hours goes
    assert run_gc(server).deleted == [digest]


def test_garbage_collect_grace_flag(server: Server):
    digest = push(server, "safe/g", b"orphan for --grace")
    path = blob_file(server, digest)
    backdate(path, 100)
    res = pyregistry("garbage-collect", "--grace", "1000", str(server.config))
    assert res.returncode == 0, res.stderr
    assert path.exists() and "younger than the grace period of 1000s" in res.stdout
    res = pyregistry("garbage-collect", "--grace", "50", "--dry-run", str(server.config))
    assert res.returncode == 0 and path.exists() and f"blob eligible for deletion: {digest}" in res.stdout
    res = pyregistry("garbage-collect", "--grace", "50", str(server.config))
    assert res.returncode == 0, res.stderr
    assert not path.exists()
    res = pyregistry("garbage-collect", "--grace", "soon", str(server.config))
    assert res.returncode == 2 and "not a number of seconds: 'soon'" in res.stderr and "Traceback" not in res.stderr


class _Background(threading.Thread):
    """One HTTP request in a thread, to see whether it waits."""

    def __init__(self, method: str, url: str, **kw) -> None:
        super().__init__(daemon=True)
        self.args = (method, url)
        self.kw = kw
        self.response: requests.Response | None = None
        self.start()

    def run(self) -> None:
        self.response = requests.request(*self.args, timeout=30, **self.kw)


def lock_path(server: Server) -> Path:
    return server.root / "pyregistry-gc.lock"


class _Exclusive:
    """gc's side of the lock, taken from the test process (another open file description, as gc's)."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def release(self) -> None:
        os.close(self.fd)


def test_manifest_put_waits_for_a_sweep_and_sees_what_it_swept(server: Server):
    cfg, layer = b"{}", b"layer the sweep takes"
    cfg_d, layer_d = push(server, "safe/m", cfg), push(server, "safe/m", layer)
    data = manifest(cfg_d, layer_d, len(layer))
    gc_lock = _Exclusive(lock_path(server))
    try:
        put = _Background("PUT", f"{server.url}/v2/safe/m/manifests/v1", data=data,
                          headers={"Content-Type": OCI_MANIFEST})
        time.sleep(0.5)
        assert put.response is None  # validate-then-link waits for the sweep
        assert requests.get(f"{server.url}/v2/", timeout=5).status_code == 200  # the event loop does not
        assert requests.head(f"{server.url}/v2/safe/m/blobs/{layer_d}", timeout=5).status_code == 200
        shutil.rmtree(blob_file(server, layer_d).parent)  # what the sweep does to an old orphan
    finally:
        gc_lock.release()
    put.join(30)
    assert put.response is not None and put.response.status_code == 400
    assert put.response.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"
    push(server, "safe/m", layer)  # the client pushes the layer again, then the manifest
    r = requests.put(f"{server.url}/v2/safe/m/manifests/v1", data=data, headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 201, r.text


def test_blob_commit_and_mount_wait_for_a_sweep(server: Server):
    src = push(server, "safe/c", b"mount source")
    gc_lock = _Exclusive(lock_path(server))
    try:
        data = b"committed after the sweep"
        commit = _Background("POST", f"{server.url}/v2/safe/c/blobs/uploads/", params={"digest": sha(data)},
                             data=data)
        mount = _Background("POST", f"{server.url}/v2/safe/d/blobs/uploads/", params={"mount": src, "from": "safe/c"})
        time.sleep(0.5)
        assert commit.response is None and mount.response is None
        assert not blob_file(server, sha(data)).exists()
    finally:
        gc_lock.release()
    commit.join(30)
    mount.join(30)
    assert commit.response is not None and commit.response.status_code == 201
    assert mount.response is not None and mount.response.status_code == 201
    assert requests.get(f"{server.url}/v2/safe/c/blobs/{sha(data)}").content == data


def test_gc_sweep_waits_for_a_check_then_link_step(server: Server):
    digest = push(server, "safe/w", b"old orphan")
    backdate(blob_file(server, digest))
    done = threading.Event()
    result: list[gc.GCReport] = []

    async def hold_shared() -> None:
        lock = SharedLock(str(lock_path(server)))
        async with lock.held():  # as the server does around a manifest PUT
            worker = threading.Thread(target=lambda: (result.append(run_gc(server)), done.set()), daemon=True)
            worker.start()
            await asyncio.sleep(0.5)
            assert not done.is_set() and blob_file(server, digest).exists()
        lock.close()

    asyncio.run(hold_shared())
    assert done.wait(30)
    assert result[0].deleted == [digest] and not blob_file(server, digest).exists()


def test_shared_lock_counts_holders_and_survives_cancelled_waiters(tmp_path: Path):
    path = str(tmp_path / "gc.lock")

    def exclusive_free() -> bool:
        fd = os.open(path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        finally:
            os.close(fd)

    async def main() -> None:
        lock = SharedLock(path)
        async with lock.held():
            async with lock.held():
                assert not exclusive_free()
            assert not exclusive_free()  # still one holder
        assert exclusive_free()
        # gc holds it: waiters block (in a thread, the loop keeps running); a cancelled waiter leaks nothing
        gc_side = _Exclusive(Path(path))
        waiter = asyncio.ensure_future(lock.held().__aenter__())
        ticks = 0
        for _ in range(5):
            await asyncio.sleep(0.02)
            ticks += 1
        assert ticks == 5 and not waiter.done()
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        gc_side.release()
        await asyncio.sleep(0.3)
        assert exclusive_free()  # the thread got LOCK_SH for nobody and let it go
        async with lock.held():
            assert not exclusive_free()
        assert exclusive_free()
        async with exclusive(path):  # gc's own helper
            assert not exclusive_free()
        lock.close()

    asyncio.run(main())
