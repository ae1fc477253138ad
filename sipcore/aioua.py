"""An asyncio SIP user agent core: INVITE sessions (RFC 3261 §13-§15) on top of :class:`AioSipEndpoint`.

The decisions live in sans-IO modules (:mod:`sipcore.invite`, :mod:`sipcore.prack`,
:mod:`sipcore.session_timer`, dialogs, transactions); this module keeps them fed, arms their
timers on the event loop and turns outcomes into futures and callbacks.

* UAC: INVITE with digest retry (401/407, §22.2), 420 (drops ``Require: 100rel``) and 422
  (raises Session-Expires, RFC 4028 §7.4) retries; provisional responses (early dialogs), PRACK
  for reliable ones (RFC 3262 §4); CANCEL (§9.1: sent once a provisional arrived; a 200 that
  wins the race is ACKed and BYEd); ACK for every 2xx, re-sent for each retransmission
  (§13.2.2.4). Forking: the first 2xx is the session, every 2xx from another fork is ACKed and
  ended with BYE.
* UAS: 420 for unknown Require, 422 for a too small Session-Expires; 180/183, sent reliably
  (RSeq, retransmitted until PRACK, RFC 3262 §3) when the UAC requires 100rel or supports it and
  the TU asks; 2xx retransmitted with T1 doubling up to T2 until the ACK arrives, whatever the
  transport, BYE after 64*T1 without ACK (§13.3.1.4); 487 after CANCEL, 481 for unknown dialogs.
  The Reason of a CANCEL (RFC 3326, e.g. ``SIP;cause=200;text="Call completed elsewhere"``) is
  kept on the :class:`IncomingInvite`.
* In a dialog: BYE (optional Reason), re-INVITE and UPDATE (RFC 3311) with or without an
  offer (491 glare with the §14.1 back-off, 500 + Retry-After when a request overtakes our
  answer), session timers (RFC 4028: the refresher re-sends UPDATE, or re-INVITE when the peer
  does not allow UPDATE, every half interval; the other side sends BYE when the session
  expires), INFO (application/dtmf-relay → ``on_dtmf``), MESSAGE, OPTIONS; out-of-order
  CSeq → 500 (§12.2.2).
* Outside dialogs: OPTIONS answered with Allow/Accept/Supported (§11.2), MESSAGE (RFC 3428)
  sent with :meth:`UserAgent.message` and received through ``on_message``.
* Events (RFC 6665): :meth:`UserAgent.subscribe` gives a :class:`ClientSubscription` (NOTIFYs,
  refresh before expiry, unsubscribe); ``on_subscribe`` hands a :class:`ServerSubscription`
  to the TU (accept → first NOTIFY at once, refreshes, expiry). PUBLISH (RFC 3903):
  :meth:`UserAgent.publish` (refresh, modify, remove, 412 → full state again); set
  ``publications`` to a :class:`~sipcore.subscription.PublicationStore` to act as the ESC. These
  driver classes live in :mod:`sipcore.aiosubscribe` (re-exported here).
* Transfer: :meth:`InviteSession.refer` (blind, or attended with Replaces) and its sipfrag
  progress; ``on_refer`` + :meth:`UserAgent.follow_refer` on the transferee; an INVITE with
  Replaces (RFC 3891) names the call it replaces, which is ended when the TU answers.
* Targets: the outbound proxy, else RFC 3263 through a resolver (NAPTR/SRV/A) with failover
  to the next server on a transport error, timeout or 503 (§4.3).

Routing is "everything through the outbound flow" (what WebSocket clients such as JsSIP do,
RFC 5626 style): a UAC sends all requests to its outbound target with Route headers from the
route set; a UAS answers on, and sends in-dialog requests to, the flow the INVITE came from.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .aiostack import AioSipEndpoint
from .aiosubscribe import ClientPublication, ClientSubscription, ServerSubscription
from .auth import AuthenticationFailed, DigestClient
from .dialog import Dialog, DialogError, DialogId, DialogState, dialog_id_for_request
from .errors import LocalProtocolError, SipError, SipParseError
from .header_extra import Reason, Replaces, parse_replaces
from .headers import Headers
from .invite import (
    CALL_COMPLETED_ELSEWHERE,
    AckAgain,
    Answered,
    AnswerUnusable,
    Failed,
    ForkDiscarded,
    InviteClient,
    InviteClientEvent,
    OfferState,
    ProvisionalReceived,
    ResponseRetransmitter,
    RetransmitAction,
    dtmf_relay_body,
    glare_backoff,
    next_attempt,
    parse_dtmf_relay,
    reasons_of,
    unsupported_requirements,
)
from .message import SipMessage, SipRequest, SipResponse, make_response, random_tag
from .prack import PrackTracker, ReliableProvisionalSender
from .refer import (
    ReferNotifier,
    ReferProgress,
    ReferTarget,
    ReferWatcher,
    check_replaces,
    parse_refer_to,
    refer_to_value,
)
from .resolver import NaptrRecord, Resolver, ResolverError, SrvRecord, locate, should_fail_over
from .session_timer import SessionTimer, SessionTimerAction, SessionTimerConfig
from .stack import CancelReceived, RequestReceived, StrayResponse, Target
from .subscription import (
    PublicationStore,
    Publisher,
    Subscriber,
    SubscriptionEnded,
)
from .transaction import ClientTransaction, ServerTransaction
from .uri import SipUri, parse_uri

__all__ = [
    "ALLOW",
    "CallFailed",
    "ClientPublication",
    "ClientSubscription",
    "IncomingInvite",
    "IncomingRefer",
    "InviteSession",
    "OutgoingInvite",
    "ReferStatus",
    "RequestFailed",
    "ServerSubscription",
    "SystemResolver",
    "UaConfig",
    "UserAgent",
]

log = logging.getLogger("sipcore.ua")

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK, NOTIFY, REFER, MESSAGE, SUBSCRIBE, PUBLISH"
ACCEPT = "application/sdp, application/dtmf-relay, message/sipfrag, text/plain"


@dataclass(frozen=True, slots=True)
class UaConfig:
    """Extensions a :class:`UserAgent` offers and how it uses them."""

    use_100rel: bool = True
    """Offer ``Supported: 100rel`` and PRACK reliable provisionals (RFC 3262)."""
    require_100rel: bool = False
    """Send ``Require: 100rel`` in INVITEs (retried without it on 420)."""
    reliable_ringing: bool = False
    """As UAS, send 180/183 reliably whenever the UAC supports 100rel (not only when required)."""
    session_timer: SessionTimerConfig | None = field(default_factory=SessionTimerConfig)
    """Session timers (RFC 4028); None: no timer support at all. The default supports timers
    and runs one when the peer asks, without asking for one itself."""

    @property
    def supported(self) -> list[str]:
        tags = ["replaces", "outbound"]
        if self.use_100rel:
            tags.insert(0, "100rel")
        if self.session_timer is not None:
            tags.insert(1 if self.use_100rel else 0, "timer")
        return tags


class RequestFailed(SipError):
    """A request got a final failure response: its ``status`` and ``reason``."""

    def __init__(self, status: int, reason: str, response: SipResponse | None = None) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.response = response


class CallFailed(RequestFailed):
    """An INVITE ended without a session: ``status`` and ``reason`` of the final response."""


OfferHandler = Callable[["InviteSession", bytes], Awaitable[bytes]]


def reason_headers(reason: Reason | str | None) -> list[tuple[str, str]]:
    """A Reason header (RFC 3326) for a BYE or CANCEL, from a :class:`Reason` or its text."""
    if reason is None:
        return []
    return [("Reason", str(reason))]


def _new_branch(request: SipRequest) -> SipRequest:
    """The same request as a new transaction (RFC 3263 §4.3): same CSeq, our Via removed."""
    new = request.copy()
    new.headers.remove_first("via")
    return new


def _allowed(message: SipMessage) -> set[str]:
    try:
        return {m.upper() for m in message.tokens("allow")}
    except SipParseError:
        return set()


@dataclass(slots=True)
class _Uas2xx:
    """A 2xx the UAS core repeats until its ACK arrives (§13.3.1.4)."""

    response: SipResponse
    retransmitter: ResponseRetransmitter
    target: Target
    session: InviteSession
    handle: asyncio.TimerHandle | None = None


@dataclass(slots=True)
class _SentInvite:
    """What a stray 2xx needs: the INVITE's client core, its pending call, where to send ACKs."""

    client: InviteClient
    out: OutgoingInvite
    target: Target
    prack: PrackTracker


