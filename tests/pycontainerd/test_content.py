"""Content service: write (client stream, verified), read (server stream), info, labels, delete."""

from __future__ import annotations

import base64
import hashlib

import pytest

from pycontainerd import errdefs
from tests.pycontainerd.daemon_fixture import daemon  # noqa: F401


def write(client, data: bytes, expected: str | None = None, chunk: int = 7000, **params) -> dict:
    call = client.duplex("Content", "Write", {"expected": expected, "total": len(data), **params})
    for i in range(0, len(data), chunk):
        call.send_data(data[i:i + chunk])
    call.close_send()
    return call.result()


def test_write_read_info_update_delete(daemon):
    c = daemon.client
    data = bytes(range(256)) * 1000
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert write(c, data, digest) == {"digest": digest, "size": len(data)}
    blob = daemon.root / "content" / "blobs" / "sha256" / digest[7:]
    assert blob.read_bytes() == data
    got = b"".join(base64.b64decode(f["data"]) for f in c.stream("Content", "Read", {"digest": digest}))
    assert got == data
    part = b"".join(base64.b64decode(f["data"]) for f in c.stream("Content", "Read",
                                                                   {"digest": digest, "offset": 10, "size": 20}))
    assert part == data[10:30]
    info = c.call("Content", "Info", {"digest": digest})["info"]
    assert info["size"] == len(data) and info["labels"] == {}
    info = c.call("Content", "Update", {"info": {"digest": digest, "labels": {"a": "1", "b": "2"}}})["info"]
    assert info["labels"] == {"a": "1", "b": "2"}
    info = c.call("Content", "Update", {"info": {"digest": digest, "labels": {"a": ""}},
                                        "update_mask": ["labels.a"]})["info"]
    assert info["labels"] == {"b": "2"}
    assert [i["digest"] for i in c.call("Content", "List")["info"]] == [digest]
    assert c.call("Content", "List", {"filters": ["labels.b==3"]})["info"] == []
    c.call("Content", "Delete", {"digest": digest})
    with pytest.raises(errdefs.NotFound):
        c.call("Content", "Info", {"digest": digest})
    # an unreferenced blob goes with the next gc
    c.call("System", "GC")
    assert not blob.exists()


def test_write_without_expected_digest(daemon):
    c = daemon.client
    out = write(c, b"hello")
    assert out["digest"] == "sha256:" + hashlib.sha256(b"hello").hexdigest()


def test_mismatch_commits_nothing(daemon):
    c = daemon.client
    wrong = "sha256:" + "1" * 64
    with pytest.raises(errdefs.FailedPrecondition):
        write(c, b"some bytes", wrong)
    blobs = daemon.root / "content" / "blobs" / "sha256"
    assert not (blobs / ("1" * 64)).exists()
    assert [p.name for p in blobs.iterdir() if not p.name.startswith(".")] == []
    with pytest.raises(errdefs.InvalidArgument):
        c.call("Content", "Info", {"digest": "sha256:nothex"})
