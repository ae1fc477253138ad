"""MediaSession: one audio m-line end to end, sans-IO (offer/answer, ICE, DTLS-SRTP or SDES, RTP).

It composes the protocol objects of this package and owns none of the I/O::

    SDP ──create_offer / receive_offer / receive_answer──▶ negotiate (RFC 3264)
                                                          │
    datagrams ──receive()──▶ demux (RFC 7983) ─┬─ STUN ──▶ IceAgent (RFC 8445) or binding answer
                                               ├─ DTLS ──▶ DtlsConnection ─▶ SRTP keys (RFC 5764)
                                               └─ SRTP/RTP/RTCP ─▶ unprotect ─▶ RTCP stats
                                                                     └─▶ DTMF (RFC 4733) / jitter buffer
    PCM ──send_audio(pcm, now)──▶ codec ─▶ RTP ─▶ protect ─▶ datagrams_to_send()
    pull_audio(now) ◀── jitter buffer + decoder + PLC

Paths to the peer, in order of preference: the ICE-selected pair; without ICE, symmetric
RTP (RFC 4961): the address in the SDP until authenticated media arrives from another one,
then that one (NAT-friendly "latching", accepted only for packets that pass SRTP
authentication, or for plain RTP with the expected SSRC after the first packet).

States (``MediaState``)::

    NEW ─negotiated─▶ CONNECTING ─(ICE selected, DTLS done)─▶ CONNECTED ─first RTP in─▶ FLOWING
         any ─ICE failed / DTLS alert / no media for media_timeout─▶ FAILED      any ─close()─▶ CLOSED

Events are past-tense facts (frozen dataclasses): :class:`MediaConnected`,
:class:`MediaFlowing`, :class:`DtmfReceived`, :class:`MediaFailed`, :class:`RemoteHangupRtcp`.
"""

from __future__ import annotations

import base64
import contextlib
import enum
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .codecs import base as codec_base
from .codecs.registry import CodecRegistry
from .dtls.certificate import fingerprint as cert_fingerprint
from .dtls.certificate import generate_certificate
from .dtls.connection import DtlsConnection
from .dtls.events import HandshakeCompleted
from .dtmf import DtmfReceiver, DtmfSender
from .errors import (
    DtlsError,
    LocalProtocolError,
    OfferAnswerError,
    RemoteProtocolError,
    RtpCoreError,
)
from .ice import stun
from .ice.agent import (
    ConnectionStateChanged,
    ConsentLost,
    GatheringComplete,
    IceAgent,
    IceConfig,
    IceConnectionState,
    SelectedPairChanged,
)
from .ice.turn import TurnServer
from .jitter import JitterBuffer, JitterConfig
from .quality import estimate_quality
from .rtp.demux import PacketKind, classify
from .rtp.packet import RtpPacket, is_rtcp
from .rtp.session import ByeReceived, ReportReceived, RtcpScheduler
from .rtp.stats import ReceiverStats
from .sdp import offer_answer as oa
from .sdp.attributes import Candidate as SdpCandidate
from .sdp.attributes import Crypto, Direction, Fingerprint, KeyParams, Setup
from .sdp.capabilities import ProtoFamily
from .sdp.model import SessionDescription
from .sdp.parse import parse_sdp
from .srtp.context import SrtpSession
from .srtp.profiles import profile_by_dtls_id, profile_by_sdes_name

__all__ = [
    "DtmfReceived",
    "MediaConfig",
    "MediaConnected",
    "MediaFailed",
    "MediaFlowing",
    "MediaSession",
    "MediaState",
    "MediaStats",
    "RemoteHangupRtcp",
]

Pcm = NDArray[np.int16]
Addr = tuple[str, int]
_MAX_HELD_DTLS = 16
"""DTLS datagrams kept while ICE has no usable pair yet (one handshake flight fits easily)."""


