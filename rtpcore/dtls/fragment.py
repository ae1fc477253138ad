"""DTLS handshake header, fragmentation and reassembly (RFC 6347 §4.2.2, §4.2.3, §4.2.6).

Each handshake message travels as one or more fragments with a 12-octet header::

    msg_type(1) length(3) message_seq(2) fragment_offset(3) fragment_length(3) fragment

The :class:`Reassembler` buffers fragments by ``message_seq`` (bounded: at most
``max_ahead`` messages beyond the next expected one, each at most ``max_message`` octets),
tolerates duplicates, overlaps and any arrival order, and hands out complete messages
strictly in ``message_seq`` order. For the transcript hash a message counts as if it had
been sent in one fragment (RFC 6347 §4.2.6): :meth:`ReassembledMessage.transcript_bytes`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .alerts import DecodeError, IllegalParameter
from .constants import HANDSHAKE_HEADER_SIZE


def handshake_header(msg_type: int, length: int, message_seq: int, offset: int, fragment_length: int) -> bytes:
    return (
        bytes((msg_type,))
        + length.to_bytes(3, "big")
        + message_seq.to_bytes(2, "big")
        + offset.to_bytes(3, "big")
        + fragment_length.to_bytes(3, "big")
    )


@dataclass(frozen=True, slots=True)
class HandshakeFragment:
    msg_type: int
    length: int
    message_seq: int
    fragment_offset: int
    fragment: bytes

    def serialize(self) -> bytes:
        return (
            handshake_header(self.msg_type, self.length, self.message_seq, self.fragment_offset, len(self.fragment))
            + self.fragment
        )


def parse_fragments(payload: bytes) -> list[HandshakeFragment]:
    """All fragments in one handshake record (a record may carry several, RFC 6347 §4.2.3)."""
    out: list[HandshakeFragment] = []
    pos, end = 0, len(payload)
    while pos < end:
        if end - pos < HANDSHAKE_HEADER_SIZE:
            raise DecodeError(f"handshake header truncated ({end - pos} octets)")
        msg_type = payload[pos]
        length = int.from_bytes(payload[pos + 1 : pos + 4], "big")
        seq = int.from_bytes(payload[pos + 4 : pos + 6], "big")
        offset = int.from_bytes(payload[pos + 6 : pos + 9], "big")
        frag_len = int.from_bytes(payload[pos + 9 : pos + 12], "big")
        pos += HANDSHAKE_HEADER_SIZE
        if frag_len > end - pos:
            raise DecodeError(f"fragment of {frag_len} octets, record has {end - pos}")
        if offset + frag_len > length:
            raise DecodeError(f"fragment {offset}+{frag_len} beyond message length {length}")
        out.append(HandshakeFragment(msg_type, length, seq, offset, payload[pos : pos + frag_len]))
        pos += frag_len
    return out


def fragment_message(msg_type: int, message_seq: int, body: bytes, max_fragment: int) -> list[HandshakeFragment]:
    """Split a message body into fragments of at most ``max_fragment`` octets (at least one)."""
    if max_fragment < 1:
        raise ValueError("max_fragment must be positive")
    length = len(body)
    out = [
        HandshakeFragment(msg_type, length, message_seq, pos, body[pos : pos + max_fragment])
        for pos in range(0, length, max_fragment)
    ]
    return out or [HandshakeFragment(msg_type, length, message_seq, 0, b"")]


@dataclass(frozen=True, slots=True)
class ReassembledMessage:
    msg_type: int
    message_seq: int
    body: bytes
    epoch: int

    def transcript_bytes(self) -> bytes:
        """RFC 6347 §4.2.6: header with offset 0 and fragment_length = length, then the body."""
        n = len(self.body)
        return handshake_header(self.msg_type, n, self.message_seq, 0, n) + self.body


class _Partial:
    __slots__ = ("msg_type", "length", "epoch", "data", "ranges")

    def __init__(self, msg_type: int, length: int, epoch: int) -> None:
        self.msg_type = msg_type
        self.length = length
        self.epoch = epoch
        self.data = bytearray(length)
        self.ranges: list[tuple[int, int]] = []

    def add(self, offset: int, fragment: bytes) -> None:
        end = offset + len(fragment)
        self.data[offset:end] = fragment
        merged: list[tuple[int, int]] = []
        new = (offset, end)
        for r in sorted([*self.ranges, new]):
            if merged and r[0] <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], r[1]))
            else:
                merged.append(r)
        self.ranges = merged

    @property
    def complete(self) -> bool:
        return self.length == 0 or self.ranges == [(0, self.length)]


class Reassembler:
    """Bounded in-order reassembly of handshake messages keyed by ``message_seq``."""

    def __init__(self, *, max_message: int = 32768, max_ahead: int = 16, next_seq: int = 0) -> None:
        self.max_message = max_message
        self.max_ahead = max_ahead
        self.next_seq = next_seq
        self._partial: dict[int, _Partial] = {}

    def reset(self, next_seq: int) -> None:
        self.next_seq = next_seq
        self._partial.clear()

    def add(self, frag: HandshakeFragment, epoch: int) -> bool:
        """Buffer a fragment. Returns False when it belongs to an already delivered message
        (a retransmission by the peer), True otherwise (kept, or dropped as too far ahead)."""
        seq = frag.message_seq
        if seq < self.next_seq:
            return False
        if seq >= self.next_seq + self.max_ahead:
            return True
        if frag.length > self.max_message:
            raise IllegalParameter(f"handshake message of {frag.length} octets exceeds {self.max_message}")
        partial = self._partial.get(seq)
        if partial is None:
            partial = self._partial[seq] = _Partial(frag.msg_type, frag.length, epoch)
        elif partial.msg_type != frag.msg_type or partial.length != frag.length:
            raise IllegalParameter(
                f"fragments of message_seq {seq} disagree: type {partial.msg_type}/{frag.msg_type}, "
                f"length {partial.length}/{frag.length}"
            )
        if frag.fragment:
            partial.add(frag.fragment_offset, frag.fragment)
        return True

    def pop(self) -> ReassembledMessage | None:
        """The next complete message in order, if any."""
        partial = self._partial.get(self.next_seq)
        if partial is None or not partial.complete:
            return None
        del self._partial[self.next_seq]
        msg = ReassembledMessage(partial.msg_type, self.next_seq, bytes(partial.data), partial.epoch)
        self.next_seq += 1
        return msg

    @property
    def buffered(self) -> int:
        return len(self._partial)
