"""First-octet demultiplexing (RFC 7983 §7, RFC 5764 §5.1.2, RFC 5761 §4)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtpcore.rtp.demux import PacketKind, classify

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "rtp"
RANGES = json.loads((VECTORS / "rfc7983_demux.json").read_text())["rfc7983_demux"]["ranges"]
NAMES = {
    "STUN": PacketKind.STUN,
    "ZRTP": PacketKind.ZRTP,
    "DTLS": PacketKind.DTLS,
    "TURN Channel": PacketKind.TURN_CHANNEL,
    "RTP/RTCP": PacketKind.RTP,
}


def _expected(first: int) -> PacketKind:
    for r in RANGES:
        lo, hi = r["first_byte"]
        if lo <= first <= hi:
            return NAMES[r["protocol"]]
    return PacketKind.UNKNOWN


@pytest.mark.parametrize("first", range(256))
def test_every_first_octet_against_the_rfc7983_table(first: int) -> None:
    assert classify(bytes((first, 0x00)) + bytes(10)) is _expected(first)


def test_rtp_rtcp_split_on_the_second_octet() -> None:
    for second in range(256):
        kind = classify(bytes((0x80, second)))
        assert kind is (PacketKind.RTCP if 64 <= (second & 0x7F) <= 95 else PacketKind.RTP)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("baresip_pcma.bin", "rtp"),
        ("baresip_pcmu.bin", "rtp"),
        ("sipp_pcma.bin", "rtp"),
        ("baresip_rtcp_sr_sdes_mux.bin", "rtcp"),  # RTCP multiplexed on the RTP port (RFC 5761)
        ("baresip_rtcp_bye_sdes.bin", "rtcp"),
        ("baresip_rtcp_app_ping.bin", "rtcp"),
        ("linphone_rtcp_rr_sdes.bin", "rtcp"),
        ("baresip_binding_request_controlled.bin", "stun"),
        ("baresip_clienthello.bin", "dtls"),  # DTLS 1.2 record, content type 22
        ("chromium_dtls13_server_epoch3.bin", "dtls"),  # DTLS 1.3 unified header 0x2f
        # coturn's turnutils picks channel 0x55E8 (old RFC 5766 range): RFC 7983 has no slot for it.
        ("turnutils_channeldata.bin", "unknown"),
    ],
)
def test_captures(name: str, kind: str) -> None:
    assert classify((VECTORS / name).read_bytes()) == kind


def test_hexline_captures_are_rtp() -> None:
    for name in (
        "baresip_dtmf_digit1.hexlines",
        "sipp_dtmf_2833_digit1.hexlines",
        "baresip_pcmu_3pkts.hexlines",
    ):
        for line in (VECTORS / name).read_text().split():
            assert classify(bytes.fromhex(line)) is PacketKind.RTP


def test_rfc8656_channel_and_edge_cases() -> None:
    assert classify(bytes.fromhex("40010004deadbeef")) is PacketKind.TURN_CHANNEL
    assert classify(b"") is PacketKind.UNKNOWN
    assert classify(b"\x80") is PacketKind.UNKNOWN  # RTP range but no second octet
    assert classify(b"\x00") is PacketKind.STUN
    assert classify(memoryview(b"\x81\xc8")) == "rtcp"


@given(st.binary(max_size=40))
def test_property_total(data: bytes) -> None:
    assert classify(data) in set(PacketKind)
