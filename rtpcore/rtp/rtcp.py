"""RTCP packets and compound packets (RFC 3550 §6.1, §6.4-6.7; RFC 4585 §6; RFC 3611 §3).

Every RTCP packet starts with the same 4-octet header (RFC 3550 §6.4.1)::

    |V=2|P| count(5) |  packet type (8)  |   length in 32-bit words minus one (16)   |

and several of them are stacked into one *compound* datagram (§6.1). One frozen dataclass
per packet type, each with ``serialize()``; :func:`parse_compound` splits a datagram and
dispatches on the packet type:

=====  ==========================  =========================================================
PT     class                       contents
=====  ==========================  =========================================================
200    :class:`RtcpSrPacket`       sender info + report blocks (§6.4.1)
201    :class:`RtcpRrPacket`       report blocks (§6.4.2)
202    :class:`RtcpSdesPacket`     chunks of (type, value) items, CNAME etc. (§6.5)
203    :class:`RtcpByePacket`      leaving sources + optional reason (§6.6)
204    :class:`RtcpAppPacket`      application-defined (§6.7)
205    :class:`RtcpRtpfbPacket`    transport feedback; generic NACK is FMT 1 (RFC 4585 §6.2.1)
206    :class:`RtcpPsfbPacket`     payload-specific feedback; PLI is FMT 1 (RFC 4585 §6.3.1)
207    :class:`RtcpXrPacket`       extended reports, blocks kept opaque (RFC 3611 §3)
other  :class:`RtcpUnknownPacket`  kept verbatim so nothing is dropped
=====  ==========================  =========================================================

Parsing is lenient where real peers differ from the RFC (libre sends BYE first and a
stand-alone APP; RFC 5506 allows non-compound packets), and strict about lengths: any
length that overruns raises :class:`~rtpcore.errors.RtpParseError`. Packet-level padding
(P bit) is removed on parse; serialize adds it back only where a body (APP data, FCI,
unknown packets) is not a multiple of 4 octets. Text (CNAME, BYE reason) stays ``bytes``
on the wire; the ``*_text`` properties decode it.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, Self

from ..errors import LocalProtocolError, RtpParseError

__all__ = [
    "NTP_UNIX_EPOCH_OFFSET",
    "PsfbFormat",
    "ReportBlock",
    "RtcpAppPacket",
    "RtcpByePacket",
    "RtcpPacket",
    "RtcpPacketType",
    "RtcpPsfbPacket",
    "RtcpRrPacket",
    "RtcpRtpfbPacket",
    "RtcpSdesPacket",
    "RtcpSrPacket",
    "RtcpUnknownPacket",
    "RtcpXrPacket",
    "RtpfbFormat",
    "SdesChunk",
    "SdesItem",
    "SdesItemType",
    "XrBlock",
    "ntp_from_unix",
    "ntp_middle32",
    "pack_nack",
    "parse_compound",
    "parse_nack",
    "serialize_compound",
    "unix_from_ntp",
]

RTCP_VERSION = 2
_MAX_COUNT = 31
_HEADER = struct.Struct("!BBH")
_REPORT = struct.Struct("!IIIIII")
_SENDER_INFO = struct.Struct("!IQIII")
_U32 = struct.Struct("!I")
_TWO_U32 = struct.Struct("!II")
_XR_BLOCK = struct.Struct("!BBH")
_NACK = struct.Struct("!HH")

#: Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01), RFC 3550 §4.
NTP_UNIX_EPOCH_OFFSET = 2_208_988_800


class RtcpPacketType(IntEnum):
    """RTCP packet types (RFC 3550 §12.1, RFC 4585 §6.1, RFC 3611 §2)."""

    SR = 200
    RR = 201
    SDES = 202
    BYE = 203
    APP = 204
    RTPFB = 205
    PSFB = 206
    XR = 207


class SdesItemType(IntEnum):
    """SDES item types (RFC 3550 §6.5, §12.2)."""

    END = 0
    CNAME = 1
    NAME = 2
    EMAIL = 3
    PHONE = 4
    LOC = 5
    TOOL = 6
    NOTE = 7
    PRIV = 8


class RtpfbFormat(IntEnum):
    """Transport-layer feedback message types (RFC 4585 §6.2)."""

    NACK = 1


class PsfbFormat(IntEnum):
    """Payload-specific feedback message types (RFC 4585 §6.3, RFC 5104 §4.3)."""

    PLI = 1
    SLI = 2
    RPSI = 3
    FIR = 4
    AFB = 15


# -- NTP timestamps (RFC 3550 §4) -------------------------------------------------------


def ntp_from_unix(seconds: float) -> int:
    """64-bit NTP timestamp (32.32 fixed point since 1900) for a Unix time in seconds."""
    whole = math.floor(seconds)
    frac = int((seconds - whole) * 4294967296.0)
    return (((whole + NTP_UNIX_EPOCH_OFFSET) & 0xFFFFFFFF) << 32) | (frac & 0xFFFFFFFF)


def unix_from_ntp(ntp: int) -> float:
    """Inverse of :func:`ntp_from_unix` (era 0)."""
    return (ntp >> 32) - NTP_UNIX_EPOCH_OFFSET + (ntp & 0xFFFFFFFF) / 4294967296.0


def ntp_middle32(ntp: int) -> int:
    """The middle 32 bits of a 64-bit NTP timestamp (16.16), as used by LSR (§6.4.1)."""
    return (ntp >> 16) & 0xFFFFFFFF


# -- helpers ---------------------------------------------------------------------------


def _header(count: int, packet_type: int, body: bytes) -> bytes:
    """Prefix the common header; a body that is not 32-bit aligned gets P-bit padding (§6.4.1)."""
    if not 0 <= count <= _MAX_COUNT:
        raise LocalProtocolError(f"RTCP count {count} outside 0..31")
    b0 = 0x80 | count
    pad = -len(body) % 4
    if pad:
        body += bytes(pad - 1) + bytes((pad,))
        b0 |= 0x20
    words = len(body) // 4
    if words > 0xFFFF:
        raise LocalProtocolError("RTCP packet too long")
    return _HEADER.pack(b0, packet_type, words) + body


def _pad4(data: bytes) -> bytes:
    return data + bytes(-len(data) % 4)


def _pack_u32s(values: Sequence[int]) -> bytes:
    try:
        return struct.pack(f"!{len(values)}I", *values)
    except struct.error as exc:
        raise LocalProtocolError(f"RTCP field out of range: {exc}") from None


# -- report blocks ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """A reception report block (RFC 3550 §6.4.1). ``packets_lost`` is signed 24-bit."""

    ssrc: int
    fraction_lost: int
    packets_lost: int
    highest_sequence: int
    jitter: int
    lsr: int
    dlsr: int

    SIZE: ClassVar[int] = 24

    @classmethod
    def parse(cls, data: bytes | memoryview, offset: int = 0) -> ReportBlock:
        if offset + 24 > len(data):
            raise RtpParseError("report block truncated")
        ssrc, word, highest, jitter, lsr, dlsr = _REPORT.unpack_from(data, offset)
        lost = word & 0xFFFFFF
        if lost & 0x800000:
            lost -= 0x1000000
        return cls(ssrc, word >> 24, lost, highest, jitter, lsr, dlsr)

    def serialize(self) -> bytes:
        if not -0x800000 <= self.packets_lost <= 0x7FFFFF:
            raise LocalProtocolError(f"packets_lost {self.packets_lost} does not fit signed 24 bits")
        if not 0 <= self.fraction_lost <= 0xFF:
            raise LocalProtocolError(f"fraction_lost {self.fraction_lost} outside 0..255")
        word = (self.fraction_lost << 24) | (self.packets_lost & 0xFFFFFF)
        return _pack_u32s((self.ssrc, word, self.highest_sequence, self.jitter, self.lsr, self.dlsr))


def _parse_reports(body: memoryview, offset: int, count: int) -> tuple[ReportBlock, ...]:
    return tuple(ReportBlock.parse(body, offset + 24 * i) for i in range(count))


# -- SR / RR ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RtcpSrPacket:
    """Sender report (RFC 3550 §6.4.1). ``ntp_timestamp`` is the full 64-bit value.

    ``extension`` holds profile-specific extension octets after the report blocks.
    """

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""

    packet_type: ClassVar[int] = RtcpPacketType.SR

    @classmethod
    def parse_body(cls, count: int, body: memoryview) -> RtcpSrPacket:
        end = 24 + 24 * count
        if end > len(body):
            raise RtpParseError(f"SR with {count} report blocks overruns its length")
        ssrc, ntp, rtp_ts, packets, octets = _SENDER_INFO.unpack_from(body, 0)
        return cls(ssrc, ntp, rtp_ts, packets, octets, _parse_reports(body, 24, count), bytes(body[end:]))

    def serialize(self) -> bytes:
        try:
            info = _SENDER_INFO.pack(
                self.ssrc, self.ntp_timestamp, self.rtp_timestamp, self.packet_count, self.octet_count
            )
        except struct.error as exc:
            raise LocalProtocolError(f"SR field out of range: {exc}") from None
        body = b"".join((info, *(r.serialize() for r in self.reports), self.extension))
        return _header(len(self.reports), self.packet_type, body)


@dataclass(frozen=True, slots=True)
class RtcpRrPacket:
    """Receiver report (RFC 3550 §6.4.2)."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""

    packet_type: ClassVar[int] = RtcpPacketType.RR

    @classmethod
    def parse_body(cls, count: int, body: memoryview) -> RtcpRrPacket:
        end = 4 + 24 * count
        if end > len(body):
            raise RtpParseError(f"RR with {count} report blocks overruns its length")
        (ssrc,) = _U32.unpack_from(body, 0)
        return cls(ssrc, _parse_reports(body, 4, count), bytes(body[end:]))

    def serialize(self) -> bytes:
        body = b"".join((_pack_u32s((self.ssrc,)), *(r.serialize() for r in self.reports), self.extension))
        return _header(len(self.reports), self.packet_type, body)


