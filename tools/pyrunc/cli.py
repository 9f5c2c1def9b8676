"""pyrunc's command line, as runc 1.1's: a small parser for the hot commands (argparse, in args.py, for the rest),
one place mapping errors to messages and exit codes, logs as logrus writes them (text or JSON, containerd reads)."""

from __future__ import annotations

from pyoci import fastjson as json  # `json` imports re and enum: ~8 ms a start
import os
import sys
import time

from .errors import ConfigError, PyruncError

VERSION = "0.1.0"
DEFAULT_ROOT = "/run/pyrunc"


class Log:
    """runc's logging: records to --log (or stderr), text `time="" level= msg=""` or JSON."""

    def __init__(self, path: str | None, fmt: str, debug: bool) -> None:
        self.path, self.fmt, self.debug_on = path, fmt, debug

    def _record(self, level: str, msg: str) -> str:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if self.fmt == "json":
            return json.dumps({"level": level, "msg": msg, "time": now}) + "\n"
        return f'time="{now}" level={level} msg={json.dumps(msg)}\n'

    def write(self, level: str, msg: str) -> None:
        rec = self._record(level, msg)
        if self.path:
            try:
                with open(self.path, "a") as f:
                    f.write(rec)
            except OSError:
                sys.stderr.write(rec)
        else:
            sys.stderr.write(rec)

    def error(self, msg: str) -> None:
        self.write("error", msg)
        if self.path:  # runc prints the bare error too when the log goes to a file
            sys.stderr.write(msg + "\n")

    def warning(self, msg: str) -> None:
        self.write("warning", msg)

    def debug(self, msg: str) -> None:
        if self.debug_on:
            self.write("debug", msg)


# The invocations containerd and scripts make most, parsed without importing argparse (≈5 ms a start):
# per command, its boolean flags and its flags taking a value (name -> attribute, default).
_CREATE_VALUES = {"-b": "bundle", "--bundle": "bundle", "--console-socket": "console_socket", "--pid-file": "pid_file",
                  "--preserve-fds": "preserve_fds"}
_CREATE_BOOLS = {"--no-pivot": "no_pivot", "--no-new-keyring": "no_new_keyring"}
_CREATE_DEFAULTS = {"bundle": "", "console_socket": None, "pid_file": None, "preserve_fds": 0, "no_pivot": False,
                    "no_new_keyring": False}
FAST = {
    "create": (_CREATE_BOOLS, _CREATE_VALUES, _CREATE_DEFAULTS, ("id",)),
    "run": (dict(_CREATE_BOOLS, **{"-d": "detach", "--detach": "detach", "--keep": "keep"}), _CREATE_VALUES,
            dict(_CREATE_DEFAULTS, detach=False, keep=False), ("id",)),
    "start": ({}, {}, {}, ("id",)),
    "state": ({}, {}, {}, ("id",)),
    "pause": ({}, {}, {}, ("id",)),
    "resume": ({}, {}, {}, ("id",)),
    "delete": ({"-f": "force", "--force": "force"}, {}, {"force": False}, ("id",)),
    "kill": ({"-a": "all", "--all": "all"}, {}, {"all": False, "signal": "SIGTERM"}, ("id", "signal?")),
}
_GLOBAL_VALUES = {"--root": "root", "--log": "log", "--log-format": "log_format", "--criu": "criu",
                  "--rootless": "rootless"}
_GLOBAL_BOOLS = {"--debug": "debug", "--systemd-cgroup": "systemd_cgroup"}


