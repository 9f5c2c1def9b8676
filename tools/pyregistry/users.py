"""`pyregistry user add`: bcrypt entries in an htpasswd file, as `htpasswd -B` writes them.

Cost 10 (bcrypt.DefaultCost of Go, which Distribution itself uses when it creates an htpasswd file),
not `htpasswd -B`'s default of 5: the server remembers a password once it verified, so the cost is paid
once per user and process, and 10 is the floor current guidance accepts. Hashes are written in `$2y$`
form like `htpasswd -B`; Distribution and Apache both read `$2a$`/`$2b$`/`$2y$`.

The file is rewritten atomically (temp file + rename, mode 0600 for a new file, the old mode otherwise)
under a lock on its directory: an existing user's line is replaced in place, comments and other users are
kept, and concurrent adds do not lose each other's users.
"""

from __future__ import annotations

import fcntl
import os

import bcrypt

from pyoci.fsutil import atomic_write

from .config import Config
from .errors import ConfigError

DEFAULT_COST = 10
MAX_PASSWORD = 72  # bytes bcrypt reads; longer passwords would silently lose their tail


class UserError(ConfigError):
    """A user name or password that cannot go into an htpasswd file."""


def hash_password(password: str, cost: int = DEFAULT_COST) -> str:
    pw = password.encode("utf-8")
    if len(pw) > MAX_PASSWORD:
        raise UserError(f"password is longer than {MAX_PASSWORD} bytes, which bcrypt cannot hold")
    h = bcrypt.hashpw(pw, bcrypt.gensalt(cost)).decode()
    return "$2y$" + h[4:] if h.startswith("$2b$") else h


def add(htpasswd_path: str | os.PathLike, name: str, password: str, cost: int = DEFAULT_COST) -> None:
    """Add `name`, or replace its password when it is there already."""
    if not name or any(c in name for c in ":\r\n") or name != name.strip() or name.startswith("#"):
        raise UserError(f"user name {name!r} is empty or holds ':', a line break or edge spaces")
    if not password:
        raise UserError("password is empty")
    line = f"{name}:{hash_password(password, cost)}"
    path = os.fspath(htpasswd_path)
    parent = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(parent, exist_ok=True)
        dir_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        raise UserError(f"cannot open the directory of htpasswd file {path}: {e.strerror}") from None
    try:
        # Concurrent `user add`s take turns (a lock on the directory, so no lock file is left behind):
        # each reads the file the previous one renamed into place.
        fcntl.flock(dir_fd, fcntl.LOCK_EX)
        _rewrite(path, name, line)
    finally:
        os.close(dir_fd)


def _rewrite(path: str, name: str, line: str) -> None:
    try:
        with open(path, encoding="utf-8") as f:
            old = f.read().splitlines()
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        old, mode = [], 0o600
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read htpasswd file {path}: {getattr(e, 'strerror', None) or e}") from None
    out, replaced = [], False
    for existing in old:
        user = existing.strip().partition(":")[0]
        if user == name and not existing.lstrip().startswith("#"):
            if not replaced:
                out.append(line)
            replaced = True
        else:
            out.append(existing)
    if not replaced:
        out.append(line)
    try:
        atomic_write(path, ("\n".join(out) + "\n").encode(), mode=mode)
    except OSError as e:
        raise UserError(f"cannot write htpasswd file {path}: {e.strerror}") from None


def htpasswd_path(config: Config) -> str:
    """The htpasswd file a config names (auth.htpasswd.path), for `user add --config`."""
    if config.auth.htpasswd is None:
        raise UserError(f"{config.source or 'config'}: has no auth.htpasswd.path to add users to")
    return config.auth.htpasswd.path


def read_password(stream) -> str:
    """The password from stdin: its first line, without the line break (as `htpasswd -i`)."""
    data = stream.readline()
    return data.rstrip("\r\n") if isinstance(data, str) else data.decode("utf-8").rstrip("\r\n")
