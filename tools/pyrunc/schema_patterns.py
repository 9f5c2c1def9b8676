"""The schema's regex patterns checked without `re` (whose import, with enum, costs ~5 ms a container start).

The generated validator (_config_schema, see genschema) does ``re.compile(p).search(s)``; this module's ``re``
answers that for the runtime-spec's patterns by hand and compiles any other pattern with the real `re`, lazily."""

from __future__ import annotations

_DIGITS = frozenset("0123456789")
_UPPER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_CPU_LIST = frozenset("0123456789, -")


def _hugepage_size(s: str) -> bool:  # ^[1-9][0-9]*[KMG]B\Z
    return len(s) >= 3 and s[0] in "123456789" and _DIGITS.issuperset(s[1:-2]) and s[-2] in "KMG" and s[-1] == "B"


# fastjsonschema's compiled source (it turns `$` into `\Z`) -> a check with the same answer as re's search()
_KNOWN = {
    "^RLIMIT_[A-Z]+\\Z": lambda s: len(s) > 7 and s.startswith("RLIMIT_") and _UPPER.issuperset(s[7:]),
    "^[0-9, -]*\\Z": lambda s: _CPU_LIST.issuperset(s),
    "^[1-9][0-9]*[KMG]B\\Z": _hugepage_size,
    "^MB:[^\\n]*\\Z": lambda s: s.startswith("MB:") and "\n" not in s,
    ".{1,}": lambda s: any(c != "\n" for c in s),
    "^[cbup]\\Z": lambda s: s in ("c", "b", "u", "p"),
}


class _Pattern:
    def __init__(self, source: str) -> None:
        self.source = source
        self._check = _KNOWN.get(source)
        self._compiled = None

    def search(self, s: str) -> bool:
        if self._check is not None:
            return self._check(s)
        if self._compiled is None:
            import re as real

            self._compiled = real.compile(self.source)
        return self._compiled.search(s) is not None


class re:  # noqa: N801 - stands in for the module in the generated code
    @staticmethod
    def compile(source: str) -> _Pattern:
        return _Pattern(source)
