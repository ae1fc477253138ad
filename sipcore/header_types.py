"""Typed views of the core SIP headers (RFC 3261 §20, §25).

Each ``parse_x(value: str)`` returns a small slotted dataclass and raises
:class:`SipParseError` (400) on malformed input; ``str(x)`` formats it back. Messages
parse these lazily on first access and cache the result.

Covered here: Via (sent-protocol with LWS around slashes, sent-by with IPv6, branch,
received, rport, maddr, ttl), name-addr / addr-spec headers (From, To, Contact incl. ``*``,
Route, Record-Route, Refer-To, P-Asserted-Identity), CSeq, numeric headers with their RFC
bounds (Max-Forwards, Expires, Content-Length), Content-Type, Date (RFC 1123, GMT only),
Retry-After, Warning. Further headers live in :mod:`sipcore.header_extra`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import SipParseError
from .grammar import TOKEN_CHARS, TOKEN_RE, unquote
from .uri import AbsoluteUri, SipUri, TelUri, Uri, parse_host_port, parse_uri

__all__ = [
    "CSeq",
    "ContentType",
    "NameAddr",
    "Params",
    "Via",
    "format_header_params",
    "get_param",
    "parse_bounded_int",
    "parse_content_type",
    "parse_cseq",
    "parse_date",
    "parse_header_params",
    "parse_name_addr",
    "parse_retry_after",
    "parse_via",
    "parse_warning",
]


def _digits(text: str) -> bool:
    """ASCII digits only (str.isdigit also accepts superscripts and other scripts)."""
    return text.isascii() and text.isdigit()

Params = list[tuple[str, str | None]]
MAX_UINT32 = 2**32 - 1


def get_param(params: Params, name: str) -> str | None:
    low = name.lower()
    for k, v in params:
        if k.lower() == low:
            return v
    return None


def _split_semicolons(text: str) -> list[str]:
    """Split at ';' outside quoted strings."""
    if '"' not in text:
        return text.split(";")
    out: list[str] = []
    cur: list[str] = []
    in_q = False
    i = 0
    while i < len(text):
        ch = text[i]
        if in_q and ch == "\\" and i + 1 < len(text):
            cur.append(text[i : i + 2])
            i += 2
            continue
        if ch == '"':
            in_q = not in_q
        if ch == ";" and not in_q:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    if in_q:
        raise SipParseError("unterminated quoted string in parameters")
    out.append("".join(cur))
    return out


_SIMPLE_PARAMS_RE = re.compile(rf"(?:[{TOKEN_CHARS}]+(?:=[{TOKEN_CHARS}:\[\]]+)?)(?:;[{TOKEN_CHARS}]+(?:=[{TOKEN_CHARS}:\[\]]+)?)*")


def parse_header_params(text: str, *, what: str = "header") -> Params:
    """Parameters after a header value's first ';' (generic-param, RFC 3261 §25.1)."""
    if _SIMPLE_PARAMS_RE.fullmatch(text) is not None:  # fast path: no LWS, no quotes
        return [(k, v if eq else None) for k, eq, v in (p.partition("=") for p in text.split(";"))]
    out: Params = []
    for part in _split_semicolons(text):
        name, eq, value = part.partition("=")
        name = name.strip()
        if not name or TOKEN_RE.fullmatch(name) is None:
            raise SipParseError(f"bad parameter {part.strip()!r} in {what}", header=what)
        if eq:
            value = value.strip()
            if not value:
                raise SipParseError(f"empty value for parameter {name!r} in {what}", header=what)
            out.append((name, value))
        else:
            out.append((name, None))
    return out


def format_header_params(params: Params) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


# -- Via -------------------------------------------------------------------------------
_VIA_RE = re.compile(r"\s*([^/\s]+)\s*/\s*([^/\s]+)\s*/\s*([^\s;]+)\s+([^;]+?)\s*(?:;(.*))?\s*$", re.DOTALL)


class _WithParams:
    """``;name=value`` parameters of a header value, looked up case-insensitively."""

    __slots__ = ()
    params: Params

    def param(self, name: str) -> str | None:
        return get_param(self.params, name)

    def has_param(self, name: str) -> bool:
        low = name.lower()
        return any(k.lower() == low for k, _ in self.params)

    def set_param(self, name: str, value: str | None) -> None:
        """Replace the parameter's value (kept at its place), or append it."""
        low = name.lower()
        for i, (k, _) in enumerate(self.params):
            if k.lower() == low:
                self.params[i] = (k, value)
                return
        self.params.append((name, value))


