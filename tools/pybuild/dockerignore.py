""".dockerignore as moby's patternmatcher and ignorefile read it, and a context walker that applies it.

Patterns: `*`, `?`, `[...]`, `\\` escapes, `**` (any number of directories), `!` exceptions (last match
wins), a leading `/` is dropped, paths are cleaned (so a trailing `/` is ignored), lines starting
with `#` are comments. A pattern that matches a directory excludes everything below it.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from .errors import ContextError

_EXACT, _PREFIX, _SUFFIX, _REGEXP = range(4)
_SHOULD_ESCAPE = set(".+()|{}$")


def read_patterns(data: str | bytes) -> list[str]:
    """ignorefile.ReadAll: comments, blank lines, BOM; `!` kept; cleaned; a leading `/` dropped."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    if text.startswith("\ufeff"):
        text = text[1:]
    out: list[str] = []
    for raw in text.split("\n"):
        raw = raw.rstrip("\r")  # bufio.ScanLines drops a trailing \r
        if raw.startswith("#"):
            continue
        pattern = raw.strip()
        if not pattern:
            continue
        invert = pattern[0] == "!"
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = posixpath.normpath(pattern)
            if pattern.startswith("//"):
                pattern = "/" + pattern.lstrip("/")
            if len(pattern) > 1 and pattern[0] == "/":
                pattern = pattern[1:]
        out.append("!" + pattern if invert else pattern)
    return out


def _clean(p: str) -> str:
    """Go's filepath.Clean ("" -> ".", no leading // special case)."""
    if not p:
        return "."
    out = posixpath.normpath(p)
    if out.startswith("//"):
        out = "/" + out.lstrip("/")
    return out


def _check_syntax(p: str) -> None:
    """Go's filepath.Match syntax rules (moby rejects a pattern Match would): classes, escapes."""
    bad = ContextError(f"syntax error in pattern {p!r}")

    def esc(i: int) -> int:  # getEsc: one (escaped) class character, returns the next index
        if i >= len(p) or p[i] in "-]":
            raise bad
        if p[i] == "\\":
            i += 1
            if i >= len(p):
                raise bad
        i += 1
        if i >= len(p):
            raise bad
        return i

    i = 0
    while i < len(p):
        ch = p[i]
        if ch == "\\":
            if i + 1 >= len(p):
                raise bad
            i += 2
        elif ch == "[":
            i += 1
            if i < len(p) and p[i] == "^":
                i += 1
            n = 0
            while True:
                if i < len(p) and p[i] == "]" and n > 0:
                    i += 1
                    break
                i = esc(i)
                if p[i] == "-":
                    i = esc(i + 1)
                n += 1
        else:
            i += 1


