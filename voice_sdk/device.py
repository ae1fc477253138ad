"""Device: the phone. Token → SIP credentials → registration → calls, with refresh and reconnect.

::

    device = Device(token_provider=fetch_token, options=DeviceOptions(credentials_url=URL))
    await device.register()                     # token -> credentials -> REGISTER over WebSocket
    call = await device.connect("echo")         # Call: pending -> ringing -> accepted
    await call.send_digits("123#")
    await call.disconnect()
    await device.destroy()

States: ``unregistered`` → ``registering`` → ``registered`` ⇄ ``reconnecting`` → ``destroyed``.

Token handling: the JWT's ``exp`` is read (``alg=none`` refused). ``token_will_expire`` fires
``token_expiry_lead`` seconds before expiry, on the Device's ``clock`` (a
:class:`voice_sdk.runtime.VirtualClock` in tests); with a ``token_provider`` the Device fetches
a new token itself and re-registers without touching calls (while reconnecting it only keeps
the new token: the next attempt registers with it). An expired token is a ``TOKEN_EXPIRED``
error, never a silent failure: it ends reconnecting with ``unregistered``.

Transport loss (the connection to the registrar closes) starts reconnect attempts on the
configured back-off schedule (with ±20 % jitter): ``reconnecting {attempt}`` per attempt, then
``reconnected``. Calls keep their media (it does not use the signalling connection) and their
dialogs: later in-dialog requests go over the new connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlparse

import aiohttp

from rtpcore.aio import AioMediaDriver, bind_media_socket
from rtpcore.errors import RtpCoreError
from rtpcore.ice.turn import TurnServer
from rtpcore.media_session import MediaConfig, MediaSession
from sipcore.aiostack import AioSipEndpoint
from sipcore.aioua import CallFailed, IncomingInvite, UserAgent
from sipcore.errors import SipError
from sipcore.registration import Registered, RegistrationClient, RegistrationFailed, Unregistered
from sipcore.stack import Target
from sipcore.transport import Flow

from .call import Call, CallStatus, call_failed_error
from .emitter import EventEmitter
from .errors import ErrorCode, VoiceSDKError
from .options import DeviceOptions, IceServer, SipCredentials
from .runtime import Clock, SystemClock, TimerHandle
from .token import AccessToken, decode_token

__all__ = ["Device"]

log = logging.getLogger("voice_sdk")
TokenProvider = Callable[[], Awaitable[str]]


class _Creds:
    def __init__(self, aor: str, username: str, password: str, target: Target, domain: str,
                 ice: tuple[IceServer, ...] = ()) -> None:
        self.aor = aor
        self.username = username
        self.password = password
        self.target = target
        self.domain = domain
        self.ice = ice


def _target_from_url(url: str) -> Target:
    u = urlparse(url)
    if u.scheme in ("ws", "wss"):
        return Target(u.scheme, u.hostname or "127.0.0.1", u.port or (443 if u.scheme == "wss" else 80))
    raise VoiceSDKError(ErrorCode.INVALID_ARGUMENT, f"unsupported signalling URL {url!r}")


def _target_from_proxy(text: str) -> Target:
    transport, _, rest = text.partition(":")
    host, _, port = rest.rpartition(":")
    if transport not in ("udp", "tcp", "tls") or not host or not port.isdigit():
        raise VoiceSDKError(ErrorCode.INVALID_ARGUMENT, f"proxy must look like udp:host:port, not {text!r}")
    return Target(transport, host, int(port))


class Device(EventEmitter):
    def __init__(self, token: str | None = None, *, token_provider: TokenProvider | None = None,
                 options: DeviceOptions | None = None, clock: Clock | None = None) -> None:
        super().__init__()
        self.options = options or DeviceOptions()
        self.clock: Clock = clock or SystemClock()
        """Wall clock of the token schedule (expiry checks and ``token_will_expire``)."""
        logging.getLogger("voice_sdk").setLevel(self.options.log_level)
        self._raw_token = token
        self.token_provider = token_provider
        self.token: AccessToken | None = None
        self.state = "unregistered"
        self.endpoint: AioSipEndpoint | None = None
        self.ua: UserAgent | None = None
        self.creds: _Creds | None = None
        self.calls: list[Call] = []
        self._reg: RegistrationClient | None = None
        self._reg_task: asyncio.Task[None] | None = None
        self._reg_waiters: list[asyncio.Future[Any]] = []
        self._expiry_handle: TimerHandle | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._reg_wakeup = asyncio.Event()
        self.sip_trace: Callable[[str, bytes, Target], None] | None = None
        """Observer of every SIP message sent ("out") or received ("in"), for traces and pcaps."""
        self.media_trace: Callable[[str, bytes, tuple[str, int], tuple[str, int]], None] | None = None
        """Observer of every media datagram: (direction, data, local address, peer address)."""
        self.keylog: Callable[[str], None] | None = None
        """Receives NSS key log lines of DTLS handshakes (SSLKEYLOGFILE format)."""
        self._rng = random.Random()
        self.local_host = self.options.local_address or "127.0.0.1"

    # -- properties --------------------------------------------------------------------------------
    @property
    def is_registered(self) -> bool:
        return self.state == "registered"

    @property
    def identity(self) -> str | None:
        return self.token.identity if self.token is not None else None

    @property
    def label(self) -> str | None:
        return self.token.label if self.token is not None else None

    @property
    def token_expires_at(self) -> float | None:
        return self.token.expires_at if self.token is not None else None

    def ua_or_raise(self) -> UserAgent:
        if self.ua is None:
            raise VoiceSDKError(ErrorCode.INVALID_STATE, "the device is not registered")
        return self.ua

    # -- token and credentials ------------------------------------------------------------------------
    async def _current_token(self, *, fresh: bool = False) -> AccessToken | None:
        raw = self._raw_token
        if (raw is None or fresh) and self.token_provider is not None:
            try:
                raw = await self.token_provider()
            except Exception as exc:
                raise VoiceSDKError(ErrorCode.AUTH_ERROR, f"token provider failed: {exc}", exc) from exc
        if raw is None:
            return None
        tok = decode_token(raw, now=self.clock.time())
        if self.token is not None and tok.identity != self.token.identity:
            raise VoiceSDKError(ErrorCode.AUTH_ERROR,
                                f"token is for {tok.identity!r}, the device belongs to {self.token.identity!r}")
        self._raw_token = raw
        self.token = tok
        return tok

    async def _fetch_credentials(self, token: AccessToken | None) -> _Creds:
        o = self.options
        if o.sip_credentials is not None and token is None:
            return self._direct(o.sip_credentials)
        if token is None or not o.credentials_url:
            raise VoiceSDKError(ErrorCode.INVALID_ARGUMENT,
                                "give a token with DeviceOptions(credentials_url=...) or DeviceOptions(sip_credentials=...)")
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http, \
                    http.get(o.credentials_url, headers={"Authorization": f"Bearer {token.raw}"}) as resp:
                body = await resp.json(content_type=None)
                if resp.status == 401:
                    err = (body or {}).get("error", {}) if isinstance(body, dict) else {}
                    code = ErrorCode.TOKEN_EXPIRED if err.get("code") == "token_expired" else ErrorCode.AUTH_ERROR
                    raise VoiceSDKError(code, f"credentials service refused the token: {err.get('message', resp.reason)}")
                if resp.status != 200 or not isinstance(body, dict):
                    raise VoiceSDKError(ErrorCode.REGISTRATION_FAILED,
                                        f"credentials service answered {resp.status}")
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise VoiceSDKError(ErrorCode.TRANSPORT_ERROR, f"cannot reach the credentials service: {exc}", exc) from exc
        transport = o.transport
        if transport in ("ws", "wss") and body.get("ws_url"):
            target = _target_from_url(str(body["ws_url"]))
        elif transport in ("udp", "tcp") and body.get(transport):
            host, _, port = str(body[transport]).rpartition(":")
            target = Target(transport, host, int(port))
        else:
            target = _target_from_url(str(body.get("ws_url", "")))
        ice = tuple(IceServer(tuple(s.get("urls", ())), s.get("username"), s.get("credential"))
                    for s in body.get("ice_servers", []))
        return _Creds(str(body["sip_uri"]), str(body["username"]), str(body["password"]), target,
                      str(body.get("realm", "")), ice)

    def _direct(self, c: SipCredentials) -> _Creds:
        from sipcore.uri import SipUri, parse_uri

        uri = parse_uri(c.uri)
        if not isinstance(uri, SipUri):
            raise VoiceSDKError(ErrorCode.INVALID_ARGUMENT, f"{c.uri!r} is not a SIP URI")
        if c.ws_url:
            target = _target_from_url(c.ws_url)
        elif c.proxy:
            target = _target_from_proxy(c.proxy)
        else:
            target = Target(uri.transport or "udp", uri.host, uri.port or 5060)
        return _Creds(c.uri, c.username or uri.user or "", c.password, target, uri.host)

    # -- registration ---------------------------------------------------------------------------------
    async def register(self) -> None:
        """Token → credentials → REGISTER; raises VoiceSDKError on failure."""
        if self.state == "destroyed":
            raise VoiceSDKError(ErrorCode.INVALID_STATE, "the device was destroyed")
        self.state = "registering"
        try:
            token = await self._current_token()
            self.creds = await self._fetch_credentials(token)
            await self._start_sip()
            await self._register_and_wait()
        except VoiceSDKError as exc:
            self.state = "unregistered"
            self.emit("error", exc)
            raise
        self._schedule_token_expiry()

    async def _start_sip(self) -> None:
        if self.creds is None:
            raise VoiceSDKError(ErrorCode.INVALID_STATE, "internal state: creds not set")
        if self.endpoint is None:
            self.endpoint = AioSipEndpoint(user_agent="pyvoice-sdk")
            if self.creds.target.transport == "udp":
                await self.endpoint.listen("udp", self.local_host, 0)
            self.endpoint.on_flow_closed = self._on_flow_closed
            self.endpoint.on_trace = self.sip_trace
        if self.ua is None:
            self.ua = UserAgent(self.endpoint, aor=self.creds.aor, outbound=self.creds.target,
                                credentials=(self.creds.username, self.creds.password))
            self.ua.on_invite = self._on_invite
        else:
            self.ua.outbound = self.creds.target
            from sipcore.auth import DigestClient

            self.ua.digest = DigestClient(self.creds.username, self.creds.password)
        contact = self.ua.contact.strip("<>")
        self._reg = RegistrationClient(self.creds.aor, f"sip:{self.creds.domain}", contact,
                                       expires=self.options.register_expires,
                                       credentials=(self.creds.username, self.creds.password),
                                       user_agent="pyvoice-sdk")
        if self._reg_task is None or self._reg_task.done():
            self._reg_task = asyncio.ensure_future(self._registration_loop())

    async def _register_and_wait(self, timeout: float = 40.0) -> None:
        if self._reg is None:
            raise VoiceSDKError(ErrorCode.INVALID_STATE, "internal state: _reg not set")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._reg_waiters.append(fut)
        self._reg.register(self._now())
        self._kick()
        try:
            ev = await asyncio.wait_for(fut, timeout)
        except TimeoutError as exc:
            raise VoiceSDKError(ErrorCode.TIMEOUT, "no answer to REGISTER", exc) from exc
        if isinstance(ev, RegistrationFailed):
            code = ErrorCode.AUTH_ERROR if ev.status in (401, 403, 407) else (
                ErrorCode.TRANSPORT_ERROR if ev.status == 503 else ErrorCode.REGISTRATION_FAILED)
            raise VoiceSDKError(code, f"registration failed: {ev.status} {ev.reason}", status_code=ev.status)

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _kick(self) -> None:
        self._reg_wakeup.set()

    async def _registration_loop(self) -> None:
        """Drive the sans-IO RegistrationClient: send its requests, feed responses and timers."""
        while self.state != "destroyed":
            reg = self._reg
            if reg is None or self.ua is None:
                return
            for req in reg.requests_to_send():
                self._spawn(self._send_register(reg, req))
            for ev in reg.events():
                self._on_registration_event(ev)
            deadline = reg.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self._now())
            self._reg_wakeup.clear()
            try:
                await asyncio.wait_for(self._reg_wakeup.wait(), timeout)
            except TimeoutError:
                reg.handle_timeout(self._now())

    async def _send_register(self, reg: RegistrationClient, req: Any) -> None:
        if self.endpoint is None or self.creds is None:
            raise VoiceSDKError(ErrorCode.INVALID_STATE, "internal state: endpoint, creds not set")
        try:
            resp = await self.endpoint.request(req, self.creds.target)
        except asyncio.CancelledError:
            return
        except SipError as exc:
            from sipcore.message import make_response

            resp = make_response(req, 503, f"Transport error: {exc}")
        reg.receive_response(resp, self._now())
        self._kick()

    def _on_registration_event(self, ev: Any) -> None:
        waiters, self._reg_waiters = self._reg_waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(ev)
        if isinstance(ev, Registered):
            was = self.state
            self.state = "registered"
            if was != "registered" and was != "reconnecting":
                self.emit("registered")
        elif isinstance(ev, RegistrationFailed):
            if self.state == "registered":
                err = VoiceSDKError(ErrorCode.REGISTRATION_FAILED, f"re-registration failed: {ev.status} {ev.reason}",
                                    status_code=ev.status)
                self.emit("error", err)
                if ev.status in (408, 503) and self._reconnect_task is None:
                    self._reconnect_task = asyncio.ensure_future(self._reconnect())
        elif isinstance(ev, Unregistered):
            pass

    # -- token expiry ----------------------------------------------------------------------------------
    def _schedule_token_expiry(self) -> None:
        if self._expiry_handle is not None:
            self._expiry_handle.cancel()
            self._expiry_handle = None
        if self.token is None:
            return
        delay = max(0.0, self.token.expires_at - self.options.token_expiry_lead - self.clock.time())
        self._expiry_handle = self.clock.call_later(delay, self._token_will_expire)

    def _token_will_expire(self) -> None:
        self._expiry_handle = None
        if self.token is None:
            return
        self.emit("token_will_expire", {"expires_at": self.token.expires_at})
        if self.token_provider is not None:
            self._spawn(self._refresh_from_provider())

    async def _refresh_from_provider(self) -> None:
        try:
            await self._current_token(fresh=True)
            if self.state == "registered":
                await self._reregister_with_new_credentials()
            else:  # offline: the next reconnect attempt registers with the new token
                self._schedule_token_expiry()
        except VoiceSDKError as exc:
            self.emit("error", exc)

    async def update_token(self, token: str) -> None:
        """Replace the token (same user); refreshes SIP credentials and re-registers, calls untouched."""
        new = decode_token(token, now=self.clock.time())
        if self.token is not None and new.identity != self.token.identity:
            raise VoiceSDKError(ErrorCode.AUTH_ERROR,
                                f"update_token: token is for {new.identity!r}, not {self.token.identity!r}")
        self._raw_token = token
        self.token = new
        if self.state == "registered":
            await self._reregister_with_new_credentials()
        self._schedule_token_expiry()

    async def _reregister_with_new_credentials(self) -> None:
        self.creds = await self._fetch_credentials(self.token)
        await self._start_sip()
        await self._register_and_wait()
        self._schedule_token_expiry()

    # -- reconnect -------------------------------------------------------------------------------------
    def _on_flow_closed(self, flow: Flow) -> None:
        if self.state != "registered" or self.creds is None:
            return
        t = self.creds.target
        if flow.transport != t.transport or flow.remote != (t.host, t.port):
            return
        if self._reconnect_task is None:
            self._reconnect_task = asyncio.ensure_future(self._reconnect())

    async def _reconnect(self) -> None:
        self.state = "reconnecting"
        schedule = self.options.reconnect_schedule or (1.0,)
        attempt = 0
        try:
            while self.state == "reconnecting":
                attempt += 1
                self.emit("reconnecting", {"attempt": attempt})
                delay = schedule[min(attempt - 1, len(schedule) - 1)] * self._rng.uniform(0.8, 1.2)
                await asyncio.sleep(delay)
                if self.state != "reconnecting":
                    return
                try:
                    if self.token is not None and self.token.expired(self.clock.time()):
                        if self.token_provider is None:
                            raise VoiceSDKError(ErrorCode.TOKEN_EXPIRED,
                                                "the access token expired while offline: update_token() first")
                        await self._current_token(fresh=True)
                    if self.token is not None:
                        self.creds = await self._fetch_credentials(self.token)
                    await self._start_sip()
                    await self._register_and_wait(timeout=15)
                except VoiceSDKError as exc:
                    if exc.code in (ErrorCode.TOKEN_EXPIRED, ErrorCode.AUTH_ERROR):
                        self.state = "unregistered"
                        self.emit("error", exc)
                        self.emit("unregistered", {"reason": exc.message})
                        return
                    log.info("reconnect attempt %d failed: %s", attempt, exc)
                    self.state = "reconnecting"
                    continue
                self.state = "registered"
                self._schedule_token_expiry()
                self.emit("reconnected")
                return
        finally:
            self._reconnect_task = None

    # -- calls -----------------------------------------------------------------------------------------
    async def _ice_servers(self) -> tuple[tuple[tuple[str, int], ...], tuple[TurnServer, ...]]:
        """STUN and TURN servers from the options and the credentials service, resolved.

        Only what the media path speaks is used: ``stun:`` and ``turn:`` over UDP.
        """
        stun: list[tuple[str, int]] = []
        turn: list[TurnServer] = []
        servers = tuple(self.options.ice_servers) + (self.creds.ice if self.creds is not None else ())
        loop = asyncio.get_running_loop()
        for server in servers:
            for url in server.urls:
                parsed = _parse_ice_url(url)
                if parsed is None:
                    continue
                scheme, host, port = parsed
                try:
                    infos = await loop.getaddrinfo(host, port, family=socket.AF_INET, type=socket.SOCK_DGRAM)
                except OSError as exc:
                    log.warning("ICE server %s not resolvable: %s", url, exc)
                    continue
                addr = (str(infos[0][4][0]), port)
                if scheme == "stun":
                    stun.append(addr)
                elif server.username is not None and server.credential is not None:
                    turn.append(TurnServer(addr, server.username, server.credential))
        return tuple(stun), tuple(turn)

    async def _new_media(self) -> tuple[MediaSession, AioMediaDriver]:
        proto, addr = await bind_media_socket(self.local_host, 0)
        sec = self.options.media_security
        stun, turn = await self._ice_servers()
        config = MediaConfig(security=sec if sec in ("dtls", "sdes") else "none",
                             codecs=tuple(self.options.codecs), stun_servers=stun, turn_servers=turn)
        try:
            media = MediaSession(addr, now=self._now(), config=config, wallclock=time.time(), keylog=self.keylog)
        except RtpCoreError as exc:
            if proto.transport is not None:
                proto.transport.close()
            raise VoiceSDKError(ErrorCode.CODEC_UNAVAILABLE, str(exc), exc) from exc
        trace = self.media_trace
        on_packet = (lambda d, data, peer: trace(d, data, addr, peer)) if trace is not None else None
        driver = AioMediaDriver(media, proto, on_packet=on_packet)
        return media, driver

    async def _gathered(self, media: MediaSession, driver: AioMediaDriver) -> None:
        """Wait (bounded by ``ice_gathering_timeout``) until ICE knows all local candidates."""
        driver.poke()
        deadline = self._now() + self.options.ice_gathering_timeout
        while not media.gathering_complete and self._now() < deadline:
            await asyncio.sleep(0.01)

    def _request_uri(self, to: str) -> str:
        if self.creds is None:
            raise VoiceSDKError(ErrorCode.INVALID_STATE, "internal state: creds not set")
        if to.startswith(("sip:", "sips:")):
            return to
        if not to or any(c in to for c in " <>\"\r\n") or to.count("@") > 1:
            raise VoiceSDKError(ErrorCode.INVALID_ARGUMENT, f"cannot call {to!r}")
        return f"sip:{to}" if "@" in to else f"sip:{to}@{self.creds.domain}"

    async def connect(self, to: str, *, caller_id: str | None = None, params: dict[str, str] | None = None,
                      extra_headers: dict[str, str] | None = None) -> Call:
        """Place a call; returns at once with a pending Call (watch its events or ``wait_accepted``)."""
        if self.state not in ("registered", "reconnecting") or self.ua is None:
            raise VoiceSDKError(ErrorCode.INVALID_STATE, "register() first")
        if self.token is not None and self.token.expired(self.clock.time()):
            raise VoiceSDKError(ErrorCode.TOKEN_EXPIRED, "the access token expired: update_token() first")
        uri = self._request_uri(to)
        headers = dict(self.options.default_extra_headers)
        headers.update(extra_headers or {})
        for key, value in (params or {}).items():
            headers[f"{self.options.custom_header_prefix}-{key}"] = str(value)
        if caller_id:
            headers["P-Preferred-Identity"] = f"<sip:{caller_id}@{self.creds.domain if self.creds else 'invalid'}>"
        for k, v in headers.items():
            if any(c in k + v for c in "\r\n") or not k:
                raise VoiceSDKError(ErrorCode.INVALID_ARGUMENT, f"bad header {k!r}")
        call = Call(self, direction="outgoing", remote_identity=uri, custom_headers=headers)
        media, driver = await self._new_media()
        call._attach_media(media, driver)
        await self._gathered(media, driver)
        offer = media.create_offer(self._now())
        out = self.ua.invite(uri, offer, headers=list(headers.items()), on_provisional=call._on_provisional)
        call.outgoing = out
        self.calls.append(call)
        self._spawn(self._complete_outgoing(call))
        return call

    async def _complete_outgoing(self, call: Call) -> None:
        if call.outgoing is None or call.media is None or call.driver is None:
            raise VoiceSDKError(ErrorCode.INVALID_STATE, "internal state: call.outgoing, call.media, call.driver not set")
        try:
            session = await call.outgoing.result
        except CallFailed as exc:
            if call.status in (CallStatus.DISCONNECTED, CallStatus.FAILED):
                return
            call._fail(call_failed_error(exc))
            return
        except Exception as exc:  # transport trouble and the like: never leave the call pending
            call._fail(VoiceSDKError(ErrorCode.TRANSPORT_ERROR, f"call setup failed: {exc}", exc))
            return
        try:
            call.media.receive_answer(session.remote_sdp, self._now())
        except RtpCoreError as exc:
            call.sip_session = session
            call._fail(VoiceSDKError(ErrorCode.MEDIA_FAILED, f"unusable SDP answer: {exc}", exc))
            await session.bye("SIP;cause=488")
            return
        call._established(session)
        call.driver.poke()
        call.driver.start_media_clock()

    async def _on_invite(self, inc: IncomingInvite) -> None:
        busy = any(c.status in (CallStatus.PENDING, CallStatus.RINGING, CallStatus.ACCEPTED) for c in self.calls)
        if busy and not self.options.allow_incoming_while_busy:
            inc.reject(486)
            return
        custom = {n: v for n, v in inc.request.headers if n.lower().startswith("x-")}
        try:
            remote = str(inc.request.from_.uri)
        except SipError:
            remote = "unknown"
        call = Call(self, direction="incoming", remote_identity=remote, custom_headers=custom)
        call.incoming = inc
        self.calls.append(call)
        inc.ring()
        self.emit("incoming", call)

        async def watch_cancel() -> None:
            await inc.cancelled.wait()
            call._end("cancelled")

        self._spawn(watch_cancel())

    def _call_ended(self, call: Call) -> None:
        with contextlib.suppress(ValueError):
            self.calls.remove(call)

    # -- teardown --------------------------------------------------------------------------------------
    async def unregister(self) -> None:
        """Remove the registration and close the signalling connection."""
        if self._reg is not None and self.state in ("registered", "reconnecting"):
            fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._reg_waiters.append(fut)
            self._reg.unregister(self._now())
            self._kick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(fut, 10)
        self.state = "unregistered"
        self.emit("unregistered", {"reason": "unregister() called"})
        await self._close_sip()

    async def _close_sip(self) -> None:
        if self._reg_task is not None:
            self._reg_task.cancel()
            self._reg_task = None
        if self.ua is not None:
            await self.ua.close()
            self.ua = None
        if self.endpoint is not None:
            await self.endpoint.close()
            self.endpoint = None

    async def destroy(self) -> None:
        """Hang up every call, unregister, release everything. The device cannot be used again."""
        for call in list(self.calls):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(call.disconnect(), 5)
        if self.state in ("registered", "reconnecting"):
            with contextlib.suppress(Exception):
                await self.unregister()
        await self._close_sip()
        if self._expiry_handle is not None:
            self._expiry_handle.cancel()
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
        self.state = "destroyed"

    # -- audio devices ---------------------------------------------------------------------------------
    def enumerate_devices(self) -> list[dict[str, Any]]:
        from .audio import enumerate_devices

        return enumerate_devices()

    def set_input_device(self, device: int | str | None) -> None:
        self.options = _replace(self.options, input_device=device)

    def set_output_device(self, device: int | str | None) -> None:
        self.options = _replace(self.options, output_device=device)


def _parse_ice_url(url: str) -> tuple[str, str, int] | None:
    """``stun:host[:port]`` / ``turn:host[:port][?transport=udp]`` -> (scheme, host, port); None otherwise."""
    scheme, _, rest = url.partition(":")
    rest, _, query = rest.partition("?")
    if scheme not in ("stun", "turn") or not rest or (query and query.lower() != "transport=udp"):
        return None
    host, _, port = rest.rpartition(":") if rest.count(":") == 1 else (rest, "", "3478")
    if not host or not port.isdigit():
        return None
    return scheme, host, int(port)


def _replace(options: DeviceOptions, **changes: Any) -> DeviceOptions:
    import dataclasses

    return dataclasses.replace(options, **changes)

