"""RTP/RTCP parse and serialize throughput, beside aiortc's ``RtpPacket`` when it is installed.

Workloads: a 20 ms G.711 packet (12-octet header + 160 octets, the baresip capture), an RTP
packet with a CSRC, a two-byte header extension and padding (the SRTP corpus), and an RTCP
SR + SDES compound (the baresip capture). One G.711 call is 50 packets/s each way.
"""

from __future__ import annotations

import importlib
import importlib.util
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rtpcore.rtp.packet import RtpPacket
from rtpcore.rtp.rtcp import parse_compound, serialize_compound

VECTORS = Path(__file__).resolve().parent.parent / "tests" / "vectors" / "rtp"
N = 100_000


def _rate(fn: Callable[[], object], n: int = N) -> float:
    best = 0.0
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = max(best, n / (time.perf_counter() - t0))
    return best


def _workloads() -> dict[str, bytes]:
    g711 = (VECTORS / "baresip_pcmu.bin").read_bytes()
    rich = bytes.fromhex("b2e0000100000668decafbad111111112222222210000003050568656c6c6f070000000001020301")
    sr = (VECTORS / "baresip_rtcp_sr_sdes.bin").read_bytes()
    return {"rtp g711 172 B": g711, "rtp csrc+ext+pad": rich, "rtcp sr+sdes": sr}


def _aiortc() -> Any | None:
    if importlib.util.find_spec("aiortc") is None:
        return None
    try:
        return importlib.import_module("aiortc.rtp")
    except Exception:  # an installed but broken reference must not stop our numbers
        return None


def main() -> None:
    ref = _aiortc()
    print(f"{'workload':<22}{'op':<12}{'ours pkt/s':>14}{'aiortc pkt/s':>16}{'ratio':>8}")
    for name, data in _workloads().items():
        rtcp = name.startswith("rtcp")
        if rtcp:
            packets = parse_compound(data)
            ours = {
                "parse": _rate(lambda: parse_compound(data), N // 4),
                "serialize": _rate(lambda: serialize_compound(packets), N // 4),
            }
            theirs: dict[str, float | None] = {"parse": None, "serialize": None}
            if ref is not None:
                theirs["parse"] = _rate(lambda: ref.RtcpPacket.parse(data), N // 4)
        else:
            packet = RtpPacket.parse(data)
            ours = {"parse": _rate(lambda: RtpPacket.parse(data)), "serialize": _rate(packet.serialize)}
            theirs = {"parse": None, "serialize": None}
            if ref is not None:
                theirs["parse"] = _rate(lambda: ref.RtpPacket.parse(data))
                their_packet = ref.RtpPacket.parse(data)
                theirs["serialize"] = _rate(their_packet.serialize)
        for op, value in ours.items():
            other = theirs[op]
            ref_text = f"{other:>16,.0f}" if other else f"{'n/a':>16}"
            ratio = f"{value / other:>7.2f}x" if other else f"{'':>8}"
            print(f"{name:<22}{op:<12}{value:>14,.0f}{ref_text}{ratio}")
    if ref is None:
        print("aiortc is not installed: no reference column (pip install aiortc to compare)")
    print(f"one G.711 call = 50 packets/s per direction; N = {N} per measurement, best of 3")


if __name__ == "__main__":
    main()
