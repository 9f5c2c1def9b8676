"""Go's text/template (the language docker's `--format` takes): lexer -> parse tree with byte offsets ->
evaluator over decoded JSON values (dict = map, list = slice, str, int, float, bool, None = nil), with
Go's semantics and error texts (`template: NAME:LINE: …` when parsing, `template: NAME:LINE:COL:
executing "NAME" at <NODE>: …` when running). Imported only when a format is given: pyctr's start-up
pays nothing for it."""

from __future__ import annotations

TYPE_CHECKING = False  # typing only for type checkers
if TYPE_CHECKING:
    from typing import Any, Callable


class _Record:
    """The __init__ a dataclass would have (fields from the annotations, positional or keyword, class-level
    defaults) without importing dataclasses and running their code generation: `--format` start-up."""

    _fields: tuple = ()

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        cls._fields = cls._fields + tuple(k for k in cls.__dict__.get("__annotations__", {}) if k[0] != "_")

    def __init__(self, *args: Any, **kw: Any) -> None:
        if len(args) > len(self._fields):
            raise TypeError(f"{type(self).__name__}: too many arguments")
        for name, value in zip(self._fields, args):
            setattr(self, name, value)
        for name in self._fields[len(args):]:
            if name in kw:
                setattr(self, name, kw[name])
            elif not hasattr(type(self), name):
                raise TypeError(f"{type(self).__name__}: missing {name}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self._fields) + ")"


class ParseError(Exception):
    """A template that does not parse (docker: exit status 64 for inspect)."""


class ExecError(Exception):
    """A template that fails while running."""


class _Missing:
    """Go's invalid reflect.Value: a missing map key or a nil interface dug out; prints `<no value>`."""

    def __repr__(self) -> str:
        return "<no value>"


MISSING: Any = _Missing()


class NilPointer(_Record):
    """A typed nil pointer (docker's `State.Health` of a container without a healthcheck): prints `<nil>`,
    is false, and reading a field of it fails."""
    typename: str


# -- lexer ---------------------------------------------------------------------------------------

class Tok(_Record):
    kind: str  # text, left, right, field, var, ident, string, rawstring, char, number, bool, nil, dot,
    #            pipe, lparen, rparen, declare, assign, comma, space, eof, keyword
    val: str
    pos: int


_KEYWORDS = {"if", "else", "end", "range", "with", "define", "template", "block", "break", "continue"}


def _is_alnum(c: str) -> bool:
    return c == "_" or c.isalnum()


def lex(text: str, name: str = "") -> list[Tok]:
    toks: list[Tok] = []
    i, n = 0, len(text)
    line_of = lambda p: text.count("\n", 0, p) + 1  # noqa: E731

    def fail(msg: str, p: int) -> None:
        raise ParseError(f"template: {name}:{line_of(p)}: {msg}")

    while i < n:
        j = text.find("{{", i)
        if j < 0:
            toks.append(Tok("text", text[i:], i))
            break
        trim_left = text.startswith("{{- ", j) or text.startswith("{{-\t", j) or text.startswith("{{-\n", j) \
            or text.startswith("{{-\r", j)
        chunk = text[i:j]
        if trim_left:
            chunk = chunk.rstrip(" \t\r\n")
        if chunk:
            toks.append(Tok("text", chunk, i))
        k = j + (3 if trim_left else 2)
        # a comment: {{/* … */}} (with its trim markers) stands alone in its action
        m = k
        while m < n and text[m] in " \t\r\n" and trim_left:
            m += 1
        if text.startswith("/*", m):
            end = text.find("*/", m + 2)
            if end < 0:
                fail("unclosed comment", j)
            e = end + 2
            trim_right = False
            if text.startswith(" -}}", e) or text.startswith("\t-}}", e) or text.startswith("\n-}}", e):
                trim_right, e = True, e + 4
            elif text.startswith("}}", e):
                e += 2
            else:
                fail("comment ends before closing delimiter", j)
            i = e
            if trim_right:
                while i < n and text[i] in " \t\r\n":
                    i += 1
            continue
        toks.append(Tok("left", "{{", j))
        i = k
        depth = 0
        while True:
            if i >= n:
                fail("unclosed action", j)
            c = text[i]
            if c in " \t\r\n":
                s = i
                while i < n and text[i] in " \t\r\n":
                    i += 1
                if text.startswith("-}}", i) and i > s:
                    toks.append(Tok("right", "}}", i))
                    i += 3
                    while i < n and text[i] in " \t\r\n":
                        i += 1
                    break
                if text.startswith("}}", i):
                    continue
                toks.append(Tok("space", " ", s))
                continue
            if text.startswith("}}", i):
                if depth:
                    fail("unclosed left paren", i)
                toks.append(Tok("right", "}}", i))
                i += 2
                break
            if c == "|":
                toks.append(Tok("pipe", c, i)); i += 1
            elif c == "(":
                depth += 1
                toks.append(Tok("lparen", c, i)); i += 1
            elif c == ")":
                depth -= 1
                if depth < 0:
                    fail("unexpected right paren U+0029 ')'", i)
                toks.append(Tok("rparen", c, i)); i += 1
            elif c == ",":
                toks.append(Tok("comma", c, i)); i += 1
            elif text.startswith(":=", i):
                toks.append(Tok("declare", ":=", i)); i += 2
            elif c == "=":
                toks.append(Tok("assign", "=", i)); i += 1
            elif c == '"':
                s = i
                i += 1
                while True:
                    if i >= n or text[i] == "\n":
                        fail("unterminated quoted string", s)
                    if text[i] == "\\":
                        i += 2
                        continue
                    if text[i] == '"':
                        break
                    i += 1
                i += 1
                toks.append(Tok("string", text[s:i], s))
            elif c == "`":
                e = text.find("`", i + 1)
                if e < 0:
                    fail("unterminated raw quoted string", i)
                toks.append(Tok("rawstring", text[i:e + 1], i)); i = e + 1
            elif c == "'":
                s = i
                i += 1
                while i < n and text[i] != "'":
                    i += 2 if text[i] == "\\" else 1
                if i >= n:
                    fail("unterminated character constant", s)
                i += 1
                toks.append(Tok("char", text[s:i], s))
            elif c == "$":
                s = i
                i += 1
                while i < n and _is_alnum(text[i]):
                    i += 1
                toks.append(Tok("var", text[s:i], s))
            elif c == ".":
                if i + 1 < n and text[i + 1].isdigit():
                    s = i
                    i = _scan_number(text, i)
                    toks.append(Tok("number", text[s:i], s))
                    continue
                s = i
                i += 1
                if i < n and _is_alnum(text[i]):
                    while i < n and _is_alnum(text[i]):
                        i += 1
                    toks.append(Tok("field", text[s:i], s))
                else:
                    toks.append(Tok("dot", ".", s))
            elif c.isdigit() or (c in "+-" and i + 1 < n and (text[i + 1].isdigit() or text[i + 1] == ".")):
                s = i
                i = _scan_number(text, i)
                if i < n and _is_alnum(text[i]):
                    fail(f"bad number syntax: {text[s:i + 1]!r}".replace("'", '"'), s)
                toks.append(Tok("number", text[s:i], s))
            elif _is_alnum(c):
                s = i
                while i < n and _is_alnum(text[i]):
                    i += 1
                word = text[s:i]
                kind = ("keyword" if word in _KEYWORDS else "bool" if word in ("true", "false")
                        else "nil" if word == "nil" else "ident")
                toks.append(Tok(kind, word, s))
            else:
                fail(f"bad character U+{ord(c):04X} '{c}'", i)
    toks.append(Tok("eof", "", n))
    return toks


