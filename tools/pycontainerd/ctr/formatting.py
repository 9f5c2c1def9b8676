"""`--format`: Go's text/template (ctr/gotemplate.py) with docker's functions and error messages, `table …`
and docker's tables (text/tabwriter with minwidth 10, padding 3, as docker/cli's formatter)."""

from __future__ import annotations

import json
import re

from pyoci.errors import OCIError

from .errors import CLIError

TYPE_CHECKING = False  # typing only for type checkers: pyctr pays for every import it starts with
if TYPE_CHECKING:
    from typing import Any, Callable


class TemplateError(CLIError, OCIError):
    """A --format template that cannot be parsed or run: docker's message and exit status."""


_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.S)

# docker's inspect JSON fields that are Go maps (a missing key reads `<no value>`); other objects are structs
_GO_MAPS = frozenset({"Labels", "Networks", "Ports", "ExposedPorts", "Volumes", "Options", "DriverOpts", "Containers",
                      "Data", "Sysctls", "StorageOpt", "Tmpfs", "Runtimes", "Attributes", "Annotations",
                      "IndexConfigs", "Peers", "Services", "Status"})

_OMITEMPTY = frozenset({"Health", "Healthcheck", "Node", "SizeRw", "SizeRootFs", "StopSignal", "StopTimeout", "Shell",
                        "ArgsEscaped", "OnBuild", "MacAddress", "NetworkDisabled", "Platform", "Parent", "Comment"})

# omitted pointer fields: nil in docker's typed value (`{{.State.Health}}` prints `<nil>`)
_NIL_POINTERS = {"Health": "*types.Health", "Healthcheck": "*container.HealthConfig", "Node": "*types.ContainerNode",
                 "StopTimeout": "*int", "SizeRw": "*int64", "SizeRootFs": "*int64"}


def go_json(value: Any) -> str:
    """encoding/json's Marshal: compact, <>& escaped as Go does."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def go_str(value: Any) -> str:
    """fmt's %v of a decoded JSON value (`<no value>` for nil on top, `<nil>` inside a map or list)."""
    from .gotemplate import fmt_v

    return fmt_v(value)


def _docker_json(value: Any) -> str:
    """docker's `json`: an Encoder with SetEscapeHTML(false), the trailing newline trimmed."""
    from .gotemplate import MISSING, NilPointer

    if value is MISSING or isinstance(value, NilPointer):
        return "null"
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _title(s: str) -> str:
    """strings.Title: the first letter of each word upper-cased, the rest kept."""
    out, prev = [], " "
    for c in s:
        out.append(c.upper() if not (prev.isalnum() or prev == "_") else c)
        prev = c
    return "".join(out)


def _split(s: str, sep: str) -> list[str]:
    return list(s) if sep == "" else s.split(sep)


def _join(items: Any, sep: str) -> str:
    return sep.join(go_str(x) for x in (items or []))


def _pad(s: str, prefix: int, suffix: int) -> str:
    return s if s == "" else " " * max(prefix, 0) + s + " " * max(suffix, 0)


def _truncate(s: str, n: int) -> str:
    return s if len(s.encode()) < n else s.encode()[:max(n, 0)].decode("utf-8", "replace")


def _docker_funcs() -> dict:
    """docker/cli's templates.basicFunctions over Go's builtins."""
    from .gotemplate import Func

    return {"json": Func(_docker_json, 1), "split": Func(_split, 2, types=("string", "string")),
            "join": Func(_join, 2, types=("[]string", "string")), "title": Func(_title, 1, types=("string",)),
            "lower": Func(str.lower, 1, types=("string",)), "upper": Func(str.upper, 1, types=("string",)),
            "pad": Func(_pad, 3, types=("string", "int", "int")),
            "truncate": Func(_truncate, 2, types=("string", "int"))}


def _is_struct(parent: str, obj: dict, name: str) -> Any:
    """Whether `obj.name` fails in docker's typed value: `obj` was a Go struct and `name` is none of the
    fields JSON omits when empty (a nil *Health reads as nothing, it does not fail)."""
    if name in _NIL_POINTERS:
        from .gotemplate import NilPointer

        return NilPointer(_NIL_POINTERS[name])
    if parent in _GO_MAPS or name in _OMITEMPTY:
        return None
    return "struct" if obj and all(k[:1].isupper() and k.isidentifier() for k in obj) else None


class Style:
    """How one docker verb reports template errors, and the Go type of its rows (docker's formatter
    context: a field it does not have fails, `can't evaluate field X in type T`). A plain class: pyctr's
    start-up pays for dataclasses."""

    __slots__ = ("name", "parse_prefix", "parse_status", "exec_prefix", "typename", "fields")

    def __init__(self, name: str = "", parse_prefix: str = "template parsing error: ", parse_status: int = 1,
                 exec_prefix: str = "template parsing error: ", typename: str = "",
                 fields: frozenset = frozenset()) -> None:
        self.name = name  # the template's name: docker version's is "version"
        self.parse_prefix = parse_prefix
        self.parse_status = parse_status
        self.exec_prefix = exec_prefix
        self.typename = typename
        self.fields = fields  # the context's fields pyctr's rows may lack (they read `<no value>`)


