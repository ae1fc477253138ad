"""SIP transactions, sans-IO: RFC 3261 §17 with the RFC 6026 corrections.

Four state machines, one per role and kind, each driven by an explicit transition table
(``ICT_TABLE``, ``NICT_TABLE``, ``IST_TABLE``, ``NIST_TABLE``) that maps (state, input) to
the actions to run and the next state. Timers belong to states: entering a state stops the
timers of the previous one and starts its own (``*_ENTRY``), except where the RFC keeps a
timer running across states (NICT Timers E and F through Proceeding). A timer whose value is
zero (Timers D, I, J, K on reliable transports) fires at once.

Nothing here reads a clock or touches a socket: every input carries ``now``; output is
drained with :meth:`messages_to_send` (messages) and :meth:`events` (what the TU must
know); :meth:`next_deadline` says when to call :meth:`handle_timeout`.

INVITE client transaction (ICT), RFC 3261 §17.1.1.2, RFC 6026 §7.2::

                         | INVITE from TU: send it; start A (unreliable) and B
                         v
    Timer A: resend, +-----------+  Timer B: inform TU (timeout)
    A = 2 * A   +----|  Calling  |--------------------------------------+
                +--->+-----------+                                      |
                       |    |   |  2xx: to TU                           |
       300-699: send   |    |   +--------------------+                  |
       ACK, to TU      |    | 1xx: to TU             |                  |
                       |    v                        v                  |
                       |  +------------+  2xx:  +----------+  2xx:      |
                       |  | Proceeding |------->| Accepted |  to TU     |
                       |  +------------+ to TU  +----------+<----+      |
                       |    |  ^     |            |    |         |      |
                       |    +--+     |            |    +---------+      |
                       |  1xx: to TU | 300-699:   | Timer M             |
                       |             | send ACK,  |                     |
                       v             v to TU      v                     |
                    +-------------------+     +------------+            |
    300-699:   +--->|     Completed     |---->| Terminated |<-----------+
    resend ACK +----+-------------------+     +------------+
                                       Timer D

    (transport error in Calling, Proceeding or Completed: inform TU, -> Terminated)

Non-INVITE client transaction (NICT), RFC 3261 §17.1.2.2::

                         | request from TU: send it; start E (unreliable) and F
                         v
    Timer E: resend, +-----------+
    E = min(2E, T2)+-|  Trying   |--------------------------+
                   +>+-----------+  200-699: to TU          |
                       |                                    |
            1xx: to TU |                                    |
                       v                                    |
    1xx: to TU     +------------+                           |
    Timer E: +-----| Proceeding |                           |
    resend,  +---->+------------+                           |
    E = T2             |                                    |
        200-699: to TU |                                    |
                       v                                    |
                    +-----------+<--------------------------+
                    | Completed |  start K; response retransmissions are absorbed
                    +-----------+
                       | Timer K
                       v
                    +------------+
                    | Terminated |
                    +------------+

    (Timer F in Trying or Proceeding: inform TU (timeout), -> Terminated; transport
     error in Trying or Proceeding: inform TU, -> Terminated)

INVITE server transaction (IST), RFC 3261 §17.2.1, RFC 6026 §7.1::

                         | INVITE (the stack passes it to the TU): start the 200 ms Trying timer
                         v
    INVITE: resend   +------------+  Trying timer: send 100 Trying
    last 1xx   +-----| Proceeding |  1xx from TU: send it
               +---->+------------+
                       |        | 2xx from TU: send it; start L
     300-699 from TU:  |        +------------------------------------+
     send it; start    |                                             |
     G (unreliable), H v                                             v
    INVITE: resend +-----------+  Timer H: inform TU       +----------+  INVITE: absorb
    Timer G:       | Completed |------------------+        | Accepted |  ACK: to TU
    resend,        +-----------+  (timeout)       |        +----------+  2xx from TU: send it
    G = min(2G, T2)    |                          |              |
          ACK: to TU;  |                          |              | Timer L
          start I      v                          |              |
                   +-----------+  INVITE, ACK:    |              |
                   | Confirmed |  absorb          |              |
                   +-----------+                  |              |
                       | Timer I                  v              |
                       |                   +------------+        |
                       +------------------>| Terminated |<-------+
                                           +------------+

    (transport error: inform TU, state unchanged, as RFC 6026 Figure 7 draws it)

Non-INVITE server transaction (NIST), RFC 3261 §17.2.2::

                         | request (the stack passes it to the TU)
                         v
    request:         +-----------+  200-699 from TU: send it
    absorb     +-----|  Trying   |------------------------------+
               +---->+-----------+                              |
                       | 1xx from TU: send it                   |
                       v                                        |
    request: resend +------------+                              |
    1xx from TU: +--| Proceeding |                              |
    send it      +->+------------+                              |
                       | 200-699 from TU: send it; start J      |
                       v                                        |
    request:        +-----------+<------------------------------+
    resend     +----| Completed |
    final      +--->+-----------+
                       | Timer J
                       v
                    +------------+
                    | Terminated |
                    +------------+

    (transport error in Proceeding or Completed: inform TU, -> Terminated)

Transition tables (generated from the code tables by :func:`format_transitions`; a test
keeps them equal). A network input with no row is discarded; a TU input with no row
(``send_response`` in the wrong state) raises :class:`LocalProtocolError`::

    ICT
    Calling     1xx             pass to TU                -> Proceeding
    Calling     2xx             pass to TU                -> Accepted
    Calling     300-699         send ACK, pass to TU      -> Completed
    Calling     Timer A         retransmit                -> (same)
    Calling     Timer B         report timeout            -> Terminated
    Calling     transport error report transport error    -> Terminated
    Proceeding  1xx             pass to TU                -> (same)
    Proceeding  2xx             pass to TU                -> Accepted
    Proceeding  300-699         send ACK, pass to TU      -> Completed
    Proceeding  transport error report transport error    -> Terminated
    Completed   300-699         send ACK                  -> (same)
    Completed   Timer D         -                         -> Terminated
    Completed   transport error report transport error    -> Terminated
    Accepted    2xx             pass to TU                -> (same)
    Accepted    Timer M         -                         -> Terminated

    NICT
    Trying      1xx             pass to TU                -> Proceeding
    Trying      200-699         pass to TU                -> Completed
    Trying      Timer E         retransmit                -> (same)
    Trying      Timer F         report timeout            -> Terminated
    Trying      transport error report transport error    -> Terminated
    Proceeding  1xx             pass to TU                -> (same)
    Proceeding  200-699         pass to TU                -> Completed
    Proceeding  Timer E         retransmit                -> (same)
    Proceeding  Timer F         report timeout            -> Terminated
    Proceeding  transport error report transport error    -> Terminated
    Completed   Timer K         -                         -> Terminated

    IST
    Proceeding  request         resend response           -> (same)
    Proceeding  Trying timer    send 100 Trying           -> (same)
    Proceeding  1xx             send response             -> (same)
    Proceeding  2xx             send response             -> Accepted
    Proceeding  300-699         send response             -> Completed
    Proceeding  transport error report transport error    -> (same)
    Completed   request         resend response           -> (same)
    Completed   ACK             pass ACK to TU            -> Confirmed
    Completed   Timer G         retransmit                -> (same)
    Completed   Timer H         report timeout            -> Terminated
    Completed   transport error report transport error    -> (same)
    Confirmed   request         absorb                    -> (same)
    Confirmed   ACK             absorb                    -> (same)
    Confirmed   Timer I         -                         -> Terminated
    Accepted    request         absorb                    -> (same)
    Accepted    ACK             pass ACK to TU            -> (same)
    Accepted    2xx             send response             -> (same)
    Accepted    Timer L         -                         -> Terminated
    Accepted    transport error report transport error    -> (same)

    NIST
    Trying      request         absorb                    -> (same)
    Trying      1xx             send response             -> Proceeding
    Trying      200-699         send response             -> Completed
    Proceeding  request         resend response           -> (same)
    Proceeding  1xx             send response             -> (same)
    Proceeding  200-699         send response             -> Completed
    Proceeding  transport error report transport error    -> Terminated
    Completed   request         resend response           -> (same)
    Completed   Timer J         -                         -> Terminated
    Completed   transport error report transport error    -> Terminated

Notes on choices the RFCs leave open:

* The ICT builds the ACK for a 300-699 response itself (§17.1.1.3: same branch, Request-URI,
  Call-ID, From, CSeq number and Route as the INVITE, To from the response). A 2xx is never
  ACKed here: in Accepted the TU gets every 2xx (one per fork, and their retransmissions) and
  ACKs them itself (RFC 6026 §7.2).
* The IST passes up the ACK of a non-2xx final once (Completed -> Confirmed) and absorbs its
  retransmissions. In Accepted an INVITE retransmission is absorbed (RFC 6026 §7.1: no
  response is resent; resending the 2xx is the TU's job, through :meth:`send_response`)
  and an ACK that matches is passed up (Figure 7 of RFC 6026).
* If an INVITE retransmission reaches the IST in Proceeding before any provisional response
  went out and ``auto_trying`` is on, the 100 Trying goes out at once rather than waiting for
  the 200 ms timer: the peer has evidently not heard from us.
* A transport error on the IST informs the TU and leaves the state alone, as RFC 6026 Figure 7
  draws it; Timer H or L still ends the transaction.

Matching (:class:`TransactionLayer`): responses by (top Via branch, CSeq method), §17.1.3;
requests by (branch, sent-by, method with ACK counted as INVITE), §17.2.3, or, when the
branch lacks the ``z9hG4bK`` cookie, by the RFC 2543 rules (Request-URI, To tag, From tag,
Call-ID, CSeq, top Via; an ACK by the To tag of the response the transaction sent).
"""