# -- SDES ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SdesItem:
    """One SDES item; ``type`` is an :class:`SdesItemType` value (1..255)."""

    type: int
    value: bytes

    @property
    def text(self) -> str:
        return self.value.decode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class SdesChunk:
    """The items describing one source (RFC 3550 §6.5)."""

    ssrc: int
    items: tuple[SdesItem, ...] = ()

    @property
    def cname(self) -> str | None:
        for item in self.items:
            if item.type == SdesItemType.CNAME:
                return item.text
        return None

    def serialize(self) -> bytes:
        parts = [_pack_u32s((self.ssrc,))]
        size = 0
        for item in self.items:
            if not 1 <= item.type <= 0xFF or len(item.value) > 0xFF:
                raise LocalProtocolError(f"SDES item type {item.type} with {len(item.value)} octets")
            parts.append(bytes((item.type, len(item.value))))
            parts.append(item.value)
            size += 2 + len(item.value)
        # At least one null octet ends the item list, then pad to 32 bits (§6.5).
        parts.append(bytes(4 - size % 4))
        return b"".join(parts)


@dataclass(frozen=True, slots=True)
class RtcpSdesPacket:
    """Source description (RFC 3550 §6.5)."""

    chunks: tuple[SdesChunk, ...] = ()

    packet_type: ClassVar[int] = RtcpPacketType.SDES

    @classmethod
    def parse_body(cls, count: int, body: memoryview) -> RtcpSdesPacket:
        n = len(body)
        pos = 0
        chunks = []
        for _ in range(count):
            if pos + 4 > n:
                raise RtpParseError("SDES chunk SSRC truncated")
            (ssrc,) = _U32.unpack_from(body, pos)
            pos += 4
            items = []
            while True:
                if pos >= n:
                    raise RtpParseError("SDES chunk is not terminated by a null octet")
                item_type = body[pos]
                if item_type == SdesItemType.END:
                    # The null octet, then up to the next 32-bit boundary (no length octet).
                    pos = (pos + 4) & ~3
                    break
                if pos + 2 > n:
                    raise RtpParseError("SDES item length truncated")
                start = pos + 2
                pos = start + body[pos + 1]
                if pos > n:
                    raise RtpParseError("SDES item overruns the packet")
                items.append(SdesItem(item_type, bytes(body[start:pos])))
            chunks.append(SdesChunk(ssrc, tuple(items)))
        if pos < n and any(body[pos:]):
            raise RtpParseError("SDES packet has data after its last chunk")
        return cls(tuple(chunks))

    def serialize(self) -> bytes:
        return _header(len(self.chunks), self.packet_type, b"".join(c.serialize() for c in self.chunks))


