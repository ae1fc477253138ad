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
import ipaddress
import os
import stringprep
import struct
import unicodedata
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import ClassVar, TypeVar

from ..errors import LocalProtocolError, StunError

__all__ = [
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

Addr = tuple[str, int]

MAGIC_COOKIE = 0x2112A442
_COOKIE_BYTES = MAGIC_COOKIE.to_bytes(4, "big")
_FINGERPRINT_XOR = 0x5354554E
HEADER_LENGTH = 20
_HEADER = struct.Struct("!HHI12s")
_TL = struct.Struct("!HH")
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")
_MAX_USERNAME = 513  # RFC 8489 §14.3: less than 513 bytes
_MAX_TEXT = 763  # RFC 8489 §14.9/§14.10/§14.14: less than 763 bytes


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


class AttrType(enum.IntEnum):
    """Attribute types (RFC 8489 §18.3, RFC 8445 §16.1, RFC 8656 §18, RFC 5780 §7)."""

    MAPPED_ADDRESS = 0x0001
    USERNAME = 0x0006
    MESSAGE_INTEGRITY = 0x0008
    ERROR_CODE = 0x0009
    UNKNOWN_ATTRIBUTES = 0x000A
    CHANNEL_NUMBER = 0x000C
    LIFETIME = 0x000D
    XOR_PEER_ADDRESS = 0x0012
    DATA = 0x0013
    REALM = 0x0014
    NONCE = 0x0015
    XOR_RELAYED_ADDRESS = 0x0016
    REQUESTED_ADDRESS_FAMILY = 0x0017
    EVEN_PORT = 0x0018
    REQUESTED_TRANSPORT = 0x0019
    DONT_FRAGMENT = 0x001A
    MESSAGE_INTEGRITY_SHA256 = 0x001C
    XOR_MAPPED_ADDRESS = 0x0020
    RESERVATION_TOKEN = 0x0022
    PRIORITY = 0x0024
    USE_CANDIDATE = 0x0025
    SOFTWARE = 0x8022
    ALTERNATE_SERVER = 0x8023
    FINGERPRINT = 0x8028
    ICE_CONTROLLED = 0x8029
    ICE_CONTROLLING = 0x802A
    RESPONSE_ORIGIN = 0x802B
    OTHER_ADDRESS = 0x802C


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


# -- address helpers ------------------------------------------------------------------------------


def _pack_host(host: str) -> tuple[int, bytes]:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError as exc:
        raise LocalProtocolError(f"not an IP address: {host!r}") from exc
    return (1, ip.packed) if ip.version == 4 else (2, ip.packed)


def _unpack_host(family: int, raw: bytes) -> str:
    if family == 1:
        return f"{raw[0]}.{raw[1]}.{raw[2]}.{raw[3]}"
    return str(ipaddress.IPv6Address(raw))


def _xor_key(family: int, tid: bytes) -> bytes:
    return _COOKIE_BYTES if family == 1 else _COOKIE_BYTES + tid


def _xor(raw: bytes, key: bytes) -> bytes:
    n = len(raw)
    return (int.from_bytes(raw, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


def _decode_address(value: bytes, tid: bytes, xor: bool) -> Addr:
    n = len(value)
    if n < 4:
        raise StunError("address attribute too short")
    family = value[1]
    if not ((family == 1 and n == 8) or (family == 2 and n == 20)):
        raise StunError(f"bad address family {family} / length {n}")
    port = (value[2] << 8) | value[3]
    raw = value[4:]
    if xor:
        port ^= MAGIC_COOKIE >> 16
        raw = _xor(raw, _xor_key(family, tid))
    return (_unpack_host(family, raw), port)


def _encode_address(addr: Addr, tid: bytes, xor: bool, reserved: int = 0) -> bytes:
    family, raw = _pack_host(addr[0])
    port = addr[1]
    if not 0 <= port <= 0xFFFF:
        raise LocalProtocolError(f"bad port {port}")
    if xor:
        port ^= MAGIC_COOKIE >> 16
        raw = _xor(raw, _xor_key(family, tid))
    return bytes((reserved & 0xFF, family)) + port.to_bytes(2, "big") + raw


def _utf8(value: bytes, what: str, limit: int) -> str:
    if len(value) >= limit:
        raise StunError(f"{what} too long ({len(value)} bytes)")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StunError(f"{what} is not UTF-8") from exc


# -- attributes ----------------------------------------------------------------------------------

_A = TypeVar("_A", bound="StunAttribute")


@dataclass(frozen=True, slots=True)
class StunAttribute:
    """Base of typed attributes. ``pad`` keeps received padding bytes (empty: zeros when encoding)
    and ``reserved`` the reserved/RFFU bits of the attributes that have them, so that a received
    message re-encodes to the same bytes; neither takes part in equality."""

    TYPE: ClassVar[int] = -1
    pad: bytes = field(default=b"", kw_only=True, compare=False, repr=False)
    reserved: int = field(default=0, kw_only=True, compare=False, repr=False)

    def __getattr__(self, name: str) -> object:
        # the parser leaves ``pad``/``reserved`` unset when they hold their defaults (hot path)
        if name == "pad":
            return b""
        if name == "reserved":
            return 0
        raise AttributeError(name)

    @property
    def attr_type(self) -> int:
        return self.TYPE

    def encode_value(self, tid: bytes) -> bytes:
        raise LocalProtocolError(f"{type(self).__name__} cannot be encoded")


@dataclass(frozen=True, slots=True)
class UnknownAttribute(StunAttribute):
    """An attribute this module has no type for; kept verbatim, in order."""

    type_code: int
    value: bytes

    @property
    def attr_type(self) -> int:
        return self.type_code

    @property
    def comprehension_required(self) -> bool:
        return self.type_code < 0x8000

    def encode_value(self, tid: bytes) -> bytes:
        return self.value


@dataclass(frozen=True, slots=True)
class _AddressAttribute(StunAttribute):
    address: Addr
    XOR: ClassVar[bool] = False

    def encode_value(self, tid: bytes) -> bytes:
        return _encode_address(self.address, tid, self.XOR, self.reserved)


@dataclass(frozen=True, slots=True)
class MappedAddress(_AddressAttribute):
    """RFC 8489 §14.1 (kept for RFC 3489 servers)."""

    TYPE: ClassVar[int] = AttrType.MAPPED_ADDRESS


@dataclass(frozen=True, slots=True)
class XorMappedAddress(_AddressAttribute):
    """RFC 8489 §14.2: the reflexive transport address, XOR-ed with the cookie (and transaction id)."""

    TYPE: ClassVar[int] = AttrType.XOR_MAPPED_ADDRESS
    XOR: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class XorPeerAddress(_AddressAttribute):
    """RFC 8656 §18.3."""

    TYPE: ClassVar[int] = AttrType.XOR_PEER_ADDRESS
    XOR: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class XorRelayedAddress(_AddressAttribute):
    """RFC 8656 §18.5."""

    TYPE: ClassVar[int] = AttrType.XOR_RELAYED_ADDRESS
    XOR: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class AlternateServer(_AddressAttribute):
    """RFC 8489 §14.15 (300 Try Alternate)."""

    TYPE: ClassVar[int] = AttrType.ALTERNATE_SERVER


@dataclass(frozen=True, slots=True)
class ResponseOrigin(_AddressAttribute):
    """RFC 5780 §7.3."""

    TYPE: ClassVar[int] = AttrType.RESPONSE_ORIGIN


@dataclass(frozen=True, slots=True)
class OtherAddress(_AddressAttribute):
    """RFC 5780 §7.4."""

    TYPE: ClassVar[int] = AttrType.OTHER_ADDRESS


@dataclass(frozen=True, slots=True)
class _TextAttribute(StunAttribute):
    value: str
    LIMIT: ClassVar[int] = _MAX_TEXT

    def encode_value(self, tid: bytes) -> bytes:
        return self.value.encode("utf-8")


@dataclass(frozen=True, slots=True)
class Username(_TextAttribute):
    """RFC 8489 §14.3. For ICE: ``"<remote ufrag>:<local ufrag>"`` (RFC 8445 §7.2.2)."""

    TYPE: ClassVar[int] = AttrType.USERNAME
    LIMIT: ClassVar[int] = _MAX_USERNAME


@dataclass(frozen=True, slots=True)
class Realm(_TextAttribute):
    """RFC 8489 §14.9."""

    TYPE: ClassVar[int] = AttrType.REALM


@dataclass(frozen=True, slots=True)
class Nonce(_TextAttribute):
    """RFC 8489 §14.10."""

    TYPE: ClassVar[int] = AttrType.NONCE


@dataclass(frozen=True, slots=True)
class Software(_TextAttribute):
    """RFC 8489 §14.14."""

    TYPE: ClassVar[int] = AttrType.SOFTWARE


@dataclass(frozen=True, slots=True)
class MessageIntegrity(StunAttribute):
    """RFC 8489 §14.5: 20-byte HMAC-SHA1."""

    TYPE: ClassVar[int] = AttrType.MESSAGE_INTEGRITY
    hmac: bytes

    def encode_value(self, tid: bytes) -> bytes:
        return self.hmac


@dataclass(frozen=True, slots=True)
class MessageIntegritySha256(StunAttribute):
    """RFC 8489 §14.6: HMAC-SHA256, possibly truncated to 16..32 bytes (multiple of 4)."""

    TYPE: ClassVar[int] = AttrType.MESSAGE_INTEGRITY_SHA256
    hmac: bytes

    def encode_value(self, tid: bytes) -> bytes:
        return self.hmac


@dataclass(frozen=True, slots=True)
class Fingerprint(StunAttribute):
    """RFC 8489 §14.7: CRC-32 XOR 0x5354554E."""

    TYPE: ClassVar[int] = AttrType.FINGERPRINT
    crc: int

    def encode_value(self, tid: bytes) -> bytes:
        return _U32.pack(self.crc)


@dataclass(frozen=True, slots=True)
class ErrorCode(StunAttribute):
    """RFC 8489 §14.8: code 300..699 and a UTF-8 reason phrase."""

    TYPE: ClassVar[int] = AttrType.ERROR_CODE
    code: int
    reason: str = ""

    def encode_value(self, tid: bytes) -> bytes:
        if not 300 <= self.code <= 699:
            raise LocalProtocolError(f"error code {self.code} out of range")
        head = (self.reserved & 0xFFFFF8) | (self.code // 100)
        return head.to_bytes(3, "big") + bytes((self.code % 100,)) + self.reason.encode("utf-8")


@dataclass(frozen=True, slots=True)
class UnknownAttributes(StunAttribute):
    """RFC 8489 §14.13: the types a 420 response did not understand."""

    TYPE: ClassVar[int] = AttrType.UNKNOWN_ATTRIBUTES
    types: tuple[int, ...]

    def encode_value(self, tid: bytes) -> bytes:
        return b"".join(t.to_bytes(2, "big") for t in self.types)


@dataclass(frozen=True, slots=True)
class _U32Attribute(StunAttribute):
    value: int

    def encode_value(self, tid: bytes) -> bytes:
        return _U32.pack(self.value)


@dataclass(frozen=True, slots=True)
class Priority(_U32Attribute):
    """RFC 8445 §7.1.1: the priority a peer-reflexive candidate would get."""

    TYPE: ClassVar[int] = AttrType.PRIORITY


@dataclass(frozen=True, slots=True)
class Lifetime(_U32Attribute):
    """RFC 8656 §18.2: allocation lifetime in seconds."""

    TYPE: ClassVar[int] = AttrType.LIFETIME


@dataclass(frozen=True, slots=True)
class _FlagAttribute(StunAttribute):
    def encode_value(self, tid: bytes) -> bytes:
        return b""


@dataclass(frozen=True, slots=True)
class UseCandidate(_FlagAttribute):
    """RFC 8445 §7.1.2: the controlling agent nominates this pair."""

    TYPE: ClassVar[int] = AttrType.USE_CANDIDATE


@dataclass(frozen=True, slots=True)
class DontFragment(_FlagAttribute):
    """RFC 8656 §18.8."""

    TYPE: ClassVar[int] = AttrType.DONT_FRAGMENT


@dataclass(frozen=True, slots=True)
class _TieBreakerAttribute(StunAttribute):
    tie_breaker: int

    def encode_value(self, tid: bytes) -> bytes:
        return _U64.pack(self.tie_breaker)


@dataclass(frozen=True, slots=True)
class IceControlled(_TieBreakerAttribute):
    """RFC 8445 §7.1.3."""

    TYPE: ClassVar[int] = AttrType.ICE_CONTROLLED


@dataclass(frozen=True, slots=True)
class IceControlling(_TieBreakerAttribute):
    """RFC 8445 §7.1.3."""

    TYPE: ClassVar[int] = AttrType.ICE_CONTROLLING


@dataclass(frozen=True, slots=True)
class Data(StunAttribute):
    """RFC 8656 §18.4: application data in Send/Data indications."""

    TYPE: ClassVar[int] = AttrType.DATA
    value: bytes

    def encode_value(self, tid: bytes) -> bytes:
        return self.value


@dataclass(frozen=True, slots=True)
class RequestedTransport(StunAttribute):
    """RFC 8656 §18.6: IANA protocol number (17 = UDP) and 3 RFFU bytes."""

    TYPE: ClassVar[int] = AttrType.REQUESTED_TRANSPORT
    protocol: int = 17

    def encode_value(self, tid: bytes) -> bytes:
        return bytes((self.protocol & 0xFF,)) + (self.reserved & 0xFFFFFF).to_bytes(3, "big")


@dataclass(frozen=True, slots=True)
class ChannelNumber(StunAttribute):
    """RFC 8656 §18.1: channel number and 2 RFFU bytes."""

    TYPE: ClassVar[int] = AttrType.CHANNEL_NUMBER
    number: int

    def encode_value(self, tid: bytes) -> bytes:
        return (self.number & 0xFFFF).to_bytes(2, "big") + (self.reserved & 0xFFFF).to_bytes(2, "big")


@dataclass(frozen=True, slots=True)
class RequestedAddressFamily(StunAttribute):
    """RFC 8656 §18.9: 0x01 IPv4, 0x02 IPv6, then 3 RFFU bytes."""

    TYPE: ClassVar[int] = AttrType.REQUESTED_ADDRESS_FAMILY
    family: int = 1

    def encode_value(self, tid: bytes) -> bytes:
        return bytes((self.family & 0xFF,)) + (self.reserved & 0xFFFFFF).to_bytes(3, "big")


@dataclass(frozen=True, slots=True)
class EvenPort(StunAttribute):
    """RFC 8656 §18.7: one byte, R bit = reserve the next port."""

    TYPE: ClassVar[int] = AttrType.EVEN_PORT
    reserve: bool = False

    def encode_value(self, tid: bytes) -> bytes:
        return bytes(((0x80 if self.reserve else 0) | (self.reserved & 0x7F),))


@dataclass(frozen=True, slots=True)
class ReservationToken(StunAttribute):
    """RFC 8656 §18.10: 8-byte token."""

    TYPE: ClassVar[int] = AttrType.RESERVATION_TOKEN
    token: bytes

    def encode_value(self, tid: bytes) -> bytes:
        return self.token


# -- attribute decoders ---------------------------------------------------------------------------

_Decoder = Callable[[bytes, bytes, bytes], StunAttribute]
_new = object.__new__
_set = object.__setattr__


def _mk(cls: type[_A], name: str, value: object, pad: bytes, reserved: int = 0) -> _A:
    """Build a frozen attribute without the dataclass __init__ (parse hot path); default
    ``pad``/``reserved`` stay unset and read through ``StunAttribute.__getattr__``."""
    obj = _new(cls)
    if name:
        _set(obj, name, value)
    if pad:
        _set(obj, "pad", pad)
    if reserved:
        _set(obj, "reserved", reserved)
    return obj


def _fixed(n: int, what: str, value: bytes) -> None:
    if len(value) != n:
        raise StunError(f"{what}: length {len(value)}, expected {n}")


def _dec_address(cls: type[_AddressAttribute]) -> _Decoder:
    xor = cls.XOR
    return lambda v, tid, pad: _mk(cls, "address", _decode_address(v, tid, xor), pad, v[0])


def _dec_text(cls: type[_TextAttribute]) -> _Decoder:
    name, limit = cls.__name__.upper(), cls.LIMIT

    def dec(v: bytes, tid: bytes, pad: bytes) -> StunAttribute:
        if len(v) >= limit:
            raise StunError(f"{name} too long ({len(v)} bytes)")
        try:
            text = v.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StunError(f"{name} is not UTF-8") from exc
        return _mk(cls, "value", text, pad)

    return dec


def _dec_u32(cls: type[_U32Attribute]) -> _Decoder:
    name = cls.__name__.upper()

    def dec(v: bytes, tid: bytes, pad: bytes) -> StunAttribute:
        if len(v) != 4:
            _fixed(4, name, v)
        return _mk(cls, "value", _U32.unpack(v)[0], pad)

    return dec


def _dec_flag(cls: type[_FlagAttribute]) -> _Decoder:
    name = cls.__name__.upper()

    def dec(v: bytes, tid: bytes, pad: bytes) -> StunAttribute:
        if v:
            _fixed(0, name, v)
        return _mk(cls, "", None, pad)

    return dec


def _dec_tie(cls: type[_TieBreakerAttribute]) -> _Decoder:
    name = cls.__name__.upper()

    def dec(v: bytes, tid: bytes, pad: bytes) -> StunAttribute:
        if len(v) != 8:
            _fixed(8, name, v)
        return _mk(cls, "tie_breaker", _U64.unpack(v)[0], pad)

    return dec


def _dec_mi(v: bytes, tid: bytes, pad: bytes) -> StunAttribute:
    if len(v) != 20:
        _fixed(20, "MESSAGE-INTEGRITY", v)
    return _mk(MessageIntegrity, "hmac", v, pad)


def _dec_mi256(v: bytes, tid: bytes, pad: bytes) -> StunAttribute:
    if not (16 <= len(v) <= 32 and len(v) % 4 == 0):
        raise StunError(f"MESSAGE-INTEGRITY-SHA256: bad length {len(v)}")
    return MessageIntegritySha256(v, pad=pad)


def _dec_fingerprint(v: bytes, tid: bytes, pad: bytes) -> StunAttribute:
    _fixed(4, "FINGERPRINT", v)
    return Fingerprint(_U32.unpack(v)[0], pad=pad)


def _dec_error(v: bytes, tid: bytes, pad: bytes) -> StunAttribute:
    if len(v) < 4:
        raise StunError("ERROR-CODE too short")
    cls_, num = v[2] & 0x07, v[3]
    if not 3 <= cls_ <= 6 or num > 99:
        raise StunError("ERROR-CODE: bad class/number")
    reserved = ((v[0] << 16) | (v[1] << 8) | v[2]) & 0xFFFFF8  # RFC 8489 §14.8: ignored
    return ErrorCode(cls_ * 100 + num, _utf8(v[4:], "ERROR-CODE reason", _MAX_TEXT), pad=pad, reserved=reserved)


def _dec_unknown_attrs(v: bytes, tid: bytes, pad: bytes) -> StunAttribute:
    if len(v) % 2:
        raise StunError("UNKNOWN-ATTRIBUTES: odd length")
    return UnknownAttributes(tuple(struct.unpack(f"!{len(v) // 2}H", v)), pad=pad)


def _dec_data(v: bytes, tid: bytes, pad: bytes) -> StunAttribute:
    return _mk(Data, "value", v, pad)


def _dec_transport(v: bytes, tid: bytes, pad: bytes) -> StunAttribute:
    _fixed(4, "REQUESTED-TRANSPORT", v)
    return RequestedTransport(v[0], pad=pad, reserved=int.from_bytes(v[1:], "big"))


def _dec_channel(v: bytes, tid: bytes, pad: bytes) -> StunAttribute:
    _fixed(4, "CHANNEL-NUMBER", v)
    return ChannelNumber((v[0] << 8) | v[1], pad=pad, reserved=(v[2] << 8) | v[3])


def _dec_family(v: bytes, tid: bytes, pad: bytes) -> StunAttribute:
    _fixed(4, "REQUESTED-ADDRESS-FAMILY", v)
    if v[0] not in (1, 2):
        raise StunError(f"REQUESTED-ADDRESS-FAMILY: unknown family {v[0]}")
    return RequestedAddressFamily(v[0], pad=pad, reserved=int.from_bytes(v[1:], "big"))


def _dec_even_port(v: bytes, tid: bytes, pad: bytes) -> StunAttribute:
    _fixed(1, "EVEN-PORT", v)
    return EvenPort(bool(v[0] & 0x80), pad=pad, reserved=v[0] & 0x7F)


def _dec_token(v: bytes, tid: bytes, pad: bytes) -> StunAttribute:
    _fixed(8, "RESERVATION-TOKEN", v)
    return ReservationToken(v, pad=pad)


_DECODERS: dict[int, _Decoder] = {
    AttrType.MAPPED_ADDRESS: _dec_address(MappedAddress),
    AttrType.XOR_MAPPED_ADDRESS: _dec_address(XorMappedAddress),
    AttrType.XOR_PEER_ADDRESS: _dec_address(XorPeerAddress),
    AttrType.XOR_RELAYED_ADDRESS: _dec_address(XorRelayedAddress),
    AttrType.ALTERNATE_SERVER: _dec_address(AlternateServer),
    AttrType.RESPONSE_ORIGIN: _dec_address(ResponseOrigin),
    AttrType.OTHER_ADDRESS: _dec_address(OtherAddress),
    AttrType.USERNAME: _dec_text(Username),
    AttrType.REALM: _dec_text(Realm),
    AttrType.NONCE: _dec_text(Nonce),
    AttrType.SOFTWARE: _dec_text(Software),
    AttrType.MESSAGE_INTEGRITY: _dec_mi,
    AttrType.MESSAGE_INTEGRITY_SHA256: _dec_mi256,
    AttrType.FINGERPRINT: _dec_fingerprint,
    AttrType.ERROR_CODE: _dec_error,
    AttrType.UNKNOWN_ATTRIBUTES: _dec_unknown_attrs,
    AttrType.PRIORITY: _dec_u32(Priority),
    AttrType.LIFETIME: _dec_u32(Lifetime),
    AttrType.USE_CANDIDATE: _dec_flag(UseCandidate),
    AttrType.DONT_FRAGMENT: _dec_flag(DontFragment),
    AttrType.ICE_CONTROLLED: _dec_tie(IceControlled),
    AttrType.ICE_CONTROLLING: _dec_tie(IceControlling),
    AttrType.DATA: _dec_data,
    AttrType.REQUESTED_TRANSPORT: _dec_transport,
    AttrType.CHANNEL_NUMBER: _dec_channel,
    AttrType.REQUESTED_ADDRESS_FAMILY: _dec_family,
    AttrType.EVEN_PORT: _dec_even_port,
    AttrType.RESERVATION_TOKEN: _dec_token,
}
_DECODERS = {int(k): v for k, v in _DECODERS.items()}
_SPECIAL = frozenset((0x0008, 0x001C, 0x8028))  # MESSAGE-INTEGRITY(-SHA256), FINGERPRINT: offsets recorded
KNOWN_ATTRIBUTE_TYPES = frozenset(_DECODERS)
_AFTER_INTEGRITY_OK = (MessageIntegritySha256, Fingerprint)


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
            if after_mi and not isinstance(a, _AFTER_INTEGRITY_OK):
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
    decoders = _DECODERS
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
        if dec is not None and atype not in _SPECIAL:
            attrs.append(dec(value, tid, pad))
        elif dec is None:
            if atype < 0x8000:
                unknown.append(atype)
            ua = _mk(UnknownAttribute, "value", value, pad)
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
            attrs.append(_mk(Fingerprint, "crc", crc, pad))
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
