"""Snapshots: one committed snapshot per layer shared by every container, overlay mounts that show
the image with its whiteouts applied, the native fallback, removal with the container."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from pycontainerd import errdefs
from pycontainerd.snapshots import chain_ids
from tests.pycontainerd.daemon_fixture import (build_image, daemon, opaque, registry, running_daemon,  # noqa: F401
                                               whiteout)
from tests.support import make_busybox_rootfs


@pytest.fixture(scope="module")
def image_layout(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("snapimg")
    l1 = make_busybox_rootfs(base / "l1")
    (l1 / "opt" / "old").mkdir(parents=True)
    (l1 / "opt" / "old" / "file").write_text("lower\n")
    (l1 / "etc" / "gone").write_text("x\n")
    l2 = base / "l2"
    (l2 / "etc").mkdir(parents=True)
    (l2 / "etc" / "hello").write_text("hello from layer 2\n")
    whiteout(l2 / "etc" / "gone")
    opaque(l2 / "opt")
    (l2 / "opt" / "new").write_text("upper\n")
    l3 = base / "l3"
    (l3 / "srv").mkdir(parents=True)
    (l3 / "srv" / "three").write_text("3\n")
    build_image(base / "layout", "v1", [l1, l2, l3])
    return base / "layout"


def mount(mounts: list[dict], target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    (m,) = mounts
    opts = [o for o in m["options"] if o not in ("rbind",)]
    if m["type"] == "bind":
        subprocess.run(["mount", "--rbind", m["source"], str(target)], check=True)
    else:
        subprocess.run(["mount", "-t", m["type"], m["source"], "-o", ",".join(opts), str(target)], check=True)


def umount(target: Path) -> None:
    subprocess.run(["umount", str(target)], check=True)


def check_rootfs(rootfs: Path) -> None:
    assert (rootfs / "bin" / "busybox").is_file()
    assert (rootfs / "etc" / "hello").read_text() == "hello from layer 2\n"
    assert not (rootfs / "etc" / "gone").exists(), "whiteout not applied"
    assert sorted(os.listdir(rootfs / "opt")) == ["new"], "opaque directory not applied"
    assert (rootfs / "srv" / "three").read_text() == "3\n"


def _pull(client, ref):
    list(client.stream("Images", "Pull", {"ref": ref}))


def test_overlay_layers_shared_by_two_containers(daemon, registry, image_layout, tmp_path):
    registry.push(image_layout, "v1", "snap/img")
    ref = registry.ref("snap/img", "v1")
    c = daemon.client
    assert c.call("System", "Info")["snapshotter"] == "overlayfs"
    _pull(c, ref)
    cfg = c.call("Images", "Config", {"name": ref})
    chain = chain_ids(cfg["config"]["rootfs"]["diff_ids"])
    storage = daemon.root / "snapshots" / "overlayfs" / "snapshots"
    layer_dirs = sorted(os.listdir(storage))
    assert len(layer_dirs) == 3, "one directory per layer"
    mounts = {}
    for cid in ("c1", "c2"):
        mounts[cid] = c.call("Snapshots", "Prepare", {"key": cid, "parent": cfg["chain_id"]})["mounts"]
        c.call("Containers", "Create", {"container": {"id": cid, "image": ref, "snapshot_key": cid,
                                                      "snapshotter": "overlayfs"}})
    assert len(os.listdir(storage)) == 5, "each container adds only its own upper dir"
    lowers = {}
    for cid, ms in mounts.items():
        (m,) = ms
        assert m["type"] == "overlay"
        opts = dict(o.split("=", 1) for o in m["options"] if "=" in o)
        lowers[cid] = opts["lowerdir"]
        assert len(opts["lowerdir"].split(":")) == 3
        assert opts["upperdir"] != opts["workdir"]
    assert lowers["c1"] == lowers["c2"], "both containers stack the same layer directories"
    r1, r2 = tmp_path / "r1", tmp_path / "r2"
    mount(mounts["c1"], r1)
    try:
        mount(mounts["c2"], r2)
        try:
            check_rootfs(r1)
            check_rootfs(r2)
            (r1 / "etc" / "hello").write_text("changed in c1\n")
            assert (r2 / "etc" / "hello").read_text() == "hello from layer 2\n"
        finally:
            umount(r2)
    finally:
        umount(r1)
    assert c.call("Snapshots", "Stat", {"key": "c1"})["info"]["kind"] == "active"
    assert c.call("Snapshots", "Usage", {"key": "c1"})["size"] > 0
    # removing the container with its snapshot leaves the image's layers alone
    c.call("Containers", "Delete", {"id": "c1", "cleanup_snapshot": True})
    with pytest.raises(errdefs.NotFound):
        c.call("Snapshots", "Stat", {"key": "c1"})
    with pytest.raises(errdefs.FailedPrecondition):
        c.call("Snapshots", "Remove", {"key": chain[1]})  # has children
    c.call("System", "GC")
    assert len(os.listdir(storage)) == 4
    assert {s["name"] for s in c.call("Snapshots", "List")["info"]} == set(chain) | {"c2"}


def test_commit_and_view(daemon, registry, image_layout, tmp_path):
    registry.push(image_layout, "v1", "snap/commit")
    ref = registry.ref("snap/commit", "v1")
    c = daemon.client
    _pull(c, ref)
    top = c.call("Images", "Config", {"name": ref})["chain_id"]
    ms = c.call("Snapshots", "Prepare", {"key": "work", "parent": top})["mounts"]
    r = tmp_path / "r"
    mount(ms, r)
    try:
        (r / "added").write_text("new\n")
    finally:
        umount(r)
    c.call("Snapshots", "Commit", {"name": "mine", "key": "work"})
    assert c.call("Snapshots", "Stat", {"key": "mine"})["info"]["parent"] == top
    view = c.call("Snapshots", "View", {"key": "look", "parent": "mine"})["mounts"]
    assert "upperdir" not in " ".join(view[0]["options"])
    mount(view, r)
    try:
        assert (r / "added").read_text() == "new\n"
        check_rootfs(r)
    finally:
        umount(r)
    with pytest.raises(errdefs.AlreadyExists):
        c.call("Snapshots", "Prepare", {"key": "look", "parent": top})
    with pytest.raises(errdefs.NotFound):
        c.call("Snapshots", "Prepare", {"key": "x", "parent": "sha256:" + "0" * 64})


def test_native_snapshotter_fallback(tmp_path, registry, image_layout):
    registry.push(image_layout, "v1", "snap/native")
    ref = registry.ref("snap/native", "v1")
    with running_daemon(tmp_path, extra_args=["--snapshotter", "native"]) as d:
        c = d.client
        assert c.call("System", "Info")["snapshotter"] == "native"
        _pull(c, ref)
        top = c.call("Images", "Config", {"name": ref})["chain_id"]
        (m,) = c.call("Snapshots", "Prepare", {"key": "n1", "parent": top, "snapshotter": "native"})["mounts"]
        assert m["type"] == "bind"
        check_rootfs(Path(m["source"]))
        with pytest.raises(errdefs.NotFound):
            c.call("Snapshots", "Prepare", {"key": "n2", "parent": top, "snapshotter": "btrfs"})


def test_staged_overlay_layer_holds_overlay_whiteouts_and_checks_diff_id(image_layout, tmp_path):
    """The snapshotter applies through pyoci's whiteouts="overlay": the layer dir keeps the whiteout as a
    0/0 char device and the opaque dir as its xattr; a wrong diff_id leaves no staging dir behind."""
    from pyoci.errors import DigestMismatch
    from pyoci.layout import Layout
    from pycontainerd.snapshots import OverlaySnapshotter

    layout = Layout.open(image_layout)
    manifest = layout.read_json(layout.resolve("v1"))
    diff_ids = layout.read_json(manifest["config"])["rootfs"]["diff_ids"]
    snaps = OverlaySnapshotter(tmp_path / "root", tmp_path / "meta")
    blob = layout.blob_path(manifest["layers"][1]["digest"])
    staged = snaps.stage_layer(blob, diff_ids[1])
    try:
        gone = staged / "fs" / "etc" / "gone"
        assert gone.is_char_device() and os.stat(gone, follow_symlinks=False).st_rdev == os.makedev(0, 0)
        assert os.getxattr(staged / "fs" / "opt", "trusted.overlay.opaque") == b"y"
        assert (staged / "fs" / "opt" / "new").read_text() == "upper\n"
    finally:
        subprocess.run(["rm", "-rf", str(staged)], check=True)
    with pytest.raises(DigestMismatch, match="diff_id"):
        snaps.stage_layer(blob, diff_ids[0])
    assert list(snaps.tmp.iterdir()) == []


def test_committed_usage_is_walked_once(image_layout, tmp_path, monkeypatch):
    from pyoci.layout import Layout
    from pycontainerd import snapshots as S

    layout = Layout.open(image_layout)
    manifest = layout.read_json(layout.resolve("v1"))
    diff_ids = layout.read_json(manifest["config"])["rootfs"]["diff_ids"]
    snaps = S.OverlaySnapshotter(tmp_path / "root", tmp_path / "meta")
    chain = chain_ids(diff_ids)[0]
    assert snaps.unpack_layer("ns", chain, "", layout.blob_path(manifest["layers"][0]["digest"]), diff_ids[0])
    first = snaps.usage("ns", chain)
    assert first["size"] > 1_000_000 and first["inodes"] > 100  # busybox and its applet links
    monkeypatch.setattr(S.os, "walk", lambda *_a, **_k: pytest.fail("committed layer walked again"))
    assert snaps.usage("ns", chain) == first
    snaps.remove("ns", chain)
    snaps.sweep_storage()
    assert chain not in snaps._usage
