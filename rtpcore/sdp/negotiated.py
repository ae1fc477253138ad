"""The outcome of an RFC 3264 offer/answer exchange, per m-line and per side.

Built by :func:`rtpcore.sdp.offer_answer.negotiate`. Both parties of a call read the
same :class:`NegotiationResult`; the ``is_offerer`` helpers of :class:`NegotiatedMedia`
give the local view: which payload type to send (the one the *receiver* declared,
RFC 3264 §5.1), whether to send or receive, and whether to be the DTLS client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from ..errors import LocalProtocolError
from .attributes import Candidate, Crypto, Direction, Fingerprint, Setup
from .model import IceParameters


class Side(StrEnum):
    """One party of an offer/answer exchange."""

    OFFERER = "offerer"
    ANSWERER = "answerer"


@dataclass(frozen=True, slots=True)
class NegotiatedCodec:
    """A codec both sides listed; each side receives it on its own payload type."""

    encoding: str
    clock_rate: int
    channels: int
    offerer_pt: int
    """PT in the offer: the answerer sends with it."""
    answerer_pt: int
    """PT in the answer: the offerer sends with it."""
    offerer_fmtp: str | None = None
    answerer_fmtp: str | None = None


@dataclass(frozen=True, slots=True)
class MediaEndpoint:
    """One side of an m-line, as its SDP described it (media level over session level)."""

    address: str | None
    port: int
    rtcp_port: int
    rtcp_address: str | None
    direction: Direction
    ptime: float | None = None
    maxptime: float | None = None
    mid: str | None = None
    ice: IceParameters | None = None
    candidates: tuple[Candidate, ...] = ()
    end_of_candidates: bool = False
    fingerprints: tuple[Fingerprint, ...] = ()
    setup: Setup | None = None
    crypto: Crypto | None = None
    """The selected SDES line sent by this side (its own key)."""
    ssrcs: tuple[int, ...] = ()
    cname: str | None = None


@dataclass(frozen=True, slots=True)
class NegotiatedMedia:
    """What an offer/answer pair agreed for one m-line (index order is the SDP's)."""

    index: int
    kind: str
    proto: str
    accepted: bool
    codecs: tuple[NegotiatedCodec, ...] = ()
    """Common codecs in answer order; the first is the one to send."""
    telephone_event: NegotiatedCodec | None = None
    offerer: MediaEndpoint | None = None
    answerer: MediaEndpoint | None = None
    offerer_sends: bool = False
    answerer_sends: bool = False
    rtcp_mux: bool = False
    rtcp_rsize: bool = False
    dtls_client: Side | None = None
    """Who opens DTLS (the setup:active side); None without DTLS or with holdconn."""
    hold: bool = False
    """The offerer does not want to receive (sendonly/inactive/c=0.0.0.0, RFC 3264 §8.4)."""

    @property
    def codec(self) -> NegotiatedCodec | None:
        return self.codecs[0] if self.codecs else None

    def local(self, *, is_offerer: bool) -> tuple[MediaEndpoint, MediaEndpoint]:
        """``(local, remote)`` endpoints for the side that ``is_offerer`` or not."""
        if self.offerer is None or self.answerer is None:
            raise LocalProtocolError(f"m-line {self.index} was rejected")
        return (self.offerer, self.answerer) if is_offerer else (self.answerer, self.offerer)

    def send_payload_type(self, *, is_offerer: bool) -> int | None:
        """PT to put in RTP we send: the one the *receiver* declared."""
        c = self.codec
        if c is None:
            return None
        return c.answerer_pt if is_offerer else c.offerer_pt

    def sends(self, *, is_offerer: bool) -> bool:
        return self.offerer_sends if is_offerer else self.answerer_sends

    def receives(self, *, is_offerer: bool) -> bool:
        return self.answerer_sends if is_offerer else self.offerer_sends

    def dtls_is_client(self, *, is_offerer: bool) -> bool | None:
        if self.dtls_client is None:
            return None
        return self.dtls_client is (Side.OFFERER if is_offerer else Side.ANSWERER)


@dataclass(frozen=True, slots=True)
class NegotiationResult:
    media: tuple[NegotiatedMedia, ...]
    bundle: tuple[str, ...] = field(default=())
    """mids of the answer's BUNDLE group (RFC 8843)."""

    @property
    def audio(self) -> NegotiatedMedia | None:
        """The first accepted audio m-line."""
        for m in self.media:
            if m.accepted and m.kind == "audio":
                return m
        return None
