"""SRTP protection profiles: one table for DTLS-SRTP IDs and SDES crypto-suite names.

A profile fixes everything the packet transform needs: the cipher (AES counter mode with
HMAC-SHA1, or AES-GCM), the master key and salt lengths the key exchange must deliver, and the
authentication tag lengths for SRTP and SRTCP.

Sources:

* RFC 5764 §4.1.2: DTLS-SRTP profiles ``SRTP_AES128_CM_HMAC_SHA1_80`` (0x0001) and ``_32``
  (0x0002). Both use an 80-bit SRTCP tag; the ``_32`` profile shortens only the SRTP tag.
* RFC 7714 §14.1 (SDES names) and §14.2 (DTLS-SRTP IDs 0x0007, 0x0008): AEAD_AES_128_GCM and
  AEAD_AES_256_GCM, 12-octet salt, 16-octet tag for SRTP and SRTCP.
* RFC 4568 §6.2: SDES suites ``AES_CM_128_HMAC_SHA1_80`` / ``_32``.
* RFC 6188 §3 and §6: ``AES_192_CM_HMAC_SHA1_80/_32`` and ``AES_256_CM_HMAC_SHA1_80/_32``
  for SDES. RFC 6188 registers no DTLS-SRTP ID for them, so ``dtls_id`` is ``None``.

The NULL-cipher profiles (0x0005, 0x0006) have code points in :class:`DtlsSrtpProfileId` so a
peer's ``use_srtp`` list can be read, but no :class:`SrtpProfile`: this stack never sends
unencrypted media.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..errors import SrtpError

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
    "PROFILES",
    "SRTP_AEAD_AES_128_GCM",
    "SRTP_AEAD_AES_256_GCM",
    "SRTP_AES128_CM_HMAC_SHA1_32",
    "SRTP_AES128_CM_HMAC_SHA1_80",
    "CipherKind",
    "DtlsSrtpProfileId",
    "SrtpProfile",
    "profile_by_dtls_id",
    "profile_by_name",
    "profile_by_sdes_name",
]


class DtlsSrtpProfileId(enum.IntEnum):
    """``SRTPProtectionProfile`` code points of the ``use_srtp`` extension."""

    SRTP_AES128_CM_HMAC_SHA1_80 = 0x0001  # RFC 5764 §4.1.2
    SRTP_AES128_CM_HMAC_SHA1_32 = 0x0002  # RFC 5764 §4.1.2
    SRTP_NULL_HMAC_SHA1_80 = 0x0005  # RFC 5764 §4.1.2 (no confidentiality; not supported)
    SRTP_NULL_HMAC_SHA1_32 = 0x0006  # RFC 5764 §4.1.2 (no confidentiality; not supported)
    SRTP_AEAD_AES_128_GCM = 0x0007  # RFC 7714 §14.2
    SRTP_AEAD_AES_256_GCM = 0x0008  # RFC 7714 §14.2


class CipherKind(enum.Enum):
    """Which packet transform a profile uses."""

    AES_CM_HMAC_SHA1 = "AES-CM + HMAC-SHA1"  # RFC 3711 §4.1.1 and §4.2.1, RFC 6188
    AES_GCM = "AES-GCM AEAD"  # RFC 7714 §8 and §9


@dataclass(frozen=True, slots=True, kw_only=True)
class SrtpProfile:
    """One SRTP protection profile. All lengths are in octets."""

    name: str
    """Canonical name: the DTLS-SRTP name where one exists, else the SDES suite name."""
    sdes_name: str
    """RFC 4568 ``a=crypto`` crypto-suite name."""
    dtls_id: DtlsSrtpProfileId | None
    """DTLS-SRTP ``use_srtp`` code point, ``None`` when the profile is SDES-only."""
    cipher: CipherKind
    """Packet transform."""
    master_key_len: int
    """Master key length (also the session encryption key length)."""
    master_salt_len: int
    """Master salt length: 14 for AES-CM, 12 for AES-GCM."""
    srtp_auth_tag_len: int
    """SRTP authentication tag length (the GCM tag for AEAD profiles)."""
    srtcp_auth_tag_len: int
    """SRTCP authentication tag length (80 bits even for the ``_32`` profiles)."""
    auth_key_len: int
    """HMAC-SHA1 session authentication key length (n_a = 160 bits), 0 for AEAD."""
    rfc: str
    """Where the profile is defined."""

    @property
    def is_aead(self) -> bool:
        return self.cipher is CipherKind.AES_GCM

    @property
    def keying_material_len(self) -> int:
        """Octets a DTLS-SRTP exporter must produce: two keys and two salts (RFC 5764 §4.2)."""
        return 2 * (self.master_key_len + self.master_salt_len)


SRTP_AES128_CM_HMAC_SHA1_80 = SrtpProfile(
    name="SRTP_AES128_CM_HMAC_SHA1_80",
    sdes_name="AES_CM_128_HMAC_SHA1_80",
    dtls_id=DtlsSrtpProfileId.SRTP_AES128_CM_HMAC_SHA1_80,
    cipher=CipherKind.AES_CM_HMAC_SHA1,
    master_key_len=16,
    master_salt_len=14,
    srtp_auth_tag_len=10,
    srtcp_auth_tag_len=10,
    auth_key_len=20,
    rfc="RFC 5764 §4.1.2, RFC 4568 §6.2.1",
)
SRTP_AES128_CM_HMAC_SHA1_32 = SrtpProfile(
    name="SRTP_AES128_CM_HMAC_SHA1_32",
    sdes_name="AES_CM_128_HMAC_SHA1_32",
    dtls_id=DtlsSrtpProfileId.SRTP_AES128_CM_HMAC_SHA1_32,
    cipher=CipherKind.AES_CM_HMAC_SHA1,
    master_key_len=16,
    master_salt_len=14,
    srtp_auth_tag_len=4,
    srtcp_auth_tag_len=10,
    auth_key_len=20,
    rfc="RFC 5764 §4.1.2, RFC 4568 §6.2.2",
)
SRTP_AEAD_AES_128_GCM = SrtpProfile(
    name="SRTP_AEAD_AES_128_GCM",
    sdes_name="AEAD_AES_128_GCM",
    dtls_id=DtlsSrtpProfileId.SRTP_AEAD_AES_128_GCM,
    cipher=CipherKind.AES_GCM,
    master_key_len=16,
    master_salt_len=12,
    srtp_auth_tag_len=16,
    srtcp_auth_tag_len=16,
    auth_key_len=0,
    rfc="RFC 7714 §14",
)
SRTP_AEAD_AES_256_GCM = SrtpProfile(
    name="SRTP_AEAD_AES_256_GCM",
    sdes_name="AEAD_AES_256_GCM",
    dtls_id=DtlsSrtpProfileId.SRTP_AEAD_AES_256_GCM,
    cipher=CipherKind.AES_GCM,
    master_key_len=32,
    master_salt_len=12,
    srtp_auth_tag_len=16,
    srtcp_auth_tag_len=16,
    auth_key_len=0,
    rfc="RFC 7714 §14",
)
AES_192_CM_HMAC_SHA1_80 = SrtpProfile(
    name="AES_192_CM_HMAC_SHA1_80",
    sdes_name="AES_192_CM_HMAC_SHA1_80",
    dtls_id=None,
    cipher=CipherKind.AES_CM_HMAC_SHA1,
    master_key_len=24,
    master_salt_len=14,
    srtp_auth_tag_len=10,
    srtcp_auth_tag_len=10,
    auth_key_len=20,
    rfc="RFC 6188 §6",
)
AES_192_CM_HMAC_SHA1_32 = SrtpProfile(
    name="AES_192_CM_HMAC_SHA1_32",
    sdes_name="AES_192_CM_HMAC_SHA1_32",
    dtls_id=None,
    cipher=CipherKind.AES_CM_HMAC_SHA1,
    master_key_len=24,
    master_salt_len=14,
    srtp_auth_tag_len=4,
    srtcp_auth_tag_len=10,
    auth_key_len=20,
    rfc="RFC 6188 §6",
)
AES_256_CM_HMAC_SHA1_80 = SrtpProfile(
    name="AES_256_CM_HMAC_SHA1_80",
    sdes_name="AES_256_CM_HMAC_SHA1_80",
    dtls_id=None,
    cipher=CipherKind.AES_CM_HMAC_SHA1,
    master_key_len=32,
    master_salt_len=14,
    srtp_auth_tag_len=10,
    srtcp_auth_tag_len=10,
    auth_key_len=20,
    rfc="RFC 6188 §6",
)
AES_256_CM_HMAC_SHA1_32 = SrtpProfile(
    name="AES_256_CM_HMAC_SHA1_32",
    sdes_name="AES_256_CM_HMAC_SHA1_32",
    dtls_id=None,
    cipher=CipherKind.AES_CM_HMAC_SHA1,
    master_key_len=32,
    master_salt_len=14,
    srtp_auth_tag_len=4,
    srtcp_auth_tag_len=10,
    auth_key_len=20,
    rfc="RFC 6188 §6",
)

# The same profiles under their RFC 4568 / RFC 7714 §14.1 SDES crypto-suite names.
AES_CM_128_HMAC_SHA1_80 = SRTP_AES128_CM_HMAC_SHA1_80
AES_CM_128_HMAC_SHA1_32 = SRTP_AES128_CM_HMAC_SHA1_32
AEAD_AES_128_GCM = SRTP_AEAD_AES_128_GCM
AEAD_AES_256_GCM = SRTP_AEAD_AES_256_GCM

PROFILES: tuple[SrtpProfile, ...] = (
    SRTP_AES128_CM_HMAC_SHA1_80,
    SRTP_AES128_CM_HMAC_SHA1_32,
    SRTP_AEAD_AES_128_GCM,
    SRTP_AEAD_AES_256_GCM,
    AES_192_CM_HMAC_SHA1_80,
    AES_192_CM_HMAC_SHA1_32,
    AES_256_CM_HMAC_SHA1_80,
    AES_256_CM_HMAC_SHA1_32,
)
"""Every supported profile."""

DEFAULT_DTLS_SRTP_PROFILES: tuple[SrtpProfile, ...] = (
    SRTP_AEAD_AES_128_GCM,
    SRTP_AEAD_AES_256_GCM,
    SRTP_AES128_CM_HMAC_SHA1_80,
    SRTP_AES128_CM_HMAC_SHA1_32,
)
"""What to offer in ``use_srtp``, most preferred first: AEAD first (one pass, 128-bit tag), then
the mandatory-to-implement SRTP_AES128_CM_HMAC_SHA1_80 (RFC 5764 §4.1.2), the 32-bit-tag
variant last."""

_BY_DTLS_ID = {p.dtls_id: p for p in PROFILES if p.dtls_id is not None}
_BY_SDES_NAME = {p.sdes_name: p for p in PROFILES}
_BY_NAME = {p.name: p for p in PROFILES} | _BY_SDES_NAME


def profile_by_dtls_id(profile_id: int) -> SrtpProfile:
    """The profile for a ``use_srtp`` code point; :class:`SrtpError` if unknown or unsupported."""
    try:
        return _BY_DTLS_ID[DtlsSrtpProfileId(profile_id)]
    except (KeyError, ValueError):
        raise SrtpError(f"unsupported DTLS-SRTP protection profile 0x{profile_id:04x}") from None


def profile_by_sdes_name(name: str) -> SrtpProfile:
    """The profile for an RFC 4568 crypto-suite name (case-sensitive, as the grammar says)."""
    try:
        return _BY_SDES_NAME[name]
    except KeyError:
        raise SrtpError(f"unsupported SDES crypto-suite {name!r}") from None


def profile_by_name(name: str) -> SrtpProfile:
    """The profile for its canonical name or its SDES crypto-suite name."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise SrtpError(f"unknown SRTP protection profile {name!r}") from None
