"""`spec` and `features` against runc's output; the generated config validator against jsonschema."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import assert_valid, require

PYRUNC = str(Path(sys.executable).with_name("pyrunc"))


@pytest.mark.parametrize("flags", [[], ["--rootless"]])
def test_spec_byte_for_byte(tmp_path, flags):
    a, b = tmp_path / "runc", tmp_path / "pyrunc"
    a.mkdir()
    b.mkdir()
    subprocess.run([require("runc"), "spec", *flags], cwd=a, check=True)
    p = subprocess.run([PYRUNC, "spec", *flags, "--bundle", str(b)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert (b / "config.json").read_bytes() == (a / "config.json").read_bytes()
    assert_valid(json.loads((b / "config.json").read_text()), "runtime-config")
    again = subprocess.run([PYRUNC, "spec", "-b", str(b)], capture_output=True, text=True)
    assert again.returncode == 1 and again.stderr.count("\n") == 1 and "exists" in again.stderr


def test_features(tmp_path):
    ours = json.loads(subprocess.run([PYRUNC, "features"], capture_output=True, text=True, check=True).stdout)
    theirs = json.loads(subprocess.run([require("runc"), "features"], capture_output=True, text=True, check=True).stdout)
    assert_valid(ours, "features")
    assert sorted(ours) == sorted(theirs)
    assert ours["mountOptions"] == theirs["mountOptions"]
    assert ours["hooks"] == theirs["hooks"]
    assert set(theirs["linux"]["namespaces"]) <= set(ours["linux"]["namespaces"])
    assert ours["linux"]["seccomp"] == theirs["linux"]["seccomp"]


def test_version():
    p = subprocess.run([PYRUNC, "--version"], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.startswith("pyrunc version ") and "spec: 1.0.2-dev" in p.stdout


def test_generated_validator_is_current():
    from pyrunc import genschema

    assert genschema.generate() == genschema.TARGET.read_text(), "run `python -m pyrunc.genschema`"


def _example() -> dict:
    from pyrunc import config

    return config.example()


def _mutations():
    def m(path, value):
        def apply(d):
            cur = d
            for k in path[:-1]:
                cur = cur[k]
            cur[path[-1]] = value
        return apply

    return [
        ("ok", lambda d: None),
        ("args-string", m(["process", "args"], "sh")),
        ("cwd-missing", lambda d: d["process"].pop("cwd")),
        ("uid-negative", m(["process", "user", "uid"], -1)),
        ("rlimit-type", m(["process", "rlimits"], [{"type": "NOFILE", "hard": 1, "soft": 1}])),
        ("ns-bogus", m(["linux", "namespaces"], [{"type": "bogus"}])),
        ("mount-no-dest", m(["mounts"], [{"type": "tmpfs"}])),
        ("hook-no-path", m(["hooks"], {"prestart": [{"args": ["x"]}]})),
        ("annotations-int", m(["annotations"], {"a": 1})),
        ("oci-missing", lambda d: d.pop("ociVersion")),
        ("seccomp-action", m(["linux", "seccomp"], {"defaultAction": "SCMP_ACT_NOPE"})),
        ("memory-limit-str", m(["linux", "resources", "memory"], {"limit": "1G"})),
        ("devices-type", m(["linux", "devices"], [{"path": "/dev/x", "type": "q"}])),
        ("idmap-ok", m(["linux", "uidMappings"], [{"containerID": 0, "hostID": 1000, "size": 10}])),
        ("propagation-bad", m(["linux", "rootfsPropagation"], "sideways")),
        ("hostname-int", m(["hostname"], 7)),
    ]


@pytest.mark.parametrize("name,mutate", _mutations(), ids=[n for n, _ in _mutations()])
def test_validator_agrees_with_jsonschema(name, mutate):
    from pyoci import schema

    from pyrunc import _config_schema

    doc = copy.deepcopy(_example())
    mutate(doc)
    official = schema.errors(doc, "runtime-config")
    try:
        _config_schema.validate(doc)
        ours_ok = True
    except _config_schema.JsonSchemaValueException:
        ours_ok = False
    assert ours_ok == (not official), (name, official)
