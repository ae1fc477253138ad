"""The media path, per packet and per call, beside the references, in one run.

Run: ``python -m benchmarks media``. Sections:

* G.711 encode/decode of one 20 ms frame (160 samples) beside CPython's ``audioop`` (gone in
  Python 3.13: then said so), plus the ``bytes.translate`` decode variant for comparison;
  targets: encode <= 2 us, decode <= 1.5 us per frame.
* Opus encode/decode of one 20 ms frame at 48 kHz beside plain ``opuslib`` objects.
* Jitter buffer put + pull per packet, beside aiortc's ``JitterBuffer`` when installed.
* RTP parse/serialize of a 20 ms G.711 packet.
* E-model MOS at 0/1/3/5 % random loss: the model, and what a simulated call reports.
* Memory (tracemalloc): one media session with its jitter buffer, and the traced total over a
  10-minute simulated call (fake clock), sampled every minute: it must stay flat.
* CPU per call: process time of a simulated 60 s call, per endpoint (encode, packetise,
  SRTP protect, network, SRTP unprotect, jitter buffer, decode, RTCP, every 20 ms), as a
  percentage of one core.

Times are the best of several repeats (the minimum is the least disturbed by other load).
"""

from __future__ import annotations

import gc
import heapq
import importlib
import importlib.util
import random
import time
import timeit
import tracemalloc
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rtpcore.codecs import PcmaCodec, PcmuCodec, opus_available
from rtpcore.codecs.g711 import alaw_decode_table, mulaw_decode_table, ulaw_decode, ulaw_encode
from rtpcore.jitter import JitterBuffer
from rtpcore.media_session import MediaConfig, MediaSession
from rtpcore.quality import estimate_quality
from rtpcore.rtp.packet import RtpPacket

G711_ENCODE_TARGET_US = 2.0
G711_DECODE_TARGET_US = 1.5


def _us(fn: Callable[[], object], number: int, repeat: int = 7) -> float:
    """Best-of-``repeat`` microseconds of process time per call of ``fn``.

    Process time, not wall time: on a shared machine the time we are not scheduled is not ours.
    """
    return min(timeit.repeat(fn, number=number, repeat=repeat, timer=time.process_time)) / number * 1e6


def _pair_us(ours: Callable[[], object], ref: Callable[[], object], number: int,
             repeat: int = 7) -> tuple[float, float]:
    """Like :func:`_us` for two functions, measured alternately so that both see the same load."""
    best_a = best_b = float("inf")
    for _ in range(repeat):
        best_a = min(best_a, timeit.timeit(ours, number=number, timer=time.process_time))
        best_b = min(best_b, timeit.timeit(ref, number=number, timer=time.process_time))
    return best_a / number * 1e6, best_b / number * 1e6


def _frames(rate: int, n: int, hz: float = 440.0) -> list[np.ndarray]:
    per = rate // 50
    t = np.arange(n * per) / rate
    x = (8000 * np.sin(2 * np.pi * hz * t) + 500 * np.sin(2 * np.pi * 3100 * t)).astype(np.int16)
    return [x[i * per:(i + 1) * per] for i in range(n)]


def _row(name: str, ours: float, ref: float | None, ref_name: str, note: str = "") -> None:
    if ref is None:
        print(f"  {name:<34} {ours:8.2f} us   {ref_name:>10} {'n/a':>8}           {note}")
    else:
        print(f"  {name:<34} {ours:8.2f} us   {ref_name:>10} {ref:8.2f} us  {ref / ours:5.2f}x {note}")


# -- G.711 --------------------------------------------------------------------------------------------------


def _translate_decoder(table: np.ndarray) -> Callable[[bytes], bytearray]:
    """Decode with two ``bytes.translate`` tables (low and high octet of each int16 sample)."""
    raw = table.astype("<i2").tobytes()
    lo, hi = raw[0::2], raw[1::2]

    def decode(payload: bytes) -> bytearray:
        out = bytearray(2 * len(payload))
        out[0::2] = payload.translate(lo)
        out[1::2] = payload.translate(hi)
        return out

    return decode


