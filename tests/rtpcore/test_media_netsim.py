"""Two MediaSessions over the simulated network (tests/netsim.py): loss, jitter, reordering.

What the receiving side must do with an impaired stream (RFC 3550 §6.4.1 timing, the jitter
buffer of rtpcore.jitter, G.711 Appendix I style concealment, RFC 4733 DTMF):

* every packet that arrived before its play-out time is played (>= 99 %);
* every packet the network lost is concealed, and concealment is not invented beyond the
  lost and late packets (plus a few frames while the delay estimate warms up);
* a 440 Hz tone sent through encode → RTP → SRTP (SDES) → network → SRTP → jitter buffer →
  decode arrives at 440 Hz with bounded distortion (per-frame sine-fit SNR);
* DTMF digits arrive exactly, once each, under 10 % loss;
* the network-loss → frame-loss table (printed with ``pytest -s``; the numbers are in
  benchmarks/README.md, section "Media").

Both sessions run on the simulation's fake clock: A's media clock sends one 20 ms frame per
tick, B's pulls one frame per tick (phase-shifted by 13 ms). A 20 s call takes well under a
second of real time and the same seed always gives the same run.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field

import numpy as np
import pytest

from conftest import missing_peer
from netsim import LinkProfile, Simulation
from rtpcore.jitter import Frame, FrameKind, JitterStats
from rtpcore.media_session import DtmfReceived, MediaConfig, MediaEvent, MediaSession
from rtpcore.rtp.packet import is_rtcp

A = ("10.0.0.1", 4000)
B = ("10.0.0.2", 5000)
PTIME = 0.02
TONE_HZ = 440.0
TONE_AMPLITUDE = 8000  # about -12 dBFS
LOSSES = (0.0, 0.02, 0.05, 0.10, 0.20)
WARMUP_FRAMES = 25
"""Frames skipped before measuring the signal: encoder start-up and the jitter buffer's first delay steps."""


def _rng(seed: int):
    r = random.Random(seed)
    return lambda n: r.randbytes(n)


def tone(start: int, n: int, rate: int, hz: float = TONE_HZ) -> np.ndarray:
    t = (np.arange(n) + start) / rate
    return (np.sin(2 * np.pi * hz * t) * TONE_AMPLITUDE).astype(np.int16)


@dataclass
class CallRun:
    """What one simulated call produced at the receiving side (B)."""

    a: MediaSession
    b: MediaSession
    sim: Simulation
    frames: list[Frame] = field(default_factory=list)
    arrived_seqs: list[int] = field(default_factory=list)
    events: list[MediaEvent] = field(default_factory=list)

    @property
    def jitter(self) -> JitterStats:
        assert self.b._jitter is not None
        return self.b._jitter.stats

    @property
    def network_lost(self) -> int:
        """A→B RTP packets that never arrived (per sequence number, duplicates folded)."""
        return self.a.packets_sent - len(set(self.arrived_seqs))

    @property
    def stream_frames(self) -> list[Frame]:
        """Frames from the first decoded one on (the silence before the stream starts is not counted)."""
        first = next(i for i, f in enumerate(self.frames) if f.kind is FrameKind.AUDIO)
        last = max(i for i, f in enumerate(self.frames) if f.kind is FrameKind.AUDIO)
        return self.frames[first:last + 1]

    def kinds(self, kind: FrameKind) -> int:
        return sum(1 for f in self.stream_frames if f.kind is kind)

    @property
    def frame_loss(self) -> float:
        """Share of played frames that carry concealment instead of received audio."""
        return self.kinds(FrameKind.CONCEALED) / len(self.stream_frames)

    def digits(self) -> list[str]:
        return [e.digit for e in self.events if isinstance(e, DtmfReceived)]


