"""SIP requests and responses: parse, inspect, modify, serialise (RFC 3261 §7, §8.2.6, §20).

Parsing is split in two, the way a fast proxy does it:

1. :func:`parse_message` frames the message and splits it into a start line, header fields
   and a body. It rejects what makes a message unframeable or unroutable at once: a bad start
   line (extra/missing SP, bad SIP-Version syntax, non-3-digit status), a header line without
   a colon or with a non-token name, folded lines at the top, negative, non-numeric,
   conflicting or too-large Content-Length (RFC 3261 §18.3, §20.14). Nothing else is parsed
   yet.
2. Typed views (``msg.vias``, ``msg.from_``, ``msg.cseq`` ...) parse their header on first
   access and are cached until the headers change. A malformed one raises
   :class:`SipParseError` (status hint 400) at that point, so a stack can answer 400 to a
   request whose Call-ID it could still read. ``msg.validate()`` parses every header this
   package knows plus the Request-URI, and ``parse_message(data, strict=True)`` calls it:
   that is the RFC 4475 "strict parser".

Round trip: an unmodified parsed message serialises to exactly the bytes it was parsed from
(``bytes(msg) == data[:msg.consumed]`` after leading CRLFs). After a change, unchanged header
lines keep their original text; Content-Length is corrected to the body length.

Message bodies: without Content-Length the body is the rest of the datagram (RFC 3261 §18.3
allows this for UDP); bytes after Content-Length are ignored (RFC 4475 §3.1.2.11 dblreq).
Stream transports use :mod:`sipcore.framing` instead, which requires Content-Length.

Text is decoded as UTF-8 with ``surrogateescape`` so any bytes survive a round trip.
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from .errors import LocalProtocolError, SipParseError
from .grammar import METHOD_RE, TOKEN_RE, VERSION_RE, _canonical_cache, canonical_name, split_list
from .header_types import (
    ContentType,
    CSeq,
    NameAddr,
    Via,
    parse_bounded_int,
    parse_content_type,
    parse_cseq,
    parse_date,
    parse_name_addr,
    parse_retry_after,
    parse_via,
    parse_warning,
)
from .headers import Headers
from .uri import SipUri, Uri, parse_uri

__all__ = [
    "REASON_PHRASES",
    "BodyPart",
    "SipMessage",
    "SipRequest",
    "SipResponse",
    "make_response",
    "parse_message",
    "random_tag",
]

MAX_MESSAGE_SIZE = 1 << 20
"""Largest message :func:`parse_message` accepts (status hint 513 above it)."""

REASON_PHRASES: dict[int, str] = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 199: "Early Dialog Terminated", 200: "OK", 202: "Accepted",
    204: "No Notification", 300: "Multiple Choices", 301: "Moved Permanently",
    302: "Moved Temporarily", 305: "Use Proxy", 380: "Alternative Service", 400: "Bad Request",
    401: "Unauthorized", 402: "Payment Required", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 406: "Not Acceptable", 407: "Proxy Authentication Required",
    408: "Request Timeout", 410: "Gone", 412: "Conditional Request Failed",
    413: "Request Entity Too Large", 414: "Request-URI Too Long", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 417: "Unknown Resource-Priority", 420: "Bad Extension",
    421: "Extension Required", 422: "Session Interval Too Small", 423: "Interval Too Brief",
    428: "Use Identity Header", 429: "Provide Referrer Identity", 430: "Flow Failed",
    433: "Anonymity Disallowed", 436: "Bad Identity-Info", 437: "Unsupported Certificate",
    438: "Invalid Identity Header", 439: "First Hop Lacks Outbound Support", 440: "Max-Breadth Exceeded",
    469: "Bad Info Package", 470: "Consent Needed", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    484: "Address Incomplete", 485: "Ambiguous", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 489: "Bad Event", 491: "Request Pending", 493: "Undecipherable",
    494: "Security Agreement Required", 500: "Server Internal Error", 501: "Not Implemented",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Server Time-out",
    505: "Version Not Supported", 513: "Message Too Large", 555: "Push Notification Service Not Supported",
    580: "Precondition Failure", 600: "Busy Everywhere", 603: "Decline",
    604: "Does Not Exist Anywhere", 606: "Not Acceptable", 607: "Unwanted", 608: "Rejected",
}

_ENC = "utf-8"
_BRANCH_RE = re.compile(r";[ \t]*branch[ \t]*=[ \t]*([^;, \t]+)", re.IGNORECASE)
_TAG_RE = re.compile(r";[ \t]*tag[ \t]*=[ \t]*([^;, \t]+)", re.IGNORECASE)


def _tag_of(value: str | None) -> str | None:
    """The tag parameter of a From/To value; parameters after ``>`` when the URI is bracketed."""
    if value is None:
        return None
    if "<" in value:
        value = value[value.rfind(">") + 1 :]
    m = _TAG_RE.search(value)
    return m.group(1) if m else None

_ERRORS = "surrogateescape"


def random_tag(rng: Callable[[int], bytes] = os.urandom, nbytes: int = 8) -> str:
    """A From/To tag or Call-ID part with ``nbytes`` of randomness (RFC 3261 §19.3: >= 32 bits)."""
    return rng(nbytes).hex()


class BodyPart:
    """One part of a multipart body: its own headers and content."""

    __slots__ = ("body", "headers")

    def __init__(self, headers: Headers, body: bytes) -> None:
        self.headers = headers
        self.body = body

    @property
    def content_type(self) -> str | None:
        v = self.headers.get("content-type")
        return parse_content_type(v).mime if v is not None else None

    def __repr__(self) -> str:
        return f"<BodyPart {self.content_type} {len(self.body)} bytes>"


class SipMessage(ABC):
    """Common part of :class:`SipRequest` and :class:`SipResponse`."""

    __slots__ = ("_body", "_cache", "_cache_ver", "_cache_hdrs", "_eol", "_raw", "_raw_hdrs", "_raw_ver",
                 "consumed", "headers", "version")

    def __init__(self, headers: Headers | None, body: bytes, version: str) -> None:
        self.headers = headers if headers is not None else Headers()
        self._body = bytes(body)
        self.version = version
        self._eol = "\r\n"
        self._raw: bytes | None = None
        self._raw_hdrs: Headers | None = None
        self._raw_ver = -1
        self._cache: dict[str, Any] = {}
        self._cache_ver = -1
        self._cache_hdrs: Headers | None = None
        self.consumed = 0
        """Bytes of the input this message was parsed from (0 for a built message)."""

    # -- body ---------------------------------------------------------------------------
    @property
    def body(self) -> bytes:
        return self._body

    @body.setter
    def body(self, value: bytes) -> None:
        self._body = bytes(value)
        self._raw = None

    # -- cached typed views -----------------------------------------------------------------
    def _cached(self, key: str, make: Callable[[], Any]) -> Any:
        h = self.headers
        if self._cache_hdrs is not h or self._cache_ver != h.version:
            self._cache = {}
            self._cache_hdrs = h
            self._cache_ver = h.version
        try:
            return self._cache[key]
        except KeyError:
            value = make()
            self._cache[key] = value
            return value

    def _single(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise SipParseError(f"missing {name} header", header=name)
        return value

    @property
    def vias(self) -> list[Via]:
        """Every Via value, top first (fields with several comma-separated values split)."""
        def make() -> list[Via]:
            out = []
            for v in self.headers.values("via"):
                out.append(parse_via(v))
            return out
        result: list[Via] = self._cached("vias", make)
        return result

    @property
    def top_via(self) -> Via:
        """The topmost Via (the one a transaction is matched on, RFC 3261 §17.2.3)."""
        def make() -> Via:
            first = self.headers.get("via")
            if first is None:
                raise SipParseError("missing Via header", header="via")
            return parse_via(split_list(first)[0])
        result: Via = self._cached("top_via", make)
        return result

    # -- dispatch fields: what routing a message needs, read without building typed views ------------
    @property
    def branch(self) -> str | None:
        """The top Via's branch parameter (transaction matching, RFC 3261 §17.2.3)."""
        def make() -> str | None:
            first = self.headers.get("via")
            if first is None:
                return None
            top = split_list(first)[0] if '"' in first else first.split(",", 1)[0]
            m = _BRANCH_RE.search(top)
            return m.group(1) if m else None
        result: str | None = self._cached("branch", make)
        return result

    @property
    def from_tag(self) -> str | None:
        result: str | None = self._cached("from-tag", lambda: _tag_of(self.headers.get("from")))
        return result

    @property
    def to_tag(self) -> str | None:
        result: str | None = self._cached("to-tag", lambda: _tag_of(self.headers.get("to")))
        return result

    @property
    def from_(self) -> NameAddr:
        result: NameAddr = self._cached("from", lambda: parse_name_addr(self._single("from"), header="from"))
        return result

    @property
    def to(self) -> NameAddr:
        result: NameAddr = self._cached("to", lambda: parse_name_addr(self._single("to"), header="to"))
        return result

    @property
    def call_id(self) -> str:
        def make() -> str:
            v = self._single("call-id").strip()
            if not v or any(c in v for c in " \t"):
                raise SipParseError(f"malformed Call-ID {v!r}", header="call-id")
            return v
        result: str = self._cached("call-id", make)
        return result

    @property
    def cseq(self) -> CSeq:
        result: CSeq = self._cached("cseq", lambda: parse_cseq(self._single("cseq")))
        return result

    @property
    def max_forwards(self) -> int | None:
        def make() -> int | None:
            v = self.headers.get("max-forwards")
            return None if v is None else parse_bounded_int(v, "max-forwards", 255)
        result: int | None = self._cached("max-forwards", make)
        return result

    @property
    def contacts(self) -> list[NameAddr]:
        def make() -> list[NameAddr]:
            return [parse_name_addr(v, header="contact") for v in self._list("contact")]
        result: list[NameAddr] = self._cached("contact", make)
        return result

    @property
    def routes(self) -> list[NameAddr]:
        def make() -> list[NameAddr]:
            return [parse_name_addr(v, header="route") for v in self._list("route")]
        result: list[NameAddr] = self._cached("route", make)
        return result

    @property
    def record_routes(self) -> list[NameAddr]:
        def make() -> list[NameAddr]:
            return [parse_name_addr(v, header="record-route") for v in self._list("record-route")]
        result: list[NameAddr] = self._cached("record-route", make)
        return result

    @property
    def content_type(self) -> ContentType | None:
        def make() -> ContentType | None:
            v = self.headers.get("content-type")
            return None if v is None else parse_content_type(v)
        result: ContentType | None = self._cached("content-type", make)
        return result

    @property
    def expires(self) -> int | None:
        def make() -> int | None:
            v = self.headers.get("expires")
            return None if v is None else parse_bounded_int(v, "expires")
        result: int | None = self._cached("expires", make)
        return result

    def parts(self) -> list[BodyPart]:
        """The parts of a multipart body (RFC 2046 §5.1), or ``[]`` for any other body.

        The body itself stays raw (round trips unchanged); parts are parsed on each call.
        """
        ct = self.content_type
        if ct is None or ct.type.lower() != "multipart":
            return []
        boundary = ct.param("boundary")
        if not boundary:
            raise SipParseError("multipart body without a boundary", header="content-type")
        delim = b"--" + boundary.encode(_ENC, _ERRORS)
        body = self._body
        out: list[BodyPart] = []
        pos = body.find(delim)
        if pos < 0:
            raise SipParseError("multipart boundary not found in body", header="content-type")
        while True:
            pos += len(delim)
            if body[pos : pos + 2] == b"--":
                return out
            line_end = body.find(b"\n", pos)
            if line_end < 0:
                raise SipParseError("unterminated multipart body", header="content-type")
            nxt = body.find(b"\r\n" + delim, line_end)
            if nxt < 0:
                nxt = body.find(b"\n" + delim, line_end)
                # no closing delimiter: the last part runs to the end (seen in real SIPREC traffic)
                end_part, next_pos = (nxt, nxt + 1) if nxt >= 0 else (len(body), -1)
            else:
                end_part, next_pos = nxt, nxt + 2
            chunk = body[line_end + 1 : end_part]
            sep = chunk.find(b"\r\n\r\n")
            sep_len = 4
            if sep < 0:
                sep, sep_len = chunk.find(b"\n\n"), 2
            if chunk.startswith(b"\r\n") or chunk.startswith(b"\n"):
                head_text, content = "", chunk[2 if chunk.startswith(b"\r\n") else 1 :]
            elif sep < 0:
                raise SipParseError("multipart part without a blank line after its headers", header="content-type")
            else:
                head_text, content = chunk[:sep].decode(_ENC, _ERRORS), chunk[sep + sep_len :]
            h = Headers()
            for line in head_text.replace("\r\n", "\n").split("\n"):
                if not line:
                    continue
                name, colon, value = line.partition(":")
                if not colon:
                    raise SipParseError(f"bad multipart header line {line!r}", header="content-type")
                h.add(name.strip(), value.strip())
            out.append(BodyPart(h, content))
            if next_pos < 0:
                return out
            pos = next_pos

    def _list(self, name: str) -> list[str]:
        values = self.headers.values(name)
        if any(not v for v in values):
            raise SipParseError(f"empty element in {name} list", header=name)
        return values

    def tokens(self, name: str) -> list[str]:
        """Option-tag / method lists (Require, Supported, Allow, ...), validated as tokens."""
        out = []
        for v in self._list(name):
            if TOKEN_RE.fullmatch(v) is None:
                raise SipParseError(f"bad token {v!r} in {name}", header=name)
            out.append(v)
        return out

    # -- validation ---------------------------------------------------------------------
    def validate(self) -> None:
        """Parse every header this package knows (and the Request-URI); raise on the first error.

        Missing or repeated mandatory headers are not syntax errors; :func:`sipcore.sanity_check`
        rejects those (RFC 4475 §3.1.2.18, §3.1.2.19).
        """
        h = self.headers
        self.vias  # noqa: B018  (parse for its errors)
        for name in ("from", "to", "call-id", "cseq"):
            if name in h:
                getattr(self, {"from": "from_", "call-id": "call_id"}.get(name, name))
        self.max_forwards  # noqa: B018
        self.contacts  # noqa: B018
        self.routes  # noqa: B018
        self.record_routes  # noqa: B018
        self.content_type  # noqa: B018
        self.expires  # noqa: B018
        for name in ("require", "proxy-require", "supported", "unsupported", "allow"):
            if name in h:
                self.tokens(name)
        for v in h.get_all("date"):
            parse_date(v)
        for v in h.get_all("retry-after"):
            parse_retry_after(v)
        for v in h.values("warning"):
            for item in split_list(v):
                parse_warning(item)
        for name in ("min-expires", "rseq"):
            for v in h.get_all(name):
                parse_bounded_int(v, name)
        for name in ("reply-to", "refer-to"):
            for v in h.values(name):
                parse_name_addr(v, header=name)
        for v in h.get_all("content-length"):
            parse_bounded_int(v, "content-length")

    # -- serialising --------------------------------------------------------------------
    @abstractmethod
    def _start_line(self) -> str: ...

    def __bytes__(self) -> bytes:
        if self._raw is not None and self._raw_hdrs is self.headers and self._raw_ver == self.headers.version:
            return self._raw
        out = [self._start_line()]
        body = self._body
        clen = str(len(body))
        have_cl = False
        h = self.headers
        for key, name, value, raw in zip(h._keys, h._names, h._values, h._raw, strict=True):
            if key == "content-length":
                if have_cl:
                    continue
                have_cl = True
                if value.strip() != clen:
                    out.append(f"{name}: {clen}")
                    continue
            out.append(raw if raw is not None else f"{name}: {value}")
        if not have_cl:
            out.append(f"Content-Length: {clen}")
        eol = self._eol
        return (eol.join(out) + eol + eol).encode(_ENC, _ERRORS) + body

    def to_bytes(self) -> bytes:
        return bytes(self)

    def __str__(self) -> str:
        return bytes(self).decode(_ENC, "replace")

    @abstractmethod
    def copy(self) -> SipMessage: ...


