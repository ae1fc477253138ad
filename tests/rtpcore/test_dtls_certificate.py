"""Self-signed certificates, RFC 8122 fingerprints, handshake signatures and ECDHE shares."""

from __future__ import annotations

import datetime
import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from rtpcore.dtls.alerts import (
    BadCertificate,
    DecryptError,
    DtlsAlert,
    FingerprintMismatch,
    HandshakeFailure,
    IllegalParameter,
    InvalidFingerprint,
    UnsupportedCertificate,
)
from rtpcore.dtls.certificate import (
    certificate_der,
    certificate_public_key,
    choose_signature_scheme,
    fingerprint,
    generate_certificate,
    load_der_certificate,
    parse_fingerprint,
    sign,
    verify_fingerprint,
    verify_signature,
)
from rtpcore.dtls.constants import NamedGroup, SignatureScheme
from rtpcore.dtls.keyexchange import KeyShare
from rtpcore.errors import RemoteProtocolError

NOW = 1_800_000_000.0


def counter_rng(start: int = 1):
    state = [start]

    def rng(n: int) -> bytes:
        state[0] += 1
        return state[0].to_bytes(n, "big")

    return rng


def test_generate_uses_injected_clock_and_serial() -> None:
    cert, key = generate_certificate(now=NOW, rng=lambda n: b"\xff" * n, common_name="alice")
    assert isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)
    assert cert.serial_number == (2**64 - 1) >> 1
    start = datetime.datetime.fromtimestamp(NOW, tz=datetime.UTC)
    assert cert.not_valid_before_utc == start - datetime.timedelta(days=1)
    assert cert.not_valid_after_utc == start + datetime.timedelta(days=30)
    assert cert.signature_hash_algorithm is not None and cert.signature_hash_algorithm.name == "sha256"
    assert cert.issuer == cert.subject
    cert.verify_directly_issued_by(cert)  # self-signed and valid


def test_fingerprint_sdp_form() -> None:
    cert, _ = generate_certificate(now=NOW, rng=counter_rng())
    fp = fingerprint(cert)
    digest = hashlib.sha256(certificate_der(cert)).digest()
    assert fp == "sha-256 " + ":".join(f"{b:02X}" for b in digest)
    assert parse_fingerprint(fp) == ("sha-256", digest)
    assert parse_fingerprint(fp.lower().replace("sha-256", "SHA-256")) == ("sha-256", digest)
    assert fingerprint(cert, "sha-1").startswith("sha-1 ") and len(fingerprint(cert, "sha-1")) == 6 + 59


def test_verify_fingerprint_match_and_mismatch() -> None:
    a, _ = generate_certificate(now=NOW, rng=counter_rng(1))
    b, _ = generate_certificate(now=NOW, rng=counter_rng(100))
    assert verify_fingerprint(a, fingerprint(a)) == fingerprint(a)
    # any one of several fingerprints may match (RFC 8122 §5)
    assert verify_fingerprint(certificate_der(a), [fingerprint(b), fingerprint(a, "sha-384")]) == fingerprint(a, "sha-384")
    with pytest.raises(FingerprintMismatch) as info:
        verify_fingerprint(a, fingerprint(b))
    err = info.value
    assert isinstance(err, BadCertificate) and isinstance(err, DtlsAlert) and isinstance(err, RemoteProtocolError)
    assert err.expected == fingerprint(b) and err.actual == fingerprint(a)
    assert "bad_certificate(42)" in str(err) and fingerprint(b) in str(err) and fingerprint(a) in str(err)


@pytest.mark.parametrize("bad", ["", "sha-256", "sha-256 ZZ:00", "md5 00:11", "sha-256 AB:CD", "sha-256 ABCD"])
def test_parse_fingerprint_rejects(bad: str) -> None:
    with pytest.raises(InvalidFingerprint):
        parse_fingerprint(bad)


def test_load_der_rejects_garbage() -> None:
    with pytest.raises(BadCertificate):
        load_der_certificate(b"\x30\x03\x02\x01")