@dataclass
class Pattern:
    """One compiled pattern (moby's patternmatcher.Pattern)."""

    text: str
    exclusion: bool = False
    match_type: int = _EXACT
    regexp: re.Pattern[str] | None = None
    dirs: list[str] = field(default_factory=list)

    @classmethod
    def compile(cls, raw: str) -> "Pattern":
        p = _clean(raw.strip())
        exclusion = False
        if p.startswith("!"):
            if len(p) == 1:
                raise ContextError('illegal exclusion pattern: "!"')
            exclusion = True
            p = p[1:]
        _check_syntax(p)
        pat = cls(p, exclusion, dirs=p.split("/"))
        pat._compile()
        return pat

    def _compile(self) -> None:
        reg = ["^"]
        p = self.text
        mt = _EXACT
        i, n = 0, len(p)
        first = True
        while i < n:
            ch = p[i]
            i += 1
            if ch == "*":
                if i < n and p[i] == "*":
                    i += 1
                    if i < n and p[i] == "/":
                        i += 1
                    if i >= n:
                        if mt == _EXACT:
                            mt = _PREFIX
                        else:
                            reg.append(".*")
                            mt = _REGEXP
                    else:
                        reg.append("(.*/)?")
                        mt = _REGEXP
                    if first:
                        mt = _SUFFIX
                else:
                    reg.append("[^/]*")
                    mt = _REGEXP
            elif ch == "?":
                reg.append("[^/]")
                mt = _REGEXP
            elif ch in _SHOULD_ESCAPE:
                reg.append("\\" + ch)
            elif ch == "\\":
                if i < n:
                    reg.append(re.escape(p[i]))
                    i += 1
                    mt = _REGEXP
                else:
                    reg.append("\\\\")
            elif ch == "[":
                i = self._class(p, i, reg)
                mt = _REGEXP
            elif ch == "]":
                reg.append("\\]")
                mt = _REGEXP
            else:
                reg.append(re.escape(ch) if not ch.isalnum() else ch)
            first = False
        self.match_type = mt
        if mt == _REGEXP:
            try:
                self.regexp = re.compile("".join(reg) + "$", re.S)
            except re.error as e:
                raise ContextError(f"syntax error in pattern {self.text!r}: {e}") from None

    @staticmethod
    def _class(p: str, i: int, reg: list[str]) -> int:
        """A `[...]` class (syntax already checked) as a Python class; returns the index after it."""
        out = ["["]
        if i < len(p) and p[i] == "^":
            out.append("^")
            i += 1
        n = 0

        def one(j: int) -> tuple[str, int]:
            if p[j] == "\\":
                j += 1
            return p[j], j + 1

        while True:
            if p[i] == "]" and n > 0:
                i += 1
                break
            lo, i = one(i)
            out.append(re.escape(lo))
            if p[i] == "-":
                hi, i = one(i + 1)
                out.append("-" + re.escape(hi))
            n += 1
        out.append("]")
        reg.append("".join(out))
        return i

    def match(self, path: str) -> bool:
        mt = self.match_type
        if mt == _EXACT:
            return path == self.text
        if mt == _PREFIX:
            return path.startswith(self.text[:-2])
        if mt == _SUFFIX:
            suffix = self.text[2:]
            if path.endswith(suffix):
                return True
            return suffix[:1] == "/" and path == suffix[1:]
        assert self.regexp is not None
        return self.regexp.match(path) is not None

    def __str__(self) -> str:
        return ("!" if self.exclusion else "") + self.text


class PatternMatcher:
    """moby's PatternMatcher: the last matching pattern decides; `!` patterns re-include."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns: list[Pattern] = []
        for raw in patterns:
            if not raw.strip():
                continue
            self.patterns.append(Pattern.compile(raw))
        self.exclusions = any(p.exclusion for p in self.patterns)
        self._dir_res: dict[int, list[re.Pattern[str] | None]] = {}

    def matches_or_parent_matches(self, path: str) -> bool:
        """Is `path` (slash-separated, relative to the context) excluded?"""
        matched = False
        parent = posixpath.dirname(path) or "."
        parent_dirs = parent.split("/")
        for pat in self.patterns:
            if pat.exclusion != matched:
                continue
            m = pat.match(path)
            if not m and parent != ".":
                for i in range(len(parent_dirs)):
                    if pat.match("/".join(parent_dirs[: i + 1])):
                        m = True
                        break
            if m:
                matched = not pat.exclusion
        return matched

    def matches_using_parent_results(self, path: str, parent: list[bool] | None) -> tuple[bool, list[bool]]:
        """MatchesUsingParentResults: the walk passes each directory's per-pattern results down."""
        matched = False
        info = [False] * len(self.patterns)
        for i, pat in enumerate(self.patterns):
            m = parent[i] if parent else False
            if not m:
                if pat.exclusion != matched:
                    continue
                m = pat.match(path)
                if not m and not parent:
                    pp = posixpath.dirname(path)
                    if pp:
                        dirs = pp.split("/")
                        for j in range(len(dirs)):
                            if pat.match("/".join(dirs[: j + 1])):
                                m = True
                                break
            info[i] = m
            if m:
                matched = not pat.exclusion
        return matched, info

    def matches_with_parents(self, path: str, prune: bool = False) -> bool:
        """matches_using_parent_results fed with the results of each parent directory in turn.
        With `prune`, a path under an excluded directory the walk would not enter is excluded too."""
        info: list[bool] | None = None
        parts = path.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            excluded, info = self.matches_using_parent_results(parent, info)
            if prune and excluded and not self.could_reinclude_under(parent):
                return True
        return self.matches_using_parent_results(path, info)[0]

    def could_reinclude_under(self, dir_path: str) -> bool:
        """moby/fsutil's pruning rule: an excluded directory is still walked only when some `!`
        pattern starts with `dir/` (so `!**/*.go` does not reach into an excluded `vendor`)."""
        prefix = dir_path + "/"
        return any(p.exclusion and (p.text + "/").startswith(prefix) for p in self.patterns)

    def _component_res(self, pat: Pattern) -> list[re.Pattern[str] | None]:
        key = id(pat)
        if key not in self._dir_res:
            res: list[re.Pattern[str] | None] = []
            for comp in pat.dirs:
                if comp == "**":
                    res.append(None)
                else:
                    sub = Pattern(comp)
                    sub._compile()
                    res.append(sub.regexp if sub.regexp is not None else re.compile("^" + re.escape(comp) + "$"))
            self._dir_res[key] = res
        return self._dir_res[key]

    def may_match_under(self, dir_path: str) -> bool:
        """Could some `!` pattern (wildcards considered) match `dir_path` or a path below it?"""
        comps = dir_path.split("/")
        for pat in self.patterns:
            if not pat.exclusion:
                continue
            res = self._component_res(pat)
            ok = True
            for i, comp in enumerate(comps):
                if i >= len(res):
                    break  # the exception names an ancestor of dir_path: it re-includes it
                if res[i] is None:
                    break  # ** can reach anything below
                if not res[i].match(comp):  # type: ignore[union-attr]
                    ok = False
                    break
            if ok:
                return True
        return False