class InviteSession:
    """One dialog established by INVITE (either side)."""

    def __init__(self, ua: UserAgent, dialog: Dialog, target: Target, *, outgoing: bool,
                 local_sdp: bytes = b"", remote_sdp: bytes = b"") -> None:
        self.ua = ua
        self.dialog = dialog
        self.target = target
        self.outgoing = outgoing
        self.local_sdp = local_sdp
        self.remote_sdp = remote_sdp
        self.terminated = asyncio.Event()
        self.end_reason: str | None = None
        self.remote_reasons: list[Reason] = []
        """The Reason values (RFC 3326) of the BYE that ended the call, if the peer sent any."""
        self.on_bye: Callable[[SipRequest | None], None] | None = None
        """Called once when the dialog ends (the BYE request, or None when we ended it)."""
        self.on_reinvite: OfferHandler | None = None
        """Called with the remote offer of a re-INVITE; returns our answer SDP."""
        self.on_update: OfferHandler | None = None
        """Called with the offer of an UPDATE (RFC 3311); falls back to ``on_reinvite``."""
        self.on_info: Callable[[SipRequest], int] | None = None
        self.on_dtmf: Callable[[str, int | None], None] | None = None
        """Called with (digit, duration ms) for each INFO application/dtmf-relay."""
        self.on_message: Callable[[SipRequest], int] | None = None
        """An in-dialog MESSAGE (RFC 3428); returns the status code (default 200)."""
        self.on_refer: Callable[[IncomingRefer], Awaitable[None] | None] | None = None
        """A REFER in this call (RFC 3515): accept it (:meth:`UserAgent.follow_refer`) or reject it.
        Without a handler REFERs are declined with 603."""
        self._refers: list[ReferStatus] = []
        self.offers = OfferState()
        self.timer = SessionTimer(ua.config.session_timer) if ua.config.session_timer is not None else None
        self.peer_allow: set[str] = set()
        """Methods the peer listed in Allow (UPDATE decides how session refreshes are sent)."""
        self._timer_handle: asyncio.TimerHandle | None = None
        self._auth: list[tuple[str, str]] = []

    @property
    def call_id(self) -> str:
        return self.dialog.call_id

    @property
    def _reinvite_busy(self) -> bool:
        return self.offers.local_invite

    def _ended(self, reason: str, request: SipRequest | None) -> None:
        if self.terminated.is_set():
            return
        self.end_reason = reason
        self.dialog.terminate()
        self.terminated.set()
        self._stop_timer()
        self.ua._sessions.pop(self.dialog.id, None)
        self.ua._ended_dialogs.append(self.dialog.id)
        if self.on_bye is not None:
            try:
                self.on_bye(request)
            except Exception:
                log.exception("on_bye failed")

    # -- session timer (RFC 4028) ----------------------------------------------------------------------
    def _stop_timer(self) -> None:
        if self._timer_handle is not None:
            self._timer_handle.cancel()
            self._timer_handle = None
        if self.timer is not None:
            self.timer.stop()

    def _arm_timer(self) -> None:
        if self._timer_handle is not None:
            self._timer_handle.cancel()
            self._timer_handle = None
        if self.timer is None or self.terminated.is_set():
            return
        deadline = self.timer.next_deadline()
        if deadline is not None:
            self._timer_handle = asyncio.get_running_loop().call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer_handle = None
        if self.timer is None:
            return
        action = self.timer.handle_timeout(max(self.ua.endpoint.now(), self.timer.next_deadline() or 0.0))
        if action is SessionTimerAction.REFRESH:
            self.ua._spawn(self._refresh())
        elif action is SessionTimerAction.EXPIRED:
            log.info("%s: session expired without refresh (RFC 4028 §10)", self.call_id)
            self.ua._spawn(self.bye(Reason("SIP", 408, "Session expired")))
            return
        self._arm_timer()

    async def _refresh(self) -> None:
        try:
            if "UPDATE" in self.peer_allow:
                resp = await self.update()
            else:
                resp = await self.reinvite(self.local_sdp)
        except (SipError, LocalProtocolError) as exc:
            log.warning("%s: session refresh failed: %s", self.call_id, exc)
            return
        if resp.status_code in (408, 481):
            await self.bye()

    # -- requests we send ------------------------------------------------------------------------------------
    async def _request(self, method: str, *, body: bytes = b"", content_type: str | None = None,
                       headers: list[tuple[str, str]] | None = None,
                       sent: Callable[[SipRequest], None] | None = None) -> SipResponse:
        extra = list(headers or [])
        refresh = method in ("INVITE", "UPDATE")
        if refresh and self.timer is not None:
            extra += self.timer.request_headers()
        req = self.dialog.create_request(method, body=body, content_type=content_type, headers=extra,
                                         contact=self.ua.contact if refresh else None)
        if sent is not None:
            sent(req)
        resp = await self.ua.endpoint.request(req, self.target)
        for _ in range(2):
            if resp.status_code in (401, 407) and self.ua.digest is not None:
                try:
                    req2 = self.ua.digest.authorize(req, resp)
                except (AuthenticationFailed, SipError):
                    break
            elif resp.status_code == 422 and refresh and self.timer is not None and self.timer.on_422(resp):
                req2 = next_attempt(req, set_headers=[h for h in self.timer.request_headers() if h[0] != "Supported"])
            else:
                break
            self.dialog.local_seq = req2.cseq.seq
            req = req2
            if sent is not None:
                sent(req)
            resp = await self.ua.endpoint.request(req, self.target)
        with contextlib.suppress(LocalProtocolError, SipParseError):
            self.dialog.update_from_response(resp)
        if refresh and 200 <= resp.status_code < 300:
            self.peer_allow |= _allowed(resp)
            if self.timer is not None:
                self.timer.on_2xx(req, resp, self.ua.endpoint.now())
                self._arm_timer()
        if method == "INVITE" and resp.status_code >= 200:
            if resp.status_code < 300:
                ack = self.dialog.create_ack(req.cseq.seq, headers=self._auth)
                self.ua._remember_ack(req, ack, self.target)
                self.ua.endpoint.send_ack(ack, self.target)
        if resp.status_code in (481, 408) and method != "BYE":
            self._ended(f"{resp.status_code} to {method}", None)
        return resp

    async def bye(self, reason: Reason | str | None = None) -> None:
        """End the call (RFC 3261 §15.1.1); returns when the BYE is answered or timed out.

        ``reason`` goes into a Reason header (RFC 3326), e.g. ``Reason("Q.850", 16, None)``.
        """
        if self.terminated.is_set() or self.dialog.state is DialogState.TERMINATED:
            return
        self._ended("local hangup", None)
        self.dialog.state = DialogState.CONFIRMED
        try:
            await asyncio.wait_for(self._request("BYE", headers=reason_headers(reason)), 40)
        except (TimeoutError, SipError, LocalProtocolError):
            pass
        finally:
            self.dialog.terminate()

    async def _offer(self, method: str, sdp: bytes | None) -> SipResponse:
        """re-INVITE or UPDATE; 491 → retried after the §14.1 back-off (twice at most)."""
        resp: SipResponse | None = None
        for attempt in range(3):
            if method == "INVITE":
                self.offers.local_invite = True
            self.offers.local_offer = sdp is not None
            try:
                resp = await self._request(method, body=sdp or b"",
                                           content_type="application/sdp" if sdp is not None else None)
            finally:
                self.offers.local_invite = self.offers.local_offer = False
            if resp.status_code == 491 and attempt < 2 and not self.terminated.is_set():
                # §14.1: the owner of the Call-ID (it sent the first INVITE) waits 2.1-4 s, the other 0-2 s
                await asyncio.sleep(glare_backoff(self.dialog.is_uac, self.ua.rng))
                continue
            if resp.status_code < 300 and sdp is not None:
                self.local_sdp = sdp
                if resp.body:
                    self.remote_sdp = resp.body
            return resp
        if resp is None:
            raise LocalProtocolError("internal state: re-INVITE loop ended without a response")
        return resp

    async def reinvite(self, sdp: bytes) -> SipResponse:
        """Send a re-INVITE with ``sdp`` (hold/resume, ICE restart, session refresh)."""
        return await self._offer("INVITE", sdp)

    async def update(self, sdp: bytes | None = None) -> SipResponse:
        """Send an UPDATE (RFC 3311): with ``sdp`` a new offer, without one a session refresh."""
        return await self._offer("UPDATE", sdp)

    async def info(self, body: bytes, content_type: str) -> SipResponse:
        return await self._request("INFO", body=body, content_type=content_type)

    async def send_dtmf(self, digit: str, duration_ms: int = 160) -> SipResponse:
        """One digit as INFO application/dtmf-relay (for peers without RFC 4733 telephone-event)."""
        return await self.info(dtmf_relay_body(digit, duration_ms), "application/dtmf-relay")

    async def message(self, body: bytes, content_type: str = "text/plain") -> SipResponse:
        """An in-dialog MESSAGE (RFC 3428 §4)."""
        return await self._request("MESSAGE", body=body, content_type=content_type)

    async def options(self) -> SipResponse:
        """An in-dialog OPTIONS: what the peer supports now (or a keepalive)."""
        return await self._request("OPTIONS", headers=[("Accept", "application/sdp")])

    async def refer(self, target: str, *, replaces: InviteSession | None = None,
                    headers: list[tuple[str, str]] | None = None) -> ReferStatus:
        """Transfer the peer to ``target`` (RFC 3515): blind, or attended with ``replaces`` (our call
        with the target, RFC 3891). Returns once the REFER is answered; the progress NOTIFYs
        (sipfrag) then resolve ``status.final``."""
        rep = None
        if replaces is not None:
            d = replaces.dialog
            # seen from the target, which matches to-tag with its local tag (RFC 3891 §3)
            rep = Replaces(d.call_id, d.remote_tag, d.local_tag)
        status = ReferStatus()
        self._refers.append(status)
        hdrs = [("Refer-To", refer_to_value(target, rep)), ("Referred-By", f"<{self.ua.aor}>"), *(headers or [])]
        resp = await self._request("REFER", headers=hdrs, sent=status._sent)
        status._answered(resp)
        return status

    # -- incoming in-dialog requests ----------------------------------------------------------------
    async def _on_request(self, ev: RequestReceived) -> None:
        req = ev.request
        tx = ev.transaction
        try:
            self.dialog.receive_request(req)
        except DialogError as exc:
            if tx is not None:
                self.ua.endpoint.respond(tx, make_response(req, exc.status_hint or 500))
            return
        if req.method == "ACK":
            self.ua._ack_received(req)
            return
        if tx is None:
            return
        ep = self.ua.endpoint
        method = req.method
        if method == "BYE":
            self.remote_reasons = reasons_of(req)
            ep.respond(tx, make_response(req, 200))
            self._ended("remote hangup", req)
        elif method in ("INVITE", "UPDATE"):
            await self._on_offer_request(req, tx, ev.source)
        elif method == "INFO":
            code = 200
            ct = req.content_type
            if ct is not None and ct.mime in ("application/dtmf-relay", "application/dtmf"):
                digit = parse_dtmf_relay(req.body) if ct.mime == "application/dtmf-relay" else (
                    (req.body.decode("ascii", "replace").strip()[:1].upper(), None) if req.body.strip() else None)
                if digit is not None and self.on_dtmf is not None:
                    self.on_dtmf(*digit)
            if self.on_info is not None:
                code = self.on_info(req)
            ep.respond(tx, make_response(req, code))
        elif method == "MESSAGE":
            handler = self.on_message
            ep.respond(tx, make_response(req, handler(req) if handler is not None else 200))
        elif method == "OPTIONS":
            ep.respond(tx, make_response(req, 200, headers=self.ua.capabilities()))
        elif method == "NOTIFY":
            for st in self._refers:
                if st.watcher is not None and not st.watcher.done and st.watcher.matches(req):
                    code, progress = st.watcher.receive_notify(req)
                    ep.respond(tx, make_response(req, code, headers=[("Contact", self.ua.contact)]))
                    if progress is not None:
                        st._progress(progress)
                    return
            ep.respond(tx, make_response(req, 481))  # no subscription in this dialog (RFC 6665 §4.1.3)
        elif method == "REFER":
            await self._on_refer(req, tx)
        else:
            ep.respond(tx, make_response(req, 501, headers=[("Allow", ALLOW)]))

    async def _on_refer(self, req: SipRequest, tx: ServerTransaction) -> None:
        ep = self.ua.endpoint
        values = req.headers.get_all("refer-to")
        if len(values) != 1:
            ep.respond(tx, make_response(req, 400, "Exactly one Refer-To (RFC 3515 §2.4.1)"))
            return
        try:
            target = parse_refer_to(values[0])
        except SipParseError as exc:
            ep.respond(tx, make_response(req, 400, str(exc)[:80]))
            return
        incoming = IncomingRefer(self, req, tx, target)
        if self.on_refer is None:
            incoming.reject(603)
            return
        result = self.on_refer(incoming)
        if asyncio.iscoroutine(result):
            await result

    async def _on_offer_request(self, req: SipRequest, tx: ServerTransaction, source: Target) -> None:
        """A re-INVITE or UPDATE: collision rules, session timer, offer/answer (§14.2, RFC 3311 §5.2)."""
        ep = self.ua.endpoint
        method = req.method
        has_offer = bool(req.body)
        collision = self.offers.check_incoming(method, has_offer, self.ua.rng)
        if collision is not None:
            status, headers = collision
            ep.respond(tx, make_response(req, status, headers=headers))
            return
        if self.timer is not None:
            bad = self.timer.check_request(req)
            if bad is not None:
                ep.respond(tx, make_response(req, bad[0], headers=bad[1]))
                return
        self.peer_allow |= _allowed(req)
        if method == "INVITE":
            self.offers.remote_invite = True
        try:
            handler = (self.on_update or self.on_reinvite) if method == "UPDATE" else self.on_reinvite
            answer: bytes | None = None
            if has_offer and handler is not None:
                self.offers.remote_offer = True
                try:
                    answer = await handler(self, req.body)
                except SipError as exc:
                    ep.respond(tx, make_response(req, 488, str(exc)[:80]))
                    return
                finally:
                    self.offers.remote_offer = False
                self.local_sdp, self.remote_sdp = answer, req.body
            elif has_offer or method == "INVITE":
                # no handler: answer with the session as it is; an offerless re-INVITE gets our SDP as
                # the offer (§14.2)
                answer = self.local_sdp or None
            headers = [("Contact", self.ua.contact), ("Allow", ALLOW)]
            if self.timer is not None:
                headers += self.timer.response_headers(req, ep.now())
                self._arm_timer()
            resp = make_response(req, 200, headers=headers, body=answer or b"",
                                 content_type="application/sdp" if answer else None)
            if method == "INVITE":
                self.ua._send_2xx(tx, resp, self, source)
            else:
                ep.respond(tx, resp)
        finally:
            if method == "INVITE":
                self.offers.remote_invite = False