from __future__ import annotations

import enum
import heapq
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Final

from .errors import LocalProtocolError, SipParseError
from .grammar import split_list
from .header_types import Via
from .headers import Headers
from .message import SipMessage, SipRequest, SipResponse, make_response
from .timers import SipTimers

__all__ = [
    "ICT_TABLE",
    "IST_TABLE",
    "MAGIC_COOKIE",
    "NICT_TABLE",
    "NIST_TABLE",
    "TRYING_DELAY",
    "AckReceived",
    "ClientTransaction",
    "ResponseReceived",
    "ServerTransaction",
    "TransactionEvent",
    "TransactionLayer",
    "TransactionTerminated",
    "TransactionTimeout",
    "TransportFailed",
    "TxAction",
    "TxInput",
    "TxKind",
    "TxState",
    "format_transitions",
    "transaction_method",
]

_log = logging.getLogger(__name__)

MAGIC_COOKIE: Final = "z9hG4bK"
"""Branch prefix of RFC 3261 transactions (§8.1.1.7); without it the RFC 2543 rules apply."""
TRYING_DELAY: Final = 0.2
"""The IST sends 100 Trying if the TU has not responded within 200 ms (§17.2.1)."""


class TxState(enum.Enum):
    __hash__ = object.__hash__  # members are singletons; skips Enum's Python-level __hash__ on the hot path

    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    ACCEPTED = "Accepted"  # RFC 6026
    CONFIRMED = "Confirmed"
    TERMINATED = "Terminated"


class TxKind(enum.Enum):
    ICT = "ICT"  # INVITE client transaction, §17.1.1
    NICT = "NICT"  # non-INVITE client transaction, §17.1.2
    IST = "IST"  # INVITE server transaction, §17.2.1
    NIST = "NIST"  # non-INVITE server transaction, §17.2.2