def _unescape(p: str) -> str:
    return re.sub(r"\\(.)", r"\1", p)


def load_ignore(context_dir: str | os.PathLike[str], dockerfile: str | os.PathLike[str] | None = None) -> list[str]:
    """The patterns for a build: `<Dockerfile>.dockerignore` next to the Dockerfile wins over the
    context's `.dockerignore` (BuildKit); none -> []."""
    candidates = []
    if dockerfile is not None:
        candidates.append(os.fspath(dockerfile) + ".dockerignore")
    candidates.append(os.path.join(os.fspath(context_dir), ".dockerignore"))
    for c in candidates:
        try:
            with open(c, "rb") as f:
                return read_patterns(f.read())
        except FileNotFoundError:
            continue
        except OSError as e:
            raise ContextError(f"failed to read {os.path.basename(c)}: {e.strerror}") from None
    return []


class ContextFilter:
    """Decides which context paths are sent, and walks the context yielding them.

    `always_include` are context-relative paths sent even when excluded (docker's Dockerfile and
    .dockerignore rule). Walking prunes an excluded directory unless an exception could re-include
    something below it.
    """

    def __init__(self, root: str | os.PathLike[str], patterns: Iterable[str] = (),
                 always_include: Iterable[str] = ("Dockerfile", ".dockerignore")) -> None:
        self.root = os.fspath(root)
        self.matcher = PatternMatcher(patterns)
        self.always = {_clean(p).lstrip("/") for p in always_include if p}

    @classmethod
    def for_build(cls, context_dir: str | os.PathLike[str],
                  dockerfile: str | os.PathLike[str] | None = None) -> "ContextFilter":
        """The filter for a build of `context_dir` with the Dockerfile at `dockerfile` (default inside it)."""
        root = os.fspath(context_dir)
        if not os.path.isdir(root):
            raise ContextError(f"unable to prepare context: path {root!r} not found")
        always = [".dockerignore"]
        df = os.fspath(dockerfile) if dockerfile is not None else os.path.join(root, "Dockerfile")
        rel = os.path.relpath(os.path.abspath(df), os.path.abspath(root))
        if not rel.startswith(".."):
            always.append(rel.replace(os.sep, "/"))
        return cls(root, load_ignore(root, dockerfile), always)

    def excluded(self, rel: str) -> bool:
        """Is this context path left out? Decided as the walk (BuildKit's fsutil) decides: each
        parent directory's per-pattern results feed its children (MatchesUsingParentResults)."""
        rel = _clean(rel.replace(os.sep, "/")).lstrip("/")
        if rel in self.always or rel == ".":
            return False
        return self.matcher.matches_with_parents(rel, prune=True)

    def included(self, rel: str) -> bool:
        return not self.excluded(rel)

    def match_sources(self, src: str) -> list[str]:
        """The context paths a COPY/ADD source names: the source cleaned inside the context (a
        leading `/` and `..` cannot leave it), wildcards (`*`, `?`, `[...]`, per path component as
        Go's filepath.Match) expanded, excluded paths dropped; sorted. [] when nothing matches
        (the caller reports the missing source). "" stands for the context root."""
        clean = posixpath.normpath("/" + src.replace(os.sep, "/")).lstrip("/")
        if clean in ("", "."):
            return [""]
        found = [""]
        for comp in clean.split("/"):
            nxt: list[str] = []
            magic = any(c in comp for c in "*?[\\")
            rx = None
            if magic:
                pat = Pattern.compile(comp)
                rx = pat.regexp
            for base in found:
                full = os.path.join(self.root, base) if base else self.root
                if rx is None and not magic:
                    cand = f"{base}/{comp}" if base else comp
                    if os.path.lexists(os.path.join(self.root, cand)):
                        nxt.append(cand)
                    continue
                try:
                    names = sorted(os.listdir(full))
                except (NotADirectoryError, FileNotFoundError):
                    continue
                except OSError as e:
                    raise ContextError(f"failed to read {base or '.'}: {e.strerror}") from None
                for name in names:
                    ok = rx.match(name) is not None if rx is not None else name == _unescape(comp)
                    if ok:
                        nxt.append(f"{base}/{name}" if base else name)
            found = nxt
            if not found:
                return []
        return sorted(p for p in found if self.included(p))

    def walk(self, sub: str = "") -> Iterator[str]:
        """Included paths (files, dirs, links) under `sub`, slash-separated, relative to the root,
        in lexical order, parents before children. Directories that are themselves excluded but may
        hold re-included entries are not yielded; their included children are."""
        start = _clean(sub.replace(os.sep, "/")).lstrip("/") if sub else ""
        if start == ".":
            start = ""
        parent_info: list[bool] | None = None
        if start:
            # the start's own results, fed by its parents' as the full walk would compute them
            parts = start.split("/")
            for i in range(1, len(parts)):
                parent = "/".join(parts[:i])
                pex, parent_info = self.matcher.matches_using_parent_results(parent, parent_info)
                if pex and parent not in self.always and not self.matcher.could_reinclude_under(parent):
                    return
            ex, parent_info = self.matcher.matches_using_parent_results(start, parent_info)
            full = os.path.join(self.root, start)
            try:
                st = os.lstat(full)
            except FileNotFoundError:
                return
            if not stat.S_ISDIR(st.st_mode):
                if not ex or start in self.always:
                    yield start
                return
            if not ex:
                yield start
            elif self.matcher.exclusions is False or not self.matcher.could_reinclude_under(start):
                return
        yield from self._walk_dir(start, parent_info)

    def _walk_dir(self, rel_dir: str, parent_info: list[bool] | None) -> Iterator[str]:
        full = os.path.join(self.root, rel_dir) if rel_dir else self.root
        try:
            entries = sorted(os.scandir(full), key=lambda e: e.name)
        except OSError as e:
            raise ContextError(f"failed to walk context {rel_dir or '.'}: {e.strerror}") from None
        has_patterns = bool(self.matcher.patterns)
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            if has_patterns:
                ex, info = self.matcher.matches_using_parent_results(rel, parent_info or None)
            else:
                ex, info = False, []
            is_dir = entry.is_dir(follow_symlinks=False)
            if ex and rel in self.always:
                ex = False
            if not ex:
                yield rel
                if is_dir:
                    yield from self._walk_dir(rel, info)
            elif is_dir and self.matcher.exclusions and self.matcher.could_reinclude_under(rel):
                yield from self._walk_dir(rel, info)
