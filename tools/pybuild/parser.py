"""Dockerfile parser: BuildKit's lexing rules (frontend/dockerfile/parser) to the `pybuild.ast` tree.

Line continuations with the escape token, the `# escape=` / `# syntax=` directives at the top only,
comments and empty lines inside continuations skipped, JSON vs shell forms, heredocs (`<<EOF`,
`<<-EOF`, quoted delimiters, several per line), builder flags checked per instruction.
Values stay raw; expansion happens in the frontend.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from pyoci.goduration import parse as parse_go_duration

from . import ast
from .errors import DockerfileError
from .expand import ExpandError, ShellLex

_RE_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
_RE_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*\Z")
_RE_HEREDOC = re.compile(r"^(\d*)<<(-?)\s*([^<]*)\Z")  # `<< EOF` is allowed (the lexer keeps it one word)
_RE_LEADING_TABS = re.compile(r"^\t+", re.M)
_RE_STAGE_NAME = re.compile(r"^[a-z][a-z0-9-_.]*\Z")
_RE_ONBUILD = re.compile(r"^\s*ONBUILD\s*", re.I)
_VALID_DIRECTIVES = ("escape", "syntax", "check")

COMMANDS = (
    "add", "arg", "cmd", "copy", "entrypoint", "env", "expose", "from", "healthcheck", "label",
    "maintainer", "onbuild", "run", "shell", "stopsignal", "user", "volume", "workdir",
)
_HEREDOC_COMMANDS = frozenset({"add", "copy", "run"})

# Builder flags per instruction: name -> kind (str | bool | list), as BuildKit's BFlags.
_FLAGS: dict[str, dict[str, str]] = {
    "ADD": {"chown": "str", "chmod": "str", "link": "bool", "keep-git-dir": "bool", "checksum": "str",
            "exclude": "list", "unpack": "bool"},
    "COPY": {"chown": "str", "from": "str", "chmod": "str", "link": "bool", "parents": "bool",
             "exclude": "list"},
    "FROM": {"platform": "str"},
    "RUN": {"mount": "list", "network": "str", "security": "str", "device": "list"},
    "HEALTHCHECK": {"interval": "str", "timeout": "str", "start-period": "str", "start-interval": "str",
                    "retries": "str"},
}

MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")


class _ParseError(Exception):
    """Internal: a message for the instruction being parsed (line added by the caller)."""


def levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def suggest(value: str, options: list[str] | tuple[str, ...], case_sensitive: bool = True) -> str | None:
    """The closest option within distance 2, or None (BuildKit's util/suggest: an exact match means
    no hint; case-insensitive matches take the case of what the user wrote)."""
    v = value if case_sensitive else value.lower()
    best, score = None, 3
    for opt in options:
        o = opt if case_sensitive else opt.lower()
        if o == v:
            return None
        d = levenshtein(v, o)
        if d < score:
            best, score = o, d
    if best is None or case_sensitive:
        return best
    if value == value.lower():
        return best.lower()
    if value == value.upper():
        return best.upper()
    return best


def _with_hint(message: str, value: str, options: list[str] | tuple[str, ...], case_sensitive: bool = True) -> str:
    hint = suggest(value, options, case_sensitive)
    return f"{message} (did you mean {hint}?)" if hint else message


# --- lexing -------------------------------------------------------------------------------------


@dataclass
class _Node:
    """A logical line (BuildKit's parser.Node): keyword, flags, raw rest, the args and json attribute."""

    cmd: str  # lower-case keyword
    original: str
    flags: list[str]
    rest: str
    args: list[str]
    json: bool = False
    child: "_Node | None" = None  # ONBUILD's trigger
    no_delim: bool = False  # legacy `ENV key value` / `LABEL key value` form
    heredocs: list[ast.Heredoc] = field(default_factory=list)
    start: int = 0
    end: int = 0

    def can_contain_heredoc(self) -> bool:
        node = self.child if self.cmd == "onbuild" and self.child is not None else self
        return node.cmd in _HEREDOC_COMMANDS and not node.json


class _Directives:
    def __init__(self) -> None:
        self.escape = "\\"
        self.done = False
        self.seen: dict[str, str] = {}
        self._set_escape("\\")

    def _set_escape(self, s: str) -> None:
        if s not in ("`", "\\"):
            raise _ParseError(f"invalid escape token '{s}' does not match ` or \\")
        self.escape = s
        e = re.escape(s)
        self.continuation = re.compile(rf"([^{e}]){e}[ \t]*\Z|^{e}[ \t]*\Z")

    def possible(self, line: str) -> None:
        if self.done:
            return
        m = _RE_DIRECTIVE.match(line)
        if not m or m.group(1).lower() not in _VALID_DIRECTIVES:
            self.done = True
            return
        key = m.group(1).lower()
        if key in self.seen:
            raise _ParseError(f"only one {key} parser directive can be used")
        self.seen[key] = m.group(2)
        if key == "escape":
            self._set_escape(m.group(2))


def _split_lines(text: str) -> list[str]:
    """Lines with their endings kept (BuildKit's scanLines)."""
    out, start = [], 0
    while start < len(text):
        i = text.find("\n", start)
        if i < 0:
            out.append(text[start:])
            break
        out.append(text[start : i + 1])
        start = i + 1
    return out


def _trim_newline(s: str) -> str:
    return s.rstrip("\r\n")


def _is_comment(line: str) -> bool:
    return _trim_newline(line).lstrip().startswith("#")


def _trim_comments(s: str) -> str:
    return "" if s.startswith("#") else s


def _extract_builder_flags(line: str) -> tuple[str, list[str]]:
    """Leading `--flag[=value]` words (quotes and `\\` handled); a lone `--` ends them."""
    words: list[str] = []
    word: list[str] = []
    phase = 0  # 0 spaces, 1 word, 2 quote
    quote = ""
    blank_ok = False
    pos, n = 0, len(line)
    while pos <= n:
        ch = line[pos] if pos < n else ""
        if phase == 0:
            if pos == n:
                break
            if ch.isspace():
                pos += 1
                continue
            if ch != "-" or pos + 1 == n or line[pos + 1] != "-":
                return line[pos:], words
            phase = 1
        if phase in (1, 2) and pos == n:
            w = "".join(word)
            if w != "--" and (blank_ok or w):
                words.append(w)
            break
        if phase == 1:
            if ch.isspace():
                phase = 0
                w = "".join(word)
                if w == "--":
                    return line[pos:], words
                if blank_ok or w:
                    words.append(w)
                word, blank_ok = [], False
                pos += 1
                continue
            if ch in "'\"":
                quote, blank_ok, phase = ch, True, 2
                pos += 1
                continue
            if ch == "\\":
                if pos + 1 == n:
                    pos += 1
                    continue
                pos += 1
                ch = line[pos]
            word.append(ch)
            pos += 1
            continue
        # in quote
        if ch == quote:
            phase = 1
            pos += 1
            continue
        if ch == "\\":
            if pos + 1 == n:
                phase = 1
                pos += 1
                continue
            pos += 1
            ch = line[pos]
        word.append(ch)
        pos += 1
    return "", words


def _parse_words(rest: str, escape: str) -> list[str]:
    """Words for ENV/LABEL/ARG keeping quotes and escapes (they go away at expansion)."""
    words: list[str] = []
    word: list[str] = []
    phase = 0
    quote = ""
    blank_ok = False
    pos, n = 0, len(rest)
    while pos <= n:
        ch = rest[pos] if pos < n else ""
        if phase == 0:
            if pos == n:
                break
            if ch.isspace():
                pos += 1
                continue
            phase = 1
        if phase in (1, 2) and pos == n:
            if blank_ok or word:
                words.append("".join(word))
            break
        if phase == 1:
            if ch.isspace():
                phase = 0
                if blank_ok or word:
                    words.append("".join(word))
                word, blank_ok = [], False
                pos += 1
                continue
            if ch in "'\"":
                quote, blank_ok, phase = ch, True, 2
            if ch == escape:
                if pos + 1 == n:
                    pos += 1
                    continue
                word.append(ch)
                pos += 1
                ch = rest[pos]
            word.append(ch)
            pos += 1
            continue
        if ch == quote:
            phase = 1
        if ch == escape and quote != "'":
            if pos + 1 == n:
                phase = 1
                pos += 1
                continue
            pos += 1
            word.append(ch)
            ch = rest[pos]
        word.append(ch)
        pos += 1
    return words


def _split_ws(rest: str) -> list[str]:
    return _RE_WHITESPACE.split(rest) if rest else []


def _no_constants(name: str) -> Any:
    raise ValueError(f"not JSON: {name}")  # Go's decoder rejects NaN/Infinity


_JSON = json.JSONDecoder(parse_constant=_no_constants)
_NOT_STRINGS = "when using JSON array syntax, arrays must be comprised of strings only"


def _parse_json(rest: str) -> list[str] | None:
    rest = rest.lstrip()
    if not rest.startswith("["):
        return None
    try:
        value, _ = _JSON.raw_decode(rest)  # trailing text ignored, as Go's Decoder
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(v, str) for v in value):
        raise _ParseError(_NOT_STRINGS)
    return value