class ReferStatus:
    """The progress of a REFER we sent: NOTIFYed statuses, then ``final`` (RFC 3515 §2.4.5)."""

    def __init__(self) -> None:
        self.watcher: ReferWatcher | None = None
        self.response: SipResponse | None = None
        self.progress: list[ReferProgress] = []
        self.final: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        """The final status of the transferee's INVITE; fails with RequestFailed when the REFER is refused."""
        self.final.add_done_callback(lambda f: f.cancelled() or f.exception())  # awaiting it is optional
        self.on_progress: Callable[[ReferProgress], None] | None = None

    @property
    def accepted(self) -> bool:
        return self.response is not None and 200 <= self.response.status_code < 300

    def _sent(self, refer: SipRequest) -> None:
        self.watcher = ReferWatcher(refer)

    def _answered(self, resp: SipResponse) -> None:
        self.response = resp
        if self.watcher is not None:
            self.watcher.receive_response(resp.status_code)
        if resp.status_code >= 300 and not self.final.done():
            self.final.set_exception(RequestFailed(resp.status_code, resp.reason, resp))

    def _progress(self, progress: ReferProgress) -> None:
        self.progress.append(progress)
        if self.on_progress is not None:
            self.on_progress(progress)
        if progress.final and not self.final.done():
            self.final.set_result(progress.status)


