"""Image references: the tables come from distribution/reference's reference_test.go and normalize_test.go."""

import pytest

from pyoci import reference
from pyoci.errors import InvalidReference
from pyoci.reference import Reference

F64 = "f" * 64
SHA256 = "sha256:" + F64
SHA512 = "sha512:" + "f" * 128
REDIS = "sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c"

# distribution's TestReferenceParse (its `Parse`: the grammar only): input -> (name, domain, tag, digest)
EXACT_VALID = [
    ("test_com", "test_com", "", None, None),
    ("test.com:tag", "test.com", "", "tag", None),
    ("test.com:5000", "test.com", "", "5000", None),
    ("test.com/repo:tag", "test.com/repo", "test.com", "tag", None),
    ("test:5000/repo", "test:5000/repo", "test:5000", None, None),
    ("test:5000/repo:tag", "test:5000/repo", "test:5000", "tag", None),
    (f"test:5000/repo@{SHA256}", "test:5000/repo", "test:5000", None, SHA256),
    (f"test:5000/repo:tag@{SHA256}", "test:5000/repo", "test:5000", "tag", SHA256),
    ("lowercase:Uppercase", "lowercase", "", "Uppercase", None),
    ("a/" * 127 + "a:tag-puts-this-over-max", "a/" * 127 + "a", "a", "tag-puts-this-over-max", None),
    ("sub-dom1.foo.com/bar/baz/quux", "sub-dom1.foo.com/bar/baz/quux", "sub-dom1.foo.com", None, None),
    ("sub-dom1.foo.com/bar/baz/quux:some-long-tag", "sub-dom1.foo.com/bar/baz/quux", "sub-dom1.foo.com",
     "some-long-tag", None),
    ("b.gcr.io/test.example.com/my-app:test.example.com", "b.gcr.io/test.example.com/my-app", "b.gcr.io",
     "test.example.com", None),
    ("xn--n3h.com/myimage:xn--n3h.com", "xn--n3h.com/myimage", "xn--n3h.com", "xn--n3h.com", None),
    (f"xn--7o8h.com/myimage:xn--7o8h.com@{SHA512}", "xn--7o8h.com/myimage", "xn--7o8h.com", "xn--7o8h.com", SHA512),
    ("foo_bar.com:8080", "foo_bar.com", "", "8080", None),
    ("foo/foo_bar.com:8080", "foo/foo_bar.com", "foo", "8080", None),
    ("192.168.1.1", "192.168.1.1", "", None, None),
    ("192.168.1.1:tag", "192.168.1.1", "", "tag", None),
    ("192.168.1.1:5000", "192.168.1.1", "", "5000", None),
    ("192.168.1.1/repo", "192.168.1.1/repo", "192.168.1.1", None, None),
    ("192.168.1.1:5000/repo", "192.168.1.1:5000/repo", "192.168.1.1:5000", None, None),
    ("192.168.1.1:5000/repo:5050", "192.168.1.1:5000/repo", "192.168.1.1:5000", "5050", None),
    ("[2001:db8::1]/repo", "[2001:db8::1]/repo", "[2001:db8::1]", None, None),
    ("[2001:db8:1:2:3:4:5:6]/repo:tag", "[2001:db8:1:2:3:4:5:6]/repo", "[2001:db8:1:2:3:4:5:6]", "tag", None),
    ("[2001:db8::1]:5000/repo", "[2001:db8::1]:5000/repo", "[2001:db8::1]:5000", None, None),
    ("[2001:db8::1]:5000/repo:tag", "[2001:db8::1]:5000/repo", "[2001:db8::1]:5000", "tag", None),
    (f"[2001:db8::1]:5000/repo@{SHA256}", "[2001:db8::1]:5000/repo", "[2001:db8::1]:5000", None, SHA256),
    (f"[2001:db8::1]:5000/repo:tag@{SHA256}", "[2001:db8::1]:5000/repo", "[2001:db8::1]:5000", "tag", SHA256),
    ("[2001:db8::]:5000/repo", "[2001:db8::]:5000/repo", "[2001:db8::]:5000", None, None),
    ("[::1]:5000/repo", "[::1]:5000/repo", "[::1]:5000", None, None),
]