# -- BYE / APP -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RtcpByePacket:
    """Goodbye (RFC 3550 §6.6); ``reason`` is ``None`` when absent."""

    sources: tuple[int, ...]
    reason: bytes | None = None

    packet_type: ClassVar[int] = RtcpPacketType.BYE

    @property
    def reason_text(self) -> str | None:
        return None if self.reason is None else self.reason.decode("utf-8", errors="replace")

    @classmethod
    def parse_body(cls, count: int, body: memoryview) -> RtcpByePacket:
        end = 4 * count
        n = len(body)
        if end > n:
            raise RtpParseError(f"BYE with {count} sources overruns its length")
        sources = struct.unpack_from(f"!{count}I", body, 0)
        reason = None
        if end < n:
            start = end + 1
            stop = start + body[end]
            if stop > n:
                raise RtpParseError("BYE reason overruns the packet")
            reason = bytes(body[start:stop])
        return cls(sources, reason)

    def serialize(self) -> bytes:
        body = _pack_u32s(self.sources)
        if self.reason is not None:
            if len(self.reason) > 0xFF:
                raise LocalProtocolError("BYE reason longer than 255 octets")
            body += _pad4(bytes((len(self.reason),)) + self.reason)
        return _header(len(self.sources), self.packet_type, body)


@dataclass(frozen=True, slots=True)
class RtcpAppPacket:
    """Application-defined packet (RFC 3550 §6.7): 4-octet ASCII ``name`` and opaque data."""

    ssrc: int
    name: bytes
    data: bytes = b""
    subtype: int = 0

    packet_type: ClassVar[int] = RtcpPacketType.APP

    @classmethod
    def parse_body(cls, count: int, body: memoryview) -> RtcpAppPacket:
        if len(body) < 8:
            raise RtpParseError("APP packet shorter than SSRC + name")
        (ssrc,) = _U32.unpack_from(body, 0)
        return cls(ssrc, bytes(body[4:8]), bytes(body[8:]), count)

    def serialize(self) -> bytes:
        if len(self.name) != 4:
            raise LocalProtocolError("APP name must be 4 octets")
        return _header(self.subtype, self.packet_type, _pack_u32s((self.ssrc,)) + self.name + self.data)


