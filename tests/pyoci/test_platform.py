"""Platforms: parse/normalise as containerd does, and pick the right manifest out of an index."""

import os

import pytest

from pyoci import platform as P
from pyoci.errors import NotFound
from pyoci.platform import InvalidPlatform, Platform


@pytest.mark.parametrize("spec,expected", [
    ("linux/amd64", Platform("linux", "amd64")),
    ("linux/x86_64", Platform("linux", "amd64")),
    ("linux/x86-64", Platform("linux", "amd64")),
    ("linux/amd64/v1", Platform("linux", "amd64")),
    ("linux/amd64/v3", Platform("linux", "amd64", "v3")),
    ("linux/i386", Platform("linux", "386")),
    ("linux/arm64", Platform("linux", "arm64", "v8")),
    ("linux/aarch64", Platform("linux", "arm64", "v8")),
    ("linux/arm64/v8", Platform("linux", "arm64", "v8")),
    ("linux/arm64/8", Platform("linux", "arm64", "v8")),
    ("linux/arm64/v8.2", Platform("linux", "arm64", "v8.2")),
    ("linux/arm", Platform("linux", "arm", "v7")),
    ("linux/arm/7", Platform("linux", "arm", "v7")),
    ("linux/arm/v7", Platform("linux", "arm", "v7")),
    ("linux/arm/v6", Platform("linux", "arm", "v6")),
    ("linux/arm/5", Platform("linux", "arm", "v5")),
    ("linux/armhf", Platform("linux", "arm", "v7")),
    ("linux/armel", Platform("linux", "arm", "v6")),
    ("Linux/AMD64", Platform("linux", "amd64")),
    ("macos/arm64", Platform("darwin", "arm64", "v8")),
    ("windows/amd64", Platform("windows", "amd64")),
    ("windows(10.0.17763)/amd64", Platform("windows", "amd64", os_version="10.0.17763")),
    ("windows(10.0.17763+win32k)/amd64", Platform("windows", "amd64", os_version="10.0.17763",
                                                 os_features=("win32k",))),
    ("linux/riscv64", Platform("linux", "riscv64")),
    ("linux/s390x", Platform("linux", "s390x")),
])
def test_parse_and_normalize(spec, expected):
    got = P.parse(spec)
    assert got == expected
    # format() of a parsed platform parses back to the same platform
    assert P.parse(P.format_all(got)) == got


def test_single_component_fills_in_from_this_machine():
    host = P.default()
    assert P.parse("linux") == Platform("linux", host.architecture, host.variant)
    assert P.parse("arm64") == Platform(host.os, "arm64", "v8")
    assert P.parse("aarch64") == Platform(host.os, "arm64", "v8")


def test_default_is_this_machine():
    host = P.default()
    assert host.os == os.uname().sysname.lower()
    machine = os.uname().machine
    expected = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(machine, machine)
    assert host.architecture == expected
    assert P.format(host).startswith(f"{host.os}/{host.architecture}")


@pytest.mark.parametrize("spec,message", [
    ("foo", "unknown operating system or architecture"),
    ("", "invalid OS component"),
    ("linux/amd64/v1/x", "cannot parse platform specifier"),
    ("linux/*", "wildcards not yet supported"),
    ("linux/am d64", "invalid component"),
    ("linux//v7", "invalid component"),
])
def test_parse_errors(spec, message):
    with pytest.raises(InvalidPlatform, match=message):
        P.parse(spec)


def test_format():
    assert P.format(Platform("linux", "arm", "v7")) == "linux/arm/v7"
    assert P.format(Platform("linux", "amd64")) == "linux/amd64"
    assert P.format(Platform("", "")) == "unknown"
    assert str(Platform("linux", "arm64", "v8")) == "linux/arm64/v8"
    assert P.format_all(Platform("windows", "amd64", os_version="10.0/1", os_features=("b", "a+"))) == \
        "windows(10.0%2F1+a%2B+b)/amd64"


def test_matches_normalises_both_sides():
    assert P.matches(P.parse("linux/arm64"), Platform("linux", "arm64"))  # index entry without variant
    assert P.matches(P.parse("linux/arm64"), Platform("linux", "aarch64", "8"))
    assert P.matches(P.parse("linux/arm"), Platform("linux", "arm"))
    assert P.matches(Platform("linux", "amd64"), Platform("linux", "x86_64"))
    assert not P.matches(P.parse("linux/arm/v7"), Platform("linux", "arm", "v6"))
    assert not P.matches(P.parse("linux/amd64"), Platform("windows", "amd64"))
    # features the matcher does not know about are ignored; os.features must be a subset of the wanted ones
    assert P.matches(P.parse("linux/amd64"), Platform("linux", "amd64", features=("sse4",)))
    assert not P.matches(P.parse("windows/amd64"), Platform("windows", "amd64", os_features=("win32k",)))
    assert P.matches(Platform("windows", "amd64", os_features=("win32k",)),
                     Platform("windows", "amd64", os_features=("win32k",)))
    # on Windows the build must agree
    assert P.matches(Platform("windows", "amd64", os_version="10.0.17763.1"),
                     Platform("windows", "amd64", os_version="10.0.17763.2"))
    assert not P.matches(Platform("windows", "amd64", os_version="10.0.17763"),
                         Platform("windows", "amd64", os_version="10.0.20348"))


