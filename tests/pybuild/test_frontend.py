"""pybuild.frontend: stage selection and pruning, --from resolution, ARG scoping and the predefined
args, expansion per instruction, ONBUILD triggers, image config per step, and BuildKit's history text."""

from __future__ import annotations

import pytest

from pybuild import ast
from pybuild.errors import DockerfileError
from pybuild.frontend import DEFAULT_PATH, Base, BuildPlan, Source, history_entry, history_text, plan
from pybuild.parser import parse

AMD64 = "linux/amd64"


def mk(src: str, **kw) -> BuildPlan:
    kw.setdefault("platform", AMD64)
    kw.setdefault("build_platform", AMD64)
    return plan(parse(src), **kw)


def steps(p: BuildPlan, stage: int | None = None):
    st = p.target_stage if stage is None else p.stage(stage)
    return list(st.steps)


def perr(src: str, **kw) -> str:
    with pytest.raises(DockerfileError) as e:
        mk(src, **kw)
    return str(e.value)


# --- stages ---------------------------------------------------------------------------------------


MULTI = """\
FROM alpine AS base
RUN echo base
FROM base AS build
RUN make
FROM scratch AS docs
COPY README /
FROM busybox AS test
COPY --from=build /out /out
FROM base
COPY --from=build /app /app
COPY --from=0 /etc/os-release /
"""


def test_default_target_is_the_last_stage_and_unneeded_stages_are_pruned():
    p = mk(MULTI)
    assert p.target == 4
    assert [s.index for s in p.stages] == [0, 1, 4]
    assert p.stage(1).deps == {0}
    assert p.stage(4).deps == {0, 1}
    assert [[s.index for s in level] for level in p.levels()] == [[0], [1], [4]]
    assert p.stage(1).base == Base("stage", stage=0)
    assert p.stage(0).base == Base("image", ref="alpine")


def test_target_selects_and_prunes():
    p = mk(MULTI, target="test")
    assert [s.index for s in p.stages] == [0, 1, 3]
    assert p.target_stage.name == "test"
    assert mk(MULTI, target="DOCS").stages[0].base == Base("scratch")
    assert [s.index for s in mk(MULTI, target="docs").stages] == [2]
    assert perr(MULTI, target="nope") == 'Dockerfile: target stage "nope" could not be found'


def test_independent_stages_are_one_level():
    src = "FROM a AS x\nRUN x\nFROM b AS y\nRUN y\nFROM c\nCOPY --from=x / /x\nCOPY --from=y / /y\n"
    p = mk(src)
    assert [[s.index for s in level] for level in p.levels()] == [[0, 1], [2]]


def test_from_sources():
    p = mk(MULTI)
    copies = steps(p)
    assert [s.source for s in copies] == [Source("stage", stage=1), Source("stage", stage=0)]
    src = "FROM a\nCOPY --from=busybox:1.36 /bin/busybox /\nCOPY --from=ctx /x /y\nCOPY . /app\n"
    s1, s2, s3 = steps(mk(src, build_contexts=["ctx"]))
    assert s1.source == Source("image", ref="busybox:1.36")
    assert s2.source == Source("named", ref="ctx")
    assert s3.source == Source("context")


def test_forward_references_are_errors_only_in_needed_stages():
    src = "FROM a AS first\nCOPY --from=later /x /x\nFROM b AS later\nRUN true\n"
    # the default target is `later`: stage 0 is not built, so its forward reference does not matter
    assert [s.index for s in mk(src).stages] == [1]
    assert perr(src, target="first") == (
        'Dockerfile:2: cannot copy from stage "later", it needs to be defined before current stage "first"')
    assert perr(src.replace("--from=later", "--from=1"), target="first") == (
        'Dockerfile:2: cannot copy from stage "1", it needs to be defined before current stage "first"')
    src = "FROM a AS first\nRUN --mount=from=later,target=/l ls\nFROM b AS later\n"
    assert perr(src, target="first") == (
        'Dockerfile:2: cannot mount from stage "later" to "/l", stage needs to be defined before current command')