def _scan_number(text: str, i: int) -> int:
    n = len(text)
    if text[i] in "+-":
        i += 1
    digits = "0123456789_"
    if text.startswith(("0x", "0X"), i):
        i += 2
        digits = "0123456789abcdefABCDEF_"
    while i < n and (text[i] in digits or text[i] == "."):
        i += 1
    if i < n and text[i] in "eE" and digits.startswith("0123456789_") and len(digits) == 11:
        i += 1
        if i < n and text[i] in "+-":
            i += 1
        while i < n and text[i].isdigit():
            i += 1
    return i


# -- parse tree ----------------------------------------------------------------------------------

class Node(_Record):
    pos: int


class Text(Node):
    text: str


class Field(Node):
    names: list[str]

    def __str__(self) -> str:
        return "".join("." + n for n in self.names)


class Var(Node):
    name: str
    names: list[str]  # `$x.A.B`

    def __str__(self) -> str:
        return self.name + "".join("." + n for n in self.names)


class Dot(Node):
    def __str__(self) -> str:
        return "."


class Ident(Node):
    name: str

    def __str__(self) -> str:
        return self.name


class Literal(Node):
    value: Any
    text: str

    def __str__(self) -> str:
        return self.text


class Chain(Node):
    """`(pipeline).A.B`."""
    node: Node
    names: list[str]

    def __str__(self) -> str:
        return str(self.node) + "".join("." + n for n in self.names)


class Command(Node):
    args: list[Node]

    def __str__(self) -> str:
        return " ".join(f"({a})" if isinstance(a, Pipe) else str(a) for a in self.args)


class Pipe(Node):
    decl: list[str]
    is_assign: bool
    cmds: list[Command]

    def __str__(self) -> str:
        head = ", ".join(self.decl) + (" = " if self.is_assign else " := ") if self.decl else ""
        return head + " | ".join(str(c) for c in self.cmds)


class Action(Node):
    pipe: Pipe


class Branch(Node):
    kind: str  # if, range, with
    pipe: Pipe
    body: list[Node]
    else_body: list[Node] | None


class Control(Node):
    kind: str  # break, continue


class TemplateCall(Node):
    name: str
    pipe: Pipe | None

    def __str__(self) -> str:
        return f'{{{{template "{self.name}"' + (f" {self.pipe}" if self.pipe else "") + "}}"


_BUILTINS = {"and", "or", "not", "len", "index", "slice", "print", "printf", "println", "eq", "ne", "lt", "le",
             "gt", "ge", "html", "js", "urlquery", "call"}


