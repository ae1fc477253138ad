"""INVITE usage helpers, sans-IO (RFC 3261 §13-§15, RFC 3326, RFC 6026 §7.2).

The transaction layer ends where the INVITE usage begins: a client transaction passes every
2xx up (one per fork, and their retransmissions, RFC 6026 §7.2) and the TU must ACK each,
keep one and end the others; a UAS core repeats its own 2xx until the ACK comes. These
pieces hold that logic without any I/O, so the asyncio :class:`sipcore.aioua.UserAgent` and
the simulated-network tests drive the very same code.

* :class:`InviteClient`: the UAC side of one INVITE. Each To tag in a 1xx/2xx is a dialog
  (§12.1.2). The first 2xx is *the* answer; every later 2xx with another To tag (a fork the
  UAC does not want, §13.2.2.4) and any 2xx after the UAC sent CANCEL (the CANCEL/200 race,
  §9.1) is ACKed and then ended with BYE. A 2xx retransmission gets the same ACK again.
* :class:`ResponseRetransmitter`: when to repeat a response the TU itself retransmits: the
  UAS 2xx (§13.3.1.4: T1 doubling up to T2, give up after 64*T1) and a reliable provisional
  (RFC 3262 §3: T1 doubling, 64*T1). Independent of the transport, as both RFCs say.
* :class:`OfferState`: per-dialog bookkeeping of pending INVITEs and offers, and the answer
  a colliding request gets (§14.1, §14.2, RFC 3311 §5.2): 491 on glare, 500 with
  Retry-After when the peer is ahead of our answer.
* :func:`glare_backoff`: the §14.1 back-off after a 491 (Call-ID owner 2.1-4 s, other 0-2 s).
* Reason (RFC 3326) helpers: :data:`CALL_COMPLETED_ELSEWHERE`, :func:`reasons_of`.
* :func:`next_attempt`: the same request again as a new transaction (CSeq + 1, no Via), for
  retries after 401/407, 420, 422 (§8.1.3.5, RFC 4028 §7.4).
* :func:`parse_dtmf_relay` / :func:`dtmf_relay_body`: the ``application/dtmf-relay`` INFO
  body (``Signal=5``, ``Duration=160``) most PBXes use for out-of-band digits.

InviteClient states::

                  1xx with a new To tag: EarlyDialog (one per fork)
        ┌──────┐
        ▼      │       first 2xx (not cancelled): Answered (send the ACK)
     CALLING ──┴──────────────────────────────────────────────▶ ANSWERED
        │  │                                                      │
        │  │ 3xx-6xx: Failed                  2xx, same To tag: AckAgain
        │  └───────────────▶ FAILED           2xx, new To tag: ForkDiscarded (ACK, then BYE)
        │ cancel()
        ▼
     CANCELLING ── 2xx: ForkDiscarded (ACK then BYE: the 200 won the race)
                ── 487 or any 3xx-6xx: Failed
"""

from __future__ import annotations

import enum
import logging
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .dialog import Dialog, DialogError, DialogState
from .errors import LocalProtocolError, SipParseError
from .header_extra import Reason, parse_reason
from .message import SipMessage, SipRequest, SipResponse
from .timers import SipTimers

__all__ = [
    "CALL_COMPLETED_ELSEWHERE",
    "AckAgain",
    "Answered",
    "AnswerUnusable",
    "EarlyDialog",
    "Failed",
    "ForkDiscarded",
    "InviteClient",
    "InviteClientEvent",
    "InviteClientState",
    "OfferState",
    "ProvisionalReceived",
    "ResponseRetransmitter",
    "RetransmitAction",
    "dtmf_relay_body",
    "glare_backoff",
    "next_attempt",
    "parse_dtmf_relay",
    "reasons_of",
    "retry_after_seconds",
    "unsupported_requirements",
]

log = logging.getLogger(__name__)

CALL_COMPLETED_ELSEWHERE = Reason("SIP", 200, "Call completed elsewhere")
"""RFC 3326 §2 example: the CANCEL a forking element sends to the other branches once one answered."""


def reasons_of(message: SipMessage) -> list[Reason]:
    """Every Reason value of a BYE/CANCEL (RFC 3326); a malformed header counts as none."""
    out: list[Reason] = []
    for value in message.headers.get_all("reason"):
        try:
            out.extend(parse_reason(value))
        except SipParseError:
            continue
    return out


def glare_backoff(owner: bool, rng: Callable[[int], bytes] = os.urandom) -> float:
    """Seconds to wait before retrying a request that got 491 (RFC 3261 §14.1).

    The owner of the Call-ID (the UA that sent the dialog-creating INVITE) draws from
    2.1-4 s, the other side from 0-2 s, both in units of 10 ms.
    """
    units = int.from_bytes(rng(2), "big")
    if owner:
        return 2.1 + (units % 191) / 100.0
    return (units % 201) / 100.0


