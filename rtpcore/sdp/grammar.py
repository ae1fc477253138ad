"""Lexical checks shared by the SDP parser and the typed attribute views (RFC 8866 §9).

The ABNF productions used here, quoted from RFC 8866 §9:

    token-char     = ALPHA / DIGIT / "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-"
                     / "." / "^" / "_" / "`" / "{" / "|" / "}" / "~"
                     ; %x21 / %x23-27 / %x2A-2B / %x2D-2E / %x30-39 / %x41-5A / %x5E-7E
    proto          = token *("/" token)
    unicast-address = IP4-address / IP6-address / FQDN / extn-addr
    integer        = POS-DIGIT *DIGIT

Every helper raises :class:`~rtpcore.errors.SdpParseError` (never ``ValueError``), and
numbers are capped in length before ``int()`` so hostile input cannot hit CPython's
``int_max_str_digits`` guard or spend time on huge conversions.
"""

from __future__ import annotations

import ipaddress
import re

from ..errors import SdpParseError

_TOKEN_RE = re.compile(r"[!#-'*+\-.0-9A-Z^-~]+")
_PROTO_RE = re.compile(r"[!#-'*+\-.0-9A-Z^-~]+(?:/[!#-'*+\-.0-9A-Z^-~]+)*")
_IP4_LIKE_RE = re.compile(r"[0-9.]+")
_FQDN_RE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?")
_DIGITS_RE = re.compile(r"[0-9]+")

#: Longest decimal accepted for a number that becomes an ``int`` (fits 64 bits).
MAX_INT_DIGITS = 20


def is_token(text: str) -> bool:
    """True when ``text`` is a non-empty RFC 8866 ``token``."""
    return _TOKEN_RE.fullmatch(text) is not None


def is_proto(text: str) -> bool:
    """True when ``text`` is an m= ``proto`` (``token *("/" token)``)."""
    return _PROTO_RE.fullmatch(text) is not None


def is_digits(text: str) -> bool:
    """True when ``text`` is one or more ASCII digits (``str.isdigit`` also accepts '²')."""
    return _DIGITS_RE.fullmatch(text) is not None


def parse_uint(text: str, what: str, *, line: int | None = None, maximum: int | None = None) -> int:
    """Parse an unsigned decimal integer or raise :class:`SdpParseError` naming ``what``."""
    if len(text) > MAX_INT_DIGITS or _DIGITS_RE.fullmatch(text) is None:
        raise SdpParseError(f"{what}: expected a decimal number, got {text[:40]!r}", line=line)
    value = int(text)
    if maximum is not None and value > maximum:
        raise SdpParseError(f"{what}: {value} is larger than {maximum}", line=line)
    return value


def require_token(text: str, what: str, *, line: int | None = None) -> str:
    """Return ``text`` if it is a token, else raise :class:`SdpParseError`."""
    if _TOKEN_RE.fullmatch(text) is None:
        raise SdpParseError(f"{what}: not a valid token: {text[:40]!r}", line=line)
    return text


def check_address(addrtype: str, address: str, what: str, *, line: int | None = None) -> None:
    """Validate a unicast address of ``addrtype`` (IP4/IP6 literal or FQDN).

    Address types other than IP4/IP6 (RFC 8866 ``extn-addr``) only have to be tokens.
    A dotted all-digit string must be a real IPv4 address: ``1.2.3`` or ``300.1.1.1``
    are rejected rather than taken as host names.
    """
    if addrtype == "IP4":
        if _IP4_LIKE_RE.fullmatch(address) is not None:
            try:
                ipaddress.IPv4Address(address)
            except ValueError:
                raise SdpParseError(f"{what}: bad IPv4 address {address[:60]!r}", line=line) from None
            return
        if _FQDN_RE.fullmatch(address) is None or len(address) > 255:
            raise SdpParseError(f"{what}: bad IP4 address or host name {address[:60]!r}", line=line)
        return
    if addrtype == "IP6":
        if ":" in address:
            try:
                ipaddress.IPv6Address(address)
            except ValueError:
                raise SdpParseError(f"{what}: bad IPv6 address {address[:60]!r}", line=line) from None
            return
        if _IP4_LIKE_RE.fullmatch(address) is not None or _FQDN_RE.fullmatch(address) is None or len(address) > 255:
            raise SdpParseError(f"{what}: bad IP6 address or host name {address[:60]!r}", line=line)
        return
    if _TOKEN_RE.fullmatch(address) is None:
        raise SdpParseError(f"{what}: bad address {address[:60]!r}", line=line)


def address_type_of(address: str) -> str:
    """``"IP6"`` for an IPv6 literal, else ``"IP4"`` (IPv4 literal or host name)."""
    return "IP6" if ":" in address else "IP4"
