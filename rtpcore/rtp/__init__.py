"""RTP and RTCP, sans-IO: packets (RFC 3550, RFC 8285), RTCP (RFC 3550, 4585, 3611),
receiver statistics (RFC 3550 A.1/A.3/A.8), RTCP scheduling (§6.3, A.7) and first-octet
demultiplexing (RFC 7983).
"""

from __future__ import annotations

from .demux import PacketKind, classify
from .packet import ExtensionProfile, RtpPacket, is_rtcp, pack_extensions, parse_extensions
from .rtcp import (
    ReportBlock,
    RtcpAppPacket,
    RtcpByePacket,
    RtcpPacket,
    RtcpPacketType,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSdesPacket,
    RtcpSrPacket,
    RtcpUnknownPacket,
    RtcpXrPacket,
    SdesChunk,
    SdesItem,
    SdesItemType,
    XrBlock,
    ntp_from_unix,
    ntp_middle32,
    parse_compound,
    serialize_compound,
    unix_from_ntp,
)
from .session import ByeReceived, ReportReceived, RtcpConfig, RtcpEvent, RtcpScheduler
from .stats import ReceiverStats, SequenceLimits, round_trip_time

__all__ = [
    "ByeReceived",
    "ExtensionProfile",
    "PacketKind",
    "ReceiverStats",
    "ReportBlock",
    "ReportReceived",
    "RtcpAppPacket",
    "RtcpByePacket",
    "RtcpConfig",
    "RtcpEvent",
    "RtcpPacket",
    "RtcpPacketType",
    "RtcpPsfbPacket",
    "RtcpRrPacket",
    "RtcpRtpfbPacket",
    "RtcpScheduler",
    "RtcpSdesPacket",
    "RtcpSrPacket",
    "RtcpUnknownPacket",
    "RtcpXrPacket",
    "RtpPacket",
    "SdesChunk",
    "SdesItem",
    "SdesItemType",
    "SequenceLimits",
    "XrBlock",
    "classify",
    "is_rtcp",
    "ntp_from_unix",
    "ntp_middle32",
    "pack_extensions",
    "parse_compound",
    "parse_extensions",
    "round_trip_time",
    "serialize_compound",
    "unix_from_ntp",
]
