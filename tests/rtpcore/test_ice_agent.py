"""ICE agent (RFC 8445, RFC 8838, RFC 7675) on the simulated network (tests/netsim.py).

Two agents exchange credentials and trickled candidates through an instant "signalling"
pump; every datagram goes through the seeded network, NATs included. Everything runs on the
fake clock, so "connects within 1 s" is simulated time and each test takes milliseconds.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from netsim import LinkProfile, NatKind, Simulation
from rtpcore.errors import StunError
from rtpcore.ice.agent import (
    ConnectionStateChanged,
    ConsentLost,
    ConsentLostCause,
    GatheringComplete,
    IceAgent,
    IceConfig,
    IceConnectionState,
    IceEvent,
    LocalCandidate,
    SelectedPairChanged,
)
from rtpcore.ice.candidate import CandidateType
from rtpcore.ice.stun import (
    ErrorCode,
    IceControlling,
    MessageClass,
    Method,
    StunMessage,
    UseCandidate,
    Username,
    XorMappedAddress,
    parse_message,
)
from rtpcore.ice.stun_transaction import StunTimers

Addr = tuple[str, int]
STUN_SERVER = ("198.51.100.1", 3478)


class StunServer:
    """A sans-IO STUN Binding server (RFC 8489 §6.3): answers with XOR-MAPPED-ADDRESS."""

    def __init__(self) -> None:
        self.out: list[tuple[bytes, Addr]] = []
        self.requests = 0

    def receive(self, data: bytes, addr: Addr, now: float) -> None:
        try:
            req = parse_message(data)
        except StunError:
            return
        if req.message_class is MessageClass.REQUEST and req.method == Method.BINDING:
            self.requests += 1
            resp = StunMessage(Method.BINDING, MessageClass.SUCCESS, req.transaction_id, [XorMappedAddress(addr)])
            self.out.append((resp.encode(fingerprint=True), addr))

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Addr]]:
        out, self.out = self.out, []
        return out


@dataclass
class Peer:
    """An agent bound to simulated sockets, with what it received and emitted."""

    sim: Simulation
    agent: IceAgent
    hosts: list[Addr]
    events: list[IceEvent] = field(default_factory=list)
    app: list[tuple[bytes, float]] = field(default_factory=list)

    def attach(self) -> None:
        for i, h in enumerate(self.hosts):
            timers = i == 0  # one timer registration per agent
            self.sim.add_endpoint(
                h,
                on_receive=self._receiver(h),
                outgoing=self.agent.datagrams_to_send,
                next_deadline=self.agent.next_deadline if timers else None,
                on_timeout=self.agent.handle_timeout if timers else None,
            )

    def _receiver(self, local: Addr):
        def rx(data: bytes, src: Addr, now: float) -> None:
            out = self.agent.receive(data, src, local, now)
            if out is not None:
                self.app.append((out, now))

        return rx

    def send_app(self, data: bytes) -> int:
        out = self.agent.send(data)
        for d, dst, src in out:
            self.sim.send(src, dst, d)
        return len(out)

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]

    def states(self) -> list[IceConnectionState]:
        return [e.state for e in self.of(ConnectionStateChanged)]


def make_peer(sim: Simulation, controlling: bool, hosts: list[Addr], seed: int, **kw) -> Peer:
    agent = IceAgent(controlling, rng=random.Random(seed).randbytes, **kw)
    p = Peer(sim, agent, hosts)
    p.attach()
    return p


class Signalling:
    """Instant trickle signalling: credentials, candidates (as SDP text), end-of-candidates."""

    def __init__(self, a: Peer, b: Peer) -> None:
        self.a, self.b = a, b
        self.ufrag_sent: dict[int, str] = {}

    def pump(self) -> bool:
        for src, dst in ((self.a, self.b), (self.b, self.a)):
            sent = self.ufrag_sent.get(id(src))
            if sent != src.agent.local_ufrag:
                dst.agent.set_remote_credentials(src.agent.local_ufrag, src.agent.local_pwd)
                self.ufrag_sent[id(src)] = src.agent.local_ufrag
            for ev in src.agent.events():
                src.events.append(ev)
                if isinstance(ev, LocalCandidate) and ev.ufrag == src.agent.local_ufrag:
                    dst.agent.add_remote_candidate(ev.candidate.to_sdp())
                elif isinstance(ev, GatheringComplete) and ev.ufrag == src.agent.local_ufrag:
                    dst.agent.end_of_remote_candidates()
        return False

    def run(self, sim: Simulation, seconds: float, until=None) -> bool:
        def stop() -> bool:
            self.pump()
            return bool(until and until())

        return sim.run_for(seconds, stop_when=stop)


def both_completed(a: Peer, b: Peer):
    return lambda: a.agent.state is IceConnectionState.COMPLETED and b.agent.state is IceConnectionState.COMPLETED


def start(sim: Simulation, a: Peer, b: Peer) -> Signalling:
    now = sim.clock.now
    a.agent.gather(now, a.hosts)
    b.agent.gather(now, b.hosts)
    sig = Signalling(a, b)
    sig.pump()
    return sig


def exchange_media(sim: Simulation, sig: Signalling, a: Peer, b: Peer, n: int = 5) -> tuple[int, int]:
    na, nb = len(a.app), len(b.app)
    for i in range(n):
        a.send_app(b"\x80a%d" % i)
        b.send_app(b"\x80b%d" % i)
        sig.run(sim, 0.02)
    return len(b.app) - nb, len(a.app) - na


def assert_same_pair(a: Peer, b: Peer) -> None:
    sa, sb = a.agent.selected_pair(), b.agent.selected_pair()
    assert sa is not None and sb is not None
    # what A sends from is what B sees as the remote, modulo NAT: compare the endpoints' view
    assert sa[1].addr == sb[0].addr or sa[1].type is CandidateType.PRFLX or sb[0].type is CandidateType.PRFLX
    assert sb[1].addr == sa[0].addr or sb[1].type is CandidateType.PRFLX or sa[0].type is CandidateType.PRFLX


# -- clean network ---------------------------------------------------------------------------------


def test_two_agents_connect_on_a_clean_network_in_under_a_second() -> None:
    sim = Simulation(seed=1, profile=LinkProfile(delay=0.01))
    a = make_peer(sim, True, [("10.0.0.1", 5000)], 1)
    b = make_peer(sim, False, [("10.0.0.2", 6000)], 2)
    t0 = sim.clock.now
    sig = start(sim, a, b)
    assert sig.run(sim, 1.0, both_completed(a, b)), (a.agent.state, b.agent.state)
    assert sim.clock.now - t0 < 1.0
    sig.pump()
    for p in (a, b):
        assert p.states()[:1] == [IceConnectionState.CHECKING]
        assert IceConnectionState.COMPLETED in p.states()
        assert len(p.of(SelectedPairChanged)) == 1
    assert a.agent.selected_pair()[1].addr == ("10.0.0.2", 6000)
    assert b.agent.selected_pair()[1].addr == ("10.0.0.1", 5000)
    assert a.agent.controlling and not b.agent.controlling
    got_b, got_a = exchange_media(sim, sig, a, b)
    assert got_b == 5 and got_a == 5
    assert a.app[0][0] == b"\x80b0" and b.app[0][0] == b"\x80a0"


def test_connects_with_30_percent_loss() -> None:
    for seed in (3, 4, 5, 21, 29):
        sim = Simulation(seed=seed, profile=LinkProfile(loss=0.3, delay=0.02, jitter=0.01, reorder=0.1, duplicate=0.05))
        a = make_peer(sim, True, [("10.0.0.1", 5000)], seed * 10)
        b = make_peer(sim, False, [("10.0.0.2", 6000)], seed * 10 + 1)
        sig = start(sim, a, b)
        assert sig.run(sim, 20.0, both_completed(a, b)), (seed, a.agent.state, b.agent.state)
        assert_same_pair(a, b)
        got_b, got_a = exchange_media(sim, sig, a, b, n=40)
        assert got_b > 15 and got_a > 15


def test_multiple_host_addresses_and_two_components() -> None:
    sim = Simulation(seed=2)
    a = IceAgent(True, rng=random.Random(1).randbytes, components=2)
    b = IceAgent(False, rng=random.Random(2).randbytes, components=2)
    pa = Peer(sim, a, [("10.0.0.1", 5000), ("10.0.0.1", 5001), ("10.9.0.1", 5000)])
    pb = Peer(sim, b, [("10.0.0.2", 6000), ("10.0.0.2", 6001)])
    pa.attach()
    pb.attach()
    sim.set_link("10.9.0.1", "10.0.0.2", LinkProfile(loss=1.0))  # the second interface cannot reach B
    now = sim.clock.now
    a.gather(now, {1: [("10.0.0.1", 5000), ("10.9.0.1", 5000)], 2: [("10.0.0.1", 5001)]})
    b.gather(now, {1: [("10.0.0.2", 6000)], 2: [("10.0.0.2", 6001)]})
    sig = Signalling(pa, pb)
    assert sig.run(sim, 2.0, both_completed(pa, pb))
    assert a.selected_pair(1)[0].addr == ("10.0.0.1", 5000)
    assert a.selected_pair(2)[0].addr == ("10.0.0.1", 5001)
    assert b.selected_pair(2)[1].addr == ("10.0.0.1", 5001)
    prios = sorted((c.priority for c in a.local_candidates if c.component == 1), reverse=True)
    assert len(prios) == 2 and prios[0] > prios[1]  # distinct local preferences per interface


# -- NAT traversal -----------------------------------------------------------------------------------


def _nat_setup(kind_a: NatKind, kind_b: NatKind | None, seed: int = 7):
    sim = Simulation(seed=seed, profile=LinkProfile(delay=0.01))
    stun = StunServer()
    sim.add_endpoint(STUN_SERVER, on_receive=stun.receive, outgoing=stun.datagrams_to_send)
    nat_a = sim.add_nat("192.0.2.1", ["10.0.0.1"], kind_a)
    a = make_peer(sim, True, [("10.0.0.1", 5000)], seed, stun_servers=[STUN_SERVER])
    if kind_b is not None:
        nat_b = sim.add_nat("192.0.2.2", ["10.0.1.1"], kind_b)
        b = make_peer(sim, False, [("10.0.1.1", 6000)], seed + 1, stun_servers=[STUN_SERVER])
        sim.set_link("10.0.0.1", "10.0.1.1", LinkProfile(loss=1.0))  # private addresses do not route
    else:
        nat_b = None
        b = make_peer(sim, False, [("203.0.113.2", 6000)], seed + 1, stun_servers=[STUN_SERVER])
    return sim, stun, nat_a, nat_b, a, b


@pytest.mark.parametrize("kind", [NatKind.FULL_CONE, NatKind.RESTRICTED, NatKind.PORT_RESTRICTED])
def test_both_behind_cone_nats_connect_via_server_reflexive(kind: NatKind) -> None:
    sim, stun, _, _, a, b = _nat_setup(kind, kind)
    sig = start(sim, a, b)
    assert sig.run(sim, 3.0, both_completed(a, b)), (a.agent.state, b.agent.state)
    sig.pump()
    srflx_a = [c for c in a.agent.local_candidates if c.type is CandidateType.SRFLX]
    assert len(srflx_a) == 1 and srflx_a[0].addr == ("192.0.2.1", 40000) and srflx_a[0].related == ("10.0.0.1", 5000)
    assert stun.requests >= 2
    sel_a, sel_b = a.agent.selected_pair(), b.agent.selected_pair()
    assert sel_a[1].addr == ("192.0.2.2", 40000) and sel_b[1].addr == ("192.0.2.1", 40000)
    assert sel_a[0].addr == ("192.0.2.1", 40000)  # the valid pair's local is the reflexive address
    got_b, got_a = exchange_media(sim, sig, a, b)
    assert (got_b, got_a) == (5, 5)
    assert any(isinstance(e, GatheringComplete) for e in a.events)


def test_symmetric_nat_on_one_side_connects_via_peer_reflexive() -> None:
    sim, _, _, _, a, b = _nat_setup(NatKind.SYMMETRIC, None)
    sig = start(sim, a, b)
    assert sig.run(sim, 3.0, both_completed(a, b)), (a.agent.state, b.agent.state)
    sel_a, sel_b = a.agent.selected_pair(), b.agent.selected_pair()
    # the mapping toward B (40001) differs from the one the STUN server saw (40000)
    srflx = [c for c in a.agent.local_candidates if c.type is CandidateType.SRFLX]
    assert srflx[0].addr == ("192.0.2.1", 40000)
    assert sel_b[1].type is CandidateType.PRFLX and sel_b[1].addr == ("192.0.2.1", 40001)
    assert sel_a[0].type is CandidateType.PRFLX and sel_a[0].addr == ("192.0.2.1", 40001)
    assert sel_a[1].addr == ("203.0.113.2", 6000)
    assert exchange_media(sim, sig, a, b) == (5, 5)


def test_symmetric_nat_reversed_roles_controlled_behind_nat() -> None:
    sim, _, _, _, a, b = _nat_setup(NatKind.SYMMETRIC, None, seed=11)
    a.agent.controlling = False  # the NATed side is now the controlled one
    b.agent.controlling = True
    sig = start(sim, a, b)
    assert sig.run(sim, 3.0, both_completed(a, b))
    assert b.agent.selected_pair()[1].type is CandidateType.PRFLX
    assert exchange_media(sim, sig, a, b) == (5, 5)


# -- role conflict (RFC 8445 §7.3.1.1, §7.2.5.1) ----------------------------------------------------------


@pytest.mark.parametrize("controlling", [True, False])
@pytest.mark.parametrize(("tb_a", "tb_b"), [(10, 20), (2**64 - 1, 0)])
def test_role_conflict_is_resolved_by_tie_breaker(controlling: bool, tb_a: int, tb_b: int) -> None:
    sim = Simulation(seed=5, profile=LinkProfile(delay=0.01))
    a = make_peer(sim, controlling, [("10.0.0.1", 5000)], 1, tie_breaker=tb_a)
    b = make_peer(sim, controlling, [("10.0.0.2", 6000)], 2, tie_breaker=tb_b)
    sig = start(sim, a, b)
    assert sig.run(sim, 2.0, both_completed(a, b)), (a.agent.state, b.agent.state)
    # the larger tie-breaker ends up controlling
    assert a.agent.controlling == (tb_a > tb_b) and b.agent.controlling == (tb_b > tb_a)
    assert_same_pair(a, b)
    assert exchange_media(sim, sig, a, b) == (5, 5)
    conflicts = [d for t, s, dst, d in sim.log if d[:2] == b"\x01\x11" and parse_message(d).error == ErrorCode(487, "Role Conflict")]
    assert conflicts, "a 487 was exchanged"


# -- ICE-lite peer (RFC 8445 §6.1.1, §2.5) ---------------------------------------------------------------


class LitePeer:
    """Answers checks like an ICE-lite agent and records nominations (USE-CANDIDATE)."""

    def __init__(self, ufrag: str, pwd: str) -> None:
        self.ufrag, self.pwd = ufrag, pwd
        self.out: list[tuple[bytes, Addr]] = []
        self.nominated_from: list[Addr] = []
        self.app: list[bytes] = []

    def receive(self, data: bytes, addr: Addr, now: float) -> None:
        try:
            req = parse_message(data)
        except StunError:
            self.app.append(data)
            return
        uname = req.get(Username)
        if uname is None or not uname.value.startswith(self.ufrag + ":") or not req.verify_integrity(self.pwd.encode()):
            return
        assert req.get(IceControlling) is not None  # the full agent must be controlling
        if req.get(UseCandidate) is not None:
            self.nominated_from.append(addr)
        resp = StunMessage(Method.BINDING, MessageClass.SUCCESS, req.transaction_id, [XorMappedAddress(addr)])
        self.out.append((resp.encode(integrity_key=self.pwd.encode(), fingerprint=True), addr))

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Addr]]:
        out, self.out = self.out, []
        return out


def test_full_agent_controls_and_nominates_against_ice_lite_peer() -> None:
    sim = Simulation(seed=9, profile=LinkProfile(delay=0.01))
    a = make_peer(sim, False, [("10.0.0.1", 5000)], 3)  # starts controlled (answerer)
    lite = LitePeer("liteufrag", "litepassword0123456789ab")
    sim.add_endpoint(("203.0.113.9", 4000), on_receive=lite.receive, outgoing=lite.datagrams_to_send)
    a.agent.gather(sim.clock.now, a.hosts)
    a.agent.set_remote_credentials(lite.ufrag, lite.pwd, ice_lite=True)
    a.agent.add_remote_candidate("1 1 udp 2130706431 203.0.113.9 4000 typ host")
    a.agent.end_of_remote_candidates()
    assert a.agent.controlling
    sim.run_for(2.0, stop_when=lambda: a.agent.state is IceConnectionState.COMPLETED)
    assert a.agent.state is IceConnectionState.COMPLETED
    assert lite.nominated_from == [("10.0.0.1", 5000)]
    a.send_app(b"\x80media")
    sim.run_for(0.1)
    assert lite.app == [b"\x80media"]


# -- trickle and bounded gathering ------------------------------------------------------------------------


def test_gathering_is_bounded_and_never_blocks_connectivity() -> None:
    sim = Simulation(seed=4, profile=LinkProfile(delay=0.01))
    dead_server = ("198.51.100.99", 3478)  # nothing listens there
    cfg = IceConfig(gather_timeout=2.0)
    a = make_peer(sim, True, [("10.0.0.1", 5000)], 1, stun_servers=[dead_server], config=cfg)
    b = make_peer(sim, False, [("10.0.0.2", 6000)], 2, config=cfg)
    t0 = sim.clock.now
    sig = start(sim, a, b)
    assert sig.run(sim, 1.0, both_completed(a, b))
    assert not a.of(GatheringComplete)  # still gathering, but already connected
    sig.run(sim, 3.0, lambda: bool(a.of(GatheringComplete)))
    done = a.of(GatheringComplete)
    assert done and done[0].ufrag == a.agent.local_ufrag
    assert 2.0 <= sim.clock.now - t0 <= 2.1
    host = a.of(LocalCandidate)[0]
    assert host.candidate.type is CandidateType.HOST and host.ufrag == a.agent.local_ufrag


def test_trickled_candidates_arriving_late_still_connect() -> None:
    sim = Simulation(seed=6, profile=LinkProfile(delay=0.01))
    a = make_peer(sim, True, [("10.0.0.1", 5000)], 1)
    b = make_peer(sim, False, [("10.0.0.2", 6000)], 2)
    now = sim.clock.now
    a.agent.gather(now, a.hosts)
    b.agent.gather(now, b.hosts)
    # only credentials first; candidates trickle 300 ms later (B learns A as peer-reflexive meanwhile)
    a.agent.set_remote_credentials(b.agent.local_ufrag, b.agent.local_pwd)
    b.agent.set_remote_credentials(a.agent.local_ufrag, a.agent.local_pwd)
    a_cands = [e.candidate for e in a.agent.events() if isinstance(e, LocalCandidate)]
    b_cands = [e.candidate for e in b.agent.events() if isinstance(e, LocalCandidate)]
    sim.run_for(0.3)
    assert a.agent.state is IceConnectionState.NEW
    for c in b_cands:
        a.agent.add_remote_candidate(c)
    sim.run_for(0.5, stop_when=both_completed(a, b))
    assert a.agent.state is IceConnectionState.COMPLETED
    assert b.agent.selected_pair()[1].type is CandidateType.PRFLX  # learnt from A's check
    for c in a_cands:
        b.agent.add_remote_candidate(c)  # the signalled copy replaces the peer-reflexive one
    assert [c.type for c in b.agent.remote_candidates] == [CandidateType.HOST]


def test_checklist_fails_when_nothing_answers() -> None:
    sim = Simulation(seed=8)
    cfg = IceConfig(check_timers=StunTimers(rto=0.1, rc=3, rm=2), gather_timeout=0.5)
    a = make_peer(sim, True, [("10.0.0.1", 5000)], 1, config=cfg)
    a.agent.gather(sim.clock.now, a.hosts)
    a.agent.set_remote_credentials("peer", "peerpasswordpeerpassword")
    a.agent.add_remote_candidate("1 1 udp 2130706431 203.0.113.50 9 typ host")
    a.agent.end_of_remote_candidates()
    sim.run_for(3.0, stop_when=lambda: a.agent.state is IceConnectionState.FAILED)
    assert a.agent.state is IceConnectionState.FAILED
    assert a.agent.send(b"x") == []


# -- ICE restart after NAT rebinding (RFC 8445 §9) -------------------------------------------------------------


def test_ice_restart_after_nat_rebinding_restores_media() -> None:
    sim, _, nat_a, _, a, b = _nat_setup(NatKind.PORT_RESTRICTED, None, seed=21)
    sig = start(sim, a, b)
    assert sig.run(sim, 3.0, both_completed(a, b))
    assert exchange_media(sim, sig, a, b) == (5, 5)
    old_ufrag_a, old_ufrag_b = a.agent.local_ufrag, b.agent.local_ufrag

    nat_a.rebind()  # the NAT forgets A's mapping: B's media now hits a closed port
    got_b, got_a = exchange_media(sim, sig, a, b)
    assert got_a == 0  # B -> A is broken
    assert got_b == 0  # A -> B arrives from an unknown port and is dropped
    assert b.agent.dropped > 0

    now = sim.clock.now
    a.agent.restart(now)
    b.agent.restart(now)
    assert a.agent.local_ufrag != old_ufrag_a and b.agent.local_ufrag != old_ufrag_b
    assert a.agent.state is IceConnectionState.CONNECTED  # still on the old pair until a new one is selected
    n_sel = len(a.of(SelectedPairChanged))
    assert sig.run(sim, 3.0, both_completed(a, b)), (a.agent.state, b.agent.state)
    sig.pump()
    assert len(a.of(SelectedPairChanged)) == n_sel + 1
    assert b.agent.selected_pair()[1].addr == ("192.0.2.1", 40001)  # the new mapping
    srflx = [c for c in a.agent.local_candidates if c.type is CandidateType.SRFLX]
    assert srflx and srflx[0].addr == ("192.0.2.1", 40001)  # gathered again with the new mapping
    assert exchange_media(sim, sig, a, b) == (5, 5)


def test_restart_without_path_change_keeps_media_flowing() -> None:
    sim = Simulation(seed=12, profile=LinkProfile(delay=0.01))
    a = make_peer(sim, True, [("10.0.0.1", 5000)], 1)
    b = make_peer(sim, False, [("10.0.0.2", 6000)], 2)
    sig = start(sim, a, b)
    assert sig.run(sim, 1.0, both_completed(a, b))
    a.agent.restart(sim.clock.now)
    b.agent.restart(sim.clock.now)
    # media during the restart still uses the old pair
    assert a.send_app(b"\x80during") == 1
    assert sig.run(sim, 1.0, both_completed(a, b))
    assert any(d == b"\x80during" for d, _ in b.app)
    assert exchange_media(sim, sig, a, b) == (5, 5)


# -- consent freshness (RFC 7675) -------------------------------------------------------------------------------


def test_consent_lost_after_peer_disappears() -> None:
    sim = Simulation(seed=13, profile=LinkProfile(delay=0.01))
    a = make_peer(sim, True, [("10.0.0.1", 5000)], 1)
    b = make_peer(sim, False, [("10.0.0.2", 6000)], 2)
    sig = start(sim, a, b)
    assert sig.run(sim, 1.0, both_completed(a, b))
    # consent keeps a healthy pair alive far beyond 30 s
    sig.run(sim, 60.0)
    assert a.agent.state is IceConnectionState.COMPLETED and not a.of(ConsentLost)
    consent_checks = [d for t, s, dst, d in sim.log if dst == ("10.0.0.2", 6000) and d[:2] == b"\x00\x01"]
    assert len(consent_checks) >= 10

    sim.remove_endpoint(("10.0.0.2", 6000))  # the peer vanishes
    gone = sim.clock.now
    assert sig.run(sim, 40.0, lambda: bool(a.of(ConsentLost)))
    lost = a.of(ConsentLost)[0]
    assert lost.cause is ConsentLostCause.TIMEOUT and lost.component == 1
    assert lost.remote.addr == ("10.0.0.2", 6000)
    elapsed = sim.clock.now - gone
    assert 24.0 <= elapsed <= 30.5  # 30 s after the last response, which came before `gone`
    assert a.agent.state is IceConnectionState.FAILED
    assert IceConnectionState.DISCONNECTED in a.states()
    assert a.agent.send(b"\x80late") == []  # RFC 7675 §5.1: stop sending


def test_consent_revoked_by_authenticated_error() -> None:
    sim = Simulation(seed=14, profile=LinkProfile(delay=0.01))
    a = make_peer(sim, True, [("10.0.0.1", 5000)], 1)
    b = make_peer(sim, False, [("10.0.0.2", 6000)], 2)
    sig = start(sim, a, b)
    assert sig.run(sim, 1.0, both_completed(a, b))
    # B now answers every check with an authenticated 403 (e.g. its application revoked consent)
    ep = sim.endpoints[("10.0.0.2", 6000)]
    pwd = b.agent.local_pwd.encode()
    pending: list[tuple[bytes, Addr]] = []

    def refuse(data: bytes, src: Addr, now: float) -> None:
        req = parse_message(data)
        if req.message_class is MessageClass.REQUEST:
            resp = StunMessage(Method.BINDING, MessageClass.ERROR, req.transaction_id, [ErrorCode(403, "Forbidden")])
            pending.append((resp.encode(integrity_key=pwd, fingerprint=True), src))

    ep.on_receive = refuse
    ep.outgoing = lambda now: [pending.pop() for _ in range(len(pending))]
    assert sig.run(sim, 10.0, lambda: bool(a.of(ConsentLost)))
    assert a.of(ConsentLost)[0].cause is ConsentLostCause.REVOKED


def test_keepalive_indications_when_consent_is_disabled() -> None:
    sim = Simulation(seed=15, profile=LinkProfile(delay=0.01))
    cfg = IceConfig(consent_interval=None, keepalive_interval=15.0)
    a = make_peer(sim, True, [("10.0.0.1", 5000)], 1, config=cfg)
    b = make_peer(sim, False, [("10.0.0.2", 6000)], 2, config=cfg)
    sig = start(sim, a, b)
    assert sig.run(sim, 1.0, both_completed(a, b))
    t0 = sim.clock.now
    sig.run(sim, 46.0)
    indications = [t for t, s, dst, d in sim.log if t > t0 and d[:2] == b"\x00\x11"]
    assert 4 <= len(indications) <= 8  # about every 15 s from each side
    assert a.agent.state is IceConnectionState.COMPLETED


# -- robustness -------------------------------------------------------------------------------------------------


def test_garbage_and_forged_checks_are_dropped_or_rejected() -> None:
    sim = Simulation(seed=16, profile=LinkProfile(delay=0.01))
    a = make_peer(sim, True, [("10.0.0.1", 5000)], 1)
    a.agent.gather(sim.clock.now, a.hosts)
    attacker = ("203.0.113.66", 1234)
    replies: list[bytes] = []
    sim.add_endpoint(attacker, on_receive=lambda d, s, n: replies.append(d))
    tid = bytes(12)
    forged = StunMessage(
        Method.BINDING, MessageClass.REQUEST, tid, [Username(f"{a.agent.local_ufrag}:x"), XorMappedAddress(attacker)]
    )
    from rtpcore.ice.stun import Priority

    forged.attributes.insert(1, Priority(1))
    for data in (
        b"\x00\x01\x00",  # truncated
        b"\x80\x00" + bytes(30),  # RTP from an unknown source
        forged.encode(integrity_key=b"wrong password", fingerprint=True),
        StunMessage(Method.BINDING, MessageClass.REQUEST, tid, [Username("zz:x")]).encode(),
    ):
        sim.send(attacker, ("10.0.0.1", 5000), data)
    sim.run_for(0.1)
    codes = [parse_message(r).error.code for r in replies]
    assert codes == [401, 400]
    assert a.agent.dropped >= 3
    assert a.agent.remote_candidates == []  # nothing learnt from unauthenticated requests


def test_close_stops_everything() -> None:
    sim = Simulation(seed=17, profile=LinkProfile(delay=0.01))
    a = make_peer(sim, True, [("10.0.0.1", 5000)], 1, stun_servers=[("198.51.100.99", 3478)])
    b = make_peer(sim, False, [("10.0.0.2", 6000)], 2)
    sig = start(sim, a, b)
    assert sig.run(sim, 1.0, both_completed(a, b))
    a.agent.close(sim.clock.now)
    sig.pump()
    assert a.agent.state is IceConnectionState.CLOSED and a.states()[-1] is IceConnectionState.CLOSED
    assert a.agent.next_deadline() is None and a.agent.send(b"x") == []
    sig.run(sim, 5.0)  # no stuck timers


def test_signalling_before_gathering_does_not_end_gathering_early() -> None:
    sim = Simulation(seed=18)
    a = make_peer(sim, True, [("10.0.0.1", 5000)], 1, stun_servers=[STUN_SERVER])
    stun = StunServer()
    sim.add_endpoint(STUN_SERVER, on_receive=stun.receive, outgoing=stun.datagrams_to_send)
    a.agent.set_remote_credentials("peer", "peerpasswordpeerpassword")
    a.agent.end_of_remote_candidates()
    sim.run_for(1.0)
    assert not any(isinstance(e, GatheringComplete) for e in a.agent.events())
    a.agent.gather(sim.clock.now, a.hosts)
    sim.run_for(1.0)
    kinds = [type(e) for e in a.agent.events()]
    assert kinds.count(GatheringComplete) == 1
    assert kinds.index(GatheringComplete) > kinds.index(LocalCandidate)
    assert stun.requests == 1
