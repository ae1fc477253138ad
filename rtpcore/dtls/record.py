"""DTLS 1.2 record layer: framing, AEAD protection, epochs and anti-replay (RFC 6347 §4.1).

::

    DTLSPlaintext/DTLSCiphertext header (13 octets)
    type(1) version(2) epoch(2) sequence_number(6) length(2) fragment

    AES-GCM record (RFC 5288 §3, RFC 5246 §6.2.3.3):
    fragment = nonce_explicit(8) || AEAD-Encrypt(key, nonce, plaintext, aad) (ciphertext || tag(16))
    nonce    = client/server_write_IV(4) || nonce_explicit;  nonce_explicit = epoch || sequence_number
    aad      = epoch || sequence_number || type || version || plaintext length

One datagram may hold several records (RFC 6347 §4.1.1). The 48-bit sequence number
restarts at 0 in every epoch; :class:`ReplayWindow` is the RFC 6347 §4.1.2.6 sliding bitmap
(64 records by default). An ``AESGCM`` object is built once per direction and epoch.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import LocalProtocolError
from .alerts import BadRecordMac, DecodeError, RecordOverflow
from .constants import (
    AEAD_EXPLICIT_NONCE_SIZE,
    AEAD_TAG_SIZE,
    MAX_CIPHERTEXT,
    MAX_SEQUENCE,
    RECORD_HEADER_SIZE,
)

_HEADER = struct.Struct("!BHHHIH")  # type, version, epoch, seq_hi(16), seq_lo(32), length
_AAD = struct.Struct("!HHIBHH")  # epoch, seq_hi, seq_lo, type, version, length


@dataclass(frozen=True, slots=True)
class Record:
    content_type: int
    version: int
    epoch: int
    sequence_number: int
    fragment: bytes

    def serialize(self) -> bytes:
        seq = self.sequence_number
        return (
            _HEADER.pack(self.content_type, self.version, self.epoch, seq >> 32, seq & 0xFFFFFFFF, len(self.fragment))
            + self.fragment
        )


def encode_record(content_type: int, version: int, epoch: int, sequence_number: int, fragment: bytes) -> bytes:
    seq = sequence_number
    return _HEADER.pack(content_type, version, epoch, seq >> 32, seq & 0xFFFFFFFF, len(fragment)) + fragment


def parse_records(datagram: bytes) -> list[Record]:
    """Split a datagram into records. Malformed framing raises :class:`DecodeError`
    (the caller drops the rest of the datagram, RFC 6347 §4.1.2.7)."""
    out: list[Record] = []
    pos, end = 0, len(datagram)
    while pos < end:
        if end - pos < RECORD_HEADER_SIZE:
            raise DecodeError(f"record header truncated ({end - pos} octets)")
        ctype, version, epoch, seq_hi, seq_lo, length = _HEADER.unpack_from(datagram, pos)
        if version >> 8 != 0xFE:
            raise DecodeError(f"not a DTLS record (version 0x{version:04x})")
        pos += RECORD_HEADER_SIZE
        if length > end - pos:
            raise DecodeError(f"record length {length} exceeds the {end - pos} octets left")
        if length > MAX_CIPHERTEXT:
            raise RecordOverflow(f"record of {length} octets")
        out.append(Record(ctype, version, epoch, (seq_hi << 32) | seq_lo, datagram[pos : pos + length]))
        pos += length
    return out


class AeadCipher:
    """AES-GCM record protection for one direction of one epoch (RFC 5288)."""

    __slots__ = ("_aead", "_fixed_iv")

    overhead = AEAD_EXPLICIT_NONCE_SIZE + AEAD_TAG_SIZE

    def __init__(self, key: bytes, fixed_iv: bytes) -> None:
        if len(key) not in (16, 32) or len(fixed_iv) != 4:
            raise ValueError("AES-GCM needs a 16/32-octet key and a 4-octet implicit IV")
        self._aead = AESGCM(key)
        self._fixed_iv = fixed_iv

    def seal(self, content_type: int, version: int, epoch: int, seq: int, plaintext: bytes) -> bytes:
        seq_hi, seq_lo = seq >> 32, seq & 0xFFFFFFFF
        explicit = _AAD.pack(epoch, seq_hi, seq_lo, 0, 0, 0)[:8]
        aad = _AAD.pack(epoch, seq_hi, seq_lo, content_type, version, len(plaintext))
        return explicit + self._aead.encrypt(self._fixed_iv + explicit, plaintext, aad)

    def open(self, record: Record) -> bytes:
        frag = record.fragment
        if len(frag) < self.overhead:
            raise BadRecordMac(f"protected record of {len(frag)} octets is shorter than nonce + tag")
        seq = record.sequence_number
        aad = _AAD.pack(
            record.epoch, seq >> 32, seq & 0xFFFFFFFF, record.content_type, record.version, len(frag) - self.overhead
        )
        try:
            return self._aead.decrypt(self._fixed_iv + frag[:AEAD_EXPLICIT_NONCE_SIZE], frag[AEAD_EXPLICIT_NONCE_SIZE:], aad)
        except InvalidTag:
            raise BadRecordMac(f"record epoch {record.epoch} seq {seq} failed authentication") from None


class ReplayWindow:
    """RFC 6347 §4.1.2.6 sliding window: ``check`` before decrypting, ``mark`` after."""

    __slots__ = ("size", "_top", "_bits")

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._top = -1
        self._bits = 0  # bit i set <=> sequence number (_top - i) was seen

    def check(self, seq: int) -> bool:
        """True when ``seq`` is new and inside (or ahead of) the window."""
        if seq > self._top:
            return True
        diff = self._top - seq
        if diff >= self.size:
            return False
        return not (self._bits >> diff) & 1

    def mark(self, seq: int) -> None:
        if seq > self._top:
            shift = seq - self._top
            self._bits = ((self._bits << shift) | 1) & ((1 << self.size) - 1) if shift < self.size else 1
            self._top = seq
        else:
            self._bits |= 1 << (self._top - seq)


class EpochWriter:
    """Write side of one epoch: record sequence numbering and optional protection."""

    __slots__ = ("epoch", "cipher", "next_seq")

    def __init__(self, epoch: int, cipher: AeadCipher | None) -> None:
        self.epoch = epoch
        self.cipher = cipher
        self.next_seq = 0

    @property
    def overhead(self) -> int:
        return RECORD_HEADER_SIZE + (self.cipher.overhead if self.cipher is not None else 0)

    def encode(self, content_type: int, version: int, payload: bytes) -> bytes:
        seq = self.next_seq
        if seq > MAX_SEQUENCE:
            raise LocalProtocolError("record sequence number space exhausted; the epoch must change")
        self.next_seq = seq + 1
        if self.cipher is not None:
            payload = self.cipher.seal(content_type, version, self.epoch, seq, payload)
        return encode_record(content_type, version, self.epoch, seq, payload)


class EpochReader:
    """Read side of one epoch: decryption plus the replay window."""

    __slots__ = ("epoch", "cipher", "window")

    def __init__(self, epoch: int, cipher: AeadCipher | None, window_size: int = 64) -> None:
        self.epoch = epoch
        self.cipher = cipher
        self.window = ReplayWindow(window_size)

    def open(self, record: Record) -> bytes | None:
        """Plaintext, or None for a replayed record. Raises :class:`BadRecordMac`."""
        if self.cipher is None:
            return record.fragment
        if not self.window.check(record.sequence_number):
            return None
        plaintext = self.cipher.open(record)
        self.window.mark(record.sequence_number)
        return plaintext
