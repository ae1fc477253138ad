"""Fuzz the RTP, RTCP and RFC 4733 parsers.

Seeds: every RTP/RTCP vector and capture under ``tests/vectors/rtp/`` (media corpus, baresip,
sipp and linphone captures, SRTP corpus plaintexts), plus a few generated feedback and XR
packets so mutations reach every RTCP packet type.

Mutations: bit flips, byte overwrites, interesting values (0, 0xFF, 0x80, 0x7F), CC / X / P
and RTCP length / count edits, truncation, extension with random bytes, insertion and
deletion, and splicing two seeds. Each input goes to :meth:`RtpPacket.parse` (and the RFC
8285 element parser on success), :func:`parse_compound` and :func:`parse_event`, and through
a :class:`DtmfReceiver`.

Allowed outcomes: a value or :class:`rtpcore.errors.RemoteProtocolError` (``RtpParseError``).
Oracles beyond "no other exception": a parsed RTP packet re-serializes to the input (padding
octets normalized to zeros) and a parsed RTCP compound re-parses to the same packets.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from pathlib import Path

from rtpcore.dtmf import DtmfReceiver, parse_event
from rtpcore.errors import RemoteProtocolError
from rtpcore.rtp.packet import RtpPacket
from rtpcore.rtp.rtcp import (
    RtcpPsfbPacket,
    RtcpRtpfbPacket,
    RtcpXrPacket,
    XrBlock,
    parse_compound,
    serialize_compound,
)

VECTORS = Path(__file__).resolve().parent.parent / "tests" / "vectors" / "rtp"
CRASH_DIR = Path(__file__).resolve().parent / "crashes"
_INTERESTING = (0x00, 0xFF, 0x80, 0x7F, 0x01, 0x20, 0x10, 0x0F, 0xC8, 0xCA)


def _seeds() -> list[bytes]:
    seeds: list[bytes] = []
    for path in sorted(VECTORS.iterdir()):
        if path.suffix == ".bin":
            seeds.append(path.read_bytes())
        elif path.suffix == ".hexlines":
            seeds += [bytes.fromhex(line) for line in path.read_text().split()]
    corpus = json.loads((VECTORS / "rtp_rtcp.json").read_text())
    seeds += [bytes.fromhex(v["packet"]) for v in corpus["rtp"] + corpus["rtcp"]]
    plain = json.loads((VECTORS / "srtp_roundtrip_plaintexts.json").read_text())
    seeds += [bytes.fromhex(v["plaintext"]) for v in plain["rtp"] + plain["rtcp"]]
    dtmf = json.loads((VECTORS / "dtmf_rfc4733.json").read_text())
    seeds += [bytes.fromhex(v["payload"]) for v in dtmf["payloads"]]
    seeds += [bytes.fromhex(v["packet"]) for v in dtmf["sequence_example"]["packets"]]
    seeds.append(
        serialize_compound(
            [
                RtcpRtpfbPacket.nack(1, 2, [100, 101, 103, 200]),
                RtcpPsfbPacket.pli(1, 2),
                RtcpXrPacket(1, (XrBlock(4, 0, bytes(8)), XrBlock(5, 0, bytes(12)))),
            ]
        )
    )
    return seeds


def _mutate(rng: random.Random, data: bytes, seeds: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(9)
        if op == 0 and buf:  # bit flip
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:  # byte overwrite
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        elif op == 2 and buf:  # interesting value
            buf[rng.randrange(len(buf))] = rng.choice(_INTERESTING)
        elif op == 3 and buf:  # RTP CC/X/P or RTCP P/count in the first octet
            buf[0] = (buf[0] & 0xC0) | rng.randrange(64)
        elif op == 4 and len(buf) >= 4:  # an RTCP length field (first packet or a later one)
            pos = rng.randrange(0, len(buf) - 3, 4)
            buf[pos + 2 : pos + 4] = rng.randrange(0x10000 if rng.random() < 0.3 else 32).to_bytes(2, "big")
        elif op == 5:  # truncate
            del buf[rng.randrange(len(buf) + 1) :]
        elif op == 6:  # extend
            buf += rng.randbytes(rng.randrange(1, 16))
        elif op == 7 and buf:  # insert or delete a few octets
            i = rng.randrange(len(buf))
            if rng.random() < 0.5:
                buf[i:i] = rng.randbytes(rng.randrange(1, 5))
            else:
                del buf[i : i + rng.randrange(1, 5)]
        else:  # splice with another seed
            other = rng.choice(seeds)
            cut = rng.randrange(len(buf) + 1)
            buf = buf[:cut] + other[rng.randrange(len(other) + 1) :]
    return bytes(buf)


def _check_rtp(data: bytes) -> None:
    try:
        packet = RtpPacket.parse(data)
    except RemoteProtocolError:
        return
    out = packet.serialize()
    pad = packet.padding_size
    expected = data if not pad else data[: len(data) - pad] + bytes(pad - 1) + data[-1:]
    if out != expected:
        raise AssertionError("RTP packet does not re-serialize to its input")
    try:
        packet.extension_elements()
    except RemoteProtocolError:
        pass


def _check_rtcp(data: bytes) -> None:
    try:
        packets = parse_compound(data)
    except RemoteProtocolError:
        return
    if parse_compound(serialize_compound(packets)) != packets:
        raise AssertionError("RTCP compound does not survive serialize + parse")


def _check_dtmf(data: bytes, receiver: DtmfReceiver, now: float) -> None:
    try:
        parse_event(data)
    except RemoteProtocolError:
        pass
    try:
        receiver.receive(
            data[12:] if len(data) > 12 else data, int.from_bytes(data[4:8] or b"\0", "big"), now
        )
    except RemoteProtocolError:
        pass
    receiver.handle_timeout(now)
    receiver.events()


def _save(data: bytes, name: str) -> Path:
    CRASH_DIR.mkdir(exist_ok=True)
    path = CRASH_DIR / f"rtp-{name}-{data.hex()[:40]}.bin"
    path.write_bytes(data)
    return path


def run(seconds: float, seed: int) -> int:
    """Fuzz for ``seconds``; returns the number of inputs tried, raises on a violation."""
    rng = random.Random(seed)
    seeds = _seeds()
    receiver = DtmfReceiver()
    deadline = time.monotonic() + seconds
    count = 0
    now = 0.0
    checks: tuple[tuple[str, Callable[[bytes], None]], ...] = (
        ("rtp", _check_rtp),
        ("rtcp", _check_rtcp),
        ("dtmf", lambda d: _check_dtmf(d, receiver, now)),
    )
    while True:
        if count % 64 == 0 and time.monotonic() >= deadline:
            return count
        data = seeds[count] if count < len(seeds) else _mutate(rng, rng.choice(seeds), seeds)
        now += 0.01
        for name, check in checks:
            try:
                check(data)
            except Exception as exc:
                path = _save(data, name)
                raise AssertionError(f"fuzz_rtp {name}: violation on input saved to {path}") from exc
        count += 1
