"""Call: one phone call, as the 2Chat Voice SDK models it, composed of a SIP session and a MediaSession.

Lifecycle (``call.status``)::

    outgoing: pending ─180/183─▶ ringing ─2xx + first media─▶ accepted ─BYE either way─▶ disconnected
    incoming: pending ─accept()─▶ accepted (when media flows)      pending ─reject()/CANCEL─▶ disconnected
    any: failed (rejected with 4xx-6xx, timeout, ICE/DTLS/media failure) — an ``error`` event says why

Events: ``ringing``, ``accepted``, ``disconnect`` (reason), ``error`` (VoiceSDKError),
``mute`` (bool), ``hold`` (bool), ``quality`` (QualitySample, every second while accepted),
``digit`` (a DTMF digit received from the peer).

The Call never parses SIP or SDP itself: it asks :class:`sipcore.aioua.InviteSession` and
:class:`rtpcore.media_session.MediaSession`, which are reachable as ``call.sip_session`` and
``call.media`` for those who need the layers underneath.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rtpcore.aio import AioMediaDriver
from rtpcore.errors import LocalProtocolError as MediaLocalError
from rtpcore.errors import RtpCoreError
from rtpcore.media_session import (
    DtmfReceived,
    MediaEvent,
    MediaFailed,
    MediaFlowing,
    MediaSession,
    RemoteHangupRtcp,
)
from rtpcore.sdp.attributes import Direction
from sipcore.aioua import CallFailed, IncomingInvite, InviteSession, OutgoingInvite
from sipcore.errors import SipError
from sipcore.message import SipResponse

from .audio import AudioSink, AudioSource, NullSink, NullSource
from .emitter import EventEmitter
from .errors import ErrorCode, VoiceSDKError

if TYPE_CHECKING:
    from .device import Device

__all__ = ["Call", "CallStatus", "QualitySample"]

log = logging.getLogger("voice_sdk.call")
_DIGITS_RE = re.compile(r"[0-9*#A-Da-d,]*")


class CallStatus:
    PENDING = "pending"
    RINGING = "ringing"
    ACCEPTED = "accepted"
    DISCONNECTED = "disconnected"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class QualitySample:
    timestamp: float
    rtt_ms: float | None
    jitter_ms: float
    outbound_loss: float
    inbound_loss: float
    mos_estimate: float
    selected_codec: str | None
    local_candidate_type: str
    remote_candidate_type: str
    playout_delay_ms: float
    packets_sent: int
    packets_received: int


class Call(EventEmitter):
    def __init__(self, device: Device, *, direction: str, remote_identity: str,
                 custom_headers: dict[str, str] | None = None) -> None:
        super().__init__()
        self.device = device
        self.direction = direction
        self.remote_identity = remote_identity
        self.custom_headers = dict(custom_headers or {})
        self.status = CallStatus.PENDING
        self.is_muted = False
        self.is_on_hold = False
        self.sip_session: InviteSession | None = None
        self.media: MediaSession | None = None
        self.driver: AioMediaDriver | None = None
        self.incoming: IncomingInvite | None = None
        self.outgoing: OutgoingInvite | None = None
        self.source: AudioSource = NullSource(8000)
        self.sink: AudioSink = NullSink(8000)
        self.error: VoiceSDKError | None = None
        self.disconnect_reason: str | None = None
        self.digits_received: list[str] = []
        self.created_at = time.monotonic()
        self.answered_at: float | None = None
        self.ended_at: float | None = None
        self.setup_time: float | None = None
        """Seconds from connect()/accept() to media flowing."""
        self._quality_task: asyncio.Task[None] | None = None
        self._done = asyncio.Event()
        self._flowing = asyncio.Event()

    # -- properties ---------------------------------------------------------------------------------
    @property
    def duration(self) -> float:
        if self.answered_at is None:
            return 0.0
        return (self.ended_at or time.monotonic()) - self.answered_at

    @property
    def call_id(self) -> str | None:
        return self.sip_session.call_id if self.sip_session is not None else (
            self.incoming.request.call_id if self.incoming is not None else None)

    def __repr__(self) -> str:
        return f"<Call {self.direction} {self.remote_identity} {self.status}>"

    async def wait_ended(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._done.wait(), timeout)

    async def wait_accepted(self, timeout: float | None = None) -> None:
        """Wait until media flows (status accepted); raises the call's error if it fails first."""
        waiter = asyncio.ensure_future(self._flowing.wait())
        ender = asyncio.ensure_future(self._done.wait())
        try:
            done, _ = await asyncio.wait({waiter, ender}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            ender.cancel()
        if self.status == CallStatus.ACCEPTED:
            return
        if self.error is not None:
            raise self.error
        if not done:
            raise VoiceSDKError(ErrorCode.TIMEOUT, f"call to {self.remote_identity} not accepted in {timeout} s")
        raise VoiceSDKError(ErrorCode.INVALID_STATE, f"call ended before it was accepted ({self.disconnect_reason})")

    # -- audio --------------------------------------------------------------------------------------
    def set_input(self, source: AudioSource) -> None:
        self.source = source
        if self.driver is not None:
            self.driver.source = source

    def set_output(self, sink: AudioSink) -> None:
        self.sink = sink
        if self.driver is not None:
            self.driver.sink = sink

    def set_input_device(self, device: int | str | None) -> None:
        from .audio import open_input

        self.set_input(open_input(device, sample_rate=self.device.options.sample_rate))

    def set_output_device(self, device: int | str | None) -> None:
        from .audio import open_output

        self.set_output(open_output(device, sample_rate=self.device.options.sample_rate))

    # -- media plumbing -------------------------------------------------------------------------------
    def _attach_media(self, media: MediaSession, driver: AioMediaDriver) -> None:
        self.media = media
        self.driver = driver
        driver.source = self.source
        driver.sink = self.sink
        driver.on_event = self._on_media_event

    def _on_media_event(self, ev: MediaEvent) -> None:
        if isinstance(ev, MediaFlowing):
            if self.status in (CallStatus.PENDING, CallStatus.RINGING) and self.sip_session is not None:
                self._set_accepted()
        elif isinstance(ev, DtmfReceived):
            self.digits_received.append(ev.digit)
            self.emit("digit", ev.digit)
        elif isinstance(ev, MediaFailed):
            code = {"dtls": ErrorCode.DTLS_FAILED, "ice": ErrorCode.ICE_FAILED}.get(ev.cause, ErrorCode.MEDIA_FAILED)
            self._fail(VoiceSDKError(code, ev.message, ev.error))
            self._spawn(self._hangup(f"media failed: {ev.message}"))
        elif isinstance(ev, RemoteHangupRtcp):
            log.debug("peer sent RTCP BYE (%s)", ev.reason)

    def _set_accepted(self) -> None:
        self.status = CallStatus.ACCEPTED
        self.answered_at = time.monotonic()
        self.setup_time = self.answered_at - self.created_at
        self._flowing.set()
        self.emit("accepted", self)
        self._quality_task = asyncio.ensure_future(self._quality_loop())

    async def _quality_loop(self) -> None:
        while self.status == CallStatus.ACCEPTED:
            await asyncio.sleep(1.0)
            if self.status != CallStatus.ACCEPTED:
                return
            sample = self.quality()
            if sample is not None:
                self.emit("quality", sample)

    def quality(self) -> QualitySample | None:
        if self.media is None or self.driver is None:
            return None
        st = self.media.stats(self.driver.now())
        return QualitySample(
            timestamp=time.time(), rtt_ms=st.rtt_ms, jitter_ms=st.jitter_ms, outbound_loss=st.outbound_loss,
            inbound_loss=st.inbound_loss, mos_estimate=round(st.mos, 2), selected_codec=st.codec,
            local_candidate_type=st.local_candidate_type, remote_candidate_type=st.remote_candidate_type,
            playout_delay_ms=st.playout_delay_ms, packets_sent=st.packets_sent,
            packets_received=st.packets_received)

    # -- SIP outcomes -----------------------------------------------------------------------------------
    def _on_provisional(self, resp: SipResponse) -> None:
        if resp.status_code in (180, 183) and self.status == CallStatus.PENDING:
            self.status = CallStatus.RINGING
            self.emit("ringing", self)

    def _established(self, session: InviteSession) -> None:
        self.sip_session = session
        session.on_bye = self._on_remote_bye
        session.on_reinvite = self._on_reinvite
        session.on_info = self._on_info
        if self.media is not None and self.media.state.value == "flowing":
            self._set_accepted()

    async def _on_reinvite(self, session: InviteSession, offer: bytes) -> bytes:
        if self.media is None:
            raise SipError("no media session")
        try:
            answer = self.media.receive_offer(offer, self._now())
        except RtpCoreError as exc:
            raise SipError(f"offer not acceptable: {exc}") from exc
        if self.driver is not None:
            self.driver.poke()
        return answer

    def _on_info(self, request: Any) -> int:
        body = request.body.decode("utf-8", "replace")
        m = re.search(r"Signal\s*=\s*([0-9*#A-Da-d])", body)
        if m:
            self.digits_received.append(m.group(1).upper())
            self.emit("digit", m.group(1).upper())
        return 200

    def _on_remote_bye(self, request: Any) -> None:
        if request is not None:
            self._end("remote hangup")

    def _fail(self, error: VoiceSDKError) -> None:
        if self.status in (CallStatus.DISCONNECTED, CallStatus.FAILED):
            return
        self.error = error
        self.status = CallStatus.FAILED
        self.emit("error", error)
        self._cleanup()
        self._done.set()

    def _end(self, reason: str) -> None:
        if self.status in (CallStatus.DISCONNECTED, CallStatus.FAILED):
            return
        self.status = CallStatus.DISCONNECTED
        self.disconnect_reason = reason
        self._cleanup()
        self.emit("disconnect", reason)
        self._done.set()

    def _cleanup(self) -> None:
        self.ended_at = time.monotonic()
        if self._quality_task is not None:
            self._quality_task.cancel()
        if self.driver is not None:
            self.driver.close()
        for closable in (self.source, self.sink):
            with contextlib.suppress(Exception):
                closable.close()
        self.device._call_ended(self)

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    # -- the API ----------------------------------------------------------------------------------------
    async def accept(self) -> None:
        """Answer an incoming call; status becomes accepted when media flows."""
        if self.direction != "incoming" or self.incoming is None:
            raise VoiceSDKError(ErrorCode.INVALID_STATE, "only incoming calls can be accepted")
        if self.status != CallStatus.PENDING or self.incoming.done:
            raise VoiceSDKError(ErrorCode.INVALID_STATE, f"cannot accept a call that is {self.status}")
        self.created_at = time.monotonic()
        media, driver = await self.device._new_media()
        self._attach_media(media, driver)
        await self.device._gathered(media, driver)
        if self.status != CallStatus.PENDING or self.incoming.done:  # cancelled meanwhile
            driver.close()
            raise VoiceSDKError(ErrorCode.INVALID_STATE, f"the call was {self.disconnect_reason or self.status}")
        try:
            answer = media.receive_offer(self.incoming.offer, self._now())
        except RtpCoreError as exc:
            self.incoming.reject(488, "Not Acceptable Here")
            driver.close()
            self._fail(VoiceSDKError(ErrorCode.MEDIA_FAILED, f"cannot answer the offer: {exc}", exc))
            return
        session = self.incoming.answer(answer)
        self._established(session)
        driver.poke()
        driver.start_media_clock()

    def reject(self, status_code: int = 486) -> None:
        """Decline an incoming call (486 busy by default, 603 for do-not-disturb)."""
        if self.direction != "incoming" or self.incoming is None or self.status != CallStatus.PENDING:
            raise VoiceSDKError(ErrorCode.INVALID_STATE, "only a pending incoming call can be rejected")
        if not 400 <= status_code <= 699:
            raise VoiceSDKError(ErrorCode.INVALID_ARGUMENT, "reject() takes a 4xx-6xx status code")
        self.incoming.reject(status_code)
        self._end("rejected")

    async def disconnect(self) -> None:
        """Hang up (CANCEL while ringing, BYE once answered)."""
        await self._hangup("local hangup")

    async def _hangup(self, reason: str) -> None:
        if self.status in (CallStatus.DISCONNECTED, CallStatus.FAILED) and self.sip_session is None:
            return
        if self.sip_session is not None:
            session, self.sip_session = self.sip_session, None
            self._end(reason)
            await session.bye()
        elif self.outgoing is not None:
            self.device.ua_or_raise().cancel(self.outgoing)
            self._end(reason)
        elif self.incoming is not None and not self.incoming.done:
            self.incoming.reject(486)
            self._end(reason)

    def mute(self, muted: bool = True) -> None:
        """Send silence instead of the input (the RTP stream keeps NAT bindings alive)."""
        self.is_muted = muted
        if self.media is not None:
            self.media.muted = muted
        self.emit("mute", muted)

    async def hold(self, on_hold: bool = True) -> None:
        """Put the peer on hold (re-INVITE with a=sendonly) or resume (a=sendrecv)."""
        if self.sip_session is None or self.media is None or self.status != CallStatus.ACCEPTED:
            raise VoiceSDKError(ErrorCode.INVALID_STATE, "hold needs an accepted call")
        offer = self.media.create_offer(self._now(), direction=Direction.SENDONLY if on_hold else Direction.SENDRECV)
        resp = await self.sip_session.reinvite(offer)
        if resp.status_code >= 300:
            raise VoiceSDKError(ErrorCode.INVALID_STATE, f"hold re-INVITE failed: {resp.status_code} {resp.reason}",
                                status_code=resp.status_code)
        try:
            self.media.receive_answer(resp.body, self._now())
        except RtpCoreError as exc:
            raise VoiceSDKError(ErrorCode.MEDIA_FAILED, f"bad answer to the hold re-INVITE: {exc}", exc) from exc
        self.is_on_hold = on_hold
        self.emit("hold", on_hold)

    async def send_digits(self, digits: str, *, duration_ms: int = 100) -> None:
        """RFC 4733 digits (0-9 * # A-D); ``,`` pauses 500 ms. SIP INFO when telephone-event is absent."""
        if not isinstance(digits, str) or _DIGITS_RE.fullmatch(digits) is None:
            raise VoiceSDKError(ErrorCode.INVALID_ARGUMENT,
                                f"send_digits accepts only 0-9 * # A-D and ',' (got {digits!r})")
        if self.status != CallStatus.ACCEPTED or self.media is None:
            raise VoiceSDKError(ErrorCode.INVALID_STATE, "digits need an accepted call")
        for chunk in re.split(r"(,)", digits.upper()):
            if chunk == ",":
                await asyncio.sleep(0.5)
                continue
            if not chunk:
                continue
            try:
                self.media.send_dtmf(chunk, self._now(), duration_ms=duration_ms)
                await asyncio.sleep(len(chunk) * (duration_ms + 50 + 40) / 1000.0)
            except MediaLocalError:
                if self.sip_session is None:
                    return
                for d in chunk:
                    body = f"Signal={d}\r\nDuration={duration_ms}\r\n".encode()
                    await self.sip_session.info(body, "application/dtmf-relay")


def call_failed_error(exc: CallFailed) -> VoiceSDKError:
    code = ErrorCode.TIMEOUT if exc.status == 408 else (
        ErrorCode.TRANSPORT_ERROR if exc.status == 503 else ErrorCode.CALL_REJECTED)
    return VoiceSDKError(code, f"call failed: {exc.status} {exc.reason}", exc, status_code=exc.status)
