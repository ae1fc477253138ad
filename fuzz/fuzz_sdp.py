"""Fuzz the SDP parser, its typed attribute views and the offer/answer engine.

Seeds: every SDP under ``tests/vectors/sdp/`` (browser, softphone and RFC torture bodies;
the body of each ``.sip`` message).

Mutations: line-aware (delete, duplicate, swap, move, borrow a line from another seed,
swap the type letter, cut a line short, replace a number with an edge value such as
``65536``, ``-1``, 25 digits or a non-ASCII digit, change a separator, inject a template
line such as ``a=candidate:`` or ``c=IN IP6``, CRLF <-> LF) and byte-level (bit flips,
overwrites, inserts, deletes, truncation, splicing two seeds).

Allowed outcomes: a value or :class:`rtpcore.errors.SdpParseError` from
:func:`parse_sdp` and from every typed view; a value or a ``RemoteProtocolError``
(``SdpParseError`` / ``OfferAnswerError``) from :func:`create_answer`. Oracles beyond "no
other exception": a parsed SDP re-parses from its own serialization to an equal model, and
an answer we built is itself parseable and accepted by :func:`negotiate` (which may only
complain about malformed attributes of the offer, never about our answer).
"""

from __future__ import annotations

import random
import re
import time
from pathlib import Path

from rtpcore.errors import OfferAnswerError, RemoteProtocolError, SdpParseError
from rtpcore.sdp import (
    OPUS,
    PCMA,
    PCMU,
    Candidate,
    Crypto,
    Fingerprint,
    LocalDtls,
    LocalIce,
    LocalMediaCapabilities,
    SessionDescription,
    create_answer,
    negotiate,
    parse_sdp,
)

VECTORS = Path(__file__).resolve().parent.parent / "tests" / "vectors" / "sdp"
CRASH_DIR = Path(__file__).resolve().parent / "crashes"

_NUMBERS = ("0", "1", "65535", "65536", "-1", "127", "128", "255", "256", "4294967296",
            "99999999999999999999999", "1e3", "0x10", "\u0663", "", " ", "18446744073709551616")
_SEPARATORS = (" ", ":", "/", "=", ";", "|", "\t", "", "  ")
_TEMPLATES = (
    "a=candidate:1 1 udp 2130706431 192.0.2.1 9 typ host", "a=candidate:", "a=rtpmap:96 opus/48000/2",
    "a=fmtp:96 x", "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAA", "a=fingerprint:sha-256 00:11",
    "a=setup:actpass", "a=setup:", "a=rtcp:9 IN IP4 0.0.0.0", "a=extmap:1/sendonly urn:x", "a=ssrc:1 cname:x",
    "a=group:BUNDLE 0 1", "a=mid:0", "a=sendonly", "a=inactive", "a=ice-ufrag:abcd", "a=ice-pwd:",
    "c=IN IP6 ::1", "c=IN IP4 0.0.0.0", "c=IN IP4 224.2.1.1/127/3", "m=audio 9 RTP/AVP 0",
    "m=video 0 UDP/TLS/RTP/SAVPF 96", "m=application 9 UDP/DTLS/SCTP webrtc-datachannel", "t=0 0", "r=7d 1h 0",
    "b=AS:64", "k=prompt", "z=1 -1h", "v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=", "i=x", "x=y", "a=ptime:20.5",
)
_NUMBER_RE = re.compile(rb"[0-9]+")


