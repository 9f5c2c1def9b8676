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
            "from pycontainerd.ctr import images\n"
            "assert backend._plain_hub_name('busybox') == 'docker.io/library/busybox:latest'\n")
    assert _imported(tmp_path, code) == []


@pytest.mark.parametrize("ref", ["busybox", "busybox:1.36", "library/busybox", "user/app:v1", "a-b/c_d.e:t-1",
                                 "localhost/x", "docker.io/busybox", "registry.example:5000/a/b:c", "foo.com/bar",
                                 "a" * 64, "x/" + "a" * 64, "Upper", "a__b", "a/b/c", "x:" + "t" * 129, "x@sha256:00",
                                 "sha256:abcd", "-a", "a-"])
def test_plain_hub_names_normalize_as_reference_parse(ref):
    """The run path's shortcut gives reference.parse's answer, or leaves the reference to it."""
    from pyoci import reference
    from pyoci.errors import OCIError

    from pycontainerd.ctr.backend import _plain_hub_name

    fast = _plain_hub_name(ref)
    if fast is not None:
        assert fast == str(reference.parse(ref))
    if ref in ("busybox", "user/app:v1"):
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