@dataclass(slots=True)
class Via(_WithParams):
    """One Via value: ``SIP/2.0/UDP host:port;branch=...``."""

    transport: str
    host: str
    port: int | None = None
    params: Params = field(default_factory=list)
    protocol: str = "SIP/2.0"

    @property
    def branch(self) -> str | None:
        return self.param("branch")

    @property
    def received(self) -> str | None:
        return self.param("received")

    @property
    def rport(self) -> int | None:
        """The rport value filled in by the server (RFC 3581), None if absent or empty."""
        v = self.param("rport")
        return int(v) if v and _digits(v) else None

    @property
    def maddr(self) -> str | None:
        return self.param("maddr")

    @property
    def ttl(self) -> int | None:
        v = self.param("ttl")
        return int(v) if v and _digits(v) else None

    @property
    def sent_by(self) -> tuple[str, int | None]:
        return self.host, self.port

    def __str__(self) -> str:
        hp = self.host if self.port is None else f"{self.host}:{self.port}"
        return f"{self.protocol}/{self.transport} {hp}{format_header_params(self.params)}"


def parse_via(value: str) -> Via:
    m = _VIA_RE.match(value)
    if m is None:
        raise SipParseError(f"malformed Via {value!r}", header="via")
    name, version, transport, sent_by, ptext = m.groups()
    if " " in sent_by or "\t" in sent_by:
        sent_by = re.sub(r"\s*:\s*", ":", sent_by.strip())
    host, port = parse_host_port(sent_by)
    params = parse_header_params(ptext, what="via") if ptext is not None else []
    for k, v in params:
        lk = k.lower()
        if lk == "ttl" and (v is None or not _digits(v) or int(v) > 255):
            raise SipParseError(f"bad Via ttl {v!r}", header="via")
        if lk == "rport" and v is not None and (not _digits(v) or int(v) > 65535):
            raise SipParseError(f"bad Via rport {v!r}", header="via")
    return Via(transport=transport, host=host, port=port, params=params, protocol=f"{name}/{version}")


# -- name-addr / addr-spec ---------------------------------------------------------------
@dataclass(slots=True)
class NameAddr(_WithParams):
    """``"Display" <uri>;params`` (or an addr-spec, or the Contact wildcard ``*``)."""

    uri: Uri | None
    display_name: str | None = None
    params: Params = field(default_factory=list)
    bracketed: bool = True
    star: bool = False

    @property
    def tag(self) -> str | None:
        return self.param("tag")

    @property
    def expires(self) -> int | None:
        v = self.param("expires")
        return int(v) if v is not None and _digits(v) else None

    @property
    def q(self) -> float | None:
        v = self.param("q")
        try:
            return float(v) if v is not None else None
        except ValueError:
            return None

    @property
    def sip_uri(self) -> SipUri:
        if not isinstance(self.uri, SipUri):
            raise SipParseError(f"not a SIP URI: {self.uri}")
        return self.uri

    def __str__(self) -> str:
        if self.star:
            return "*"
        params = format_header_params(self.params)
        if not self.bracketed and self.display_name is None:
            return f"{self.uri}{params}"
        if self.display_name is None:
            return f"<{self.uri}>{params}"
        dn = self.display_name
        if TOKEN_RE.fullmatch(dn.replace(" ", "")) is None or not dn:
            dn = '"' + dn.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return f"{dn} <{self.uri}>{params}"


def _parse_display_name(text: str) -> str | None:
    text = text.strip()
    if not text:
        return None
    if text.startswith('"'):
        i = 1
        while i < len(text):
            if text[i] == "\\":
                i += 2
                continue
            if text[i] == '"':
                break
            i += 1
        if i >= len(text) or text[i] != '"':
            raise SipParseError("unterminated quoted display name")
        if text[i + 1 :].strip():
            raise SipParseError(f"junk after quoted display name in {text!r}")
        return unquote(text[: i + 1])
    for word in text.split():
        if TOKEN_RE.fullmatch(word) is None:
            raise SipParseError(f"display name {text!r} must be quoted")
    return " ".join(text.split())