def fast_parse(argv: list[str]):
    """argparse's result for the common commands, or None to let argparse handle (and report) the rest."""
    SimpleNamespace = type(sys.implementation)  # types.SimpleNamespace without importing `types` (~0.3 ms)

    ns = SimpleNamespace(root=DEFAULT_ROOT, log=None, log_format="text", criu=None, rootless=None, debug=False,
                         systemd_cgroup=False, version=False, command=None)
    i, n = 0, len(argv)

    def value(i: int, a: str) -> tuple[str | None, int]:
        if "=" in a:
            return a.split("=", 1)[1], i + 1
        return (argv[i + 1], i + 2) if i + 1 < n else (None, i + 1)

    while i < n and argv[i].startswith("-"):
        a = argv[i]
        name = a.split("=", 1)[0]
        if name in _GLOBAL_VALUES:
            v, i = value(i, a)
            if v is None:
                return None
            setattr(ns, _GLOBAL_VALUES[name], v)
        elif a in _GLOBAL_BOOLS:
            setattr(ns, _GLOBAL_BOOLS[a], True)
            i += 1
        else:
            return None
    if i >= n or argv[i] not in FAST or ns.log_format not in ("text", "json"):
        return None
    ns.command = argv[i]
    bools, values, defaults, positionals = FAST[ns.command]
    for k, v in defaults.items():
        setattr(ns, k, v)
    pos: list[str] = []
    i += 1
    while i < n:
        a = argv[i]
        if a == "--":
            pos += argv[i + 1:]
            break
        if a.startswith("-") and a != "-":
            name = a.split("=", 1)[0]
            if name in bools and "=" not in a:
                setattr(ns, bools[name], True)
                i += 1
            elif name in values:
                v, i = value(i, a)
                if v is None:
                    return None
                if values[name] == "preserve_fds":
                    if not v.isdigit():
                        return None
                    v = int(v)
                setattr(ns, values[name], v)
            else:
                return None
            continue
        pos.append(a)
        i += 1
    required = [p for p in positionals if not p.endswith("?")]
    if not len(required) <= len(pos) <= len(positionals):
        return None
    for name, v in zip(positionals, pos):
        setattr(ns, name.rstrip("?"), v)
    return ns


PREFIXED = {"create": "create failed: ", "run": "run failed: ", "exec": "exec failed: "}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    log = Log(None, "text", False)
    command = ""
    try:
        args = fast_parse(argv)
        if args is None:  # anything unusual (help, errors, rarer commands): the full argparse parser
            from .args import COMMANDS as _all, build_parser, find_command

            cmd = find_command(argv)
            args = build_parser(cmd if cmd in _all else None).parse_args(argv)
        log = Log(os.path.abspath(args.log) if args.log else None, args.log_format, args.debug)
        args.root = os.path.abspath(args.root)  # before anything chdirs into a bundle
        if args.version:
            sys.stdout.write(f"pyrunc version {VERSION}\nspec: 1.0.2-dev\n")
            return 0
        command = args.command or ""
        if not command:
            raise ConfigError("no command given (try --help)")
        if args.systemd_cgroup:
            raise ConfigError("systemd cgroup driver is not supported yet (--systemd-cgroup)")
        from . import commands

        return getattr(commands, "cmd_" + command)(args, log)
    except PyruncError as e:
        log.error(("pyrunc " + PREFIXED[command] if command in PREFIXED else "") + e.message)
        # runc exits 255 when exec fails after its arguments were accepted
        return 255 if command == "exec" and getattr(e, "from_exec", False) else e.exit_code
    except KeyboardInterrupt:
        return 130
    except OSError as e:
        log.error(("pyrunc " + PREFIXED[command] if command in PREFIXED else "") + str(e))
        return 1
    except Exception as e:  # noqa: BLE001 - never a traceback for a user
        if os.environ.get("PYRUNC_TRACEBACK"):
            raise
        log.error(f"internal error: {type(e).__name__}: {e}")
        return 1


def entry() -> None:
    sys.exit(main())


def main_exit() -> None:
    """The lean launcher's entry: main(), then exit without the interpreter's teardown (module and object
    clean-up costs ~5 ms a start and nothing is left to tidy: files are closed and output flushed here)."""
    import gc

    gc.disable()  # short-lived; the long-running commands (events, a foreground run) allocate no cycles to speak of
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code if isinstance(code, int) else 1)


if __name__ == "__main__":
    sys.exit(main())
