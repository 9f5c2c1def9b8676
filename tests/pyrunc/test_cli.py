"""The argparse-free fast path of the command line gives exactly argparse's result, or defers to it."""

from __future__ import annotations

import pytest

from pyrunc import cli
from pyrunc.args import build_parser, find_command

CASES = [
    ["run", "x"],
    ["--root", "/r", "run", "-b", "/b", "-d", "x"],
    ["--root=/r", "--log", "/l", "--log-format", "json", "create", "--bundle", "/b", "--pid-file", "/p",
     "--console-socket", "/s", "--no-pivot", "--no-new-keyring", "--preserve-fds", "2", "x"],
    ["create", "--bundle=/b", "x"],
    ["run", "--keep", "--detach", "x"],
    ["--debug", "--systemd-cgroup", "start", "x"],
    ["state", "x"],
    ["delete", "-f", "x"],
    ["delete", "--force", "x"],
    ["kill", "x"],
    ["kill", "x", "KILL"],
    ["kill", "--all", "x", "9"],
    ["kill", "-a", "x", "SIGTERM"],
    ["pause", "x"],
    ["resume", "x"],
]
DEFERRED = [
    ["run"], ["start"], ["kill", "x", "9", "extra"], ["run", "--nope", "x"], ["--help"], ["run", "--help"],
    ["list"], ["exec", "x", "ls"], ["--version"], [], ["run", "--preserve-fds", "two", "x"], ["--root"],
    ["--log-format", "xml", "state", "x"], ["-v"],
]


@pytest.mark.parametrize("argv", CASES, ids=[" ".join(c) for c in CASES])
def test_fast_parse_matches_argparse(argv):
    fast = cli.fast_parse(argv)
    assert fast is not None
    full = build_parser(find_command(argv)).parse_args(argv)
    for key, value in vars(fast).items():
        assert getattr(full, key) == value, key
    assert set(vars(fast)) <= set(vars(full))
    assert {k for k in vars(full) if not k.startswith("_")} <= set(vars(fast))


@pytest.mark.parametrize("argv", DEFERRED, ids=[" ".join(c) or "(none)" for c in DEFERRED])
def test_unusual_invocations_go_to_argparse(argv):
    assert cli.fast_parse(argv) is None