# -- feedback (RFC 4585) ---------------------------------------------------------------


def parse_nack(fci: bytes) -> list[int]:
    """Lost sequence numbers from generic NACK FCI entries (PID, BLP) (RFC 4585 §6.2.1)."""
    if len(fci) % 4:
        raise RtpParseError("generic NACK FCI is not a multiple of 4 octets")
    lost: list[int] = []
    for pid, blp in _NACK.iter_unpack(fci):
        lost.append(pid)
        lost.extend((pid + i + 1) & 0xFFFF for i in range(16) if blp >> i & 1)
    return lost


def pack_nack(lost: Iterable[int]) -> bytes:
    """Generic NACK FCI for ``lost`` sequence numbers (ordered from the first, mod 2^16)."""
    seqs = list(dict.fromkeys(s & 0xFFFF for s in lost))
    if not seqs:
        return b""
    first = seqs[0]
    seqs.sort(key=lambda s: (s - first) & 0xFFFF)
    out = []
    i = 0
    while i < len(seqs):
        pid = seqs[i]
        blp = 0
        i += 1
        while i < len(seqs) and 1 <= (d := (seqs[i] - pid) & 0xFFFF) <= 16:
            blp |= 1 << (d - 1)
            i += 1
        out.append(_NACK.pack(pid, blp))
    return b"".join(out)


