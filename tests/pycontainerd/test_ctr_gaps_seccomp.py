"""Docker's default seccomp profile and --security-opt: the converted profile against what dockerd 20.10.24
wrote (recorded in docker_seccomp_20.10.24.json), the spec against the OCI schema, and containers under
pyrunc and runc where the profile blocks `unshare(CLONE_NEWUSER)` unless unconfined or privileged."""

from __future__ import annotations

import json
import secrets
import uuid
from pathlib import Path

import pytest

from pycontainerd import errdefs, ocispec, seccomp
from pycontainerd.seccomp_opts import (cli_security_opts, compact_json, inspect_security_opt,
                                       parse_security_opts)
from tests.pycontainerd.daemon_fixture import DaemonHandle, default_runtime
from tests.pycontainerd.test_ctr_support import Ctr, busybox_archive, remove_cgroups
from tests.support import assert_valid, require

DOCKER = json.loads((Path(__file__).with_name("docker_seccomp_20.10.24.json")).read_text())
AMD64 = seccomp.Host("amd64", (6, 1))
IMAGE = {"config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]}}


@pytest.mark.parametrize("case", ["default", "cap_add"])
def test_default_profile_is_dockerds(case):
    recorded = DOCKER[case]
    assert seccomp.to_oci(seccomp.default_profile(), recorded["bounding"], AMD64) == recorded["seccomp"]


def test_profile_filters_by_arch_caps_and_kernel():
    profile = seccomp.default_profile()
    arm = seccomp.to_oci(profile, ocispec.DEFAULT_CAPS, seccomp.Host("arm64", (6, 1)))
    assert arm["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    names = [n for r in arm["syscalls"] for n in r["names"]]
    assert "cacheflush" in names and "arch_prctl" not in names and "modify_ldt" not in names
    old = seccomp.to_oci(profile, ocispec.DEFAULT_CAPS, seccomp.Host("amd64", (4, 4)))
    assert ["ptrace"] not in [r["names"] for r in old["syscalls"]]   # minKernel 4.8
    admin = seccomp.to_oci(profile, ocispec.DEFAULT_CAPS + ["CAP_SYS_ADMIN"], AMD64)
    flat = [n for r in admin["syscalls"] for n in r["names"]]
    assert "unshare" in flat and "mount" in flat
    assert not any(r["names"] == ["clone3"] for r in admin["syscalls"])  # excludes: CAP_SYS_ADMIN
    chrootless = seccomp.to_oci(profile, [c for c in ocispec.DEFAULT_CAPS if c != "CAP_SYS_CHROOT"], AMD64)
    assert ["chroot"] not in [r["names"] for r in chrootless["syscalls"]]


def test_spec_seccomp_validates_and_follows_flags(tmp_path):
    spec = ocispec.generate(IMAGE, ocispec.SpecOptions(), "default", "c" * 64)
    assert_valid(spec, "runtime-config")
    assert spec["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    assert spec["process"]["noNewPrivileges"] is True  # containerd's default when the caller says nothing
    for opts in (ocispec.SpecOptions(privileged=True), ocispec.SpecOptions(seccomp="unconfined")):
        assert "seccomp" not in ocispec.generate(IMAGE, opts, "default", "c1")["linux"]
    custom = compact_json('{"defaultAction": "SCMP_ACT_ALLOW",\n "syscalls": [{"name": "mkdir", '
                          '"action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": 0, "valueTwo": 0, '
                          '"op": "SCMP_CMP_EQ"}]}]}')
    spec = ocispec.generate(IMAGE, ocispec.SpecOptions(seccomp=custom, no_new_privileges=False), "default", "c1")
    assert_valid(spec, "runtime-config")
    assert spec["linux"]["seccomp"] == {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]}]}
    assert spec["process"]["noNewPrivileges"] is False
    both = '{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],"archMap":[]}'
    with pytest.raises(errdefs.InvalidArgument, match="^'architectures' and 'archMap' were specified in the "
                       "seccomp profile, use either 'architectures' or 'archMap'$"):
        seccomp.to_oci(json.loads(both.replace('"archMap":[]', '"archMap":[{"architecture":"x"}]')), [])
    with pytest.raises(errdefs.InvalidArgument, match="^'name' and 'names' were specified"):
        seccomp.to_oci({"syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_ERRNO"}]}, [])