def test_stage_and_reference_errors():
    assert perr("FROM a\nCOPY --from=5 /x /y\n") == "Dockerfile:2: invalid stage index 5"
    assert perr("FROM a AS one\nCOPY --from=one /x /y\n") == "Dockerfile:2: circular dependency detected on stage: one"
    assert perr("FROM a\nCOPY --from=0 /x /y\n") == "Dockerfile:2: circular dependency detected on stage: stage-0"
    msg = perr("FROM a AS x\nCOPY --from=y / /\nFROM b AS y\nCOPY --from=x / /\n", target="x")
    assert msg.startswith("Dockerfile:") and "circular dependency detected on stage:" in msg
    assert perr("FROM a AS build\nFROM Build\n") .startswith(
        'Dockerfile:2: failed to parse stage name "Build"')  # FROM matches stage names exactly
    assert perr("FROM a\nCOPY --from=Not_Valid! /x /y\n").startswith(
        'Dockerfile:2: failed to parse stage name "Not_Valid!"')
    assert perr("FROM UPPER/Case\n").startswith('Dockerfile:1: failed to parse stage name "UPPER/Case"')
    assert perr("ARG B\nFROM $B\n") == "Dockerfile:2: base name ($B) should not be blank"
    assert perr("FROM --platform=not/a/valid/one a\n").startswith(
        "Dockerfile:1: failed to parse platform not/a/valid/one")
    assert perr("ARG P\nFROM --platform=$P a\n") == "Dockerfile:2: empty platform value from expression $P"


def test_typo_in_from_warns_with_a_hint():
    p = mk("FROM alpine AS build\nRUN x\nFROM alpine\nCOPY --from=biuld /a /b\n")
    assert p.target_stage.steps[0].source == Source("image", ref="biuld")
    assert any('"biuld" is not a build stage' in w and "did you mean build?" in w for w in p.warnings)


def test_from_stage_defined_later_is_an_image_and_duplicates_resolve_like_buildkit():
    p = mk("FROM later\nFROM b AS later\n", target="0") if False else None
    src = "FROM a AS x\nRUN one\nFROM x AS x\nRUN two\nFROM x\n"
    p = mk(src)
    # FROM x in stage 1 sees stage 0; the final FROM x sees the latest definition (stage 1)
    assert p.stage(1).base == Base("stage", stage=0)
    assert p.target_stage.base == Base("stage", stage=1)


def test_build_context_named_like_a_stage_replaces_it():
    src = "FROM a AS deps\nRUN slow\nFROM b\nCOPY --from=deps /x /x\n"
    p = mk(src, build_contexts=["deps"])
    deps = p.stage(0)
    assert deps.base == Base("context", ref="deps") and deps.steps == ()
    assert p.target_stage.steps[0].source == Source("stage", stage=0)
    p = mk("FROM alpine\n", build_contexts=["alpine"])
    assert p.target_stage.base == Base("context", ref="alpine")


# --- args -----------------------------------------------------------------------------------------


def test_global_args_in_from_and_build_arg_override():
    src = "ARG REG=docker.io\nARG TAG=3.18\nFROM ${REG}/library/alpine:${TAG} AS a\nFROM busybox:${TAG:-x}\n"
    p = mk(src, target="a")
    assert p.target_stage.base == Base("image", ref="docker.io/library/alpine:3.18")
    p = mk(src, target="a", build_args={"TAG": "3.19"})
    assert p.target_stage.base.ref == "docker.io/library/alpine:3.19"
    assert p.global_args["TAG"] == "3.19"
    assert p.unused_build_args == ()


