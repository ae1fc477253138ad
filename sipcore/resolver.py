"""Locating SIP servers (RFC 3263) behind a resolver interface, sans-IO.

:class:`ServerLocator` turns a SIP URI into an ordered list of :class:`~sipcore.stack.Target`
(transport, IP address, port) by asking DNS questions it does not answer itself:
:meth:`~ServerLocator.next_query` names the next NAPTR, SRV or address lookup, the caller
feeds the records back with :meth:`~ServerLocator.answer`. :func:`locate` runs that loop
against any :class:`Resolver` (a real DNS client in a driver, a dictionary in tests).

The steps (RFC 3263 §4.1, §4.2)::

    transport= in the URI ─────────────▶ that transport; no port: SRV for it, else A/AAAA
    numeric host, or explicit port ────▶ UDP (sips: TLS); A/AAAA unless numeric
    otherwise: NAPTR(domain)
        usable records (flags "s", SIP+D2U/D2T, SIPS+D2T, SIP(S)+D2W; only SIPS+ for sips:,
        only transports we support), by order then preference ──▶ SRV(replacement) each
        none ──▶ SRV _sips._tcp / _sip._tcp / _sip._udp (our preference order)
                 none of them ──▶ A/AAAA(domain), UDP (sips: TLS), default port
    SRV answers: by priority; within a priority a weighted random order (RFC 2782, weight 0
    first); a lone target "." means "no service"; each target then A/AAAA

Failover (§4.3) is the caller's: try the targets in order, moving on after a transport
error, a timeout or a 503 (:func:`should_fail_over`), with a new branch each time.
"""

from __future__ import annotations

import enum
import ipaddress
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from .errors import LocalProtocolError, SipError, SipParseError
from .message import SipResponse
from .stack import Target
from .uri import SipUri

__all__ = [
    "DEFAULT_PORTS",
    "NAPTR_SERVICES",
    "NaptrRecord",
    "Query",
    "QueryKind",
    "Resolver",
    "ResolverError",
    "ServerLocator",
    "SrvRecord",
    "locate",
    "order_naptr",
    "order_srv",
    "should_fail_over",
]

NAPTR_SERVICES: dict[str, str] = {
    "SIP+D2U": "udp",  # RFC 3263 §4.1
    "SIP+D2T": "tcp",
    "SIPS+D2T": "tls",
    "SIP+D2W": "ws",  # RFC 7118 §7
    "SIPS+D2W": "wss",
}
SRV_PREFIX: dict[str, str] = {"udp": "_sip._udp", "tcp": "_sip._tcp", "tls": "_sips._tcp"}
DEFAULT_PORTS: dict[str, int] = {"udp": 5060, "tcp": 5060, "tls": 5061, "ws": 80, "wss": 443}
SECURE = frozenset({"tls", "wss"})


class ResolverError(SipError):
    """A lookup failed (SERVFAIL, timeout); the locator treats it as an empty answer."""


@dataclass(frozen=True, slots=True)
class NaptrRecord:
    order: int
    preference: int
    flags: str
    service: str
    regexp: str
    replacement: str


@dataclass(frozen=True, slots=True)
class SrvRecord:
    priority: int
    weight: int
    port: int
    target: str


class Resolver(Protocol):
    """DNS as the locator needs it; implementations raise :class:`ResolverError` on failure."""

    async def naptr(self, domain: str) -> Sequence[NaptrRecord]: ...

    async def srv(self, name: str) -> Sequence[SrvRecord]: ...

    async def addresses(self, host: str) -> Sequence[str]: ...


class QueryKind(enum.Enum):
    NAPTR = "NAPTR"
    SRV = "SRV"
    ADDRESS = "A/AAAA"


@dataclass(frozen=True, slots=True)
class Query:
    kind: QueryKind
    name: str


def _rand_below(rng: Callable[[int], bytes], n: int) -> int:
    return int.from_bytes(rng(4), "big") % n if n > 1 else 0