@dataclass(frozen=True, slots=True)
class _FeedbackPacket:
    """The common feedback layout (RFC 4585 §6.1): FMT in the count field, two SSRCs, FCI."""

    fmt: int
    ssrc: int
    media_ssrc: int
    fci: bytes = b""

    packet_type: ClassVar[int]

    @classmethod
    def parse_body(cls, count: int, body: memoryview) -> Self:
        if len(body) < 8:
            raise RtpParseError("feedback packet shorter than its two SSRCs")
        ssrc, media = _TWO_U32.unpack_from(body, 0)
        return cls(count, ssrc, media, bytes(body[8:]))

    def serialize(self) -> bytes:
        return _header(self.fmt, self.packet_type, _pack_u32s((self.ssrc, self.media_ssrc)) + self.fci)


@dataclass(frozen=True, slots=True)
class RtcpRtpfbPacket(_FeedbackPacket):
    """Transport-layer feedback (RFC 4585 §6.2); ``fmt`` 1 is generic NACK."""

    packet_type: ClassVar[int] = RtcpPacketType.RTPFB

    @classmethod
    def nack(cls, ssrc: int, media_ssrc: int, lost: Iterable[int]) -> RtcpRtpfbPacket:
        return cls(RtpfbFormat.NACK, ssrc, media_ssrc, pack_nack(lost))

    @property
    def lost(self) -> list[int]:
        """Sequence numbers a generic NACK asks for (raises RtpParseError on bad FCI)."""
        if self.fmt != RtpfbFormat.NACK:
            return []
        return parse_nack(self.fci)



@dataclass(frozen=True, slots=True)
class RtcpPsfbPacket(_FeedbackPacket):
    """Payload-specific feedback (RFC 4585 §6.3); ``fmt`` 1 with no FCI is PLI."""

    packet_type: ClassVar[int] = RtcpPacketType.PSFB

    @classmethod
    def pli(cls, ssrc: int, media_ssrc: int) -> RtcpPsfbPacket:
        return cls(PsfbFormat.PLI, ssrc, media_ssrc)

    @property
    def is_pli(self) -> bool:
        return self.fmt == PsfbFormat.PLI



