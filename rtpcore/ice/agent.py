"""A full ICE agent, sans-IO (RFC 8445, trickle RFC 8838, consent freshness RFC 7675).

One UDP socket per component carries everything: host traffic, STUN gathering, TURN (the
relayed candidates' traffic is wrapped by :class:`~rtpcore.ice.turn.TurnClient` and leaves
from the same socket) and application data. Every input names the socket it arrived on
(``local_addr``); every output is ``(data, destination, source socket)``.

Driving it::

    agent = IceAgent(controlling=True, rng=os.urandom, stun_servers=[("198.51.100.1", 3478)])
    agent.gather(now, [("10.0.0.1", 5000)])            # LocalCandidate events trickle out
    agent.set_remote_credentials(ufrag, pwd)           # from the peer's SDP
    agent.add_remote_candidate("1 1 udp 2130706431 ...")  # trickled, then end_of_remote_candidates()
    app_data = agent.receive(data, src, local_addr, now)  # STUN consumed, other bytes returned
    for data, dst, src in agent.datagrams_to_send(now): ...
    agent.handle_timeout(now) at agent.next_deadline()
    agent.send(rtp) -> [(data, dst, src)] on the selected pair

Checks are paced one per ``Ta`` (§14.1; triggered checks first, §6.1.4.2); 487 role conflicts
are repaired with the tie-breaker (§7.3.1.1, §7.2.5.1); unknown sources become peer-reflexive
candidates (§7.3.1.3, §7.2.5.3.1); the controlling agent uses regular nomination (§8.1.1):
it lets checks run until no better pair is pending (or ``nomination_delay`` passes) and then
repeats the check of the best valid pair with USE-CANDIDATE. Gathering never blocks: checks
start as soon as the peer's credentials and a candidate are known, and gathering ends
(``GatheringComplete``, i.e. end-of-candidates) when every STUN/TURN request has finished or
``gather_timeout`` has passed. ICE restart (§9) keeps sending on the old selected pair until
the new generation selects one.

Connection state::

    NEW --first check--> CHECKING --valid pair per component--> CONNECTED --nominated per component--> COMPLETED
                            |                                      ^   |                                |
                            +--all pairs failed + end-of-cands     |   +--no consent response for ------+
                            v                                      |      disconnected_after --> DISCONNECTED
                          FAILED <---- consent lost (30 s, RFC 7675) or revoked ------------------------+
"""

from __future__ import annotations

import base64
import enum
import logging
import os
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field

from ..errors import LocalProtocolError, StunError
from .candidate import (
    Addr,
    Candidate,
    CandidateType,
    candidate_foundation,
    candidate_priority,
)
from .checklist import CandidatePair, CheckList, PairState
from .consent import ConsentFreshness, ConsentState
from .gathering import Gatherer
from .stun import (
    ErrorCode,
    IceControlled,
    IceControlling,
    MessageClass,
    Method,
    Priority,
    Software,
    StunAttribute,
    StunMessage,
    UseCandidate,
    Username,
    XorMappedAddress,
    error_response_for,
    is_stun,
    new_transaction_id,
    parse_message,
    reason_phrase,
)
from .stun_transaction import StunClientTransaction, StunTimers, TransactionState
from .turn import TurnServer

__all__ = [
    "ConnectionStateChanged",
    "ConsentLost",
    "ConsentLostCause",
    "GatheringComplete",
    "IceAgent",
    "IceConfig",
    "IceConnectionState",
    "IceEvent",
    "LocalCandidate",
    "SelectedPairChanged",
]

_log = logging.getLogger(__name__)


