"""`pyctr compose [-f FILE]… [-p NAME] [--project-directory DIR] [--env-file FILE] VERB …`.

One entry for pyctr: `main(argv, address, namespace) -> int`. Errors are one line on stderr, status 1
(docker compose's); a bad compose file names the key.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn

import yaml

from pyoci.errors import OCIError

from .. import errdefs
from ..client import Client
from ..ctr import execlogs
from ..ctr.backend import Backend, CLIError
from .loader import load
from .model import ComposeError, to_config
from .project import Compose

PROG = "pyctr compose"


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> Parser:
    p = Parser(prog=PROG, description="Define and run multi-container applications on pycontainerd")
    p.add_argument("-f", "--file", action="append", default=[], help="compose file (repeatable, later overrides)")
    p.add_argument("-p", "--project-name", default="")
    p.add_argument("--project-directory", default="")
    p.add_argument("--env-file", default=None)
    p.add_argument("--profile", action="append", default=None, help="enable services of this profile")
    sub = p.add_subparsers(dest="verb", parser_class=Parser)
    s = sub.add_parser("up", help="create and start containers")
    s.add_argument("-d", "--detach", action="store_true")
    s.add_argument("--build", action="store_true")
    s.add_argument("--no-build", action="store_true")
    s.add_argument("--no-start", action="store_true")
    s.add_argument("--force-recreate", action="store_true")
    s.add_argument("--scale", action="append", default=[], metavar="SERVICE=NUM")
    s.add_argument("services", nargs="*")
    s = sub.add_parser("down", help="stop and remove containers, networks (and volumes with -v)")
    s.add_argument("-v", "--volumes", action="store_true")
    s.add_argument("--rmi", default="", choices=["", "local", "all"])
    s = sub.add_parser("ps", help="list containers")
    s.add_argument("-a", "--all", action="store_true")
    s.add_argument("-q", "--quiet", action="store_true")
    s.add_argument("--services", action="store_true")
    s.add_argument("--format", default="table", help="table, json, or a Go template (docker compose v2's)")
    s = sub.add_parser("logs", help="view output from containers")
    s.add_argument("-f", "--follow", action="store_true")
    s.add_argument("-n", "--tail", default="all")
    s.add_argument("-t", "--timestamps", action="store_true")
    s.add_argument("--no-log-prefix", action="store_true")
    s.add_argument("services", nargs="*")
    s = sub.add_parser("build", help="build services through pybuild")
    s.add_argument("services", nargs="*")
    s = sub.add_parser("pull", help="pull service images")
    s.add_argument("services", nargs="*")
    s = sub.add_parser("run", help="run a one-off command in a new container of a service")
    s.add_argument("-d", "--detach", action="store_true")
    s.add_argument("--rm", action="store_true")
    s.add_argument("-e", dest="env", action="append", default=[])
    s.add_argument("-l", "--label", action="append", default=[])
    s.add_argument("--entrypoint", default=None)
    s.add_argument("--name", default="")
    s.add_argument("--no-deps", action="store_true")
    s.add_argument("-T", dest="no_tty", action="store_true")
    s.add_argument("-u", "--user", default="")
    s.add_argument("-w", "--workdir", default="")
    s.add_argument("--service-ports", action="store_true")
    s.add_argument("-p", "--publish", action="append", default=[])
    s.add_argument("-v", "--volume", action="append", default=[])
    s.add_argument("service")
    s.add_argument("command", nargs=argparse.REMAINDER)
    s = sub.add_parser("exec", help="run a command in a running service container")
    s.add_argument("--index", type=int, default=1)
    s.add_argument("-T", "--no-TTY", dest="no_tty", action="store_true")
    s.add_argument("-d", "--detach", action="store_true")
    s.add_argument("-e", "--env", action="append", default=[])
    s.add_argument("-w", "--workdir", default="")
    s.add_argument("-u", "--user", default="")
    s.add_argument("service")
    s.add_argument("command", nargs=argparse.REMAINDER)
    s = sub.add_parser("scale", help="set the number of containers of services")
    s.add_argument("scales", nargs="+", metavar="SERVICE=NUM")
    for name in ("start", "stop", "restart"):
        sub.add_parser(name, help=f"{name} services").add_argument("services", nargs="*")
    s = sub.add_parser("config", help="print the normalised compose model")
    s.add_argument("--services", action="store_true")
    s.add_argument("--volumes", action="store_true")
    s.add_argument("-q", "--quiet", action="store_true")
    return p


def parse_scale(project, items: list[str]) -> dict[str, int]:
    """--scale SERVICE=NUM (repeatable), with docker-compose's messages."""
    out = {}
    for item in items:
        name, sep, num = item.partition("=")
        if not sep:
            raise UsageError("Arguments to scale should be in the form service=num")
        if not num.isdigit():
            raise ComposeError(f'Number of containers for service "{name}" is not a number')
        project.service(name)
        out[name] = int(num)
    return out


