"""pyctr: `pyctr [--address SOCK | -H unix://SOCK] [--namespace NS] VERB …`, docker's verbs and flags.

Exit statuses as docker's: 0, 1 for errors, 125 for flag and daemon errors of run/create (126 when
the command cannot be invoked, 127 when it is not found), the container's status for foreground runs.
"""

from __future__ import annotations

import os
import sys

from pyoci.errors import OCIError

from .. import errdefs
from .env import default_address, default_namespace
from .errors import PROG, CLIError, FlagError

# Verb modules (and the client) are imported where a verb needs them: a start pays only for its own verb.
# The argparse parsers are in flags.py: `version` and `--version` are read without them (_version_args), and
# argparse (with re, enum, gettext) is most of such a command's start-up.
TYPE_CHECKING = False  # typing itself is not imported: a few ms a start
if TYPE_CHECKING:
    import argparse
    from typing import NoReturn

    from . import containers
    from .backend import Backend

GROUPS = {
    "container": {"ls": "ps", "list": "ps", "ps": "ps", "remove": "rm", "inspect": "inspect",
                  "prune": "container-prune"},
    "image": {"ls": "images", "list": "images", "rm": "rmi", "remove": "rmi", "inspect": "inspect",
              "prune": "image-prune", "pull": "pull", "push": "push", "tag": "tag", "save": "save", "load": "load",
              "import": "import"},
    "system": {"prune": "system-prune", "info": "info", "events": "events"},
}


def build_parser(only: str | None = None):
    """The argparse command line (ctr/flags.py, imported only by the commands that need it)."""
    from .flags import build_parser as build

    return build(only)


def _dispatch_network_volume(b: Backend, a) -> int:
    from . import netvol

    v, sub = a.verb, getattr(a, "sub", None)
    if v == "port":
        netvol.port(b, a.container, a.spec)
        return 0
    if not sub:
        raise FlagError(f'"{PROG} {v}" requires a subcommand.', v)
    if v == "network":
        if sub == "create":
            netvol.network_create(b, a.name, a.driver, a.subnet, a.gateway, a.internal, a.label, a.opt,
                                  a.ip_range, a.ipv6, a.aux_address)
        elif sub in ("ls", "list"):
            netvol.network_ls(b, a.quiet, a.no_trunc, a.format)
        elif sub == "inspect":
            return netvol.network_inspect(b, a.names, a.format)
        elif sub in ("rm", "remove"):
            return netvol.network_rm(b, a.names)
        elif sub == "prune":
            netvol.network_prune(b, a.force)
        elif sub == "connect":
            netvol.network_connect(b, a.network, a.container, a.alias, a.ip, a.ip6)
        elif sub == "disconnect":
            netvol.network_disconnect(b, a.network, a.container)
        return 0
    if sub == "create":
        netvol.volume_create(b, a.name, a.driver, a.label, a.opt)
    elif sub in ("ls", "list"):
        netvol.volume_ls(b, a.quiet, a.filter, a.format)
    elif sub == "inspect":
        return netvol.volume_inspect(b, a.names, a.format)
    elif sub in ("rm", "remove"):
        return netvol.volume_rm(b, a.names, a.force)
    elif sub == "prune":
        netvol.volume_prune(b, a.force, a.all)
    return 0


def _rewrite(argv: list[str]) -> list[str]:
    """`container ls`, `image rm`, `system prune`… → the flat verbs."""
    out = list(argv)
    i = 0
    while i < len(out):
        a = out[i]
        if a in ("-H", "--host", "--address", "-n", "--namespace"):
            i += 2
            continue
        if a.startswith("-"):
            i += 1
            continue
        if a in GROUPS and i + 1 < len(out):
            verb = GROUPS[a].get(out[i + 1], out[i + 1])
            extra = ["--type", a] if verb == "inspect" else []
            out[i:i + 2] = [verb, *extra]
        break
    return out


def _options(a) -> containers.CreateOptions:
    from . import containers

    return containers.CreateOptions(
        healthcheck=_healthcheck(a),
        image=a.image, args=a.command, name=a.name, env=a.env, env_files=a.env_file, workdir=a.workdir,
        user=a.user, entrypoint=a.entrypoint, interactive=a.interactive, tty=a.tty, cpus=a.cpus, memory=a.memory,
        pids_limit=a.pids_limit, read_only=a.read_only, cap_add=a.cap_add, cap_drop=a.cap_drop,
        privileged=a.privileged, init=a.init, hostname=a.hostname, labels=a.label, rm=a.rm, detach=a.detach,
        restart=a.restart, log_opts=a.log_opt, pull=a.pull, publish=a.publish, publish_all=a.publish_all,
        expose=a.expose, network=a.network, network_aliases=a.network_alias, dns=a.dns, dns_search=a.dns_search,
        dns_options=a.dns_option, add_hosts=a.add_host, ip=a.ip, ip6=a.ip6, mac_address=a.mac_address, volumes=a.volume, mounts=a.mount, tmpfs=a.tmpfs,
        security_opt=a.security_opt, detach_keys=a.detach_keys)


