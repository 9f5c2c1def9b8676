"""Images through the daemon: pull from Debian's docker-registry (an image pushed by pyoci), unpack
into one snapshot per layer, push, import/export read by skopeo, namespaces isolation."""

from __future__ import annotations

import hashlib
import os
import json
import subprocess
from pathlib import Path

import pytest

from pycontainerd import errdefs
from pycontainerd.snapshots import chain_ids
from tests.pycontainerd.daemon_fixture import (build_image, build_index, daemon, opaque, registry,  # noqa: F401
                                               whiteout)
from tests.support import make_busybox_rootfs, require


@pytest.fixture(scope="module")
def image_layout(tmp_path_factory) -> Path:
    """busybox, then a layer that adds files, removes /etc/group and makes /opt opaque."""
    base = tmp_path_factory.mktemp("img")
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
    build_image(base / "layout", "v1", [l1, l2])
    return base / "layout"


def pull(client, ref, **params):
    frames = list(client.stream("Images", "Pull", {"ref": ref, **params}))
    return frames


def test_pull_unpack_and_progress(daemon, registry, image_layout):
    registry.push(image_layout, "v1", "test/busybox")
    c = daemon.client
    ref = registry.ref("test/busybox", "v1")
    call = c.duplex("Images", "Pull", {"ref": ref})
    frames = list(call)
    image = call.result()["image"]
    assert image["name"] == ref
    statuses = {(f["ref"].split("-")[0], f["status"]) for f in frames}
    assert ("layer", "unpacked") in statuses and (ref, "resolved") in {(f["ref"], f["status"]) for f in frames}
    # content recorded and verified
    manifest_digest = image["target"]["digest"]
    cfg = c.call("Images", "Config", {"name": ref})
    assert cfg["manifest_descriptor"]["digest"] == manifest_digest
    assert len(cfg["manifest"]["layers"]) == 2
    for d in [manifest_digest, cfg["manifest"]["config"]["digest"]] + [l["digest"] for l in cfg["manifest"]["layers"]]:
        info = c.call("Content", "Info", {"digest": d})["info"]
        blob = daemon.root / "content" / "blobs" / "sha256" / d.split(":")[1]
        assert info["size"] == blob.stat().st_size
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == d.split(":")[1]
    # one committed snapshot per layer, named by chainID (containerd's identity.ChainID)
    chain = chain_ids(cfg["config"]["rootfs"]["diff_ids"])
    assert cfg["chain_id"] == chain[-1]
    snaps = {s["name"]: s for s in c.call("Snapshots", "List")["info"]}
    assert set(chain) <= set(snaps)
    assert snaps[chain[1]]["parent"] == chain[0] and snaps[chain[0]]["parent"] == ""
    assert all(snaps[k]["kind"] == "committed" for k in chain)
    # the image shows up in List with a size
    listed = c.call("Images", "List")["images"]
    assert [i["name"] for i in listed] == [ref] and listed[0]["size"] > 1000
    # a second pull finds everything there: no download, no unpack
    frames = pull(c, ref)
    assert not any(f["status"] in ("downloading", "unpacking") for f in frames)
    assert any(f["status"] == "exists" for f in frames)


def test_pull_errors(daemon, registry):
    c = daemon.client
    with pytest.raises(errdefs.NotFound):
        pull(c, registry.ref("nope/nothing", "v1"))
    with pytest.raises(errdefs.InvalidArgument):
        pull(c, "UPPER/Case::bad")


def test_namespaces_isolate_images_and_content(daemon, registry, image_layout):
    registry.push(image_layout, "v1", "iso/busybox")
    ref = registry.ref("iso/busybox", "v1")
    a = daemon.new_client("team-a")
    b = daemon.new_client("team-b")
    pull(a, ref)
    assert [i["name"] for i in a.call("Images", "List")["images"]] == [ref]
    assert b.call("Images", "List")["images"] == []
    with pytest.raises(errdefs.NotFound):
        b.call("Images", "Get", {"name": ref})
    digest = a.call("Images", "Get", {"name": ref})["image"]["target"]["digest"]
    with pytest.raises(errdefs.NotFound):
        b.call("Content", "Info", {"digest": digest})
    assert b.call("Snapshots", "List")["info"] == []
    # pulling into b reuses the unpacked layers (no second unpack) but makes them visible there
    frames = pull(b, ref)
    assert not any(f["status"] == "unpacking" for f in frames)
    assert len(b.call("Snapshots", "List")["info"]) == 2
    names = {n["name"] for n in a.call("Namespaces", "List")["namespaces"]}
    assert {"team-a", "team-b"} <= names
    with pytest.raises(errdefs.FailedPrecondition):
        a.call("Namespaces", "Delete", {"name": "team-b"})


