"""Candidate pairs and the ICE checklist (RFC 8445 §6.1.2, §6.1.4, §7.2.5.3, RFC 8838 §10).

Pair states (RFC 8445 §6.1.2.6)::

              unfreeze (same foundation succeeded,        check sent
    FROZEN ----- or nothing else waiting) -----> WAITING ------------> IN_PROGRESS
                                                   ^                    |       |
                       triggered check (§7.3.1.4)  |     success        |       | failure / timeout
                       or 487 retry (§7.2.5.1)     +-- SUCCEEDED <------+       +-----> FAILED
                                                                 (FAILED -> WAITING on a triggered check)

Pairs are formed from local host/relayed candidates (server-reflexive ones are replaced by
their base, §6.1.2.4, and so collapse into the host pair) and remote candidates of the same
component, transport and address family, pruned of duplicates and capped at ``max_pairs``.
A pair is identified by (local base, remote address): that is what a check is sent from/to.

For the valid list (§7.2.5.3.2) a succeeded pair records the local candidate the check
*discovered* (``valid_local``: host, server- or peer-reflexive) and its priority; sending
still uses the pair's base. This is the usual single-socket simplification (libnice, pion).
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable

from .candidate import Addr, Candidate, CandidateType, is_ip_address, pair_priority
from .stun_transaction import StunClientTransaction

__all__ = ["CandidatePair", "CheckList", "PairState"]


class PairState(enum.Enum):
    FROZEN = "frozen"
    WAITING = "waiting"
    IN_PROGRESS = "in-progress"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


def _base(c: Candidate) -> Addr:
    return c.base if c.base is not None else c.addr


class CandidatePair:
    """A local/remote candidate pair and its check state."""

    __slots__ = (
        "last_received",
        "last_sent",
        "local",
        "nominate_on_success",
        "nominated",
        "priority",
        "remote",
        "state",
        "transactions",
        "use_candidate",
        "valid_local",
        "valid_priority",
    )

    def __init__(self, local: Candidate, remote: Candidate, controlling: bool) -> None:
        self.local = local
        self.remote = remote
        self.state = PairState.FROZEN
        self.priority = 0
        self.nominated = False
        self.use_candidate = False
        """The next check on this pair carries USE-CANDIDATE (controlling, regular nomination)."""
        self.nominate_on_success = False
        """USE-CANDIDATE arrived before this pair succeeded (controlled side, §7.3.1.5)."""
        self.valid_local: Candidate | None = None
        self.valid_priority = 0
        self.transactions: list[StunClientTransaction] = []
        self.last_sent = -1.0
        self.last_received = -1.0
        self.update_priority(controlling)

    @property
    def key(self) -> tuple[Addr, Addr]:
        return (_base(self.local), self.remote.addr)

    @property
    def base(self) -> Addr:
        return _base(self.local)

    @property
    def component(self) -> int:
        return self.local.component

    @property
    def foundation(self) -> str:
        return f"{self.local.foundation}:{self.remote.foundation}"

    @property
    def is_valid(self) -> bool:
        return self.valid_local is not None

    def update_priority(self, controlling: bool) -> None:
        lp, rp = self.local.priority, self.remote.priority
        self.priority = pair_priority(lp, rp) if controlling else pair_priority(rp, lp)
        if self.valid_local is not None:
            vp = self.valid_local.priority
            self.valid_priority = pair_priority(vp, rp) if controlling else pair_priority(rp, vp)

    def set_valid(self, local: Candidate, controlling: bool) -> None:
        self.valid_local = local
        self.update_priority(controlling)

    def __repr__(self) -> str:
        return (
            f"<CandidatePair {self.local.type.value} {self.base[0]}:{self.base[1]} -> "
            f"{self.remote.type.value} {self.remote.host}:{self.remote.port} {self.state.value}"
            f"{' nominated' if self.nominated else ''}>"
        )


def _compatible(local: Candidate, remote: Candidate) -> bool:
    return (
        local.component == remote.component
        and local.transport.lower() == "udp"
        and remote.transport.lower() == "udp"
        and is_ip_address(remote.host)
        and local.is_ipv6 == remote.is_ipv6
        and remote.port != 0
    )


class CheckList:
    """One checklist (one data stream), RFC 8445 §6.1.2."""

    def __init__(self, *, max_pairs: int = 100) -> None:
        self.max_pairs = max_pairs
        self.pairs: list[CandidatePair] = []
        self.triggered: deque[CandidatePair] = deque()
        self._by_key: dict[tuple[Addr, Addr], CandidatePair] = {}

    # -- formation ----------------------------------------------------------------------------
    def add_pairs(
        self, locals_: Iterable[Candidate], remotes: Iterable[Candidate], controlling: bool
    ) -> list[CandidatePair]:
        """Form pairs between the given candidates (trickle: call again as candidates arrive)."""
        new: list[CandidatePair] = []
        remote_list = list(remotes)
        for lc in locals_:
            if lc.type not in (CandidateType.HOST, CandidateType.RELAY):
                continue  # §6.1.2.4: reflexive candidates are replaced by their base
            for rc in remote_list:
                if not _compatible(lc, rc):
                    continue
                key = (_base(lc), rc.addr)
                if key in self._by_key:
                    continue
                pair = CandidatePair(lc, rc, controlling)
                self._by_key[key] = pair
                new.append(pair)
        if not new:
            return []
        # initial states: first pair of each foundation (lowest component, highest priority)
        # waits; the others stay frozen (§6.1.2.6, RFC 8838 §10 for pairs added later)
        new.sort(key=lambda p: (p.component, -p.priority))
        for p in new:
            p.state = PairState.WAITING if self._foundation_may_wait(p) else PairState.FROZEN
            self.pairs.append(p)
        self._sort_and_cap()
        return [p for p in new if p.key in self._by_key]

    def add_pair(self, local: Candidate, remote: Candidate, controlling: bool) -> CandidatePair:
        """Add one pair in state WAITING (peer-reflexive discovery, §7.3.1.4)."""
        key = (_base(local), remote.addr)
        pair = self._by_key.get(key)
        if pair is None:
            pair = CandidatePair(local, remote, controlling)
            pair.state = PairState.WAITING
            self._by_key[key] = pair
            self.pairs.append(pair)
            self._sort_and_cap(keep=pair)
        return pair

    def _foundation_may_wait(self, pair: CandidatePair) -> bool:
        f = pair.foundation
        for p in self.pairs:
            if p.foundation == f and p.state in (PairState.WAITING, PairState.IN_PROGRESS, PairState.FROZEN):
                return False
        return True

    def _sort_and_cap(self, keep: CandidatePair | None = None) -> None:
        self.pairs.sort(key=lambda p: p.priority, reverse=True)
        while len(self.pairs) > self.max_pairs:
            for victim in reversed(self.pairs):
                if victim is not keep and victim.state in (PairState.FROZEN, PairState.WAITING, PairState.FAILED):
                    self.remove(victim)
                    break
            else:
                break

    def remove(self, pair: CandidatePair) -> None:
        self.pairs.remove(pair)
        self._by_key.pop(pair.key, None)
        if pair in self.triggered:
            self.triggered.remove(pair)

    def set_role(self, controlling: bool) -> None:
        for p in self.pairs:
            p.update_priority(controlling)
        self.pairs.sort(key=lambda p: p.priority, reverse=True)

    # -- lookup -------------------------------------------------------------------------------
    def find(self, base: Addr, remote: Addr) -> CandidatePair | None:
        return self._by_key.get((base, remote))

    def valid_pairs(self, component: int) -> list[CandidatePair]:
        out = [p for p in self.pairs if p.is_valid and p.component == component]
        out.sort(key=lambda p: p.valid_priority, reverse=True)
        return out

    def components(self) -> set[int]:
        return {p.component for p in self.pairs}

    def pending(self, component: int | None = None) -> list[CandidatePair]:
        """Pairs that may still succeed (frozen, waiting or in progress)."""
        return [
            p
            for p in self.pairs
            if p.state in (PairState.FROZEN, PairState.WAITING, PairState.IN_PROGRESS)
            and (component is None or p.component == component)
        ]

    # -- scheduling (§6.1.4.2) ----------------------------------------------------------------
    def trigger(self, pair: CandidatePair) -> None:
        if pair.state in (PairState.FROZEN, PairState.FAILED, PairState.SUCCEEDED, PairState.IN_PROGRESS):
            pair.state = PairState.WAITING
        if pair not in self.triggered:
            self.triggered.append(pair)

    def next_check(self) -> CandidatePair | None:
        while self.triggered:
            pair = self.triggered.popleft()
            if pair.key in self._by_key and pair.state is PairState.WAITING:
                return pair
        for p in self.pairs:
            if p.state is PairState.WAITING:
                return p
        active = {p.foundation for p in self.pairs if p.state in (PairState.WAITING, PairState.IN_PROGRESS)}
        for p in self.pairs:
            if p.state is PairState.FROZEN and p.foundation not in active:
                p.state = PairState.WAITING
                return p
        return None

    def has_work(self) -> bool:
        """Whether :meth:`next_check` would return a pair (without unfreezing anything)."""
        if any(p.state is PairState.WAITING for p in self.triggered):
            return True
        if any(p.state is PairState.WAITING for p in self.pairs):
            return True
        active = {p.foundation for p in self.pairs if p.state is PairState.IN_PROGRESS}
        return any(p.state is PairState.FROZEN and p.foundation not in active for p in self.pairs)

    def succeeded(self, pair: CandidatePair) -> None:
        """§7.2.5.3.3: unfreeze the pairs sharing the foundation."""
        pair.state = PairState.SUCCEEDED
        self.unfreeze(pair.foundation)

    def unfreeze(self, foundation: str) -> None:
        for p in self.pairs:
            if p.state is PairState.FROZEN and p.foundation == foundation:
                p.state = PairState.WAITING

    def prune_component(self, component: int) -> list[CandidatePair]:
        """§8.1.2 after nomination: drop frozen/waiting pairs; return in-progress ones to cancel."""
        cancel = []
        for p in list(self.pairs):
            if p.component != component:
                continue
            if p.state in (PairState.FROZEN, PairState.WAITING):
                p.state = PairState.FAILED
                if p in self.triggered:
                    self.triggered.remove(p)
            elif p.state is PairState.IN_PROGRESS and not p.use_candidate and not p.nominate_on_success:
                cancel.append(p)
        return cancel