_PS_FIELDS = frozenset({"ID", "Names", "Image", "Command", "CreatedAt", "RunningFor", "Ports", "State", "Status",
                        "Size", "Labels", "Label", "Mounts", "LocalVolumes", "Networks",
                        # compose v2's ps rows
                        "Name", "Service", "Project", "Health", "ExitCode", "Publishers"})
STYLES = {
    "": Style(parse_prefix="failed to parse template: ", exec_prefix="failed to execute template: "),
    "ps": Style(parse_prefix="failed to parse template: ", exec_prefix="failed to execute template: ",
                typename="*formatter.ContainerContext", fields=_PS_FIELDS),
    "images": Style(typename="*formatter.imageContext", fields=frozenset(
        {"ID", "Repository", "Tag", "Digest", "CreatedSince", "CreatedAt", "Size", "Containers", "VirtualSize",
         "SharedSize", "UniqueSize"})),
    "stats": Style(typename="*container.statsContext", fields=frozenset(
        {"Container", "Name", "ID", "CPUPerc", "MemUsage", "NetIO", "BlockIO", "MemPerc", "PIDs"})),
    "networks": Style(typename="*network.networkContext", fields=frozenset(
        {"ID", "Name", "Driver", "Scope", "IPv6", "Internal", "Labels", "Label", "CreatedAt"})),
    "volumes": Style(typename="*volume.volumeContext", fields=frozenset(
        {"Name", "Driver", "Scope", "Mountpoint", "Labels", "Label", "Links", "Size", "Group", "Availability",
         "Status"})),
    "inspect": Style(parse_status=64),
    # docker events tries the template on an empty message first: any error is a parse error there
    "events": Style(parse_prefix="Error parsing format: ", parse_status=64, exec_prefix="Error parsing format: ",
                    typename="*events.Message", fields=frozenset(
                        {"Status", "ID", "From", "Type", "Action", "Actor", "Scope", "Time", "TimeNano"})),
    "version": Style(name="version", parse_status=64, exec_prefix=""),
    "info": Style(parse_status=64, exec_prefix=""),
}


def style_for(obj: Any = None, headers: dict | None = None) -> str:
    """The verb a row or document comes from, by its shape (callers may name it instead)."""
    keys = set(headers or ()) | (set(obj) if isinstance(obj, dict) else set())
    if headers is not None:
        for kind, marks in (("ps", {"Names", "Ports"}), ("images", {"Repository", "Tag"}),
                            ("stats", {"CPUPerc", "MemUsage"})):
            if marks <= keys:
                return kind
        return ""
    if not isinstance(obj, dict):
        return ""
    if keys == {"Client", "Server"}:
        return "version"
    if "ContainersRunning" in keys:
        return "info"
    if {"Type", "Action", "Actor"} <= keys:
        return "events"
    if {"IPAM", "Driver"} <= keys or ("Mountpoint" in keys and keys & {"Options", "CreatedAt", "Labels"}):
        return "inspect"  # network and volume inspect documents (their ls rows have neither)
    if keys == {"ID", "Name", "Driver", "Scope"}:
        return "networks"
    if keys == {"Driver", "Name", "Mountpoint", "Scope"}:
        return "volumes"
    return ""


def parse(template: str, style: str = ""):
    """The template as docker parses a --format (`\\t`, `\\n` as tab and newline); TemplateError if it does not."""
    from . import gotemplate

    st = STYLES[style]
    template = template.replace("\\t", "\t").replace("\\n", "\n")
    try:
        return gotemplate.Template.parse(template, _docker_funcs(), name=st.name)
    except gotemplate.ParseError as exc:
        raise TemplateError(f"{st.parse_prefix}{exc}", st.parse_status) from None


def _row(obj: Any, style: str = "") -> Any:
    """docker's row contexts have `Label NAME` (a method) over their `Labels` text (`k=v,k2=v2`); an event
    has its Go field names (`.Status`) over its JSON keys (`status`)."""
    if style == "events" and isinstance(obj, dict):
        return _EventRow(obj)
    if isinstance(obj, dict) and isinstance(obj.get("Labels"), str) and "Label" not in obj:
        return _LabelledRow(obj)
    return obj


class _LabelledRow(dict):
    def __contains__(self, key: object) -> bool:
        return key == "Label" or super().__contains__(key)

    def __missing__(self, key: str) -> Any:
        from .gotemplate import Method

        if key != "Label":
            raise KeyError(key)
        labels = dict((item.split("=", 1) + [""])[:2] for item in self["Labels"].split(",") if item)
        return Method(lambda name: labels.get(name, ""), 1)


