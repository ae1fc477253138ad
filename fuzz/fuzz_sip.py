"""Fuzz the SIP message layer: parse (strict), typed views, sanity check, framing, re-serialise.

Seeds are every message of the conformance corpus. Mutations: byte flips, insertions and
deletions, splicing two messages, duplicating header lines, and replacing numbers with
extreme values. The only allowed failure is :class:`sipcore.SipParseError`.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from sipcore import SipParseError, SipRequest, parse_message, sanity_check
from sipcore.framing import StreamFramer

SEEDS_DIR = Path(__file__).resolve().parent.parent / "tests" / "vectors" / "sip"
CRASH_DIR = Path(__file__).resolve().parent / "crashes"
_NUMBERS = [b"0", b"-1", b"4294967296", b"99999999999999999999", b"65536", b"256", b"00000070"]


def _seeds() -> list[bytes]:
    return [p.read_bytes() for p in sorted(SEEDS_DIR.glob("*/*.sip"))]


def mutate(data: bytes, rnd: random.Random, seeds: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rnd.randint(1, 4)):
        op = rnd.randrange(7)
        pos = rnd.randrange(len(buf) + 1)
        if op == 0 and buf:
            buf[min(pos, len(buf) - 1)] = rnd.randrange(256)
        elif op == 1:
            buf[pos:pos] = rnd.choice([b"\r\n", b" ", b";", b",", b":", b"<", b">", b'"', b"\\", b"%", b"\t", b"\x00"])
        elif op == 2 and buf:
            del buf[pos : pos + rnd.randint(1, 16)]
        elif op == 3:
            other = rnd.choice(seeds)
            cut = rnd.randrange(len(other) + 1)
            buf = buf[:pos] + other[cut:]
        elif op == 4:
            lines = bytes(buf).split(b"\r\n")
            if len(lines) > 2:
                i = rnd.randrange(1, len(lines))
                lines.insert(i, lines[rnd.randrange(1, len(lines))])
                buf = bytearray(b"\r\n".join(lines))
        elif op == 5:
            digits = [i for i, c in enumerate(buf) if 48 <= c <= 57]
            if digits:
                i = rnd.choice(digits)
                j = i
                while j < len(buf) and 48 <= buf[j] <= 57:
                    j += 1
                buf[i:j] = rnd.choice(_NUMBERS)
        else:
            buf = buf.upper() if rnd.random() < 0.5 else buf.lower()
    return bytes(buf)


def check(data: bytes) -> None:
    try:
        msg = parse_message(data)
    except SipParseError:
        return
    out = bytes(msg)
    assert out == data[len(data) - len(data.lstrip(b"\r\n")) : msg.consumed], "round trip changed bytes"
    try:
        msg.validate()
        if isinstance(msg, SipRequest):
            sanity_check(msg)
    except SipParseError:
        pass
    framer = StreamFramer()
    try:
        for _ in framer.feed(data):
            pass
    except SipParseError:
        pass


def run(seconds: float, seed: int) -> int:
    rnd = random.Random(seed)
    seeds = _seeds()
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        data = mutate(rnd.choice(seeds), rnd, seeds)
        try:
            check(data)
        except Exception:
            CRASH_DIR.mkdir(exist_ok=True)
            (CRASH_DIR / f"sip-{seed}-{n}.bin").write_bytes(data)
            raise
        n += 1
    return n