def run(a, address: str, namespace: str) -> int:
    cwd = a.project_directory or os.getcwd()
    files = [os.path.abspath(f) for f in a.file] or None
    project = load(files, a.project_name, cwd=cwd, env_file=a.env_file, profiles=a.profile)
    if a.verb == "config":
        if a.services:
            print("\n".join(project.order()))
        elif a.volumes:
            print("\n".join(sorted(project.volumes)))
        elif not a.quiet:
            sys.stdout.write(yaml.safe_dump(to_config(project), sort_keys=False, default_flow_style=False))
        return 0
    client = Client(address, namespace=namespace)
    b = Backend(client, namespace)
    c = Compose(b, project)
    try:
        v = a.verb
        if v == "up":
            if a.no_build and a.build:
                raise ComposeError("--build and --no-build are incompatible")
            c.up(a.services or None, build=a.build, no_start=a.no_start, force_recreate=a.force_recreate,
                 scale=parse_scale(project, a.scale))
            if not a.detach and not a.no_start:
                try:  # attached: the services' output until they all exit (Ctrl-C stops them)
                    c.logs(a.services or None, follow=True, address=address)
                except KeyboardInterrupt:
                    print("Gracefully stopping... (press Ctrl+C again to force)", file=sys.stderr)
                    c.stop(a.services or None)
                    return 130
        elif v == "down":
            c.down(a.volumes, a.rmi)
        elif v == "ps":
            c.ps(a.all, a.quiet, a.services, a.format)
        elif v == "logs":
            c.logs(a.services or None, a.follow, a.tail, a.timestamps, a.no_log_prefix, address=address)
        elif v == "build":
            c.build(a.services or None)
        elif v == "pull":
            c.pull(a.services or None)
        elif v == "exec":
            if not a.command:
                raise UsageError('"exec" requires at least 2 arguments')
            s = project.service(a.service)
            # compose's defaults: stdin attached (--interactive=true), a terminal when ours is one and no -T
            tty = not a.no_tty and not a.detach and sys.stdin.isatty()
            return execlogs.exec_(b, c.container_name(s, a.index), a.command, not a.detach, tty, a.env,
                                  a.workdir, a.user, a.detach)
        elif v == "run":
            from .oneoff import RunOptions, run as run_oneoff
            return run_oneoff(c, RunOptions(a.service, a.command, a.detach, a.rm, a.env, a.entrypoint, a.no_deps,
                                            a.name, a.user, a.workdir, a.no_tty, a.service_ports, a.label,
                                            a.publish, a.volume))
        elif v == "scale":
            scale = parse_scale(project, a.scales)
            c.up(sorted(scale), scale=scale)
        elif v == "start":
            c.start(a.services or None)
        elif v == "stop":
            c.stop(a.services or None)
        elif v == "restart":
            c.restart(a.services or None)
        return 0
    finally:
        client.close()


def main(argv: list[str], address: str, namespace: str) -> int:
    """`pyctr compose …`: argv after `compose`; the daemon's address and namespace from pyctr's flags."""
    try:
        a = build_parser().parse_args(argv)
    except UsageError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    if not a.verb:
        build_parser().print_help()
        return 0
    try:
        return run(a, address, namespace)
    except UsageError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except ComposeError as exc:
        text = str(exc)  # key errors as compose's validator (`services.web.ports[0]: …`); project errors `Error: …`
        print(f"Error: {text}" if text.startswith('service "') else text, file=sys.stderr)
        return 1
    except CLIError as exc:
        print(exc.message, file=sys.stderr)
        return exc.status
    except errdefs.Unavailable as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except errdefs.Error as exc:
        print(f"Error response from daemon: {exc}", file=sys.stderr)
        return 1
    except OCIError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug of ours: one line (PYCTR_DEBUG=1 shows the traceback)
        if os.environ.get("PYCTR_DEBUG"):
            raise
        print(f"Error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