def _healthcheck(a) -> dict | None:
    """--health-* and --no-healthcheck as docker's CLI reads them (Config.Healthcheck, or None)."""
    if not (a.health_cmd or a.health_interval or a.health_timeout or a.health_retries or a.health_start_period
            or a.no_healthcheck):
        return None  # none given (from_flags says so too) without importing the daemon's health module (asyncio)
    from ..healthcheck import from_flags, parse_go_duration

    for name in ("interval", "timeout", "start_period"):
        value = getattr(a, f"health_{name}")
        try:
            parse_go_duration(value) if value else 0
        except ValueError as exc:
            raise FlagError(f'invalid argument "{value}" for "--health-{name.replace("_", "-")}" flag: {exc}',
                            a.verb) from None
    try:
        retries = int(a.health_retries or 0)
    except ValueError:
        raise FlagError(f'invalid argument "{a.health_retries}" for "--health-retries" flag: strconv.ParseInt: '
                        f'parsing "{a.health_retries}": invalid syntax', a.verb) from None
    try:
        return from_flags(a.health_cmd, a.health_interval, a.health_timeout, retries, a.health_start_period,
                          a.no_healthcheck)
    except ValueError as exc:
        raise CLIError(str(exc), 125) from None


def dispatch(b: Backend, a) -> int:
    v = a.verb
    if v in _CONTAINER_VERBS:
        return _dispatch_container(b, a)
    if v in ("network", "volume", "port"):
        return _dispatch_network_volume(b, a)
    if v in ("exec", "logs", "attach"):
        return _dispatch_execlogs(b, a)
    if v in ("inspect", "top", "stats", "cp", "events"):
        return _dispatch_observe(b, a)
    if v in ("info", "container-prune", "image-prune", "system-prune"):
        return _dispatch_system(b, a)
    if v in ("pull", "push", "images", "tag", "rmi", "save", "load", "import"):
        return _dispatch_images(b, a)
    raise FlagError(f"{PROG}: '{v}' is not a {PROG} command.", "")


_CONTAINER_VERBS = frozenset({"run", "create", "start", "ps", "stop", "restart", "kill", "rm", "pause", "unpause",
                              "wait", "rename"})


def _dispatch_container(b: Backend, a) -> int:
    from . import containers

    v = a.verb
    if v == "run":
        return containers.run(b, _options(a))
    if v == "create":
        print(containers.create(b, _options(a)).id)
        return 0
    if v == "start":
        return containers.start(b, a.containers, a.attach, a.interactive, a.detach_keys)
    if v == "ps":
        containers.ps(b, a)
        return 0
    if v == "stop":
        return containers.stop(b, a.containers, containers.parse_stop_timeout(a.time))
    if v == "restart":
        status = containers.stop(b, a.containers, containers.parse_stop_timeout(a.time))
        if status == 0:
            import contextlib
            import io
            with contextlib.redirect_stdout(io.StringIO()):
                containers.start(b, a.containers)
        return status
    if v == "kill":
        return containers.kill(b, a.containers, a.signal)
    if v == "rm":
        return containers.rm(b, a.containers, a.force, a.volumes)
    if v in ("pause", "unpause"):
        return containers.pause(b, a.containers, v == "unpause")
    if v == "wait":
        return containers.wait(b, a.containers)
    containers.rename(b, a.container, a.new_name)  # "rename"
    return 0


def _dispatch_execlogs(b: Backend, a) -> int:
    from . import execlogs

    v = a.verb
    if v == "exec":
        if not a.command:
            raise FlagError(f'"{PROG} exec" requires at least 2 arguments.', "exec")
        return execlogs.exec_(b, a.container, a.command, a.interactive, a.tty, a.env, a.workdir, a.user, a.detach,
                               a.detach_keys)
    if v == "logs":
        execlogs.logs(b, a.container, a.follow, a.tail, a.timestamps, a.since, a.until, a.details)
        return 0
    return execlogs.attach_(b, a.container, a.no_stdin, a.sig_proxy != "false", a.detach_keys)  # "attach"


