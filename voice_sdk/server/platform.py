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

Calls between users go through a record-routing stateful proxy (RFC 3261 §16), the
:class:`~voice_sdk.server.router.CallRouter` (see :mod:`voice_sdk.server.router`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Callable
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
from sipcore.errors import SipError, SipParseError
from sipcore.message import SipRequest, SipResponse, make_response, random_tag
from sipcore.stack import RequestReceived, Target
from sipcore.transport import Flow
from sipcore.uri import SipUri, Uri, parse_uri

from ..audio import ToneSource
from .credentials import TokenIssuer, verify_ephemeral
from .http_api import HttpApi, SipEndpointInfo
from .router import TEST_NUMBERS, CallRouter

__all__ = ["Binding", "CallRouter", "Platform", "PlatformConfig"]

log = logging.getLogger("voice_sdk.platform")

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
        if ws_url is None:
            raise ValueError("no WebSocket URL to give clients")
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
