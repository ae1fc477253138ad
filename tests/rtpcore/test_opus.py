"""Opus (RFC 6716) over RTP (RFC 7587): fmtp handling, codec round trip, PLC, FEC, and the
behaviour without libopus.

Tests that run the codec skip only when libopus is missing locally (``make sysdeps``
installs it); under CI=true that is a failure, like any missing interop dependency.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import missing_peer
from rtpcore.codecs import (
    OPUS_OFFER,
    Codec,
    CodecRegistry,
    CodecSpec,
    OpusCodec,
    OpusParams,
    create,
    opus_available,
)
from rtpcore.codecs import opus as opus_mod
from rtpcore.errors import CodecDecodeError, CodecError, CodecUnavailableError, RemoteProtocolError

RATE = 48000
FRAME = 960


def need_opus() -> None:
    if not opus_available():
        missing_peer("libopus not installed (apt-get install libopus0, or `make sysdeps`)")


def tone(seconds: float, hz: float = 440.0, amp: float = 8000.0) -> np.ndarray:
    n = int(RATE * seconds)
    return (amp * np.sin(2 * np.pi * hz * np.arange(n) / RATE)).astype(np.int16)


def dominant_hz(x: np.ndarray) -> float:
    n = 1 << 18
    spec = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(len(x)), n))
    return float(np.argmax(spec) * RATE / n)


def best_lag(ref: np.ndarray, out: np.ndarray, max_lag: int = 1200) -> int:
    """Codec delay: the lag in [0, max_lag) that best aligns ``out`` with ``ref``."""
    seg = ref[RATE // 10: RATE // 10 + 4800].astype(np.float64)
    scores = [float(np.dot(seg, out[RATE // 10 + k: RATE // 10 + k + 4800])) for k in range(max_lag)]
    return int(np.argmax(scores))


def snr_db(ref: np.ndarray, out: np.ndarray) -> float:
    ref = ref.astype(np.float64)
    err = out.astype(np.float64) - ref
    return float(10 * np.log10(np.sum(ref * ref) / max(np.sum(err * err), 1e-9)))


def roundtrip(x: np.ndarray, enc: OpusCodec, dec: OpusCodec) -> tuple[list[bytes], np.ndarray]:
    packets = [enc.encode(x[i:i + FRAME]) for i in range(0, len(x) - FRAME + 1, FRAME)]
    return packets, np.concatenate([dec.decode(p) for p in packets])


# -- fmtp (no libopus needed) --------------------------------------------------------------


def test_fmtp_parameters_rfc7587() -> None:
    p = OpusParams.from_fmtp(
        "minptime=10;useinbandfec=1;usedtx=1;stereo=0;sprop-stereo=1;maxplaybackrate=16000;"
        "sprop-maxcapturerate=48000;maxaveragebitrate=20000;cbr=1"
    )
    assert p == OpusParams(
        max_playback_rate=16000, sprop_max_capture_rate=48000, max_average_bitrate=20000, stereo=False,
        sprop_stereo=True, cbr=True, use_inband_fec=True, use_dtx=True, min_ptime=10,
    )
    again = OpusParams.from_fmtp(p.format())
    assert again == p


def test_fmtp_defaults_clamps_and_garbage() -> None:
    assert OpusParams.from_fmtp("") == OpusParams()
    assert OpusParams.from_fmtp({"MaxAverageBitrate": "1000000"}).max_average_bitrate == 510000
    assert OpusParams.from_fmtp("maxaveragebitrate=100").max_average_bitrate == 6000
    # unknown or unparseable parameters are ignored (RFC 7587 §6.1 says so for the receiver)
    assert OpusParams.from_fmtp("maxplaybackrate=abc;foo=bar;useinbandfec=0") == OpusParams(use_inband_fec=False)


@pytest.mark.parametrize(("rate", "bw"), [(None, 1105), (8000, 1101), (12000, 1102), (16000, 1103),
                                          (24000, 1104), (32000, 1105), (48000, 1105)])
def test_maxplaybackrate_maps_to_bandwidth(rate: int | None, bw: int) -> None:
    assert opus_mod.max_bandwidth_for(rate) == bw


# -- without libopus -------------------------------------------------------------------------


def test_missing_libopus_raises_codec_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken():  # what _load_opuslib does when `import opuslib` fails
        raise CodecUnavailableError(opus_mod.INSTALL_HINT)

    monkeypatch.setattr(opus_mod, "_load_opuslib", broken)
    monkeypatch.setattr(opus_mod, "opus_available", lambda: False)
    with pytest.raises(CodecUnavailableError) as info:
        OpusCodec()
    assert "libopus0" in str(info.value) and "opuslib" in str(info.value)
    assert isinstance(info.value, ImportError)  # callers may catch ImportError


def test_import_failure_is_translated(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("opuslib"):
            raise Exception("Could not find Opus library. Make sure it is installed.")
        return real_import(name, *args, **kwargs)

    opus_mod._load_opuslib.cache_clear()
    monkeypatch.setattr(builtins, "__import__", fake_import)
    try:
        with pytest.raises(CodecUnavailableError, match="libopus0"):
            opus_mod._load_opuslib()
        assert not opus_mod.opus_available()
    finally:
        monkeypatch.undo()
        opus_mod._load_opuslib.cache_clear()


def test_registry_without_opus(monkeypatch: pytest.MonkeyPatch) -> None:
    import rtpcore.codecs.registry as reg_mod

    monkeypatch.setattr(reg_mod, "opus_available", lambda: False)
    reg = CodecRegistry.default()
    names = [s.rtpmap for s in reg.offer()]
    assert names == ["PCMU/8000", "PCMA/8000", "telephone-event/8000"]
    assert not reg.supports(OPUS_OFFER)


def test_registry_with_opus_offers_it_first(monkeypatch: pytest.MonkeyPatch) -> None:
    import rtpcore.codecs.registry as reg_mod

    monkeypatch.setattr(reg_mod, "opus_available", lambda: True)
    offer = CodecRegistry.default().offer()
    assert [(s.rtpmap, s.payload_type) for s in offer] == [
        ("opus/48000/2", 111), ("PCMU/8000", 0), ("PCMA/8000", 8),
        ("telephone-event/48000", 110), ("telephone-event/8000", 101),
    ]
    assert offer[0].fmtp == {"minptime": "10", "useinbandfec": "1"}


def test_package_import_never_needs_libopus() -> None:
    """In a fresh interpreter where opuslib cannot load, rtpcore.codecs still imports and works."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys; sys.modules['opuslib'] = None\n"  # makes `import opuslib` raise ImportError
        "import numpy as np\n"
        "import rtpcore.codecs as c, rtpcore.jitter, rtpcore.quality, rtpcore.resample\n"
        "assert not c.opus_available()\n"
        "assert [s.name for s in c.CodecRegistry.default().offer()] == ['PCMU', 'PCMA', 'telephone-event']\n"
        "assert len(c.PcmuCodec().encode(np.zeros(160, dtype=np.int16))) == 160\n"
        "try:\n"
        "    c.OpusCodec()\n"
        "except c.opus.CodecUnavailableError as e:\n"
        "    assert 'libopus0' in str(e) and 'opuslib' in str(e)\n"
        "    print('ok')\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