@pytest.mark.parametrize("scheme", [SignatureScheme.ecdsa_secp256r1_sha256, SignatureScheme.ecdsa_secp384r1_sha384])
def test_ecdsa_sign_verify(scheme: SignatureScheme) -> None:
    _, key = generate_certificate(now=NOW, rng=counter_rng())
    sig = sign(key, scheme, b"data")
    verify_signature(key.public_key(), scheme, b"data", sig)
    with pytest.raises(DecryptError):
        verify_signature(key.public_key(), scheme, b"datA", sig)
    with pytest.raises(HandshakeFailure):
        verify_signature(key.public_key(), SignatureScheme.rsa_pkcs1_sha256, b"data", sig)
    with pytest.raises(HandshakeFailure):
        verify_signature(key.public_key(), 0x0203, b"data", sig)  # ecdsa_sha1 not accepted


@pytest.mark.parametrize("scheme", [SignatureScheme.rsa_pkcs1_sha256, SignatureScheme.rsa_pss_rsae_sha256])
def test_rsa_sign_verify(scheme: SignatureScheme) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sig = sign(key, scheme, b"payload")
    verify_signature(key.public_key(), scheme, b"payload", sig)
    with pytest.raises(DecryptError):
        verify_signature(key.public_key(), scheme, b"payload", sig[:-1] + bytes([sig[-1] ^ 1]))


def test_choose_signature_scheme() -> None:
    _, eckey = generate_certificate(now=NOW, rng=counter_rng())
    rsakey = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert choose_signature_scheme(eckey, [0x0804, 0x0403]) is SignatureScheme.ecdsa_secp256r1_sha256
    assert choose_signature_scheme(rsakey, [0x0403, 0x0401]) is SignatureScheme.rsa_pkcs1_sha256
    assert choose_signature_scheme(eckey, None) is SignatureScheme.ecdsa_secp256r1_sha256
    with pytest.raises(HandshakeFailure):
        choose_signature_scheme(eckey, [0x0401])


@pytest.mark.parametrize("group", [NamedGroup.x25519, NamedGroup.secp256r1, NamedGroup.secp384r1])
def test_key_share_agreement(group: NamedGroup) -> None:
    a, b = KeyShare(group), KeyShare(group)
    assert a.exchange(b.public_bytes) == b.exchange(a.public_bytes)
    with pytest.raises(IllegalParameter):
        a.exchange(b.public_bytes[:-1])
    if group != NamedGroup.x25519:  # every 32-octet string is an x25519 u-coordinate
        with pytest.raises(IllegalParameter):
            a.exchange(b"\x04" + b"\x00" * (len(b.public_bytes) - 1))  # not on the curve
        with pytest.raises(IllegalParameter):
            a.exchange(b"\x02" + b.public_bytes[1:33])  # compressed form is not negotiated


def test_key_share_rejects_unknown_group_and_zero_x25519() -> None:
    with pytest.raises(HandshakeFailure):
        KeyShare(0x11EC)
    with pytest.raises(IllegalParameter):
        KeyShare(NamedGroup.x25519).exchange(b"\x00" * 32)  # low-order point -> all-zero secret
    assert hashes.SHA256().digest_size == 32


def test_odd_certificates_map_to_typed_alerts() -> None:
    # regressions found by fuzz/fuzz_dtls.py: the X.509 parser's own exceptions must not leak
    der = certificate_der(generate_certificate(now=NOW, rng=counter_rng())[0])
    p256 = bytes.fromhex("06082a8648ce3d030107")
    assert p256 in der
    odd_curve = der.replace(p256, bytes.fromhex("06082a8648ce3f030107"))  # 1.2.840.10047.3.1.7
    with pytest.raises(UnsupportedCertificate):
        certificate_public_key(load_der_certificate(odd_curve))
    v3 = bytes.fromhex("a003020102")
    assert v3 in der
    with pytest.raises(BadCertificate):
        load_der_certificate(der.replace(v3, bytes.fromhex("a003020103"), 1))
