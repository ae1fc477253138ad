"""DTMF over RTP as RFC 4733 telephone-events: payload codec, sender and receiver (sans-IO).

Payload (RFC 4733 §2.3, Figure 1)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    |     event     |E|R| volume    |          duration             |

Events 0-9, ``*`` = 10, ``#`` = 11, A-D = 12-15, flash = 16 (§3.2 Table 3).

:class:`DtmfSender` turns digits into one :class:`DtmfPacket` per ``ptime`` (§2.5.1): the
first has the marker bit, every packet of one event shares one RTP timestamp (the event
start, §2.3.1) and carries the duration so far; the final packet has E=1 and is sent three
times (§2.5.1.4). The media session owns SSRC, sequence numbers and the RTP clock, so a
packet says *when* its event began (``event_start``, on the caller's clock) and the session
maps that instant to its RTP timestamp.

Sender, per digit::

    [idle] --send()--> [queued] --due--> [updates: M=1, then every ptime, duration grows]
       ^                                     |
       |                                     v
       +--- gap elapsed <-- [end x3: E=1, same duration, every ptime]

:class:`DtmfReceiver` reports each event once as :class:`DtmfEvent`: on its first E=1
packet, when a newer event starts before the end arrived, or after ``timeout`` without
updates. Repeated end packets, retransmits and late packets of reported events are
dropped; a lost start packet does not matter (no marker is needed).

Receiver::

    [idle] --packet--> [in event (ts, code)] --E=1 / newer event / timeout--> report -> [idle]
"""

from __future__ import annotations

import logging
import math
import struct
from collections import deque
from dataclasses import dataclass

from .errors import LocalProtocolError, RtpParseError

__all__ = [
    "DTMF_EVENTS",
    "DtmfEvent",
    "DtmfPacket",
    "DtmfReceiver",
    "DtmfSender",
    "TelephoneEvent",
    "digit_to_event",
    "encode_event",
    "event_to_digit",
    "parse_event",
]

_log = logging.getLogger(__name__)
_PAYLOAD = struct.Struct("!BBH")

#: RFC 4733 §3.2 Table 3: DTMF named events.
DTMF_EVENTS: dict[str, int] = {
    **{str(d): d for d in range(10)},
    "*": 10,
    "#": 11,
    "A": 12,
    "B": 13,
    "C": 14,
    "D": 15,
    "flash": 16,
}
_EVENT_NAMES = {code: name for name, code in DTMF_EVENTS.items()}
_PAUSE = "w"
_PAUSE_SECONDS = 0.5
_END_REPEATS = 3  # §2.5.1.4: the final packet is sent a total of three times


def digit_to_event(digit: str) -> int:
    """Event code for ``0-9 * # A-D`` (case-insensitive) or ``"flash"``."""
    code = DTMF_EVENTS.get(digit.upper() if len(digit) == 1 else digit)
    if code is None:
        raise LocalProtocolError(f"not a DTMF digit: {digit!r}")
    return code