class TxInput(enum.Enum):
    """What a state machine reacts to: responses (received or from the TU), requests, timers."""

    __hash__ = object.__hash__  # as for TxState: transition tables are keyed by (state, input)

    PROVISIONAL = "1xx"
    SUCCESS = "2xx"  # INVITE only
    FAILURE = "300-699"  # INVITE only
    FINAL = "200-699"  # non-INVITE
    REQUEST = "request"  # a retransmission of the request that created a server transaction
    ACK = "ACK"
    TIMER_A = "Timer A"
    TIMER_B = "Timer B"
    TIMER_D = "Timer D"
    TIMER_E = "Timer E"
    TIMER_F = "Timer F"
    TIMER_G = "Timer G"
    TIMER_H = "Timer H"
    TIMER_I = "Timer I"
    TIMER_J = "Timer J"
    TIMER_K = "Timer K"
    TIMER_L = "Timer L"
    TIMER_M = "Timer M"
    TIMER_TRYING = "Trying timer"
    TRANSPORT_ERROR = "transport error"


class TxAction(enum.Enum):
    PASS_TO_TU = "pass to TU"
    SEND_ACK = "send ACK"
    RETRANSMIT = "retransmit"
    REPORT_TIMEOUT = "report timeout"
    REPORT_TRANSPORT_ERROR = "report transport error"
    SEND_RESPONSE = "send response"
    RESEND_RESPONSE = "resend response"
    SEND_TRYING = "send 100 Trying"
    PASS_ACK_TO_TU = "pass ACK to TU"
    ABSORB = "absorb"


Row = tuple[tuple[TxAction, ...], TxState | None]
"""(actions, next state); None keeps the current state (no entry actions run)."""
Table = dict[tuple[TxState, TxInput], Row]

_S, _I, _A = TxState, TxInput, TxAction

ICT_TABLE: Final[Table] = {
    (_S.CALLING, _I.PROVISIONAL): ((_A.PASS_TO_TU,), _S.PROCEEDING),
    (_S.CALLING, _I.SUCCESS): ((_A.PASS_TO_TU,), _S.ACCEPTED),
    (_S.CALLING, _I.FAILURE): ((_A.SEND_ACK, _A.PASS_TO_TU), _S.COMPLETED),
    (_S.CALLING, _I.TIMER_A): ((_A.RETRANSMIT,), None),
    (_S.CALLING, _I.TIMER_B): ((_A.REPORT_TIMEOUT,), _S.TERMINATED),
    (_S.CALLING, _I.TRANSPORT_ERROR): ((_A.REPORT_TRANSPORT_ERROR,), _S.TERMINATED),
    (_S.PROCEEDING, _I.PROVISIONAL): ((_A.PASS_TO_TU,), None),
    (_S.PROCEEDING, _I.SUCCESS): ((_A.PASS_TO_TU,), _S.ACCEPTED),
    (_S.PROCEEDING, _I.FAILURE): ((_A.SEND_ACK, _A.PASS_TO_TU), _S.COMPLETED),
    (_S.PROCEEDING, _I.TRANSPORT_ERROR): ((_A.REPORT_TRANSPORT_ERROR,), _S.TERMINATED),
    (_S.COMPLETED, _I.FAILURE): ((_A.SEND_ACK,), None),
    (_S.COMPLETED, _I.TIMER_D): ((), _S.TERMINATED),
    (_S.COMPLETED, _I.TRANSPORT_ERROR): ((_A.REPORT_TRANSPORT_ERROR,), _S.TERMINATED),
    (_S.ACCEPTED, _I.SUCCESS): ((_A.PASS_TO_TU,), None),
    (_S.ACCEPTED, _I.TIMER_M): ((), _S.TERMINATED),
}

NICT_TABLE: Final[Table] = {
    (_S.TRYING, _I.PROVISIONAL): ((_A.PASS_TO_TU,), _S.PROCEEDING),
    (_S.TRYING, _I.FINAL): ((_A.PASS_TO_TU,), _S.COMPLETED),
    (_S.TRYING, _I.TIMER_E): ((_A.RETRANSMIT,), None),
    (_S.TRYING, _I.TIMER_F): ((_A.REPORT_TIMEOUT,), _S.TERMINATED),
    (_S.TRYING, _I.TRANSPORT_ERROR): ((_A.REPORT_TRANSPORT_ERROR,), _S.TERMINATED),
    (_S.PROCEEDING, _I.PROVISIONAL): ((_A.PASS_TO_TU,), None),
    (_S.PROCEEDING, _I.FINAL): ((_A.PASS_TO_TU,), _S.COMPLETED),
    (_S.PROCEEDING, _I.TIMER_E): ((_A.RETRANSMIT,), None),
    (_S.PROCEEDING, _I.TIMER_F): ((_A.REPORT_TIMEOUT,), _S.TERMINATED),
    (_S.PROCEEDING, _I.TRANSPORT_ERROR): ((_A.REPORT_TRANSPORT_ERROR,), _S.TERMINATED),
    (_S.COMPLETED, _I.TIMER_K): ((), _S.TERMINATED),
}

IST_TABLE: Final[Table] = {
    (_S.PROCEEDING, _I.REQUEST): ((_A.RESEND_RESPONSE,), None),
    (_S.PROCEEDING, _I.TIMER_TRYING): ((_A.SEND_TRYING,), None),
    (_S.PROCEEDING, _I.PROVISIONAL): ((_A.SEND_RESPONSE,), None),
    (_S.PROCEEDING, _I.SUCCESS): ((_A.SEND_RESPONSE,), _S.ACCEPTED),
    (_S.PROCEEDING, _I.FAILURE): ((_A.SEND_RESPONSE,), _S.COMPLETED),
    (_S.PROCEEDING, _I.TRANSPORT_ERROR): ((_A.REPORT_TRANSPORT_ERROR,), None),
    (_S.COMPLETED, _I.REQUEST): ((_A.RESEND_RESPONSE,), None),
    (_S.COMPLETED, _I.ACK): ((_A.PASS_ACK_TO_TU,), _S.CONFIRMED),
    (_S.COMPLETED, _I.TIMER_G): ((_A.RETRANSMIT,), None),
    (_S.COMPLETED, _I.TIMER_H): ((_A.REPORT_TIMEOUT,), _S.TERMINATED),
    (_S.COMPLETED, _I.TRANSPORT_ERROR): ((_A.REPORT_TRANSPORT_ERROR,), None),
    (_S.CONFIRMED, _I.REQUEST): ((_A.ABSORB,), None),
    (_S.CONFIRMED, _I.ACK): ((_A.ABSORB,), None),
    (_S.CONFIRMED, _I.TIMER_I): ((), _S.TERMINATED),
    (_S.ACCEPTED, _I.REQUEST): ((_A.ABSORB,), None),
    (_S.ACCEPTED, _I.ACK): ((_A.PASS_ACK_TO_TU,), None),
    (_S.ACCEPTED, _I.SUCCESS): ((_A.SEND_RESPONSE,), None),
    (_S.ACCEPTED, _I.TIMER_L): ((), _S.TERMINATED),
    (_S.ACCEPTED, _I.TRANSPORT_ERROR): ((_A.REPORT_TRANSPORT_ERROR,), None),
}

