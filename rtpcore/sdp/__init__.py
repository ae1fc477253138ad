"""SDP (RFC 8866) model, parser, serializer and RFC 3264 offer/answer.

::

    sdp = parse_sdp(body)                  # SdpParseError on malformed input, nothing else
    sdp.media[0].rtpmap, .candidates, .fingerprints, .crypto ...   # typed, computed views
    body = sdp.to_bytes()                  # CRLF; identical bytes for canonical input

    offer = create_offer(caps)             # caps: LocalMediaCapabilities
    answer = create_answer(remote_offer, caps)
    result = negotiate(offer, answer)      # per m-line codecs, PTs, directions, ICE, DTLS, SDES

Modules: :mod:`.grammar` (ABNF checks), :mod:`.attributes` (typed attribute values),
:mod:`.capabilities` (local media description), :mod:`.negotiated` (results),
:mod:`.model`, :mod:`.parse`, :mod:`.serialize`, :mod:`.offer_answer`.
"""

from __future__ import annotations

from .attributes import (
    Candidate,
    Crypto,
    Direction,
    ExtMap,
    Fingerprint,
    Fmtp,
    Group,
    KeyParams,
    Msid,
    RtcpAddress,
    RtcpFeedback,
    RtpMap,
    Setup,
    SsrcAttribute,
    SsrcGroup,
)
from .model import (
    STATIC_PAYLOAD_TYPES,
    Attribute,
    Bandwidth,
    Connection,
    IceParameters,
    MediaDescription,
    Origin,
    PayloadFormat,
    SessionDescription,
    Timing,
)
from .offer_answer import (
    G722,
    OPUS,
    PCMA,
    PCMU,
    CodecSpec,
    LocalDtls,
    LocalIce,
    LocalMediaCapabilities,
    MediaEndpoint,
    NegotiatedCodec,
    NegotiatedMedia,
    NegotiationResult,
    ProtoFamily,
    Side,
    create_answer,
    create_offer,
    negotiate,
    proto_family,
)
from .parse import DEFAULT_LIMITS, SdpLimits, parse_sdp
from .serialize import serialize_sdp, serialize_sdp_bytes

__all__ = [
    "DEFAULT_LIMITS",
    "G722",
    "OPUS",
    "PCMA",
    "PCMU",
    "STATIC_PAYLOAD_TYPES",
    "Attribute",
    "Bandwidth",
    "Candidate",
    "CodecSpec",
    "Connection",
    "Crypto",
    "Direction",
    "ExtMap",
    "Fingerprint",
    "Fmtp",
    "Group",
    "IceParameters",
    "KeyParams",
    "LocalDtls",
    "LocalIce",
    "LocalMediaCapabilities",
    "MediaDescription",
    "MediaEndpoint",
    "Msid",
    "NegotiatedCodec",
    "NegotiatedMedia",
    "NegotiationResult",
    "Origin",
    "PayloadFormat",
    "ProtoFamily",
    "RtcpAddress",
    "RtcpFeedback",
    "RtpMap",
    "SdpLimits",
    "SessionDescription",
    "Setup",
    "Side",
    "SsrcAttribute",
    "SsrcGroup",
    "Timing",
    "create_answer",
    "create_offer",
    "negotiate",
    "parse_sdp",
    "proto_family",
    "serialize_sdp",
    "serialize_sdp_bytes",
]