def test_push_to_registry(daemon, registry, image_layout):
    registry.push(image_layout, "v1", "src/busybox")
    c = daemon.client
    src = registry.ref("src/busybox", "v1")
    pull(c, src)
    dest = registry.ref("dst/copied", "v2")
    frames = list(c.stream("Images", "Push", {"name": src, "ref": dest}))
    assert frames[-1]["status"] == "pushed"
    skopeo = require("skopeo")
    out = subprocess.run([skopeo, "inspect", "--raw", "--tls-verify=false", f"docker://{dest}"],
                         capture_output=True, text=True, check=True).stdout
    got = hashlib.sha256(out.encode()).hexdigest()
    assert "sha256:" + got == c.call("Images", "Get", {"name": src})["image"]["target"]["digest"]


def test_export_import_round_trip_read_by_skopeo(daemon, registry, image_layout, tmp_path):
    registry.push(image_layout, "v1", "rt/busybox")
    ref = registry.ref("rt/busybox", "v1")
    c = daemon.client
    pull(c, ref)
    target = c.call("Images", "Get", {"name": ref})["image"]["target"]
    skopeo = require("skopeo")
    oci = tmp_path / "img-oci.tar"
    docker = tmp_path / "img-docker.tar"
    list(c.stream("Images", "Export", {"names": [ref], "format": "oci", "path": str(oci)}))
    list(c.stream("Images", "Export", {"names": [ref], "format": "docker", "path": str(docker)}))
    for spec in (f"oci-archive:{oci}", f"docker-archive:{docker}"):
        info = json.loads(subprocess.run([skopeo, "inspect", spec], capture_output=True, text=True,
                                         check=True).stdout)
        assert len(info["Layers"]) == 2, spec
    raw = subprocess.run([skopeo, "inspect", "--raw", f"oci-archive:{oci}"], capture_output=True, check=True).stdout
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == target["digest"]
    # import each into a fresh namespace: same manifest from the oci-archive, same config from docker's
    o = daemon.new_client("from-oci")
    imported = [f for f in o.stream("Images", "Import", {"path": str(oci)})]
    assert any(f.get("status") == "imported" for f in imported)
    got = o.call("Images", "Get", {"name": ref})["image"]
    assert got["target"]["digest"] == target["digest"]
    d = daemon.new_client("from-docker")
    call = d.duplex("Images", "Import", {})  # bytes streamed by the client this time
    with open(docker, "rb") as f:
        while chunk := f.read(1 << 20):
            call.send_data(chunk)
    call.close_send()
    images = call.result()["images"]
    assert [i["name"] for i in images] == [ref]
    cfg_a = c.call("Images", "Config", {"name": ref})["config"]
    cfg_b = d.call("Images", "Config", {"name": ref})["config"]
    assert cfg_a == cfg_b
    assert len(d.call("Snapshots", "List")["info"]) == 2
    # an archive exported by skopeo imports too
    sk = tmp_path / "skopeo-oci.tar"
    subprocess.run([skopeo, "copy", f"oci:{image_layout}:v1", f"oci-archive:{sk}:example.com/sk/img:v1"],
                   capture_output=True, check=True)
    s = daemon.new_client("from-skopeo")
    names = [i["ref"] for i in s.stream("Images", "Import", {"path": str(sk)}) if i.get("status") == "imported"]
    assert names == ["example.com/sk/img:v1"]


def test_export_streams_bytes(daemon, registry, image_layout, tmp_path):
    registry.push(image_layout, "v1", "st/busybox")
    ref = registry.ref("st/busybox", "v1")
    c = daemon.client
    pull(c, ref)
    import base64

    data = b"".join(base64.b64decode(f["data"]) for f in c.stream("Images", "Export", {"names": [ref]}))
    out = tmp_path / "streamed.tar"
    out.write_bytes(data)
    info = json.loads(subprocess.run([require("skopeo"), "inspect", f"oci-archive:{out}"], capture_output=True,
                                     text=True, check=True).stdout)
    assert len(info["Layers"]) == 2


