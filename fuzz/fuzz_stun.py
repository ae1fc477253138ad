"""Fuzz the STUN codec, TURN ChannelData framing, the TURN client and the ICE agent.

Seeds: the RFC 5769 vectors and every captured STUN/TURN datagram under
``tests/vectors/stun/`` (Chromium, baresip, coturn). Three kinds of input:

* byte-level mutants (bit flips, interesting bytes, truncation, insertion, deletion, length
  edits, splicing two seeds), half of them with the header length and FINGERPRINT repaired
  so the attribute parser, not the fingerprint check, sees the damage;
* attribute-level mutants: a seed's attributes dropped, duplicated, reordered or given
  random values of the same type, re-signed with the ICE password so they pass
  MESSAGE-INTEGRITY and reach the agent's check handling (role conflict, USE-CANDIDATE,
  peer-reflexive discovery);
* ChannelData frames.

Rules checked: ``parse_message`` returns a message or raises ``StunError``; a message that
parses re-encodes to the same bytes; ``error_response_for`` output parses; the agent's and
TURN client's ``receive`` never raise; ``parse_channel_data`` raises only ``TurnError``.
"""

from __future__ import annotations

import json
import random
import struct
import time
import zlib
from pathlib import Path

from rtpcore.errors import RemoteProtocolError, StunError, TurnError
from rtpcore.ice.agent import IceAgent
from rtpcore.ice.stun import (
    AttrType,
    Fingerprint,
    MessageIntegrity,
    StunMessage,
    UnknownAttribute,
    error_response_for,
    parse_message,
)
from rtpcore.ice.turn import TurnClient, parse_channel_data

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests" / "vectors" / "stun"
CRASH_DIR = Path(__file__).resolve().parent / "crashes"
INTERESTING = (0x00, 0x01, 0x02, 0x03, 0x7F, 0x80, 0xFF, 0x20, 0x21, 0x12, 0xA4, 0x42)
AGENT_PWD = "fuzzpasswordfuzzpassword"
AGENT_UFRAG = "fuzz"
LOCAL = ("10.0.0.1", 5000)
PEER = ("10.0.0.2", 6000)
TURN_SERVER = ("127.0.0.1", 3478)


def _seeds() -> list[bytes]:
    out = [bytes.fromhex(v["message_hex"]) for v in json.loads((VECTORS / "rfc5769.json").read_text())["vectors"]]
    out += [p.read_bytes() for p in sorted((VECTORS / "captures").glob("*.bin"))]
    return out


def _repair(data: bytes) -> bytes:
    """Fix the header length and FINGERPRINT so the damage reaches the attribute parser."""
    if len(data) < 20 or (len(data) - 20) % 4:
        return data
    out = bytearray(data)
    out[2:4] = struct.pack("!H", len(data) - 20)
    if len(out) >= 28 and out[-8:-6] == b"\x80\x28" and out[-6:-4] == b"\x00\x04":
        out[-4:] = struct.pack("!I", zlib.crc32(bytes(out[:-8])) ^ 0x5354554E)
    return bytes(out)


