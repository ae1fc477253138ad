"""SRTP and SRTCP for rtpcore: profiles, key derivation, packet protection, SDES keying.

* :mod:`.profiles`: protection profiles (RFC 5764 §4.1.2, RFC 7714 §14, RFC 6188, RFC 4568).
* :mod:`.kdf`: session key derivation (RFC 3711 §4.3, RFC 6188 §5, RFC 7714 §11 + Errata 4938).
* :mod:`.context`: :class:`SrtpSession`, protect/unprotect with ROC, replay window, SRTCP index.
* :mod:`.sdes`: ``a=crypto`` parsing, formatting and generation (RFC 4568).
"""

from __future__ import annotations

from .context import DEFAULT_REPLAY_WINDOW, ReplayWindow, SrtpSession
from .kdf import SessionKeys, SrtpLabel, derive_srtcp_keys, derive_srtp_keys
from .profiles import (
    AEAD_AES_128_GCM,
    AEAD_AES_256_GCM,
    AES_192_CM_HMAC_SHA1_32,
    AES_192_CM_HMAC_SHA1_80,
    AES_256_CM_HMAC_SHA1_32,
    AES_256_CM_HMAC_SHA1_80,
    AES_CM_128_HMAC_SHA1_32,
    AES_CM_128_HMAC_SHA1_80,
    DEFAULT_DTLS_SRTP_PROFILES,
    PROFILES,
    SRTP_AEAD_AES_128_GCM,
    SRTP_AEAD_AES_256_GCM,
    SRTP_AES128_CM_HMAC_SHA1_32,
    SRTP_AES128_CM_HMAC_SHA1_80,
    CipherKind,
    DtlsSrtpProfileId,
    SrtpProfile,
    profile_by_dtls_id,
    profile_by_name,
    profile_by_sdes_name,
)
from .sdes import CryptoAttribute, format_crypto_attribute, generate_crypto_attribute, parse_crypto_attribute

__all__ = [
    "AEAD_AES_128_GCM",
    "AEAD_AES_256_GCM",
    "AES_192_CM_HMAC_SHA1_32",
    "AES_192_CM_HMAC_SHA1_80",
    "AES_256_CM_HMAC_SHA1_32",
    "AES_256_CM_HMAC_SHA1_80",
    "AES_CM_128_HMAC_SHA1_32",
    "AES_CM_128_HMAC_SHA1_80",
    "DEFAULT_DTLS_SRTP_PROFILES",
    "DEFAULT_REPLAY_WINDOW",
    "PROFILES",
    "SRTP_AEAD_AES_128_GCM",
    "SRTP_AEAD_AES_256_GCM",
    "SRTP_AES128_CM_HMAC_SHA1_32",
    "SRTP_AES128_CM_HMAC_SHA1_80",
    "CipherKind",
    "CryptoAttribute",
    "DtlsSrtpProfileId",
    "ReplayWindow",
    "SessionKeys",
    "SrtpLabel",
    "SrtpProfile",
    "SrtpSession",
    "derive_srtcp_keys",
    "derive_srtp_keys",
    "format_crypto_attribute",
    "generate_crypto_attribute",
    "parse_crypto_attribute",
    "profile_by_dtls_id",
    "profile_by_name",
    "profile_by_sdes_name",
]
