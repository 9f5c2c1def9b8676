"""pybuild.parser: lexing (continuations, directives, comments, heredocs), every instruction in every
form, and every error with its `Dockerfile:LINE:` message. Behaviour follows BuildKit's parser."""

from __future__ import annotations

import pytest

from pybuild import ast
from pybuild.errors import DockerfileError
from pybuild.parser import dump, parse, parse_file, parse_heredoc, warnings_of


def only(src: str) -> ast.Instruction:
    """The single instruction after `FROM x`."""
    df = parse("FROM x\n" + src)
    (ins,) = df.stages[0].instructions
    return ins


def err(src: str, path: str = "Dockerfile") -> str:
    with pytest.raises(DockerfileError) as e:
        parse(src, path)
    return str(e.value)


# --- lexing ---------------------------------------------------------------------------------------


def test_continuations_join_lines_keeping_inner_whitespace():
    src = (
        "FROM ubuntu\n"
        "RUN echo hello\\\n  world\\\n  goodnight  \\\n  moon\n"
        "RUN echo a  \\\nb\n"
        "RUN echo good\\\nbye\\\nfrog\n"
    )
    assert dump(src) == (
        '(from "ubuntu")\n'
        '(run "echo hello  world  goodnight    moon")\n'
        '(run "echo a  b")\n'
        '(run "echo goodbyefrog")\n'
    )


def test_comments_and_empty_lines_inside_a_continuation_are_skipped_with_a_warning():
    src = (
        "FROM alpine\n"
        "RUN something \\\n\n    following \\\n\n    more\n"
        "RUN non-indented \\\n# a comment\n   after-comment\n"
        "RUN indented \\\n    # an indented comment\n    comment\n"
    )
    df = parse(src)
    runs = [i.args[0] for i in df.stages[0].instructions]
    assert runs == ["something     following     more", "non-indented    after-comment", "indented     comment"]
    w = warnings_of(src)
    assert len(w) == 2
    assert "Empty continuation line found in" in w[0] and "RUN something     following     more" in w[0]
    assert "will become errors in a future release" in w[1]


def test_line_numbers_span_continuations_and_heredocs():
    src = "# c\n\nFROM a\n\nRUN a \\\n  b \\\n  c\nCOPY <<EOF /f\nx\ny\nEOF\nUSER me\n"
    df = parse(src)
    assert df.stages[0].line == 3
    got = [(i.keyword, i.line, i.end_line) for i in df.stages[0].instructions]
    assert got == [("RUN", 5, 7), ("COPY", 8, 11), ("USER", 12, 12)]


def test_trailing_escape_on_last_line_and_crlf_and_bom():
    df = parse("\ufeffFROM a\r\nRUN echo x \\\r\n  y\r\nRUN last \\")
    assert [i.args for i in df.stages[0].instructions] == [("echo x   y",), ("last",)]


def test_escaped_escape_at_end_is_not_a_continuation():
    df = parse("FROM a\nRUN echo \\\\\nRUN b\n")
    assert [i.args for i in df.stages[0].instructions] == [("echo \\\\",), ("b",)]


def test_escape_directive_backtick():
    src = "# escape=`\nFROM a\nRUN echo `\n  done\nCOPY c:\\path\\file /d/\n"
    df = parse(src)
    assert df.escape == "`"
    assert df.directives == {"escape": "`"}
    run, copy = df.stages[0].instructions
    assert run.args == ("echo   done",)
    assert copy.srcs == ("c:\\path\\file",)


def test_directives_only_at_the_top():
    df = parse("# syntax=docker/dockerfile:1.7\n#escape=\\\nFROM a\n# escape=`\nRUN x \\\n y\n")
    assert df.directives == {"syntax": "docker/dockerfile:1.7", "escape": "\\"}
    assert df.escape == "\\"
    assert df.stages[0].instructions[0].args == ("x  y",)
    # a comment before ends the directive block
    df = parse("# hello\n# escape=`\nFROM a\n")
    assert df.escape == "\\" and df.directives == {}
    # an unknown directive ends it as well
    df = parse("# foo=bar\n# escape=`\nFROM a\n")
    assert df.escape == "\\"
    # an empty line ends it
    assert parse("\n# escape=`\nFROM a\n").escape == "\\"


