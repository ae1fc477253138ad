"""Call routing between the registered users of the embedded platform: a record-routing proxy.

Calls between users: a record-routing stateful proxy (RFC 3261 §16), chosen over a B2BUA
because it keeps the end-to-end semantics of everything the UAs negotiate (PRACK, UPDATE,
re-INVITE, INFO, session timers) without the platform understanding any of it::

    INVITE sip:bob@domain ──auth──▶ location: bob's live bindings ──fork──▶ one branch per flow
        (404: bob never registered, 480: no live binding or every flow is dead)
    responses ◀── 1xx (not 100) relayed, every 2xx relayed, best final when all branches end
    CANCEL ──▶ CANCEL each ringing branch; Timer C (ring_timeout) does the same
    in-dialog (Route: our Record-Route) ──▶ the R-URI's current binding, else the flow token

Record-Route is doubled (one entry per side, RFC 5658), so each side sees an address it can
reach on its own transport (WS ↔ UDP/TCP). The user part of each entry is a signed flow
token (transport, address, connection id), so in-dialog requests reach a WebSocket client,
which has no address of its own, even when it never registered (a caller that only calls).

Proxy transaction (one per proxied request, the §16.7 response context)::

    FORWARDED ─1xx─▶ relay (the first provisional allows CANCEL on that branch)
        │      ─2xx─▶ relay at once, CANCEL the other branches ─▶ ANSWERED
        │      ─3xx-6xx─▶ keep the best (6xx CANCELs the others)
        └─ all branches final ─▶ best response upstream (408/503 of a located target → 480) ─▶ DONE
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import os
from collections import OrderedDict
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sipcore.errors import LocalProtocolError, SipError, SipParseError
from sipcore.message import SipRequest, SipResponse, make_response, random_tag
from sipcore.stack import CancelReceived, RequestReceived, StrayResponse, Target
from sipcore.transaction import ClientTransaction, ServerTransaction
from sipcore.transport import Flow
from sipcore.uri import SipUri, Uri

if TYPE_CHECKING:
    from .platform import Platform

__all__ = ["TEST_NUMBERS", "CallRouter"]

log = logging.getLogger("voice_sdk.platform")

TEST_NUMBERS = ("echo", "tone", "ivr", "busy", "noanswer")
"""Numbers the platform's own UA answers; the router leaves requests for them alone."""


@dataclass(slots=True, eq=False)
class _Branch:
    """One forwarded copy of a proxied request (RFC 3261 §16.6)."""

    target: Target
    request: SipRequest
    tx: ClientTransaction | None = None
    provisional: bool = False
    final: SipResponse | None = None
    cancel_wanted: bool = False
    cancelled: bool = False


@dataclass(slots=True, eq=False)
class _Context:
    """The response context of one proxied server transaction (RFC 3261 §16.7)."""

    request: SipRequest
    server_tx: ServerTransaction
    located: bool
    """Targets came from the location service: dead flows mean the user is offline (480)."""
    branches: list[_Branch] = field(default_factory=list)
    answered: bool = False
    final_sent: bool = False
    cancelled: bool = False
    timed_out: bool = False
    timer_c: asyncio.TimerHandle | None = None


@dataclass(frozen=True, slots=True)
class _Plan:
    """How a request is routed: ``own_routes`` Route entries of ours to pop, the flow token found."""

    initial: bool
    own_routes: int
    token_target: Target | None


