"""STUN parse + MESSAGE-INTEGRITY check throughput, beside ``aioice.stun`` in the same run.

Every ICE connectivity check and consent request (one per 5 s per pair, plus checks at
Ta = 50 ms while connecting) is parsed and authenticated once, so this is the agent's hot
path for STUN. Workloads: the RFC 5769 sample request (short-term), a Chromium check with an
unknown attribute, a baresip response, and a coturn Allocate success (long-term key).
A second table times building a signed, fingerprinted Binding request.
"""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rtpcore.ice.stun import (
    IceControlling,
    MessageClass,
    Method,
    Priority,
    StunMessage,
    UseCandidate,
    Username,
    parse_message,
    short_term_key,
)

VECTORS = Path(__file__).resolve().parent.parent / "tests" / "vectors" / "stun"
N = 20_000


def _rate(fn: Callable[[], object], n: int = N) -> float:
    best = 0.0
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = max(best, n / (time.perf_counter() - t0))
    return best


def _workloads() -> dict[str, tuple[bytes, bytes]]:
    rfc = json.loads((VECTORS / "rfc5769.json").read_text())["vectors"]
    caps = {f["file"]: f for f in json.loads((VECTORS / "captures.json").read_text())["fixtures"]}

    def cap(name: str) -> tuple[bytes, bytes]:
        integ = caps[f"captures/{name}"]["integrity"]
        key = bytes.fromhex(integ["key_hex"]) if "key_hex" in integ else short_term_key(integ["password"])
        return (VECTORS / "captures" / name).read_bytes(), key

    return {
        "rfc5769 request": (bytes.fromhex(rfc[0]["message_hex"]), rfc[0]["credentials"]["password"].encode()),
        "chromium check": cap("chromium_binding_request_controlling.bin"),
        "baresip response": cap("baresip_binding_response.bin"),
        "coturn allocate ok": cap("coturn_allocate_success.bin"),
    }


def _aioice() -> Any | None:
    if importlib.util.find_spec("aioice") is None:
        return None
    try:
        from aioice import stun
    except Exception:
        return None
    return stun


def _ours_check(data: bytes, key: bytes) -> Callable[[], object]:
    def run() -> bool:
        msg = parse_message(data)
        ok = msg.verify_integrity(key)
        if not ok:
            raise AssertionError("integrity failed")
        return ok

    return run


def _theirs_check(stun: Any, data: bytes, key: bytes) -> Callable[[], object]:
    def run() -> bool:
        msg = stun.parse_message(data)
        ok = bool(msg.check_message_integrity(key))
        if not ok:
            raise AssertionError("aioice integrity failed")
        return ok

    return run


def _print_row(name: str, ours: float, theirs: float | None) -> None:
    ref_text = f"{theirs:>16,.0f}" if theirs else f"{'n/a':>16}"
    ratio = f"{ours / theirs:>7.2f}x" if theirs else f"{'':>8}"
    print(f"{name:<24}{ours:>14,.0f}{ref_text}{ratio}")


def main() -> None:
    stun = _aioice()
    print("parse + MESSAGE-INTEGRITY check (messages/s)")
    print(f"{'workload':<24}{'ours':>14}{'aioice':>16}{'ratio':>8}")
    for name, (data, key) in _workloads().items():
        ours = _rate(_ours_check(data, key))
        theirs = _rate(_theirs_check(stun, data, key)) if stun is not None else None
        _print_row(name, ours, theirs)

    print("\nbuild a Binding request with MESSAGE-INTEGRITY + FINGERPRINT (messages/s)")
    print(f"{'workload':<24}{'ours':>14}{'aioice':>16}{'ratio':>8}")
    key = b"VOkJxbRl1RmTxUk/WvJxBt"
    tid = bytes(range(12))

    def build_ours() -> bytes:
        msg = StunMessage(
            Method.BINDING,
            MessageClass.REQUEST,
            tid,
            [Username("evtj:h6vY"), Priority(1845494271), IceControlling(0x932FF9B151263B36), UseCandidate()],
        )
        return msg.encode(integrity_key=key, fingerprint=True)

    theirs_build: float | None = None
    if stun is not None:

        def build_theirs() -> bytes:
            msg = stun.Message(
                message_method=stun.Method.BINDING,
                message_class=stun.Class.REQUEST,
                transaction_id=tid,
            )
            msg.attributes["USERNAME"] = "evtj:h6vY"
            msg.attributes["PRIORITY"] = 1845494271
            msg.attributes["ICE-CONTROLLING"] = 0x932FF9B151263B36
            msg.attributes["USE-CANDIDATE"] = None
            msg.add_message_integrity(key)
            return bytes(msg)

        if build_theirs() != build_ours():
            raise AssertionError("the two encoders disagree on the same message")
        theirs_build = _rate(build_theirs)
    _print_row("ice check request", _rate(build_ours), theirs_build)
    if stun is None:
        print("\n(aioice not installed: reference column empty; `pip install aioice` to compare)")


if __name__ == "__main__":
    main()