class SipRequest(SipMessage):
    """A SIP request. ``uri`` accepts a parsed URI or its text."""

    __slots__ = ("_method", "_uri", "_uri_text")

    def __init__(
        self,
        method: str,
        uri: Uri | str,
        headers: Headers | None = None,
        body: bytes = b"",
        version: str = "SIP/2.0",
    ) -> None:
        super().__init__(headers, body, version)
        if METHOD_RE.fullmatch(method) is None:
            raise LocalProtocolError(f"bad method {method!r}")
        self._method = method
        self._uri: Uri | None = None if isinstance(uri, str) else uri
        self._uri_text = uri if isinstance(uri, str) else str(uri)

    @property
    def method(self) -> str:
        return self._method

    @method.setter
    def method(self, value: str) -> None:
        self._method = value
        self._raw = None

    @property
    def uri(self) -> Uri:
        """The Request-URI, parsed on first access."""
        if self._uri is None:
            self._uri = parse_uri(self._uri_text)
        return self._uri

    @uri.setter
    def uri(self, value: Uri | str) -> None:
        self._uri = None if isinstance(value, str) else value
        self._uri_text = value if isinstance(value, str) else str(value)
        self._raw = None

    @property
    def uri_text(self) -> str:
        return self._uri_text

    def validate(self) -> None:
        uri = self.uri
        if isinstance(uri, SipUri) and uri.headers:
            # RFC 3261 §19.1.5: headers are not allowed in a Request-URI.
            raise SipParseError(f"Request-URI carries headers: {self._uri_text!r}")
        super().validate()

    def _start_line(self) -> str:
        return f"{self._method} {self._uri_text} {self.version}"

    def copy(self) -> SipRequest:
        req = SipRequest(self._method, self._uri_text, self.headers.copy(), self._body, self.version)
        req._eol = self._eol
        return req

    def __repr__(self) -> str:
        return f"<SipRequest {self._method} {self._uri_text}>"


