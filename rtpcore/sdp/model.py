"""The SDP data model (RFC 8866 §5): a session description and its media descriptions.

Attributes are stored as an ordered list of ``(name, value | None)`` pairs, exactly as
received (``None`` for a property attribute such as ``a=rtcp-mux``, ``""`` for
``a=name:``). Nothing is dropped or reordered, so ``serialize(parse(text)) == text`` for
canonical input. The typed accessors (``rtpmap``, ``candidates``, ``fingerprints``,
``crypto``...) are *computed* from that list on each call; the few setters edit the list
in place (replacing the first occurrence, so order is kept).

Where an attribute may appear at session or at media level (direction, ICE credentials,
fingerprint, setup; RFC 8866 §6, RFC 8839 §5.4, RFC 8122 §5), a media-level value wins;
:meth:`SessionDescription.effective_direction` and friends apply that rule.

Line order written by the serializer (RFC 8866 §5)::

    v= o= s= [i=] [u=] *e= *p= [c=] *b= 1*(t= *r=) [z=] [k=] *a=
    *( m= [i=] *c= *b= [k=] *a= )
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field

from .attributes import (
    DIRECTION_NAMES,
    Candidate,
    Crypto,
    Direction,
    ExtMap,
    Fingerprint,
    Fmtp,
    Group,
    Msid,
    RtcpAddress,
    RtcpFeedback,
    RtpMap,
    Setup,
    SsrcAttribute,
    SsrcGroup,
    parse_ptime,
)

#: One attribute line: ``a=<name>`` -> ``(name, None)``; ``a=<name>:<value>`` -> ``(name, value)``.
Attribute = tuple[str, str | None]


@dataclass(frozen=True, slots=True)
class Origin:
    """``o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>`` (§5.2).

    ``sess_id`` stays a digit string (it is an identifier; leading zeros are kept);
    ``sess_version`` is an integer because RFC 3264 §8 increments it.
    """

    username: str = "-"
    sess_id: str = "0"
    sess_version: int = 0
    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "127.0.0.1"

    def __str__(self) -> str:
        return (f"{self.username} {self.sess_id} {self.sess_version} {self.nettype} "
                f"{self.addrtype} {self.address}")


@dataclass(frozen=True, slots=True)
class Connection:
    """``c=<nettype> <addrtype> <connection-address>`` (§5.7).

    Multicast suffixes are split out: IP4 ``addr/ttl[/count]``, IP6 ``addr[/count]``.
    """

    address: str
    addrtype: str = "IP4"
    nettype: str = "IN"
    ttl: int | None = None
    count: int | None = None

    @property
    def is_null(self) -> bool:
        """``0.0.0.0`` / ``::``: RFC 2543 hold, or "no address yet" in ICE (RFC 8839 §4.3.1)."""
        return self.address in ("0.0.0.0", "::")

    def __str__(self) -> str:
        out = f"{self.nettype} {self.addrtype} {self.address}"
        if self.ttl is not None:
            out += f"/{self.ttl}"
        if self.count is not None:
            out += f"/{self.count}"
        return out


@dataclass(frozen=True, slots=True)
class Bandwidth:
    """``b=<bwtype>:<bandwidth>`` (§5.8), e.g. ``AS:64`` (kbit/s) or ``TIAS:64000`` (bit/s)."""

    bwtype: str
    bandwidth: int

    def __str__(self) -> str:
        return f"{self.bwtype}:{self.bandwidth}"


@dataclass(frozen=True, slots=True)
class Timing:
    """``t=<start-time> <stop-time>`` (§5.9) with its ``r=`` repeat lines kept as text (§5.10)."""

    start: int = 0
    stop: int = 0
    repeats: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.start} {self.stop}"


@dataclass(frozen=True, slots=True)
class IceParameters:
    """The ICE credentials and options in force for one media description (RFC 8839 §5.4)."""

    ufrag: str
    pwd: str
    options: tuple[str, ...] = ()
    lite: bool = False


@dataclass(frozen=True, slots=True)
class PayloadFormat:
    """One RTP payload format of an m= line: rtpmap (or the RFC 3551 static entry) + fmtp."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int = 1
    fmtp: str | None = None

    def same_codec(self, encoding: str, clock_rate: int, channels: int) -> bool:
        """Encoding names compare case-insensitively (RFC 4855 §3)."""
        return (self.encoding.lower() == encoding.lower() and self.clock_rate == clock_rate
                and self.channels == channels)


