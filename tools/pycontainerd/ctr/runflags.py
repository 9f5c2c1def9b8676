"""`run` and `create`'s flags as one table: flags.py builds their argparse parser from it, and `parse` reads the
common invocations without argparse.

argparse (with re, gettext and locale) and building the run parser are ~5 ms of every `pyctr run`. `parse`
gives what argparse's parse_args would for plain command lines (known flags spelled out, `--flag=value`,
clustered short booleans like `-it`, the image, then the command); for anything else (--help, an unknown or
abbreviated flag, a value that starts with "-", `--`, a bad number or choice, no image) it returns None and
argparse reads the command line, with its own errors and help. tests/pycontainerd/test_ctr_startup.py
checks the two agree.
"""

from __future__ import annotations

# (option strings, action, default, type or choices): action "flag" is store_true, "append" collects values
# (default []), "value" keeps the last one; the dest is the first long option's name, as argparse makes it
RUN_FLAGS: tuple = (
    (("-d", "--detach"), "flag", False, None),
    (("--rm",), "flag", False, None),
    (("-e", "--env"), "append", None, None),
    (("--env-file",), "append", None, None),
    (("--name",), "value", "", None),
    (("-w", "--workdir"), "value", "", None),
    (("-u", "--user"), "value", "", None),
    (("--entrypoint",), "value", None, None),
    (("-i", "--interactive"), "flag", False, None),
    (("-t", "--tty"), "flag", False, None),
    (("--cpus",), "value", 0.0, float),
    (("-m", "--memory"), "value", "", None),
    (("--pids-limit",), "value", 0, int),
    (("--read-only",), "flag", False, None),
    (("--cap-add",), "append", None, None),
    (("--cap-drop",), "append", None, None),
    (("--privileged",), "flag", False, None),
    (("--init",), "flag", False, None),
    (("-h", "--hostname"), "value", "", None),
    (("-l", "--label"), "append", None, None),
    (("--restart",), "value", "no", None),
    (("--log-opt",), "append", None, None),
    (("--pull",), "value", "missing", ("missing", "always", "never")),
    (("-p", "--publish"), "append", None, None),
    (("-P", "--publish-all"), "flag", False, None),
    (("--expose",), "append", None, None),
    (("--network", "--net"), "value", "default", None),
    (("--network-alias", "--net-alias"), "append", None, None),
    (("--ip",), "value", "", None),
    (("--ip6",), "value", "", None),
    (("--mac-address",), "value", "", None),
    (("--dns",), "append", None, None),
    (("--dns-search",), "append", None, None),
    (("--dns-option", "--dns-opt"), "append", None, None),
    (("--add-host",), "append", None, None),
    (("-v", "--volume"), "append", None, None),
    (("--mount",), "append", None, None),
    (("--tmpfs",), "append", None, None),
    (("--health-cmd",), "value", "", None),
    (("--health-interval",), "value", "", None),
    (("--health-timeout",), "value", "", None),
    (("--health-retries",), "value", "", None),
    (("--health-start-period",), "value", "", None),
    (("--no-healthcheck",), "flag", False, None),
    (("--security-opt",), "append", None, None),
    (("--detach-keys",), "value", "", None),
)


def dest(options: tuple[str, ...]) -> str:
    """argparse's dest: the first long option without its dashes, - as _."""
    return (options[0] if options[0][1] == "-" else options[1])[2:].replace("-", "_")


def parse(args: list[str]) -> dict | None:
    """The verb's values (image, command and every flag's dest) from the words after the verb, as argparse
    would give them; None when argparse must read them."""
    flags: dict = {}
    values: dict = {}
    for options, action, default, kind in RUN_FLAGS:
        key = dest(options)
        values[key] = [] if action == "append" else default
        for o in options:
            flags[o] = (key, action, kind)
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("-") or arg == "-":
            if "--" in args[i:]:
                return None  # argparse's handling of "--" in the command: leave it to argparse
            values["image"], values["command"] = arg, args[i + 1:]
            return values
        name, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        spec = flags.get(name)
        if spec is None:
            if arg.startswith("--") or not all(flags.get("-" + c, ("", ""))[1] == "flag" for c in arg[1:]):
                return None  # unknown, abbreviated, --help, or a short flag with its value attached
            for c in arg[1:]:  # -it: clustered booleans
                values[flags["-" + c][0]] = True
            i += 1
            continue
        key, action, kind = spec
        if action == "flag":
            if eq:
                return None
            values[key] = True
            i += 1
            continue
        if not eq:
            if i + 1 >= len(args) or args[i + 1].startswith("-"):
                return None
            value = args[i + 1]
            i += 1
        i += 1
        if isinstance(kind, tuple):
            if value not in kind:
                return None
        elif kind is not None:
            try:
                value = kind(value)
            except (TypeError, ValueError):
                return None
        if action == "append":
            values[key].append(value)
        else:
            values[key] = value
    return None  # no image: argparse words the error