def bench_g711() -> None:
    print("G.711, one 20 ms frame (160 samples); ratio > 1: we are faster")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import audioop
    except ImportError:
        audioop = None
        print("  audioop is not available (removed in Python 3.13): no reference column")
    frame = _frames(8000, 1)[0]
    raw = frame.tobytes()
    everything = np.arange(-32768, 32768, dtype=np.int16)
    n = 20_000
    for codec, lin2, law2, table in ((PcmuCodec(), "lin2ulaw", "ulaw2lin", mulaw_decode_table()),
                                     (PcmaCodec(), "lin2alaw", "alaw2lin", alaw_decode_table())):
        payload = codec.encode(frame)
        ref_enc = ref_dec = None
        if audioop is not None:
            enc_fn, dec_fn = getattr(audioop, lin2), getattr(audioop, law2)
            if codec.encode(everything) != enc_fn(everything.tobytes(), 2):
                raise AssertionError(f"{codec.name} encode is not bit-exact with audioop")
            enc, ref_enc = _pair_us(lambda c=codec: c.encode(frame), lambda: enc_fn(raw, 2), n, 21)
            dec, ref_dec = _pair_us(lambda c=codec: c.decode(payload), lambda: dec_fn(payload, 2), n, 21)
        else:
            enc = _us(lambda c=codec: c.encode(frame), n, 21)
            dec = _us(lambda c=codec: c.decode(payload), n, 21)
        ok_enc = "meets" if enc <= G711_ENCODE_TARGET_US else "misses"
        ok_dec = "meets" if dec <= G711_DECODE_TARGET_US else "misses"
        _row(f"{codec.name} encode (codec object)", enc, ref_enc, "audioop",
             f"{ok_enc} the {G711_ENCODE_TARGET_US} us target")
        _row(f"{codec.name} decode (codec object, +PLC)", dec, ref_dec, "audioop",
             f"{ok_dec} the {G711_DECODE_TARGET_US} us target")
        translate = _translate_decoder(table)
        if bytes(translate(payload)) != codec.decode(payload).tobytes():
            raise AssertionError("translate decoder disagrees with the table")
        _row(f"{codec.name} decode via bytes.translate", _us(lambda t=translate: t(payload), n, 21), ref_dec, "audioop",
             "(bytes out; an ndarray costs one more frombuffer)")
    _row("PCMU stateless ulaw_encode()", _us(lambda: ulaw_encode(frame), n), None, "audioop")
    _row("PCMU stateless ulaw_decode()", _us(lambda: ulaw_decode(payload), n), None, "audioop")


# -- Opus ----------------------------------------------------------------------------------------------------------


def bench_opus() -> None:
    print("Opus, one 20 ms frame (48 kHz mono, 32 kbit/s), beside plain opuslib objects")
    if not opus_available():
        print("  skipped: libopus not installed (apt-get install libopus0)")
        return
    import opuslib

    from rtpcore.codecs import OpusCodec

    frames = _frames(48000, 50)
    ours = OpusCodec(bitrate=32000)
    packets = [ours.encode(f) for f in frames]
    ref_enc = opuslib.Encoder(48000, 1, opuslib.APPLICATION_VOIP)
    ref_enc.bitrate = 32000  # the same settings as our encoder: complexity 9, voice, VBR
    ref_enc.complexity = 9
    ref_enc.signal = 3001  # OPUS_SIGNAL_VOICE
    ref_dec = opuslib.Decoder(48000, 1)
    raw = [f.tobytes() for f in frames]
    rounds = 10
    dec_ours = OpusCodec()
    t_enc, t_enc_ref = (t / len(frames) for t in _pair_us(lambda: [ours.encode(f) for f in frames],
                                                         lambda: [ref_enc.encode(r, 960) for r in raw], rounds, 5))
    t_dec, t_dec_ref = (t / len(frames) for t in _pair_us(lambda: [dec_ours.decode(p) for p in packets],
                                                         lambda: [ref_dec.decode(p, 960) for p in packets], rounds, 5))
    _row("encode (codec object)", t_enc, t_enc_ref, "opuslib")
    _row("decode (codec object)", t_dec, t_dec_ref, "opuslib", "(ours returns an int16 ndarray)")
    _row("PLC, one 20 ms frame", _us(lambda: dec_ours.conceal(960), 200, 5), None, "opuslib")


# -- jitter buffer ----------------------------------------------------------------------------------------------------


def _arrivals(n: int, jitter_s: float, seed: int = 1) -> list[tuple[float, int, int]]:
    """Events (time, 0=put / 1=pull, index) for ``n`` packets with uniform jitter, sorted by time."""
    rng = np.random.default_rng(seed)
    jit = rng.uniform(0.0, jitter_s, n)
    t0 = 1000.0
    events = [(t0 + i * 0.02 + float(jit[i]), 0, i) for i in range(n)]
    events += [(t0 + 0.011 + i * 0.02, 1, i) for i in range(n)]
    events.sort()
    return events


