"""RFC 4733 telephone-events: payload codec, sender schedule and receiver de-duplication.

Vectors: the media corpus (payloads and a full RTP sequence for digit '5') and captures of
digit '1' from baresip (live) and sipp (its shipped sample).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtpcore.dtmf import (
    DTMF_EVENTS,
    DtmfEvent,
    DtmfPacket,
    DtmfReceiver,
    DtmfSender,
    TelephoneEvent,
    digit_to_event,
    encode_event,
    event_to_digit,
    parse_event,
)
from rtpcore.errors import LocalProtocolError, RtpParseError
from rtpcore.rtp.packet import RtpPacket

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "rtp"
CORPUS = json.loads((VECTORS / "dtmf_rfc4733.json").read_text())


def _lines(name: str) -> list[RtpPacket]:
    return [RtpPacket.parse(bytes.fromhex(line)) for line in (VECTORS / name).read_text().split()]


# -- payload codec -------------------------------------------------------------------------------


def test_event_code_table() -> None:
    assert DTMF_EVENTS == CORPUS["event_codes"]["map"]
    for digit, code in CORPUS["event_codes"]["map"].items():
        assert digit_to_event(digit) == code
        assert event_to_digit(code) == digit
    assert digit_to_event("a") == 12
    assert event_to_digit(17) is None
    with pytest.raises(LocalProtocolError):
        digit_to_event("E")


@pytest.mark.parametrize("vector", CORPUS["payloads"], ids=lambda v: v["payload"])
def test_corpus_payloads(vector: dict[str, Any]) -> None:
    data = bytes.fromhex(vector["payload"])
    ev = parse_event(data)
    assert ev == TelephoneEvent(vector["event"], vector["end"], vector["volume"], vector["duration"])
    assert event_to_digit(ev.event) == vector["digit"]
    assert encode_event(ev) == data


def test_reserved_bit_is_ignored_and_extra_octets_too() -> None:
    assert parse_event(bytes.fromhex("01ca00a0")) == TelephoneEvent(1, True, 10, 160)
    assert parse_event(bytes.fromhex("010a00a0ffff")) == TelephoneEvent(1, False, 10, 160)


@pytest.mark.parametrize("n", range(4))
def test_short_payload_raises(n: int) -> None:
    with pytest.raises(RtpParseError):
        parse_event(bytes(n))


@pytest.mark.parametrize(
    "ev",
    [
        TelephoneEvent(256),
        TelephoneEvent(1, volume=64),
        TelephoneEvent(1, duration=65536),
        TelephoneEvent(-1),
    ],
)
def test_encode_rejects_out_of_range(ev: TelephoneEvent) -> None:
    with pytest.raises(LocalProtocolError):
        encode_event(ev)


@given(st.integers(0, 255), st.booleans(), st.integers(0, 63), st.integers(0, 0xFFFF))
def test_property_round_trip(code: int, end: bool, volume: int, duration: int) -> None:
    ev = TelephoneEvent(code, end, volume, duration)
    assert parse_event(encode_event(ev)) == ev


@given(st.binary(max_size=8))
def test_property_random_payloads(data: bytes) -> None:
    try:
        ev = parse_event(data)
    except RtpParseError:
        assert len(data) < 4
        return
    assert encode_event(ev) == bytes((data[0], data[1] & 0xBF)) + data[2:4]


# -- sender ----------------------------------------------------------------------------------------


def _to_rtp(
    packets: list[DtmfPacket], *, seq: int, ts_at_zero: int, pt: int, ssrc: int, rate: int
) -> list[bytes]:
    """What a media session does: its own SSRC/seq, RTP time of each event start."""
    out = []
    for i, p in enumerate(packets):
        ts = (ts_at_zero + round(p.event_start * rate)) & 0xFFFFFFFF
        out.append(
            RtpPacket(pt, (seq + i) & 0xFFFF, ts, ssrc, marker=p.marker, payload=p.payload).serialize()
        )
    return out


def test_sender_reproduces_the_corpus_sequence_for_digit_5() -> None:
    seq_vec = CORPUS["sequence_example"]
    first = seq_vec["packets"][0]
    sender = DtmfSender(clock_rate=seq_vec["clock_rate"], ptime_ms=20, volume=10)
    sender.send("5", duration_ms=100, now=0.0)
    packets: list[DtmfPacket] = []
    t = 0.0
    while (deadline := sender.next_deadline()) is not None:
        t = max(t, deadline)
        packets += sender.poll(t)
    wire = _to_rtp(
        packets,
        seq=first["seq"],
        ts_at_zero=first["timestamp"],
        pt=seq_vec["payload_type"],
        ssrc=int(seq_vec["ssrc"], 16),
        rate=seq_vec["clock_rate"],
    )
    assert wire == [bytes.fromhex(p["packet"]) for p in seq_vec["packets"]]
    assert [p.end for p in packets] == [p["end"] for p in seq_vec["packets"]]
    assert t == pytest.approx(0.12)  # 4 updates and 3 end packets, every 20 ms from 0
    assert not sender.busy


def test_sender_timing_gap_and_pause() -> None:
    sender = DtmfSender()
    sender.send("1w2", duration_ms=100, gap_ms=50, now=10.0)
    times: dict[str, list[float]] = {}
    t = 10.0
    while (deadline := sender.next_deadline()) is not None:
        assert deadline >= t
        t = deadline
        for p in sender.poll(t):
            times.setdefault(p.digit, []).append(t)
            assert p.event_start == times[p.digit][0]
    assert len(times["1"]) == len(times["2"]) == 7
    assert times["1"][0] == 10.0
    # '1' ends at 10.10, gap until 10.15, then the 'w' pause of 500 ms.
    assert times["2"][0] == pytest.approx(10.65)
    assert all(b - a == pytest.approx(0.02) for a, b in zip(times["2"], times["2"][1:], strict=False))


def test_sender_end_repeats_must_finish_before_the_next_digit() -> None:
    sender = DtmfSender()
    sender.send("12", duration_ms=40, gap_ms=0, now=0.0)
    packets = sender.poll(1.0)  # a late poll catches up, in order
    assert [p.digit for p in packets] == ["1"] * 4 + ["2"] * 4
    assert [parse_event(p.payload).duration for p in packets[:4]] == [160, 320, 320, 320]
    assert [p.marker for p in packets] == [True, False, False, False] * 2
    assert packets[4].event_start == pytest.approx(0.08)  # after the third end packet at 0.06


def test_sender_odd_duration_and_single_packet_event() -> None:
    sender = DtmfSender()
    sender.send("#", duration_ms=90, now=0.0)
    durations = [parse_event(p.payload) for p in sender.poll(5.0)]
    assert [(e.duration, e.end) for e in durations] == [
        (160, False),
        (320, False),
        (480, False),
        (640, False),
        (720, True),
        (720, True),
        (720, True),
    ]
    sender.send("D", duration_ms=10, now=10.0)
    packets = sender.poll(11.0)
    assert [(p.marker, p.end) for p in packets] == [(True, True), (False, True), (False, True)]
    assert parse_event(packets[0].payload) == TelephoneEvent(15, True, 10, 80)


def test_sender_without_now_starts_at_first_poll() -> None:
    sender = DtmfSender(clock_rate=16000, ptime_ms=30)
    sender.send("0")
    assert sender.busy and sender.next_deadline() == -math.inf
    (first,) = sender.poll(42.0)
    assert first.event_start == 42.0 and first.marker
    assert parse_event(first.payload).duration == 480  # 30 ms at 16 kHz
    assert sender.next_deadline() == pytest.approx(42.03)
    # Digits queued while busy follow the current schedule.
    sender.send("1")
    rest = sender.poll(60.0)
    ones = [p for p in rest if p.digit == "1"]
    # 100 ms + 50 ms gap = 42.15, but the third end packet of '0' goes out at 42.15 (updates at
    # 0, 30, 60, 90 ms, repeats at 120 and 150 ms), so '1' starts one ptime later.
    assert ones and ones[0].event_start == pytest.approx(42.18)


def test_sender_keeps_the_gap_after_going_idle() -> None:
    sender = DtmfSender()
    sender.send("1", duration_ms=100, gap_ms=50, now=0.0)
    assert len(sender.poll(0.12)) == 7 and not sender.busy
    sender.send("2", now=0.13)  # inside the 50 ms gap after '1' (ends at 0.15)
    deadline = sender.next_deadline()
    assert deadline is not None and deadline == pytest.approx(0.15)
    assert sender.poll(0.14) == []
    (first,) = sender.poll(deadline)
    assert first.event_start == pytest.approx(0.15)
    sender.poll(10.0)
    sender.send("3")  # long after: starts at the next poll
    (first,) = sender.poll(20.0)
    assert first.event_start == 20.0


def test_sender_rejects_bad_input_without_queueing() -> None:
    sender = DtmfSender()
    with pytest.raises(LocalProtocolError):
        sender.send("12x")
    assert not sender.busy and sender.next_deadline() is None
    with pytest.raises(LocalProtocolError):
        sender.send("1", duration_ms=9000)  # 72000 units do not fit 16 bits at 8 kHz
    with pytest.raises(LocalProtocolError):
        sender.send("1", duration_ms=0)
    with pytest.raises(LocalProtocolError):
        sender.send("1", gap_ms=-1)
    with pytest.raises(LocalProtocolError):
        DtmfSender(volume=64)
    with pytest.raises(LocalProtocolError):
        DtmfSender(clock_rate=10, ptime_ms=20)
    assert sender.poll(100.0) == []


# -- receiver --------------------------------------------------------------------------------------


def _feed(rx: DtmfReceiver, packets: list[RtpPacket], t0: float = 0.0, step: float = 0.02) -> list[DtmfEvent]:
    events = []
    for i, p in enumerate(packets):
        rx.receive(p.payload, p.timestamp, t0 + i * step)
        events += rx.events()
    return events


def test_baresip_capture_gives_one_digit() -> None:
    rx = DtmfReceiver()
    (event,) = _feed(rx, _lines("baresip_dtmf_digit1.hexlines"))
    assert event == DtmfEvent(digit="1", duration_ms=180, event=1, timestamp=56824, ended=True)
    assert rx.next_deadline() is None
    rx.handle_timeout(100.0)
    assert rx.events() == []


def test_sipp_capture_with_reused_sequence_numbers() -> None:
    rx = DtmfReceiver()
    (event,) = _feed(rx, _lines("sipp_dtmf_2833_digit1.hexlines"))
    assert (event.digit, event.duration_ms, event.timestamp, event.ended) == ("1", 280, 13280, True)


def test_corpus_sequence_and_duplicates() -> None:
    packets = [RtpPacket.parse(bytes.fromhex(p["packet"])) for p in CORPUS["sequence_example"]["packets"]]
    rx = DtmfReceiver()
    events = _feed(rx, packets + packets[2:5] + packets)  # retransmits and a replay
    assert events == [DtmfEvent(digit="5", duration_ms=100, event=5, timestamp=48000, ended=True)]
    assert rx.ignored == 2 + 3 + 7  # end repeats, retransmits, the replay


def test_lost_start_packets() -> None:
    rx = DtmfReceiver()
    (event,) = _feed(rx, _lines("baresip_dtmf_digit1.hexlines")[4:])
    assert (event.digit, event.duration_ms, event.ended) == ("1", 180, True)
    rx = DtmfReceiver()
    (event,) = _feed(rx, _lines("baresip_dtmf_digit1.hexlines")[-1:])  # only one end packet arrived
    assert (event.digit, event.duration_ms) == ("1", 180)


def test_lost_end_packets_time_out_once() -> None:
    rx = DtmfReceiver(timeout=0.3)
    packets = _lines("baresip_dtmf_digit1.hexlines")
    assert _feed(rx, packets[:6], t0=5.0) == []
    deadline = rx.next_deadline()
    assert deadline is not None and deadline == pytest.approx(5.1 + 0.3)
    rx.handle_timeout(deadline - 0.01)
    assert rx.events() == []
    rx.handle_timeout(deadline)
    (event,) = rx.events()
    assert (event.digit, event.duration_ms, event.ended) == ("1", 120, False)  # 960 units seen so far
    # The rest of the event arrives late: already reported, nothing new.
    assert _feed(rx, packets[6:], t0=6.0) == []


def test_new_event_ends_the_previous_one() -> None:
    rx = DtmfReceiver()
    ssrc = 0x624AFF17
    first = [
        RtpPacket(101, i, 1000, ssrc, payload=encode_event(TelephoneEvent(2, False, 10, 160 * (i + 1))))
        for i in range(3)
    ]
    second = [
        RtpPacket(
            101, 10 + i, 2000, ssrc, payload=encode_event(TelephoneEvent(11, i >= 2, 10, 160 * (i + 1)))
        )
        for i in range(3)
    ]
    events = _feed(rx, first + second)
    assert [(e.digit, e.duration_ms, e.ended) for e in events] == [("2", 60, False), ("#", 60, True)]
    # A straggler of the first event after the second started is stale.
    rx.receive(first[1].payload, 1000, 1.0)
    assert rx.events() == []


def test_timestamp_wrap_and_non_dtmf_events() -> None:
    rx = DtmfReceiver()
    rx.receive(encode_event(TelephoneEvent(3, True, 10, 800)), 0xFFFFFF00, 0.0)
    rx.receive(encode_event(TelephoneEvent(4, True, 10, 800)), 0x00000100, 1.0)  # newer, across the wrap
    rx.receive(encode_event(TelephoneEvent(32, True, 10, 800)), 0x00000900, 2.0)  # not DTMF (RFC 4734 tone)
    assert [e.digit for e in rx.events()] == ["3", "4"]
    with pytest.raises(RtpParseError):
        rx.receive(b"\x01\x0a", 0, 3.0)


def test_flash_event() -> None:
    rx = DtmfReceiver()
    rx.receive(bytes.fromhex("10800640"), 1, 0.0)
    assert rx.events()[0].digit == "flash"


def test_sender_to_receiver_over_16_khz() -> None:
    sender = DtmfSender(clock_rate=16000)
    rx = DtmfReceiver(clock_rate=16000)
    sender.send("0123456789*#ABCD", duration_ms=120, gap_ms=40, now=0.0)
    t = 0.0
    while (deadline := sender.next_deadline()) is not None:
        t = deadline
        for p in sender.poll(t):
            rx.receive(p.payload, round(p.event_start * 16000), t + 0.03)
    events = rx.events()
    assert "".join(e.digit for e in events) == "0123456789*#ABCD"
    assert {e.duration_ms for e in events} == {120} and all(e.ended for e in events)