class SipResponse(SipMessage):
    """A SIP response."""

    __slots__ = ("_reason", "_status")

    def __init__(
        self,
        status_code: int,
        reason: str | None = None,
        headers: Headers | None = None,
        body: bytes = b"",
        version: str = "SIP/2.0",
    ) -> None:
        super().__init__(headers, body, version)
        if not 100 <= status_code <= 699:
            raise LocalProtocolError(f"status code {status_code} outside 100..699")
        self._status = status_code
        self._reason = reason if reason is not None else REASON_PHRASES.get(status_code, "")

    @property
    def status_code(self) -> int:
        return self._status

    @status_code.setter
    def status_code(self, value: int) -> None:
        self._status = value
        self._raw = None

    @property
    def reason(self) -> str:
        return self._reason

    @reason.setter
    def reason(self, value: str) -> None:
        self._reason = value
        self._raw = None

    @property
    def is_provisional(self) -> bool:
        return self._status < 200

    @property
    def is_final(self) -> bool:
        return self._status >= 200

    @property
    def is_success(self) -> bool:
        return 200 <= self._status < 300

    def _start_line(self) -> str:
        return f"{self.version} {self._status} {self._reason}"

    def copy(self) -> SipResponse:
        resp = SipResponse(self._status, self._reason, self.headers.copy(), self._body, self.version)
        resp._eol = self._eol
        return resp

    def __repr__(self) -> str:
        return f"<SipResponse {self._status} {self._reason}>"


