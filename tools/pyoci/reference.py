"""Image references (`[domain/]path[:tag][@digest]`), parsed and normalised exactly as Docker does.

The grammar is distribution/reference's `regexp.go`; normalisation follows its `ParseNormalizedNamed`
(`busybox` -> `docker.io/library/busybox`) plus Docker's default tag (`:latest` when there is neither a
tag nor a digest). Unlike `ParseDockerRef`, a reference given with both a tag and a digest keeps both
(`str()` shows both, as `docker pull` echoes them); `docker_ref()` gives ParseDockerRef's digest-only form.

Error messages are distribution's. One deliberate choice: the 255-character limit applies to the whole
name (domain and path), as distribution's `Parse` has done for most of its life and its test table checks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import digest as _digest
from .errors import InvalidDigest, InvalidReference

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
# Docker Hub's name is docker.io but its registry API lives on another host.
DEFAULT_REGISTRY_HOST = "registry-1.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

# --- distribution/reference regexp.go, translated term by term (ASCII-only like Go's RE2 classes) ---
_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = _ALPHANUMERIC + r"(?:" + _SEPARATOR + _ALPHANUMERIC + r")*"
_REMOTE_NAME = _PATH_COMPONENT + r"(?:/" + _PATH_COMPONENT + r")*"
_DOMAIN_NAME_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = _DOMAIN_NAME_COMPONENT + r"(?:\." + _DOMAIN_NAME_COMPONENT + r")*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_HOST = r"(?:" + _DOMAIN_NAME + r"|" + _IPV6 + r")"
_DOMAIN_AND_PORT = _HOST + r"(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}"
_NAME = r"(?:" + _DOMAIN_AND_PORT + r"/)?" + _REMOTE_NAME

_REFERENCE_RE = re.compile(r"(" + _NAME + r")(?::(" + _TAG + r"))?(?:@(" + _DIGEST + r"))?", re.ASCII)
_ANCHORED_NAME_RE = re.compile(r"(?:(" + _DOMAIN_AND_PORT + r")/)?(" + _REMOTE_NAME + r")", re.ASCII)
_TAG_RE = re.compile(_TAG, re.ASCII)
_DIGEST_RE = re.compile(_DIGEST, re.ASCII)
_IDENTIFIER_RE = re.compile(r"[a-f0-9]{64}")
_DOMAIN_RE = re.compile(_DOMAIN_AND_PORT, re.ASCII)

# Far beyond any valid reference (255 name + 128 tag + a sha512 digest); keeps the regex work bounded.
_MAX_INPUT = 4096

# distribution's error texts
ERR_REFERENCE_INVALID_FORMAT = "invalid reference format"
ERR_TAG_INVALID_FORMAT = "invalid tag format"
ERR_DIGEST_INVALID_FORMAT = "invalid digest format"
ERR_NAME_CONTAINS_UPPERCASE = "repository name must be lowercase"
ERR_NAME_EMPTY = "repository name must have at least one component"
ERR_NAME_TOO_LONG = f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
ERR_NAME_NOT_CANONICAL = "repository name must be canonical"


@dataclass(frozen=True)
class Reference:
    """A named image reference. `domain` is never empty once parsed; `digest` is a canonical digest string."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def repository(self) -> str:
        """The repository path as a registry API wants it (`library/busybox`)."""
        return self.path

    @property
    def familiar_name(self) -> str:
        """Docker's short name: docker.io and an official image's `library/` dropped."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        path = self.path
        if path.startswith(OFFICIAL_REPO_PREFIX) and "/" not in path[len(OFFICIAL_REPO_PREFIX):]:
            path = path[len(OFFICIAL_REPO_PREFIX):]
        return path

    @property
    def familiar(self) -> str:
        """Docker's familiar string (`busybox:latest`, `user/img@sha256:...`)."""
        return self.familiar_name + self._suffix()

    @property
    def manifest_reference(self) -> str:
        """What to ask a registry's /manifests/ endpoint for: the digest when there is one, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def _suffix(self) -> str:
        return (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    def __str__(self) -> str:
        return self.name + self._suffix()

    def with_tag(self, tag: str) -> Reference:
        if not isinstance(tag, str) or not _TAG_RE.fullmatch(tag):
            raise InvalidReference(f"{ERR_TAG_INVALID_FORMAT}: {tag!r}")
        return Reference(self.domain, self.path, tag, self.digest)

    def with_digest(self, digest: str | _digest.Digest) -> Reference:
        text = str(digest)
        if not _DIGEST_RE.fullmatch(text):
            raise InvalidReference(f"{ERR_DIGEST_INVALID_FORMAT}: {text!r}")
        return Reference(self.domain, self.path, self.tag, _check_digest(text))

    def without_tag_or_digest(self) -> Reference:
        return Reference(self.domain, self.path)

    def docker_ref(self) -> Reference:
        """ParseDockerRef's form: digest-only when digested, else tagged (`latest` by default)."""
        if self.digest:
            return Reference(self.domain, self.path, None, self.digest)
        return Reference(self.domain, self.path, self.tag or DEFAULT_TAG, None)

    @classmethod
    def parse(cls, s: str, normalize: bool = True) -> Reference:
        return parse(s, normalize)


