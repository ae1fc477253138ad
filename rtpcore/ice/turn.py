"""TURN client over UDP, sans-IO (RFC 8656; long-term credentials RFC 8489 §9.2).

One allocation per client. Requests are STUN transactions (RFC 8489 §6.2.1 retransmissions)
and carry USERNAME/REALM/NONCE/MESSAGE-INTEGRITY once the server has challenged:

* Allocate (§7.2): first without credentials; a 401 gives REALM and NONCE and the request is
  repeated with them (a second 401 means wrong credentials). 438 Stale Nonce (§9.2.5 of
  RFC 8489) takes the new NONCE and retries. The success carries XOR-RELAYED-ADDRESS,
  XOR-MAPPED-ADDRESS and LIFETIME.
* Refresh (§8): sent ``refresh_margin`` seconds before expiry; LIFETIME 0 deallocates.
* CreatePermission (§9): per peer IP, 300 s lifetime, refreshed at 240 s. Data for a peer
  waits (bounded queue) until its permission exists.
* ChannelBind (§11): channel numbers 0x4000-0x4FFF, 600 s lifetime, refreshed at 540 s.
  ChannelData (§12.4) is accepted for 0x4000-0x7FFF (the RFC 5766 range some servers still use).
* Send/Data indications (§10) carry data when no channel is bound.

Allocation states::

    NEW --allocate()--> ALLOCATING --success--> ALLOCATED --refresh ok--> ALLOCATED
                            |                     |  |
                            +--error/timeout----> FAILED        +--deallocate()--> CLOSED
                                                  +--refresh failed past expiry--> EXPIRED

Errors the server returns are reported as :class:`~rtpcore.errors.TurnError` with the STUN
error code (``AllocationFailed.error``, ``RequestFailed.error``, ``TurnClient.error``).
"""

from __future__ import annotations

import enum
import logging
import os
import struct
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ..errors import LocalProtocolError, StunError, TurnError
from .stun import (
    Addr,
    ChannelNumber,
    Data,
    DontFragment,
    Lifetime,
    MessageClass,
    Method,
    Nonce,
    Realm,
    RequestedTransport,
    Software,
    StunAttribute,
    StunMessage,
    Username,
    XorMappedAddress,
    XorPeerAddress,
    XorRelayedAddress,
    is_stun,
    long_term_key,
    new_transaction_id,
    parse_message,
)
from .stun_transaction import StunClientTransaction, StunTimers, TransactionState

__all__ = [
    "AllocationExpired",
    "AllocationFailed",
    "AllocationRefreshed",
    "AllocationSucceeded",
    "ChannelBound",
    "Deallocated",
    "PermissionCreated",
    "RequestFailed",
    "TurnClient",
    "TurnConfig",
    "TurnEvent",
    "TurnServer",
    "TurnState",
    "StreamFramer",
    "encode_channel_data",
    "is_channel_data",
    "parse_channel_data",
]

_log = logging.getLogger(__name__)

CHANNEL_MIN = 0x4000
CHANNEL_MAX = 0x4FFF  # RFC 8656 §12
CHANNEL_DATA_MAX = 0x7FFF  # RFC 5766 range, accepted on receipt
_CD_HEADER = struct.Struct("!HH")
_UNAUTH_OK = frozenset({401, 438})


# -- ChannelData framing (RFC 8656 §12.4) --------------------------------------------------------------


def is_channel_data(data: bytes) -> bool:
    """RFC 7983: first byte 64..79 is TURN ChannelData."""
    return len(data) >= 4 and 64 <= data[0] <= 127


def encode_channel_data(channel: int, payload: bytes, *, pad: bool = False) -> bytes:
    """ChannelData message; ``pad`` adds the 4-byte alignment padding (required over TCP, §12.5)."""
    if not CHANNEL_MIN <= channel <= CHANNEL_DATA_MAX or len(payload) > 0xFFFF:
        raise LocalProtocolError(f"bad channel {channel:#x} or payload too long")
    out = _CD_HEADER.pack(channel, len(payload)) + payload
    return out + bytes(-len(payload) & 3) if pad else out


