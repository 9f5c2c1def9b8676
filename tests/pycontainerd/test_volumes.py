"""pycontainerd.volumes: the local volume store and docker's -v/--mount/--tmpfs parsing."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from pycontainerd import errdefs
from pycontainerd.volumes import (ANONYMOUS_LABEL, MountSpec, VolumeStore, check_duplicates, parse_mount,
                                  parse_tmpfs, parse_volume)

CID_A = "a" * 64
CID_B = "b" * 64


@pytest.fixture
def store(tmp_path: Path) -> VolumeStore:
    return VolumeStore(tmp_path / "root")


def test_create_inspect_ls_rm(store: VolumeStore, tmp_path: Path) -> None:
    doc = store.create("data", labels={"tier": "db"})
    assert set(doc) == {"CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options", "Scope"}
    assert doc["Name"] == "data" and doc["Driver"] == "local" and doc["Scope"] == "local"
    assert doc["Mountpoint"] == str(tmp_path / "root" / "volumes" / "data" / "_data")
    assert Path(doc["Mountpoint"]).is_dir()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", doc["CreatedAt"])
    assert doc["Labels"] == {"tier": "db"} and doc["Options"] == {}
    assert store.inspect("data") == doc
    assert store.create("data") == doc  # idempotent, as docker
    anon = store.create()
    assert re.fullmatch(r"[0-9a-f]{64}", anon["Name"]) and ANONYMOUS_LABEL in anon["Labels"]
    assert [v["Name"] for v in store.ls()] == sorted(["data", anon["Name"]])
    assert [v["Name"] for v in store.ls(label="tier=db")] == ["data"]
    assert [v["Name"] for v in store.ls(label="tier=web")] == []
    store.rm("data")
    assert not (tmp_path / "root" / "volumes" / "data").exists()
    with pytest.raises(errdefs.NotFound, match=r"^get data: no such volume$"):
        store.inspect("data")
    with pytest.raises(errdefs.NotFound, match=r"^get data: no such volume$"):
        store.rm("data")
    store.rm("data", force=True)  # -f on a missing volume is fine
    # persisted: a new store on the same root sees the same volume
    assert VolumeStore(tmp_path / "root").inspect(anon["Name"]) == anon


@pytest.mark.parametrize("name,driver,options,exc,message", [
    ("a", "local", None, errdefs.InvalidArgument, 'create a: "a" includes invalid characters for a local volume name'),
    ("-x", "local", None, errdefs.InvalidArgument, 'create -x: "-x" includes invalid characters'),
    ("a/b", "local", None, errdefs.InvalidArgument, "If you intended to pass a host directory, use absolute path"),
    ("ok", "nfs", None, errdefs.NotFound, 'error looking up volume plugin nfs: plugin "nfs" not found'),
    ("ok", "local", {"bogus": "1"}, errdefs.InvalidArgument, 'create ok: invalid option key: "bogus"'),
])
def test_create_errors(store: VolumeStore, name, driver, options, exc, message) -> None:
    with pytest.raises(exc) as info:
        store.create(name, driver=driver, options=options)
    assert message in str(info.value)
    assert store.ls() == []


def test_in_use_refused_and_released(store: VolumeStore) -> None:
    store.create("shared")
    store.acquire("shared", CID_A)
    store.acquire("shared", CID_B)
    assert store.users("shared") == [CID_A, CID_B]
    with pytest.raises(errdefs.FailedPrecondition) as info:
        store.rm("shared", force=True)
    assert str(info.value) == f"remove shared: volume is in use - [{CID_A}, {CID_B}]"
    assert store.ls(dangling=True) == []
    store.release("shared", CID_A)
    assert store.release_all(CID_B) == ["shared"]
    assert [v["Name"] for v in store.ls(dangling=True)] == ["shared"]
    store.rm("shared")
    assert store.ls() == []
    with pytest.raises(errdefs.NotFound):
        store.acquire("shared", CID_A)


def test_prune(store: VolumeStore) -> None:
    named = store.create("named")["Name"]
    anon = store.create()
    busy = store.create()["Name"]
    store.acquire(busy, CID_A)
    Path(anon["Mountpoint"], "blob").write_bytes(b"x" * 5000)
    removed, reclaimed = store.prune()
    assert removed == [anon["Name"]] and reclaimed == 5000  # docker 23+: anonymous only
    assert {v["Name"] for v in store.ls()} == {named, busy}
    removed, _ = store.prune(all=True)
    assert removed == [named]
    assert [v["Name"] for v in store.ls()] == [busy]


def test_seed_copies_image_content_once(store: VolumeStore, tmp_path: Path) -> None:
    src = tmp_path / "image" / "var" / "lib" / "app"
    (src / "sub").mkdir(parents=True)
    (src / "conf").write_text("k=v\n")
    os.chown(src / "conf", 1234, 5678)
    os.chmod(src / "conf", 0o640)
    os.setxattr(src / "conf", "user.origin", b"image")
    os.symlink("conf", src / "link")
    os.chmod(src / "sub", 0o711)
    os.chown(src, 42, 43)
    os.chmod(src, 0o750)
    doc = store.create("seeded")
    assert store.seed("seeded", src) is True
    data = Path(doc["Mountpoint"])
    st = os.stat(data / "conf")
    assert (data / "conf").read_text() == "k=v\n"
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1234, 5678, 0o640)
    assert os.getxattr(data / "conf", "user.origin") == b"image"
    assert os.readlink(data / "link") == "conf"
    assert os.stat(data / "sub").st_mode & 0o7777 == 0o711
    root_st = os.stat(data)
    assert (root_st.st_uid, root_st.st_gid, root_st.st_mode & 0o7777) == (42, 43, 0o750)
    # only on first use: changed data is not overwritten by a second seed
    (data / "conf").write_text("changed\n")
    (src / "new").write_text("n")
    assert store.seed("seeded", src) is False
    assert (data / "conf").read_text() == "changed\n" and not (data / "new").exists()
    # a volume that already has content is never seeded
    other = store.create("prefilled")
    Path(other["Mountpoint"], "mine").write_text("1")
    assert store.seed("prefilled", src) is False
    assert os.listdir(other["Mountpoint"]) == ["mine"]
    # a target missing in the image: nothing copied, the volume stays usable
    assert store.seed(store.create("empty")["Name"], tmp_path / "nope") is False


def test_resolve_named_anonymous_bind_tmpfs(store: VolumeStore, tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    (rootfs / "data").mkdir(parents=True)
    (rootfs / "data" / "seed.txt").write_text("from image")
    (rootfs / "cache").mkdir()
    (rootfs / "cache" / "c").write_text("c")
    host = tmp_path / "host"
    host.mkdir()
    mounts = [parse_volume("web-data:/data"), parse_volume(f"{host}:/srv:ro"), parse_tmpfs("/run:size=64m"),
              parse_mount("type=volume,target=/cache,volume-nocopy")]
    oci = store.resolve(mounts, CID_A, image_volumes=["/data", "/logs/"], rootfs=rootfs)
    by_dest = {m["destination"]: m for m in oci}
    assert set(by_dest) == {"/data", "/srv", "/run", "/cache", "/logs"}
    web = store.inspect("web-data")
    assert by_dest["/data"] == {"destination": "/data", "type": "bind", "source": web["Mountpoint"],
                                "options": ["rbind", "rprivate"]}
    assert Path(web["Mountpoint"], "seed.txt").read_text() == "from image"
    assert by_dest["/srv"] == {"destination": "/srv", "type": "bind", "source": str(host),
                               "options": ["rbind", "rprivate", "ro"]}
    assert by_dest["/run"] == {"destination": "/run", "type": "tmpfs", "source": "tmpfs",
                               "options": ["nosuid", "nodev", "noexec", "size=64m"]}
    assert os.listdir(by_dest["/cache"]["source"]) == []  # volume-nocopy
    anon = [v for v in store.ls() if ANONYMOUS_LABEL in v["Labels"]]
    assert len(anon) == 2  # /cache and the image's /logs; /data was covered by -v
    assert all(store.users(v["Name"]) == [CID_A] for v in store.ls())
    assert sorted(store.release_all(CID_A)) == sorted(v["Name"] for v in store.ls())
    # data outlives the container: a second container sees it, not a re-seed
    Path(web["Mountpoint"], "seed.txt").write_text("written by container A")
    store.resolve([parse_volume("web-data:/data")], CID_B, rootfs=rootfs)
    assert Path(web["Mountpoint"], "seed.txt").read_text() == "written by container A"


def test_resolve_releases_on_failure(store: VolumeStore, tmp_path: Path) -> None:
    bad = MountSpec("volume", "in-use", "/x")
    store.create("in-use")
    boom = MountSpec("volume", "bad name!", "/y")  # not validated: create() refuses it
    with pytest.raises(errdefs.InvalidArgument):
        store.resolve([bad, boom], CID_A)
    assert store.users("in-use") == []


def test_v_creates_missing_host_dir(tmp_path: Path, store: VolumeStore) -> None:
    host = tmp_path / "made" / "here"
    m = parse_volume(f"{host}:/x")
    assert m.type == "bind" and not host.exists()
    store.resolve([m], CID_A)
    assert host.is_dir()


@pytest.mark.parametrize("raw,expected", [
    ("/data", MountSpec("volume", "", "/data", create_host_path=True)),
    ("vol:/data", MountSpec("volume", "vol", "/data", create_host_path=True)),
    ("vol:/data:ro", MountSpec("volume", "vol", "/data", readonly=True, create_host_path=True)),
    ("vol:/data:ro,nocopy", MountSpec("volume", "vol", "/data", readonly=True, nocopy=True, create_host_path=True)),
    ("/h:/c", MountSpec("bind", "/h", "/c", create_host_path=True)),
    ("/h:/c:rw,rshared", MountSpec("bind", "/h", "/c", propagation="rshared", create_host_path=True)),
    ("/h:/c/:z", MountSpec("bind", "/h", "/c", create_host_path=True)),
])
def test_parse_volume(raw, expected) -> None:
    assert parse_volume(raw) == expected


@pytest.mark.parametrize("raw,message", [
    ("", "invalid volume specification: ''"),
    (":/x", "invalid volume specification: ':/x'"),
    ("a:b:c:d", "invalid volume specification: 'a:b:c:d'"),
    ("/data:ro", "invalid volume specification: '/data:ro'"),
    ("vol:/data:rw,ro", "invalid mode: rw,ro"),
    ("vol:/data:bogus", "invalid mode: bogus"),
    ("vol:rel", "invalid volume specification: 'vol:rel': invalid mount config for type \"volume\": "
                "invalid mount path: 'rel' mount path must be absolute"),
    ("/h:/", "invalid volume specification: '/h:/': invalid specification: destination can't be '/'"),
    ("vol:/d:rshared", "invalid volume specification: 'vol:/d:rshared'"),
    ("bad name:/d", '"bad name" includes invalid characters for a local volume name'),
])
def test_parse_volume_errors(raw, message) -> None:
    with pytest.raises(errdefs.InvalidArgument) as info:
        parse_volume(raw)
    assert message in str(info.value)


def test_parse_mount(tmp_path: Path) -> None:
    src = str(tmp_path)
    assert parse_mount(f"type=bind,source={src},target=/app,readonly") == \
        MountSpec("bind", src, "/app", readonly=True)
    assert parse_mount(f"type=bind,src={src},dst=/app,ro=false,bind-propagation=rslave") == \
        MountSpec("bind", src, "/app", propagation="rslave")
    assert parse_mount("type=volume,source=v1,destination=/d,volume-label=a=b,volume-opt=type=tmpfs") == \
        MountSpec("volume", "v1", "/d", volume_labels={"a": "b"}, volume_options={"type": "tmpfs"})
    assert parse_mount("type=tmpfs,target=/t,tmpfs-size=65536k,tmpfs-mode=1777") == \
        MountSpec("tmpfs", "", "/t", tmpfs_options=["size=64m", "mode=1777"])
    assert parse_mount('"type=volume","target=/x,y"').target == "/x,y"  # a CSV field may hold a comma
    assert parse_tmpfs("/run") == MountSpec("tmpfs", "", "/run")
    assert parse_tmpfs("/run:ro,size=1g,mode=755") == MountSpec("tmpfs", "", "/run", readonly=True,
                                                                 tmpfs_options=["size=1g", "mode=755"])


@pytest.mark.parametrize("raw,message", [
    ("type=bind,source=/definitely/not/here,target=/x",
     'invalid mount config for type "bind": bind source path does not exist: /definitely/not/here'),
    ("type=bind,target=/x", 'invalid mount config for type "bind": field Source must not be empty'),
    ("type=bind,source=rel,target=/x", "invalid mount config for type \"bind\": invalid mount path: 'rel'"),
    ("type=tmpfs,source=/tmp,target=/x", 'invalid mount config for type "tmpfs": field Source must not be specified'),
    ("type=nfs,target=/x", 'invalid mount config for type "nfs": mount type unknown'),
    ("type=volume,target=rel", "invalid mount config for type \"volume\": invalid mount path: 'rel' mount path must be absolute"),
    ("type=volume,target=/", "invalid specification: destination can't be '/'"),
    ("source=v,target=/x", "type is required"),
    ("type=volume,source=v", "target is required"),
    ("type=volume,target=/x,bogus", "invalid field 'bogus' must be a key=value pair"),
    ("type=volume,target=/x,foo=bar", "unexpected key 'foo' in 'foo=bar'"),
    ("type=volume,target=/x,readonly=maybe", "invalid value for readonly: maybe"),
    ("type=tmpfs,target=/x,tmpfs-size=lots", "invalid value for tmpfs-size: lots"),
    ("type=tmpfs,target=/x,tmpfs-mode=9", "invalid value for tmpfs-mode: 9"),
    ("type=volume,target=/x,volume-opt=novalue", "invalid value for volume-opt: novalue"),
    ("type=bind,source=/tmp,target=/x,volume-nocopy", "cannot mix 'volume-*' options with mount type 'bind'"),
    ("type=volume,target=/x,bind-propagation=rshared", "cannot mix 'bind-*' options with mount type 'volume'"),
    ("type=volume,target=/x,tmpfs-size=1m", "cannot mix 'tmpfs-*' options with mount type 'volume'"),
    ("type=bind,source=/tmp,target=/x,bind-propagation=sideways", "invalid value for bind-propagation: sideways"),
])
def test_parse_mount_errors(raw, message) -> None:
    with pytest.raises(errdefs.InvalidArgument) as info:
        parse_mount(raw)
    assert str(info.value) == message or message in str(info.value)


def test_parse_tmpfs_and_duplicate_errors() -> None:
    with pytest.raises(errdefs.InvalidArgument, match="mount path must be absolute"):
        parse_tmpfs("run")
    with pytest.raises(errdefs.InvalidArgument, match=r"^Duplicate mount point: /a$"):
        check_duplicates([parse_tmpfs("/a"), parse_volume("vv:/a/")])
    with pytest.raises(errdefs.NotFound, match='plugin "x" not found'):
        parse_mount("type=volume,target=/x,volume-driver=x")


def test_metadata_is_json_on_disk(store: VolumeStore, tmp_path: Path) -> None:
    store.create("persisted", labels={"k": "v"})
    meta = json.loads((tmp_path / "root" / "volumes" / "persisted" / "volume.json").read_text())
    assert meta["Labels"] == {"k": "v"} and meta["seeded"] is False


def test_host_config_round_trip(store: VolumeStore, tmp_path: Path) -> None:
    from pycontainerd.volumes import docker_mounts, mount_from_docker, mount_to_docker, mounts_from_host_config

    flags = [parse_mount(f"type=bind,source={tmp_path},target=/src,readonly,bind-propagation=rslave"),
             parse_mount("type=volume,source=named,target=/v,volume-nocopy,volume-label=a=b,volume-opt=o=size=1m"),
             parse_mount("type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=700")]
    docs = [mount_to_docker(m) for m in flags]
    assert docs[0] == {"Type": "bind", "Source": str(tmp_path), "Target": "/src", "ReadOnly": True,
                       "BindOptions": {"Propagation": "rslave"}}
    assert docs[1]["VolumeOptions"] == {"NoCopy": True, "Labels": {"a": "b"},
                                        "DriverConfig": {"Name": "local", "Options": {"o": "size=1m"}}}
    assert docs[2]["TmpfsOptions"] == {"SizeBytes": 1048576, "Mode": 0o700}
    assert [mount_from_docker(d) for d in docs] == flags
    hc = {"Binds": ["data:/data:ro"], "Mounts": docs, "Tmpfs": {"/run": "size=64m", "/tmp2": ""}}
    specs = mounts_from_host_config(hc)
    assert [m.target for m in specs] == ["/data", "/src", "/v", "/t", "/run", "/tmp2"]
    oci = store.resolve(specs, CID_A, image_volumes=["/anon"])
    inspect = docker_mounts(store, specs, oci)
    assert inspect[0] == {"Type": "volume", "Name": "data", "Source": store.inspect("data")["Mountpoint"],
                          "Destination": "/data", "Driver": "local", "Mode": "z", "RW": False, "Propagation": ""}
    assert inspect[1]["Type"] == "bind" and inspect[1]["Propagation"] == "rslave" and inspect[1]["RW"] is False
    assert inspect[-1]["Type"] == "volume" and inspect[-1]["Destination"] == "/anon" and len(inspect[-1]["Name"]) == 64
    with pytest.raises(errdefs.InvalidArgument, match="^Duplicate mount point: /data$"):
        mounts_from_host_config({"Binds": ["a1:/data"], "Tmpfs": {"/data": ""}})


def test_release_all_removes_anonymous_volumes_with_rm_v(store: VolumeStore) -> None:
    named = store.create("keep-me")["Name"]
    anon = store.create()["Name"]
    shared_anon = store.create()["Name"]
    for name in (named, anon, shared_anon):
        store.acquire(name, CID_A)
    store.acquire(shared_anon, CID_B)
    assert store.release_all(CID_A, remove_anonymous=True) == sorted([named, anon, shared_anon])
    assert {v["Name"] for v in store.ls()} == {named, shared_anon}  # named stays; a shared anonymous one too


def test_host_config_fields_from_flags(tmp_path: Path) -> None:
    from pycontainerd.volumes import host_config_fields, mounts_from_host_config

    hc, config_volumes = host_config_fields(
        volumes=["data:/data:ro", "/anon", f"{tmp_path}:/host"], mounts=["type=tmpfs,target=/scratch"],
        tmpfs=["/run:size=1m"], image_volumes={"/var/lib/db": {}})
    assert hc == {"Binds": ["data:/data:ro", f"{tmp_path}:/host"], "Tmpfs": {"/run": "size=1m"},
                  "Mounts": [{"Type": "tmpfs", "Source": "", "Target": "/scratch"}]}
    assert config_volumes == {"/var/lib/db": {}, "/anon": {}}
    assert [m.target for m in mounts_from_host_config(hc)] == ["/data", "/host", "/scratch", "/run"]
    assert host_config_fields() == ({"Binds": None, "Tmpfs": None}, {})
    with pytest.raises(errdefs.InvalidArgument, match="^Duplicate mount point: /x$"):
        host_config_fields(volumes=["a1:/x"], tmpfs=["/x"])
    with pytest.raises(errdefs.InvalidArgument, match="bind source path does not exist: /no/such"):
        host_config_fields(mounts=["type=bind,source=/no/such,target=/x"])
