"""sipcore: SIP messages, transactions, dialogs, transports and authentication (RFC 3261 and friends).

Sans-IO: protocol objects take bytes and time in and give bytes, deadlines and events out;
only ``sipcore.transport`` and ``aio*`` modules touch sockets and the event loop.
"""

from .errors import LocalProtocolError, RemoteProtocolError, SipError, SipParseError
from .header_types import ContentType, CSeq, NameAddr, Via, parse_name_addr, parse_via
from .headers import Headers
from .message import (
    REASON_PHRASES,
    SipMessage,
    SipRequest,
    SipResponse,
    make_response,
    parse_message,
    random_tag,
)
from .sanity import sanity_check
from .uri import AbsoluteUri, SipUri, TelUri, Uri, parse_uri

__all__ = [
    "REASON_PHRASES",
    "AbsoluteUri",
    "CSeq",
    "ContentType",
    "Headers",
    "LocalProtocolError",
    "NameAddr",
    "RemoteProtocolError",
    "SipError",
    "SipMessage",
    "SipParseError",
    "SipRequest",
    "SipResponse",
    "SipUri",
    "TelUri",
    "Uri",
    "Via",
    "make_response",
    "parse_message",
    "parse_name_addr",
    "parse_uri",
    "parse_via",
    "random_tag",
    "sanity_check",
]
