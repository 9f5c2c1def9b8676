"""`--format`: the subset of Go's text/template docker users write (`{{json .}}`, `{{.A.B}}`,
`table …`, `{{upper .X}}`, `{{index .Labels "k"}}`, `{{join .Args " "}}`), and docker's tables
(text/tabwriter with minwidth 10, padding 3, as docker/cli's formatter)."""

from __future__ import annotations

import json
import re
import shlex

from pyoci.errors import OCIError

TYPE_CHECKING = False  # typing only for type checkers: pyctr pays for every import it starts with
if TYPE_CHECKING:
    from typing import Any, Callable


class TemplateError(OCIError):
    """A --format template that cannot be parsed or run."""


_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.S)


def go_json(value: Any) -> str:
    """encoding/json's Marshal: compact, <>& escaped as Go does."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def go_str(value: Any) -> str:
    """fmt's %v of a decoded JSON value."""
    if value is None:
        return "<no value>"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return "[" + " ".join(go_str(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_str(value[k])}" for k in sorted(value)) + "]"
    return str(value)


def _lookup(obj: Any, path: str) -> Any:
    if path == ".":
        return obj
    for part in path.strip(".").split("."):
        if isinstance(obj, dict):
            if part not in obj:
                return None
            obj = obj[part]
        else:
            raise TemplateError(f"template: can't evaluate field {part} in type {type(obj).__name__}")
    return obj


def _arg(token: str, obj: Any) -> Any:
    if token.startswith("."):
        return _lookup(obj, token)
    if token.startswith('"') or token.startswith("'") or token.startswith("`"):
        return token[1:-1]
    try:
        return int(token)
    except ValueError:
        raise TemplateError(f'template: function "{token}" not defined') from None


_FUNCS: dict[str, Callable[..., Any]] = {
    "json": lambda v: go_json(v),
    "upper": lambda v: go_str(v).upper(),
    "lower": lambda v: go_str(v).lower(),
    "title": lambda v: go_str(v).title(),
    "split": lambda v, sep: go_str(v).split(sep),
    "join": lambda v, sep: sep.join(go_str(x) for x in (v or [])),
    "index": lambda v, *keys: _index(v, keys),
    "truncate": lambda v, n: go_str(v)[:int(n)],
    "println": lambda *v: " ".join(go_str(x) for x in v) + "\n",
    "print": lambda *v: "".join(go_str(x) for x in v),
    "len": lambda v: len(v or []),
}


def _index(value: Any, keys) -> Any:
    for k in keys:
        if isinstance(value, dict):
            value = value.get(k)
        elif isinstance(value, list):
            value = value[int(k)]
        else:
            return None
    return value


def _eval(expr: str, obj: Any) -> Any:
    value: Any = None
    first = True
    for stage in expr.split("|"):
        try:
            tokens = shlex.split(stage.strip(), posix=False)
        except ValueError as exc:
            raise TemplateError(f"template: {exc}") from None
        if not tokens:
            raise TemplateError("template: missing value for command")
        head, rest = tokens[0], tokens[1:]
        if head.startswith(".") and not rest and first:
            value = _lookup(obj, head)
        elif head in _FUNCS:
            args = [_arg(t, obj) for t in rest] + ([] if first else [value])
            try:
                value = _FUNCS[head](*args)
            except TypeError:
                raise TemplateError(f"template: wrong number of args for {head}") from None
        else:
            raise TemplateError(f'template: function "{head}" not defined')
        first = False
    return value


def render(template: str, obj: Any) -> str:
    """One object through a template (escape sequences \\t and \\n as docker's format strings allow)."""
    out = []
    pos = 0
    template = template.replace("\\t", "\t").replace("\\n", "\n")
    for m in _ACTION.finditer(template):
        out.append(template[pos:m.start()])
        expr = m.group(1)
        if expr.startswith("/*"):
            pass
        else:
            value = _eval(expr, obj)
            out.append(value if isinstance(value, str) else go_str(value))
        pos = m.end()
    out.append(template[pos:])
    return "".join(out)


def tabulate(lines: list[str], minwidth: int = 10, padding: int = 3) -> str:
    """text/tabwriter: tab-terminated cells aligned in columns, the last cell of a line left as is."""
    rows = [line.split("\t") for line in lines]
    widths: dict[int, int] = {}
    for cells in rows:
        for i, cell in enumerate(cells[:-1]):
            widths[i] = max(widths.get(i, minwidth), len(cell) + padding)
    out = []
    for cells in rows:
        text = "".join(cell.ljust(widths[i]) for i, cell in enumerate(cells[:-1])) + cells[-1]
        out.append(text)
    return "".join(line + "\n" for line in out)


def header_for(template: str, headers: dict[str, str]) -> str:
    """The header line of a `table` template: each `{{.Field}}` replaced by its column name."""
    def repl(m: re.Match) -> str:
        expr = m.group(1).strip()
        key = expr.split()[-1].lstrip(".") if expr else ""
        return headers.get(key, key.upper())
    return _ACTION.sub(repl, template.replace("\\t", "\t").replace("\\n", "\n"))


def print_rows(fmt: str, rows: list[dict], headers: dict[str, str], write: Callable[[str], Any]) -> None:
    """Rows through `fmt`: `table …` prints a header and aligns columns; `json`, else a template per row."""
    if fmt == "json":
        fmt = "{{json .}}"
    if fmt.startswith("table"):
        body = fmt[len("table"):].strip() or "{{json .}}"
        lines = [header_for(body, headers)] + [render(body, r) for r in rows]
        write(tabulate(lines))
        return
    for r in rows:
        write(render(fmt, r) + "\n")