def retry_after_seconds(rng: Callable[[int], bytes] = os.urandom) -> int:
    """Retry-After for the 500 a UAS sends to an INVITE that overtakes its answer (§14.2): 0-10 s."""
    return rng(1)[0] % 11


def next_attempt(request: SipRequest, *, remove: Iterable[str] = (),
                 set_headers: Iterable[tuple[str, str]] = ()) -> SipRequest:
    """A copy of ``request`` to send again as a new transaction: CSeq + 1, top Via removed,
    the ``remove`` headers dropped and ``set_headers`` replacing any of the same name."""
    new = request.copy()
    h = new.headers
    for name in remove:
        h.remove(name)
    for name, value in set_headers:
        h.set(name, value)
    cseq = request.cseq
    if cseq.seq >= 0xFFFFFFFF:
        raise LocalProtocolError("CSeq would overflow")
    h.set("CSeq", f"{cseq.seq + 1} {cseq.method}")
    h.remove_first("via")
    return new


_SIGNAL_RE = re.compile(r"^\s*signal\s*=\s*([0-9*#A-Da-d]|1[0-6])\s*$", re.IGNORECASE | re.MULTILINE)
_DURATION_RE = re.compile(r"^\s*duration\s*=\s*([0-9]{1,6})\s*$", re.IGNORECASE | re.MULTILINE)
_EVENT_DIGITS = "0123456789*#ABCD"


def parse_dtmf_relay(body: bytes) -> tuple[str, int | None] | None:
    """``Signal=5\r\nDuration=160`` → ("5", 160); events 10-15 map to * # A-D; None if no digit."""
    text = body.decode("utf-8", "replace")
    m = _SIGNAL_RE.search(text)
    if m is None:
        return None
    sig = m.group(1).upper()
    if sig.isdigit() and len(sig) == 2:
        sig = _EVENT_DIGITS[int(sig)]
    d = _DURATION_RE.search(text)
    return sig, int(d.group(1)) if d is not None else None


def dtmf_relay_body(digit: str, duration_ms: int = 160) -> bytes:
    """The INFO body for one digit (0-9 * # A-D)."""
    if len(digit) != 1 or digit.upper() not in _EVENT_DIGITS:
        raise LocalProtocolError(f"not a DTMF digit: {digit!r}")
    if not 0 < duration_ms < 100_000:
        raise LocalProtocolError("DTMF duration out of range")
    return f"Signal={digit.upper()}\r\nDuration={duration_ms}\r\n".encode()


def unsupported_requirements(request: SipRequest, supported: Iterable[str]) -> list[str]:
    """Option tags in Require the UAS does not support: answer 420 with Unsupported (§8.2.2.3).

    A malformed Require counts as one unknown extension.
    """
    known = {s.lower() for s in supported}
    try:
        required = request.tokens("require")
    except SipParseError:
        return ["(malformed Require)"]
    return [tag for tag in required if tag.lower() not in known]


# -- the 2xx / reliable 1xx retransmission schedule ------------------------------------------------
class RetransmitAction(enum.Enum):
    NONE = "none"
    RESEND = "resend"
    GIVE_UP = "give up"


class ResponseRetransmitter:
    """When a TU repeats its own response: T1, then doubling (capped at ``cap`` if given).

    ``handle_timeout`` says RESEND at each retransmission instant and GIVE_UP once 64*T1 have
    passed without :meth:`stop` (no ACK: §13.3.1.4 BYE; no PRACK: RFC 3262 §3 5xx).
    """

    __slots__ = ("_deadline", "_give_up_at", "_interval", "cap", "stopped", "timers")

    def __init__(self, now: float, timers: SipTimers, *, cap: float | None) -> None:
        self.timers = timers
        self.cap = cap
        self._interval = timers.t1
        self._deadline: float | None = now + timers.t1
        self._give_up_at = now + 64 * timers.t1
        self.stopped = False

    @classmethod
    def for_2xx(cls, now: float, timers: SipTimers) -> ResponseRetransmitter:
        """RFC 3261 §13.3.1.4: T1 doubling up to T2."""
        return cls(now, timers, cap=timers.t2)

    @classmethod
    def for_reliable_1xx(cls, now: float, timers: SipTimers) -> ResponseRetransmitter:
        """RFC 3262 §3: T1 doubling, no cap."""
        return cls(now, timers, cap=None)

    def next_deadline(self) -> float | None:
        if self.stopped or self._deadline is None:
            return None
        return min(self._deadline, self._give_up_at)

    def stop(self) -> None:
        self.stopped = True
        self._deadline = None

    def handle_timeout(self, now: float) -> RetransmitAction:
        if self.stopped or self._deadline is None:
            return RetransmitAction.NONE
        if now >= self._give_up_at:
            self.stop()
            return RetransmitAction.GIVE_UP
        if now < self._deadline:
            return RetransmitAction.NONE
        self._interval *= 2
        if self.cap is not None:
            self._interval = min(self._interval, self.cap)
        self._deadline += self._interval
        return RetransmitAction.RESEND