EXACT_INVALID = [
    ("", "repository name must have at least one component"),
    (":justtag", "invalid reference format"),
    (f"@{SHA256}", "invalid reference format"),
    ("repo@sha256:" + "f" * 34, "invalid checksum digest length"),
    (f"validname@invaliddigest:{F64}", "unsupported digest algorithm"),
    ("Uppercase:tag", "repository name must be lowercase"),
    ("test:5000/Uppercase/lowercase:tag", "repository name must be lowercase"),
    ("a/" * 128 + "a:tag", "repository name must not be more than 255 characters"),
    ("aa/asdf$$^/aa", "invalid reference format"),
    ("[2001:db8::1]", "invalid reference format"),
    ("[2001:db8::1]:5000", "invalid reference format"),
    ("[2001:db8::1]:tag", "invalid reference format"),
    ("[fe80::1%eth0]:5000/repo", "invalid reference format"),
    ("[fe80::1%@invalidzone]:5000/repo", "invalid reference format"),
]


@pytest.mark.parametrize("text,name,domain,tag,digest", EXACT_VALID)
def test_parse_exact_valid(text, name, domain, tag, digest):
    ref = reference.parse_exact(text)
    assert (ref.name, ref.domain, ref.tag, ref.digest) == (name, domain, tag, digest)
    assert str(ref) == text


@pytest.mark.parametrize("text,message", EXACT_INVALID)
def test_parse_exact_invalid(text, message):
    with pytest.raises(InvalidReference, match=message.replace("(", r"\(").replace(")", r"\)")):
        reference.parse_exact(text)


# Docker's normalisation (ParseNormalizedNamed + the default tag): input -> full form, domain, path, familiar
NORMALIZED = [
    ("busybox", "docker.io/library/busybox:latest", "docker.io", "library/busybox", "busybox:latest"),
    ("user/img", "docker.io/user/img:latest", "docker.io", "user/img", "user/img:latest"),
    ("docker/docker", "docker.io/docker/docker:latest", "docker.io", "docker/docker", "docker/docker:latest"),
    ("library/debian", "docker.io/library/debian:latest", "docker.io", "library/debian", "debian:latest"),
    ("docker.io/debian", "docker.io/library/debian:latest", "docker.io", "library/debian", "debian:latest"),
    ("index.docker.io/debian", "docker.io/library/debian:latest", "docker.io", "library/debian", "debian:latest"),
    ("index.docker.io/docker/docker", "docker.io/docker/docker:latest", "docker.io", "docker/docker",
     "docker/docker:latest"),
    ("docker.io/library/foo/bar", "docker.io/library/foo/bar:latest", "docker.io", "library/foo/bar",
     "library/foo/bar:latest"),
    ("store/foo/bar", "docker.io/store/foo/bar:latest", "docker.io", "store/foo/bar", "store/foo/bar:latest"),
    ("127.0.0.1:5000/docker/docker", "127.0.0.1:5000/docker/docker:latest", "127.0.0.1:5000", "docker/docker",
     "127.0.0.1:5000/docker/docker:latest"),
    ("192.168.0.1", "docker.io/library/192.168.0.1:latest", "docker.io", "library/192.168.0.1",
     "192.168.0.1:latest"),
    ("192.168.0.1:80", "docker.io/library/192.168.0.1:80", "docker.io", "library/192.168.0.1", "192.168.0.1:80"),
    ("192.168.0.2:25000/debian", "192.168.0.2:25000/debian:latest", "192.168.0.2:25000", "debian",
     "192.168.0.2:25000/debian:latest"),
    ("localhost/foo", "localhost/foo:latest", "localhost", "foo", "localhost/foo:latest"),
    ("localhost:5000/a/b:tag@" + SHA256, "localhost:5000/a/b:tag@" + SHA256, "localhost:5000", "a/b",
     "localhost:5000/a/b:tag@" + SHA256),
    ("[fc00::1]:5000/docker", "[fc00::1]:5000/docker:latest", "[fc00::1]:5000", "docker",
     "[fc00::1]:5000/docker:latest"),
    ("[fc00:1:2:3:4:5:6:7]:5000/library/debian", "[fc00:1:2:3:4:5:6:7]:5000/library/debian:latest",
     "[fc00:1:2:3:4:5:6:7]:5000", "library/debian", "[fc00:1:2:3:4:5:6:7]:5000/library/debian:latest"),
    ("docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
     "docker.io/library/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a:latest", "docker.io",
     "library/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
     "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a:latest"),
    # An upper-case first component can only be a domain (distribution's TestParseRepositoryInfo).
    ("Docker/docker", "Docker/docker:latest", "Docker", "docker", "Docker/docker:latest"),
    ("FOO/bar", "FOO/bar:latest", "FOO", "bar", "FOO/bar:latest"),
    ("thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
     "docker.io/library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev:latest", "docker.io",
     "library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
     "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev:latest"),
    ("docker-rules/docker", "docker.io/docker-rules/docker:latest", "docker.io", "docker-rules/docker",
     "docker-rules/docker:latest"),
    ("docker---rules/docker", "docker.io/docker---rules/docker:latest", "docker.io", "docker---rules/docker",
     "docker---rules/docker:latest"),
    ("dock__er/docker", "docker.io/dock__er/docker:latest", "docker.io", "dock__er/docker", "dock__er/docker:latest"),
    ("d/docker", "docker.io/d/docker:latest", "docker.io", "d/docker", "d/docker:latest"),
    ("ubuntu-12.04-base", "docker.io/library/ubuntu-12.04-base:latest", "docker.io", "library/ubuntu-12.04-base",
     "ubuntu-12.04-base:latest"),
    ("test_com/foo", "docker.io/test_com/foo:latest", "docker.io", "test_com/foo", "test_com/foo:latest"),
    ("xn--n3h.com:18080/foo", "xn--n3h.com:18080/foo:latest", "xn--n3h.com:18080", "foo",
     "xn--n3h.com:18080/foo:latest"),
    ("redis@" + REDIS, "docker.io/library/redis@" + REDIS, "docker.io", "library/redis", "redis@" + REDIS),
    ("busybox:latest@" + SHA256, "docker.io/library/busybox:latest@" + SHA256, "docker.io", "library/busybox",
     "busybox:latest@" + SHA256),
    ("dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9",
     "docker.io/library/dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9:latest", "docker.io",
     "library/dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9",
     "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9:latest"),
]