def _dispatch_observe(b: Backend, a) -> int:
    v = a.verb
    if v == "inspect":
        from . import inspection

        return inspection.inspect(b, a.names, a.type, a.format, a.size)
    if v == "cp":
        from . import cp

        cp.cp(b, a.src, a.dest, a.follow_link)
        return 0
    from . import observe

    if v == "top":
        observe.top(b, a.container, a.ps_args)
        return 0
    if v == "stats":
        observe.stats(b, a.containers, a.all, a.no_stream, a.format, a.no_trunc)
        return 0
    observe.events(b, a.filter, a.format, a.since, a.until)  # "events"
    return 0


def _dispatch_system(b: Backend, a) -> int:
    from . import system

    v = a.verb
    if v == "info":
        system.info(b, a.format)
        return 0
    if v == "container-prune":
        system.container_prune(b, a.force)
        return 0
    if v == "image-prune":
        system.image_prune(b, a.force, a.all)
        return 0
    system.system_prune(b, a.force, a.all)  # "system-prune"
    return 0


def _dispatch_images(b: Backend, a) -> int:
    from . import images

    v = a.verb
    if v == "pull":
        images.pull(b, a.name, a.quiet, a.platform)
        return 0
    if v == "push":
        images.push(b, a.name, a.quiet)
        return 0
    if v == "images":
        images.list_images(b, a)
        return 0
    if v == "tag":
        images.tag(b, a.source, a.target)
        return 0
    if v == "rmi":
        return images.rmi(b, a.images, a.force)
    if v == "save":
        images.save(b, a.images, a.output)
        return 0
    if v == "load":
        images.load(b, a.input, a.quiet)
        return 0
    images.import_rootfs(b, a.file, a.reference, a.message, a.change)  # "import"
    return 0


def _unsupported_flag(a: argparse.Namespace) -> str:
    """Flags docker has that pyctr parses but does not implement yet: refused, never silently ignored."""
    checks: dict[str, tuple[tuple[str, str], ...]] = {}
    for attr, flag in checks.get(a.verb, ()):
        if getattr(a, attr, None):
            return flag
    return ""


class _Args:
    """What argparse returns, for the invocations _version_args reads itself."""

    def __init__(self, **values) -> None:
        self.__dict__.update(values)


_GLOBAL_VALUES = {"-H": "address", "--host": "address", "--address": "address", "-n": "namespace",
                  "--namespace": "namespace"}


def _global_values(argv: list[str]) -> tuple[dict, int] | None:
    """The global -H/-n values before the verb and the verb's index; None for anything argparse must read."""
    values = {"address": default_address(), "namespace": default_namespace()}
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        flag, eq, value = argv[i].partition("=")
        dest = _GLOBAL_VALUES.get(flag)
        if dest is None:
            return None
        if not eq:
            if i + 1 >= len(argv) or argv[i + 1].startswith("-"):
                return None
            value = argv[i + 1]
            i += 1
        values[dest] = value
        i += 1
    return values, i


def _run_args(argv: list[str], verb: str) -> _Args | None:
    """`run`/`create` command lines read without argparse (runflags.parse); None for argparse to read."""
    found = _global_values(argv)
    if found is None or found[1] >= len(argv) or argv[found[1]] != verb:
        return None
    from .runflags import parse

    values = parse(argv[found[1] + 1:])
    return None if values is None else _Args(version=False, verb=verb, **found[0], **values)


def _version_args(argv: list[str]) -> _Args | None:
    """`[-H ADDR] [-n NS] version [-f FMT]` and `--version` read without building a parser (the parser is most
    of these commands' start-up); None for anything else, argparse's to read (and to word errors for)."""
    if argv in (["--version"], ["-v"]):
        return _Args(version=True, verb=None, address=default_address(), namespace=default_namespace())
    found = _global_values(argv)
    if found is None:
        return None
    values, i = found
    rest = argv[i:]
    if rest == ["version"]:
        fmt = ""
    elif len(rest) == 3 and rest[0] == "version" and rest[1] in ("-f", "--format") and not rest[2].startswith("-"):
        fmt = rest[2]
    elif len(rest) == 2 and rest[0] == "version" and rest[1].startswith("--format="):
        fmt = rest[1][len("--format="):]
    else:
        return None
    return _Args(version=False, verb="version", format=fmt, **values)


def _verb(argv: list[str]) -> str:
    i = 0
    while i < len(argv):
        if argv[i] in ("-H", "--host", "--address", "-n", "--namespace"):
            i += 2
        elif argv[i].startswith("-"):
            i += 1
        else:
            return argv[i]
    return ""