class Parser:
    def __init__(self, text: str, name: str, funcs: set[str]) -> None:
        self.text, self.name, self.funcs = text, name, funcs
        self.toks = lex(text, name)
        self.i = 0
        self.vars: list[str] = ["$"]
        self.loops = 0
        self.defines: dict[str, list[Node]] = {}

    def fail(self, msg: str, pos: int | None = None) -> None:
        p = self.toks[self.i].pos if pos is None else pos
        raise ParseError(f"template: {self.name}:{self.text.count(chr(10), 0, p) + 1}: {msg}")

    def peek(self, skip_space: bool = True) -> Tok:
        j = self.i
        while skip_space and self.toks[j].kind == "space":
            j += 1
        return self.toks[j]

    def next(self, skip_space: bool = True) -> Tok:
        while skip_space and self.toks[self.i].kind == "space":
            self.i += 1
        t = self.toks[self.i]
        if t.kind != "eof":
            self.i += 1
        return t

    def parse(self) -> list[Node]:
        body, end = self.list_until(top=True)
        return body

    def list_until(self, top: bool = False) -> tuple[list[Node], str]:
        """Nodes up to {{end}} or {{else}} (returned as the second value), or EOF at top level."""
        out: list[Node] = []
        while True:
            t = self.next(skip_space=False)
            if t.kind == "eof":
                if top:
                    return out, "eof"
                self.fail("unexpected EOF")
            if t.kind == "text":
                out.append(Text(t.pos, t.val))
                continue
            # t is "left"
            k = self.peek()
            if k.kind == "keyword":
                self.next()
                word = k.val
                if word == "end":
                    self.expect_right("end")
                    if top:
                        self.fail("unexpected {{end}}", k.pos)
                    return out, "end"
                if word == "else":
                    if top:
                        self.fail("unexpected {{else}}", k.pos)
                    return out, "else"
                if word in ("if", "range", "with"):
                    out.append(self.branch(word, k.pos))
                    continue
                if word in ("break", "continue"):
                    if not self.loops:
                        self.fail(f"{{{{{word}}}}} outside {{{{range}}}}", k.pos)
                    self.expect_right(word)
                    out.append(Control(k.pos, word))
                    continue
                if word in ("define", "block"):
                    name_tok = self.next()
                    if name_tok.kind not in ("string", "rawstring"):
                        self.fail(f"unexpected {self.describe(name_tok)} in {word} clause")
                    tname = _unquote(name_tok.val)
                    pipe = None
                    if word == "block":
                        pipe = self.pipeline(word)
                    else:
                        self.expect_right(word)
                    saved = self.vars
                    self.vars = ["$"]
                    body, end = self.list_until()
                    self.vars = saved
                    if end != "end":
                        self.fail(f"unexpected {{{{else}}}} in {word}")
                    self.defines[tname] = body
                    if word == "block":
                        out.append(TemplateCall(k.pos, tname, pipe))
                    continue
                if word == "template":
                    name_tok = self.next()
                    if name_tok.kind not in ("string", "rawstring"):
                        self.fail(f"unexpected {self.describe(name_tok)} in template clause")
                    pipe = None
                    if self.peek().kind != "right":
                        pipe = self.pipeline("template")
                    else:
                        self.next()
                    out.append(TemplateCall(name_tok.pos, _unquote(name_tok.val), pipe))
                    continue
            pipe = self.pipeline("command")
            out.append(Action(k.pos, pipe))

    def expect_right(self, ctx: str) -> None:
        t = self.next()
        if t.kind != "right":
            self.fail(f"unexpected {self.describe(t)} in {ctx}")

    def describe(self, t: Tok) -> str:
        if t.kind == "right":
            return "\"}}\""
        if t.kind == "eof":
            return "EOF"
        if t.kind == "keyword":
            return f"<{t.val}>"
        return f'"{t.val}"' if t.kind not in ("string", "rawstring") else "quoted string"

    def branch(self, kind: str, pos: int) -> Node:
        nvars = len(self.vars)
        pipe = self.pipeline(kind)
        if kind == "range":
            self.loops += 1
        body, end = self.list_until()
        if kind == "range":
            self.loops -= 1
        else_body = None
        if end == "else":
            nxt = self.peek()
            if nxt.kind == "keyword" and nxt.val in ("if", "with") and kind in ("if", "with") and nxt.val == kind:
                # `{{else if …}}` / `{{else with …}}`: a nested branch that also ends at the shared {{end}}
                self.next()
                del self.vars[nvars:]
                else_body = [self.branch(nxt.val, nxt.pos)]
            else:
                self.expect_right("else")
                del self.vars[nvars:]
                else_body, end2 = self.list_until()
                if end2 != "end":
                    self.fail("expected end; found {{else}}")
        del self.vars[nvars:]
        return Branch(pos, kind, pipe, body, else_body)

    def pipeline(self, ctx: str) -> Pipe:
        start = self.peek()
        decl: list[str] = []
        is_assign = False
        # declarations: `$x :=`, `$x =`, `$i, $e :=`
        save = self.i
        t = self.next()
        if t.kind == "var":
            t2 = self.next()
            if t2.kind in ("declare", "assign"):
                decl, is_assign = [t.val], t2.kind == "assign"
            elif t2.kind == "comma" and ctx == "range":
                t3 = self.next()
                t4 = self.next()
                if t3.kind == "var" and t4.kind in ("declare", "assign"):
                    decl, is_assign = [t.val, t3.val], t4.kind == "assign"
                else:
                    self.fail("range can only initialize variables")
            elif t2.kind == "comma":
                self.fail(f"too many declarations in {ctx}")
            else:
                self.i = save
        else:
            self.i = save
        for v in decl:
            if is_assign and v not in self.vars:
                self.fail(f'undefined variable "{v}"')
        cmds: list[Command] = []
        while True:
            t = self.peek()
            if t.kind == "right":
                self.next()
                if not cmds:
                    self.fail(f"missing value for {ctx}")
                break
            if t.kind == "rparen" and ctx == "parenthesized pipeline":
                self.next()
                if not cmds:
                    self.fail("missing value for parenthesized pipeline")
                break
            if t.kind == "eof":
                self.fail("unclosed action")
            cmd = self.command(ctx)
            cmds.append(cmd)
            t = self.peek()
            if t.kind == "pipe":
                self.next()
                if self.peek().kind in ("right", "rparen"):
                    self.fail("missing command")
        if not is_assign:
            self.vars.extend(decl)
        for c in cmds[1:]:
            a = c.args[0]
            if isinstance(a, (Literal, Dot)):
                self.fail(f"non executable command in pipeline stage {cmds.index(c) + 1}")
        return Pipe(start.pos, decl, is_assign, cmds)

    def command(self, ctx: str) -> Command:
        args: list[Node] = []
        pos = self.peek().pos
        while True:
            t = self.peek(skip_space=False)
            if t.kind == "space":
                self.next(skip_space=False)
                continue
            if t.kind in ("right", "pipe", "rparen", "eof"):
                break
            args.append(self.operand())
            nxt = self.peek(skip_space=False)
            if nxt.kind not in ("space", "right", "pipe", "rparen", "eof"):
                self.fail(f"unexpected {self.describe(nxt)} in operand")
        if not args:
            self.fail("missing value for command" if ctx == "command" else f"missing value for {ctx}")
        return Command(pos, args)

    def operand(self) -> Node:
        t = self.next(skip_space=False)
        node: Node
        # a chain `.A.B` / `$x.A` takes the position of its second element, as Go's parser does
        if t.kind == "field":
            names = [t.val[1:]]
            pos = self.peek(skip_space=False).pos if self.peek(skip_space=False).kind == "field" else t.pos
            while self.peek(skip_space=False).kind == "field":
                names.append(self.next(skip_space=False).val[1:])
            return Field(pos, names)
        if t.kind == "var":
            if t.val not in self.vars:
                self.fail(f'undefined variable "{t.val}"')
            node = Var(t.pos, t.val, [])
            if self.peek(skip_space=False).kind == "field":
                node.pos = self.peek(skip_space=False).pos
            while self.peek(skip_space=False).kind == "field":
                node.names.append(self.next(skip_space=False).val[1:])
            return node
        if t.kind == "dot":
            node = Dot(t.pos)
        elif t.kind == "ident":
            if t.val not in self.funcs and t.val not in _BUILTINS:
                self.fail(f'function "{t.val}" not defined')
            return Ident(t.pos, t.val)
        elif t.kind == "string" or t.kind == "rawstring":
            try:
                node = Literal(t.pos, _unquote(t.val), t.val)
            except (ValueError, IndexError):
                self.fail("invalid syntax")
        elif t.kind == "char":
            try:
                node = Literal(t.pos, ord(_unquote('"' + t.val[1:-1] + '"')), t.val)
            except (ValueError, TypeError, IndexError):
                self.fail(f"malformed character constant: {t.val}")
        elif t.kind == "number":
            node = Literal(t.pos, _number(t.val, self), t.val)
        elif t.kind == "bool":
            node = Literal(t.pos, t.val == "true", t.val)
        elif t.kind == "nil":
            node = Literal(t.pos, None, "nil")
        elif t.kind == "lparen":
            pipe = self.pipeline("parenthesized pipeline")
            node = pipe
        elif t.kind == "keyword":
            self.fail(f"unexpected <{t.val}> in command")
        else:
            self.fail(f"unexpected {self.describe(t)} in operand")
        if self.peek(skip_space=False).kind == "field":
            names = []
            cpos = self.peek(skip_space=False).pos
            while self.peek(skip_space=False).kind == "field":
                names.append(self.next(skip_space=False).val[1:])
            if isinstance(node, Literal):
                self.fail(f"unexpected . after term {node.text!r}".replace("'", '"'))
            node = Chain(cpos, node, names)
        return node


