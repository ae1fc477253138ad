"""RTP packet parse/serialize (RFC 3550 §5.1, §5.3.1) and RFC 8285 header extensions.

Vectors: tests/vectors/rtp/ (see PROVENANCE.md) - the media corpus RTP packets, real
captures from baresip and sipp checked against the capture index notes, and the plaintext
packets of the SRTP round-trip corpus.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtpcore.errors import LocalProtocolError, RemoteProtocolError, RtpParseError
from rtpcore.rtp.packet import (
    ExtensionProfile,
    RtpPacket,
    is_rtcp,
    pack_extensions,
    parse_extensions,
)

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "rtp"
CORPUS = json.loads((VECTORS / "rtp_rtcp.json").read_text())
INDEX = {
    Path(f["file"]).name: f for f in json.loads((VECTORS / "captures_index.json").read_text())["fixtures"]
}
SRTP_PLAIN = json.loads((VECTORS / "srtp_roundtrip_plaintexts.json").read_text())


def _datagrams(name: str) -> list[bytes]:
    path = VECTORS / name
    if name.endswith(".hexlines"):
        return [bytes.fromhex(line) for line in path.read_text().split()]
    return [path.read_bytes()]


_NOTE = re.compile(r"V=(\d) M=(\d) PT=(\d+) seq=(\d+) ts=(\d+) ssrc=0x([0-9a-f]+) payload=(\d+)B")


def _expected_from_index(name: str) -> tuple[list[tuple[int, ...]], int]:
    """Header fields per packet from the capture index notes, and the SRTP tag to remove."""
    entry = INDEX[name]
    tag = 0
    if "decrypted_from" in entry:
        entry = INDEX[Path(entry["decrypted_from"]).name]
        tag = 10  # AES_CM_128_HMAC_SHA1_80: the index counts the tag in the payload
    return [
        tuple(int(g, 16) if i == 5 else int(g) for i, g in enumerate(m))
        for m in _NOTE.findall(entry["notes"])
    ], tag


# -- the media corpus (RFC 3550 / RFC 8285 layouts) ----------------------------------------


@pytest.mark.parametrize("vector", CORPUS["rtp"], ids=lambda v: v["name"])
def test_corpus_vector_fields_and_round_trip(vector: dict[str, Any]) -> None:
    data = bytes.fromhex(vector["packet"])
    exp = vector["expected"]
    p = RtpPacket.parse(data)
    assert data[0] >> 6 == exp["version"] == 2
    assert (p.padding_size > 0) is exp["padding"]
    assert (p.extension_profile is not None) is exp["extension"]
    assert len(p.csrc) == exp["csrc_count"]
    assert p.marker is exp["marker"]
    assert p.payload_type == exp["payload_type"]
    assert p.sequence_number == exp["sequence_number"]
    assert p.timestamp == exp["timestamp"]
    assert p.ssrc == int(exp["ssrc"], 16)
    assert list(p.csrc) == [int(c, 16) for c in exp.get("csrcs", [])]
    if "payload" in exp:
        assert p.payload == bytes.fromhex(exp["payload"])
    if "payload_length" in exp:
        assert len(p.payload) == exp["payload_length"]
        assert p.payload[:4] == bytes.fromhex(exp["payload_first4"])
    if "padding_length" in exp:
        assert p.padding_size == exp["padding_length"]
    if exp["extension"]:
        assert p.extension_profile == int(exp["extension_profile"], 16)
        assert len(p.extension) == 4 * exp["extension_length_words"]
        assert p.extension == bytes.fromhex(exp["extension_data"])
        elements = [(e["id"], bytes.fromhex(e["value"])) for e in exp["extension_elements"]]
        assert p.extension_elements() == elements
        # Re-packing the elements gives the same extension block (same form, same padding).
        assert pack_extensions(elements, two_byte=p.extension_profile != ExtensionProfile.ONE_BYTE) == (
            p.extension_profile,
            p.extension,
        )
    assert p.serialize() == data
    assert bytes(p) == data


# -- real captures -------------------------------------------------------------------------

RTP_CAPTURES = [
    "baresip_pcma.bin",
    "baresip_pcma_3pkts.hexlines",
    "baresip_pcmu.bin",
    "baresip_pcmu_3pkts.hexlines",
    "sipp_pcma.bin",
    "sipp_pcma_3pkts.hexlines",
    "baresip_srtp_erin_3pkts.hexlines",
    "baresip_srtp_erin_3pkts.decrypted.hexlines",
    "baresip_srtp_hank_3pkts.hexlines",
    "baresip_srtp_hank_3pkts.decrypted.hexlines",
    "baresip_dtmf_digit1.hexlines",
    "sipp_dtmf_2833_digit1.hexlines",
]


@pytest.mark.parametrize("name", RTP_CAPTURES)
def test_capture_fields_match_index_and_round_trip(name: str) -> None:
    datagrams = _datagrams(name)
    expected, tag = _expected_from_index(name)
    assert len(expected) == len(datagrams)
    for data, (version, marker, pt, seq, ts, ssrc, payload_len) in zip(datagrams, expected, strict=True):
        p = RtpPacket.parse(data)
        assert version == 2
        assert (p.marker, p.payload_type, p.sequence_number, p.timestamp, p.ssrc) == (
            bool(marker),
            pt,
            seq,
            ts,
            ssrc,
        )
        assert len(p.payload) == payload_len - tag
        assert p.csrc == () and p.extension_profile is None and p.padding_size == 0
        assert p.serialize() == data
        assert not is_rtcp(data)


def test_capture_payload_sizes_match_readme_facts() -> None:
    # README: sipp replays 240-byte (30 ms) PCMA frames, baresip sends 160-byte (20 ms) frames.
    assert {len(RtpPacket.parse(d).payload) for d in _datagrams("sipp_pcma_3pkts.hexlines")} == {240}
    assert {len(RtpPacket.parse(d).payload) for d in _datagrams("baresip_pcma_3pkts.hexlines")} == {160}
    # baresip telephone-events are interleaved with audio: sequence numbers step by 2.
    seqs = [RtpPacket.parse(d).sequence_number for d in _datagrams("baresip_dtmf_digit1.hexlines")]
    assert all(b - a == 2 for a, b in zip(seqs, seqs[1:], strict=False))
    # sipp's end packets reuse one sequence number.
    seqs = [RtpPacket.parse(d).sequence_number for d in _datagrams("sipp_dtmf_2833_digit1.hexlines")]
    assert seqs[-3:] == [7991] * 3


@pytest.mark.parametrize("vector", SRTP_PLAIN["rtp"], ids=lambda v: v["description"])
def test_srtp_corpus_plaintexts(vector: dict[str, Any]) -> None:
    data = bytes.fromhex(vector["plaintext"])
    p = RtpPacket.parse(data)
    assert p.sequence_number == vector["seq"]
    assert p.ssrc == int(SRTP_PLAIN["ssrc"], 16)
    desc = vector["description"]
    assert (p.padding_size > 0) is ("padding" in desc)
    if "padding (4 octets)" in desc:
        assert p.padding_size == 4
    assert (len(p.csrc) == 2) is ("CSRC" in desc)
    if "one-byte" in desc:
        assert p.extension_profile == ExtensionProfile.ONE_BYTE
        assert p.extension_elements() == [(1, b"\x8a"), (3, b"\x12\x34\x56")]
    elif "two-byte" in desc:
        assert p.extension_profile == ExtensionProfile.TWO_BYTE
        assert p.extension_elements() == [(5, b"hello"), (7, b"")]
    else:
        assert p.extension_profile is None and p.extension_elements() == []
    assert p.serialize() == data


def test_memoryview_and_bytearray_input() -> None:
    data = bytes.fromhex(CORPUS["rtp"][3]["packet"])
    assert RtpPacket.parse(memoryview(data)) == RtpPacket.parse(bytearray(data)) == RtpPacket.parse(data)
    assert isinstance(RtpPacket.parse(memoryview(data)).payload, bytes)


# -- malformed input (RFC 3550 A.1 header validity checks) -----------------------------------

GOOD = bytes.fromhex("80000001000000a012345678") + b"\xff" * 4


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "short"),
        (GOOD[:11], "short"),
        (b"\x40" + GOOD[1:], "version"),
        (b"\x00" + GOOD[1:], "version"),
        (b"\xc0" + GOOD[1:], "version"),
        (b"\x82" + GOOD[1:12] + b"\x00\x00\x00\x01", "CSRC"),
        (b"\x90" + GOOD[1:12] + b"\xbe\xde", "extension header"),
        (b"\x90" + GOOD[1:12] + b"\xbe\xde\x00\x02\x10\x00\x00\x00", "extension words"),
        (b"\xa0" + GOOD[1:12], "no padding octets"),
        (b"\xa0" + GOOD[1:] + b"\x00", "padding 0"),
        (b"\xa0" + GOOD[1:12] + b"\x00\x00\x04", "padding beyond the body"),
    ],
)
def test_malformed_raises_rtp_parse_error(data: bytes, why: str) -> None:
    with pytest.raises(RtpParseError):
        RtpPacket.parse(data)


def test_parse_error_is_remote_protocol_error() -> None:
    with pytest.raises(RemoteProtocolError):
        RtpPacket.parse(b"\x80")


def test_padding_may_fill_the_whole_body() -> None:
    p = RtpPacket.parse(b"\xa0" + GOOD[1:12] + b"\x00\x00\x00\x04")
    assert p.payload == b"" and p.padding_size == 4
    assert p.serialize() == b"\xa0" + GOOD[1:12] + b"\x00\x00\x00\x04"


@pytest.mark.parametrize(
    "packet",
    [
        RtpPacket(128, 1, 1, 1),
        RtpPacket(-1, 1, 1, 1),
        RtpPacket(0, 65536, 1, 1),
        RtpPacket(0, 1, 2**32, 1),
        RtpPacket(0, 1, 1, -1),
        RtpPacket(0, 1, 1, 1, csrc=tuple(range(16))),
        RtpPacket(0, 1, 1, 1, csrc=(2**32,)),
        RtpPacket(0, 1, 1, 1, extension_profile=0xBEDE, extension=b"\x10\x01"),
        RtpPacket(0, 1, 1, 1, extension_profile=0x10000, extension=b""),
        RtpPacket(0, 1, 1, 1, padding_size=256),
        RtpPacket(0, 1, 1, 1, padding_size=-1),
    ],
)
def test_serialize_rejects_values_that_do_not_fit(packet: RtpPacket) -> None:
    with pytest.raises(LocalProtocolError):
        packet.serialize()


def test_serialize_builds_documented_layout() -> None:
    p = RtpPacket(
        101,
        0xABCD,
        0x01020304,
        0xCAFEBABE,
        marker=True,
        payload=b"\x01\x0a\x00\xa0",
        csrc=(7,),
        extension_profile=0xBEDE,
        extension=b"\x10\x55\x00\x00",
        padding_size=2,
    )
    assert p.serialize() == bytes.fromhex("b1e5abcd01020304cafebabe00000007bede000110550000010a00a00002")
    again = RtpPacket.parse(p.serialize())
    assert again == p


# -- RFC 8285 elements ---------------------------------------------------------------------


def test_one_byte_padding_between_elements_and_id15_stops() -> None:
    data = bytes.fromhex("10aa000021bbcc00f0dd0000")
    assert parse_extensions(0xBEDE, data) == [(1, b"\xaa"), (2, b"\xbb\xcc")]


def test_two_byte_zero_length_and_appbits() -> None:
    assert parse_extensions(0x100F, bytes.fromhex("0100000203abcdef")) == [(1, b""), (2, b"\xab\xcd\xef")]


@pytest.mark.parametrize(
    ("profile", "data"),
    [
        (0xBEDE, b"\x13\x00"),  # one-byte element of 4 octets with 1 present
        (0x1000, b"\x05"),  # two-byte element without a length octet
        (0x1000, b"\x05\x03ab"),  # two-byte element overruns
        (0xABCD, b"\x00\x00\x00\x00"),  # not an RFC 8285 profile
    ],
)
def test_extension_element_errors(profile: int, data: bytes) -> None:
    with pytest.raises(RtpParseError):
        parse_extensions(profile, data)


def test_pack_extensions_chooses_the_form() -> None:
    assert pack_extensions([(1, b"\x01")]) == (0xBEDE, b"\x10\x01\x00\x00")
    assert pack_extensions([(1, b"")]) == (0x1000, b"\x01\x00\x00\x00")
    assert pack_extensions([(15, b"a")]) == (0x1000, b"\x0f\x01a\x00")
    assert pack_extensions([(1, b"x" * 17)])[0] == 0x1000
    assert pack_extensions([]) == (0xBEDE, b"")
    with pytest.raises(LocalProtocolError):
        pack_extensions([(1, b"")], two_byte=False)
    with pytest.raises(LocalProtocolError):
        pack_extensions([(0, b"a")], two_byte=True)
    with pytest.raises(LocalProtocolError):
        pack_extensions([(1, b"a" * 256)])


# -- RFC 5761 §4 -----------------------------------------------------------------------------


def test_is_rtcp_uses_masked_payload_type_64_to_95() -> None:
    for second in range(256):
        assert is_rtcp(bytes((0x80, second))) is (64 <= (second & 0x7F) <= 95)
    assert is_rtcp(bytes((0x80, 200)))
    assert not is_rtcp(bytes((0x80, 0)))
    assert not is_rtcp(b"\x80")
    assert not is_rtcp(b"")


# -- properties --------------------------------------------------------------------------------

packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence_number=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    marker=st.booleans(),
    payload=st.binary(max_size=64),
    csrc=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15).map(tuple),
    extension_profile=st.none() | st.integers(0, 0xFFFF),
    extension=st.binary(max_size=32).map(lambda b: b + bytes(-len(b) % 4)),
    padding_size=st.integers(0, 255),
)


@given(packets)
def test_property_serialize_then_parse(p: RtpPacket) -> None:
    if p.extension_profile is None:
        p.extension = b""
    data = p.serialize()
    assert RtpPacket.parse(data) == p
    if p.padding_size == 0:
        assert RtpPacket.parse(data).serialize() == data


@given(st.binary(max_size=80))
def test_property_random_bytes_only_raise_parse_error(data: bytes) -> None:
    try:
        p = RtpPacket.parse(data)
    except RtpParseError:
        return
    # Whatever parses re-serializes to the input, with padding octets normalized to zeros.
    out = p.serialize()
    if p.padding_size:
        assert out == data[: len(data) - p.padding_size] + bytes(p.padding_size - 1) + data[-1:]
    else:
        assert out == data
    if p.extension_profile is not None:
        try:
            p.extension_elements()
        except RtpParseError:
            pass


@given(st.binary(min_size=12, max_size=80))
def test_property_version2_random_bodies(data: bytes) -> None:
    data = bytes((0x80 | (data[0] & 0x3F),)) + data[1:]
    try:
        RtpPacket.parse(data)
    except RtpParseError:
        pass


@given(st.lists(st.tuples(st.integers(1, 255), st.binary(max_size=255)), max_size=8))
def test_property_extension_elements_round_trip(elements: list[tuple[int, bytes]]) -> None:
    profile, data = pack_extensions(elements)
    assert len(data) % 4 == 0
    assert parse_extensions(profile, data) == elements


def test_copied_captures_match_the_index_sha256() -> None:
    assert len(INDEX) == 24
    for name, entry in INDEX.items():
        assert hashlib.sha256((VECTORS / name).read_bytes()).hexdigest() == entry["sha256"], name
