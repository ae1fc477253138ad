"""RTCP report scheduling for one local RTP stream (RFC 3550 §6.2, §6.3, Appendix A.7).

Sans-IO: the caller feeds what it sent (:meth:`RtcpScheduler.on_rtp_sent`), registers the
:class:`~rtpcore.rtp.stats.ReceiverStats` it keeps per remote SSRC, passes RTCP datagrams
in (:meth:`~RtcpScheduler.receive`), arms one timer at :meth:`~RtcpScheduler.next_deadline`
and sends whatever :meth:`~RtcpScheduler.datagrams_to_send` returns.

Reports: an SR when we sent RTP since the last report or the one before it (§6.4), else
an RR; report blocks for every source heard since the last report (at most 31 per packet,
more go in extra RRs); then SDES with our CNAME (§6.1 compound order). :meth:`close`
sends a final report plus BYE (§6.3.7; sent at once, as allowed below 50 members).

Interval (A.7 ``rtcp_interval``): ``T = max(avg_rtcp_size * n / rtcp_bw, T_min)``,
randomized by ``[0.5, 1.5)`` and divided by ``e - 3/2``; ``T_min`` is 5 s (or the reduced
minimum ``360 / session kbit/s``), halved before the first report. Timer reconsideration
runs at each expiry, reverse reconsideration when a BYE shrinks the membership.

::

    [waiting] --timeout, tp + T > now (reconsidered)--> [waiting, tn = tp + T]
    [waiting] --timeout, tp + T <= now--> send SR|RR + SDES --> [waiting, tn = now + T]
    [waiting] --close()--> send SR|RR + SDES + BYE --> [closed] (next_deadline() is None)
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import LocalProtocolError
from .rtcp import (
    ReportBlock,
    RtcpByePacket,
    RtcpPacket,
    RtcpRrPacket,
    RtcpSdesPacket,
    RtcpSrPacket,
    SdesChunk,
    SdesItem,
    SdesItemType,
    ntp_from_unix,
    parse_compound,
    serialize_compound,
)
from .stats import ReceiverStats, round_trip_time

__all__ = ["ByeReceived", "ReportReceived", "RtcpConfig", "RtcpEvent", "RtcpScheduler"]

_COMPENSATION = math.e - 1.5  # A.7: corrects the timer reconsideration bias
_MAX_BLOCKS = 31


@dataclass(frozen=True, slots=True, kw_only=True)
class RtcpConfig:
    """RTCP bandwidth and timing parameters (RFC 3550 §6.2)."""

    session_bandwidth: float = 64_000.0
    """Session bandwidth in bit/s (e.g. the SDP b=AS value); RTCP gets ``rtcp_fraction``."""
    rtcp_fraction: float = 0.05
    """Share of the session bandwidth for RTCP (§6.2: 5 %)."""
    sender_fraction: float = 0.25
    """Share of the RTCP bandwidth reserved for senders (§6.2: 1/4)."""
    min_interval: float = 5.0
    """T_min in seconds (§6.2)."""
    reduced_minimum: bool = False
    """Use the §6.2 reduced minimum ``360 / (session_bandwidth / 1000)`` instead of T_min."""
    packet_overhead: int = 28
    """IP + UDP octets counted into ``avg_rtcp_size`` per packet (§6.2: lower-layer headers)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportReceived:
    """A peer reported on our stream; ``rtt`` in seconds when LSR/DLSR allow it."""

    reporter_ssrc: int
    block: ReportBlock
    rtt: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ByeReceived:
    """A remote source left the session (RFC 3550 §6.6)."""

    ssrc: int
    reason: str | None


RtcpEvent = ReportReceived | ByeReceived


