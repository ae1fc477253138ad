"""An asyncio SIP user agent core: INVITE sessions (RFC 3261 §13-§15) on top of :class:`AioSipEndpoint`.

What it adds to transactions and dialogs:

* UAC: INVITE with digest retry (401/407, §22.2), provisional responses (early dialogs),
  CANCEL (§9.1; a 200 arriving after CANCEL is ACKed and BYEd), ACK for 2xx sent by the TU
  and re-sent for every 2xx retransmission (§13.2.2.4), one session per answered fork.
* UAS: 180/183, 2xx retransmitted with T1 doubling up to T2 until the ACK arrives, BYE after
  64*T1 without ACK (§13.3.1.4), 487 after CANCEL, 481 for unknown dialogs.
* In a dialog: BYE, re-INVITE (offer/answer callbacks; 491 glare with the §14.1 back-off),
  INFO (dtmf-relay), OPTIONS, UPDATE without body; out-of-order CSeq → 500 (§12.2.2).

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
from .headers import Headers
from .message import SipRequest, SipResponse, make_response, random_tag
from .stack import CancelReceived, RequestReceived, StrayResponse, Target
from .transaction import ClientTransaction, ServerTransaction
from .uri import SipUri, parse_uri

__all__ = ["CallFailed", "IncomingInvite", "InviteSession", "UserAgent"]

log = logging.getLogger("sipcore.ua")


class CallFailed(SipError):
    """An INVITE ended without a session: ``status`` and ``reason`` of the final response."""

    def __init__(self, status: int, reason: str, response: SipResponse | None = None) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.response = response


OfferHandler = Callable[["InviteSession", bytes], Awaitable[bytes]]


@dataclass(slots=True)
class _Uas2xx:
    response: SipResponse
    acked: asyncio.Event


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
        self.on_bye: Callable[[SipRequest | None], None] | None = None
        """Called once when the dialog ends (the BYE request, or None when we ended it)."""
        self.on_reinvite: OfferHandler | None = None
        """Called with the remote offer of a re-INVITE; returns our answer SDP."""
        self.on_info: Callable[[SipRequest], int] | None = None
        self._reinvite_busy = False
        self._auth: list[tuple[str, str]] = []

    @property
    def call_id(self) -> str:
        return self.dialog.call_id

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
                self.ua.endpoint.send_ack(self.dialog.create_ack(req.cseq.seq), self.target)
            elif resp.status_code in (481, 408):
                self._ended(f"{resp.status_code} to re-INVITE", None)
        return resp

    async def bye(self, reason: str | None = None) -> None:
        """End the call (RFC 3261 §15.1.1); returns when the BYE is answered or timed out."""
        if self.terminated.is_set() or self.dialog.state is DialogState.TERMINATED:
            return
        headers = [("Reason", reason)] if reason else []
        self._ended("local hangup", None)
        self.dialog.state = DialogState.CONFIRMED
        try:
            await asyncio.wait_for(self._request("BYE", headers=headers), 40)
        except (TimeoutError, SipError, LocalProtocolError):
            pass
        finally:
            self.dialog.terminate()

    async def reinvite(self, sdp: bytes) -> SipResponse:
        """Send a re-INVITE with ``sdp`` (hold/resume, ICE restart); 491 → retried after §14.1 back-off."""
        for attempt in range(3):
            self._reinvite_busy = True
            try:
                resp = await self._request("INVITE", body=sdp, content_type="application/sdp")
            finally:
                self._reinvite_busy = False
            if resp.status_code == 491 and attempt < 2:
                # §14.1: owner of the Call-ID waits 2.1-4 s, the other side 0-2 s
                base = 2.1 if self.outgoing else 0.0
                await asyncio.sleep(base + int.from_bytes(self.ua.rng(1), "big") / 255 * 1.9)
                continue
            if resp.status_code < 300:
                self.local_sdp = sdp
                self.remote_sdp = resp.body
            return resp
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
        assert tx is not None
        if req.method == "BYE":
            self.ua.endpoint.respond(tx, make_response(req, 200))
            self._ended("remote hangup", req)
        elif req.method == "INVITE":
            if self._reinvite_busy:
                self.ua.endpoint.respond(tx, make_response(req, 491))
                return
            if self.on_reinvite is None or not req.body:
                resp = make_response(req, 200, headers=[("Contact", self.ua.contact)], body=self.local_sdp,
                                     content_type="application/sdp" if self.local_sdp else None)
            else:
                try:
                    answer = await self.on_reinvite(self, req.body)
                except SipError as exc:
                    self.ua.endpoint.respond(tx, make_response(req, 488, str(exc)[:80]))
                    return
                self.local_sdp, self.remote_sdp = answer, req.body
                resp = make_response(req, 200, headers=[("Contact", self.ua.contact)], body=answer,
                                     content_type="application/sdp")
            self.ua._send_2xx(tx, resp, self)
        elif req.method == "INFO":
            code = self.on_info(req) if self.on_info is not None else 200
            self.ua.endpoint.respond(tx, make_response(req, code))
        elif req.method in ("OPTIONS", "UPDATE", "NOTIFY"):
            self.ua.endpoint.respond(tx, make_response(req, 200, headers=[("Contact", self.ua.contact)]))
        else:
            self.ua.endpoint.respond(tx, make_response(req, 501, headers=[("Allow", ALLOW)]))


ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, NOTIFY, REFER, MESSAGE"


class IncomingInvite:
    """An INVITE waiting for the TU: ``ring()``, then ``answer(sdp)`` or ``reject(code)``."""

    def __init__(self, ua: UserAgent, event: RequestReceived) -> None:
        self.ua = ua
        self.request = event.request
        assert event.transaction is not None
        self.transaction: ServerTransaction = event.transaction
        self.source = event.source
        self.to_tag = random_tag(ua.rng)
        self.cancelled = asyncio.Event()
        self.done = False
        self.session: InviteSession | None = None

    @property
    def offer(self) -> bytes:
        return self.request.body

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
        self.ua._send_2xx(self.transaction, resp, session)
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
        self.cancel_requested = False
        self.result: asyncio.Future[InviteSession] = asyncio.get_running_loop().create_future()
        self.provisional: list[SipResponse] = []


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
                def prov(resp: SipResponse) -> None:
                    out.provisional.append(resp)
                    if on_provisional is not None:
                        on_provisional(resp)
                tx, fut = self.endpoint.start_request(req, target, on_provisional=prov)
                out.transaction = tx
                if out.cancel_requested:
                    self.endpoint.cancel(tx)
                resp = await fut
                if resp.status_code in (401, 407) and self.digest is not None and not out.cancel_requested:
                    req = self.digest.authorize(req, resp)
                    continue
                break
            if 200 <= resp.status_code < 300:
                dialog = Dialog.from_uac(req, resp)
                dialog.local_target = self.contact
                ack = dialog.create_ack(req.cseq.seq)
                session = InviteSession(self, dialog, target, outgoing=True, local_sdp=req.body,
                                        remote_sdp=resp.body)
                session._auth = [(n, v) for n, v in req.headers if n.lower() in ("authorization",
                                                                                 "proxy-authorization")]
                self._sessions[dialog.id] = session
                self._acks_sent[(dialog.call_id, req.cseq.seq)] = (ack, target)
                self.endpoint.send_ack(ack, target)
                if out.cancel_requested:
                    await session.bye()
                    out.result.set_exception(CallFailed(487, "Request Terminated"))
                    return
                out.result.set_result(session)
            else:
                out.result.set_exception(CallFailed(resp.status_code, resp.reason, resp))
        except Exception as exc:  # surface anything to the caller, never hang it
            if not out.result.done():
                out.result.set_exception(exc)

    def cancel(self, out: OutgoingInvite) -> None:
        """CANCEL a pending INVITE (sent once a provisional response arrived, RFC 3261 §9.1)."""
        out.cancel_requested = True
        if out.transaction is not None:
            with contextlib.suppress(SipError, LocalProtocolError):
                self.endpoint.cancel(out.transaction)

    def _on_stray(self, ev: StrayResponse) -> None:
        """A 2xx retransmission after our transaction ended: ACK it again (§13.2.2.4)."""
        resp = ev.response
        if resp.status_code < 200 or resp.status_code >= 300:
            return
        try:
            key = (resp.call_id, resp.cseq.seq)
        except SipParseError:
            return
        sent = self._acks_sent.get(key)
        if sent is not None:
            ack, target = sent
            self.endpoint.stack.send_stateless(ack, target)
            self.endpoint._drive()

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
            return
        inc.done = True
        inc.cancelled.set()
        self.endpoint.respond(inc.transaction, make_response(inc.request, 487, to_tag=inc.to_tag))

    # -- UAS 2xx reliability (§13.3.1.4) -----------------------------------------------------------------
    def _send_2xx(self, tx: ServerTransaction, resp: SipResponse, session: InviteSession) -> None:
        self.endpoint.respond(tx, resp)
        key = (resp.call_id, resp.cseq.seq)
        state = _Uas2xx(resp, asyncio.Event())
        self._uas_2xx[key] = state
        self._spawn(self._retransmit_2xx(key, state, session))

    async def _retransmit_2xx(self, key: tuple[str, int], state: _Uas2xx, session: InviteSession) -> None:
        timers = self.endpoint.stack.timers
        interval = timers.t1
        deadline = self.endpoint.now() + 64 * timers.t1
        target = self.endpoint.stack.response_target(_via_carrier(state.response), session.target)
        try:
            while self.endpoint.now() < deadline:
                try:
                    await asyncio.wait_for(state.acked.wait(), interval)
                    return
                except TimeoutError:
                    pass
                if session.target.reliable:
                    continue  # reliable transports: no retransmission, just wait for the ACK
                self.endpoint.send_stateless(state.response, target)
                interval = min(interval * 2, timers.t2)
            log.warning("no ACK for %s %s within 64*T1: ending the call (RFC 3261 §13.3.1.4)", key[0], key[1])
            await session.bye("SIP;cause=408;text=\"ACK timeout\"")
        finally:
            self._uas_2xx.pop(key, None)

    def _ack_received(self, ack: SipRequest) -> None:
        try:
            key = (ack.call_id, ack.cseq.seq)
        except SipParseError:
            return
        state = self._uas_2xx.get(key)
        if state is not None:
            state.acked.set()
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
        for task in list(self._tasks):
            task.cancel()


def _via_carrier(resp: SipResponse) -> SipRequest:
    """A request carrying the response's Via, for response routing of 2xx retransmissions."""
    h = Headers()
    for name, value in resp.headers:
        if name.lower() in ("via", "v"):
            h.add(name, value)
    return SipRequest("INVITE", "sip:invalid", h)
