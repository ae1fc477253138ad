"""RTCP scheduling (RFC 3550 §6.2-6.4, A.7), unit tests and a call over the simulated network."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import pytest

from netsim import LinkProfile, Simulation
from rtpcore.errors import LocalProtocolError, RtpParseError
from rtpcore.rtp.demux import PacketKind, classify
from rtpcore.rtp.packet import RtpPacket
from rtpcore.rtp.rtcp import (
    ReportBlock,
    RtcpByePacket,
    RtcpRrPacket,
    RtcpSdesPacket,
    RtcpSrPacket,
    SdesChunk,
    SdesItem,
    ntp_from_unix,
    parse_compound,
    serialize_compound,
)
from rtpcore.rtp.session import ByeReceived, ReportReceived, RtcpConfig, RtcpScheduler
from rtpcore.rtp.stats import ReceiverStats

COMP = math.e - 1.5
SSRC = 0x11111111
PEER = 0x22222222


def fixed_rng(fraction: float) -> Callable[[int], bytes]:
    """rng whose uniform draw is ``fraction`` (0 <= fraction < 1)."""
    value = int(fraction * 2**32).to_bytes(4, "big")
    return lambda n: value[:n]


def make(now: float = 0.0, fraction: float = 0.0, **kw: Any) -> RtcpScheduler:
    return RtcpScheduler(SSRC, "me@example.org", now, clock_rate=8000, rng=fixed_rng(fraction), **kw)


def run_until_report(s: RtcpScheduler, limit: float = 100.0) -> tuple[float, bytes]:
    while True:
        t = s.next_deadline()
        assert t is not None and t < limit
        s.handle_timeout(t)
        out = s.datagrams_to_send()
        if out:
            assert len(out) == 1
            return t, out[0]


def test_first_interval_is_half_the_minimum_randomized() -> None:
    for fraction in (0.0, 0.5, 0.999):
        s = make(10.0, fraction)
        deadline = s.next_deadline()
        assert deadline is not None
        # A.7: T_min/2 = 2.5 s, times [0.5, 1.5), divided by e - 3/2.
        assert deadline - 10.0 == pytest.approx(2.5 * (fraction + 0.5) / COMP, rel=1e-6)


def test_nothing_before_the_deadline_and_rr_with_cname_at_it() -> None:
    s = make()
    deadline = s.next_deadline()
    assert deadline is not None
    s.handle_timeout(deadline - 0.001)
    assert s.datagrams_to_send() == []
    s.handle_timeout(deadline)
    (datagram,) = s.datagrams_to_send()
    rr, sdes = parse_compound(datagram)
    assert rr == RtcpRrPacket(SSRC)
    assert isinstance(sdes, RtcpSdesPacket) and sdes.chunks[0].ssrc == SSRC
    assert sdes.chunks[0].cname == "me@example.org"
    assert classify(datagram) is PacketKind.RTCP


def test_regular_interval_uses_the_5_second_minimum() -> None:
    for fraction in (0.0, 0.25, 0.999):
        s = make(0.0, fraction)
        t1, _ = run_until_report(s)
        t2, _ = run_until_report(s)
        assert t2 - t1 == pytest.approx(5.0 * (fraction + 0.5) / COMP, rel=1e-6)
        assert 5.0 * 0.5 / COMP <= t2 - t1 < 5.0 * 1.5 / COMP


def test_reduced_minimum() -> None:
    cfg = RtcpConfig(session_bandwidth=1_000_000.0, reduced_minimum=True)
    s = make(0.0, 0.5, config=cfg)
    t1, _ = run_until_report(s)
    t2, _ = run_until_report(s)
    assert t2 - t1 == pytest.approx(0.36 / COMP, rel=1e-6)  # 360 / 1000 kbit/s


def test_sr_when_we_sent_then_rr_two_reports_after_we_stopped() -> None:
    s = make(0.0, 0.5)
    s.on_rtp_sent(packet_count=50, octet_count=8000, rtp_timestamp=16000, now=1.0)
    t, datagram = run_until_report(s)
    sr = parse_compound(datagram)[0]
    assert isinstance(sr, RtcpSrPacket)
    assert (sr.ssrc, sr.packet_count, sr.octet_count) == (SSRC, 50, 8000)
    assert sr.rtp_timestamp == 16000 + round((t - 1.0) * 8000)  # extrapolated to the report time
    assert sr.ntp_timestamp == ntp_from_unix(t)
    # No more RTP: the next report is still an SR (sent since the second-last report, §6.4) ...
    _, datagram = run_until_report(s)
    assert isinstance(parse_compound(datagram)[0], RtcpSrPacket)
    # ... and the one after is an RR.
    _, datagram = run_until_report(s)
    assert isinstance(parse_compound(datagram)[0], RtcpRrPacket)


def test_report_blocks_for_active_sources_only_and_31_per_packet() -> None:
    s = make(0.0, 0.5)
    sources = [ReceiverStats(0x1000 + i, 8000) for i in range(40)]
    for st in sources:
        s.add_source(st)
        for seq in range(10):
            st.update(seq, seq * 160, seq * 0.02)
    _, datagram = run_until_report(s)
    packets = parse_compound(datagram)
    assert [type(p).__name__ for p in packets] == ["RtcpRrPacket", "RtcpRrPacket", "RtcpSdesPacket"]
    rrs = [p for p in packets if isinstance(p, RtcpRrPacket)]
    assert [len(p.reports) for p in rrs] == [31, 9]
    reported = {b.ssrc for p in rrs for b in p.reports}
    assert reported == {st.ssrc for st in sources}
    # Nobody sent since: the next report carries no blocks.
    _, datagram = run_until_report(s)
    assert parse_compound(datagram)[0] == RtcpRrPacket(SSRC)
    s.remove_source(0x1000)
    sources[1].update(10, 1600, 5.0)
    _, datagram = run_until_report(s)
    rr = parse_compound(datagram)[0]
    assert isinstance(rr, RtcpRrPacket)
    (block,) = rr.reports
    assert block.ssrc == 0x1001


def test_timer_reconsideration_when_membership_grows() -> None:
    s = make(0.0, 0.5)
    deadline = s.next_deadline()
    assert deadline is not None
    # 200 members announce themselves before our first report: the interval grows past it.
    sdes = RtcpSdesPacket(tuple(SdesChunk(0x5000 + i, (SdesItem(1, b"m"),)) for i in range(30)))
    for k in range(7):
        chunk = RtcpSdesPacket(tuple(SdesChunk(c.ssrc + 100 * k, c.items) for c in sdes.chunks))
        s.receive(serialize_compound([RtcpRrPacket(0x9000 + k), chunk]), 1.0)
    s.handle_timeout(deadline)
    assert s.datagrams_to_send() == []  # reconsidered (A.7 OnExpire), not sent
    later = s.next_deadline()
    assert later is not None and later > deadline


def test_receive_sr_feeds_lsr_and_rr_about_us_gives_rtt() -> None:
    offset = 1_700_000_000.0
    s = make(0.0, 0.5, wallclock_offset=offset)
    peer_stats = ReceiverStats(PEER, 8000, wallclock_offset=offset)
    s.add_source(peer_stats)
    for seq in range(5):
        peer_stats.update(seq, seq * 160, seq * 0.02)
    peer_ntp = ntp_from_unix(1.0 + offset)
    s.receive(RtcpSrPacket(PEER, peer_ntp, 0, 10, 1600).serialize(), 1.0)
    assert s.events() == []
    # Our report carries LSR/DLSR for the peer.
    s.on_rtp_sent(packet_count=1, octet_count=160, rtp_timestamp=0, now=1.0)
    t, datagram = run_until_report(s)
    sr = parse_compound(datagram)[0]
    assert isinstance(sr, RtcpSrPacket)
    (block,) = sr.reports
    assert block.ssrc == PEER and block.lsr == (peer_ntp >> 16) & 0xFFFFFFFF
    assert block.dlsr == pytest.approx((t - 1.0) * 65536, abs=1)
    # The peer answers 0.1 s later having held our SR for 0.06 s: RTT 0.04 s.
    lsr = (sr.ntp_timestamp >> 16) & 0xFFFFFFFF
    rr = RtcpRrPacket(PEER, (ReportBlock(SSRC, 0, 0, 5, 0, lsr, int(0.06 * 65536)),))
    s.receive(rr.serialize(), t + 0.1)
    (event,) = s.events()
    assert isinstance(event, ReportReceived) and event.reporter_ssrc == PEER
    assert event.rtt == pytest.approx(0.04, abs=3 / 65536)
    assert s.rtt == event.rtt


def test_bye_received_removes_member_and_pulls_the_timer_in() -> None:
    s = make(0.0, 0.5)
    for i in range(20):
        s.receive(serialize_compound([RtcpRrPacket(0x7000 + i)]), 0.1)
    run_until_report(s)  # pmembers = 21 from here (A.7)
    deadline = s.next_deadline()
    assert deadline is not None
    s.receive(serialize_compound([RtcpRrPacket(0x7000), RtcpByePacket((0x7000, SSRC), b"done")]), 3.0)
    (event,) = s.events()
    assert event == ByeReceived(ssrc=0x7000, reason="done")
    earlier = s.next_deadline()
    assert earlier is not None and earlier < deadline  # A.7 reverse reconsideration


def test_close_sends_bye_after_a_report() -> None:
    s = make(0.0, 0.5)
    run_until_report(s)
    s.close(20.0, reason="bye now")
    (datagram,) = s.datagrams_to_send()
    packets = parse_compound(datagram)
    assert isinstance(packets[0], RtcpRrPacket) and isinstance(packets[1], RtcpSdesPacket)
    assert packets[-1] == RtcpByePacket((SSRC,), b"bye now")
    assert s.next_deadline() is None
    s.handle_timeout(100.0)
    assert s.datagrams_to_send() == []
    s.close(101.0)
    assert s.datagrams_to_send() == []


def test_close_without_anything_sent_sends_no_bye() -> None:
    s = make()
    s.close(0.1)
    assert s.datagrams_to_send() == [] and s.next_deadline() is None


def test_close_after_rtp_only_sends_sr_and_bye_without_reason() -> None:
    s = make()
    s.on_rtp_sent(packet_count=3, octet_count=480, rtp_timestamp=480, now=0.06)
    s.close(0.1)
    (datagram,) = s.datagrams_to_send()
    packets = parse_compound(datagram)
    assert isinstance(packets[0], RtcpSrPacket)
    assert packets[-1] == RtcpByePacket((SSRC,), None)


def test_malformed_rtcp_raises_parse_error() -> None:
    s = make()
    with pytest.raises(RtpParseError):
        s.receive(b"\x81\xc9\x00\x07", 1.0)


def test_bad_config() -> None:
    with pytest.raises(LocalProtocolError):
        RtcpScheduler(1, "x", 0.0, clock_rate=0)


# -- a call over the simulated network ------------------------------------------------------------


class Peer:
    """RTP every 20 ms plus RTCP from the scheduler, as a media session would drive them."""

    def __init__(self, ssrc: int, remote: tuple[str, int], start: float, seed: int, offset: float) -> None:
        self.ssrc = ssrc
        self.remote = remote
        rng = random.Random(seed).randbytes
        self.rtcp = RtcpScheduler(
            ssrc, f"{ssrc:x}@sim", start, clock_rate=8000, rng=rng, wallclock_offset=offset
        )
        self.offset = offset
        self.next_rtp = start
        self.seq = 1000
        self.ts = 0
        self.sent = 0
        self.stats: ReceiverStats | None = None
        self.out: list[tuple[bytes, tuple[str, int]]] = []
        self.reports: list[ReportReceived] = []

    def on_receive(self, data: bytes, addr: tuple[str, int], now: float) -> None:
        if classify(data) is PacketKind.RTCP:
            self.rtcp.receive(data, now)
            self.reports += [e for e in self.rtcp.events() if isinstance(e, ReportReceived)]
            return
        packet = RtpPacket.parse(data)
        if self.stats is None:
            self.stats = ReceiverStats(packet.ssrc, 8000, wallclock_offset=self.offset)
            self.rtcp.add_source(self.stats)
        self.stats.receive(packet, now)

    def outgoing(self, now: float) -> list[tuple[bytes, tuple[str, int]]]:
        out, self.out = self.out, []
        return out + [(d, self.remote) for d in self.rtcp.datagrams_to_send()]

    def next_deadline(self) -> float | None:
        d = self.rtcp.next_deadline()
        return self.next_rtp if d is None else min(d, self.next_rtp)

    def on_timeout(self, now: float) -> None:
        while self.next_rtp <= now:
            packet = RtpPacket(0, self.seq & 0xFFFF, self.ts, self.ssrc, payload=b"\xff" * 160)
            self.out.append((packet.serialize(), self.remote))
            self.sent += 1
            self.rtcp.on_rtp_sent(
                packet_count=self.sent, octet_count=160 * self.sent, rtp_timestamp=self.ts, now=self.next_rtp
            )
            self.seq += 1
            self.ts += 160
            self.next_rtp += 0.02
        self.rtcp.handle_timeout(now)


def test_call_over_lossy_network_reports_loss_jitter_and_rtt() -> None:
    profile = LinkProfile(loss=0.1, delay=0.040, jitter=0.004)
    sim = Simulation(seed=7, profile=profile)
    start = sim.clock.now
    offset = 1_700_000_000.0 - start
    a = Peer(0xAAAA0001, ("10.0.0.2", 4000), start, 1, offset)
    b = Peer(0xBBBB0002, ("10.0.0.1", 4000), start, 2, offset)
    for peer, addr in ((a, ("10.0.0.1", 4000)), (b, ("10.0.0.2", 4000))):
        sim.add_endpoint(
            addr,
            on_receive=peer.on_receive,
            outgoing=peer.outgoing,
            next_deadline=peer.next_deadline,
            on_timeout=peer.on_timeout,
        )
    sim.run_for(60.0)
    assert a.stats is not None and b.stats is not None
    for peer in (a, b):
        assert len(peer.reports) >= 5  # the other side's SR blocks about us got through
        fractions = [r.block.fraction_lost / 256 for r in peer.reports]
        assert 0.02 < sum(fractions) / len(fractions) < 0.2
        rtts = [r.rtt for r in peer.reports if r.rtt is not None]
        assert rtts and all(0.078 < x < 0.092 for x in rtts)  # 2 x 40 ms + up to 2 x 4 ms jitter
        assert peer.rtcp.rtt is not None
    # Receiver-side loss matches what was sent minus what arrived (A.3).
    assert b.stats.expected - b.stats.received == b.stats.lost > 0
    assert 0.05 < b.stats.lost / b.stats.expected < 0.15
    # Uniform 0..4 ms delay variation: jitter is about 1.3 ms, well under 4 ms.
    assert 0.0005 < b.stats.jitter_seconds < 0.004