_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\",
            '"': '"', "'": "'"}


def _unquote(s: str) -> str:
    """strconv.Unquote of a Go string literal: "…" with escapes, or `raw`."""
    if s.startswith("`"):
        return s[1:-1]
    body, out, i = s[1:-1], [], 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        e = body[i + 1:i + 2]
        if e in _ESCAPES:
            out.append(_ESCAPES[e])
            i += 2
        elif e in ("x", "u", "U"):
            n = {"x": 2, "u": 4, "U": 8}[e]
            out.append(chr(int(body[i + 2:i + 2 + n], 16)))
            i += 2 + n
        elif e.isdigit():
            out.append(chr(int(body[i + 1:i + 4], 8)))
            i += 4
        else:
            raise ValueError(f"unknown escape sequence \\{e}")
    return "".join(out)


class GoFloat(float):
    """A float constant of the template (`1.5`, `1e6`): printed as fmt prints a float64 (`1e+06`), where
    whole floats of the data print as the ints docker's typed values hold."""


def _number(text: str, p: Parser) -> int | float:
    t = text.replace("_", "")
    try:
        if any(c in t for c in ".eE") and not t.lower().startswith(("0x", "-0x", "+0x")):
            return GoFloat(t)
        return int(t, 0)
    except ValueError:
        p.fail(f'bad number syntax: "{text}"')
        raise


# -- values as fmt prints them -------------------------------------------------------------------

def go_float(f: float) -> str:
    """fmt's %v of a float64: shortest digits, %e from exponent 6 up or below -4 (1.2345675e+06, 1e-05)."""
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    r = repr(f)
    mant, _, exp = r.partition("e")
    sign = "-" if mant.startswith("-") else ""
    mant = mant.lstrip("-")
    ip, _, fp = mant.partition(".")
    fp = "" if fp == "0" else fp
    digits = (ip + fp).lstrip("0")
    lead = len(ip + fp) - len((ip + fp).lstrip("0"))
    dp = len(ip) + (int(exp) if exp else 0) - lead
    digits = digits.rstrip("0") or "0"
    if not digits.strip("0"):
        return sign + "0"
    x = dp - 1
    if x < -4 or x >= 6:  # strconv's shortest %g decides with precision 6
        m = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{m}e{'-' if x < 0 else '+'}{abs(x):02d}"
    if dp <= 0:
        return f"{sign}0.{'0' * -dp}{digits}"
    if dp >= len(digits):
        return sign + digits + "0" * (dp - len(digits))
    return f"{sign}{digits[:dp]}.{digits[dp:]}"


def fmt_v(value: Any, top: bool = True) -> str:
    """fmt.Sprint of one value: `map[a:1 b:2]` (keys sorted), `[a b]`, `<nil>` inside, `<no value>` on top."""
    if value is MISSING:
        return "<no value>"
    if value is None:
        return "<no value>" if top else "<nil>"
    if isinstance(value, NilPointer):
        return "<nil>"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if type(value) is GoFloat:
        return go_float(value)
    if isinstance(value, float):
        # whole numbers print as the ints docker's typed values hold
        return str(int(value)) if value.is_integer() and abs(value) < 2 ** 63 else go_float(value)
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(fmt_v(v, False) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{fmt_v(k, False)}:{fmt_v(value[k], False)}" for k in sorted(value)) + "]"
    return str(value)


