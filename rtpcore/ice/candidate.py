"""ICE candidates: priorities, foundations and ``a=candidate`` values (RFC 8445 §5.1, RFC 8839 §5.1).

* priority (§5.1.2.1): ``2^24 * type preference + 2^8 * local preference + (256 - component)``,
  with the recommended type preferences host 126, peer-reflexive 110, server-reflexive 100,
  relayed 0, and local preference 65535 for a single interface.
* foundation (§5.1.1.3): equal for candidates of the same type, base IP, STUN/TURN server
  and transport; here a CRC-32 of those, in decimal (what libnice and Chromium do).
* pair priority (§6.1.2.3): ``2^32 * min(G, D) + 2 * max(G, D) + (G > D)`` where G is the
  controlling agent's candidate priority.

The SDP grammar (RFC 8839 §5.1)::

    candidate-attribute = "candidate" ":" foundation SP component-id SP transport SP priority SP
                          connection-address SP port SP "typ" SP cand-type
                          [SP "raddr" SP rel-addr] [SP "rport" SP rel-port] *(SP extension-att-name SP extension-att-value)

Unknown extensions (``generation``, ``ufrag``, ``network-id``, ``tcptype``...) are kept in order.
"""

from __future__ import annotations

import enum
import ipaddress
import re
import zlib
from dataclasses import dataclass, field, replace

from ..errors import LocalProtocolError, SdpParseError

__all__ = [
    "Addr",
    "Candidate",
    "CandidateType",
    "TYPE_PREFERENCE",
    "candidate_foundation",
    "candidate_priority",
    "is_ip_address",
    "pair_priority",
]

Addr = tuple[str, int]


class CandidateType(enum.Enum):
    """RFC 8445 §5.1.1 candidate types, valued as in SDP (``typ host`` ...)."""

    HOST = "host"
    SRFLX = "srflx"
    PRFLX = "prflx"
    RELAY = "relay"


TYPE_PREFERENCE: dict[CandidateType, int] = {
    CandidateType.HOST: 126,
    CandidateType.PRFLX: 110,
    CandidateType.SRFLX: 100,
    CandidateType.RELAY: 0,
}
"""RFC 8445 §5.1.2.2 recommended type preferences."""

