"""JWTs of the Docker token spec, as Distribution 2.8 (`registry/auth/token`) issues and verifies them.

Header: `alg` (RS256/ES256/...), `typ: JWT`, and the signing key named either by `kid` (the libtrust
fingerprint of the public key, which Distribution looks up among the keys of its `rootcertbundle`) or by
an `x5c` certificate chain that must lead to one of those roots. Claims: iss, sub, aud, exp, nbf, iat, jti
and `access: [{type, name, actions}]`. Verification allows Distribution's 60 s of clock leeway.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Iterable

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from .errors import ConfigError

LEEWAY = 60  # seconds, Distribution's token.Leeway
DEFAULT_EXPIRY = 300  # seconds a token issued by the built-in endpoint lives
# Asymmetric algorithms only: a verifier must never accept "none" or an HMAC keyed with a public key.
ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512")

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


class TokenInvalid(Exception):
    """A bearer token that is malformed, badly signed, expired, or for another issuer or service."""


@dataclass(frozen=True)
class Access:
    """One entry of the `access` claim: `repository` `library/x` `[pull, push]`."""

    type: str
    name: str
    actions: tuple[str, ...]

    def to_json(self) -> dict:
        return {"type": self.type, "name": self.name, "actions": list(self.actions)}

    def scope(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


@dataclass(frozen=True)
class Claims:
    issuer: str
    subject: str
    audience: str
    access: tuple[Access, ...] = ()
    expires: int = 0
    not_before: int = 0
    issued_at: int = 0
    jti: str = ""

    def allows(self, type_: str, name: str, action: str) -> bool:
        """Distribution's accessSet.contains: an action list holding `*` grants every action."""
        return any(a.type == type_ and a.name == name and (action in a.actions or "*" in a.actions)
                   for a in self.access)


def parse_scope(scope: str) -> Access | None:
    """`repository:team/app:pull,push` (the name may hold `:`, a type may carry a `(class)`); None if malformed."""
    type_, sep, rest = scope.partition(":")
    name, sep2, actions = rest.rpartition(":")
    if not sep or not sep2 or not type_ or not name:
        return None
    type_ = type_.split("(", 1)[0]
    return Access(type_, name, tuple(a for a in actions.split(",") if a))


