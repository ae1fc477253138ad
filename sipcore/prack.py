"""Reliable provisional responses, sans-IO (RFC 3262).

A 1xx (other than 100) becomes reliable when it carries ``Require: 100rel`` and an ``RSeq``;
the UAC acknowledges it with a PRACK whose ``RAck`` names (RSeq, CSeq number, CSeq method).

UAS side, :class:`ReliableProvisionalSender` (one per INVITE server transaction)::

                 send(1xx): RSeq n, Require: 100rel
       IDLE ──────────────────────────────────▶ WAITING (retransmit T1, 2T1, 4T1, ... §3)
        ▲                                            │  │
        │  PRACK with RAck n (200 to it)             │  │ 64*T1 without PRACK:
        └────────────────────────────────────────────┘  │ GIVE_UP (reject the INVITE with 5xx)
           (a queued 1xx goes out now, as n+1)          ▼

* Only one reliable provisional is unacknowledged at a time (§3); later ones wait in a
  bounded queue and leave, numbered in order, as each PRACK arrives.
* RSeq starts at a random value in 1..2**31-1 (§3) and grows by one.
* A 2xx to the INVITE must wait while an unacknowledged reliable 1xx carried a session
  description (§3); :meth:`final_may_be_sent` says so.
* A PRACK matching nothing pending is answered 481 (§3).

UAC side, :class:`PrackTracker` (one per INVITE client transaction): for each To tag (fork) the
first reliable 1xx is accepted whatever its RSeq, then only RSeq+1; retransmissions and
out-of-order responses are discarded (§4). :meth:`PrackTracker.receive` returns the RAck of the
PRACK to send, or None.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .errors import LocalProtocolError, SipParseError
from .header_extra import RAck, parse_rack
from .header_types import parse_bounded_int
from .invite import ResponseRetransmitter, RetransmitAction
from .message import SipRequest, SipResponse
from .timers import SipTimers

__all__ = [
    "MAX_QUEUED",
    "PrackTracker",
    "ReliableProvisionalSender",
    "is_reliable",
    "rseq_of",
]

MAX_QUEUED = 8
"""Reliable provisionals waiting for the previous PRACK; more are refused (LocalProtocolError)."""
_RSEQ_INITIAL_MAX = 2**31 - 1
_RSEQ_MAX = 2**32 - 1


def rseq_of(response: SipResponse) -> int | None:
    """The RSeq of a response (None when absent); a malformed one raises SipParseError."""
    value = response.headers.get("rseq")
    if value is None:
        return None
    rseq = parse_bounded_int(value, "rseq")
    if rseq == 0:
        raise SipParseError("RSeq 0 is not allowed (RFC 3262 §7.1)", header="rseq")
    return rseq


def is_reliable(response: SipResponse) -> bool:
    """A 101-199 response asking for PRACK: ``Require: 100rel`` and an RSeq (§4)."""
    if not 101 <= response.status_code <= 199:
        return False
    try:
        required = [t.lower() for t in response.tokens("require")]
        return "100rel" in required and rseq_of(response) is not None
    except SipParseError:
        return False


@dataclass(slots=True)
class _Pending:
    response: SipResponse
    rseq: int
    has_sdp: bool
    retransmitter: ResponseRetransmitter


class ReliableProvisionalSender:
    """The UAS half of RFC 3262 for one INVITE (see the module docstring)."""

    def __init__(self, invite: SipRequest, timers: SipTimers, *, rng: Callable[[int], bytes] = os.urandom) -> None:
        if invite.method != "INVITE":
            raise LocalProtocolError("reliable provisional responses answer an INVITE")
        self.invite = invite
        self.timers = timers
        self.next_rseq = int.from_bytes(rng(4), "big") % _RSEQ_INITIAL_MAX + 1
        self.pending: _Pending | None = None
        self._queue: deque[SipResponse] = deque()
        self.acknowledged: list[int] = []
        """RSeq values PRACKed so far."""

    def _stamp(self, response: SipResponse) -> int:
        if self.next_rseq > _RSEQ_MAX:
            raise LocalProtocolError("RSeq space exhausted")
        rseq = self.next_rseq
        self.next_rseq += 1
        h = response.headers
        tags = [t.strip() for v in h.get_all("require") for t in v.split(",") if t.strip()]
        if "100rel" not in [t.lower() for t in tags]:
            h.add("Require", "100rel")
        h.set("RSeq", str(rseq))
        return rseq

    def send(self, response: SipResponse, now: float) -> SipResponse | None:
        """Number ``response`` and return it to send now, or None when it has to wait (queued)."""
        if not 101 <= response.status_code <= 199:
            raise LocalProtocolError(f"only 101-199 responses are sent reliably, not {response.status_code}")
        if self.pending is not None:
            if len(self._queue) >= MAX_QUEUED:
                raise LocalProtocolError("too many reliable provisional responses waiting for PRACK")
            self._queue.append(response)
            return None
        rseq = self._stamp(response)
        self.pending = _Pending(response, rseq, bool(response.body),
                                ResponseRetransmitter.for_reliable_1xx(now, self.timers))
        return response

    def receive_prack(self, prack: SipRequest, now: float) -> tuple[bool, SipResponse | None]:
        """Match a PRACK: (True, next queued 1xx to send or None) or (False, None) → answer 481."""
        try:
            rack = parse_rack(prack.headers.get("rack") or "")
        except SipParseError:
            return False, None
        if not self.matches(rack):
            return False, None
        if self.pending is None:
            raise LocalProtocolError("internal state: pending not set")
        self.pending.retransmitter.stop()
        self.acknowledged.append(self.pending.rseq)
        self.pending = None
        if self._queue:
            return True, self.send(self._queue.popleft(), now)
        return True, None

    def matches(self, rack: RAck) -> bool:
        p = self.pending
        cseq = self.invite.cseq
        return p is not None and rack.rseq == p.rseq and rack.cseq == cseq.seq and rack.method == cseq.method

    def final_may_be_sent(self, success: bool) -> bool:
        """§3: no 2xx while a reliable 1xx with a session description is unacknowledged."""
        return not (success and self.pending is not None and self.pending.has_sdp)

    def clear_queue(self) -> None:
        """Forget the reliable provisionals still waiting (the INVITE is being answered)."""
        self._queue.clear()

    def stop(self) -> None:
        """The INVITE got its final response (or was cancelled): no more retransmissions."""
        if self.pending is not None:
            self.pending.retransmitter.stop()
        self._queue.clear()

    def next_deadline(self) -> float | None:
        return self.pending.retransmitter.next_deadline() if self.pending is not None else None

    def handle_timeout(self, now: float) -> tuple[RetransmitAction, SipResponse | None]:
        """RESEND (with the response to send again), GIVE_UP (reject the INVITE with 5xx, §3) or NONE."""
        if self.pending is None:
            return RetransmitAction.NONE, None
        action = self.pending.retransmitter.handle_timeout(now)
        if action is RetransmitAction.RESEND:
            return action, self.pending.response
        return action, None


class PrackTracker:
    """The UAC half of RFC 3262 for one INVITE: which reliable 1xx to PRACK (see module doc)."""

    def __init__(self, invite: SipRequest) -> None:
        self.invite = invite
        self.last_rseq: dict[str, int] = {}
        """Highest RSeq acknowledged per To tag."""

    def receive(self, response: SipResponse) -> RAck | None:
        """The RAck for a PRACK when ``response`` is a new in-order reliable 1xx, else None."""
        if not is_reliable(response):
            return None
        try:
            rseq = rseq_of(response)
            tag = response.to.tag
            cseq = response.cseq
        except SipParseError:
            return None
        if rseq is None or tag is None or cseq.seq != self.invite.cseq.seq or cseq.method != "INVITE":
            return None
        last = self.last_rseq.get(tag)
        if last is not None and rseq != last + 1:
            return None  # a retransmission (<= last) or out of order (> last + 1): discard, §4
        self.last_rseq[tag] = rseq
        return RAck(rseq, cseq.seq, cseq.method)