# -- offers and pending INVITEs of one dialog ---------------------------------------------------------
class OfferState:
    """What a dialog has in flight, for the §14 / RFC 3311 §5.2 collision rules."""

    __slots__ = ("local_invite", "local_offer", "remote_invite", "remote_offer")

    def __init__(self) -> None:
        self.local_invite = False
        """We sent a re-INVITE that has no final response yet."""
        self.remote_invite = False
        """We received a re-INVITE and have not sent its final response."""
        self.local_offer = False
        """We sent an offer (re-INVITE or UPDATE) and have not seen the answer."""
        self.remote_offer = False
        """We received an offer and have not answered it."""

    def check_incoming(self, method: str, has_offer: bool,
                       rng: Callable[[int], bytes] = os.urandom) -> tuple[int, list[tuple[str, str]]] | None:
        """The status a colliding re-INVITE/UPDATE gets, or None when it may proceed.

        * re-INVITE while our INVITE is pending: 491 (§14.2); while we still owe the answer
          to an earlier re-INVITE: 500 with Retry-After (§14.2).
        * UPDATE with an offer while our offer is unanswered: 491 (RFC 3311 §5.2); while we
          owe an answer to the peer's offer: 500 with Retry-After.
        """
        if method == "INVITE":
            if self.local_invite or (has_offer and self.local_offer):
                return 491, []
            if self.remote_invite:
                return 500, [("Retry-After", str(retry_after_seconds(rng)))]
            return None
        if method == "UPDATE" and has_offer:
            if self.local_offer:
                return 491, []
            if self.remote_offer:
                return 500, [("Retry-After", str(retry_after_seconds(rng)))]
        return None


# -- the UAC side of one INVITE ------------------------------------------------------------------------
class InviteClientState(enum.Enum):
    CALLING = "calling"
    CANCELLING = "cancelling"
    ANSWERED = "answered"
    FAILED = "failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProvisionalReceived:
    """Any 1xx; ``dialog`` is the early dialog of its To tag (None for 100 or no To tag)."""

    response: SipResponse
    dialog: Dialog | None


@dataclass(frozen=True, slots=True, kw_only=True)
class EarlyDialog:
    """The first 1xx with a given To tag created an early dialog (§12.1.2, §13.2.2.4)."""

    dialog: Dialog
    response: SipResponse


@dataclass(frozen=True, slots=True, kw_only=True)
class Answered:
    """The first 2xx: the session is up. Send ``ack`` (§13.2.2.4)."""

    dialog: Dialog
    response: SipResponse
    ack: SipRequest


@dataclass(frozen=True, slots=True, kw_only=True)
class AckAgain:
    """A retransmission of a 2xx already acknowledged: send the same ACK again (§13.2.2.4)."""

    ack: SipRequest
    dialog: Dialog