def _aiortc_jitter() -> tuple[Any, Any] | None:
    if importlib.util.find_spec("aiortc") is None:
        return None
    try:
        jb = importlib.import_module("aiortc.jitterbuffer")
        rtp = importlib.import_module("aiortc.rtp")
        return jb.JitterBuffer, rtp.RtpPacket
    except Exception:  # an installed but broken reference must not stop our numbers
        return None


def bench_jitter() -> None:
    print("Jitter buffer, per packet: put + one 20 ms pull (0-30 ms jitter)")
    n = 20_000
    events = _arrivals(n, 0.03)
    codec = PcmuCodec()
    pcm_frames = _frames(8000, 50)
    payloads = [codec.encode(f) for f in pcm_frames]

    def ours_pcm() -> None:  # payloads are PCM already: buffer + playout logic + WaveformPlc only
        jb = JitterBuffer()
        put, pull = jb.put, jb.pull
        for t, kind, i in events:
            if kind:
                pull(t)
            else:
                put(i & 0xFFFF, (i * 160) & 0xFFFFFFFF, pcm_frames[i % 50], t)

    def ours_pcmu() -> None:  # G.711 payloads decoded at playout
        jb = JitterBuffer(codec=PcmuCodec())
        put, pull = jb.put, jb.pull
        for t, kind, i in events:
            if kind:
                pull(t)
            else:
                put(i & 0xFFFF, (i * 160) & 0xFFFFFFFF, payloads[i % 50], t)

    us_pcm = _us(ours_pcm, 1, 3) / n
    us_pcmu = _us(ours_pcmu, 1, 3) / n
    ref = _aiortc_jitter()
    ref_us: float | None = None
    if ref is not None:
        ref_jb_cls, ref_pkt_cls = ref
        pkts = [ref_pkt_cls(payload_type=0, sequence_number=i & 0xFFFF, timestamp=(i * 160) & 0xFFFFFFFF,
                            payload=payloads[i % 50]) for i in range(n)]
        arrival_order = [i for _, kind, i in events if not kind]

        def theirs() -> None:  # aiortc: add() only; it has no playout clock, pull is implicit
            jb = ref_jb_cls(capacity=128, prefetch=0, is_video=False)
            for i in arrival_order:
                jb.add(pkts[i])

        ref_us = _us(theirs, 1, 3) / n
    _row("put+pull, PCM payloads", us_pcm, ref_us, "aiortc", "(aiortc: add() per packet)")
    _row("put+pull, PCMU decoded at playout", us_pcmu, None, "aiortc")
    if ref is None:
        print("  aiortc is not installed: our numbers only (its JitterBuffer has no playout clock or PLC)")


# -- RTP --------------------------------------------------------------------------------------------------------------


def bench_rtp() -> None:
    print("RTP, a 20 ms G.711 packet (12 + 160 octets)")
    pkt = RtpPacket(payload_type=0, sequence_number=4711, timestamp=160_000, ssrc=0x1234ABCD, marker=False,
                    payload=bytes(range(160)))
    data = pkt.serialize()
    n = 100_000
    _row("parse", _us(lambda: RtpPacket.parse(data), n), None, "")
    _row("serialize", _us(pkt.serialize, n), None, "")


# -- a simulated call on a fake clock ---------------------------------------------------------------------------------


def _rng(seed: int) -> Callable[[int], bytes]:
    r = random.Random(seed)
    return lambda n: r.randbytes(n)


@dataclass
class SimCall:
    """Two MediaSessions on one fake clock; datagrams delivered after 10 ms + uniform jitter, some lost."""

    a: MediaSession
    b: MediaSession
    loss: float
    jitter_s: float
    net: random.Random
    tone: list[np.ndarray]
    now: float = 0.0
    seq: int = 0
    frames: int = 0
    queue: list[tuple[float, int, int, bytes]] = field(default_factory=list)

    @classmethod
    def start(cls, *, codec: str = "PCMU", security: str = "sdes", loss: float = 0.0, jitter_s: float = 0.02,
              seed: int = 1) -> SimCall:
        cfg = MediaConfig(security=security, codecs=(codec,), media_timeout=3600.0, ice=False)
        a = MediaSession(("10.0.0.1", 4000), now=0.0, config=cfg, rng=_rng(seed))
        b = MediaSession(("10.0.0.2", 5000), now=0.0, config=cfg, rng=_rng(seed + 1))
        a.receive_answer(b.receive_offer(a.create_offer(0.0), 0.0), 0.0)
        return cls(a, b, loss, jitter_s, random.Random(seed), _frames(a.audio_sample_rate, 50))

    def _send(self, src: int, out: list[tuple[bytes, tuple[str, int]]]) -> None:
        for data, _ in out:
            if self.loss and self.net.random() < self.loss:
                continue
            self.seq += 1
            heapq.heappush(self.queue, (self.now + 0.01 + self.net.uniform(0, self.jitter_s), self.seq, src, data))

    def run(self, seconds: float) -> None:
        a, b = self.a, self.b
        end = self.now + seconds
        addr = (("10.0.0.1", 4000), ("10.0.0.2", 5000))
        while self.now < end:
            tick = self.now
            while self.queue and self.queue[0][0] <= tick:
                _, _, src, data = heapq.heappop(self.queue)
                (b if src == 0 else a).receive(data, addr[src], tick)
            for s in (a, b):
                d = s.next_deadline()
                if d is not None and d <= tick:
                    s.handle_timeout(tick)
            frame = self.tone[self.frames % 50]
            self.frames += 1
            a.send_audio(frame, tick)
            b.send_audio(frame, tick)
            a.pull_audio(tick)
            b.pull_audio(tick)
            self._send(0, a.datagrams_to_send())
            self._send(1, b.datagrams_to_send())
            a.events()
            b.events()
            self.now = round(tick + 0.02, 6)