def run_call(*, loss: float = 0.0, jitter: float = 0.0, reorder: float = 0.0, seconds: float = 20.0,
             seed: int = 1, codec: str = "PCMU", security: str = "sdes", dtmf: str | None = None) -> CallRun:
    """A sends a tone (and optionally DTMF at 0.5 s) to B for ``seconds``; B plays out every 20 ms."""
    sim = Simulation(seed=seed, profile=LinkProfile(loss=loss, jitter=jitter, reorder=reorder, delay=0.01))
    start = sim.clock.now
    cfg = MediaConfig(security=security, codecs=(codec,), media_timeout=120.0, ice=False)
    a = MediaSession(A, now=start, config=cfg, rng=_rng(2 * seed + 1))
    b = MediaSession(B, now=start, config=cfg, rng=_rng(2 * seed + 2))
    a.receive_answer(b.receive_offer(a.create_offer(start), start), start)
    assert b._jitter is not None
    jb = b._jitter
    run = CallRun(a, b, sim)
    rate, n = a.audio_sample_rate, a.frame_samples
    t0 = start + 0.001
    end = t0 + seconds
    ticks = {"a": 0, "b": 0}

    def a_tick() -> float | None:
        t = t0 + ticks["a"] * PTIME
        return t if t < end else None

    def b_tick() -> float | None:
        t = t0 + 0.013 + ticks["b"] * PTIME
        return t if t < end + 0.5 else None

    def earliest(*times: float | None) -> float | None:
        due = [t for t in times if t is not None]
        return min(due) if due else None

    def a_timeout(now: float) -> None:
        t = a_tick()
        if t is not None and now >= t - 1e-9:
            k = ticks["a"]
            if dtmf and k == 25:
                a.send_dtmf(dtmf, now)
            a.send_audio(tone(k * n, n, rate), now)
            ticks["a"] += 1
        d = a.next_deadline()
        if d is not None and d <= now:
            a.handle_timeout(now)
        a.events()

    def b_timeout(now: float) -> None:
        t = b_tick()
        if t is not None and now >= t - 1e-9:
            run.frames.append(jb.pull(now))  # what b.pull_audio() plays, with its kind
            b.send_audio(np.zeros(b.frame_samples, dtype=np.int16), now)
            ticks["b"] += 1
        d = b.next_deadline()
        if d is not None and d <= now:
            b.handle_timeout(now)
        run.events.extend(b.events())

    def b_receive(data: bytes, addr: tuple[str, int], now: float) -> None:
        if len(data) >= 12 and data[0] >> 6 == 2 and not is_rtcp(data):
            run.arrived_seqs.append(struct.unpack_from("!H", data, 2)[0])  # SRTP keeps the header clear
        b.receive(data, addr, now)
        run.events.extend(b.events())

    sim.add_endpoint(A, on_receive=a.receive, outgoing=lambda now: a.datagrams_to_send(),
                     next_deadline=lambda: earliest(a.next_deadline(), a_tick()), on_timeout=a_timeout)
    sim.add_endpoint(B, on_receive=b_receive, outgoing=lambda now: b.datagrams_to_send(),
                     next_deadline=lambda: earliest(b.next_deadline(), b_tick()), on_timeout=b_timeout)
    sim.run(until=end + 0.5)
    return run


# -- signal measurements -------------------------------------------------------------------------------


def frame_snr_db(pcm: np.ndarray, rate: int, hz: float = TONE_HZ) -> float:
    """SNR of one frame against the best-fitting sine at ``hz`` (free amplitude, phase and DC).

    Per frame, so that a time-scale step of the jitter buffer (acceleration, a late packet)
    only costs the frames it touches, not the phase of the whole rest of the signal.
    Everything that is not the sine (quantisation noise, harmonics, splices) is the noise.
    """
    t = np.arange(len(pcm)) / rate
    basis = np.stack([np.sin(2 * np.pi * hz * t), np.cos(2 * np.pi * hz * t), np.ones(len(pcm))], axis=1)
    x = pcm.astype(np.float64)
    coef, *_ = np.linalg.lstsq(basis, x, rcond=None)
    sine = basis[:, :2] @ coef[:2]
    noise = x - basis @ coef
    return float(10 * np.log10(max(float(np.sum(sine**2)), 1e-9) / max(float(np.sum(noise**2)), 1e-9)))


def peak_hz(pcm: np.ndarray, rate: int) -> float:
    """Dominant frequency (Hann window, 8x zero-padded FFT)."""
    x = pcm.astype(np.float64) * np.hanning(len(pcm))
    spectrum = np.abs(np.fft.rfft(x, 8 * len(x)))
    return float(np.argmax(spectrum) * rate / (8 * len(x)))


def test_measurements_can_fail() -> None:
    """The helpers tell a clean tone from a wrong or noisy one (so the checks below mean something)."""
    rate = 8000
    clean = tone(0, 160, rate)
    assert frame_snr_db(clean, rate) > 40
    assert frame_snr_db(tone(0, 160, rate, hz=600.0), rate) < 3
    noisy = (clean + np.random.default_rng(1).normal(0, 2000, 160)).astype(np.int16)
    assert 5 < frame_snr_db(noisy, rate) < 15
    assert abs(peak_hz(np.concatenate([tone(0, 8000, rate, hz=1000.0)]), rate) - 1000.0) < 1.0


# -- play-out and concealment -----------------------------------------------------------------------------