# -- XR (RFC 3611) ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class XrBlock:
    """One extended report block, kept opaque (RFC 3611 §3): BT, type-specific, content."""

    block_type: int
    type_specific: int
    content: bytes

    def serialize(self) -> bytes:
        if len(self.content) % 4:
            raise LocalProtocolError("XR block content is not a multiple of 4 octets")
        return _XR_BLOCK.pack(self.block_type, self.type_specific, len(self.content) // 4) + self.content


@dataclass(frozen=True, slots=True)
class RtcpXrPacket:
    """Extended report (RFC 3611 §2): the sender SSRC and its report blocks."""

    ssrc: int
    blocks: tuple[XrBlock, ...] = ()

    packet_type: ClassVar[int] = RtcpPacketType.XR

    @classmethod
    def parse_body(cls, count: int, body: memoryview) -> RtcpXrPacket:
        n = len(body)
        if n < 4:
            raise RtpParseError("XR packet shorter than its SSRC")
        (ssrc,) = _U32.unpack_from(body, 0)
        pos = 4
        blocks = []
        while pos < n:
            if pos + 4 > n:
                raise RtpParseError("XR block header truncated")
            block_type, specific, words = _XR_BLOCK.unpack_from(body, pos)
            start = pos + 4
            pos = start + 4 * words
            if pos > n:
                raise RtpParseError("XR block overruns the packet")
            blocks.append(XrBlock(block_type, specific, bytes(body[start:pos])))
        return cls(ssrc, tuple(blocks))

    def serialize(self) -> bytes:
        return _header(
            0, self.packet_type, b"".join((_pack_u32s((self.ssrc,)), *(b.serialize() for b in self.blocks)))
        )


@dataclass(frozen=True, slots=True)
class RtcpUnknownPacket:
    """A packet type this module does not interpret, kept verbatim (count field and body)."""

    packet_type: int
    count: int
    body: bytes

    def serialize(self) -> bytes:
        return _header(self.count, self.packet_type, self.body)


RtcpPacket = (
    RtcpSrPacket
    | RtcpRrPacket
    | RtcpSdesPacket
    | RtcpByePacket
    | RtcpAppPacket
    | RtcpRtpfbPacket
    | RtcpPsfbPacket
    | RtcpXrPacket
    | RtcpUnknownPacket
)

_PARSERS: dict[int, Callable[[int, memoryview], RtcpPacket]] = {
    RtcpPacketType.SR: RtcpSrPacket.parse_body,
    RtcpPacketType.RR: RtcpRrPacket.parse_body,
    RtcpPacketType.SDES: RtcpSdesPacket.parse_body,
    RtcpPacketType.BYE: RtcpByePacket.parse_body,
    RtcpPacketType.APP: RtcpAppPacket.parse_body,
    RtcpPacketType.RTPFB: RtcpRtpfbPacket.parse_body,
    RtcpPacketType.PSFB: RtcpPsfbPacket.parse_body,
    RtcpPacketType.XR: RtcpXrPacket.parse_body,
}


def parse_compound(data: bytes | bytearray | memoryview) -> list[RtcpPacket]:
    """Split a compound RTCP datagram into packets (RFC 3550 §6.1, A.2 length checks)."""
    view = memoryview(data)
    n = len(view)
    if n == 0:
        raise RtpParseError("empty RTCP datagram")
    packets: list[RtcpPacket] = []
    pos = 0
    while pos < n:
        if pos + 4 > n:
            raise RtpParseError(f"RTCP header truncated at offset {pos}")
        b0, packet_type, words = _HEADER.unpack_from(view, pos)
        if b0 >> 6 != RTCP_VERSION:
            raise RtpParseError(f"RTCP version {b0 >> 6} at offset {pos}, expected 2")
        end = pos + 4 + 4 * words
        if end > n:
            raise RtpParseError(f"RTCP length {words} at offset {pos} overruns the {n}-octet datagram")
        body = view[pos + 4 : end]
        if b0 & 0x20:
            if not body:
                raise RtpParseError("RTCP P bit set on an empty packet")
            pad = body[-1]
            if pad == 0 or pad > len(body):
                raise RtpParseError(f"RTCP padding count {pad} invalid for a {len(body)}-octet body")
            body = body[: len(body) - pad]
        count = b0 & 0x1F
        parser = _PARSERS.get(packet_type)
        if parser is None:
            packets.append(RtcpUnknownPacket(packet_type, count, bytes(body)))
        else:
            packets.append(parser(count, body))
        pos = end
    return packets


def serialize_compound(packets: Iterable[RtcpPacket]) -> bytes:
    """Concatenate packets into one compound datagram."""
    return b"".join(p.serialize() for p in packets)
