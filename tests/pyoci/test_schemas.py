import filecmp
from pathlib import Path

from tests.support import OFFICIAL_SCHEMAS, assert_valid

from pyoci import schema
from pyoci.errors import InvalidDocument
import pytest


def test_bundled_schemas_are_the_official_ones():
    for spec in ("image-spec", "runtime-spec"):
        official = OFFICIAL_SCHEMAS / spec
        bundled = schema.BUNDLED / spec
        names = sorted(p.name for p in official.iterdir())
        assert names == sorted(p.name for p in bundled.iterdir())
        _, mismatch, errors = filecmp.cmpfiles(official, bundled, names, shallow=False)
        assert not mismatch and not errors


def test_validate_names_the_bad_field():
    doc = {"ociVersion": "1.0.2", "root": {"path": "rootfs"},
           "process": {"cwd": "/", "args": ["sh"], "user": {"uid": "x", "gid": 0}}}
    with pytest.raises(InvalidDocument, match=r"config.json: invalid runtime-config: process.user.uid"):
        schema.validate(doc, "runtime-config", source="config.json")
    doc["process"]["user"]["uid"] = 0
    assert_valid(doc, "runtime-config")


def test_index_with_entries_resolves_nested_refs():
    # The index schema's nested ids rebase its $refs onto opencontainers.org URLs: they must resolve locally.
    entry = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + "a" * 64, "size": 7,
             "platform": {"architecture": "amd64", "os": "linux"}}
    assert_valid({"schemaVersion": 2, "manifests": [entry]}, "index")
    bad = dict(entry, digest="nope")
    assert any("digest" in p for p in schema.errors({"schemaVersion": 2, "manifests": [bad]}, "index"))
