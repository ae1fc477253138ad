"""Self-signed DTLS certificates, SDP fingerprints (RFC 8122 §5) and handshake signatures.

WebRTC/DTLS-SRTP peers authenticate each other with self-signed certificates whose hash is
carried in SDP (``a=fingerprint:sha-256 AB:CD:...``, RFC 8122 §5, RFC 5763 §5); there is no
CA chain. This module

* generates an ECDSA P-256 certificate; the clock (``now``) and the serial number source
  (``rng``) are injected, so the module reads neither;
* formats and parses fingerprints and checks a peer certificate against one or several
  of them with a constant-time comparison, raising :class:`FingerprintMismatch` (a
  ``bad_certificate`` alert) that names both values;
* signs and verifies the ServerKeyExchange / CertificateVerify payloads with the TLS 1.2
  ``SignatureAndHashAlgorithm`` code points (RFC 5246 §7.4.1.4.1), for EC and RSA keys.
"""

from __future__ import annotations

import datetime
import hmac
import os
import re
from collections.abc import Callable, Iterable, Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from .alerts import (
    BadCertificate,
    DecryptError,
    FingerprintMismatch,
    HandshakeFailure,
    InvalidFingerprint,
    UnsupportedCertificate,
)
from .constants import SignatureScheme

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey

# RFC 8122 §5 hash function textual names (IANA "Hash Function Textual Names")
FINGERPRINT_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha-1": hashes.SHA1,
    "sha-224": hashes.SHA224,
    "sha-256": hashes.SHA256,
    "sha-384": hashes.SHA384,
    "sha-512": hashes.SHA512,
}
_FINGERPRINT_RE = re.compile(r"^\s*([A-Za-z0-9-]+)\s+([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})+)\s*$")


def generate_certificate(
    *,
    now: float | datetime.datetime,
    rng: Callable[[int], bytes] = os.urandom,
    common_name: str = "rtpcore",
    validity_days: int = 30,
    private_key: ec.EllipticCurvePrivateKey | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed ECDSA P-256 / SHA-256 certificate as WebRTC stacks make them.

    ``now`` is wall-clock time (POSIX seconds or an aware datetime); the certificate is valid
    from one day before it (clock skew) for ``validity_days``. The 63-bit positive serial
    comes from ``rng``.
    """
    if isinstance(now, datetime.datetime):
        start = now if now.tzinfo else now.replace(tzinfo=datetime.UTC)
    else:
        start = datetime.datetime.fromtimestamp(now, tz=datetime.UTC)
    key = private_key if private_key is not None else ec.generate_private_key(ec.SECP256R1())
    serial = (int.from_bytes(rng(8), "big") >> 1) | 1
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(start - datetime.timedelta(days=1))
        .not_valid_after(start + datetime.timedelta(days=validity_days))
        .sign(key, hashes.SHA256())
    )
    return cert, key


def certificate_der(cert: x509.Certificate | bytes) -> bytes:
    return cert if isinstance(cert, bytes) else cert.public_bytes(serialization.Encoding.DER)


def load_der_certificate(der: bytes) -> x509.Certificate:
    """Parse a peer's DER certificate; anything unparsable is a ``bad_certificate``."""
    try:
        return x509.load_der_x509_certificate(der)
    except (ValueError, TypeError, UnsupportedAlgorithm, x509.InvalidVersion) as exc:
        raise BadCertificate(f"undecodable certificate: {exc}") from None


def fingerprint(cert: x509.Certificate | bytes, algorithm: str = "sha-256") -> str:
    """The SDP form ``"sha-256 AB:CD:..."`` (RFC 8122 §5: upper-case hex pairs)."""
    algorithm = algorithm.lower()
    factory = FINGERPRINT_HASHES.get(algorithm)
    if factory is None:
        raise ValueError(f"unsupported fingerprint hash {algorithm!r}")
    h = hashes.Hash(factory())
    h.update(certificate_der(cert))
    return f"{algorithm} {h.finalize().hex(':').upper()}"


def parse_fingerprint(value: str) -> tuple[str, bytes]:
    """``"sha-256 AB:CD:.."`` -> ("sha-256", digest). Hash names are case-insensitive."""
    m = _FINGERPRINT_RE.match(value)
    if m is None:
        raise InvalidFingerprint(f"malformed fingerprint {value!r}")
    algorithm = m.group(1).lower()
    factory = FINGERPRINT_HASHES.get(algorithm)
    if factory is None:
        raise InvalidFingerprint(f"unsupported fingerprint hash function {m.group(1)!r}")
    digest = bytes.fromhex(m.group(2).replace(":", ""))
    if len(digest) != factory().digest_size:
        raise InvalidFingerprint(f"{algorithm} fingerprint has {len(digest)} octets")
    return algorithm, digest


def verify_fingerprint(cert: x509.Certificate | bytes, expected: str | Sequence[str]) -> str:
    """Check ``cert`` against one or more SDP fingerprints (RFC 8122 §5: any may match).

    Returns the fingerprint that matched; raises :class:`FingerprintMismatch` naming the
    expected and actual values otherwise. Digests are compared in constant time.
    """
    candidates = [expected] if isinstance(expected, str) else list(expected)
    if not candidates:
        raise InvalidFingerprint("no fingerprint to verify against")
    der = certificate_der(cert)
    parsed = [parse_fingerprint(c) for c in candidates]
    for algorithm, digest in parsed:
        h = hashes.Hash(FINGERPRINT_HASHES[algorithm]())
        h.update(der)
        if hmac.compare_digest(h.finalize(), digest):
            return fingerprint(der, algorithm)
    algorithm = parsed[0][0]
    raise FingerprintMismatch(expected=", ".join(candidates), actual=fingerprint(der, algorithm))


# -- handshake signatures (RFC 5246 §7.4.3, §7.4.8) ---------------------------------------

_SCHEME_HASH: dict[SignatureScheme, Callable[[], hashes.HashAlgorithm]] = {
    SignatureScheme.ecdsa_secp256r1_sha256: hashes.SHA256,
    SignatureScheme.ecdsa_secp384r1_sha384: hashes.SHA384,
    SignatureScheme.ecdsa_secp521r1_sha512: hashes.SHA512,
    SignatureScheme.rsa_pkcs1_sha256: hashes.SHA256,
    SignatureScheme.rsa_pkcs1_sha384: hashes.SHA384,
    SignatureScheme.rsa_pkcs1_sha512: hashes.SHA512,
    SignatureScheme.rsa_pss_rsae_sha256: hashes.SHA256,
    SignatureScheme.rsa_pss_rsae_sha384: hashes.SHA384,
    SignatureScheme.rsa_pss_rsae_sha512: hashes.SHA512,
}
_ECDSA = frozenset(s for s in _SCHEME_HASH if s.name.startswith("ecdsa"))
_PSS = frozenset(s for s in _SCHEME_HASH if s.name.startswith("rsa_pss"))

# Our preference when we choose (ECDSA with the curve's own hash first).
_EC_PREFERENCE = (
    SignatureScheme.ecdsa_secp256r1_sha256,
    SignatureScheme.ecdsa_secp384r1_sha384,
    SignatureScheme.ecdsa_secp521r1_sha512,
)
_RSA_PREFERENCE = (
    SignatureScheme.rsa_pss_rsae_sha256,
    SignatureScheme.rsa_pkcs1_sha256,
    SignatureScheme.rsa_pss_rsae_sha384,
    SignatureScheme.rsa_pkcs1_sha384,
    SignatureScheme.rsa_pss_rsae_sha512,
    SignatureScheme.rsa_pkcs1_sha512,
)


def is_rsa_key(key: PrivateKey | PublicKey) -> bool:
    return isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey)