LOWER = "invalid reference format: repository name ({}) must be lowercase"
NORMALIZED_INVALID = [
    ("", "invalid reference format"),
    ("https://github.com/docker/docker", "invalid reference format"),
    ("docker/Docker", LOWER.format("docker/Docker")),
    ("Busybox", LOWER.format("library/Busybox")),
    ("docker.io/docker/Docker", LOWER.format("docker/Docker")),
    ("-docker", "invalid reference format"),
    ("-docker/docker", "invalid reference format"),
    ("-docker.io/docker/docker", "invalid reference format"),
    ("-foo", "invalid reference format"),
    ("foo_", "invalid reference format"),
    ("a:b:c", "invalid reference format"),
    ("docker///docker", "invalid reference format"),
    ("docker.io/docker///docker", "invalid reference format"),
    ("[fc00::1]", "invalid reference format"),
    ("[fc00::1]:5000", "invalid reference format"),
    ("fc00::1:5000/debian", "invalid reference format"),
    ("[fe80::1%eth0]:5000/debian", "invalid reference format"),
    ("[2001:db8:3:4::192.0.2.33]:5000/debian", "invalid reference format"),
    ("1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
     "invalid repository name (1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a), "
     "cannot specify 64-byte hexadecimal strings"),
    ("docker-/docker", "invalid reference format"),
    ("-docker-/docker", "invalid reference format"),
    ("____/____", "invalid reference format"),
    ("_docker/_docker", "invalid reference format"),
    ("dock..er/docker", "invalid reference format"),
    ("dock_.er/docker", "invalid reference format"),
    ("dock-.er/docker", "invalid reference format"),
    ("docker/", "invalid reference format"),
    ("_".join(["this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255"] * 4) + "/docker",
     "repository name must not be more than 255 characters"),
    ("x" * 240, "repository name must not be more than 255 characters"),  # with docker.io/library/ it is 258
    ("busybox:" + "t" * 129, "invalid reference format"),
    ("busybox:-tag", "invalid reference format"),
    ("busybox@sha256:" + "a" * 63, "invalid checksum digest length"),
    ("busybox@sha256:" + "A" * 64, "invalid checksum digest format"),
    ("busybox@md5:" + "a" * 32, "unsupported digest algorithm"),
    ("busybox@sha256:abc", "invalid reference format"),
    ("foo/BAR", LOWER.format("foo/BAR")),
]