_ICE_CHARS = re.compile(r"^[A-Za-z0-9+/]{1,32}$")
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`{|}~A-Za-z0-9]+$")


def candidate_priority(ctype: CandidateType, component: int, local_preference: int = 65535) -> int:
    """RFC 8445 §5.1.2.1."""
    if not 1 <= component <= 256 or not 0 <= local_preference <= 65535:
        raise LocalProtocolError("component must be 1..256 and local preference 0..65535")
    return (TYPE_PREFERENCE[ctype] << 24) | (local_preference << 8) | (256 - component)


def candidate_foundation(ctype: CandidateType, base_ip: str, server_ip: str | None = None, transport: str = "udp") -> str:
    """RFC 8445 §5.1.1.3: same (type, base IP, server, transport) -> same foundation."""
    key = f"{ctype.value}|{base_ip}|{server_ip or ''}|{transport.lower()}".encode()
    return str(zlib.crc32(key))


def pair_priority(controlling_priority: int, controlled_priority: int) -> int:
    """RFC 8445 §6.1.2.3."""
    g, d = controlling_priority, controlled_priority
    return (min(g, d) << 32) + 2 * max(g, d) + (1 if g > d else 0)


def is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """One candidate. ``base`` is local-only (RFC 8445 §5.1.1.1: the address a check is sent from;
    the relayed address for relayed candidates); it is not signalled."""

    foundation: str
    component: int
    transport: str = "udp"
    priority: int
    host: str
    port: int
    type: CandidateType
    related_address: str | None = None
    related_port: int | None = None
    extensions: tuple[tuple[str, str], ...] = ()
    base: Addr | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not 1 <= self.component <= 256:
            raise LocalProtocolError(f"component {self.component} out of range 1..256")
        if not 0 <= self.port <= 65535 or not 0 <= self.priority < 2**32:
            raise LocalProtocolError("port or priority out of range")

    @property
    def addr(self) -> Addr:
        return (self.host, self.port)

    @property
    def related(self) -> Addr | None:
        if self.related_address is None or self.related_port is None:
            return None
        return (self.related_address, self.related_port)

    @property
    def is_ipv6(self) -> bool:
        return ":" in self.host

    def extension(self, name: str) -> str | None:
        for k, v in self.extensions:
            if k == name:
                return v
        return None

    def with_extensions(self, *items: tuple[str, str]) -> Candidate:
        """A copy with ``items`` set (replacing same-named ones), e.g. ``("ufrag", "abcd")``."""
        names = {k for k, _ in items}
        kept = tuple((k, v) for k, v in self.extensions if k not in names)
        return replace(self, extensions=kept + tuple(items))

    # -- SDP ------------------------------------------------------------------------------------
    def to_sdp(self) -> str:
        """The ``a=candidate:`` attribute value (without ``a=candidate:``)."""
        parts = [
            self.foundation,
            str(self.component),
            self.transport,
            str(self.priority),
            self.host,
            str(self.port),
            "typ",
            self.type.value,
        ]
        if self.related_address is not None:
            parts += ["raddr", self.related_address]
        if self.related_port is not None:
            parts += ["rport", str(self.related_port)]
        for k, v in self.extensions:
            parts += [k, v]
        return " ".join(parts)

    @classmethod
    def from_sdp(cls, value: str) -> Candidate:
        """Parse an ``a=candidate`` value; accepts a leading ``a=`` / ``candidate:``. Raises SdpParseError."""
        text = value.strip()
        if text.startswith("a="):
            text = text[2:]
        if text[:10].lower() == "candidate:":
            text = text[10:]
        tok = text.split()
        if len(tok) < 8:
            raise SdpParseError(f"candidate needs at least 8 fields: {value!r}")
        foundation, comp, transport, prio, host, port, typ, ctype = tok[:8]
        if not _ICE_CHARS.match(foundation):
            raise SdpParseError(f"bad candidate foundation {foundation!r}")
        if not _TOKEN.match(transport) or (not _TOKEN.match(host) and not is_ip_address(host)):
            raise SdpParseError(f"bad candidate transport/address in {value!r}")
        if typ != "typ":
            raise SdpParseError(f"expected 'typ' in candidate, got {typ!r}")
        try:
            c_type = CandidateType(ctype)
        except ValueError as exc:
            raise SdpParseError(f"unknown candidate type {ctype!r}") from exc
        component = _number(comp, 3, 1, 256, "component-id")
        priority = _number(prio, 10, 0, 2**32 - 1, "priority")
        port_n = _number(port, 5, 0, 65535, "port")
        raddr: str | None = None
        rport: int | None = None
        rest = tok[8:]
        if len(rest) % 2:
            raise SdpParseError(f"candidate extension without a value: {value!r}")
        exts: list[tuple[str, str]] = []
        for i in range(0, len(rest), 2):
            name, val = rest[i], rest[i + 1]
            if name == "raddr" and raddr is None and not exts:
                raddr = val
            elif name == "rport" and rport is None and not exts:
                rport = _number(val, 5, 0, 65535, "rport")
            else:
                if not _TOKEN.match(name):
                    raise SdpParseError(f"bad candidate extension name {name!r}")
                exts.append((name, val))
        return cls(
            foundation=foundation,
            component=component,
            transport=transport,
            priority=priority,
            host=host,
            port=port_n,
            type=c_type,
            related_address=raddr,
            related_port=rport,
            extensions=tuple(exts),
        )


def _number(text: str, digits: int, lo: int, hi: int, what: str) -> int:
    if not text.isdigit() or not text.isascii() or len(text) > digits:
        raise SdpParseError(f"bad candidate {what} {text!r}")
    n = int(text)
    if not lo <= n <= hi:
        raise SdpParseError(f"candidate {what} {n} out of range {lo}..{hi}")
    return n
