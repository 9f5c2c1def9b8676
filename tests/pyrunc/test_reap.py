"""Regression: a foreground `run` whose container init is not its child (a failed handoff) polled the pid only
for existence, so a zombie nobody reaps or a pid reused on a busy host (pid_max wraps) kept it waiting forever
(a stray `pyrunc run` with PPid 1 was seen after a suite).  _reap now compares the start time and treats a
zombie as exited."""

from __future__ import annotations

import os
import signal
import time

from pyrunc.commands import _reap
from pyrunc.state import proc_start_time


def _reap_in_child(pid: int, start_time: int) -> int | None:
    """Run _reap in a forked child (which has no children of its own); its result, or None if it hangs 5s."""
    f = os.fork()
    if f == 0:
        try:
            os._exit(_reap(pid, start_time))
        finally:
            os._exit(99)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        got, status = os.waitpid(f, os.WNOHANG)
        if got == f:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(f, signal.SIGKILL)
    os.waitpid(f, 0)
    return None


def test_reused_pid_does_not_hang():
    me = os.getpid()  # alive, but with another start time than the container "had"
    assert _reap_in_child(me, proc_start_time(me)[0] + 1) == 0


def test_zombie_of_another_parent_does_not_hang():
    z = os.fork()
    if z == 0:
        os._exit(3)
    try:
        for _ in range(500):
            st = proc_start_time(z)
            if st and st[1] == "Z":
                break
            time.sleep(0.01)
        assert _reap_in_child(z, st[0]) == 0
    finally:
        os.waitpid(z, 0)


def test_live_process_is_still_awaited():
    """The same check must not give up on the real, running init."""
    me = os.getpid()
    f = os.fork()
    if f == 0:
        os._exit(_reap(me, proc_start_time(me)[0]))
    time.sleep(0.3)
    got, _ = os.waitpid(f, os.WNOHANG)
    os.kill(f, signal.SIGKILL)
    os.waitpid(f, 0)
    assert got == 0