class CallRouter:
    """Routes requests between registered users: a record-routing stateful proxy (RFC 3261 §16).

    It sits in front of the platform's UserAgent on the same endpoint: requests it does not
    route (REGISTER, test numbers, dialogs of test-number calls) go on to the UA unchanged.
    """

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.endpoint = platform.endpoint
        self._ua_request = self.endpoint.on_request
        self._ua_cancel = self.endpoint.on_cancel
        self._contexts: dict[int, _Context] = {}
        self._key = hashlib.sha256(b"flow-token" + os.urandom(32)).digest()
        self.forwarded = 0
        """Requests forwarded (initial and in-dialog, ACK included)."""
        self.endpoint.on_request = self._on_request
        self.endpoint.on_cancel = self._on_cancel
        self.endpoint.on_flow_closed = platform._flow_closed
        self._ua_stray = self.endpoint.on_stray_response
        self.endpoint.on_stray_response = self._on_stray
        self._answered: OrderedDict[str, tuple[SipRequest, object]] = OrderedDict()
        """Our branch of every answered forwarded INVITE -> (original request, upstream target)."""

    @property
    def active(self) -> int:
        return len(self._contexts)

    def close(self) -> None:
        """Stop Timer C of every proxied INVITE still ringing (the endpoint closes next)."""
        for ctx in self._contexts.values():
            if ctx.timer_c is not None:
                ctx.timer_c.cancel()
        self._contexts.clear()

    # -- flow tokens (the user part of our Record-Route entries) ------------------------------------------
    def _flow_token(self, target: Target) -> str:
        conn_id = target.flow.conn_id if isinstance(target.flow, Flow) else 0
        payload = f"{target.transport}|{target.host}|{target.port}|{conn_id}".encode()
        mac = hmac.new(self._key, payload, hashlib.sha256).digest()[:10]
        return base64.urlsafe_b64encode(mac + payload).decode().rstrip("=")

    def _decode_token(self, token: str | None) -> Target | None:
        if not token or len(token) > 200:
            return None
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            mac, payload = raw[:10], raw[10:]
            if not hmac.compare_digest(mac, hmac.new(self._key, payload, hashlib.sha256).digest()[:10]):
                return None
            transport, host, port, conn = payload.decode().split("|")
            port_n, conn_id = int(port), int(conn)
        except (ValueError, UnicodeDecodeError):
            return None
        flow = Flow(transport, ("", 0), (host, port_n), conn_id) if conn_id else None
        return Target(transport, host, port_n, flow)

    def _record_route(self, facing: Target) -> str:
        host, port = self.endpoint.stack.sent_by.get(facing.transport) or next(iter(self.endpoint.stack.sent_by.values()))
        return f"<sip:{self._flow_token(facing)}@{host}:{port};transport={facing.transport};lr>"

    def _is_own(self, uri: Uri | None) -> bool:
        if not isinstance(uri, SipUri):
            return False
        host = uri.host.strip("[]")
        return any(host == h and (uri.port or 5060) == p for h, p in self.endpoint.stack.sent_by.values())

    # -- classification --------------------------------------------------------------------------------
    def _plan(self, req: SipRequest) -> _Plan | None:
        """How to route ``req``, or None when it is for the platform's own UA."""
        if req.method in ("REGISTER", "CANCEL"):
            return None
        own = 0
        token_target: Target | None = None
        for route in req.routes:
            if not self._is_own(route.uri):
                break
            own += 1
            token_target = self._decode_token(route.uri.user if isinstance(route.uri, SipUri) else None) \
                or token_target
        uri = req.uri
        if req.to.tag is not None:
            if self._is_own(uri):
                return None  # a dialog of the platform UA itself (a test-number call)
            if token_target is not None or self.platform.binding_for_contact(uri) is not None:
                return _Plan(False, own, token_target)
            return None
        if req.method not in ("INVITE", "MESSAGE") or not isinstance(uri, SipUri) or not uri.user:
            return None
        if self.platform.binding_for_contact(uri) is not None:
            return _Plan(True, own, None)
        if uri.user in TEST_NUMBERS or uri.user not in self.platform.bindings:
            return None  # a test number, or a user who never registered (the UA answers 404)
        if uri.host.lower() != self.platform.config.domain.lower() and not self._is_own(uri):
            return None
        return _Plan(True, own, None)

    def _on_request(self, ev: RequestReceived) -> Awaitable[None] | None:
        try:
            plan = self._plan(ev.request)
        except SipParseError as exc:
            if ev.transaction is not None:
                self.endpoint.respond(ev.transaction, make_response(ev.request, 400, str(exc)[:80],
                                                                    to_tag=random_tag()))
            return None
        if plan is None:
            return self._ua_request(ev) if self._ua_request is not None else None
        try:
            self._route(ev, plan)
        except SipParseError as exc:
            if ev.transaction is not None:
                self.endpoint.respond(ev.transaction, make_response(ev.request, 400, str(exc)[:80]))
        return None

    # -- forwarding ----------------------------------------------------------------------------------------
    def _dialog_target(self, req: SipRequest, plan: _Plan) -> Target | None:
        binding = self.platform.binding_for_contact(req.uri)
        if binding is not None:
            return binding.target  # the flow the peer registered over last (survives its reconnects)
        return plan.token_target

    def _prepare(self, req: SipRequest, plan: _Plan, *, uri: str | None = None,
                 record_route: tuple[Target, Target] | None = None) -> SipRequest:
        fwd = req.copy()
        h = fwd.headers
        for _ in range(plan.own_routes):
            h.remove_first("Route")
        if uri is not None:
            fwd.uri = uri
        mf = req.max_forwards
        h.set("Max-Forwards", str((mf if mf is not None else 70) - 1))
        if plan.initial:  # credentials for our realm were consumed here
            h.remove("Authorization")
            h.remove("Proxy-Authorization")
        if record_route is not None:
            caller_side, callee_side = record_route
            h.add_first("Record-Route", self._record_route(caller_side))
            h.add_first("Record-Route", self._record_route(callee_side))
        return fwd

    def _route(self, ev: RequestReceived, plan: _Plan) -> None:
        req = ev.request
        tx = ev.transaction
        if tx is None:  # ACK for a 2xx: end to end, forwarded statelessly (RFC 3261 §16.11)
            target = self._dialog_target(req, plan)
            if target is None:
                return
            ack = self._prepare(req, plan)
            ack.headers.add_first("Via", self.endpoint.stack.via_for(target.transport))
            self.forwarded += 1
            self.endpoint.send_stateless(ack, target)
            return

        def respond(resp: SipResponse) -> None:
            self.endpoint.respond(tx, resp)

        mf = req.max_forwards
        if mf is not None and mf <= 0:
            respond(make_response(req, 483, to_tag=random_tag()))
            return
        if len(self._contexts) + len(self.platform.calls) >= self.platform.config.max_calls:
            respond(make_response(req, 503, "Too many calls", to_tag=random_tag()))
            return
        if plan.initial:
            if self.platform._authenticate(req, respond) is None:
                return
            binding = self.platform.binding_for_contact(req.uri)
            user = req.uri.user if isinstance(req.uri, SipUri) else None
            targets = [binding] if binding is not None else self.platform.live_bindings(user or "")
            if not targets:
                respond(make_response(req, 480, "User offline", to_tag=random_tag()))
                return
            ctx = _Context(req, tx, located=True)
            rr = req.method == "INVITE"
            for b in targets:
                fwd = self._prepare(req, plan, uri=b.contact, record_route=(ev.source, b.target) if rr else None)
                ctx.branches.append(_Branch(b.target, fwd))
        else:
            target = self._dialog_target(req, plan)
            if target is None:
                respond(make_response(req, 404, "Not Here", to_tag=random_tag()))
                return
            ctx = _Context(req, tx, located=False)
            ctx.branches.append(_Branch(target, self._prepare(req, plan)))
        self._contexts[id(tx)] = ctx
        if req.method == "INVITE":
            respond(make_response(req, 100))
            if plan.initial:
                ctx.timer_c = asyncio.get_running_loop().call_later(
                    self.platform.config.ring_timeout, self._timer_c, ctx)
        log.info("proxy %s %s -> %s", req.method, req.uri_text, ", ".join(str(b.target) for b in ctx.branches))
        for br in ctx.branches:
            self._start_branch(ctx, br)

    def _start_branch(self, ctx: _Context, br: _Branch) -> None:
        try:
            tx, fut = self.endpoint.start_request(br.request, br.target,
                                                  on_provisional=lambda r: self._provisional(ctx, br, r))
        except (SipError, LocalProtocolError) as exc:
            log.warning("cannot forward to %s: %s", br.target, exc)
            self._final(ctx, br, make_response(br.request, 503, "Service Unavailable (cannot forward)"))
            return
        self.forwarded += 1
        br.tx = tx

        def done(f: asyncio.Future[SipResponse]) -> None:
            if f.cancelled():
                return
            exc = f.exception()
            resp = make_response(br.request, 500, f"Proxy error: {exc}"[:80]) if exc is not None else f.result()
            self._final(ctx, br, resp)

        fut.add_done_callback(done)

    def _on_stray(self, ev: StrayResponse) -> None:
        """A 2xx retransmission of a forwarded INVITE (its ACK was lost): relay it upstream
        statelessly like any 2xx (RFC 3261 §16.7, RFC 6026 §8.2); anything else goes to the UA."""
        entry = self._answered.get(ev.response.branch or "")
        if entry is None or not 200 <= ev.response.status_code < 300:
            if self._ua_stray is not None:
                self._ua_stray(ev)
            return
        _request, upstream = entry
        out = ev.response.copy()
        out.headers.remove_first("Via")
        if isinstance(upstream, Target):
            self.endpoint.send_stateless(out, upstream)

    def _relay(self, ctx: _Context, resp: SipResponse) -> None:
        """Send a downstream response upstream without our Via (RFC 3261 §16.7 step 9)."""
        out = resp.copy()
        out.headers.remove_first("Via")
        with contextlib.suppress(SipError, LocalProtocolError):
            self.endpoint.respond(ctx.server_tx, out)

    def _provisional(self, ctx: _Context, br: _Branch, resp: SipResponse) -> None:
        br.provisional = True
        if br.cancel_wanted:
            self._cancel_branch(br)
        if resp.status_code > 100 and not ctx.final_sent and not ctx.answered:
            self._relay(ctx, resp)

    def _final(self, ctx: _Context, br: _Branch, resp: SipResponse) -> None:
        if br.final is not None:
            return
        br.final = resp
        code = resp.status_code
        if 200 <= code < 300:
            self._relay(ctx, resp)  # every 2xx goes upstream, one per answered fork (§16.7 step 5)
            branch = br.request.branch
            if br.request.method == "INVITE" and branch:
                self._answered[branch] = (ctx.request, ctx.server_tx.context)
                while len(self._answered) > 4096:
                    self._answered.popitem(last=False)
            ctx.answered = True
            self._cancel_others(ctx, br)
        elif code >= 600:
            self._cancel_others(ctx, br)
        if any(b.final is None for b in ctx.branches):
            return
        self._contexts.pop(id(ctx.server_tx), None)
        if ctx.timer_c is not None:
            ctx.timer_c.cancel()
        if not ctx.answered and not ctx.final_sent:
            ctx.final_sent = True
            best = self._best(ctx)
            if best is None:
                return
            if isinstance(best, SipResponse):
                self._relay(ctx, best)
            else:
                code, reason = best
                self.endpoint.respond(ctx.server_tx, make_response(ctx.request, code, reason, to_tag=random_tag()))

    def _best(self, ctx: _Context) -> SipResponse | tuple[int, str] | None:
        """The response to send upstream when no branch answered (RFC 3261 §16.7 step 6)."""
        finals = [b.final for b in ctx.branches if b.final is not None]
        if not finals:
            return None
        if ctx.cancelled:
            return 487, "Request Terminated"
        if ctx.timed_out:
            return 480, "No answer"
        six = [r for r in finals if r.status_code >= 600]
        if six:
            return six[0]
        if ctx.located and all(r.status_code in (408, 503) for r in finals):
            return 480, "User offline (no reachable flow)"
        best = min(finals, key=lambda r: (r.status_code // 100, r.status_code))
        if best.status_code == 503:
            return 500, "Next hop unavailable"  # a 503 means "this proxy", so it is not relayed as is
        return best

    # -- CANCEL and Timer C ------------------------------------------------------------------------------
    def _cancel_branch(self, br: _Branch) -> None:
        if br.cancelled or br.final is not None or br.tx is None:
            return
        br.cancelled = True
        with contextlib.suppress(SipError, LocalProtocolError):
            self.endpoint.cancel(br.tx).add_done_callback(lambda f: f.cancelled() or f.exception())

    def _cancel_others(self, ctx: _Context, winner: _Branch | None) -> None:
        for b in ctx.branches:
            if b is winner or b.final is not None:
                continue
            b.cancel_wanted = True
            if b.provisional:
                self._cancel_branch(b)

    def _on_cancel(self, ev: CancelReceived) -> None:
        ctx = self._contexts.get(id(ev.invite_transaction))
        if ctx is None:
            if self._ua_cancel is not None:
                self._ua_cancel(ev)
            return
        ctx.cancelled = True
        ringing = any(b.provisional for b in ctx.branches)
        self._cancel_others(ctx, None)
        if not ringing and not ctx.final_sent and not ctx.answered:
            # nothing downstream can be cancelled yet (§9.1): end the caller's transaction now,
            # the branches are cancelled when their first provisional response arrives
            ctx.final_sent = True
            self.endpoint.respond(ctx.server_tx, make_response(ctx.request, 487, to_tag=random_tag()))

    def _timer_c(self, ctx: _Context) -> None:
        ctx.timer_c = None
        if ctx.answered or ctx.final_sent:
            return
        log.info("Timer C: %s unanswered after %.0f s", ctx.request.uri_text, self.platform.config.ring_timeout)
        ctx.timed_out = True
        self._cancel_others(ctx, None)
