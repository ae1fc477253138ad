"""What a UAS checks before it processes a request that parsed (RFC 3261 §8.2, §16.3, RFC 4475 §3.1.2).

:func:`sanity_check` raises :class:`SipParseError` whose ``status_hint`` is the response to
send. The order follows RFC 3261 §8.2: the message must be well formed first (mandatory
headers present once each, CSeq method equal to the request method, a real branch), then
§8.2.1 method inspection (405/501), §8.2.2 header inspection (416 URI scheme, 420
Require), §8.2.3 content processing (415 body type), and Accept (406).

``role`` picks the element: ``"endpoint"`` (a UA core), ``"registrar"`` (adds §10.3 checks:
To must be a SIP/SIPS AOR), ``"proxy"`` (§16.3: no method/body/Require-at-UA checks, 483
when Max-Forwards is 0).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Literal

from .errors import SipParseError
from .grammar import SINGLETON_HEADERS
from .header_types import parse_content_type, uri_scheme
from .message import SipRequest
from .uri import SipUri

__all__ = ["DEFAULT_ALLOWED", "sanity_check"]

DEFAULT_ALLOWED = frozenset(
    {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "UPDATE", "INFO", "MESSAGE",
     "REFER", "NOTIFY", "SUBSCRIBE", "PUBLISH"}
)
KNOWN_METHODS = DEFAULT_ALLOWED
_SUPPORTED_SCHEMES = frozenset({"sip", "sips", "tel"})
Role = Literal["endpoint", "registrar", "proxy"]


def sanity_check(
    request: SipRequest,
    *,
    role: Role = "endpoint",
    allowed_methods: Collection[str] = DEFAULT_ALLOWED,
    supported: Collection[str] = ("replaces", "100rel", "timer", "outbound", "path", "gruu"),
    accept: Collection[str] = ("application/sdp",),
    schemes: Collection[str] = _SUPPORTED_SCHEMES,
) -> None:
    """Raise :class:`SipParseError` with the status a UAS must answer, or return None."""
    if request.version.upper() != "SIP/2.0":
        raise SipParseError(f"SIP version {request.version} not supported", 505)
    h = request.headers
    for name in ("via", "from", "to", "call-id", "cseq"):
        if name not in h:
            raise SipParseError(f"missing {name} header", 400, header=name)
    for name in SINGLETON_HEADERS:
        if h.count(name) > 1 or len(h.values(name)) > 1:
            raise SipParseError(f"more than one {name} header", 400, header=name)
    request.validate()
    cseq = request.cseq
    if cseq.method != request.method:
        # RFC 4475 §3.1.2.21: an unknown method with a mismatched CSeq may get 501.
        status = 501 if role == "endpoint" and request.method not in allowed_methods else 400
        raise SipParseError(f"CSeq method {cseq.method} differs from request method {request.method}", status,
                            header="cseq")
    branch = request.top_via.branch
    if branch is not None and branch.lower() == "z9hg4bk":
        raise SipParseError("Via branch is only the magic cookie (RFC 3261 §8.1.1.7)", 400, header="via")

    scheme = uri_scheme(request.uri)
    if scheme not in schemes:
        raise SipParseError(f"unsupported Request-URI scheme {scheme!r}", 416)

    if role == "proxy":
        mf = request.max_forwards
        if mf == 0:
            raise SipParseError("Max-Forwards reached 0", 483, header="max-forwards")
        return

    if request.method not in allowed_methods:
        status = 405 if request.method in KNOWN_METHODS else 501
        raise SipParseError(f"method {request.method} not allowed here", status)

    if role == "registrar" and request.method == "REGISTER":
        if not isinstance(request.to.uri, SipUri):
            raise SipParseError("To of a REGISTER must be a SIP or SIPS AOR (RFC 3261 §10.3)", 400, header="to")

    required = request.tokens("require") if "require" in h else []
    if request.method not in ("ACK", "CANCEL"):
        sup = {s.lower() for s in supported}
        unsupported = tuple(t for t in required if t.lower() not in sup)
        if unsupported:
            raise SipParseError(f"unsupported extension(s) {', '.join(unsupported)}", 420, header="require",
                                unsupported=unsupported)
        if "proxy-require" in h:
            unsupported = tuple(t for t in request.tokens("proxy-require") if t.lower() not in sup)
            if unsupported:
                raise SipParseError(f"unsupported extension(s) {', '.join(unsupported)}", 420,
                                    header="proxy-require", unsupported=unsupported)

    if request.body:
        ct = request.content_type
        mime = ct.mime if ct is not None else "application/sdp"
        acceptable = {a.lower() for a in accept} | {"multipart/mixed", "multipart/alternative",
                                                    "multipart/related"}
        enc = h.get("content-encoding")
        if mime not in acceptable or (enc and enc.strip().lower() not in ("identity", "")):
            raise SipParseError(f"unsupported body type {mime}", 415, header="content-type")

    if request.method in ("INVITE", "OPTIONS") and "accept" in h:
        offered = []
        for v in h.values("accept"):
            if v:
                offered.append(parse_content_type(v if "/" in v else v + "/*").mime)
        if offered and not any(_accepts(o, a) for o in offered for a in accept):
            raise SipParseError("Accept does not include a body type we can send", 406, header="accept")


def _accepts(pattern: str, mime: str) -> bool:
    t, _, s = pattern.partition("/")
    mt, _, ms = mime.lower().partition("/")
    return (t == "*" or t == mt) and (s == "*" or s == ms)