NIST_TABLE: Final[Table] = {
    (_S.TRYING, _I.REQUEST): ((_A.ABSORB,), None),
    (_S.TRYING, _I.PROVISIONAL): ((_A.SEND_RESPONSE,), _S.PROCEEDING),
    (_S.TRYING, _I.FINAL): ((_A.SEND_RESPONSE,), _S.COMPLETED),
    (_S.PROCEEDING, _I.REQUEST): ((_A.RESEND_RESPONSE,), None),
    (_S.PROCEEDING, _I.PROVISIONAL): ((_A.SEND_RESPONSE,), None),
    (_S.PROCEEDING, _I.FINAL): ((_A.SEND_RESPONSE,), _S.COMPLETED),
    (_S.PROCEEDING, _I.TRANSPORT_ERROR): ((_A.REPORT_TRANSPORT_ERROR,), _S.TERMINATED),
    (_S.COMPLETED, _I.REQUEST): ((_A.RESEND_RESPONSE,), None),
    (_S.COMPLETED, _I.TIMER_J): ((), _S.TERMINATED),
    (_S.COMPLETED, _I.TRANSPORT_ERROR): ((_A.REPORT_TRANSPORT_ERROR,), _S.TERMINATED),
}

# Timers started on entering a state; None keeps the running timers (NICT E and F go on
# through Proceeding). Entering any state with a tuple first stops every running timer.
Entry = dict[TxState, tuple[TxInput, ...] | None]
ICT_ENTRY: Final[Entry] = {
    _S.CALLING: (_I.TIMER_A, _I.TIMER_B), _S.PROCEEDING: (), _S.COMPLETED: (_I.TIMER_D,),
    _S.ACCEPTED: (_I.TIMER_M,), _S.TERMINATED: (),
}
NICT_ENTRY: Final[Entry] = {
    _S.TRYING: (_I.TIMER_E, _I.TIMER_F), _S.PROCEEDING: None, _S.COMPLETED: (_I.TIMER_K,), _S.TERMINATED: (),
}
IST_ENTRY: Final[Entry] = {
    _S.PROCEEDING: (_I.TIMER_TRYING,), _S.COMPLETED: (_I.TIMER_G, _I.TIMER_H), _S.CONFIRMED: (_I.TIMER_I,),
    _S.ACCEPTED: (_I.TIMER_L,), _S.TERMINATED: (),
}
NIST_ENTRY: Final[Entry] = {
    _S.TRYING: (), _S.PROCEEDING: None, _S.COMPLETED: (_I.TIMER_J,), _S.TERMINATED: (),
}

_MACHINES: Final[dict[TxKind, tuple[Table, Entry, TxState]]] = {
    TxKind.ICT: (ICT_TABLE, ICT_ENTRY, _S.CALLING),
    TxKind.NICT: (NICT_TABLE, NICT_ENTRY, _S.TRYING),
    TxKind.IST: (IST_TABLE, IST_ENTRY, _S.PROCEEDING),
    TxKind.NIST: (NIST_TABLE, NIST_ENTRY, _S.TRYING),
}

_RETRANSMIT_TIMERS: Final = frozenset({_I.TIMER_A, _I.TIMER_E, _I.TIMER_G})
_TIMEOUT_NAMES: Final = {_I.TIMER_B: "B", _I.TIMER_F: "F", _I.TIMER_H: "H"}


def format_transitions(kind: TxKind) -> str:
    """The transition table of one machine as text (the tables in this module's docstring)."""
    table = _MACHINES[kind][0]
    lines = [kind.value]
    for (state, inp), (actions, nxt) in table.items():
        acts = ", ".join(a.value for a in actions) or "-"
        lines.append(f"{state.value:<11} {inp.value:<15} {acts:<25} -> {nxt.value if nxt else '(same)'}")
    return "\n".join(lines)


def transaction_method(method: str) -> str:
    """The method a request is matched on (§17.1.3, §17.2.3): an ACK belongs to its INVITE."""
    return "INVITE" if method == "ACK" else method