def parse_name_addr(value: str, *, header: str = "name-addr") -> NameAddr:
    """Parse a From/To/Contact/Route-style value."""
    value = value.strip()
    if value == "*":
        return NameAddr(uri=None, star=True, bracketed=False)
    # find '<' outside quotes
    lt = value.find("<")
    in_q = False
    i = 0
    if lt >= 0 and '"' not in value[:lt]:
        i = len(value)  # fast path: no quoted display name before '<'
    else:
        lt = -1
    while i < len(value):
        ch = value[i]
        if in_q:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_q = False
        elif ch == '"':
            in_q = True
        elif ch == "<":
            lt = i
            break
        i += 1
    if in_q:
        raise SipParseError(f"unterminated quote in {header}", header=header)
    if lt >= 0:
        gt = value.find(">", lt)
        if gt < 0:
            raise SipParseError(f"missing '>' in {header}", header=header)
        display = _parse_display_name(value[:lt])
        uri = parse_uri(value[lt + 1 : gt])  # no LWS inside <> (RFC 4475 §3.1.2.15)
        rest = value[gt + 1 :].strip()
        bracketed = True
    else:
        uri_text, semi, ptail = value.partition(";")
        uri_text = uri_text.strip()
        if not uri_text or any(c in uri_text for c in " \t,?\""):
            raise SipParseError(f"malformed addr-spec {value!r} in {header}", header=header)
        display = None
        uri = parse_uri(uri_text)
        rest = ";" + ptail if semi else ""
        bracketed = False
    params: Params = []
    if rest:
        if not rest.startswith(";"):
            raise SipParseError(f"junk after URI in {header}: {rest!r}", header=header)
        params = parse_header_params(rest[1:], what=header)
    return NameAddr(uri=uri, display_name=display, params=params, bracketed=bracketed)


# -- CSeq and numbers --------------------------------------------------------------------
@dataclass(slots=True, frozen=True)
class CSeq:
    seq: int
    method: str

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


def parse_bounded_int(value: str, header: str, maximum: int = MAX_UINT32) -> int:
    v = value.strip()
    if not _digits(v) or not v.isascii():
        raise SipParseError(f"{header} is not a number: {value!r}", header=header)
    n = int(v)
    if n > maximum:
        raise SipParseError(f"{header} {n} exceeds {maximum}", header=header)
    return n


def parse_cseq(value: str) -> CSeq:
    parts = value.split()
    if len(parts) != 2 or TOKEN_RE.fullmatch(parts[1]) is None:
        raise SipParseError(f"malformed CSeq {value!r}", header="cseq")
    return CSeq(parse_bounded_int(parts[0], "cseq"), parts[1])


@dataclass(slots=True, frozen=True)
class ContentType:
    type: str
    subtype: str
    params: tuple[tuple[str, str | None], ...] = ()

    @property
    def mime(self) -> str:
        return f"{self.type}/{self.subtype}".lower()

    def param(self, name: str) -> str | None:
        v = get_param(list(self.params), name)
        return unquote(v) if v is not None else None

    def __str__(self) -> str:
        return f"{self.type}/{self.subtype}{format_header_params(list(self.params))}"


def parse_content_type(value: str) -> ContentType:
    main, semi, ptext = value.partition(";")
    t, slash, s = main.strip().partition("/")
    t, s = t.strip(), s.strip()
    if not slash or TOKEN_RE.fullmatch(t) is None or TOKEN_RE.fullmatch(s) is None:
        raise SipParseError(f"malformed Content-Type {value!r}", header="content-type")
    params = tuple(parse_header_params(ptext, what="content-type")) if semi else ()
    return ContentType(t, s, params)


_DATE_RE = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"[0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT"
)


def parse_date(value: str) -> str:
    """Validate an RFC 1123 date; SIP allows only GMT (RFC 3261 §20.17)."""
    v = value.strip()
    if _DATE_RE.fullmatch(v) is None:
        raise SipParseError(f"malformed Date {value!r} (RFC 1123, GMT only)", header="date")
    return v


def parse_retry_after(value: str) -> tuple[int, Params]:
    """``delta-seconds [comment] *(;param)`` -> (seconds, params)."""
    main, semi, ptext = value.partition(";")
    main = re.sub(r"\(.*\)", "", main).strip()
    secs = parse_bounded_int(main, "retry-after")
    params = parse_header_params(ptext, what="retry-after") if semi else []
    for k, v in params:
        if k.lower() == "duration":
            parse_bounded_int(v or "", "retry-after")
    return secs, params


_WARNING_RE = re.compile(r'\s*([0-9]{3})\s+(\S+)\s+(".*")\s*', re.DOTALL)


def parse_warning(value: str) -> tuple[int, str, str]:
    """``warn-code SP warn-agent SP warn-text`` (RFC 3261 §20.43)."""
    m = _WARNING_RE.fullmatch(value)
    if m is None:
        raise SipParseError(f"malformed Warning {value!r}", header="warning")
    return int(m.group(1)), m.group(2), unquote(m.group(3))


def uri_scheme(uri: Uri | None) -> str:
    if isinstance(uri, SipUri | TelUri | AbsoluteUri):
        return uri.scheme.lower()
    return ""