@pytest.mark.parametrize("jitter", [0.0, 0.06], ids=["no-jitter", "jitter-0-60ms"])
@pytest.mark.parametrize("loss", LOSSES, ids=[f"loss-{int(p * 100)}pct" for p in LOSSES])
def test_arrived_packets_are_played_and_lost_ones_concealed(loss: float, jitter: float) -> None:
    run = run_call(loss=loss, jitter=jitter, reorder=0.02 if jitter else 0.0, seed=3)
    js = run.jitter
    assert run.a.packets_sent == 1000
    in_time = js.received - js.late - js.duplicates - js.buffered_packets
    assert js.played >= 0.99 * in_time, (js.played, in_time)
    lost = run.network_lost
    assert abs(lost - loss * 1000) <= 3 * np.sqrt(max(loss * 1000, 1)) + 1  # the link did what it was told
    if jitter:
        assert run.sim.stats.reordered > 0 and js.late > 0  # impairments really happened
    concealed = js.concealed
    missing = lost + js.late
    assert concealed >= lost
    assert concealed - missing <= max(10, 0.1 * missing), (concealed, lost, js.late)
    assert js.lost <= lost  # the buffer never calls a packet lost that arrived in time


def test_loss_to_frame_loss_table() -> None:
    """Network loss → share of concealed frames, without and with 0-60 ms jitter + 2 % reordering.

    Frame loss follows packet loss one to one; with 60 ms of jitter the adaptive buffer adds
    about 1 % (packets behind the 95th-percentile target delay are late, by design).
    """
    rows = []
    for loss in LOSSES:
        flat = run_call(loss=loss, seed=5)
        jittery = run_call(loss=loss, jitter=0.06, reorder=0.02, seed=5)
        rows.append((loss, flat.network_lost / 1000, flat.frame_loss, jittery.network_lost / 1000,
                     jittery.frame_loss, jittery.jitter.target_delay_ms))
    print("\n| link loss | packets lost | frames concealed | packets lost (0-60 ms jitter) "
          "| frames concealed (0-60 ms jitter) | target delay |")
    print("|---:|---:|---:|---:|---:|---:|")
    for loss, m0, f0, m1, f1, target in rows:
        print(f"| {loss:.0%} | {m0:.1%} | {f0:.1%} | {m1:.1%} | {f1:.1%} | {target:.0f} ms |")
    for loss, m0, f0, m1, f1, _ in rows:
        assert abs(f0 - m0) <= 0.005 + 0.05 * m0, (loss, m0, f0)
        assert m1 - 0.005 <= f1 <= m1 + 0.025 + 0.05 * m1, (loss, m1, f1)


# -- the signal through the whole pipeline ------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["PCMU", "PCMA", "opus"])
@pytest.mark.parametrize("loss", [0.0, 0.05, 0.10], ids=["loss-0", "loss-5pct", "loss-10pct"])
def test_tone_arrives_at_its_frequency_with_bounded_distortion(codec: str, loss: float) -> None:
    if codec == "opus":
        from rtpcore.codecs import opus_available

        if not opus_available():
            missing_peer("libopus not installed (Debian package libopus0)")
    run = run_call(loss=loss, jitter=0.06, reorder=0.02, seconds=6.0, codec=codec, seed=11)
    rate = run.b.audio_sample_rate
    frames = run.stream_frames[WARMUP_FRAMES:]
    signal = np.concatenate([f.pcm for f in frames])
    assert abs(peak_hz(signal, rate) - TONE_HZ) < 1.0
    audio = [frame_snr_db(f.pcm, rate) for f in frames if f.kind is FrameKind.AUDIO]
    every = [frame_snr_db(f.pcm, rate) for f in frames]
    # G.711 on a -12 dBFS sine: about 39 dB (the law's quantisation noise); Opus at 32 kbit/s is close
    assert np.median(audio) >= (36.0 if codec != "opus" else 33.0)
    # A missing packet (lost, or late: about 1.5 % at 0-60 ms jitter): G.711's pitch-repetition PLC
    # continues a steady tone almost perfectly (only fades and long gaps fall below 20 dB); Opus's own
    # PLC/FEC frame and the two frames its decoder needs to converge again are all far from the tone.
    touched = 0.5 if codec != "opus" else 3.0
    good = sum(1 for s in every if s >= 20.0) / len(every)
    assert good >= 1.0 - touched * (loss + 0.015) - 0.02, (good, loss)
    rms = np.sqrt(np.mean(signal.astype(np.float64) ** 2))
    assert 0.8 * TONE_AMPLITUDE / np.sqrt(2) < rms < 1.05 * TONE_AMPLITUDE / np.sqrt(2)


# -- DTMF ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(1, 7))
def test_dtmf_digits_are_exact_under_ten_percent_loss(seed: int) -> None:
    run = run_call(loss=0.10, jitter=0.06, reorder=0.02, seconds=4.0, seed=seed, dtmf="159#*0D")
    assert run.network_lost > 0
    assert run.digits() == list("159#*0D")
