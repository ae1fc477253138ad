"""SDES keying: the SDP ``a=crypto`` attribute (RFC 4568), parsed, formatted and generated.

Grammar of the attribute value (RFC 4568 §9.1, §9.2), handled here for the ``inline`` method::

    <tag> 1*WSP <crypto-suite> 1*WSP <key-params> *(1*WSP <session-param>)
    tag         = 1*9DIGIT
    key-params  = "inline:" base64(master key || master salt) ["|" lifetime] ["|" mki-value ":" mki-length]
    lifetime    = ["2^"] 1*DIGIT                  ; packets, §6.1
    mki-length  = 1..128 octets                   ; the MKI is sent in every packet (RFC 3711 §3.1)
    session-param: KDR=n (rate 2^n), UNENCRYPTED_SRTP, UNENCRYPTED_SRTCP, UNAUTHENTICATED_SRTP,
                   WSH=n (window size hint), FEC_ORDER=..., FEC_KEY=...   (§6.3)

Example (baresip)::

    1 AES_CM_128_HMAC_SHA1_80 inline:cvq0IxXP4tpTeZySMHn12/pFXJVuIGrrNV14XqaC

Crypto-suites are the SDES names in :mod:`rtpcore.srtp.profiles` (RFC 4568, RFC 6188, RFC 7714
§14.1). A value that does not parse, names an unknown suite, or carries a key of the wrong size
raises :class:`~rtpcore.errors.SrtpError`; an answerer skips that line and looks at the next
(§7.1.1). Several keys in one attribute (``inline:...;inline:...``) are refused the same way:
:class:`~rtpcore.srtp.context.SrtpSession` holds one master key.

Keys never appear in ``repr`` or logs.
"""

from __future__ import annotations

import binascii
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import LocalProtocolError, SrtpError
from .context import DEFAULT_REPLAY_WINDOW, MAX_REPLAY_WINDOW, SrtpSession
from .kdf import MAX_KEY_DERIVATION_RATE
from .profiles import SrtpProfile, profile_by_sdes_name

__all__ = [
    "CryptoAttribute",
    "format_crypto_attribute",
    "generate_crypto_attribute",
    "parse_crypto_attribute",
]

_MAX_TAG = 999_999_999  # 1*9DIGIT
_MAX_MKI_LEN = 128
_ATTRIBUTE = re.compile(r"([0-9]{1,9})[ \t]+([A-Za-z0-9_]+)[ \t]+(\S+)((?:[ \t]+\S+)*)[ \t]*")
_LIFETIME = re.compile(r"(2\^)?([0-9]{1,20})")
_MKI = re.compile(r"([0-9]{1,400}):([0-9]{1,3})")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_KDR = re.compile(r"KDR=([0-9]{1,2})")
_WSH = re.compile(r"WSH=([0-9]{1,9})")


