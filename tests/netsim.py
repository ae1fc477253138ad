"""A deterministic simulated network with a fake clock, for protocol tests.

Sans-IO objects plug straight in: a datagram is handed to ``on_receive`` at the instant
the network delivers it, and whatever the object wants to send (``outgoing``) is drained
after every callback. Time only moves when :meth:`Simulation.run` jumps to the next event
(a delivery or an endpoint's deadline), so a 30-second call with retransmissions runs in
milliseconds and the same seed always gives the same run.

Impairments per link (:class:`LinkProfile`): loss, duplication, reordering (an extra random
delay for a fraction of packets), base delay plus uniform jitter, and an MTU above which a
datagram is dropped. NATs (:class:`NatKind`) follow RFC 4787 behaviour classes:

    FULL_CONE        endpoint-independent mapping and filtering
    RESTRICTED       endpoint-independent mapping, address-dependent filtering
    PORT_RESTRICTED  endpoint-independent mapping, address-and-port-dependent filtering
    SYMMETRIC        address-and-port-dependent mapping and filtering

Usage::

    sim = Simulation(seed=1, profile=LinkProfile(loss=0.3))
    a = sim.add_endpoint(("10.0.0.1", 5060), on_receive=ua.receive,
                         outgoing=ua.datagrams_to_send, next_deadline=ua.next_deadline,
                         on_timeout=ua.handle_timeout)
    sim.run(until=sim.clock.now + 32, stop_when=lambda: ua.done)
"""

from __future__ import annotations

import enum
import heapq
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

Addr = tuple[str, int]
Outgoing = Iterable[tuple[bytes, Addr]] | Iterable[tuple[bytes, Addr, Addr]]


