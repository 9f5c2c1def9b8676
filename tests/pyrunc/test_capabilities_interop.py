"""capabilities and rlimits against runc 1.1: the same config gives the same /proc/self/status capability sets
and the same limits, whether runc's init applies it or ours (in a forked child, as the container init does)."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest

from pyrunc import capabilities, rlimits
from tests.support import require

CASES = {
    "runc-spec-default": {"bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                          "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                          "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                          "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]},
    "unknown-and-partial-ambient": {"bounding": ["CAP_KILL", "CAP_CHOWN", "CAP_FOO"],
                                    "effective": ["CAP_KILL"], "permitted": ["CAP_KILL", "CAP_CHOWN"],
                                    "inheritable": ["CAP_CHOWN"],
                                    "ambient": ["CAP_KILL", "CAP_CHOWN"]},
    "none": None,
}
RLIMITS = [{"type": "RLIMIT_NOFILE", "hard": 512, "soft": 256}, {"type": "RLIMIT_CORE", "hard": 4096, "soft": 0},
           {"type": "RLIMIT_LOCKS", "hard": 77, "soft": 66}]
FIELDS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")


def parse_status(text: str) -> dict:
    return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines()) if k in FIELDS}


def limit_lines(text: str) -> list[str]:
    keep = ("Max open files", "Max core file size", "Max file locks")
    return sorted(" ".join(line.split()) for line in text.splitlines() if line.startswith(keep))


def run_runc(tmp_path, caps, check=True) -> tuple[dict, list[str], str]:
    runc = require("runc")
    bundle = tmp_path
    subprocess.run([runc, "spec"], cwd=bundle, check=True)
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["terminal"] = False
    config["process"]["args"] = ["sh", "-c", "cat /proc/self/status; echo ---; cat /proc/self/limits"]
    config["process"]["rlimits"] = RLIMITS
    if caps is None:
        config["process"].pop("capabilities", None)
    else:
        config["process"]["capabilities"] = caps
    (bundle / "config.json").write_text(json.dumps(config))
    cid = f"pyrunc-caps-{uuid.uuid4().hex[:10]}"
    try:
        r = subprocess.run([runc, "--root", str(tmp_path / "runc-root"), "run", cid], cwd=bundle,
                           capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    finally:
        subprocess.run([runc, "--root", str(tmp_path / "runc-root"), "delete", "-f", cid], capture_output=True)
    assert r.returncode == 0 or not check, r.stderr
    status, _, limits = r.stdout.partition("---\n")
    return parse_status(status), limit_lines(limits), r.stderr


def ours(caps) -> tuple[dict, list[str]]:
    """Apply in a forked child as the container init does, then exec the same shell command as in runc's case."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(w, 1)
            rlimits.apply(RLIMITS)
            capabilities.apply_bounding(caps)
            capabilities.set_keepcaps(True)
            os.setresuid(0, 0, 0)
            capabilities.set_keepcaps(False)
            capabilities.apply(caps)
            os.execv("/bin/busybox", ["sh", "-c", "cat /proc/self/status; echo ---; cat /proc/self/limits"])
        except BaseException as e:  # never return into pytest
            os.write(1, f"ERROR {type(e).__name__}: {e}".encode())
        os._exit(1)
    os.close(w)
    with os.fdopen(r) as f:
        text = f.read()
    os.waitpid(pid, 0)
    assert not text.startswith("ERROR"), text
    status, _, limits = text.partition("---\n")
    return parse_status(status), limit_lines(limits)


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_sets_and_limits_as_runc(tmp_path, busybox_rootfs, case):
    caps = CASES[case]
    runc_status, runc_limits, stderr = run_runc(tmp_path, caps)
    our_status, our_limits = ours(caps)
    assert our_status == runc_status
    assert our_limits == runc_limits
    unknown = capabilities.validate(caps)
    if unknown:
        assert capabilities.warning(unknown) in stderr


def test_inheritable_outside_bounding_fails_in_both(tmp_path, busybox_rootfs):
    # The kernel refuses an inheritable cap outside the bounding set: runc fails, and so do we, with its words.
    caps = {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"],
            "inheritable": ["CAP_SYS_ADMIN"]}
    _, _, stderr = run_runc(tmp_path, caps, check=False)
    assert "unable to apply caps: operation not permitted" in stderr
    with pytest.raises(AssertionError, match="RuntimeFailure.*unable to apply caps: operation not permitted"):
        ours(caps)
