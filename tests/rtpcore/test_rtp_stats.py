"""Receiver statistics: RFC 3550 A.1 (sequence validation), A.3 (loss), A.8 (jitter), §6.4.1 RTT."""

from __future__ import annotations

import pytest

from rtpcore.errors import LocalProtocolError
from rtpcore.rtp.packet import RtpPacket
from rtpcore.rtp.rtcp import ReportBlock, RtcpRrPacket, ntp_from_unix, ntp_middle32, parse_compound
from rtpcore.rtp.stats import ReceiverStats, SequenceLimits, round_trip_time

RATE = 8000
PTIME = 0.02
STEP = 160


def feed(stats: ReceiverStats, seqs: list[int], *, t0: float = 100.0, ts0: int = 1000) -> list[bool]:
    """Packets sent every 20 ms with timestamps +160, arriving with constant transit time."""
    out = []
    for seq in seqs:
        n = (seq - seqs[0]) & 0xFFFF
        out.append(stats.update(seq & 0xFFFF, (ts0 + n * STEP) & 0xFFFFFFFF, t0 + n * PTIME))
    return out


def test_probation_then_valid() -> None:
    s = ReceiverStats(0x1234, RATE)
    assert not s.validated
    assert s.update(10, 0, 0.0) is False  # first packet: probation (A.1, MIN_SEQUENTIAL = 2)
    assert s.expected == 0 and s.received == 0
    assert s.update(11, 160, 0.02) is True
    assert s.validated and s.received == 1 and s.expected == 1 and s.base_seq == 11


def test_probation_restarts_on_out_of_sequence() -> None:
    s = ReceiverStats(1, RATE, limits=SequenceLimits(min_sequential=3))
    assert feed(s, [5, 9, 10, 11]) == [False, False, False, True]
    assert s.validated and s.base_seq == 11


def test_in_order_no_loss() -> None:
    s = ReceiverStats(1, RATE)
    feed(s, list(range(1000, 1100)))
    assert s.received == 99 and s.expected == 99 and s.lost == 0
    block = s.make_report_block(now=200.0)
    assert (block.ssrc, block.fraction_lost, block.packets_lost, block.highest_sequence) == (1, 0, 0, 1099)
    assert block.jitter == 0  # constant transit time


def test_loss_and_fraction_per_interval() -> None:
    s = ReceiverStats(1, RATE)
    seqs = [n for n in range(0, 201) if n % 10 != 5]  # 5, 15, ..., 195 lost: 20 of the 200 after probation
    feed(s, seqs)
    assert s.expected == 200 and s.received == 180 and s.lost == 20
    block = s.make_report_block(now=10.0)
    assert block.packets_lost == 20
    assert block.fraction_lost == (20 << 8) // 200  # A.3: (lost_interval << 8) / expected_interval
    # A clean interval afterwards: fraction 0, cumulative unchanged.
    feed(s, list(range(201, 251)), t0=100.0 + 201 * PTIME, ts0=1000 + 201 * STEP)
    block = s.make_report_block(now=20.0)
    assert block.fraction_lost == 0 and block.packets_lost == 20
    assert block.highest_sequence == 250


def test_reorder_is_not_loss_and_duplicates_make_loss_negative() -> None:
    s = ReceiverStats(1, RATE)
    order = [0, 1, 2, 4, 3, 6, 5, 7, 8, 10, 9]
    for seq in order:
        s.update(seq, seq * STEP, seq * PTIME)
    assert s.lost == 0 and s.extended_highest_sequence == 10
    s.update(8, 8 * STEP, 0.5)
    s.update(8, 8 * STEP, 0.5)
    assert s.lost == -2
    block = s.make_report_block(1.0)
    assert block.packets_lost == -2 and block.fraction_lost == 0
    assert ReportBlock.parse(block.serialize()) == block


def test_sequence_wrap_counts_a_cycle() -> None:
    s = ReceiverStats(1, RATE)
    seqs = list(range(65530, 65536)) + list(range(0, 10))
    assert all(feed(s, seqs)[1:])
    assert s.cycles == 65536
    assert s.extended_highest_sequence == 65536 + 9
    assert s.expected == 15 and s.lost == 0
    assert s.make_report_block(1.0).highest_sequence == 65545


def test_loss_across_the_wrap() -> None:
    s = ReceiverStats(1, RATE)
    feed(s, [65533, 65534, 65535, 1, 2])  # 65533 is probation, 0 is lost
    assert s.expected == 5 and s.received == 4 and s.lost == 1


def test_large_jump_is_bad_then_restart_on_second_sequential() -> None:
    s = ReceiverStats(1, RATE)
    feed(s, list(range(100, 120)))
    assert s.received == 19
    assert s.update(40000, 0, 10.0) is False  # jump >= MAX_DROPOUT: "bad" (A.1)
    assert s.bad_packets == 1 and s.received == 19
    assert s.update(120, 20 * STEP, 10.01) is True  # the old stream continues: fine
    assert s.update(30000, 0, 10.02) is False
    assert s.update(30001, 160, 10.04) is True  # next in sequence after the bad one: restart
    assert s.restarts == 1 and s.base_seq == 30001 and s.received == 1 and s.cycles == 0