def bench_mos() -> None:
    print("E-model MOS (G.107), 20 ms packets, 30 ms one-way delay, 40 ms jitter buffer; and what a")
    print("simulated 30 s call at that random loss reports from its own statistics (0-20 ms jitter)")
    print(f"  {'loss':>5} {'PCMU model':>11} {'PCMU call':>10} {'Opus model':>11} {'Opus call':>10}")
    codecs = ("PCMU", "opus") if opus_available() else ("PCMU",)
    for loss in (0.0, 1.0, 3.0, 5.0):
        cells = []
        for codec in ("PCMU", "opus"):
            if codec not in codecs:
                cells += ["n/a", "n/a"]
                continue
            model = estimate_quality(delay_ms=30.0, loss_percent=loss, codec=codec, jitter_buffer_ms=40.0).mos
            call = SimCall.start(codec=codec, loss=loss / 100, seed=7)
            call.run(30.0)
            cells += [f"{model:.2f}", f"{call.b.stats(call.now).mos:.2f}"]
        print(f"  {loss:>4.0f}% {cells[0]:>11} {cells[1]:>10} {cells[2]:>11} {cells[3]:>10}")


def bench_memory() -> None:
    print("Memory (tracemalloc), SDES-SRTP PCMU call, 2 % loss, 0-20 ms jitter")
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    call = SimCall.start(loss=0.02, seed=3)
    setup = tracemalloc.get_traced_memory()[0] - base
    call.run(5.0)
    gc.collect()
    warm = tracemalloc.get_traced_memory()[0] - base
    print(f"  two sessions negotiated: {setup / 1024:7.1f} KiB; after 5 s of media: {warm / 1024:7.1f} KiB "
          f"(one session with its jitter buffer: {warm / 2048:.1f} KiB)")
    samples = []
    for _minute in range(10):
        call.run(60.0 if _minute else 55.0)
        gc.collect()
        samples.append(tracemalloc.get_traced_memory()[0] - base)
    tracemalloc.stop()
    line = " ".join(f"{s / 1024:.0f}" for s in samples)
    growth = samples[-1] - samples[1]
    print(f"  10-minute call, traced KiB at minutes 1..10: {line}")
    print("  (the first ~82 s fill the jitter buffers' duplicate-detection window of 4096 sequence numbers)")
    print(f"  growth from minute 2 to 10: {growth / 1024:+.1f} KiB ({growth / max(samples[1], 1):+.2%})")


def bench_cpu() -> None:
    print("CPU per call: a simulated 60 s call, process time per endpoint (send + receive one stream)")
    codecs = ["PCMU"] + (["opus"] if opus_available() else [])
    for codec in codecs:
        for security in ("none", "sdes"):
            call = SimCall.start(codec=codec, security=security, loss=0.01, seed=5)
            call.run(1.0)  # warm up
            c0 = time.process_time()
            call.run(60.0)
            cpu = (time.process_time() - c0) / 2  # two endpoints in the loop
            print(f"  {codec:<5} {security:<5} {cpu * 1000:8.0f} ms for 60 s = {cpu / 60 * 100:5.2f} % of one core "
                  f"({cpu / 3000 * 1e6:6.1f} us per 20 ms frame)")


def main() -> None:
    bench_g711()
    bench_opus()
    bench_jitter()
    bench_rtp()
    bench_mos()
    bench_memory()
    bench_cpu()


if __name__ == "__main__":
    main()
