"""DTLS record layer: framing, AES-GCM protection (RFC 5288), anti-replay (RFC 6347 §4.1.2.6)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given
from hypothesis import strategies as st

from rtpcore.dtls.alerts import BadRecordMac, DecodeError, RecordOverflow
from rtpcore.dtls.record import AeadCipher, EpochReader, EpochWriter, Record, ReplayWindow, parse_records


def test_gcm_record_layout_matches_rfc5288() -> None:
    key, iv = bytes(range(16)), b"\xa0\xa1\xa2\xa3"
    w = EpochWriter(1, AeadCipher(key, iv))
    w.next_seq = 0x010203040506
    wire = w.encode(23, 0xFEFD, b"hello")
    (rec,) = parse_records(wire)
    assert (rec.content_type, rec.version, rec.epoch, rec.sequence_number) == (23, 0xFEFD, 1, 0x010203040506)
    explicit = b"\x00\x01" + (0x010203040506).to_bytes(6, "big")
    assert rec.fragment[:8] == explicit
    aad = explicit + b"\x17\xfe\xfd\x00\x05"
    assert AESGCM(key).decrypt(iv + explicit, rec.fragment[8:], aad) == b"hello"
    assert len(rec.fragment) == 8 + 5 + 16
    r = EpochReader(1, AeadCipher(key, iv))
    assert r.open(rec) == b"hello"
    assert r.open(rec) is None  # replay


def test_tampering_is_bad_record_mac() -> None:
    c = AeadCipher(b"k" * 32, b"iviv")
    wire = EpochWriter(1, c).encode(22, 0xFEFD, b"finished")
    (rec,) = parse_records(wire)
    for i in range(len(rec.fragment)):
        bad = bytearray(rec.fragment)
        bad[i] ^= 0x40
        with pytest.raises(BadRecordMac):
            c.open(Record(rec.content_type, rec.version, rec.epoch, rec.sequence_number, bytes(bad)))
    with pytest.raises(BadRecordMac):  # header fields are authenticated
        c.open(Record(23, rec.version, rec.epoch, rec.sequence_number, rec.fragment))
    with pytest.raises(BadRecordMac):
        c.open(Record(22, rec.version, rec.epoch, rec.sequence_number, b"short"))


def test_several_records_per_datagram_and_framing_errors() -> None:
    w = EpochWriter(0, None)
    dg = w.encode(22, 0xFEFF, b"a") + w.encode(20, 0xFEFD, b"\x01")
    recs = parse_records(dg)
    assert [(r.content_type, r.sequence_number, r.fragment) for r in recs] == [(22, 0, b"a"), (20, 1, b"\x01")]
    with pytest.raises(DecodeError):
        parse_records(dg[:-1])
    with pytest.raises(DecodeError):
        parse_records(dg + b"\x16\xfe")
    with pytest.raises(DecodeError):
        parse_records(b"\x16\x03\x03" + b"\x00" * 10)  # TLS, not DTLS
    big = b"\x17\xfe\xfd" + b"\x00" * 8 + (20000).to_bytes(2, "big") + b"\x00" * 20000
    with pytest.raises(RecordOverflow):
        parse_records(big)


def test_replay_window() -> None:
    w = ReplayWindow(64)
    for seq in (5, 3, 10, 4):
        assert w.check(seq)
        w.mark(seq)
    assert not w.check(5) and not w.check(10) and w.check(6) and w.check(11)
    w.mark(100)
    assert not w.check(36) and w.check(37) and not w.check(100)
    w.mark(1000)  # a jump larger than the window clears it
    assert w.check(999) and not w.check(936) and w.check(937)


@given(st.lists(st.integers(0, 300), max_size=200))
def test_replay_window_matches_model(seqs: list[int]) -> None:
    w, seen, top = ReplayWindow(32), set(), -1
    for s in seqs:
        fresh = s not in seen and (s > top or top - s < 32)
        assert w.check(s) == fresh
        if fresh:
            w.mark(s)
            seen.add(s)
            top = max(top, s)