def test_misorder_limits() -> None:
    s = ReceiverStats(1, RATE)
    feed(s, list(range(1000, 1300)))
    assert s.update(1299 - 99, 0, 20.0) is True  # within MAX_MISORDER behind: a late packet
    assert s.update(1299 - 150, 0, 20.0) is False  # too far behind: bad
    assert s.update(1299 + 2999, 0, 20.0) is True  # just under MAX_DROPOUT ahead: loss
    # 1300..4297 missing (2998), minus the late packet that was counted as received.
    assert s.lost == 2998 - 1


def test_jitter_constant_transit_is_zero_even_across_timestamp_wrap() -> None:
    s = ReceiverStats(1, RATE)
    feed(s, list(range(0, 50)), ts0=0xFFFFFFFF - 10 * STEP)
    assert s.jitter == pytest.approx(0.0, abs=1e-6)


def test_jitter_known_value() -> None:
    # Arrival alternates 10 ms early / 10 ms late around the 20 ms grid, so every
    # transit difference |D| is 20 ms = 160 timestamp units. After k updates the A.8
    # estimator is J_k = 160 * (1 - (15/16)^k).
    s = ReceiverStats(1, RATE)
    n = 60
    for i in range(n):
        offset = 0.0 if i % 2 == 0 else 0.02
        s.update(i, i * STEP, 50.0 + i * PTIME + offset)
    updates = n - 2  # packet 0 is in probation, packet 1 sets the reference
    assert s.jitter == pytest.approx(160 * (1 - (15 / 16) ** updates), rel=1e-6)
    assert s.jitter_seconds == pytest.approx(s.jitter / RATE)
    assert s.make_report_block(60.0).jitter == int(s.jitter)


def test_jitter_single_step_matches_rfc_formula() -> None:
    s = ReceiverStats(1, 48000)
    s.update(1, 0, 0.0)
    s.update(2, 960, 0.020)  # reference
    s.update(3, 1920, 0.045)  # 5 ms late: D = 240 units
    assert s.jitter == pytest.approx(240 / 16)


def test_receive_from_packet() -> None:
    s = ReceiverStats(7, RATE)
    assert not s.receive(RtpPacket(0, 1, 160, 7), 1.0)
    assert s.receive(RtpPacket(0, 2, 320, 7), 1.02)
    assert s.active
    s.make_report_block(2.0)
    assert not s.active


def test_lsr_dlsr_from_sender_report() -> None:
    s = ReceiverStats(1, RATE)
    feed(s, [1, 2, 3])
    assert (s.make_report_block(5.0).lsr, s.make_report_block(5.0).dlsr) == (0, 0)
    ntp = ntp_from_unix(1_700_000_000.125)
    s.on_sender_report(ntp, now=10.0)
    block = s.make_report_block(now=10.5)
    assert block.lsr == ntp_middle32(ntp)
    assert block.dlsr == 32768  # 0.5 s in 1/65536 s


def test_round_trip_time() -> None:
    offset = 1_700_000_000.0
    sent = 100.0  # our SR left at now=100
    lsr = ntp_middle32(ntp_from_unix(sent + offset))
    block = ReportBlock(1, 0, 0, 0, 0, lsr, int(0.25 * 65536))  # the peer held it 250 ms
    rtt = round_trip_time(block, 100.4, wallclock_offset=offset)
    assert rtt == pytest.approx(0.15, abs=2 / 65536)
    assert round_trip_time(ReportBlock(1, 0, 0, 0, 0, 0, 0), 100.4) is None
    late = ReportBlock(1, 0, 0, 0, 0, lsr, int(0.5 * 65536))  # DLSR longer than elapsed time
    assert round_trip_time(late, 100.4, wallclock_offset=offset) is None


def test_report_block_into_rr_round_trip() -> None:
    s = ReceiverStats(0xDEE0EE8F, RATE)
    feed(s, list(range(59133, 59300)))
    rr = RtcpRrPacket(0x4B954398, (s.make_report_block(5.0),))
    assert parse_compound(rr.serialize()) == [rr]


def test_lost_is_clamped_to_24_bits() -> None:
    s = ReceiverStats(1, RATE, limits=SequenceLimits(max_dropout=40000))
    feed(s, [0, 1])
    for seq in range(30000, 65536, 30000):
        s.update(seq, 0, 1.0)
    for _ in range(400):  # 400 cycles of 65536 with one packet each: ~26 million lost
        s.update(0, 0, 1.0)
        s.update(30000, 0, 1.0)
    assert s.lost > 0x7FFFFF
    assert s.make_report_block(2.0).packets_lost == 0x7FFFFF


def test_bad_clock_rate() -> None:
    with pytest.raises(LocalProtocolError):
        ReceiverStats(1, 0)