class MediaState(enum.Enum):
    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    FLOWING = "flowing"
    FAILED = "failed"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class MediaConfig:
    security: str = "dtls"
    """``dtls`` (UDP/TLS/RTP/SAVPF, RFC 5764), ``sdes`` (RTP/SAVP, RFC 4568) or ``none`` (RTP/AVP)."""
    accept_insecure: bool = True
    """When answering, accept a plain RTP/AVP offer even if ``security`` is not none."""
    codecs: tuple[str, ...] = ("opus", "PCMU", "PCMA")
    """Preference; names the registry cannot create (opus without libopus) are skipped."""
    ptime_ms: int = 20
    dtmf: bool = True
    media_timeout: float = 30.0
    """No RTP or RTCP for this long after media flowed (or after connecting) → MediaFailed."""
    connect_timeout: float = 30.0
    """DTLS (and ICE) must complete within this many seconds of negotiation."""
    jitter: JitterConfig | None = None
    """Jitter buffer tuning (the clock rate is set from the codec)."""
    replay_window: int = 1024
    ice: bool | None = None
    """Use ICE (RFC 8445) in offers: None = with DTLS-SRTP (WebRTC style), else as given. An
    offer that carries ICE credentials is always answered with ICE."""
    ice_config: IceConfig | None = None
    stun_servers: tuple[tuple[str, int], ...] = ()
    """STUN servers for server-reflexive candidates."""
    turn_servers: tuple[TurnServer, ...] = ()
    """TURN servers for relayed candidates (RFC 8656)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaConnected:
    codec: str
    security: str
    remote: Addr


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaFlowing:
    """The first media packet from the peer was accepted."""

    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class DtmfReceived:
    digit: str
    duration_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaFailed:
    cause: str
    """``ice``, ``dtls``, ``timeout`` or ``negotiation``."""
    message: str
    error: RtpCoreError | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteHangupRtcp:
    reason: str | None


MediaEvent = MediaConnected | MediaFlowing | DtmfReceived | MediaFailed | RemoteHangupRtcp


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaStats:
    codec: str | None
    packets_sent: int
    packets_received: int
    bytes_sent: int
    bytes_received: int
    inbound_loss: float
    """Fraction of expected packets that never arrived (0..1)."""
    outbound_loss: float
    """Fraction lost towards the peer, from its last RTCP report (0..1)."""
    jitter_ms: float
    rtt_ms: float | None
    playout_delay_ms: float
    mos: float
    local_candidate_type: str
    remote_candidate_type: str
    discarded: int
    """Datagrams dropped: failed authentication, replays, malformed, unknown kind."""
    jitter: dict[str, Any] = field(default_factory=dict)


def _sdp_codec(name: str) -> oa.CodecSpec | None:
    n = name.lower()
    if n == "opus":
        return oa.OPUS
    if n == "pcmu":
        return oa.PCMU
    if n == "pcma":
        return oa.PCMA
    return None


class MediaSession:
    """One bidirectional audio stream."""

    def __init__(
        self,
        local_address: Addr,
        *,
        now: float,
        config: MediaConfig | None = None,
        rng: Callable[[int], bytes] = os.urandom,
        registry: CodecRegistry | None = None,
        certificate: tuple[Any, Any] | None = None,
        wallclock: float | None = None,
        keylog: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config or MediaConfig()
        self.local_address = local_address
        self.rng = rng
        self.registry = registry or CodecRegistry.default()
        self.keylog = keylog
        self.state = MediaState.NEW
        self.ssrc = int.from_bytes(rng(4), "big") or 1
        self._seq = int.from_bytes(rng(2), "big")
        self._ts = int.from_bytes(rng(4), "big")
        self.cname = base64.b32encode(rng(10)).decode().rstrip("=").lower()
        self._marker = True
        self._events: list[MediaEvent] = []
        self._out: list[tuple[bytes, Addr]] = []
        self._certificate = certificate
        self._wallclock = wallclock
        self._cert: Any = None
        self._key: Any = None
        self.local_fingerprint = ""
        if self.config.security == "dtls":
            self._ensure_certificate()
        self._sdes_key = rng(30)
        self._local_sdp: SessionDescription | None = None
        self._pending_offer: SessionDescription | None = None
        self._early: list[tuple[bytes, Addr]] = []
        self._remote_sdp: SessionDescription | None = None
        self.negotiated: oa.NegotiatedMedia | None = None
        self.is_offerer = False
        self.remote_addr: Addr | None = None
        self._latched = False
        self._dtls: DtlsConnection | None = None
        self._dtls_fingerprints: tuple[str, ...] = ()
        self._srtp_tx: SrtpSession | None = None
        self._srtp_rx: SrtpSession | None = None
        self.security = "none"
        self._encoder: codec_base.Codec | None = None
        self._jitter: JitterBuffer | None = None
        self._send_pt: int | None = None
        self._recv_pts: set[int] = set()
        self._te_send_pt: int | None = None
        self._te_recv_pts: set[int] = set()
        self._dtmf_tx: DtmfSender | None = None
        self._dtmf_rx: DtmfReceiver | None = None
        self._dtmf_ts: dict[float, int] = {}
        self._rtcp: RtcpScheduler | None = None
        self._sources: dict[int, ReceiverStats] = {}
        self._remote_ssrc: int | None = None
        self.sending = True
        self.receiving = True
        self.muted = False
        self._started_at: float | None = None
        self._last_rx: float | None = None
        self._connect_deadline: float | None = None
        self.packets_sent = self.bytes_sent = 0
        self.packets_received = self.bytes_received = 0
        self.discarded = 0
        self._outbound_loss = 0.0
        self._rtt: float | None = None
        self._sent_packets = 0
        self._sent_octets = 0
        self._now = now
        self.ice: IceAgent | None = None
        self._ice_remote: tuple[str, str] | None = None
        self._ice_types = ("host", "host")
        self._dtls_pending_start = False
        self._dtls_held: list[bytes] = []
        self._gathering_done = False
        use_ice = self.config.ice if self.config.ice is not None else self.config.security == "dtls"
        if use_ice:
            self._start_ice(now)

    # -- ICE ---------------------------------------------------------------------------------------
    def _start_ice(self, now: float) -> None:
        self.ice = IceAgent(True, rng=self.rng, config=self.config.ice_config,
                            stun_servers=list(self.config.stun_servers), turn_servers=list(self.config.turn_servers))
        self.ice.gather(now, [self.local_address])
        self._pump_ice(now)

    @property
    def gathering_complete(self) -> bool:
        """All candidates are known (offer now, or wait for this up to a bound before offering)."""
        return self.ice is None or self._gathering_done

    def _local_ice(self) -> oa.LocalIce | None:
        if self.ice is None:
            return None
        cands = tuple(SdpCandidate.parse(c.to_sdp()) for c in self.ice.local_candidates)
        return oa.LocalIce(ufrag=self.ice.local_ufrag, pwd=self.ice.local_pwd, candidates=cands,
                           end_of_candidates=self._gathering_done)

    def _pump_ice(self, now: float) -> None:
        agent = self.ice
        if agent is None:
            return
        for data, dst, _src in agent.datagrams_to_send(now):
            self._out.append((data, dst))
        for ev in agent.events():
            if isinstance(ev, GatheringComplete):
                self._gathering_done = True
            elif isinstance(ev, SelectedPairChanged):
                self.remote_addr = ev.remote.addr
                self._ice_types = (ev.local.type.value, ev.remote.type.value)
                self._send_held_dtls()
                if self._dtls_pending_start and self._dtls is not None:
                    self._dtls_pending_start = False
                    self._dtls.start(now)
                    self._flush_dtls()
                elif self.state is MediaState.CONNECTING and (self.security != "dtls" or self._srtp_tx is not None):
                    # DTLS can finish first: a controlled browser starts its handshake on the first
                    # pair that works for it, before the answer to our nominating check arrives
                    self._connected(now)
            elif isinstance(ev, ConnectionStateChanged):
                if ev.state is IceConnectionState.CONNECTED:
                    self._send_held_dtls()  # a valid pair exists: usable before nomination
                if ev.state is IceConnectionState.FAILED:
                    self._fail("ice", "ICE failed: no candidate pair worked", None)
            elif isinstance(ev, ConsentLost):
                self._fail("ice", f"ICE consent lost ({ev.cause.name.lower()}): the peer stopped answering", None)

    def _apply_remote_ice(self, remote: oa.MediaEndpoint, is_offerer: bool, now: float) -> None:
        if remote.ice is None:
            if self.ice is not None:
                self.ice.close(now)
                self._pump_ice(now)
            self.ice = None  # the peer does not do ICE: symmetric RTP to its SDP address
            return
        if self.ice is None:
            self._start_ice(now)
        agent = self.ice
        if agent is None:
            raise LocalProtocolError("internal state: agent not set")
        creds = (remote.ice.ufrag, remote.ice.pwd)
        if self._ice_remote is not None and creds == self._ice_remote:
            for c in remote.candidates:  # same generation: only new candidates matter
                with contextlib.suppress(RtpCoreError):
                    agent.add_remote_candidate(str(c), now)
            self._pump_ice(now)
            return
        if self._ice_remote is not None and not is_offerer:
            agent.restart(now)  # the peer restarted ICE: so do we (RFC 8839 §4.4.1.1.1)
        self._ice_remote = creds
        agent.controlling = is_offerer or remote.ice.lite
        agent.set_remote_credentials(remote.ice.ufrag, remote.ice.pwd, ice_lite=remote.ice.lite, now=now)
        for c in remote.candidates:
            with contextlib.suppress(RtpCoreError):
                agent.add_remote_candidate(str(c), now)
        if remote.end_of_candidates or remote.ice.lite:
            agent.end_of_remote_candidates(now)
        self._pump_ice(now)

    def restart_ice(self, now: float) -> None:
        """New ICE credentials for the next offer (after a network change); media keeps flowing
        on the old pair until the new checks select one (RFC 8445 §9)."""
        if self.ice is None:
            raise LocalProtocolError("ICE is not in use on this session")
        self._ice_remote = None
        self._gathering_done = False
        self.ice.restart(now)
        self._pump_ice(now)

    def _ensure_certificate(self) -> None:
        """Our DTLS certificate: the one given, else a fresh self-signed P-256 one (made once)."""
        if self._cert is not None:
            return
        if self._certificate is None:
            now = self._wallclock if self._wallclock is not None else 1.7e9
            self._certificate = generate_certificate(now=now, rng=self.rng)
        self._cert, self._key = self._certificate
        self.local_fingerprint = cert_fingerprint(self._cert)

    # -- offer / answer ---------------------------------------------------------------------------
    def _proto(self) -> str:
        return {"dtls": "UDP/TLS/RTP/SAVPF", "sdes": "RTP/SAVP"}.get(self.config.security, "RTP/AVP")

    def _codecs(self) -> list[oa.CodecSpec]:
        out = []
        for name in self.config.codecs:
            spec = _sdp_codec(name)
            if spec is None:
                continue
            cspec = codec_base.CodecSpec(spec.encoding, spec.clock_rate, spec.channels)
            if self.registry.supports(cspec):
                try:
                    self.registry.create(cspec)
                except RtpCoreError:
                    continue
                out.append(spec)
        if not out:
            raise LocalProtocolError("no usable codec (is libopus missing and G.711 disabled?)")
        return out

    def capabilities(self, *, proto: str | None = None, direction: Direction = Direction.SENDRECV
                     ) -> oa.LocalMediaCapabilities:
        proto = proto or self._proto()
        family = oa.proto_family(proto)
        dtls = None
        if family == ProtoFamily.DTLS:
            self._ensure_certificate()
            algo, _, value = self.local_fingerprint.partition(" ")
            dtls = oa.LocalDtls(fingerprints=(Fingerprint(algo, value),), setup=Setup.ACTPASS)
        crypto: tuple[Crypto, ...] = ()
        if family == ProtoFamily.SDES:
            crypto = (Crypto(1, "AES_CM_128_HMAC_SHA1_80",
                             (KeyParams(base64.b64encode(self._sdes_key).decode()),)),)
        return oa.LocalMediaCapabilities(
            codecs=self._codecs(), address=self.local_address[0], port=self.local_address[1], proto=proto,
            dtmf=self.config.dtmf, dtls=dtls, crypto=crypto, direction=direction,
            ptime=self.config.ptime_ms, rtcp_mux=True, ssrc=self.ssrc, cname=self.cname,
            ice=self._local_ice(),
        )

    def create_offer(self, now: float, *, direction: Direction = Direction.SENDRECV) -> bytes:
        """An initial offer, or a re-offer (hold: ``direction=SENDONLY``) after negotiation."""
        caps = self.capabilities(proto=self.negotiated.proto if self.negotiated else None, direction=direction)
        sdp = oa.create_offer(caps, previous=self._local_sdp)
        self._local_sdp = sdp
        self._pending_offer = sdp
        return sdp.to_bytes()

    def receive_answer(self, data: bytes, now: float) -> None:
        offer = self._pending_offer
        if offer is None:
            raise LocalProtocolError("no offer outstanding")
        answer = parse_sdp(data)
        result = oa.negotiate(offer, answer)
        self._pending_offer = None
        self._remote_sdp = answer
        self._apply(result, is_offerer=True, now=now)

    def receive_offer(self, data: bytes, now: float, *, direction: Direction = Direction.SENDRECV) -> bytes:
        """Answer a remote offer (initial or re-offer); returns the answer SDP."""
        offer = parse_sdp(data)
        audio = next((m for m in offer.media if m.kind == "audio" and m.port != 0), None)
        proto = audio.proto if audio is not None else self._proto()
        family = oa.proto_family(proto)
        if family == ProtoFamily.PLAIN and self.config.security != "none" and not self.config.accept_insecure:
            raise OfferAnswerError("plain RTP offered but secure media is required")
        if audio is not None and offer.effective_ice(audio) is not None and self.ice is None:
            self._start_ice(now)
        elif audio is not None and offer.effective_ice(audio) is None and self.ice is not None:
            self.ice.close(now)
            self.ice = None
        caps = self.capabilities(proto=proto if family is not None else None, direction=direction)
        answer = oa.create_answer(offer, caps, previous=self._local_sdp)
        result = oa.negotiate(offer, answer)
        self._local_sdp = answer
        self._remote_sdp = offer
        self._apply(result, is_offerer=False, now=now)
        return answer.to_bytes()

    def _apply(self, result: oa.NegotiationResult, *, is_offerer: bool, now: float) -> None:
        nm = result.audio
        if nm is None or nm.codec is None:
            raise OfferAnswerError("no audio stream with a common codec")
        first = self.negotiated is None
        self.negotiated = nm
        self.is_offerer = is_offerer
        local, remote = nm.local(is_offerer=is_offerer)
        self.sending = nm.sends(is_offerer=is_offerer)
        self.receiving = nm.receives(is_offerer=is_offerer)
        if remote.address and remote.port and not self._latched and (self.ice is None or remote.ice is None):
            if remote.address not in ("0.0.0.0", "::"):
                self.remote_addr = (remote.address, remote.port)
        self._apply_remote_ice(remote, is_offerer, now)
        c = nm.codec
        send_pt = nm.send_payload_type(is_offerer=is_offerer)
        recv_pt = c.offerer_pt if is_offerer else c.answerer_pt
        spec = codec_base.CodecSpec(c.encoding, c.clock_rate, c.channels)
        if first or self._encoder is None or self._encoder.spec.key != spec.key:
            self._encoder = self.registry.create(spec)
            decoder = self.registry.create(spec)
            cfg = self.config.jitter or JitterConfig(clock_rate=decoder.clock_rate,
                                                     sample_rate=decoder.sample_rate,
                                                     frame_ms=self.config.ptime_ms)
            self._jitter = JitterBuffer(cfg, decoder)
            self._rtcp = RtcpScheduler(self.ssrc, self.cname, now, clock_rate=c.clock_rate, rng=self.rng)
        self._send_pt = send_pt
        self._recv_pts = {recv_pt}
        te = nm.telephone_event
        if te is not None:
            self._te_send_pt = te.answerer_pt if is_offerer else te.offerer_pt
            self._te_recv_pts = {te.offerer_pt if is_offerer else te.answerer_pt}
            if self._dtmf_tx is None:
                self._dtmf_tx = DtmfSender(clock_rate=te.clock_rate, ptime_ms=self.config.ptime_ms)
                self._dtmf_rx = DtmfReceiver(clock_rate=te.clock_rate)
        family = oa.proto_family(nm.proto)
        if family == ProtoFamily.DTLS:
            self._setup_dtls(nm, remote, now)
        elif family == ProtoFamily.SDES:
            self._setup_sdes(local, remote)
        else:
            self.security = "none"
            self._srtp_tx = self._srtp_rx = None
        if first:
            self.state = MediaState.CONNECTING
            self._started_at = now
            self._connect_deadline = now + self.config.connect_timeout
            if family != ProtoFamily.DTLS and (self.ice is None or self.ice.selected_pair() is not None):
                self._connected(now)
        early, self._early = self._early, []
        for data, addr in early:
            self.receive(data, addr, now)

    def _setup_sdes(self, local: oa.MediaEndpoint, remote: oa.MediaEndpoint) -> None:
        if local.crypto is None or remote.crypto is None:
            raise OfferAnswerError("RTP/SAVP negotiated without a=crypto on both sides")
        self._srtp_tx = _sdes_session(local.crypto, self.config.replay_window)
        self._srtp_rx = _sdes_session(remote.crypto, self.config.replay_window)
        self.security = "sdes"

    def _setup_dtls(self, nm: oa.NegotiatedMedia, remote: oa.MediaEndpoint, now: float) -> None:
        fps = tuple(f"{f.hash_function.lower()} {f.value}" for f in remote.fingerprints)
        if not fps:
            raise OfferAnswerError("DTLS-SRTP negotiated without a remote a=fingerprint")
        if self._dtls is not None:
            if fps != self._dtls_fingerprints:
                raise OfferAnswerError("the peer changed its DTLS fingerprint (a new DTLS session is not supported)")
            return
        client = nm.dtls_is_client(is_offerer=self.is_offerer)
        self._dtls_fingerprints = fps
        self._dtls = DtlsConnection("client" if client else "server", self._cert, self._key,
                                    remote_fingerprint=list(fps), rng=self.rng, keylog=self.keylog)
        self.security = "dtls"
        if client:
            if self.ice is not None and self.ice.selected_pair() is None:
                self._dtls_pending_start = True  # ClientHello once ICE has a path (RFC 8842 §4)
            else:
                self._dtls.start(now)
                self._flush_dtls()

    def _flush_dtls(self) -> None:
        if self._dtls is None:
            return
        for data in self._dtls.datagrams_to_send():
            if self.ice is None:
                self._send_raw(data)
                continue
            if self._dtls_held:
                self._send_held_dtls()  # keep the order of what was held
            if self._dtls_held or not self._send_ice(data):
                # A ClientHello can arrive before our own check on that path succeeded (peers that
                # start DTLS as soon as *their* check succeeds, e.g. baresip): keep the answer
                # (bounded) until ICE has a valid pair rather than waiting for the peer's
                # retransmission a second later (RFC 6347 §4.2.4.1 initial timer).
                if len(self._dtls_held) < _MAX_HELD_DTLS:
                    self._dtls_held.append(data)
        for ev in self._dtls.events():
            if isinstance(ev, HandshakeCompleted) and ev.srtp_profile is not None:
                profile = profile_by_dtls_id(int(ev.srtp_profile))
                self._srtp_tx = SrtpSession(profile, ev.local_key, ev.local_salt,
                                            replay_window=self.config.replay_window)
                self._srtp_rx = SrtpSession(profile, ev.remote_key, ev.remote_salt,
                                            replay_window=self.config.replay_window)
                if self.remote_addr is not None:
                    self._connected(None)
            elif isinstance(ev, HandshakeCompleted):
                self._fail("dtls", "DTLS finished without an SRTP profile (use_srtp not negotiated)", None)

    def _connected(self, now: float | None) -> None:
        if self.state in (MediaState.CONNECTING, MediaState.NEW):
            self.state = MediaState.CONNECTED
            if self._encoder is None:
                raise LocalProtocolError("internal state: _encoder not set")
            self._events.append(MediaConnected(codec=self._encoder.name, security=self.security,
                                               remote=self.remote_addr or ("", 0)))

    def _fail(self, cause: str, message: str, error: RtpCoreError | None) -> None:
        if self.state in (MediaState.FAILED, MediaState.CLOSED):
            return
        self.state = MediaState.FAILED
        self._events.append(MediaFailed(cause=cause, message=message, error=error))

    # -- network ---------------------------------------------------------------------------------
    def _send_ice(self, data: bytes) -> bool:
        """Send on the ICE selected (or best valid) pair; False when there is no usable pair yet."""
        if self.ice is None:
            raise LocalProtocolError("internal state: ice not set")
        out = self.ice.send(data)
        for d, dst, _src in out:
            self._out.append((d, dst))
        return bool(out)

    def _send_held_dtls(self) -> None:
        held, self._dtls_held = self._dtls_held, []
        for i, data in enumerate(held):
            if self.ice is None or not self._send_ice(data):
                self._dtls_held = held[i:]
                return

    def _send_raw(self, data: bytes) -> None:
        if self.ice is not None:
            self._send_ice(data)
            return
        if self.remote_addr is not None:
            self._out.append((data, self.remote_addr))

    def receive(self, data: bytes, addr: Addr, now: float) -> None:
        """A datagram arrived on our media socket from ``addr``."""
        if self.state in (MediaState.CLOSED,):
            return
        self._now = now
        if self.ice is not None:
            app = self.ice.receive(data, addr, self.local_address, now)
            self._pump_ice(now)
            if app is None:
                return
            data = app
        try:
            kind = classify(data)
        except RtpCoreError:
            self.discarded += 1
            return
        if kind is PacketKind.STUN:
            self._receive_stun(data, addr)
        elif kind is PacketKind.DTLS:
            self._receive_dtls(data, addr, now)
        elif kind in (PacketKind.RTP, PacketKind.RTCP):
            self._receive_rtp(data, addr, now, rtcp=is_rtcp(data))
        else:
            self.discarded += 1

    def _receive_stun(self, data: bytes, addr: Addr) -> None:
        """Without an ICE agent, answer Binding requests (keeps NATs open; RFC 7675 consent)."""
        try:
            msg = stun.parse_message(data)
        except RemoteProtocolError:
            self.discarded += 1
            return
        if msg.message_class is stun.MessageClass.REQUEST and msg.method == stun.Method.BINDING:
            resp = stun.StunMessage(stun.Method.BINDING, stun.MessageClass.SUCCESS, msg.transaction_id,
                                    [stun.XorMappedAddress(addr)])
            self._out.append((resp.encode(fingerprint=True), addr))

    def _receive_dtls(self, data: bytes, addr: Addr, now: float) -> None:
        if self._dtls is None:
            # the answerer's ClientHello can overtake the SDP answer: keep a few until negotiated
            if self.negotiated is None and len(self._early) < 16:
                self._early.append((data, addr))
            else:
                self.discarded += 1
            return
        if self.ice is None and (self.remote_addr is None or (not self._latched and addr != self.remote_addr)):
            self.remote_addr = addr
            self._latched = True
        try:
            self._dtls.receive(data, now)
        except DtlsError as exc:
            self._flush_dtls()
            self._fail("dtls", str(exc), exc)
            return
        self._flush_dtls()

    def _receive_rtp(self, data: bytes, addr: Addr, now: float, *, rtcp: bool) -> None:
        if self.negotiated is None:
            if len(self._early) < 16:
                self._early.append((data, addr))
            else:
                self.discarded += 1
            return
        try:
            if self._srtp_rx is not None:
                data = self._srtp_rx.unprotect_rtcp(data) if rtcp else self._srtp_rx.unprotect_rtp(data)
            elif self.security != "none":
                self.discarded += 1  # SRTP before keys: drop
                return
        except RtpCoreError:
            self.discarded += 1
            return
        if rtcp:
            self._receive_rtcp(data, now)
            self._last_rx = now
            return
        try:
            pkt = RtpPacket.parse(data)
        except RtpCoreError:
            self.discarded += 1
            return
        if self.security == "none" and self._remote_ssrc is not None and pkt.ssrc != self._remote_ssrc \
                and addr != self.remote_addr:
            self.discarded += 1
            return
        if addr != self.remote_addr and self.ice is None:
            self.remote_addr = addr  # symmetric RTP: follow the authenticated source (RFC 4961)
            self._latched = True
        self._last_rx = now
        self.packets_received += 1
        self.bytes_received += len(pkt.payload)
        if self._remote_ssrc is None:
            self._remote_ssrc = pkt.ssrc
        stats = self._sources.get(pkt.ssrc)
        if stats is None:
            stats = ReceiverStats(pkt.ssrc, self._jitter.config.clock_rate if self._jitter else 8000)
            self._sources[pkt.ssrc] = stats
            if self._rtcp is not None:
                self._rtcp.add_source(stats)
        stats.receive(pkt, now)
        if self.state is MediaState.CONNECTED or (self.state is MediaState.CONNECTING and self.security != "dtls"):
            self.state = MediaState.FLOWING
            self._events.append(MediaFlowing(at=now))
        if pkt.payload_type in self._te_recv_pts and self._dtmf_rx is not None:
            try:
                self._dtmf_rx.receive(pkt.payload, pkt.timestamp, now)
            except RtpCoreError:
                self.discarded += 1
            self._drain_dtmf()
            return
        if pkt.payload_type in self._recv_pts and self._jitter is not None and self.receiving:
            self._jitter.put(pkt.sequence_number, pkt.timestamp, pkt.payload, now, marker=pkt.marker, ssrc=pkt.ssrc)
        elif pkt.payload_type == 13 and self._jitter is not None:
            self._jitter.put(pkt.sequence_number, pkt.timestamp, b"", now, ssrc=pkt.ssrc, comfort_noise=True)

    def _receive_rtcp(self, data: bytes, now: float) -> None:
        if self._rtcp is None:
            return
        try:
            self._rtcp.receive(data, now)
        except RtpCoreError:
            self.discarded += 1
            return
        for ev in self._rtcp.events():
            if isinstance(ev, ReportReceived):
                if ev.block.ssrc == self.ssrc:
                    self._outbound_loss = ev.block.fraction_lost / 256.0
                    if ev.rtt is not None and ev.rtt >= 0:
                        self._rtt = ev.rtt
            elif isinstance(ev, ByeReceived):
                self._events.append(RemoteHangupRtcp(reason=ev.reason))

    def _drain_dtmf(self) -> None:
        if self._dtmf_rx is None:
            return
        for ev in self._dtmf_rx.events():
            self._events.append(DtmfReceived(digit=ev.digit, duration_ms=int(ev.duration_ms)))

    # -- sending audio -------------------------------------------------------------------------------
    @property
    def audio_sample_rate(self) -> int:
        """PCM rate that :meth:`send_audio` expects and :meth:`pull_audio` returns."""
        return self._encoder.sample_rate if self._encoder is not None else 8000

    @property
    def frame_samples(self) -> int:
        return self.audio_sample_rate * self.config.ptime_ms // 1000

    def send_audio(self, pcm: Pcm, now: float) -> None:
        """Encode and send one ``ptime`` frame (called by the driver's media clock)."""
        if self._encoder is None or self.state in (MediaState.NEW, MediaState.FAILED, MediaState.CLOSED):
            return
        clock_step = self._encoder.clock_rate * self.config.ptime_ms // 1000
        if self.security != "none" and self._srtp_tx is None:
            self._ts = (self._ts + clock_step) & 0xFFFFFFFF
            return
        dtmf_sent = self._send_dtmf_packets(now)
        if self.sending and not dtmf_sent and self._send_pt is not None:
            frame = np.zeros_like(pcm) if self.muted else pcm
            payload = self._encoder.encode(frame)
            self._send_rtp(self._send_pt, payload, self._ts, self._marker)
            self._marker = False
        self._ts = (self._ts + clock_step) & 0xFFFFFFFF
        if self._rtcp is not None:
            self._rtcp.on_rtp_sent(packet_count=self._sent_packets, octet_count=self._sent_octets,
                                   rtp_timestamp=self._ts, now=now)

    def _send_rtp(self, pt: int, payload: bytes, ts: int, marker: bool) -> None:
        pkt = RtpPacket(payload_type=pt, sequence_number=self._seq, timestamp=ts, ssrc=self.ssrc,
                        marker=marker, payload=payload)
        self._seq = (self._seq + 1) & 0xFFFF
        data = pkt.serialize()
        if self._srtp_tx is not None:
            data = self._srtp_tx.protect_rtp(data)
        self._send_raw(data)
        self.packets_sent += 1
        self.bytes_sent += len(payload)
        self._sent_packets += 1
        self._sent_octets += len(payload)

    def send_dtmf(self, digits: str, now: float, *, duration_ms: int = 100, gap_ms: int = 50) -> None:
        """Queue RFC 4733 digits (``0-9 * # A-D``); raises LocalProtocolError when not negotiated."""
        if self._dtmf_tx is None or self._te_send_pt is None:
            raise LocalProtocolError("the peer did not accept telephone-event (RFC 4733)")
        self._dtmf_tx.send(digits, duration_ms, gap_ms, now=now)

    def _send_dtmf_packets(self, now: float) -> bool:
        if self._dtmf_tx is None or self._te_send_pt is None or not self._dtmf_tx.busy:
            return False
        packets = self._dtmf_tx.poll(now)
        for p in packets:
            ts = self._dtmf_ts.setdefault(p.event_start, self._ts)
            self._send_rtp(self._te_send_pt, p.payload, ts, p.marker)
        if len(self._dtmf_ts) > 16:  # bounded: keep the latest events' timestamps
            for key in sorted(self._dtmf_ts)[:-8]:
                del self._dtmf_ts[key]
        return bool(packets) or self._dtmf_tx.busy

    def pull_audio(self, now: float) -> Pcm:
        """The next ``ptime`` of received audio (silence before media, concealment on loss)."""
        if self._jitter is None:
            return np.zeros(self.frame_samples, dtype=np.int16)
        return self._jitter.pull(now).pcm

    # -- timers --------------------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        deadlines = []
        if self.ice is not None:
            d = self.ice.next_deadline()
            if d is not None:
                deadlines.append(d)
        if self._dtls is not None:
            d = self._dtls.next_deadline()
            if d is not None:
                deadlines.append(d)
        if self._rtcp is not None and self.state in (MediaState.CONNECTED, MediaState.FLOWING):
            d = self._rtcp.next_deadline()
            if d is not None:
                deadlines.append(d)
        if self._dtmf_rx is not None:
            d = self._dtmf_rx.next_deadline()
            if d is not None:
                deadlines.append(d)
        if self._connect_deadline is not None and self.state is MediaState.CONNECTING:
            deadlines.append(self._connect_deadline)
        if self.state in (MediaState.CONNECTED, MediaState.FLOWING):
            base = self._last_rx if self._last_rx is not None else self._started_at
            if base is not None:
                # whole seconds: the deadline moves once a second, not with every packet (no timer churn)
                deadlines.append(float(math.ceil(base)) + self.config.media_timeout)
        return min(deadlines) if deadlines else None

    def handle_timeout(self, now: float) -> None:
        self._now = now
        if self.ice is not None:
            self.ice.handle_timeout(now)
            self._pump_ice(now)
        if self._dtls is not None:
            try:
                self._dtls.handle_timeout(now)
            except DtlsError as exc:
                self._flush_dtls()
                self._fail("dtls", str(exc), exc)
            self._flush_dtls()
        if self._rtcp is not None and self.state in (MediaState.CONNECTED, MediaState.FLOWING):
            self._rtcp.handle_timeout(now)
            self._send_rtcp()
        if self._dtmf_rx is not None:
            self._dtmf_rx.handle_timeout(now)
            self._drain_dtmf()
        if self.state is MediaState.CONNECTING and self._connect_deadline is not None \
                and now >= self._connect_deadline:
            what = "DTLS handshake" if self.security == "dtls" else "media path"
            self._fail("dtls" if self.security == "dtls" else "timeout",
                       f"{what} did not complete within {self.config.connect_timeout:.0f} s", None)
        if self.state in (MediaState.CONNECTED, MediaState.FLOWING):
            base = self._last_rx if self._last_rx is not None else self._started_at
            if base is not None and now >= base + self.config.media_timeout:
                self._fail("timeout", f"no media from the peer for {self.config.media_timeout:.0f} s", None)

    def _send_rtcp(self) -> None:
        """Queue the scheduler's RTCP, protected as SRTCP when keys exist (never plain in a secure session)."""
        if self._rtcp is None:
            raise LocalProtocolError("internal state: _rtcp not set")
        for data in self._rtcp.datagrams_to_send():
            if self._srtp_tx is not None:
                data = self._srtp_tx.protect_rtcp(data)
            elif self.security != "none":
                continue
            self._send_raw(data)

    def datagrams_to_send(self) -> list[tuple[bytes, Addr]]:
        out, self._out = self._out, []
        return out

    def events(self) -> list[MediaEvent]:
        out, self._events = self._events, []
        return out

    def close(self, now: float) -> None:
        if self.state is MediaState.CLOSED:
            return
        if self._rtcp is not None and self.state in (MediaState.CONNECTED, MediaState.FLOWING):
            self._rtcp.close(now)
            self._send_rtcp()
        if self._dtls is not None:
            self._dtls.close()
            self._flush_dtls()
        if self.ice is not None:
            self.ice.close(now)
            self._pump_ice(now)
        self.state = MediaState.CLOSED

    # -- statistics ------------------------------------------------------------------------------------
    def stats(self, now: float) -> MediaStats:
        inbound = 0.0
        jitter_ms = 0.0
        for s in self._sources.values():
            exp = s.expected
            if exp > 0:
                inbound = max(inbound, max(0, s.lost) / exp)
            jitter_ms = max(jitter_ms, s.jitter_seconds * 1000.0)
        js = self._jitter.stats if self._jitter is not None else None
        delay = js.current_delay_ms if js is not None else 0.0
        rtt_ms = self._rtt * 1000.0 if self._rtt is not None else None
        network = (rtt_ms / 2 if rtt_ms is not None else 0.0) + self.config.ptime_ms  # packetisation + path
        codec = self._encoder.name if self._encoder is not None else "PCMU"
        types = self._ice_types
        pair = self.ice.selected_pair() if self.ice is not None else None
        if pair is not None:
            types = (pair[0].type.value, pair[1].type.value)
        q = estimate_quality(delay_ms=network, loss_percent=100 * max(inbound, self._outbound_loss),
                             jitter_ms=jitter_ms, codec=codec, jitter_buffer_ms=delay)
        return MediaStats(
            codec=self._encoder.name if self._encoder is not None else None,
            packets_sent=self.packets_sent, packets_received=self.packets_received,
            bytes_sent=self.bytes_sent, bytes_received=self.bytes_received,
            inbound_loss=inbound, outbound_loss=self._outbound_loss, jitter_ms=jitter_ms, rtt_ms=rtt_ms,
            playout_delay_ms=delay, mos=q.mos, local_candidate_type=types[0],
            remote_candidate_type=types[1] if self.ice is not None else (
                "prflx" if self._latched else "host"), discarded=self.discarded,
            jitter={k: getattr(js, k) for k in ("target_delay_ms", "late", "lost", "concealed", "duplicates")}
            if js is not None else {},
        )


def _sdes_session(crypto: Crypto, replay_window: int) -> SrtpSession:
    profile = profile_by_sdes_name(crypto.suite)
    raw = base64.b64decode(crypto.key_params[0].key_salt + "==")
    key, salt = raw[: profile.master_key_len], raw[profile.master_key_len : profile.master_key_len +
                                                   profile.master_salt_len]
    if len(salt) != profile.master_salt_len:
        raise OfferAnswerError(f"a=crypto key of {len(raw)} bytes is too short for {crypto.suite}")
    return SrtpSession(profile, key, salt, replay_window=replay_window)

