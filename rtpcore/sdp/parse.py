"""SDP parser (RFC 8866 §5, §9): text or bytes in, :class:`SessionDescription` out.

Liberal in what it accepts from real peers:

* LF-only or CRLF line ends, trailing spaces/tabs, blank lines, a UTF-8 BOM;
* lines in any order inside the session part or inside one media section (the
  serializer writes the RFC order back);
* a missing ``s=`` (taken as ``s=-``) or ``t=`` (taken as ``t=0 0``);
* bytes that are not UTF-8 (kept as surrogate escapes, so ``to_bytes()`` returns them).

Strict where a wrong value would mislead the media layer: a line without ``=``, an
unknown type letter, a session-only line (``o= s= t= r= z= u= e= p= v=``) inside a media
section, a repeated singleton (``o= s= c= i= u= z= k=`` at session level), a bad port, a
bad ``c=``/``o=`` address or a non-numeric field where ABNF wants digits all raise
:class:`~rtpcore.errors.SdpParseError` with the 1-based line number. Input size, line
count and m= section count are capped by :class:`SdpLimits`. No other exception type
escapes.

Attribute *values* are not interpreted here (an unknown or odd attribute must not kill a
call, RFC 8866 §5.13); the typed accessors of the model parse them on demand and raise
the same :class:`SdpParseError` when one is malformed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import SdpParseError
from .grammar import check_address, is_digits, is_proto, is_token, parse_uint, require_token
from .model import Attribute, Bandwidth, Connection, MediaDescription, Origin, SessionDescription, Timing


@dataclass(frozen=True, slots=True)
class SdpLimits:
    """Caps applied before and during parsing; every buffer has a cap."""

    max_size: int = 256 * 1024
    """Largest accepted SDP, in bytes (or characters for ``str`` input)."""
    max_lines: int = 8192
    """Most lines accepted (a browser offer with 50 m= sections is ~2,000 lines)."""
    max_media: int = 256
    """Most m= sections accepted."""


DEFAULT_LIMITS = SdpLimits()

_TYPED_TIME_RE = re.compile(r"-?[0-9]{1,20}[dhms]?")
_SESSION_ONLY = frozenset("vosuepztr")
_MEDIA_SINGLETONS = frozenset("ik")


def parse_sdp(data: str | bytes, *, limits: SdpLimits = DEFAULT_LIMITS) -> SessionDescription:
    """Parse one SDP body. Raises only :class:`~rtpcore.errors.SdpParseError`."""
    if isinstance(data, str):
        text = data
        if len(text) > limits.max_size:
            raise SdpParseError(f"SDP larger than {limits.max_size} characters")
    elif isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
        if len(raw) > limits.max_size:
            raise SdpParseError(f"SDP larger than {limits.max_size} bytes")
        text = raw.decode("utf-8", "surrogateescape")
    else:
        raise SdpParseError(f"SDP must be str or bytes, not {type(data).__name__}")
    if text.startswith("\ufeff"):
        text = text[1:]
    folded = text.replace("\r\n", "\n")
    lines = folded.split("\n")
    if len(lines) > limits.max_lines + 1:
        raise SdpParseError(f"SDP has more than {limits.max_lines} lines")
    # with CRLF folded, any CR or NUL left is illegal inside a line (RFC 8866 §5)
    return _Parser(limits).run(lines, suspicious="\r" in folded or "\x00" in folded)


class _Parser:
    __slots__ = ("limits", "seen", "origin", "session_name", "info", "uri", "emails", "phones",
                 "connection", "bandwidths", "timing", "zone", "key", "attributes", "media")

    def __init__(self, limits: SdpLimits) -> None:
        self.limits = limits
        self.seen: set[str] = set()
        self.origin: Origin | None = None
        self.session_name: str | None = None
        self.info: str | None = None
        self.uri: str | None = None
        self.emails: list[str] = []
        self.phones: list[str] = []
        self.connection: Connection | None = None
        self.bandwidths: list[Bandwidth] = []
        self.timing: list[Timing] = []
        self.zone: str | None = None
        self.key: str | None = None
        self.attributes: list[Attribute] = []
        self.media: list[MediaDescription] = []

    def run(self, lines: list[str], *, suspicious: bool) -> SessionDescription:
        started = False
        current: MediaDescription | None = None
        attrs = self.attributes
        media_seen: set[str] = set()
        for lineno, line in enumerate(lines, 1):
            if line.endswith((" ", "\t")):
                line = line.rstrip(" \t")
            if not line:
                continue
            if suspicious and ("\r" in line or "\x00" in line):
                raise SdpParseError("CR or NUL inside a line", line=lineno)
            if line[1:2] != "=":
                raise SdpParseError(f"expected '<type>=<value>', got {line[:40]!r}", line=lineno)
            kind = line[0]
            value = line[2:]
            if kind == "a" and started:
                name, sep, val = value.partition(":")
                if not (name.isascii() and name.replace("-", "").isalnum()) and not is_token(name):
                    raise SdpParseError(f"bad attribute name {name[:40]!r}", line=lineno)
                attrs.append((name, val if sep else None))
                continue
            if not started:
                if kind != "v":
                    raise SdpParseError("an SDP must start with v=", line=lineno)
                if value.strip() != "0":
                    raise SdpParseError(f"unsupported SDP version {value[:20]!r}", line=lineno)
                started = True
                self.seen.add("v")
                continue
            if kind == "m":
                if len(self.media) >= self.limits.max_media:
                    raise SdpParseError(f"more than {self.limits.max_media} m= sections", line=lineno)
                current = _parse_media(value, lineno)
                self.media.append(current)
                attrs = current.attributes
                media_seen = set()
                continue
            if current is None:
                self._session_line(kind, value, lineno)
                continue
            # inside a media section: only i= c= b= k= (and a=, handled above)
            if kind in _SESSION_ONLY:
                raise SdpParseError(f"{kind}= is not allowed inside a media section", line=lineno)
            if kind in _MEDIA_SINGLETONS:
                if kind in media_seen:
                    raise SdpParseError(f"repeated {kind}= in a media section", line=lineno)
                media_seen.add(kind)
                if kind == "i":
                    current.info = value
                else:
                    current.key = value
            elif kind == "c":
                current.connections.append(_parse_connection(value, lineno))
            elif kind == "b":
                current.bandwidths.append(_parse_bandwidth(value, lineno))
            else:
                raise SdpParseError(f"unknown line type {kind!r}", line=lineno)
        if not started:
            raise SdpParseError("empty SDP: no v= line")
        if self.origin is None:
            raise SdpParseError("missing o= line")
        return SessionDescription(
            origin=self.origin,
            session_name=self.session_name if self.session_name is not None else "-",
            info=self.info,
            uri=self.uri,
            emails=self.emails,
            phones=self.phones,
            connection=self.connection,
            bandwidths=self.bandwidths,
            timing=self.timing or [Timing()],
            zone=self.zone,
            key=self.key,
            attributes=self.attributes,
            media=self.media,
        )

    def _once(self, kind: str, lineno: int) -> None:
        if kind in self.seen:
            raise SdpParseError(f"repeated {kind}= line", line=lineno)
        self.seen.add(kind)

    def _session_line(self, kind: str, value: str, lineno: int) -> None:
        if kind == "o":
            self._once(kind, lineno)
            self.origin = _parse_origin(value, lineno)
        elif kind == "s":
            self._once(kind, lineno)
            self.session_name = value
        elif kind == "c":
            self._once(kind, lineno)
            self.connection = _parse_connection(value, lineno)
        elif kind == "t":
            self.timing.append(_parse_timing(value, lineno))
        elif kind == "b":
            self.bandwidths.append(_parse_bandwidth(value, lineno))
        elif kind == "r":
            if not self.timing:
                raise SdpParseError("r= before any t=", line=lineno)
            f = value.split()
            if len(f) < 3 or any(_TYPED_TIME_RE.fullmatch(x) is None or x.startswith("-") for x in f):
                raise SdpParseError("r=: expected '<interval> <duration> <offset>...'", line=lineno)
            last = self.timing[-1]
            self.timing[-1] = Timing(last.start, last.stop, (*last.repeats, value))
        elif kind == "i":
            self._once(kind, lineno)
            self.info = value
        elif kind == "u":
            self._once(kind, lineno)
            self.uri = value
        elif kind == "e":
            self.emails.append(value)
        elif kind == "p":
            self.phones.append(value)
        elif kind == "z":
            self._once(kind, lineno)
            f = value.split()
            if not f or len(f) % 2 or any(_TYPED_TIME_RE.fullmatch(x) is None for x in f):
                raise SdpParseError("z=: expected '<adjustment time> <offset>' pairs", line=lineno)
            self.zone = value
        elif kind == "k":
            self._once(kind, lineno)
            self.key = value
        elif kind == "v":
            raise SdpParseError("repeated v= line", line=lineno)
        else:
            raise SdpParseError(f"unknown line type {kind!r}", line=lineno)


def _parse_origin(value: str, lineno: int) -> Origin:
    f = value.split()
    if len(f) != 6:
        raise SdpParseError("o=: expected 6 fields '<username> <sess-id> <sess-version> <nettype> "
                            "<addrtype> <address>'", line=lineno)
    username, sess_id, version, nettype, addrtype, address = f
    if not is_digits(sess_id) or len(sess_id) > 64:
        raise SdpParseError(f"o=: sess-id must be digits, got {sess_id[:40]!r}", line=lineno)
    sess_version = parse_uint(version, "o= sess-version", line=lineno)
    require_token(nettype, "o= nettype", line=lineno)
    require_token(addrtype, "o= addrtype", line=lineno)
    check_address(addrtype, address, "o= address", line=lineno)
    return Origin(username, sess_id, sess_version, nettype, addrtype, address)


def _parse_connection(value: str, lineno: int) -> Connection:
    f = value.split()
    if len(f) != 3:
        raise SdpParseError("c=: expected '<nettype> <addrtype> <address>'", line=lineno)
    nettype, addrtype, address = f
    require_token(nettype, "c= nettype", line=lineno)
    require_token(addrtype, "c= addrtype", line=lineno)
    ttl: int | None = None
    count: int | None = None
    if "/" in address and addrtype in ("IP4", "IP6"):
        address, *suffix = address.split("/")
        if addrtype == "IP4":
            if len(suffix) > 2:
                raise SdpParseError("c=: too many '/' suffixes", line=lineno)
            ttl = parse_uint(suffix[0], "c= TTL", line=lineno, maximum=255)
            if len(suffix) == 2:
                count = parse_uint(suffix[1], "c= address count", line=lineno)
        else:
            if len(suffix) != 1:
                raise SdpParseError("c=: too many '/' suffixes", line=lineno)
            count = parse_uint(suffix[0], "c= address count", line=lineno)
    check_address(addrtype, address, "c= address", line=lineno)
    return Connection(address, addrtype, nettype, ttl, count)


def _parse_bandwidth(value: str, lineno: int) -> Bandwidth:
    bwtype, sep, amount = value.partition(":")
    if not sep:
        raise SdpParseError("b=: expected '<bwtype>:<bandwidth>'", line=lineno)
    require_token(bwtype, "b= bwtype", line=lineno)
    return Bandwidth(bwtype, parse_uint(amount.strip(), "b= bandwidth", line=lineno))


def _parse_timing(value: str, lineno: int) -> Timing:
    f = value.split()
    if len(f) != 2:
        raise SdpParseError("t=: expected '<start-time> <stop-time>'", line=lineno)
    return Timing(parse_uint(f[0], "t= start", line=lineno), parse_uint(f[1], "t= stop", line=lineno))


def _parse_media(value: str, lineno: int) -> MediaDescription:
    f = value.split()
    if len(f) < 3:
        raise SdpParseError("m=: expected '<media> <port> <proto> <fmt> ...'", line=lineno)
    kind = require_token(f[0], "m= media", line=lineno)
    port_text, slash, count_text = f[1].partition("/")
    port = parse_uint(port_text, "m= port", line=lineno, maximum=65535)
    port_count = parse_uint(count_text, "m= port count", line=lineno) if slash else None
    if not is_proto(f[2]):
        raise SdpParseError(f"m=: bad proto {f[2][:40]!r}", line=lineno)
    for fmt in f[3:]:
        require_token(fmt, "m= format", line=lineno)
    return MediaDescription(kind=kind, port=port, proto=f[2], formats=f[3:], port_count=port_count)
