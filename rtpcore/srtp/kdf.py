"""SRTP key derivation: master key and salt to session keys (RFC 3711 §4.3, RFC 6188, RFC 7714 §11).

Every session key comes out of the AES-CM pseudo-random function keyed with the master key::

    r      = index DIV key_derivation_rate          (0 when the rate is 0)     §4.3.1
    key_id = label (8 bits) || r (48 bits)
    x      = key_id XOR master_salt                  (key_id aligned right)
    out    = AES-CM(master_key, IV = x * 2^16)[0 : length]                      §4.3.3

The label picks the key (§4.3.1 for SRTP, §4.3.2 for SRTCP):

    0 SRTP encryption key     1 SRTP authentication key     2 SRTP salt
    3 SRTCP encryption key    4 SRTCP authentication key    5 SRTCP salt

RFC 6188 keeps this PRF and only widens AES to 192 or 256 bits (AES_192_CM_PRF, AES_256_CM_PRF).
RFC 7714 §11 reuses it for AES-GCM with a 96-bit master salt; Errata ID 4938 settles how: the salt
is multiplied by 2^16 (two zero octets appended) to make the 112-bit PRF salt, and the session
salt is 12 octets. libsrtp does the same, which ``tests/vectors/srtp/srtp_roundtrip.json`` checks.

The key derivation rate must be 0 or a power of two from 2^0 to 2^24 (RFC 3711 §4.3.1). With a
nonzero rate the session keys change every ``rate`` packets; :mod:`rtpcore.srtp.context` keeps
them keyed by ``r``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ..errors import LocalProtocolError
from .profiles import SrtpProfile

__all__ = [
    "MAX_KEY_DERIVATION_RATE",
    "SessionKeys",
    "SrtpLabel",
    "aes_cm_prf",
    "check_key_derivation_rate",
    "check_master_key",
    "derive_session_key",
    "derive_srtcp_keys",
    "derive_srtp_keys",
    "prf_input",
]

PRF_SALT_LEN = 14
"""Octets of the salt the AES-CM PRF works on (112 bits, RFC 3711 §4.3.1)."""

MAX_KEY_DERIVATION_RATE = 1 << 24
"""Largest allowed key_derivation_rate (RFC 3711 §4.3.1)."""


class SrtpLabel(enum.IntEnum):
    """Key derivation labels (RFC 3711 §4.3.1 and §4.3.2)."""

    SRTP_ENCRYPTION = 0x00
    SRTP_AUTHENTICATION = 0x01
    SRTP_SALT = 0x02
    SRTCP_ENCRYPTION = 0x03
    SRTCP_AUTHENTICATION = 0x04
    SRTCP_SALT = 0x05


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionKeys:
    """Session keys for one direction of SRTP or SRTCP (redacted in ``repr``)."""

    cipher_key: bytes
    """k_e: AES key for the keystream or for GCM."""
    cipher_salt: bytes
    """k_s: 14 octets for AES-CM, 12 for AES-GCM."""
    auth_key: bytes
    """k_a: HMAC-SHA1 key (20 octets), empty for AEAD profiles."""

    def __repr__(self) -> str:
        return (
            f"SessionKeys(cipher_key=<{len(self.cipher_key)} B>, cipher_salt=<{len(self.cipher_salt)} B>, "
            + (f"auth_key=<{len(self.auth_key)} B>)")
        )


def check_key_derivation_rate(kdr: int) -> int:
    """Validate a key derivation rate and return log2 of it (0 for rate 0 or 1)."""
    if kdr < 0 or kdr > MAX_KEY_DERIVATION_RATE or (kdr & (kdr - 1)) != 0:
        raise LocalProtocolError(f"key derivation rate must be 0 or a power of 2 up to 2^24, got {kdr}")
    return kdr.bit_length() - 1 if kdr else 0


def check_master_key(profile: SrtpProfile, master_key: bytes, master_salt: bytes) -> None:
    """Raise :class:`LocalProtocolError` unless key and salt have the profile's lengths."""
    if len(master_key) != profile.master_key_len:
        raise LocalProtocolError(
            f"{profile.name} needs a {profile.master_key_len}-octet master key, got {len(master_key)}"
        )
    if len(master_salt) != profile.master_salt_len:
        raise LocalProtocolError(
            f"{profile.name} needs a {profile.master_salt_len}-octet master salt, got {len(master_salt)}"
        )


