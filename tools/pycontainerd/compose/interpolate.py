"""Variable interpolation of compose files (`$V`, `${V}`, `${V:-d}`, `${V-d}`, `${V:?err}`, `${V?err}`, `$$`)
and `.env` files, as compose-go does it."""

from __future__ import annotations

import os
import re
from typing import Any, Mapping

from .model import ComposeError

_NAME = r"[_a-zA-Z][_a-zA-Z0-9]*"
_BRACED = re.compile(r"^(?P<name>" + _NAME + r")(?:(?P<op>:-|-|:\?|\?|:\+|\+)(?P<arg>.*))?$", re.S)


def _closing(text: str, start: int) -> int:
    """Index of the `}` closing the `${` whose body starts at `start` (defaults may nest `${…}`), or -1."""
    depth = 1
    i = start
    while i < len(text):
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def substitute(text: str, env: Mapping[str, str], where: str) -> str:
    """One string with its variables replaced; raises ComposeError naming `where` on a bad or missing one."""
    bad = ComposeError(f'{where}: invalid interpolation format "{text}"; you may need to escape any $ with another $')
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c != "$":
            out.append(c)
            i += 1
            continue
        nxt = text[i + 1:i + 2]
        if nxt == "$":
            out.append("$")
            i += 2
            continue
        if nxt == "{":
            end = _closing(text, i + 2)
            if end < 0:
                raise bad
            out.append(_braced(text[i + 2:end], env, where, bad))
            i = end + 1
            continue
        m = re.match(_NAME, text[i + 1:])
        if not m:
            raise bad
        out.append(env.get(m.group(0), ""))
        i += 1 + m.end()
    return "".join(out)


def _braced(body: str, env: Mapping[str, str], where: str, bad: ComposeError) -> str:
    b = _BRACED.match(body)
    if not b:
        raise bad
    name, op, arg = b.group("name"), b.group("op"), b.group("arg")
    value = env.get(name)
    if op is None:
        return value or ""
    unset_or_empty = not value
    if op in (":?", "?"):
        if (op == ":?" and unset_or_empty) or (op == "?" and value is None):
            msg = substitute(arg, env, where)
            raise ComposeError(f"{where}: required variable {name} is missing a value" + (f": {msg}" if msg else ""))
        return value
    use_arg = {":-": unset_or_empty, "-": value is None, ":+": not unset_or_empty, "+": value is not None}[op]
    if use_arg:
        return substitute(arg, env, where)
    return "" if op in (":+", "+") else value


def interpolate(node: Any, env: Mapping[str, str], where: str = "") -> Any:
    """Every string value of a parsed YAML document interpolated (keys are not, as compose)."""
    if isinstance(node, str):
        return substitute(node, env, where) if "$" in node else node
    if isinstance(node, dict):
        return {k: interpolate(v, env, f"{where}.{k}" if where else str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, env, f"{where}[{i}]") for i, v in enumerate(node)]
    return node


def read_dotenv(path: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """KEY=VALUE lines (optional `export `, quotes, # comments), values interpolated from earlier lines and
    `env`; a missing file is an empty one."""
    out: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return out
    except OSError as exc:
        raise ComposeError(f"{path}: {exc.strerror or exc}") from None
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", key):
            raise ComposeError(f"{path}:{n}: unexpected character in variable name \"{key}\"")
        if not sep:
            if env is not None and key in env:
                out[key] = env[key]
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            quote, value = value[0], value[1:-1]
            if quote == '"':
                value = value.replace("\\n", "\n").replace('\\"', '"')
                value = substitute(value, {**(env or {}), **out}, f"{path}:{n}")
        else:
            value = re.split(r"\s+#", value, maxsplit=1)[0].rstrip()
            value = substitute(value, {**(env or {}), **out}, f"{path}:{n}")
        out[key] = value
    return out


def environment(project_dir: str, env_file: str | None = None) -> dict[str, str]:
    """What interpolation sees: `.env` of the project directory, overridden by the process environment."""
    dotenv = read_dotenv(env_file or os.path.join(project_dir, ".env"), os.environ)
    return {**dotenv, **os.environ}
