"""Fuzz the DTLS 1.2 record/handshake parsers and the DtlsConnection state machines.

Seeds: every captured DTLS datagram under ``tests/vectors/dtls/`` (Chromium, baresip,
OpenSSL; fragmented flights, HelloVerifyRequest, DTLS 1.3 records), plus the datagrams of
handshakes between our own client and server (so mutations reach every flight).

Each input goes to a fresh or running server and client ``receive()``. Three modes:

* stateless: 1-4 mutated seed datagrams into a new server (cookie exchange on or off) or a
  started client;
* in-flight: a real handshake between our client and server in which one datagram of a
  chosen flight is mutated (or a mutated seed is injected) on its way, so deep states
  (WAIT_CLIENT_KEY_EXCHANGE, WAIT_FINISHED, CONNECTED) see bad input, then timers fire;
* parsers: the record, fragment and message parsers on mutated bytes.

The only allowed exceptions are ``DtlsError`` subclasses and ``RemoteProtocolError``.
Mutations: bit flips, byte overwrites with interesting values, length-field edits in the
record and handshake headers, truncation, insertion, deletion, record duplication and
splicing two seeds.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

from rtpcore.dtls import DtlsConnection, DtlsTimers, fingerprint, generate_certificate
from rtpcore.dtls.constants import HandshakeType
from rtpcore.dtls.fragment import parse_fragments
from rtpcore.dtls.messages import parse_handshake_body
from rtpcore.dtls.record import parse_records
from rtpcore.errors import DtlsError, RemoteProtocolError

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests" / "vectors" / "dtls"
CRASH_DIR = Path(__file__).resolve().parent / "crashes"
ALLOWED = (DtlsError, RemoteProtocolError)
INTERESTING = (0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF, 0x14, 0x15, 0x16, 0x17)
TIMERS = DtlsTimers(initial=0.1, maximum=0.4, max_retransmissions=2)


def _capture_seeds() -> list[bytes]:
    out: list[bytes] = []
    for p in sorted(VECTORS.iterdir()):
        if p.suffix == ".bin":
            out.append(p.read_bytes())
        elif p.suffix == ".hexlines":
            out.extend(bytes.fromhex(line) for line in p.read_text().split())
    return out


class _Keys:
    def __init__(self) -> None:
        self.client = generate_certificate(now=1_800_000_000.0, common_name="fuzz-client")
        self.server = generate_certificate(now=1_800_000_000.0, common_name="fuzz-server")

    def pair(self, rnd: random.Random, mtu: int) -> tuple[DtlsConnection, DtlsConnection]:
        def rng(n: int) -> bytes:
            return rnd.randbytes(n)

        client = DtlsConnection("client", *self.client, remote_fingerprint=fingerprint(self.server[0]),
                                rng=rng, mtu=mtu, timers=TIMERS)
        server = DtlsConnection("server", *self.server, remote_fingerprint=fingerprint(self.client[0]),
                                rng=rng, mtu=mtu, timers=TIMERS, cookie_exchange=rnd.random() < 0.7)
        return client, server


def _own_handshake(keys: _Keys, rnd: random.Random) -> list[bytes]:
    client, server = keys.pair(rnd, rnd.choice((1200, 500, 200)))
    client.start(0.0)
    wire: list[bytes] = []
    for _ in range(8):
        for src, dst in ((client, server), (server, client)):
            for d in src.datagrams_to_send():
                wire.append(d)
                dst.receive(d, 0.0)
    client.send(b"application data")
    wire.extend(client.datagrams_to_send())
    client.close()
    wire.extend(client.datagrams_to_send())
    return wire


def mutate(data: bytes, rnd: random.Random, pool: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rnd.randint(1, 4)):
        op = rnd.randrange(9)
        if op == 0 and buf:
            i = rnd.randrange(len(buf))
            buf[i] ^= 1 << rnd.randrange(8)
        elif op == 1 and buf:
            buf[rnd.randrange(len(buf))] = rnd.choice(INTERESTING)
        elif op == 2 and len(buf) > 13:
            # a record header field: type(0) version(1-2) epoch(3-4) seq(5-10) length(11-12)
            buf[rnd.choice((0, 1, 2, 3, 4, 10, 11, 12))] = rnd.randrange(256)
        elif op == 3 and len(buf) > 25:
            # a handshake header field right after the first record header
            buf[13 + rnd.choice((0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11))] = rnd.choice(INTERESTING)
        elif op == 4 and buf:
            del buf[rnd.randrange(len(buf)) :]
        elif op == 5:
            i = rnd.randrange(len(buf) + 1)
            buf[i:i] = rnd.randbytes(rnd.randint(1, 16))
        elif op == 6 and buf:
            i = rnd.randrange(len(buf))
            del buf[i : i + rnd.randint(1, 16)]
        elif op == 7:
            buf += buf[: rnd.randint(0, len(buf))]  # duplicate a leading run of records
        elif op == 8 and pool:
            other = rnd.choice(pool)
            cut = rnd.randrange(len(buf) + 1)
            buf = buf[:cut] + other[rnd.randrange(len(other) + 1) :]
    return bytes(buf)


def _check_parsers(data: bytes) -> None:
    try:
        for rec in parse_records(data):
            try:
                for frag in parse_fragments(rec.fragment):
                    if frag.fragment_offset == 0 and len(frag.fragment) == frag.length:
                        try:
                            msg = parse_handshake_body(frag.msg_type, frag.fragment)
                            if frag.msg_type != HandshakeType.FINISHED and msg.serialize() != frag.fragment:
                                raise AssertionError(f"{type(msg).__name__} did not re-serialize identically")
                        except ALLOWED:
                            pass
            except ALLOWED:
                pass
    except ALLOWED:
        pass


def _feed(conn: DtlsConnection, data: bytes, now: float) -> None:
    try:
        conn.receive(data, now)
    except ALLOWED:
        pass
    conn.datagrams_to_send()
    conn.events()


def _stateless(keys: _Keys, rnd: random.Random, pool: list[bytes], record: Callable[[bytes], None]) -> None:
    client, server = keys.pair(rnd, rnd.choice((1200, 300)))
    target = server
    if rnd.random() < 0.5:
        client.start(0.0)
        client.datagrams_to_send()
        target = client
    for i in range(rnd.randint(1, 4)):
        data = mutate(rnd.choice(pool), rnd, pool) if rnd.random() < 0.9 else rnd.choice(pool)
        record(data)
        _feed(target, data, 0.01 * i)
    try:
        target.handle_timeout(10.0)
    except ALLOWED:
        pass


def _in_flight(keys: _Keys, rnd: random.Random, pool: list[bytes], record: Callable[[bytes], None]) -> None:
    client, server = keys.pair(rnd, rnd.choice((1200, 400, 200)))
    client.start(0.0)
    victim = rnd.randrange(12)
    count, now = 0, 0.0
    for _ in range(10):
        for src, dst in ((client, server), (server, client)):
            for d in src.datagrams_to_send():
                if count == victim:
                    d = mutate(d, rnd, pool) if rnd.random() < 0.8 else mutate(rnd.choice(pool), rnd, pool)
                    record(d)
                count += 1
                try:
                    dst.receive(d, now)
                except ALLOWED:
                    pass
                dst.events()
        now += 0.15
        for conn in (client, server):
            try:
                conn.handle_timeout(now)
            except ALLOWED:
                pass


def run(seconds: float, seed: int) -> int:
    rnd = random.Random(seed)
    keys = _Keys()
    pool = _capture_seeds()
    for _ in range(3):
        pool.extend(_own_handshake(keys, rnd))
    deadline = time.monotonic() + seconds
    n = 0
    current: list[bytes] = []
    while time.monotonic() < deadline:
        current.clear()
        try:
            mode = rnd.random()
            if mode < 0.4:
                _stateless(keys, rnd, pool, current.append)
            elif mode < 0.7:
                _in_flight(keys, rnd, pool, current.append)
            else:
                data = mutate(rnd.choice(pool), rnd, pool)
                current.append(data)
                _check_parsers(data)
        except Exception:
            CRASH_DIR.mkdir(exist_ok=True)
            for i, blob in enumerate(current):
                (CRASH_DIR / f"dtls-{seed}-{n}-{i}.bin").write_bytes(blob)
            raise
        n += 1
    return n