def prf_input(master_salt: bytes, label: int, r: int = 0) -> bytes:
    """x = (label || r) XOR master_salt, 14 octets (RFC 3711 §4.3.1).

    A 12-octet (AES-GCM) master salt is first multiplied by 2^16 (RFC 7714 Errata ID 4938).
    """
    if len(master_salt) == 12:
        master_salt += b"\x00\x00"
    if len(master_salt) != PRF_SALT_LEN:
        raise LocalProtocolError(f"master salt must be 12 or 14 octets, got {len(master_salt)}")
    if not 0 <= label <= 0xFF or not 0 <= r < 1 << 48:
        raise LocalProtocolError("label is 8 bits and r is 48 bits")
    key_id = (label << 48) | r
    return (int.from_bytes(master_salt, "big") ^ key_id).to_bytes(PRF_SALT_LEN, "big")


def aes_cm_prf(master_key: bytes, x: bytes, length: int) -> bytes:
    """AES-CM keystream with IV = x * 2^16, truncated to ``length`` octets (RFC 3711 §4.3.3).

    ``master_key`` of 16, 24 or 32 octets gives AES_128_CM_PRF, AES_192_CM_PRF or
    AES_256_CM_PRF (RFC 6188 §5.1).
    """
    if len(master_key) not in (16, 24, 32):
        raise LocalProtocolError(f"AES key must be 16, 24 or 32 octets, got {len(master_key)}")
    if len(x) != PRF_SALT_LEN:
        raise LocalProtocolError(f"PRF input must be {PRF_SALT_LEN} octets, got {len(x)}")
    if length < 0:
        raise LocalProtocolError("negative key length")
    encryptor = Cipher(algorithms.AES(master_key), modes.CTR(x + b"\x00\x00")).encryptor()
    return encryptor.update(bytes(length)) + encryptor.finalize()


def derive_session_key(
    master_key: bytes, master_salt: bytes, label: int, length: int, *, index: int = 0, kdr: int = 0
) -> bytes:
    """One session key: ``length`` octets for ``label`` at packet ``index`` (RFC 3711 §4.3.1).

    ``index`` is the 48-bit SRTP packet index or the 31-bit SRTCP index.
    """
    shift = check_key_derivation_rate(kdr)
    r = index >> shift if kdr else 0
    return aes_cm_prf(master_key, prf_input(master_salt, label, r), length)


def _derive(
    profile: SrtpProfile,
    master_key: bytes,
    master_salt: bytes,
    labels: tuple[int, int, int],
    index: int,
    kdr: int,
) -> SessionKeys:
    check_master_key(profile, master_key, master_salt)
    enc, auth, salt = labels
    return SessionKeys(
        cipher_key=derive_session_key(
            master_key, master_salt, enc, profile.master_key_len, index=index, kdr=kdr
        ),
        cipher_salt=derive_session_key(
            master_key, master_salt, salt, profile.master_salt_len, index=index, kdr=kdr
        ),
        auth_key=(
            derive_session_key(master_key, master_salt, auth, profile.auth_key_len, index=index, kdr=kdr)
            if profile.auth_key_len
            else b""
        ),
    )


def derive_srtp_keys(
    profile: SrtpProfile, master_key: bytes, master_salt: bytes, *, index: int = 0, kdr: int = 0
) -> SessionKeys:
    """SRTP session keys (labels 0, 1, 2) for the packet ``index``."""
    labels = (SrtpLabel.SRTP_ENCRYPTION, SrtpLabel.SRTP_AUTHENTICATION, SrtpLabel.SRTP_SALT)
    return _derive(profile, master_key, master_salt, labels, index, kdr)


def derive_srtcp_keys(
    profile: SrtpProfile, master_key: bytes, master_salt: bytes, *, index: int = 0, kdr: int = 0
) -> SessionKeys:
    """SRTCP session keys (labels 3, 4, 5) for the SRTCP ``index``."""
    labels = (SrtpLabel.SRTCP_ENCRYPTION, SrtpLabel.SRTCP_AUTHENTICATION, SrtpLabel.SRTCP_SALT)
    return _derive(profile, master_key, master_salt, labels, index, kdr)