def parse_channel_data(data: bytes) -> tuple[int, bytes]:
    """(channel, payload). Up to 3 padding bytes may follow the payload. Raises TurnError."""
    if len(data) < 4:
        raise TurnError("ChannelData shorter than its header")
    channel, length = _CD_HEADER.unpack_from(data)
    if not CHANNEL_MIN <= channel <= CHANNEL_DATA_MAX:
        raise TurnError(f"ChannelData channel {channel:#06x} out of range")
    extra = len(data) - 4 - length
    if not 0 <= extra <= 3:
        raise TurnError(f"ChannelData length {length} does not match datagram of {len(data)} bytes")
    return channel, data[4 : 4 + length]


# -- configuration and events ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TurnServer:
    """A TURN server and the long-term credentials for it."""

    address: Addr
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class TurnConfig:
    """TURN client timers (RFC 8656 §8, §9, §11)."""

    timers: StunTimers = field(default_factory=StunTimers)
    """Retransmissions of every TURN request."""
    refresh_margin: float = 60.0
    """Refresh the allocation this long before it expires (at least half-way through)."""
    permission_lifetime: float = 300.0
    """RFC 8656 §9: permissions last 300 s."""
    permission_refresh: float = 240.0
    """Refresh a permission this long after it was installed."""
    channel_lifetime: float = 600.0
    """RFC 8656 §12: channel bindings last 10 minutes."""
    channel_refresh: float = 540.0
    """Refresh a channel binding this long after it was installed."""
    max_queued: int = 32
    """Datagrams kept per peer while its permission is pending; older ones are dropped."""
    max_stale_nonce_retries: int = 3
    """438 responses answered with a retry before giving up."""


class TurnState(enum.Enum):
    NEW = "new"
    ALLOCATING = "allocating"
    ALLOCATED = "allocated"
    FAILED = "failed"
    EXPIRED = "expired"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True, kw_only=True)
class AllocationSucceeded:
    relayed: Addr
    mapped: Addr | None
    lifetime: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AllocationFailed:
    error: TurnError


@dataclass(frozen=True, slots=True, kw_only=True)
class AllocationRefreshed:
    lifetime: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AllocationExpired:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Deallocated:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class PermissionCreated:
    peer_ip: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelBound:
    channel: int
    peer: Addr


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestFailed:
    """A Refresh, CreatePermission or ChannelBind request failed."""

    method: Method
    error: TurnError


TurnEvent = (
    AllocationSucceeded
    | AllocationFailed
    | AllocationRefreshed
    | AllocationExpired
    | Deallocated
    | PermissionCreated
    | ChannelBound
    | RequestFailed
)


class _Kind(enum.Enum):
    ALLOCATE = Method.ALLOCATE
    REFRESH = Method.REFRESH
    PERMISSION = Method.CREATE_PERMISSION
    CHANNEL = Method.CHANNEL_BIND


@dataclass(slots=True, eq=False)
class _Request:
    kind: _Kind
    txn: StunClientTransaction
    attrs: list[StunAttribute]
    authenticated: bool
    stale_retries: int = 0
    peer_ip: str | None = None
    channel: int | None = None
    peer: Addr | None = None
    lifetime: int | None = None


@dataclass(slots=True, eq=False)
class _Permission:
    expires_at: float = 0.0
    last_used: float = 0.0
    refresh_at: float | None = None
    pending: bool = False
    queue: deque[bytes] = field(default_factory=deque)
    queued_to: deque[Addr] = field(default_factory=deque)


@dataclass(slots=True, eq=False)
class _Channel:
    number: int
    peer: Addr
    bound: bool = False
    pending: bool = False
    refresh_at: float | None = None


# -- the client -----------------------------------------------------------------------------------


RELIABLE_TIMERS = StunTimers(rto=39.5, rc=1, rm=1)
"""RFC 8489 §6.2.2: over TCP a request is sent once and times out after Ti = 39.5 s."""