class _Prefixed(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Prefixes every line with the agent's short id (its first ufrag)."""

    def process(self, msg: object, kwargs: MutableMapping[str, object]) -> tuple[object, MutableMapping[str, object]]:
        return f"[ice {self.extra['id'] if self.extra else '?'}] {msg}", kwargs


# -- configuration and events ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IceConfig:
    """ICE timers and limits; every field can be shrunk by tests."""

    ta: float = 0.05
    """Pacing interval between new STUN transactions (RFC 8445 §14.1), seconds."""
    check_timers: StunTimers = field(default_factory=lambda: StunTimers(rto=0.5, rc=7, rm=16, rto_max=1.6))
    """Retransmissions of a connectivity check (RFC 8445 §14.3 on RFC 8489 §6.2.1). The doubling is
    capped at 1.6 s so that a lossy path gets 7 tries within 8 s rather than 32 s."""
    gather_timers: StunTimers = field(default_factory=lambda: StunTimers(rto=0.5, rc=4, rm=4))
    """Retransmissions of a server-reflexive Binding request during gathering."""
    gather_timeout: float = 5.0
    """Gathering ends (end-of-candidates) at the latest this long after gather()."""
    nomination_delay: float = 0.25
    """Controlling side: how long after the first valid pair to wait for better ones."""
    max_pairs: int = 100
    """Checklist size cap (RFC 8445 §6.1.2.5)."""
    keepalive_interval: float = 15.0
    """Tr (RFC 8445 §11): Binding indication when nothing else was sent on the pair."""
    consent_interval: float | None = 5.0
    """RFC 7675 §5.1 consent request period (randomized 0.8-1.2x); None disables consent checks."""
    consent_timeout: float = 30.0
    """RFC 7675 §5.1: consent expires this long after the last response."""
    disconnected_after: float = 10.0
    """No consent response for this long: state DISCONNECTED (recoverable)."""
    consent_timers: StunTimers = field(default_factory=lambda: StunTimers(rto=0.5, rc=4, rm=2))
    """Retransmissions of one consent request (must end before the next one)."""
    local_preference: int = 65535
    """Local preference of the first host address; later ones get one less each."""
    software: str | None = None
    """SOFTWARE attribute for requests and responses, or None."""
    turn_lifetime: int = 600
    """Requested TURN allocation lifetime (RFC 8656 §7.2), seconds."""


class IceConnectionState(enum.Enum):
    NEW = "new"
    CHECKING = "checking"
    CONNECTED = "connected"
    COMPLETED = "completed"
    FAILED = "failed"
    DISCONNECTED = "disconnected"
    CLOSED = "closed"


class ConsentLostCause(enum.Enum):
    TIMEOUT = "timeout"
    """No authenticated response for ``consent_timeout`` (RFC 7675 §5.1)."""
    REVOKED = "revoked"
    """The peer answered a consent request with an authenticated error (RFC 7675 §5.2)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalCandidate:
    """A local candidate was gathered: signal it to the peer (trickle)."""

    candidate: Candidate
    ufrag: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GatheringComplete:
    """Gathering ended for this ufrag: signal end-of-candidates (RFC 8838 §8.2)."""

    ufrag: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionStateChanged:
    state: IceConnectionState
    previous: IceConnectionState


@dataclass(frozen=True, slots=True, kw_only=True)
class SelectedPairChanged:
    component: int
    local: Candidate
    remote: Candidate


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentLost:
    """RFC 7675: the agent stopped sending on this pair."""

    component: int
    cause: ConsentLostCause
    local: Candidate
    remote: Candidate


IceEvent = LocalCandidate | GatheringComplete | ConnectionStateChanged | SelectedPairChanged | ConsentLost


# -- internal records -----------------------------------------------------------------------------

def _ice_string(rng: Callable[[int], bytes], n: int) -> str:
    """``n`` ice-chars (RFC 8839 §5.4) from the injected rng."""
    return base64.b64encode(rng(n))[:n].decode("ascii")


@dataclass(slots=True, eq=False)
class _Generation:
    """Credentials and checklist of one ICE generation (restart = new generation)."""

    local_ufrag: str
    local_pwd: str
    checklist: CheckList
    remote_ufrag: str | None = None
    remote_pwd: str | None = None
    remote_lite: bool = False
    remote_end: bool = False
    gathering_done: bool = False
    local_candidates: list[Candidate] = field(default_factory=list)
    remote_candidates: list[Candidate] = field(default_factory=list)
    prflx_count: int = 0


@dataclass(slots=True, eq=False)
class _Check:
    pair: CandidatePair
    gen: _Generation
    txn: StunClientTransaction
    controlling: bool
    use_candidate: bool
    prflx_priority: int
    consent: bool = False


@dataclass(slots=True, eq=False)
class _Selection:
    pair: CandidatePair
    gen: _Generation
    consent: ConsentFreshness | None


# -- the agent ------------------------------------------------------------------------------------


class IceAgent:
    """Full ICE agent for one data stream with ``components`` components (1 with rtcp-mux)."""

    def __init__(
        self,
        controlling: bool,
        local_ufrag: str | None = None,
        local_pwd: str | None = None,
        rng: Callable[[int], bytes] = os.urandom,
        *,
        config: IceConfig | None = None,
        stun_servers: Sequence[Addr] = (),
        turn_servers: Sequence[TurnServer] = (),
        tie_breaker: int | None = None,
        components: int = 1,
    ) -> None:
        self.config = cfg = config or IceConfig()
        self._rng = rng
        self._controlling = controlling
        self.tie_breaker = tie_breaker if tie_breaker is not None else int.from_bytes(rng(8), "big")
        if not 1 <= components <= 256:
            raise LocalProtocolError("components must be 1..256")
        self.components = components
        self._gatherer = Gatherer(
            rng=rng,
            stun_servers=stun_servers,
            turn_servers=turn_servers,
            timers=cfg.gather_timers,
            timeout=cfg.gather_timeout,
            turn_lifetime=cfg.turn_lifetime,
            local_preference=cfg.local_preference,
            software=cfg.software,
        )
        self._gen = self._new_generation(local_ufrag, local_pwd)
        self._old_gens: list[_Generation] = []
        self._checks: dict[bytes, _Check] = {}
        self._selected: dict[int, _Selection] = {}
        self._first_valid_at: dict[int, float] = {}
        self._nominating: dict[int, CandidatePair] = {}
        self._events: list[IceEvent] = []
        self._out: list[tuple[bytes, Addr, Addr]] = []
        self._state = IceConnectionState.NEW
        self._checking_started = False
        self._consent_lost = False
        self._closed = False
        self._next_tick: float | None = None
        self._last_tick = -1e18
        self._nomination_wake: float | None = None
        self._now = 0.0
        self.dropped = 0
        """Datagrams dropped: malformed, unauthenticated, or data from unknown sources."""
        self._log = _Prefixed(_log, {"id": self._gen.local_ufrag})
        if cfg.ta <= 0:
            raise LocalProtocolError("Ta must be positive")

    def _new_generation(self, ufrag: str | None, pwd: str | None) -> _Generation:
        ufrag = ufrag if ufrag is not None else _ice_string(self._rng, 8)
        pwd = pwd if pwd is not None else _ice_string(self._rng, 24)
        if not 4 <= len(ufrag) <= 256 or not 22 <= len(pwd) <= 256:
            raise LocalProtocolError("ice-ufrag must be 4..256 and ice-pwd 22..256 characters (RFC 8839 §5.4)")
        return _Generation(ufrag, pwd, CheckList(max_pairs=self.config.max_pairs))

    # -- public properties ------------------------------------------------------------------------
    @property
    def controlling(self) -> bool:
        """The ICE role. Assigning it switches roles and re-prioritizes the pairs (RFC 8445 §7.3.1.1)."""
        return self._controlling

    @controlling.setter
    def controlling(self, value: bool) -> None:
        self._switch_role(value)

    @property
    def local_ufrag(self) -> str:
        return self._gen.local_ufrag

    @property
    def local_pwd(self) -> str:
        return self._gen.local_pwd

    @property
    def state(self) -> IceConnectionState:
        return self._state

    @property
    def local_candidates(self) -> list[Candidate]:
        return list(self._gen.local_candidates)

    @property
    def remote_candidates(self) -> list[Candidate]:
        return list(self._gen.remote_candidates)

    @property
    def checklist(self) -> CheckList:
        return self._gen.checklist

    def selected_pair(self, component: int = 1) -> tuple[Candidate, Candidate] | None:
        sel = self._selected.get(component)
        if sel is None:
            return None
        return (sel.pair.valid_local or sel.pair.local, sel.pair.remote)

    def events(self) -> Iterator[IceEvent]:
        while self._events:
            yield self._events.pop(0)

    # -- gathering (RFC 8445 §5.1.1, RFC 8838 §4) ---------------------------------------------------
    def gather(self, now: float, hosts: Sequence[Addr] | Mapping[int, Sequence[Addr]]) -> None:
        """Start gathering from the bound sockets: ``[(ip, port)]`` for component 1, or
        ``{component: [(ip, port), ...]}``. Host candidates are emitted at once; server-reflexive
        and relayed ones trickle in as servers answer (:mod:`.gathering`)."""
        self._now = now
        self._gatherer.add_hosts(hosts, self.components)
        self._gen.gathering_done = False
        for cand in self._gatherer.start(now):
            self._add_local(cand)
        self._update(now)

    def add_local_candidate(self, candidate: Candidate, now: float | None = None) -> None:
        """Add a candidate learned elsewhere (e.g. a port mapping); host/relay ones form pairs."""
        if candidate.base is None:
            raise LocalProtocolError("a local candidate needs its base (the socket it is sent from)")
        self._gatherer.base_component.setdefault(candidate.base, candidate.component)
        self._add_local(candidate)
        self._update(self._now if now is None else now)

    def _add_local(self, cand: Candidate) -> None:
        gen = self._gen
        for c in gen.local_candidates:
            if c.addr == cand.addr and c.base == cand.base and c.type == cand.type:
                return
        if cand.type is CandidateType.SRFLX and any(c.addr == cand.addr for c in gen.local_candidates):
            return  # §5.1.3: redundant with the host candidate (no NAT)
        gen.local_candidates.append(cand)
        if cand.type is not CandidateType.PRFLX:
            self._events.append(LocalCandidate(candidate=cand, ufrag=gen.local_ufrag))
        gen.checklist.add_pairs([cand], gen.remote_candidates, self.controlling)

    # -- remote side (RFC 8445 §5.3, RFC 8838 §11) ----------------------------------------------------
    def set_remote_credentials(self, ufrag: str, pwd: str, *, ice_lite: bool = False, now: float | None = None) -> None:
        """The peer's ice-ufrag/ice-pwd. New values while a generation is running mean the peer
        restarted ICE (§9): the checklist restarts; call :meth:`restart` first to change ours too."""
        gen = self._gen
        if gen.remote_ufrag is not None and (gen.remote_ufrag, gen.remote_pwd) != (ufrag, pwd):
            self._begin_generation(gen.local_ufrag, gen.local_pwd, regather=False)
            gen = self._gen
        gen.remote_ufrag, gen.remote_pwd, gen.remote_lite = ufrag, pwd, ice_lite
        if ice_lite and not self.controlling:
            self._switch_role(True)  # §6.1.1: a full agent facing a lite one controls
        self._update(self._now if now is None else now)

    def add_remote_candidate(self, candidate: Candidate | str, now: float | None = None) -> None:
        """A remote candidate (trickled or from the SDP). Non-UDP and unresolved (mDNS) ones are kept
        out of pairs. Raises SdpParseError for a malformed line."""
        cand = Candidate.from_sdp(candidate) if isinstance(candidate, str) else candidate
        gen = self._gen
        for i, c in enumerate(gen.remote_candidates):
            if c.addr == cand.addr and c.component == cand.component:
                if c.type is CandidateType.PRFLX and cand.type is not CandidateType.PRFLX:
                    gen.remote_candidates[i] = cand  # signalled later than discovered (§7.3.1.3)
                    for pair in gen.checklist.pairs:  # the pairs now name the signalled type
                        if pair.remote is c:
                            pair.remote = cand
                return
        gen.remote_candidates.append(cand)
        gen.checklist.add_pairs(gen.local_candidates, [cand], self.controlling)
        self._update(self._now if now is None else now)

    def end_of_remote_candidates(self, now: float | None = None) -> None:
        self._gen.remote_end = True
        self._update(self._now if now is None else now)

    # -- restart (RFC 8445 §9) -----------------------------------------------------------------------
    def restart(self, now: float, local_ufrag: str | None = None, local_pwd: str | None = None) -> None:
        """New ufrag/pwd, new checklist, gathering again. The selected pair stays in use (and under
        consent) until the new generation selects one. Signal the new credentials and candidates."""
        self._now = now
        gen = self._new_generation(local_ufrag, local_pwd)
        self._begin_generation(gen.local_ufrag, gen.local_pwd, regather=True)

    def _begin_generation(self, ufrag: str, pwd: str, *, regather: bool) -> None:
        old = self._gen
        for chk in [c for c in self._checks.values() if c.gen is old and not c.consent]:
            chk.txn.cancel()
            del self._checks[chk.txn.transaction_id]
        if any(sel.gen is old for sel in self._selected.values()):
            self._old_gens.append(old)
        self._gen = _Generation(ufrag, pwd, CheckList(max_pairs=self.config.max_pairs))
        self._first_valid_at.clear()
        self._nominating.clear()
        self._consent_lost = False
        if regather:
            for cand in self._gatherer.start(self._now, new_generation=True):
                self._add_local(cand)
        else:
            self._gen.local_candidates = list(old.local_candidates)
            self._gen.gathering_done = old.gathering_done
        self._update(self._now)

    def close(self, now: float) -> None:
        """Stop everything; TURN allocations are released (lifetime 0)."""
        self._now = now
        for chk in self._checks.values():
            chk.txn.cancel()
        self._checks.clear()
        self._selected.clear()
        self._gatherer.close(now)
        self._closed = True
        self._set_state(IceConnectionState.CLOSED)

    # -- receiving ----------------------------------------------------------------------------------
    def receive(self, data: bytes, addr: Addr, local_addr: Addr, now: float) -> bytes | None:
        """Feed a datagram that arrived on socket ``local_addr`` from ``addr``. STUN (and TURN
        framing) is consumed; application data from a known peer address is returned."""
        self._now = now
        out: bytes | None = None
        relay = self._gatherer.relay_for(local_addr, addr)
        if relay is not None and not self._gatherer.owns_transaction(data):
            got = relay.client.receive(data, addr, now)
            cand = self._gatherer.announce(relay)
            if cand is not None:
                self._add_local(cand)
            if got is not None and relay.client.relayed_address is not None:
                payload, peer = got
                out = self._receive_on(payload, peer, relay.client.relayed_address, now)
        else:
            out = self._receive_on(data, addr, local_addr, now)
            if out is not None:
                return out  # application data on a known pair: no ICE state to re-evaluate (hot path)
        self._update(now)
        return out

    def _receive_on(self, data: bytes, addr: Addr, base: Addr, now: float) -> bytes | None:
        if data and data[0] < 4 and is_stun(data):
            self._handle_stun(data, addr, base, now)
            return None
        pair = self._pair_for(base, addr)
        if pair is None:
            self.dropped += 1
            return None
        pair.last_received = now
        return data

    def _pair_for(self, base: Addr, addr: Addr) -> CandidatePair | None:
        pair = self._gen.checklist.find(base, addr)
        if pair is not None:
            return pair
        for sel in self._selected.values():
            if sel.pair.key == (base, addr):
                return sel.pair
        return None

    def _handle_stun(self, data: bytes, addr: Addr, base: Addr, now: float) -> None:
        try:
            msg = parse_message(data)
        except StunError as exc:
            self.dropped += 1
            resp = error_response_for(data, exc)
            if resp is not None:
                self._emit(resp, addr, base)
            return
        cls = msg.message_class
        if cls is MessageClass.REQUEST:
            if msg.method == Method.BINDING:
                self._on_binding_request(msg, addr, base, now)
            else:
                self._reply_error(msg, 400, addr, base, None)
            return
        if cls is MessageClass.INDICATION:
            return  # keepalive (RFC 8445 §11)
        tid = msg.transaction_id
        chk = self._checks.get(tid)
        if chk is not None:
            if chk.txn.receive_response(msg, addr, now):
                del self._checks[tid]
                if chk.consent:
                    self._on_consent_response(chk, msg, addr, base, now)
                else:
                    self._on_check_response(chk, msg, addr, base, now)
            else:
                self.dropped += 1
            return
        consumed, cand = self._gatherer.on_response(msg, addr, now)
        if cand is not None:
            self._add_local(cand)
        if not consumed:
            self.dropped += 1

    def _reply_error(self, req: StunMessage, code: int, addr: Addr, base: Addr, key: bytes | None) -> None:
        attrs: list[StunAttribute] = [ErrorCode(code, reason_phrase(code))]
        if self.config.software:
            attrs.append(Software(self.config.software))
        resp = StunMessage(req.method, MessageClass.ERROR, req.transaction_id, attrs)
        self._emit(resp.encode(integrity_key=key, fingerprint=True), addr, base)

    # -- incoming checks (RFC 8445 §7.3) -------------------------------------------------------------
    def _on_binding_request(self, msg: StunMessage, addr: Addr, base: Addr, now: float) -> None:
        uname = msg.get(Username)
        if uname is None or not msg.has_integrity or msg.get(Priority) is None:
            self._reply_error(msg, 400, addr, base, None)
            self.dropped += 1
            return
        lfrag = uname.value.partition(":")[0]
        gen = next((g for g in (self._gen, *self._old_gens) if g.local_ufrag == lfrag), None)
        key = gen.local_pwd.encode() if gen is not None else None
        if gen is None or key is None or not msg.verify_integrity(key):
            self._reply_error(msg, 401, addr, base, None)
            self.dropped += 1
            return
        # role conflict (§7.3.1.1)
        ctl, cted = msg.get(IceControlling), msg.get(IceControlled)
        if self.controlling and ctl is not None:
            if self.tie_breaker >= ctl.tie_breaker:
                self._reply_error(msg, 487, addr, base, key)
                return
            self._switch_role(False)
        elif not self.controlling and cted is not None:
            if self.tie_breaker >= cted.tie_breaker:
                self._switch_role(True)
            else:
                self._reply_error(msg, 487, addr, base, key)
                return
        attrs: list[StunAttribute] = [XorMappedAddress(addr)]
        if self.config.software:
            attrs.append(Software(self.config.software))
        resp = StunMessage(Method.BINDING, MessageClass.SUCCESS, msg.transaction_id, attrs)
        self._emit(resp.encode(integrity_key=key, fingerprint=True), addr, base)
        if gen is not self._gen or self._closed:
            return  # an old generation only keeps answering for its selected pair
        comp = self._gatherer.base_component.get(base)
        local = self._local_for_base(base)
        if comp is None or local is None:
            return
        self._checking_started = True
        remote = next((c for c in gen.remote_candidates if c.addr == addr and c.component == comp), None)
        if remote is None:  # §7.3.1.3 peer-reflexive remote candidate
            prio = msg.get(Priority)
            gen.prflx_count += 1
            remote = Candidate(
                foundation=f"prflx{gen.prflx_count}",
                component=comp,
                priority=prio.value if prio is not None else 0,
                host=addr[0],
                port=addr[1],
                type=CandidateType.PRFLX,
            )
            gen.remote_candidates.append(remote)
            self._log.debug("peer-reflexive remote candidate %s:%d", addr[0], addr[1])
        cl = gen.checklist
        pair = cl.find(base, addr) or cl.add_pair(local, remote, self.controlling)
        pair.last_received = now
        use = msg.get(UseCandidate) is not None and not self.controlling
        if pair.state is PairState.SUCCEEDED or (use and pair.is_valid):
            if use:
                self._nominate(pair, now)
            return
        if use:
            pair.nominate_on_success = True  # §7.3.1.5
        if pair.state is PairState.IN_PROGRESS:
            for t in pair.transactions:
                t.stop_retransmitting(now)
        cl.trigger(pair)  # §7.3.1.4 triggered check

    def _local_for_base(self, base: Addr) -> Candidate | None:
        for c in self._gen.local_candidates:
            if c.base == base and c.type in (CandidateType.HOST, CandidateType.RELAY):
                return c
        return None

    # -- outgoing checks (RFC 8445 §7.2) -------------------------------------------------------------
    def _binding_request(self, gen: _Generation, pair: CandidatePair, use_candidate: bool) -> tuple[StunMessage, int]:
        prflx_priority = candidate_priority(
            CandidateType.PRFLX, pair.component, (pair.local.priority >> 8) & 0xFFFF
        )
        attrs: list[StunAttribute] = [
            Username(f"{gen.remote_ufrag}:{gen.local_ufrag}"),
            Priority(prflx_priority),
            IceControlling(self.tie_breaker) if self.controlling else IceControlled(self.tie_breaker),
        ]
        if use_candidate:
            attrs.append(UseCandidate())
        if self.config.software:
            attrs.append(Software(self.config.software))
        return StunMessage(Method.BINDING, MessageClass.REQUEST, new_transaction_id(self._rng), attrs), prflx_priority

    def _send_check(self, pair: CandidatePair, now: float) -> None:
        gen = self._gen
        if gen.remote_pwd is None:
            raise LocalProtocolError("internal state: gen.remote_pwd not set (_can_check() guarantees credentials)")
        use = self.controlling and pair.use_candidate
        msg, prflx = self._binding_request(gen, pair, use)
        txn = StunClientTransaction.for_message(
            msg,
            pair.remote.addr,
            now,
            timers=self.config.check_timers,
            integrity_key=gen.remote_pwd.encode(),
            src=pair.base,
        )
        pair.state = PairState.IN_PROGRESS
        pair.transactions = [t for t in pair.transactions if not t.done] + [txn]
        pair.last_sent = now
        self._checks[txn.transaction_id] = _Check(pair, gen, txn, self.controlling, use, prflx)
        self._checking_started = True

    def _on_check_response(self, chk: _Check, msg: StunMessage, addr: Addr, base: Addr, now: float) -> None:
        pair, gen = chk.pair, chk.gen
        if gen is not self._gen:
            return
        if addr != pair.remote.addr or base != pair.base:  # §7.2.5.2.1 non-symmetric
            self._check_failed(chk, now)
            return
        err = msg.error
        if err is not None:
            if err.code == 487:  # §7.2.5.1 role conflict: switch (once) and retry
                if chk.controlling == self.controlling:
                    self._switch_role(not chk.controlling)
                gen.checklist.trigger(pair)
                return
            self._log.debug("check %r failed with %d", pair, err.code)
            self._check_failed(chk, now)
            return
        mapped = msg.get(XorMappedAddress)
        if mapped is None:
            self._check_failed(chk, now)
            return
        maddr = mapped.address
        local = next(
            (c for c in gen.local_candidates if c.addr == maddr and (c.base or c.addr) == pair.base), None
        )
        if local is None:  # §7.2.5.3.1 peer-reflexive local candidate
            local = Candidate(
                foundation=candidate_foundation(CandidateType.PRFLX, pair.base[0]),
                component=pair.component,
                priority=chk.prflx_priority,
                host=maddr[0],
                port=maddr[1],
                type=CandidateType.PRFLX,
                related_address=pair.base[0],
                related_port=pair.base[1],
                base=pair.base,
            )
            gen.local_candidates.append(local)
        pair.set_valid(local, self.controlling)
        if pair.state is PairState.IN_PROGRESS and not any(not t.done for t in pair.transactions):
            gen.checklist.succeeded(pair)
        else:  # a newer check (triggered, or the nomination) is pending: let it conclude
            gen.checklist.unfreeze(pair.foundation)
        pair.last_received = now
        self._first_valid_at.setdefault(pair.component, now)
        if chk.use_candidate or (pair.nominate_on_success and not self.controlling):
            self._nominate(pair, now)

    def _check_failed(self, chk: _Check, now: float) -> None:
        pair = chk.pair
        if any(not t.done for t in pair.transactions) or pair.state is PairState.WAITING:
            return
        if chk.use_candidate:
            pair.valid_local = None
            pair.use_candidate = False
            if self._nominating.get(pair.component) is pair:
                del self._nominating[pair.component]
        pair.state = PairState.SUCCEEDED if pair.is_valid else PairState.FAILED

    def _switch_role(self, controlling: bool) -> None:
        if controlling == self._controlling:
            return
        self._log.info("role %s -> %s", self._role_name(self._controlling), self._role_name(controlling))
        self._controlling = controlling
        self._gen.checklist.set_role(controlling)
        self._nominating.clear()

    @staticmethod
    def _role_name(controlling: bool) -> str:
        return "controlling" if controlling else "controlled"

    # -- nomination and selection (RFC 8445 §8) --------------------------------------------------------
    def _nominate(self, pair: CandidatePair, now: float) -> None:
        pair.nominated = True
        comp = pair.component
        cur = self._selected.get(comp)
        if cur is not None and cur.gen is self._gen and cur.pair.nominated and cur.pair.valid_priority >= pair.valid_priority:
            if cur.pair is not pair:
                return
        self._select(pair, now)
        for p in self._gen.checklist.prune_component(comp):  # §8.1.2
            for t in p.transactions:
                t.stop_retransmitting(now)

    def _select(self, pair: CandidatePair, now: float) -> None:
        comp = pair.component
        cur = self._selected.get(comp)
        if cur is not None and cur.pair is pair:
            return
        consent = None
        if self.config.consent_interval is not None:
            consent = ConsentFreshness(
                now,
                interval=self.config.consent_interval,
                timeout=self.config.consent_timeout,
                disconnected_after=self.config.disconnected_after,
                rng=self._rng,
            )
        self._selected[comp] = _Selection(pair, self._gen, consent)
        self._old_gens = [g for g in self._old_gens if any(s.gen is g for s in self._selected.values())]
        local = pair.valid_local or pair.local
        self._log.info("selected pair for component %d: %r", comp, pair)
        self._events.append(SelectedPairChanged(component=comp, local=local, remote=pair.remote))
        relay = self._gatherer.relay_at(pair.base)
        if relay is not None:
            relay.client.bind_channel(pair.remote.addr, now)

    def _run_nomination(self, now: float) -> float | None:
        """Controlling side, regular nomination. Returns when to look again, if waiting."""
        if not self.controlling or self._gen.remote_pwd is None:
            return None
        wake: float | None = None
        cl = self._gen.checklist
        for comp in sorted(cl.components()):
            sel = self._selected.get(comp)
            if (sel is not None and sel.gen is self._gen) or comp in self._nominating:
                continue
            valid = cl.valid_pairs(comp)
            if not valid:
                continue
            best = valid[0]
            deadline = self._first_valid_at.get(comp, now) + self.config.nomination_delay
            better_pending = any(p.priority > best.valid_priority for p in cl.pending(comp) if p is not best)
            if better_pending and now < deadline:
                wake = deadline if wake is None else min(wake, deadline)
                continue
            best.use_candidate = True
            self._nominating[comp] = best
            cl.trigger(best)
        return wake

    # -- consent freshness (RFC 7675) and keepalives (RFC 8445 §11) -------------------------------------
    def _service_consent(self, now: float) -> None:
        for comp, sel in list(self._selected.items()):
            pair = sel.pair
            consent = sel.consent
            if consent is None:
                if now - pair.last_sent >= self.config.keepalive_interval:
                    ind = StunMessage(Method.BINDING, MessageClass.INDICATION, new_transaction_id(self._rng))
                    self._emit(ind.encode(fingerprint=True), pair.remote.addr, pair.base)
                    pair.last_sent = now
                continue
            st = consent.update(now)
            if st is ConsentState.EXPIRED:
                self._lose_consent(comp, sel, ConsentLostCause.TIMEOUT)
                continue
            if now >= consent.next_check_at and sel.gen.remote_pwd is not None:
                msg, prflx = self._binding_request(sel.gen, pair, False)
                txn = StunClientTransaction.for_message(
                    msg,
                    pair.remote.addr,
                    now,
                    timers=self.config.consent_timers,
                    integrity_key=sel.gen.remote_pwd.encode(),
                    src=pair.base,
                )
                self._checks[txn.transaction_id] = _Check(pair, sel.gen, txn, self.controlling, False, prflx, True)
                consent.sent(now)
                pair.last_sent = now

    def _on_consent_response(self, chk: _Check, msg: StunMessage, addr: Addr, base: Addr, now: float) -> None:
        for comp, sel in list(self._selected.items()):
            if sel.pair is not chk.pair or sel.consent is None:
                continue
            if addr != chk.pair.remote.addr or base != chk.pair.base:
                return
            err = msg.error
            if err is None:
                sel.consent.confirmed(now)
            elif err.code != 487:
                sel.consent.revoke()
                self._lose_consent(comp, sel, ConsentLostCause.REVOKED)

    def _lose_consent(self, comp: int, sel: _Selection, cause: ConsentLostCause) -> None:
        pair = sel.pair
        self._log.warning("consent lost on %r: %s", pair, cause.value)
        del self._selected[comp]
        self._consent_lost = True
        pair.state = PairState.FAILED  # never fall back to it: consent is per pair
        pair.valid_local = None
        pair.nominated = False
        for tid, chk in list(self._checks.items()):
            if chk.pair is pair:
                chk.txn.cancel()
                del self._checks[tid]
        self._events.append(
            ConsentLost(component=comp, cause=cause, local=pair.valid_local or pair.local, remote=pair.remote)
        )

    # -- sending ------------------------------------------------------------------------------------
    def send(self, data: bytes, component: int = 1, now: float | None = None) -> list[tuple[bytes, Addr, Addr]]:
        """Datagrams ``(data, dst, src socket)`` carrying ``data`` on the selected pair (or, before
        nomination, the best valid pair). Empty when there is none or consent was lost."""
        if now is not None:
            self._now = now
        sel = self._selected.get(component)
        if sel is not None:
            if sel.consent is not None and not sel.consent.alive:
                return []
            pair: CandidatePair | None = sel.pair
        elif self._consent_lost:
            return []
        else:
            valid = self._gen.checklist.valid_pairs(component)
            pair = valid[0] if valid else None
        if pair is None or self._closed:
            return []
        pair.last_sent = self._now
        return self._route(data, pair.remote.addr, pair.base)

    def _route(self, data: bytes, dst: Addr, base: Addr) -> list[tuple[bytes, Addr, Addr]]:
        relay = self._gatherer.relay_at(base)
        if relay is None:
            return [(data, dst, base)]
        return [(d, server, relay.base) for d, server in relay.client.send(data, dst, self._now)]

    def _emit(self, data: bytes, dst: Addr, base: Addr) -> None:
        self._out.extend(self._route(data, dst, base))

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Addr, Addr]]:
        for chk in self._checks.values():
            for d in chk.txn.datagrams_to_send(now):
                self._emit(d, chk.txn.dst, chk.pair.base)
        self._out += self._gatherer.datagrams_to_send(now)
        out, self._out = self._out, []
        return out

    # -- timers -------------------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        times: list[float] = []
        if self._closed:
            times = self._gatherer.deadlines(include_gathering=False)
            return min(times) if times else None
        if self._next_tick is not None:
            times.append(self._next_tick)
        for chk in self._checks.values():
            d = chk.txn.next_deadline()
            if d is not None:
                times.append(d)
        times += self._gatherer.deadlines()
        for sel in self._selected.values():
            if sel.consent is not None:
                d = sel.consent.next_deadline()
                if d is not None:
                    times.append(d)
            else:
                times.append(sel.pair.last_sent + self.config.keepalive_interval)
        if self._nomination_wake is not None:
            times.append(self._nomination_wake)
        return min(times) if times else None

    def handle_timeout(self, now: float) -> None:
        self._now = now
        if self._closed:
            self._gatherer.poll_relays(now)
            return
        for tid, chk in list(self._checks.items()):
            chk.txn.handle_timeout(now)
            if chk.txn.state is TransactionState.TIMED_OUT:
                del self._checks[tid]
                if not chk.consent and chk.gen is self._gen:
                    self._check_failed(chk, now)
        self._gatherer.handle_timeout(now)
        for cand in self._gatherer.poll_relays(now):
            self._add_local(cand)
        if self._next_tick is not None and now >= self._next_tick:
            self._tick(now)
        self._service_consent(now)
        self._update(now)

    def _can_check(self) -> bool:
        return self._gen.remote_pwd is not None and not self._closed

    def _has_work(self) -> bool:
        if self._gatherer.has_pending():
            return True
        return self._can_check() and self._gen.checklist.has_work()

    def _tick(self, now: float) -> None:
        """One paced transaction start (§6.1.4.2): a gathering request, else a check."""
        self._next_tick = None
        if self._gatherer.start_next(now):
            self._last_tick = now
            return
        if not self._can_check():
            return
        pair = self._gen.checklist.next_check()
        if pair is not None:
            self._send_check(pair, now)
            self._last_tick = now

    def _check_gathering_done(self, now: float) -> None:
        gen = self._gen
        if self._gatherer.check_done(now) and not gen.gathering_done:
            gen.gathering_done = True
            self._events.append(GatheringComplete(ufrag=gen.local_ufrag))

    def _update(self, now: float) -> None:
        """Re-evaluate gathering, nomination, pacing and the connection state after any input."""
        if self._closed:
            return
        self._check_gathering_done(now)
        self._nomination_wake = self._run_nomination(now)
        if self._next_tick is None and self._has_work():
            self._next_tick = max(now, self._last_tick + self.config.ta)
        self._set_state(self._compute_state(now))

    def _compute_state(self, now: float) -> IceConnectionState:
        gen = self._gen
        comps = set(self._gatherer.hosts) or {1}
        if self._consent_lost and not self._selected:
            return IceConnectionState.FAILED
        if comps <= set(self._selected):
            if any(s.consent is not None and s.consent.state is ConsentState.STALE for s in self._selected.values()):
                return IceConnectionState.DISCONNECTED
            if all(self._selected[c].gen is gen for c in comps):
                return IceConnectionState.COMPLETED
            return IceConnectionState.CONNECTED
        cl = gen.checklist
        if all(cl.valid_pairs(c) for c in comps):
            return IceConnectionState.CONNECTED
        if gen.remote_end and gen.gathering_done and any(
            not cl.valid_pairs(c) and not cl.pending(c) for c in comps
        ) and not cl.triggered:
            return IceConnectionState.FAILED
        if self._checking_started:
            return IceConnectionState.CHECKING
        return IceConnectionState.NEW

    def _set_state(self, state: IceConnectionState) -> None:
        if state is not self._state:
            prev, self._state = self._state, state
            self._log.info("ICE %s -> %s", prev.value, state.value)
            self._events.append(ConnectionStateChanged(state=state, previous=prev))
