"""Tests of the simulated network itself: every later protocol test trusts it."""

from __future__ import annotations

from netsim import FakeClock, LinkProfile, NatKind, Simulation


class Pinger:
    """Sends one datagram every ``interval`` seconds; records what comes back."""

    def __init__(self, dst: tuple[str, int], count: int, interval: float = 0.02, start: float = 1000.0) -> None:
        self.dst, self.count, self.interval = dst, count, interval
        self.sent = 0
        self.next_at: float | None = start
        self.out: list[tuple[bytes, tuple[str, int]]] = []
        self.got: list[tuple[bytes, tuple[str, int], float]] = []

    def receive(self, data: bytes, src: tuple[str, int], now: float) -> None:
        self.got.append((data, src, now))

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, tuple[str, int]]]:
        out, self.out = self.out, []
        return out

    def next_deadline(self) -> float | None:
        return self.next_at

    def handle_timeout(self, now: float) -> None:
        self.out.append((self.sent.to_bytes(4, "big"), self.dst))
        self.sent += 1
        self.next_at = None if self.sent >= self.count else now + self.interval


def _pair(sim: Simulation, count: int, a=("10.0.0.1", 1000), b=("10.0.0.2", 2000)):
    p = Pinger(b, count, start=sim.clock.now)
    sim.add_endpoint(a, on_receive=p.receive, outgoing=p.datagrams_to_send,
                     next_deadline=p.next_deadline, on_timeout=p.handle_timeout)
    echo: list[tuple[bytes, tuple[str, int]]] = []
    rx = sim.add_endpoint(b, on_receive=lambda d, s, now: echo.append((d, s)),
                          outgoing=lambda now: [echo.pop() for _ in range(len(echo))])
    return p, rx


def test_fake_clock_moves_only_forward() -> None:
    c = FakeClock(5.0)
    assert c() == 5.0 and c.advance(1.5) == 6.5
    try:
        c.advance(-1)
    except ValueError:
        pass
    else:
        raise AssertionError("negative advance accepted")


def test_clean_link_delivers_everything_with_the_configured_delay() -> None:
    sim = Simulation(seed=1, profile=LinkProfile(delay=0.01))
    p, _ = _pair(sim, 50)
    sim.run(until=sim.clock.now + 5)
    assert sim.stats.lost == 0 and len(p.got) == 50
    # round trip = 2 x 10 ms; first ping sent at t=1000
    assert abs(p.got[0][2] - 1000.02) < 1e-9
    assert [int.from_bytes(d, "big") for d, _, _ in p.got] == list(range(50))


def test_loss_rate_is_close_to_configured_and_seeded() -> None:
    def run(seed: int) -> int:
        sim = Simulation(seed=seed, profile=LinkProfile(loss=0.3))
        p, rx = _pair(sim, 2000, )
        sim.run(until=sim.clock.now + 100)
        return sim.stats.lost

    lost = run(7)
    assert lost == run(7), "same seed must give the same run"
    # 2000 pings + ~1400 echoes = ~3400 datagrams, 30 % lost
    sent_total = 2000 + (2000 - 0) * 0.7
    assert 0.26 < lost / sent_total < 0.34


def test_duplication_reordering_and_mtu() -> None:
    sim = Simulation(seed=3, profile=LinkProfile(duplicate=0.2, reorder=0.3, delay=0.01, jitter=0.005, mtu=100))
    rx: list[bytes] = []
    sim.add_endpoint(("10.0.0.2", 1), on_receive=lambda d, s, now: rx.append(d))
    tx = sim.add_endpoint(("10.0.0.1", 1))
    for i in range(500):
        tx.send(i.to_bytes(2, "big"), ("10.0.0.2", 1))
        sim.run_for(0.002)
    tx.send(b"x" * 101, ("10.0.0.2", 1))
    sim.run_for(1)
    seqs = [int.from_bytes(d, "big") for d in rx]
    assert sim.stats.dropped_mtu == 1
    assert len(seqs) == 500 + sim.stats.duplicated and sim.stats.duplicated > 50
    assert seqs != sorted(seqs), "reordering expected"
    assert set(seqs) == set(range(500))


def test_per_link_profile_overrides_default() -> None:
    sim = Simulation(seed=1, profile=LinkProfile(loss=1.0))
    sim.set_link("10.0.0.1", "10.0.0.2", LinkProfile())
    p, _ = _pair(sim, 10)
    sim.run(until=sim.clock.now + 1)
    assert len(p.got) == 10


def _nat_case(kind: NatKind, third_party_port: int, third_party_host: str = "198.51.100.2") -> tuple[bool, tuple[str, int]]:
    """Private host sends to server; then a third party sends to the mapped address."""
    sim = Simulation(seed=1)
    sim.add_nat("203.0.113.1", {"10.0.0.1"}, kind)
    seen: list[tuple[str, int]] = []
    server = sim.add_endpoint(("198.51.100.1", 3478), on_receive=lambda d, s, now: seen.append(s))
    inside: list[bytes] = []
    cli = sim.add_endpoint(("10.0.0.1", 5000), on_receive=lambda d, s, now: inside.append(d))
    cli.send(b"hello", ("198.51.100.1", 3478))
    sim.run_for(1)
    mapped = seen[0]
    third = (third_party_host, third_party_port)
    probe = server if third == server.addr else sim.add_endpoint(third)
    probe.send(b"probe", mapped)
    sim.run_for(1)
    return (b"probe" in inside), mapped


def test_nat_filtering_classes() -> None:
    assert _nat_case(NatKind.FULL_CONE, 9999)[0] is True
    assert _nat_case(NatKind.RESTRICTED, 9999, "198.51.100.1")[0] is True
    assert _nat_case(NatKind.RESTRICTED, 9999)[0] is False
    assert _nat_case(NatKind.PORT_RESTRICTED, 9999, "198.51.100.1")[0] is False
    assert _nat_case(NatKind.PORT_RESTRICTED, 3478, "198.51.100.1")[0] is True
    ok, mapped = _nat_case(NatKind.SYMMETRIC, 3478, "198.51.100.1")
    assert ok and mapped[0] == "203.0.113.1"


def test_symmetric_nat_maps_per_destination_and_rebind_changes_port() -> None:
    sim = Simulation(seed=1)
    nat = sim.add_nat("203.0.113.1", {"10.0.0.1"}, NatKind.SYMMETRIC)
    seen: list[tuple[str, int]] = []
    for port in (1, 2):
        sim.add_endpoint(("198.51.100.1", port), on_receive=lambda d, s, now: seen.append(s))
    cli = sim.add_endpoint(("10.0.0.1", 5000))
    cli.send(b"a", ("198.51.100.1", 1))
    cli.send(b"b", ("198.51.100.1", 2))
    sim.run_for(1)
    assert seen[0] != seen[1]
    nat.rebind("10.0.0.1")
    cli.send(b"c", ("198.51.100.1", 1))
    sim.run_for(1)
    assert seen[2] != seen[0]


def test_stuck_deadline_is_reported() -> None:
    sim = Simulation()
    sim.add_endpoint(("10.0.0.1", 1), next_deadline=lambda: 1000.0, on_timeout=lambda now: None)
    try:
        sim.run(until=2000)
    except RuntimeError as e:
        assert "stuck" in str(e)
    else:
        raise AssertionError("a deadline that never moves must be reported")