def order_srv(records: Sequence[SrvRecord], rng: Callable[[int], bytes] = os.urandom) -> list[SrvRecord]:
    """RFC 2782 ordering: lowest priority first; within a priority, weighted random selection
    with the weight-0 records placed first; a single record with target "." means no service."""
    if len(records) == 1 and records[0].target.rstrip(".") == "":
        return []
    out: list[SrvRecord] = []
    for prio in sorted({r.priority for r in records}):
        group = sorted((r for r in records if r.priority == prio), key=lambda r: r.weight != 0)
        while group:
            total = sum(r.weight for r in group)
            pick = _rand_below(rng, total + 1)
            running = 0
            for i, r in enumerate(group):
                running += r.weight
                if running >= pick:
                    out.append(group.pop(i))
                    break
    return [r for r in out if r.target.rstrip(".")]


def order_naptr(records: Sequence[NaptrRecord], *, secure: bool, transports: Sequence[str]) -> list[tuple[str, str]]:
    """(transport, SRV name) for the usable NAPTR records, by order then preference (§4.1)."""
    usable = []
    for r in records:
        transport = NAPTR_SERVICES.get(r.service.upper())
        if transport is None or transport not in transports or "s" not in r.flags.lower():
            continue
        if secure and transport not in SECURE:
            continue
        usable.append(r)
    usable.sort(key=lambda r: (r.order, r.preference))
    return [(NAPTR_SERVICES[r.service.upper()], r.replacement.rstrip(".")) for r in usable]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


class _Step(enum.Enum):
    NAPTR = "naptr"
    SRV = "srv"
    ADDRESS = "address"
    FALLBACK = "fallback"
    DONE = "done"


@dataclass(slots=True)
class _Item:
    step: _Step
    name: str
    transport: str = ""
    port: int = 0
    group: int = 0