def go_type(value: Any) -> str:
    if value is None or value is MISSING:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "[]interface {}"
    if isinstance(value, dict):
        return "map[string]interface {}"
    return type(value).__name__


def truth(value: Any) -> bool:
    """Go's template truth: false, 0, nil, empty string/slice/map and a missing value are false."""
    if value is MISSING or value is None or isinstance(value, NilPointer):
        return False
    if isinstance(value, (str, list, tuple, dict)):
        return len(value) > 0
    return bool(value)


# -- evaluation ----------------------------------------------------------------------------------

class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class Func(_Record):
    fn: Callable[..., Any]
    nargs: int  # fixed count, or the minimum when variadic
    variadic: bool = False
    types: tuple[str, ...] = ()  # per argument: "string", "int", "[]string", "" (any): Go's validateType


class Method(_Record):
    """A method of the data (docker's `{{.Label "k"}}`): string arguments, called as `.Name ARG…`."""
    fn: Callable[..., Any]
    nargs: int


class Template(_Record):
    """A parsed template: `Template.parse(text, funcs)`, then `.execute(data)`."""
    name: str
    text: str
    root: list[Node]
    funcs: dict[str, Func]
    defines: dict[str, list[Node]]
    missingkey: str = "default"  # default (<no value>), zero, error (`map has no entry for key`)

    @classmethod
    def parse(cls, text: str, funcs: dict[str, Func] | None = None, name: str = "") -> "Template":
        funcs = dict(funcs or {})
        p = Parser(text, name, set(funcs) | _BUILTINS)
        root = p.parse()
        return cls(name, text, root, funcs, p.defines)

    def execute(self, data: Any, missingkey: str | None = None,
                strict: Callable[[str, dict, str], str | None] | None = None, typed: bool = False) -> str:
        """`strict(parent_field, obj, name)`: the Go type name when `obj` stands for a struct whose field `name`
        is missing: that fails (a NilPointer: the field reads as that nil pointer). `typed`: the values are Go's typed ones (a string field of docker's row
        contexts is a `string`, where decoded JSON holds `interface {}`), as error texts name them.
        (`can't evaluate field`) where a map's read `<no value>`."""
        ex = _Exec(self, missingkey or self.missingkey, strict, typed)
        out: list[str] = []
        ex.walk(self.root, data, [("$", data)], out)
        return "".join(out)