@pytest.mark.parametrize("text,full,domain,path,familiar", NORMALIZED)
def test_parse_normalized(text, full, domain, path, familiar):
    ref = reference.parse(text)
    assert str(ref) == full
    assert (ref.domain, ref.path, ref.repository) == (domain, path, path)
    assert ref.familiar == familiar
    assert ref.name == f"{domain}/{path}"
    # The full form is canonical: it parses to itself with and without normalisation.
    assert reference.parse(full) == ref
    assert reference.parse(full, normalize=False) == ref


@pytest.mark.parametrize("text,message", NORMALIZED_INVALID)
@pytest.mark.parametrize("normalize", [True, False])
def test_parse_invalid(text, message, normalize):
    with pytest.raises(InvalidReference) as info:
        reference.parse(text, normalize=normalize)
    assert str(info.value).startswith(message)


def test_table_size_meets_the_issue():
    assert len(EXACT_VALID) + len(EXACT_INVALID) + len(NORMALIZED) + len(NORMALIZED_INVALID) >= 30


@pytest.mark.parametrize("text", ["busybox", "user/img", "index.docker.io/debian", "docker.io/debian",
                                  "busybox:latest"])
def test_not_canonical_without_normalization(text):
    with pytest.raises(InvalidReference, match="repository name must be canonical"):
        reference.parse(text, normalize=False)


def test_canonical_without_normalization_adds_no_tag():
    ref = reference.parse("docker.io/library/busybox", normalize=False)
    assert ref == Reference("docker.io", "library/busybox", None, None)
    assert ref.manifest_reference == "latest"
    assert reference.parse("FOO/bar", normalize=False) == Reference("FOO", "bar")
    assert reference.parse("localhost:5000/foo", normalize=False) == Reference("localhost:5000", "foo")


def test_name_length_limit_is_255():
    ok = "localhost/" + "a" * 245  # exactly 255
    assert reference.parse(ok).name == ok
    with pytest.raises(InvalidReference, match="not be more than 255"):
        reference.parse(ok + "a")


def test_tag_grammar():
    assert reference.parse("busybox:" + "t" * 128).tag == "t" * 128
    assert reference.parse("busybox:_x.y-Z").tag == "_x.y-Z"
    assert reference.is_valid_tag("v1.0") and not reference.is_valid_tag(".v1") and not reference.is_valid_tag("")


def test_with_tag_and_digest():
    ref = reference.parse("busybox")
    tagged = ref.with_tag("1.36")
    assert str(tagged) == "docker.io/library/busybox:1.36"
    both = tagged.with_digest(SHA256)
    assert str(both) == f"docker.io/library/busybox:1.36@{SHA256}"
    assert both.familiar == f"busybox:1.36@{SHA256}"
    assert both.manifest_reference == SHA256
    assert str(both.docker_ref()) == f"docker.io/library/busybox@{SHA256}"
    assert str(ref.docker_ref()) == "docker.io/library/busybox:latest"
    assert str(both.without_tag_or_digest()) == "docker.io/library/busybox"
    with pytest.raises(InvalidReference, match="invalid tag format"):
        ref.with_tag("-foo")
    with pytest.raises(InvalidReference, match="invalid digest format"):
        ref.with_digest("foo")
    with pytest.raises(InvalidReference, match="invalid checksum digest length"):
        ref.with_digest("sha256:" + "a" * 40)


def test_reference_is_frozen_and_hashable():
    ref = reference.parse("busybox")
    with pytest.raises(AttributeError):
        ref.tag = "x"  # type: ignore[misc]
    assert {ref, reference.parse("docker.io/library/busybox:latest")} == {ref}
    assert Reference.parse("busybox") == ref