class IncomingRefer:
    """A REFER the peer sent us (we are the transferee): ``accept()`` / ``reject()``, then
    ``notify(status)`` for each step of the new call, or let :meth:`UserAgent.follow_refer` do it."""

    def __init__(self, session: InviteSession, request: SipRequest, transaction: ServerTransaction,
                 target: ReferTarget) -> None:
        self.session = session
        self.request = request
        self.transaction = transaction
        self.target = target
        self.referred_by = request.headers.get("referred-by")
        self.notifier = ReferNotifier(request)
        self.answered = False

    def accept(self) -> None:
        """202 Accepted, then the first NOTIFY (100 Trying) at once (RFC 3515 §2.4.4)."""
        if self.answered:
            return
        self.answered = True
        ep = self.session.ua.endpoint
        ep.respond(self.transaction, make_response(self.request, 202, headers=[("Contact", self.session.ua.contact)]))
        self.session.ua._spawn(self.notify(100))

    def reject(self, status: int = 603, reason: str | None = None) -> None:
        if self.answered:
            return
        self.answered = True
        self.session.ua.endpoint.respond(self.transaction, make_response(self.request, status, reason))

    async def notify(self, status: int, reason: str | None = None) -> SipResponse | None:
        """Report the new call's progress as a sipfrag NOTIFY; a final status ends the subscription."""
        if self.notifier.done or self.session.terminated.is_set():
            return None
        headers, body = self.notifier.progress(status, reason)
        try:
            return await self.session._request("NOTIFY", body=body, content_type="message/sipfrag", headers=headers)
        except (SipError, LocalProtocolError) as exc:
            log.info("refer NOTIFY not sent: %s", exc)
            return None


class IncomingInvite:
    """An INVITE waiting for the TU: ``ring()``, then ``answer(sdp)`` or ``reject(code)``."""

    def __init__(self, ua: UserAgent, event: RequestReceived) -> None:
        self.ua = ua
        self.request = event.request
        if event.transaction is None:
            raise LocalProtocolError("an INVITE always has a server transaction")
        self.transaction: ServerTransaction = event.transaction
        self.source = event.source
        self.to_tag = random_tag(ua.rng)
        self.cancelled = asyncio.Event()
        self.cancel_reasons: list[Reason] = []
        """The Reason values of the CANCEL (RFC 3326), if it carried any."""
        self.done = False
        self.session: InviteSession | None = None
        self.dialog: Dialog | None = None
        """The early dialog, once a provisional response with our To tag went out."""
        self.replaces: InviteSession | OutgoingInvite | None = None
        """The call this INVITE replaces (RFC 3891): ended (BYE, or CANCEL while it rings) when we answer."""
        self.prack = ReliableProvisionalSender(self.request, ua.endpoint.stack.timers, rng=ua.rng)
        self.timer = SessionTimer(ua.config.session_timer) if ua.config.session_timer is not None else None
        self._prack_handle: asyncio.TimerHandle | None = None
        self._deferred_2xx: tuple[SipResponse, InviteSession] | None = None
        try:
            tags = [t.lower() for t in self.request.tokens("supported")]
            required = [t.lower() for t in self.request.tokens("require")]
        except SipParseError:
            tags, required = [], []
        self.peer_supports_100rel = ua.config.use_100rel and ("100rel" in tags or "100rel" in required)
        self.peer_requires_100rel = "100rel" in required

    @property
    def offer(self) -> bytes:
        return self.request.body

    @property
    def completed_elsewhere(self) -> bool:
        """The CANCEL said another device took the call (``SIP;cause=200``): not a missed call."""
        return any(r.protocol.upper() == "SIP" and r.cause == CALL_COMPLETED_ELSEWHERE.cause
                   for r in self.cancel_reasons)

    def _early_dialog(self, resp: SipResponse) -> None:
        if self.dialog is None:
            try:
                self.dialog = Dialog.from_uas(self.request, resp, rng=self.ua.rng)
            except (DialogError, LocalProtocolError):
                return
            self.dialog.local_target = self.ua.contact
            self.ua._early[self.dialog.id] = self

    def ring(self, *, early_sdp: bytes | None = None, reliable: bool | None = None) -> None:
        """180 (or 183 with ``early_sdp``). Reliable (RFC 3262) when the UAC requires 100rel, or
        supports it and ``reliable`` is True (default: the UA's ``reliable_ringing``)."""
        if self.done:
            return
        code = 183 if early_sdp else 180
        resp = make_response(self.request, code, to_tag=self.to_tag, headers=[("Contact", self.ua.contact)],
                             body=early_sdp or b"", content_type="application/sdp" if early_sdp else None)
        want = self.ua.config.reliable_ringing if reliable is None else reliable
        if self.peer_requires_100rel or (want and self.peer_supports_100rel):
            self._early_dialog(resp)
            out = self.prack.send(resp, self.ua.endpoint.now())
            if out is not None:
                self.ua.endpoint.respond(self.transaction, out)
                self._arm_prack()
            return
        self.ua.endpoint.respond(self.transaction, resp)

    def _arm_prack(self) -> None:
        if self._prack_handle is not None:
            self._prack_handle.cancel()
            self._prack_handle = None
        deadline = self.prack.next_deadline()
        if deadline is not None and not self.done:
            self._prack_handle = asyncio.get_running_loop().call_at(deadline, self._on_prack_timer)

    def _on_prack_timer(self) -> None:
        self._prack_handle = None
        action, resp = self.prack.handle_timeout(max(self.ua.endpoint.now(), self.prack.next_deadline() or 0.0))
        if action is RetransmitAction.RESEND and resp is not None:
            with contextlib.suppress(LocalProtocolError):
                self.ua.endpoint.respond(self.transaction, resp)
        elif action is RetransmitAction.GIVE_UP:
            log.warning("%s: no PRACK within 64*T1 (RFC 3262 §3)", self.request.call_id)
            self._finish()
            if self._deferred_2xx is not None:
                _, session = self._deferred_2xx
                self._deferred_2xx = None
                session._ended("no PRACK", None)
            self.done = True
            self.ua.endpoint.respond(self.transaction, make_response(
                self.request, 500, "Reliable provisional response not acknowledged", to_tag=self.to_tag))
            return
        self._arm_prack()

    def _on_prack(self, ev: RequestReceived) -> None:
        req, tx = ev.request, ev.transaction
        if tx is None or self.dialog is None:
            return
        try:
            self.dialog.receive_request(req)
        except DialogError as exc:
            self.ua.endpoint.respond(tx, make_response(req, exc.status_hint or 500))
            return
        if req.method != "PRACK":
            # UPDATE/INFO in the early dialog: no early offers here, but answer the rest
            status = 488 if req.body and req.method == "UPDATE" else 200
            self.ua.endpoint.respond(tx, make_response(req, status))
            return
        ok, nxt = self.prack.receive_prack(req, self.ua.endpoint.now())
        self.ua.endpoint.respond(tx, make_response(req, 200 if ok else 481))
        if nxt is not None and not self.done:
            self.ua.endpoint.respond(self.transaction, nxt)
        self._arm_prack()
        if self._deferred_2xx is not None and self.prack.final_may_be_sent(True):
            resp, session = self._deferred_2xx
            self._deferred_2xx = None
            self._finish()
            self.ua._send_2xx(self.transaction, resp, session, self.source)

    def _finish(self) -> None:
        self.ua._incoming.pop(id(self.transaction), None)  # answered, rejected or cancelled: forget it
        self.prack.stop()
        if self._prack_handle is not None:
            self._prack_handle.cancel()
            self._prack_handle = None
        if self.dialog is not None:
            self.ua._early.pop(self.dialog.id, None)

    def answer(self, sdp: bytes, *, headers: list[tuple[str, str]] | None = None) -> InviteSession:
        if self.done:
            raise LocalProtocolError("this INVITE was already answered, rejected or cancelled")
        self.done = True
        now = self.ua.endpoint.now()
        extra = [("Contact", self.ua.contact), ("Allow", ALLOW)]
        if self.timer is not None:
            extra += self.timer.response_headers(self.request, now)
        resp = make_response(self.request, 200, to_tag=self.to_tag, headers=[*extra, *(headers or [])],
                             body=sdp, content_type="application/sdp")
        if self.dialog is not None:
            dialog = self.dialog
        else:
            dialog = Dialog.from_uas(self.request, resp, rng=self.ua.rng)
            dialog.local_target = self.ua.contact
        dialog.confirm()
        session = InviteSession(self.ua, dialog, self.source, outgoing=False, local_sdp=sdp,
                                remote_sdp=self.request.body)
        session.peer_allow = _allowed(self.request)
        if self.timer is not None and session.timer is not None:
            session.timer = self.timer
            session._arm_timer()
        self.ua._sessions[dialog.id] = session
        self.session = session
        victim, self.replaces = self.replaces, None
        if isinstance(victim, InviteSession):
            self.ua._spawn(victim.bye())
        elif isinstance(victim, OutgoingInvite):
            self.ua.cancel(victim)
        if not self.prack.final_may_be_sent(True):
            # RFC 3262 §3: the 2xx waits for the PRACK of the reliable 1xx that carried SDP
            self.prack.clear_queue()
            self._deferred_2xx = (resp, session)
            self.ua._early[dialog.id] = self
        else:
            self._finish()
            self.ua._send_2xx(self.transaction, resp, session, self.source)
        return session

    def reject(self, status: int = 486, reason: str | None = None,
               headers: list[tuple[str, str]] | None = None) -> None:
        if self.done:
            return
        self.done = True
        self._finish()
        self.ua.endpoint.respond(self.transaction, make_response(self.request, status, reason, to_tag=self.to_tag,
                                                                 headers=headers))