@dataclass(frozen=True, slots=True, kw_only=True)
class ForkDiscarded:
    """A 2xx nobody wants (another fork, or after CANCEL): send ``ack``, then ``bye`` (§13.2.2.4)."""

    dialog: Dialog
    response: SipResponse
    ack: SipRequest
    bye: SipRequest
    cancelled: bool
    """True when the 2xx raced our CANCEL (§9.1), False for an extra fork."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Failed:
    """The INVITE failed with this final response (the first 3xx-6xx, when no 2xx came)."""

    response: SipResponse


@dataclass(frozen=True, slots=True, kw_only=True)
class AnswerUnusable:
    """A 2xx that cannot make a dialog (no Contact, §12.1.2): nothing to ACK it with."""

    response: SipResponse
    error: str


InviteClientEvent = ProvisionalReceived | EarlyDialog | Answered | AckAgain | ForkDiscarded | Failed | AnswerUnusable


class InviteClient:
    """The UAC core's view of one INVITE it sent (see the module docstring for the states).

    ``ack_headers`` go into every ACK (the INVITE's credentials, §22.1); ``bye_headers`` into
    the BYE of an unwanted 2xx (e.g. a Reason). Feed every response to the INVITE, from the
    transaction or stray, to :meth:`receive_response`.
    """

    def __init__(self, request: SipRequest, *, ack_headers: Iterable[tuple[str, str]] = (),
                 bye_headers: Iterable[tuple[str, str]] = (), local_target: str | None = None) -> None:
        if request.method != "INVITE":
            raise LocalProtocolError(f"InviteClient is for INVITE, not {request.method}")
        self.request = request
        self.ack_headers = list(ack_headers)
        self.bye_headers = list(bye_headers)
        self.local_target = local_target
        self.state = InviteClientState.CALLING
        self.dialogs: dict[str, Dialog] = {}
        """Every dialog this INVITE created, by remote (To) tag."""
        self.acks: dict[str, SipRequest] = {}
        """The ACK sent for each answered To tag."""
        self.answered: Dialog | None = None
        self.final: SipResponse | None = None
        self.cancel_requested = False

    @property
    def cseq(self) -> int:
        return self.request.cseq.seq

    def cancel(self) -> None:
        """The TU sent (or will send) CANCEL: a 2xx from now on is ACKed and BYEd."""
        self.cancel_requested = True
        if self.state is InviteClientState.CALLING:
            self.state = InviteClientState.CANCELLING

    def _dialog_for(self, response: SipResponse) -> tuple[Dialog | None, bool]:
        tag = response.to.tag
        if tag is None:
            return None, False
        dialog = self.dialogs.get(tag)
        if dialog is not None:
            if dialog.state is DialogState.TERMINATED and response.status_code >= 200:
                # an early dialog ended by another fork's answer or a failure: this 2xx still
                # confirms it, if only to be ACKed and ended with BYE (§13.2.2.4)
                dialog.state = DialogState.EARLY
            dialog.update_from_response(response)
            return dialog, False
        dialog = Dialog.from_uac(self.request, response)
        if self.local_target is not None:
            dialog.local_target = self.local_target
        self.dialogs[tag] = dialog
        return dialog, True

    def receive_response(self, response: SipResponse) -> list[InviteClientEvent]:
        """Apply one response to the INVITE; returns what the TU must do.

        A response whose From, To or CSeq cannot be parsed changes nothing (a 2xx among them is
        reported as :class:`AnswerUnusable`: it cannot be ACKed).
        """
        try:
            if response.cseq.seq != self.cseq or response.cseq.method != "INVITE":
                return []
            response.to  # noqa: B018  (parse it once: the steps below rely on it)
            response.from_  # noqa: B018
        except SipParseError as exc:
            if 200 <= response.status_code < 300:
                return [AnswerUnusable(response=response, error=str(exc))]
            return []
        before = self.state
        events = self._receive(response)
        if self.state is not before:
            log.debug("INVITE %s %s -> %s", self.request.call_id[:8], before.value, self.state.value)
        return events

    def _receive(self, response: SipResponse) -> list[InviteClientEvent]:
        code = response.status_code
        if code < 200:
            if self.state not in (InviteClientState.CALLING, InviteClientState.CANCELLING):
                return []
            try:
                dialog, new = self._dialog_for(response) if code > 100 else (None, False)
            except (DialogError, LocalProtocolError, SipParseError):
                dialog, new = None, False
            events: list[InviteClientEvent] = []
            if new and dialog is not None:
                events.append(EarlyDialog(dialog=dialog, response=response))
            events.append(ProvisionalReceived(response=response, dialog=dialog))
            return events
        if code >= 300:
            if self.state in (InviteClientState.CALLING, InviteClientState.CANCELLING):
                self.state = InviteClientState.FAILED
                self.final = response
                for d in self.dialogs.values():
                    if d.state is DialogState.EARLY:
                        d.terminate()
                return [Failed(response=response)]
            return []
        return self._receive_2xx(response)

    def _receive_2xx(self, response: SipResponse) -> list[InviteClientEvent]:
        tag = response.to.tag
        if tag is not None and tag in self.acks:
            return [AckAgain(ack=self.acks[tag], dialog=self.dialogs[tag])]
        try:
            dialog, _ = self._dialog_for(response)
        except (DialogError, LocalProtocolError, SipParseError) as exc:
            return [AnswerUnusable(response=response, error=str(exc))]
        if dialog is None or tag is None:
            return [AnswerUnusable(response=response, error="2xx without To tag")]
        ack = dialog.create_ack(self.cseq, headers=self.ack_headers)
        self.acks[tag] = ack
        if self.state is InviteClientState.CALLING:
            self.state = InviteClientState.ANSWERED
            self.answered = dialog
            self.final = response
            for other in self.dialogs.values():
                if other is not dialog and other.state is DialogState.EARLY:
                    other.terminate()  # §13.2.2.4: the other early dialogs end with the answer
            return [Answered(dialog=dialog, response=response, ack=ack)]
        cancelled = self.cancel_requested and self.answered is None
        if self.state is InviteClientState.CANCELLING:
            self.state = InviteClientState.FAILED
            self.final = response
        bye = dialog.create_request("BYE", headers=self.bye_headers)
        dialog.terminate()
        return [ForkDiscarded(dialog=dialog, response=response, ack=ack, bye=bye, cancelled=cancelled)]