def choose_signature_scheme(key: PrivateKey, peer_schemes: Iterable[int] | None) -> SignatureScheme:
    """Pick a scheme our key can make and the peer accepts (RFC 5246 §7.4.1.4.1).

    ``peer_schemes=None`` means the peer sent no list: RFC 5246 then implies SHA-1, which we
    do not sign with; SHA-256 is what every DTLS 1.2 stack accepts in practice.
    """
    ours = _RSA_PREFERENCE if is_rsa_key(key) else _EC_PREFERENCE
    if peer_schemes is None:
        return ours[0]
    offered = set(peer_schemes)
    for scheme in ours:
        if scheme in offered:
            return scheme
    raise HandshakeFailure("no signature algorithm in common with the peer for our key type")


def sign(key: PrivateKey, scheme: SignatureScheme, data: bytes) -> bytes:
    hash_alg = _SCHEME_HASH[scheme]()
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(hash_alg))
    if scheme in _PSS:
        return key.sign(data, padding.PSS(padding.MGF1(hash_alg), hash_alg.digest_size), hash_alg)
    return key.sign(data, padding.PKCS1v15(), hash_alg)


def verify_signature(public_key: object, scheme: int, data: bytes, signature: bytes) -> None:
    """Verify a peer signature; a scheme that does not fit the key is ``illegal_parameter``-ish
    but both OpenSSL and BoringSSL answer ``decrypt_error`` for a bad signature (RFC 5246 §7.2.2)."""
    try:
        known = SignatureScheme(scheme)
    except ValueError:
        raise HandshakeFailure(f"unsupported signature scheme 0x{scheme:04x}") from None
    factory = _SCHEME_HASH.get(known)
    if factory is None:
        raise HandshakeFailure(f"signature scheme {known.name} is not accepted")
    hash_alg = factory()
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            if known not in _ECDSA:
                raise HandshakeFailure(f"{known.name} used with an EC certificate")
            public_key.verify(signature, data, ec.ECDSA(hash_alg))
        elif isinstance(public_key, rsa.RSAPublicKey):
            if known in _ECDSA:
                raise HandshakeFailure(f"{known.name} used with an RSA certificate")
            pad: padding.AsymmetricPadding = (
                padding.PSS(padding.MGF1(hash_alg), hash_alg.digest_size) if known in _PSS else padding.PKCS1v15()
            )
            public_key.verify(signature, data, pad, hash_alg)
        else:
            raise BadCertificate(f"unsupported certificate key type {type(public_key).__name__}")
    except InvalidSignature:
        raise DecryptError(f"{known.name} signature does not verify") from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise DecryptError(f"{known.name} signature is malformed: {exc}") from None


def certificate_public_key(cert: x509.Certificate) -> PublicKey:
    try:
        key = cert.public_key()
    except UnsupportedAlgorithm as exc:
        raise UnsupportedCertificate(f"certificate key algorithm not supported: {exc}") from None
    except (ValueError, TypeError) as exc:
        raise BadCertificate(f"certificate public key cannot be loaded: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise BadCertificate(f"unsupported certificate key type {type(key).__name__}")
    return key
