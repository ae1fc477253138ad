"""RTCP packets and compounds (RFC 3550 §6, RFC 4585 §6, RFC 3611 §3).

Vectors: the media corpus RTCP compounds (every field in their ``expected`` list), real
captures from baresip and linphone (fields as the capture README/index describe them), and
the SRTCP corpus plaintexts. Each must re-serialize to the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtpcore.errors import LocalProtocolError, RtpParseError
from rtpcore.rtp.rtcp import (
    PsfbFormat,
    ReportBlock,
    RtcpAppPacket,
    RtcpByePacket,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSdesPacket,
    RtcpSrPacket,
    RtcpUnknownPacket,
    RtcpXrPacket,
    RtpfbFormat,
    SdesChunk,
    SdesItem,
    SdesItemType,
    XrBlock,
    ntp_from_unix,
    ntp_middle32,
    pack_nack,
    parse_compound,
    parse_nack,
    serialize_compound,
    unix_from_ntp,
)

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "rtp"
CORPUS = json.loads((VECTORS / "rtp_rtcp.json").read_text())
SRTP_PLAIN = json.loads((VECTORS / "srtp_roundtrip_plaintexts.json").read_text())

CLASSES = {"SR": RtcpSrPacket, "RR": RtcpRrPacket, "SDES": RtcpSdesPacket, "BYE": RtcpByePacket}


def _check_block(block: ReportBlock, exp: dict[str, Any]) -> None:
    assert block.ssrc == int(exp["ssrc"], 16)
    assert block.fraction_lost == exp["fraction_lost"]
    assert block.packets_lost == exp["cumulative_lost"]
    assert block.highest_sequence == exp["highest_seq"]
    assert block.jitter == exp["jitter"]
    assert block.lsr == exp["lsr"]
    assert block.dlsr == exp["dlsr"]


def _packet_spans(data: bytes) -> list[tuple[int, int, int]]:
    """(packet type, count field, length words) read straight from the headers."""
    out, pos = [], 0
    while pos < len(data):
        out.append((data[pos + 1], data[pos] & 0x1F, int.from_bytes(data[pos + 2 : pos + 4], "big")))
        pos += 4 + 4 * out[-1][2]
    return out


@pytest.mark.parametrize("vector", CORPUS["rtcp"], ids=lambda v: v["name"])
def test_corpus_compound_fields_and_round_trip(vector: dict[str, Any]) -> None:
    data = bytes.fromhex(vector["packet"])
    packets = parse_compound(data)
    spans = _packet_spans(data)
    assert len(packets) == len(vector["expected"]) == len(spans)
    for p, exp, (ptype, count, words) in zip(packets, vector["expected"], spans, strict=True):
        assert isinstance(p, CLASSES[exp["name"]])
        assert p.packet_type == exp["packet_type"] == ptype
        assert words == exp["length_words"]
        assert count == exp.get("report_count", exp.get("source_count"))
        if isinstance(p, RtcpSrPacket):
            assert p.ssrc == int(exp["ssrc"], 16)
            assert p.ntp_timestamp >> 32 == exp["ntp_timestamp_msw"]
            assert p.ntp_timestamp & 0xFFFFFFFF == exp["ntp_timestamp_lsw"]
            assert p.rtp_timestamp == exp["rtp_timestamp"]
            assert p.packet_count == exp["sender_packet_count"]
            assert p.octet_count == exp["sender_octet_count"]
        if isinstance(p, RtcpSrPacket | RtcpRrPacket):
            assert p.ssrc == int(exp["ssrc"], 16)
            assert len(p.reports) == len(exp["reports"])
            for block, eb in zip(p.reports, exp["reports"], strict=True):
                _check_block(block, eb)
        if isinstance(p, RtcpSdesPacket):
            assert len(p.chunks) == len(exp["chunks"])
            for chunk, ec in zip(p.chunks, exp["chunks"], strict=True):
                assert chunk.ssrc == int(ec["ssrc"], 16)
                assert [(i.type, SdesItemType(i.type).name, i.text) for i in chunk.items] == [
                    (e["type"], e["name"], e["value"]) for e in ec["items"]
                ]
        if isinstance(p, RtcpByePacket):
            assert list(p.sources) == [int(s, 16) for s in exp["sources"]]
            assert p.reason_text == exp["reason"]
    assert serialize_compound(packets) == data


def test_sdes_single_null_on_boundary_is_not_a_length_octet() -> None:
    # The corpus records aiortc 1.16.0 rejecting this RFC-correct chunk layout.
    vector = next(v for v in CORPUS["rtcp"] if "2 chunks" in v["name"])
    sdes = parse_compound(bytes.fromhex(vector["packet"]))[1]
    assert isinstance(sdes, RtcpSdesPacket)
    assert [c.cname for c in sdes.chunks] == ["x", "mixer-cname"]


def test_sr_lsr_is_middle_of_ntp() -> None:
    # In the corpus SR+SDES vector the report's LSR equals the middle 32 bits of the SR's NTP time.
    sr = parse_compound(bytes.fromhex(CORPUS["rtcp"][0]["packet"]))[0]
    assert isinstance(sr, RtcpSrPacket)
    assert ntp_middle32(sr.ntp_timestamp) == sr.reports[0].lsr


# -- real captures (README "RTP/RTCP" facts and index notes) --------------------------------

SIPP_SSRC = 0xDEE0EE8F


def _capture(name: str) -> tuple[bytes, list[RtcpPacket]]:
    data = (VECTORS / name).read_bytes()
    packets = parse_compound(data)
    assert serialize_compound(packets) == data
    return data, packets


@pytest.mark.parametrize(
    ("name", "cname"),
    [
        ("baresip_rtcp_sr_sdes.bin", "sip:carol@lab.local"),
        ("baresip_rtcp_sr_sdes_mux.bin", "sip:carol@lab.local"),
        ("baresip_rtcp_sr_recvonly.bin", "sip:carol@lab.local"),
        ("baresip_srtcp_sr_erin.decrypted.bin", "sip:erin@lab.local"),
    ],
)
def test_baresip_sr_sdes(name: str, cname: str) -> None:
    _, packets = _capture(name)
    sr, sdes = packets
    assert isinstance(sr, RtcpSrPacket) and isinstance(sdes, RtcpSdesPacket)
    assert len(sr.reports) == 1  # "Compound SR (1 report block) + SDES CNAME"
    assert sdes.chunks[0].ssrc == sr.ssrc
    assert sdes.chunks[0].cname == cname
    assert sr.extension == b""
    if name == "baresip_rtcp_sr_recvonly.bin":
        # recvonly: SR with packet/octet count 0 and RTP ts 0
        assert (sr.packet_count, sr.octet_count, sr.rtp_timestamp) == (0, 0, 0)
        assert sr.reports[0].ssrc == SIPP_SSRC
    elif name == "baresip_rtcp_sr_sdes.bin":
        assert sr.ssrc == 0x62FD11F0  # carol's PCMA SSRC in baresip_pcma.bin
        assert sr.reports[0].ssrc == SIPP_SSRC
        assert sr.octet_count == 160 * sr.packet_count  # 160-octet PCMA frames
    else:
        assert sr.packet_count > 0


def test_linphone_rr_sdes() -> None:
    _, (rr, sdes) = _capture("linphone_rtcp_rr_sdes.bin")
    assert isinstance(rr, RtcpRrPacket) and isinstance(sdes, RtcpSdesPacket)
    assert len(rr.reports) == 1 and rr.reports[0].ssrc == SIPP_SSRC
    items = {SdesItemType(i.type): i.text for i in sdes.chunks[0].items}
    assert items == {SdesItemType.CNAME: "sip:judy@lab.local", SdesItemType.TOOL: "Linphonec/5.1.65"}


def test_baresip_bye_first_then_sdes() -> None:
    _, (bye, sdes) = _capture("baresip_rtcp_bye_sdes.bin")
    assert isinstance(bye, RtcpByePacket) and isinstance(sdes, RtcpSdesPacket)
    assert bye.reason == b"Adjo" and bye.sources == (0x62FD11F0,)
    assert sdes.chunks[0].cname == "sip:carol@lab.local"


@pytest.mark.parametrize(
    "name", ["baresip_rtcp_app_ping.bin", "baresip_rtcp_app_ping_plaintext_in_srtp_call.bin"]
)
def test_baresip_app_ping(name: str) -> None:
    _, (app,) = _capture(name)
    assert isinstance(app, RtcpAppPacket)
    assert (app.name, app.data, app.subtype) == (b"PING", b"PONG", 0)


@pytest.mark.parametrize("vector", SRTP_PLAIN["rtcp"], ids=lambda v: v["description"])
def test_srtcp_corpus_plaintexts(vector: dict[str, Any]) -> None:
    data = bytes.fromhex(vector["plaintext"])
    packets = parse_compound(data)
    assert serialize_compound(packets) == data
    names = [type(p).__name__ for p in packets]
    assert names[0] == ("RtcpSrPacket" if vector["description"].startswith("SR") else "RtcpRrPacket")
    assert ("RtcpByePacket" in names) is ("BYE" in vector["description"])


# -- feedback, XR, unknown ------------------------------------------------------------------


def test_generic_nack_bytes() -> None:
    # RFC 4585 §6.2.1: PID 100, BLP 0b101 -> 100, 101, 103 lost.
    fci = bytes.fromhex("00640005")
    assert parse_nack(fci) == [100, 101, 103]
    assert pack_nack([100, 101, 103]) == fci
    nack = RtcpRtpfbPacket.nack(0x11111111, 0x22222222, [100, 101, 103])
    data = nack.serialize()
    assert data == bytes.fromhex("81cd0003111111112222222200640005")
    (again,) = parse_compound(data)
    assert again == nack and isinstance(again, RtcpRtpfbPacket)
    assert again.fmt == RtpfbFormat.NACK and again.lost == [100, 101, 103]


def test_nack_spans_and_wrap() -> None:
    lost = [65534, 65535, 0, 1, 40, 57]
    fci = pack_nack(lost)
    # 65534 with its BLP covers 65535..14 across the wrap; 57 is 17 after 40, beyond one BLP.
    assert len(fci) == 12
    assert parse_nack(fci) == [65534, 65535, 0, 1, 40, 57]
    assert pack_nack([]) == b""
    with pytest.raises(RtpParseError):
        parse_nack(b"\x00\x01\x00")
    assert RtcpRtpfbPacket(3, 1, 2, b"\x01").lost == []


def test_pli_bytes() -> None:
    pli = RtcpPsfbPacket.pli(0x01020304, 0x05060708)
    assert pli.serialize() == bytes.fromhex("81ce00020102030405060708")
    (again,) = parse_compound(pli.serialize())
    assert isinstance(again, RtcpPsfbPacket) and again.is_pli and again.fci == b""
    fir = RtcpPsfbPacket(PsfbFormat.FIR, 1, 0, bytes.fromhex("0000000201000000"))
    assert parse_compound(fir.serialize()) == [fir]
    assert not fir.is_pli


def test_xr_blocks_opaque() -> None:
    xr = RtcpXrPacket(0xABCDEF01, (XrBlock(4, 0, bytes(8)), XrBlock(7, 0x12, bytes(range(32)))))
    data = xr.serialize()
    assert data[:4] == bytes.fromhex("80cf000d")  # SSRC + (4 + 8) + (4 + 32) octets = 13 words
    assert parse_compound(data) == [xr]
    with pytest.raises(RtpParseError):
        parse_compound(bytes.fromhex("80cf0002abcdef0104000002"))  # block overruns
    with pytest.raises(LocalProtocolError):
        XrBlock(1, 0, b"abc").serialize()


def test_unknown_packet_type_is_kept() -> None:
    data = bytes.fromhex("85d10001deadbeef")
    (p,) = parse_compound(data)
    assert p == RtcpUnknownPacket(209, 5, bytes.fromhex("deadbeef"))
    assert p.serialize() == data


def test_padding_is_removed() -> None:
    # BYE with P=1 and 4 octets of padding (the last octet counts them).
    (bye,) = parse_compound(bytes.fromhex("a1cb00021111111100000004"))
    assert bye == RtcpByePacket((0x11111111,))


def test_unaligned_body_is_serialized_with_padding() -> None:
    app = RtcpAppPacket(0x62FD11F0, b"PING", b"abc", subtype=3)
    data = app.serialize()
    assert data == bytes.fromhex("a3cc000362fd11f0") + b"PINGabc\x01"
    assert parse_compound(data) == [app]


def test_negative_cumulative_loss_round_trips() -> None:
    block = ReportBlock(1, 0, -5, 70000, 3, 0, 0)
    assert block.serialize()[4:8] == bytes.fromhex("00fffffb")
    assert ReportBlock.parse(block.serialize()) == block
    with pytest.raises(LocalProtocolError):
        ReportBlock(1, 0, 0x800000, 0, 0, 0, 0).serialize()
    with pytest.raises(LocalProtocolError):
        ReportBlock(1, 256, 0, 0, 0, 0, 0).serialize()


def test_serialize_rejects_values_that_do_not_fit() -> None:
    block = ReportBlock(1, 0, 0, 0, 0, 0, 0)
    with pytest.raises(LocalProtocolError):
        RtcpRrPacket(1, (block,) * 32).serialize()
    with pytest.raises(LocalProtocolError):
        RtcpAppPacket(1, b"TOOLONG").serialize()
    with pytest.raises(LocalProtocolError):
        RtcpByePacket((1,), b"x" * 256).serialize()
    with pytest.raises(LocalProtocolError):
        RtcpSdesPacket((SdesChunk(1, (SdesItem(1, b"x" * 256),)),)).serialize()
    with pytest.raises(LocalProtocolError):
        RtcpSrPacket(2**32, 0, 0, 0, 0).serialize()
    with pytest.raises(LocalProtocolError):
        RtcpRrPacket(-1).serialize()


@pytest.mark.parametrize(
    ("hexdata", "why"),
    [
        ("", "empty"),
        ("81c9", "header truncated"),
        ("41c90001abcdabcd", "version 1"),
        ("81c90007abcdabcd", "length overruns"),
        ("81c90001abcdabcd", "RR report block missing"),
        ("81c80001abcdabcd", "SR sender info missing"),
        ("81ca0001abcdabcd", "SDES not terminated"),
        ("81ca000112345678", "SDES not terminated (no null)"),
        ("81ca0002abcdabcd01050000", "SDES item overruns"),
        ("81ca0002abcdabcd0000000081ca0001", "second packet truncated"),
        ("82ca0002abcdabcd00000000", "second SDES chunk missing"),
        ("81ca0003abcdabcd0000000001010000", "data after last chunk"),
        ("82cb0001abcdabcd", "BYE source missing"),
        ("81cb0002abcdabcd09616263", "BYE reason overruns"),
        ("80cc0001abcdabcd", "APP too short"),
        ("81cd0001abcdabcd", "RTPFB too short"),
        ("81ce0001abcdabcd", "PSFB too short"),
        ("80cf0000", "XR without SSRC"),
        ("80cf0002abcdabcd0400", "XR block header truncated"),
        ("a0c90000", "P bit on an empty packet"),
        ("a0c90001abcdab00", "padding 0"),
        ("a0c90001abcdab05", "padding beyond body"),
    ],
)
def test_malformed_raises_rtp_parse_error(hexdata: str, why: str) -> None:
    with pytest.raises(RtpParseError):
        parse_compound(bytes.fromhex(hexdata))


# -- NTP ---------------------------------------------------------------------------------------


def test_ntp_helpers() -> None:
    assert ntp_from_unix(0.0) == 2_208_988_800 << 32
    assert ntp_from_unix(1.5) == ((2_208_988_801) << 32) | 0x80000000
    assert unix_from_ntp(ntp_from_unix(1_700_000_000.25)) == 1_700_000_000.25
    assert ntp_middle32(0x0123456789ABCDEF) == 0x456789AB


# -- properties --------------------------------------------------------------------------------

u32 = st.integers(0, 0xFFFFFFFF)
blocks = st.builds(
    ReportBlock,
    ssrc=u32,
    fraction_lost=st.integers(0, 255),
    packets_lost=st.integers(-0x800000, 0x7FFFFF),
    highest_sequence=u32,
    jitter=u32,
    lsr=u32,
    dlsr=u32,
)
words = st.binary(max_size=16).map(lambda b: b + bytes(-len(b) % 4))
items = st.builds(SdesItem, type=st.integers(1, 255), value=st.binary(max_size=40))
rtcp_packets = st.one_of(
    st.builds(
        RtcpSrPacket,
        u32,
        st.integers(0, 2**64 - 1),
        u32,
        u32,
        u32,
        st.lists(blocks, max_size=3).map(tuple),
        words,
    ),
    st.builds(RtcpRrPacket, u32, st.lists(blocks, max_size=3).map(tuple), words),
    st.builds(
        RtcpSdesPacket,
        st.lists(st.builds(SdesChunk, u32, st.lists(items, max_size=3).map(tuple)), max_size=3).map(tuple),
    ),
    st.builds(RtcpByePacket, st.lists(u32, max_size=4).map(tuple), st.none() | st.binary(max_size=40)),
    st.builds(RtcpAppPacket, u32, st.binary(min_size=4, max_size=4), words, st.integers(0, 31)),
    st.builds(RtcpRtpfbPacket, st.integers(0, 31), u32, u32, words),
    st.builds(RtcpPsfbPacket, st.integers(0, 31), u32, u32, words),
    st.builds(
        RtcpXrPacket,
        u32,
        st.lists(st.builds(XrBlock, st.integers(0, 255), st.integers(0, 255), words), max_size=3).map(tuple),
    ),
    st.builds(RtcpUnknownPacket, st.integers(208, 223), st.integers(0, 31), words),
)


@given(st.lists(rtcp_packets, min_size=1, max_size=5))
def test_property_compound_round_trip(packets: list[RtcpPacket]) -> None:
    data = serialize_compound(packets)
    assert parse_compound(data) == packets
    assert serialize_compound(parse_compound(data)) == data


@given(st.binary(max_size=120))
def test_property_random_bytes_only_raise_parse_error(data: bytes) -> None:
    try:
        packets = parse_compound(data)
    except RtpParseError:
        return
    assert parse_compound(serialize_compound(packets)) == packets


@given(st.integers(192, 223), st.integers(0, 31), st.binary(max_size=64))
def test_property_well_framed_random_bodies(ptype: int, count: int, body: bytes) -> None:
    body += bytes(-len(body) % 4)
    data = bytes((0x80 | count, ptype)) + (len(body) // 4).to_bytes(2, "big") + body
    try:
        packets = parse_compound(data)
    except RtpParseError:
        return
    assert parse_compound(serialize_compound(packets)) == packets