def test_directive_errors():
    assert err("# escape=x\nFROM a\n") == "Dockerfile:1: invalid escape token 'x' does not match ` or \\"
    assert err("# escape=`\n# escape=\\\nFROM a\n") == "Dockerfile:2: only one escape parser directive can be used"


def test_keywords_case_insensitive_and_whitespace():
    df = parse("from a AS Build\n  run   echo  hi  \n\tCoPy a b\n")
    st = df.stages[0]
    assert st.name == "build"
    assert [i.keyword for i in st.instructions] == ["RUN", "COPY"]
    assert st.instructions[0].args == ("echo  hi",)


def test_original_is_the_joined_logical_line():
    ins = only("RUN --mount=type=cache,target=/c \\\n    make \\\n    all\n")
    assert ins.original == "RUN --mount=type=cache,target=/c     make     all"
    assert ins.rest == "make     all"


def test_dump_matches_buildkit_format():
    src = 'FROM a\nONBUILD RUN echo x\nHEALTHCHECK --interval=5s CMD ["a","b"]\nCOPY --from=x a b\nENV A=1 B="2 3"\n'
    assert dump(src) == (
        '(from "a")\n(onbuild (run "echo x"))\n(healthcheck ["--interval=5s"] "CMD" "a" "b")\n'
        '(copy ["--from=x"] "a" "b")\n(env "A" "1" "B" "\\"2 3\\"")\n'
    )


# --- heredocs -------------------------------------------------------------------------------------


def test_heredoc_variants():
    src = (
        "FROM a\n"
        "RUN <<EMPTY\nEMPTY\n"
        "RUN 3<<FD\nFD\n"
        'RUN "<<NOHEREDOC"\n'
        "RUN <<INDENT\n\tfoo\n\tbar\nINDENT\n"
        "RUN <<-UNINDENT\n\tbaz\n\tquux\n\tUNINDENT\n"
        "RUN <<-'NOEXPAND'\n\tdon't expand $NAME\nNOEXPAND\n"
        "RUN <<COMMENT\n# internal comment\necho hi # trailing\nCOMMENT\n"
        "RUN --mount=type=cache,target=/foo <<MOUNT\necho hello\nMOUNT\n"
        "COPY <<FILE1 <<FILE2 /dest\ncontent 1\nFILE1\ncontent 2\nFILE2\n"
        "COPY <<X <<Y /dest\nY\nX\nX\nY\n"
    )
    ins = parse(src).stages[0].instructions
    docs = [[(h.name, h.content, h.expand, h.chomp, h.fd) for h in i.heredocs] for i in ins]
    assert docs == [
        [("EMPTY", "", True, False, 0)],
        [("FD", "", True, False, 3)],
        [],
        [("INDENT", "\tfoo\n\tbar\n", True, False, 0)],
        [("UNINDENT", "\tbaz\n\tquux\n", True, True, 0)],
        [("NOEXPAND", "\tdon't expand $NAME\n", False, True, 0)],
        [("COMMENT", "# internal comment\necho hi # trailing\n", True, False, 0)],
        [("MOUNT", "echo hello\n", True, False, 0)],
        [("FILE1", "content 1\n", True, False, 0), ("FILE2", "content 2\n", True, False, 0)],
        [("X", "Y\n", True, False, 0), ("Y", "X\n", True, False, 0)],
    ]
    assert ins[4].heredocs[0].text == "baz\nquux\n"
    copy = ins[8]
    assert isinstance(copy, ast.Copy) and copy.srcs == () and copy.dest == "/dest"


def test_heredoc_not_in_json_form_nor_in_other_instructions():
    df = parse('FROM a\nRUN ["<<EOF"]\nRUN ["<<\'EOF\'"]\n')
    assert all(i.heredocs == () and i.json for i in df.stages[0].instructions)
    # USER cannot hold a heredoc: the next line is an instruction of its own (an unknown one here)
    assert dump("FROM a\nUSER <<INVALID\nINVALID\n") == '(from "a")\n(user "<<INVALID")\n(invalid)\n'
    assert err("FROM a\nUSER <<INVALID\nINVALID\n") == "Dockerfile:3: unknown instruction: INVALID"


