"""Garbage collection: unreferenced content and snapshots go, referenced ones and leased work stay."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pycontainerd import errdefs
from tests.pycontainerd.daemon_fixture import build_image, daemon, registry  # noqa: F401
from tests.pycontainerd.test_content import write
from tests.support import make_busybox_rootfs


@pytest.fixture(scope="module")
def two_images(tmp_path_factory) -> Path:
    """Two images sharing their busybox layer: a: busybox + A, b: busybox + B."""
    base = tmp_path_factory.mktemp("gcimg")
    bb = make_busybox_rootfs(base / "bb")
    for name in ("a", "b"):
        d = base / name
        (d / "data").mkdir(parents=True)
        (d / "data" / name).write_text(name * 100)
        build_image(base / "layout", name, [bb, d])
    return base / "layout"


def blobs(root: Path) -> set[str]:
    d = root / "content" / "blobs" / "sha256"
    return {p.name for p in d.iterdir() if not p.name.startswith(".") and "." not in p.name}


def snapshot_dirs(root: Path) -> set[str]:
    return set(os.listdir(root / "snapshots" / "overlayfs" / "snapshots"))


def test_gc_removes_unreferenced_keeps_shared(daemon, registry, two_images):
    for name in ("a", "b"):
        registry.push(two_images, name, "gc/img", name)
    c = daemon.client
    for name in ("a", "b"):
        list(c.stream("Images", "Pull", {"ref": registry.ref("gc/img", name)}))
    # 2 manifests + 2 configs + shared busybox + 2 top layers
    assert len(blobs(daemon.root)) == 7
    assert len(snapshot_dirs(daemon.root)) == 3
    cfg_b = c.call("Images", "Config", {"name": registry.ref("gc/img", "b")})
    c.call("Images", "Delete", {"name": registry.ref("gc/img", "a"), "sync": True})
    left = blobs(daemon.root)
    assert len(left) == 4
    wanted = {cfg_b["manifest_descriptor"]["digest"], cfg_b["manifest"]["config"]["digest"],
              *(l["digest"] for l in cfg_b["manifest"]["layers"])}
    assert {"sha256:" + b for b in left} == wanted
    assert len(snapshot_dirs(daemon.root)) == 2
    assert len(c.call("Snapshots", "List")["info"]) == 2
    # the remaining image still unpacks/resolves fine, and a container snapshot keeps its layers
    c.call("Snapshots", "Prepare", {"key": "ctr", "parent": cfg_b["chain_id"]})
    c.call("Containers", "Create", {"container": {"id": "ctr", "image": registry.ref("gc/img", "b"),
                                                  "snapshot_key": "ctr"}})
    c.call("Images", "Delete", {"name": registry.ref("gc/img", "b"), "sync": True})
    assert blobs(daemon.root) == set()
    assert len(snapshot_dirs(daemon.root)) == 3, "the container's snapshot and its two parents stay"
    c.call("Containers", "Delete", {"id": "ctr", "cleanup_snapshot": True})
    c.call("System", "GC")
    assert snapshot_dirs(daemon.root) == set()
    assert c.call("Snapshots", "List")["info"] == []


def test_leases_protect_work_in_progress(daemon):
    c = daemon.client
    lease = c.call("Leases", "Create", {"id": "pull-1"})["lease"]
    assert lease["id"] == "pull-1"
    data = os.urandom(5000)
    digest = write(c, data, lease="pull-1")["digest"]
    c.call("System", "GC")
    assert digest[7:] in blobs(daemon.root), "a leased blob survives gc"
    assert c.call("Leases", "ListResources", {"id": "pull-1"})["resources"] == [{"id": digest, "type": "content"}]
    unleased = write(c, b"nobody wants me")["digest"]
    c.call("System", "GC")
    assert unleased[7:] not in blobs(daemon.root)
    c.call("Leases", "Delete", {"id": "pull-1", "sync": True})
    assert digest[7:] not in blobs(daemon.root)
    with pytest.raises(errdefs.NotFound):
        c.call("Leases", "Delete", {"id": "pull-1"})
    # gc.root label keeps content without a lease
    kept = write(c, b"root me", labels={"containerd.io/gc.root": "x"})["digest"]
    c.call("System", "GC")
    assert kept[7:] in blobs(daemon.root)


def test_expired_lease_releases(daemon):
    c = daemon.client
    c.call("Leases", "Create", {"id": "short", "expire_seconds": 2})
    digest = write(c, b"short-lived", lease="short")["digest"]
    c.call("System", "GC")
    assert digest[7:] in blobs(daemon.root)
    import time

    time.sleep(2.2)
    c.call("System", "GC")
    assert digest[7:] not in blobs(daemon.root)
    assert c.call("Leases", "List")["leases"] == []
