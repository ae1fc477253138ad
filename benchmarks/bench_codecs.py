"""Codec hot paths: G.711 beside CPython's ``audioop`` (same frames, same process), Opus
through opuslib, the streaming resampler, and jitter-buffer put+pull.

Run: ``python -m benchmarks codecs``. Rates are 20 ms frames per second (one frame = one
RTP packet); a ratio > 1 means we are faster than the reference.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import numpy as np

from rtpcore.codecs import PcmaCodec, PcmuCodec, opus_available
from rtpcore.jitter import JitterBuffer
from rtpcore.resample import Resampler

FRAMES = 2000


def _rate(fn: Callable[[], object], n: int, repeat: int = 5) -> float:
    """Best-of-``repeat`` calls per second of ``fn`` (which runs ``n`` operations)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n / best


def _row(name: str, ours: float, ref: float | None) -> None:
    if ref is None:
        print(f"  {name:<28} {ours:>12,.0f}/s   (reference not available)")
    else:
        print(f"  {name:<28} {ours:>12,.0f}/s   audioop {ref:>12,.0f}/s   ratio {ours / ref:5.2f}x")


def _frames(rate: int, n: int) -> list[np.ndarray]:
    per = rate // 50
    t = np.arange(n * per) / rate
    x = (8000 * np.sin(2 * np.pi * 440 * t) + 500 * np.sin(2 * np.pi * 3100 * t)).astype(np.int16)
    return [x[i * per:(i + 1) * per] for i in range(n)]


def bench_g711() -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import audioop
    except ImportError:
        audioop = None  # removed in Python 3.13
    frames = _frames(8000, FRAMES)
    raw = [f.tobytes() for f in frames]
    print("G.711 (160-sample frames)")
    for codec, lin2, law2 in ((PcmuCodec(), "lin2ulaw", "ulaw2lin"), (PcmaCodec(), "lin2alaw", "alaw2lin")):
        payloads = [codec.encode(f) for f in frames]
        ours_enc = _rate(lambda c=codec: [c.encode(f) for f in frames], FRAMES)
        ours_dec = _rate(lambda c=codec: [c.decode(p) for p in payloads], FRAMES)
        ref_enc = ref_dec = None
        if audioop is not None:
            enc_fn, dec_fn = getattr(audioop, lin2), getattr(audioop, law2)
            assert enc_fn(raw[0], 2) == payloads[0], "bit-exactness check against audioop failed"
            ref_enc = _rate(lambda: [enc_fn(r, 2) for r in raw], FRAMES)
            ref_dec = _rate(lambda: [dec_fn(p, 2) for p in payloads], FRAMES)
        _row(f"{codec.name} encode", ours_enc, ref_enc)
        _row(f"{codec.name} decode", ours_dec, ref_dec)
        both = _rate(lambda c=codec: [c.decode(c.encode(f)) for f in frames], FRAMES)
        print(f"  {codec.name} encode+decode: {1e6 / both:.2f} µs per frame")


def bench_opus() -> None:
    print("Opus (48 kHz mono, 20 ms, 32 kbit/s)")
    if not opus_available():
        print("  skipped: libopus not installed (apt-get install libopus0)")
        return
    from rtpcore.codecs import OpusCodec

    frames = _frames(48000, 250)
    enc = OpusCodec()
    payloads = [enc.encode(f) for f in frames]
    dec = OpusCodec()
    print(f"  encode {_rate(lambda: [enc.encode(f) for f in frames], len(frames), 3):>12,.0f}/s")
    print(f"  decode {_rate(lambda: [dec.decode(p) for p in payloads], len(frames), 3):>12,.0f}/s")
    print(f"  PLC    {_rate(lambda: [dec.conceal(960) for _ in frames], len(frames), 3):>12,.0f}/s")


def bench_resample() -> None:
    print("Resampler (20 ms frames)")
    for fin, fout in ((8000, 48000), (48000, 8000), (16000, 48000), (44100, 48000)):
        frames = _frames(fin, 200)
        r = Resampler(fin, fout)
        print(f"  {fin:>5} -> {fout:<5} {_rate(lambda r=r, fr=frames: [r.process(f) for f in fr], 200, 3):>12,.0f}/s")


def bench_jitter() -> None:
    print("Jitter buffer (put + pull, PCMU payloads decoded at playout)")
    codec = PcmuCodec()
    payloads = [codec.encode(f) for f in _frames(8000, 50)]
    n = 20000
    rng = np.random.default_rng(1)
    jit = rng.uniform(0.0, 0.03, n)

    t0 = 1000.0
    events = sorted([(t0 + i * 0.02 + jit[i], 0, i) for i in range(n)] + [(t0 + 0.011 + i * 0.02, 1, i) for i in range(n)])

    def run() -> None:
        jb = JitterBuffer(codec=PcmuCodec())
        put, pull = jb.put, jb.pull
        for t, kind, i in events:
            if kind:
                pull(t)
            else:
                put(i & 0xFFFF, (i * 160) & 0xFFFFFFFF, payloads[i % 50], t)

    print(f"  put+pull {_rate(run, n, 3):>12,.0f}/s")


def main() -> None:
    bench_g711()
    bench_opus()
    bench_resample()
    bench_jitter()


if __name__ == "__main__":
    main()
