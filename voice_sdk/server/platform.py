"""The embedded voice platform: token API, registrar, call routing and test numbers, in one process.

Zero-setup back end for the demo, the tests and development (production: Kamailio + coturn
+ the same token service, see docs/production.md)::

    HTTP  POST /open/sdk/access-token      X-User-API-Key -> JWT (<= 60 min)
          GET  /sdk/voip/sip-credentials   Bearer JWT -> SIP URI, ephemeral digest password, ws URL, ICE servers
    SIP   UDP / TCP / WS on 127.0.0.1 (RFC 3261, RFC 7118)
          REGISTER      digest (RFC 7616) against the ephemeral password (auth_ephemeral scheme)
          INVITE user   routed to the user's registered flows by a record-routing proxy (below)
          INVITE echo   media loopback (DTLS-SRTP, SDES or plain RTP; Opus or G.711)
                 tone   a 440 Hz tone          ivr   answers, echoes each RFC 4733 digit back, logs it
                 busy   486                    noanswer  rings, then 480
          OPTIONS       200

Every INVITE must carry valid credentials (401 challenge first), so the platform cannot be
used as an open relay. Registrations live in memory; a binding made over a connection
(TCP/WS) dies with it (RFC 5626 flows).

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
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rtpcore.aio import AioMediaDriver, bind_media_socket
from rtpcore.errors import RtpCoreError
from rtpcore.media_session import DtmfReceived, MediaConfig, MediaEvent, MediaSession
from rtpcore.sdp.offer_answer import proto_family
from rtpcore.sdp.parse import parse_sdp
from sipcore.aiostack import AioSipEndpoint
from sipcore.aioua import IncomingInvite, InviteSession, UserAgent
from sipcore.auth import DigestServer
from sipcore.errors import LocalProtocolError, SipError, SipParseError
from sipcore.message import SipRequest, SipResponse, make_response, random_tag
from sipcore.stack import CancelReceived, RequestReceived, StrayResponse, Target
from sipcore.transaction import ClientTransaction, ServerTransaction
from sipcore.transport import Flow
from sipcore.uri import SipUri, Uri, parse_uri

from ..audio import ToneSource
from .credentials import TokenIssuer, verify_ephemeral
from .http_api import HttpApi, SipEndpointInfo

__all__ = ["Binding", "CallRouter", "Platform", "PlatformConfig"]

log = logging.getLogger("voice_sdk.platform")

TEST_NUMBERS = ("echo", "tone", "ivr", "busy", "noanswer")
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE, PRACK, MESSAGE"
DTMF_TONES = {
    "1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "A": (697, 1633),
    "4": (770, 1209), "5": (770, 1336), "6": (770, 1477), "B": (770, 1633),
    "7": (852, 1209), "8": (852, 1336), "9": (852, 1477), "C": (852, 1633),
    "*": (941, 1209), "0": (941, 1336), "#": (941, 1477), "D": (941, 1633),
}
_TRUE = ("1", "true", "yes", "on")


@dataclass(slots=True)
class PlatformConfig:
    host: str = "127.0.0.1"
    """Address every socket binds to."""
    domain: str = "voice.localhost"
    """SIP domain (digest realm) of the users: ``sip:<user>@<domain>``."""
    http_port: int = 0
    udp_port: int = 0
    tcp_port: int = 0
    ws_port: int = 0
    api_keys: set[str] = field(default_factory=lambda: {"demo-api-key"})
    jwt_secret: str = field(default_factory=lambda: os.urandom(32).hex())
    sip_secret: str = field(default_factory=lambda: os.urandom(32).hex())
    """Shared secret of the ephemeral SIP passwords (Kamailio ``auth_ephemeral`` ``secret``)."""
    turn_secret: str = field(default_factory=lambda: os.urandom(32).hex())
    """Shared secret of the TURN passwords (coturn ``static-auth-secret``)."""
    turn_urls: list[str] = field(default_factory=list)
    stun_urls: list[str] = field(default_factory=list)
    noanswer_seconds: float = 10.0
    max_calls: int = 200
    """Test-number calls plus proxied requests in progress; more are answered 503."""
    ring_timeout: float = 180.0
    """Timer C (RFC 3261 §16.6 step 11): a proxied INVITE ringing this long is cancelled."""
    sip: bool = True
    """False: the token/credentials API only, for a production SIP side (Kamailio)."""
    public_ws_url: str | None = None
    """WebSocket URL handed to clients instead of our own (a load balancer, or Kamailio)."""
    public_udp: str | None = None
    """``host:port`` handed to UDP clients instead of our own."""
    public_tcp: str | None = None
    """``host:port`` handed to TCP clients instead of our own."""

    @classmethod
    def from_env(cls, **overrides: Any) -> PlatformConfig:
        """Defaults, then ``VOICE_*`` environment variables, then ``overrides``.

        ``VOICE_HOST``, ``VOICE_DOMAIN``, ``VOICE_JWT_SECRET``, ``VOICE_SIP_SECRET``,
        ``VOICE_TURN_SECRET``, ``VOICE_PUBLIC_WS_URL``, ``VOICE_PUBLIC_UDP``, ``VOICE_PUBLIC_TCP``,
        ``VOICE_{HTTP,UDP,TCP,WS}_PORT``, ``VOICE_TURN_URLS`` / ``VOICE_STUN_URLS`` (comma
        separated), ``VOICE_SIP`` (``off``: token service only), ``VOICE_API_KEYS_FILE`` (one
        key per line, ``#`` comments).
        """
        cfg = cls()
        env = os.environ
        for name in ("host", "domain", "jwt_secret", "sip_secret", "turn_secret", "public_ws_url",
                     "public_udp", "public_tcp"):
            v = env.get(f"VOICE_{name.upper()}")
            if v:
                setattr(cfg, name, v)
        for name in ("http_port", "udp_port", "tcp_port", "ws_port"):
            v = env.get(f"VOICE_{name.upper()}")
            if v:
                setattr(cfg, name, int(v))
        for name in ("turn_urls", "stun_urls"):
            v = env.get(f"VOICE_{name.upper()}")
            if v:
                setattr(cfg, name, [u.strip() for u in v.split(",") if u.strip()])
        if env.get("VOICE_SIP"):
            cfg.sip = env["VOICE_SIP"].strip().lower() in _TRUE
        keys_file = env.get("VOICE_API_KEYS_FILE")
        if keys_file:
            with open(keys_file, encoding="utf-8") as f:
                cfg.api_keys = {line.strip() for line in f if line.strip() and not line.startswith("#")}
        for k, v in overrides.items():
            setattr(cfg, k, v)
        return cfg


@dataclass(slots=True)
class Binding:
    """One registered contact of a user and the flow its REGISTER came over."""

    user: str
    contact: str
    target: Target
    expires_at: float


ContactKey = tuple[str, str, int, str]


def _contact_key(uri: Uri | None) -> ContactKey | None:
    """What identifies a contact URI for routing: user, host, port, transport."""
    if not isinstance(uri, SipUri):
        return None
    return (uri.user or "", uri.host.strip("[]").lower(), uri.port or 0, uri.transport or "udp")


class _Loopback:
    """A source fed by a sink: what is written comes back out (the echo test)."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._q: deque[np.ndarray] = deque(maxlen=50)
        self._buf = np.zeros(0, dtype=np.int16)

    def write(self, pcm: np.ndarray) -> None:
        self._q.append(pcm)

    def read(self, samples: int) -> np.ndarray:
        while len(self._buf) < samples and self._q:
            self._buf = np.concatenate([self._buf, self._q.popleft()])
        if len(self._buf) < samples:
            out = np.zeros(samples, dtype=np.int16)
            out[: len(self._buf)] = self._buf
            self._buf = np.zeros(0, dtype=np.int16)
            return out
        out, self._buf = self._buf[:samples], self._buf[samples:]
        return out

    def close(self) -> None:
        pass


class _TestCall:
    """One answered call to a test number: media session + driver + what to play."""

    def __init__(self, platform: Platform, number: str, session: InviteSession, driver: AioMediaDriver) -> None:
        self.platform = platform
        self.number = number
        self.session = session
        self.driver = driver
        self.digits: list[str] = []


# -- call routing between users ------------------------------------------------------------------------
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


class Platform:
    def __init__(self, config: PlatformConfig | None = None) -> None:
        self.config = config or PlatformConfig()
        c = self.config
        self.issuer = TokenIssuer(c.jwt_secret)
        self.endpoint = AioSipEndpoint(user_agent="pyvoice-platform")
        self.ua: UserAgent | None = None
        self.router: CallRouter | None = None
        self.digest = DigestServer(c.domain)
        self.bindings: dict[str, list[Binding]] = {}
        """Registered contacts per user; a user who ever registered keeps an (empty) entry."""
        self._by_contact: dict[ContactKey, Binding] = {}
        self.calls: dict[str, _TestCall] = {}
        self.ivr_log: list[tuple[str, str]] = []
        """(caller, digit) for every digit the IVR heard."""
        self.http: HttpApi | None = None
        self.urls: dict[str, str] = {}
        self._noanswer_tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> dict[str, str]:
        c = self.config
        udp_addr = tcp_addr = None
        ws_url = c.public_ws_url
        if c.sip:
            udp = await self.endpoint.listen("udp", c.host, c.udp_port)
            tcp = await self.endpoint.listen("tcp", c.host, c.tcp_port)
            ws = await self.endpoint.listen("ws", c.host, c.ws_port)
            self.ua = UserAgent(self.endpoint, aor=f"sip:platform@{c.domain}", outbound=None)
            self.ua.on_invite = self._on_invite
            self.ua.on_out_of_dialog = self._on_request
            self.router = CallRouter(self)
            udp_addr, tcp_addr = f"{udp[0]}:{udp[1]}", f"{tcp[0]}:{tcp[1]}"
            ws_url = ws_url or f"ws://{ws[0]}:{ws[1]}"
            self.urls.update({"udp": f"sip:{udp_addr}", "tcp": f"sip:{tcp_addr};transport=tcp",
                              "ws_local": f"ws://{ws[0]}:{ws[1]}"})
        elif not ws_url:
            raise ValueError("PlatformConfig(sip=False) needs public_ws_url (the SIP server's WebSocket URL)")
        assert ws_url is not None
        info = SipEndpointInfo(domain=c.domain, ws_url=ws_url, udp=c.public_udp or udp_addr,
                               tcp=c.public_tcp or tcp_addr, turn_urls=c.turn_urls, stun_urls=c.stun_urls)
        self.http = HttpApi(self.issuer, c.api_keys, c.sip_secret, c.turn_secret, info)
        http_port = await self.http.start(c.host, c.http_port)
        self.urls.update({
            "http": f"http://{c.host}:{http_port}",
            "credentials": f"http://{c.host}:{http_port}/sdk/voip/sip-credentials",
            "token": f"http://{c.host}:{http_port}/open/sdk/access-token",
            "ws": ws_url,
        })
        log.info("platform up: %s", self.urls)
        return self.urls

    async def close(self) -> None:
        for call in list(self.calls.values()):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(call.session.bye(), 1)
            call.driver.close()
        for t in list(self._noanswer_tasks):
            t.cancel()
        if self.router is not None:
            self.router.close()
        if self.ua is not None:
            await self.ua.close()
        await self.endpoint.close()
        if self.http is not None:
            await self.http.close()

    def banner(self) -> str:
        u = self.urls
        sip = (f"  SIP          {u.get('udp')}  {u.get('tcp')}  {u.get('ws')}\n"
               f"  test numbers {', '.join(TEST_NUMBERS)}; other users by name") if self.config.sip else \
            f"  SIP          not served here: clients register at {u.get('ws')}"
        return (f"voice platform on {self.config.host}  domain {self.config.domain}\n"
                f"  token API    POST {u.get('token')}  (header X-User-API-Key)\n"
                f"  credentials  GET  {u.get('credentials')}  (Authorization: Bearer <token>)\n" + sip)

    # -- location service ------------------------------------------------------------------------------
    def live_bindings(self, user: str) -> list[Binding]:
        now = self.endpoint.now()
        return [b for b in self.bindings.get(user, []) if b.expires_at > now]

    def binding_for_contact(self, uri: Uri | None) -> Binding | None:
        """The live binding whose contact is ``uri`` (how in-dialog requests find a WS client)."""
        key = _contact_key(uri)
        b = self._by_contact.get(key) if key is not None else None
        if b is None or b.expires_at <= self.endpoint.now():
            return None
        return b

    def _set_bindings(self, user: str, bindings: list[Binding]) -> None:
        for b in self.bindings.get(user, []):
            key = _contact_key(_parse_contact(b.contact))
            if key is not None and self._by_contact.get(key) is b:
                del self._by_contact[key]
        self.bindings[user] = bindings
        for b in bindings:
            key = _contact_key(_parse_contact(b.contact))
            if key is not None:
                self._by_contact[key] = b

    def _flow_closed(self, flow: Flow) -> None:
        """A connection closed: bindings made over it cannot be reached any more (RFC 5626 §5.3)."""
        for user, bindings in list(self.bindings.items()):
            alive = [b for b in bindings if b.target.flow != flow]
            if len(alive) != len(bindings):
                log.info("flow %s closed: %d binding(s) of %s dropped", flow, len(bindings) - len(alive), user)
                self._set_bindings(user, alive)

    # -- authentication ----------------------------------------------------------------------------
    def _password(self, username: str) -> str | None:
        return verify_ephemeral(self.config.sip_secret, username, now=time.time())

    def _authenticate(self, req: SipRequest, tx_respond: Callable[[SipResponse], None]) -> str | None:
        """The authenticated user, or None after sending a 401/403."""
        now = self.endpoint.now()
        result = self.digest.verify(req, now, self._password)
        if not result.ok or result.username is None:
            tx_respond(make_response(req, 401, to_tag=random_tag(), headers=self.digest.challenge(now, stale=result.stale)))
            return None
        user = result.username.partition(":")[2]
        try:
            from_user = req.from_.uri.user if isinstance(req.from_.uri, SipUri) else None
        except SipParseError:
            from_user = None
        if from_user != user:
            tx_respond(make_response(req, 403, "Credentials do not match From", to_tag=random_tag()))
            return None
        return user

    # -- REGISTER / OPTIONS ---------------------------------------------------------------------------
    async def _on_request(self, ev: RequestReceived) -> None:
        req = ev.request
        tx = ev.transaction
        if tx is None:
            return

        def respond(resp: SipResponse) -> None:
            self.endpoint.respond(tx, resp)

        if req.method == "OPTIONS":
            respond(make_response(req, 200, to_tag=random_tag(), headers=[("Allow", ALLOW)]))
            return
        if req.method != "REGISTER":
            respond(make_response(req, 405, to_tag=random_tag(), headers=[("Allow", ALLOW)]))
            return
        user = self._authenticate(req, respond)
        if user is None:
            return
        try:
            to_uri = req.to.uri
            if not isinstance(to_uri, SipUri) or to_uri.user != user:
                respond(make_response(req, 403, "Not your address of record", to_tag=random_tag()))
                return
            contacts = req.contacts
            expires_hdr = req.expires
        except SipParseError as exc:
            respond(make_response(req, 400, str(exc)[:60], to_tag=random_tag()))
            return
        now = self.endpoint.now()
        current = [b for b in self.bindings.get(user, []) if b.expires_at > now]
        for c in contacts:
            if c.star:
                current = []
                continue
            exp = c.expires if c.expires is not None else (expires_hdr if expires_hdr is not None else 3600)
            exp = min(exp, 3600)
            current = [b for b in current if b.contact != str(c.uri)]
            if exp > 0:
                current.append(Binding(user, str(c.uri), ev.source, now + exp))
        self._set_bindings(user, current)
        hdrs = [("Contact", f"<{b.contact}>;expires={int(b.expires_at - now)}") for b in current]
        respond(make_response(req, 200, to_tag=random_tag(), headers=hdrs))

    # -- INVITE to the platform itself (test numbers) ------------------------------------------------
    async def _on_invite(self, inc: IncomingInvite) -> None:
        req = inc.request
        user = self._authenticate(req, lambda resp: self.endpoint.respond(inc.transaction, resp))
        if user is None:
            inc.done = True
            return
        uri = req.uri
        number = uri.user if isinstance(uri, SipUri) and uri.user else ""
        active = len(self.calls) + (self.router.active if self.router is not None else 0)
        if active >= self.config.max_calls:
            inc.reject(503, "Too many calls")
            return
        if number == "busy":
            inc.reject(486)
            return
        if number == "noanswer":
            inc.ring()
            task = asyncio.ensure_future(self._no_answer(inc))
            self._noanswer_tasks.add(task)
            task.add_done_callback(self._noanswer_tasks.discard)
            return
        if number not in ("echo", "tone", "ivr"):
            inc.reject(404, "No such user or test number")
            return
        await self._answer_test_number(inc, number, caller=user)

    async def _no_answer(self, inc: IncomingInvite) -> None:
        try:
            await asyncio.wait_for(inc.cancelled.wait(), self.config.noanswer_seconds)
        except TimeoutError:
            inc.reject(480)

    async def _answer_test_number(self, inc: IncomingInvite, number: str, caller: str) -> None:
        offer = inc.offer
        try:
            sdp = parse_sdp(offer)
            audio = next(m for m in sdp.media if m.kind == "audio" and m.port)
            family = proto_family(audio.proto) or "plain"
        except (RtpCoreError, StopIteration):
            inc.reject(488, "No usable audio offer")
            return
        security = {"dtls": "dtls", "sdes": "sdes"}.get(family, "none")
        proto, addr = await bind_media_socket(self.config.host, 0)
        media = MediaSession(addr, now=self.endpoint.now(), config=MediaConfig(security=security),
                             wallclock=time.time())
        try:
            answer = media.receive_offer(offer, self.endpoint.now())
        except RtpCoreError as exc:
            if proto.transport is not None:
                proto.transport.close()
            inc.reject(488, str(exc)[:80])
            return
        holder: dict[str, _TestCall] = {}

        def on_event(ev: MediaEvent) -> None:
            call = holder.get("call")
            if call is None:
                return
            if isinstance(ev, DtmfReceived) and number == "ivr":
                call.digits.append(ev.digit)
                self.ivr_log.append((caller, ev.digit))
                log.info("ivr: %s pressed %s", caller, ev.digit)
                with contextlib.suppress(RtpCoreError):
                    media.send_dtmf(ev.digit, self.endpoint.now())  # confirm: echo the digit back
                if isinstance(driver.source, ToneSource) and ev.digit in DTMF_TONES:
                    driver.source.frequencies = DTMF_TONES[ev.digit]

        rate = media.audio_sample_rate
        source: Any
        sink: Any = None
        if number == "echo":
            loop = _Loopback(rate)
            source, sink = loop, loop
        elif number == "tone":
            source = ToneSource((440.0,), sample_rate=rate, amplitude=0.25)
        else:
            source = ToneSource((350.0, 440.0), sample_rate=rate, amplitude=0.1)
        driver = AioMediaDriver(media, proto, source=source, sink=sink, on_event=on_event)
        session = inc.answer(answer)
        call = _TestCall(self, number, session, driver)
        holder["call"] = call
        self.calls[session.call_id] = call
        driver.poke()
        driver.start_media_clock()

        async def on_reinvite(s: InviteSession, remote_offer: bytes) -> bytes:
            try:
                answer = media.receive_offer(remote_offer, self.endpoint.now())
            except RtpCoreError as exc:
                raise SipError(f"re-INVITE offer not acceptable: {exc}") from exc
            driver.poke()
            return answer

        session.on_reinvite = on_reinvite

        def on_bye(_req: object) -> None:
            driver.close()
            self.calls.pop(session.call_id, None)

        session.on_bye = on_bye


def _parse_contact(text: str) -> Uri | None:
    try:
        return parse_uri(text)
    except SipParseError:
        return None