class _Exec:
    def __init__(self, t: Template, missingkey: str, strict: Callable[[str, dict, str], str | None] | None = None,
                 typed: bool = False) -> None:
        self.t = t
        self.typed = typed
        self.missingkey = missingkey
        self.strict = strict
        self.node: Node | None = None
        self.depth = 0

    def fail(self, msg: str, node: Node | None = None) -> None:
        n = node or self.node
        name = self.t.name
        if n is None:
            raise ExecError(f'template: {name}: executing "{name}": {msg}')
        text = self.t.text[:n.pos]
        line = text.count("\n") + 1
        col = n.pos - (text.rfind("\n") + 1)
        ctx = str(n)
        if len(ctx) > 20:
            ctx = ctx[:20] + "..."
        raise ExecError(f'template: {name}:{line}:{col}: executing "{name}" at <{ctx}>: {msg}')

    def walk(self, nodes: list[Node], dot: Any, scope: list[tuple[str, Any]], out: list[str]) -> None:
        mark = len(scope)
        for n in nodes:
            if isinstance(n, Text):
                out.append(n.text)
            elif isinstance(n, Action):
                v = self.pipeline(n.pipe, dot, scope)
                if not n.pipe.decl:
                    out.append(self.printable(v, n.pipe))
            elif isinstance(n, Branch):
                self.branch(n, dot, scope, out)
            elif isinstance(n, Control):
                raise _Break() if n.kind == "break" else _Continue()
            elif isinstance(n, TemplateCall):
                body = self.t.defines.get(n.name)
                if body is None:
                    self.fail(f'template "{n.name}" not defined', n)
                new_dot = self.pipeline(n.pipe, dot, scope) if n.pipe else None
                self.depth += 1
                if self.depth > 100:  # Python's recursion limit comes before Go's 100000
                    self.fail("exceeded maximum template depth (100)", n)
                self.walk(body, new_dot, [("$", new_dot)], out)
                self.depth -= 1
        del scope[mark:]

    def printable(self, v: Any, node: Node) -> str:
        if isinstance(v, Func):
            self.node = node
            self.fail("can't print value of type func")
        return fmt_v(v)

    def branch(self, n: Branch, dot: Any, scope: list[tuple[str, Any]], out: list[str]) -> None:
        mark = len(scope)
        if n.kind == "range":
            self.range_(n, dot, scope, out)
        else:
            v = self.pipeline(n.pipe, dot, scope)
            if truth(v):
                self.walk(n.body, v if n.kind == "with" else dot, scope, out)
            elif n.else_body is not None:
                self.walk(n.else_body, dot, scope, out)
        del scope[mark:]

    def range_(self, n: Branch, dot: Any, scope: list[tuple[str, Any]], out: list[str]) -> None:
        pipe = n.pipe
        saved = Pipe(pipe.pos, [], False, pipe.cmds)
        v = self.pipeline(saved, dot, scope)
        self.node = pipe
        if isinstance(v, dict):
            items = [(k, v[k]) for k in sorted(v)]
        elif isinstance(v, (list, tuple)):
            items = list(enumerate(v))
        elif v is MISSING or v is None:
            items = []
        elif isinstance(v, int) and not isinstance(v, bool):
            items = [(i, i) for i in range(v)]
        else:
            self.fail(f"range can't iterate over {fmt_v(v)}")
            items = []
        if not items:
            if n.else_body is not None:
                self.walk(n.else_body, dot, scope, out)
            return
        mark = len(scope)
        for k, elem in items:
            del scope[mark:]
            if len(pipe.decl) == 1:
                self.setvar(scope, pipe.decl[0], elem, pipe.is_assign)
            elif len(pipe.decl) == 2:
                self.setvar(scope, pipe.decl[0], k, pipe.is_assign)
                self.setvar(scope, pipe.decl[1], elem, pipe.is_assign)
            try:
                self.walk(n.body, elem, scope, out)
            except _Break:
                break
            except _Continue:
                continue
        del scope[mark:]

    @staticmethod
    def setvar(scope: list[tuple[str, Any]], name: str, value: Any, assign: bool) -> None:
        if assign:
            for i in range(len(scope) - 1, -1, -1):
                if scope[i][0] == name:
                    scope[i] = (name, value)
                    return
        scope.append((name, value))

    def pipeline(self, pipe: Pipe, dot: Any, scope: list[tuple[str, Any]]) -> Any:
        value: Any = _NOFINAL
        for cmd in pipe.cmds:
            value = self.command(cmd, dot, scope, value)
        if value is None:
            value = MISSING  # an interface{} holding nil is dug out to an invalid value
        for name in pipe.decl:
            self.setvar(scope, name, value, pipe.is_assign)
        return value

    def command(self, cmd: Command, dot: Any, scope: list[tuple[str, Any]], final: Any) -> Any:
        first = cmd.args[0]
        if isinstance(first, Field):
            return self.field_chain(dot, first, first.names, dot, cmd.args, final, scope)
        if isinstance(first, Chain):
            base = self.arg_value(first.node, dot, scope)
            return self.field_chain(dot, first, first.names, base, cmd.args, final, scope)
        if isinstance(first, Ident):
            return self.call(first, cmd, dot, scope, final)
        if isinstance(first, Var):
            base = self.lookup_var(first, scope)
            if first.names:
                return self.field_chain(dot, first, first.names, base, cmd.args, final, scope)
            self.not_a_function(cmd, final)
            return base
        self.not_a_function(cmd, final)
        if isinstance(first, Pipe):
            return self.pipeline(first, dot, scope)
        if isinstance(first, Dot):
            return dot
        if isinstance(first, Literal):
            if first.value is None:
                self.node = first
                self.fail("nil is not a command")
            return first.value
        self.fail(f"can't evaluate command {first}")

    def not_a_function(self, cmd: Command, final: Any) -> None:
        if len(cmd.args) > 1 or final is not _NOFINAL:
            self.node = cmd.args[0]
            self.fail(f"can't give argument to non-function {cmd.args[0]}")

    def lookup_var(self, v: Var, scope: list[tuple[str, Any]]) -> Any:
        for name, value in reversed(scope):
            if name == v.name:
                return value
        self.node = v
        self.fail(f"undefined variable: {v.name}")

    def field_chain(self, dot: Any, node: Node, names: list[str], receiver: Any, args: list[Node], final: Any,
                    scope: list[tuple[str, Any]] | None = None) -> Any:
        """`.A.B` on `receiver`; a Method as the last element is called with the command's arguments."""
        self.node = node
        parent = ""
        for name in names:
            receiver = self.field(name, receiver, parent)
            parent = name
        if isinstance(receiver, Method):
            vals = [self.arg_value(a, dot, scope or []) for a in args[1:]]
            if final is not _NOFINAL:
                vals.append(final)
            self.node = node
            if len(vals) != receiver.nargs:
                self.fail(f"wrong number of args for {names[-1]}: want {receiver.nargs} got {len(vals)}")
            for v in vals:
                if not isinstance(v, str):
                    self.fail(f"wrong type for value; expected string; got {go_type(v)}")
            return receiver.fn(*vals)
        if len(args) > 1 or final is not _NOFINAL:
            self.node = node
            self.fail(f"{names[-1]} has arguments but cannot be invoked as function")
        return receiver

    def field(self, name: str, receiver: Any, parent: str = "") -> Any:
        if receiver is MISSING:
            if self.missingkey == "error":
                self.fail(f'nil data; no entry for key "{name}"')
            return MISSING
        if receiver is None:
            self.fail(f"nil pointer evaluating interface {{}}.{name}")
        if isinstance(receiver, NilPointer):
            self.fail(f"nil pointer evaluating {receiver.typename}.{name}")
        if isinstance(receiver, dict):
            if name in receiver:
                return receiver[name]
            if self.missingkey == "error":
                self.fail(f'map has no entry for key "{name}"')
            typename = self.strict(parent, receiver, name) if self.strict is not None else None
            if isinstance(typename, NilPointer):
                return typename
            if typename:
                self.fail(f"can't evaluate field {name} in type {typename}")
            return MISSING if self.missingkey == "default" else None
        self.fail(f"can't evaluate field {name} in type {go_type(receiver) if self.typed else 'interface {}'}")

    def arg_value(self, node: Node, dot: Any, scope: list[tuple[str, Any]]) -> Any:
        self.node = node
        if isinstance(node, Dot):
            return dot
        if isinstance(node, Field):
            return self.field_chain(dot, node, node.names, dot, [node], _NOFINAL)
        if isinstance(node, Var):
            v = self.lookup_var(node, scope)
            return self.field_chain(dot, node, node.names, v, [node], _NOFINAL) if node.names else v
        if isinstance(node, Chain):
            base = self.arg_value(node.node, dot, scope)
            return self.field_chain(dot, node, node.names, base, [node], _NOFINAL)
        if isinstance(node, Pipe):
            return self.pipeline(node, dot, scope)
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, Ident):
            f = self.t.funcs.get(node.name) or BUILTINS.get(node.name)
            if f is None:
                self.fail(f'function "{node.name}" not defined')
            if f.nargs == 0 and not f.variadic:
                return f.fn()
            self.fail(f"wrong number of args for {node.name}: want {f.nargs} got 0")
        self.fail(f"can't handle {node} for arg")

    def check_constant(self, a: Literal, want: str) -> None:
        v = a.value
        if want == "string" and not isinstance(v, str):
            self.fail(f"expected string; found {a}")
        if want == "int" and (isinstance(v, bool) or not isinstance(v, int)):
            self.fail(f"expected integer; found {a}")
        if want == "[]string":
            self.fail(f"can't handle {a} for arg of type []string")

    def check_type(self, v: Any, want: str) -> None:
        ok = (isinstance(v, str) if want == "string" else
              isinstance(v, int) and not isinstance(v, bool) if want == "int" else
              isinstance(v, (list, tuple)) or v is None if want == "[]string" else True)
        if ok:
            return
        if v is MISSING:
            self.fail(f"invalid value; expected {want}")
        self.fail(f"wrong type for value; expected {want}; got {go_type(v) if v is not None else 'interface {}'}")

    def call(self, ident: Ident, cmd: Command, dot: Any, scope: list[tuple[str, Any]], final: Any) -> Any:
        name = ident.name
        f = self.t.funcs.get(name) or BUILTINS.get(name)
        argn = cmd.args[1:]
        count = len(argn) + (0 if final is _NOFINAL else 1)
        self.node = cmd
        if f is None:
            self.fail(f'function "{name}" not defined')
        if f.variadic:
            if count < f.nargs:
                self.fail(f"wrong number of args for {name}: want at least {f.nargs} got {count}")
        elif count != f.nargs:
            self.fail(f"wrong number of args for {name}: want {f.nargs} got {count}")
        if name in ("and", "or"):  # Go 1.18+: evaluation stops at the first operand that decides
            thunks = [lambda a=a: self.arg_value(a, dot, scope) for a in argn]
            if final is not _NOFINAL:
                thunks.append(lambda: final)
            result = None
            for get in thunks:
                result = get()
                if truth(result) != (name == "and"):
                    break
            return result
        vals = []
        for k, a in enumerate(argn):
            v = self.arg_value(a, dot, scope)
            if k < len(f.types) and f.types[k]:
                self.node = a
                if isinstance(a, Literal):  # a constant of the wrong kind: Go's evalArg texts
                    self.check_constant(a, f.types[k])
                self.check_type(v, f.types[k])
            vals.append(v)
        if final is not _NOFINAL:
            if len(vals) < len(f.types) and f.types[len(vals)]:
                self.check_type(final, f.types[len(vals)])
            vals.append(final)
        self.node = cmd
        try:
            return f.fn(*vals)
        except _FuncError as exc:
            self.node = cmd
            self.fail(f"error calling {name}: {exc}")
        except _ArgError as exc:
            self.node = cmd
            self.fail(str(exc))
        except (TypeError, ValueError, OverflowError) as exc:  # a value the function cannot take: one line
            self.node = cmd
            self.fail(f"error calling {name}: {exc}")


