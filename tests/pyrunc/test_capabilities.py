"""pyrunc.capabilities: each case applies the sets in a forked child and reports /proc/self/status back."""

from __future__ import annotations

import json
import os
import traceback

import pytest

from pyrunc import capabilities
from pyrunc.errors import ConfigError


def in_child(fn) -> dict:
    """Run fn() in a forked child; return what it returned (a JSON-able dict) or raise with its traceback."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            out = {"ok": fn()}
        except BaseException as e:  # report everything: the child must never return into pytest
            out = {"error": f"{type(e).__name__}: {e}", "tb": traceback.format_exc()}
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    out = json.loads(data)
    if "error" in out:
        raise AssertionError(out["error"] + "\n" + out["tb"])
    return out["ok"]


def status() -> dict:
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Uid"):
                fields[key] = value.strip()
    return fields


def mask_of(*names: str) -> str:
    return f"{capabilities.parse(names):016x}"


DEFAULT = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE", "CAP_SETUID", "CAP_SETGID"]


def test_all_follows_the_kernel():
    last = int(open("/proc/sys/kernel/cap_last_cap").read())
    assert len(capabilities.ALL) == last + 1
    assert capabilities.ALL[0] == "CAP_CHOWN" and capabilities.ALL[21] == "CAP_SYS_ADMIN"
    assert capabilities.names(capabilities.parse(["CAP_KILL", "CAP_CHOWN"])) == ["CAP_CHOWN", "CAP_KILL"]
    assert capabilities.parse(["CAP_KILL", "CAP_NOPE"]) == 1 << 5


def test_unknown_names_warn_like_runc_and_strict_raises():
    caps = {"bounding": ["CAP_KILL", "CAP_FOO"], "effective": ["CAP_BAR"]}
    assert capabilities.validate(caps) == ["CAP_BAR", "CAP_FOO"]
    assert capabilities.warning(["CAP_BAR", "CAP_FOO"]) == (
        "ignoring unknown or unavailable capabilities: [CAP_BAR CAP_FOO]")
    with pytest.raises(ConfigError, match=r"process.capabilities.bounding\[1\].*CAP_FOO"):
        capabilities.validate(caps, strict=True)
    with pytest.raises(ConfigError, match="process.capabilities.effective"):
        capabilities.validate({"effective": "CAP_KILL"})
    with pytest.raises(ConfigError, match=r"process.capabilities.permitted\[0\]"):
        capabilities.validate({"permitted": [3]})
    assert capabilities.validate(None) == []


def test_apply_as_root_sets_every_set():
    caps = {s: list(DEFAULT) for s in ("bounding", "effective", "permitted", "inheritable")}
    caps["ambient"] = ["CAP_KILL"]

    def child():
        capabilities.apply(caps)
        return status()

    st = in_child(child)
    want = mask_of(*DEFAULT)
    assert st["CapBnd"] == want
    assert st["CapEff"] == want
    assert st["CapPrm"] == want
    assert st["CapInh"] == want
    assert st["CapAmb"] == mask_of("CAP_KILL")


def test_none_means_no_capabilities_at_all():
    st = in_child(lambda: (capabilities.apply(None), status())[1])
    for key in ("CapBnd", "CapEff", "CapPrm", "CapInh", "CapAmb"):
        assert int(st[key], 16) == 0, key


def test_runc_order_keepcaps_uid_switch_then_apply():
    caps = {"bounding": DEFAULT, "effective": ["CAP_KILL", "CAP_CHOWN"], "permitted": DEFAULT,
            "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"]}

    def child():
        capabilities.set_keepcaps(True)
        os.setgroups([])
        os.setresgid(65534, 65534, 65534)
        os.setresuid(65534, 65534, 65534)
        capabilities.set_keepcaps(False)
        capabilities.apply(caps)
        capabilities.set_no_new_privs()
        return status()

    st = in_child(child)
    assert st["Uid"].split()[0] == "65534"
    assert st["CapBnd"] == mask_of(*DEFAULT)
    assert st["CapEff"] == mask_of("CAP_KILL", "CAP_CHOWN")
    assert st["CapPrm"] == mask_of(*DEFAULT)
    assert st["CapAmb"] == mask_of("CAP_KILL")
    assert st["NoNewPrivs"] == "1"


def test_ambient_not_in_inheritable_is_skipped_like_runc():
    # runc 1.1.5 runs this config: CAP_CHOWN is raised, CAP_KILL (not inheritable) silently is not.
    caps = {"bounding": DEFAULT, "effective": DEFAULT, "permitted": DEFAULT, "inheritable": ["CAP_CHOWN"],
            "ambient": ["CAP_KILL", "CAP_CHOWN"]}
    st = in_child(lambda: (capabilities.apply(caps), status())[1])
    assert st["CapAmb"] == mask_of("CAP_CHOWN")
    assert st["CapInh"] == mask_of("CAP_CHOWN")


def test_apply_bounding_before_switch():
    def child():
        capabilities.apply_bounding({"bounding": ["CAP_SETPCAP", "CAP_KILL"]})
        return [f"{capabilities.bounding_mask():016x}", status()["CapEff"]]

    bnd, eff = in_child(child)
    assert bnd == mask_of("CAP_SETPCAP", "CAP_KILL")
    assert eff != "0000000000000000"  # bounding drops leave the other sets to apply()
