"""SrtpSession: libsrtp-generated streams, real baresip captures, ROC, replay window, SRTCP index.

RFC 3711 §3.3 (SRTP), §3.3.1 + Appendix A (index guessing), §3.3.2 (replay), §3.4 (SRTCP);
RFC 7714 §8, §9 for the GCM profiles.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from rtpcore.errors import LocalProtocolError, RemoteProtocolError, ReplayError, SrtpAuthError, SrtpError
from rtpcore.srtp import (
    AES_256_CM_HMAC_SHA1_32,
    PROFILES,
    SRTP_AEAD_AES_128_GCM,
    SRTP_AES128_CM_HMAC_SHA1_32,
    SRTP_AES128_CM_HMAC_SHA1_80,
    SrtpProfile,
    SrtpSession,
    derive_srtcp_keys,
    derive_srtp_keys,
    parse_crypto_attribute,
    profile_by_sdes_name,
)
from rtpcore.srtp.context import ReplayWindow

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "srtp"
CAPTURES = VECTORS / "captures"
ROUNDTRIP = json.loads((VECTORS / "srtp_roundtrip.json").read_text())


def _hexlines(name: str) -> list[bytes]:
    return [bytes.fromhex(line) for line in (CAPTURES / name).read_text().split()]


def _crypto_line(sdp_file: str) -> str:
    for line in (CAPTURES / sdp_file).read_bytes().decode().split("\r\n"):
        if line.startswith("a=crypto:"):
            return line.removeprefix("a=crypto:")
    raise AssertionError(f"no a=crypto in {sdp_file}")


def _rtp(seq: int, ssrc: int = 0x11223344, payload: bytes = b"\xd5" * 160, ts: int = 0) -> bytes:
    return (
        bytes([0x80, 0x00])
        + seq.to_bytes(2, "big")
        + ts.to_bytes(4, "big")
        + ssrc.to_bytes(4, "big")
        + payload
    )


def _rtcp_rr(ssrc: int = 0x11223344) -> bytes:
    return bytes([0x80, 201, 0, 1]) + ssrc.to_bytes(4, "big")


def _pair(profile: SrtpProfile = SRTP_AES128_CM_HMAC_SHA1_80, **kw: Any) -> tuple[SrtpSession, SrtpSession]:
    key = bytes(range(1, profile.master_key_len + 1))
    salt = bytes(range(101, 101 + profile.master_salt_len))
    return SrtpSession(profile, key, salt, **kw), SrtpSession(profile, key, salt, **kw)


def _flip(data: bytes, pos: int, mask: int = 0x01) -> bytes:
    b = bytearray(data)
    b[pos] ^= mask
    return bytes(b)


# -- libsrtp-generated streams -----------------------------------------------------------------


@pytest.mark.parametrize("stream", ROUNDTRIP["streams"], ids=lambda s: s["profile"])
def test_libsrtp_streams_bit_exact(stream: dict[str, Any]) -> None:
    profile = profile_by_sdes_name(stream["profile"])
    assert f"0x{profile.dtls_id:04x}" == stream["dtls_srtp_profile_id"]
    assert (profile.srtp_auth_tag_len, profile.srtcp_auth_tag_len) == (
        stream["rtp_auth_tag_len"],
        stream["rtcp_auth_tag_len"],
    )
    key, salt = bytes.fromhex(stream["master_key"]), bytes.fromhex(stream["master_salt"])
    tx, rx = SrtpSession(profile, key, salt), SrtpSession(profile, key, salt)
    ssrc = int(stream["ssrc"], 16)
    for pkt in stream["rtp"]:
        plain, protected = bytes.fromhex(pkt["plaintext"]), bytes.fromhex(pkt["protected"])
        assert tx.protect_rtp(plain) == protected, pkt["description"]
        assert rx.unprotect_rtp(protected) == plain, pkt["description"]
        assert rx.rtp_roc(ssrc) == pkt["roc"] == tx.rtp_roc(ssrc, outbound=True)
    for pkt in stream["rtcp"]:
        plain, protected = bytes.fromhex(pkt["plaintext"]), bytes.fromhex(pkt["protected"])
        assert tx.srtcp_index(ssrc) in (None, pkt["srtcp_index"])
        assert tx.protect_rtcp(plain) == protected, pkt["description"]
        assert rx.unprotect_rtcp(protected) == plain, pkt["description"]


def test_hmac_tag_is_hmac_sha1_over_packet_and_roc() -> None:
    # Independent recomputation of the RFC 3711 §4.2 tag with the stdlib hmac module.
    stream = ROUNDTRIP["streams"][0]
    key, salt = bytes.fromhex(stream["master_key"]), bytes.fromhex(stream["master_salt"])
    keys = derive_srtp_keys(SRTP_AES128_CM_HMAC_SHA1_80, key, salt)
    for pkt in stream["rtp"]:
        protected = bytes.fromhex(pkt["protected"])
        mac = hmac.new(keys.auth_key, protected[:-10] + pkt["roc"].to_bytes(4, "big"), hashlib.sha1).digest()
        assert protected[-10:] == mac[:10]
    rtcp_keys = derive_srtcp_keys(SRTP_AES128_CM_HMAC_SHA1_80, key, salt)
    protected = bytes.fromhex(stream["rtcp"][0]["protected"])
    assert protected[-10:] == hmac.new(rtcp_keys.auth_key, protected[:-10], hashlib.sha1).digest()[:10]


# -- real captures (baresip SDES call) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "sdp"), [("erin", "baresip_answer_sdes.sdp"), ("hank", "baresip_offer_sdes.sdp")]
)
def test_baresip_srtp_capture(who: str, sdp: str) -> None:
    attr = parse_crypto_attribute(_crypto_line(sdp))
    assert attr.profile is SRTP_AES128_CM_HMAC_SHA1_80
    captured = _hexlines(f"baresip_srtp_{who}_3pkts.hexlines")
    plain = _hexlines(f"baresip_srtp_{who}_3pkts.decrypted.hexlines")
    assert len(captured) == len(plain) == 3
    rx, tx = attr.new_session(), attr.new_session()
    for c, p in zip(captured, plain):
        assert rx.unprotect_rtp(c) == p
        assert tx.protect_rtp(p) == c
    with pytest.raises(ReplayError):
        rx.unprotect_rtp(captured[1])
    # the other party's key does not verify these packets
    other = "baresip_offer_sdes.sdp" if who == "erin" else "baresip_answer_sdes.sdp"
    with pytest.raises(SrtpAuthError):
        parse_crypto_attribute(_crypto_line(other)).new_session().unprotect_rtp(captured[0])


def test_baresip_srtcp_capture() -> None:
    attr = parse_crypto_attribute(_crypto_line("baresip_answer_sdes.sdp"))
    rx, tx = attr.new_session(), attr.new_session()
    for name, index in (("baresip_srtcp_app_ping", 1), ("baresip_srtcp_sr_erin", 2)):
        captured = (CAPTURES / f"{name}.bin").read_bytes()
        plain = (CAPTURES / f"{name}.decrypted.bin").read_bytes()
        assert int.from_bytes(captured[-14:-10], "big") == 0x80000000 | index
        assert rx.unprotect_rtcp(captured) == plain
        assert tx.protect_rtcp(plain) == captured  # libsrtp numbering: first SRTCP index is 1
    # baresip's plain-RTCP APP PING sent in the SRTP call: no room for index and tag
    with pytest.raises(SrtpError):
        rx.unprotect_rtcp((CAPTURES / "baresip_rtcp_app_ping_plaintext_in_srtp_call.bin").read_bytes())


# -- ROC and index guessing -----------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_round_trip_across_roc_rollover(profile: SrtpProfile) -> None:
    tx, rx = _pair(profile)
    ssrc = 0x11223344
    seqs = [*range(65530, 65536), *range(0, 6)]
    for n, seq in enumerate(seqs):
        pkt = _rtp(seq, payload=bytes([n]) * (n + 1))
        protected = tx.protect_rtp(pkt)
        assert len(protected) == len(pkt) + profile.srtp_auth_tag_len
        assert rx.unprotect_rtp(protected) == pkt
    assert rx.rtp_roc(ssrc) == 1 == tx.rtp_roc(ssrc, outbound=True)


def test_late_packet_from_before_the_wrap_uses_the_previous_roc() -> None:
    tx, rx = _pair()
    p65535 = tx.protect_rtp(_rtp(65535))
    p0 = tx.protect_rtp(_rtp(0))
    p1 = tx.protect_rtp(_rtp(1))
    assert rx.unprotect_rtp(p65535) == _rtp(65535)
    assert rx.unprotect_rtp(p1) == _rtp(1)
    assert rx.rtp_roc(0x11223344) == 1
    assert rx.unprotect_rtp(p0) == _rtp(0)  # out of order across the wrap, inside the window


def test_sender_late_packet_before_wrap_keeps_its_roc() -> None:
    # the sender protects 65535 after 0 (reordered locally): Appendix A gives ROC 0 for it
    tx, rx = _pair()
    a = tx.protect_rtp(_rtp(65534))
    b = tx.protect_rtp(_rtp(0))
    c = tx.protect_rtp(_rtp(65535))
    for pkt, seq in ((a, 65534), (b, 0), (c, 65535)):
        assert rx.unprotect_rtp(pkt) == _rtp(seq)
    assert rx.rtp_roc(0x11223344) == 1


def test_large_gap_within_half_the_sequence_space() -> None:
    tx, rx = _pair()
    first = tx.protect_rtp(_rtp(100))
    for seq in range(101, 30000, 997):  # sender keeps going, receiver loses these
        tx.protect_rtp(_rtp(seq))
    later = tx.protect_rtp(_rtp(30100))
    assert rx.unprotect_rtp(first) == _rtp(100)
    assert rx.unprotect_rtp(later) == _rtp(30100)


def test_first_packet_then_seq_far_behind_is_older_than_the_stream() -> None:
    tx, rx = _pair()
    assert rx.unprotect_rtp(tx.protect_rtp(_rtp(10))) == _rtp(10)
    other = SrtpSession(SRTP_AES128_CM_HMAC_SHA1_80, bytes(range(1, 17)), bytes(range(101, 115)))
    with pytest.raises(ReplayError):  # ROC would have to be -1
        rx.unprotect_rtp(other.protect_rtp(_rtp(65000)))


# -- replay window --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "profile", [SRTP_AES128_CM_HMAC_SHA1_80, SRTP_AEAD_AES_128_GCM], ids=lambda p: p.name
)
def test_replay_rejected_and_state_kept(profile: SrtpProfile) -> None:
    tx, rx = _pair(profile)
    pkts = [tx.protect_rtp(_rtp(seq)) for seq in range(1000, 1010)]
    for p in pkts:
        rx.unprotect_rtp(p)
    for p in (pkts[0], pkts[5], pkts[9]):
        with pytest.raises(ReplayError):
            rx.unprotect_rtp(p)
    assert rx.unprotect_rtp(tx.protect_rtp(_rtp(1010))) == _rtp(1010)


def test_out_of_order_within_window_accepted_once() -> None:
    tx, rx = _pair()
    pkts = {seq: tx.protect_rtp(_rtp(seq)) for seq in range(0, 100)}
    order = [99, *range(98, 35, -1)]  # 99 first, then back down to 36 (99 - 63: all in the window)
    for seq in order:
        assert rx.unprotect_rtp(pkts[seq]) == _rtp(seq)
    with pytest.raises(ReplayError, match="replayed"):
        rx.unprotect_rtp(pkts[50])


def test_too_old_rejected_default_window_64() -> None:
    tx, rx = _pair()
    pkts = {seq: tx.protect_rtp(_rtp(seq)) for seq in range(0, 200)}
    rx.unprotect_rtp(pkts[199])
    assert rx.unprotect_rtp(pkts[136]) == _rtp(136)  # 199 - 63: last slot of the window
    with pytest.raises(ReplayError, match="older than the window"):
        rx.unprotect_rtp(pkts[135])  # 199 - 64


def test_larger_window_for_video() -> None:
    tx, rx = _pair(replay_window=1024)
    pkts = {seq: tx.protect_rtp(_rtp(seq)) for seq in range(0, 1100)}
    rx.unprotect_rtp(pkts[1099])
    assert rx.unprotect_rtp(pkts[100]) == _rtp(100)
    with pytest.raises(ReplayError):
        rx.unprotect_rtp(pkts[75])


@pytest.mark.parametrize("window", [0, 63, (1 << 15) + 1])
def test_window_size_limits(window: int) -> None:
    with pytest.raises(LocalProtocolError):
        SrtpSession(SRTP_AES128_CM_HMAC_SHA1_80, bytes(16), bytes(14), replay_window=window)


def test_replay_window_unit() -> None:
    w = ReplayWindow(64)
    assert w.status(5) == 0
    w.add(5)
    assert w.status(5) != 0 and w.status(6) == 0 and w.status(4) == 0
    w.add(1000)
    assert w.status(5) != 0 and w.status(937) == 0 and w.status(936) != 0
    w.add(1 << 47)  # a huge jump must not build a huge bitmap
    assert w.status(1000) != 0 and w.status((1 << 47) - 1) == 0


# -- authentication -------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_tampered_packets_rejected_and_do_not_move_state(profile: SrtpProfile) -> None:
    tx, rx = _pair(profile)
    good = tx.protect_rtp(_rtp(7))
    for pos in (-1, -profile.srtp_auth_tag_len, 12, 3, 1):  # tag, tag start, payload, seq, PT
        with pytest.raises(SrtpAuthError):
            rx.unprotect_rtp(_flip(good, pos))
    assert rx.rtp_roc(0x11223344) is None  # nothing authenticated yet: no stream state
    assert rx.unprotect_rtp(good) == _rtp(7)
    # a forged packet far ahead must not move the index state
    next_one = tx.protect_rtp(_rtp(8))
    forged = _flip(tx.protect_rtp(_rtp(30000)), -1)
    with pytest.raises(SrtpAuthError):
        rx.unprotect_rtp(forged)
    assert rx.unprotect_rtp(next_one) == _rtp(8)


def test_32_bit_tag_profile_lengths() -> None:
    tx, rx = _pair(SRTP_AES128_CM_HMAC_SHA1_32)
    pkt = _rtp(1)
    protected = tx.protect_rtp(pkt)
    assert len(protected) == len(pkt) + 4
    assert rx.unprotect_rtp(protected) == pkt
    rtcp = tx.protect_rtcp(_rtcp_rr())
    assert len(rtcp) == 8 + 4 + 10  # SRTCP keeps the 80-bit tag (RFC 5764 §4.1.2)
    assert rx.unprotect_rtcp(rtcp) == _rtcp_rr()
    with pytest.raises(SrtpAuthError):
        rx.unprotect_rtp(_flip(tx.protect_rtp(_rtp(2)), -4))


def test_aes256_cm_32_round_trip() -> None:
    tx, rx = _pair(AES_256_CM_HMAC_SHA1_32)
    assert rx.unprotect_rtp(tx.protect_rtp(_rtp(3))) == _rtp(3)
    assert rx.unprotect_rtcp(tx.protect_rtcp(_rtcp_rr())) == _rtcp_rr()


def test_different_key_fails() -> None:
    tx, _ = _pair()
    rx = SrtpSession(SRTP_AES128_CM_HMAC_SHA1_80, bytes(16), bytes(14))
    with pytest.raises(SrtpAuthError):
        rx.unprotect_rtp(tx.protect_rtp(_rtp(1)))
    with pytest.raises(SrtpAuthError):
        rx.unprotect_rtcp(tx.protect_rtcp(_rtcp_rr()))


# -- SRTCP ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_srtcp_index_increments_per_ssrc(profile: SrtpProfile) -> None:
    tx, rx = _pair(profile)
    rr = _rtcp_rr()
    words = []
    for _ in range(5):
        protected = tx.protect_rtcp(rr)
        word_at = len(protected) - 4 if profile.is_aead else len(protected) - profile.srtcp_auth_tag_len - 4
        words.append(int.from_bytes(protected[word_at : word_at + 4], "big"))
        assert rx.unprotect_rtcp(protected) == rr
    assert words == [0x80000000 | i for i in range(1, 6)]
    assert tx.srtcp_index(0x11223344) == 6
    other = tx.protect_rtcp(_rtcp_rr(0x55667788))
    assert rx.unprotect_rtcp(other) == _rtcp_rr(0x55667788)
    assert tx.srtcp_index(0x55667788) == 2


@pytest.mark.parametrize(
    "profile", [SRTP_AES128_CM_HMAC_SHA1_80, SRTP_AEAD_AES_128_GCM], ids=lambda p: p.name
)
def test_srtcp_replay_and_reorder(profile: SrtpProfile) -> None:
    tx, rx = _pair(profile)
    pkts = [tx.protect_rtcp(_rtcp_rr()) for _ in range(100)]
    rx.unprotect_rtcp(pkts[99])
    rx.unprotect_rtcp(pkts[50])
    with pytest.raises(ReplayError):
        rx.unprotect_rtcp(pkts[50])
    with pytest.raises(ReplayError):
        rx.unprotect_rtcp(pkts[10])


@pytest.mark.parametrize(
    "profile", [SRTP_AES128_CM_HMAC_SHA1_80, SRTP_AEAD_AES_128_GCM], ids=lambda p: p.name
)
def test_unencrypted_srtcp_e_flag_zero(profile: SrtpProfile) -> None:
    tx, _ = _pair(profile, encrypt_rtcp=False)
    _, rx = _pair(profile)  # a default receiver accepts E=0 packets: they are authenticated
    rr = _rtcp_rr() + b"\x81\xca\x00\x02\x11\x22\x33\x44\x01\x00\x00\x00"
    protected = tx.protect_rtcp(rr)
    assert protected.startswith(rr)  # body in the clear
    assert rx.unprotect_rtcp(protected) == rr
    with pytest.raises(SrtpAuthError):
        rx.unprotect_rtcp(_flip(tx.protect_rtcp(rr), 10))


@pytest.mark.parametrize(
    "profile", [SRTP_AES128_CM_HMAC_SHA1_80, SRTP_AEAD_AES_128_GCM], ids=lambda p: p.name
)
def test_unencrypted_srtp(profile: SrtpProfile) -> None:
    tx, rx = _pair(profile, encrypt_rtp=False)
    pkt = _rtp(9)
    protected = tx.protect_rtp(pkt)
    assert protected.startswith(pkt)
    assert rx.unprotect_rtp(protected) == pkt
    with pytest.raises(SrtpAuthError):
        rx.unprotect_rtp(_flip(tx.protect_rtp(_rtp(10)), 20))


# -- many SSRCs, MKI, key derivation rate -----------------------------------------------------------


def test_many_ssrcs_have_independent_state() -> None:
    tx, rx = _pair()
    ssrcs = [0x1000 + i * 7919 for i in range(300)]
    for round_ in range(3):
        for n, ssrc in enumerate(ssrcs):
            seq = (n * 1000 + round_) & 0xFFFF
            pkt = _rtp(seq, ssrc=ssrc, payload=ssrc.to_bytes(4, "big") * 5)
            assert rx.unprotect_rtp(tx.protect_rtp(pkt)) == pkt
    assert all(rx.rtp_roc(s) == 0 for s in ssrcs)
    # the same seq on another SSRC is not a replay; the same SSRC+seq is
    first = tx.protect_rtp(_rtp(20000, ssrc=ssrcs[0]))
    rx.unprotect_rtp(first)
    rx.unprotect_rtp(tx.protect_rtp(_rtp(20000, ssrc=ssrcs[2])))
    with pytest.raises(ReplayError):
        rx.unprotect_rtp(first)


def test_stream_cap_drops_the_oldest_state() -> None:
    tx, rx = _pair(max_streams=4)
    for ssrc in range(1, 7):
        rx.unprotect_rtp(tx.protect_rtp(_rtp(5, ssrc=ssrc)))
    assert rx.rtp_roc(1) is None and rx.rtp_roc(2) is None
    assert all(rx.rtp_roc(s) == 0 for s in range(3, 7))


@pytest.mark.parametrize(
    "profile", [SRTP_AES128_CM_HMAC_SHA1_80, SRTP_AEAD_AES_128_GCM], ids=lambda p: p.name
)
def test_mki_carried_and_checked(profile: SrtpProfile) -> None:
    mki = b"\x00\x00\x00\x01"
    tx, rx = _pair(profile, mki=mki)
    pkt = _rtp(1)
    protected = tx.protect_rtp(pkt)
    tag = profile.srtp_auth_tag_len
    assert len(protected) == len(pkt) + tag + 4
    if profile.is_aead:  # RFC 7714 §8: MKI after the AEAD output
        assert protected[-4:] == mki
    else:  # RFC 3711 §3.1: MKI between payload and tag, not authenticated
        assert protected[-tag - 4 : -tag] == mki
    assert rx.unprotect_rtp(protected) == pkt
    rtcp = tx.protect_rtcp(_rtcp_rr())
    assert rx.unprotect_rtcp(rtcp) == _rtcp_rr()
    plain_rx = _pair(profile)[1]
    with pytest.raises(SrtpError):
        plain_rx.unprotect_rtp(tx.protect_rtp(_rtp(2)))
    other_mki = SrtpSession(
        profile,
        bytes(range(1, profile.master_key_len + 1)),
        bytes(range(101, 101 + profile.master_salt_len)),
        mki=b"\x00\x00\x00\x02",
    )
    with pytest.raises(SrtpError, match="MKI"):
        other_mki.unprotect_rtp(tx.protect_rtp(_rtp(3)))


def test_nonzero_kdr_rekeys_every_kdr_packets() -> None:
    tx, rx = _pair(kdr=16)
    plain = SrtpSession(SRTP_AES128_CM_HMAC_SHA1_80, bytes(range(1, 17)), bytes(range(101, 115)))
    out = {}
    for seq in range(0, 40):
        out[seq] = tx.protect_rtp(_rtp(seq))
        assert rx.unprotect_rtp(out[seq]) == _rtp(seq)
    # r = 0 for indexes 0..15: identical to a kdr=0 session; from index 16 on the keys differ
    assert plain.protect_rtp(_rtp(15)) == out[15]
    plain16 = SrtpSession(SRTP_AES128_CM_HMAC_SHA1_80, bytes(range(1, 17)), bytes(range(101, 115)))
    assert plain16.protect_rtp(_rtp(16)) != out[16]
    k16 = derive_srtp_keys(
        SRTP_AES128_CM_HMAC_SHA1_80, bytes(range(1, 17)), bytes(range(101, 115)), index=16, kdr=16
    )
    k16_rtcp = derive_srtcp_keys(SRTP_AES128_CM_HMAC_SHA1_80, bytes(range(1, 17)), bytes(range(101, 115)))
    assert (
        SrtpSession.from_session_keys(SRTP_AES128_CM_HMAC_SHA1_80, k16, k16_rtcp).protect_rtp(_rtp(16))
        == out[16]
    )
    # SRTCP switches key epoch on the SRTCP index
    for _ in range(20):
        assert rx.unprotect_rtcp(tx.protect_rtcp(_rtcp_rr())) == _rtcp_rr()


# -- sender-side rules ------------------------------------------------------------------------------


def test_protecting_the_same_index_twice_is_refused() -> None:
    tx, _ = _pair()
    tx.protect_rtp(_rtp(5))
    with pytest.raises(LocalProtocolError):
        tx.protect_rtp(_rtp(5, payload=b"other"))
    repeat_tx, rx = _pair(allow_repeat_tx=True)
    first = repeat_tx.protect_rtp(_rtp(5))
    assert repeat_tx.protect_rtp(_rtp(5)) == first  # retransmission of the same bytes
    assert rx.unprotect_rtp(first) == _rtp(5)
    repeat_tx.protect_rtp(_rtp(500))
    with pytest.raises(LocalProtocolError, match="older"):  # cannot tell whether 6 was used
        repeat_tx.protect_rtp(_rtp(6))


def test_srtcp_index_exhaustion_is_a_local_error() -> None:
    tx, _ = _pair()
    tx.protect_rtcp(_rtcp_rr())
    tx._tx_rtcp[0x11223344].next_srtcp_index = 0x7FFFFFFF
    tx.protect_rtcp(_rtcp_rr())
    with pytest.raises(LocalProtocolError):
        tx.protect_rtcp(_rtcp_rr())


# -- malformed input --------------------------------------------------------------------------------


MALFORMED_RTP = [
    b"",
    b"\x80\x00\x00\x01",
    bytes(12),  # version 0
    b"\x40" + bytes(30),  # version 1
    bytes([0x8F]) + bytes(20),  # 15 CSRCs announced, not present
    bytes([0x90]) + bytes(11) + b"\xbe\xde",  # extension header cut
    bytes([0x90]) + bytes(11) + b"\xbe\xde\x00\x10" + bytes(8),  # extension longer than packet
    _rtp(1, payload=b"")[:12] + b"\x01\x02",  # shorter than the tag
    bytes([0x80]) + bytes(70000),
]


@pytest.mark.parametrize(
    "profile", [SRTP_AES128_CM_HMAC_SHA1_80, SRTP_AEAD_AES_128_GCM], ids=lambda p: p.name
)
@pytest.mark.parametrize("packet", MALFORMED_RTP, ids=range(len(MALFORMED_RTP)))
def test_malformed_srtp_raises_srtp_error(profile: SrtpProfile, packet: bytes) -> None:
    _, rx = _pair(profile)
    with pytest.raises(SrtpError) as ei:
        rx.unprotect_rtp(packet)
    assert isinstance(ei.value, RemoteProtocolError)


MALFORMED_RTCP = [
    b"",
    bytes(8),
    b"\x80\xc9\x00\x01\x11\x22\x33\x44",
    bytes([0x40]) + bytes(40),
    bytes([0x80]) + bytes(70000),
]


@pytest.mark.parametrize(
    "profile", [SRTP_AES128_CM_HMAC_SHA1_80, SRTP_AEAD_AES_128_GCM], ids=lambda p: p.name
)
@pytest.mark.parametrize("packet", MALFORMED_RTCP, ids=range(len(MALFORMED_RTCP)))
def test_malformed_srtcp_raises_srtp_error(profile: SrtpProfile, packet: bytes) -> None:
    _, rx = _pair(profile)
    with pytest.raises(SrtpError):
        rx.unprotect_rtcp(packet)


def test_protect_rejects_malformed_rtp_and_rtcp() -> None:
    tx, _ = _pair()
    with pytest.raises(SrtpError):
        tx.protect_rtp(b"\x80\x00")
    with pytest.raises(SrtpError):
        tx.protect_rtcp(b"\x80\xc9\x00")


def test_header_extension_and_csrcs_are_authenticated_not_encrypted() -> None:
    tx, rx = _pair()
    ext = b"\xbe\xde\x00\x01\x10\xaa\x00\x00"
    csrc = (0xCAFEBABE).to_bytes(4, "big")

    def pkt(seq: int) -> bytes:
        return (
            bytes([0x91, 0x60])
            + seq.to_bytes(2, "big")
            + bytes(4)
            + (0x11223344).to_bytes(4, "big")
            + csrc
            + ext
            + b"voice"
        )

    protected = tx.protect_rtp(pkt(77))
    assert protected[:24] == pkt(77)[:24]
    assert protected[24:29] != b"voice"
    assert rx.unprotect_rtp(protected) == pkt(77)
    for pos in (13, 21):  # CSRC, extension element
        with pytest.raises(SrtpAuthError):
            rx.unprotect_rtp(_flip(tx.protect_rtp(pkt(78 + pos)), pos))
