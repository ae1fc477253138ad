"""STUN client transaction over UDP, sans-IO (RFC 8489 §6.2.1, §6.3.3, §6.3.4).

The request is sent at t = 0 and retransmitted with a doubling interval: at RTO, 3 RTO,
7 RTO, ... until ``Rc`` transmissions have been sent; after the last one the client waits
``Rm * RTO`` (RTO being the *initial* value) before giving up. With the defaults
(RTO = 500 ms, Rc = 7, Rm = 16) that is 0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s and a timeout at
39.5 s. An optional ``rto_max`` caps the doubling (RFC 8489 allows a cap; ICE uses one).

States::

    PENDING --(response matching the transaction id, authenticated if a key is set)--> DONE
       |                                                                  result = response
       +--(Rm * RTO after the Rc-th transmission)-----------------------> TIMED_OUT
       +--(cancel())----------------------------------------------------> CANCELLED

A success *or error* response ends the transaction; the caller reads ``result`` and decides.
Responses that do not authenticate with ``integrity_key`` are ignored (RFC 8489 §9.1.4 /
§9.2.5: "discarded as if never received"), so a forged response cannot end the transaction.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

from ..errors import LocalProtocolError
from .stun import Addr, MessageClass, StunMessage

__all__ = ["StunTimers", "StunClientTransaction", "TransactionState"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StunTimers:
    """Retransmission parameters (RFC 8489 §6.2.1)."""

    rto: float = 0.5
    """Initial retransmission timeout in seconds (RFC 8489: SHOULD be > 500 ms for fixed-line)."""
    rc: int = 7
    """Total number of transmissions of the request."""
    rm: int = 16
    """After the last transmission, wait ``rm * rto`` seconds for a response."""
    rto_max: float | None = None
    """Cap on the doubled interval, or None for no cap."""

    def __post_init__(self) -> None:
        if self.rto <= 0 or self.rc < 1 or self.rm < 1:
            raise LocalProtocolError("StunTimers: rto > 0, rc >= 1 and rm >= 1 are required")

    def schedule(self) -> list[float]:
        """Offsets of every transmission from the first, then the final timeout offset."""
        out, t, interval = [], 0.0, self.rto
        for _ in range(self.rc):
            out.append(t)
            t += interval
            interval = interval * 2 if self.rto_max is None else min(interval * 2, self.rto_max)
        out.append(out[-1] + self.rm * self.rto)
        return out


class TransactionState(enum.Enum):
    PENDING = "pending"
    DONE = "done"
    TIMED_OUT = "timed-out"
    CANCELLED = "cancelled"


class StunClientTransaction:
    """One request and its retransmissions. Feed responses with :meth:`receive_response`."""

    __slots__ = (
        "_data",
        "_deadline",
        "_due",
        "_integrity_key",
        "_interval",
        "_sent",
        "_timers",
        "_unauth_ok",
        "dst",
        "result",
        "result_addr",
        "src",
        "started",
        "state",
        "transaction_id",
    )

    def __init__(
        self,
        request: bytes,
        transaction_id: bytes,
        dst: Addr,
        now: float,
        *,
        timers: StunTimers | None = None,
        integrity_key: bytes | None = None,
        src: Addr | None = None,
        accept_unauthenticated: frozenset[int] = frozenset(),
    ) -> None:
        self._data = request
        self._unauth_ok = accept_unauthenticated
        self.transaction_id = transaction_id
        self.dst = dst
        self.src = src
        self.started = now
        self._timers = timers or StunTimers()
        self._integrity_key = integrity_key
        self._sent = 0
        self._interval = self._timers.rto
        self._due: list[bytes] = []
        self._deadline: float | None = now
        self.state = TransactionState.PENDING
        self.result: StunMessage | None = None
        self.result_addr: Addr | None = None
        self.handle_timeout(now)

    @classmethod
    def for_message(
        cls,
        request: StunMessage,
        dst: Addr,
        now: float,
        *,
        timers: StunTimers | None = None,
        integrity_key: bytes | None = None,
        fingerprint: bool = True,
        src: Addr | None = None,
        accept_unauthenticated: frozenset[int] = frozenset(),
    ) -> StunClientTransaction:
        """Encode ``request`` (with MESSAGE-INTEGRITY when a key is given) and start it."""
        if request.message_class is not MessageClass.REQUEST:
            raise LocalProtocolError("a client transaction carries a request")
        data = request.encode(integrity_key=integrity_key, fingerprint=fingerprint)
        return cls(
            data,
            request.transaction_id,
            dst,
            now,
            timers=timers,
            integrity_key=integrity_key,
            src=src,
            accept_unauthenticated=accept_unauthenticated,
        )

    # -- sans-IO surface ----------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.state is not TransactionState.PENDING

    @property
    def transmissions(self) -> int:
        return self._sent

    def datagrams_to_send(self, now: float) -> list[bytes]:
        out, self._due = self._due, []
        return out

    def next_deadline(self) -> float | None:
        return self._deadline if self.state is TransactionState.PENDING else None

    def handle_timeout(self, now: float) -> None:
        if self.state is not TransactionState.PENDING or self._deadline is None or now < self._deadline:
            return
        t = self._timers
        if self._sent < t.rc:
            self._due.append(self._data)
            self._sent += 1
            if self._sent < t.rc:
                self._deadline = now + self._interval
                nxt = self._interval * 2
                self._interval = nxt if t.rto_max is None else min(nxt, t.rto_max)
            else:
                self._deadline = now + t.rm * t.rto
        else:
            _log.debug("STUN %s Pending -> TimedOut after %d sends", self.transaction_id.hex(), self._sent)
            self.state = TransactionState.TIMED_OUT
            self._deadline = None

    def stop_retransmitting(self, now: float) -> None:
        """RFC 8445 §7.2.5.4 "cancel": keep waiting for a response but send nothing more."""
        if self.state is TransactionState.PENDING:
            self._sent = self._timers.rc
            self._due.clear()
            self._deadline = max(now, self.started) + self._timers.rm * self._timers.rto

    def cancel(self) -> None:
        if self.state is TransactionState.PENDING:
            self.state = TransactionState.CANCELLED
            self._due.clear()
            self._deadline = None

    def matches(self, response: StunMessage) -> bool:
        return response.transaction_id == self.transaction_id and response.message_class in (
            MessageClass.SUCCESS,
            MessageClass.ERROR,
        )

    def receive_response(self, response: StunMessage, addr: Addr, now: float) -> bool:
        """Accept ``response`` if it belongs here (and authenticates). True when it ended the transaction."""
        if self.state is not TransactionState.PENDING or not self.matches(response):
            return False
        key = self._integrity_key
        if key is not None and not response.verify_integrity(key):
            # RFC 8489 §9.1.4: over UDP an unauthenticated response is discarded; §9.2.5: a
            # long-term server answers 401/438 without MESSAGE-INTEGRITY, so those may pass.
            err = response.error
            if response.has_integrity or err is None or err.code not in self._unauth_ok:
                _log.debug("STUN %s: dropping response that fails integrity", self.transaction_id.hex())
                return False
        self.result = response
        self.result_addr = addr
        self.state = TransactionState.DONE
        self._due.clear()
        self._deadline = None
        return True