_NOFINAL: Any = object()


class _FuncError(Exception):
    """A function's returned error: `error calling NAME: …`."""


class _ArgError(Exception):
    """An argument of the wrong type: reported as is."""


def _want_str(v: Any) -> str:
    if isinstance(v, str):
        return v
    if v is MISSING:
        raise _ArgError("invalid value; expected string")
    raise _ArgError(f"wrong type for value; expected string; got {go_type(v) if v is not None else 'interface {}'}")


def _want_int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        if v is MISSING:
            raise _ArgError("invalid value; expected int")
        raise _ArgError(f"wrong type for value; expected int; got {go_type(v)}")
    return v


def _index(item: Any, *keys: Any) -> Any:
    if item is MISSING or item is None:
        raise _FuncError("index of untyped nil")
    for k in keys:
        if isinstance(item, (list, tuple, str)):
            if isinstance(k, bool) or not isinstance(k, int):
                raise _FuncError(f"cannot index slice/array with type {go_type(k)}")
            if k < 0 or k >= len(item):
                raise _FuncError(f"index out of range: {k}")
            item = item[k] if not isinstance(item, str) else ord(item[k])
        elif isinstance(item, dict):
            if not isinstance(k, str):
                raise _FuncError(f"value has type {go_type(k)}; should be string")
            item = item.get(k)
        elif item is None:
            raise _FuncError("index of nil pointer")
        else:
            raise _FuncError(f"can't index item of type {go_type(item)}")
    return item


def _slice(item: Any, *idx: Any) -> Any:
    if item is MISSING or item is None:
        raise _FuncError("slice of untyped nil")
    if len(idx) > 3:
        raise _FuncError(f"too many slice indexes: {len(idx)}")
    if not isinstance(item, (list, str)):
        raise _FuncError(f"can't slice item of type {go_type(item)}")
    ints = [_want_int(i) for i in idx]
    lo = ints[0] if ints else 0
    hi = ints[1] if len(ints) > 1 else len(item)
    if not 0 <= lo <= hi <= len(item):
        raise _FuncError(f"index out of range: {hi if hi > len(item) else lo}")
    return item[lo:hi]


def _length(v: Any) -> int:
    if v is None or v is MISSING:
        raise _FuncError("len of nil pointer" if v is None else "len of untyped nil")
    if isinstance(v, (str, list, tuple, dict)):
        return len(v.encode()) if isinstance(v, str) else len(v)
    raise _FuncError(f"len of type {go_type(v)}")


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    if v is None or v is MISSING:
        return "nil"
    return "other"