def test_global_args_need_redeclaring_in_a_stage():
    src = "ARG V=1\nFROM a\nENV NOT=${V}\nARG V\nENV YES=${V}\nARG V=2\nENV OVR=$V\n"
    (e1, a1, e2, a2, e3) = steps(mk(src))
    assert e1.expanded.pairs[0] == ast.KeyValue("NOT", "")
    assert a1.created_by == "ARG V=1"
    assert e2.expanded.pairs[0] == ast.KeyValue("YES", "1")
    assert a2.created_by == "ARG V=2"
    assert e3.expanded.pairs[0] == ast.KeyValue("OVR", "2")
    # a --build-arg beats both the global and the stage default
    (e1, a1, e2, a2, e3) = steps(mk(src, build_args={"V": "9"}))
    assert (a1.created_by, a2.created_by) == ("ARG V=9", "ARG V=9")
    assert e2.expanded.pairs[0].value == "9" and e3.expanded.pairs[0].value == "9"


def test_arg_defaults_expand_and_env_overrides_arg():
    src = "FROM a\nARG A=x\nARG B=${A}y\nENV A=env\nARG C=$A\nRUN echo\n"
    st = steps(mk(src))
    assert [s.created_by for s in st[:4]] == ["ARG A=x", "ARG B=xy", "ENV A=env", "ARG C=env"]
    run = st[4]
    assert run.created_by == "RUN |3 A=env B=xy C=env /bin/sh -c echo # buildkit"
    assert dict(run.args_used) == {"A": "env", "B": "xy", "C": "env"}


def test_predefined_platform_args():
    src = ("FROM --platform=$BUILDPLATFORM golang AS build\n"
           "ARG TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT BUILDPLATFORM BUILDARCH\n"
           "RUN echo\n")
    p = plan(parse(src), platform="linux/arm/v7", build_platform="linux/amd64")
    st = p.target_stage
    assert st.base == Base("image", ref="golang", platform="linux/amd64")
    assert st.platform == "linux/amd64"
    assert st.steps[0].created_by == ("ARG TARGETPLATFORM=linux/arm/v7 TARGETOS=linux TARGETARCH=arm "
                                      "TARGETVARIANT=v7 BUILDPLATFORM=linux/amd64 BUILDARCH=amd64")
    assert p.platform == "linux/arm/v7"
    # arm64 shows no v8 variant, as BuildKit
    p = plan(parse("FROM a\nARG TARGETPLATFORM TARGETVARIANT\n"), platform="linux/arm64", build_platform=AMD64)
    assert p.target_stage.steps[0].created_by == "ARG TARGETPLATFORM=linux/arm64 TARGETVARIANT="
    # undeclared, they are not visible in the stage
    env = mk("FROM a\nENV P=${TARGETPLATFORM}\n").target_stage.steps[0].expanded.pairs[0]
    assert env.value == ""


def test_proxy_args_reach_run_without_declaration_and_stay_out_of_history():
    p = mk("FROM a\nARG X=1\nRUN curl x\n", build_args={"HTTP_PROXY": "http://p:3128", "no_proxy": "local"})
    run = p.target_stage.steps[1]
    assert "HTTP_PROXY=http://p:3128" in run.env and "no_proxy=local" in run.env
    assert run.created_by == "RUN |1 X=1 /bin/sh -c curl x # buildkit"
    assert p.unused_build_args == () and p.warnings == ()


def test_unused_build_args_warn_as_docker():
    p = mk("ARG G\nFROM a AS x\nARG USED\nFROM b AS other\nARG ONLY_OTHER\n", target="x",
           build_args={"USED": "1", "G": "2", "ZED": "3", "ALPHA": "4", "ONLY_OTHER": "5"})
    assert p.unused_build_args == ("ALPHA", "ONLY_OTHER", "ZED")
    assert "[Warning] One or more build-args [ALPHA ONLY_OTHER ZED] were not consumed" in p.warnings


def test_args_used_by_non_run_steps_are_only_those_referenced():
    st = steps(mk("FROM a\nARG A=1 B=2\nWORKDIR /src/$A\nCOPY x /$B/\nLABEL l=fixed\n"))
    assert dict(st[1].args_used) == {"A": "1"}
    assert dict(st[2].args_used) == {"B": "2"}
    assert dict(st[3].args_used) == {}


