"""An asyncio SIP user agent core: INVITE sessions (RFC 3261 §13-§15) on top of :class:`AioSipEndpoint`.

The decisions live in sans-IO modules (:mod:`sipcore.invite`, dialogs, transactions); this
module only keeps them fed, arms their timers on the event loop and turns outcomes into
futures and callbacks.

* UAC: INVITE with digest retry (401/407, §22.2), provisional responses (early dialogs),
  CANCEL (§9.1: sent once a provisional arrived; a 200 that wins the race is ACKed and BYEd),
  ACK for every 2xx sent by the TU and re-sent for each retransmission (§13.2.2.4). Forking:
  the first 2xx is the session, every 2xx from another fork is ACKed and ended with BYE.
* UAS: 180/183, 2xx retransmitted with T1 doubling up to T2 until the ACK arrives, whatever
  the transport, BYE after 64*T1 without ACK (§13.3.1.4), 487 after CANCEL, 481 for unknown
  dialogs. The Reason of a CANCEL (RFC 3326, e.g. ``SIP;cause=200;text="Call completed
  elsewhere"`` from a forking proxy) is kept on the :class:`IncomingInvite`.
* In a dialog: BYE (with an optional Reason), re-INVITE (offer/answer callbacks; 491 glare
  with the §14.1 back-off, 500 + Retry-After when a re-INVITE overtakes our answer), INFO
  (dtmf-relay), OPTIONS, UPDATE without body; out-of-order CSeq → 500 (§12.2.2).

Routing is "everything through the outbound flow" (what WebSocket clients such as JsSIP do,
RFC 5626 style): a UAC sends all requests to its outbound target with Route headers from the
route set; a UAS answers on, and sends in-dialog requests to, the flow the INVITE came from.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .aiostack import AioSipEndpoint
from .auth import AuthenticationFailed, DigestClient
from .dialog import Dialog, DialogError, DialogState, dialog_id_for_request
from .errors import LocalProtocolError, SipError, SipParseError
from .header_extra import Reason
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
    glare_backoff,
    reasons_of,
)
from .message import SipRequest, SipResponse, make_response, random_tag
from .stack import CancelReceived, RequestReceived, StrayResponse, Target
from .transaction import ClientTransaction, ServerTransaction
from .uri import SipUri, parse_uri

__all__ = ["CallFailed", "IncomingInvite", "InviteSession", "OutgoingInvite", "UserAgent"]

log = logging.getLogger("sipcore.ua")

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, NOTIFY, REFER, MESSAGE"


class CallFailed(SipError):
    """An INVITE ended without a session: ``status`` and ``reason`` of the final response."""

    def __init__(self, status: int, reason: str, response: SipResponse | None = None) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.response = response


OfferHandler = Callable[["InviteSession", bytes], Awaitable[bytes]]


def reason_headers(reason: Reason | str | None) -> list[tuple[str, str]]:
    """A Reason header (RFC 3326) for a BYE or CANCEL, from a :class:`Reason` or its text."""
    if reason is None:
        return []
    return [("Reason", str(reason))]


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
        self.on_info: Callable[[SipRequest], int] | None = None
        self.offers = OfferState()
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
        self.ua._sessions.pop(self.dialog.id, None)
        if self.on_bye is not None:
            try:
                self.on_bye(request)
            except Exception:
                log.exception("on_bye failed")

    async def _request(self, method: str, *, body: bytes = b"", content_type: str | None = None,
                       headers: list[tuple[str, str]] | None = None) -> SipResponse:
        req = self.dialog.create_request(method, body=body, content_type=content_type, headers=headers or [],
                                         contact=self.ua.contact if method in ("INVITE", "UPDATE") else None)
        resp = await self.ua.endpoint.request(req, self.target)
        if resp.status_code in (401, 407) and self.ua.digest is not None:
            try:
                req2 = self.ua.digest.authorize(req, resp)
            except (AuthenticationFailed, SipError):
                return resp
            self.dialog.local_seq = req2.cseq.seq
            resp = await self.ua.endpoint.request(req2, self.target)
            req = req2
        with contextlib.suppress(LocalProtocolError, SipParseError):
            self.dialog.update_from_response(resp)
        if method == "INVITE" and resp.status_code >= 200:
            if resp.status_code < 300:
                ack = self.dialog.create_ack(req.cseq.seq, headers=self._auth)
                self.ua._remember_ack(req, ack, self.target)
                self.ua.endpoint.send_ack(ack, self.target)
            elif resp.status_code in (481, 408):
                self._ended(f"{resp.status_code} to re-INVITE", None)
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

    async def reinvite(self, sdp: bytes) -> SipResponse:
        """Send a re-INVITE with ``sdp`` (hold/resume, ICE restart); 491 → retried after §14.1 back-off."""
        resp: SipResponse | None = None
        for attempt in range(3):
            self.offers.local_invite = self.offers.local_offer = True
            try:
                resp = await self._request("INVITE", body=sdp, content_type="application/sdp")
            finally:
                self.offers.local_invite = self.offers.local_offer = False
            if resp.status_code == 491 and attempt < 2:
                # §14.1: the owner of the Call-ID (it sent the first INVITE) waits 2.1-4 s, the other 0-2 s
                await asyncio.sleep(glare_backoff(self.dialog.is_uac, self.ua.rng))
                continue
            if resp.status_code < 300:
                self.local_sdp = sdp
                self.remote_sdp = resp.body
            return resp
        assert resp is not None
        return resp

    async def info(self, body: bytes, content_type: str) -> SipResponse:
        return await self._request("INFO", body=body, content_type=content_type)

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
        if req.method == "BYE":
            self.remote_reasons = reasons_of(req)
            ep.respond(tx, make_response(req, 200))
            self._ended("remote hangup", req)
        elif req.method == "INVITE":
            await self._on_reinvite(req, tx, ev.source)
        elif req.method == "INFO":
            code = self.on_info(req) if self.on_info is not None else 200
            ep.respond(tx, make_response(req, code))
        elif req.method in ("OPTIONS", "UPDATE", "NOTIFY"):
            ep.respond(tx, make_response(req, 200, headers=[("Contact", self.ua.contact)]))
        else:
            ep.respond(tx, make_response(req, 501, headers=[("Allow", ALLOW)]))

    async def _on_reinvite(self, req: SipRequest, tx: ServerTransaction, source: Target) -> None:
        ep = self.ua.endpoint
        collision = self.offers.check_incoming("INVITE", bool(req.body), self.ua.rng)
        if collision is not None:
            status, headers = collision
            ep.respond(tx, make_response(req, status, headers=headers))
            return
        self.offers.remote_invite = True
        try:
            if self.on_reinvite is None or not req.body:
                resp = make_response(req, 200, headers=[("Contact", self.ua.contact)], body=self.local_sdp,
                                     content_type="application/sdp" if self.local_sdp else None)
            else:
                self.offers.remote_offer = True
                try:
                    answer = await self.on_reinvite(self, req.body)
                except SipError as exc:
                    ep.respond(tx, make_response(req, 488, str(exc)[:80]))
                    return
                finally:
                    self.offers.remote_offer = False
                self.local_sdp, self.remote_sdp = answer, req.body
                resp = make_response(req, 200, headers=[("Contact", self.ua.contact)], body=answer,
                                     content_type="application/sdp")
            self.ua._send_2xx(tx, resp, self, source)
        finally:
            self.offers.remote_invite = False


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

    @property
    def offer(self) -> bytes:
        return self.request.body

    @property
    def completed_elsewhere(self) -> bool:
        """The CANCEL said another device took the call (``SIP;cause=200``): not a missed call."""
        return any(r.protocol.upper() == "SIP" and r.cause == CALL_COMPLETED_ELSEWHERE.cause
                   for r in self.cancel_reasons)

    def ring(self, *, early_sdp: bytes | None = None) -> None:
        if self.done:
            return
        code = 183 if early_sdp else 180
        resp = make_response(self.request, code, to_tag=self.to_tag, headers=[("Contact", self.ua.contact)],
                             body=early_sdp or b"", content_type="application/sdp" if early_sdp else None)
        self.ua.endpoint.respond(self.transaction, resp)

    def answer(self, sdp: bytes, *, headers: list[tuple[str, str]] | None = None) -> InviteSession:
        if self.done:
            raise LocalProtocolError("this INVITE was already answered, rejected or cancelled")
        self.done = True
        resp = make_response(self.request, 200, to_tag=self.to_tag,
                             headers=[("Contact", self.ua.contact), ("Allow", ALLOW), *(headers or [])],
                             body=sdp, content_type="application/sdp")
        dialog = Dialog.from_uas(self.request, resp, rng=self.ua.rng)
        dialog.local_target = self.ua.contact
        dialog.confirm()
        session = InviteSession(self.ua, dialog, self.source, outgoing=False, local_sdp=sdp,
                                remote_sdp=self.request.body)
        self.ua._sessions[dialog.id] = session
        self.session = session
        self.ua._send_2xx(self.transaction, resp, session, self.source)
        return session

    def reject(self, status: int = 486, reason: str | None = None,
               headers: list[tuple[str, str]] | None = None) -> None:
        if self.done:
            return
        self.done = True
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
        self.discarded: list[Dialog] = []
        """Dialogs of answers that were ACKed and BYEd (other forks, or a 200 after CANCEL)."""
        self.auth: list[tuple[str, str]] = []


class UserAgent:
    """A SIP UA: outgoing and incoming INVITE sessions, in-dialog requests, OPTIONS."""

    def __init__(self, endpoint: AioSipEndpoint, *, aor: str, outbound: Target | None,
                 credentials: tuple[str, str] | None = None, display_name: str | None = None,
                 rng: Callable[[int], bytes] = os.urandom, contact_host: str | None = None) -> None:
        self.endpoint = endpoint
        uri = parse_uri(aor)
        if not isinstance(uri, SipUri):
            raise LocalProtocolError(f"the address of record must be a SIP URI, not {aor!r}")
        self.aor = uri
        self.outbound = outbound
        self.display_name = display_name
        self.rng = rng
        self.digest = DigestClient(credentials[0], credentials[1], rng=rng) if credentials else None
        self._contact_host = contact_host
        self._sessions: dict[Any, InviteSession] = {}
        self._uas_2xx: dict[tuple[str, int], _Uas2xx] = {}
        self._incoming: dict[int, IncomingInvite] = {}
        self._invites: dict[tuple[str, int], _SentInvite] = {}
        self._acks_sent: dict[tuple[str, int], tuple[SipRequest, Target]] = {}
        self.on_invite: Callable[[IncomingInvite], Awaitable[None] | None] | None = None
        self.on_message: Callable[[RequestReceived], int] | None = None
        self.on_out_of_dialog: Callable[[RequestReceived], Awaitable[None] | None] | None = None
        """Any other request outside a dialog (REGISTER at a server, MESSAGE, SUBSCRIBE ...)."""
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
    async def request(self, req: SipRequest, target: Target | None = None) -> SipResponse:
        """Send a request, retrying once with credentials on 401/407."""
        target = target or self._target(req.uri_text)
        resp = await self.endpoint.request(req, target)
        tries = 0
        while resp.status_code in (401, 407) and self.digest is not None and tries < 2:
            req = self.digest.authorize(req, resp)
            resp = await self.endpoint.request(req, target)
            tries += 1
        return resp

    # -- outgoing calls ----------------------------------------------------------------------------------
    def invite(self, uri: str, sdp: bytes, *, to: str | None = None, headers: list[tuple[str, str]] | None = None,
               on_provisional: Callable[[SipResponse], None] | None = None) -> OutgoingInvite:
        out = OutgoingInvite()
        req = self.new_request("INVITE", uri, to=to, body=sdp, content_type="application/sdp",
                               headers=[("Allow", ALLOW), ("Supported", "replaces, outbound"), *(headers or [])])
        self._spawn(self._run_invite(out, req, self._target(uri), on_provisional))
        return out

    async def _run_invite(self, out: OutgoingInvite, req: SipRequest, target: Target,
                          on_provisional: Callable[[SipResponse], None] | None) -> None:
        try:
            for _ in range(3):
                client = InviteClient(req, ack_headers=out.auth, local_target=self.contact)
                out.client = client
                if out.cancel_requested:
                    client.cancel()
                sent = _SentInvite(client, out, target)
                self._invites[(req.call_id, req.cseq.seq)] = sent

                def prov(resp: SipResponse, sent: _SentInvite = sent) -> None:
                    out.provisional.append(resp)
                    self._invite_events(sent, sent.client.receive_response(resp))
                    if on_provisional is not None:
                        on_provisional(resp)
                    self._maybe_cancel(out)

                tx, fut = self.endpoint.start_request(req, target, on_provisional=prov)
                out.transaction = tx
                out.cancel_sent = False
                resp = await fut
                if resp.status_code in (401, 407) and self.digest is not None and not out.cancel_requested:
                    req = self.digest.authorize(req, resp)
                    out.auth = [(n, v) for n, v in req.headers if n.lower() in ("authorization",
                                                                                "proxy-authorization")]
                    continue
                break
            self._invite_events(sent, client.receive_response(resp))
            if not out.result.done():  # a final the client core ignored (never happens with a sane peer)
                out.result.set_exception(CallFailed(resp.status_code, resp.reason, resp))
        except Exception as exc:  # surface anything to the caller, never hang it
            if not out.result.done():
                out.result.set_exception(exc)
        finally:
            asyncio.get_running_loop().call_later(64 * self.endpoint.stack.timers.t1 + 5, self._forget_invite,
                                                  (req.call_id, req.cseq.seq))

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
                self._sessions[ev.dialog.id] = session
                ep.send_ack(ev.ack, target)
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
                pass

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
        did = dialog_id_for_request(req)
        if did is not None:
            session = self._sessions.get(did)
            if session is not None:
                return session._on_request(ev)
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
            if self.on_invite is None:
                self.endpoint.respond(tx, make_response(req, 480, to_tag=random_tag(self.rng)))
                return None
            inc = IncomingInvite(self, ev)
            self._incoming[id(tx)] = inc
            return self.on_invite(inc)
        if req.method == "OPTIONS" and self.on_out_of_dialog is None:
            self.endpoint.respond(tx, make_response(req, 200, to_tag=random_tag(self.rng),
                                                    headers=[("Allow", ALLOW), ("Accept", "application/sdp")]))
            return None
        if self.on_out_of_dialog is not None:
            return self.on_out_of_dialog(ev)
        if req.method == "MESSAGE" and self.on_message is not None:
            self.endpoint.respond(tx, make_response(req, self.on_message(ev), to_tag=random_tag(self.rng)))
            return None
        self.endpoint.respond(tx, make_response(req, 405 if req.method in ("REGISTER", "SUBSCRIBE") else 501,
                                                to_tag=random_tag(self.rng), headers=[("Allow", ALLOW)]))
        return None

    def _on_cancel(self, ev: CancelReceived) -> None:
        inc = self._incoming.get(id(ev.invite_transaction))
        if inc is None or inc.done:
            return  # already answered: the CANCEL has no effect (§9.2), the stack said 200 to it
        inc.done = True
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
        for txid, inc in list(self._incoming.items()):
            if inc.done and inc.request.call_id == key[0]:
                self._incoming.pop(txid, None)

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
        for task in list(self._tasks):
            task.cancel()