# -- parsing -------------------------------------------------------------------------------------
_FAST_METHODS = frozenset({"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "UPDATE", "INFO",
                           "MESSAGE", "REFER", "NOTIFY", "SUBSCRIBE", "PUBLISH"})
_VALID_STATUS = frozenset(str(i) for i in range(100, 700))


def _parse_start_line(line: str, headers: Headers, body: bytes) -> SipRequest | SipResponse:
    if line[:4].upper() == "SIP/":
        parts = line.split(" ", 2)
        if len(parts) < 2 or (parts[0] != "SIP/2.0" and VERSION_RE.fullmatch(parts[0]) is None):
            raise SipParseError(f"malformed status line {line!r}")
        if parts[1] not in _VALID_STATUS:
            raise SipParseError(f"malformed status code in {line!r}")
        resp = SipResponse.__new__(SipResponse)
        SipMessage.__init__(resp, headers, body, parts[0])
        resp._status = int(parts[1])
        resp._reason = parts[2] if len(parts) == 3 else ""
        return resp
    parts = line.split(" ")
    if len(parts) != 3 or not all(parts):
        raise SipParseError(f"malformed request line {line!r} (need Method SP Request-URI SP SIP-Version)")
    method, uri, version = parts
    if method not in _FAST_METHODS and METHOD_RE.fullmatch(method) is None:
        raise SipParseError(f"bad method {method!r}")
    if version != "SIP/2.0" and VERSION_RE.fullmatch(version) is None:
        raise SipParseError(f"bad SIP-Version {version!r}")
    if "\t" in uri:
        raise SipParseError(f"whitespace in Request-URI {uri!r}")
    req = SipRequest.__new__(SipRequest)
    SipMessage.__init__(req, headers, body, version)
    req._method = method
    req._uri = None
    req._uri_text = uri
    return req