# --- expansion per instruction --------------------------------------------------------------------


def test_expansion_in_exactly_the_docker_instructions():
    src = (
        "FROM a\n"
        "ARG V=val\n"
        "ENV E=$V F=\"x y\" G='$V'\n"
        "LABEL l=$V \"q k\"=v\n"
        "WORKDIR /w/$V\n"
        "USER $V:$V\n"
        "VOLUME /v/$V\n"
        "EXPOSE ${P:-80}/tcp\n"
        "STOPSIGNAL ${NOSIG:-SIG}TERM\n"
        "COPY --chown=$V --chmod=0${M:-644} src/$V /dst/$V\n"
        "ARG D=sha256:" + "0" * 64 + "\n"
        "ADD --checksum=$D https://example.com/$V.tar /opt/\n"
        "RUN echo $V\n"
        "CMD echo $V\n"
        "ENTRYPOINT [\"$V\"]\n"
        "ONBUILD RUN echo $V\n"
        "HEALTHCHECK CMD check $V\n"
    )
    st = steps(mk(src))
    by = {s.keyword: s for s in st}
    assert [(p.key, p.value) for p in by["ENV"].expanded.pairs] == [("E", "val"), ("F", "x y"), ("G", "$V")]
    assert [(p.key, p.value) for p in by["LABEL"].expanded.pairs] == [("l", "val"), ("q k", "v")]
    assert by["WORKDIR"].expanded.path == "/w/val"
    assert by["USER"].expanded.user == "val:val"
    assert by["VOLUME"].expanded.paths == ("/v/val",)
    assert by["EXPOSE"].expanded.ports == ("80/tcp",)
    assert by["STOPSIGNAL"].expanded.signal == "SIGTERM"
    c = by["COPY"].expanded
    assert (c.srcs, c.dest, c.chown, c.chmod) == (("src/val",), "/dst/val", "val", "0644")
    a = by["ADD"].expanded
    assert (a.srcs, a.checksum) == (("https://example.com/val.tar",), "sha256:" + "0" * 64)
    # not expanded by the builder
    assert by["RUN"].argv == ("/bin/sh", "-c", "echo $V")
    assert by["CMD"].config["Cmd"] == ["/bin/sh", "-c", "echo $V"]
    assert by["ENTRYPOINT"].config["Entrypoint"] == ["$V"]
    assert by["ONBUILD"].config["OnBuild"] == ["RUN echo $V"]
    assert by["HEALTHCHECK"].config["Healthcheck"]["Test"] == ["CMD-SHELL", "check $V"]


def test_expansion_error_carries_the_line():
    assert perr("FROM a\n\nWORKDIR ${NOPE:?must be set}\n") == (
        'Dockerfile:3: failed to process "${NOPE:?must be set}": NOPE: must be set')
    assert perr("FROM a\nENV A='unterminated\n").startswith("Dockerfile:2: failed to process")
    assert perr("FROM a\nEXPOSE 80/xyz\n") == "Dockerfile:2: invalid proto: xyz"
    assert perr("FROM a\nEXPOSE abc\n") == "Dockerfile:2: invalid containerPort: abc"


def test_run_mount_values_are_expanded():
    st = steps(mk("FROM a\nARG C=/cache\nRUN --mount=type=cache,target=$C,id=${C}-id make\n"))
    m = st[1].expanded.mounts[0]
    assert (m.target, m.id) == ("/cache", "/cache-id")
    st = steps(mk("FROM a AS b\nFROM c\nRUN --mount=from=b,target=/b ls\n"))
    assert st[0].mount_sources[0][1] == Source("stage", stage=0)


def test_copy_heredoc_expansion_respects_quoting():
    src = "FROM a\nARG N=world\nCOPY <<EOF <<'RAW' <<-T /d/\nhello \"$N\" 'x'\nEOF\nkeep $N\nRAW\n\tchomped $N\nT\n"
    c = steps(mk(src))[1]
    assert c.inline_files == (("EOF", "hello \"world\" 'x'\n"), ("RAW", "keep $N\n"), ("T", "chomped world\n"))
    assert c.created_by == "COPY <<EOF <<RAW <<T /d/ # buildkit"
    assert c.dest == "/d/"


