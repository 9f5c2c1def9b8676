"""pyctr's command line as argparse reads it: the global flags and every verb's parser and flags.

Imported by cli.build_parser only when a command needs it (`version` and `--version` are read without it).
"""

from __future__ import annotations

import argparse
import os
import sys

from .env import default_address, default_namespace
from .errors import PROG, FlagError

TYPE_CHECKING = False  # typing itself is not imported: a few ms a start
if TYPE_CHECKING:
    from typing import NoReturn


def _columns() -> int:
    """shutil.get_terminal_size().columns, as argparse sizes help: $COLUMNS, else the terminal, else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns > 0:
        return columns
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        return 80


class _Formatter(argparse.HelpFormatter):
    """argparse's own, sized without importing shutil (argparse makes one per add_argument; shutil with its
    bz2, lzma and fnmatch imports is ~2.5 ms of a command's start)."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position, _columns() - 2 if width is None else width)


class Parser(argparse.ArgumentParser):
    """argparse with docker's flag errors: one line, `See 'pyctr VERB --help'.`, status 125."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        import re

        verb = self.prog.split(" ", 1)[1] if " " in self.prog else ""
        m = re.match(r"argument verb: invalid choice: '([^']*)'", message)
        if m:
            raise FlagError(f"{PROG}: '{m.group(1)}' is not a {PROG} command.", "", 1)
        if message.startswith("unrecognized arguments: "):
            flag = message.split(": ", 1)[1].split()[0]
            message = f"unknown flag: {flag}" if flag.startswith("-") else f'"{PROG} {verb}" accepts no argument(s).'
        elif message.startswith("the following arguments are required"):
            message = f'"{PROG} {verb}" requires at least 1 argument.'
        raise FlagError(message, verb)


def _add(sub, name: str, help_: str = "", add_help: bool = True) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_, add_help=add_help)
    if not add_help:
        p.add_argument("--help", action="help", help="Print usage")
    return p


def _run_flags(p: argparse.ArgumentParser) -> None:
    from .runflags import RUN_FLAGS  # one table: runflags.parse reads plain run command lines without argparse

    for options, action, default, kind in RUN_FLAGS:
        if action == "flag":
            p.add_argument(*options, action="store_true")
        elif action == "append":
            p.add_argument(*options, action="append", default=[])
        elif isinstance(kind, tuple):
            p.add_argument(*options, default=default, choices=list(kind))
        elif kind is not None:
            p.add_argument(*options, type=kind, default=default)
        else:
            p.add_argument(*options, default=default)
    p.add_argument("image")
    p.add_argument("command", nargs=argparse.REMAINDER)


class _Skipped:
    """Stands in for the parser of a verb this invocation does not use: every call is a no-op."""

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: self


class _OnlyVerb:
    """The top-level subparsers, adding only the invoked verb's parser (building all of them costs ~8 ms)."""

    def __init__(self, sub, verb: str) -> None:
        self._sub = sub
        self._verb = verb

    def add_parser(self, name: str, **kwargs):
        if name == self._verb or self._verb in kwargs.get("aliases", ()):
            return self._sub.add_parser(name, **kwargs)
        return _Skipped()


