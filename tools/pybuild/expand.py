"""Shell-word expansion as BuildKit's frontend/dockerfile/shell lexer does it.

Quotes, the escape token (`\\` or `` ` ``), `$V`, `${V}`, `${V:-w}`, `${V-w}`, `${V:+w}`, `${V+w}`,
`${V:?msg}`, `${V?msg}`, `${V#p}`/`##`, `${V%p}`/`%%`, `${V/p/r}`/`//`. Only the instructions Docker
expands go through here (see `EXPANDED_INSTRUCTIONS`); RUN/CMD/ENTRYPOINT are left to the shell.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping

from .errors import BuildError, _go_quote

# ONBUILD is not expanded; FROM only with the global ARGs.
EXPANDED_INSTRUCTIONS = frozenset(
    {"ADD", "COPY", "ENV", "EXPOSE", "FROM", "LABEL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR", "ARG"}
)

_SPECIAL_PARAMS = frozenset("@*#?-$!0")


class ExpandError(BuildError):
    """A bad substitution or an unterminated quote; the frontend adds the Dockerfile line."""


@dataclass
class ExpandResult:
    result: str
    words: list[str]
    matched: set[str] = field(default_factory=set)
    unmatched: set[str] = field(default_factory=set)
    undefined: set[str] = field(default_factory=set)  # unset and used plainly ($V, ${V}): no default given


class _Words:
    """Word splitting alongside the single-word result (BuildKit's wordsStruct)."""

    def __init__(self) -> None:
        self.buf: list[str] = []
        self.words: list[str] = []
        self.in_word = False

    def _buffered(self) -> bool:
        return any(self.buf)  # Go checks the builder's length: empty quoted strings add nothing

    def add_char(self, ch: str) -> None:
        if ch.isspace():
            if self.in_word and self._buffered():
                self.words.append("".join(self.buf))
                self.buf = []
                self.in_word = False
        else:
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.buf.append(ch)
        self.in_word = True

    def add_string(self, s: str) -> None:
        for ch in s:
            self.add_char(ch)

    def add_raw_string(self, s: str) -> None:
        self.buf.append(s)
        self.in_word = True

    def get(self) -> list[str]:
        if self._buffered():
            self.words.append("".join(self.buf))
            self.buf = []
            self.in_word = False
        return self.words


class _Err(Exception):
    pass


_EOF = ""


class _ShellWord:
    def __init__(self, lex: "ShellLex", word: str, env: Mapping[str, str]) -> None:
        self.lex = lex
        self.src = word
        self.pos = 0
        self.env = env
        self.raw_escapes = lex.raw_escapes
        self.matched: set[str] = set()
        self.unmatched: set[str] = set()
        self.undefined: set[str] = set()

    def peek(self) -> str:
        return self.src[self.pos] if self.pos < len(self.src) else _EOF

    def next(self) -> str:
        if self.pos < len(self.src):
            ch = self.src[self.pos]
            self.pos += 1
            return ch
        return _EOF

    def get_env(self, name: str) -> tuple[str, bool]:
        if name in self.env:
            self.matched.add(name)
            return self.env[name], True
        self.unmatched.add(name)
        return "", False

    def process_stop_on(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        esc = self.lex.escape
        saved = self.raw_escapes
        self.raw_escapes = raw_escapes
        try:
            while self.peek() != _EOF:
                ch = self.peek()
                if stop != _EOF and ch == stop:
                    self.next()
                    return "".join(result), words.get()
                if ch == "$":
                    tmp = self.process_dollar()
                    result.append(tmp)
                    words.add_string(tmp)
                elif ch == "<":
                    tmp = self.process_possible_heredoc()
                    result.append(tmp)
                    words.add_raw_string(tmp)
                elif ch in "'\"" and not self.lex.skip_process_quotes:
                    tmp = self.process_single_quote() if ch == "'" else self.process_double_quote()
                    result.append(tmp)
                    words.add_raw_string(tmp)
                else:
                    ch = self.next()
                    if ch == esc:
                        if self.raw_escapes:
                            words.add_raw_char(ch)
                            result.append(ch)
                        ch = self.next()
                        if ch == _EOF:
                            break
                        words.add_raw_char(ch)
                    else:
                        words.add_char(ch)
                    result.append(ch)
            if stop != _EOF:
                raise _Err(f"unexpected end of statement while looking for matching {stop}")
            return "".join(result), words.get()
        finally:
            self.raw_escapes = saved

    def process_possible_heredoc(self) -> str:
        """`<<` keeps the blanks after it in its word, so `<< EOF` is one heredoc word (BuildKit)."""
        self.next()
        if self.peek() != "<":
            return "<"
        self.next()
        space = []
        while self.peek() != _EOF and self.peek() in " \t\r":
            space.append(self.next())
        return "<<" + "".join(space)

    def process_single_quote(self) -> str:
        result: list[str] = []
        ch = self.next()
        if self.lex.raw_quotes:
            result.append(ch)
        while True:
            ch = self.next()
            if ch == _EOF:
                raise _Err("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.lex.raw_quotes:
                    result.append(ch)
                return "".join(result)
            result.append(ch)

    def process_double_quote(self) -> str:
        result: list[str] = []
        ch = self.next()
        if self.lex.raw_quotes:
            result.append(ch)
        esc = self.lex.escape
        while True:
            p = self.peek()
            if p == _EOF:
                raise _Err("unexpected end of statement while looking for matching double-quote")
            if p == '"':
                ch = self.next()
                if self.lex.raw_quotes:
                    result.append(ch)
                return "".join(result)
            if p == "$":
                result.append(self.process_dollar())
                continue
            ch = self.next()
            if ch == esc:
                if self.raw_escapes:
                    result.append(ch)
                nxt = self.peek()
                if nxt == _EOF:
                    continue  # a lone escape at the end is dropped
                if nxt in ('"', "$", esc):
                    ch = self.next()
            result.append(ch)

    def process_dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self.process_name()
            if name == "":
                return "$"
            value, found = self.get_env(name)
            if not found:
                self.undefined.add(name)
            if not found and self.lex.skip_unset_env:
                return "$" + name
            return value
        self.next()
        p = self.peek()
        if p == _EOF:
            raise _Err("syntax error: missing '}'")
        if p in "{}:":
            raise _Err("syntax error: bad substitution")
        name = self.process_name()
        ch = self.next()
        if ch == _EOF:
            raise _Err("syntax error: missing '}'")
        chs = ch
        null_is_unset = False
        if ch == "}":
            value, found = self.get_env(name)
            if not found:
                self.undefined.add(name)
            if not found and self.lex.skip_unset_env:
                return "${%s}" % name
            return value
        if ch == ":":
            null_is_unset = True
            ch = self.next()
            chs += ch
        if null_is_unset or (ch != "" and ch in "+-?#%"):
            raw = ch != "" and ch in "#%"
            if null_is_unset and raw:
                raise _Err(f"unsupported modifier ({chs}) in substitution")
            try:
                word, _ = self.process_stop_on("}", raw)
            except _Err:
                if self.peek() == _EOF:
                    raise _Err("syntax error: missing '}'") from None
                raise
            value, found = self.get_env(name)
            if self.lex.skip_unset_env and not found:
                return "${%s%s%s}" % (name, chs, word)
            if ch == "-":
                return word if (not found or (null_is_unset and value == "")) else value
            if ch == "+":
                return "" if (not found or (null_is_unset and value == "")) else word
            if ch == "?":
                if not found:
                    raise _Err(f"{name}: {word or 'is not allowed to be unset'}")
                if null_is_unset and value == "":
                    raise _Err(f"{name}: {word or 'is not allowed to be empty'}")
                return value
            if ch == "" or ch not in "#%":
                raise _Err(f"unsupported modifier ({chs}) in substitution")
            greedy = False
            if word and word[0] == ch:
                greedy = True
                word = word[1:]
            if ch == "%":
                return _trim_suffix(word, value, greedy)
            return _trim_prefix(word, value, greedy)
        if ch == "/":
            replace_all = self.peek() == "/"
            if replace_all:
                self.next()
            try:
                pattern, _ = self.process_stop_on("/", True)
            except _Err:
                if self.peek() == _EOF:
                    raise _Err("syntax error: missing '/' in ${}") from None
                raise
            try:
                repl, _ = self.process_stop_on("}", True)
            except _Err:
                if self.peek() == _EOF:
                    raise _Err("syntax error: missing '}'") from None
                raise
            value, found = self.get_env(name)
            if self.lex.skip_unset_env and not found:
                return "${%s/%s/%s}" % (name, pattern, repl)
            rx = _pattern_regex(pattern, True, False)
            if replace_all:
                return rx.sub(lambda _m: repl, value)
            m = rx.search(value)
            return value[: m.start()] + repl + value[m.end():] if m else value
        raise _Err(f"unsupported modifier ({chs}) in substitution")

    def process_name(self) -> str:
        name: list[str] = []
        while self.peek() != _EOF:
            ch = self.peek()
            if not name and ch.isdigit():
                while self.peek() != _EOF and self.peek().isdigit():
                    name.append(self.next())
                return "".join(name)
            if not name and ch in _SPECIAL_PARAMS:
                return self.next()
            if not (ch.isalpha() or ch.isdigit() or ch == "_"):
                break
            name.append(self.next())
        return "".join(name)


def _pattern_regex(pattern: str, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """A shell wildcard (`*`, `?`, escapes; no brackets) as a regex, as BuildKit converts it."""
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i = 0
    while i < len(pattern):
        tok = pattern[i]
        i += 1
        if tok == "*":
            out.append(star)
        elif tok == "?":
            out.append(".")
        elif tok == "\\":
            nxt = pattern[i] if i < len(pattern) else ""
            if nxt in ("}", "/"):
                continue
            if nxt not in ("*", "?", "\\"):
                raise _Err(f"invalid pattern ({pattern}) in substitution: invalid escape '\\{nxt}'")
            out.append(re.escape(nxt))
            i += 1
        else:
            out.append(re.escape(tok))
    return re.compile("".join(out), re.S)


def _trim_prefix(word: str, value: str, greedy: bool) -> str:
    m = _pattern_regex(word, greedy, True).search(value)
    return value[m.end():] if m else value


def _reverse_pattern(p: str) -> str:
    # reverse without splitting escapes: a\*c -> c\*a
    units: list[str] = []
    i = 0
    while i < len(p):
        if p[i] == "\\" and i + 1 < len(p):
            units.append(p[i : i + 2])
            i += 2
        else:
            units.append(p[i])
            i += 1
    return "".join(reversed(units))


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]


@dataclass(frozen=True)
class ShellLex:
    """BuildKit's shell.Lex. Options as there: `raw_quotes` keeps quote characters, `raw_escapes`
    keeps escape characters, `skip_process_quotes` treats quotes as plain characters (heredoc
    bodies), `skip_unset_env` leaves references to unset variables as written."""

    escape: str = "\\"
    raw_quotes: bool = False
    raw_escapes: bool = False
    skip_process_quotes: bool = False
    skip_unset_env: bool = False

    def process(self, word: str, env: Mapping[str, str]) -> ExpandResult:
        if not any(c in word for c in ("$", "'", '"', "<", self.escape)):
            return ExpandResult(word, word.split())  # nothing to expand: the common case, fast
        sw = _ShellWord(self, word, env)
        try:
            result, words = sw.process_stop_on(_EOF, self.raw_escapes)
        except _Err as e:
            raise ExpandError(f"failed to process {_go_quote(word)}: {e}") from None
        return ExpandResult(result, words, sw.matched, sw.unmatched, sw.undefined)

    def process_word(self, word: str, env: Mapping[str, str]) -> str:
        return self.process(word, env).result

    def process_words(self, word: str, env: Mapping[str, str]) -> list[str]:
        return self.process(word, env).words


def expand(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """Expand one word (quotes removed) as the builder does for ENV, COPY, WORKDIR, ..."""
    return ShellLex(escape).process_word(word, env)


def expand_words(word: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Expand then split into words (whitespace outside quotes separates)."""
    return ShellLex(escape).process_words(word, env)
