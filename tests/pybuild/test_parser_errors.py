"""pybuild.errors: one-line messages and BuildKit's source excerpt."""

from __future__ import annotations

from pybuild.errors import BuildError, ContextError, DockerfileError, StepFailed, source_context
from pyoci.errors import OCIError


def test_messages():
    e = DockerfileError("ctx/sub/Dockerfile.dev", 7, "unknown instruction: FORM")
    assert str(e) == "Dockerfile.dev:7: unknown instruction: FORM" and e.line == 7
    assert isinstance(e, BuildError) and isinstance(e, OCIError)
    assert str(DockerfileError(None, 0, "file with no instructions")) == "Dockerfile: file with no instructions"
    assert str(ContextError("unable to prepare context")) == "unable to prepare context"
    f = StepFailed("Dockerfile", 3, "RUN exit 2", ["/bin/sh", "-c", "echo \"x\"\texit 2"], 2, b"out\n")
    assert str(f) == ('Dockerfile:3: RUN exit 2: process "/bin/sh -c echo \\"x\\"\\texit 2" '
                      "did not complete successfully: exit code: 2")
    assert (f.exit_code, f.output, f.line) == (2, "out\n", 3)


def test_source_context_single_line_gets_two_lines_around():
    src = "FROM busybox\nENV A=1\nRUN exit 2\nRUN more\nRUN last\nCMD x\n"
    assert source_context(src, 3) == (
        "Dockerfile:3\n"
        "--------------------\n"
        "   1 |     FROM busybox\n"
        "   2 |     ENV A=1\n"
        "   3 | >>> RUN exit 2\n"
        "   4 |     RUN more\n"
        "   5 |     RUN last\n"
        "--------------------\n")


def test_source_context_multi_line_and_edges():
    src = "FROM a\nRUN a \\\n  b\nUSER x"
    assert source_context(src, 2, 3, "/x/Dockerfile.ci") == (
        "Dockerfile.ci:2\n"
        "--------------------\n"
        "   1 |     FROM a\n"
        "   2 | >>> RUN a \\\n"
        "   3 | >>>   b\n"
        "   4 |     USER x\n"
        "--------------------\n")
    assert source_context(src, 1).splitlines()[2:4] == ["   1 | >>> FROM a", "   2 |     RUN a \\"]
    assert source_context(src, 9) == ""