class OutgoingInvite:
    """A pending outgoing INVITE; ``await result`` gives the session or raises CallFailed."""

    def __init__(self) -> None:
        self.transaction: ClientTransaction | None = None
        self.client: InviteClient | None = None
        self.cancel_requested = False
        self.cancel_sent = False
        self.cancel_headers: list[tuple[str, str]] = []
        self.result: asyncio.Future[InviteSession] = asyncio.get_running_loop().create_future()
        self.provisional: list[SipResponse] = []
        self.early_sdp: bytes | None = None
        """The session description of the last provisional response that had one (early media)."""
        self.pracks: list[SipRequest] = []
        """PRACKs sent for reliable provisional responses (RFC 3262)."""
        self.discarded: list[Dialog] = []
        """Dialogs of answers that were ACKed and BYEd (other forks, or a 200 after CANCEL)."""
        self.auth: list[tuple[str, str]] = []
        self.timer: SessionTimer | None = None


class SystemResolver:
    """The operating system's resolver (getaddrinfo): addresses only. Without NAPTR and SRV,
    RFC 3263 ends at A/AAAA with the default port; plug a DNS client in for the rest."""

    async def naptr(self, domain: str) -> list[NaptrRecord]:
        return []

    async def srv(self, name: str) -> list[SrvRecord]:
        return []

    async def addresses(self, host: str) -> list[str]:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_DGRAM)
        except OSError as exc:
            raise ResolverError(f"cannot resolve {host!r}: {exc}") from exc
        out: list[str] = []
        for info in infos:
            addr = str(info[4][0])
            if addr not in out:
                out.append(addr)
        return out