# --- RUN ------------------------------------------------------------------------------------------


def test_run_argv_forms_and_shell():
    st = steps(mk('FROM a\nRUN echo hi\nRUN ["ls", "-l"]\nSHELL ["/bin/bash", "-eo", "pipefail", "-c"]\nRUN a | b\n'))
    assert st[0].argv == ("/bin/sh", "-c", "echo hi")
    assert st[1].argv == ("ls", "-l")
    assert st[1].created_by == "RUN ls -l # buildkit"
    assert st[2].created_by == "SHELL [/bin/bash -eo pipefail -c]" and st[2].empty_layer
    assert st[3].argv == ("/bin/bash", "-eo", "pipefail", "-c", "a | b")


def test_run_heredocs_as_buildkit():
    src = ("FROM a\n"
           "RUN <<EOF\necho one\necho two\nEOF\n"
           "RUN <<-EOF\n\techo tabbed\n\tEOF\n"
           "RUN <<EOF\n#!/usr/bin/env python3\nprint('hi')\nEOF\n"
           "RUN cat <<A > /a && cat <<B > /b\nalpha\nA\nbeta\nB\n"
           "RUN 3<<EOF cat /proc/self/fd/3\nfd\nEOF\n")
    st = steps(mk(src))
    assert st[0].argv == ("/bin/sh", "-c", "echo one\necho two\n")
    assert st[1].argv == ("/bin/sh", "-c", "echo tabbed\n")
    assert st[2].argv == ("/bin/sh", "-c", "/dev/pipes/EOF")
    assert st[2].inline_files == (("/dev/pipes/EOF", "#!/usr/bin/env python3\nprint('hi')\n"),)
    assert st[3].argv == ("/bin/sh", "-c", "cat <<A > /a && cat <<B > /b\nalpha\nA\nbeta\nB")
    assert st[4].argv == ("/bin/sh", "-c", "3<<EOF cat /proc/self/fd/3\nfd\nEOF")


def test_run_env_and_workdir_user():
    p = mk("FROM a\nENV A=1\nARG B=2\nWORKDIR /app\nUSER nobody\nRUN env\n")
    run = p.target_stage.steps[-1]
    env = dict(e.split("=", 1) for e in run.env)
    assert env == {"PATH": DEFAULT_PATH, "A": "1", "B": "2"}
    assert (run.workdir, run.user) == ("/app", "nobody")


# --- config and history ---------------------------------------------------------------------------


