"""`pyctr compose run`: a one-off container of a service, as docker compose makes it.

Named PROJECT-SERVICE-run-<12 hex> (compose v2's form of 1.29's PROJECT_SERVICE_run_<12 hex>), labelled
com.docker.compose.oneoff=True with a com.docker.compose.slug, without the replica number, the config
hash, the service's network alias (compose gives one-off containers none) or its static addresses
(they belong to the service's own container); ports are published
only with --service-ports; it joins all the service's networks; the service's dependencies are brought
up first unless --no-deps.
"""

from __future__ import annotations

import os
import secrets
import shlex
import sys
from dataclasses import dataclass, field

from ..ctr import containers
from ..ctr.backend import CLIError
from ..records import replace
from .model import ComposeError
from .project import HASH_LABEL, NUMBER_LABEL, ONEOFF_LABEL, Compose

SLUG_LABEL = "com.docker.compose.slug"


@dataclass
class RunOptions:
    service: str
    command: list[str] = field(default_factory=list)
    detach: bool = False
    rm: bool = False
    env: list[str] = field(default_factory=list)
    entrypoint: str | None = None
    no_deps: bool = False
    name: str = ""
    user: str = ""
    workdir: str = ""
    no_tty: bool = False
    service_ports: bool = False
    labels: list[str] = field(default_factory=list)
    publish: list[str] = field(default_factory=list)   # -p, besides the service's with --service-ports
    volumes: list[str] = field(default_factory=list)   # -v, besides the service's


def _env(items: list[str]) -> list[str]:
    """-e KEY=VALUE, or -e KEY taking our environment's value (dropped when unset), as compose does."""
    out = []
    for item in items:
        if "=" in item:
            out.append(item)
        elif item in os.environ:
            out.append(f"{item}={os.environ[item]}")
    return out


def _stdin_fd() -> int | None:
    """Our stdin's descriptor when there is a real one (compose attaches it, as run -i does)."""
    try:
        fd = sys.stdin.fileno()
        os.fstat(fd)
        return fd
    except (AttributeError, OSError, ValueError):
        return None


def options(c: Compose, o: RunOptions) -> containers.CreateOptions:
    """The service's create options turned into the one-off container's."""
    s = c.project.service(o.service)
    base = c.create_options(s)
    slug = secrets.token_hex(32)
    name = o.name or f"{c.project.name}-{s.name}-run-{slug[:12]}"
    labels = [lb for lb in base.labels if lb.split("=", 1)[0] not in (ONEOFF_LABEL, NUMBER_LABEL, HASH_LABEL)]
    labels += [f"{ONEOFF_LABEL}=True", f"{SLUG_LABEL}={slug}", *o.labels]
    args = list(o.command) if o.command else list(base.args)
    entrypoint = base.entrypoint
    if o.entrypoint is not None:
        words = shlex.split(o.entrypoint)
        entrypoint = words[0] if words else ""
        args = words[1:] + (list(o.command) if o.command else list(s.command or []))
    tty = not o.no_tty and not o.detach and _stdin_fd() is not None and os.isatty(_stdin_fd())
    return replace(  # CreateOptions is a records.record, not a dataclass
        base, name=name, labels=labels, args=args, entrypoint=entrypoint, env=base.env + _env(o.env),
        user=o.user or base.user, workdir=o.workdir or base.workdir, detach=o.detach, rm=o.rm,
        interactive=not o.detach and _stdin_fd() is not None, tty=tty, publish=(base.publish if o.service_ports else []) + list(o.publish),
        volumes=base.volumes + list(o.volumes),
        network_aliases=[], ip="", ip6="", restart="no" if o.rm else base.restart,
        extra_endpoints={net: {"Aliases": None} for net in base.extra_endpoints})


def run(c: Compose, o: RunOptions) -> int:
    """Bring the dependencies up (unless --no-deps), then the one-off container: detached, its name is
    printed; attached, its output streams and its exit status is ours."""
    s = c.project.service(o.service)
    deps = [n for n in c.project.order([s.name]) if n != s.name]
    if deps and not o.no_deps:  # started as they are: a scaled dependency keeps its replicas (compose#4803)
        c.up(deps, converge=False)
    if s.build and c.b.find_image(c.image_name(s)) is None:
        c.build([s.name])
    c.ensure_networks([s])
    c.ensure_volumes([s])
    opts = options(c, o)
    if o.detach:
        created = c.create(s, options=opts)
        c.start_container(s, name=created.name)
        print(created.name, file=c.out, flush=True)
        return 0
    try:
        return containers.run(c.b, opts)
    except CLIError as exc:
        raise ComposeError(f"service {s.name}: {exc.message}") from None