def test_heredoc_in_onbuild_and_quoted_delimiters():
    ins = only('ONBUILD RUN <<"EOT"\necho $X\nEOT\n')
    assert isinstance(ins, ast.Onbuild)
    assert ins.heredocs[0] == ast.Heredoc("EOT", "echo $X\n", expand=False)
    assert isinstance(ins.inner, ast.Run)


@pytest.mark.parametrize("word,name", [("<<EOF", "EOF"), ("<<'EOF'", "EOF"), ('<<"EOF"', "EOF"), ("<<-EOF", "EOF"),
                                       ("<<-'EOF'", "EOF"), ('<<-"EOF"', "EOF"), ("<<E'O'F", "EOF")])
def test_parse_heredoc_valid(word, name):
    h = parse_heredoc(word)
    assert h is not None and h.name == name
    assert h.expand == ("'" not in word and '"' not in word)
    assert h.chomp == word.startswith("<<-")


@pytest.mark.parametrize("word", ["", "EOF", "<<", "<<-", "<EOF", "<<<EOF"])
def test_parse_heredoc_not_heredocs(word):
    assert parse_heredoc(word) is None


@pytest.mark.parametrize("word", ["<<'EOF", '<<"EOF', "<<EOF'", '<<EOF"'])
def test_parse_heredoc_invalid(word):
    from pybuild.parser import _ParseError

    with pytest.raises(_ParseError):
        parse_heredoc(word)


def test_heredoc_errors():
    assert err("FROM a\nRUN <<EOF\necho\n") == "Dockerfile:2: unterminated heredoc"
    # an unterminated quote in the delimiter: no heredoc at all (BuildKit ignores the lexing error)
    assert err("FROM a\nRUN <<'EOF\necho\nEOF\n") == "Dockerfile:3: unknown instruction: echo"
    assert err("FROM a\nCOPY a <<EOF\nx\nEOF\n") == "Dockerfile:2: COPY cannot accept a heredoc as a destination"


# --- instructions ---------------------------------------------------------------------------------


def test_from_forms():
    df = parse("ARG V=1\nFROM --platform=$BUILDPLATFORM golang:${V} AS Build\nFROM scratch\nFROM build as two\n")
    assert df.global_args == (ast.Arg("V", "1", 1),)
    s0, s1, s2 = df.stages
    assert (s0.index, s0.name, s0.base, s0.platform, s0.line) == (0, "build", "golang:${V}", "$BUILDPLATFORM", 2)
    assert (s1.name, s1.base, s1.platform) == (None, "scratch", None)
    assert (s2.name, s2.base) == ("two", "build")
    assert isinstance(s0.from_instruction, ast.From) and s0.from_instruction.flags == {"platform": "$BUILDPLATFORM"}


def test_run_shell_json_and_flags():
    r = only("RUN --network=none --security=insecure echo $HOME\n")
    assert isinstance(r, ast.Run)
    assert (r.cmd, r.prepend_shell, r.network, r.security, r.json) == (("echo $HOME",), True, "none", "insecure", False)
    r = only('RUN ["echo", "a b"] trailing\n')
    assert (r.cmd, r.prepend_shell, r.json) == (("echo", "a b"), False, True)
    r = only('RUN [ "not json" \n')  # not valid JSON: shell form
    assert r.cmd == ('[ "not json"',) and r.prepend_shell
    r = only("RUN -- --network=none\n")  # `--` ends the flags
    assert r.cmd == ("--network=none",) and r.flags == {}


def test_run_mounts():
    r = only("RUN --mount=type=cache,target=/root/.cache,sharing=locked,id=pip "
             "--mount=type=bind,from=build,source=/out,target=/in,rw "
             "--mount=type=secret,id=tok,required "
             "--mount=type=tmpfs,target=/tmp,size=64m "
             "--mount=type=ssh "
             "--mount=target=/ctx "
             "--mount=type=cache,target=/m,mode=0700,uid=1000,gid=1000 true\n")
    assert isinstance(r, ast.Run)
    cache, bind, secret, tmpfs, ssh, ctx, owned = r.mounts
    assert cache == ast.Mount(type="cache", target="/root/.cache", id="pip", sharing="locked", mode=0o755)
    assert (bind.type, bind.from_, bind.source, bind.target, bind.readonly) == ("bind", "build", "/out", "/in", False)
    assert (secret.type, secret.id, secret.target, secret.required, secret.readonly) == (
        "secret", "tok", "/run/secrets/tok", True, True)
    assert (tmpfs.type, tmpfs.size, tmpfs.readonly) == ("tmpfs", 64 << 20, False)
    assert (ssh.type, ssh.id, ssh.target) == ("ssh", "default", "/run/buildkit/ssh_agent.0")
    assert (ctx.type, ctx.target, ctx.readonly) == ("bind", "/ctx", True)
    assert (owned.mode, owned.uid, owned.gid) == (0o700, 1000, 1000)
    # keys in any order: sharing before type is fine
    r = only("RUN --mount=sharing=private,target=/c,type=cache true\n")
    assert (r.mounts[0].type, r.mounts[0].sharing) == ("cache", "private")
    assert r.cmd == ("true",)