def event_to_digit(event: int) -> str | None:
    """The digit (or ``"flash"``) for an event code; ``None`` for non-DTMF events."""
    return _EVENT_NAMES.get(event)


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One decoded telephone-event payload. ``duration`` is in RTP timestamp units."""

    event: int
    end: bool = False
    volume: int = 10
    duration: int = 0


def encode_event(event: TelephoneEvent) -> bytes:
    """The 4-octet payload (R bit zero, §2.3.3)."""
    if not 0 <= event.event <= 0xFF or not 0 <= event.volume <= 63 or not 0 <= event.duration <= 0xFFFF:
        raise LocalProtocolError(f"telephone-event field out of range: {event}")
    return _PAYLOAD.pack(event.event, (0x80 if event.end else 0) | event.volume, event.duration)


def parse_event(payload: bytes | bytearray | memoryview) -> TelephoneEvent:
    """Decode the first 4 octets; the R bit is ignored (§2.3.3)."""
    if len(payload) < 4:
        raise RtpParseError(f"telephone-event payload of {len(payload)} octets, need 4")
    code, flags, duration = _PAYLOAD.unpack_from(payload, 0)
    return TelephoneEvent(code, bool(flags & 0x80), flags & 0x3F, duration)


# -- sender ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DtmfPacket:
    """One telephone-event RTP payload to send now.

    Use the RTP timestamp of the media clock at ``event_start`` for every packet with that
    ``event_start``; set the RTP marker bit from ``marker``; take SSRC and the next sequence
    number from the media stream.
    """

    payload: bytes
    marker: bool
    event_start: float
    digit: str
    end: bool


@dataclass(slots=True)
class _Scheduled:
    due: float
    packet: DtmfPacket


class DtmfSender:
    """Schedules RFC 4733 packets for queued digits; drive it with :meth:`poll`."""

    def __init__(self, *, clock_rate: int = 8000, ptime_ms: int = 20, volume: int = 10) -> None:
        if clock_rate <= 0 or ptime_ms <= 0 or not 0 <= volume <= 63:
            raise LocalProtocolError("clock_rate and ptime_ms must be positive, volume 0..63")
        self.clock_rate = clock_rate
        self.ptime = ptime_ms / 1000.0
        self.volume = volume
        self._ptime_units = ptime_ms * clock_rate // 1000
        if self._ptime_units < 1:
            raise LocalProtocolError("ptime_ms is shorter than one RTP clock tick")
        self._queue: deque[tuple[str, float, float]] = deque()  # (digit or pause, seconds, gap)
        self._scheduled: deque[_Scheduled] = deque()
        self._next_start: float | None = None
        self._earliest = -math.inf  # end of the last digit's gap: nothing starts before it

    @property
    def busy(self) -> bool:
        """Digits are queued or still being sent."""
        return bool(self._queue or self._scheduled)

    def send(
        self, digits: str, duration_ms: int = 100, gap_ms: int = 50, *, now: float | None = None
    ) -> None:
        """Queue ``digits`` (``0-9 * # A-D``; ``w`` pauses 500 ms) after anything already queued.

        Without ``now`` the first digit starts at the next :meth:`poll` when idle.
        """
        units = duration_ms * self.clock_rate // 1000
        if duration_ms <= 0 or units > 0xFFFF:
            raise LocalProtocolError(f"duration {duration_ms} ms does not fit one RFC 4733 event")
        if gap_ms < 0:
            raise LocalProtocolError("gap_ms must not be negative")
        items: list[tuple[str, float, float]] = []
        for ch in digits:
            if ch.lower() == _PAUSE:
                items.append((_PAUSE, _PAUSE_SECONDS, 0.0))
            else:
                digit_to_event(ch)  # validate the whole string before queueing any of it
                items.append((ch.upper(), duration_ms / 1000.0, gap_ms / 1000.0))
        if not self.busy or self._next_start is None:
            self._next_start = None if now is None else max(now, self._earliest)
        self._queue.extend(items)

    def next_deadline(self) -> float | None:
        """When :meth:`poll` has something to send; ``-inf`` means already due."""
        if self._scheduled:
            return self._scheduled[0].due
        if self._queue:
            return -math.inf if self._next_start is None else self._next_start
        return None

    def poll(self, now: float) -> list[DtmfPacket]:
        """The packets due at ``now`` (late calls catch up in order)."""
        out: list[DtmfPacket] = []
        while True:
            while self._scheduled and self._scheduled[0].due <= now:
                out.append(self._scheduled.popleft().packet)
            if self._scheduled or not self._queue:
                return out
            start = max(now, self._earliest) if self._next_start is None else self._next_start
            if start > now:
                return out
            self._start_next(start)

    def _start_next(self, start: float) -> None:
        digit, seconds, gap = self._queue.popleft()
        if digit == _PAUSE:
            self._next_start = self._earliest = start + seconds
            return
        total = round(seconds * self.clock_rate)
        step = self._ptime_units
        updates = max(1, -(-total // step))
        code = DTMF_EVENTS[digit]
        due = start
        for k in range(updates + _END_REPEATS - 1):
            end = k >= updates - 1
            duration = total if end else (k + 1) * step
            payload = encode_event(TelephoneEvent(code, end, self.volume, duration))
            due = start + k * self.ptime
            packet = DtmfPacket(payload=payload, marker=k == 0, event_start=start, digit=digit, end=end)
            self._scheduled.append(_Scheduled(due, packet))
        self._next_start = self._earliest = max(start + seconds + gap, due + self.ptime)
        _log.debug("DTMF %s: %d updates, %d end packets from t=%.3f", digit, updates, _END_REPEATS, start)


# -- receiver ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DtmfEvent:
    """A DTMF event the peer sent, reported once.

    ``ended`` is False when the end packet never came (timeout or a newer event started).
    """

    digit: str
    duration_ms: int
    event: int
    timestamp: int
    ended: bool


@dataclass(slots=True)
class _Current:
    timestamp: int
    code: int
    duration: int
    last_seen: float


class DtmfReceiver:
    """Collapses the packets of each telephone-event into one :class:`DtmfEvent`."""

    def __init__(self, *, clock_rate: int = 8000, timeout: float = 0.5) -> None:
        if clock_rate <= 0 or timeout <= 0:
            raise LocalProtocolError("clock_rate and timeout must be positive")
        self.clock_rate = clock_rate
        self.timeout = timeout
        self.ignored = 0  # non-DTMF event codes and stale/duplicate packets
        self._current: _Current | None = None
        self._done: deque[tuple[int, int]] = deque(maxlen=16)
        self._last_timestamp: int | None = None
        self._events: list[DtmfEvent] = []

    def receive(self, payload: bytes | bytearray | memoryview, timestamp: int, now: float) -> None:
        """Feed the payload and RTP timestamp of one telephone-event packet."""
        ev = parse_event(payload)
        digit = event_to_digit(ev.event)
        key = (timestamp, ev.event)
        if digit is None or key in self._done or self._is_stale(timestamp):
            self.ignored += 1
            return
        cur = self._current
        if cur is not None and (cur.timestamp, cur.code) != key:
            self._finish(ended=False)  # a newer event implies the old one ended (end packets lost)
            cur = None
        if cur is None:
            cur = self._current = _Current(timestamp, ev.event, ev.duration, now)
        cur.duration = max(cur.duration, ev.duration)
        cur.last_seen = now
        self._last_timestamp = timestamp
        if ev.end:
            self._finish(ended=True)

    def next_deadline(self) -> float | None:
        return None if self._current is None else self._current.last_seen + self.timeout

    def handle_timeout(self, now: float) -> None:
        cur = self._current
        if cur is not None and now >= cur.last_seen + self.timeout:
            self._finish(ended=False)

    def events(self) -> list[DtmfEvent]:
        out, self._events = self._events, []
        return out

    def _is_stale(self, timestamp: int) -> bool:
        """Older than the newest event seen (RTP timestamps compared modulo 2^32)."""
        if self._last_timestamp is None:
            return False
        return ((timestamp - self._last_timestamp) & 0xFFFFFFFF) >= 0x80000000

    def _finish(self, *, ended: bool) -> None:
        cur = self._current
        if cur is None:
            return
        self._current = None
        self._done.append((cur.timestamp, cur.code))
        digit = _EVENT_NAMES[cur.code]
        self._events.append(
            DtmfEvent(
                digit=digit,
                duration_ms=round(cur.duration * 1000 / self.clock_rate),
                event=cur.code,
                timestamp=cur.timestamp,
                ended=ended,
            )
        )
        _log.debug("DTMF %s received (%s)", digit, "end" if ended else "no end packet")