def build_parser(only: str | None = None) -> Parser:
    """The command line; with `only`, the global flags and that verb's parser alone."""
    p = Parser(prog=PROG, description="pyctr: a docker-style client of pycontainerd")
    p.add_argument("-H", "--host", "--address", dest="address", default=default_address())
    p.add_argument("-n", "--namespace", default=default_namespace())
    p.add_argument("-v", "--version", action="store_true")
    sub = p.add_subparsers(dest="verb", parser_class=Parser)
    if only is not None:
        sub = _OnlyVerb(sub, only)

    for name in ("run", "create"):
        _run_flags(_add(sub, name, add_help=False))
    s = _add(sub, "start")
    s.add_argument("-a", "--attach", action="store_true")
    s.add_argument("-i", "--interactive", action="store_true")
    s.add_argument("--detach-keys", default="")
    s.add_argument("containers", nargs="+")
    s = _add(sub, "ps")
    s.add_argument("-a", "--all", action="store_true")
    s.add_argument("-q", "--quiet", action="store_true")
    s.add_argument("--no-trunc", action="store_true")
    s.add_argument("-n", "--last", type=int, default=None)
    s.add_argument("-l", "--latest", action="store_true")
    s.add_argument("-f", "--filter", action="append", default=[])
    s.add_argument("--format", default="")
    s.add_argument("-s", "--size", action="store_true")
    s = _add(sub, "stop")
    s.add_argument("-t", "--time", default=None)
    s.add_argument("containers", nargs="+")
    s = _add(sub, "restart")
    s.add_argument("-t", "--time", default=None)
    s.add_argument("containers", nargs="+")
    s = _add(sub, "kill")
    s.add_argument("-s", "--signal", default="KILL")
    s.add_argument("containers", nargs="+")
    s = _add(sub, "rm")
    s.add_argument("-f", "--force", action="store_true")
    s.add_argument("-v", "--volumes", action="store_true")
    s.add_argument("containers", nargs="+")
    for name in ("pause", "unpause", "wait"):
        _add(sub, name).add_argument("containers", nargs="+")
    s = _add(sub, "exec", add_help=False)
    s.add_argument("-i", "--interactive", action="store_true")
    s.add_argument("-t", "--tty", action="store_true")
    s.add_argument("-d", "--detach", action="store_true")
    s.add_argument("-e", "--env", action="append", default=[])
    s.add_argument("-w", "--workdir", default="")
    s.add_argument("-u", "--user", default="")
    s.add_argument("--detach-keys", default="")
    s.add_argument("container")
    s.add_argument("command", nargs=argparse.REMAINDER)
    s = _add(sub, "logs")
    s.add_argument("-f", "--follow", action="store_true")
    s.add_argument("-n", "--tail", default="all")
    s.add_argument("-t", "--timestamps", action="store_true")
    s.add_argument("--since", default="")
    s.add_argument("--until", default="")
    s.add_argument("--details", action="store_true")
    s.add_argument("container")
    s = _add(sub, "attach")
    s.add_argument("--no-stdin", action="store_true")
    s.add_argument("--sig-proxy", default="true")
    s.add_argument("--detach-keys", default="")
    s.add_argument("container")
    s = _add(sub, "inspect")
    s.add_argument("-f", "--format", default="")
    s.add_argument("--type", default="", choices=["", "container", "image"])
    s.add_argument("-s", "--size", action="store_true")
    s.add_argument("names", nargs="+")
    s = _add(sub, "top")
    s.add_argument("container")
    s.add_argument("ps_args", nargs=argparse.REMAINDER)
    s = _add(sub, "stats")
    s.add_argument("-a", "--all", action="store_true")
    s.add_argument("--no-stream", action="store_true")
    s.add_argument("--no-trunc", action="store_true")
    s.add_argument("--format", default="")
    s.add_argument("containers", nargs="*")
    s = _add(sub, "cp")
    s.add_argument("-L", "--follow-link", action="store_true")
    s.add_argument("-a", "--archive", action="store_true")
    s.add_argument("src")
    s.add_argument("dest")
    s = _add(sub, "rename")
    s.add_argument("container")
    s.add_argument("new_name")
    s = _add(sub, "events")
    s.add_argument("-f", "--filter", action="append", default=[])
    s.add_argument("--format", default="")
    s.add_argument("--since", default="")
    s.add_argument("--until", default="")
    s = _add(sub, "info")
    s.add_argument("-f", "--format", default="")
    s = _add(sub, "version")
    s.add_argument("-f", "--format", default="")
    for name in ("container-prune", "image-prune", "system-prune"):
        s = _add(sub, name)
        s.add_argument("-f", "--force", action="store_true")
        s.add_argument("-a", "--all", action="store_true")
        s.add_argument("--filter", action="append", default=[])
        s.add_argument("--volumes", action="store_true")
    s = _add(sub, "pull")
    s.add_argument("-q", "--quiet", action="store_true")
    s.add_argument("-a", "--all-tags", action="store_true")
    s.add_argument("--platform", default="")
    s.add_argument("name")
    s = _add(sub, "push")
    s.add_argument("-q", "--quiet", action="store_true")
    s.add_argument("name")
    s = _add(sub, "images")
    s.add_argument("-a", "--all", action="store_true")
    s.add_argument("-q", "--quiet", action="store_true")
    s.add_argument("--no-trunc", action="store_true")
    s.add_argument("--digests", action="store_true")
    s.add_argument("--format", default="")
    s.add_argument("-f", "--filter", action="append", default=[])
    s.add_argument("reference", nargs="?")
    s = _add(sub, "tag")
    s.add_argument("source")
    s.add_argument("target")
    s = _add(sub, "rmi")
    s.add_argument("-f", "--force", action="store_true")
    s.add_argument("--no-prune", action="store_true")
    s.add_argument("images", nargs="+")
    s = _add(sub, "save")
    s.add_argument("-o", "--output", default=None)
    s.add_argument("images", nargs="+")
    s = _add(sub, "load")
    s.add_argument("-i", "--input", default=None)
    s.add_argument("-q", "--quiet", action="store_true")
    _network_volume_parsers(sub)
    s = _add(sub, "import")
    s.add_argument("-c", "--change", action="append", default=[])
    s.add_argument("-m", "--message", default="")
    s.add_argument("file")
    s.add_argument("reference", nargs="?")
    return p