#: RFC 3551 §6 Tables 4 and 5: payload types with a static meaning (rtpmap optional).
STATIC_PAYLOAD_TYPES: dict[int, RtpMap] = {
    pt: RtpMap(pt, enc, rate, ch)
    for pt, enc, rate, ch in (
        (0, "PCMU", 8000, 1), (3, "GSM", 8000, 1), (4, "G723", 8000, 1), (5, "DVI4", 8000, 1),
        (6, "DVI4", 16000, 1), (7, "LPC", 8000, 1), (8, "PCMA", 8000, 1), (9, "G722", 8000, 1),
        (10, "L16", 44100, 2), (11, "L16", 44100, 1), (12, "QCELP", 8000, 1), (13, "CN", 8000, 1),
        (14, "MPA", 90000, 1), (15, "G728", 8000, 1), (16, "DVI4", 11025, 1), (17, "DVI4", 22050, 1),
        (18, "G729", 8000, 1), (25, "CelB", 90000, 1), (26, "JPEG", 90000, 1), (28, "nv", 90000, 1),
        (31, "H261", 90000, 1), (32, "MPV", 90000, 1), (33, "MP2T", 90000, 1), (34, "H263", 90000, 1),
    )
}


class _Attributes:
    """Attribute-list helpers and typed accessors shared by session and media level."""

    __slots__ = ()
    attributes: list[Attribute]

    # -- raw access ----------------------------------------------------------------
    def has_attribute(self, name: str) -> bool:
        return any(n == name for n, _ in self.attributes)

    def attribute(self, name: str) -> str | None:
        """Value of the first ``a=name:value`` (``None`` if absent or a property attribute)."""
        for n, v in self.attributes:
            if n == name:
                return v
        return None

    def attribute_values(self, name: str) -> list[str]:
        """Values of every ``a=name:value``, in order (property forms are skipped)."""
        return [v for n, v in self.attributes if n == name and v is not None]

    def add_attribute(self, name: str, value: str | None = None) -> None:
        self.attributes.append((name, value))

    def set_attribute(self, name: str, value: str | None = None) -> None:
        """Replace the first ``name`` in place (later duplicates removed), else append."""
        for i, (n, _) in enumerate(self.attributes):
            if n == name:
                self.attributes[i] = (name, value)
                self.attributes[i + 1:] = [a for a in self.attributes[i + 1:] if a[0] != name]
                return
        self.attributes.append((name, value))

    def remove_attribute(self, name: str) -> int:
        """Remove every ``name``; return how many were removed."""
        before = len(self.attributes)
        self.attributes[:] = [a for a in self.attributes if a[0] != name]
        return before - len(self.attributes)

    # -- direction (RFC 8866 §6.7) -------------------------------------------------
    @property
    def direction(self) -> Direction | None:
        """The direction attribute at this level, or ``None`` (the caller applies defaults)."""
        for n, _ in self.attributes:
            if n in DIRECTION_NAMES:
                return Direction(n)
        return None

    def set_direction(self, direction: Direction) -> None:
        """Replace the first direction attribute in place (dropping others), else append."""
        for i, (n, _) in enumerate(self.attributes):
            if n in DIRECTION_NAMES:
                self.attributes[i] = (direction.value, None)
                self.attributes[i + 1:] = [a for a in self.attributes[i + 1:] if a[0] not in DIRECTION_NAMES]
                return
        self.attributes.append((direction.value, None))

    # -- ICE (RFC 8839 §5) ---------------------------------------------------------
    @property
    def ice_ufrag(self) -> str | None:
        return self.attribute("ice-ufrag")

    @property
    def ice_pwd(self) -> str | None:
        return self.attribute("ice-pwd")

    @property
    def ice_options(self) -> tuple[str, ...]:
        out: list[str] = []
        for v in self.attribute_values("ice-options"):
            out.extend(o for o in v.split() if o not in out)
        return tuple(out)

    @property
    def ice_lite(self) -> bool:
        return self.has_attribute("ice-lite")

    @property
    def candidates(self) -> list[Candidate]:
        return [Candidate.parse(v) for v in self.attribute_values("candidate")]

    @property
    def end_of_candidates(self) -> bool:
        return self.has_attribute("end-of-candidates")

    # -- DTLS (RFC 8122 §5, RFC 4145 §4) --------------------------------------------
    @property
    def fingerprints(self) -> list[Fingerprint]:
        return [Fingerprint.parse(v) for v in self.attribute_values("fingerprint")]

    @property
    def fingerprint(self) -> Fingerprint | None:
        v = self.attribute("fingerprint")
        return Fingerprint.parse(v) if v is not None else None

    @property
    def setup(self) -> Setup | None:
        v = self.attribute("setup")
        return Setup.parse(v) if v is not None else None

    # -- grouping and misc (RFC 5888, RFC 8843, RFC 8285) ---------------------------
    @property
    def groups(self) -> list[Group]:
        return [Group.parse(v) for v in self.attribute_values("group")]

    @property
    def extmaps(self) -> list[ExtMap]:
        return [ExtMap.parse(v) for v in self.attribute_values("extmap")]