def _mutate_bytes(rnd: random.Random, data: bytes, seeds: list[bytes]) -> bytes:
    b = bytearray(data)
    for _ in range(rnd.randint(1, 4)):
        op = rnd.randrange(7)
        if op == 0 and b:
            i = rnd.randrange(len(b))
            b[i] ^= 1 << rnd.randrange(8)
        elif op == 1 and b:
            b[rnd.randrange(len(b))] = rnd.choice(INTERESTING)
        elif op == 2 and b:
            del b[rnd.randrange(len(b)) :]
        elif op == 3:
            i = rnd.randrange(len(b) + 1)
            b[i:i] = rnd.randbytes(rnd.randint(1, 8))
        elif op == 4 and len(b) > 1:
            i = rnd.randrange(len(b))
            del b[i : i + rnd.randint(1, 8)]
        elif op == 5 and len(b) >= 24:
            # an attribute length field
            i = 20 + 4 * rnd.randrange((len(b) - 20) // 4)
            b[i + 2 : i + 4] = struct.pack("!H", rnd.choice((0, 1, 3, 4, 8, 20, 0xFFFF, rnd.randrange(0x10000))))
        elif op == 6:
            other = rnd.choice(seeds)
            cut = rnd.randrange(len(b) + 1)
            b = b[:cut] + other[rnd.randrange(len(other) + 1) :]
    out = bytes(b)
    return _repair(out) if rnd.random() < 0.5 else out


def _mutate_attrs(rnd: random.Random, data: bytes, key: bytes) -> bytes | None:
    """Structured mutant, re-signed with ``key`` so it passes MESSAGE-INTEGRITY."""
    try:
        msg = parse_message(data)
    except StunError:
        return None
    attrs = [a for a in msg.attributes if not isinstance(a, (MessageIntegrity, Fingerprint))]
    for _ in range(rnd.randint(1, 3)):
        op = rnd.randrange(5)
        if op == 0 and attrs:
            attrs.pop(rnd.randrange(len(attrs)))
        elif op == 1 and attrs:
            attrs.insert(rnd.randrange(len(attrs) + 1), rnd.choice(attrs))
        elif op == 2:
            rnd.shuffle(attrs)
        elif op == 3:
            t = rnd.choice([int(t) for t in AttrType] + [rnd.randrange(0x10000)])
            n = rnd.choice((0, 1, 4, 8, 20, rnd.randrange(64)))
            attrs.insert(rnd.randrange(len(attrs) + 1), UnknownAttribute(t, rnd.randbytes(n)))
        elif op == 4:
            msg.transaction_id = rnd.randbytes(12)
    if rnd.random() < 0.5:
        attrs = [
            UnknownAttribute(0x0006, f"{AGENT_UFRAG}:peer".encode()) if a.attr_type == 0x0006 else a for a in attrs
        ]
    mutant = StunMessage(msg.method, msg.message_class, msg.transaction_id, attrs)
    try:
        return mutant.encode(integrity_key=key, fingerprint=rnd.random() < 0.8)
    except RemoteProtocolError:
        return None
    except Exception:
        return None  # an unencodable typed value (local error): not an input


def _check_codec(data: bytes) -> None:
    try:
        msg = parse_message(data)
    except StunError as exc:
        resp = error_response_for(data, exc, integrity_key=b"k")
        if resp is not None:
            parse_message(resp)  # must be valid STUN
        return
    if msg.encode() != data:
        raise AssertionError("parsed message does not re-encode to the same bytes")
    msg.verify_integrity(b"k")
    for a in msg.attributes:
        repr(a)


def _check_channel_data(data: bytes) -> None:
    try:
        parse_channel_data(data)
    except TurnError:
        pass


def _new_agent(rnd: random.Random) -> IceAgent:
    agent = IceAgent(rnd.random() < 0.5, AGENT_UFRAG, AGENT_PWD, rnd.randbytes)
    agent.gather(0.0, [LOCAL])
    agent.set_remote_credentials("peer", "peerpasswordpeerpassword")
    agent.add_remote_candidate(f"1 1 udp 2130706431 {PEER[0]} {PEER[1]} typ host")
    return agent


def _new_turn(rnd: random.Random) -> TurnClient:
    c = TurnClient(TURN_SERVER, "test", "test", rng=rnd.randbytes)
    c.allocate(0.0)
    return c


def _save(data: bytes, name: str, seed: int, n: int) -> Path:
    CRASH_DIR.mkdir(exist_ok=True)
    path = CRASH_DIR / f"stun-{name}-{seed}-{n}.bin"
    path.write_bytes(data)
    return path


def run(seconds: float, seed: int) -> int:
    """Fuzz for ``seconds``; returns the number of inputs tried, raises on a violation."""
    rnd = random.Random(seed)
    seeds = _seeds()
    key = AGENT_PWD.encode()
    agent = _new_agent(rnd)
    turn = _new_turn(rnd)
    now = 0.0
    deadline = time.monotonic() + seconds
    count = 0
    while True:
        if count % 64 == 0 and time.monotonic() >= deadline:
            return count
        if count < len(seeds):
            data: bytes | None = seeds[count]
        elif rnd.random() < 0.3:
            data = _mutate_attrs(rnd, rnd.choice(seeds), key)
        else:
            data = _mutate_bytes(rnd, rnd.choice(seeds), seeds)
        if data is None:
            continue
        now += 0.01
        src = PEER if rnd.random() < 0.8 else (f"10.0.0.{rnd.randrange(2, 9)}", rnd.randrange(1, 65536))
        steps = (
            ("codec", lambda d: _check_codec(d)),
            ("channeldata", lambda d: _check_channel_data(d)),
            ("agent", lambda d: (agent.receive(d, src, LOCAL, now), agent.handle_timeout(now), agent.datagrams_to_send(now))),
            ("turn", lambda d: (turn.receive(d, TURN_SERVER, now), turn.handle_timeout(now), turn.datagrams_to_send(now))),
        )
        for name, step in steps:
            try:
                step(data)
            except Exception as exc:
                path = _save(data, name, seed, count)
                raise AssertionError(f"fuzz_stun {name}: violation on input saved to {path}") from exc
        count += 1
        if count % 2000 == 0:  # fresh state machines now and then
            agent, turn = _new_agent(rnd), _new_turn(rnd)
            now = 0.0