def parse_message(data: bytes, *, strict: bool = False, max_size: int = MAX_MESSAGE_SIZE) -> SipRequest | SipResponse:
    """Parse one SIP message from a datagram (or a framed stream chunk).

    Raises :class:`SipParseError` only. With ``strict=True`` every known header is parsed
    too (:meth:`SipMessage.validate`).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError("parse_message needs bytes")
    data = bytes(data)
    if len(data) > max_size:
        raise SipParseError(f"message of {len(data)} bytes exceeds {max_size}", 513)
    start = 0
    n = len(data)
    while start < n and data[start] in (13, 10):  # RFC 3261 §7.5: ignore CRLFs before the start line
        start += 1
    if start >= n:
        raise SipParseError("empty message")
    end = data.find(b"\r\n\r\n", start)
    eol = "\r\n"
    if end < 0:
        lf = data.find(b"\n\n", start)
        if lf >= 0 and data.find(b"\r\n", start, lf) < 0:
            end, eol = lf, "\n"
        elif data.endswith(b"\r\n"):
            # Header block not terminated by an empty line: accept the whole datagram as head
            # only when it ends in CRLF and has no body (RFC 4475 baddn has no blank line).
            end = n - 2
        else:
            raise SipParseError("no empty line after the header fields")
    body_start = end + 2 * len(eol)
    head = data[start:end].decode(_ENC, _ERRORS)
    lines = head.split(eol)

    body_lines = lines[1:]
    cache = _canonical_cache
    keys: list[str] = []
    names: list[str] = []
    values: list[str] = []
    raws: list[str | None] = []
    if f"{eol} " not in head and f"{eol}\t" not in head:
        # fast path (no folding): C-level splitting, names already seen once
        parts = [line.partition(":") for line in body_lines]
        names = [p[0] for p in parts]
        fast_keys = [cache.get(n) for n in names]
        if None not in fast_keys and all(p[1] for p in parts):
            keys = fast_keys  # type: ignore[assignment]
            values = [p[2].strip(" \t") for p in parts]
            raws = list(body_lines)
        else:
            names = []
    if not raws and body_lines:
        for line in body_lines:
            name, colon, value = line.partition(":")
            first = line[:1]
            if first == " " or first == "\t":
                if not keys:
                    raise SipParseError("continuation line before the first header field")
                cont = line.strip(" \t")
                values[-1] = f"{values[-1]} {cont}" if values[-1] else cont
                raws[-1] = f"{raws[-1]}{eol}{line}"
                continue
            if not colon or not name:
                raise SipParseError(f"header line without a colon: {line[:60]!r}")
            key = cache.get(name)
            if key is None:
                name = name.rstrip(" \t")
                key = canonical_name(name)
                if key is None:
                    raise SipParseError(f"bad header name {name!r}")
            keys.append(key)
            names.append(name)
            values.append(value.strip(" \t"))
            raws.append(line)
    if eol == "\r\n" and (head.count("\r") != len(lines) - 1 or head.count("\n") != len(lines) - 1):
        raise SipParseError("bare CR or LF inside the header block")
    headers = Headers._from_parsed(keys, names, values, raws)

    body_avail = n - body_start if body_start <= n else 0
    clens = [values[i] for i, k in enumerate(keys) if k == "content-length"] if "content-length" in keys else None
    if clens:
        lens = set()
        for v in clens:
            vs = v.strip()
            if not vs.isdigit() or not vs.isascii():
                raise SipParseError(f"malformed Content-Length {v!r}", header="content-length")
            lens.add(int(vs))
        if len(lens) > 1:
            raise SipParseError("conflicting Content-Length values", header="content-length")
        clen = lens.pop()
        if clen > body_avail:
            raise SipParseError(
                f"Content-Length {clen} exceeds the {body_avail} body bytes received", header="content-length"
            )
        body_end = body_start + clen
    else:
        body_end = n if body_start <= n else end + 2
    msg = _parse_start_line(lines[0], headers, data[body_start:body_end] if body_end > body_start else b"")
    msg._eol = eol
    consumed_end = max(body_end, min(body_start, n))
    msg._raw = data[start:consumed_end]
    msg._raw_hdrs = headers
    msg._raw_ver = headers.version
    msg.consumed = consumed_end
    if strict:
        msg.validate()
    return msg


# -- responses ---------------------------------------------------------------------------------
_COPY_TO_RESPONSE = ("via", "from", "call-id", "cseq")
_DIALOG_CREATING = frozenset({"INVITE", "SUBSCRIBE", "REFER"})
"""Methods whose 101-299 responses to an out-of-dialog request establish a dialog (RFC 3261 §12.1,
RFC 6665 §4.1.2.1, RFC 3515 §2.4.4 with its implicit subscription)."""


def make_response(
    request: SipRequest,
    status_code: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    content_type: str | None = None,
    rng: Callable[[int], bytes] | None = None,
) -> SipResponse:
    """Build a response to ``request`` per RFC 3261 §8.2.6.

    Via (all of them, in order), From, Call-ID and CSeq are copied; To is copied with
    ``to_tag`` added when the request's To has no tag and the response is not 100 (pass
    ``rng`` instead to generate a fresh tag, §19.3). 100 Trying copies Timestamp (§8.2.6.1).

    A response that establishes a dialog (101-299 to an out-of-dialog INVITE, SUBSCRIBE or
    REFER) also copies every Record-Route value, in order (§12.1.1): without them the peer's
    ACK, BYE or PRACK would bypass the proxies that asked to stay in the path. A caller that
    passes its own Record-Route in ``headers`` keeps exactly those instead.
    """
    if to_tag is None and rng is not None:
        to_tag = random_tag(rng)
    h = Headers()
    src = request.headers
    for key, name, value in zip(src._keys, src._names, src._values, strict=True):
        if key in _COPY_TO_RESPONSE:
            h.add(name, value)
    to_value = src.get("to")
    copy_rr = (100 < status_code < 300 and request.method in _DIALOG_CREATING and "record-route" in src
               and not any(name.lower() == "record-route" for name, _ in headers or ()))
    if to_value is not None:
        if (to_tag and status_code != 100) or copy_rr:
            try:
                has_tag = request.to.tag is not None
            except SipParseError:
                has_tag = True
            copy_rr = copy_rr and not has_tag  # in-dialog requests keep the route set (§12.2)
            if to_tag and status_code != 100 and not has_tag:
                to_value = f"{to_value};tag={to_tag}"
        h.add("To", to_value)
    if status_code == 100:
        ts = src.get("timestamp")
        if ts is not None:
            h.add("Timestamp", ts)
    if copy_rr:
        for key, name, value in zip(src._keys, src._names, src._values, strict=True):
            if key == "record-route":
                h.add(name, value)
    for name, value in headers or ():
        h.add(name, value)
    if content_type is not None:
        h.add("Content-Type", content_type)
    h.add("Content-Length", str(len(body)))
    return SipResponse(status_code, reason, h, body, request.version if request.version else "SIP/2.0")