@dataclass(slots=True)
class MediaDescription(_Attributes):
    """One ``m=`` section (RFC 8866 §5.14) and the lines that follow it."""

    kind: str
    port: int
    proto: str
    formats: list[str] = field(default_factory=list)
    port_count: int | None = None
    info: str | None = None
    connections: list[Connection] = field(default_factory=list)
    bandwidths: list[Bandwidth] = field(default_factory=list)
    key: str | None = None
    attributes: list[Attribute] = field(default_factory=list)

    # -- m= line ---------------------------------------------------------------------
    @property
    def connection(self) -> Connection | None:
        """The first media-level ``c=`` (several are legal only for multicast)."""
        return self.connections[0] if self.connections else None

    @connection.setter
    def connection(self, value: Connection | None) -> None:
        self.connections[:] = [] if value is None else [value]

    @property
    def rejected(self) -> bool:
        """Port 0: the stream is rejected or disabled (RFC 3264 §6, §8.2)."""
        return self.port == 0

    @property
    def is_rtp(self) -> bool:
        return "RTP/" in self.proto

    @property
    def payload_types(self) -> list[int]:
        """The formats as RTP payload types (non-numeric formats are skipped)."""
        return [int(f) for f in self.formats if len(f) <= 3 and f.isascii() and f.isdigit()]

    # -- codecs (RFC 8866 §6.6, §6.15; RFC 3551 §6) ----------------------------------
    @property
    def rtpmap(self) -> dict[int, RtpMap]:
        """Payload type -> rtpmap; the first line wins when a payload type repeats."""
        out: dict[int, RtpMap] = {}
        for v in self.attribute_values("rtpmap"):
            m = RtpMap.parse(v)
            out.setdefault(m.payload_type, m)
        return out

    @property
    def fmtp(self) -> dict[int, Fmtp]:
        out: dict[int, Fmtp] = {}
        for v in self.attribute_values("fmtp"):
            f = Fmtp.parse(v)
            out.setdefault(f.payload_type, f)
        return out

    @property
    def codecs(self) -> list[PayloadFormat]:
        """Payload formats in m= line (preference) order; static types need no rtpmap.

        A dynamic payload type without an rtpmap has no meaning and is left out.
        """
        rtpmap = self.rtpmap
        fmtp = self.fmtp
        out: list[PayloadFormat] = []
        for pt in self.payload_types:
            m = rtpmap.get(pt) or STATIC_PAYLOAD_TYPES.get(pt)
            if m is not None:
                f = fmtp.get(pt)
                out.append(PayloadFormat(pt, m.encoding, m.clock_rate, m.channels, f.raw if f else None))
        return out

    @property
    def rtcp_feedback(self) -> list[RtcpFeedback]:
        return [RtcpFeedback.parse(v) for v in self.attribute_values("rtcp-fb")]

    @property
    def ptime(self) -> float | None:
        v = self.attribute("ptime")
        return parse_ptime(v) if v is not None else None

    @property
    def maxptime(self) -> float | None:
        v = self.attribute("maxptime")
        return parse_ptime(v, "maxptime") if v is not None else None

    # -- identification, RTCP, security ---------------------------------------------
    @property
    def mid(self) -> str | None:
        v = self.attribute("mid")
        return v.strip() if v is not None else None

    @property
    def rtcp(self) -> RtcpAddress | None:
        v = self.attribute("rtcp")
        return RtcpAddress.parse(v) if v is not None else None

    @property
    def rtcp_mux(self) -> bool:
        return self.has_attribute("rtcp-mux")

    @property
    def rtcp_rsize(self) -> bool:
        return self.has_attribute("rtcp-rsize")

    @property
    def crypto(self) -> list[Crypto]:
        return [Crypto.parse(v) for v in self.attribute_values("crypto")]

    @property
    def ssrcs(self) -> list[SsrcAttribute]:
        return [SsrcAttribute.parse(v) for v in self.attribute_values("ssrc")]

    @property
    def ssrc_groups(self) -> list[SsrcGroup]:
        return [SsrcGroup.parse(v) for v in self.attribute_values("ssrc-group")]

    @property
    def msids(self) -> list[Msid]:
        return [Msid.parse(v) for v in self.attribute_values("msid")]

    @property
    def cname(self) -> str | None:
        """The RTCP CNAME announced with ``a=ssrc:<id> cname:<cname>`` (RFC 5576 §6.1)."""
        for s in self.ssrcs:
            if s.name == "cname":
                return s.value
        return None


