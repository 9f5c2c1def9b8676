"""seccomp against runc 1.1: the same profile gives the same results to the same busybox commands, whether
runc's init loaded it or ours (forked child: install, then exec)."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest

from pyrunc import seccomp
from tests.pyrunc.conftest import same
from tests.support import require

SCRIPT = "uname >/dev/null 2>&1; echo uname=$?; kill -0 $$ 2>/dev/null; echo kill0=$?; " \
         "kill -CONT $$ 2>/dev/null; echo kcont=$?; nice -n 3 true 2>/dev/null; echo nice=$?"
PROFILE = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "syscalls": [
        {"names": ["uname", "no_such_call"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
        # kill(pid, 0) refused, other signals allowed
        {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]},
        {"names": ["setpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
        {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
    ],
}


def test_same_outcomes_as_runc(tmp_path, busybox_rootfs):
    runc = require("runc")
    subprocess.run([runc, "spec"], cwd=tmp_path, check=True)
    config = json.loads((tmp_path / "config.json").read_text())
    config["process"]["terminal"] = False
    config["process"]["args"] = ["sh", "-c", SCRIPT]
    config["linux"]["seccomp"] = PROFILE
    (tmp_path / "config.json").write_text(json.dumps(config))
    cid = f"pyrunc-seccomp-{uuid.uuid4().hex[:10]}"
    try:
        theirs = subprocess.run([runc, "--root", str(tmp_path / "runc-root"), "run", cid], cwd=tmp_path,
                                capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    finally:
        subprocess.run([runc, "--root", str(tmp_path / "runc-root"), "delete", "-f", cid], capture_output=True)
    assert theirs.returncode == 0, theirs.stderr

    assert seccomp.validate(PROFILE) == ["no_such_call"]
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(w, 1)
            seccomp.install(PROFILE)
            path = ":".join(str(busybox_rootfs / d) for d in ("bin", "sbin", "usr/bin", "usr/sbin"))
            os.execve("/bin/busybox", ["sh", "-c", SCRIPT], {"PATH": path})  # the rootfs' applets, as in runc
        finally:
            os._exit(127)
    os.close(w)
    with os.fdopen(r) as f:
        mine = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert mine == theirs.stdout
    assert "kill0=1" in mine and "kcont=0" in mine  # the argument condition did its work


# Both places runc loads the filter: without noNewPrivileges before the capabilities are dropped (loading it needs
# CAP_SYS_ADMIN then, which runc's default config drops), with it right before execve.  A profile refusing capset
# tells the two apart: loaded early it stops the init's own capability switch, loaded late it does not.
@pytest.mark.parametrize("nnp", [False, True])
@pytest.mark.parametrize("deny_capset", [False, True])
def test_seccomp_order_matches_runc(env, nnp, deny_capset):
    profile = json.loads(json.dumps(PROFILE))
    if deny_capset:
        profile["syscalls"].append({"names": ["capset"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1})
    b = env.bundle("sh", "-c", SCRIPT)
    b.edit(lambda d: (d["process"].__setitem__("noNewPrivileges", nnp),
                      d["linux"].__setitem__("seccomp", profile)))
    theirs, mine = env.both(b)
    same(theirs, mine)
    if not deny_capset or nnp:
        assert mine.rc == 0 and "kill0=1" in mine.out, mine.err
    else:
        assert mine.rc != 0 and "operation not permitted" in mine.err.lower(), mine.err
