"""pybuild.dockerignore: moby's patternmatcher tables, ignore-file reading, and the context walk."""

from __future__ import annotations

import os
import time

import pytest

from pybuild.dockerignore import ContextFilter, Pattern, PatternMatcher, load_ignore, read_patterns
from pybuild.errors import ContextError

# (pattern, path, excluded) -- single-pattern behaviour of MatchesOrParentMatches
SINGLE = [
    ("**", "f", True), ("**", "f/", True), ("**/", "f", True), ("**", "/", True), ("**", "d/f", True),
    ("**/**", "d/f", True), ("src/**", "src/f", True), ("src/**", "src/a/b/f", True), ("src/**", "src", False),
    ("**/src", "src", True), ("**/src", "src/f", True), ("**/src", "x/y/src/f", True),
    ("**/lib/*", "a/lib/f", True), ("**/lib/**", "a/lib/b/f", True),
    ("**name", "name", True), ("**name", "a/b/name", True), ("**/name", "a/name", True),
    ("**/name*", "a/b/name.txt", True), ("**/name*txt", "a/b/name.txt", True),
    ("**/**/*.txt", "a/b/f.txt", True), ("**/**/*.txt2", "a/b/f.txt", False), ("**/*.txt", "f.txt", True),
    ("x**/*.txt", "x/f.txt", True), ("x**/*.txt", "x/a/b/f.txt", True),
    ("x/*.txt", "x/a/f.txt", False), ("x/*.txt", "x/f.txt", True), ("x/*.txt**", "x/f.txt", True),
    ("q[b-d]z", "qz", False), ("q[b-d]z", "qcz", True), ("q[b-d]z", "qaz", False), ("q[^b-d]z", "qyz", True),
    (".*", ".hidden", True), (".*", "visible", False),
    ("one.two", "onetwo", False), ("one.two", "one.two", True), ("one.two", "oneXtwo", False),
    ("one?two", "oneXtwo", True), ("one?two", "onetwo", False), ("one?two", "one/two", False),
    ("a\\\\", "a\\", True), ("a\\*b", "a*b", True), ("a\\*b", "ab", False),
    ("**/foo/bar", "foo/bar", True), ("**/foo/bar", "d/foo/bar", True), ("**/foo/bar", "d/e/foo/bar", True),
    ("**/.cfg", ".cfg", True), ("**/.cfg", "x.cfg", False),
    ("p(q)r/s", "p(q)r/s", True), ("p(q)r/s", "p(q)r/t", False), ("x.|)$(}+{y", "x.|)$(}+{y", True),
    ("dist/pkg-1.0rc1+g08-py3-none-any.whl", "dist/pkg-1.0rc1+g08-py3-none-any.whl", True),
    ("dist/*.whl", "dist/pkg-1.0rc1+g08-py3-none-any.whl", True),
    ("*.log", "dir/file.log", False), ("*.log", "file.log", True),
    ("build", "build/deep/file", True), ("build/", "build/x", True), ("/build", "build", True),
    ("*", "anything", True), ("*", "dir/file", True),  # the parent `dir` matches `*`
    ("a*/b", "abc/b", True), ("a*/b", "a/c/b", False), ("a?b", "a☺b", True), ("[a-ζ]*", "α", True),
    ("[\\]a]", "]", True), ("[\\-]", "-", True), ("[x\\-]", "-", True), ("[x\\-]", "z", False),
]


@pytest.mark.parametrize("pattern,path,want", SINGLE)
def test_single_pattern(pattern, path, want):
    pm = PatternMatcher(read_patterns(pattern))
    assert pm.matches_or_parent_matches(path) is want
    # the walk's incremental form must agree with the one-shot form
    parent = os.path.dirname(path.rstrip("/")) if path not in ("/",) else ""
    info = None
    if parent:
        parts = parent.split("/")
        for i in range(len(parts)):
            _, info = pm.matches_using_parent_results("/".join(parts[: i + 1]), info)
    got, _ = pm.matches_using_parent_results(path, info)
    assert got is want


