"""pybuild.expand: BuildKit's shell-word lexer, table driven (quotes, escapes, every ${} form)."""

from __future__ import annotations

import pytest

from pybuild.expand import EXPANDED_INSTRUCTIONS, ExpandError, ShellLex, expand, expand_words

ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": "", "V": "abc.tar.gz", "SP": "a  b",
       "_u": "under", "X1": "x1"}

ERR = object()

WORD_TABLE = [
    # quotes and escapes
    ("hello", "hello"),
    ("he'll'o", "hello"),
    ("he'llo", ERR),
    ("he\\'llo", "he'llo"),
    ("he\\\\'llo", ERR),
    ("abc\\tdef", "abctdef"),
    ('"abc\\tdef"', "abc\\tdef"),
    ('"abc\\\\tdef"', "abc\\tdef"),
    ("'abc\\tdef'", "abc\\tdef"),
    ("hello\\", "hello"),
    ("hello\\\\", "hello\\"),
    ('"hello', ERR),
    ('"hello\\"', ERR),
    ('"hel\'lo"', "hel'lo"),
    ("'hello", ERR),
    ("'hello\\'", "hello\\"),
    ("'hello\\there'", "hello\\there"),
    ('"\'\'"', "''"),
    ("a  b", "a  b"),
    ('"a\\"b"', 'a"b'),
    ('"a\\$b"', "a$b"),
    ('"a\\b"', "a\\b"),
    ('"a\\\\b"', "a\\b"),
    # $name
    ("$.", "$."),
    ("$", "$"),
    ("he$1x", "hex"),
    ("he$.x", "he$.x"),
    ("he$pwd.", "he."),
    ("he$PWD", "he/home"),
    ("he$PWD.x", "he/home.x"),
    ("he\\$PWD", "he$PWD"),
    ("he\\\\$PWD", "he\\/home"),
    ('"he\\$PWD"', "he$PWD"),
    ("'he\\$PWD'", "he\\$PWD"),
    ("'$PWD'", "$PWD"),
    ('"$PWD"', "/home"),
    ("$_u", "under"),
    ("$X1y", ""),
    ("$KOREAN", "한국어"),
    ("$#", ""),
    ("$$", ""),
    ("$@x", "x"),
    # ${name}
    ("he${PWD}", "he/home"),
    ("he${PWD}x", "he/homex"),
    ('"${KOREAN}"', "한국어"),
    ("he${PWD", ERR),
    ("he${}", ERR),
    ("he${:}", ERR),
    ("he${{PWD}", ERR),
    ("${", ERR),
    ("${#}", ""),
    # default / alternative
    ("he${XXX:-000}xx", "he000xx"),
    ("he${PWD:-000}xx", "he/homexx"),
    ("he${XXX:-$PWD}xx", "he/homexx"),
    ("he${XXX:-${PWD:-yyy}}xx", "he/homexx"),
    ("he${XXX:-${YYY:-yyy}}xx", "heyyyxx"),
    ("he${XXX:-'a b'}", "hea b"),
    ("he${PWD:+${PWD}:}xx", "he/home:xx"),
    ("he${XXX:+${PWD}}xx", "hexx"),
    ("${NULL:-x}", "x"),
    ("${NULL-x}", ""),
    ("${XXX-x}", "x"),
    ("${NULL:+x}", ""),
    ("${NULL+x}", "x"),
    ("${XXX+x}", ""),
    ("${PWD+x}", "x"),
    ("he${XXX:-000", ERR),
    # required
    ("he${PWD?}", "he/home"),
    ("he${PWD:?}", "he/home"),
    ("he${NULL?}", "he"),
    ("he${NULL:?}", ERR),
    ("he${XXX?}", ERR),
    ("he${XXX:?}", ERR),
    # unsupported modifiers
    ("he${PWD:=000}xx", ERR),
    ("he${XXX:YYY}", ERR),
    ("${V:#x}", ERR),
    ("${V:%x}", ERR),
    ("${V!}", ERR),
    # pattern removal and replacement
    ("${V#*.}", "tar.gz"),
    ("${V##*.}", "gz"),
    ("${V%.*}", "abc.tar"),
    ("${V%%.*}", "abc"),
    ("${V#x}", "abc.tar.gz"),
    ("${V%?z}", "abc.tar."),
    ("${V#a?c}", ".tar.gz"),
    ("${V#\\*}", "abc.tar.gz"),
    ("${V/./_}", "abc_tar.gz"),
    ("${V//./_}", "abc_tar_gz"),
    ("${V/a?c/X}", "X.tar.gz"),
    ("${V/*./}", "gz"),
    ("${V/nomatch/X}", "abc.tar.gz"),
    ("${XXX/a/b}", ""),
    ("${V/a", ERR),
    ("${V#[}", "abc.tar.gz"),
]