@pytest.mark.parametrize("mount,message", [
    ("type=foo,target=/x", 'unsupported mount type "foo"'),
    ("type=cahce,target=/x", 'unsupported mount type "cahce" (did you mean cache?)'),
    ("type=bind,target=/x,sharing=locked", "invalid cache sharing set for bind mount"),
    ("type=cache,target=/x,sharing=weird", 'unsupported sharing value "weird"'),
    ("type=secret,id=s,sharing=locked", "secret mount should not define sharing"),
    ("type=bind,target=/x,mode=0644", 'mode not allowed for "bind" type mounts'),
    ("type=cache,target=/x,mode=99", "invalid value 99 for mode"),
    ("type=bind,target=/x,required", "unexpected key 'required' for mount type 'bind'"),
    ("type=bind,target=/x,size=1m", "unexpected key 'size' for mount type 'bind'"),
    ("type=bind,target=/x,foo=bar", "unexpected key 'foo' in 'foo=bar' (did you mean from?)"),
    ("type=bind,target=/x,zzzzz=1", "unexpected key 'zzzzz' in 'zzzzz=1'"),
    ("type=bind,tagret=/x", "unexpected key 'tagret' in 'tagret=/x' (did you mean target?)"),
    ("type=bind,target", "invalid field 'target' must be a key=value pair"),
    ("type=bind,target=/x,ro=maybe", "invalid value for ro: maybe"),
    ("type=secret,from=x,id=a", "secret mount should not have a from"),
    ("type=secret", "invalid secret mount. one of source, target required"),
    ("type=secret,source=a,id=b", "both source and id can't be set"),
    ("type=bind,from=$X,target=/x", "'from' doesn't support variable expansion, define alias stage instead"),
])
def test_run_mount_errors(mount, message):
    assert err(f"FROM a\n\nRUN --mount={mount} true\n") == f"Dockerfile:3: {message}"


def test_copy_and_add_forms():
    c = only("COPY --from=build --chown=1:2 --chmod=0755 --link --parents --exclude=*.md --exclude=.git a b* /dst/\n")
    assert isinstance(c, ast.Copy) and not isinstance(c, ast.Add)
    assert (c.srcs, c.dest, c.from_, c.chown, c.chmod, c.link, c.parents, c.exclude) == (
        ("a", "b*"), "/dst/", "build", "1:2", "0755", True, True, ("*.md", ".git"))
    c = only('COPY ["a b", "c", "/d e/"]\n')
    assert (c.srcs, c.dest, c.json) == (("a b", "c"), "/d e/", True)
    c = only("COPY --link=false a b\n")
    assert c.link is False
    a = only("ADD --checksum=sha256:abc --keep-git-dir=true --unpack=false --chown=u https://x/y.tgz /opt/\n")
    assert isinstance(a, ast.Add)
    assert (a.checksum, a.keep_git_dir, a.unpack, a.chown, a.srcs, a.dest) == (
        "sha256:abc", True, False, "u", ("https://x/y.tgz",), "/opt/")


def test_copy_heredoc_sources_mixed_with_files():
    c = only("COPY <<EOF a.txt <<-'RAW' /dst/\nhello $X\nEOF\n\tkeep $Y\nRAW\n")
    assert c.srcs == ("a.txt",)
    assert [(h.name, h.expand, h.chomp) for h in c.heredocs] == [("EOF", True, False), ("RAW", False, True)]