def test_history_text_for_every_instruction():
    src = (
        "FROM a\n"
        "MAINTAINER Jane <j@x>\n"
        "ARG X=1 Y\n"
        "ENV A=b C=\"d e\"\n"
        "ENV LEGACY one two\n"
        "LABEL a=b c=d\n"
        "WORKDIR /app\n"
        "WORKDIR /\n"
        "USER 1000:1000\n"
        "EXPOSE 8080 53/udp 80\n"
        "VOLUME [\"/data\", \"/logs\"]\n"
        "STOPSIGNAL SIGTERM\n"
        "SHELL [\"/bin/sh\", \"-c\"]\n"
        "COPY --chown=1:1 --chmod=755 a b /dst/\n"
        "ADD file.tgz /opt/\n"
        "COPY --parents src/./x /y/\n"
        "RUN apt-get update\n"
        "CMD [\"sh\"]\n"
        "CMD echo \"hi there\"\n"
        "ENTRYPOINT [\"/entry\", \"--flag\"]\n"
        "HEALTHCHECK --interval=30s --timeout=3s --retries=3 CMD curl -f http://localhost/ || exit 1\n"
        "HEALTHCHECK NONE\n"
        "ONBUILD RUN make\n"
    )
    st = steps(mk(src))
    got = [(history_text(s), s.empty_layer) for s in st]
    assert got == [
        ("MAINTAINER Jane <j@x>", True),
        ("ARG X=1 Y", True),
        ('ENV A=b C=d e', True),
        ("ENV LEGACY=one two", True),
        ("LABEL a=b c=d", True),
        ("WORKDIR /app", False),
        ("WORKDIR /", True),
        ("USER 1000:1000", True),
        ("EXPOSE map[53/udp:{} 80/tcp:{} 8080/tcp:{}]", True),  # Go sorts the keys bytewise
        ("VOLUME [/data /logs]", True),
        ("STOPSIGNAL SIGTERM", True),
        ("SHELL [/bin/sh -c]", True),
        ("COPY --chown=1:1 --chmod=755 a b /dst/ # buildkit", False),
        ("ADD file.tgz /opt/ # buildkit", False),
        ("COPY --parents src/./x /y/ # buildkit", False),
        ("RUN |2 X=1 Y= /bin/sh -c apt-get update # buildkit", False),
        ('CMD ["sh"]', True),
        ('CMD ["/bin/sh" "-c" "echo \\"hi there\\""]', True),
        ('ENTRYPOINT ["/entry" "--flag"]', True),
        ('HEALTHCHECK &{["CMD-SHELL" "curl -f http://localhost/ || exit 1"] "30s" "3s" "0s" "0s" \'\\x03\'}', True),
        ('HEALTHCHECK &{["NONE"] "0s" "0s" "0s" "0s" \'\\x00\'}', True),
        ("", True),  # ONBUILD: BuildKit writes no history entry
    ]
    assert st[0].author == "Jane <j@x>" and st[-1].author == "Jane <j@x>"
    assert history_entry(st[-1]) is None
    assert history_entry(st[1], "2024-01-01T00:00:00Z") == {
        "created": "2024-01-01T00:00:00Z", "created_by": "ARG X=1 Y", "comment": "buildkit.dockerfile.v0",
        "empty_layer": True}
    assert history_entry(st[15]) == {"created_by": "RUN |2 X=1 Y= /bin/sh -c apt-get update # buildkit",
                                     "comment": "buildkit.dockerfile.v0"}


def test_healthcheck_durations_in_history():
    st = steps(mk("FROM a\nHEALTHCHECK --interval=1m30s --timeout=1.5s --start-period=100ms "
                  "--start-interval=2h CMD [\"/bin/check\"]\n"))
    assert st[0].created_by == ('HEALTHCHECK &{["CMD" "/bin/check"] "1m30s" "1.5s" "100ms" "2h0m0s" \'\\x00\'}')
    assert st[0].config["Healthcheck"] == {"Test": ["CMD", "/bin/check"], "Interval": 90_000_000_000,
                                           "Timeout": 1_500_000_000, "StartPeriod": 100_000_000,
                                           "StartInterval": 7_200_000_000_000}


def test_config_after_each_step():
    src = ("FROM scratch\nENV PATH=/bin A=1\nENV A=2\nWORKDIR app\nWORKDIR ../other\nUSER u\n"
           "EXPOSE 80\nEXPOSE 443\nLABEL x=1\nLABEL y=2\nVOLUME /v\nCMD [\"c\"]\nENTRYPOINT [\"e\"]\n"
           "STOPSIGNAL 9\n")
    p = mk(src)
    assert p.target_stage.base_config == {"Env": [f"PATH={DEFAULT_PATH}"]}
    cfg = p.target_stage.config
    assert cfg == {
        "Env": ["PATH=/bin", "A=2"], "WorkingDir": "/other", "User": "u",
        "ExposedPorts": {"80/tcp": {}, "443/tcp": {}}, "Labels": {"x": "1", "y": "2"}, "Volumes": {"/v": {}},
        "Cmd": ["c"], "ArgsEscaped": True, "Entrypoint": ["e"], "StopSignal": "9",
    }
    st = p.target_stage.steps
    assert st[2].config["WorkingDir"] == "/app" and st[2].dest == "/app"
    assert st[3].config["WorkingDir"] == "/other"
    # ENTRYPOINT clears a CMD inherited from the base, but not one set in this stage
    p = mk("FROM a\nENTRYPOINT [\"e\"]\n",
           resolve_config=lambda base: {"config": {"Cmd": ["base"], "Env": ["PATH=/x"]}})
    assert p.target_stage.config["Cmd"] is None


