"""The container's config.json from image config + run options, as containerd/nerdctl generate it."""

from __future__ import annotations

import pytest

from pycontainerd import errdefs, ocispec
from pycontainerd.ocispec import SpecOptions, generate
from tests.support import assert_valid, make_busybox_rootfs

IMAGE = {"architecture": "amd64", "os": "linux",
         "config": {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"], "Entrypoint": ["/entry"],
                    "Cmd": ["serve", "--port", "80"], "WorkingDir": "/srv", "User": "app",
                    "StopSignal": "SIGQUIT"},
         "rootfs": {"type": "layers", "diff_ids": []}}


@pytest.fixture
def rootfs(tmp_path):
    root = make_busybox_rootfs(tmp_path / "rootfs")
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\napp:x:1000:\nwheel:x:10:app\n")
    return root


def test_default_spec_is_containerds(rootfs):
    spec = generate(IMAGE, SpecOptions(), "default", "abcdef0123456789", rootfs=rootfs)
    assert_valid(spec, "runtime-config")
    caps = spec["process"]["capabilities"]
    assert set(caps) == {"bounding", "effective", "permitted"}  # containerd sets no ambient/inheritable
    assert caps["bounding"] == ocispec.DEFAULT_CAPS and len(caps["bounding"]) == 14
    assert "CAP_SYS_ADMIN" not in caps["effective"] and "CAP_NET_RAW" in caps["effective"]
    assert [m["destination"] for m in spec["mounts"]] == ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue",
                                                          "/sys", "/run"]
    assert spec["linux"]["cgroupsPath"] == "/default/abcdef0123456789"
    assert "/proc/kcore" in spec["linux"]["maskedPaths"] and "/sys/firmware" in spec["linux"]["maskedPaths"]
    assert spec["linux"]["readonlyPaths"] == ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                              "/proc/sysrq-trigger"]
    assert {n["type"] for n in spec["linux"]["namespaces"]} == {"pid", "ipc", "uts", "mount", "network"}
    assert spec["linux"]["resources"]["devices"] == [{"allow": False, "access": "rwm"}]
    assert spec["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
    assert spec["process"]["noNewPrivileges"] is True
    assert spec["root"] == {"path": "rootfs"}
    # the image's config: entrypoint + cmd, env (+HOSTNAME), workdir, user by name, stop signal
    assert spec["process"]["args"] == ["/entry", "serve", "--port", "80"]
    assert spec["process"]["env"] == ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C", "HOSTNAME=abcdef012345"]
    assert spec["hostname"] == "abcdef012345"
    assert spec["process"]["cwd"] == "/srv"
    assert spec["process"]["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [10]}
    assert spec["annotations"][ocispec.STOP_SIGNAL_ANNOTATION] == "SIGQUIT"
    assert spec["process"]["terminal"] is False


def test_overrides_as_docker_run(rootfs):
    opts = SpecOptions(args=["echo", "hi"], env=["LANG=fr", "NEW=1"], workdir="/tmp", user="0:10", hostname="h",
                       tty=True)
    spec = generate(IMAGE, opts, "ns1", "c1", rootfs=rootfs)
    assert spec["process"]["args"] == ["/entry", "echo", "hi"]  # args replace Cmd only
    assert spec["process"]["env"] == ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=fr", "HOSTNAME=h", "TERM=xterm",
                                      "NEW=1"]
    assert spec["process"]["cwd"] == "/tmp" and spec["hostname"] == "h" and spec["process"]["terminal"] is True
    assert spec["process"]["user"] == {"uid": 0, "gid": 10}
    spec = generate(IMAGE, SpecOptions(entrypoint=["/bin/sh"]), "ns1", "c1", rootfs=rootfs)
    assert spec["process"]["args"] == ["/bin/sh"]  # --entrypoint resets the image's Cmd
    spec = generate(IMAGE, SpecOptions(entrypoint=[""], args=["ls"]), "ns1", "c1", rootfs=rootfs)
    assert spec["process"]["args"] == ["ls"]
    with pytest.raises(errdefs.InvalidArgument, match="no command"):
        generate({"config": {}}, SpecOptions(), "ns1", "c1")
    with pytest.raises(errdefs.InvalidArgument, match="absolute"):
        generate(IMAGE, SpecOptions(workdir="rel"), "ns1", "c1", rootfs=rootfs)


def test_user_names_resolved_later_without_rootfs(rootfs):
    spec = generate(IMAGE, SpecOptions(), "default", "c1")
    assert spec["annotations"][ocispec.USER_ANNOTATION] == "app"
    ocispec.finalize(spec, rootfs)
    assert spec["process"]["user"]["uid"] == 1000 and ocispec.USER_ANNOTATION not in spec["annotations"]
    spec = generate(IMAGE, SpecOptions(user="nosuch"), "default", "c1")
    with pytest.raises(errdefs.InvalidArgument, match="unable to find user nosuch"):
        ocispec.finalize(spec, rootfs)
    spec = generate({"config": {"Cmd": ["sh"]}}, SpecOptions(user="5:6"), "default", "c1")
    assert spec["process"]["user"] == {"uid": 5, "gid": 6} and "annotations" not in spec


def test_resources_readonly_and_caps():
    img = {"config": {"Cmd": ["sh"]}}
    spec = generate(img, SpecOptions(cpus=1.5, memory="64m", pids_limit=20, read_only=True,
                                     cap_add=["net_admin", "CAP_SYS_TIME"], cap_drop=["NET_RAW", "chown"]),
                    "default", "c1")
    assert_valid(spec, "runtime-config")
    res = spec["linux"]["resources"]
    assert res["cpu"] == {"quota": 150000, "period": 100000}
    assert res["memory"] == {"limit": 64 << 20} and res["pids"] == {"limit": 20}
    assert spec["root"]["readonly"] is True
    caps = spec["process"]["capabilities"]["effective"]
    assert "CAP_NET_ADMIN" in caps and "CAP_SYS_TIME" in caps
    assert "CAP_NET_RAW" not in caps and "CAP_CHOWN" not in caps and "CAP_KILL" in caps
    assert generate(img, SpecOptions(cap_drop=["ALL"], cap_add=["KILL"]), "d", "c")["process"]["capabilities"][
        "bounding"] == ["CAP_KILL"]
    assert generate(img, SpecOptions(cap_add=["ALL"], cap_drop=["MKNOD"]), "d", "c")["process"]["capabilities"][
        "bounding"] == [c for c in ocispec.current_caps() if c != "CAP_MKNOD"]
    with pytest.raises(errdefs.InvalidArgument, match="invalid capability"):
        generate(img, SpecOptions(cap_add=["FLY"]), "d", "c")
    with pytest.raises(errdefs.InvalidArgument, match="Minimum memory"):
        generate(img, SpecOptions(memory="1k"), "d", "c")
    with pytest.raises(errdefs.InvalidArgument, match="invalid size"):
        generate(img, SpecOptions(memory="lots"), "d", "c")


def test_privileged():
    spec = generate({"config": {"Cmd": ["sh"]}}, SpecOptions(privileged=True), "default", "c1")
    assert_valid(spec, "runtime-config")
    assert spec["process"]["capabilities"]["bounding"] == ocispec.current_caps()
    assert "CAP_SYS_ADMIN" in ocispec.current_caps() and set(ocispec.current_caps()) <= set(ocispec.ALL_CAPS)
    assert spec["linux"]["maskedPaths"] == [] and spec["linux"]["readonlyPaths"] == []
    assert spec["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    assert any(d["path"] == "/dev/null" for d in spec["linux"]["devices"])
    sys_mount = next(m for m in spec["mounts"] if m["destination"] == "/sys")
    assert "ro" not in sys_mount["options"]


def test_init_needs_tini(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(errdefs.FailedPrecondition, match="--init: not supported yet"):
        generate({"config": {"Cmd": ["sh"]}}, SpecOptions(init=True), "default", "c1")
    tini = tmp_path / "tini"
    tini.write_text("#!/bin/sh\n")
    tini.chmod(0o755)
    spec = generate({"config": {"Cmd": ["sh"]}}, SpecOptions(init=True), "default", "c1")
    assert spec["process"]["args"] == [ocispec.INIT_PATH, "--", "sh"]
    assert {"destination": ocispec.INIT_PATH, "type": "bind", "source": str(tini),
            "options": ["bind", "ro"]} in spec["mounts"]


def test_env_merge_rules(monkeypatch):
    monkeypatch.setenv("FROM_HOST", "yes")
    monkeypatch.delenv("UNSET_VAR", raising=False)
    assert ocispec.merge_env(["A=1", "B=2"], ["B=3", "FROM_HOST", "UNSET_VAR", "C="]) == \
        ["A=1", "B=3", "FROM_HOST=yes", "C="]
