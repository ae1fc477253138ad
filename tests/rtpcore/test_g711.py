"""G.711 PCMU/PCMA (ITU-T G.711, RFC 3551 §4.5.14): tables, vectors, real captures, PLC,
and the codec registry (RFC 3264 / RFC 4855 matching).

Vectors: tests/vectors/g711/ (see PROVENANCE.md there).
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtpcore.codecs import (
    PCMA_OFFER,
    PCMU_OFFER,
    Codec,
    CodecRegistry,
    CodecSpec,
    PcmaCodec,
    PcmuCodec,
    WaveformPlc,
    alaw_decode,
    alaw_encode,
    create,
    format_fmtp,
    parse_fmtp,
    ulaw_decode,
    ulaw_encode,
)
from rtpcore.codecs.g711 import alaw_encode_table, mulaw_decode_table, mulaw_encode_table
from rtpcore.errors import CodecError

VEC = Path(__file__).resolve().parent.parent / "vectors" / "g711"
ALL = np.arange(-32768, 32768, dtype=np.int16)


@pytest.fixture(scope="module")
def vectors() -> dict:
    return json.loads((VEC / "g711.json").read_text())


def rtp_payload(packet: bytes) -> tuple[int, int, int, bytes]:
    """(payload type, seq, timestamp, payload) of a plain RTP packet (RFC 3550 §5.1)."""
    b0, b1, seq, ts = struct.unpack_from("!BBHI", packet)
    assert b0 >> 6 == 2
    start = 12 + 4 * (b0 & 0x0F)
    if b0 & 0x10:
        (words,) = struct.unpack_from("!H", packet, start + 2)
        start += 4 + 4 * words
    end = len(packet) - (packet[-1] if b0 & 0x20 else 0)
    return b1 & 0x7F, seq, ts, packet[start:end]


def hexlines(name: str) -> list[bytes]:
    return [bytes.fromhex(line) for line in (VEC / name).read_text().split()]


def dominant_hz(x: np.ndarray, rate: int) -> float:
    n = 1 << 16
    spec = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(len(x)), n))
    return float(np.argmax(spec) * rate / n)


# -- tables against the vector file -------------------------------------------------------


def test_decode_tables_match_vectors(vectors: dict) -> None:
    assert mulaw_decode_table().tolist() == vectors["ulaw_decode"]
    assert ulaw_decode(bytes(range(256))).tolist() == vectors["ulaw_decode"]
    assert alaw_decode(bytes(range(256))).tolist() == vectors["alaw_decode"]
    # conventions: 0x00 most negative, 0x80 most positive (µ-law); 0xD5 -> +8, 0x55 -> -8 (A-law)
    assert ulaw_decode(b"\x00\x80\xff\x7f").tolist() == [-32124, 32124, 0, 0]
    assert alaw_decode(b"\xd5\x55").tolist() == [8, -8]


def test_encode_edge_and_segment_boundaries(vectors: dict) -> None:
    assert vectors["count"]["encode"] == len(vectors["encode"]) == 254
    differ = 0
    for e in vectors["encode"]:
        x = np.array([e["sample"]], dtype=np.int16)
        assert ulaw_encode(x).hex() == e["ulaw"], e
        assert alaw_encode(x).hex() == e["alaw"], e
        assert ulaw_decode(ulaw_encode(x))[0] == e["ulaw_decoded"]
        assert alaw_decode(alaw_encode(x))[0] == e["alaw_decoded"]
        # ITU-T G.191 STL variant (one's complement for negatives) where the file lists it
        g191 = ulaw_encode(x, g191=True).hex()
        assert g191 == e.get("ulaw_g191", e["ulaw"]), e
        differ += g191 != e["ulaw"]
    assert differ == vectors["known_divergence"]["samples_that_differ_in_this_file"] == 21


def test_g191_variant_differs_by_one_step_on_negatives_only() -> None:
    sun = mulaw_encode_table().astype(int)[ALL.view(np.uint16)]
    stl = mulaw_encode_table(g191=True).astype(int)[ALL.view(np.uint16)]
    diff = np.nonzero(sun != stl)[0]
    assert len(diff) > 0
    assert (ALL[diff] < 0).all()
    dec = mulaw_decode_table().astype(int)
    steps = np.abs(dec[sun[diff]] - dec[stl[diff]])
    # neighbouring quantiser levels: step sizes 8..1024 on the 16-bit scale
    assert steps.max() <= 1024 and steps.min() >= 8


def test_exhaustive_against_audioop_if_available() -> None:
    audioop = pytest.importorskip("audioop")  # removed in Python 3.13
    pcm = ALL.tobytes()
    assert ulaw_encode(ALL) == audioop.lin2ulaw(pcm, 2)
    assert alaw_encode(ALL) == audioop.lin2alaw(pcm, 2)
    codes = bytes(range(256))
    assert ulaw_decode(codes).tobytes() == audioop.ulaw2lin(codes, 2)
    assert alaw_decode(codes).tobytes() == audioop.alaw2lin(codes, 2)


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_quantiser_is_monotonic_and_error_bounded(law: str) -> None:
    enc, dec = (ulaw_encode, ulaw_decode) if law == "ulaw" else (alaw_encode, alaw_decode)
    y = dec(enc(ALL)).astype(int)
    assert (np.diff(y) >= 0).all()
    err = np.abs(y - ALL.astype(int))
    mag = np.abs(ALL.astype(int))
    # error at most half a step, step <= 1/16 of the segment (about mag/16), plus the clip region
    bound = np.maximum(mag / 16 + 132, 16)
    inside = mag < 32000
    assert (err[inside] <= bound[inside]).all()


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_every_code_is_a_fixed_point(law: str) -> None:
    codes = bytes(range(256))
    if law == "ulaw":
        back = ulaw_encode(ulaw_decode(codes))
        # µ-law has two zeros (0x7F negative zero, 0xFF positive zero); 0 encodes to 0xFF
        assert back == codes.replace(b"\x7f", b"\xff")
    else:
        assert alaw_encode(alaw_decode(codes)) == codes


@given(st.lists(st.integers(-32768, 32767), min_size=0, max_size=400))
@settings(max_examples=200, deadline=None)
def test_decode_encode_decode_is_stable(samples: list[int]) -> None:
    x = np.array(samples, dtype=np.int16)
    for enc, dec in ((ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)):
        once = dec(enc(x))
        assert len(once) == len(x) and once.dtype == np.int16
        assert np.array_equal(dec(enc(once)), once)


def test_tables_are_read_only() -> None:
    with pytest.raises(ValueError):
        mulaw_encode_table()[0] = 1
    with pytest.raises(ValueError):
        alaw_encode_table()[0] = 1


# -- real captured RTP payloads -----------------------------------------------------------


@pytest.mark.parametrize(
    ("single", "three", "pt", "codec_cls"),
    [
        ("baresip_pcmu.bin", "baresip_pcmu_3pkts.hexlines", 0, PcmuCodec),
        ("baresip_pcma.bin", "baresip_pcma_3pkts.hexlines", 8, PcmaCodec),
        ("sipp_pcma.bin", "sipp_pcma_3pkts.hexlines", 8, PcmaCodec),
    ],
)
def test_captured_payloads_roundtrip(single: str, three: str, pt: int, codec_cls: type) -> None:
    packets = hexlines(three)
    assert packets[0] == (VEC / single).read_bytes()
    codec = codec_cls()
    assert codec.payload_type == pt
    for pkt in packets:
        ptype, _, _, payload = rtp_payload(pkt)
        assert ptype == pt
        pcm = codec.decode(payload)
        assert len(pcm) == len(payload) and pcm.dtype == np.int16
        assert codec.encode(pcm) == payload  # G.711 decode/encode is the identity on real traffic


@pytest.mark.parametrize(("three", "decode"), [("baresip_pcmu_3pkts.hexlines", ulaw_decode),
                                                ("baresip_pcma_3pkts.hexlines", alaw_decode)])
def test_baresip_sends_a_continuous_440hz_tone(three: str, decode) -> None:
    parsed = [rtp_payload(p) for p in hexlines(three)]
    seqs = [p[1] for p in parsed]
    stamps = [p[2] for p in parsed]
    assert seqs == [seqs[0], seqs[0] + 1, seqs[0] + 2]
    assert [b - a for a, b in zip(stamps, stamps[1:])] == [160, 160]
    pcm = decode(b"".join(p[3] for p in parsed))
    assert len(pcm) == 480
    assert abs(dominant_hz(pcm, 8000) - 440.0) < 5.0
    steps = np.abs(np.diff(pcm.astype(int)))
    # a sine's largest step is 2*pi*f/fs * amplitude; allow one top-segment quantiser step
    bound = 2 * np.pi * 440 / 8000 * np.abs(pcm).max() + 1024
    assert steps.max() <= bound
    assert steps[159] <= bound and steps[319] <= bound  # continuous across packet boundaries


def test_sipp_pcma_is_alaw_silence() -> None:
    _, _, _, payload = rtp_payload((VEC / "sipp_pcma.bin").read_bytes())
    assert len(payload) == 240  # 30 ms frames
    assert set(payload) == {0xD5}
    assert set(alaw_decode(payload).tolist()) == {8}


# -- codec objects ----------------------------------------------------------------------------


def test_codec_attributes_and_protocol() -> None:
    u, a = PcmuCodec(), PcmaCodec(frame_ms=30)
    for c in (u, a):
        assert isinstance(c, Codec)
        assert (c.clock_rate, c.sample_rate, c.channels) == (8000, 8000, 1)
    assert (u.name, u.payload_type, u.frame_ms, u.frame_samples) == ("PCMU", 0, 20, 160)
    assert (a.name, a.payload_type, a.frame_ms, a.frame_samples) == ("PCMA", 8, 30, 240)
    assert u.spec == CodecSpec("PCMU", 8000, 1, {}, 0)
    assert u.spec.rtpmap == "PCMU/8000"
    assert not u.supports_fec
    assert "PCMU/8000" in repr(u)


def test_encode_rejects_wrong_input() -> None:
    c = PcmuCodec()
    with pytest.raises(CodecError):
        c.encode(np.zeros(160, dtype=np.float32))  # type: ignore[arg-type]
    with pytest.raises(CodecError):
        c.encode(np.zeros((2, 80), dtype=np.int16))
    with pytest.raises(CodecError):
        PcmuCodec(frame_ms=0)


def test_encode_accepts_non_contiguous_views() -> None:
    x = (np.arange(320) * 50).astype(np.int16)
    assert PcmuCodec().encode(x[::2]) == ulaw_encode(np.ascontiguousarray(x[::2]))


def test_frame_encode_decode_is_fast() -> None:
    c = PcmuCodec()
    frame = (8000 * np.sin(np.arange(160) / 3)).astype(np.int16)
    payload = c.encode(frame)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(2000):
            c.decode(c.encode(frame))
        best = min(best, (time.perf_counter() - t0) / 2000)
    assert len(payload) == 160
    assert best < 50e-6, f"{best * 1e6:.1f} µs per 20 ms frame"


# -- packet-loss concealment -------------------------------------------------------------------


def _tone(n: int, hz: float = 440.0, amp: float = 8000.0, rate: int = 8000) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * hz * np.arange(n) / rate)).astype(np.int16)


@pytest.mark.parametrize("hz", [150.0, 440.0, 1000.0])
def test_plc_continues_the_waveform_then_fades(hz: float) -> None:
    x = _tone(8000, hz)
    c = PcmuCodec()
    for i in range(0, 800, 160):
        c.decode(c.encode(x[i:i + 160]))
    first = c.conceal(80).astype(float)
    truth = x[800:880].astype(float)
    assert np.corrcoef(first, truth)[0, 1] > 0.95  # the first 10 ms follow the tone
    rest = c.conceal(480)
    assert np.abs(rest[:80]).max() > 3000  # 10..20 ms: still audible
    assert np.abs(rest[-80:]).max() == 0  # silent after 60 ms (App. I)
    env = [np.abs(rest[i:i + 80]).max() for i in range(0, 400, 80)]
    assert all(b <= a + 1 for a, b in zip(env, env[1:]))  # fading, never growing


def test_plc_merges_into_the_next_good_frame_without_a_click() -> None:
    x = _tone(4000)
    c = PcmaCodec()
    out = [c.decode(c.encode(x[i:i + 160])) for i in range(0, 800, 160)]
    out.append(c.conceal(160))
    out.append(c.decode(c.encode(x[960:1120])))
    y = np.concatenate(out).astype(int)
    tone_step = np.abs(np.diff(x.astype(int))).max()
    assert np.abs(np.diff(y)).max() <= tone_step * 1.3


def test_plc_without_history_is_silence_and_reset_forgets() -> None:
    plc = WaveformPlc(8000)
    assert not plc.conceal(160).any()
    assert plc.conceal(0).shape == (0,)
    plc.observe(_tone(400))
    assert plc.conceal(80).any()
    plc.reset()
    assert plc.erased_samples == 0
    assert not plc.conceal(80).any()


def test_decode_fec_falls_back_to_concealment_for_g711() -> None:
    c = PcmuCodec()
    c.decode(c.encode(_tone(800)))
    assert len(c.decode_fec(b"\xff" * 160, 160)) == 160
    c.reset()


# -- fmtp and specs ------------------------------------------------------------------------------


def test_fmtp_parse_and_format_roundtrip() -> None:
    p = parse_fmtp("minptime=10; useinbandfec=1;MaxPlaybackRate=16000")
    assert p == {"minptime": "10", "useinbandfec": "1", "maxplaybackrate": "16000"}
    assert format_fmtp(p) == "minptime=10;useinbandfec=1;maxplaybackrate=16000"
    te = parse_fmtp("0-16")
    assert te == {"0-16": ""} and format_fmtp(te) == "0-16"
    assert parse_fmtp("") == {}


def test_codec_spec_validation_and_matching() -> None:
    assert CodecSpec("pcmu", 8000).matches(PCMU_OFFER)  # RFC 4855: names are case-insensitive
    assert not CodecSpec("PCMU", 16000).matches(PCMU_OFFER)
    assert PCMU_OFFER.with_payload_type(96).payload_type == 96
    assert CodecSpec("opus", 48000, 2).rtpmap == "opus/48000/2"
    for bad in (lambda: CodecSpec("", 8000), lambda: CodecSpec("a/b", 8000),
                lambda: CodecSpec("PCMU", 0), lambda: CodecSpec("PCMU", 8000, payload_type=128)):
        with pytest.raises(CodecError):
            bad()
    assert hash(PCMU_OFFER) == hash(CodecSpec("PCMU", 8000, 1, {"x": "y"}, 0))


# -- registry -----------------------------------------------------------------------------------


def test_registry_creates_g711_with_the_offered_payload_type() -> None:
    reg = CodecRegistry.default()
    u = reg.create(CodecSpec("pcmu", 8000, 1, {}, 0))
    a = create(CodecSpec("PCMA", 8000))
    assert isinstance(u, PcmuCodec) and isinstance(a, PcmaCodec)
    assert a.payload_type == 8
    assert reg.create(PCMA_OFFER.with_payload_type(8)).name == "PCMA"


def test_registry_rejects_unknown_and_non_audio() -> None:
    reg = CodecRegistry.default()
    with pytest.raises(CodecError, match="unsupported"):
        reg.create(CodecSpec("G729", 8000, 1, {}, 18))
    with pytest.raises(CodecError, match="not an audio codec"):
        reg.create(CodecSpec("telephone-event", 8000, 1, {}, 101))
    assert reg.supports(CodecSpec("telephone-event", 8000))
    assert not reg.is_audio(CodecSpec("telephone-event", 8000))
    assert not reg.supports(CodecSpec("G722", 8000))


def test_registry_offer_order_and_selection() -> None:
    reg = CodecRegistry.default()
    names = [(s.name, s.clock_rate, s.payload_type) for s in reg.offer()]
    g711 = [("PCMU", 8000, 0), ("PCMA", 8000, 8)]
    assert names[names.index(g711[0]):names.index(g711[0]) + 2] == g711
    assert names[-1] == ("telephone-event", 8000, 101)
    assert reg.preference(PCMU_OFFER) < reg.preference(PCMA_OFFER) < reg.preference(CodecSpec("G729", 8000))
    remote = [CodecSpec("G729", 8000, 1, {}, 18), CodecSpec("PCMA", 8000, 1, {}, 8), CodecSpec("PCMU", 8000, 1, {}, 0)]
    assert [s.name for s in reg.select(remote)] == ["PCMA", "PCMU"]  # answer keeps the offerer's order


def test_custom_registry_entry() -> None:
    reg = CodecRegistry()
    reg.register(CodecSpec("PCMU", 8000, 1, {}, 0), lambda spec: PcmuCodec(frame_ms=30, payload_type=spec.payload_type))
    c = reg.create(CodecSpec("PCMU", 8000, 1, {}, 0))
    assert c.frame_ms == 30
    assert reg.offer() == [CodecSpec("PCMU", 8000, 1, {}, 0)]
