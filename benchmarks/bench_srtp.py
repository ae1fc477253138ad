"""SRTP protect + unprotect throughput beside libsrtp (through ``pylibsrtp``), in one run.

Workload: 20 ms G.711 frames, i.e. RTP packets with a 12-octet header and a 160-octet payload,
consecutive sequence numbers on one SSRC. "protect" and "unprotect" are timed separately, and
"round trip" is one protect plus one unprotect of a fresh packet (what a media relay does per
packet). Profiles: SRTP_AES128_CM_HMAC_SHA1_80 and SRTP_AEAD_AES_128_GCM. One G.711 call
needs 50 packets/s each way.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Sequence
from typing import Any

from rtpcore.srtp import SRTP_AEAD_AES_128_GCM, SRTP_AES128_CM_HMAC_SHA1_80, SrtpProfile, SrtpSession

N_PACKETS = 20_000
SSRC = 0x5EC0AE5A


def _packets(n: int) -> list[bytes]:
    payload = bytes(range(160))
    return [
        b"\x80\x00"
        + (i & 0xFFFF).to_bytes(2, "big")
        + (160 * i & 0xFFFFFFFF).to_bytes(4, "big")
        + SSRC.to_bytes(4, "big")
        + payload
        for i in range(n)
    ]


def _rate(fn: Callable[[bytes], object], items: Sequence[bytes]) -> float:
    t0 = time.perf_counter()
    for item in items:
        fn(item)
    return len(items) / (time.perf_counter() - t0)


def _ours(profile: SrtpProfile, key: bytes, salt: bytes, packets: list[bytes]) -> tuple[float, float, float]:
    tx, rx = SrtpSession(profile, key, salt), SrtpSession(profile, key, salt)
    protect = _rate(tx.protect_rtp, packets)
    sender = SrtpSession(profile, key, salt)
    protected = [sender.protect_rtp(p) for p in packets]
    unprotect = _rate(rx.unprotect_rtp, protected)
    tx2, rx2 = SrtpSession(profile, key, salt), SrtpSession(profile, key, salt)
    both = _rate(lambda p: rx2.unprotect_rtp(tx2.protect_rtp(p)), packets)
    return protect, unprotect, both


def _libsrtp(
    pylibsrtp: Any, profile: SrtpProfile, key: bytes, salt: bytes, packets: list[bytes]
) -> tuple[float, float, float]:
    def session(outbound: bool) -> Any:
        policy = pylibsrtp.Policy(
            key=key + salt,
            ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND if outbound else pylibsrtp.Policy.SSRC_ANY_INBOUND,
            srtp_profile=int(profile.dtls_id or 0),
        )
        return pylibsrtp.Session(policy=policy)

    tx, rx = session(True), session(False)
    protect = _rate(tx.protect, packets)
    sender = session(True)
    protected = [sender.protect(p) for p in packets]
    unprotect = _rate(rx.unprotect, protected)
    tx2, rx2 = session(True), session(False)
    both = _rate(lambda p: rx2.unprotect(tx2.protect(p)), packets)
    return protect, unprotect, both


def main() -> None:
    pylibsrtp: Any = None
    try:
        pylibsrtp = importlib.import_module("pylibsrtp")
    except ImportError:  # pragma: no cover
        print("pylibsrtp is not installed: no reference column (pip extra 'bench')")
    packets = _packets(N_PACKETS)
    print(f"RTP packets: 12-octet header + 160-octet payload, {N_PACKETS} per measurement")
    print(f"{'profile / operation':44} {'rtpcore pkt/s':>14} {'libsrtp pkt/s':>14} {'ratio':>7}")
    for profile in (SRTP_AES128_CM_HMAC_SHA1_80, SRTP_AEAD_AES_128_GCM):
        key = bytes(range(1, profile.master_key_len + 1))
        salt = bytes(range(50, 50 + profile.master_salt_len))
        _ours(profile, key, salt, packets[:2000])  # warm up
        ours = _ours(profile, key, salt, packets)
        ref = _libsrtp(pylibsrtp, profile, key, salt, packets) if pylibsrtp else None
        for i, op in enumerate(("protect", "unprotect", "protect + unprotect")):
            mine = ours[i]
            theirs = ref[i] if ref else None
            ratio = f"{mine / theirs:6.2f}x" if theirs else "   n/a"
            ref_text = f"{theirs:14,.0f}" if theirs else f"{'n/a':>14}"
            print(f"{profile.name + ' ' + op:44} {mine:14,.0f} {ref_text} {ratio}")
    print("ratio = rtpcore / libsrtp (1.00x = as fast as C libsrtp)")


if __name__ == "__main__":
    main()
