"""The full argparse command line (help, usage errors); cli.fast_parse handles the common invocations without it."""

from __future__ import annotations

import argparse

from .cli import DEFAULT_ROOT
from .errors import ConfigError

COMMANDS = {"spec", "create", "run", "start", "pause", "resume", "state", "list", "kill", "delete", "exec", "ps",
            "events", "update", "features"}


class _Formatter(argparse.HelpFormatter):
    """A fixed width: the default asks shutil for the terminal size, an import every start would pay for."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=100)


class Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # type: ignore[override]
        raise ConfigError(message)


def _bool_flag(p, *names, help=""):
    p.add_argument(*names, action="store_true", help=help)


GLOBAL_WITH_VALUE = {"--root", "--log", "--log-format", "--criu", "--rootless"}


def find_command(argv: list[str]) -> str | None:
    """The subcommand name, found without building every subparser (argparse set-up is the slow part)."""
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            return argv[i + 1] if i + 1 < len(argv) else None
        if a.startswith("-"):
            if a in GLOBAL_WITH_VALUE:
                i += 1
            i += 1
            continue
        return a
    return None


def build_parser(only: str | None = None) -> Parser:
    p = Parser(prog="pyrunc", description="Open Container Initiative runtime (runc-compatible, in Python)")
    p.add_argument("--root", default=DEFAULT_ROOT, help="root directory for storage of container state")
    p.add_argument("--log", default=None, help="set the log file to write runc logs to (default is stderr)")
    p.add_argument("--log-format", default="text", choices=("text", "json"))
    _bool_flag(p, "--debug")
    _bool_flag(p, "--systemd-cgroup")
    p.add_argument("--criu", default=None, help=argparse.SUPPRESS)
    p.add_argument("--rootless", default=None, help=argparse.SUPPRESS)
    p.add_argument("-v", "--version", action="store_true")
    sub = p.add_subparsers(dest="command", parser_class=Parser)
    real_add = sub.add_parser

    class _Skip:
        """Stands in for the subparsers this invocation does not use (an ArgumentParser costs ~1 ms each)."""

        def add_argument(self, *args, **kwargs) -> None:
            pass

    def add_parser(name: str, **kw):
        if only is not None and name != only:
            return _Skip()
        return real_add(name, **kw)

    sub.add_parser = add_parser  # type: ignore[method-assign]

    s = sub.add_parser("spec")
    s.add_argument("-b", "--bundle", default="")
    _bool_flag(s, "--rootless")

    def create_flags(c):
        c.add_argument("-b", "--bundle", default="")
        c.add_argument("--console-socket", default=None)
        c.add_argument("--pid-file", default=None)
        _bool_flag(c, "--no-pivot")
        _bool_flag(c, "--no-new-keyring")
        c.add_argument("--preserve-fds", type=int, default=0)
        c.add_argument("id")

    create_flags(sub.add_parser("create"))
    r = sub.add_parser("run")
    _bool_flag(r, "-d", "--detach")
    _bool_flag(r, "--keep")
    create_flags(r)
    for name in ("start", "pause", "resume"):
        sub.add_parser(name).add_argument("id")
    st = sub.add_parser("state")
    st.add_argument("id")
    ls = sub.add_parser("list")
    ls.add_argument("-f", "--format", default="table", choices=("table", "json"))
    _bool_flag(ls, "-q", "--quiet")
    k = sub.add_parser("kill")
    _bool_flag(k, "-a", "--all")
    k.add_argument("id")
    k.add_argument("signal", nargs="?", default="SIGTERM")
    d = sub.add_parser("delete")
    _bool_flag(d, "-f", "--force")
    d.add_argument("id")
    e = sub.add_parser("exec")
    e.add_argument("--console-socket", default=None)
    e.add_argument("--cwd", default=None)
    e.add_argument("-e", "--env", action="append", default=[])
    _bool_flag(e, "-t", "--tty")
    e.add_argument("-u", "--user", default=None)
    e.add_argument("--additional-gids", "-g", action="append", default=[])
    e.add_argument("-p", "--process", default=None)
    _bool_flag(e, "-d", "--detach")
    e.add_argument("--pid-file", default=None)
    e.add_argument("--process-label", default=None)
    e.add_argument("--apparmor", default=None)
    _bool_flag(e, "--no-new-privs")
    e.add_argument("-c", "--cap", action="append", default=[])
    e.add_argument("--preserve-fds", type=int, default=0)
    e.add_argument("--cgroup", action="append", default=[])
    _bool_flag(e, "--ignore-paused")
    e.add_argument("id")
    e.add_argument("argv", nargs=argparse.REMAINDER)
    ps = sub.add_parser("ps")
    ps.add_argument("-f", "--format", default="table", choices=("table", "json"))
    ps.add_argument("id")
    ps.add_argument("ps_args", nargs=argparse.REMAINDER)
    ev = sub.add_parser("events")
    _bool_flag(ev, "--stats")
    ev.add_argument("--interval", default="5s")
    ev.add_argument("id")
    u = sub.add_parser("update")
    u.add_argument("-r", "--resources", default=None)
    for flag in ("--blkio-weight", "--cpu-period", "--cpu-quota", "--cpu-share", "--cpu-rt-period",
                 "--cpu-rt-runtime", "--cpuset-cpus", "--cpuset-mems", "--kernel-memory", "--kernel-memory-tcp",
                 "--memory", "--memory-reservation", "--memory-swap", "--pids-limit", "--l3-cache-schema",
                 "--mem-bw-schema"):
        u.add_argument(flag, default=None)
    u.add_argument("id")
    sub.add_parser("features")
    return p
