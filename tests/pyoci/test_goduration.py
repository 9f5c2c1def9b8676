"""pyoci.goduration: Go's time.ParseDuration and Duration.String (results and error texts as Go's)."""

from __future__ import annotations

import pytest

from pyoci import goduration

NS = 1_000_000_000


@pytest.mark.parametrize("text,ns", [
    ("300ms", 300_000_000), ("1m30s", 90 * NS), ("1.5s", 1_500_000_000), ("-1s", -NS), ("+2s", 2 * NS),
    ("0", 0), ("-0", 0), (".5s", NS // 2), ("1.s", NS), ("1h2m3.5s", 3723 * NS + NS // 2), ("1.5µs", 1500),
    ("3μs", 3000), ("2us", 2000), ("7ns", 7), ("3m.5s", 180 * NS + NS // 2), ("-.5h", -1800 * NS),
    ("0.000000001s", 1), ("123456789.123456789ms", 123456789123456),  # the fraction truncated, as Go
])
def test_parse(text, ns):
    assert goduration.parse(text) == ns
    assert goduration.seconds(text) == ns / 1e9


@pytest.mark.parametrize("text,message", [
    ("", 'time: invalid duration ""'), ("-", 'time: invalid duration "-"'), ("xyz", 'time: invalid duration "xyz"'),
    (".s", 'time: invalid duration ".s"'), ("5", 'time: missing unit in duration "5"'),
    ("1s2", 'time: missing unit in duration "1s2"'), ("5x", 'time: unknown unit "x" in duration "5x"'),
    ("1e3s", 'time: unknown unit "e" in duration "1e3s"'),
])
def test_parse_errors(text, message):
    with pytest.raises(ValueError) as e:
        goduration.parse(text)
    assert str(e.value) == message


@pytest.mark.parametrize("ns,text", [
    (0, "0s"), (1, "1ns"), (1500, "1.5µs"), (200_000_000, "200ms"), (NS, "1s"), (1_500_000_000, "1.5s"),
    (90 * NS, "1m30s"), (3600 * NS, "1h0m0s"), (7200 * NS + 1, "2h0m0.000000001s"), (-1500, "-1.5µs"),
])
def test_format(ns, text):
    assert goduration.format(ns) == text
