"""pyoci.fastjson gives json's results and json's errors (it runs json's own C scanner and encoder)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pyoci import fastjson

DOCS = [{"a": [1, 2.5, None, True, False, "x\u00e9\n\"", {"b": {}}], "c": -1e300, "d": "é😀"}, [], "s", 3, 1.0, None,
        {"ociVersion": "1.0.2", "process": {"args": ["sh", "-c", "echo \\\"hi\\\""], "env": []}}]
BAD = ["", "{", "{} x", "[1,]", '{"a" 1}', "\ufeff{}", '"\x01"', "nul", "{not json"]


@pytest.mark.parametrize("doc", DOCS)
def test_same_as_json(doc):
    assert fastjson.dumps(doc) == json.dumps(doc)
    assert fastjson.dumps(doc, separators=(",", ":")) == json.dumps(doc, separators=(",", ":"))
    text = json.dumps(doc)
    assert repr(fastjson.loads(text)) == repr(json.loads(text))
    assert repr(fastjson.loads(f" \n\t{text}\r\n".encode())) == repr(json.loads(text))


def test_errors_as_json_even_before_json_is_imported():
    """The C scanner needs json.decoder imported to raise; an isolated interpreter (the launcher's) has not."""
    code = ("import sys; sys.path[:0] = [sys.argv[1]]\nfrom pyoci import fastjson\n"
            "for bad in sys.argv[2:]:\n"
            "    try:\n        fastjson.loads(bad)\n    except ValueError as e:\n        print(type(e).__name__, e)\n")
    import pyoci

    tools = str(__import__("pathlib").Path(pyoci.__file__).parent.parent)
    out = subprocess.run([sys.executable, "-IS", "-c", code, tools, *BAD], capture_output=True, text=True, timeout=30)
    expected = []
    for bad in BAD:
        try:
            json.loads(bad)
        except ValueError as e:
            expected.append(f"{type(e).__name__} {e}")
    assert out.stdout.splitlines() == expected, out.stderr


def test_indented_dumps_match_json():
    """`state` and `features` print indented JSON without importing `json`; the text must be json's own."""
    cases = [{"ociVersion": "1.0.2-dev", "pid": 42, "annotations": {"a": "é\"\n"}, "empty": {}, "none": None,
              "list": [1, 2.5, [], [True, False], {"k": (1, "2")}]}, [], {}, "s", 3, None, [[[]]]]
    for doc in cases:
        for indent in (2, 4, "\t", 0):
            assert fastjson.dumps(doc, indent=indent) == json.dumps(doc, indent=indent), (doc, indent)
    # what it leaves to json (NaN, non-string keys) still comes out as json writes it
    for doc in ({"nan": float("nan")}, {1: 2}):
        assert fastjson.dumps(doc, indent=2) == json.dumps(doc, indent=2)


@pytest.mark.parametrize("doc", DOCS)
def test_compact_unicode_as_json(doc):
    """pycontainerd's protocol frames: json.dumps(separators=(",", ":"), ensure_ascii=False), byte for byte."""
    assert fastjson.dumps(doc, separators=(",", ":"), ensure_ascii=False) == \
        json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def test_unserializable_and_circular_as_json():
    for doc in ({"a": object()}, [b"x"]):
        with pytest.raises(TypeError) as ours:
            fastjson.dumps(doc, separators=(",", ":"), ensure_ascii=False)
        with pytest.raises(TypeError) as theirs:
            json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
        assert str(ours.value) == str(theirs.value)
    loop: list = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference detected"):
        fastjson.dumps(loop, separators=(",", ":"), ensure_ascii=False)