@dataclass(slots=True)
class SessionDescription(_Attributes):
    """A whole SDP body (RFC 8866 §5). ``str(sdp)`` serializes it with CRLF line ends."""

    origin: Origin = field(default_factory=Origin)
    session_name: str = "-"
    version: int = 0
    info: str | None = None
    uri: str | None = None
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    connection: Connection | None = None
    bandwidths: list[Bandwidth] = field(default_factory=list)
    timing: list[Timing] = field(default_factory=lambda: [Timing()])
    zone: str | None = None
    key: str | None = None
    attributes: list[Attribute] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)

    # -- wire form -------------------------------------------------------------------
    @staticmethod
    def parse(data: str | bytes) -> SessionDescription:
        """Same as :func:`rtpcore.sdp.parse.parse_sdp`."""
        from .parse import parse_sdp

        return parse_sdp(data)

    def __str__(self) -> str:
        from .serialize import serialize_sdp

        return serialize_sdp(self)

    def to_bytes(self) -> bytes:
        """UTF-8 with CRLF; bytes that were not UTF-8 on input come back unchanged."""
        return str(self).encode("utf-8", "surrogateescape")

    def copy(self) -> SessionDescription:
        """A deep copy, to edit without touching the original."""
        return copy.deepcopy(self)

    # -- session-level views -----------------------------------------------------------
    @property
    def bundle_mids(self) -> tuple[str, ...] | None:
        """The mids of the first ``a=group:BUNDLE`` (RFC 8843 §7), or ``None``."""
        for g in self.groups:
            if g.semantics.upper() == "BUNDLE":
                return g.mids
        return None

    def media_by_mid(self, mid: str) -> MediaDescription | None:
        for m in self.media:
            if m.mid == mid:
                return m
        return None

    def iter_media(self, kind: str | None = None) -> Iterator[tuple[int, MediaDescription]]:
        """``(index, m)`` pairs, optionally only of one kind (``"audio"``)."""
        for i, m in enumerate(self.media):
            if kind is None or m.kind == kind:
                yield i, m

    # -- media level overrides session level --------------------------------------------
    def effective_direction(self, media: MediaDescription) -> Direction:
        """Media direction, else session direction, else sendrecv (RFC 8866 §6.7)."""
        return media.direction or self.direction or Direction.SENDRECV

    def effective_connection(self, media: MediaDescription) -> Connection | None:
        return media.connection or self.connection

    def effective_ice(self, media: MediaDescription) -> IceParameters | None:
        """ICE credentials for ``media`` (media level first, RFC 8839 §5.4), or ``None``."""
        ufrag = media.ice_ufrag or self.ice_ufrag
        pwd = media.ice_pwd or self.ice_pwd
        if ufrag is None or pwd is None:
            return None
        options = media.ice_options or self.ice_options
        return IceParameters(ufrag, pwd, options, self.ice_lite or media.ice_lite)

    def effective_fingerprints(self, media: MediaDescription) -> list[Fingerprint]:
        return media.fingerprints or self.fingerprints

    def effective_setup(self, media: MediaDescription) -> Setup | None:
        s = media.setup
        return s if s is not None else self.setup