def parse(s: str, normalize: bool = True) -> Reference:
    """Parse an image reference.

    normalize=True (the CLI default): Docker's normalisation -- `busybox` is
    `docker.io/library/busybox:latest`, `index.docker.io` is `docker.io`, `:latest` is added when
    neither tag nor digest is given. normalize=False: the input must already be in canonical form
    (distribution's ParseNamed); no tag is added.
    """
    if not isinstance(s, str):
        raise InvalidReference(f"{ERR_REFERENCE_INVALID_FORMAT}: not a string: {s!r}")
    ref = parse_normalized_named(s)
    if not normalize:
        if str(ref) != s:
            raise InvalidReference(f"{ERR_NAME_NOT_CANONICAL}: {s!r} (canonical form: {ref})")
        return ref
    if ref.tag is None and ref.digest is None:
        ref = Reference(ref.domain, ref.path, DEFAULT_TAG, None)
    return ref


def parse_normalized_named(s: str) -> Reference:
    """distribution's ParseNormalizedNamed: normalise the domain and path, but add no default tag."""
    if _IDENTIFIER_RE.fullmatch(s):
        raise InvalidReference(f"invalid repository name ({s}), cannot specify 64-byte hexadecimal strings")
    domain, remainder = _split_docker_domain(s)
    remote = remainder.split(":", 1)[0]
    if remote.lower() != remote:
        raise InvalidReference(f"{ERR_REFERENCE_INVALID_FORMAT}: repository name ({remote}) must be lowercase")
    return parse_exact(domain + "/" + remainder)


def parse_exact(s: str) -> Reference:
    """distribution's Parse (named references only): the grammar alone, no normalisation; the domain may be empty."""
    if s == "":
        raise InvalidReference(ERR_NAME_EMPTY)
    if len(s) > _MAX_INPUT:
        raise InvalidReference(ERR_REFERENCE_INVALID_FORMAT)
    m = _REFERENCE_RE.fullmatch(s)
    if m is None:
        lower = s.lower()
        if lower != s and _REFERENCE_RE.fullmatch(lower):
            raise InvalidReference(ERR_NAME_CONTAINS_UPPERCASE)
        raise InvalidReference(ERR_REFERENCE_INVALID_FORMAT)
    name, tag, digest = m.group(1), m.group(2), m.group(3)
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidReference(ERR_NAME_TOO_LONG)
    nm = _ANCHORED_NAME_RE.fullmatch(name)
    domain, path = (nm.group(1) or "", nm.group(2)) if nm else ("", name)
    return Reference(domain, path, tag, _check_digest(digest) if digest else None)


def _check_digest(text: str) -> str:
    """go-digest's checks and error texts, with pyoci.digest deciding what is valid."""
    try:
        return str(_digest.Digest.parse(text))
    except InvalidDigest as e:
        algorithm, _, encoded = text.partition(":")
        if algorithm not in ("sha256", "sha512"):
            reason = "unsupported digest algorithm"
        elif len(encoded) != {"sha256": 64, "sha512": 128}[algorithm]:
            reason = "invalid checksum digest length"
        else:
            reason = "invalid checksum digest format"
        raise InvalidReference(f"{reason}: {e}") from None


def _split_docker_domain(name: str) -> tuple[str, str]:
    """distribution's splitDockerDomain: which first component is a registry, and Docker Hub's `library/`."""
    maybe_domain, sep, maybe_remote = name.partition("/")
    if not sep:
        return DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX + name
    if maybe_domain == "localhost":
        domain, remote = maybe_domain, maybe_remote
    elif maybe_domain == LEGACY_DEFAULT_DOMAIN:
        domain, remote = DEFAULT_DOMAIN, maybe_remote
    elif "." in maybe_domain or ":" in maybe_domain:
        domain, remote = maybe_domain, maybe_remote
    elif maybe_domain.lower() != maybe_domain:
        # Upper case is not allowed in a path, so an upper-case first component can only be a domain.
        domain, remote = maybe_domain, maybe_remote
    else:
        domain, remote = DEFAULT_DOMAIN, name
    if domain == DEFAULT_DOMAIN and "/" not in remote:
        remote = OFFICIAL_REPO_PREFIX + remote
    return domain, remote


def is_valid_tag(tag: str) -> bool:
    return isinstance(tag, str) and _TAG_RE.fullmatch(tag) is not None


def registry_host(ref: Reference | str) -> str:
    """The host[:port] serving the registry API for a reference or a domain (docker.io -> registry-1.docker.io)."""
    domain = ref.domain if isinstance(ref, Reference) else ref
    if domain in (DEFAULT_DOMAIN, LEGACY_DEFAULT_DOMAIN):
        return DEFAULT_REGISTRY_HOST
    return domain


def is_localhost(ref: Reference | str) -> bool:
    """True for a loopback registry (plain HTTP is acceptable there, as Docker allows)."""
    domain = ref.domain if isinstance(ref, Reference) else ref
    host = domain.rsplit(":", 1)[0] if not domain.endswith("]") else domain
    host = host.strip("[]")
    return host in ("localhost", "127.0.0.1", "::1") or host.startswith("127.")