# -- events ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """A client transaction passed a response up: every 1xx, the final, and (in the ICT's
    Accepted state) every further 2xx (RFC 6026 §7.2)."""

    transaction: ClientTransaction
    response: SipResponse


@dataclass(frozen=True, slots=True)
class AckReceived:
    """The IST got the ACK for its non-2xx final (once), or an ACK in Accepted."""

    transaction: ServerTransaction
    request: SipRequest


@dataclass(frozen=True, slots=True)
class TransactionTimeout:
    """Timer B or F (no final response: the TU acts as on a 408, §8.1.3.1) or H (no ACK)."""

    transaction: ClientTransaction | ServerTransaction
    timer: str

    def __post_init__(self) -> None:
        if self.timer not in ("B", "F", "H"):
            raise LocalProtocolError(f"Timer {self.timer} is not a transaction timeout timer")


@dataclass(frozen=True, slots=True)
class TransportFailed:
    """The stack reported a transport error for this transaction (the TU acts as on a 503)."""

    transaction: ClientTransaction | ServerTransaction


@dataclass(frozen=True, slots=True)
class TransactionTerminated:
    """The transaction reached Terminated; a :class:`TransactionLayer` has forgotten it."""

    transaction: ClientTransaction | ServerTransaction


TransactionEvent = ResponseReceived | AckReceived | TransactionTimeout | TransportFailed | TransactionTerminated


# -- the common machinery -----------------------------------------------------------------------
class _Transaction(ABC):
    """Timers, output queues and the table-driven dispatcher shared by all four machines."""

    __slots__ = (
        "_entry", "_events", "_heap_deadline", "_interval", "_outbox", "_owner", "_table", "_timers",
        "_zero", "branch", "context", "kind", "reliable", "request", "state", "timers",
    )

    def __init__(
        self, request: SipRequest, kind: TxKind, timers: SipTimers, reliable: bool, context: object
    ) -> None:
        self.request = request
        self.kind = kind
        self.timers = timers
        self.reliable = reliable
        self.context = context
        """Opaque to the transaction (the stack keeps the destination or connection here)."""
        self.branch: str | None = None
        self._table, self._entry, self.state = _MACHINES[kind]
        self._timers: dict[TxInput, float] = {}
        self._zero: list[TxInput] = []
        self._interval = timers.t1
        self._outbox: list[SipMessage] = []
        self._events: list[TransactionEvent] = []
        self._owner: TransactionLayer | None = None
        self._heap_deadline: float | None = None

    # -- public driving API -------------------------------------------------------------
    @property
    def is_invite(self) -> bool:
        return self.kind is TxKind.ICT or self.kind is TxKind.IST

    @property
    def terminated(self) -> bool:
        return self.state is TxState.TERMINATED

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timeout` must next be called (None: no timer running)."""
        timers = self._timers
        return min(timers.values()) if timers else None

    def timer_deadline(self, timer: TxInput) -> float | None:
        """The deadline of one running timer (for introspection and tests)."""
        return self._timers.get(timer)

    def handle_timeout(self, now: float) -> None:
        """Fire every timer due at ``now``, earliest first."""
        timers = self._timers
        while timers:
            inp = min(timers, key=timers.__getitem__)
            if timers[inp] > now:
                break
            del timers[inp]
            self._dispatch(inp, None, now)
        self._changed()

    def transport_error(self, now: float) -> None:
        """The transport could not send this transaction's last message (RFC 3261 §18.4)."""
        self._dispatch(TxInput.TRANSPORT_ERROR, None, now)
        self._changed()

    def messages_to_send(self) -> list[SipMessage]:
        """Drain what must go on the wire (a transaction in a layer sends through the layer)."""
        out, self._outbox = self._outbox, []
        return out

    def events(self) -> list[TransactionEvent]:
        """Drain what happened (a transaction in a layer reports through the layer)."""
        out, self._events = self._events, []
        return out

    # -- machinery ----------------------------------------------------------------------
    def _dispatch(self, inp: TxInput, msg: SipMessage | None, now: float) -> bool:
        row = self._table.get((self.state, inp))
        if row is None:
            if _log.isEnabledFor(logging.DEBUG):
                _log.debug("%s %s: %s ignored in %s", self.kind.value, self.branch, inp.value, self.state.value)
            return False
        actions, nxt = row
        for action in actions:
            self._act(action, inp, msg, now)
        if nxt is not None and nxt is not self.state:
            self._enter(nxt, now)
        while self._zero:
            self._dispatch(self._zero.pop(0), None, now)
        return True

    def _enter(self, state: TxState, now: float) -> None:
        if _log.isEnabledFor(logging.DEBUG):
            _log.debug("%s %s: %s -> %s", self.kind.value, self.branch, self.state.value, state.value)
        self.state = state
        start = self._entry[state]
        if start is not None:
            self._timers.clear()
            self._zero.clear()
            for timer in start:
                self._arm(timer, now)
        if state is TxState.TERMINATED:
            self._emit(TransactionTerminated(self._as_tx()))
            if self._owner is not None:
                self._owner._retire(self)

    def _arm(self, timer: TxInput, now: float) -> None:
        delay = self._timer_value(timer)
        if delay is None:
            return
        if timer in _RETRANSMIT_TIMERS:
            self._interval = delay
        if delay <= 0:
            self._zero.append(timer)
        else:
            self._timers[timer] = now + delay

    def _timer_value(self, timer: TxInput) -> float | None:
        """Initial value of ``timer`` on this transport; None when it does not run at all."""
        t, rel = self.timers, self.reliable
        if timer in _RETRANSMIT_TIMERS:
            return None if rel else t.t1
        if timer is TxInput.TIMER_B:
            return t.timer_b
        if timer is TxInput.TIMER_F:
            return t.timer_f
        if timer is TxInput.TIMER_H:
            return t.timer_h
        if timer is TxInput.TIMER_L:
            return t.timer_l
        if timer is TxInput.TIMER_M:
            return t.timer_m
        if timer is TxInput.TIMER_D:
            return t.timer_d(rel)
        if timer is TxInput.TIMER_I:
            return t.timer_i(rel)
        if timer is TxInput.TIMER_J:
            return t.timer_j(rel)
        if timer is TxInput.TIMER_K:
            return t.timer_k(rel)
        return self._trying_value()

    def _trying_value(self) -> float | None:
        return None

    def _rearm_retransmit(self, timer: TxInput, now: float) -> None:
        """Next retransmission interval: A doubles; E and G double up to T2 (E is T2 in Proceeding)."""
        if timer is TxInput.TIMER_A:
            self._interval *= 2
        elif timer is TxInput.TIMER_E and self.state is TxState.PROCEEDING:
            self._interval = self.timers.t2
        else:
            self._interval = min(self._interval * 2, self.timers.t2)
        self._timers[timer] = now + self._interval

    def _send(self, msg: SipMessage) -> None:
        owner = self._owner
        if owner is None:
            self._outbox.append(msg)
        else:
            owner._out.append((msg, self.context))

    def _emit(self, event: TransactionEvent) -> None:
        owner = self._owner
        if owner is None:
            self._events.append(event)
        else:
            owner._events.append(event)

    def _changed(self) -> None:
        if self._owner is not None:
            self._owner._schedule(self)

    def _start(self, now: float) -> None:
        """Run the entry actions of the initial state (and any zero-length timer they start)."""
        self._enter(self.state, now)
        while self._zero:
            self._dispatch(self._zero.pop(0), None, now)

    @abstractmethod
    def _as_tx(self) -> ClientTransaction | ServerTransaction:
        """``self``, typed as the concrete class events carry."""

    @abstractmethod
    def _act(self, action: TxAction, inp: TxInput, msg: SipMessage | None, now: float) -> None:
        """Run one action of a transition row."""

    def _act_common(self, action: TxAction, inp: TxInput) -> None:
        """The reporting actions both sides share."""
        if action is TxAction.REPORT_TIMEOUT:
            self._emit(TransactionTimeout(self._as_tx(), _TIMEOUT_NAMES[inp]))
        elif action is TxAction.REPORT_TRANSPORT_ERROR:
            self._emit(TransportFailed(self._as_tx()))
        elif action is not TxAction.ABSORB:  # pragma: no cover - the tables use no other action
            raise LocalProtocolError(f"{self.kind.value} cannot {action.value}")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.kind.value} {self.request.method} {self.branch} {self.state.value}>"


