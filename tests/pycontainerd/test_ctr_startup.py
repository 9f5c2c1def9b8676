"""pyctr's start-up: the lean launcher `python -m pycontainerd.install_entry` writes, the modules a command
imports (no asyncio, ssl, urllib… on the version and run paths), and the protocol's framing, which
pyctr encodes without the `json` package yet byte for byte as json.dumps does (docs/protocol.md)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pycontainerd import install_entry, protocol

# what the version and run paths must not import: the daemon's asyncio, TLS, URL parsing, pathlib
HEAVY = ("asyncio", "ssl", "urllib.parse", "pathlib", "logging", "subprocess", "shutil", "pyoci.reference",
         "pycontainerd.network", "pycontainerd.health", "pycontainerd.policies", "typing", "datetime")


def _launcher(tmp_path):
    target = tmp_path / "pyctr"
    assert install_entry.main([str(target)]) == 0
    return target


def test_launcher_runs_pyctr(tmp_path):
    target = _launcher(tmp_path)
    text = target.read_text()
    assert text.startswith("#!") and text.splitlines()[0].endswith(" -IS")
    out = subprocess.run([str(target), "--version"], capture_output=True, text=True, timeout=30)
    assert (out.returncode, out.stdout.startswith("pyctr version ")) == (0, True), out.stderr
    sock = tmp_path / "nosuch.sock"
    out = subprocess.run([str(target), "-H", f"unix://{sock}", "ps"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert out.stderr == f"Cannot connect to the pycontainerd daemon at unix://{sock}. Is the daemon running?\n"
    out = subprocess.run([str(target), "nosuch"], capture_output=True, text=True, timeout=30)
    assert (out.returncode, out.stderr) == (1, "pyctr: 'nosuch' is not a pyctr command.\nSee 'pyctr --help'\n")
    out = subprocess.run([str(target), "run", "--bogus", "img"], capture_output=True, text=True, timeout=30)
    assert (out.returncode, out.stderr) == (125, "unknown flag: --bogus\nSee 'pyctr run --help'.\n")


def test_install_entry_refuses_unknown_command(tmp_path, capsys):
    assert install_entry.main([str(tmp_path / "pyctl")]) == 2
    assert "no launcher for 'pyctl'" in capsys.readouterr().err
    assert not (tmp_path / "pyctl").exists()


def _imported(tmp_path, code: str, modules: tuple[str, ...] = HEAVY) -> list[str]:
    """Run `code` after the launcher's own lines (as the launcher would, -IS); which of `modules` it imported."""
    body = install_entry.render(sys.executable, "pyctr").split("\n", 1)[1].rsplit("main_exit()", 1)[0]
    probe = body + code + f"\nprint('HEAVY:' + ','.join(m for m in {modules!r} if m in sys.modules))\n"
    out = subprocess.run([sys.executable, "-IS", "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    line = out.stdout.splitlines()[-1]
    assert line.startswith("HEAVY:"), out.stdout
    return [m for m in line[len("HEAVY:"):].split(",") if m]


def test_version_path_imports_stay_lean(tmp_path):
    sock = tmp_path / "nosuch.sock"
    code = (f"from pycontainerd.ctr.cli import main\nassert main(['-H', {str(sock)!r}, 'version']) == 1\n"
            "assert main(['--version']) == 0\n")
    # read without argparse, so without re and enum either; no dataclasses (the backend's)
    assert _imported(tmp_path, code, HEAVY + ("argparse", "re", "enum", "dataclasses", "typing")) == []


def test_run_path_imports_stay_lean(tmp_path):
    """The modules `run` loads, its flag parsing and the spec and config it makes (what needs no daemon)."""
    code = ("from pycontainerd.ctr import cli, containers, flags, stdio, names, backend\n"
            "from pycontainerd import client, ocispec\n"
            "a = flags.build_parser('run').parse_args(['run', '--rm', 'busybox', 'true'])\n"
            "o = cli._options(a)\n"
            "containers.network_and_mounts(o, {'ExposedPorts': {'80/tcp': {}}})\n"
            "containers._security(o)\n"
            "containers._with_healthcheck({'Cmd': ['true']}, o.healthcheck, None)\n"
            "containers._restart_policy(o.restart)\n"
            "ocispec.generate({'config': {'Cmd': ['sh']}}, ocispec.SpecOptions(args=['true']), 'default', 'c' * 64)\n"
            "names.random_name(), names.new_id()\n"
            "from pycontainerd import seccomp\n"
            "seccomp.to_oci(seccomp.default_profile(), [], seccomp.Host.current())\n"
            "from pycontainerd.ctr import images\n"
            "assert backend._plain_hub_name('busybox') == 'docker.io/library/busybox:latest'\n")
    # records.py in place of dataclasses; the seccomp profile read with protocol.loads, not json
    assert _imported(tmp_path, code, HEAVY + ("dataclasses", "inspect", "json")) == []


@pytest.mark.parametrize("ref", ["busybox", "busybox:1.36", "library/busybox", "user/app:v1", "a-b/c_d.e:t-1",
                                 "localhost/x", "docker.io/busybox", "registry.example:5000/a/b:c", "foo.com/bar",
                                 "a" * 64, "x/" + "a" * 64, "Upper", "a__b", "a/b/c", "x:" + "t" * 129, "x@sha256:00",
                                 "sha256:abcd", "-a", "a-", "127.0.0.1:5000/bench/big:v1", "x/y/z:1",
                                 "busybox:\u00fc", "index.docker.io/x", "docker.io/x", "Foo/bar", "[::1]:5000/x",
                                 "a.-b/c", "a--b/c", "localhost:5000", "host:1/x@sha256:00", "a.b_c/x", "a:1_/x",
                                 "a/b:c/d", "a//b", "a/", "/a", ":a", "a:"])
def test_plain_hub_names_normalize_as_reference_parse(ref):
    """The run path's shortcut gives reference.parse's answer, or leaves the reference to it."""
    from pyoci import reference
    from pyoci.errors import OCIError

    from pycontainerd.ctr.backend import _plain_hub_name

    fast = _plain_hub_name(ref)
    if fast is not None:
        assert fast == str(reference.parse(ref))
    if ref in ("busybox", "user/app:v1", "127.0.0.1:5000/bench/big:v1", "registry.example:5000/a/b:c", "x/y/z:1"):
        assert fast is not None
    try:
        reference.parse(ref)
    except OCIError:
        assert fast is None


MESSAGES = [
    {"id": 1, "service": "Tasks", "method": "Create", "params": {"container_id": "c" * 64, "stdin": False},
     "namespace": "default"},
    {"id": 2, "result": {"x": "ü\u2028é😀", "f": [1.5, 1e300, -0.0, 10 ** 30, None, True, False], "e": {}, "l": []}},
    {"id": 3, "stream": {"data": protocol.b64encode(bytes(range(256)))}, "k": {"\x00\x1f\"\\": "\t"}},
    {"id": 4, "error": {"code": 5, "message": 'thing "x": not found'}},
]


@pytest.mark.parametrize("message", MESSAGES)
def test_encode_is_byte_identical_to_json(message):
    body = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
    assert protocol.encode(message) == len(body).to_bytes(4, "big") + body
    assert protocol.decode(body) == json.loads(body)


@pytest.mark.parametrize("body", [b"\xff", b"{", b'{"a":1} x', b"", b'{"a":}', b"[1]"])
def test_decode_errors_keep_json_wording(body):
    with pytest.raises(protocol.ProtocolError) as info:
        protocol.decode(body)
    try:
        expected = "frame is not a JSON object" if not isinstance(json.loads(body), dict) else None
    except (UnicodeDecodeError, ValueError) as exc:
        expected = f"frame is not UTF-8 JSON: {exc}"
    assert str(info.value) == expected


def test_b64_matches_base64():
    import base64

    data = bytes(range(256)) * 3
    assert protocol.b64encode(data) == base64.b64encode(data).decode()
    assert protocol.b64decode(protocol.b64encode(data)) == data
    assert protocol.b64decode("") == b"" and protocol.b64decode(None) == b""
    with pytest.raises(ValueError):
        protocol.b64decode("YWJ")


# -- run/create flags read without argparse (ctr/runflags.py): the same values argparse gives, or argparse reads --
FAST_LINES = [
    ["--rm", "busybox", "true"], ["-it", "busybox", "sh"], ["-dit", "--name", "x", "img"], ["-d", "--rm", "img"],
    ["-e", "A=1", "--env=B=2", "-e", "", "img", "sh", "-c", "echo --rm -e"], ["--cpus", "1.5", "--pids-limit=7", "img"],
    ["--pull", "never", "--net", "host", "--net-alias=a", "--network-alias", "b", "img"], ["--name=", "img"],
    ["-h", "host", "-u", "1:2", "-w", "/w", "-m", "64m", "-v", "/a:/b", "-p", "80:80", "-P", "-l", "k=v", "img", "x"],
    ["--entrypoint", "", "--health-cmd", "true", "--no-healthcheck", "--security-opt", "seccomp=unconfined", "img"],
    ["--restart=always", "--log-opt", "max-size=1m", "--dns-opt", "ndots:1", "--add-host", "a:1.2.3.4", "-", "x"],
    ["img", "--rm", "-it"], ["127.0.0.1:5000/bench/big:v1", "true"], ["--cpus", "1e1", "--cpus=2", "img"],
]
ARGPARSE_LINES = [
    [], ["--rm"], ["--help"], ["--bogus", "img"], ["--priv", "img"], ["-e"], ["-e", "-x", "img"], ["-eA=1", "img"],
    ["-e=A", "img"], ["--cpus", "x", "img"], ["--pids-limit", "1.5", "img"], ["--pull", "sometimes", "img"],
    ["--rm=1", "img"], ["-ih", "x", "img"], ["--", "img"], ["img", "sh", "--", "x"], ["--cpus", "-1", "img"],
    ["-", "--", "x"], ["-itx", "img"],
]


def _both(argv: list[str], verb: str):
    from pycontainerd.ctr import cli, flags
    from pycontainerd.ctr.errors import FlagError

    fast = cli._run_args(argv, verb)
    try:
        slow = vars(flags.build_parser(verb).parse_args(argv))
    except (FlagError, SystemExit):
        slow = None
    return (None if fast is None else vars(fast)), slow


@pytest.mark.parametrize("verb", ["run", "create"])
@pytest.mark.parametrize("pre", [[], ["-H", "/tmp/x.sock"], ["--namespace=ns", "--address", "unix:///a"]])
def test_run_flags_read_as_argparse_does(verb, pre, capsys):
    for line in FAST_LINES:
        fast, slow = _both([*pre, verb, *line], verb)
        assert fast is not None, line
        assert fast == slow, line
    for line in ARGPARSE_LINES:
        fast, _slow = _both([*pre, verb, *line], verb)
        assert fast is None, line


def test_run_flags_fuzzed_agree_with_argparse(capsys):
    """Random command lines of the table's flags and odd words: whatever the fast path reads, argparse reads alike."""
    import random

    from pycontainerd.ctr.runflags import RUN_FLAGS

    words = [o for options, *_ in RUN_FLAGS for o in options] + [
        "-it", "-di", "-itP", "--name=a", "--pull=never", "--cpus=0.5", "img", "x", "", "-", "--", "-1", "1", "never",
        "--rm=", "-x", "--no-such", "a b", "--env=", "-ti"]
    rng = random.Random(7)
    fast_count = 0
    for _ in range(3000):
        line = [rng.choice(words) for _ in range(rng.randint(0, 7))]
        fast, slow = _both(["run", *line], "run")
        if fast is not None:
            fast_count += 1
            assert fast == slow, line
    assert fast_count > 100


def test_run_path_skips_argparse_and_reference(tmp_path):
    """A plain `run` reads its flags without argparse, and a registry reference without pyoci.reference."""
    code = ("from pycontainerd.ctr import cli, backend, containers, names, stdio\n"
            "from pycontainerd import client, ocispec, seccomp\n"
            "a = cli._run_args(['-H', '/x.sock', 'run', '--rm', '--name', 'web', '-it', '127.0.0.1:5000/a/b:v1',"
            " 'true'], 'run')\n"
            "o = cli._options(a)\n"
            "assert backend._plain_hub_name(o.image) == '127.0.0.1:5000/a/b:v1'\n"
            "assert names.NAME_RE.match(o.name)\n"
            "containers.network_and_mounts(o, {})\n"
            "containers._security(o)\n"
            "ocispec.generate({'config': {'Cmd': ['sh']}}, ocispec.SpecOptions(args=['true']), 'default', 'c' * 64)\n"
            "seccomp.to_oci(seccomp.default_profile(), [], seccomp.Host.current())\n")
    # re goes too (names, humanize, backend and containers import it only where a text needs it), and enum
    # (stdio sets handlers with _signal; signal.py is imported only by kill), copy (ocispec.clone)
    assert _imported(tmp_path, code, HEAVY + ("argparse", "gettext", "dataclasses", "inspect", "json", "re", "enum",
                                             "signal", "copy")) == []


def test_plain_hub_names_fuzzed_agree_with_reference_parse():
    import random

    from pyoci import reference
    from pyoci.errors import OCIError

    from pycontainerd.ctr.backend import _plain_hub_name

    rng = random.Random(3)
    fast = 0
    for _ in range(20000):
        ref = "".join(rng.choice("ab0.-_:/A@") for _ in range(rng.randint(1, 14)))
        got = _plain_hub_name(ref)
        if got is not None:
            fast += 1
            try:
                assert got == str(reference.parse(ref)), ref
            except OCIError:
                raise AssertionError(f"{ref!r}: the shortcut reads what reference.parse refuses") from None
    assert fast > 500


def test_container_name_rule_matches_its_regex():
    import random
    import re

    from pycontainerd.ctr.names import NAME_RE

    rng = random.Random(5)
    for _ in range(20000):
        text = "".join(rng.choice("aZ0_.-\n é/") for _ in range(rng.randint(0, 6)))
        assert bool(NAME_RE.match(text)) == bool(re.match(NAME_RE.pattern, text)), repr(text)


def test_records_behave_as_the_dataclasses_they_replace():
    from pycontainerd.records import FrozenInstanceError, field, record, replace

    @record
    class Opts:
        image: str
        args: list = field(default_factory=list)
        name: str = ""
        hidden: dict | None = field(default=None, repr=False)

    a, b = Opts("img"), Opts("img")
    assert (a.args, a.name, a.hidden, a == b, a.args is not b.args) == ([], "", None, True, True)
    assert repr(Opts("i", ["x"], name="n")) == "test_records_behave_as_the_dataclasses_they_replace.<locals>." \
                                               "Opts(image='i', args=['x'], name='n')"
    c = replace(a, name="web")
    assert (c.name, c.image, a.name) == ("web", "img", "")
    a.name = "mutable"
    assert a != b and Opts.name == "" and Opts.__match_args__ == ("image", "args", "name", "hidden")
    for bad in (lambda: Opts(), lambda: Opts("i", image="j"), lambda: Opts("i", nosuch=1), lambda: Opts(*"abcde"),
                lambda: hash(a)):
        with pytest.raises(TypeError):
            bad()

    @record(frozen=True)
    class Host:
        goarch: str
        kernel: tuple = (0, 0)

    h = Host("amd64")
    assert hash(h) == hash(Host("amd64", (0, 0))) and {h: 1}[Host("amd64")] == 1
    with pytest.raises(FrozenInstanceError):
        h.goarch = "arm64"
    with pytest.raises(TypeError):
        @record
        class Bad:
            a: int = 0
            b: int
