"""pyrunc's hand-written checks for the runtime schema's patterns answer as `re` does."""

from __future__ import annotations

from pyrunc.schema_patterns import _KNOWN


def test_schema_patterns_agree_with_re():
    import re

    samples = ["", "RLIMIT_", "RLIMIT_NOFILE", "RLIMIT_nofile", "RLIMIT_A\n", "xRLIMIT_A", "0-3,5", "0-3\n", "a",
               "1GB", "10MB", "0GB", "1KB\n", "2TB", "GB", "1G", "MB:0=20", "MB:\n", "\n", "\n\n", "a\n", "c", "cc",
               "p\n", "u", "12345KB"]
    for source, check in _KNOWN.items():
        compiled = re.compile(source)
        for s in samples:
            assert bool(compiled.search(s)) == check(s), (source, s)