def _header(headers: Headers, name: str) -> str:
    value = headers.get(name)
    if value is None:
        raise LocalProtocolError(f"request has no {name} header")
    return value


def _derived_request(request: SipRequest, method: str, to_value: str) -> SipRequest:
    """ACK (§17.1.1.3) or CANCEL (§9.1) for ``request``: same Request-URI, top Via only,
    Route copied, same From/Call-ID/CSeq number, CSeq method ``method``, no body."""
    src = request.headers
    h = Headers()
    h.add("Via", split_list(_header(src, "via"))[0])
    h.add("Max-Forwards", src.get("max-forwards") or "70")
    for route in src.get_all("route"):
        h.add("Route", route)
    h.add("From", _header(src, "from"))
    h.add("To", to_value)
    h.add("Call-ID", _header(src, "call-id"))
    h.add("CSeq", f"{request.cseq.seq} {method}")
    h.add("Content-Length", "0")
    return SipRequest(method, request.uri_text, h)


# -- client transactions -----------------------------------------------------------------------
class ClientTransaction(_Transaction):
    """ICT for an INVITE, NICT for anything else except ACK (which is never a transaction)."""

    __slots__ = ("_ack", "_ack_to", "key", "last_response")

    def __init__(
        self,
        request: SipRequest,
        *,
        now: float,
        timers: SipTimers = SipTimers(),  # noqa: B008  (frozen, so sharing the default is safe)
        reliable: bool = False,
        context: object = None,
    ) -> None:
        if not isinstance(request, SipRequest):
            raise LocalProtocolError("a client transaction starts with a SipRequest")
        method = request.method
        if method == "ACK":
            raise LocalProtocolError("ACK is sent outside any client transaction (§17.1.1.3, §13.2.2.4)")
        super().__init__(request, TxKind.ICT if method == "INVITE" else TxKind.NICT, timers, reliable, context)
        try:
            branch = request.top_via.branch
            cseq_method = request.cseq.method
        except SipParseError as exc:
            raise LocalProtocolError(f"request has no usable top Via or CSeq: {exc}") from exc
        if cseq_method != method:
            raise LocalProtocolError(f"CSeq method {cseq_method} differs from the request method {method} (§8.1.1.5)")
        if not branch or not branch.startswith(MAGIC_COOKIE):
            raise LocalProtocolError(f"client transactions need a branch starting with {MAGIC_COOKIE} (§8.1.1.7)")
        self.branch = branch
        self.key: tuple[str, str] = (branch, method)
        """Matching key (§17.1.3): top Via branch and the method (CSeq method of responses)."""
        self.last_response: SipResponse | None = None
        self._ack: SipRequest | None = None
        self._ack_to: str | None = None
        self._send(request)
        self._start(now)

    @property
    def ack(self) -> SipRequest | None:
        """The ACK this ICT built for its non-2xx final response, if any."""
        return self._ack

    @property
    def can_cancel(self) -> bool:
        """§9.1: CANCEL an INVITE only after a provisional and before a final response."""
        return self.kind is TxKind.ICT and self.state is TxState.PROCEEDING

    def receive_response(self, response: SipResponse, now: float) -> None:
        """Feed a response the layer matched to this transaction (§17.1.3)."""
        code = response.status_code
        if code < 200:
            inp = TxInput.PROVISIONAL
        elif self.kind is TxKind.NICT:
            inp = TxInput.FINAL
        else:
            inp = TxInput.SUCCESS if code < 300 else TxInput.FAILURE
        if self._dispatch(inp, response, now):
            self.last_response = response
        self._changed()

    def cancel_request(self) -> SipRequest:
        """The CANCEL for this INVITE (§9.1); send it in its own client transaction.

        Same Request-URI, Call-ID, From, To and CSeq number (method CANCEL), a single Via equal
        to the INVITE's top Via (so the same branch), the INVITE's Route headers, no body.
        """
        if self.kind is not TxKind.ICT:
            raise LocalProtocolError(f"CANCEL is only meaningful for INVITE, not {self.request.method} (§9.1)")
        return _derived_request(self.request, "CANCEL", _header(self.request.headers, "to"))

    def _as_tx(self) -> ClientTransaction:
        return self

    def _act(self, action: TxAction, inp: TxInput, msg: SipMessage | None, now: float) -> None:
        if action is TxAction.RETRANSMIT:
            self._send(self.request)
            self._rearm_retransmit(inp, now)
        elif not isinstance(msg, SipResponse):
            self._act_common(action, inp)
        elif action is TxAction.PASS_TO_TU:
            self._emit(ResponseReceived(self, msg))
        elif action is TxAction.SEND_ACK:
            to_value = _header(msg.headers, "to")
            if self._ack is None or to_value != self._ack_to:
                self._ack = _derived_request(self.request, "ACK", to_value)
                self._ack_to = to_value
            self._send(self._ack)
        else:  # pragma: no cover - the tables use no other action on a response
            raise LocalProtocolError(f"client transaction cannot {action.value} on a response")