def _parse_name_val(rest: str, key: str, escape: str) -> list[tuple[str, str, bool]]:
    words = _parse_words(rest, escape)
    if not words:
        return []
    if "=" not in words[0]:
        parts = _RE_WHITESPACE.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise _ParseError(f"{key} must have two arguments")
        return [(parts[0], parts[1], True)]
    out = []
    for w in words:
        if "=" not in w:
            raise _ParseError(f"Syntax error - can't find = in {json.dumps(w)}. Must be of the form: name=value")
        k, v = w.split("=", 1)
        out.append((k, v, False))
    return out


def _new_node(line: str, d: _Directives) -> _Node:
    stripped = line.strip()
    parts = _RE_WHITESPACE.split(stripped, maxsplit=1)
    cmd = parts[0].lower()
    flags: list[str] = []
    rest = ""
    if len(parts) == 2:
        rest, flags = _extract_builder_flags(parts[1])
    rest = rest.strip()
    node = _Node(cmd=cmd, original=line, flags=flags, rest=rest, args=[])
    if cmd in ("run", "cmd", "entrypoint", "shell"):
        if rest:
            j = _parse_json(rest)
            node.args, node.json = (j, True) if j is not None else ([rest], False)
    elif cmd in ("add", "copy", "volume"):
        j = _parse_json(rest)
        node.args, node.json = (j, True) if j is not None else (_split_ws(rest), False)
    elif cmd in ("expose", "from"):
        node.args = _split_ws(rest)
    elif cmd in ("maintainer", "stopsignal", "user", "workdir"):
        node.args = [rest] if rest else []
    elif cmd in ("env", "label"):
        kv = _parse_name_val(rest, cmd.upper(), d.escape)
        node.args = [x for k, v, _ in kv for x in (k, v)]
        node.no_delim = bool(kv and kv[0][2])
    elif cmd == "arg":
        node.args = _parse_words(rest, d.escape)
    elif cmd == "healthcheck":
        m = re.match(r"(\S*)(\s*)(.*)\Z", rest, re.S)
        typ, tail = (m.group(1), m.group(3)) if m else ("", "")
        if typ:
            node.args = [typ]
            if tail:
                j = _parse_json(tail)
                if j is not None:
                    node.args += j
                    node.json = True
                else:
                    node.args.append(tail)
    elif cmd == "onbuild":
        if rest:
            node.child = _new_node(rest, d)
            node.args = [node.child.cmd] + list(node.child.args)
    return node