def run_error(exc: CLIError, verb: str) -> str:
    """docker run's report: `docker: <message>.`, with `See 'docker run --help'.` before the container ran."""
    text = exc.message if exc.message.endswith(".") else exc.message + "."
    text = f"{PROG}: {text}"
    if exc.status == 125:
        text += f"\nSee '{PROG} {verb} --help'."
    return text


def main(argv: list[str] | None = None) -> int:
    argv = _rewrite(list(sys.argv[1:] if argv is None else argv))
    if _verb(argv) == "compose":  # compose parses its own flags: hand it everything after the verb
        from ..compose.cli import main as compose_main

        i = next(i for i, x in enumerate(argv) if x == "compose" and _verb(argv[:i + 1]) == "compose")
        g = build_parser(only="compose").parse_args(argv[:i])
        return compose_main(argv[i + 1:], g.address, g.namespace)
    verb = _verb(argv)
    a = _run_args(argv, verb) if verb in ("run", "create") else _version_args(argv)
    try:
        try:
            if a is None:
                parser = build_parser(verb or None)
                a = parser.parse_args(argv)
        except FlagError:
            if not verb:
                raise
            parser = build_parser()  # should argparse see another verb than _verb: the full parser decides
            a = parser.parse_args(argv)
    except FlagError as exc:
        verb = exc.verb or _verb(argv)
        print(exc, file=sys.stderr)
        print(f"See '{PROG}{' ' + verb if verb and exc.status == 125 else ''} --help'", file=sys.stderr, end="")
        print("." if exc.status == 125 else "", file=sys.stderr)
        return exc.status
    if a.version and not a.verb:
        from .system import CLIENT_VERSION

        print(f"pyctr version {CLIENT_VERSION}")
        return 0
    if not a.verb:
        parser.print_help()
        return 0
    if a.verb == "run" and not a.image:
        return 125
    unsupported = _unsupported_flag(a)
    if unsupported:
        print(f"{PROG}: not supported yet: {a.verb} {unsupported}", file=sys.stderr)
        return 125 if a.verb in ("run", "create") else 1
    from ..client import Client

    client = Client(a.address, namespace=a.namespace)
    status = 1
    try:
        if a.verb == "version":
            from . import system

            try:
                client.connect()
            except errdefs.Unavailable as exc:
                system.version(None, a.format)
                raise CLIError(str(exc)) from None
            system.version(client, a.format)  # its one call needs no Backend (nor what backend imports)
            return 0
        from .backend import Backend

        status = dispatch(Backend(client, a.namespace), a)
    except CLIError as exc:
        print(run_error(exc, a.verb) if a.verb in ("run", "create") else exc.message, file=sys.stderr)
        status = exc.status
    except FlagError as exc:
        print(exc, file=sys.stderr)
        print(f"See '{PROG} {exc.verb} --help'.", file=sys.stderr)
        status = 125
    except errdefs.Unavailable as exc:
        text = str(exc) if str(exc).startswith("Cannot connect") else f"Error response from daemon: {exc}"
        status = 125 if a.verb in ("run", "create") else 1
        print(run_error(CLIError(text, 125), a.verb) if status == 125 else text, file=sys.stderr)
    except errdefs.Error as exc:
        print(f"Error response from daemon: {exc}", file=sys.stderr)
        status = 125 if a.verb in ("run", "create") else 1
    except OCIError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        status = 125 if a.verb in ("run", "create") else 1
    except KeyboardInterrupt:
        status = 130
    except OSError as exc:
        print(f"Error: {exc.strerror or exc}: {exc.filename}" if exc.filename else f"Error: {exc}", file=sys.stderr)
        status = 125 if a.verb in ("run", "create") else 1
    except BrokenPipeError:
        status = 1
    except Exception as exc:  # a bug of ours: one line, never a traceback (PYCTR_DEBUG=1 shows it)
        if os.environ.get("PYCTR_DEBUG"):
            raise
        print(f"Error: {type(exc).__name__}: {exc}", file=sys.stderr)
        status = 125 if a.verb in ("run", "create") else 1
    finally:
        try:
            sys.stdout.flush()
        except (BrokenPipeError, ValueError):
            pass
        client.close()
    return status


def main_exit() -> NoReturn:
    """The lean launcher's entry (pycontainerd.install_entry): main(), then exit without the interpreter's
    teardown (module clean-up costs a few ms a command and nothing is left to tidy: files are closed by
    the verbs and output is flushed here)."""
    status = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)


if __name__ == "__main__":
    sys.exit(main())