class ServerLocator:
    """RFC 3263 target selection for one URI, driven by :meth:`next_query` / :meth:`answer`."""

    def __init__(self, uri: SipUri, *, transports: Sequence[str] = ("tls", "tcp", "udp"),
                 rng: Callable[[int], bytes] = os.urandom) -> None:
        if not isinstance(uri, SipUri):
            raise LocalProtocolError("only sip: and sips: URIs are located through DNS")
        self.uri = uri
        self.secure = uri.secure
        self.transports = [t for t in transports if not self.secure or t in SECURE]
        if not self.transports:
            raise LocalProtocolError("no transport left to reach a sips: URI")
        self.rng = rng
        self._groups_hit: set[int] = set()
        self._next_group = 1
        host = (uri.param("maddr") or uri.host).strip("[]")
        self.host = host
        explicit = uri.transport
        default = "tls" if self.secure else "udp"
        self._items: list[_Item]
        if explicit is not None:
            transport = "tls" if self.secure and explicit == "tcp" else explicit
            if _is_ip(host) or uri.port is not None:
                self._items = [self._address(host, transport, uri.port or DEFAULT_PORTS.get(transport, 5060))]
            else:
                g = self._group()
                self._items = [self._srv(transport, host, g),
                               _Item(_Step.FALLBACK, host, transport, DEFAULT_PORTS.get(transport, 5060), g)]
        elif _is_ip(host) or uri.port is not None:
            self._items = [self._address(host, default, uri.port or DEFAULT_PORTS[default])]
        else:
            self._items = [_Item(_Step.NAPTR, host)]

    def _group(self) -> int:
        self._next_group += 1
        return self._next_group

    @staticmethod
    def _address(host: str, transport: str, port: int) -> _Item:
        if _is_ip(host):
            return _Item(_Step.DONE, host, transport, port)
        return _Item(_Step.ADDRESS, host, transport, port)

    @staticmethod
    def _srv(transport: str, domain: str, group: int) -> _Item:
        return _Item(_Step.SRV, f"{SRV_PREFIX.get(transport, '_sip._' + transport)}.{domain}", transport, 0, group)

    def _srv_fallbacks(self, domain: str) -> list[_Item]:
        g = self._group()
        default = "tls" if self.secure else "udp"
        items = [self._srv(t, domain, g) for t in self.transports if t in SRV_PREFIX]
        items.append(_Item(_Step.FALLBACK, domain, default, DEFAULT_PORTS[default], g))
        return items

    # -- the query loop --------------------------------------------------------------------------------
    def _first_open(self) -> int | None:
        while True:
            for i, item in enumerate(self._items):
                if item.step is _Step.FALLBACK:
                    self._items[i:i + 1] = ([] if item.group in self._groups_hit
                                            else [self._address(item.name, item.transport, item.port)])
                    break
                if item.step is not _Step.DONE:
                    return i
            else:
                return None

    def next_query(self) -> Query | None:
        """The next lookup to make, None when :meth:`targets` is final."""
        i = self._first_open()
        if i is None:
            return None
        item = self._items[i]
        kind = {_Step.NAPTR: QueryKind.NAPTR, _Step.SRV: QueryKind.SRV}.get(item.step, QueryKind.ADDRESS)
        return Query(kind, item.name)

    def answer(self, query: Query, records: Sequence[NaptrRecord] | Sequence[SrvRecord] | Sequence[str]) -> None:
        """Feed the records of ``query`` (empty when the name does not exist or the lookup failed)."""
        i = self._first_open()
        if i is None:
            raise LocalProtocolError("no lookup is pending")
        item = self._items[i]
        if Query({_Step.NAPTR: QueryKind.NAPTR, _Step.SRV: QueryKind.SRV}.get(item.step, QueryKind.ADDRESS),
                 item.name) != query:
            raise LocalProtocolError(f"{query} is not the pending lookup")
        new: list[_Item] = []
        if item.step is _Step.NAPTR:
            naptrs = [r for r in records if isinstance(r, NaptrRecord)]
            chosen = order_naptr(naptrs, secure=self.secure, transports=self.transports)
            if chosen:
                g = self._group()
                new = [_Item(_Step.SRV, name, transport, 0, g) for transport, name in chosen]
            else:
                new = self._srv_fallbacks(item.name)
        elif item.step is _Step.SRV:
            srvs = order_srv([r for r in records if isinstance(r, SrvRecord)], self.rng)
            if srvs:
                self._groups_hit.add(item.group)
            new = [self._address(r.target.rstrip("."), item.transport, r.port) for r in srvs]
        else:
            new = [_Item(_Step.DONE, a.strip("[]"), item.transport, item.port)
                   for a in records if isinstance(a, str) and _is_ip(a)]
        self._items[i:i + 1] = new

    def targets(self) -> list[Target]:
        """The targets in the order to try them (duplicates removed)."""
        if self._first_open() is not None:
            raise LocalProtocolError("lookups are still pending")
        seen: set[tuple[str, str, int]] = set()
        out: list[Target] = []
        for item in self._items:
            key = (item.transport, item.name, item.port)
            if key not in seen:
                seen.add(key)
                out.append(Target(item.transport, item.name, item.port))
        return out


async def locate(uri: SipUri, resolver: Resolver, *, transports: Sequence[str] = ("tls", "tcp", "udp"),
                 rng: Callable[[int], bytes] = os.urandom) -> list[Target]:
    """Run a :class:`ServerLocator` against ``resolver``; failed lookups count as empty."""
    loc = ServerLocator(uri, transports=transports, rng=rng)
    while (query := loc.next_query()) is not None:
        records: Sequence[NaptrRecord] | Sequence[SrvRecord] | Sequence[str]
        try:
            if query.kind is QueryKind.NAPTR:
                records = await resolver.naptr(query.name)
            elif query.kind is QueryKind.SRV:
                records = await resolver.srv(query.name)
            else:
                records = await resolver.addresses(query.name)
        except ResolverError:
            records = []
        loc.answer(query, records)
    return loc.targets()


def should_fail_over(response: SipResponse) -> bool:
    """RFC 3263 §4.3: try the next target after a 503, a timeout or a transport error.

    The stack reports a timeout as a 408 and a transport error as a 503 without a To tag (no
    server produced them); a 408 from a real server does not count.
    """
    code = response.status_code
    if code == 503:
        return True
    if code == 408:
        try:
            return response.to.tag is None
        except SipParseError:
            return False
    return False