def test_env_and_label_forms():
    e = only('ENV A=1 B="two words" C=three\\ words D= E=\'$lit\'\n')
    assert isinstance(e, ast.Env)
    assert [(p.key, p.value, p.no_delim) for p in e.pairs] == [
        ("A", "1", False), ("B", '"two words"', False), ("C", "three\\ words", False), ("D", "", False),
        ("E", "'$lit'", False)]
    e = only("ENV LEGACY some value  with spaces\n")
    assert [(p.key, p.value, p.no_delim) for p in e.pairs] == [("LEGACY", "some value  with spaces", True)]
    lab = only('LABEL "com.example.vendor"="ACME" version=1.0 multi="a \\\n b"\n')
    assert isinstance(lab, ast.Label)
    assert [(p.key, p.value) for p in lab.pairs] == [
        ('"com.example.vendor"', '"ACME"'), ("version", "1.0"), ("multi", '"a  b"')]
    lab = only("LABEL key value words\n")
    assert [(p.key, p.value) for p in lab.pairs] == [("key", "value words")]


def test_arg_forms():
    a = only('ARG A B=1 C="x y" D=\n')
    assert isinstance(a, ast.ArgInstruction)
    assert a.args_ == (ast.Arg("A", None, 2), ast.Arg("B", "1", 2), ast.Arg("C", '"x y"', 2), ast.Arg("D", "", 2))


def test_cmd_entrypoint_shell_forms():
    c = only("CMD echo hi\n")
    assert isinstance(c, ast.Cmd) and c.cmd == ("echo hi",) and c.prepend_shell
    c = only('CMD ["sh", "-c", "x"]\n')
    assert c.cmd == ("sh", "-c", "x") and not c.prepend_shell
    c = only("CMD []\n")
    assert c.cmd == () and not c.prepend_shell
    e = only('ENTRYPOINT ["/entry.sh"]\n')
    assert isinstance(e, ast.Entrypoint) and e.cmd == ("/entry.sh",) and not e.prepend_shell
    e = only("ENTRYPOINT exec app\n")
    assert e.cmd == ("exec app",) and e.prepend_shell
    s = only('SHELL ["/bin/bash", "-euo", "pipefail", "-c"]\n')
    assert isinstance(s, ast.Shell) and s.shell == ("/bin/bash", "-euo", "pipefail", "-c")


def test_single_value_instructions():
    assert only("USER app:app\n").user == "app:app"
    assert only("WORKDIR /my dir\n").path == "/my dir"
    assert only("STOPSIGNAL SIGKILL\n").signal == "SIGKILL"
    assert only("MAINTAINER Jane Doe <j@d>\n").maintainer == "Jane Doe <j@d>"
    assert only("EXPOSE 80 443/udp\t8080-8081\n").ports == ("80", "443/udp", "8080-8081")
    assert only("VOLUME /a /b\n").paths == ("/a", "/b")
    assert only('VOLUME ["/data", "/other dir"]\n').paths == ("/data", "/other dir")


def test_healthcheck_forms():
    h = only("HEALTHCHECK NONE\n")
    assert isinstance(h, ast.Healthcheck) and h.kind == "NONE"
    h = only("HEALTHCHECK --interval=5m --timeout=3s --start-period=1s --start-interval=2s --retries=3 "
             "CMD curl -f http://localhost/ || exit 1\n")
    assert (h.kind, h.cmd, h.prepend_shell, h.interval, h.timeout, h.start_period, h.start_interval, h.retries) == (
        "CMD", ("curl -f http://localhost/ || exit 1",), True, "5m", "3s", "1s", "2s", 3)
    h = only('HEALTHCHECK cmd ["/check", "now"]\n')
    assert (h.cmd, h.prepend_shell) == (("/check", "now"), False)


