"""What the local side can do, described once so a media session never builds SDP itself.

:class:`LocalMediaCapabilities` lists codecs in preference order (:class:`CodecSpec`, a
``(encoding, clock_rate, channels, fmtp)`` tuple), DTMF (RFC 4733), the RTP address and
port, the transport proto, ICE credentials and candidates (:class:`LocalIce`, RFC 8839),
DTLS fingerprints and role (:class:`LocalDtls`, RFC 8122 / RFC 5763), SDES keys
(:class:`~rtpcore.sdp.attributes.Crypto`, RFC 4568) and the wanted direction (RFC 3264 §5.1).
:mod:`rtpcore.sdp.offer_answer` turns it into offers and answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from ..errors import LocalProtocolError, SdpParseError
from .attributes import Candidate, Crypto, Direction, Fingerprint, Setup
from .grammar import address_type_of, check_address, is_proto, is_token
from .model import Attribute

TELEPHONE_EVENT = "telephone-event"
DEFAULT_DTMF_EVENTS = "0-15"  # RFC 4733 §3.2: the 16 DTMF events


class ProtoFamily(StrEnum):
    """How an RTP m= proto is secured."""

    PLAIN = "plain"  # RTP/AVP, RTP/AVPF (RFC 3551, RFC 4585)
    SDES = "sdes"  # RTP/SAVP, RTP/SAVPF keyed by a=crypto (RFC 4568)
    DTLS = "dtls"  # UDP/TLS/RTP/SAVP[F] keyed by DTLS-SRTP (RFC 5764 §8)


PLAIN, SDES, DTLS = ProtoFamily.PLAIN, ProtoFamily.SDES, ProtoFamily.DTLS
_PROTO_FAMILY = {
    "RTP/AVP": PLAIN, "RTP/AVPF": PLAIN,
    "RTP/SAVP": SDES, "RTP/SAVPF": SDES,
    "UDP/TLS/RTP/SAVP": DTLS, "UDP/TLS/RTP/SAVPF": DTLS,
    "TCP/DTLS/RTP/SAVP": DTLS, "TCP/DTLS/RTP/SAVPF": DTLS,
    "TCP/TLS/RTP/SAVP": DTLS, "TCP/TLS/RTP/SAVPF": DTLS,
}


def proto_family(proto: str) -> ProtoFamily | None:
    """``"plain"``, ``"sdes"`` (RTP/SAVP[F], RFC 4568) or ``"dtls"`` (RFC 5764 §8), else None."""
    return _PROTO_FAMILY.get(proto.upper())


# -- what the local side can do -------------------------------------------------------------


class CodecSpec(NamedTuple):
    """A codec the local side can send and receive: ``(encoding, clock_rate, channels, fmtp)``.

    ``fmtp`` is what we want to receive (e.g. ``"minptime=10;useinbandfec=1"`` for Opus);
    ``payload_type`` pins the number used in our offers (else RFC 3551 static or 96+).
    """

    encoding: str
    clock_rate: int
    channels: int = 1
    fmtp: str | None = None
    payload_type: int | None = None


PCMU = CodecSpec("PCMU", 8000)
PCMA = CodecSpec("PCMA", 8000)
G722 = CodecSpec("G722", 8000)
OPUS = CodecSpec("opus", 48000, 2, "minptime=10;useinbandfec=1")


@dataclass(frozen=True, slots=True)
class LocalIce:
    """Our ICE agent's credentials and gathered candidates (RFC 8839 §5)."""

    ufrag: str
    """ice-ufrag: at least 4 ice-chars (RFC 8839 §5.4)."""
    pwd: str
    """ice-pwd: at least 22 ice-chars; never logged."""
    candidates: tuple[Candidate, ...] = ()
    """Candidates gathered so far (trickle the rest)."""
    options: tuple[str, ...] = ("trickle",)
    """a=ice-options tokens."""
    lite: bool = False
    """Send a=ice-lite (session level)."""
    end_of_candidates: bool = False
    """Gathering is complete: add a=end-of-candidates."""

    def __repr__(self) -> str:
        return f"LocalIce(ufrag={self.ufrag!r}, pwd=<redacted>, candidates={len(self.candidates)})"