# -- server transactions -----------------------------------------------------------------------
def _uri_key(request: SipRequest) -> object:
    try:
        return request.uri  # SipUri/TelUri hash and compare per §19.1.4
    except SipParseError:
        return request.uri_text


def _via_key(via: Via) -> tuple[object, ...]:
    params = tuple(sorted((k.lower(), "" if v is None else v) for k, v in via.params))
    return (via.protocol.upper(), via.transport.upper(), via.host.lower(), via.port, params)


def _legacy_key(request: SipRequest, method: str) -> tuple[object, ...]:
    """RFC 2543 matching (§17.2.3): Request-URI, To tag, From tag, Call-ID, CSeq, top Via."""
    return ("rfc2543", _uri_key(request), request.to.tag, request.from_.tag, request.call_id,
            request.cseq.seq, method, _via_key(request.top_via))


def _legacy_ack_key(request: SipRequest) -> tuple[object, ...]:
    """RFC 2543 ACK matching: as :func:`_legacy_key` without the To tag and the CSeq method."""
    return ("rfc2543-ack", _uri_key(request), request.from_.tag, request.call_id, request.cseq.seq,
            _via_key(request.top_via))


def _server_key(request: SipRequest, method: str) -> tuple[object, ...]:
    via = request.top_via
    branch = via.branch
    if branch is not None and branch.startswith(MAGIC_COOKIE):
        return (branch, via.host.lower(), via.port, method)
    return _legacy_key(request, method)


class ServerTransaction(_Transaction):
    """IST for an INVITE, NIST for anything else except ACK."""

    __slots__ = ("_trying_delay", "auto_trying", "key", "last_response", "legacy", "to_tag")

    def __init__(
        self,
        request: SipRequest,
        *,
        now: float,
        timers: SipTimers = SipTimers(),  # noqa: B008  (frozen, so sharing the default is safe)
        reliable: bool = False,
        context: object = None,
        auto_trying: bool = True,
        trying_delay: float = TRYING_DELAY,
    ) -> None:
        if not isinstance(request, SipRequest):
            raise LocalProtocolError("a server transaction starts with a SipRequest")
        method = request.method
        if method == "ACK":
            raise LocalProtocolError("an ACK never creates a server transaction (§17.2.3)")
        if trying_delay < 0:
            raise LocalProtocolError("trying_delay must not be negative")
        super().__init__(request, TxKind.IST if method == "INVITE" else TxKind.NIST, timers, reliable, context)
        self.auto_trying = auto_trying
        self._trying_delay = trying_delay
        self.branch = request.top_via.branch
        self.legacy = not (self.branch is not None and self.branch.startswith(MAGIC_COOKIE))
        """True when the request came from an RFC 2543 element (no z9hG4bK branch)."""
        self.key: tuple[object, ...] = _server_key(request, method)
        """Matching key (§17.2.3): (branch, sent-by host, port, method) or the RFC 2543 tuple."""
        self.last_response: SipResponse | None = None
        self.to_tag: str | None = None
        """To tag of the final response sent (RFC 2543 ACK matching needs it)."""
        self._start(now)

    def send_response(self, response: SipResponse, now: float) -> None:
        """Send a response from the TU; raises LocalProtocolError where the machine forbids it."""
        if not isinstance(response, SipResponse):
            raise LocalProtocolError("send_response needs a SipResponse")
        code = response.status_code
        if code < 200:
            inp = TxInput.PROVISIONAL
        elif self.kind is TxKind.NIST:
            inp = TxInput.FINAL
        else:
            inp = TxInput.SUCCESS if code < 300 else TxInput.FAILURE
        if (self.state, inp) not in self._table:
            raise LocalProtocolError(
                f"{self.kind.value} in state {self.state.value} cannot send a {code} response"
            )
        try:
            cseq = response.cseq
        except SipParseError as exc:
            raise LocalProtocolError(f"response has no usable CSeq: {exc}") from exc
        if cseq != self.request.cseq:
            raise LocalProtocolError(f"response CSeq {cseq} does not match the request's {self.request.cseq}")
        self._dispatch(inp, response, now)
        self._changed()

    def receive_request(self, request: SipRequest, now: float) -> None:
        """Feed a request the layer matched here: a retransmission, or the ACK (IST only)."""
        method = request.method
        if method == "ACK" and self.kind is TxKind.IST:
            inp = TxInput.ACK
        elif method == self.request.method:
            inp = TxInput.REQUEST
        else:
            raise LocalProtocolError(f"{method} does not belong to the {self.request.method} server transaction")
        self._dispatch(inp, request, now)
        self._changed()

    def _trying_value(self) -> float | None:
        return self._trying_delay if self.auto_trying else None

    def _as_tx(self) -> ServerTransaction:
        return self

    def _act(self, action: TxAction, inp: TxInput, msg: SipMessage | None, now: float) -> None:
        if action is TxAction.SEND_RESPONSE and isinstance(msg, SipResponse):
            self._timers.pop(TxInput.TIMER_TRYING, None)
            self.last_response = msg
            if msg.status_code >= 200:
                try:
                    self.to_tag = msg.to.tag
                except SipParseError:
                    self.to_tag = None
            self._send(msg)
        elif action is TxAction.RESEND_RESPONSE:
            if self.last_response is not None:
                self._send(self.last_response)
            elif self.auto_trying and self.kind is TxKind.IST:
                self._timers.pop(TxInput.TIMER_TRYING, None)
                self._act(TxAction.SEND_TRYING, inp, msg, now)
        elif action is TxAction.SEND_TRYING:
            self.last_response = make_response(self.request, 100)
            self._send(self.last_response)
        elif action is TxAction.RETRANSMIT:
            if self.last_response is not None:
                self._send(self.last_response)
            self._rearm_retransmit(inp, now)
        elif action is TxAction.PASS_ACK_TO_TU and isinstance(msg, SipRequest):
            self._emit(AckReceived(self, msg))
        else:
            self._act_common(action, inp)