# -- with libopus ------------------------------------------------------------------------------


def test_opus_tone_roundtrip_snr_and_frequency() -> None:
    need_opus()
    enc, dec = OpusCodec("useinbandfec=1"), OpusCodec()
    assert isinstance(enc, Codec)
    assert (enc.name, enc.clock_rate, enc.sample_rate, enc.channels, enc.frame_samples) == ("opus", 48000, 48000, 1, 960)
    assert enc.spec.rtpmap == "opus/48000/2" and enc.payload_type is None
    x = tone(1.0)
    packets, y = roundtrip(x, enc, dec)
    assert len(packets) == 50 and all(0 < len(p) < 400 for p in packets)
    bits = sum(len(p) for p in packets) * 8
    assert bits < 45000  # about the 32 kbit/s target
    assert len(y) == len(x)
    lag = best_lag(x, y)
    assert 0 <= lag < 700  # encoder lookahead + decoder delay, a few ms
    seg = slice(RATE // 10, len(x) - RATE // 10)
    assert snr_db(x[seg], y[seg.start + lag: seg.stop + lag]) > 15.0
    assert abs(dominant_hz(y[RATE // 10:]) - 440.0) < 2.0


def test_opus_stereo_and_frame_sizes() -> None:
    need_opus()
    enc, dec = OpusCodec(channels=2, frame_ms=40), OpusCodec(channels=2)
    x = np.repeat(tone(0.04), 2)  # interleaved L/R
    assert len(x) == 2 * 1920
    y = dec.decode(enc.encode(x))
    assert len(y) == 2 * 1920
    with pytest.raises(CodecError):
        enc.encode(tone(0.015))  # 720 samples: not an Opus frame size
    with pytest.raises(CodecError):
        OpusCodec(frame_ms=25)
    with pytest.raises(CodecError):
        OpusCodec(channels=3)


def test_opus_fmtp_configures_the_encoder() -> None:
    need_opus()
    low = OpusCodec("maxaveragebitrate=12000;maxplaybackrate=8000;cbr=1")
    assert low.bitrate == 12000 and low.cbr and low.max_bandwidth == 1101
    x = tone(1.0, hz=300.0)
    packets = [low.encode(x[i:i + FRAME]) for i in range(0, len(x), FRAME)]
    assert len(set(len(p) for p in packets[5:])) == 1  # CBR: constant size
    assert sum(len(p) for p in packets) * 8 < 14000
    dtx = OpusCodec("usedtx=1")
    silence = np.zeros(FRAME, dtype=np.int16)
    sizes = [len(dtx.encode(silence)) for _ in range(50)]
    assert min(sizes) <= 2  # DTX: tiny packets during silence
    assert dtx.dtx and OpusCodec("useinbandfec=1").fec


def test_opus_plc_continues_then_decays() -> None:
    need_opus()
    enc, dec = OpusCodec(), OpusCodec()
    x = tone(0.5)
    packets, _ = roundtrip(x, enc, dec)
    plc = dec.conceal(FRAME)
    assert plc.dtype == np.int16 and len(plc) == FRAME
    assert np.sqrt(np.mean(plc.astype(float) ** 2)) > 1000  # keeps sounding, not a dropout
    odd = dec.conceal(1000)  # not a multiple of 2.5 ms: the surplus is kept for the next call
    assert len(odd) == 1000 and len(dec.conceal(200)) == 200
    long = np.concatenate([dec.conceal(FRAME) for _ in range(20)])
    assert np.abs(long[-FRAME:]).max() < np.abs(plc).max()  # fades during a long loss
    assert len(dec.decode(packets[0])) == FRAME  # recovers on the next packet


def test_opus_fec_recovers_lost_frames_better_than_plc() -> None:
    need_opus()
    enc = OpusCodec("useinbandfec=1", bitrate=24000)
    t = np.arange(RATE) / RATE
    # voiced-speech-like: 150 Hz pitch with harmonics, syllable-rate amplitude modulation
    voice = sum((3000.0 / k) * np.sin(2 * np.pi * 150 * k * t) for k in range(1, 15))
    x = (voice * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.int16)
    packets = [enc.encode(x[i:i + FRAME]) for i in range(0, len(x), FRAME)]
    ref_dec = OpusCodec()
    ref = [ref_dec.decode(p) for p in packets]
    gains = []
    for lost in range(5, 48, 3):
        fec_dec, plc_dec = OpusCodec(), OpusCodec()
        for p in packets[:lost]:
            fec_dec.decode(p)
            plc_dec.decode(p)
        recovered = fec_dec.decode_fec(packets[lost + 1], FRAME)
        concealed = plc_dec.conceal(FRAME)
        assert len(recovered) == FRAME
        gains.append(snr_db(ref[lost], recovered) - snr_db(ref[lost], concealed))
    assert fec_dec.supports_fec
    # LBRR is sent for active frames: those come back at far better SNR than PLC gives;
    # where the encoder sent none, libopus falls back to PLC (same output, gain 0)
    assert min(gains) > -0.5
    assert sum(g > 6.0 for g in gains) >= len(gains) // 3
    assert np.mean(gains) > 4.0


def test_corrupt_packet_raises_remote_error() -> None:
    need_opus()
    dec = OpusCodec()
    with pytest.raises(CodecDecodeError) as info:
        dec.decode(b"")
    assert isinstance(info.value, RemoteProtocolError)
    # TOC code 3 (arbitrary frame count) with a frame count byte of 0 is invalid (RFC 6716 §3.2.5)
    with pytest.raises(CodecDecodeError):
        dec.decode(b"\x03\x00")


def test_registry_creates_opus_from_sdp() -> None:
    need_opus()
    c = create(CodecSpec("OPUS", 48000, 2, {"useinbandfec": "1", "maxaveragebitrate": "16000"}, 111))
    assert isinstance(c, OpusCodec)
    assert c.payload_type == 111 and c.fec and c.bitrate == 16000
    assert c.spec.fmtp == {"useinbandfec": "1", "maxaveragebitrate": "16000"}
    c.reset()