def parse_heredoc(word: str) -> ast.Heredoc | None:
    """The heredoc a word like `<<EOF`, `<<-"EOF"` opens, or None (BuildKit's ParseHeredoc)."""
    m = _RE_HEREDOC.match(word)
    if not m or not m.group(3):
        return None
    rest = m.group(3)
    try:
        words = ShellLex("\\", skip_unset_env=True).process_words(rest, {})
        if len(words) != 1:
            return None
        raw = ShellLex("\\", raw_quotes=True, skip_unset_env=True).process_words(rest, {})
    except ExpandError as e:
        raise _ParseError(str(e)) from None
    if len(raw) != 1:
        raise _ParseError(f"internal lexing of heredoc produced inconsistent results: {rest}")
    quotes = words[0].count("'") + words[0].count('"')
    raw_quotes = raw[0].count("'") + raw[0].count('"')
    return ast.Heredoc(name=words[0], content="", expand=quotes == raw_quotes, chomp=m.group(2) == "-",
                       fd=int(m.group(1) or 0))


def _heredocs_from_line(line: str) -> list[ast.Heredoc]:
    try:
        words = ShellLex("\\", raw_quotes=True, raw_escapes=True, skip_unset_env=True).process_words(line, {})
    except ExpandError:
        words = []
    return [h for h in (parse_heredoc(w) for w in words) if h is not None]


