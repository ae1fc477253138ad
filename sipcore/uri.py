"""SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966, RFC 5118 for IPv6 references).

``parse_uri(text)`` returns a :class:`SipUri`, :class:`TelUri` or :class:`AbsoluteUri`
(any other scheme, kept verbatim so a UAS can answer 416). Components are stored as
written (escapes kept), so ``str(parse_uri(s)) == s``; comparison follows RFC 3261
§19.1.4, which unescapes first:

* scheme, user, password must match (user/password case-sensitively),
* host case-insensitively; an absent port differs from an explicit 5060,
* ``user``, ``ttl``, ``method``, ``maddr``, ``transport`` must match if either side has them,
* other parameters must match only when both sides have them,
* headers must match exactly (as a set).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import SipParseError
from .grammar import HOST_RE, PORT_RE, SCHEME_RE

__all__ = ["AbsoluteUri", "SipUri", "TelUri", "Uri", "format_params", "parse_params", "parse_uri", "unescape"]

Params = list[tuple[str, str | None]]

_ESC_RE = re.compile(r"%([0-9A-Fa-f]{2})")
_BAD_URI_CHARS = re.compile(r"[\s<>\"]")
_IPV6_BODY = re.compile(r"[0-9A-Fa-f:.]+")


def unescape(text: str) -> str:
    """Resolve %HH escapes (RFC 3261 §19.1.4: compare unescaped)."""
    if "%" not in text:
        return text
    return _ESC_RE.sub(lambda m: chr(int(m.group(1), 16)), text)


def parse_params(text: str, *, what: str = "URI") -> Params:
    """``;a=b;c`` (text after the first ';') into an ordered list; empty names are errors."""
    out: Params = []
    for part in text.split(";"):
        name, eq, value = part.partition("=")
        name = name.strip()
        if not name:
            raise SipParseError(f"empty parameter in {what}")
        out.append((name, value.strip() if eq else None))
    return out


def format_params(params: Params) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


def _get(params: Params, name: str) -> str | None:
    low = name.lower()
    for k, v in params:
        if k.lower() == low:
            return v
    return None


def _has(params: Params, name: str) -> bool:
    low = name.lower()
    return any(k.lower() == low for k, _ in params)


@dataclass(slots=True, eq=False)
class SipUri:
    """``sip:`` or ``sips:`` URI. ``host`` keeps IPv6 brackets; ``port`` is None when absent."""

    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: Params = field(default_factory=list)
    headers: list[tuple[str, str]] = field(default_factory=list)
    scheme: str = "sip"

    @property
    def secure(self) -> bool:
        return self.scheme.lower() == "sips"

    def param(self, name: str) -> str | None:
        """Value of a URI parameter (None if absent or valueless; see :meth:`has_param`)."""
        return _get(self.params, name)

    def has_param(self, name: str) -> bool:
        return _has(self.params, name)

    def with_params(self, **params: str | None) -> SipUri:
        """A copy with parameters set (``None`` = flag parameter)."""
        kept = [(k, v) for k, v in self.params if k.lower() not in params]
        return SipUri(
            host=self.host, user=self.user, password=self.password, port=self.port,
            params=kept + list(params.items()), headers=list(self.headers), scheme=self.scheme,
        )

    @property
    def transport(self) -> str | None:
        t = self.param("transport")
        return t.lower() if t else None

    @property
    def host_port(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def aor(self) -> str:
        """Address of record: ``sip:user@host`` without port, params or headers, lower-case host."""
        user = f"{unescape(self.user)}@" if self.user else ""
        return f"{self.scheme.lower()}:{user}{self.host.lower()}"

    def __str__(self) -> str:
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(self.user)
            if self.password is not None:
                parts.append(":" + self.password)
            parts.append("@")
        parts.append(self.host)
        if self.port is not None:
            parts.append(f":{self.port}")
        parts.append(format_params(self.params))
        if self.headers:
            parts.append("?" + "&".join(f"{k}={v}" for k, v in self.headers))
        return "".join(parts)

    def __repr__(self) -> str:
        return f"SipUri({str(self)!r})"

    def __hash__(self) -> int:
        return hash((self.scheme.lower(), unescape(self.user or ""), self.host.lower(), self.port))

    def __eq__(self, other: object) -> bool:
        """RFC 3261 §19.1.4 URI comparison."""
        if not isinstance(other, SipUri):
            return NotImplemented
        if self.scheme.lower() != other.scheme.lower():
            return False
        if unescape(self.user or "") != unescape(other.user or "") or (self.user is None) != (other.user is None):
            return False
        if unescape(self.password or "") != unescape(other.password or ""):
            return False
        if self.host.lower() != other.host.lower() or self.port != other.port:
            return False
        for name in ("user", "ttl", "method", "maddr", "transport"):
            a_has, b_has = self.has_param(name), other.has_param(name)
            if a_has != b_has:
                return False
            if a_has and unescape(self.param(name) or "").lower() != unescape(other.param(name) or "").lower():
                return False
        mine = {k.lower(): unescape(v or "").lower() for k, v in self.params}
        theirs = {k.lower(): unescape(v or "").lower() for k, v in other.params}
        for k in mine.keys() & theirs.keys():
            if mine[k] != theirs[k]:
                return False
        h1 = {(k.lower(), unescape(v)) for k, v in self.headers}
        h2 = {(k.lower(), unescape(v)) for k, v in other.headers}
        return h1 == h2


@dataclass(slots=True, eq=False)
class TelUri:
    """``tel:`` URI (RFC 3966): a number plus parameters."""

    number: str
    params: Params = field(default_factory=list)
    scheme: str = "tel"

    def param(self, name: str) -> str | None:
        return _get(self.params, name)

    def __str__(self) -> str:
        return f"{self.scheme}:{self.number}{format_params(self.params)}"

    def __repr__(self) -> str:
        return f"TelUri({str(self)!r})"

    def __hash__(self) -> int:
        return hash(self._digits())

    def _digits(self) -> str:
        return re.sub(r"[-.()]", "", self.number)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TelUri):
            return NotImplemented
        return self._digits() == other._digits() and {(k.lower(), (v or "").lower()) for k, v in self.params} == {
            (k.lower(), (v or "").lower()) for k, v in other.params
        }


@dataclass(slots=True, eq=True, frozen=True)
class AbsoluteUri:
    """A URI of a scheme SIP does not route (``http:``, ``mailto:``, ...), kept verbatim."""

    scheme: str
    rest: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.rest}"


Uri = SipUri | TelUri | AbsoluteUri


def _parse_host_port(text: str) -> tuple[str, int | None]:
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise SipParseError(f"unterminated IPv6 reference in {text!r}")
        host = text[: end + 1]
        if _IPV6_BODY.fullmatch(host[1:-1]) is None or host.count(":") < 2:
            raise SipParseError(f"bad IPv6 reference {host!r}")
        rest = text[end + 1 :]
        if not rest:
            return host, None
        if not rest.startswith(":"):
            raise SipParseError(f"junk after IPv6 reference in {text!r}")
        port_s = rest[1:]
    else:
        host, colon, port_s = text.partition(":")
        if not colon:
            port_s = ""
        elif ":" in port_s:
            raise SipParseError(f"IPv6 address without [ ] in {text!r} (RFC 5118 §4.6)")
        if not host or HOST_RE.fullmatch(host) is None:
            raise SipParseError(f"bad host {host!r}")
        if not colon:
            return host, None
    if PORT_RE.fullmatch(port_s) is None or int(port_s) > 65535:
        raise SipParseError(f"bad port {port_s!r}")
    return host, int(port_s)


def parse_host_port(text: str) -> tuple[str, int | None]:
    """``host[:port]`` with bracketed IPv6 (used by Via sent-by)."""
    return _parse_host_port(text)


def _parse_sip(scheme: str, rest: str) -> SipUri:
    # userinfo may hold '?', ';', '&' ...; no '@' may follow it (params and headers exclude it)
    at = rest.rfind("@")
    user: str | None = None
    password: str | None = None
    if at >= 0:
        userinfo, tail = rest[:at], rest[at + 1 :]
        user, colon, pw = userinfo.partition(":")
        if colon:
            password = pw
        if not user:
            raise SipParseError("empty user part in SIP URI")
    else:
        tail = rest
    hostpart, qmark, hdrs = tail.partition("?")
    headers: list[tuple[str, str]] = []
    if qmark:
        for item in hdrs.split("&"):
            k, eq, v = item.partition("=")
            if not k or not eq:
                raise SipParseError(f"bad URI header {item!r}")
            headers.append((k, v))
    hp, semi, ptext = hostpart.partition(";")
    host, port = _parse_host_port(hp)
    params = parse_params(ptext) if semi else []
    return SipUri(host=host, user=user, password=password, port=port, params=params, headers=headers, scheme=scheme)


_uri_cache: dict[str, SipUri | TelUri | AbsoluteUri] = {}


def parse_uri(text: str) -> Uri:
    """Parse a URI; raises :class:`SipParseError` (status 400) when malformed."""
    if not text or _BAD_URI_CHARS.search(text):
        raise SipParseError(f"malformed URI {text!r}")
    scheme, colon, rest = text.partition(":")
    if not colon or not rest or SCHEME_RE.fullmatch(scheme) is None:
        raise SipParseError(f"malformed URI {text!r}")
    low = scheme.lower()
    if low in ("sip", "sips"):
        return _parse_sip(scheme, rest)
    if low == "tel":
        number, semi, ptext = rest.partition(";")
        if not number:
            raise SipParseError("empty tel number")
        return TelUri(number=number, params=parse_params(ptext) if semi else [], scheme=scheme)
    return AbsoluteUri(scheme=scheme, rest=rest)