def _eq(a: Any, *bs: Any) -> bool:
    if not bs:
        raise _FuncError("missing argument for comparison")
    ka = _kind(a)
    if ka == "other":
        raise _FuncError("invalid type for comparison")
    for b in bs:
        kb = _kind(b)
        if ka == "nil" or kb == "nil":
            if ka == kb:
                return True
            continue
        if kb == "other":
            raise _FuncError("invalid type for comparison")
        if ka != kb:
            raise _FuncError("incompatible types for comparison")
        if a == b:
            return True
    return False


def _lt(a: Any, b: Any) -> bool:
    ka, kb = _kind(a), _kind(b)
    if ka in ("bool", "nil", "other") or kb in ("bool", "nil", "other"):
        raise _FuncError("invalid type for comparison")
    if ka != kb:
        raise _FuncError("incompatible types for comparison")
    return a < b


def _fmt_args(args: tuple, spaced: bool) -> str:
    """fmt.Sprint (spaces between operands when neither is a string) or Sprintln (always)."""
    out = []
    for i, a in enumerate(args):
        if i and (spaced or (not isinstance(a, str) and not isinstance(args[i - 1], str))):
            out.append(" ")
        out.append(fmt_v(a, top=False) if a is not MISSING else "<nil>")
    return "".join(out)


def _printf(format_: Any, *args: Any) -> str:
    fmt_s = _want_str(format_)
    out: list[str] = []
    i, n, ai = 0, len(fmt_s), 0
    while i < n:
        c = fmt_s[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        j = i + 1
        while j < n and fmt_s[j] in "+-# 0123456789.":
            j += 1
        if j >= n:
            out.append("%!(NOVERB)")
            break
        spec, verb = fmt_s[i + 1:j], fmt_s[j]
        i = j + 1
        if verb == "%":
            out.append("%")
            continue
        if ai >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        a = args[ai]
        ai += 1
        out.append(_verb(spec, verb, a))
    if ai < len(args):
        out.append("%!(EXTRA " + ", ".join(f"{go_type(a)}={fmt_v(a, False)}" for a in args[ai:]) + ")")
    return "".join(out)


def _verb(spec: str, verb: str, a: Any) -> str:
    pyspec = spec.replace("#", "")
    try:
        if verb in "vs":
            text = fmt_v(a, top=False) if verb == "v" or isinstance(a, str) else None
            if text is None:
                return f"%!s({go_type(a)}={fmt_v(a, False)})"
            return format(text, _align(pyspec))
        if verb == "q":
            import json as _json
            return format(_json.dumps(a, ensure_ascii=False) if isinstance(a, str) else fmt_v(a, False), _align(pyspec))
        if verb in "dxXob":
            if isinstance(a, bool) or not isinstance(a, int):
                return f"%!{verb}({go_type(a)}={fmt_v(a, False)})"
            return format(a, pyspec + verb)
        if verb in "feEgG":
            if isinstance(a, bool) or not isinstance(a, (int, float)):
                return f"%!{verb}({go_type(a)}={fmt_v(a, False)})"
            return format(float(a), pyspec + (verb if "." in spec or verb in "gG" else "." + "6" + verb)
                          if "." not in spec and verb not in "gG" else pyspec + verb)
        if verb == "T":
            return format(go_type(a), _align(pyspec))
        if verb == "t":
            return fmt_v(a, False) if isinstance(a, bool) else f"%!t({go_type(a)}={fmt_v(a, False)})"
        if verb == "c":
            return chr(a) if isinstance(a, int) else f"%!c({go_type(a)}={fmt_v(a, False)})"
    except ValueError:
        pass
    return f"%!{verb}({go_type(a)}={fmt_v(a, False)})"


def _align(spec: str) -> str:
    """Go's width flags (`%-10s`, `%10s`) as Python's format spec for strings."""
    if spec.startswith("-"):
        return "<" + spec[1:]
    return (">" + spec) if spec and spec[0].isdigit() else spec


def _html(*args: Any) -> str:
    s = _fmt_args(args, False)
    return (s.replace("&", "&amp;").replace("'", "&#39;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&#34;").replace("\x00", "\uFFFD"))


def _js(*args: Any) -> str:
    s = _fmt_args(args, False)
    table = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E", "&": "\\u0026",
             "=": "\\u003D", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    return "".join(table.get(c, c) for c in s)


def _urlquery(*args: Any) -> str:
    from urllib.parse import quote_plus

    return quote_plus(_fmt_args(args, False), safe="")


def _call(*args: Any) -> Any:
    raise _FuncError("call of nil")


BUILTINS: dict[str, Func] = {
    "and": Func(lambda *a: a, 1, True),
    "or": Func(lambda *a: a, 1, True),
    "not": Func(lambda v: not truth(v), 1),
    "len": Func(_length, 1),
    "index": Func(_index, 1, True),
    "slice": Func(_slice, 1, True),
    "print": Func(lambda *a: _fmt_args(a, False), 0, True),
    "printf": Func(_printf, 1, True),
    "println": Func(lambda *a: _fmt_args(a, True) + "\n", 0, True),
    "eq": Func(_eq, 1, True),
    "ne": Func(lambda a, b: not _eq(a, b), 2),
    "lt": Func(_lt, 2),
    "le": Func(lambda a, b: _lt(a, b) or _eq(a, b), 2),
    "gt": Func(lambda a, b: not (_lt(a, b) or _eq(a, b)), 2),
    "ge": Func(lambda a, b: not _lt(a, b), 2),
    "html": Func(_html, 0, True),
    "js": Func(_js, 0, True),
    "urlquery": Func(_urlquery, 0, True),
    "call": Func(_call, 1, True),
}