def chomp_heredoc(content: str) -> str:
    """`<<-` strips leading tabs from every line."""
    return _RE_LEADING_TABS.sub("", content)


@dataclass
class _Lexed:
    nodes: list[_Node]
    directives: dict[str, str]
    escape: str
    warnings: list[str]


def _lex(text: str, path: str) -> _Lexed:
    d = _Directives()
    lines = _split_lines(text)
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
    nodes: list[_Node] = []
    warnings: list[str] = []
    i, current = 0, 0

    def process(raw: str, strip: bool) -> str:
        tok = _trim_newline(raw)
        if strip:
            tok = tok.lstrip()
        try:
            d.possible(tok)
        except _ParseError as e:
            raise DockerfileError(path, current + 1, str(e)) from None
        return _trim_comments(tok)

    def trim_cont(s: str) -> tuple[str, bool]:
        m = d.continuation.search(s)
        if m:
            return s[: m.start()] + (m.group(1) or ""), False
        return s, True

    while i < len(lines):
        raw = lines[i]
        i += 1
        processed = process(raw, True)
        current += 1
        start = current
        line, eol = trim_cont(processed)
        if eol and line == "":
            continue
        empty_cont = False
        while not eol and i < len(lines):
            raw = lines[i]
            i += 1
            processed = process(raw, False)
            current += 1
            if _is_comment(raw):
                continue
            if not _trim_newline(processed).lstrip():
                empty_cont = True
                continue
            cont, eol = trim_cont(processed)
            line += cont
        if empty_cont:
            warnings.append("[WARNING]: Empty continuation line found in:\n    " + line)
        try:
            node = _new_node(line, d)
        except _ParseError as e:
            raise DockerfileError(path, start, str(e)) from None
        if "<<" in line and node.can_contain_heredoc():
            try:
                docs = _heredocs_from_line(line)
            except _ParseError as e:
                raise DockerfileError(path, start, str(e)) from None
            for doc in docs:
                body: list[str] = []
                terminated = False
                while i < len(lines):
                    raw = lines[i]
                    i += 1
                    current += 1
                    candidate = _trim_newline(raw)
                    if doc.chomp:
                        candidate = candidate.lstrip("\t")
                    if candidate == doc.name:
                        terminated = True
                        break
                    body.append(raw)
                if not terminated:
                    raise DockerfileError(path, start, "unterminated heredoc")
                node.heredocs.append(ast.Heredoc(doc.name, "".join(body), doc.expand, doc.chomp, doc.fd))
        node.start, node.end = start, current
        nodes.append(node)
    if warnings:
        warnings.append("[WARNING]: Empty continuation lines will become errors in a future release.")
    if not nodes:
        raise DockerfileError(path, current, "file with no instructions")
    return _Lexed(nodes, dict(d.seen), d.escape, warnings)


# --- instructions -------------------------------------------------------------------------------


def _parse_flags(keyword: str, raw: list[str], allowed: dict[str, str] | None = None) -> dict[str, Any]:
    spec = _FLAGS.get(keyword, {}) if allowed is None else allowed
    out: dict[str, Any] = {}
    for arg in raw:
        if not arg.startswith("--"):
            raise _ParseError(f"arg should start with -- : {arg}")
        if arg == "--":
            break
        name, eq, value = arg[2:].partition("=")
        kind = spec.get(name)
        if kind is None:
            raise _ParseError(_with_hint(f"unknown flag: {name}", name, list(spec)))
        if name in out and kind != "list":
            raise _ParseError(f"duplicate flag specified: {name}")
        if kind == "bool":
            if eq and value == "":
                raise _ParseError(f"missing a value on flag: {name}")
            low = value.lower()
            if low == "":
                out[name] = True
            elif low in ("true", "false"):
                out[name] = low == "true"
            else:
                raise _ParseError(f"expecting boolean value for flag {name}, not: {value}")
        else:
            if not eq:
                raise _ParseError(f"missing a value on flag: {name}")
            if kind == "list":
                out.setdefault(name, []).append(value)
            else:
                out[name] = value
    return out


