"""DTLS 1.2 code points and limits (RFC 6347, RFC 5246, RFC 8422, RFC 5764, RFC 7627).

Every wire value is an ``IntEnum`` with the RFC section that defines it. Values a peer may
send that we do not know (cipher suites, groups, extensions) are kept as plain ``int`` by
the parsers, never rejected just for being unknown.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes


class ContentType(enum.IntEnum):
    """RFC 5246 §6.2.1 record content types."""

    CHANGE_CIPHER_SPEC = 20
    ALERT = 21
    HANDSHAKE = 22
    APPLICATION_DATA = 23


class DtlsVersion(enum.IntEnum):
    """RFC 6347 §4.1: the on-the-wire version is the 1's complement of the TLS version."""

    DTLS_1_0 = 0xFEFF
    DTLS_1_2 = 0xFEFD
    DTLS_1_3 = 0xFEFC


class HandshakeType(enum.IntEnum):
    """RFC 5246 §7.4, RFC 6347 §4.3.2 (hello_verify_request), RFC 5077 §3.3 (new_session_ticket)."""

    HELLO_REQUEST = 0
    CLIENT_HELLO = 1
    SERVER_HELLO = 2
    HELLO_VERIFY_REQUEST = 3
    NEW_SESSION_TICKET = 4
    CERTIFICATE = 11
    SERVER_KEY_EXCHANGE = 12
    CERTIFICATE_REQUEST = 13
    SERVER_HELLO_DONE = 14
    CERTIFICATE_VERIFY = 15
    CLIENT_KEY_EXCHANGE = 16
    FINISHED = 20


class AlertLevel(enum.IntEnum):
    """RFC 5246 §7.2."""

    WARNING = 1
    FATAL = 2


class AlertDescription(enum.IntEnum):
    """RFC 5246 §7.2, RFC 7301 §3.2, RFC 8446 §6 (names as in the RFCs)."""

    close_notify = 0
    unexpected_message = 10
    bad_record_mac = 20
    decryption_failed = 21
    record_overflow = 22
    decompression_failure = 30
    handshake_failure = 40
    no_certificate = 41
    bad_certificate = 42
    unsupported_certificate = 43
    certificate_revoked = 44
    certificate_expired = 45
    certificate_unknown = 46
    illegal_parameter = 47
    unknown_ca = 48
    access_denied = 49
    decode_error = 50
    decrypt_error = 51
    export_restriction = 60
    protocol_version = 70
    insufficient_security = 71
    internal_error = 80
    inappropriate_fallback = 86
    user_canceled = 90
    no_renegotiation = 100
    unsupported_extension = 110
    certificate_unobtainable = 111
    unrecognized_name = 112
    bad_certificate_status_response = 113
    bad_certificate_hash_value = 114
    unknown_psk_identity = 115
    no_application_protocol = 120


class ExtensionType(enum.IntEnum):
    """IANA TLS ExtensionType registry (the ones DTLS-SRTP peers send)."""

    server_name = 0
    supported_groups = 10  # RFC 8422 §5.1.1 (was elliptic_curves)
    ec_point_formats = 11  # RFC 8422 §5.1.2
    signature_algorithms = 13  # RFC 5246 §7.4.1.4.1
    use_srtp = 14  # RFC 5764 §4.1.1
    encrypt_then_mac = 22  # RFC 7366
    extended_master_secret = 23  # RFC 7627 §5.1
    session_ticket = 35  # RFC 5077
    supported_versions = 43  # RFC 8446 §4.2.1
    psk_key_exchange_modes = 45
    key_share = 51
    renegotiation_info = 0xFF01  # RFC 5746 §3.2


class CipherSuite(enum.IntEnum):
    """The suites this implementation negotiates (RFC 5289 §3), plus the SCSV (RFC 5746 §3.3)."""

    TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 = 0xC02B
    TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 = 0xC02C
    TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 = 0xC02F
    TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 = 0xC030
    TLS_EMPTY_RENEGOTIATION_INFO_SCSV = 0x00FF


@dataclass(frozen=True, slots=True)
class SuiteParams:
    """What a cipher suite fixes: AEAD key length, PRF hash, and the server key type."""

    key_length: int
    fixed_iv_length: int
    prf_hash: type[hashes.HashAlgorithm]
    signed_by_rsa: bool


SUITE_PARAMS: dict[CipherSuite, SuiteParams] = {
    CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: SuiteParams(16, 4, hashes.SHA256, False),
    CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: SuiteParams(32, 4, hashes.SHA384, False),
    CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: SuiteParams(16, 4, hashes.SHA256, True),
    CipherSuite.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: SuiteParams(32, 4, hashes.SHA384, True),
}

DEFAULT_CIPHER_SUITES: tuple[CipherSuite, ...] = (
    CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    CipherSuite.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
)


class NamedGroup(enum.IntEnum):
    """RFC 8422 §5.1.1 / RFC 7748."""

    secp256r1 = 23
    secp384r1 = 24
    secp521r1 = 25
    x25519 = 29
    x448 = 30


SUPPORTED_GROUPS: tuple[NamedGroup, ...] = (NamedGroup.x25519, NamedGroup.secp256r1, NamedGroup.secp384r1)


class ECCurveType(enum.IntEnum):
    """RFC 8422 §5.4: only named_curve is allowed."""

    named_curve = 3


class ECPointFormat(enum.IntEnum):
    """RFC 8422 §5.1.2."""

    uncompressed = 0