class _EventRow(dict):
    _GO_NAMES = {"Status": "status", "ID": "id", "From": "from", "Scope": "scope", "Time": "time",
                 "TimeNano": "timeNano"}

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key) or (key in self._GO_NAMES and super().__contains__(self._GO_NAMES[key]))

    def __missing__(self, key: str) -> Any:
        return self[self._GO_NAMES[key]]


def execute(tmpl, obj: Any, style: str = "") -> str:
    from . import gotemplate

    st = STYLES[style]

    def strict(parent: str, o: dict, name: str) -> str | None:
        return st.typename if parent == "" and o is row and name not in st.fields else None

    row = _row(obj, style)
    try:
        return tmpl.execute(row, strict=strict if st.typename else None, typed=bool(st.typename))
    except gotemplate.ExecError as exc:
        raise TemplateError(f"{st.exec_prefix}{exc}", st.parse_status if style == "events" else 1) from None


def render(template: str, obj: Any, inspect: bool = False, style: str | None = None) -> str:
    """One object through a template, with the error texts of the verb it comes from (`style`, else guessed
    from its shape). Inspect's way: the typed value first (a missing struct field fails, a missing map key
    is `<no value>`), then the raw JSON with missingkey=error, whose error is the one shown."""
    style = "inspect" if inspect else style if style is not None else style_for(obj)
    if style != "inspect":
        return execute(parse(template, style), obj, style)
    from . import gotemplate

    tmpl = parse(template, "inspect")
    try:
        return tmpl.execute(obj, strict=_is_struct)
    except gotemplate.ExecError:
        pass
    try:
        return tmpl.execute(obj, missingkey="error")
    except gotemplate.ExecError as exc:
        raise TemplateError(f"template parsing error: {exc}") from None


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


class _HeaderRow(dict):
    """The header context of a `table` template: every field reads as its column name."""

    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__(headers)

    def __contains__(self, key: object) -> bool:
        return True

    def __missing__(self, key: str) -> str:
        return key.upper()


_CONTROL = re.compile(r"\{\{-?\s*(if|range|with|else|end)\b")


def header_for(template: str, headers: dict[str, str]) -> str:
    """The header line of a `table` template: each `{{.Field}}` replaced by its column name; a template with
    if/range/with runs over the column names as docker runs it over its header context."""
    if _CONTROL.search(template):
        try:
            return execute(parse(template), _HeaderRow(headers))
        except TemplateError:
            pass
    def repl(m: re.Match) -> str:
        expr = m.group(1).strip()
        key = expr.split()[-1].lstrip(".") if expr else ""
        return headers.get(key, key.upper())
    return _ACTION.sub(repl, template.replace("\\t", "\t").replace("\\n", "\n"))


def print_rows(fmt: str, rows: list[dict], headers: dict[str, str], write: Callable[[str], Any],
               style: str | None = None) -> None:
    """Rows through `fmt`: `table …` prints a header and aligns columns; `json`, else a template per row."""
    style = style_for(None, headers) if style is None else style
    if fmt == "json":
        fmt = "{{json .}}"
    if fmt.startswith("table"):
        body = fmt[len("table"):].strip() or "{{json .}}"
        fields = _plain_fields(body, rows)
        if fields is not None:  # docker's default tables: no template engine to import
            lines = [header_for(body, headers)] + [_substitute(body, r) for r in rows]
        else:
            tmpl = parse(body, style)
            lines = [header_for(body, headers)] + [execute(tmpl, r, style) for r in rows]
        write(tabulate(lines))
        return
    if _plain_fields(fmt, rows) is not None:
        for r in rows:
            write(_substitute(fmt, r) + "\n")
        return
    tmpl = parse(fmt, style)
    for r in rows:
        write(execute(tmpl, r, style) + "\n")


def _plain_fields(template: str, rows: list[dict]) -> list[str] | None:
    """The fields of a template made only of `{{.Field}}` actions over string values every row has (what
    the engine would print as is), else None."""
    fields = []
    for m in _ACTION.finditer(template.replace("\\t", "\t").replace("\\n", "\n")):
        name = m.group(0)[2:-2]
        if not (name[:1] == "." and name[1:].isidentifier()):
            return None
        fields.append(name[1:])
    if "{{" in _ACTION.sub("", template) or "}}" in _ACTION.sub("", template):
        return None
    if not all(isinstance(r.get(f), str) for r in rows for f in fields):
        return None
    return fields


def _substitute(template: str, row: dict) -> str:
    return _ACTION.sub(lambda m: row[m.group(0)[3:-2]], template.replace("\\t", "\t").replace("\\n", "\n"))
