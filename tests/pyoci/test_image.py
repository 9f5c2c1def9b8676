"""pyoci.image and pyoci.runtime: a busybox image built from a rootfs, unpacked, and run by the real runc."""

import json
import subprocess
import uuid

import pytest

from pyoci import image, runtime
from pyoci.errors import InvalidDocument, OCIError
from pyoci.layout import Layout
from tests.support import assert_valid, require

CMD = {"Cmd": ["sh", "-c", "echo hello from busybox; id -u; pwd"], "Env": ["PATH=/bin:/usr/bin", "A=1"],
       "WorkingDir": "/tmp", "User": "nobody"}


@pytest.fixture
def built(tmp_path, busybox_rootfs):
    layout = Layout.init(tmp_path / "layout")
    return layout, image.build_from_rootfs(layout, busybox_rootfs, "latest", container_config=CMD, epoch=0)


def test_build_writes_valid_documents(built):
    layout, b = built
    manifest = layout.read_json(b.manifest)
    config = layout.read_json(b.config)
    assert_valid(manifest, "manifest")
    assert_valid(config, "config")
    assert_valid(layout.index(), "index")
    assert config["created"] == "1970-01-01T00:00:00Z"
    assert config["config"] == CMD
    assert layout.tags() == ["latest"]
    layout.validate()


def test_build_is_reproducible(tmp_path, busybox_rootfs):
    digests = set()
    for name in ("a", "b"):
        layout = Layout.init(tmp_path / name)
        digests.add(image.build_from_rootfs(layout, busybox_rootfs, "t", container_config=CMD, epoch=1234).manifest["digest"])
    assert len(digests) == 1


def test_unpack_matches_umoci_and_runs_under_runc(tmp_path, built):
    layout, _ = built
    spec = image.unpack(layout, "latest", tmp_path / "bundle")
    assert_valid(spec, "runtime-config")
    assert spec["process"]["user"] == {"uid": 65534, "gid": 65534}
    assert spec["process"]["cwd"] == "/tmp"
    subprocess.run([require("umoci"), "unpack", "--image", f"{tmp_path / 'layout'}:latest", str(tmp_path / "ref")],
                   check=True, capture_output=True)
    diff = subprocess.run(["diff", "-r", "--no-dereference", str(tmp_path / "bundle" / "rootfs"),
                           str(tmp_path / "ref" / "rootfs")], capture_output=True, text=True)
    assert diff.returncode == 0, diff.stdout + diff.stderr
    ref = json.loads((tmp_path / "ref" / "config.json").read_text())
    assert ref["process"]["args"] == spec["process"]["args"]
    assert ref["process"]["cwd"] == spec["process"]["cwd"]
    assert ref["process"]["user"]["uid"] == spec["process"]["user"]["uid"]
    cid = f"pytest-image-{uuid.uuid4().hex[:8]}"
    out = subprocess.run([require("runc"), "--root", str(tmp_path / "runc"), "run", "-b", str(tmp_path / "bundle"), cid],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "hello from busybox\n65534\n/tmp\n"


def test_unpack_refuses_existing_bundle_and_cleans_up_on_error(tmp_path, built):
    layout, b = built
    (tmp_path / "exists").mkdir()
    with pytest.raises(OCIError, match="already exists"):
        image.unpack(layout, "latest", tmp_path / "exists")
    # A blob corrupted on disk: the unpack fails and leaves no bundle behind.
    layer = layout.blob_path(b.layers[0]["digest"])
    data = bytearray(layer.read_bytes())
    data[-20] ^= 0xFF
    layer.chmod(0o644)
    layer.write_bytes(bytes(data))
    with pytest.raises(OCIError):
        image.unpack(layout, "latest", tmp_path / "bundle")
    assert not (tmp_path / "bundle").exists()


@pytest.mark.parametrize("user,want", [
    ("", (0, 0, [])),
    ("root", (0, 0, [100])),
    ("1000", (1000, 1000, [27, 100])),
    ("2000", (2000, 0, [])),
    ("1000:50", (1000, 50, [])),
    ("app", (1000, 1000, [27, 100])),
    ("app:staff", (1000, 50, [])),
    ("0:staff", (0, 50, [])),
])
def test_resolve_user(tmp_path, user, want):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")
    (tmp_path / "etc" / "group").write_text("root:x:0:\nstaff:x:50:\nsudo:x:27:app\nusers:x:100:root,app\napp:x:1000:\n")
    assert runtime.resolve_user(user, tmp_path) == want


@pytest.mark.parametrize("user,msg", [("ghost", "unable to find user ghost"), ("root:ghosts", "unable to find group ghosts")])
def test_resolve_user_errors(tmp_path, user, msg):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (tmp_path / "etc" / "group").write_text("root:x:0:\n")
    with pytest.raises(InvalidDocument, match=msg):
        runtime.resolve_user(user, tmp_path)


def test_default_spec_is_runcs(tmp_path):
    subprocess.run([require("runc"), "spec", "--bundle", str(tmp_path)], check=True)
    assert json.loads((tmp_path / "config.json").read_text()) == runtime.default_spec()
    assert_valid(runtime.default_spec(), "runtime-config")


def test_spec_for_image_needs_a_command(tmp_path):
    with pytest.raises(InvalidDocument, match="neither Entrypoint nor Cmd"):
        runtime.spec_for_image({"config": {}}, tmp_path)
    spec = runtime.spec_for_image({"config": {"Entrypoint": ["/bin/app"], "Cmd": ["-v"], "Labels": {"a": "b"},
                                              "ExposedPorts": {"80/tcp": {}}, "StopSignal": "SIGQUIT"},
                                   "os": "linux", "architecture": "amd64"}, tmp_path)
    assert spec["process"]["args"] == ["/bin/app", "-v"]
    assert spec["process"]["env"][0].startswith("PATH=")
    assert spec["annotations"]["org.opencontainers.image.exposedPorts"] == "80/tcp"
    assert spec["annotations"]["org.opencontainers.image.stopSignal"] == "SIGQUIT"
    assert spec["annotations"]["a"] == "b"