MULTI = [
    (["**", "!util/docker/web"], "util/docker/web/foo", False),
    (["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", True),
    (["**", "!dist/*.whl"], "dist/x-1.0+g1-py3-none-any.whl", False),
    (["*.md", "!README.md"], "README.md", False),
    (["*.md", "!README.md"], "CHANGES.md", True),
    (["*.md", "!README.md", "README.md"], "README.md", True),
    (["docs", "!docs/keep"], "docs/keep/a", False),
    (["docs", "!docs/keep"], "docs/other", True),
    (["!keep", "*"], "keep", True),  # order matters: the last match wins
]


@pytest.mark.parametrize("patterns,path,want", MULTI)
def test_exceptions(patterns, path, want):
    assert PatternMatcher(patterns).matches_or_parent_matches(path) is want


@pytest.mark.parametrize("pattern", ["[]a]", "[-]", "[x-]", "[-x]", "\\", "[a-b-c]", "[", "[^", "[^bc", "a[", "!"])
def test_bad_patterns(pattern):
    with pytest.raises(ContextError):
        PatternMatcher([pattern])


def test_compiled_kinds():
    # which patterns need a regexp (the rest are plain string tests: fast)
    kinds = {p: Pattern.compile(p).regexp is None for p in
             ["abc.def", "a(b)c/def", "**", "dir/**", "**/dir", "*", "a*/b", "**/dir2/*", ".*"]}
    assert kinds == {"abc.def": True, "a(b)c/def": True, "**": True, "dir/**": True, "**/dir": True, "*": False,
                     "a*/b": False, "**/dir2/*": False, ".*": False}
    assert Pattern.compile("**/**/*.txt").regexp.pattern == r"^(.*/)?(.*/)?[^/]*\.txt$"


def test_read_patterns():
    text = "\ufeff# comment\n  *.tmp  \n\n/abs/path\n!  keep.tmp\nsub/../other/\n #not a comment\r\n./x\n"
    assert read_patterns(text) == ["*.tmp", "abs/path", "!keep.tmp", "other", "#not a comment", "x"]
    assert read_patterns(b"a\nb") == ["a", "b"]
    assert read_patterns("") == []


def _tree(root, files):
    for f in files:
        p = os.path.join(root, f)
        if f.endswith("/"):
            os.makedirs(p, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as fh:
            fh.write(f)


def test_walk_applies_patterns_and_keeps_dockerfile(tmp_path):
    _tree(tmp_path, ["Dockerfile", "README.md", "a.md", "src/main.py", "src/x.pyc", "src/deep/y.pyc",
                     "build/out", "docs/x", "docs/keep/y", "node_modules/m/i.js", "empty/"])
    (tmp_path / ".dockerignore").write_text(
        "*.md\n!README.md\nbuild\nnode_modules\n**/*.pyc\ndocs\n!docs/keep\nDockerfile\n.dockerignore\n")
    cf = ContextFilter.for_build(tmp_path)
    assert list(cf.walk()) == [".dockerignore", "Dockerfile", "README.md", "docs/keep", "docs/keep/y", "empty",
                               "src", "src/deep", "src/main.py"]
    assert list(cf.walk("docs")) == ["docs/keep", "docs/keep/y"]
    assert list(cf.walk("src")) == ["src", "src/deep", "src/main.py"]
    assert list(cf.walk("src/main.py")) == ["src/main.py"]
    assert list(cf.walk("missing")) == []
    assert cf.excluded("a.md") and not cf.excluded("README.md") and cf.excluded("build/out")
    assert cf.included("Dockerfile") and cf.included(".dockerignore")


def test_walk_without_ignore_file_yields_everything(tmp_path):
    _tree(tmp_path, ["b", "a/c", "a/b/d"])
    assert list(ContextFilter.for_build(tmp_path).walk()) == ["a", "a/b", "a/b/d", "a/c", "b"]


def test_dockerfile_specific_ignore_wins(tmp_path):
    _tree(tmp_path, ["app/Dockerfile", "x", "y"])
    (tmp_path / ".dockerignore").write_text("x\n")
    (tmp_path / "app" / "Dockerfile.dockerignore").write_text("y\n")
    assert load_ignore(tmp_path, tmp_path / "app" / "Dockerfile") == ["y"]
    cf = ContextFilter.for_build(tmp_path, tmp_path / "app" / "Dockerfile")
    assert cf.included("x") and cf.excluded("y")
    assert load_ignore(tmp_path) == ["x"]


def test_missing_context_is_a_context_error(tmp_path):
    with pytest.raises(ContextError):
        ContextFilter.for_build(tmp_path / "nope")


def test_walk_prunes_excluded_directories(tmp_path, monkeypatch):
    # a big excluded tree must not be walked unless an exception could re-include inside it
    _tree(tmp_path, [f"big/d{i}/f{j}" for i in range(30) for j in range(3)] + ["keep.txt"])
    import pybuild.dockerignore as di

    scanned: list[str] = []
    real = os.scandir

    def counting(path):
        scanned.append(os.path.relpath(path, tmp_path))
        return real(path)

    monkeypatch.setattr(di.os, "scandir", counting)
    assert list(ContextFilter(tmp_path, ["big"]).walk()) == ["keep.txt"]
    assert scanned == ["."]  # `big` is never opened
    scanned.clear()
    assert list(ContextFilter(tmp_path, ["big", "!big/d7/f1"]).walk()) == ["big/d7/f1", "keep.txt"]
    assert scanned == [".", "big", "big/d7"]  # only the way to the exception
    # moby/fsutil prune an excluded directory unless an exception starts with `dir/`
    assert not PatternMatcher(["big", "!other/**"]).could_reinclude_under("big")
    assert PatternMatcher(["big", "!big/d1/**"]).could_reinclude_under("big")
    assert PatternMatcher(["big", "!big/d1"]).could_reinclude_under("big/d1")
    assert not PatternMatcher(["big", "!**/*.go"]).could_reinclude_under("big")  # wildcards do not reach in
    assert PatternMatcher(["big", "!**/*.go"]).may_match_under("big")


def test_walk_semantics_are_fsutil_parent_results(tmp_path):
    # the walk passes each directory's results down (MatchesUsingParentResults): an exception that
    # only matches the parent does not re-include a child matched by a later-skipped pattern
    pats = ["ab", "*/.x", "![ab]"]
    pm = PatternMatcher(pats)
    assert pm.matches_or_parent_matches("a/.x") is False
    assert pm.matches_with_parents("a/.x") is True
    _tree(tmp_path, ["a/.x", "a/y", "ab"])
    cf = ContextFilter(tmp_path, pats)
    assert cf.excluded("a/.x") and list(cf.walk()) == ["a", "a/y"]
    # `vendor` excluded, `!**/*.go` cannot bring files back from inside it (the directory is pruned)
    _tree(tmp_path, ["vendor/x.go", "main.go"])
    cf = ContextFilter(tmp_path, ["vendor", "!**/*.go"])
    assert "vendor/x.go" not in list(cf.walk()) and "main.go" in list(cf.walk())
    assert cf.excluded("vendor/x.go") and cf.match_sources("vendor/*.go") == []
    assert cf.matcher.matches_with_parents("vendor/x.go") is False  # the patterns alone would keep it


def test_walk_speed(tmp_path):
    _tree(tmp_path, [f"d{i}/s{k}/f{j}.{'pyc' if j % 2 else 'py'}" for i in range(20) for k in range(5)
                     for j in range(10)])
    cf = ContextFilter(tmp_path, ["**/*.pyc", "d1*", "!d10/s1"])
    t0 = time.perf_counter()
    paths = list(cf.walk())
    elapsed = time.perf_counter() - t0
    assert elapsed < 10.0  # generous: the machine is shared; ~0.1 s when idle
    assert "d10/s1/f1.pyc" in paths  # re-included by the exception
    assert "d11/s0/f0.py" not in paths and "d2/s0/f0.py" in paths and "d2/s0/f1.pyc" not in paths


def test_match_sources_globs_per_component(tmp_path):
    _tree(tmp_path, ["a.txt", "b.txt", ".hidden.txt", "c.md", "src/x.go", "src/y.go", "src/sub/z.go",
                     "lib/q.go", "skip/s.go", "w*ird", "notes/n.txt"])
    cf = ContextFilter(tmp_path, ["skip", "notes"])
    assert cf.match_sources("*.txt") == [".hidden.txt", "a.txt", "b.txt"]
    assert cf.match_sources("/src/*.go") == ["src/x.go", "src/y.go"]
    assert cf.match_sources("*/*.go") == ["lib/q.go", "src/x.go", "src/y.go"]  # skip/ is excluded
    assert cf.match_sources("?.md") == ["c.md"]
    assert cf.match_sources("[ab].txt") == ["a.txt", "b.txt"]
    assert cf.match_sources("src") == ["src"]
    assert cf.match_sources("../../src/sub/z.go") == ["src/sub/z.go"]
    assert cf.match_sources(".") == [""] and cf.match_sources("/") == [""]
    assert cf.match_sources("w\\*ird") == ["w*ird"]
    assert cf.match_sources("nope*") == [] and cf.match_sources("missing") == []
    assert cf.match_sources("notes/n.txt") == []  # excluded by .dockerignore