def _network_volume_parsers(sub) -> None:
    s = _add(sub, "port")
    s.add_argument("container")
    s.add_argument("spec", nargs="?", default="")
    net = _add(sub, "network").add_subparsers(dest="sub", parser_class=Parser)
    s = _add(net, "create")
    s.add_argument("-d", "--driver", default="bridge")
    s.add_argument("--subnet", action="append", default=[])
    s.add_argument("--gateway", action="append", default=[])
    s.add_argument("--ip-range", action="append", default=[])
    s.add_argument("--aux-address", action="append", default=[])
    s.add_argument("--ipv6", action="store_true")
    s.add_argument("--internal", action="store_true")
    s.add_argument("--label", action="append", default=[])
    s.add_argument("-o", "--opt", action="append", default=[])
    s.add_argument("name")
    for name in ("ls", "list"):
        s = _add(net, name)
        s.add_argument("-q", "--quiet", action="store_true")
        s.add_argument("--no-trunc", action="store_true")
        s.add_argument("--format", default="")
        s.add_argument("-f", "--filter", action="append", default=[])
    s = _add(net, "inspect")
    s.add_argument("-f", "--format", default="")
    s.add_argument("names", nargs="+")
    for name in ("rm", "remove"):
        _add(net, name).add_argument("names", nargs="+")
    s = _add(net, "prune")
    s.add_argument("-f", "--force", action="store_true")
    s = _add(net, "connect")
    s.add_argument("--alias", action="append", default=[])
    s.add_argument("--ip", default="")
    s.add_argument("--ip6", default="")
    s.add_argument("network")
    s.add_argument("container")
    s = _add(net, "disconnect")
    s.add_argument("-f", "--force", action="store_true")
    s.add_argument("network")
    s.add_argument("container")
    vol = _add(sub, "volume").add_subparsers(dest="sub", parser_class=Parser)
    s = _add(vol, "create")
    s.add_argument("-d", "--driver", default="local")
    s.add_argument("--label", action="append", default=[])
    s.add_argument("-o", "--opt", action="append", default=[])
    s.add_argument("name", nargs="?", default="")
    for name in ("ls", "list"):
        s = _add(vol, name)
        s.add_argument("-q", "--quiet", action="store_true")
        s.add_argument("--format", default="")
        s.add_argument("-f", "--filter", action="append", default=[])
    s = _add(vol, "inspect")
    s.add_argument("-f", "--format", default="")
    s.add_argument("names", nargs="+")
    for name in ("rm", "remove"):
        s = _add(vol, name)
        s.add_argument("-f", "--force", action="store_true")
        s.add_argument("names", nargs="+")
    s = _add(vol, "prune")
    s.add_argument("-f", "--force", action="store_true")
    s.add_argument("-a", "--all", action="store_true")
