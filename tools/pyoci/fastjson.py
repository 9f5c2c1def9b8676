"""json.loads/dumps through the C accelerator `_json` alone.

The `json` package imports `re` (and `re` imports `enum`): ~8 ms of every pyrunc container start and every pyctr
command.  The C scanner and encoder are the ones `json` itself uses, so results are the same; anything unusual
(errors, indent, BOMs, non-UTF-8 bytes) goes to `json`, so its messages are kept too."""

from __future__ import annotations

import _json

_WS = " \t\n\r"


class _Context:
    """The attributes _json.make_scanner reads from a JSONDecoder."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


_scan = _json.make_scanner(_Context())


def _default(o):
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def _encoder(separators: tuple[str, str]):
    item_sep, key_sep = separators
    return _json.make_encoder(None, _default, _json.encode_basestring_ascii, None, key_sep, item_sep, False, False,
                              True)


_ENCODERS = {(", ", ": "): _encoder((", ", ": "))}


def loads(s: str | bytes):
    """json.loads(s); bytes that are not plain UTF-8 (UTF-16/32, a BOM) and every error go to json itself."""
    text = s
    if isinstance(s, (bytes, bytearray)):
        if b"\x00" in s[:4] or s.startswith(b"\xef\xbb\xbf"):  # json detects the encoding of these
            return _slow().loads(s)
        try:
            text = s.decode("utf-8")
        except UnicodeDecodeError:
            return _slow().loads(s)
    if text.startswith("\ufeff"):
        return _slow().loads(s)
    start = len(text) - len(text.lstrip(_WS))
    try:
        obj, end = _scan(text, start)
    except (StopIteration, ValueError, SystemError):
        # an error: json raises it with its message (the C scanner reports errors through json.decoder, and
        # raises SystemError while that module is not imported)
        return _slow().loads(s)
    if text[end:].strip(_WS):
        return _slow().loads(s)  # "Extra data"
    return obj


def dumps(obj, separators: tuple[str, str] | None = None, indent=None, ensure_ascii: bool = True, **kwargs) -> str:
    if not ensure_ascii and indent is None and not kwargs:
        # (a fresh encoder per call: its circular-reference markers must start empty, as json's do)
        seps = tuple(separators) if separators else (", ", ": ")
        if isinstance(obj, str):
            return _json.encode_basestring(obj)
        return "".join(_json.make_encoder({}, _default, _json.encode_basestring, None, seps[1], seps[0], False,
                                          False, True)(obj, 0))
    if not ensure_ascii:
        kwargs["ensure_ascii"] = False
    if indent is not None and not kwargs and separators is None:
        try:
            return _indented(obj, " " * indent if isinstance(indent, int) else indent, "\n")
        except _Unusual:
            pass
    if indent is not None or kwargs:
        return _slow().dumps(obj, separators=separators, indent=indent, **kwargs)
    seps = tuple(separators) if separators else (", ", ": ")
    enc = _ENCODERS.get(seps)
    if enc is None:
        enc = _ENCODERS[seps] = _encoder(seps)
    if isinstance(obj, str):
        return _json.encode_basestring_ascii(obj)
    return "".join(enc(obj, 0))


class _Unusual(Exception):
    """A value _indented leaves to `json` (its own types, NaN, non-string keys...)."""


def _indented(obj, step: str, newline: str) -> str:
    """json.dumps(obj, indent=step) for JSON's own types (`state` prints this way: `json` costs ~10 ms)."""
    if obj is None:
        return "null"
    if obj is True:
        return "true"
    if obj is False:
        return "false"
    kind = type(obj)
    if kind is str:
        return _json.encode_basestring_ascii(obj)
    if kind is int:
        return int.__repr__(obj)
    if kind is float:
        if obj != obj or obj in (float("inf"), float("-inf")):
            raise _Unusual
        return float.__repr__(obj)
    inner = newline + step
    if kind is dict:
        if not obj:
            return "{}"
        parts = []
        for k, v in obj.items():
            if type(k) is not str:
                raise _Unusual
            parts.append(_json.encode_basestring_ascii(k) + ": " + _indented(v, step, inner))
        return "{" + inner + ("," + inner).join(parts) + newline + "}"
    if kind is list or kind is tuple:
        if not obj:
            return "[]"
        return "[" + inner + ("," + inner).join(_indented(v, step, inner) for v in obj) + newline + "]"
    raise _Unusual


def load(f):
    return loads(f.read())


def dump(obj, f, **kwargs) -> None:
    f.write(dumps(obj, **kwargs))


def _slow():
    import json

    return json