class RtcpScheduler:
    """Decides when to send RTCP and builds the compound packets."""

    def __init__(
        self,
        ssrc: int,
        cname: str,
        now: float,
        *,
        clock_rate: int,
        config: RtcpConfig | None = None,
        rng: Callable[[int], bytes] = os.urandom,
        wallclock_offset: float = 0.0,
    ) -> None:
        if clock_rate <= 0:
            raise LocalProtocolError(f"clock_rate {clock_rate} must be positive")
        self.ssrc = ssrc
        self.cname = cname
        self.clock_rate = clock_rate
        self.config = config or RtcpConfig()
        self.wallclock_offset = wallclock_offset
        self.rtt: float | None = None
        self._rng = rng
        self._log = logging.LoggerAdapter(logging.getLogger(__name__), {"ssrc": f"{ssrc:08x}"})
        self._sources: dict[int, ReceiverStats] = {}
        self._members: set[int] = set()
        self._pmembers = 1
        self._outbox: list[bytes] = []
        self._events: list[RtcpEvent] = []
        # Sender state (inputs from the media path).
        self._packet_count = 0
        self._octet_count = 0
        self._rtp_timestamp = 0
        self._rtp_time = now
        self._packets_at_reports = (0, 0)  # packet count at the last and second-last report
        self._sent_rtcp = False
        self._closed = False
        # A.7 timer state.
        self._initial = True
        self._avg_rtcp_size = float(
            len(self._compound(now, bye_reason=None, probe=True)) + self.config.packet_overhead
        )
        self._tp = now
        self._tn = now + self._interval()

    # -- inputs ------------------------------------------------------------------------
    def on_rtp_sent(self, *, packet_count: int, octet_count: int, rtp_timestamp: int, now: float) -> None:
        """Our sender totals after sending an RTP packet with ``rtp_timestamp`` at ``now``."""
        self._packet_count = packet_count
        self._octet_count = octet_count
        self._rtp_timestamp = rtp_timestamp
        self._rtp_time = now

    def add_source(self, stats: ReceiverStats) -> None:
        """Report on this remote source (its stats are updated by the caller)."""
        self._sources[stats.ssrc] = stats
        self._members.add(stats.ssrc)

    def remove_source(self, ssrc: int) -> None:
        self._sources.pop(ssrc, None)
        self._members.discard(ssrc)

    def receive(self, data: bytes, now: float) -> list[RtcpPacket]:
        """Process an RTCP datagram; raises RtpParseError (drop it) when malformed."""
        packets = parse_compound(data)
        self._avg_rtcp_size += (len(data) + self.config.packet_overhead - self._avg_rtcp_size) / 16.0
        for packet in packets:
            if isinstance(packet, RtcpSrPacket | RtcpRrPacket):
                if packet.ssrc != self.ssrc:
                    self._members.add(packet.ssrc)
                if isinstance(packet, RtcpSrPacket) and packet.ssrc in self._sources:
                    self._sources[packet.ssrc].on_sender_report(packet.ntp_timestamp, now)
                for block in packet.reports:
                    if block.ssrc == self.ssrc:
                        rtt = round_trip_time(block, now, wallclock_offset=self.wallclock_offset)
                        if rtt is not None:
                            self.rtt = rtt
                        self._events.append(ReportReceived(reporter_ssrc=packet.ssrc, block=block, rtt=rtt))
            elif isinstance(packet, RtcpSdesPacket):
                self._members.update(c.ssrc for c in packet.chunks if c.ssrc != self.ssrc)
            elif isinstance(packet, RtcpByePacket):
                for ssrc in packet.sources:
                    if ssrc == self.ssrc:
                        continue
                    self._events.append(ByeReceived(ssrc=ssrc, reason=packet.reason_text))
                    self._sources.pop(ssrc, None)
                    self._members.discard(ssrc)
                self._reverse_reconsider(now)
        return packets

    # -- outputs -----------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        return None if self._closed else self._tn

    def handle_timeout(self, now: float) -> None:
        if self._closed or now < self._tn:
            return
        interval = self._interval()
        if self._tp + interval > now:
            self._tn = self._tp + interval  # A.7 OnExpire: reconsidered, not yet
            return
        self._send(self._compound(now, bye_reason=None))
        self._tp = now
        self._initial = False
        self._pmembers = self._member_count()
        self._tn = now + self._interval()

    def close(self, now: float, reason: str | None = None) -> None:
        """Leave: a final report with BYE, unless we never sent RTP or RTCP (§6.3.7)."""
        if self._closed:
            return
        self._closed = True
        if self._sent_rtcp or self._packet_count:
            self._send(self._compound(now, bye_reason=reason or ""))
            self._log.debug("RTCP BYE queued")

    def datagrams_to_send(self) -> list[bytes]:
        out, self._outbox = self._outbox, []
        return out

    def events(self) -> list[RtcpEvent]:
        out, self._events = self._events, []
        return out

    @property
    def we_sent(self) -> bool:
        """RTP sent since the second-last report, so this report is an SR (§6.4)."""
        return self._packet_count != self._packets_at_reports[1]

    # -- internals ---------------------------------------------------------------------
    def _member_count(self) -> int:
        return len(self._members) + 1

    def _sender_count(self) -> int:
        return sum(1 for s in self._sources.values() if s.active) + (1 if self.we_sent else 0)

    def _interval(self) -> float:
        """RFC 3550 A.7 ``rtcp_interval()``."""
        cfg = self.config
        rtcp_bw = cfg.session_bandwidth * cfg.rtcp_fraction / 8.0  # octets per second
        if cfg.reduced_minimum:
            t_min = 360.0 / (cfg.session_bandwidth / 1000.0)
        else:
            t_min = cfg.min_interval
        if self._initial:
            t_min /= 2
        members = self._member_count()
        senders = self._sender_count()
        n = members
        if senders <= members * cfg.sender_fraction:
            if self.we_sent:
                rtcp_bw *= cfg.sender_fraction
                n = senders
            else:
                rtcp_bw *= 1 - cfg.sender_fraction
                n -= senders
        t = self._avg_rtcp_size * n / rtcp_bw if rtcp_bw > 0 else t_min
        t = max(t, t_min)
        uniform = int.from_bytes(self._rng(4), "big") / 4294967296.0
        return t * (uniform + 0.5) / _COMPENSATION

    def _reverse_reconsider(self, now: float) -> None:
        """A.7 reverse reconsideration after members left (BYE)."""
        members = self._member_count()
        if members >= self._pmembers or self._closed:
            return
        ratio = members / self._pmembers
        self._tn = now + ratio * (self._tn - now)
        self._tp = now - ratio * (now - self._tp)
        self._pmembers = members

    def _compound(self, now: float, *, bye_reason: str | None, probe: bool = False) -> bytes:
        blocks: list[ReportBlock] = []
        if not probe:
            blocks = [s.make_report_block(now) for s in self._sources.values() if s.active]
        first, rest = blocks[:_MAX_BLOCKS], blocks[_MAX_BLOCKS:]
        packets: list[RtcpPacket] = []
        if not probe and self.we_sent:
            elapsed = round((now - self._rtp_time) * self.clock_rate)
            packets.append(
                RtcpSrPacket(
                    ssrc=self.ssrc,
                    ntp_timestamp=ntp_from_unix(now + self.wallclock_offset),
                    rtp_timestamp=(self._rtp_timestamp + elapsed) & 0xFFFFFFFF,
                    packet_count=self._packet_count & 0xFFFFFFFF,
                    octet_count=self._octet_count & 0xFFFFFFFF,
                    reports=tuple(first),
                )
            )
        else:
            packets.append(RtcpRrPacket(ssrc=self.ssrc, reports=tuple(first)))
        for i in range(0, len(rest), _MAX_BLOCKS):
            packets.append(RtcpRrPacket(ssrc=self.ssrc, reports=tuple(rest[i : i + _MAX_BLOCKS])))
        cname = SdesItem(SdesItemType.CNAME, self.cname.encode("utf-8")[:255])
        packets.append(RtcpSdesPacket((SdesChunk(self.ssrc, (cname,)),)))
        if bye_reason is not None:
            reason = bye_reason.encode("utf-8")[:255] or None
            packets.append(RtcpByePacket((self.ssrc,), reason))
        if not probe:
            self._packets_at_reports = (self._packet_count, self._packets_at_reports[0])
        return serialize_compound(packets)

    def _send(self, datagram: bytes) -> None:
        self._outbox.append(datagram)
        self._sent_rtcp = True
        self._avg_rtcp_size += (len(datagram) + self.config.packet_overhead - self._avg_rtcp_size) / 16.0
        self._log.debug("RTCP compound queued, %d octets", len(datagram))