@dataclass(frozen=True, slots=True)
class LocalDtls:
    """Our DTLS certificate fingerprints and the role we offer (RFC 8122, RFC 5763 §5)."""

    fingerprints: tuple[Fingerprint, ...]
    """One per hash function; the first is the preferred one."""
    setup: Setup = Setup.ACTPASS
    """Role put in offers; RFC 5763 §5 wants actpass in an initial offer."""


@dataclass(frozen=True, slots=True)
class LocalMediaCapabilities:
    """Everything needed to offer or answer one audio stream, without any SDP knowledge."""

    codecs: Sequence[CodecSpec]
    """Codecs in preference order; plain ``(encoding, clock_rate, channels, fmtp)`` tuples work."""
    address: str
    """Address for c= and o= (the ICE default candidate when ICE is used)."""
    port: int
    """RTP port for m= (1..65535)."""
    proto: str = "RTP/AVP"
    """Transport for offers. A secure proto here also means plain RTP offers are refused."""
    dtmf: bool = True
    """Offer/accept RFC 4733 telephone-event at the clock rates of our codecs."""
    ice: LocalIce | None = None
    """ICE credentials and candidates, or None for no ICE."""
    dtls: LocalDtls | None = None
    """Fingerprints and setup role for DTLS-SRTP, or None."""
    crypto: Sequence[Crypto] = ()
    """SDES a=crypto lines we offer (tag, suite, our key); the answer reuses their keys."""
    direction: Direction = Direction.SENDRECV
    """What we want: sendonly/inactive put the peer on hold (RFC 3264 §8.4)."""
    ptime: int | None = 20
    """a=ptime in ms, or None to leave it out."""
    maxptime: int | None = None
    """a=maxptime in ms, or None."""
    rtcp_mux: bool = True
    """Offer/accept RTP and RTCP on one port (RFC 5761)."""
    rtcp_rsize: bool = False
    """Offer/accept reduced-size RTCP (RFC 5506)."""
    mid: str | None = None
    """a=mid for our offers (answers echo the offer's mid)."""
    bundle: bool = False
    """Add a=group:BUNDLE with our mid to offers (needs ``mid``)."""
    ssrc: int | None = None
    """Our RTP SSRC for a=ssrc (with ``cname``)."""
    cname: str | None = None
    """RTCP CNAME for a=ssrc:<ssrc> cname:<cname> (RFC 5576)."""
    username: str = "-"
    """o= username."""
    session_name: str = "-"
    """s= text."""
    extra_attributes: Sequence[Attribute] = ()
    """More media-level attributes, appended as given."""

    def __post_init__(self) -> None:
        codecs = tuple(c if isinstance(c, CodecSpec) else CodecSpec(*c) for c in self.codecs)
        object.__setattr__(self, "codecs", codecs)
        object.__setattr__(self, "crypto", tuple(self.crypto))
        object.__setattr__(self, "extra_attributes", tuple(self.extra_attributes))
        if not codecs:
            raise LocalProtocolError("LocalMediaCapabilities needs at least one codec")
        for c in codecs:
            if not is_token(c.encoding) or c.clock_rate <= 0 or not 1 <= c.channels <= 255:
                raise LocalProtocolError(f"bad codec {c!r}")
            if c.payload_type is not None and not 0 <= c.payload_type <= 127:
                raise LocalProtocolError(f"bad payload type in {c!r}")
        if not 0 < self.port <= 65535:
            raise LocalProtocolError(f"bad RTP port {self.port}")
        if not is_proto(self.proto):
            raise LocalProtocolError(f"bad proto {self.proto!r}")
        try:
            check_address(address_type_of(self.address), self.address, "local address")
        except SdpParseError as exc:
            raise LocalProtocolError(str(exc)) from None
        family = proto_family(self.proto)
        if family == DTLS and self.dtls is None:
            raise LocalProtocolError(f"{self.proto} needs dtls fingerprints")
        if family == SDES and not self.crypto:
            raise LocalProtocolError(f"{self.proto} needs SDES crypto lines")
        if self.bundle and self.mid is None:
            raise LocalProtocolError("bundle=True needs a mid")

    @property
    def codec_specs(self) -> tuple[CodecSpec, ...]:
        return tuple(self.codecs)

    def accepts_family(self, family: ProtoFamily | None) -> bool:
        """Whether an m-line of this proto family can be answered."""
        if family == PLAIN:
            return proto_family(self.proto) in (PLAIN, None)
        if family == SDES:
            return bool(self.crypto)
        if family == DTLS:
            return self.dtls is not None
        return False