class StreamFramer:
    """Splits a TURN-over-TCP byte stream into STUN messages and ChannelData frames (RFC 8656 §12.5).

    Bounded: a frame header announcing more than ``max_frame`` bytes raises
    :class:`~rtpcore.errors.TurnError` (the connection must be closed).
    """

    def __init__(self, max_frame: int = 65535 + 20) -> None:
        self._buf = bytearray()
        self.max_frame = max_frame

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf
        buf += data
        out: list[bytes] = []
        while len(buf) >= 4:
            first = buf[0]
            length = int.from_bytes(buf[2:4], "big")
            if first < 0x40:
                total = 20 + length  # STUN: header + attributes (always a multiple of 4)
            elif first < 0x80:
                total = 4 + length + (-length & 3)  # ChannelData, padded on streams
            else:
                raise TurnError(f"bad first byte {first:#x} on a TURN stream", error_code=400)
            if total > self.max_frame:
                raise TurnError(f"TURN frame of {total} bytes exceeds {self.max_frame}", error_code=400)
            if len(buf) < total:
                break
            frame = bytes(buf[:total])
            del buf[:total]
            if first >= 0x40:
                frame = frame[: 4 + length]  # drop the padding: parse_channel_data wants the exact length
            out.append(frame)
        return out


class TurnClient:
    """One TURN allocation, to the server over UDP or TCP (RFC 8656 §3.1). Outputs are
    ``(data, server address)``: datagrams over UDP, stream chunks over TCP (feed the received
    stream through :class:`StreamFramer` and each frame to :meth:`receive`)."""

    def __init__(
        self,
        server: Addr,
        username: str,
        password: str,
        *,
        rng: Callable[[int], bytes] = os.urandom,
        lifetime: int = 600,
        local_addr: Addr | None = None,
        software: str | None = None,
        config: TurnConfig | None = None,
        transport: str = "udp",
    ) -> None:
        if transport not in ("udp", "tcp"):
            raise LocalProtocolError(f"TURN transport must be udp or tcp, not {transport!r}")
        self.transport = transport
        if config is None and transport == "tcp":
            config = TurnConfig(timers=RELIABLE_TIMERS)
        self.server = server
        self.local_addr = local_addr
        self._username = username
        self._password = password
        self._rng = rng
        self._requested_lifetime = lifetime
        self._software = software
        self.config = config or TurnConfig()
        self.state = TurnState.NEW
        self.relayed_address: Addr | None = None
        self.mapped_address: Addr | None = None
        self.lifetime = 0
        self.expires_at: float | None = None
        self.error: TurnError | None = None
        self._realm: str | None = None
        self._nonce: str | None = None
        self._key: bytes | None = None
        self._requests: dict[bytes, _Request] = {}
        self._refresh_at: float | None = None
        self._perms: dict[str, _Permission] = {}
        self._channels: dict[Addr, _Channel] = {}
        self._by_number: dict[int, _Channel] = {}
        self._next_channel = CHANNEL_MIN
        self._events: list[TurnEvent] = []
        self._out: list[tuple[bytes, Addr]] = []
        self.dropped = 0

    # -- public API -------------------------------------------------------------------------------
    def events(self) -> Iterator[TurnEvent]:
        while self._events:
            yield self._events.pop(0)

    def allocate(self, now: float) -> None:
        if self.state is not TurnState.NEW:
            raise LocalProtocolError(f"allocate() in state {self.state.value}")
        self.state = TurnState.ALLOCATING
        attrs: list[StunAttribute] = [RequestedTransport(17), Lifetime(self._requested_lifetime), DontFragment()]
        self._request(_Kind.ALLOCATE, attrs, now, lifetime=self._requested_lifetime)

    def refresh(self, now: float, lifetime: int | None = None) -> None:
        """Refresh now (it also happens automatically before expiry). ``lifetime=0`` deallocates."""
        self._require_allocated()
        lt = self._requested_lifetime if lifetime is None else lifetime
        self._refresh_at = None
        self._request(_Kind.REFRESH, [Lifetime(lt)], now, lifetime=lt)

    def deallocate(self, now: float) -> None:
        """RFC 8656 §8: Refresh with LIFETIME 0."""
        self.refresh(now, 0)

    def create_permission(self, peer: Addr | str, now: float) -> None:
        """Install a permission for the peer's IP; it is refreshed while data goes to that IP."""
        self._require_allocated()
        ip = peer if isinstance(peer, str) else peer[0]
        self._perms.setdefault(ip, _Permission()).last_used = now
        self._permission_request(ip, now)

    def _permission_request(self, ip: str, now: float) -> None:
        perm = self._perms.setdefault(ip, _Permission())
        if perm.pending:
            return
        perm.pending = True
        perm.refresh_at = None
        self._request(_Kind.PERMISSION, [XorPeerAddress((ip, 0))], now, peer_ip=ip)

    def bind_channel(self, peer: Addr, now: float) -> int:
        """Bind (or refresh) a channel to ``peer``; data uses ChannelData once it is bound."""
        self._require_allocated()
        ch = self._channels.get(peer)
        if ch is None:
            if self._next_channel > CHANNEL_MAX:
                raise LocalProtocolError("no channel numbers left")
            ch = _Channel(self._next_channel, peer)
            self._next_channel += 1
            self._channels[peer] = ch
            self._by_number[ch.number] = ch
        if not ch.pending:
            ch.pending = True
            ch.refresh_at = None
            self._request(
                _Kind.CHANNEL, [ChannelNumber(ch.number), XorPeerAddress(peer)], now, channel=ch.number, peer=peer
            )
        return ch.number

    def channel_for(self, peer: Addr) -> int | None:
        ch = self._channels.get(peer)
        return ch.number if ch is not None and ch.bound else None

    def has_permission(self, peer_ip: str, now: float) -> bool:
        perm = self._perms.get(peer_ip)
        return perm is not None and perm.expires_at > now

    def send(self, data: bytes, peer: Addr, now: float) -> list[tuple[bytes, Addr]]:
        """Datagrams to the server relaying ``data`` to ``peer`` (ChannelData when bound, else a
        Send indication). Without a permission one is requested and the data waits for it."""
        if self.state is not TurnState.ALLOCATED:
            return []
        ch = self._channels.get(peer)
        if ch is not None and ch.bound:
            # RFC 8656 §12.5: over TCP, ChannelData is padded to a multiple of four bytes
            return [(encode_channel_data(ch.number, data, pad=self.transport == "tcp"), self.server)]
        ip = peer[0]
        perm = self._perms.get(ip)
        if perm is not None:
            perm.last_used = now
        if perm is None or perm.expires_at <= now:
            self._permission_request(ip, now)
            perm = self._perms[ip]
            perm.last_used = now
            perm.queue.append(data)
            perm.queued_to.append(peer)
            while len(perm.queue) > self.config.max_queued:
                perm.queue.popleft()
                perm.queued_to.popleft()
                self.dropped += 1
            return []
        return [(self._send_indication(data, peer), self.server)]

    def _send_indication(self, data: bytes, peer: Addr) -> bytes:
        ind = StunMessage(
            Method.SEND, MessageClass.INDICATION, new_transaction_id(self._rng), [XorPeerAddress(peer), Data(data)]
        )
        return ind.encode()

    # -- receiving ----------------------------------------------------------------------------------
    def receive(self, data: bytes, addr: Addr, now: float) -> tuple[bytes, Addr] | None:
        """Feed a datagram from the server. Returns ``(payload, peer)`` for relayed data."""
        if addr != self.server:
            self.dropped += 1
            return None
        if is_channel_data(data):
            try:
                number, payload = parse_channel_data(data)
            except TurnError:
                self.dropped += 1
                return None
            ch = self._by_number.get(number)
            if ch is None or not ch.bound:
                self.dropped += 1
                return None
            return payload, ch.peer
        if not is_stun(data):
            self.dropped += 1
            return None
        try:
            msg = parse_message(data)
        except StunError:
            self.dropped += 1
            return None
        if msg.message_class is MessageClass.INDICATION:
            if msg.method == Method.DATA:
                peer_attr, data_attr = msg.get(XorPeerAddress), msg.get(Data)
                if peer_attr is not None and data_attr is not None:
                    return data_attr.value, peer_attr.address
            self.dropped += 1
            return None
        req = self._requests.get(msg.transaction_id)
        if req is None or not req.txn.receive_response(msg, addr, now):
            self.dropped += 1
            return None
        del self._requests[msg.transaction_id]
        self._on_response(req, msg, now)
        return None

    # -- requests -----------------------------------------------------------------------------------
    def _require_allocated(self) -> None:
        if self.state is not TurnState.ALLOCATED:
            raise LocalProtocolError(f"TURN allocation is {self.state.value}, not allocated")

    def _request(
        self,
        kind: _Kind,
        attrs: list[StunAttribute],
        now: float,
        *,
        stale_retries: int = 0,
        peer_ip: str | None = None,
        channel: int | None = None,
        peer: Addr | None = None,
        lifetime: int | None = None,
    ) -> None:
        body = list(attrs)
        if self._software:
            body.append(Software(self._software))
        authenticated = self._key is not None
        if authenticated:
            if self._realm is None or self._nonce is None:
                raise LocalProtocolError("internal state: _realm, _nonce not set (set together with the key)")
            body += [Username(self._username), Realm(self._realm), Nonce(self._nonce)]
        msg = StunMessage(kind.value, MessageClass.REQUEST, new_transaction_id(self._rng), body)
        txn = StunClientTransaction.for_message(
            msg,
            self.server,
            now,
            timers=self.config.timers,
            integrity_key=self._key,
            src=self.local_addr,
            accept_unauthenticated=_UNAUTH_OK,
        )
        self._requests[txn.transaction_id] = _Request(
            kind, txn, attrs, authenticated, stale_retries, peer_ip, channel, peer, lifetime
        )

    def _retry(self, req: _Request, now: float, *, stale: bool = False) -> None:
        self._request(
            req.kind,
            req.attrs,
            now,
            stale_retries=req.stale_retries + (1 if stale else 0),
            peer_ip=req.peer_ip,
            channel=req.channel,
            peer=req.peer,
            lifetime=req.lifetime,
        )

    def _on_response(self, req: _Request, msg: StunMessage, now: float) -> None:
        err = msg.error
        if err is not None:
            realm, nonce = msg.get(Realm), msg.get(Nonce)
            if err.code == 401 and not req.authenticated and realm is not None and nonce is not None:
                self._realm, self._nonce = realm.value, nonce.value
                self._key = long_term_key(self._username, realm.value, self._password)
                self._retry(req, now)
                return
            if err.code == 438 and nonce is not None and req.stale_retries < self.config.max_stale_nonce_retries:
                self._nonce = nonce.value
                if realm is not None and realm.value != self._realm:
                    self._realm = realm.value
                    self._key = long_term_key(self._username, realm.value, self._password)
                self._retry(req, now, stale=True)
                return
            self._fail(req, TurnError(f"{req.kind.value.name} failed: {err.code} {err.reason}", error_code=err.code), now)
            return
        if req.kind is _Kind.ALLOCATE:
            relayed, mapped, lt = msg.get(XorRelayedAddress), msg.get(XorMappedAddress), msg.get(Lifetime)
            if relayed is None or lt is None:
                self._fail(req, TurnError("Allocate success without XOR-RELAYED-ADDRESS/LIFETIME", error_code=0), now)
                return
            self.relayed_address = relayed.address
            self.mapped_address = mapped.address if mapped is not None else None
            self._set_lifetime(lt.value, now)
            self.state = TurnState.ALLOCATED
            _log.info("TURN allocated %s:%d for %ds", relayed.address[0], relayed.address[1], lt.value)
            self._events.append(
                AllocationSucceeded(relayed=relayed.address, mapped=self.mapped_address, lifetime=lt.value)
            )
        elif req.kind is _Kind.REFRESH:
            if req.lifetime == 0:
                self._close()
                return
            lt = msg.get(Lifetime)
            self._set_lifetime(lt.value if lt is not None else self._requested_lifetime, now)
            self._events.append(AllocationRefreshed(lifetime=self.lifetime))
        elif req.kind is _Kind.PERMISSION and req.peer_ip is not None:
            perm = self._perms.setdefault(req.peer_ip, _Permission())
            perm.pending = False
            perm.expires_at = now + self.config.permission_lifetime
            perm.refresh_at = now + self.config.permission_refresh
            self._events.append(PermissionCreated(peer_ip=req.peer_ip))
            while perm.queue:
                self._out.append((self._send_indication(perm.queue.popleft(), perm.queued_to.popleft()), self.server))
        elif req.kind is _Kind.CHANNEL and req.peer is not None:
            ch = self._channels[req.peer]
            was_bound = ch.bound
            ch.bound, ch.pending = True, False
            ch.refresh_at = now + self.config.channel_refresh
            # a channel binding also installs/refreshes the permission (§11.2)
            perm = self._perms.setdefault(req.peer[0], _Permission())
            perm.expires_at = now + self.config.permission_lifetime
            if not was_bound:
                self._events.append(ChannelBound(channel=ch.number, peer=ch.peer))

    def _set_lifetime(self, lifetime: int, now: float) -> None:
        self.lifetime = lifetime
        self.expires_at = now + lifetime
        margin = min(self.config.refresh_margin, lifetime / 2)
        self._refresh_at = now + max(0.0, lifetime - margin)

    def _fail(self, req: _Request, error: TurnError, now: float) -> None:
        _log.warning("TURN %s", error)
        if req.kind is _Kind.ALLOCATE:
            self.state = TurnState.FAILED
            self.error = error
            self._events.append(AllocationFailed(error=error))
            return
        if req.kind is _Kind.REFRESH and req.lifetime == 0:
            self._close()  # RFC 8656 §8: 437 on deallocation means it is already gone
            return
        if req.kind is _Kind.PERMISSION and req.peer_ip is not None:
            perm = self._perms.get(req.peer_ip)
            if perm is not None:
                perm.pending = False
                self.dropped += len(perm.queue)
                perm.queue.clear()
                perm.queued_to.clear()
        if req.kind is _Kind.CHANNEL and req.peer is not None:
            ch = self._channels.get(req.peer)
            if ch is not None:
                ch.pending = False
        if req.kind is _Kind.REFRESH and error.error_code == 437:
            self._expire()
            return
        self.error = error
        self._events.append(RequestFailed(method=req.kind.value, error=error))

    def _close(self) -> None:
        self.state = TurnState.CLOSED
        self._refresh_at = None
        for r in self._requests.values():
            r.txn.cancel()
        self._requests.clear()
        self._events.append(Deallocated())

    def _expire(self) -> None:
        if self.state is TurnState.ALLOCATED:
            self.state = TurnState.EXPIRED
            self._refresh_at = None
            self._events.append(AllocationExpired())

    # -- sans-IO plumbing -----------------------------------------------------------------------------
    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Addr]]:
        for req in self._requests.values():
            for d in req.txn.datagrams_to_send(now):
                self._out.append((d, self.server))
        out, self._out = self._out, []
        return out

    def next_deadline(self) -> float | None:
        times = [d for r in self._requests.values() if (d := r.txn.next_deadline()) is not None]
        if self.state is TurnState.ALLOCATED:
            if self._refresh_at is not None:
                times.append(self._refresh_at)
            if self.expires_at is not None:
                times.append(self.expires_at)
            times += [p.refresh_at for p in self._perms.values() if p.refresh_at is not None]
            times += [c.refresh_at for c in self._channels.values() if c.refresh_at is not None]
        return min(times) if times else None

    def handle_timeout(self, now: float) -> None:
        for tid, req in list(self._requests.items()):
            req.txn.handle_timeout(now)
            if req.txn.state is TransactionState.TIMED_OUT:
                del self._requests[tid]
                self._fail(req, TurnError(f"{req.kind.value.name} timed out", error_code=0), now)
        if self.state is not TurnState.ALLOCATED:
            return
        if self.expires_at is not None and now >= self.expires_at:
            self._expire()
            return
        if self._refresh_at is not None and now >= self._refresh_at:
            self.refresh(now)
        channel_ips = {p[0] for p, ch in self._channels.items() if ch.bound}
        for ip, perm in self._perms.items():
            if perm.refresh_at is not None and now >= perm.refresh_at:
                # §9: refresh only while the permission is in use; idle ones lapse
                if ip in channel_ips or now - perm.last_used < self.config.permission_lifetime:
                    self._permission_request(ip, now)
                else:
                    perm.refresh_at = None
        for peer, ch in self._channels.items():
            if ch.refresh_at is not None and now >= ch.refresh_at:
                self.bind_channel(peer, now)
