"""First-octet demultiplexing of one UDP port (RFC 7983 §7, updating RFC 5764 §5.1.2).

With ICE, DTLS-SRTP and rtcp-mux everything shares one 5-tuple; the first octet tells the
protocols apart, and for RTP vs RTCP the second octet does (RFC 5761 §4)::

                 +----------------+
                 |        [0..3] -+--> STUN
                 |      [16..19] -+--> ZRTP
    packet -->   |      [20..63] -+--> DTLS
                 |      [64..79] -+--> TURN channel
                 |    [128..191] -+--> RTP / RTCP (second octet, masked: 64..95 is RTCP)
                 |          else -+--> drop
                 +----------------+

Real peers step outside this: coturn's ``turnutils_uclient`` picks channel numbers from the
old RFC 5766 range (0x55E8: first octet 85), which this table, like RFC 7983, drops.
"""

from __future__ import annotations

from enum import StrEnum

from .packet import is_rtcp

__all__ = ["PacketKind", "classify"]


class PacketKind(StrEnum):
    """What :func:`classify` found; the values compare equal to plain strings."""

    STUN = "stun"
    ZRTP = "zrtp"
    DTLS = "dtls"
    TURN_CHANNEL = "turn-channel"
    RTP = "rtp"
    RTCP = "rtcp"
    UNKNOWN = "unknown"


def _table() -> tuple[PacketKind, ...]:
    kinds = [PacketKind.UNKNOWN] * 256
    for lo, hi, kind in (
        (0, 3, PacketKind.STUN),
        (16, 19, PacketKind.ZRTP),
        (20, 63, PacketKind.DTLS),
        (64, 79, PacketKind.TURN_CHANNEL),
        (128, 191, PacketKind.RTP),
    ):
        kinds[lo : hi + 1] = [kind] * (hi - lo + 1)
    return tuple(kinds)


_BY_FIRST_OCTET = _table()


def classify(data: bytes | bytearray | memoryview) -> PacketKind:
    """Classify one datagram by its first octet (and the second for RTP vs RTCP)."""
    if not data:
        return PacketKind.UNKNOWN
    kind = _BY_FIRST_OCTET[data[0]]
    if kind is PacketKind.RTP:
        if len(data) < 2:
            return PacketKind.UNKNOWN
        if is_rtcp(data):
            return PacketKind.RTCP
    return kind
