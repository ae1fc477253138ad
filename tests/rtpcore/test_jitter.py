"""Adaptive playout buffer: synthetic arrival schedules on a fake clock, and one run over the
simulated network (tests/netsim.py).

Every schedule sends 20 ms packets (160 samples at 8 kHz) of a 440 Hz tone; the buffer is
pulled every 20 ms at a phase unrelated to the packet clock, as a sound card would.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import pytest

from netsim import FakeClock, LinkProfile, Simulation
from rtpcore.codecs import PcmuCodec, opus_available
from rtpcore.errors import CodecDecodeError, LocalProtocolError
from rtpcore.jitter import Frame, FrameKind, JitterBuffer, JitterConfig, PutResult, State

PT = 0.02
N = 160
START = 1000.0


def tone(n_frames: int, hz: float = 440.0) -> list[np.ndarray]:
    x = (8000 * np.sin(2 * np.pi * hz * np.arange(n_frames * N) / 8000)).astype(np.int16)
    return [x[i * N:(i + 1) * N] for i in range(n_frames)]


@dataclass
class Pkt:
    index: int
    seq: int
    ts: int
    arrival: float
    pcm: np.ndarray
    marker: bool = False
    ssrc: int | None = None


@dataclass
class Run:
    jb: JitterBuffer
    frames: list[tuple[float, Frame]] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    """Added delay (play time - arrival) of every packet played as plain audio."""
    results: list[PutResult] = field(default_factory=list)

    def kinds(self, start: float = 0.0, end: float = float("inf")) -> dict[FrameKind, int]:
        out = dict.fromkeys(FrameKind, 0)
        for t, f in self.frames:
            if start <= t < end:
                out[f.kind] += 1
        return out


def schedule(
    n: int,
    *,
    delay: Callable[[int], float] = lambda i: 0.005,
    drop: Iterable[int] = (),
    seq0: int = 0,
    ts0: int = 0,
    send_time: Callable[[int], float] = lambda i: START + i * PT,
) -> list[Pkt]:
    frames = tone(n)
    dropped = set(drop)
    return [
        Pkt(i, (seq0 + i) & 0xFFFF, (ts0 + i * N) & 0xFFFFFFFF, send_time(i) + delay(i), frames[i])
        for i in range(n)
        if i not in dropped
    ]


def play(
    jb: JitterBuffer,
    packets: list[Pkt],
    *,
    until: float | None = None,
    phase: float = 0.0073,
    probe: Callable[[float, JitterBuffer], None] | None = None,
) -> Run:
    run = Run(jb)
    arrival_of: dict[int, float] = {}
    end = until if until is not None else max(p.arrival for p in packets) + 0.2
    events: list[tuple[float, int, object]] = [(p.arrival, 0, p) for p in packets]
    k = 0
    while START + phase + k * PT <= end:
        events.append((START + phase + k * PT, 1, None))
        k += 1
    events.sort(key=lambda e: (e[0], e[1]))
    for t, kind, obj in events:
        if kind == 0:
            assert isinstance(obj, Pkt)
            arrival_of.setdefault(obj.ts, obj.arrival)
            run.results.append(jb.put(obj.seq, obj.ts, obj.pcm, obj.arrival, marker=obj.marker, ssrc=obj.ssrc))
        else:
            f = jb.pull(t)
            assert len(f.pcm) == N and f.pcm.dtype == np.int16
            run.frames.append((t, f))
            if probe is not None:
                probe(t, jb)
            if f.kind is FrameKind.AUDIO and f.timestamp in arrival_of:
                run.delays.append(t - arrival_of[f.timestamp])
    return run


def stream_end(packets: list[Pkt]) -> float:
    return max(p.arrival for p in packets)


# -- delay adaptation ------------------------------------------------------------------------


def test_clean_network_adds_at_most_60ms() -> None:
    packets = schedule(1500)
    run = play(JitterBuffer(), packets)
    st = run.jb.stats
    assert max(run.delays) <= 0.060
    assert st.target_delay_ms == 20.0  # settled at the minimum once warmed up
    assert (st.late, st.lost, st.duplicates, st.discarded) == (0, 0, 0, 0)
    assert run.kinds(end=stream_end(packets))[FrameKind.CONCEALED] == 0
    assert st.played == 1500 and st.received == 1500
    # the first frames are silence while the buffer fills, then plain audio
    assert run.frames[0][1].kind is FrameKind.SILENCE and run.frames[0][1].timestamp is None


def test_audio_comes_out_unchanged_and_in_order() -> None:
    packets = schedule(200)
    run = play(JitterBuffer(), packets)
    audio = [f for _, f in run.frames if f.kind is FrameKind.AUDIO]
    assert [f.timestamp for f in audio] == [i * N for i in range(200)]
    assert np.array_equal(np.concatenate([f.pcm for f in audio]), np.concatenate([p.pcm for p in packets]))


def test_30ms_jitter_grows_target_with_few_late_losses() -> None:
    rng = np.random.default_rng(7)
    jit = rng.uniform(0.0, 0.030, 3000)
    packets = schedule(3000, delay=lambda i: 0.005 + jit[i])
    run = play(JitterBuffer(), packets)
    st = run.jb.stats
    assert 28.0 <= st.target_delay_ms <= 45.0
    assert st.late + st.lost <= 3000 * 0.01
    assert run.kinds(end=stream_end(packets))[FrameKind.CONCEALED] <= 3000 * 0.01
    assert np.mean(run.delays) < 0.060
    assert st.jitter_ms > 5.0  # RFC 3550 estimate sees it too


def test_target_grows_with_jitter_and_shrinks_back() -> None:
    rng = np.random.default_rng(11)
    jit = rng.uniform(0.0, 0.060, 9000)
    packets = schedule(9000, delay=lambda i: 0.005 + (jit[i] if 3000 <= i < 5000 else 0.0))
    seen: dict[str, list[tuple[float, float]]] = {"before": [], "during": [], "after": []}

    def probe(t: float, jb: JitterBuffer) -> None:
        el = t - START
        phase = "before" if 2 < el < 59 else "during" if 70 < el < 100 else "after" if el > 150 else None
        if phase:
            seen[phase].append((jb.stats.target_delay_ms, jb.stats.current_delay_ms))

    run = play(JitterBuffer(), packets, probe=probe)
    assert max(t for t, _ in seen["before"]) <= 25.0
    assert min(t for t, _ in seen["during"]) >= 55.0  # covers the 60 ms of jitter
    assert max(t for t, _ in seen["after"]) <= 25.0  # back once the window slid past it
    # and the playout delay followed the target down (band: target - 5 .. target + frame + 5)
    assert max(d for _, d in seen["after"]) <= 25.0 + 20.0 + 5.0
    assert min(d for _, d in seen["during"]) >= 45.0
    st = run.jb.stats
    assert st.accelerated >= 1
    assert st.late + st.lost <= 2000 * 0.01


def test_delay_spike_is_absorbed_without_losses() -> None:
    # packets 200..209 are held up and arrive in one burst with 210 (a 200 ms stall)
    packets = schedule(600, delay=lambda i: 0.005 + ((210 - i) * PT if 200 <= i < 210 else 0.0))
    run = play(JitterBuffer(), packets)
    st = run.jb.stats
    assert (st.lost, st.late) == (0, 0)
    assert st.played == 600
    assert st.accelerated >= 5  # the burst is played faster to get back to the target
    assert run.delays[-1] <= 0.060  # back at normal delay afterwards
    kinds = run.kinds(end=stream_end(packets))
    assert 1 <= kinds[FrameKind.CONCEALED] <= 6  # concealment until max_conceal_ms, then silence


def test_expands_when_the_reference_path_gets_slower() -> None:
    # one packet took a 50 ms faster path; while it is in the transit window the others look
    # 50 ms "late" and playout runs at that delay. When it leaves the window (5 s later) the
    # ideal playout moves: the delay drops below the band and one frame is inserted.
    packets = schedule(1000, delay=lambda i: 0.005 if i == 10 else 0.055)
    run = play(JitterBuffer(), packets, phase=0.0073)
    st = run.jb.stats
    assert st.expanded == 1
    assert (st.late, st.lost) == (0, 0)
    expanded_at = [t for t, f in run.frames if f.kind is FrameKind.CONCEALED and t < stream_end(packets)]
    assert len(expanded_at) == 1 and START + 5.0 < expanded_at[0] < START + 6.0
    assert max(run.delays[400:]) <= 0.060


def test_rising_jitter_grows_delay_through_concealment() -> None:
    rng = np.random.default_rng(5)
    jit = rng.uniform(0.0, 0.080, 3000)
    packets = schedule(3000, delay=lambda i: 0.005 + (jit[i] if i >= 1000 else 0.0))
    st = play(JitterBuffer(), packets).jb.stats
    assert st.target_delay_ms > 70.0
    assert st.concealed - 5 >= 2  # (5 trailing frames after the stream ends)
    assert st.late + st.lost <= 3000 * 0.01


# -- loss, reordering, duplicates, late packets -------------------------------------------


def test_10_percent_loss_concealment_matches() -> None:
    rng = np.random.default_rng(1)
    drop = set(np.nonzero(rng.random(2000) < 0.10)[0].tolist()) - {0, 1999}
    packets = schedule(2000, drop=drop)
    run = play(JitterBuffer(), packets)
    st = run.jb.stats
    assert st.lost == len(drop)
    assert st.late == 0
    in_stream = run.kinds(end=stream_end(packets))
    assert in_stream[FrameKind.CONCEALED] == len(drop)  # one concealed frame per lost packet
    assert st.concealed_samples >= len(drop) * N
    # every concealed frame sits exactly where a packet is missing
    concealed_ts = {f.timestamp for t, f in run.frames if f.kind is FrameKind.CONCEALED and t < stream_end(packets)}
    assert concealed_ts == {i * N for i in drop}


def test_burst_loss_of_three_packets() -> None:
    packets = schedule(300, drop={100, 101, 102})
    run = play(JitterBuffer(), packets)
    assert run.jb.stats.lost == 3
    concealed = [f for t, f in run.frames if f.kind is FrameKind.CONCEALED and t < stream_end(packets)]
    assert [f.timestamp for f in concealed] == [100 * N, 101 * N, 102 * N]
    # the tone continues through the first concealed frame (waveform repetition)
    assert np.abs(concealed[0].pcm).max() > 4000


def test_reordering_is_fixed() -> None:
    # every 10th packet is overtaken by the next one (arrives 30 ms late)
    packets = schedule(1000, delay=lambda i: 0.005 + (0.030 if i % 10 == 3 else 0.0))
    run = play(JitterBuffer(), packets)
    st = run.jb.stats
    assert (st.lost, st.late) == (0, 0)
    audio = [f.timestamp for _, f in run.frames if f.kind is FrameKind.AUDIO]
    assert audio == sorted(audio) and len(set(audio)) == len(audio)
    assert st.played == 1000


def test_duplicates_are_dropped() -> None:
    packets = schedule(300)
    doubled = sorted(packets + [Pkt(p.index, p.seq, p.ts, p.arrival + 0.004, p.pcm) for p in packets[::3]],
                     key=lambda p: p.arrival)
    run = play(JitterBuffer(), doubled)
    st = run.jb.stats
    assert st.duplicates == 100
    assert run.results.count(PutResult.DUPLICATE) == 100
    assert st.played == 300 and st.lost == 0


def test_late_packet_is_counted_late_not_lost() -> None:
    packets = schedule(300, delay=lambda i: 0.005 + (0.300 if i == 150 else 0.0))
    run = play(JitterBuffer(), packets)
    st = run.jb.stats
    assert st.late == 1 and st.lost == 0
    assert PutResult.LATE in run.results
    assert run.kinds(end=stream_end(packets))[FrameKind.CONCEALED] == 1


@pytest.mark.parametrize(("seq0", "ts0"), [(65535 - 100, 0), (0, 2**32 - 100 * N), (65500, 2**32 - 40 * N)])
def test_sequence_and_timestamp_wrap(seq0: int, ts0: int) -> None:
    rng = np.random.default_rng(2)
    jit = rng.uniform(0, 0.02, 400)
    packets = schedule(400, seq0=seq0, ts0=ts0, delay=lambda i: 0.005 + jit[i], drop={98, 99, 100, 101, 102})
    run = play(JitterBuffer(), packets)
    st = run.jb.stats
    assert st.resyncs == 0 and st.discarded == 0
    assert st.lost == 5
    stamps = [f.timestamp for _, f in run.frames if f.timestamp is not None]
    steps = {(b - a) & 0xFFFFFFFF for a, b in zip(stamps, stamps[1:])}
    assert steps <= {N, 2 * N}  # contiguous through the wrap (2N only where a frame was accelerated)
    assert any(s < 2**20 for s in stamps) and any(s > 2**31 for s in stamps) or ts0 == 0


# -- long runs: no creeping latency --------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("drift_ppm", [-1000, 0, 1000])
def test_long_run_depth_and_delay_stay_bounded(drift_ppm: int) -> None:
    """Ten minutes with sender clock drift of +-0.1 % and 20 ms jitter: the buffer keeps the
    delay in band by accelerating (fast sender) or expanding (slow sender)."""
    n = 30000
    rng = np.random.default_rng(drift_ppm + 5000)
    jit = rng.uniform(0.0, 0.020, n)
    rate = 1.0 + drift_ppm * 1e-6
    packets = schedule(n, delay=lambda i: 0.005 + jit[i], send_time=lambda i: START + i * PT / rate)
    jb = JitterBuffer()
    depth, delay = [], []
    events = sorted([(p.arrival, 0, p) for p in packets] + [(START + 0.0053 + k * PT, 1, None) for k in range(n + 50)],
                    key=lambda e: (e[0], e[1]))
    for t, kind, p in events:
        if kind == 0:
            jb.put(p.seq, p.ts, p.pcm, p.arrival)
        else:
            jb.pull(t)
            depth.append(jb.depth)
            if jb.state is State.PLAYING:
                delay.append(jb.current_delay_ms)
    st = jb.stats
    assert max(depth) <= 4  # no packets pile up
    assert max(delay[500:]) <= 70.0  # and the delay never creeps
    assert np.mean(delay[-5000:]) < 50.0
    if drift_ppm > 0:
        assert st.accelerated >= 20  # 0.1 % of 600 s = 0.6 s = 30 frames to drop
    if drift_ppm < 0:
        assert st.expanded + st.concealed >= 20
    assert st.lost + st.late <= n * 0.01


# -- silence, talkspurts, resync -------------------------------------------------------------


def test_dtx_gap_plays_silence_not_concealment() -> None:
    # the sender stops for 2 s (VAD/DTX): sequence continues, timestamps jump with real time
    first = schedule(200)
    resume = schedule(300, seq0=200, ts0=(200 + 100) * N, send_time=lambda i: START + (300 + i) * PT)
    resume[0].marker = True
    packets = first + resume
    run = play(JitterBuffer(), packets)
    st = run.jb.stats
    assert (st.lost, st.late, st.resyncs) == (0, 0, 0)
    # the receiver cannot tell a pause from loss until the next packet: it conceals for at
    # most max_conceal_ms (100 ms = 5 frames), then plays silence instead of buzzing on
    gap = run.kinds(start=START + 200 * PT, end=START + 300 * PT)
    assert 1 <= gap[FrameKind.CONCEALED] <= 5 and gap[FrameKind.SILENCE] >= 90
    assert max(run.delays) <= 0.060  # the talkspurt restarts at the target delay


def test_comfort_noise_packet_means_silence() -> None:
    jb = JitterBuffer()
    frames = tone(10)
    t = START
    for i in range(5):
        jb.put(i, i * N, frames[i], t + i * PT)
    jb.put(5, 5 * N, b"", t + 5 * PT, comfort_noise=True)
    kinds = [jb.pull(t + 0.041 + k * PT).kind for k in range(12)]
    assert kinds[:5] == [FrameKind.AUDIO] * 5
    assert set(kinds[5:]) == {FrameKind.SILENCE}
    assert jb.stats.concealed == 0 and jb.state is State.WAITING


def test_ssrc_change_resyncs() -> None:
    a = schedule(200)
    b = schedule(200, seq0=40000, ts0=123456789, send_time=lambda i: START + (200 + i) * PT)
    for p in a:
        p.ssrc = 0x1111
    for p in b:
        p.ssrc = 0x2222
    run = play(JitterBuffer(), a + b)
    st = run.jb.stats
    assert st.resyncs == 1
    assert st.lost == 0 and st.late == 0
    # the old source's last buffered packets are flushed (as NetEQ does on a new SSRC)
    assert 0 <= st.discarded <= 3 and st.played + st.discarded == 400
    assert run.delays[-1] <= 0.060


def test_timestamp_jump_resyncs_after_confirmation() -> None:
    # same SSRC, sequence continues, timestamps restart from another base (a restarted sender)
    a = schedule(200)
    b = schedule(200, seq0=200, ts0=987654321, send_time=lambda i: START + (200 + i) * PT)
    run = play(JitterBuffer(), a + b)
    st = run.jb.stats
    assert st.resyncs == 1
    assert run.results.count(PutResult.PROBATION) == 1  # held, then confirmed by the next one
    assert st.discarded <= 3
    assert st.played + st.discarded == 400 and st.lost == 0
    ts_after = [f.timestamp for t, f in run.frames if f.kind is FrameKind.AUDIO and t > START + 201 * PT + 0.1]
    assert ts_after and all(987654321 <= ts < 987654321 + 200 * N for ts in ts_after)


def test_single_wild_packet_does_not_resync() -> None:
    packets = schedule(300)
    bogus = Pkt(-1, 30000, 5, packets[150].arrival + 0.001, packets[0].pcm)
    run = play(JitterBuffer(), sorted([*packets, bogus], key=lambda p: p.arrival))
    st = run.jb.stats
    assert st.resyncs == 0
    assert run.results.count(PutResult.PROBATION) == 1
    assert st.discarded == 1  # dropped when the next packet did not confirm it
    assert st.played == 300 and st.lost == 0


def test_overflow_drops_oldest() -> None:
    jb = JitterBuffer(JitterConfig(max_packets=50))
    frames = tone(1)
    for i in range(200):
        jb.put(i, i * N, frames[0], START + i * PT)
    assert jb.depth == 50
    assert jb.stats.discarded == 150
    f = jb.pull(START + 200 * PT)
    assert f.kind is FrameKind.AUDIO and f.timestamp is not None and f.timestamp >= 150 * N
    assert jb.stats.lost == 0


# -- with a codec ---------------------------------------------------------------------------------


def test_with_pcmu_codec_decodes_and_conceals() -> None:
    codec = PcmuCodec()
    jb = JitterBuffer(codec=codec)
    assert jb.config.clock_rate == 8000
    frames = tone(100)
    enc = PcmuCodec()
    payloads = [enc.encode(f) for f in frames]
    out: list[Frame] = []
    for k in range(110):
        i = k
        if i < 100 and i != 50:
            jb.put(i, i * N, payloads[i], START + i * PT + 0.005)
        out.append(jb.pull(START + 0.03 + k * PT))
    audio = [f for f in out if f.kind is FrameKind.AUDIO]
    assert np.array_equal(audio[0].pcm, PcmuCodec().decode(payloads[0]))
    concealed = [f for f in out if f.kind is FrameKind.CONCEALED]
    assert concealed[0].timestamp == 50 * N
    assert np.corrcoef(concealed[0].pcm[:80].astype(float), frames[50][:80].astype(float))[0, 1] > 0.9
    assert jb.stats.lost == 1


class FlakyCodec(PcmuCodec):
    """PCMU that rejects the payload b"bad" the way a codec rejects a corrupt frame."""

    def decode(self, payload: bytes) -> np.ndarray:
        if payload == b"bad":
            raise CodecDecodeError("corrupt frame")
        return super().decode(payload)


def test_corrupt_payload_is_concealed_and_counted() -> None:
    enc = PcmuCodec()
    frames = tone(60)
    jb = JitterBuffer(codec=FlakyCodec())
    out = []
    for k in range(60):
        jb.put(k, k * N, b"bad" if k == 30 else enc.encode(frames[k]), START + k * PT)
        out.append(jb.pull(START + 0.045 + k * PT))
    st = jb.stats
    assert st.decode_errors == 1 and st.lost == 0 and st.played == 60
    assert all(len(f.pcm) == N for f in out)
    bad = [f for f in out if f.timestamp == 30 * N]
    assert len(bad) == 1 and bad[0].kind is FrameKind.CONCEALED
    assert np.abs(bad[0].pcm).max() > 1000  # concealment, not a hole
    assert [f.kind for f in out].count(FrameKind.CONCEALED) == 1


def test_bad_arguments() -> None:
    with pytest.raises(LocalProtocolError):
        JitterBuffer(codec=PcmuCodec()).put(0, 0, np.zeros(160, dtype=np.int16), 0.0)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        JitterBuffer().put(0, 0, b"\xff" * 160, 0.0)
    with pytest.raises(LocalProtocolError):
        JitterConfig(min_delay_ms=100, initial_delay_ms=40)
    with pytest.raises(LocalProtocolError):
        JitterConfig(percentile=0.0)
    with pytest.raises(LocalProtocolError):
        JitterBuffer(JitterConfig(clock_rate=48000), codec=PcmuCodec())


def test_pull_before_any_packet_is_silence_and_reset() -> None:
    jb = JitterBuffer()
    f = jb.pull(START)
    assert f.kind is FrameKind.SILENCE and not f.pcm.any() and jb.state is State.IDLE
    jb.put(0, 0, tone(1)[0], START)
    assert jb.depth == 1
    jb.reset()
    assert jb.depth == 0 and jb.state is State.IDLE and jb.stats.discarded == 1


@pytest.mark.skipif(not opus_available(), reason="libopus not installed")
def test_with_opus_uses_fec_for_a_lost_packet() -> None:
    from rtpcore.codecs import OpusCodec

    enc = OpusCodec("useinbandfec=1", bitrate=24000)
    t = np.arange(48000) / 48000
    voice = (sum((3000.0 / k) * np.sin(2 * np.pi * 150 * k * t) for k in range(1, 15))).astype(np.int16)
    payloads = [enc.encode(voice[i:i + 960]) for i in range(0, 48000, 960)]
    jb = JitterBuffer(codec=OpusCodec())
    assert jb.config.clock_rate == 48000
    out = []
    for k in range(55):
        if k < 50 and k != 20:
            jb.put(k, k * 960, payloads[k], START + k * PT + 0.005)
        out.append(jb.pull(START + 0.03 + k * PT))
    assert all(len(f.pcm) == 960 for f in out)
    st = jb.stats
    assert st.fec_recovered == 1 and st.lost == 1
    assert [f.timestamp for f in out if f.kind is FrameKind.CONCEALED][0] == 20 * 960


# -- over the simulated network ---------------------------------------------------------------------


def test_over_simulated_network_with_loss_jitter_duplicates() -> None:
    """A G.711 sender and a receiver pulling every 20 ms, over netsim with 3 % loss, 2 %
    duplication, 25 ms jitter and some reordering. The books must balance."""
    clock = FakeClock(START)
    sim = Simulation(seed=9, clock=clock, profile=LinkProfile(loss=0.03, duplicate=0.02, reorder=0.01,
                                                               delay=0.02, jitter=0.025))
    enc = PcmuCodec()
    frames = tone(1500)
    jb = JitterBuffer(codec=PcmuCodec())
    state = {"next_send": START, "i": 0, "next_pull": START + 0.0137, "out": []}
    dst = ("10.0.0.2", 4000)

    def send_out(now: float) -> list[tuple[bytes, tuple[str, int]]]:
        out = []
        while state["i"] < 1500 and now >= state["next_send"] - 1e-12:
            i = state["i"]
            hdr = struct.pack("!BBHII", 0x80, 0x80 if i == 0 else 0, i & 0xFFFF, i * N, 0xABCD)
            out.append((hdr + enc.encode(frames[i]), dst))
            state["i"] += 1
            state["next_send"] += PT
        return out

    def on_rtp(data: bytes, addr: tuple[str, int], now: float) -> None:
        b0, b1, seq, ts, ssrc = struct.unpack_from("!BBHII", data)
        jb.put(seq, ts, data[12:], now, marker=bool(b1 & 0x80), ssrc=ssrc)

    def on_pull(now: float) -> None:
        state["out"].append(jb.pull(now))
        state["next_pull"] += PT

    sim.add_endpoint(("10.0.0.1", 4000), outgoing=send_out, next_deadline=lambda: state["next_send"]
                     if state["i"] < 1500 else None, on_timeout=lambda now: None)
    sim.add_endpoint(dst, on_receive=on_rtp, next_deadline=lambda: state["next_pull"], on_timeout=on_pull)
    sim.run(until=START + 1500 * PT + 0.5)
    st = jb.stats
    net = sim.stats
    assert net.lost > 0 and net.duplicated > 0
    assert st.received == net.delivered
    assert st.duplicates == net.duplicated
    # every sent packet is accounted for: played, lost in the network, late, or still buffered
    assert st.played + st.lost + st.late + st.buffered_packets == 1500
    assert st.lost >= net.lost - 2  # (the last packets may be lost unnoticed)
    assert st.late <= 1500 * 0.01
    assert 25.0 <= st.target_delay_ms <= 60.0
    audio = sum(f.kind is FrameKind.AUDIO for f in state["out"])
    assert audio >= 1500 * 0.9