class UserAgent:
    """A SIP UA: outgoing and incoming INVITE sessions, in-dialog requests, OPTIONS, MESSAGE."""

    def __init__(self, endpoint: AioSipEndpoint, *, aor: str, outbound: Target | None,
                 credentials: tuple[str, str] | None = None, display_name: str | None = None,
                 rng: Callable[[int], bytes] = os.urandom, contact_host: str | None = None,
                 config: UaConfig | None = None, resolver: Resolver | None = None,
                 transports: tuple[str, ...] = ("tls", "tcp", "udp")) -> None:
        self.endpoint = endpoint
        uri = parse_uri(aor)
        if not isinstance(uri, SipUri):
            raise LocalProtocolError(f"the address of record must be a SIP URI, not {aor!r}")
        self.aor = uri
        self.outbound = outbound
        self.display_name = display_name
        self.rng = rng
        self.config = config or UaConfig()
        self.resolver = resolver
        """RFC 3263 lookups for requests without an outbound proxy (see :meth:`targets_for`)."""
        self.transports = transports
        """Transports RFC 3263 may pick, in our order of preference."""
        self.digest = DigestClient(credentials[0], credentials[1], rng=rng) if credentials else None
        self._contact_host = contact_host
        self._sessions: dict[Any, InviteSession] = {}
        self._early: dict[Any, IncomingInvite] = {}
        self._uas_2xx: dict[tuple[str, int], _Uas2xx] = {}
        self._incoming: dict[int, IncomingInvite] = {}
        self._invites: dict[tuple[str, int], _SentInvite] = {}
        self._acks_sent: dict[tuple[str, int], tuple[SipRequest, Target]] = {}
        self._subscriptions: list[ClientSubscription] = []
        self._publications: list[ClientPublication] = []
        self._dialog_users: dict[DialogId, ServerSubscription] = {}
        self._ended_dialogs: deque[DialogId] = deque(maxlen=64)
        self.on_invite: Callable[[IncomingInvite], Awaitable[None] | None] | None = None
        self.on_message: Callable[[RequestReceived], int] | None = None
        """A MESSAGE outside any dialog (RFC 3428); returns the status code."""
        self.on_out_of_dialog: Callable[[RequestReceived], Awaitable[None] | None] | None = None
        """Any other request outside a dialog (REGISTER at a server, ...)."""
        self.on_subscribe: Callable[[ServerSubscription], Awaitable[None] | None] | None = None
        """A SUBSCRIBE outside a dialog (RFC 6665): accept or reject it. Without a handler (and
        without ``on_out_of_dialog``) SUBSCRIBEs get 489 Bad Event."""
        self.publications: PublicationStore | None = None
        """Set to answer PUBLISH requests as an event state compositor (RFC 3903)."""
        endpoint.on_request = self._on_request
        endpoint.on_cancel = self._on_cancel
        endpoint.on_stray_response = self._on_stray
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- identity ----------------------------------------------------------------------------------
    @property
    def contact(self) -> str:
        transport = self.outbound.transport if self.outbound is not None else "udp"
        if transport in ("ws", "wss"):
            host = self._contact_host or f"{self.rng(6).hex()}.invalid"
            self._contact_host = host
            port = ""
        else:
            h, p = self.endpoint.stack.sent_by.get(transport) or self.endpoint.transport.local_address(transport)
            host, port = (self._contact_host or h), f":{p}"
        user = self.aor.user or "anonymous"
        return f"<sip:{user}@{host}{port};transport={transport}>"

    def from_value(self, tag: str) -> str:
        dn = f'"{self.display_name}" ' if self.display_name else ""
        return f"{dn}<{self.aor}>;tag={tag}"

    def capabilities(self) -> list[tuple[str, str]]:
        """What an OPTIONS answer lists (RFC 3261 §11.2)."""
        return [("Allow", ALLOW), ("Accept", ACCEPT), ("Accept-Encoding", "identity"), ("Accept-Language", "en"),
                ("Supported", ", ".join(self.config.supported))]

    def new_request(self, method: str, uri: str, *, to: str | None = None, body: bytes = b"",
                    content_type: str | None = None, headers: list[tuple[str, str]] | None = None,
                    call_id: str | None = None, cseq: int = 1) -> SipRequest:
        h = Headers()
        h.add("From", self.from_value(random_tag(self.rng)))
        h.add("To", to or f"<{uri}>")
        h.add("Call-ID", call_id or f"{self.rng(12).hex()}")
        h.add("CSeq", f"{cseq} {method}")
        h.add("Max-Forwards", "70")
        if method in ("INVITE", "REGISTER", "SUBSCRIBE", "REFER", "OPTIONS"):
            h.add("Contact", self.contact)
        for name, value in headers or ():
            h.add(name, value)
        if content_type:
            h.add("Content-Type", content_type)
        return SipRequest(method, uri, h, body)

    def _target(self, uri: str) -> Target:
        if self.outbound is not None:
            return self.outbound
        u = parse_uri(uri)
        if not isinstance(u, SipUri):
            raise LocalProtocolError(f"cannot route to {uri!r} without an outbound proxy")
        return Target(u.transport or "udp", u.host.strip("[]"), u.port or 5060)

    # -- requests outside dialogs ----------------------------------------------------------------------
    async def targets_for(self, uri: str) -> list[Target]:
        """Where requests for ``uri`` go, in order: the outbound proxy, else RFC 3263 through the
        resolver (when one is set), else the URI's host and port as they are."""
        if self.outbound is not None or self.resolver is None:
            return [self._target(uri)]
        u = parse_uri(uri)
        if not isinstance(u, SipUri):
            raise LocalProtocolError(f"cannot route to {uri!r} without an outbound proxy")
        targets = await locate(u, self.resolver, transports=self.transports, rng=self.rng)
        if not targets:
            raise RequestFailed(503, f"No server found for {u.host}")
        return targets

    async def request(self, req: SipRequest, target: Target | None = None) -> SipResponse:
        """Send a request, retrying with credentials on 401/407 and failing over to the next
        server on a transport error, timeout or 503 (RFC 3263 §4.3)."""
        targets = [target] if target is not None else await self.targets_for(req.uri_text)
        for i, dest in enumerate(targets):
            if i:
                req = _new_branch(req)
            resp = await self.endpoint.request(req, dest)
            tries = 0
            while resp.status_code in (401, 407) and self.digest is not None and tries < 2:
                req = self.digest.authorize(req, resp)
                resp = await self.endpoint.request(req, dest)
                tries += 1
            if not should_fail_over(resp) or i == len(targets) - 1:
                break
            log.info("%s to %s: %d %s, trying %s", req.method, dest, resp.status_code, resp.reason, targets[i + 1])
        return resp

    async def message(self, uri: str, body: bytes, content_type: str = "text/plain", *,
                      headers: list[tuple[str, str]] | None = None) -> SipResponse:
        """Send a MESSAGE (RFC 3428) outside any dialog; returns the final response."""
        return await self.request(self.new_request("MESSAGE", uri, body=body, content_type=content_type,
                                                   headers=headers))

    async def options(self, uri: str) -> SipResponse:
        """Ask ``uri`` what it supports (RFC 3261 §11)."""
        return await self.request(self.new_request("OPTIONS", uri, headers=[("Accept", "application/sdp")]))

    async def _send_in_dialog(self, dialog: Dialog, req: SipRequest, target: Target) -> tuple[SipRequest, SipResponse]:
        """An in-dialog request with one digest retry; the dialog's CSeq follows the retry."""
        resp = await self.endpoint.request(req, target)
        if resp.status_code in (401, 407) and self.digest is not None:
            try:
                req = self.digest.authorize(req, resp)
            except (AuthenticationFailed, SipError):
                return req, resp
            dialog.local_seq = req.cseq.seq
            resp = await self.endpoint.request(req, target)
        return req, resp

    async def subscribe(self, uri: str, event: str, *, expires: int = 3600, accept: str | None = None,
                        headers: list[tuple[str, str]] | None = None) -> ClientSubscription:
        """SUBSCRIBE to ``event`` at ``uri`` (RFC 6665); returns once it is accepted (2xx), raises
        :class:`RequestFailed` otherwise. Digest challenges and 423 are answered on the way."""
        extra = [("Event", event), ("Expires", str(expires)), ("Allow", ALLOW)]
        if accept:
            extra.append(("Accept", accept))
        req = self.new_request("SUBSCRIBE", uri, headers=[*extra, *(headers or [])])
        target = self._target(uri)
        sub = ClientSubscription(self, Subscriber(req, now=self.endpoint.now(), timers=self.endpoint.stack.timers),
                                 target)
        self._subscriptions.append(sub)
        try:
            for _ in range(3):
                resp = await self.endpoint.request(req, target)
                if resp.status_code in (401, 407) and self.digest is not None:
                    req = self.digest.authorize(req, resp)
                elif resp.status_code == 423 and (min_exp := (resp.headers.get("min-expires") or "").strip()).isdigit():
                    req = next_attempt(req, set_headers=[("Expires", min_exp)])
                    sub.core.requested_expires = int(min_exp)
                else:
                    break
                sub.core.request = req
        except BaseException:
            sub._finish(SubscriptionEnded(reason=None, retry_after=None))
            raise
        sub._events(sub.core.receive_response(resp, self.endpoint.now()))
        if resp.status_code >= 300:
            sub._finish(SubscriptionEnded(reason="rejected", retry_after=None, status=resp.status_code))
            raise RequestFailed(resp.status_code, resp.reason, resp)
        return sub

    async def publish(self, uri: str, event: str, body: bytes, content_type: str, *,
                      expires: int = 3600) -> ClientPublication:
        """PUBLISH event state for ``uri`` (RFC 3903); refreshed until ``remove()``.
        Raises :class:`RequestFailed` when the first PUBLISH fails."""
        pub = ClientPublication(self, uri, Publisher(event, expires=expires), self._target(uri))
        resp = await pub._send(pub.core.publish(body, content_type))
        if resp.status_code >= 300:
            pub._stop()
            raise RequestFailed(resp.status_code, resp.reason, resp)
        self._publications.append(pub)
        return pub

    def follow_refer(self, refer: IncomingRefer, sdp: bytes, *, headers: list[tuple[str, str]] | None = None,
                     on_provisional: Callable[[SipResponse], None] | None = None) -> OutgoingInvite:
        """Act on a REFER (RFC 3515 §2.4.4): accept it, INVITE the target (with its Replaces, RFC
        3891, and Referred-By) and report each step to the transferor as a sipfrag NOTIFY."""
        refer.accept()
        hdrs = list(refer.target.headers)
        if refer.target.replaces is not None:
            hdrs.append(("Replaces", str(refer.target.replaces)))
        if refer.referred_by is not None and not any(n.lower() == "referred-by" for n, _ in hdrs):
            hdrs.append(("Referred-By", refer.referred_by))
        reported: set[int] = set()

        def prov(resp: SipResponse) -> None:
            if resp.status_code > 100 and resp.status_code not in reported:
                reported.add(resp.status_code)
                self._spawn(refer.notify(resp.status_code, resp.reason))
            if on_provisional is not None:
                on_provisional(resp)

        out = self.invite(refer.target.uri, sdp, headers=[*hdrs, *(headers or [])], on_provisional=prov)

        async def report() -> None:
            try:
                await out.result
            except CallFailed as exc:
                await refer.notify(exc.status, exc.reason)
            except Exception:
                await refer.notify(500)
            else:
                await refer.notify(200)

        self._spawn(report())
        return out

    # -- outgoing calls ----------------------------------------------------------------------------------
    def invite(self, uri: str, sdp: bytes, *, to: str | None = None, headers: list[tuple[str, str]] | None = None,
               on_provisional: Callable[[SipResponse], None] | None = None) -> OutgoingInvite:
        out = OutgoingInvite()
        extra = [("Allow", ALLOW), ("Supported", ", ".join(self.config.supported))]
        if self.config.use_100rel and self.config.require_100rel:
            extra.append(("Require", "100rel"))
        if self.config.session_timer is not None:
            out.timer = SessionTimer(self.config.session_timer)
            extra += [h for h in out.timer.request_headers() if h[0] != "Supported"]
        req = self.new_request("INVITE", uri, to=to, body=sdp, content_type="application/sdp",
                               headers=[*extra, *(headers or [])])
        self._spawn(self._run_invite(out, req, uri, on_provisional))
        return out

    async def _run_invite(self, out: OutgoingInvite, req: SipRequest, uri: str,
                          on_provisional: Callable[[SipResponse], None] | None) -> None:
        try:
            targets = await self.targets_for(uri)
            target = targets.pop(0)
            for _ in range(4 + len(targets)):
                client = InviteClient(req, ack_headers=out.auth, local_target=self.contact)
                out.client = client
                if out.cancel_requested:
                    client.cancel()
                sent = _SentInvite(client, out, target, PrackTracker(req))
                self._invites[(req.call_id, req.cseq.seq)] = sent

                def prov(resp: SipResponse, sent: _SentInvite = sent) -> None:
                    out.provisional.append(resp)
                    self._invite_events(sent, sent.client.receive_response(resp))
                    if on_provisional is not None:
                        on_provisional(resp)
                    self._maybe_cancel(out)

                provisional_before = len(out.provisional)
                tx, fut = self.endpoint.start_request(req, target, on_provisional=prov)
                out.transaction = tx
                out.cancel_sent = False
                resp = await fut
                if (targets and should_fail_over(resp) and len(out.provisional) == provisional_before
                        and not out.cancel_requested):
                    # RFC 3263 §4.3: the same request, a new branch, the next server
                    log.info("INVITE to %s: %d %s, trying %s", target, resp.status_code, resp.reason, targets[0])
                    target = targets.pop(0)
                    req = _new_branch(req)
                    continue
                retry = self._invite_retry(out, req, resp)
                if retry is None:
                    break
                req = retry
            self._invite_events(sent, client.receive_response(resp))
            if not out.result.done():  # a final the client core ignored (never happens with a sane peer)
                out.result.set_exception(CallFailed(resp.status_code, resp.reason, resp))
        except Exception as exc:  # surface anything to the caller, never hang it
            if not out.result.done():
                out.result.set_exception(exc)
        finally:
            asyncio.get_running_loop().call_later(64 * self.endpoint.stack.timers.t1 + 5, self._forget_invite,
                                                  (req.call_id, req.cseq.seq))

    def _invite_retry(self, out: OutgoingInvite, req: SipRequest, resp: SipResponse) -> SipRequest | None:
        """The INVITE to send after 401/407, 420 (100rel) or 422 (RFC 4028), or None."""
        if out.cancel_requested:
            return None
        code = resp.status_code
        if code in (401, 407) and self.digest is not None:
            new = self.digest.authorize(req, resp)
            out.auth = [(n, v) for n, v in new.headers if n.lower() in ("authorization", "proxy-authorization")]
            return new
        if code == 420 and "require" in req.headers:
            try:
                unsupported = {t.lower() for t in resp.tokens("unsupported")}
            except SipParseError:
                unsupported = set()
            if "100rel" in unsupported:
                return next_attempt(req, remove=["Require"])
        if code == 422 and out.timer is not None and out.timer.on_422(resp):
            return next_attempt(req, set_headers=[h for h in out.timer.request_headers() if h[0] != "Supported"])
        return None

    def _forget_invite(self, key: tuple[str, int]) -> None:
        self._invites.pop(key, None)

    def _invite_events(self, sent: _SentInvite, events: list[InviteClientEvent]) -> None:
        """Act on what the INVITE's client core decided (see :class:`sipcore.invite.InviteClient`)."""
        out, target, ep = sent.out, sent.target, self.endpoint
        for ev in events:
            if isinstance(ev, Answered):
                session = InviteSession(self, ev.dialog, target, outgoing=True, local_sdp=sent.client.request.body,
                                        remote_sdp=ev.response.body)
                session._auth = list(out.auth)
                session.peer_allow = _allowed(ev.response)
                self._sessions[ev.dialog.id] = session
                ep.send_ack(ev.ack, target)
                if out.timer is not None and session.timer is not None:
                    session.timer = out.timer
                    out.timer.on_2xx(sent.client.request, ev.response, ep.now())
                    session._arm_timer()
                if not out.result.done():
                    out.result.set_result(session)
            elif isinstance(ev, AckAgain):
                ep.send_ack(ev.ack, target)
            elif isinstance(ev, ForkDiscarded):
                ep.send_ack(ev.ack, target)
                out.discarded.append(ev.dialog)
                log.info("%s: answer from %s %s: ACK and BYE", ev.dialog.call_id, ev.dialog.remote_tag,
                         "after CANCEL" if ev.cancelled else "(another fork)")
                self._spawn(self._send_quietly(ev.bye, target))
                if ev.cancelled and not out.result.done():
                    out.result.set_exception(CallFailed(487, "Request Terminated", ev.response))
            elif isinstance(ev, Failed):
                if not out.result.done():
                    out.result.set_exception(CallFailed(ev.response.status_code, ev.response.reason, ev.response))
            elif isinstance(ev, AnswerUnusable):
                log.warning("unusable 2xx to INVITE: %s", ev.error)
                if not out.result.done():
                    out.result.set_exception(CallFailed(502, f"Unusable answer: {ev.error}"[:80], ev.response))
            elif isinstance(ev, ProvisionalReceived):
                if ev.response.body:
                    out.early_sdp = ev.response.body
                rack = sent.prack.receive(ev.response) if self.config.use_100rel else None
                if rack is not None and ev.dialog is not None and ev.dialog.state is DialogState.EARLY:
                    prack = ev.dialog.create_request("PRACK", headers=[("RAck", str(rack))])
                    out.pracks.append(prack)
                    self._spawn(self._send_quietly(prack, target))

    async def _send_quietly(self, request: SipRequest, target: Target) -> None:
        with contextlib.suppress(SipError):
            await self.endpoint.request(request, target)

    def cancel(self, out: OutgoingInvite, reason: Reason | str | None = None) -> None:
        """CANCEL a pending INVITE, sent once a provisional response arrived (RFC 3261 §9.1).

        ``reason`` goes into a Reason header (RFC 3326). A 200 that crosses the CANCEL is ACKed
        and BYEd; ``out.result`` then fails with 487.
        """
        out.cancel_requested = True
        out.cancel_headers = reason_headers(reason)
        if out.client is not None:
            out.client.cancel()
        self._maybe_cancel(out)

    def _maybe_cancel(self, out: OutgoingInvite) -> None:
        tx = out.transaction
        if not out.cancel_requested or out.cancel_sent or tx is None or not tx.can_cancel:
            return
        target = tx.context
        if not isinstance(target, Target):
            return
        out.cancel_sent = True
        cancel = tx.cancel_request()
        for name, value in out.cancel_headers:
            cancel.headers.add(name, value)
        try:
            _, fut = self.endpoint.start_request(cancel, target)
        except (SipError, LocalProtocolError) as exc:
            log.warning("cannot send CANCEL: %s", exc)
            return
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())

    def _remember_ack(self, invite: SipRequest, ack: SipRequest, target: Target) -> None:
        key = (invite.call_id, invite.cseq.seq)
        self._acks_sent[key] = (ack, target)
        asyncio.get_running_loop().call_later(64 * self.endpoint.stack.timers.t1 + 5, self._acks_sent.pop, key, None)

    def _on_stray(self, ev: StrayResponse) -> None:
        """Every 2xx but the first (other forks, retransmissions): ACK again, or ACK and BYE (§13.2.2.4)."""
        resp = ev.response
        if resp.status_code < 200 or resp.status_code >= 300:
            return
        try:
            key = (resp.call_id, resp.cseq.seq)
            if resp.cseq.method != "INVITE":
                return
        except SipParseError:
            return
        sent = self._invites.get(key)
        if sent is not None:
            self._invite_events(sent, sent.client.receive_response(resp))
            return
        ack = self._acks_sent.get(key)
        if ack is not None:
            self.endpoint.send_ack(*ack)

    # -- incoming requests -------------------------------------------------------------------------------
    def _on_request(self, ev: RequestReceived) -> Awaitable[None] | None:
        req = ev.request
        try:
            req.to  # noqa: B018  (everything below matches on From/To tags)
            req.from_  # noqa: B018
        except SipParseError as exc:
            if ev.transaction is not None:
                self.endpoint.respond(ev.transaction, make_response(req, 400, str(exc)[:80]))
            return None
        if req.method == "NOTIFY":
            for sub in self._subscriptions:
                if sub.core.matches_notify(req):
                    sub._on_notify(ev)
                    return None
        did = dialog_id_for_request(req)
        if did is not None:
            user = self._dialog_users.get(did)
            if user is not None:
                return user._on_request(ev)
            if req.method == "PRACK":
                early = self._early.get(did)
                if early is not None:
                    early._on_prack(ev)
                elif ev.transaction is not None:  # nothing reliable pending in that dialog (RFC 3262 §3)
                    self.endpoint.respond(ev.transaction, make_response(req, 481))
                return None
            session = self._sessions.get(did)
            if session is not None:
                return session._on_request(ev)
            early = self._early.get(did)
            if early is not None and req.method != "ACK":
                early._on_prack(ev)
                return None
            if req.method == "ACK":
                self._ack_received(req)
                return None
            if ev.transaction is not None and req.to.tag is not None:
                self.endpoint.respond(ev.transaction, make_response(req, 481))
                return None
        if req.method == "ACK":
            self._ack_received(req)
            return None
        tx = ev.transaction
        if tx is None:
            return None
        if req.method == "INVITE":
            return self._on_new_invite(ev, tx)
        if req.method == "OPTIONS" and self.on_out_of_dialog is None:
            self.endpoint.respond(tx, make_response(req, 200, to_tag=random_tag(self.rng), headers=self.capabilities()))
            return None
        if req.method == "MESSAGE" and self.on_message is not None:
            self.endpoint.respond(tx, make_response(req, self.on_message(ev), to_tag=random_tag(self.rng)))
            return None
        if req.method == "SUBSCRIBE" and self.on_subscribe is not None:
            return self._on_subscribe(ev)
        if req.method == "PUBLISH" and self.publications is not None:
            self.endpoint.respond(tx, self.publications.receive_publish(req, self.endpoint.now()))
            return None
        if self.on_out_of_dialog is not None:
            return self.on_out_of_dialog(ev)
        if req.method == "SUBSCRIBE":
            self.endpoint.respond(tx, make_response(req, 489, to_tag=random_tag(self.rng)))
            return None
        self.endpoint.respond(tx, make_response(req, 405 if req.method in ("REGISTER", "PUBLISH") else 501,
                                                to_tag=random_tag(self.rng), headers=[("Allow", ALLOW)]))
        return None

    def _on_subscribe(self, ev: RequestReceived) -> Awaitable[None] | None:
        try:
            sub = ServerSubscription(self, ev)
        except (LocalProtocolError, SipParseError):
            if ev.transaction is not None:
                self.endpoint.respond(ev.transaction, make_response(ev.request, 400, "SUBSCRIBE needs Event",
                                                                    to_tag=random_tag(self.rng)))
            return None
        if self.on_subscribe is None:
            raise LocalProtocolError("internal state: on_subscribe not set")
        return self.on_subscribe(sub)

    def _on_new_invite(self, ev: RequestReceived, tx: ServerTransaction) -> Awaitable[None] | None:
        req = ev.request
        unsupported = unsupported_requirements(req, self.config.supported)
        if unsupported:  # §8.2.2.3
            self.endpoint.respond(tx, make_response(req, 420, to_tag=random_tag(self.rng),
                                                    headers=[("Unsupported", ", ".join(unsupported))]))
            return None
        if self.on_invite is None:
            self.endpoint.respond(tx, make_response(req, 480, to_tag=random_tag(self.rng)))
            return None
        inc = IncomingInvite(self, ev)
        if inc.timer is not None:
            bad = inc.timer.check_request(req)
            if bad is not None:  # RFC 4028 §8.1: 422 with our Min-SE
                inc.done = True
                self.endpoint.respond(tx, make_response(req, bad[0], to_tag=inc.to_tag, headers=bad[1]))
                return None
        replaces = req.headers.get_all("replaces")
        if replaces:
            status, victim = self._match_replaces(replaces)
            if status is not None:
                inc.done = True
                self.endpoint.respond(tx, make_response(req, status, to_tag=inc.to_tag))
                return None
            inc.replaces = victim
        self._incoming[id(tx)] = inc
        return self.on_invite(inc)

    def _match_replaces(self, values: list[str]) -> tuple[int | None, InviteSession | OutgoingInvite | None]:
        """RFC 3891 §3: the dialog an INVITE's Replaces names, or the status to refuse it with."""
        if len(values) != 1:
            return 400, None
        try:
            rep = parse_replaces(values[0])
        except SipParseError:
            return 400, None
        did = DialogId(rep.call_id, rep.to_tag, rep.from_tag)  # to-tag is ours, from-tag the peer's
        session = self._sessions.get(did)
        if session is not None:
            return check_replaces(session.dialog.state, early_only=rep.early_only,
                                  initiated_by_us=session.outgoing), session
        for sent in self._invites.values():
            dialog = sent.client.dialogs.get(rep.from_tag)
            if dialog is not None and dialog.call_id == rep.call_id and dialog.local_tag == rep.to_tag:
                status = check_replaces(dialog.state, early_only=rep.early_only, initiated_by_us=True)
                return status, (sent.out if status is None else None)
        if did in self._ended_dialogs:
            return check_replaces(DialogState.TERMINATED, early_only=rep.early_only, initiated_by_us=False), None
        for inc in self._incoming.values():
            if inc.request.call_id == rep.call_id and inc.to_tag == rep.to_tag and not inc.done:
                return check_replaces(DialogState.EARLY, early_only=rep.early_only, initiated_by_us=False), None
        return check_replaces(None, early_only=rep.early_only, initiated_by_us=False), None

    def _on_cancel(self, ev: CancelReceived) -> None:
        inc = self._incoming.get(id(ev.invite_transaction))
        if inc is None or inc.done:
            return  # already answered: the CANCEL has no effect (§9.2), the stack said 200 to it
        inc.done = True
        inc._finish()
        inc.cancel_reasons = reasons_of(ev.cancel)
        inc.cancelled.set()
        self.endpoint.respond(inc.transaction, make_response(inc.request, 487, to_tag=inc.to_tag))

    # -- UAS 2xx reliability (§13.3.1.4) -----------------------------------------------------------------
    def _send_2xx(self, tx: ServerTransaction, resp: SipResponse, session: InviteSession, source: Target) -> None:
        self.endpoint.respond(tx, resp)
        key = (resp.call_id, resp.cseq.seq)
        old = self._uas_2xx.pop(key, None)
        if old is not None and old.handle is not None:
            old.handle.cancel()
        state = _Uas2xx(resp, ResponseRetransmitter.for_2xx(self.endpoint.now(), self.endpoint.stack.timers),
                        self.endpoint.stack.response_target(tx.request, source), session)
        self._uas_2xx[key] = state
        self._arm_2xx(key, state)

    def _arm_2xx(self, key: tuple[str, int], state: _Uas2xx) -> None:
        deadline = state.retransmitter.next_deadline()
        if deadline is None:
            self._uas_2xx.pop(key, None)
            return
        state.handle = asyncio.get_running_loop().call_at(deadline, self._fire_2xx, key, state)

    def _fire_2xx(self, key: tuple[str, int], state: _Uas2xx) -> None:
        if self._uas_2xx.get(key) is not state:
            return
        retx = state.retransmitter
        action = retx.handle_timeout(max(self.endpoint.now(), retx.next_deadline() or 0.0))
        if action is RetransmitAction.RESEND:
            self.endpoint.send_stateless(state.response, state.target)
        elif action is RetransmitAction.GIVE_UP:
            del self._uas_2xx[key]
            log.warning("no ACK for %s %s within 64*T1: ending the call (RFC 3261 §13.3.1.4)", key[0], key[1])
            if state.session.dialog.state is DialogState.CONFIRMED and not state.session.terminated.is_set():
                self._spawn(state.session.bye(Reason("SIP", 408, "ACK timeout")))
            return
        self._arm_2xx(key, state)

    def _ack_received(self, ack: SipRequest) -> None:
        try:
            key = (ack.call_id, ack.cseq.seq)
        except SipParseError:
            return
        state = self._uas_2xx.pop(key, None)
        if state is not None:
            state.retransmitter.stop()
            if state.handle is not None:
                state.handle.cancel()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for session in list(self._sessions.values()):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(session.bye(), 2)
        for state in self._uas_2xx.values():
            if state.handle is not None:
                state.handle.cancel()
        self._uas_2xx.clear()
        for inc in list(self._early.values()):
            inc._finish()
        for sub in list(self._subscriptions):
            sub._finish(SubscriptionEnded(reason="deactivated", retry_after=None))
        for user in list(self._dialog_users.values()):
            user._done()
        for pub in list(self._publications):
            pub._stop()
        for task in list(self._tasks):
            task.cancel()