def _go_parse_bool(value: str) -> bool:
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(value)


_RAM_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def ram_in_bytes(value: str) -> int:
    """docker/go-units RAMInBytes: `64m`, `1.5g`, `512kb`, `100` (binary multiples)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kKmMgGtTpP]?)[iI]?[bB]?", value.strip())
    if not m:
        raise ValueError(f"invalid size: '{value}'")
    return int(float(m.group(1)) * _RAM_UNITS[m.group(2).lower()])


def parse_mount(value: str, expand: Callable[[str], str] | None = None) -> ast.Mount:
    """One `--mount=` value (CSV of key=value) as BuildKit's parseMount, with its defaults filled."""
    import csv

    try:
        fields = next(csv.reader([value]), [])
    except csv.Error as e:
        raise _ParseError(f"failed to parse csv mounts: {e}") from None
    m: dict[str, Any] = {"type": "bind"}
    ro_auto = True
    for f in fields:
        key, eq, val = f.partition("=")
        key = key.lower()
        if not eq:
            if key in ("readonly", "ro"):
                m["readonly"], ro_auto = True, False
                continue
            if key in ("readwrite", "rw"):
                m["readonly"], ro_auto = False, False
                continue
            if key == "required":
                if m["type"] in ("secret", "ssh"):
                    m["required"] = True
                    continue
                raise _ParseError(f"unexpected key '{key}' for mount type '{m['type']}'")
            raise _ParseError(f"invalid field '{f}' must be a key=value pair")
        if expand is not None:
            val = expand(val)
        elif key == "from" and "$" in val[:-1]:
            raise _ParseError(f"'{key}' doesn't support variable expansion, define alias stage instead")
        if key == "type":
            if val.lower() not in MOUNT_TYPES:
                raise _ParseError(_with_hint(f"unsupported mount type {json.dumps(val)}", val, MOUNT_TYPES))
            m["type"] = val.lower()
        elif key == "from":
            m["from_"] = val
        elif key in ("source", "src"):
            m["source"] = val
        elif key in ("target", "dst", "destination"):
            m["target"] = val
        elif key in ("readonly", "ro", "readwrite", "rw"):
            try:
                b = _go_parse_bool(val)
            except ValueError:
                raise _ParseError(f"invalid value for {key}: {val}") from None
            m["readonly"] = b if key in ("readonly", "ro") else not b
            ro_auto = False
        elif key == "required":
            if m["type"] not in ("secret", "ssh"):
                raise _ParseError(f"unexpected key '{key}' for mount type '{m['type']}'")
            try:
                m["required"] = _go_parse_bool(val)
            except ValueError:
                raise _ParseError(f"invalid value for {key}: {val}") from None
        elif key == "size":
            if m["type"] != "tmpfs":
                raise _ParseError(f"unexpected key '{key}' for mount type '{m['type']}'")
            try:
                m["size"] = ram_in_bytes(val)
            except ValueError as e:
                raise _ParseError(str(e)) from None
        elif key == "id":
            m["id"] = val
        elif key == "sharing":
            if val.lower() not in ("shared", "private", "locked"):
                raise _ParseError(f"unsupported sharing value {json.dumps(val)}")
            m["sharing"] = val.lower()
        elif key in ("mode", "uid", "gid"):
            try:
                n = int(val, 8 if key == "mode" else 10)
                if n < 0 or n >= 1 << 32:
                    raise ValueError
            except ValueError:
                raise _ParseError(f"invalid value {val} for {key}") from None
            m[key] = n
        elif key == "env":
            m["env"] = val
        else:
            keys = ["type", "from", "source", "target", "readonly", "id", "sharing", "required", "size",
                    "mode", "uid", "gid", "src", "dst", "destination", "ro", "rw", "readwrite", "env"]
            raise _ParseError(_with_hint(f"unexpected key '{key}' in '{f}'", key, keys))
    typ = m["type"]
    if "sharing" in m and typ != "cache":
        if typ == "secret":
            raise _ParseError("secret mount should not define sharing")
        raise _ParseError(f"invalid cache sharing set for {typ} mount")
    if typ not in ("secret", "ssh", "cache"):
        for k in ("mode", "uid", "gid"):
            if k in m:
                raise _ParseError(f"{k} not allowed for {json.dumps(typ)} type mounts")
    if ro_auto:
        m["readonly"] = typ not in ("cache", "tmpfs")
    if typ == "secret":
        if m.get("from_"):
            raise _ParseError("secret mount should not have a from")
        if not (m.get("source") or m.get("target") or m.get("id")):
            raise _ParseError("invalid secret mount. one of source, target required")
        if m.get("source") and m.get("id"):
            raise _ParseError("both source and id can't be set")
        sid = m.get("source") or m.get("id") or os.path.basename(m["target"])
        m["id"] = sid
        m.setdefault("target", "/run/secrets/" + os.path.basename(sid))
        if not m["target"]:
            m["target"] = "/run/secrets/" + os.path.basename(sid)
    elif typ == "ssh":
        m.setdefault("id", "default")
        if not m.get("target"):
            m["target"] = "/run/buildkit/ssh_agent.0"
        m.setdefault("mode", 0o600)
    elif typ == "cache":
        if not m.get("target"):
            raise _ParseError("mount type cache requires a target")  # checked at dispatch in BuildKit
        m.setdefault("id", m["target"])
        if not m["id"]:
            m["id"] = m["target"]
        m.setdefault("mode", 0o755)
    elif typ in ("bind", "tmpfs") and not m.get("target"):
        raise _ParseError(f"mount type {typ} requires a target")
    return ast.Mount(**m)


