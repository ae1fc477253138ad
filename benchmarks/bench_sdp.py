"""SDP parse + serialize throughput on a real Chromium offer, beside aiortc when installed.

Workload: ``tests/vectors/sdp/chromium_offer.sdp`` (Chromium 156 audio offer, 36 lines,
1517 bytes). Rows: parse only, serialize only, parse + serialize (what a B2BUA does per
SDP), and parse + the typed views a media session reads (codecs, candidates, ICE,
fingerprint). The reference is ``aiortc.sdp.SessionDescription`` (parse and ``str()``);
aiortc is optional, and when it is missing only our numbers are printed.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rtpcore.sdp import SessionDescription, parse_sdp

VECTOR = Path(__file__).resolve().parent.parent / "tests" / "vectors" / "sdp" / "chromium_offer.sdp"
DURATION = 1.0


def _rate(fn: Callable[[], object], duration: float = DURATION) -> float:
    fn()  # warm up
    n = 0
    t0 = time.perf_counter()
    deadline = t0 + duration
    while True:
        for _ in range(50):
            fn()
        n += 50
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - t0)


def _views(data: bytes) -> None:
    sdp = parse_sdp(data)
    m = sdp.media[0]
    _ = (m.codecs, m.candidates, sdp.effective_ice(m), sdp.effective_fingerprints(m), sdp.effective_setup(m))


def _aiortc_rows(text: str) -> dict[str, float] | None:
    try:
        sdp_mod: Any = importlib.import_module("aiortc.sdp")
    except ImportError:
        return None
    parsed = sdp_mod.SessionDescription.parse(text)
    return {
        "parse": _rate(lambda: sdp_mod.SessionDescription.parse(text)),
        "serialize": _rate(lambda: str(parsed)),
        "parse + serialize": _rate(lambda: str(sdp_mod.SessionDescription.parse(text))),
    }


def main() -> None:
    data = VECTOR.read_bytes()
    text = data.decode()
    sdp: SessionDescription = parse_sdp(data)
    if sdp.to_bytes() != data:
        raise SystemExit("round trip of the benchmark vector is not byte-exact")
    ours = {
        "parse": _rate(lambda: parse_sdp(data)),
        "serialize": _rate(lambda: sdp.to_bytes()),
        "parse + serialize": _rate(lambda: parse_sdp(data).to_bytes()),
        "parse + typed views": _rate(lambda: _views(data)),
    }
    ref = _aiortc_rows(text)
    lines = data.count(b"\n")
    print(f"Chromium offer, {len(data)} bytes, {lines} lines; operations per second")
    if ref is None:
        print("(aiortc not installed: no reference column)")
        print(f"{'operation':<22}{'rtpcore.sdp':>14}")
        for name, value in ours.items():
            print(f"{name:<22}{value:>14,.0f}")
        return
    print(f"{'operation':<22}{'rtpcore.sdp':>14}{'aiortc.sdp':>14}{'ratio':>8}")
    for name, value in ours.items():
        other = ref.get(name)
        if other is None:
            print(f"{name:<22}{value:>14,.0f}{'-':>14}{'-':>8}")
        else:
            print(f"{name:<22}{value:>14,.0f}{other:>14,.0f}{value / other:>7.2f}x")


if __name__ == "__main__":
    main()