def libtrust_key_id(key: PublicKey) -> str:
    """The `kid` Distribution computes for a key: SHA-256 of the DER SubjectPublicKeyInfo, first 240 bits,
    base32 in 12 colon-separated groups of 4 (`ABCD:EFGH:...`)."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    s = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(s[i:i + 4] for i in range(0, len(s), 4))


def algorithm_for(key: PrivateKey | PublicKey) -> str:
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return "RS256"
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}.get(key.curve.name, "")
    return ""


def load_private_key(path: str) -> PrivateKey:
    data = _read(path, "auth.token.signingkey")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"auth.token.signingkey: {path}: not an unencrypted PEM private key ({e})") from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)) or not algorithm_for(key):
        raise ConfigError(f"auth.token.signingkey: {path}: must be an RSA or P-256/P-384/P-521 EC key")
    return key


@dataclass(frozen=True)
class TrustStore:
    """The keys a verifier trusts: by libtrust key ID, and the root certificates x5c chains must lead to."""

    keys: dict[str, PublicKey] = field(default_factory=dict)
    roots: tuple[x509.Certificate, ...] = ()

    @classmethod
    def load(cls, path: str, extra: Iterable[PublicKey] = ()) -> "TrustStore":
        """From a PEM bundle of certificates (as Distribution's rootcertbundle) and/or public keys."""
        keys: dict[str, PublicKey] = {}
        roots: list[x509.Certificate] = []
        if path:
            data = _read(path, "auth.token.rootcertbundle")
            for block in _pem_blocks(data):
                try:
                    if b"CERTIFICATE" in block.split(b"\n", 1)[0]:
                        cert = x509.load_pem_x509_certificate(block)
                        roots.append(cert)
                        pub = cert.public_key()
                    else:
                        pub = serialization.load_pem_public_key(block)
                except ValueError as e:
                    raise ConfigError(f"auth.token.rootcertbundle: {path}: bad PEM block ({e})") from None
                if isinstance(pub, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
                    keys[libtrust_key_id(pub)] = pub
            if not keys:
                raise ConfigError(f"auth.token.rootcertbundle: {path}: holds no certificate or public key")
        for pub in extra:
            keys[libtrust_key_id(pub)] = pub
        return cls(keys, tuple(roots))

    def signing_key(self, header: dict) -> PublicKey:
        """The trusted key a token's header names (x5c, else jwk, else kid), as Distribution's VerifySigningKey."""
        if header.get("x5c"):
            return self._from_chain(header["x5c"])
        if header.get("jwk"):
            try:
                pub = jwt.PyJWK(header["jwk"]).key
            except (jwt.PyJWTError, ValueError, TypeError, KeyError):
                raise TokenInvalid("unparseable jwk in token header") from None
            pub = pub.public_key() if hasattr(pub, "public_key") else pub
            if libtrust_key_id(pub) not in self.keys:
                raise TokenInvalid("token signed by an untrusted jwk")
            return self.keys[libtrust_key_id(pub)]
        kid = header.get("kid")
        if isinstance(kid, str) and kid in self.keys:
            return self.keys[kid]
        raise TokenInvalid("token signing key is missing or not trusted")

    def _from_chain(self, x5c: object) -> PublicKey:
        if not isinstance(x5c, list) or not all(isinstance(c, str) for c in x5c):
            raise TokenInvalid("malformed x5c header")
        try:
            chain = [x509.load_der_x509_certificate(base64.b64decode(c)) for c in x5c]
        except ValueError:
            raise TokenInvalid("malformed certificate in x5c header") from None
        now = time.time()
        for cert in chain:
            if not cert.not_valid_before_utc.timestamp() <= now <= cert.not_valid_after_utc.timestamp():
                raise TokenInvalid("certificate in x5c header is not currently valid")
        # Each certificate must be signed by the next; the last by (or be) a trusted root.
        for child, parent in zip(chain, chain[1:]):
            if not _signed_by(child, parent.public_key()):
                raise TokenInvalid("x5c chain does not verify")
        last = chain[-1]
        if not any(last == root or (last.issuer == root.subject and _signed_by(last, root.public_key()))
                   for root in self.roots):
            raise TokenInvalid("x5c chain does not lead to a trusted root")
        pub = chain[0].public_key()
        if not isinstance(pub, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
            raise TokenInvalid("x5c leaf key is not RSA or EC")
        return pub


def _signed_by(cert: x509.Certificate, key: object) -> bool:
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(),
                       cert.signature_hash_algorithm or hashes.SHA256())
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes,
                       ec.ECDSA(cert.signature_hash_algorithm or hashes.SHA256()))
        else:
            return False
    except Exception:  # cryptography's InvalidSignature, or an unsupported hash
        return False
    return True


def _read(path: str, key: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ConfigError(f"{key}: cannot read {path}: {e.strerror}") from None


def _pem_blocks(data: bytes) -> list[bytes]:
    blocks, current = [], []
    for line in data.splitlines(keepends=True):
        if line.startswith(b"-----BEGIN "):
            current = [line]
        elif current:
            current.append(line)
            if line.startswith(b"-----END "):
                blocks.append(b"".join(current))
                current = []
    return blocks


def issue(key: PrivateKey, issuer: str, subject: str, audience: str, access: Iterable[Access],
          expiry: int = DEFAULT_EXPIRY, now: float | None = None) -> tuple[str, int]:
    """A signed token (kid = libtrust fingerprint of the key) and its issue time (Unix seconds)."""
    now_i = int(time.time() if now is None else now)
    claims = {"iss": issuer, "sub": subject, "aud": audience, "exp": now_i + expiry, "nbf": now_i - 1,
              "iat": now_i, "jti": secrets.token_hex(16), "access": [a.to_json() for a in access]}
    header = {"typ": "JWT", "kid": libtrust_key_id(key.public_key())}
    return jwt.encode(claims, key, algorithm=algorithm_for(key), headers=header), now_i


def verify(token: str, trust: TrustStore, issuer: str, service: str) -> Claims:
    """The claims of a token signed by a trusted key, for this issuer and service, and currently valid."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise TokenInvalid("malformed token") from None
    if header.get("alg") not in ALGORITHMS:
        raise TokenInvalid(f"unsupported token algorithm {header.get('alg')!r}")
    key = trust.signing_key(header)
    try:
        doc = jwt.decode(token, key, algorithms=[header["alg"]], audience=service, issuer=issuer, leeway=LEEWAY,
                         options={"require": ["exp", "iss", "aud"]})
    except jwt.PyJWTError as e:
        raise TokenInvalid(f"token rejected: {e}") from None
    access = []
    for entry in doc.get("access") or []:
        if not isinstance(entry, dict):
            raise TokenInvalid("malformed access claim")
        actions = entry.get("actions") or []
        if not isinstance(actions, list):
            raise TokenInvalid("malformed access claim")
        access.append(Access(str(entry.get("type", "")), str(entry.get("name", "")), tuple(map(str, actions))))
    return Claims(issuer=doc["iss"], subject=str(doc.get("sub", "")), audience=service, access=tuple(access),
                  expires=int(doc["exp"]), not_before=int(doc.get("nbf", 0)), issued_at=int(doc.get("iat", 0)),
                  jti=str(doc.get("jti", "")))


def name_matches(pattern: str, name: str, account: str) -> bool:
    """An ACL name glob (fnmatch; `${account}` stands for the account) against a repository name."""
    return fnmatch.fnmatchcase(name, pattern.replace("${account}", account))