def test_security_opt_parsing_as_docker(tmp_path):
    prof = tmp_path / "p.json"
    prof.write_text('{\n\t"defaultAction": "SCMP_ACT_ALLOW",\n\t"syscalls": [ {"names": ["mkdir"], '
                    '"action": "SCMP_ACT_ERRNO", "comment": "a b"} ]\n}\n')
    sent = cli_security_opts([f"seccomp={prof}", "no-new-privileges", "seccomp=unconfined", "apparmor=unconfined"])
    # what docker inspect showed for the same file: the CLI sends it compacted, strings untouched
    assert sent[0] == ('seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],'
                       '"action":"SCMP_ACT_ERRNO","comment":"a b"}]}')
    assert sent[1:] == ["no-new-privileges", "seccomp=unconfined", "apparmor=unconfined"]
    for bad, message in (("foo", 'Invalid --security-opt: "foo"'), ("seccomp", 'Invalid --security-opt: "seccomp"'),
                         ("seccomp=/nonexist.json", "opening seccomp profile (/nonexist.json) failed: open "
                          "/nonexist.json: no such file or directory")):
        with pytest.raises(ValueError) as exc:
            cli_security_opts([bad])
        assert str(exc.value) == message
    assert parse_security_opts(["no-new-privileges:true"]).no_new_privileges is True
    assert parse_security_opts(["no-new-privileges=false"]).no_new_privileges is False
    assert parse_security_opts(["seccomp:unconfined"]).seccomp == "unconfined"
    with pytest.raises(errdefs.InvalidArgument, match='^invalid --security-opt 2: "no-new-privileges:foo"$'):
        parse_security_opts(["no-new-privileges:foo"])
    # docker inspect's HostConfig.SecurityOpt: as sent, label=disable added once for --privileged
    assert inspect_security_opt([], False) is None
    assert inspect_security_opt(["seccomp=unconfined", "no-new-privileges"], True) == [
        "seccomp=unconfined", "no-new-privileges", "label=disable"]
    assert inspect_security_opt(["label=disable"], True) == ["label=disable"]


@pytest.fixture(scope="module", params=["pyrunc", "runc"])
def ctr(request, tmp_path_factory):
    runtime = default_runtime() if request.param == "pyrunc" else require("runc")
    base = tmp_path_factory.mktemp("sec")
    state = Path(f"/tmp/s{secrets.token_hex(3)}")
    state.mkdir(mode=0o700)
    d = DaemonHandle(root=base / "root", state=state, address=str(state / "d.sock"), log=base / "daemon.log",
                     runtime=runtime)
    try:
        d.start()
        c = Ctr(d, "s" + uuid.uuid4().hex[:1])
        assert c("load", "-i", str(busybox_archive(base / "bb"))).status == 0
        yield c
        c.remove_all()
        assert remove_cgroups(c.namespace) == []
    finally:
        d.cleanup()


def test_default_profile_blocks_unshare_unless_unconfined(ctr):
    blocked = ctr("run", "--rm", "--network", "none", "busybox", "unshare", "-U", "true")
    # docker 20.10 printed the same line and status for `docker run --rm busybox unshare -U true`
    assert blocked.status == 1 and blocked.err == "unshare: unshare(0x10000000): Operation not permitted\n", blocked
    for flags in (["--security-opt", "seccomp=unconfined"], ["--privileged"], ["--cap-add", "SYS_ADMIN"]):
        r = ctr("run", "--rm", "--network", "none", *flags, "busybox", "unshare", "-U", "true")
        assert r.status == 0, (flags, r)
    status = ctr("run", "--rm", "--network", "none", "busybox", "grep", "-E", "^(NoNewPrivs|Seccomp):", "/proc/self/status")
    assert status.out == "NoNewPrivs:\t0\nSeccomp:\t2\n", status
    nnp = ctr("run", "--rm", "--network", "none", "--security-opt", "no-new-privileges", "--security-opt", "seccomp=unconfined",
              "busybox", "grep", "-E", "^(NoNewPrivs|Seccomp):", "/proc/self/status")
    assert nnp.out == "NoNewPrivs:\t1\nSeccomp:\t0\n", nnp


def test_custom_profile_file_and_inspect(ctr, tmp_path):
    prof = tmp_path / "p.json"
    prof.write_text('{"defaultAction":"SCMP_ACT_ALLOW",\n "syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}')
    name = "sec" + uuid.uuid4().hex[:6]
    assert ctr("create", "--network", "none", "--name", name, "--security-opt", f"seccomp={prof}", "busybox", "mkdir", "/y").status == 0
    opt = ctr("inspect", "-f", "{{json .HostConfig.SecurityOpt}}", name).out
    assert json.loads(opt) == ['seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],'
                               '"action":"SCMP_ACT_ERRNO"}]}']
    r = ctr("start", "-a", name)
    assert r.status == 1 and r.err == "mkdir: can't create directory '/y': Operation not permitted\n", r
    bad = ctr("run", "--rm", "--network", "none", "--security-opt", "no-new-privileges:foo", "busybox", "true")
    assert bad.status == 125 and bad.err.splitlines()[0] == \
        'pyctr: Error response from daemon: invalid --security-opt 2: "no-new-privileges:foo".', bad
    bad = ctr("run", "--rm", "--network", "none", "--security-opt", "foo", "busybox", "true")
    assert bad.status == 125 and bad.err.splitlines()[0] == 'pyctr: Invalid --security-opt: "foo".', bad
