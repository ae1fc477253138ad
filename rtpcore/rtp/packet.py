"""RTP data packets: parse and serialize (RFC 3550 §5.1, §5.3.1) and RFC 8285 header extensions.

Wire layout (RFC 3550 §5.1)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |V=2|P|X|  CC   |M|     PT      |       sequence number         |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                           timestamp                           |
    |           synchronization source (SSRC) identifier            |
    +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
    |            contributing source (CSRC) identifiers  (CC x)     |
    |   defined by profile (16)     |  extension length in words    |  (X = 1, §5.3.1)
    |                      extension data ...                       |
    |                        payload ...    | padding ... | count   |  (P = 1)

The header extension is kept as raw bytes so a parsed packet re-serializes byte for byte;
:func:`parse_extensions` / :func:`pack_extensions` read and build the RFC 8285 one-byte
(profile ``0xBEDE``) and two-byte (profile ``0x100X``) element forms on demand.

Parsing is the media hot path: one ``struct.unpack_from`` on the fixed 12 octets and slices
for the rest; no per-byte loops. Malformed input raises :class:`~rtpcore.errors.RtpParseError`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

from ..errors import LocalProtocolError, RtpParseError

__all__ = [
    "RTP_HEADER_SIZE",
    "RTP_VERSION",
    "ExtensionProfile",
    "RtpPacket",
    "is_rtcp",
    "pack_extensions",
    "parse_extensions",
]

RTP_VERSION = 2
RTP_HEADER_SIZE = 12
_MAX_CSRC = 15

_HEADER = struct.Struct("!BBHII")
_EXT_HEADER = struct.Struct("!HH")
_CSRC = tuple(struct.Struct(f"!{n}I") for n in range(_MAX_CSRC + 1))


class ExtensionProfile(IntEnum):
    """The "defined by profile" values of RFC 8285 header extensions."""

    ONE_BYTE = 0xBEDE  # RFC 8285 §4.2
    TWO_BYTE = 0x1000  # RFC 8285 §4.3: 0x100 + 4 "appbits", the low nibble is free


def _is_two_byte(profile: int) -> bool:
    return profile & 0xFFF0 == ExtensionProfile.TWO_BYTE


@dataclass(slots=True)
class RtpPacket:
    """One RTP packet. ``extension`` is the raw extension data (without its 4-octet header).

    ``padding_size`` is the number of padding octets including the count octet (RFC 3550
    §5.1, P bit); the padding octets themselves are serialized as zeros then the count.
    """

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    marker: bool = False
    payload: bytes = b""
    csrc: tuple[int, ...] = ()
    extension_profile: int | None = None
    extension: bytes = b""
    padding_size: int = 0

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> RtpPacket:
        """Parse one RTP packet; raise :class:`RtpParseError` on anything malformed."""
        length = len(data)
        if length < RTP_HEADER_SIZE:
            raise RtpParseError(f"RTP packet of {length} octets is shorter than the 12-octet header")
        b0, b1, seq, ts, ssrc = _HEADER.unpack_from(data, 0)
        if b0 >> 6 != RTP_VERSION:
            raise RtpParseError(f"RTP version {b0 >> 6}, expected 2")
        if not b0 & 0x3F:  # the common case: no padding, no extension, no CSRCs
            return cls(b1 & 0x7F, seq, ts, ssrc, b1 > 0x7F, bytes(data[RTP_HEADER_SIZE:]))
        pos = RTP_HEADER_SIZE
        cc = b0 & 0x0F
        csrc: tuple[int, ...] = ()
        if cc:
            pos += 4 * cc
            if pos > length:
                raise RtpParseError(f"{cc} CSRCs overrun a {length}-octet packet")
            csrc = _CSRC[cc].unpack_from(data, RTP_HEADER_SIZE)
        profile: int | None = None
        extension = b""
        if b0 & 0x10:
            if pos + 4 > length:
                raise RtpParseError("header extension header overruns the packet")
            profile, words = _EXT_HEADER.unpack_from(data, pos)
            start = pos + 4
            pos = start + 4 * words
            if pos > length:
                raise RtpParseError(f"header extension of {words} words overruns the packet")
            extension = bytes(data[start:pos])
        end = length
        padding = 0
        if b0 & 0x20:
            if pos == length:
                raise RtpParseError("P bit set but no padding octets")
            padding = data[length - 1]
            if padding == 0:
                raise RtpParseError("RTP padding count of 0")
            if padding > length - pos:
                raise RtpParseError(f"RTP padding of {padding} octets exceeds the {length - pos}-octet body")
            end = length - padding
        return cls(
            b1 & 0x7F,
            seq,
            ts,
            ssrc,
            b1 > 0x7F,
            bytes(data[pos:end]),
            csrc,
            profile,
            extension,
            padding,
        )

    def serialize(self) -> bytes:
        """The wire form. Raises :class:`LocalProtocolError` for values that do not fit."""
        pt = self.payload_type
        if not 0 <= pt <= 0x7F:
            raise LocalProtocolError(f"payload type {pt} outside 0..127")
        csrc = self.csrc
        cc = len(csrc)
        pad = self.padding_size
        profile = self.extension_profile
        b0 = 0x80 | cc
        try:
            if not (cc or pad or profile is not None):  # the common case
                return (
                    _HEADER.pack(
                        b0,
                        (0x80 | pt) if self.marker else pt,
                        self.sequence_number,
                        self.timestamp,
                        self.ssrc,
                    )
                    + self.payload
                )
            if cc > _MAX_CSRC:
                raise LocalProtocolError(f"{cc} CSRCs, at most 15 fit")
            if pad:
                if not 0 < pad <= 0xFF:
                    raise LocalProtocolError(f"padding_size {pad} outside 1..255")
                b0 |= 0x20
            if profile is not None:
                b0 |= 0x10
            parts = [
                _HEADER.pack(
                    b0, (0x80 | pt) if self.marker else pt, self.sequence_number, self.timestamp, self.ssrc
                )
            ]
            if cc:
                parts.append(_CSRC[cc].pack(*csrc))
            if profile is not None:
                ext_len = len(self.extension)
                if ext_len % 4:
                    raise LocalProtocolError(f"extension data of {ext_len} octets is not a multiple of 4")
                parts.append(_EXT_HEADER.pack(profile, ext_len // 4))
                parts.append(self.extension)
        except struct.error as exc:
            raise LocalProtocolError(f"RTP header field out of range: {exc}") from None
        parts.append(self.payload)
        if pad:
            parts.append(bytes(pad - 1) + bytes((pad,)))
        return b"".join(parts)

    def __bytes__(self) -> bytes:
        return self.serialize()

    def extension_elements(self) -> list[tuple[int, bytes]]:
        """The RFC 8285 elements of the header extension; ``[]`` when there is none."""
        if self.extension_profile is None:
            return []
        return parse_extensions(self.extension_profile, self.extension)


def is_rtcp(data: bytes | bytearray | memoryview) -> bool:
    """RFC 5761 §4: on a multiplexed port, RTCP has a second octet of 192..223.

    With the marker bit masked that is payload type 64..95, which is why RTP must not use
    those payload types when RTP and RTCP share a port.
    """
    return len(data) >= 2 and 64 <= (data[1] & 0x7F) <= 95


def parse_extensions(profile: int, data: bytes | bytearray | memoryview) -> list[tuple[int, bytes]]:
    """Split RFC 8285 extension data into ``(id, value)`` elements, in wire order.

    One-byte form (§4.2): ``ID(4) L(4)`` with ``L`` = length - 1; ID 0 is a padding octet and
    ID 15 stops processing. Two-byte form (§4.3): ``ID(8) L(8)``; ID 0 is a padding octet.
    Other profiles are not RFC 8285 and have no defined elements.
    """
    out: list[tuple[int, bytes]] = []
    n = len(data)
    pos = 0
    if profile == ExtensionProfile.ONE_BYTE:
        while pos < n:
            b = data[pos]
            ident = b >> 4
            if ident == 0:
                pos += 1
                continue
            if ident == 15:
                break
            size = (b & 0x0F) + 1
            start = pos + 1
            pos = start + size
            if pos > n:
                raise RtpParseError(f"one-byte extension element {ident} overruns the extension")
            out.append((ident, bytes(data[start:pos])))
        return out
    if _is_two_byte(profile):
        while pos < n:
            ident = data[pos]
            if ident == 0:
                pos += 1
                continue
            if pos + 2 > n:
                raise RtpParseError(f"two-byte extension element {ident} has no length octet")
            size = data[pos + 1]
            start = pos + 2
            pos = start + size
            if pos > n:
                raise RtpParseError(f"two-byte extension element {ident} overruns the extension")
            out.append((ident, bytes(data[start:pos])))
        return out
    raise RtpParseError(f"extension profile 0x{profile:04x} is not an RFC 8285 profile")


def pack_extensions(
    elements: Iterable[tuple[int, bytes]], *, two_byte: bool | None = None
) -> tuple[int, bytes]:
    """Build RFC 8285 extension data; returns ``(profile, data)`` padded to 32 bits with zeros.

    The one-byte form is used when every ID is 1..14 and every value 1..16 octets, unless
    ``two_byte`` forces a choice (RFC 8285 §4.1: one form per packet).
    """
    elems = list(elements)
    fits_one = all(1 <= i <= 14 and 1 <= len(v) <= 16 for i, v in elems)
    if two_byte is None:
        two_byte = not fits_one
    elif not two_byte and not fits_one:
        raise LocalProtocolError("elements do not fit the one-byte form (IDs 1..14, 1..16 octets)")
    parts: list[bytes] = []
    if two_byte:
        for ident, value in elems:
            if not 1 <= ident <= 255 or len(value) > 255:
                raise LocalProtocolError(f"two-byte extension element {ident} of {len(value)} octets")
            parts.append(bytes((ident, len(value))))
            parts.append(bytes(value))
        profile = int(ExtensionProfile.TWO_BYTE)
    else:
        for ident, value in elems:
            parts.append(bytes(((ident << 4) | (len(value) - 1),)))
            parts.append(bytes(value))
        profile = int(ExtensionProfile.ONE_BYTE)
    data = b"".join(parts)
    return profile, data + bytes(-len(data) % 4)