def _interval(flags: dict[str, Any], name: str) -> str | None:
    v = flags.get(name)
    if v is None or v == "":
        return None
    try:
        d = parse_go_duration(v)
    except ValueError as e:
        raise _ParseError(str(e)) from None
    if d != 0 and d < 1_000_000:
        raise _ParseError(f'Interval "{name}" cannot be less than 1ms')
    return v


def _common(node: _Node, keyword: str, flags: dict[str, Any]) -> dict[str, Any]:
    return dict(line=node.start, end_line=node.end, keyword=keyword, original=node.original.strip(),
                args=tuple(node.args), json=node.json,
                rest=node.rest, flags=flags, heredocs=tuple(node.heredocs))


def _exactly_one(node: _Node, kw: str) -> None:
    if len(node.args) != 1:
        raise _ParseError(f"{kw} requires exactly one argument")


def _at_least_one(node: _Node, kw: str) -> None:
    if not node.args:
        raise _ParseError(f"{kw} requires at least one argument")


def _instruction(node: _Node) -> ast.Instruction:
    kw = node.cmd.upper()
    if node.cmd not in COMMANDS:
        word = node.original.strip().split(None, 1)[0] if node.original.strip() else kw
        raise _ParseError(_with_hint(f"unknown instruction: {word}", word, COMMANDS, case_sensitive=False))
    if kw == "HEALTHCHECK" and node.args and node.args[0].upper() == "NONE":
        flags = {}  # BuildKit does not look at flags for NONE
    else:
        flags = _parse_flags(kw, node.flags)
    c = _common(node, kw, flags)
    a = node.args
    if kw == "FROM":
        name = None
        if len(a) == 3 and a[1].lower() == "as":
            name = a[2].lower()
            if not _RE_STAGE_NAME.match(name):
                raise _ParseError(
                    f"invalid name for build stage: {json.dumps(a[2])}, "
                    "name can't start with a number or contain symbols")
        elif len(a) != 1:
            raise _ParseError("FROM requires either one or three arguments")
        return ast.From(**c, image=a[0], name=name, platform=flags.get("platform") or None)
    if kw == "RUN":
        network = flags.get("network")
        if network is not None and network not in ("default", "none", "host"):
            raise _ParseError(f"unsupported network mode {json.dumps(network)}")
        security = flags.get("security")
        if security is not None and security not in ("sandbox", "insecure"):
            raise _ParseError(f"unsupported security mode {json.dumps(security)}")
        mounts = tuple(parse_mount(v) for v in flags.get("mount", []))
        return ast.Run(**c, cmd=tuple(a), prepend_shell=not node.json, mounts=mounts, network=network,
                       security=security)
    if kw in ("CMD", "ENTRYPOINT"):
        cls = ast.Cmd if kw == "CMD" else ast.Entrypoint
        return cls(**c, cmd=tuple(a), prepend_shell=not node.json)
    if kw == "SHELL":
        if not a:
            raise _ParseError("SHELL requires at least one argument")
        if not node.json:
            raise _ParseError("SHELL requires the arguments to be in JSON form")
        return ast.Shell(**c, shell=tuple(a))
    if kw in ("COPY", "ADD"):
        if len(a) < 2:
            raise _ParseError(
                f"{kw} requires at least two arguments, but only one was provided. "
                "Destination could not be determined.")
        dest = a[-1]
        if parse_heredoc(dest) is not None:
            raise _ParseError(f"{kw} cannot accept a heredoc as a destination")
        names = {h.name for h in node.heredocs}
        srcs = []
        for s in a[:-1]:
            h = parse_heredoc(s) if not node.json else None
            if h is None or h.name not in names:
                srcs.append(s)
        common = dict(srcs=tuple(srcs), dest=dest, chown=flags.get("chown"), chmod=flags.get("chmod"),
                      link=bool(flags.get("link", False)), exclude=tuple(flags.get("exclude", [])))
        if kw == "COPY":
            return ast.Copy(**c, **common, from_=flags.get("from"), parents=bool(flags.get("parents", False)))
        return ast.Add(**c, **common, checksum=flags.get("checksum"),
                       keep_git_dir=bool(flags.get("keep-git-dir", False)), unpack=flags.get("unpack"))
    if kw in ("ENV", "LABEL"):
        if not a:
            raise _ParseError(f"{kw} requires at least one argument")
        pairs = []
        for k, v in zip(a[0::2], a[1::2]):
            if not k:
                raise _ParseError(f"{kw} names can not be blank")
            pairs.append(ast.KeyValue(k, v, no_delim=node.no_delim))
        cls = ast.Env if kw == "ENV" else ast.Label
        return cls(**c, pairs=tuple(pairs))
    if kw == "ARG":
        _at_least_one(node, kw)
        decls = []
        for w in a:
            if "=" in w:
                k, v = w.split("=", 1)
                if not k:
                    raise _ParseError("ARG names can not be blank")
                decls.append(ast.Arg(k, v, node.start))
            else:
                decls.append(ast.Arg(w, None, node.start))
        return ast.ArgInstruction(**c, args_=tuple(decls))
    if kw == "EXPOSE":
        _at_least_one(node, kw)
        return ast.Expose(**c, ports=tuple(a))
    if kw == "VOLUME":
        _at_least_one(node, kw)
        vols = []
        for v in a:
            if not v.strip():
                raise _ParseError("VOLUME specified can not be an empty string")
            vols.append(v.strip())
        return ast.Volume(**c, paths=tuple(vols))
    if kw == "USER":
        _exactly_one(node, kw)
        return ast.User(**c, user=a[0])
    if kw == "WORKDIR":
        _exactly_one(node, kw)
        return ast.Workdir(**c, path=a[0])
    if kw == "STOPSIGNAL":
        _exactly_one(node, kw)
        return ast.StopSignal(**c, signal=a[0])
    if kw == "MAINTAINER":
        _exactly_one(node, kw)
        return ast.Maintainer(**c, maintainer=a[0])
    if kw == "HEALTHCHECK":
        _at_least_one(node, kw)
        typ = a[0].upper()
        rest = a[1:]
        if typ == "NONE":
            if rest:
                raise _ParseError("HEALTHCHECK NONE takes no arguments")
            return ast.Healthcheck(**c, kind="NONE")
        if typ != "CMD":
            raise _ParseError(f"Unknown type {json.dumps(typ)} in HEALTHCHECK (try CMD)")
        if not rest:
            raise _ParseError("Missing command after HEALTHCHECK CMD")
        retries = None
        if flags.get("retries"):
            try:
                retries = int(flags["retries"], 10)
            except ValueError:
                raise _ParseError(
                    f'strconv.ParseInt: parsing {json.dumps(flags["retries"])}: invalid syntax') from None
            if retries < 0:
                raise _ParseError(f"--retries cannot be negative ({retries})")
        return ast.Healthcheck(
            **c, kind="CMD", cmd=tuple(rest), prepend_shell=not node.json,
            interval=_interval(flags, "interval"), timeout=_interval(flags, "timeout"),
            start_period=_interval(flags, "start-period"), start_interval=_interval(flags, "start-interval"),
            retries=retries)
    if kw == "ONBUILD":
        if not a or node.child is None:
            raise _ParseError("ONBUILD requires at least one argument")
        trigger = node.child.cmd.upper()
        if trigger == "ONBUILD":
            raise _ParseError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if trigger in ("MAINTAINER", "FROM"):
            raise _ParseError(f"{trigger} isn't allowed as an ONBUILD trigger")
        expression = _RE_ONBUILD.sub("", node.original, count=1)
        child = node.child
        child.start, child.end, child.heredocs = node.start, node.end, node.heredocs
        try:
            inner = _instruction(child)
        except _ParseError:
            inner = None  # BuildKit only parses the trigger when an image built FROM this one runs it
        return ast.Onbuild(**c, expression=expression, inner=inner)
    raise _ParseError(f"unknown instruction: {kw}")  # pragma: no cover