def _desc(digest_char, os_name, arch, variant=None, **extra):
    plat = {"architecture": arch, "os": os_name}
    if variant:
        plat["variant"] = variant
    plat.update(extra)
    return {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + digest_char * 64,
            "size": 100, "platform": plat}


INDEX = [
    _desc("1", "linux", "amd64"),
    _desc("2", "linux", "arm64", "v8"),
    _desc("3", "linux", "arm", "v7"),
    _desc("4", "linux", "arm", "v6"),
    _desc("5", "windows", "amd64", **{"os.version": "10.0.17763.5122"}),
    _desc("6", "unknown", "unknown"),  # a buildkit attestation manifest
]


@pytest.mark.parametrize("want,digest_char", [
    ("linux/amd64", "1"),
    ("linux/x86_64", "1"),
    ("linux/arm64", "2"),
    ("linux/arm64/v8", "2"),
    ("linux/aarch64", "2"),
    ("linux/arm/v7", "3"),
    ("linux/arm", "3"),
    ("linux/armhf", "3"),
    ("linux/arm/v6", "4"),
    ("linux/armel", "4"),
    ("linux/arm/v8", "3"),  # 32-bit on an armv8 CPU runs v7
    ("windows/amd64", "5"),
    ("windows(10.0.17763)/amd64", "5"),
])
def test_select_from_index(want, digest_char):
    assert P.select(INDEX, want)["digest"] == "sha256:" + digest_char * 64


def test_select_with_objects_and_platforms():
    platforms = [Platform.from_dict(d["platform"]) for d in INDEX]
    assert P.select(platforms, P.parse("linux/arm/v6")) == Platform("linux", "arm", "v6")


def test_select_falls_back_as_containerd_does():
    no_arm64 = [d for d in INDEX if d["platform"]["architecture"] != "arm64"]
    # arm64 has no image: an arm64 host runs arm/v7 (containerd's Only), but not with strict matching
    assert P.select(no_arm64, "linux/arm64")["digest"] == "sha256:" + "3" * 64
    with pytest.raises(NotFound):
        P.select(no_arm64, "linux/arm64", strict=True)
    only_v6 = [INDEX[3]]
    assert P.select(only_v6, "linux/arm/v7") is INDEX[3]
    with pytest.raises(NotFound):
        P.select([INDEX[2]], "linux/arm/v6")  # v6 cannot run v7
    amd64_v3 = [_desc("7", "linux", "amd64", "v2"), _desc("8", "linux", "386")]
    assert P.select(amd64_v3, "linux/amd64/v3")["digest"] == "sha256:" + "7" * 64
    assert P.select([amd64_v3[1]], "linux/amd64")["digest"] == "sha256:" + "8" * 64


def test_select_orders_exact_first_whatever_the_index_order():
    shuffled = [INDEX[3], INDEX[2], INDEX[1]]
    assert P.select(shuffled, "linux/arm/v7") is INDEX[2]
    assert P.select_all(shuffled, "linux/arm64") == [INDEX[1], INDEX[2], INDEX[3]]


def test_select_platformless_entries_come_last():
    bare = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + "9" * 64, "size": 1}
    assert P.select([bare, INDEX[0]], "linux/amd64") is INDEX[0]
    assert P.select([bare], "linux/s390x") is bare


def test_select_no_match_names_the_wanted_platform():
    with pytest.raises(NotFound, match=r"no manifest for platform linux/s390x \(available: .*linux/amd64.*\)"):
        P.select(INDEX, "linux/s390x")
    with pytest.raises(NotFound, match=r"linux/ppc64le \(no candidates\)"):
        P.select([], "linux/ppc64le")


def test_select_defaults_to_this_machine():
    host = P.default()
    cands = [_desc("1", host.os, host.architecture, host.variant or None), _desc("2", "plan9", "386")]
    assert P.select(cands)["digest"] == "sha256:" + "1" * 64


def test_json_round_trip_keeps_unknown_fields():
    raw = {"architecture": "arm", "os": "linux", "os.version": "5.10", "os.features": ["x"], "variant": "v7",
           "features": ["f"], "x-custom": {"a": 1}}
    p = Platform.from_dict(raw)
    assert p.to_dict() == raw
    assert list(p.to_dict()) == ["architecture", "os", "os.version", "os.features", "variant", "features",
                                 "x-custom"]
    assert hash(p) == hash(Platform("linux", "arm", "v7", "5.10", ("x",), ("f",)))


@pytest.mark.parametrize("raw,field", [
    ([], "platform: must be an object"),
    ({"os": "linux"}, "platform.architecture: must be a string"),
    ({"architecture": "amd64", "os": 3}, "platform.os: must be a string"),
    ({"architecture": "amd64", "os": "linux", "variant": 7}, "platform.variant: must be a string"),
    ({"architecture": "amd64", "os": "linux", "os.features": "x"}, r"platform.os.features: must be an array"),
])
def test_from_dict_errors_name_the_field(raw, field):
    with pytest.raises(InvalidPlatform, match=field):
        Platform.from_dict(raw)