class SignatureScheme(enum.IntEnum):
    """RFC 5246 §7.4.1.4.1 (hash, signature) pairs, named as in RFC 8446 §4.2.3."""

    rsa_pkcs1_sha1 = 0x0201
    ecdsa_sha1 = 0x0203
    rsa_pkcs1_sha256 = 0x0401
    ecdsa_secp256r1_sha256 = 0x0403
    rsa_pkcs1_sha384 = 0x0501
    ecdsa_secp384r1_sha384 = 0x0503
    rsa_pkcs1_sha512 = 0x0601
    ecdsa_secp521r1_sha512 = 0x0603
    rsa_pss_rsae_sha256 = 0x0804
    rsa_pss_rsae_sha384 = 0x0805
    rsa_pss_rsae_sha512 = 0x0806
    ed25519 = 0x0807


SUPPORTED_SIGNATURE_SCHEMES: tuple[SignatureScheme, ...] = (
    SignatureScheme.ecdsa_secp256r1_sha256,
    SignatureScheme.ecdsa_secp384r1_sha384,
    SignatureScheme.ecdsa_secp521r1_sha512,
    SignatureScheme.rsa_pss_rsae_sha256,
    SignatureScheme.rsa_pss_rsae_sha384,
    SignatureScheme.rsa_pss_rsae_sha512,
    SignatureScheme.rsa_pkcs1_sha256,
    SignatureScheme.rsa_pkcs1_sha384,
    SignatureScheme.rsa_pkcs1_sha512,
)


class ClientCertificateType(enum.IntEnum):
    """RFC 5246 §7.4.4, RFC 8422 §5.5."""

    rsa_sign = 1
    ecdsa_sign = 64


class SrtpProfile(enum.IntEnum):
    """RFC 5764 §4.1.2 and RFC 7714 §14.2 SRTPProtectionProfile values."""

    SRTP_AES128_CM_HMAC_SHA1_80 = 0x0001
    SRTP_AES128_CM_HMAC_SHA1_32 = 0x0002
    SRTP_AEAD_AES_128_GCM = 0x0007
    SRTP_AEAD_AES_256_GCM = 0x0008

    @property
    def master_key_length(self) -> int:
        return _SRTP_LENGTHS[self][0]

    @property
    def master_salt_length(self) -> int:
        return _SRTP_LENGTHS[self][1]

    @property
    def keying_material_length(self) -> int:
        """RFC 5764 §4.2: 2 * (key + salt) octets from the exporter."""
        return 2 * (self.master_key_length + self.master_salt_length)


_SRTP_LENGTHS: dict[SrtpProfile, tuple[int, int]] = {
    SrtpProfile.SRTP_AES128_CM_HMAC_SHA1_80: (16, 14),
    SrtpProfile.SRTP_AES128_CM_HMAC_SHA1_32: (16, 14),
    SrtpProfile.SRTP_AEAD_AES_128_GCM: (16, 12),
    SrtpProfile.SRTP_AEAD_AES_256_GCM: (32, 12),
}

DEFAULT_SRTP_PROFILES: tuple[SrtpProfile, ...] = (
    SrtpProfile.SRTP_AEAD_AES_128_GCM,
    SrtpProfile.SRTP_AES128_CM_HMAC_SHA1_80,
    SrtpProfile.SRTP_AEAD_AES_256_GCM,
    SrtpProfile.SRTP_AES128_CM_HMAC_SHA1_32,
)

SRTP_EXPORTER_LABEL = b"EXTRACTOR-dtls_srtp"  # RFC 5764 §4.2

RECORD_HEADER_SIZE = 13  # RFC 6347 §4.1: type(1) version(2) epoch(2) sequence_number(6) length(2)
HANDSHAKE_HEADER_SIZE = 12  # RFC 6347 §4.2.2: type(1) length(3) message_seq(2) offset(3) frag_len(3)
RANDOM_SIZE = 32
VERIFY_DATA_LENGTH = 12  # RFC 5246 §7.4.9
AEAD_EXPLICIT_NONCE_SIZE = 8  # RFC 5288 §3
AEAD_TAG_SIZE = 16
MAX_PLAINTEXT = 1 << 14  # RFC 5246 §6.2.1
MAX_CIPHERTEXT = MAX_PLAINTEXT + 2048  # RFC 5246 §6.2.3
MAX_SEQUENCE = (1 << 48) - 1
MAX_COOKIE = 255  # RFC 6347 §4.2.1 (opaque cookie<0..2^8-1>)


@dataclass(frozen=True, slots=True)
class DtlsTimers:
    """Retransmission timer (RFC 6347 §4.2.4.1) and reassembly limits. Tests may shrink them."""

    initial: float = 1.0
    """Initial retransmission timeout in seconds (RFC 6347 §4.2.4.1 recommends 1 s)."""
    maximum: float = 60.0
    """Cap for the doubling timeout (RFC 6347 §4.2.4.1: at least 60 s, RFC 6298)."""
    max_retransmissions: int = 7
    """Retransmissions of one flight before the handshake fails with a timeout."""
    max_handshake_message: int = 32768
    """Largest handshake message accepted for reassembly (a certificate chain fits)."""
    max_messages_ahead: int = 16
    """How many message_seq values beyond the next expected one are buffered."""
    max_buffered_records: int = 32
    """Next-epoch records (or not-yet-verified application data) held back at most."""

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError("need 0 < initial <= maximum")
        if self.max_retransmissions < 0:
            raise ValueError("max_retransmissions must be >= 0")