def test_base_image_config_applies():
    seen = []

    def resolve(base: Base):
        seen.append(base)
        return {"config": {"Env": ["PATH=/usr/bin", "GOPATH=/go"], "WorkingDir": "/go", "User": "gopher",
                           "OnBuild": ["COPY . /src", "RUN echo triggered"]}}

    p = mk("FROM golang:1.22\nWORKDIR $GOPATH/src/app\nCOPY x y\nRUN go build\n", resolve_config=resolve)
    assert seen == [Base("image", ref="golang:1.22")]
    st = p.target_stage.steps
    assert [s.keyword for s in st] == ["COPY", "RUN", "WORKDIR", "COPY", "RUN"]
    assert st[0].onbuild_trigger and st[1].onbuild_trigger and not st[2].onbuild_trigger
    assert st[0].dest == "/src" and st[0].user == "gopher" and st[0].workdir == "/go"
    assert st[2].expanded.path == "/go/src/app"
    assert st[3].dest == "/go/src/app/y"
    assert "OnBuild" not in p.target_stage.config
    assert dict(e.split("=", 1) for e in st[4].env)["GOPATH"] == "/go"


def test_onbuild_of_a_stage_runs_in_its_child():
    p = mk("FROM a AS base\nONBUILD RUN echo child\nRUN echo base\nFROM base\nRUN echo final\n")
    st = p.target_stage.steps
    assert [(s.keyword, s.onbuild_trigger) for s in st] == [("RUN", True), ("RUN", False)]
    assert st[0].argv == ("/bin/sh", "-c", "echo child")
    assert p.stage(0).config["OnBuild"] == ["RUN echo child"]


def test_stage_inherits_the_parents_config_and_env():
    p = mk("FROM a AS one\nENV A=1\nWORKDIR /w\nARG P=x\nFROM one\nRUN pwd\n")
    run = p.target_stage.steps[0]
    assert run.workdir == "/w"
    env = dict(e.split("=", 1) for e in run.env)
    assert env["A"] == "1"
    assert run.created_by == "RUN /bin/sh -c pwd # buildkit"  # ARGs of the parent are not this stage's


def test_progress_names():
    p = mk("FROM alpine AS build\nENV A=1\nRUN echo $A \"q\"\nCOPY a b\nFROM scratch\nCOPY --from=build /b /b\n")
    assert p.stage(0).from_name == "[build 1/3] FROM docker.io/library/alpine:latest"
    assert [s.name for s in p.stage(0).steps] == ["ENV A=1", '[build 2/3] RUN echo 1 "q"', "[build 3/3] COPY a b"]
    assert p.stage(1).from_name == ""  # FROM scratch is no vertex and is not counted
    assert [s.name for s in p.stage(1).steps] == ["[stage-1 1/1] COPY --from=build /b /b"]
    single = mk("FROM a\n" + "RUN x\n" * 10)
    assert single.target_stage.from_name.startswith("[ 1/11] FROM")
    assert single.target_stage.steps[-1].name == "[11/11] RUN x"


def test_copy_destinations():
    st = steps(mk("FROM a\nCOPY a .\nWORKDIR /w\nCOPY a .\nCOPY a b/\nCOPY a ../up\nCOPY a /abs\n"))
    assert [s.dest for s in st if s.keyword == "COPY"] == ["/", "/w/", "/w/b/", "/up", "/abs"]