def parse_instruction_line(line: str, escape: str = "\\", lineno: int = 1,
                           path: str = "Dockerfile") -> ast.Instruction:
    """One instruction from its text (used for ONBUILD triggers read from a base image config).
    Heredocs cannot be resolved from a single line and are left out."""
    d = _Directives()
    d.done = True
    if escape != "\\":
        d._set_escape(escape)
    try:
        node = _new_node(line, d)
        node.start = node.end = lineno
        return _instruction(node)
    except _ParseError as e:
        raise DockerfileError(path, lineno, str(e)) from None


def parse(source: str | bytes, path: str | os.PathLike[str] = "Dockerfile") -> ast.Dockerfile:
    """Parse Dockerfile text. `path` is used only in error messages (basename shown) and kept."""
    path = os.fspath(path)
    text = source.decode("utf-8", "replace") if isinstance(source, bytes) else source
    lexed = _lex(text, path)
    global_args: list[ast.Arg] = []
    stages: list[dict[str, Any]] = []
    for node in lexed.nodes:
        try:
            ins = _instruction(node)
        except _ParseError as e:
            raise DockerfileError(path, node.start, str(e)) from None
        if isinstance(ins, ast.From):
            stages.append(dict(index=len(stages), name=ins.name, base=ins.image, platform=ins.platform,
                               line=ins.line, instructions=[], from_instruction=ins))
        elif not stages:
            if isinstance(ins, ast.ArgInstruction):
                global_args.extend(ins.args_)
            else:
                raise DockerfileError(path, node.start, "no build stage in current context")
        else:
            stages[-1]["instructions"].append(ins)
    if not stages:
        raise DockerfileError(path, lexed.nodes[-1].end, "no build stage in current context")
    return ast.Dockerfile(
        path=path,
        directives=lexed.directives,
        global_args=tuple(global_args),
        stages=tuple(ast.Stage(**{**s, "instructions": tuple(s["instructions"])}) for s in stages),
        escape=lexed.escape,
        warnings=tuple(lexed.warnings),
    )


