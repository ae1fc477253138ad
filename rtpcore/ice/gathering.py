"""Candidate gathering for one ICE agent, sans-IO (RFC 8445 §5.1.1, RFC 8838 §4, RFC 8656).

* host candidates: one per bound socket, given by the caller (the driver knows its sockets);
* server-reflexive: an unauthenticated Binding request from each socket to each STUN server
  of the same address family; XOR-MAPPED-ADDRESS (or MAPPED-ADDRESS) is the candidate;
* relayed: a TURN allocation from each socket to each TURN server; the relayed address is the
  candidate (and its own base, RFC 8445 §5.1.1.2), the allocation's mapped address its related
  address.

Gathering is bounded: it is done when every request finished or ``timeout`` passed,
whichever comes first; the agent then signals end-of-candidates. Binding requests are started
one per Ta by the agent's pacer (:meth:`Gatherer.start_next`). An ICE restart starts a new
generation: host and existing relayed candidates are offered again, reflexive ones re-learnt.

::

    IDLE --start()--> GATHERING --all requests done / timeout--> DONE --start() (restart)--> GATHERING
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import LocalProtocolError
from .candidate import Addr, Candidate, CandidateType, candidate_foundation, candidate_priority
from .stun import (
    MappedAddress,
    MessageClass,
    Method,
    Software,
    StunMessage,
    XorMappedAddress,
    is_stun,
    new_transaction_id,
)
from .stun_transaction import StunClientTransaction, StunTimers
from .turn import TurnClient, TurnServer, TurnState

__all__ = ["Gatherer", "Relay"]


@dataclass(slots=True, eq=False)
class _Job:
    base: Addr
    component: int
    server: Addr
    local_preference: int
    generation: int
    txn: StunClientTransaction | None = None


@dataclass(slots=True, eq=False)
class Relay:
    """A TURN allocation made from socket ``base``."""

    client: TurnClient
    base: Addr
    component: int
    local_preference: int
    announced: set[int] = field(default_factory=set)


def _same_family(a: str, b: str) -> bool:
    return (":" in a) == (":" in b)


class Gatherer:
    """Host, server-reflexive and relayed candidates of one agent."""

    def __init__(
        self,
        *,
        rng: Callable[[int], bytes] = os.urandom,
        stun_servers: Sequence[Addr] = (),
        turn_servers: Sequence[TurnServer] = (),
        timers: StunTimers | None = None,
        timeout: float = 5.0,
        turn_lifetime: int = 600,
        local_preference: int = 65535,
        software: str | None = None,
    ) -> None:
        self._rng = rng
        self.stun_servers = list(stun_servers)
        self.turn_servers = list(turn_servers)
        self._timers = timers or StunTimers(rto=0.5, rc=4, rm=4)
        self._timeout = timeout
        self._turn_lifetime = turn_lifetime
        self._local_preference = local_preference
        self._software = software
        self.hosts: dict[int, list[Addr]] = {}
        self.base_component: dict[Addr, int] = {}
        """Socket (or relayed address) -> component."""
        self.relays: list[Relay] = []
        self._by_relayed: dict[Addr, Relay] = {}
        self._jobs: list[_Job] = []
        self.generation = 0
        self.deadline: float | None = None
        self.done = False

    # -- setup ----------------------------------------------------------------------------------
    def add_hosts(self, hosts: Sequence[Addr] | Mapping[int, Sequence[Addr]], components: int) -> None:
        mapping = hosts if isinstance(hosts, Mapping) else {1: hosts}
        for comp, addrs in mapping.items():
            if not 1 <= comp <= components:
                raise LocalProtocolError(f"component {comp} out of range 1..{components}")
            for addr in addrs:
                if addr not in self.base_component:
                    self.hosts.setdefault(comp, []).append(addr)
                    self.base_component[addr] = comp

    def start(self, now: float, *, new_generation: bool = False) -> list[Candidate]:
        """(Re)start gathering; returns the candidates known at once (host, existing relays)."""
        if new_generation:
            self.generation += 1
            self._jobs = []
        self.done = False
        self.deadline = now + self._timeout
        out: list[Candidate] = []
        for comp, addrs in sorted(self.hosts.items()):
            for i, base in enumerate(addrs):
                pref = max(0, self._local_preference - i)
                out.append(
                    Candidate(
                        foundation=candidate_foundation(CandidateType.HOST, base[0]),
                        component=comp,
                        priority=candidate_priority(CandidateType.HOST, comp, pref),
                        host=base[0],
                        port=base[1],
                        type=CandidateType.HOST,
                        base=base,
                    )
                )
                for server in self.stun_servers:
                    if _same_family(server[0], base[0]) and not self._has_job(base, server):
                        self._jobs.append(_Job(base, comp, server, pref, self.generation))
                for ts in self.turn_servers:
                    if _same_family(ts.address[0], base[0]):
                        self._start_relay(now, ts, base, comp, pref)
        out += self.poll_relays(now)
        return out

    def _has_job(self, base: Addr, server: Addr) -> bool:
        return any(j.base == base and j.server == server and j.generation == self.generation for j in self._jobs)

    # -- server-reflexive (RFC 8489 Binding) ------------------------------------------------------------
    def has_pending(self) -> bool:
        return any(j.txn is None for j in self._jobs)

    def start_next(self, now: float) -> bool:
        """Start one Binding request (the agent paces these at Ta). False when none is waiting."""
        job = next((j for j in self._jobs if j.txn is None), None)
        if job is None:
            return False
        req = StunMessage(Method.BINDING, MessageClass.REQUEST, new_transaction_id(self._rng))
        if self._software:
            req.attributes.append(Software(self._software))
        job.txn = StunClientTransaction.for_message(req, job.server, now, timers=self._timers, src=job.base)
        return True

    def owns_transaction(self, data: bytes) -> bool:
        """Whether ``data`` answers one of our Binding requests (a TURN server may also serve STUN)."""
        if not self._jobs or not is_stun(data):
            return False
        tid = data[8:20]
        return any(j.txn is not None and j.txn.transaction_id == tid for j in self._jobs)

    def on_response(self, msg: StunMessage, addr: Addr, now: float) -> tuple[bool, Candidate | None]:
        """(consumed, new server-reflexive candidate)."""
        for job in self._jobs:
            if job.txn is None or not job.txn.receive_response(msg, addr, now):
                continue
            if msg.message_class is not MessageClass.SUCCESS or job.generation != self.generation:
                return True, None
            mapped = msg.get(XorMappedAddress) or msg.get(MappedAddress)
            if mapped is None:
                return True, None
            host, port = mapped.address
            return True, Candidate(
                foundation=candidate_foundation(CandidateType.SRFLX, job.base[0], job.server[0]),
                component=job.component,
                priority=candidate_priority(CandidateType.SRFLX, job.component, job.local_preference),
                host=host,
                port=port,
                type=CandidateType.SRFLX,
                related_address=job.base[0],
                related_port=job.base[1],
                base=job.base,
            )
        return False, None

    # -- relayed (RFC 8656) ---------------------------------------------------------------------------
    def _start_relay(self, now: float, ts: TurnServer, base: Addr, comp: int, pref: int) -> None:
        for r in self.relays:
            if r.base == base and r.client.server == ts.address and r.client.state in (
                TurnState.ALLOCATING,
                TurnState.ALLOCATED,
            ):
                return
        client = TurnClient(
            ts.address,
            ts.username,
            ts.password,
            rng=self._rng,
            lifetime=self._turn_lifetime,
            local_addr=base,
            software=self._software,
        )
        client.allocate(now)
        self.relays.append(Relay(client, base, comp, pref))

    def relay_for(self, local_addr: Addr, server: Addr) -> Relay | None:
        """The allocation whose server traffic arrives on socket ``local_addr`` from ``server``."""
        for r in self.relays:
            if r.base == local_addr and r.client.server == server:
                return r
        return None

    def relay_at(self, relayed: Addr) -> Relay | None:
        return self._by_relayed.get(relayed)

    def announce(self, relay: Relay) -> Candidate | None:
        """The relayed candidate of an allocation, once per generation."""
        client = relay.client
        if client.state is not TurnState.ALLOCATED or client.relayed_address is None:
            return None
        if self.generation in relay.announced:
            return None
        relay.announced.add(self.generation)
        raddr = client.relayed_address
        self._by_relayed[raddr] = relay
        self.base_component[raddr] = relay.component
        mapped = client.mapped_address
        return Candidate(
            foundation=candidate_foundation(CandidateType.RELAY, relay.base[0], client.server[0]),
            component=relay.component,
            priority=candidate_priority(CandidateType.RELAY, relay.component, relay.local_preference),
            host=raddr[0],
            port=raddr[1],
            type=CandidateType.RELAY,
            related_address=mapped[0] if mapped else None,
            related_port=mapped[1] if mapped else None,
            base=raddr,
        )

    def poll_relays(self, now: float) -> list[Candidate]:
        """Run the TURN clients' timers; return relayed candidates that just became available."""
        out = []
        for relay in self.relays:
            relay.client.handle_timeout(now)
            for _ in relay.client.events():
                pass  # the state is read below; relayed data comes back through receive()
            cand = self.announce(relay)
            if cand is not None:
                out.append(cand)
        return out

    # -- completion and plumbing -------------------------------------------------------------------------
    def check_done(self, now: float) -> bool:
        """True exactly once, when this generation's gathering ends."""
        if self.done or self.deadline is None:  # finished, or never started
            return False
        jobs = [j for j in self._jobs if j.generation == self.generation]
        stun_done = all(j.txn is not None and j.txn.done for j in jobs)
        turn_done = all(r.client.state not in (TurnState.NEW, TurnState.ALLOCATING) for r in self.relays)
        timed_out = self.deadline is not None and now >= self.deadline
        if not ((stun_done and turn_done) or timed_out):
            return False
        self.done = True
        for j in self._jobs:
            if j.txn is not None:
                j.txn.cancel()
        self._jobs = []
        return True

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Addr, Addr]]:
        out: list[tuple[bytes, Addr, Addr]] = []
        for job in self._jobs:
            if job.txn is not None:
                out += [(d, job.server, job.base) for d in job.txn.datagrams_to_send(now)]
        for relay in self.relays:
            out += [(d, dst, relay.base) for d, dst in relay.client.datagrams_to_send(now)]
        return out

    def deadlines(self, *, include_gathering: bool = True) -> list[float]:
        times = []
        if include_gathering:
            for job in self._jobs:
                if job.txn is not None and (d := job.txn.next_deadline()) is not None:
                    times.append(d)
            if self.deadline is not None and not self.done:
                times.append(self.deadline)
        times += [d for r in self.relays if (d := r.client.next_deadline()) is not None]
        return times

    def handle_timeout(self, now: float) -> None:
        for job in self._jobs:
            if job.txn is not None:
                job.txn.handle_timeout(now)

    def close(self, now: float) -> None:
        """Stop gathering and release the allocations (RFC 8656 §8: Refresh with LIFETIME 0)."""
        for j in self._jobs:
            if j.txn is not None:
                j.txn.cancel()
        self._jobs = []
        self.done = True
        for relay in self.relays:
            if relay.client.state is TurnState.ALLOCATED:
                relay.client.deallocate(now)