def test_onbuild():
    o = only("ONBUILD COPY --from=x . /app\n")
    assert isinstance(o, ast.Onbuild)
    assert o.expression == "COPY --from=x . /app"
    assert isinstance(o.inner, ast.Copy) and o.inner.from_ == "x"
    assert only("onbuild   run make\n").expression == "run make"


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("src,message", [
    ("", "Dockerfile: file with no instructions"),
    ("# only a comment\n\n", "Dockerfile:2: file with no instructions"),
    ("RUN x\n", "Dockerfile:1: no build stage in current context"),
    ("ARG A\nENV B=1\nFROM a\n", "Dockerfile:2: no build stage in current context"),
    ("ARG A\n", "Dockerfile:1: no build stage in current context"),
    ("FROM a\nFORM b\n", "Dockerfile:2: unknown instruction: FORM (did you mean FROM?)"),
    ("FROM a\n\nXYZZY b\n", "Dockerfile:3: unknown instruction: XYZZY"),
    ("FROM a\nform b\n", "Dockerfile:2: unknown instruction: form (did you mean from?)"),
    ("FROM a\nRunn b\n", "Dockerfile:2: unknown instruction: Runn (did you mean run?)"),
    ("FROM\n", "Dockerfile:1: FROM requires either one or three arguments"),
    ("FROM a b\n", "Dockerfile:1: FROM requires either one or three arguments"),
    ("FROM a AS 1x\n",
     'Dockerfile:1: invalid name for build stage: "1x", name can\'t start with a number or contain symbols'),
    ("FROM --plat=x a\n", "Dockerfile:1: unknown flag: plat"),
    ("FROM a\nCOPY --fro=x a b\n", "Dockerfile:2: unknown flag: fro (did you mean from?)"),
    ("FROM a\nADD --from=x a b\n", "Dockerfile:2: unknown flag: from"),
    ("FROM a\nENV --x=1 A=1\n", "Dockerfile:2: unknown flag: x"),
    ("FROM a\nCOPY --from a b c\n", "Dockerfile:2: missing a value on flag: from"),
    ("FROM a\nCOPY --link= a b\n", "Dockerfile:2: missing a value on flag: link"),
    ("FROM a\nCOPY --link=maybe a b\n", "Dockerfile:2: expecting boolean value for flag link, not: maybe"),
    ("FROM a\nCOPY --from=a --from=b a b\n", "Dockerfile:2: duplicate flag specified: from"),
    ("FROM a\nCOPY x\n", "Dockerfile:2: COPY requires at least two arguments, but only one was provided. "
                         "Destination could not be determined."),
    ("FROM a\nADD\n", "Dockerfile:2: ADD requires at least two arguments, but only one was provided. "
                      "Destination could not be determined."),
    ("FROM a\nENV\n", "Dockerfile:2: ENV requires at least one argument"),
    ("FROM a\nENV X\n", "Dockerfile:2: ENV must have two arguments"),
    ("FROM a\nENV a=b c\n", "Dockerfile:2: Syntax error - can't find = in \"c\". Must be of the form: name=value"),
    ("FROM a\nENV =b\n", "Dockerfile:2: ENV names can not be blank"),
    ("FROM a\nLABEL\n", "Dockerfile:2: LABEL requires at least one argument"),
    ("FROM a\nARG\n", "Dockerfile:2: ARG requires at least one argument"),
    ("FROM a\nARG =1\n", "Dockerfile:2: ARG names can not be blank"),
    ("FROM a\nEXPOSE\n", "Dockerfile:2: EXPOSE requires at least one argument"),
    ("FROM a\nVOLUME\n", "Dockerfile:2: VOLUME requires at least one argument"),
    ("FROM a\nUSER\n", "Dockerfile:2: USER requires exactly one argument"),
    ("FROM a\nWORKDIR\n", "Dockerfile:2: WORKDIR requires exactly one argument"),
    ("FROM a\nSTOPSIGNAL\n", "Dockerfile:2: STOPSIGNAL requires exactly one argument"),
    ("FROM a\nMAINTAINER\n", "Dockerfile:2: MAINTAINER requires exactly one argument"),
    ("FROM a\nSHELL\n", "Dockerfile:2: SHELL requires at least one argument"),
    ("FROM a\nSHELL sh -c\n", "Dockerfile:2: SHELL requires the arguments to be in JSON form"),
    ('FROM a\nRUN ["a", 1]\n', "Dockerfile:2: when using JSON array syntax, arrays must be comprised of strings only"),
    ("FROM a\nHEALTHCHECK\n", "Dockerfile:2: HEALTHCHECK requires at least one argument"),
    ("FROM a\nHEALTHCHECK NONE x\n", "Dockerfile:2: HEALTHCHECK NONE takes no arguments"),
    ("FROM a\nHEALTHCHECK FOO x\n", 'Dockerfile:2: Unknown type "FOO" in HEALTHCHECK (try CMD)'),
    ("FROM a\nHEALTHCHECK CMD\n", "Dockerfile:2: Missing command after HEALTHCHECK CMD"),
    ("FROM a\nHEALTHCHECK --interval=1us CMD x\n", 'Dockerfile:2: Interval "interval" cannot be less than 1ms'),
    ("FROM a\nHEALTHCHECK --timeout=5 CMD x\n", 'Dockerfile:2: time: missing unit in duration "5"'),
    ("FROM a\nHEALTHCHECK --retries=-1 CMD x\n", "Dockerfile:2: --retries cannot be negative (-1)"),
    ("FROM a\nHEALTHCHECK --bogus=1 CMD x\n", "Dockerfile:2: unknown flag: bogus"),
    ("FROM a\nRUN --network=bad x\n", 'Dockerfile:2: unsupported network mode "bad"'),
    ("FROM a\nRUN --security=bad x\n", 'Dockerfile:2: unsupported security mode "bad"'),
    ("FROM a\nONBUILD\n", "Dockerfile:2: ONBUILD requires at least one argument"),
    ("FROM a\nONBUILD ONBUILD RUN x\n", "Dockerfile:2: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    ("FROM a\nONBUILD FROM b\n", "Dockerfile:2: FROM isn't allowed as an ONBUILD trigger"),
    ("FROM a\nONBUILD MAINTAINER me\n", "Dockerfile:2: MAINTAINER isn't allowed as an ONBUILD trigger"),
    ("FROM a\nRUN ok\nRUN <<EOF\nnever ends\n", "Dockerfile:3: unterminated heredoc"),
])
def test_errors_with_line(src, message):
    assert err(src) == message


def test_error_shows_the_basename_given_by_f(tmp_path):
    p = tmp_path / "sub" / "Dockerfile.dev"
    p.parent.mkdir()
    p.write_text("FROM a\n\n\n\n\n\nFORM b\n")
    with pytest.raises(DockerfileError) as e:
        parse_file(p)
    assert str(e.value) == "Dockerfile.dev:7: unknown instruction: FORM (did you mean FROM?)"
    assert e.value.line == 7
    with pytest.raises(DockerfileError) as e:
        parse_file(tmp_path / "missing")
    assert str(e.value).startswith("missing: failed to read dockerfile")


def test_parse_file_roundtrip(tmp_path):
    p = tmp_path / "Dockerfile"
    p.write_bytes(b"FROM busybox\nRUN echo \xc3\xa9\n")
    df = parse_file(p)
    assert df.path == str(p)
    assert df.stages[0].instructions[0].args == ("echo é",)


def test_json_forms_follow_go_decoding():
    run, cmd = parse('FROM a\nRUN ["a", NaN]\nCMD ["x"] trailing ignored\n').stages[0].instructions
    assert run.json is False and run.cmd == ('["a", NaN]',)  # not JSON for Go: shell form
    assert cmd.json is True and cmd.cmd == ("x",)
    empty = parse("FROM a\nRUN\nCMD\n").stages[0].instructions
    assert [(i.cmd, i.prepend_shell) for i in empty] == [((), True), ((), True)]


def test_parse_instruction_line_for_onbuild_triggers():
    from pybuild.parser import parse_instruction_line

    ins = parse_instruction_line("COPY --from=build /a /b", lineno=4)
    assert isinstance(ins, ast.Copy) and ins.from_ == "build" and ins.line == 4
    with pytest.raises(DockerfileError) as e:
        parse_instruction_line("NOPE x", lineno=3, path="ctx/Dockerfile")
    assert str(e.value) == "Dockerfile:3: unknown instruction: NOPE (did you mean COPY?)"


def test_heredoc_with_blanks_after_the_redirection_and_odd_names():
    ins = parse("FROM a\nRUN cat <<  EOF > /x\nhi\nEOF\nRUN <<'one two'\nx\none two\nRUN <<$EOF\ny\n$EOF\n"
                "RUN <<eo\\'f\nz\neo'f\n").stages[0].instructions
    assert [(h.name, h.content, h.expand) for i in ins for h in i.heredocs] == [
        ("EOF", "hi\n", True), ("one two", "x\n", False), ("$EOF", "y\n", True), ("eo'f", "z\n", True)]
    assert parse_heredoc("<<eo'f'").expand is False and parse_heredoc("<<'e'o\\'f").name == "eo'f"
    assert parse_heredoc("<<one two") is None
