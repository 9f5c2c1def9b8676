"""pyctr: `pyctr [--address SOCK | -H unix://SOCK] [--namespace NS] VERB …`, docker's verbs and flags.

Exit statuses as docker's: 0, 1 for errors, 125 for flag and daemon errors of run/create (126 when
the command cannot be invoked, 127 when it is not found), the container's status for foreground runs.
"""

from __future__ import annotations

import argparse
import os
import sys

from pyoci.errors import OCIError

from .. import errdefs, protocol
from .errors import CLIError

# Verb modules (and the client) are imported where a verb needs them: a start pays only for its own verb.
TYPE_CHECKING = False  # typing itself is not imported: a few ms a start
if TYPE_CHECKING:
    from typing import NoReturn

    from . import containers
    from .backend import Backend

PROG = "pyctr"
GROUPS = {
    "container": {"ls": "ps", "list": "ps", "ps": "ps", "remove": "rm", "inspect": "inspect",
                  "prune": "container-prune"},
    "image": {"ls": "images", "list": "images", "rm": "rmi", "remove": "rmi", "inspect": "inspect",
              "prune": "image-prune", "pull": "pull", "push": "push", "tag": "tag", "save": "save", "load": "load",
              "import": "import"},
    "system": {"prune": "system-prune", "info": "info", "events": "events"},
}


class FlagError(Exception):
    def __init__(self, message: str, verb: str, status: int = 125) -> None:
        super().__init__(message)
        self.verb = verb
        self.status = status


class Parser(argparse.ArgumentParser):
    """argparse with docker's flag errors: one line, `See 'pyctr VERB --help'.`, status 125."""

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
    p.add_argument("-d", "--detach", action="store_true")
    p.add_argument("--rm", action="store_true")
    p.add_argument("-e", "--env", action="append", default=[])
    p.add_argument("--env-file", action="append", default=[])
    p.add_argument("--name", default="")
    p.add_argument("-w", "--workdir", default="")
    p.add_argument("-u", "--user", default="")
    p.add_argument("--entrypoint", default=None)
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("-t", "--tty", action="store_true")
    p.add_argument("--cpus", type=float, default=0.0)
    p.add_argument("-m", "--memory", default="")
    p.add_argument("--pids-limit", type=int, default=0)
    p.add_argument("--read-only", action="store_true")
    p.add_argument("--cap-add", action="append", default=[])
    p.add_argument("--cap-drop", action="append", default=[])
    p.add_argument("--privileged", action="store_true")
    p.add_argument("--init", action="store_true")
    p.add_argument("-h", "--hostname", default="")
    p.add_argument("-l", "--label", action="append", default=[])
    p.add_argument("--restart", default="no")
    p.add_argument("--log-opt", action="append", default=[])
    p.add_argument("--pull", default="missing", choices=["missing", "always", "never"])
    p.add_argument("-p", "--publish", action="append", default=[])
    p.add_argument("-P", "--publish-all", action="store_true")
    p.add_argument("--expose", action="append", default=[])
    p.add_argument("--network", "--net", default="default")
    p.add_argument("--network-alias", "--net-alias", action="append", default=[])
    p.add_argument("--ip", default="")
    p.add_argument("--ip6", default="")
    p.add_argument("--dns", action="append", default=[])
    p.add_argument("--dns-search", action="append", default=[])
    p.add_argument("--dns-option", "--dns-opt", action="append", default=[])
    p.add_argument("--add-host", action="append", default=[])
    p.add_argument("-v", "--volume", action="append", default=[])
    p.add_argument("--mount", action="append", default=[])
    p.add_argument("--tmpfs", action="append", default=[])
    for flag in ("--health-cmd", "--health-interval", "--health-timeout", "--health-retries",
                 "--health-start-period"):
        p.add_argument(flag, default="")
    p.add_argument("--no-healthcheck", action="store_true")
    p.add_argument("--security-opt", action="append", default=[])
    p.add_argument("--detach-keys", default="")
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
    p.add_argument("-H", "--host", "--address", dest="address", default=_default_address())
    p.add_argument("-n", "--namespace", default=_default_namespace())
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
                                  a.ip_range, a.ipv6)
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
        dns_options=a.dns_option, add_hosts=a.add_host, ip=a.ip, ip6=a.ip6, volumes=a.volume, mounts=a.mount, tmpfs=a.tmpfs,
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


def _default_address() -> str:
    return os.environ.get("PYCTR_ADDRESS") or os.environ.get("CONTAINERD_ADDRESS") or protocol.DEFAULT_ADDRESS


def _default_namespace() -> str:
    return os.environ.get("CONTAINERD_NAMESPACE") or "default"


class _Args:
    """What argparse returns, for the invocations _version_args reads itself."""

    def __init__(self, **values) -> None:
        self.__dict__.update(values)


_GLOBAL_VALUES = {"-H": "address", "--host": "address", "--address": "address", "-n": "namespace",
                  "--namespace": "namespace"}


def _version_args(argv: list[str]) -> _Args | None:
    """`[-H ADDR] [-n NS] version [-f FMT]` and `--version` read without building a parser (the parser is most
    of these commands' start-up); None for anything else, argparse's to read (and to word errors for)."""
    if argv in (["--version"], ["-v"]):
        return _Args(version=True, verb=None, address=_default_address(), namespace=_default_namespace())
    values = {"address": _default_address(), "namespace": _default_namespace()}
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
    a = _version_args(argv)
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