@pytest.mark.parametrize("text,host", [
    ("busybox", "registry-1.docker.io"),
    ("docker.io/user/img", "registry-1.docker.io"),
    ("index.docker.io/user/img", "registry-1.docker.io"),
    ("localhost:5000/a/b", "localhost:5000"),
    ("quay.io/coreos/etcd", "quay.io"),
    ("[::1]:5000/x", "[::1]:5000"),
])
def test_registry_host(text, host):
    assert reference.registry_host(reference.parse(text)) == host


def test_is_localhost():
    assert reference.is_localhost(reference.parse("localhost:5000/a"))
    assert reference.is_localhost("127.0.0.1:5000")
    assert reference.is_localhost("[::1]:5000")
    assert not reference.is_localhost(reference.parse("quay.io/a"))


def test_non_string_input():
    with pytest.raises(InvalidReference):
        reference.parse(None)  # type: ignore[arg-type]


# skopeo parses references with containers/image's copy of distribution/reference. Debian's skopeo 1.9
# copy predates two later distribution rules, so those inputs are left out: an upper-case first component
# is a domain (`FOO/bar`), and IPv6 domains (`[::1]:5000/repo`).
SKOPEO_CASES = [
    "busybox", "busybox:latest", "user/img:1", "index.docker.io/debian:12", "localhost:5000/a/b:tag",
    "localhost/foo:1", "192.168.0.2:25000/debian:x", "xn--n3h.com:18080/foo:t",
    "dock__er/docker:1", "docker---rules/docker:1", "busybox@" + SHA256, "user/img@" + SHA512,
    "busybox:" + "t" * 128,
    "Busybox", "docker/Docker:1", "a:b:c", "-foo", "foo_", "docker///docker", "busybox:" + "t" * 129,
    "busybox@sha256:" + "a" * 63, "busybox@md5:" + "a" * 32, "[fe80::1%eth0]:5000/debian:1", "x" * 240 + ":1",
    "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a", "https://github.com/docker/docker",
]


@pytest.mark.interop
def test_validity_agrees_with_skopeo():
    import subprocess

    from tests.support import require

    skopeo = require("skopeo")
    disagreements = []
    for text in SKOPEO_CASES:
        # docker-daemon: parses the reference, then fails fast on the missing local socket: no network
        p = subprocess.run([skopeo, "inspect", f"docker-daemon:{text}"], capture_output=True, text=True,
                           timeout=60)
        assert p.returncode != 0
        skopeo_valid = not any(s in p.stderr for s in ("invalid reference format", "repository name must",
                                                       "cannot specify 64-byte", "digest algorithm",
                                                       "invalid checksum digest"))
        try:
            reference.parse(text)
            ours = True
        except InvalidReference:
            ours = False
        if ours != skopeo_valid:
            disagreements.append((text, ours, p.stderr.strip()[-200:]))
    assert not disagreements


@pytest.mark.interop
def test_normalized_form_agrees_with_skopeo(tmp_path):
    """skopeo writes the normalised reference into a docker-archive's RepoTags."""
    import json
    import subprocess
    import tarfile

    from tests.support import require

    skopeo, umoci = require("skopeo"), require("umoci")
    layout = tmp_path / "L"
    subprocess.run([umoci, "init", "--layout", str(layout)], check=True, capture_output=True)
    subprocess.run([umoci, "new", "--image", f"{layout}:t"], check=True, capture_output=True)
    for i, text in enumerate(["busybox", "index.docker.io/user/img:1", "docker.io/library/foo/bar:x",
                              "localhost:5000/a/b:t", "library/debian:12"]):
        archive = tmp_path / f"{i}.tar"
        ref = reference.parse(text)
        subprocess.run([skopeo, "copy", "-q", f"oci:{layout}:t", f"docker-archive:{archive}:{ref.familiar}"],
                       check=True, capture_output=True)
        with tarfile.open(archive) as tar:
            repo_tags = json.load(tar.extractfile("manifest.json"))[0]["RepoTags"]
        assert repo_tags == [str(ref)]
