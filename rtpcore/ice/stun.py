"""STUN messages: encode, decode, integrity and fingerprint (RFC 8489, RFC 5389, RFC 8656 attributes).

A message is a header (method, class, 96-bit transaction id) and an ordered list of typed
attributes. Unknown attributes are kept, in order, as :class:`UnknownAttribute`, and the
padding bytes of every attribute are kept too, so ``parse_message(b).encode() == b`` for
any valid datagram (RFC 5769 pads with spaces, not zeros).

Wire layout (RFC 8489 §5)::

     0                   1                   2                   3
    |0 0|     STUN Message Type     |         Message Length        |
    |                   Magic Cookie = 0x2112A442                   |
    |                  Transaction ID (96 bits)                     |
    |  Type  |  Length  |  Value (padded to 4 bytes)  | ...

Rules followed here:

* §14.5 MESSAGE-INTEGRITY: HMAC-SHA1 over the message up to the attribute, with the header
  length covering the attribute. §14.6 MESSAGE-INTEGRITY-SHA256 likewise with SHA-256.
  Attributes after MESSAGE-INTEGRITY other than MESSAGE-INTEGRITY-SHA256 and FINGERPRINT
  are kept for re-encoding but ignored by :meth:`StunMessage.get` (they are not authenticated).
* §14.7 FINGERPRINT: CRC-32 of the message up to the attribute, XOR 0x5354554E; it must be
  last. A wrong fingerprint means "not STUN": the datagram is dropped without an answer.
* §9.1 short-term key = OpaqueString(password); §9.2.2 long-term key =
  MD5(username ":" realm ":" SASLprep(password)) as in RFC 5389 §15.4 / RFC 5769 §2.4.
* §6.3 a request with unknown comprehension-required attributes (type < 0x8000) is answered
  with 420 and UNKNOWN-ATTRIBUTES.

Errors: :class:`~rtpcore.errors.StunError` only. ``error_code`` is the code to answer a
request with (400, 420); ``0`` means "drop silently" (not STUN, bad fingerprint).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
import stringprep
import struct
import unicodedata
import zlib
from collections.abc import Callable, Iterable, Iterator

from ..errors import LocalProtocolError, StunError
from .stun_attributes import (
    _A,
    _COOKIE_BYTES,
    _U32,
    AFTER_INTEGRITY_OK,
    DECODERS,
    KNOWN_ATTRIBUTE_TYPES,
    MAGIC_COOKIE,
    SPECIAL_TYPES,
    Addr,
    AlternateServer,
    AttrType,
    ChannelNumber,
    Data,
    DontFragment,
    ErrorCode,
    EvenPort,
    Fingerprint,
    IceControlled,
    IceControlling,
    Lifetime,
    MappedAddress,
    MessageIntegrity,
    MessageIntegritySha256,
    Nonce,
    OtherAddress,
    Priority,
    Realm,
    RequestedAddressFamily,
    RequestedTransport,
    ReservationToken,
    ResponseOrigin,
    Software,
    StunAttribute,
    UnknownAttribute,
    UnknownAttributes,
    UseCandidate,
    Username,
    XorMappedAddress,
    XorPeerAddress,
    XorRelayedAddress,
    _fixed,
    _set,
    build_attribute,
)

__all__ = [
    "KNOWN_ATTRIBUTE_TYPES",
    "MAGIC_COOKIE",
    "Addr",
    "AlternateServer",
    "AttrType",
    "ChannelNumber",
    "Data",
    "DontFragment",
    "ErrorCode",
    "EvenPort",
    "Fingerprint",
    "IceControlled",
    "IceControlling",
    "Lifetime",
    "MappedAddress",
    "MessageClass",
    "MessageIntegrity",
    "MessageIntegritySha256",
    "Method",
    "Nonce",
    "OtherAddress",
    "Priority",
    "Realm",
    "RequestedAddressFamily",
    "RequestedTransport",
    "ReservationToken",
    "ResponseOrigin",
    "Software",
    "StunAttribute",
    "StunMessage",
    "UnknownAttribute",
    "UnknownAttributes",
    "UseCandidate",
    "Username",
    "XorMappedAddress",
    "XorPeerAddress",
    "XorRelayedAddress",
    "error_response_for",
    "is_stun",
    "long_term_key",
    "new_transaction_id",
    "parse_header",
    "parse_message",
    "reason_phrase",
    "saslprep",
    "short_term_key",
]

_FINGERPRINT_XOR = 0x5354554E
HEADER_LENGTH = 20
_HEADER = struct.Struct("!HHI12s")
_TL = struct.Struct("!HH")


class MessageClass(enum.IntEnum):
    """RFC 8489 §5: the two class bits C1 C0."""

    REQUEST = 0b00
    INDICATION = 0b01
    SUCCESS = 0b10
    ERROR = 0b11


class Method(enum.IntEnum):
    """STUN methods (RFC 8489 §18.2, RFC 8656 §17)."""

    BINDING = 0x001
    ALLOCATE = 0x003
    REFRESH = 0x004
    SEND = 0x006
    DATA = 0x007
    CREATE_PERMISSION = 0x008
    CHANNEL_BIND = 0x009


def new_transaction_id(rng: Callable[[int], bytes] = os.urandom) -> bytes:
    """96 random bits (RFC 8489 §5: "cryptographically random")."""
    tid = rng(12)
    if len(tid) != 12:
        raise LocalProtocolError("rng must return the number of bytes asked for")
    return tid


# -- credentials (RFC 8489 §9, RFC 4013) -----------------------------------------------------------


def saslprep(text: str) -> str:
    """RFC 4013 SASLprep ("stored strings" profile minus the unassigned check).

    Raises :class:`LocalProtocolError`: it is applied to locally configured passwords.
    """
    if text.isascii() and text.isprintable():
        return text
    mapped = []
    for ch in text:
        if stringprep.in_table_c12(ch):
            mapped.append(" ")  # §2.1: non-ASCII space -> SPACE
        elif not stringprep.in_table_b1(ch):  # §2.1: commonly mapped to nothing
            mapped.append(ch)
    out = unicodedata.normalize("NFKC", "".join(mapped))
    prohibited = (
        stringprep.in_table_c12,
        stringprep.in_table_c21,
        stringprep.in_table_c22,
        stringprep.in_table_c3,
        stringprep.in_table_c4,
        stringprep.in_table_c5,
        stringprep.in_table_c6,
        stringprep.in_table_c7,
        stringprep.in_table_c8,
        stringprep.in_table_c9,
    )
    for ch in out:
        if any(f(ch) for f in prohibited):
            raise LocalProtocolError(f"SASLprep: prohibited character U+{ord(ch):04X}")
    if any(stringprep.in_table_d1(ch) for ch in out):  # RFC 3454 §6 bidi rules
        if any(stringprep.in_table_d2(ch) for ch in out):
            raise LocalProtocolError("SASLprep: mixed right-to-left and left-to-right text")
        if not (stringprep.in_table_d1(out[0]) and stringprep.in_table_d1(out[-1])):
            raise LocalProtocolError("SASLprep: right-to-left text must start and end with RandALCat")
    return out


def short_term_key(password: str) -> bytes:
    """RFC 8489 §9.1.1: the key is the (prepared) password; for ICE it is the ice-pwd (RFC 8445 §7.2.2)."""
    return saslprep(password).encode("utf-8")


def long_term_key(username: str, realm: str, password: str) -> bytes:
    """RFC 8489 §9.2.2 (MD5 algorithm): MD5(username ":" realm ":" SASLprep(password))."""
    text = f"{username}:{realm}:{saslprep(password)}".encode()
    return hashlib.md5(text, usedforsecurity=False).digest()


# -- message ------------------------------------------------------------------------------------


def _message_type(method: int, cls: int) -> int:
    return (
        ((method & 0xF80) << 2) | ((method & 0x070) << 1) | (method & 0x00F) | ((cls & 2) << 7) | ((cls & 1) << 4)
    )


_METHODS: dict[int, int] = {int(m): m for m in Method}
_CLASSES = tuple(MessageClass)


class StunMessage:
    """One STUN message. ``attributes`` is an ordered list; edit it freely before :meth:`encode`."""

    __slots__ = ("attributes", "message_class", "method", "transaction_id", "_raw", "_mi", "_mi256")

    def __init__(
        self,
        method: int,
        message_class: MessageClass,
        transaction_id: bytes,
        attributes: Iterable[StunAttribute] = (),
    ) -> None:
        if len(transaction_id) != 12:
            raise LocalProtocolError("transaction id must be 12 bytes")
        if not 0 <= method <= 0xFFF:
            raise LocalProtocolError(f"method {method:#x} out of range")
        self.method = method
        self.message_class = message_class
        self.transaction_id = transaction_id
        self.attributes: list[StunAttribute] = list(attributes)
        self._raw: bytes | None = None  # the datagram, for integrity checks of parsed messages
        self._mi: tuple[int, int] | None = None  # (start, end) of the MESSAGE-INTEGRITY value in _raw
        self._mi256: tuple[int, int] | None = None

    # -- views ------------------------------------------------------------------------------
    @property
    def message_type(self) -> int:
        return _message_type(self.method, self.message_class)

    def get(self, cls: type[_A]) -> _A | None:
        """First attribute of ``cls`` that MESSAGE-INTEGRITY covers (or any, with no MESSAGE-INTEGRITY)."""
        after_mi = False
        for a in self.attributes:
            if after_mi and not isinstance(a, AFTER_INTEGRITY_OK):
                continue
            if type(a) is cls:
                return a
            if type(a) is MessageIntegrity:
                after_mi = True
        return None

    def get_all(self, cls: type[_A]) -> list[_A]:
        return [a for a in self.attributes if type(a) is cls]

    def __iter__(self) -> Iterator[StunAttribute]:
        return iter(self.attributes)

    @property
    def error(self) -> ErrorCode | None:
        return self.get(ErrorCode)

    def __repr__(self) -> str:
        m = self.method.name if isinstance(self.method, Method) else f"{self.method:#x}"
        names = ", ".join(type(a).__name__ for a in self.attributes)
        return f"<StunMessage {m} {self.message_class.name} tid={self.transaction_id.hex()} [{names}]>"

    # -- encoding ---------------------------------------------------------------------------
    def encode(
        self,
        *,
        integrity_key: bytes | None = None,
        integrity_sha256_key: bytes | None = None,
        fingerprint: bool = False,
    ) -> bytes:
        """Serialize. With a key, MESSAGE-INTEGRITY(-SHA256) is (re)computed and appended; with
        ``fingerprint`` FINGERPRINT is (re)computed and appended last (RFC 8489 §14.5-§14.7)."""
        tid = self.transaction_id
        attrs = self.attributes
        if integrity_key is not None or integrity_sha256_key is not None:
            attrs = [a for a in attrs if not isinstance(a, (MessageIntegrity, MessageIntegritySha256, Fingerprint))]
        elif fingerprint:
            attrs = [a for a in attrs if type(a) is not Fingerprint]
        parts: list[bytes] = []
        for a in attrs:
            value = a.encode_value(tid)
            n = len(value)
            if n > 0xFFFF:
                raise LocalProtocolError(f"{type(a).__name__} value too long")
            padn = -n & 3
            pad = a.pad if len(a.pad) == padn else bytes(padn)
            parts.append(_TL.pack(a.attr_type, n) + value + pad)
        body = b"".join(parts)
        mtype = _message_type(self.method, self.message_class)

        def header(extra: int) -> bytes:
            length = len(body) + extra
            if length > 0xFFFF:
                raise LocalProtocolError("STUN message too long")
            return _HEADER.pack(mtype, length, MAGIC_COOKIE, tid)

        if integrity_key is not None:
            mac = hmac.digest(integrity_key, header(24) + body, "sha1")
            body += _TL.pack(AttrType.MESSAGE_INTEGRITY, 20) + mac
        if integrity_sha256_key is not None:
            mac = hmac.digest(integrity_sha256_key, header(36) + body, "sha256")
            body += _TL.pack(AttrType.MESSAGE_INTEGRITY_SHA256, 32) + mac
        if fingerprint:
            crc = zlib.crc32(header(8) + body) ^ _FINGERPRINT_XOR
            body += _TL.pack(AttrType.FINGERPRINT, 4) + _U32.pack(crc)
        return header(0) + body

    # -- integrity --------------------------------------------------------------------------
    @property
    def has_integrity(self) -> bool:
        return self._mi is not None or self._mi256 is not None

    def verify_integrity(self, key: bytes) -> bool:
        """Check MESSAGE-INTEGRITY-SHA256 if present, else MESSAGE-INTEGRITY (parsed messages only)."""
        raw = self._raw
        if raw is None:
            return False
        if self._mi256 is not None:
            (start, end), alg = self._mi256, "sha256"
        elif self._mi is not None:
            (start, end), alg = self._mi, "sha1"
        else:
            return False
        # the header length field covers the attribute itself (RFC 8489 §14.5)
        covered = raw[:2] + (end - HEADER_LENGTH).to_bytes(2, "big") + raw[4 : start - 4]
        expected = hmac.digest(key, covered, alg)[: end - start]
        return hmac.compare_digest(expected, raw[start:end])

    def check_integrity(self, key: bytes) -> None:
        """RFC 8489 §9.1.3: raise StunError(400) when MESSAGE-INTEGRITY is missing, 401 when wrong."""
        if not self.has_integrity:
            raise StunError("no MESSAGE-INTEGRITY", error_code=400)
        if not self.verify_integrity(key):
            raise StunError("MESSAGE-INTEGRITY does not verify", error_code=401)


# -- parsing ------------------------------------------------------------------------------------


def is_stun(data: bytes) -> bool:
    """Cheap demultiplexing test (RFC 7983 first byte 0..3, RFC 8489 §5 magic cookie, length)."""
    return (
        len(data) >= HEADER_LENGTH
        and data[0] < 4
        and data[4:8] == _COOKIE_BYTES
        and ((data[2] << 8) | data[3]) == len(data) - HEADER_LENGTH
    )


def parse_header(data: bytes) -> tuple[int, MessageClass, bytes]:
    """(method, class, transaction id) of a datagram with a valid STUN header; StunError(0) otherwise."""
    n = len(data)
    if n < HEADER_LENGTH:
        raise StunError(f"STUN message of {n} bytes is shorter than the header", error_code=0)
    mtype, length, cookie, tid = _HEADER.unpack_from(data)
    if mtype & 0xC000:
        raise StunError("first two bits of a STUN message must be zero", error_code=0)
    if cookie != MAGIC_COOKIE:
        raise StunError("bad magic cookie", error_code=0)
    if length & 3 or length != n - HEADER_LENGTH:
        raise StunError(f"STUN length {length} does not match datagram of {n} bytes", error_code=0)
    method = ((mtype & 0x3E00) >> 2) | ((mtype & 0x00E0) >> 1) | (mtype & 0x000F)
    return _METHODS.get(method, method), _CLASSES[((mtype & 0x0100) >> 7) | ((mtype & 0x0010) >> 4)], tid


def parse_message(data: bytes) -> StunMessage:
    """Decode one STUN message, verifying FINGERPRINT when present.

    Raises StunError: ``error_code`` 0 (not STUN / bad fingerprint: drop silently), 400
    (malformed attribute), 420 with ``unknown_attributes`` (comprehension-required types this
    module does not know; RFC 8489 §6.3.1 for requests, §6.3.3 for responses).
    MESSAGE-INTEGRITY is checked separately with :meth:`StunMessage.verify_integrity`.
    """
    if type(data) is not bytes:
        data = bytes(data)
    method, cls, tid = parse_header(data)
    msg = StunMessage.__new__(StunMessage)
    msg.method, msg.message_class, msg.transaction_id = method, cls, tid
    attrs: list[StunAttribute] = []
    unknown: list[int] = []
    mi: tuple[int, int] | None = None
    mi256: tuple[int, int] | None = None
    pos = HEADER_LENGTH
    end = len(data)
    decoders = DECODERS
    unpack_tl = _TL.unpack_from
    while pos < end:
        if pos + 4 > end:
            raise StunError("truncated attribute header")
        atype, alen = unpack_tl(data, pos)
        vstart = pos + 4
        vend = vstart + alen
        pend = vend + (-alen & 3)
        if pend > end:
            raise StunError(f"attribute {atype:#06x} overruns the message")
        value = data[vstart:vend]
        pad = data[vend:pend]
        dec = decoders.get(atype)
        if dec is not None and atype not in SPECIAL_TYPES:
            attrs.append(dec(value, tid, pad))
        elif dec is None:
            if atype < 0x8000:
                unknown.append(atype)
            ua = build_attribute(UnknownAttribute, "value", value, pad)
            _set(ua, "type_code", atype)
            attrs.append(ua)
        elif atype == 0x8028:  # FINGERPRINT
            if pend != end:
                raise StunError("FINGERPRINT is not the last attribute")
            _fixed(4, "FINGERPRINT", value)
            crc = _U32.unpack(value)[0]
            covered = data[:2] + (end - HEADER_LENGTH).to_bytes(2, "big") + data[4:pos]
            if crc != zlib.crc32(covered) ^ _FINGERPRINT_XOR:
                raise StunError("FINGERPRINT mismatch", error_code=0)
            attrs.append(build_attribute(Fingerprint, "crc", crc, pad))
        else:
            if atype == 0x0008 and mi is None and mi256 is None:  # MESSAGE-INTEGRITY
                mi = (vstart, vend)
            elif atype == 0x001C and mi256 is None:  # MESSAGE-INTEGRITY-SHA256
                mi256 = (vstart, vend)
            attrs.append(dec(value, tid, pad))
        pos = pend
    msg.attributes = attrs
    msg._raw = data
    msg._mi = mi
    msg._mi256 = mi256
    if unknown:
        raise StunError(
            "unknown comprehension-required attributes: " + ", ".join(f"{t:#06x}" for t in unknown),
            error_code=420,
            unknown_attributes=tuple(unknown),
        )
    return msg


def error_response_for(
    data: bytes,
    error: StunError,
    *,
    integrity_key: bytes | None = None,
    software: str | None = None,
) -> bytes | None:
    """The error response to send for a request that failed to parse, or None when none is due
    (not a request, not STUN, bad fingerprint). 420 responses carry UNKNOWN-ATTRIBUTES."""
    if error.error_code < 300:
        return None
    try:
        method, cls, tid = parse_header(data)
    except StunError:
        return None
    if cls is not MessageClass.REQUEST:
        return None
    attrs: list[StunAttribute] = [ErrorCode(error.error_code, _REASONS.get(error.error_code, ""))]
    if error.error_code == 420 and error.unknown_attributes:
        attrs.append(UnknownAttributes(error.unknown_attributes))
    if software:
        attrs.append(Software(software))
    resp = StunMessage(method, MessageClass.ERROR, tid, attrs)
    return resp.encode(integrity_key=integrity_key, fingerprint=True)


_REASONS = {
    300: "Try Alternate",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    420: "Unknown Attribute",
    437: "Allocation Mismatch",
    438: "Stale Nonce",
    440: "Address Family not Supported",
    441: "Wrong Credentials",
    442: "Unsupported Transport Protocol",
    443: "Peer Address Family Mismatch",
    486: "Allocation Quota Reached",
    487: "Role Conflict",
    500: "Server Error",
    508: "Insufficient Capacity",
}


def reason_phrase(code: int) -> str:
    """The RFC 8489 §14.8 / RFC 8656 §19 / RFC 8445 §16.2 reason phrase for ``code``."""
    return _REASONS.get(code, "")
