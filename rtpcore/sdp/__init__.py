"""SDP (RFC 8866) model, parser, serializer and RFC 3264 offer/answer.

::

    sdp = parse_sdp(body)                  # SdpParseError on malformed input, nothing else
    sdp.media[0].rtpmap, .candidates, .fingerprints, .crypto ...   # typed, computed views
    body = sdp.to_bytes()                  # CRLF; identical bytes for canonical input

Modules: :mod:`.grammar` (ABNF checks), :mod:`.attributes` (typed attribute values),
:mod:`.model`, :mod:`.parse`, :mod:`.serialize`.
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
from .parse import DEFAULT_LIMITS, SdpLimits, parse_sdp
from .serialize import serialize_sdp, serialize_sdp_bytes

__all__ = [
    "DEFAULT_LIMITS",
    "STATIC_PAYLOAD_TYPES",
    "Attribute",
    "Bandwidth",
    "Candidate",
    "Connection",
    "Crypto",
    "Direction",
    "ExtMap",
    "Fingerprint",
    "Fmtp",
    "Group",
    "IceParameters",
    "KeyParams",
    "MediaDescription",
    "Msid",
    "Origin",
    "PayloadFormat",
    "RtcpAddress",
    "RtcpFeedback",
    "RtpMap",
    "SdpLimits",
    "SessionDescription",
    "Setup",
    "SsrcAttribute",
    "SsrcGroup",
    "Timing",
    "parse_sdp",
    "serialize_sdp",
    "serialize_sdp_bytes",
]
