"""Fuzz SRTP/SRTCP unprotect and SDES ``a=crypto`` parsing.

Seeds: the libsrtp-generated streams (all four DTLS-SRTP profiles), the RFC 7714 packets and the
real baresip SDES captures, each fed to receivers holding the right keys, so mutations reach
the index guessing, replay window, MKI and tag code and not only the length checks.

Mutations: bit flips, byte overwrites, truncation and extension, CC / X / extension-length
edits, E-flag and SRTCP-index edits, splicing, and replays of unmodified packets. Receivers
keep state across inputs (reset now and then). A second mode mutates a plaintext RTP/RTCP
packet, protects it with a fresh sender and checks the receiver gives back the same bytes.

Allowed outcomes: a value, :class:`rtpcore.errors.SrtpError` (and its subclasses) or another
:class:`rtpcore.errors.RemoteProtocolError`; for the sender side also ``LocalProtocolError``.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from pathlib import Path

from rtpcore.errors import LocalProtocolError, RemoteProtocolError, SrtpError
from rtpcore.srtp import (
    PROFILES,
    SessionKeys,
    SrtpProfile,
    SrtpSession,
    format_crypto_attribute,
    parse_crypto_attribute,
    profile_by_sdes_name,
)

VECTORS = Path(__file__).resolve().parent.parent / "tests" / "vectors" / "srtp"
CRASH_DIR = Path(__file__).resolve().parent / "crashes"

_Factory = Callable[[], SrtpSession]


def _corpus() -> tuple[list[tuple[_Factory, bytes, bool]], list[bytes], list[str]]:
    """(session factory, protected packet, is_rtcp) seeds, plaintext RTP/RTCP seeds, crypto lines."""
    seeds: list[tuple[_Factory, bytes, bool]] = []
    plain: list[bytes] = []
    lines: list[str] = []
    for stream in json.loads((VECTORS / "srtp_roundtrip.json").read_text())["streams"]:
        profile = profile_by_sdes_name(stream["profile"])
        key, salt = bytes.fromhex(stream["master_key"]), bytes.fromhex(stream["master_salt"])

        def make(p: SrtpProfile = profile, k: bytes = key, s: bytes = salt) -> SrtpSession:
            return SrtpSession(p, k, s)

        for pkt in stream["rtp"]:
            seeds.append((make, bytes.fromhex(pkt["protected"]), False))
            plain.append(bytes.fromhex(pkt["plaintext"]))
        for pkt in stream["rtcp"]:
            seeds.append((make, bytes.fromhex(pkt["protected"]), True))
            plain.append(bytes.fromhex(pkt["plaintext"]))
    rfc7714 = json.loads((VECTORS / "srtp_rfc7714.json").read_text())
    for case in rfc7714["srtp"] + rfc7714["srtcp"]:
        profile = profile_by_sdes_name(case["profile"])
        keys = SessionKeys(
            cipher_key=bytes.fromhex(case["key"]), cipher_salt=bytes.fromhex(case["salt"]), auth_key=b""
        )
        encrypt = case["op"] in ("encrypt", "decrypt") or bool(case.get("e_flag"))

        def make_gcm(p: SrtpProfile = profile, k: SessionKeys = keys, e: bool = encrypt) -> SrtpSession:
            return SrtpSession.from_session_keys(p, k, k, encrypt_rtp=e)

        seeds.append((make_gcm, bytes.fromhex(case["protected_packet"]), "srtcp_index" in case))
    captures = VECTORS / "captures"
    for sdp in ("baresip_answer_sdes.sdp", "baresip_offer_sdes.sdp"):
        for line in (captures / sdp).read_bytes().decode().split("\r\n"):
            if line.startswith("a=crypto:"):
                lines.append(line.removeprefix("a=crypto:"))
    erin = parse_crypto_attribute(lines[0])
    hank = parse_crypto_attribute(lines[1])
    for attr, who in ((erin, "erin"), (hank, "hank")):
        for line in (captures / f"baresip_srtp_{who}_3pkts.hexlines").read_text().split():
            seeds.append((attr.new_session, bytes.fromhex(line), False))
    for name in ("baresip_srtcp_app_ping.bin", "baresip_srtcp_sr_erin.bin"):
        seeds.append((erin.new_session, (captures / name).read_bytes(), True))
    lines += [
        lines[0] + "|2^31|1:4 KDR=4 UNENCRYPTED_SRTCP WSH=128",
        format_crypto_attribute(parse_crypto_attribute("9 AEAD_AES_256_GCM inline:" + "QUFB" * 14 + "QUE=")),
    ]
    return seeds, plain, lines


def mutate(data: bytes, rnd: random.Random, others: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rnd.randint(1, 3)):
        op = rnd.randrange(9)
        pos = rnd.randrange(len(buf)) if buf else 0
        if op == 0 and buf:
            buf[pos] ^= 1 << rnd.randrange(8)
        elif op == 1 and buf:
            buf[pos] = rnd.choice([0x00, 0xFF, 0x7F, 0x80, rnd.randrange(256)])
        elif op == 2:
            del buf[rnd.randrange(len(buf) + 1) :]
        elif op == 3:
            buf += rnd.randbytes(rnd.randint(1, 40))
        elif op == 4 and buf:
            buf[0] = (buf[0] & 0xE0) | rnd.randrange(32)  # P, X, CC (RTP) / count (RTCP)
        elif op == 5 and len(buf) >= 16:
            at = 12 + 4 * (buf[0] & 0x0F)
            if at + 4 <= len(buf):
                buf[at + 2 : at + 4] = rnd.choice([0, 1, 0x7FFF, 0xFFFF, rnd.randrange(65536)]).to_bytes(
                    2, "big"
                )
        elif op == 6 and len(buf) >= 14:
            back = rnd.choice([4, 14, 20, 24])  # E|index word for the usual tag sizes
            if back <= len(buf):
                buf[-back] ^= 0x80 if rnd.random() < 0.5 else rnd.randrange(1, 256)
        elif op == 7:
            other = rnd.choice(others)
            cut = rnd.randrange(len(other) + 1)
            buf = buf[: rnd.randrange(len(buf) + 1)] + other[cut:]
        elif len(buf) >= 4:
            buf[2:4] = rnd.randrange(65536).to_bytes(2, "big")  # RTP sequence number / RTCP length
    return bytes(buf)


def _check_unprotect(session: SrtpSession, data: bytes, rtcp: bool) -> None:
    try:
        out = session.unprotect_rtcp(data) if rtcp else session.unprotect_rtp(data)
    except (SrtpError, RemoteProtocolError):
        return
    if not isinstance(out, bytes) or len(out) >= len(data):
        raise AssertionError("unprotect returned a non-bytes value or did not strip the tag")


def _check_round_trip(profile: SrtpProfile, plain: bytes, rtcp: bool) -> None:
    key, salt = bytes(profile.master_key_len), bytes(range(profile.master_salt_len))
    tx, rx = SrtpSession(profile, key, salt), SrtpSession(profile, key, salt)
    try:
        protected = tx.protect_rtcp(plain) if rtcp else tx.protect_rtp(plain)
    except (SrtpError, LocalProtocolError):
        return
    back = rx.unprotect_rtcp(protected) if rtcp else rx.unprotect_rtp(protected)
    if back != plain:
        raise AssertionError("unprotect(protect(p)) != p")


def _check_crypto_line(value: str) -> None:
    try:
        attr = parse_crypto_attribute(value)
    except SrtpError:
        return
    if parse_crypto_attribute(format_crypto_attribute(attr)) != attr:
        raise AssertionError("a=crypto round trip changed the attribute")


def run(seconds: float, seed: int) -> int:
    rnd = random.Random(seed)
    seeds, plain, lines = _corpus()
    wire = [s[1] for s in seeds]
    receivers: dict[int, SrtpSession] = {}
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        mode = rnd.random()
        data: bytes | str = b""
        try:
            if mode < 0.75:
                i = rnd.randrange(len(seeds))
                factory, packet, rtcp = seeds[i]
                if i not in receivers or rnd.random() < 0.01:
                    receivers[i] = factory()
                data = packet if rnd.random() < 0.05 else mutate(packet, rnd, wire)  # 5 %: plain replays
                _check_unprotect(receivers[i], data, rtcp)
            elif mode < 0.9:
                data = mutate(rnd.choice(plain), rnd, plain)
                rtcp = len(data) > 1 and 192 <= data[1] <= 223
                _check_round_trip(rnd.choice(PROFILES), data, rtcp)
            else:
                text = rnd.choice(lines)
                raw = mutate(text.encode(), rnd, [x.encode() for x in lines])
                data = raw.decode("latin-1")
                _check_crypto_line(data)
        except Exception:
            CRASH_DIR.mkdir(exist_ok=True)
            blob = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
            (CRASH_DIR / f"srtp-{seed}-{n}.bin").write_bytes(blob)
            raise
        n += 1
    return n
