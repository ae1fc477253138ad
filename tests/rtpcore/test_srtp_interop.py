"""Live interop with libsrtp (through pylibsrtp) in both directions, plus property tests.

pylibsrtp is the benchmark reference (``pyproject`` extra ``bench``); the interop half is
skipped when it is not installed.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtpcore.errors import SrtpError
from rtpcore.srtp import (
    PROFILES,
    SRTP_AEAD_AES_128_GCM,
    SRTP_AEAD_AES_256_GCM,
    SRTP_AES128_CM_HMAC_SHA1_32,
    SRTP_AES128_CM_HMAC_SHA1_80,
    SrtpProfile,
    SrtpSession,
)

LIBSRTP_PROFILES = [
    SRTP_AES128_CM_HMAC_SHA1_80,
    SRTP_AES128_CM_HMAC_SHA1_32,
    SRTP_AEAD_AES_128_GCM,
    SRTP_AEAD_AES_256_GCM,
]


def _key(profile: SrtpProfile) -> tuple[bytes, bytes]:
    return bytes(range(7, 7 + profile.master_key_len)), bytes(range(200, 200 + profile.master_salt_len))


def _libsrtp(profile: SrtpProfile, outbound: bool):  # type: ignore[no-untyped-def]
    pylibsrtp = pytest.importorskip("pylibsrtp")
    key, salt = _key(profile)
    policy = pylibsrtp.Policy(
        key=key + salt,
        ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND if outbound else pylibsrtp.Policy.SSRC_ANY_INBOUND,
        srtp_profile=int(profile.dtls_id or 0),
    )
    return pylibsrtp.Session(policy=policy)


def _rtp(seq: int, ssrc: int, payload: bytes) -> bytes:
    return (
        b"\x80\x60"
        + seq.to_bytes(2, "big")
        + (seq * 160).to_bytes(4, "big")
        + ssrc.to_bytes(4, "big")
        + payload
    )


SEQS = [*range(65500, 65536), *range(0, 40)]  # across the ROC wrap


@pytest.mark.parametrize("profile", LIBSRTP_PROFILES, ids=lambda p: p.name)
def test_ours_to_libsrtp(profile: SrtpProfile) -> None:
    theirs = _libsrtp(profile, outbound=False)
    ours = SrtpSession(profile, *_key(profile))
    for seq in SEQS:
        pkt = _rtp(seq, 0xABCDEF01, bytes([seq & 0xFF]) * (seq % 200 + 1))
        assert theirs.unprotect(ours.protect_rtp(pkt)) == pkt
    rtcp = b"\x81\xc9\x00\x07\xab\xcd\xef\x01" + bytes(range(24))
    for _ in range(5):
        assert theirs.unprotect_rtcp(ours.protect_rtcp(rtcp)) == rtcp


@pytest.mark.parametrize("profile", LIBSRTP_PROFILES, ids=lambda p: p.name)
def test_libsrtp_to_ours(profile: SrtpProfile) -> None:
    theirs = _libsrtp(profile, outbound=True)
    ours = SrtpSession(profile, *_key(profile), replay_window=128)
    for seq in SEQS:
        pkt = _rtp(seq, 0x01020304, bytes([seq & 0xFF]) * (seq % 173))
        assert ours.unprotect_rtp(theirs.protect(pkt)) == pkt
    assert ours.rtp_roc(0x01020304) == 1
    rtcp = b"\x80\xc8\x00\x06\x01\x02\x03\x04" + bytes(range(20))
    for _ in range(5):
        assert ours.unprotect_rtcp(theirs.protect_rtcp(rtcp)) == rtcp


# -- properties ----------------------------------------------------------------------------------

rtp_packets = st.builds(
    lambda cc, ext, marker_pt, seq, ts, ssrc, csrcs, ext_words, payload: (
        bytes([0x80 | (0x10 if ext else 0) | cc, marker_pt])
        + seq.to_bytes(2, "big")
        + ts.to_bytes(4, "big")
        + ssrc.to_bytes(4, "big")
        + csrcs[: 4 * cc].ljust(4 * cc, b"\x00")
        + (
            (b"\xbe\xde" + (len(ext_words) // 4).to_bytes(2, "big") + ext_words[: len(ext_words) // 4 * 4])
            if ext
            else b""
        )
        + payload
    ),
    st.integers(0, 15),
    st.booleans(),
    st.integers(0, 255),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.binary(min_size=60, max_size=60),
    st.binary(max_size=40),
    st.binary(max_size=1500),
)


@settings(max_examples=150, deadline=None)
@given(profile=st.sampled_from(PROFILES), packet=rtp_packets)
def test_unprotect_inverts_protect(profile: SrtpProfile, packet: bytes) -> None:
    tx, rx = SrtpSession(profile, *_key(profile)), SrtpSession(profile, *_key(profile))
    protected = tx.protect_rtp(packet)
    assert len(protected) == len(packet) + profile.srtp_auth_tag_len
    assert rx.unprotect_rtp(protected) == packet


@settings(max_examples=150, deadline=None)
@given(profile=st.sampled_from(PROFILES), packet=rtp_packets, data=st.data())
def test_any_change_to_a_protected_packet_is_rejected(
    profile: SrtpProfile, packet: bytes, data: st.DataObject
) -> None:
    tx, rx = SrtpSession(profile, *_key(profile)), SrtpSession(profile, *_key(profile))
    protected = bytearray(tx.protect_rtp(packet))
    pos = data.draw(st.integers(0, len(protected) - 1))
    bit = data.draw(st.integers(0, 7))
    protected[pos] ^= 1 << bit
    with pytest.raises(SrtpError):
        rx.unprotect_rtp(bytes(protected))


@settings(max_examples=150, deadline=None)
@given(profile=st.sampled_from(PROFILES), body=st.binary(max_size=600), ssrc=st.integers(0, 0xFFFFFFFF))
def test_srtcp_round_trip(profile: SrtpProfile, body: bytes, ssrc: int) -> None:
    rtcp = b"\x80\xc9" + ((len(body) + 3) // 4 + 1).to_bytes(2, "big") + ssrc.to_bytes(4, "big") + body
    tx, rx = SrtpSession(profile, *_key(profile)), SrtpSession(profile, *_key(profile))
    assert rx.unprotect_rtcp(tx.protect_rtcp(rtcp)) == rtcp


@settings(max_examples=300, deadline=None)
@given(
    profile=st.sampled_from([SRTP_AES128_CM_HMAC_SHA1_80, SRTP_AEAD_AES_128_GCM]),
    junk=st.binary(max_size=200),
)
def test_random_bytes_only_raise_srtp_errors(profile: SrtpProfile, junk: bytes) -> None:
    rx = SrtpSession(profile, *_key(profile))
    for fn in (rx.unprotect_rtp, rx.unprotect_rtcp):
        with pytest.raises(SrtpError):
            fn(junk)
