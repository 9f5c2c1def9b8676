"""`pyregistry serve | garbage-collect | user add`: flags override the YAML config; errors are one line."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys

from pyoci.errors import OCIError

from . import __version__
from .config import DEFAULT_ADDR, DEFAULT_ROOT, Config, load
from .errors import ConfigError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pyregistry", description="An OCI Distribution v1.1 registry.")
    p.add_argument("--version", action="version", version=f"pyregistry {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the registry")
    serve.add_argument("config_file", nargs="?", help="config.yml (same as --config, as Distribution takes it)")
    serve.add_argument("--config", "-c", help="YAML config in Distribution's shape (default: built-in defaults)")
    serve.add_argument("--addr", help=f"HOST:PORT to listen on (default {DEFAULT_ADDR})")
    serve.add_argument("--root", help=f"storage root directory (default {DEFAULT_ROOT})")

    gc = sub.add_parser("garbage-collect", help="delete blobs and manifests nothing references")
    gc.add_argument("config_file", nargs="?", help="config.yml (same as --config)")
    gc.add_argument("--config", "-c")
    gc.add_argument("--root", help="storage root directory (overrides the config)")
    gc.add_argument("--dry-run", "-d", action="store_true", help="only print what would be deleted")
    gc.add_argument("--delete-untagged", "-m", action="store_true", help="also delete manifests no tag names")
    gc.add_argument("--grace", type=_seconds, default=None, metavar="SECONDS",
                    help="keep unreferenced blobs written, pushed again or mounted less than SECONDS ago "
                         "(default 3600; 0 sweeps them all)")

    user = sub.add_parser("user", help="manage htpasswd users")
    usub = user.add_subparsers(dest="user_command", required=True)
    add = usub.add_parser("add", help="add or replace a user (bcrypt); the password is read from stdin")
    add.add_argument("name")
    add.add_argument("--htpasswd", help="htpasswd file (default: auth.htpasswd.path of the config)")
    add.add_argument("--config", "-c")
    return p


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}")
    return value


def _config(args: argparse.Namespace) -> Config:
    path = getattr(args, "config", None) or getattr(args, "config_file", None)
    return load(path).with_overrides(addr=getattr(args, "addr", None), root=getattr(args, "root", None))


def _serve(args: argparse.Namespace) -> int:
    from .app import serve, setup_logging

    config = _config(args)
    setup_logging(config)
    authorizer = None
    if config.auth.enabled:
        try:
            auth = importlib.import_module("pyregistry.auth")
        except ImportError:
            raise ConfigError(f"{config.source or 'config'}: auth: this build of pyregistry has no auth module")
        authorizer = auth.make_authorizer(config)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; plain asyncio still works
        asyncio.run(serve(config, authorizer))
    else:
        uvloop.run(serve(config, authorizer))
    return 0


def _gc(args: argparse.Namespace) -> int:
    gc = importlib.import_module("pyregistry.gc")
    grace = gc.DEFAULT_GRACE if args.grace is None else args.grace
    result = gc.run(_config(args), args.dry_run, args.delete_untagged, grace=grace)
    return result if isinstance(result, int) else 0


def _user_add(args: argparse.Namespace) -> int:
    users = importlib.import_module("pyregistry.users")
    path = args.htpasswd
    if not path:
        config = load(args.config)
        if config.auth.htpasswd is None:
            raise ConfigError("user add: give --htpasswd FILE or a config with auth.htpasswd.path")
        path = config.auth.htpasswd.path
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise ConfigError("user add: no password on stdin")
    result = users.add(path, args.name, password)
    return result if isinstance(result, int) else 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "garbage-collect":
            return _gc(args)
        return _user_add(args)
    except (OCIError, OSError) as e:
        msg = str(e) if isinstance(e, OCIError) else f"{getattr(e, 'filename', '') or ''}: {e.strerror or e}"
        print(f"pyregistry: {msg}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