# -- the layer -------------------------------------------------------------------------------
class TransactionLayer:
    """Owns every transaction: creation, matching (§17.1.3, §17.2.3, §9.2), timers, output.

    Output of all transactions is queued here in the order it was produced:
    :meth:`messages_to_send` gives ``(message, context)`` pairs, :meth:`events` the events.
    One heap orders the deadlines of all transactions; terminated transactions are forgotten.
    """

    __slots__ = ("_clients", "_events", "_heap", "_legacy_acks", "_out", "_seq", "_servers", "timers")

    def __init__(self, timers: SipTimers = SipTimers()) -> None:  # noqa: B008
        self.timers = timers
        self._clients: dict[tuple[str, str], ClientTransaction] = {}
        self._servers: dict[tuple[object, ...], ServerTransaction] = {}
        self._legacy_acks: dict[tuple[object, ...], list[ServerTransaction]] = {}
        self._out: list[tuple[SipMessage, object]] = []
        self._events: list[TransactionEvent] = []
        self._heap: list[tuple[float, int, _Transaction]] = []
        self._seq = 0

    def __len__(self) -> int:
        return len(self._clients) + len(self._servers)

    @property
    def client_transactions(self) -> list[ClientTransaction]:
        return list(self._clients.values())

    @property
    def server_transactions(self) -> list[ServerTransaction]:
        return list(self._servers.values())

    # -- creation -------------------------------------------------------------------------
    def client(
        self, request: SipRequest, now: float, reliable: bool = False, context: object = None
    ) -> ClientTransaction:
        """Start a client transaction; the request is queued for sending at once."""
        tx = ClientTransaction(request, now=now, timers=self.timers, reliable=reliable, context=context)
        if tx.key in self._clients:
            raise LocalProtocolError(f"a client transaction with key {tx.key} exists already")
        self._clients[tx.key] = tx
        self._attach(tx)
        return tx

    def server(
        self,
        request: SipRequest,
        now: float,
        reliable: bool = False,
        context: object = None,
        *,
        auto_trying: bool = True,
        trying_delay: float = TRYING_DELAY,
    ) -> ServerTransaction:
        """Create the server transaction for a request :meth:`match_request` did not match."""
        tx = ServerTransaction(request, now=now, timers=self.timers, reliable=reliable, context=context,
                               auto_trying=auto_trying, trying_delay=trying_delay)
        if tx.key in self._servers:
            raise LocalProtocolError("a server transaction for this request exists already (match it first)")
        self._servers[tx.key] = tx
        if tx.legacy and tx.kind is TxKind.IST:
            self._legacy_acks.setdefault(_legacy_ack_key(request), []).append(tx)
        self._attach(tx)
        return tx

    def _attach(self, tx: _Transaction) -> None:
        tx._owner = self
        ctx = tx.context
        self._out.extend((m, ctx) for m in tx.messages_to_send())
        self._events.extend(tx.events())
        self._schedule(tx)

    # -- matching -------------------------------------------------------------------------
    def match_response(self, response: SipResponse) -> ClientTransaction | None:
        """§17.1.3: the top Via branch and the CSeq method name the client transaction."""
        branch = response.top_via.branch
        if branch is None:
            return None
        return self._clients.get((branch, response.cseq.method))  # no client key has method ACK

    def match_request(self, request: SipRequest) -> ServerTransaction | None:
        """§17.2.3: the server transaction a request (a retransmission or an ACK) belongs to."""
        via = request.top_via
        branch = via.branch
        method = request.method
        if branch is not None and branch.startswith(MAGIC_COOKIE):
            return self._servers.get((branch, via.host.lower(), via.port, transaction_method(method)))
        if method != "ACK":
            return self._servers.get(_legacy_key(request, method))
        candidates = self._legacy_acks.get(_legacy_ack_key(request))
        if not candidates:
            return None
        tag = request.to.tag
        for tx in candidates:
            if tx.to_tag is not None and tx.to_tag == tag:
                return tx
        return None

    def find_invite_for_cancel(self, cancel: SipRequest) -> ServerTransaction | None:
        """§9.2: the INVITE server transaction a CANCEL refers to (§17.2.3 rules, method INVITE)."""
        return self._servers.get(_server_key(cancel, "INVITE"))

    # -- timers and output ----------------------------------------------------------------
    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap:
            deadline, _, tx = heap[0]
            if tx._heap_deadline == deadline and tx.state is not TxState.TERMINATED:
                return deadline
            heapq.heappop(heap)
        return None

    def handle_timeout(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, tx = heapq.heappop(heap)
            if tx._heap_deadline != deadline or tx.state is TxState.TERMINATED:
                continue
            tx._heap_deadline = None
            tx.handle_timeout(now)

    def messages_to_send(self) -> list[tuple[SipMessage, object]]:
        """Drain ``(message, context)`` pairs from every transaction, in order."""
        out, self._out = self._out, []
        return out

    def events(self) -> list[TransactionEvent]:
        out, self._events = self._events, []
        return out

    # -- called by transactions -------------------------------------------------------------
    def _schedule(self, tx: _Transaction) -> None:
        deadline = tx.next_deadline()
        if deadline is not None and deadline != tx._heap_deadline:
            self._seq += 1
            heapq.heappush(self._heap, (deadline, self._seq, tx))
        tx._heap_deadline = deadline

    def _retire(self, tx: _Transaction) -> None:
        if isinstance(tx, ClientTransaction):
            if self._clients.get(tx.key) is tx:
                del self._clients[tx.key]
        elif isinstance(tx, ServerTransaction):
            if self._servers.get(tx.key) is tx:
                del self._servers[tx.key]
            if tx.legacy and tx.kind is TxKind.IST:
                key = _legacy_ack_key(tx.request)
                bucket = self._legacy_acks.get(key)
                if bucket is not None and tx in bucket:
                    bucket.remove(tx)
                    if not bucket:
                        del self._legacy_acks[key]