def test_platform_selection_from_an_index(daemon, registry, tmp_path):
    from pyoci import platform as platforms

    here = platforms.default().architecture
    other = "arm64" if here != "arm64" else "amd64"
    layout = tmp_path / "multi"
    a = tmp_path / "a"
    (a / "etc").mkdir(parents=True)
    (a / "etc" / "arch").write_text(here)
    b = tmp_path / "b"
    (b / "etc").mkdir(parents=True)
    (b / "etc" / "arch").write_text(other)
    ma = build_image(layout, "here", [a])
    mb = build_image(layout, "other", [b], architecture=other)
    index = build_index(layout, "multi", {f"linux/{here}": ma, f"linux/{other}": mb})
    registry.push(layout, "multi", "multi/img")
    ref = registry.ref("multi/img", "multi")
    c = daemon.client
    image = [f for f in c.stream("Images", "Pull", {"ref": ref})] and c.call("Images", "Get", {"name": ref})["image"]
    assert image["target"]["digest"] == index["digest"]
    cfg = c.call("Images", "Config", {"name": ref})
    assert cfg["manifest_descriptor"]["digest"] == ma["digest"]
    assert cfg["config"]["architecture"] == here
    # the other platform's layer was neither downloaded nor unpacked
    with pytest.raises(errdefs.NotFound):
        c.call("Content", "Info", {"digest": mb["digest"]})
    assert len(c.call("Snapshots", "List")["info"]) == 1
    # asking for the other platform pulls (and unpacks) that one
    list(c.stream("Images", "Pull", {"ref": ref, "platform": f"linux/{other}"}))
    assert c.call("Images", "Config", {"name": ref, "platform": f"linux/{other}"})["config"]["architecture"] == other
    with pytest.raises(errdefs.NotFound):
        list(c.stream("Images", "Pull", {"ref": ref, "platform": "windows/s390x"}))


def test_pull_docker_schema2_image(daemon, registry, image_layout):
    """An image pushed by skopeo in Docker's format (schema2 manifest, gzip docker layers) pulls and
    unpacks unchanged: same manifest digest as the registry serves."""
    skopeo = require("skopeo")
    dest = registry.ref("docker/fmt", "v1")
    subprocess.run([skopeo, "copy", "--format", "v2s2", "--dest-tls-verify=false", f"oci:{image_layout}:v1",
                    f"docker://{dest}"], capture_output=True, check=True)
    raw = subprocess.run([skopeo, "inspect", "--raw", "--tls-verify=false", f"docker://{dest}"],
                         capture_output=True, check=True).stdout
    c = daemon.client
    list(c.stream("Images", "Pull", {"ref": dest}))
    image = c.call("Images", "Get", {"name": dest})["image"]
    assert image["target"]["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert image["target"]["digest"] == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert len(c.call("Snapshots", "List")["info"]) == 2


def test_concurrent_pulls_of_one_image(daemon, registry, image_layout):
    """Pulls racing for the same blobs and layers: all succeed, each blob stored and each layer unpacked once."""
    import threading

    registry.push(image_layout, "v1", "race/img")
    ref = registry.ref("race/img", "v1")
    clients = [daemon.new_client(ns) for ns in ("default", "default", "other", "third")]
    errors: list[BaseException] = []

    def pull_one(c):
        try:
            list(c.stream("Images", "Pull", {"ref": ref}))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=pull_one, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    for ns in ("default", "other", "third"):
        c = daemon.new_client(ns)
        assert c.call("Images", "Get", {"name": ref})["image"]["name"] == ref
        assert len(c.call("Snapshots", "List")["info"]) == 2
    assert len(os.listdir(daemon.root / "snapshots" / "overlayfs" / "snapshots")) == 2
    assert os.listdir(daemon.root / "snapshots" / "overlayfs" / "tmp") == []
    blobs = daemon.root / "content" / "blobs" / "sha256"
    for p in blobs.iterdir():
        if not p.name.startswith("."):
            assert hashlib.sha256(p.read_bytes()).hexdigest() == p.name


def test_pull_and_push_with_credentials(daemon, image_layout, tmp_path):
    from tests.pycontainerd.daemon_fixture import running_registry

    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(subprocess.run([require("htpasswd"), "-Bbn", "alice", "s3cret"], capture_output=True,
                                       text=True, check=True).stdout)
    with running_registry(tmp_path, htpasswd) as reg:
        ref = reg.ref("private/img", "v1")
        subprocess.run([require("skopeo"), "copy", "--dest-creds", "alice:s3cret", "--dest-tls-verify=false",
                        f"oci:{image_layout}:v1", f"docker://{ref}"], capture_output=True, check=True)
        c = daemon.client
        with pytest.raises((errdefs.Unauthenticated, errdefs.PermissionDenied)):
            list(c.stream("Images", "Pull", {"ref": ref}))
        with pytest.raises((errdefs.Unauthenticated, errdefs.PermissionDenied)):
            list(c.stream("Images", "Pull", {"ref": ref, "username": "alice", "password": "wrong"}))
        list(c.stream("Images", "Pull", {"ref": ref, "username": "alice", "password": "s3cret"}))
        assert c.call("Images", "Get", {"name": ref})["image"]["name"] == ref
        copy = reg.ref("private/copy", "v1")
        list(c.stream("Images", "Push", {"name": ref, "ref": copy, "username": "alice", "password": "s3cret"}))
        out = subprocess.run([require("skopeo"), "inspect", "--creds", "alice:s3cret", "--tls-verify=false",
                              f"docker://{copy}"], capture_output=True, text=True, check=True).stdout
        assert len(json.loads(out)["Layers"]) == 2