@pytest.mark.parametrize("word,want", WORD_TABLE)
def test_process_word(word, want):
    lex = ShellLex()
    if want is ERR:
        with pytest.raises(ExpandError) as e:
            lex.process_word(word, ENV)
        assert str(e.value).startswith("failed to process ")
    else:
        assert lex.process_word(word, ENV) == want


WORDS_TABLE = [
    ("a b c", ["a", "b", "c"]),
    ('"a b" c', ["a b", "c"]),
    ("  lead  trail  ", ["lead", "trail"]),
    ("$SP", ["a", "b"]),
    ('"$SP"', ["a  b"]),
    ("x$SP", ["xa", "b"]),
    ('a""b', ["ab"]),
    ('""', []),
    ("'' a", ["a"]),
    ("a\\ b", ["a b"]),
    ("${XXX:-1 2}", ["1", "2"]),
    ("80/tcp $NULL 443", ["80/tcp", "443"]),
]


@pytest.mark.parametrize("word,want", WORDS_TABLE)
def test_process_words(word, want):
    assert ShellLex().process_words(word, ENV) == want
    assert expand_words(word, ENV) == want


def test_error_messages():
    with pytest.raises(ExpandError) as e:
        expand("${NULL:?must be set}", ENV)
    assert str(e.value) == 'failed to process "${NULL:?must be set}": NULL: must be set'
    with pytest.raises(ExpandError) as e:
        expand("${XXX?}", ENV)
    assert str(e.value) == 'failed to process "${XXX?}": XXX: is not allowed to be unset'
    with pytest.raises(ExpandError) as e:
        expand("${NULL:?}", ENV)
    assert str(e.value).endswith("NULL: is not allowed to be empty")
    with pytest.raises(ExpandError) as e:
        expand("'abc", ENV)
    assert str(e.value).endswith("unexpected end of statement while looking for matching single-quote")
    with pytest.raises(ExpandError) as e:
        expand('"abc', ENV)
    assert str(e.value).endswith("unexpected end of statement while looking for matching double-quote")
    with pytest.raises(ExpandError) as e:
        expand("${PWD:=x}", ENV)
    assert str(e.value).endswith("unsupported modifier (:=) in substitution")
    with pytest.raises(ExpandError) as e:
        expand("${}", ENV)
    assert str(e.value).endswith("syntax error: bad substitution")
    with pytest.raises(ExpandError) as e:
        expand("${X:-abc", ENV)
    assert str(e.value).endswith("syntax error: missing '}'")


def test_backtick_escape_token():
    lex = ShellLex("`")
    assert lex.process_word("he`$PWD", ENV) == "he$PWD"
    assert lex.process_word('"a`"b"', ENV) == 'a"b'
    assert lex.process_word("c:\\path\\$PWD", ENV) == "c:\\path\\/home"
    assert lex.process_word("a``b", ENV) == "a`b"


def test_raw_quotes_and_skip_unset_keep_text_as_written():
    lex = ShellLex(raw_quotes=True, skip_unset_env=True)
    got = lex.process_word("echo '$X' \"$SHELL\" $ZZ ${W:-d} ${W/a/b}", ENV)
    assert got == "echo '$X' \"bash\" $ZZ ${W:-d} ${W/a/b}"
    raw = ShellLex(raw_quotes=True, raw_escapes=True)
    assert raw.process_word("a\\ b 'c'", ENV) == "a\\ b 'c'"


def test_skip_process_quotes_for_heredoc_bodies():
    lex = ShellLex(skip_process_quotes=True)
    assert lex.process_word("say \"hi $SHELL\" and 'it''s' \\$x\n", ENV) == "say \"hi bash\" and 'it''s' $x\n"


def test_matched_and_unmatched_are_reported():
    r = ShellLex().process("$PWD ${NOPE:-x} ${SHELL} $NULL", ENV)
    assert r.result == "/home x bash "
    assert r.matched == {"PWD", "SHELL", "NULL"}
    assert r.unmatched == {"NOPE"}


def test_the_expanded_instructions():
    assert EXPANDED_INSTRUCTIONS == {"ADD", "COPY", "ENV", "EXPOSE", "FROM", "LABEL", "STOPSIGNAL", "USER",
                                     "VOLUME", "WORKDIR", "ARG"}
    assert not {"RUN", "CMD", "ENTRYPOINT", "ONBUILD", "SHELL", "HEALTHCHECK", "MAINTAINER"} & EXPANDED_INSTRUCTIONS