def parse_file(path: str | os.PathLike[str]) -> ast.Dockerfile:
    """Read and parse a Dockerfile; a missing file is a DockerfileError with line 0."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise DockerfileError(path, 0, f"failed to read dockerfile: {e.strerror}") from None
    return parse(data, path)


def warnings_of(source: str | bytes) -> list[str]:
    """The parser warnings (empty continuation lines) BuildKit prints."""
    text = source.decode("utf-8", "replace") if isinstance(source, bytes) else source
    return _lex(text, "Dockerfile").warnings


def dump(source: str | bytes) -> str:
    """The lexer's tree in BuildKit's `Node.Dump()` form, one `(cmd ["--flags"] "arg" ...)` per line
    (the format of BuildKit's parser testfiles `result`)."""
    from .errors import _go_quote

    text = source.decode("utf-8", "replace") if isinstance(source, bytes) else source

    def one(node: _Node) -> str:
        out = node.cmd
        if node.flags:
            out += " [" + " ".join(_go_quote(f) for f in node.flags) + "]"
        if node.cmd == "onbuild" and node.child is not None:
            return out + " (" + one(node.child) + ")"
        for a in node.args:
            out += " " + _go_quote(a)
        return out

    return "".join(f"({one(n)})\n" for n in _lex(text, "Dockerfile").nodes)