@dataclass(frozen=True, slots=True, kw_only=True)
class CryptoAttribute:
    """One ``a=crypto`` line: everything needed to build an :class:`SrtpSession`."""

    tag: int
    """Identifies the line in the offer; the answer echoes it (§5.1)."""
    profile: SrtpProfile
    """Crypto-suite."""
    key: bytes = field(repr=False)
    """Master key."""
    salt: bytes = field(repr=False)
    """Master salt."""
    lifetime: int | None = None
    """Master key lifetime in packets, ``None`` when not given (§6.1)."""
    mki: bytes = b""
    """Master key identifier as sent in packets (mki-value in mki-length octets), or empty."""
    session_params: tuple[str, ...] = ()
    """Session parameters in order, as written (§6.3)."""

    def __post_init__(self) -> None:
        if not 0 <= self.tag <= _MAX_TAG:
            raise LocalProtocolError(f"crypto tag {self.tag} is not 1 to 9 digits")
        if len(self.key) != self.profile.master_key_len or len(self.salt) != self.profile.master_salt_len:
            raise LocalProtocolError(
                f"{self.profile.sdes_name} needs a {self.profile.master_key_len}-octet key and a "
                f"{self.profile.master_salt_len}-octet salt"
            )
        if self.lifetime is not None and self.lifetime <= 0:
            raise LocalProtocolError("key lifetime must be positive")
        if len(self.mki) > _MAX_MKI_LEN:
            raise LocalProtocolError("MKI is 1 to 128 octets")
        for param in self.session_params:
            if not param or any(c in param for c in " \t\r\n"):
                raise LocalProtocolError(f"session parameter {param!r} is empty or contains white space")

    # -- session parameters (§6.3) -------------------------------------------------------
    @property
    def kdr(self) -> int:
        """Key derivation rate in packets (``KDR=n`` means 2^n), 0 when not given."""
        for param in self.session_params:
            m = _KDR.fullmatch(param)
            if m:
                return 1 << int(m.group(1))
        return 0

    @property
    def unencrypted_srtp(self) -> bool:
        return "UNENCRYPTED_SRTP" in self.session_params

    @property
    def unencrypted_srtcp(self) -> bool:
        return "UNENCRYPTED_SRTCP" in self.session_params

    @property
    def unauthenticated_srtp(self) -> bool:
        return "UNAUTHENTICATED_SRTP" in self.session_params

    @property
    def window_size_hint(self) -> int | None:
        """``WSH=n``: the replay window the sender asks for (at least 64), if given."""
        for param in self.session_params:
            m = _WSH.fullmatch(param)
            if m:
                return int(m.group(1))
        return None

    def new_session(self, *, replay_window: int | None = None) -> SrtpSession:
        """An :class:`SrtpSession` for this key with the line's KDR, MKI and UNENCRYPTED_* flags.

        ``replay_window`` defaults to the WSH hint (clamped to 64..32768), else 64.
        UNAUTHENTICATED_SRTP is refused with :class:`SrtpError`: this stack never accepts
        unauthenticated media.
        """
        if self.unauthenticated_srtp:
            raise SrtpError("UNAUTHENTICATED_SRTP is not supported")
        if replay_window is None:
            hint = self.window_size_hint
            replay_window = DEFAULT_REPLAY_WINDOW if hint is None else min(max(hint, 64), MAX_REPLAY_WINDOW)
        return SrtpSession(
            self.profile,
            self.key,
            self.salt,
            replay_window=replay_window,
            kdr=self.kdr,
            mki=self.mki,
            encrypt_rtp=not self.unencrypted_srtp,
            encrypt_rtcp=not self.unencrypted_srtcp,
        )


def _decode_key_salt(text: str) -> bytes:
    if not _BASE64.fullmatch(text):
        raise SrtpError("inline key is not base64")
    try:
        data = binascii.a2b_base64(text + "=" * (-len(text) % 4), strict_mode=True)
    except (binascii.Error, ValueError):
        raise SrtpError("inline key is not valid base64") from None
    canonical = binascii.b2a_base64(data, newline=False).decode("ascii")
    if text != canonical and text != canonical.rstrip("="):  # some peers drop the padding
        raise SrtpError("inline key is not canonical base64")
    return data


def _parse_session_param(param: str) -> str:
    if param.startswith("KDR="):
        m = _KDR.fullmatch(param)
        if not m or int(m.group(1)) > MAX_KEY_DERIVATION_RATE.bit_length() - 1:
            raise SrtpError(f"bad KDR session parameter {param!r} (0..24)")
    elif param.startswith("WSH="):
        m = _WSH.fullmatch(param)
        if not m or int(m.group(1)) < 64:
            raise SrtpError(f"bad WSH session parameter {param!r} (at least 64)")
    return param


