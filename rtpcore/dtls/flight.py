"""Flights and their packing into datagrams (RFC 6347 §4.2.3, §4.2.4, §4.1.1).

A flight is the group of messages one side sends before waiting for the other (RFC 6347
§4.2.4). Its handshake bodies are encoded once; every (re)transmission turns them into
records with fresh sequence numbers, fragmenting each message so no datagram exceeds the
MTU and packing as many records per datagram as fit (several records may share one
datagram, RFC 6347 §4.1.1). A fragment smaller than ``MIN_FRAGMENT`` is not started at the
end of a nearly full datagram; the message moves to the next one instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .constants import HANDSHAKE_HEADER_SIZE, ContentType
from .fragment import handshake_header
from .record import EpochWriter

MIN_FRAGMENT = 32


@dataclass(frozen=True, slots=True)
class FlightItem:
    """One message of a flight: a handshake message (body encoded once) or a ChangeCipherSpec."""

    content_type: ContentType
    epoch: int
    msg_type: int = 0
    message_seq: int = 0
    body: bytes = b""
    name: str = ""


@dataclass(slots=True)
class Flight:
    number: int
    """RFC 6347 §4.2.4 flight number (1..6) in a full handshake."""
    items: list[FlightItem]
    timer: bool
    """Whether the flight waits for an answer (and so is retransmitted on a timer)."""

    @property
    def name(self) -> str:
        return ", ".join(i.name for i in self.items)


def pack_flight(flight: Flight, writers: Mapping[int, EpochWriter], version: int, mtu: int) -> list[bytes]:
    """Records for ``flight``, fragmented and packed into datagrams of at most ``mtu`` octets."""
    datagrams: list[bytes] = []
    cur = bytearray()
    for item in flight.items:
        writer = writers[item.epoch]
        if item.content_type == ContentType.CHANGE_CIPHER_SPEC:
            if len(cur) + writer.overhead + 1 > mtu:
                datagrams.append(bytes(cur))
                cur.clear()
            cur += writer.encode(ContentType.CHANGE_CIPHER_SPEC, version, b"\x01")
            continue
        body, total, offset = item.body, len(item.body), 0
        while True:
            room = mtu - len(cur) - writer.overhead - HANDSHAKE_HEADER_SIZE
            if cur and (room <= 0 or (room < total - offset and room < MIN_FRAGMENT)):
                datagrams.append(bytes(cur))
                cur.clear()
                continue
            take = min(total - offset, room)
            frag = handshake_header(item.msg_type, total, item.message_seq, offset, take) + body[offset : offset + take]
            cur += writer.encode(ContentType.HANDSHAKE, version, frag)
            offset += take
            if offset >= total:
                break
    if cur:
        datagrams.append(bytes(cur))
    return datagrams