def _body(path: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix == ".sdp":
        return data
    body = data.partition(b"\r\n\r\n")[2]
    if b"\r\nv=0" in body and not body.startswith(b"v=0"):  # multipart: take the SDP part
        body = body[body.index(b"v=0"):].split(b"\r\n--", 1)[0] + b"\r\n"
    return body


def _seeds() -> list[bytes]:
    return [_body(p) for p in sorted(VECTORS.iterdir()) if p.suffix in (".sdp", ".sip")]


def _caps() -> list[LocalMediaCapabilities]:
    fp = Fingerprint.from_digest("sha-256", bytes(32))
    host = Candidate("1", 1, "udp", 2130706431, "192.0.2.10", 40000, "host")
    ice = LocalIce("abcd", "0123456789abcdefghijkl", (host,))
    return [
        LocalMediaCapabilities([OPUS, PCMU, PCMA], "192.0.2.10", 40000, "UDP/TLS/RTP/SAVPF", ice=ice,
                               dtls=LocalDtls((fp,))),
        LocalMediaCapabilities([PCMA, PCMU], "192.0.2.10", 40000),
        LocalMediaCapabilities([OPUS, PCMU], "2001:db8::1", 40000, "RTP/SAVP",
                               crypto=[Crypto.inline(1, "AES_CM_128_HMAC_SHA1_80", bytes(30))]),
    ]


def _mutate_lines(rng: random.Random, data: bytes, seeds: list[bytes]) -> bytes:
    lines = data.split(b"\n")
    op = rng.randrange(11)
    i = rng.randrange(len(lines))
    if op == 0 and len(lines) > 1:
        del lines[i]
    elif op == 1:
        lines.insert(rng.randrange(len(lines) + 1), lines[i])
    elif op == 2:
        j = rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    elif op == 3:
        lines.insert(rng.randrange(len(lines) + 1), lines.pop(i))
    elif op == 4:
        other = rng.choice(seeds).split(b"\n")
        lines[i] = rng.choice(other)
    elif op == 5 and lines[i]:
        lines[i] = bytes([rng.choice(b"vosiuepcbtrzkamxVA=")]) + lines[i][1:]
    elif op == 6:
        lines[i] = lines[i][: rng.randrange(len(lines[i]) + 1)]
    elif op == 7:
        spans = [m.span() for m in _NUMBER_RE.finditer(lines[i])]
        if spans:
            a, b = rng.choice(spans)
            lines[i] = lines[i][:a] + rng.choice(_NUMBERS).encode() + lines[i][b:]
    elif op == 8:
        seps = [k for k, c in enumerate(lines[i]) if c in b" :/;|="]
        if seps:
            k = rng.choice(seps)
            lines[i] = lines[i][:k] + rng.choice(_SEPARATORS).encode() + lines[i][k + 1:]
    elif op == 9:
        lines.insert(rng.randrange(len(lines) + 1), rng.choice(_TEMPLATES).encode() + b"\r")
    else:
        lines = [ln[:-1] if ln.endswith(b"\r") else ln + b"\r" for ln in lines]
    return b"\n".join(lines)


def _mutate_bytes(rng: random.Random, data: bytes, seeds: list[bytes]) -> bytes:
    buf = bytearray(data)
    op = rng.randrange(6)
    if op == 0 and buf:
        buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
    elif op == 1 and buf:
        buf[rng.randrange(len(buf))] = rng.choice(b"\x00\r\n\xff\x80 :=/0")
    elif op == 2:
        i = rng.randrange(len(buf) + 1)
        buf[i:i] = rng.randbytes(rng.randrange(1, 8))
    elif op == 3 and buf:
        i = rng.randrange(len(buf))
        del buf[i:i + rng.randrange(1, 16)]
    elif op == 4:
        del buf[rng.randrange(len(buf) + 1):]
    else:
        other = rng.choice(seeds)
        buf = buf[: rng.randrange(len(buf) + 1)] + other[rng.randrange(len(other) + 1):]
    return bytes(buf)


def _mutate(rng: random.Random, data: bytes, seeds: list[bytes]) -> bytes:
    for _ in range(rng.randint(1, 4)):
        data = _mutate_lines(rng, data, seeds) if rng.random() < 0.75 else _mutate_bytes(rng, data, seeds)
    return data


def _views(sdp: SessionDescription) -> None:
    """Touch every typed view; each may only raise SdpParseError."""
    session_views = ("direction", "ice_ufrag", "ice_pwd", "ice_options", "ice_lite", "candidates",
                     "end_of_candidates", "fingerprints", "fingerprint", "setup", "groups", "extmaps",
                     "bundle_mids")
    media_views = ("rtpmap", "fmtp", "codecs", "rtcp_feedback", "ptime", "maxptime", "mid", "rtcp", "rtcp_mux",
                   "crypto", "ssrcs", "ssrc_groups", "msids", "cname", "payload_types", "connection")
    for name in session_views:
        try:
            getattr(sdp, name)
        except SdpParseError:
            pass
    for m in sdp.media:
        for name in session_views[:-1] + media_views:
            try:
                getattr(m, name)
            except SdpParseError:
                pass
        for fn in (sdp.effective_ice, sdp.effective_fingerprints, sdp.effective_setup, sdp.effective_direction,
                   sdp.effective_connection):
            try:
                fn(m)
            except SdpParseError:
                pass
        try:
            cryptos = m.crypto
        except SdpParseError:
            cryptos = []
        for c in cryptos:
            try:
                _ = c.key_salt
            except SdpParseError:
                pass


def _check(data: bytes, caps: LocalMediaCapabilities) -> None:
    try:
        sdp = parse_sdp(data)
    except SdpParseError:
        return
    _views(sdp)
    if parse_sdp(sdp.to_bytes()) != sdp:
        raise AssertionError("SDP does not survive serialize + parse")
    try:
        answer = create_answer(sdp, caps, rng=lambda n: bytes(n))
    except RemoteProtocolError:
        return
    if parse_sdp(answer.to_bytes()) != answer:
        raise AssertionError("our answer does not survive serialize + parse")
    try:
        negotiate(sdp, answer)
    except OfferAnswerError as exc:
        raise AssertionError(f"negotiate() refused our own answer: {exc}") from exc
    except SdpParseError:
        pass


def _save(data: bytes) -> Path:
    CRASH_DIR.mkdir(exist_ok=True)
    path = CRASH_DIR / f"sdp-{data[:2000].hex()[:40]}.sdp"
    path.write_bytes(data)
    return path


def run(seconds: float, seed: int) -> int:
    """Fuzz for ``seconds``; returns the number of inputs tried, raises on a violation."""
    rng = random.Random(seed)
    seeds = _seeds()
    caps = _caps()
    deadline = time.monotonic() + seconds
    count = 0
    while True:
        if count % 32 == 0 and time.monotonic() >= deadline:
            return count
        data = seeds[count] if count < len(seeds) else _mutate(rng, rng.choice(seeds), seeds)
        try:
            _check(data, caps[count % len(caps)])
        except Exception as exc:
            path = _save(data)
            raise AssertionError(f"fuzz_sdp: violation on input saved to {path}") from exc
        count += 1
