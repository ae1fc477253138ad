"""SipStack: the sans-IO core of a SIP element (RFC 3261 §8, §17, §18).

It sits between the transports and the transaction user (TU: registration, INVITE
sessions, a registrar or proxy)::

    bytes + Target ──receive()──▶ parse ─▶ §18.2.1 received/rport ─▶ match transaction
                                                                   │
            events(): RequestReceived / ResponseReceived / ... ◀───┘
    TU ──send_request()/send_response()/send_ack()──▶ transactions ─▶ datagrams_to_send()

* Requests that fail to parse get a stateless 400 when Via, Call-ID, CSeq, From and To can
  still be read (RFC 3261 §8.2, §18.1.2); otherwise they are dropped and counted.
* Responses are routed per §18.2.2: back on the connection the request came in on when it
  is still open (reliable transports), else to ``received``/``rport`` of the top Via (RFC 3581).
* A CANCEL matching a pending INVITE server transaction is answered 200 here and reported as
  :class:`CancelReceived`; the TU answers the INVITE with 487 (§9.2). Unmatched: 481.
* ACK for a non-2xx final is absorbed by its transaction; ACK for a 2xx goes to the TU
  (it belongs to the dialog, §13.2.2.4). The first final response of an INVITE client
  transaction is a :class:`ResponseReceived`; every later 2xx (another fork's answer or a
  retransmission, passed up by the ICT in Accepted, RFC 6026 §7.2) and a 2xx with no
  transaction left is a :class:`StrayResponse`, so the UAC core ACKs each one by its To tag
  (and BYEs the forks it does not want, §13.2.2.4).
* A request over UDP larger than ``max_udp_size`` (1300 bytes: the path MTU is unknown) goes
  over TCP to the same host and port when the caller allows it, with the top Via rewritten to
  TCP (§18.1.1).
* A client transaction timeout or transport error becomes a synthesised 408 / 503
  :class:`ResponseReceived` with ``synthetic=True`` (§8.1.3.1, §17.1.4).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import LocalProtocolError, SipParseError
from .grammar import split_list
from .header_types import Via
from .message import SipMessage, SipRequest, SipResponse, make_response, parse_message
from .timers import SipTimers
from .transaction import (
    ClientTransaction,
    ServerTransaction,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimeout,
    TransportFailed,
)
from .transaction import (
    ResponseReceived as TxResponseReceived,
)

__all__ = [
    "CancelReceived",
    "MessageDropped",
    "RequestReceived",
    "ResponseReceived",
    "SipStack",
    "StrayResponse",
    "Target",
]

RELIABLE = frozenset({"tcp", "tls", "ws", "wss"})


@dataclass(frozen=True, slots=True)
class Target:
    """Where a message goes or came from. ``flow`` is the transport's connection handle, if any."""

    transport: str
    host: str
    port: int
    flow: Any = field(default=None, compare=False)

    @property
    def reliable(self) -> bool:
        return self.transport in RELIABLE

    def __str__(self) -> str:
        return f"{self.transport}:{self.host}:{self.port}"


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestReceived:
    request: SipRequest
    transaction: ServerTransaction | None
    """None for an ACK to a 2xx (no transaction, RFC 3261 §17)."""
    source: Target


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseReceived:
    response: SipResponse
    transaction: ClientTransaction
    synthetic: bool = False
    """True when the stack made it up (408 on timeout, 503 on transport error)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelReceived:
    cancel: SipRequest
    invite_transaction: ServerTransaction


@dataclass(frozen=True, slots=True, kw_only=True)
class StrayResponse:
    """A 2xx to an INVITE outside its transaction's single final response (see the module doc)."""

    response: SipResponse
    source: Target
    transaction: ClientTransaction | None = None
    """The INVITE client transaction (in Accepted) when it still exists."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageDropped:
    reason: str
    source: Target


StackEvent = RequestReceived | ResponseReceived | CancelReceived | StrayResponse | MessageDropped


class SipStack:
    """Transactions + transport-layer rules, no I/O.

    ``sent_by`` maps a transport name to the host:port we put in Via for it (the stack does
    not know its sockets).
    """

    def __init__(
        self,
        sent_by: dict[str, tuple[str, int]],
        *,
        timers: SipTimers | None = None,
        rng: Callable[[int], bytes] = os.urandom,
        user_agent: str | None = "pyvoice-stack",
        max_udp_size: int = 1300,
    ) -> None:
        self.sent_by = dict(sent_by)
        self.max_udp_size = max_udp_size
        """§18.1.1: larger requests switch from UDP to TCP (when the caller allows it)."""
        self.timers = timers or SipTimers()
        self.rng = rng
        self.user_agent = user_agent
        self.transactions = TransactionLayer(self.timers)
        self._out: list[tuple[bytes, Target]] = []
        self._events: list[StackEvent] = []
        self._ict_final: dict[int, ClientTransaction] = {}
        self.dropped = 0

    # -- helpers --------------------------------------------------------------------------
    def new_branch(self) -> str:
        return "z9hG4bK" + self.rng(10).hex()

    def via_for(self, transport: str, branch: str | None = None) -> str:
        host, port = self.sent_by.get(transport) or next(iter(self.sent_by.values()))
        hp = f"[{host}]" if ":" in host and not host.startswith("[") else host
        if port:
            hp = f"{hp}:{port}"
        return f"SIP/2.0/{transport.upper()} {hp};branch={branch or self.new_branch()};rport"

    # -- outgoing ------------------------------------------------------------------------------
    def send_request(self, request: SipRequest, target: Target, now: float, *,
                     allow_tcp: bool = True) -> ClientTransaction:
        """Add our Via (fresh branch) and send ``request`` in a new client transaction.

        With ``allow_tcp`` (the target's transport was not forced by a ``transport=udp``
        URI parameter) a UDP request above ``max_udp_size`` bytes goes over TCP (§18.1.1);
        the transaction's ``context`` is then the TCP target.
        """
        if request.method == "ACK":
            raise LocalProtocolError("ACK is not sent in a transaction; use send_ack()")
        if request.method != "CANCEL" or "via" not in request.headers:
            request.headers.add_first("Via", self.via_for(target.transport))
        self._fill(request)
        if (allow_tcp and target.transport == "udp" and target.flow is None
                and len(bytes(request)) > self.max_udp_size):
            target = Target("tcp", target.host, target.port)
            via = request.top_via
            via.transport = "TCP"
            if "tcp" in self.sent_by:
                host, port = self.sent_by["tcp"]
                via.host = f"[{host}]" if ":" in host and not host.startswith("[") else host
                via.port = port or None
            idx = request.headers.keys().index("via")
            request.headers.replace_at(idx, ", ".join([str(via), *split_list(request.headers.value_at(idx))[1:]]))
        return self.transactions.client(request, now=now, reliable=target.reliable, context=target)

    def send_cancel(self, invite_tx: ClientTransaction, now: float, *,
                    headers: list[tuple[str, str]] | None = None) -> ClientTransaction:
        """CANCEL a pending INVITE (RFC 3261 §9.1): same branch, same target.

        ``headers`` are added to the CANCEL, e.g. a Reason (RFC 3326).
        """
        cancel = invite_tx.cancel_request()
        for name, value in headers or ():
            cancel.headers.add(name, value)
        target = invite_tx.context
        if not isinstance(target, Target):
            raise LocalProtocolError("the INVITE was not sent by this stack")
        return self.transactions.client(cancel, now=now, reliable=target.reliable, context=target)

    def send_ack(self, ack: SipRequest, target: Target) -> None:
        """ACK for a 2xx: end to end, no transaction, a new branch (RFC 3261 §13.2.2.4)."""
        if "via" not in ack.headers:
            ack.headers.add_first("Via", self.via_for(target.transport))
        self._fill(ack)
        self._out.append((bytes(ack), target))

    def send_response(self, transaction: ServerTransaction, response: SipResponse, now: float) -> None:
        if self.user_agent and "server" not in response.headers:
            response.headers.add("Server", self.user_agent)
        transaction.send_response(response, now)

    def send_stateless(self, message: SipMessage, target: Target) -> None:
        """Send outside any transaction (2xx retransmissions by a UAS core, stateless replies)."""
        self._out.append((bytes(message), target))

    def respond_stateless(self, request: SipRequest, status: int, source: Target, reason: str | None = None,
                          headers: list[tuple[str, str]] | None = None) -> None:
        resp = make_response(request, status, reason, rng=self.rng, headers=headers)
        self._out.append((bytes(resp), self.response_target(request, source)))

    def _fill(self, request: SipRequest) -> None:
        h = request.headers
        if "max-forwards" not in h:
            h.add("Max-Forwards", "70")
        if self.user_agent and "user-agent" not in h:
            h.add("User-Agent", self.user_agent)

    def response_target(self, request: SipRequest, source: Target) -> Target:
        """Where responses to ``request`` go (RFC 3261 §18.2.2, RFC 3581 §4)."""
        if source.reliable and source.flow is not None:
            return source
        try:
            via = request.top_via
        except SipParseError:
            return source
        host = via.received or via.host
        port = via.rport or (source.port if via.has_param("rport") else (via.port or 5060))
        if via.maddr:
            host = via.maddr
        return Target(source.transport, host.strip("[]"), port)

    # -- incoming -----------------------------------------------------------------------------
    def receive(self, data: bytes, source: Target, now: float) -> None:
        try:
            msg = parse_message(data)
            msg.top_via  # noqa: B018  (needed to route anything)
            msg.cseq  # noqa: B018
            msg.call_id  # noqa: B018
        except SipParseError as exc:
            self._bad_message(data, source, exc)
            return
        if isinstance(msg, SipRequest):
            self._receive_request(msg, source, now)
        else:
            self._receive_response(msg, source, now)

    def _bad_message(self, data: bytes, source: Target, exc: SipParseError) -> None:
        self.dropped += 1
        self._events.append(MessageDropped(reason=str(exc), source=source))
        try:
            msg = parse_message(data)
        except SipParseError:
            return
        if isinstance(msg, SipRequest) and msg.method != "ACK":
            try:
                for name in ("via", "call-id", "cseq", "from", "to"):
                    if name not in msg.headers:
                        return
                self.respond_stateless(msg, exc.status_hint if exc.status_hint >= 400 else 400, source,
                                       reason=None, headers=[("Warning", f'399 - "{_quote(str(exc))}"')])
            except SipParseError:
                return

    def _receive_request(self, req: SipRequest, source: Target, now: float) -> None:
        via = req.top_via
        # §18.2.1 received, RFC 3581 rport
        if via.host.strip("[]") != source.host or via.has_param("rport"):
            self._stamp_via(req, via, source)
        tx = self.transactions.match_request(req)
        if tx is not None:
            tx.receive_request(req, now)
            return
        if req.method == "ACK":
            self._events.append(RequestReceived(request=req, transaction=None, source=source))
            return
        if req.method == "CANCEL":
            invite_tx = self.transactions.find_invite_for_cancel(req)
            ctx = self.transactions.server(req, now=now, reliable=source.reliable,
                                           context=self.response_target(req, source))
            if invite_tx is None:
                ctx.send_response(make_response(req, 481), now)
                return
            ctx.send_response(make_response(req, 200, rng=self.rng), now)
            self._events.append(CancelReceived(cancel=req, invite_transaction=invite_tx))
            return
        stx = self.transactions.server(req, now=now, reliable=source.reliable,
                                       context=self.response_target(req, source))
        self._events.append(RequestReceived(request=req, transaction=stx, source=source))

    @staticmethod
    def _stamp_via(req: SipRequest, via: Via, source: Target) -> None:
        h = req.headers
        if via.host.strip("[]") != source.host:
            via.set_param("received", source.host)
        if via.has_param("rport"):
            via.set_param("rport", str(source.port))
        # rewrite the first element of the first Via field, keep the others as they were
        idx = h.keys().index("via")
        elements = split_list(h.value_at(idx))
        h.replace_at(idx, ", ".join([str(via), *elements[1:]]))

    def _receive_response(self, resp: SipResponse, source: Target, now: float) -> None:
        tx = self.transactions.match_response(resp)
        if tx is None:
            self._events.append(StrayResponse(response=resp, source=source))
            return
        tx.receive_response(resp, now)

    # -- draining -------------------------------------------------------------------------------
    def _pump(self) -> None:
        for event in self.transactions.events():
            if isinstance(event, TxResponseReceived):
                ctx, resp = event.transaction, event.response
                if ctx.is_invite and resp.status_code >= 200:
                    if id(ctx) in self._ict_final:
                        target = ctx.context if isinstance(ctx.context, Target) else Target("udp", "", 0)
                        self._events.append(StrayResponse(response=resp, source=target, transaction=ctx))
                        continue
                    self._ict_final[id(ctx)] = ctx
                self._events.append(ResponseReceived(response=resp, transaction=ctx))
            elif isinstance(event, TransactionTerminated):
                self._ict_final.pop(id(event.transaction), None)
            elif isinstance(event, TransactionTimeout):
                tx = event.transaction
                if isinstance(tx, ClientTransaction):
                    resp = make_response(tx.request, 408, "Request Timeout (no response)")
                    self._events.append(ResponseReceived(response=resp, transaction=tx, synthetic=True))
            elif isinstance(event, TransportFailed):
                tx = event.transaction
                if isinstance(tx, ClientTransaction):
                    resp = make_response(tx.request, 503, "Service Unavailable (transport error)")
                    self._events.append(ResponseReceived(response=resp, transaction=tx, synthetic=True))
        for message, context in self.transactions.messages_to_send():
            if isinstance(context, Target):
                self._out.append((bytes(message), context))

    def events(self) -> list[StackEvent]:
        self._pump()
        out, self._events = self._events, []
        return out

    def datagrams_to_send(self) -> list[tuple[bytes, Target]]:
        self._pump()
        out, self._out = self._out, []
        return out

    def transport_error(self, transaction: ClientTransaction, now: float) -> None:
        """The transport could not send the transaction's request: the TU sees a 503 (§8.1.3.1)."""
        transaction.transport_error(now)

    def next_deadline(self) -> float | None:
        return self.transactions.next_deadline()

    def handle_timeout(self, now: float) -> None:
        self.transactions.handle_timeout(now)


def _quote(text: str) -> str:
    return text.replace("\\", "").replace('"', "'")[:200]