def parse_crypto_attribute(value: str) -> CryptoAttribute:
    """Parse the value of an ``a=crypto`` attribute (text after ``a=crypto:``)."""
    m = _ATTRIBUTE.fullmatch(value)
    if not m:
        raise SrtpError(f"malformed crypto attribute {_redact(value)!r}")
    tag_text, suite, key_params, rest = m.groups()
    profile = profile_by_sdes_name(suite)
    if ";" in key_params:
        raise SrtpError("several master keys in one crypto attribute are not supported")
    method, sep, key_info = key_params.partition(":")
    if not sep or method.lower() != "inline":
        raise SrtpError("unsupported key method (only inline)")
    parts = key_info.split("|")
    if len(parts) > 3:
        raise SrtpError("too many '|' fields in the inline key")
    key_salt = _decode_key_salt(parts[0])
    if len(key_salt) != profile.master_key_len + profile.master_salt_len:
        raise SrtpError(
            f"{suite} needs {profile.master_key_len + profile.master_salt_len} octets of key and salt, "
            f"got {len(key_salt)}"
        )
    lifetime: int | None = None
    mki = b""
    for i, part in enumerate(parts[1:], start=1):
        if ":" in part:
            mm = _MKI.fullmatch(part)
            if not mm or mki or i != len(parts) - 1:
                raise SrtpError(f"malformed MKI {part!r}")
            mki_value, mki_len = int(mm.group(1)), int(mm.group(2))
            if not 1 <= mki_len <= _MAX_MKI_LEN or mki_value.bit_length() > 8 * mki_len:
                raise SrtpError(f"MKI {part!r}: length must be 1..128 and hold the value")
            mki = mki_value.to_bytes(mki_len, "big")
        else:
            lm = _LIFETIME.fullmatch(part)
            if not lm or lifetime is not None or i != 1:
                raise SrtpError(f"malformed key lifetime {part!r}")
            n = int(lm.group(2))
            if lm.group(1):
                if n > 64:
                    raise SrtpError(f"key lifetime {part!r} is out of range")
                n = 1 << n
            if n == 0:
                raise SrtpError("key lifetime of 0 packets")
            lifetime = n
    session_params = tuple(_parse_session_param(p) for p in rest.split())
    key_len = profile.master_key_len
    return CryptoAttribute(
        tag=int(tag_text),
        profile=profile,
        key=key_salt[:key_len],
        salt=key_salt[key_len:],
        lifetime=lifetime,
        mki=mki,
        session_params=session_params,
    )


def format_crypto_attribute(attr: CryptoAttribute) -> str:
    """The ``a=crypto`` value for ``attr``. A power-of-two lifetime is written ``2^n``."""
    key_info = binascii.b2a_base64(attr.key + attr.salt, newline=False).decode("ascii")
    if attr.lifetime is not None:
        n = attr.lifetime
        key_info += f"|2^{n.bit_length() - 1}" if n & (n - 1) == 0 else f"|{n}"
    if attr.mki:
        key_info += f"|{int.from_bytes(attr.mki, 'big')}:{len(attr.mki)}"
    return " ".join((str(attr.tag), attr.profile.sdes_name, "inline:" + key_info, *attr.session_params))


def generate_crypto_attribute(
    profile: SrtpProfile,
    *,
    tag: int = 1,
    rng: Callable[[int], bytes] = os.urandom,
    lifetime: int | None = None,
    mki: bytes = b"",
    session_params: tuple[str, ...] = (),
) -> CryptoAttribute:
    """A fresh local key for an offer or answer; ``rng`` must be cryptographically strong."""
    material = rng(profile.master_key_len + profile.master_salt_len)
    if len(material) != profile.master_key_len + profile.master_salt_len:
        raise LocalProtocolError("rng returned the wrong number of octets")
    return CryptoAttribute(
        tag=tag,
        profile=profile,
        key=material[: profile.master_key_len],
        salt=material[profile.master_key_len :],
        lifetime=lifetime,
        mki=mki,
        session_params=session_params,
    )


def _redact(value: str) -> str:
    """Hide inline key material before a value goes into an error message."""
    return re.sub(r"(?i)(inline:)[^|;\s]*", r"\1<redacted>", value[:200])
