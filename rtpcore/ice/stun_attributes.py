"""STUN attributes: typed values, their wire encodings and decoders (RFC 8489 §14, RFC 8445 §16.1,
RFC 8656 §18, RFC 5780 §7).

Each attribute is a frozen slotted dataclass with ``TYPE`` and ``encode_value(tid)``; the
decoders in ``DECODERS`` turn a value into the typed attribute or raise
:class:`~rtpcore.errors.StunError` (400). Received padding bytes and reserved/RFFU bits are
kept (``pad``, ``reserved``) so that a parsed message re-encodes to the same bytes; neither
takes part in equality. Messages themselves live in :mod:`rtpcore.ice.stun`, which re-exports
everything here.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, TypeVar

from ..errors import LocalProtocolError, StunError

Addr = tuple[str, int]

MAGIC_COOKIE = 0x2112A442
_COOKIE_BYTES = MAGIC_COOKIE.to_bytes(4, "big")
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")
_MAX_USERNAME = 513  # RFC 8489 §14.3: less than 513 bytes
_MAX_TEXT = 763  # RFC 8489 §14.9/§14.10/§14.14: less than 763 bytes


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


def build_attribute(cls: type[_A], name: str, value: object, pad: bytes, reserved: int = 0) -> _A:
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
    return lambda v, tid, pad: build_attribute(cls, "address", _decode_address(v, tid, xor), pad, v[0])


def _dec_text(cls: type[_TextAttribute]) -> _Decoder:
    name, limit = cls.__name__.upper(), cls.LIMIT

    def dec(v: bytes, tid: bytes, pad: bytes) -> StunAttribute:
        if len(v) >= limit:
            raise StunError(f"{name} too long ({len(v)} bytes)")
        try:
            text = v.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StunError(f"{name} is not UTF-8") from exc
        return build_attribute(cls, "value", text, pad)

    return dec


def _dec_u32(cls: type[_U32Attribute]) -> _Decoder:
    name = cls.__name__.upper()

    def dec(v: bytes, tid: bytes, pad: bytes) -> StunAttribute:
        if len(v) != 4:
            _fixed(4, name, v)
        return build_attribute(cls, "value", _U32.unpack(v)[0], pad)

    return dec


def _dec_flag(cls: type[_FlagAttribute]) -> _Decoder:
    name = cls.__name__.upper()

    def dec(v: bytes, tid: bytes, pad: bytes) -> StunAttribute:
        if v:
            _fixed(0, name, v)
        return build_attribute(cls, "", None, pad)

    return dec


def _dec_tie(cls: type[_TieBreakerAttribute]) -> _Decoder:
    name = cls.__name__.upper()

    def dec(v: bytes, tid: bytes, pad: bytes) -> StunAttribute:
        if len(v) != 8:
            _fixed(8, name, v)
        return build_attribute(cls, "tie_breaker", _U64.unpack(v)[0], pad)

    return dec


def _dec_mi(v: bytes, tid: bytes, pad: bytes) -> StunAttribute:
    if len(v) != 20:
        _fixed(20, "MESSAGE-INTEGRITY", v)
    return build_attribute(MessageIntegrity, "hmac", v, pad)


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
    return build_attribute(Data, "value", v, pad)


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


DECODERS: dict[int, _Decoder] = {
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
DECODERS = {int(k): v for k, v in DECODERS.items()}
SPECIAL_TYPES = frozenset((0x0008, 0x001C, 0x8028))  # MESSAGE-INTEGRITY(-SHA256), FINGERPRINT: offsets recorded
KNOWN_ATTRIBUTE_TYPES = frozenset(DECODERS)
AFTER_INTEGRITY_OK = (MessageIntegritySha256, Fingerprint)
