"""pyrunc.rlimits: validation messages, and setrlimit/prlimit applied in a forked child."""

from __future__ import annotations

import json
import os
import resource
import time

import pytest

from pyrunc import rlimits
from pyrunc.errors import ConfigError, RuntimeFailure

UNLIMITED = 2**64 - 1


def in_child(fn):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            out = {"ok": fn()}
        except BaseException as e:  # the child must never return into pytest
            out = {"error": f"{type(e).__name__}: {e}"}
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return json.loads(data)


def test_validate_names_the_entry():
    rlimits.validate([{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}])
    rlimits.validate(None)
    with pytest.raises(ConfigError, match=r"wrong rlimit value: RLIMIT_FOO \(process.rlimits\[1\].type\)"):
        rlimits.validate([{"type": "RLIMIT_CORE", "hard": 0, "soft": 0},
                          {"type": "RLIMIT_FOO", "hard": 1, "soft": 1}])
    with pytest.raises(ConfigError, match=r"process.rlimits\[0\]: soft limit 200 .* hard limit 100"):
        rlimits.validate([{"type": "RLIMIT_NOFILE", "hard": 100, "soft": 200}])
    with pytest.raises(ConfigError, match=r"process.rlimits\[0\].hard"):
        rlimits.validate([{"type": "RLIMIT_NOFILE", "hard": -1, "soft": 0}])
    rlimits.validate([{"type": "RLIMIT_CORE", "hard": UNLIMITED, "soft": 5}])


def test_apply_in_child_including_locks_which_resource_lacks():
    limits = [
        {"type": "RLIMIT_NOFILE", "hard": 512, "soft": 256},
        {"type": "RLIMIT_CORE", "hard": 4096, "soft": 0},
        {"type": "RLIMIT_LOCKS", "hard": 77, "soft": 66},
        {"type": "RLIMIT_CPU", "hard": UNLIMITED, "soft": 3600},
    ]

    def child():
        rlimits.apply(limits)
        return {name: rlimits.current(name) for name in ("RLIMIT_NOFILE", "RLIMIT_CORE", "RLIMIT_LOCKS",
                                                          "RLIMIT_CPU")}

    out = in_child(child)["ok"]
    assert out["RLIMIT_NOFILE"] == [256, 512]
    assert out["RLIMIT_CORE"] == [0, 4096]
    assert out["RLIMIT_LOCKS"] == [66, 77]
    assert out["RLIMIT_CPU"] == [3600, UNLIMITED]
    assert resource.getrlimit(resource.RLIMIT_NOFILE) != (256, 512)  # only the child changed


def test_apply_on_another_pid_with_prlimit():
    pid = os.fork()
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    try:
        rlimits.apply([{"type": "RLIMIT_NOFILE", "hard": 300, "soft": 200}], pid=pid)
        assert rlimits.current("RLIMIT_NOFILE", pid=pid) == (200, 300)
        text = open(f"/proc/{pid}/limits").read()
        assert any(line.startswith("Max open files") and "200" in line and "300" in line
                   for line in text.splitlines())
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)


def test_failure_has_runcs_message():
    # soft > hard gets past a caller that skipped validate(): the kernel refuses it like runc reports it.
    def child():
        rlimits.apply([{"type": "RLIMIT_NOFILE", "hard": 100, "soft": 200}])

    assert in_child(child) == {"error": "RuntimeFailure: error setting rlimit type 7: invalid argument"}
    with pytest.raises(RuntimeFailure, match="error setting rlimit type 7"):
        rlimits.apply([{"type": "RLIMIT_NOFILE", "hard": 100, "soft": 200}], pid=os.getpid() + 10**6)


def test_rlimit_and_kernel_memory_messages_as_runc(env):
    """A hard limit past fs.nr_open fails with runc's words (its last two parts; runc adds its init's wrapping),
    and kernel memory settings give runc's warning."""
    b = env.bundle("true")
    b.edit(lambda d: (d["process"].__setitem__("rlimits", [{"type": "RLIMIT_NOFILE", "soft": 1 << 40, "hard": 1 << 40}]),
                      d["linux"]["resources"].__setitem__("memory", {"kernel": 1 << 26})))
    theirs, mine = env.both(b)
    assert theirs.rc == mine.rc == 1
    tail = "error setting rlimits for ready process: error setting rlimit type 7: operation not permitted"
    assert tail in theirs.err and tail in mine.err, (theirs.err, mine.err)
    warn = 'level=warning msg="Kernel memory settings are ignored and will be removed"'
    assert warn in theirs.err and warn in mine.err