class FakeClock:
    """Monotonic seconds that move only when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def advance(self, dt: float) -> float:
        if dt < 0:
            raise ValueError("time does not go backwards")
        self.now += dt
        return self.now

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True, slots=True)
class LinkProfile:
    loss: float = 0.0
    """Probability that a datagram is lost."""
    duplicate: float = 0.0
    """Probability that a datagram is delivered twice."""
    reorder: float = 0.0
    """Probability that a datagram gets an extra delay of up to 3x ``delay + jitter``."""
    delay: float = 0.005
    """One-way base delay in seconds."""
    jitter: float = 0.0
    """Uniform extra delay in [0, jitter] seconds."""
    mtu: int | None = None
    """Datagrams larger than this many bytes are dropped."""


class NatKind(enum.Enum):
    FULL_CONE = "full-cone"
    RESTRICTED = "restricted"
    PORT_RESTRICTED = "port-restricted"
    SYMMETRIC = "symmetric"


@dataclass
class NetStats:
    sent: int = 0
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    dropped_mtu: int = 0
    filtered: int = 0
    unroutable: int = 0


@dataclass
class Nat:
    """One NAT box: private hosts behind ``public_ip``."""

    public_ip: str
    private_hosts: set[str]
    kind: NatKind
    first_port: int = 40000
    _next_port: int = 0
    # mapping key -> public port; key is (private addr) or (private addr, remote addr)
    _out: dict[tuple[Addr, Addr | None], int] = field(default_factory=dict)
    _in: dict[int, Addr] = field(default_factory=dict)
    # public port -> remotes the private side has sent to
    _allowed: dict[int, set[Addr]] = field(default_factory=dict)

    def _key(self, src: Addr, dst: Addr) -> tuple[Addr, Addr | None]:
        return (src, dst) if self.kind is NatKind.SYMMETRIC else (src, None)

    def outbound(self, src: Addr, dst: Addr) -> Addr:
        key = self._key(src, dst)
        port = self._out.get(key)
        if port is None:
            port = self.first_port + self._next_port
            self._next_port += 1
            self._out[key] = port
            self._in[port] = src
        self._allowed.setdefault(port, set()).add(dst)
        return (self.public_ip, port)

    def inbound(self, public_port: int, remote: Addr) -> Addr | None:
        private = self._in.get(public_port)
        if private is None:
            return None
        allowed = self._allowed.get(public_port, set())
        if self.kind is NatKind.FULL_CONE:
            return private
        if self.kind is NatKind.RESTRICTED:
            return private if any(r[0] == remote[0] for r in allowed) else None
        return private if remote in allowed else None

    def rebind(self, host: str | None = None) -> None:
        """Forget mappings (for ``host`` or all): the next packet gets a new public port."""
        for key in [k for k in self._out if host is None or k[0][0] == host]:
            port = self._out.pop(key)
            self._in.pop(port, None)
            self._allowed.pop(port, None)


class Endpoint:
    """A bound address on the simulated network."""

    def __init__(
        self,
        sim: Simulation,
        addr: Addr,
        on_receive: Callable[[bytes, Addr, float], object] | None,
        outgoing: Callable[[float], Outgoing] | None,
        next_deadline: Callable[[], float | None] | None,
        on_timeout: Callable[[float], object] | None,
    ) -> None:
        self.sim = sim
        self.addr = addr
        self.on_receive = on_receive
        self.outgoing = outgoing
        self.next_deadline = next_deadline
        self.on_timeout = on_timeout
        self.received: list[tuple[bytes, Addr, float]] = []
        """Datagrams received when no ``on_receive`` callback is set."""

    def send(self, data: bytes, dst: Addr) -> None:
        self.sim.send(self.addr, dst, data)

    def deadline(self) -> float | None:
        return self.next_deadline() if self.next_deadline is not None else None


class Simulation:
    """Discrete-event network: deliveries and endpoint timers ordered by time."""

    MAX_EVENTS_AT_ONE_INSTANT = 10_000

    def __init__(self, seed: int = 0, profile: LinkProfile | None = None, clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock()
        self.rng = random.Random(seed)
        self.profile = profile or LinkProfile()
        self.stats = NetStats()
        self.endpoints: dict[Addr, Endpoint] = {}
        self.nats: list[Nat] = []
        self._links: dict[frozenset[str], LinkProfile] = {}
        self._queue: list[tuple[float, int, Addr, Addr, bytes]] = []
        self._seq = 0
        self.log: list[tuple[float, Addr, Addr, bytes]] = []
        """Every datagram delivered: (time, src as seen by dst, dst, data)."""

    # -- topology ------------------------------------------------------------------
    def add_endpoint(
        self,
        addr: Addr,
        *,
        on_receive: Callable[[bytes, Addr, float], object] | None = None,
        outgoing: Callable[[float], Outgoing] | None = None,
        next_deadline: Callable[[], float | None] | None = None,
        on_timeout: Callable[[float], object] | None = None,
    ) -> Endpoint:
        if addr in self.endpoints:
            raise ValueError(f"{addr} already bound")
        ep = Endpoint(self, addr, on_receive, outgoing, next_deadline, on_timeout)
        self.endpoints[addr] = ep
        return ep

    def remove_endpoint(self, addr: Addr) -> None:
        self.endpoints.pop(addr, None)

    def set_link(self, host_a: str, host_b: str, profile: LinkProfile) -> None:
        self._links[frozenset((host_a, host_b))] = profile

    def add_nat(self, public_ip: str, private_hosts: Iterable[str], kind: NatKind) -> Nat:
        nat = Nat(public_ip=public_ip, private_hosts=set(private_hosts), kind=kind)
        self.nats.append(nat)
        return nat

    def _nat_of(self, host: str) -> Nat | None:
        for nat in self.nats:
            if host in nat.private_hosts:
                return nat
        return None

    def _nat_public(self, host: str) -> Nat | None:
        for nat in self.nats:
            if nat.public_ip == host:
                return nat
        return None

    # -- sending -------------------------------------------------------------------
    def send(self, src: Addr, dst: Addr, data: bytes) -> None:
        self.stats.sent += 1
        prof = self._links.get(frozenset((src[0], dst[0])), self.profile)
        nat = self._nat_of(src[0])
        if nat is not None and self._nat_of(dst[0]) is not nat:
            src = nat.outbound(src, dst)
        if prof.mtu is not None and len(data) > prof.mtu:
            self.stats.dropped_mtu += 1
            return
        rng = self.rng
        if prof.loss and rng.random() < prof.loss:
            self.stats.lost += 1
            return
        copies = 1
        if prof.duplicate and rng.random() < prof.duplicate:
            copies = 2
            self.stats.duplicated += 1
        for i in range(copies):
            delay = prof.delay + (rng.uniform(0.0, prof.jitter) if prof.jitter else 0.0)
            if prof.reorder and rng.random() < prof.reorder:
                delay += rng.uniform(0.0, 3.0 * (prof.delay + prof.jitter) + 0.001)
                self.stats.reordered += 1
            delay += 0.0001 * i
            self._seq += 1
            heapq.heappush(self._queue, (self.clock.now + delay, self._seq, src, dst, bytes(data)))

    def _drain(self, ep: Endpoint) -> None:
        if ep.outgoing is None:
            return
        for item in ep.outgoing(self.clock.now):
            if len(item) == 3:
                data, dst, src = item  # type: ignore[misc]
                self.send(src, dst, data)
            else:
                data, dst = item  # type: ignore[misc]
                self.send(ep.addr, dst, data)

    def drain_all(self) -> None:
        for ep in list(self.endpoints.values()):
            self._drain(ep)

    # -- delivery ------------------------------------------------------------------
    def _deliver(self, src: Addr, dst: Addr, data: bytes) -> None:
        nat = self._nat_public(dst[0])
        if nat is not None:
            private = nat.inbound(dst[1], src)
            if private is None:
                self.stats.filtered += 1
                return
            dst = private
        ep = self.endpoints.get(dst)
        if ep is None:
            self.stats.unroutable += 1
            return
        self.stats.delivered += 1
        self.log.append((self.clock.now, src, dst, data))
        if ep.on_receive is None:
            ep.received.append((data, src, self.clock.now))
        else:
            ep.on_receive(data, src, self.clock.now)
        self._drain(ep)

    def next_event_time(self) -> float | None:
        times = [self._queue[0][0]] if self._queue else []
        for ep in self.endpoints.values():
            d = ep.deadline() if ep.on_timeout is not None else None
            if d is not None:
                times.append(d)
        return min(times) if times else None

    def step(self, until: float) -> bool:
        """Process everything due at the next event time (if <= until). False when idle."""
        t = self.next_event_time()
        if t is None or t > until:
            return False
        self.clock.now = max(self.clock.now, t)
        now = self.clock.now
        while self._queue and self._queue[0][0] <= now:
            _, _, src, dst, data = heapq.heappop(self._queue)
            self._deliver(src, dst, data)
        for ep in list(self.endpoints.values()):
            d = ep.deadline()
            if d is not None and d <= now and ep.on_timeout is not None:
                ep.on_timeout(now)
                self._drain(ep)
        return True

    def run(self, until: float, stop_when: Callable[[], bool] | None = None) -> bool:
        """Run until ``stop_when()`` is true (returns True) or time ``until`` (returns False)."""
        self.drain_all()
        last_t = None
        same_instant = 0
        while True:
            if stop_when is not None and stop_when():
                return True
            if not self.step(until):
                self.clock.now = max(self.clock.now, until)
                return bool(stop_when and stop_when())
            if self.clock.now == last_t:
                same_instant += 1
                if same_instant > self.MAX_EVENTS_AT_ONE_INSTANT:
                    raise RuntimeError(f"simulation stuck at t={self.clock.now}: a deadline is not moving")
            else:
                last_t, same_instant = self.clock.now, 0

    def run_for(self, seconds: float, stop_when: Callable[[], bool] | None = None) -> bool:
        return self.run(self.clock.now + seconds, stop_when)
