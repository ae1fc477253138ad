"""TURN client (RFC 8656) against captured coturn messages and a sans-IO fake TURN server.

The fake server follows RFC 8656 closely enough to exercise the client: long-term
credentials with REALM/NONCE (401, then 438 when the nonce rotates), allocation lifetimes,
permissions, channel bindings, Send/Data indications and ChannelData, all relayed over the
simulated network (tests/netsim.py). The last tests run two ICE agents behind symmetric NATs
that can only meet through relayed candidates.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from netsim import LinkProfile, NatKind, Simulation
from rtpcore.errors import LocalProtocolError, StunError, TurnError
from rtpcore.ice.agent import IceAgent, IceConfig
from rtpcore.ice.candidate import CandidateType
from rtpcore.ice.stun import (
    ChannelNumber,
    Data,
    ErrorCode,
    Lifetime,
    MessageClass,
    MessageIntegrity,
    Method,
    Nonce,
    Realm,
    RequestedTransport,
    StunAttribute,
    StunMessage,
    Username,
    XorMappedAddress,
    XorPeerAddress,
    XorRelayedAddress,
    is_stun,
    long_term_key,
    parse_message,
)
from rtpcore.ice.stun_transaction import StunTimers
from rtpcore.ice.turn import (
    AllocationExpired,
    AllocationFailed,
    AllocationRefreshed,
    AllocationSucceeded,
    ChannelBound,
    Deallocated,
    PermissionCreated,
    RequestFailed,
    TurnClient,
    TurnConfig,
    TurnServer,
    TurnState,
    encode_channel_data,
    is_channel_data,
    parse_channel_data,
)

Addr = tuple[str, int]
VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "stun"
SERVER = ("198.51.100.10", 3478)
REALM = "lab.local"


# -- a sans-IO TURN server ------------------------------------------------------------------------------


@dataclass
class Allocation:
    client: Addr
    relay: Addr
    username: str
    expires: float
    perms: dict[str, float] = field(default_factory=dict)
    channels: dict[int, Addr] = field(default_factory=dict)


class FakeTurnServer:
    """RFC 8656 server core. Outputs are (data, dst, src): src is the server or a relayed address."""

    def __init__(self, sim: Simulation, address: Addr = SERVER, users: dict[str, str] | None = None) -> None:
        self.sim = sim
        self.address = address
        self.users = users or {"alice": "secret"}
        self.nonce_counter = 0
        self.nonce = self._new_nonce()
        self.reject_with: int | None = None
        self.max_lifetime = 3600
        self.allocs: dict[Addr, Allocation] = {}
        self.by_relay: dict[Addr, Allocation] = {}
        self.next_port = 50000
        self.out: list[tuple[bytes, Addr, Addr]] = []
        self.log: list[tuple[str, int]] = []  # (method name, response code; 0 = success)
        self.relayed_to_peer = 0
        self.relayed_to_client = 0
        sim.add_endpoint(address, on_receive=self.receive, outgoing=self.datagrams_to_send,
                         next_deadline=self.next_deadline, on_timeout=self.handle_timeout)

    def _new_nonce(self) -> str:
        self.nonce_counter += 1
        return f"nonce{self.nonce_counter:04d}"

    def rotate_nonce(self) -> None:
        self.nonce = self._new_nonce()

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Addr, Addr]]:
        out, self.out = self.out, []
        return out

    def next_deadline(self) -> float | None:
        return min((a.expires for a in self.allocs.values()), default=None)

    def handle_timeout(self, now: float) -> None:
        for a in [a for a in self.allocs.values() if a.expires <= now]:
            self._drop(a)

    def _drop(self, a: Allocation) -> None:
        self.allocs.pop(a.client, None)
        self.by_relay.pop(a.relay, None)
        self.sim.remove_endpoint(a.relay)

    # -- client side --------------------------------------------------------------------------------
    def receive(self, data: bytes, src: Addr, now: float) -> None:
        alloc = self.allocs.get(src)
        if is_channel_data(data):
            ch, payload = parse_channel_data(data)
            if alloc is not None and ch in alloc.channels:
                self.relayed_to_peer += 1
                self.out.append((payload, alloc.channels[ch], alloc.relay))
            return
        try:
            msg = parse_message(data)
        except StunError:
            return
        if msg.message_class is MessageClass.INDICATION and msg.method == Method.SEND and alloc is not None:
            peer, payload = msg.get(XorPeerAddress), msg.get(Data)
            if peer is not None and payload is not None and alloc.perms.get(peer.address[0], 0) > now:
                self.relayed_to_peer += 1
                self.out.append((payload.value, peer.address, alloc.relay))
            return
        if msg.message_class is not MessageClass.REQUEST:
            return
        if msg.method == Method.BINDING:
            self._reply(msg, src, [XorMappedAddress(src)], None)
            return
        key = self._authenticate(msg, src)
        if key is None:
            return
        if self.reject_with is not None:
            self._error(msg, src, self.reject_with, key)
            return
        handler = {
            Method.ALLOCATE: self._allocate,
            Method.REFRESH: self._refresh,
            Method.CREATE_PERMISSION: self._permission,
            Method.CHANNEL_BIND: self._channel_bind,
        }.get(msg.method)
        if handler is None:
            self._error(msg, src, 400, key)
        else:
            handler(msg, src, key, now)

    def _authenticate(self, msg: StunMessage, src: Addr) -> bytes | None:
        """RFC 8489 §9.2.4."""
        user, realm, nonce = msg.get(Username), msg.get(Realm), msg.get(Nonce)
        if msg.get(MessageIntegrity) is None:
            self._error(msg, src, 401, None, challenge=True)
            return None
        if user is None or realm is None or nonce is None:
            self._error(msg, src, 400, None)
            return None
        if nonce.value != self.nonce:
            self._error(msg, src, 438, None, challenge=True)
            return None
        password = self.users.get(user.value)
        key = long_term_key(user.value, REALM, password) if password is not None else None
        if key is None or not msg.verify_integrity(key):
            self._error(msg, src, 401, None, challenge=True)
            return None
        return key

    def _reply(self, msg: StunMessage, dst: Addr, attrs: list[StunAttribute], key: bytes | None) -> None:
        resp = StunMessage(msg.method, MessageClass.SUCCESS, msg.transaction_id, attrs)
        self.log.append((Method(msg.method).name, 0))
        self.out.append((resp.encode(integrity_key=key, fingerprint=True), dst, self.address))

    def _error(self, msg: StunMessage, dst: Addr, code: int, key: bytes | None, challenge: bool = False) -> None:
        attrs: list[StunAttribute] = [ErrorCode(code, "x")]
        if challenge:
            attrs += [Realm(REALM), Nonce(self.nonce)]
        resp = StunMessage(msg.method, MessageClass.ERROR, msg.transaction_id, attrs)
        self.log.append((Method(msg.method).name, code))
        self.out.append((resp.encode(integrity_key=key, fingerprint=True), dst, self.address))

    def _allocate(self, msg: StunMessage, src: Addr, key: bytes, now: float) -> None:
        if src in self.allocs:
            self._error(msg, src, 437, key)
            return
        rt = msg.get(RequestedTransport)
        if rt is None or rt.protocol != 17:
            self._error(msg, src, 442, key)
            return
        lt = msg.get(Lifetime)
        lifetime = min(lt.value if lt else 600, self.max_lifetime)
        relay = (self.address[0], self.next_port)
        self.next_port += 1
        user = msg.get(Username)
        a = Allocation(src, relay, user.value if user else "", now + lifetime)
        self.allocs[src] = a
        self.by_relay[relay] = a
        self.sim.add_endpoint(
            relay,
            on_receive=lambda d, src, now, relay=relay: self._from_peer(relay, d, src, now),
            outgoing=self.datagrams_to_send,
        )
        self._reply(msg, src, [XorRelayedAddress(relay), XorMappedAddress(src), Lifetime(lifetime)], key)

    def _refresh(self, msg: StunMessage, src: Addr, key: bytes, now: float) -> None:
        a = self.allocs.get(src)
        if a is None:
            self._error(msg, src, 437, key)
            return
        lt = msg.get(Lifetime)
        lifetime = min(lt.value if lt else 600, self.max_lifetime)
        if lifetime == 0:
            self._drop(a)
        else:
            a.expires = now + lifetime
        self._reply(msg, src, [Lifetime(lifetime)], key)

    def _permission(self, msg: StunMessage, src: Addr, key: bytes, now: float) -> None:
        a = self.allocs.get(src)
        peers = msg.get_all(XorPeerAddress)
        if a is None or not peers:
            self._error(msg, src, 437 if a is None else 400, key)
            return
        for p in peers:
            a.perms[p.address[0]] = now + 300
        self._reply(msg, src, [], key)

    def _channel_bind(self, msg: StunMessage, src: Addr, key: bytes, now: float) -> None:
        a = self.allocs.get(src)
        ch, peer = msg.get(ChannelNumber), msg.get(XorPeerAddress)
        if a is None or ch is None or peer is None or not 0x4000 <= ch.number <= 0x4FFF:
            self._error(msg, src, 400, key)
            return
        a.channels[ch.number] = peer.address
        a.perms[peer.address[0]] = now + 300
        self._reply(msg, src, [], key)

    # -- peer side ----------------------------------------------------------------------------------
    def _from_peer(self, relay: Addr, data: bytes, src: Addr, now: float) -> None:
        a = self.by_relay.get(relay)
        if a is None or a.perms.get(src[0], 0) <= now:
            return  # RFC 8656 §9: no permission, silently dropped
        self.relayed_to_client += 1
        for num, peer in a.channels.items():
            if peer == src:
                self.out.append((encode_channel_data(num, data), a.client, self.address))
                break
        else:
            ind = StunMessage(Method.DATA, MessageClass.INDICATION, bytes(12), [XorPeerAddress(src), Data(data)])
            self.out.append((ind.encode(), a.client, self.address))


class EchoPeer:
    def __init__(self) -> None:
        self.out: list[tuple[bytes, Addr]] = []
        self.got: list[tuple[bytes, Addr]] = []

    def receive(self, data: bytes, src: Addr, now: float) -> None:
        self.got.append((data, src))
        self.out.append((b"echo:" + data, src))

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Addr]]:
        out, self.out = self.out, []
        return out


class ClientHost:
    """A TurnClient bound to one simulated socket; records relayed payloads and events."""

    def __init__(self, sim: Simulation, addr: Addr, client: TurnClient) -> None:
        self.sim, self.addr, self.client = sim, addr, client
        self.got: list[tuple[bytes, Addr]] = []
        self.events: list = []
        sim.add_endpoint(addr, on_receive=self.receive, outgoing=self.outgoing,
                         next_deadline=client.next_deadline, on_timeout=client.handle_timeout)

    def receive(self, data: bytes, src: Addr, now: float) -> None:
        r = self.client.receive(data, src, now)
        if r is not None:
            self.got.append(r)

    def outgoing(self, now: float) -> list[tuple[bytes, Addr]]:
        self.events.extend(self.client.events())
        return self.client.datagrams_to_send(now)

    def send(self, data: bytes, peer: Addr) -> None:
        for d, dst in self.client.send(data, peer, self.sim.clock.now):
            self.sim.send(self.addr, dst, d)

    def of(self, kind: type) -> list:
        self.events.extend(self.client.events())
        return [e for e in self.events if isinstance(e, kind)]


def setup(loss: float = 0.0, password: str = "secret", lifetime: int = 600, seed: int = 1, **kw):
    sim = Simulation(seed=seed, profile=LinkProfile(loss=loss, delay=0.01))
    server = FakeTurnServer(sim)
    peer = EchoPeer()
    peer_addr = ("203.0.113.5", 7000)
    sim.add_endpoint(peer_addr, on_receive=peer.receive, outgoing=peer.datagrams_to_send)
    client = TurnClient(SERVER, "alice", password, rng=random.Random(seed).randbytes, lifetime=lifetime, **kw)
    host = ClientHost(sim, ("10.0.0.1", 5000), client)
    return sim, server, peer, peer_addr, client, host


def allocated(client: TurnClient):
    return lambda: client.state is TurnState.ALLOCATED


# -- ChannelData framing (RFC 8656 §12.4) --------------------------------------------------------------------


def test_channel_data_capture_from_coturn() -> None:
    data = (VECTORS / "captures" / "coturn_channeldata.bin").read_bytes()
    assert is_channel_data(data) and not is_stun(data)
    ch, payload = parse_channel_data(data)
    assert ch == 0x55E8 and len(payload) == 100  # RFC 5766-range channel, as turnutils uses
    assert encode_channel_data(ch, payload) == data


def test_channel_data_padding_and_errors() -> None:
    framed = encode_channel_data(0x4001, b"abcde", pad=True)
    assert framed == b"\x40\x01\x00\x05abcde\x00\x00\x00"
    assert parse_channel_data(framed) == (0x4001, b"abcde")
    assert parse_channel_data(encode_channel_data(0x4001, b"abcde")) == (0x4001, b"abcde")
    for bad in (b"\x40\x01\x00", b"\x3f\xff\x00\x00", b"\x80\x00\x00\x00", b"\x40\x01\x00\x05abc", b"\x40\x01\x00\x01abcde"):
        with pytest.raises(TurnError):
            parse_channel_data(bad)
    with pytest.raises(LocalProtocolError):
        encode_channel_data(0x3000, b"")


# -- against captured coturn responses ------------------------------------------------------------------------


def _retarget(name: str, tid: bytes, key: bytes | None) -> bytes:
    """A captured coturn response re-addressed to our transaction id (and re-signed)."""
    msg = parse_message((VECTORS / "captures" / name).read_bytes())
    msg.transaction_id = tid
    if key is None:
        return msg.encode(fingerprint=True)
    # XOR addresses depend on the transaction id: re-encode the typed values, then re-sign
    return msg.encode(integrity_key=key, fingerprint=True)


def test_client_handles_real_coturn_challenge_and_success() -> None:
    captures = {f["file"]: f for f in json.loads((VECTORS / "captures.json").read_text())["fixtures"]}
    key_hex = captures["captures/coturn_allocate_success.bin"]["integrity"]["key_hex"]
    server = ("127.0.0.1", 3478)
    c = TurnClient(server, "test", "test", rng=random.Random(3).randbytes, lifetime=777)
    c.allocate(0.0)
    first = parse_message(c.datagrams_to_send(0.0)[0][0])
    assert first.method is Method.ALLOCATE and first.get(RequestedTransport) == RequestedTransport(17)
    assert first.get(Lifetime) == Lifetime(777) and not first.has_integrity
    c.receive(_retarget("coturn_allocate_401.bin", first.transaction_id, None), server, 0.01)
    second = parse_message(c.datagrams_to_send(0.01)[0][0])
    # same shape as turnutils' authenticated retry, signed with MD5("test:lab.local:test")
    assert second.get(Username) == Username("test") and second.get(Realm) == Realm("lab.local")
    assert second.get(Nonce) == Nonce("fe92f821beb6b344")
    assert second.verify_integrity(bytes.fromhex(key_hex))
    c.receive(_retarget("coturn_allocate_success.bin", second.transaction_id, bytes.fromhex(key_hex)), server, 0.02)
    assert c.state is TurnState.ALLOCATED
    assert c.relayed_address == ("127.0.0.1", 49160) and c.mapped_address == ("127.0.0.1", 50496)
    assert c.lifetime == 777
    ev = list(c.events())
    assert ev == [AllocationSucceeded(relayed=("127.0.0.1", 49160), mapped=("127.0.0.1", 50496), lifetime=777)]


def test_client_rejects_forged_success_and_reports_second_401() -> None:
    server = ("127.0.0.1", 3478)
    c = TurnClient(server, "test", "WRONG", rng=random.Random(4).randbytes)
    c.allocate(0.0)
    tid = parse_message(c.datagrams_to_send(0.0)[0][0]).transaction_id
    c.receive(_retarget("coturn_allocate_401.bin", tid, None), server, 0.01)
    tid2 = parse_message(c.datagrams_to_send(0.01)[0][0]).transaction_id
    # a success signed with the real key does not verify with the client's (wrong) key: ignored
    c.receive(_retarget("coturn_allocate_success.bin", tid2, long_term_key("test", "lab.local", "test")), server, 0.02)
    assert c.state is TurnState.ALLOCATING and c.dropped == 1
    c.receive(_retarget("coturn_allocate_401_wrong_password.bin", tid2, None), server, 0.03)
    assert c.state is TurnState.FAILED
    assert isinstance(c.error, TurnError) and c.error.error_code == 401
    assert [type(e) for e in c.events()] == [AllocationFailed]


# -- on the simulated network -------------------------------------------------------------------------------


def test_allocate_permission_send_and_data_indications() -> None:
    sim, server, peer, peer_addr, client, host = setup()
    client.allocate(sim.clock.now)
    assert sim.run_for(2.0, allocated(client))
    assert server.log[:2] == [("ALLOCATE", 401), ("ALLOCATE", 0)]
    assert client.relayed_address == ("198.51.100.10", 50000) and client.mapped_address == ("10.0.0.1", 5000)
    host.send(b"hello", peer_addr)  # waits for the permission, then goes as a Send indication
    sim.run_for(1.0)
    assert peer.got == [(b"hello", client.relayed_address)]
    assert host.got == [(b"echo:hello", peer_addr)]
    assert host.of(PermissionCreated) == [PermissionCreated(peer_ip="203.0.113.5")]
    assert client.has_permission("203.0.113.5", sim.clock.now)
    # a peer without permission cannot reach us through the relay
    stranger = ("203.0.113.99", 1)
    sim.add_endpoint(stranger)
    sim.send(stranger, client.relayed_address, b"spam")
    sim.run_for(0.5)
    assert len(host.got) == 1


def test_channel_bind_then_channel_data_both_ways() -> None:
    sim, server, peer, peer_addr, client, host = setup()
    client.allocate(sim.clock.now)
    assert sim.run_for(2.0, allocated(client))
    ch = client.bind_channel(peer_addr, sim.clock.now)
    assert 0x4000 <= ch <= 0x4FFF
    sim.run_for(0.5)
    assert host.of(ChannelBound) == [ChannelBound(channel=ch, peer=peer_addr)]
    assert client.channel_for(peer_addr) == ch
    out = client.send(b"via-channel", peer_addr, sim.clock.now)
    assert out and parse_channel_data(out[0][0]) == (ch, b"via-channel")
    host.send(b"x" * 7, peer_addr)
    sim.run_for(0.5)
    assert peer.got == [(b"x" * 7, client.relayed_address)]
    assert host.got == [(b"echo:" + b"x" * 7, peer_addr)]
    assert server.relayed_to_client == 1


def test_refresh_keeps_allocation_permission_and_channel_alive() -> None:
    sim, server, peer, peer_addr, client, host = setup(lifetime=600)
    client.allocate(sim.clock.now)
    assert sim.run_for(2.0, allocated(client))
    client.bind_channel(peer_addr, sim.clock.now)
    host.send(b"a", peer_addr)
    sim.run_for(1300.0)
    refreshes = [c for m, c in server.log if m == "REFRESH"]
    assert refreshes.count(0) >= 2
    assert [m for m, c in server.log if m == "CHANNEL_BIND" and c == 0].__len__() >= 3  # every 540 s
    assert client.state is TurnState.ALLOCATED and len(host.of(AllocationRefreshed)) >= 2
    host.send(b"late", peer_addr)
    sim.run_for(0.5)
    assert (b"echo:late", peer_addr) in host.got
    assert client.expires_at is not None and client.expires_at > sim.clock.now


def test_idle_permissions_lapse_and_used_ones_are_refreshed() -> None:
    sim, server, peer, peer_addr, client, host = setup(lifetime=3600)
    client.allocate(sim.clock.now)
    assert sim.run_for(2.0, allocated(client))
    other = ("203.0.113.6", 7000)
    sim.add_endpoint(other)
    host.send(b"once", other)  # used once, then idle
    for _ in range(20):  # the echo peer gets data every 50 s for 1000 s
        host.send(b"tick", peer_addr)
        sim.run_for(50.0)
    assert client.has_permission("203.0.113.5", sim.clock.now)
    assert not client.has_permission("203.0.113.6", sim.clock.now)
    perms = [c for m, c in server.log if m == "CREATE_PERMISSION"]
    assert 5 <= len(perms) <= 8  # 1 + one refresh for the idle peer, 1 + ~4 refreshes for the busy one


def test_stale_nonce_is_retried_with_the_new_nonce() -> None:
    sim, server, peer, peer_addr, client, host = setup()
    client.allocate(sim.clock.now)
    assert sim.run_for(2.0, allocated(client))
    server.rotate_nonce()
    client.refresh(sim.clock.now)
    sim.run_for(1.0)
    assert server.log[-2:] == [("REFRESH", 438), ("REFRESH", 0)]
    assert client.state is TurnState.ALLOCATED and not host.of(RequestFailed)


def test_wrong_password_fails_with_turn_error_401() -> None:
    sim, server, peer, peer_addr, client, host = setup(password="wrong")
    client.allocate(sim.clock.now)
    sim.run_for(2.0, lambda: client.state is TurnState.FAILED)
    assert client.state is TurnState.FAILED
    failed = host.of(AllocationFailed)
    assert len(failed) == 1 and failed[0].error.error_code == 401
    assert server.log == [("ALLOCATE", 401), ("ALLOCATE", 401)]  # no endless retry loop
    with pytest.raises(LocalProtocolError):
        client.bind_channel(peer_addr, sim.clock.now)


def test_server_error_is_reported_with_its_code() -> None:
    sim, server, peer, peer_addr, client, host = setup()
    server.reject_with = 486
    client.allocate(sim.clock.now)
    sim.run_for(2.0, lambda: client.state is TurnState.FAILED)
    assert client.error is not None and client.error.error_code == 486
    assert isinstance(client.error, TurnError)


def test_request_failure_after_allocation_is_an_event() -> None:
    sim, server, peer, peer_addr, client, host = setup()
    client.allocate(sim.clock.now)
    assert sim.run_for(2.0, allocated(client))
    server.reject_with = 403
    client.create_permission(peer_addr, sim.clock.now)
    sim.run_for(1.0)
    failed = host.of(RequestFailed)
    assert failed and failed[0].method is Method.CREATE_PERMISSION and failed[0].error.error_code == 403
    assert client.state is TurnState.ALLOCATED


def test_deallocate_with_lifetime_zero() -> None:
    sim, server, peer, peer_addr, client, host = setup()
    client.allocate(sim.clock.now)
    assert sim.run_for(2.0, allocated(client))
    client.deallocate(sim.clock.now)
    sim.run_for(1.0, lambda: client.state is TurnState.CLOSED)
    assert client.state is TurnState.CLOSED and host.of(Deallocated)
    assert server.allocs == {} and client.next_deadline() is None
    assert client.send(b"x", peer_addr, sim.clock.now) == []


def test_allocation_expires_when_the_server_disappears() -> None:
    cfg = TurnConfig(timers=StunTimers(rto=0.5, rc=3, rm=2))
    sim, server, peer, peer_addr, client, host = setup(lifetime=120, config=cfg)
    client.allocate(sim.clock.now)
    assert sim.run_for(2.0, allocated(client))
    sim.remove_endpoint(SERVER)
    sim.run_for(200.0)
    assert client.state is TurnState.EXPIRED and host.of(AllocationExpired)
    assert any(e.method is Method.REFRESH for e in host.of(RequestFailed))


def test_unreachable_server_times_out() -> None:
    sim = Simulation(seed=2)
    client = TurnClient(("198.51.100.77", 3478), "a", "b", rng=random.Random(1).randbytes,
                        config=TurnConfig(timers=StunTimers(rto=0.1, rc=3, rm=2)))
    host = ClientHost(sim, ("10.0.0.1", 5000), client)
    client.allocate(sim.clock.now)
    sim.run_for(5.0)
    assert client.state is TurnState.FAILED and host.of(AllocationFailed)
    assert client.error is not None and client.error.error_code == 0


def test_allocation_survives_30_percent_loss() -> None:
    for seed in (1, 2, 3):
        sim, server, peer, peer_addr, client, host = setup(loss=0.3, seed=seed)
        client.allocate(sim.clock.now)
        assert sim.run_for(30.0, allocated(client)), seed
        client.bind_channel(peer_addr, sim.clock.now)
        sim.run_for(30.0, lambda: client.channel_for(peer_addr) is not None)
        assert client.channel_for(peer_addr) is not None


def test_misuse_is_local_protocol_error() -> None:
    c = TurnClient(SERVER, "a", "b", rng=random.Random(1).randbytes)
    with pytest.raises(LocalProtocolError):
        c.refresh(0.0)
    c.allocate(0.0)
    with pytest.raises(LocalProtocolError):
        c.allocate(0.0)
    assert c.receive(b"garbage", ("1.2.3.4", 5), 0.0) is None and c.dropped == 1
    assert c.receive(b"\x40\x00\x00\x01x", SERVER, 0.0) is None  # unbound channel
    assert c.receive(b"\x17\xfe\xfd" + bytes(20), SERVER, 0.0) is None


# -- ICE through TURN relays ------------------------------------------------------------------------------


def test_ice_connects_through_relays_when_both_sides_are_behind_symmetric_nats() -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_ice_agent import Peer, Signalling, both_completed

    sim = Simulation(seed=31, profile=LinkProfile(delay=0.01))
    server = FakeTurnServer(sim, users={"alice": "secret", "bob": "hunter2"})
    sim.add_nat("192.0.2.1", ["10.0.0.1"], NatKind.SYMMETRIC)
    sim.add_nat("192.0.2.2", ["10.0.1.1"], NatKind.SYMMETRIC)
    sim.set_link("10.0.0.1", "10.0.1.1", LinkProfile(loss=1.0))
    cfg = IceConfig(gather_timeout=3.0)
    a = IceAgent(True, rng=random.Random(1).randbytes, config=cfg, stun_servers=[SERVER],
                 turn_servers=[TurnServer(SERVER, "alice", "secret")])
    b = IceAgent(False, rng=random.Random(2).randbytes, config=cfg, stun_servers=[SERVER],
                 turn_servers=[TurnServer(SERVER, "bob", "hunter2")])
    pa, pb = Peer(sim, a, [("10.0.0.1", 5000)]), Peer(sim, b, [("10.0.1.1", 6000)])
    pa.attach()
    pb.attach()
    a.gather(sim.clock.now, pa.hosts)
    b.gather(sim.clock.now, pb.hosts)
    sig = Signalling(pa, pb)
    assert sig.run(sim, 5.0, both_completed(pa, pb)), (a.state, b.state)
    relay_a = [c for c in a.local_candidates if c.type is CandidateType.RELAY]
    assert len(relay_a) == 1 and relay_a[0].related is not None and relay_a[0].related[0] == "192.0.2.1"
    sel_a, sel_b = a.selected_pair(), b.selected_pair()
    assert CandidateType.RELAY in (sel_a[0].type, sel_b[0].type, sel_a[1].type, sel_b[1].type)
    before = server.relayed_to_peer + server.relayed_to_client
    for i in range(5):
        pa.send_app(b"\x80A%d" % i)
        pb.send_app(b"\x80B%d" % i)
        sig.run(sim, 0.05)
    assert [d for d, _ in pb.app] == [b"\x80A%d" % i for i in range(5)]
    assert [d for d, _ in pa.app] == [b"\x80B%d" % i for i in range(5)]
    assert server.relayed_to_peer + server.relayed_to_client >= before + 10
    # the relayed pair got a channel: media uses ChannelData, not Send indications
    assert any(a.channels for a in server.allocs.values())
    a.close(sim.clock.now)
    sim.run_for(2.0)
    assert len(server.allocs) == 1  # A's allocation released with LIFETIME 0


def test_stream_framer_splits_stun_and_padded_channel_data_at_any_byte() -> None:
    from rtpcore.ice.turn import StreamFramer, encode_channel_data

    stun_msg = bytes.fromhex("0001000021124442") + bytes(12)  # Binding request, no attributes
    chan = encode_channel_data(0x4001, b"abcde", pad=True)
    stream = stun_msg + chan + stun_msg
    for cut in range(1, len(stream)):
        framer = StreamFramer()
        frames = framer.feed(stream[:cut]) + framer.feed(stream[cut:])
        assert frames == [stun_msg, encode_channel_data(0x4001, b"abcde"), stun_msg]
    import pytest

    from rtpcore.errors import TurnError

    with pytest.raises(TurnError):
        StreamFramer().feed(b"\xff\x00\x00\x00")