def test_dispatch_time_validations():
    assert perr("FROM a\nSTOPSIGNAL SIGNOPE\n") == "Dockerfile:2: Invalid signal: SIGNOPE"
    assert perr("FROM a\nSTOPSIGNAL 0\n") == "Dockerfile:2: Invalid signal: 0"
    for ok in ("SIGTERM", "term", "9", "SIGRTMIN+3"):
        assert steps(mk(f"FROM a\nSTOPSIGNAL {ok}\n"))[0].config["StopSignal"] == ok
    assert perr("FROM a\nCOPY https://example.com/x /x\n") == "Dockerfile:2: source can't be a URL for COPY"
    good = "sha256:" + "ab" * 32
    assert perr(f"FROM a\nADD --checksum={good} a b /d/\n") == (
        "Dockerfile:2: checksum can't be specified for multiple sources")
    assert perr(f"FROM a\nADD --checksum={good} local.tar /d/\n") == (
        "Dockerfile:2: checksum can't be specified for non-HTTP(S) sources")
    assert perr("FROM a\nADD --checksum=sha256:00 https://x/y /d/\n") == "Dockerfile:2: invalid checksum digest length"
    assert perr("FROM a\nADD --checksum=md5:00 https://x/y /d/\n") == "Dockerfile:2: unsupported digest algorithm"
    assert perr("FROM a\nADD --checksum=nocolon https://x/y /d/\n") == "Dockerfile:2: invalid checksum digest format"
    add = steps(mk(f"FROM a\nADD --checksum={good} https://example.com/x.tgz /d/\n"))[0]
    assert add.expanded.checksum == good and add.source == Source("context")
    assert perr("FROM a\nWORKDIR $EMPTY\n") == "Dockerfile:2: cannot normalize nothing"


def test_context_paths_of_the_needed_stages():
    src = ("FROM a AS unused\nCOPY never /\n"
           "FROM a AS build\nCOPY go.mod go.sum ./\nADD https://x/y.tgz vendor.tar /v/\n"
           "RUN --mount=type=bind,source=src,target=/src --mount=type=cache,target=/c make\n"
           "FROM b\nCOPY --from=build /out /out\nCOPY ./conf/../etc/app.conf /etc/\n")
    p = mk(src)
    assert p.context_paths == ("/etc/app.conf", "/go.mod", "/go.sum", "/src", "/vendor.tar")
    assert mk("FROM a\nCOPY . /app\nCOPY x /x\n").context_paths == ()  # the whole context


def test_run_env_order_follows_llb():
    run = steps(mk("FROM a\nENV A=1 B=2\nARG A=3\nRUN env\n"))[-1]
    assert run.env == (f"PATH={DEFAULT_PATH}", "B=2", "A=3")
    assert run.config["Env"] == [f"PATH={DEFAULT_PATH}", "A=1", "B=2"]  # ARG never reaches the config


def test_relative_mount_targets_are_under_the_workdir():
    run = steps(mk("FROM a\nWORKDIR /src\nRUN --mount=type=cache,target=.cache --mount=type=bind,target=/abs ls\n"))[-1]
    assert [m.target for m in run.expanded.mounts] == ["/src/.cache", "/abs"]
    assert run.expanded.mounts[0].id == ".cache"  # the cache id stays as written


def test_undefined_variables_warn_as_buildkit_lint():
    p = mk("FROM a\nARG DECLARED\nENV FOO=1\nWORKDIR /$FOOO/${DECLARED}/${WITH_DEFAULT:-x}\nUSER $NOPE\n")
    assert p.warnings == ("UndefinedVar: Usage of undefined variable '$FOOO' (did you mean $FOO?) (line 4)",
                          "UndefinedVar: Usage of undefined variable '$NOPE' (line 5)")
    assert mk("FROM a\nRUN echo $NOT_EXPANDED_BY_THE_BUILDER\n").warnings == ()


def test_parser_warnings_reach_the_plan():
    p = mk("FROM a\nRUN a \\\n\n  b\n")
    assert p.warnings[0].startswith("[WARNING]: Empty continuation line found in:")
    assert p.dockerfile.warnings == p.warnings
