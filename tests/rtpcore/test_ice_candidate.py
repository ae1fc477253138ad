"""Candidates (RFC 8445 §5.1, RFC 8839 §5.1), checklist (RFC 8445 §6.1.2) and consent timers (RFC 7675)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtpcore.errors import LocalProtocolError, SdpParseError
from rtpcore.ice.candidate import (
    Candidate,
    CandidateType,
    candidate_foundation,
    candidate_priority,
    pair_priority,
)
from rtpcore.ice.checklist import CheckList, PairState
from rtpcore.ice.consent import ConsentFreshness, ConsentState

# real lines (tests/vectors/stun provenance: interop-lab NOTES.md, Chromium 156 and baresip)
CHROMIUM_HOST = "candidate:4115848251 1 udp 2122194687 10.77.0.1 44961 typ host generation 0 ufrag ld49 network-id 2"
CHROMIUM_LOOPBACK = (
    "candidate:51382539 1 udp 2122260223 127.0.0.1 50278 typ host generation 0 ufrag ld49 network-id 1 network-cost 50"
)
CHROMIUM_TCP = "candidate:1 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active generation 0"
SRFLX = "842163049 1 udp 1677729535 192.0.2.1 40000 typ srflx raddr 10.0.0.1 rport 5000"
RELAY_V6 = "3 1 UDP 16777215 2001:db8::9 3478 typ relay raddr 2001:db8::1 rport 50000"


@pytest.mark.parametrize("line", [CHROMIUM_HOST, CHROMIUM_LOOPBACK, CHROMIUM_TCP, SRFLX, RELAY_V6])
def test_sdp_round_trip(line: str) -> None:
    c = Candidate.from_sdp(line)
    value = line.removeprefix("candidate:")
    assert c.to_sdp() == value
    assert Candidate.from_sdp("a=candidate:" + value) == c


def test_sdp_fields() -> None:
    c = Candidate.from_sdp(CHROMIUM_LOOPBACK)
    assert (c.foundation, c.component, c.transport, c.priority) == ("51382539", 1, "udp", 2122260223)
    assert c.addr == ("127.0.0.1", 50278) and c.type is CandidateType.HOST
    assert c.extension("ufrag") == "ld49" and c.extension("network-cost") == "50"
    s = Candidate.from_sdp(SRFLX)
    assert s.type is CandidateType.SRFLX and s.related == ("10.0.0.1", 5000)
    r = Candidate.from_sdp(RELAY_V6)
    assert r.is_ipv6 and r.related == ("2001:db8::1", 50000)
    assert c.with_extensions(("ufrag", "zz")).extension("ufrag") == "zz"


@pytest.mark.parametrize(
    "line",
    [
        "",
        "1 1 udp 100 1.2.3.4 5",  # too short
        "1 1 udp 100 1.2.3.4 5 type host",
        "1 1 udp 100 1.2.3.4 5 typ bogus",
        "1 0 udp 100 1.2.3.4 5 typ host",  # component 0
        "1 257 udp 100 1.2.3.4 5 typ host",
        "1 1 udp 4294967296 1.2.3.4 5 typ host",  # priority > 2^32-1
        "1 1 udp 100 1.2.3.4 65536 typ host",
        "1 1 udp -1 1.2.3.4 5 typ host",
        "f@o 1 udp 100 1.2.3.4 5 typ host",  # foundation not ice-char
        "1 1 udp 100 1.2.3.4 5 typ srflx raddr",  # extension without value
        "1 1 udp 100 1.2.3.4 5 typ srflx raddr 1.1.1.1 rport x",
        "1 1 udp 100 1.2.3.4 5 typ host ge(n 0",
    ],
)
def test_bad_sdp_raises_sdp_parse_error(line: str) -> None:
    with pytest.raises(SdpParseError):
        Candidate.from_sdp(line)


@given(st.text(max_size=80))
def test_property_from_sdp_only_raises_sdp_parse_error(text: str) -> None:
    try:
        Candidate.from_sdp(text)
    except SdpParseError:
        pass


def test_priority_formula_rfc8445_5_1_2() -> None:
    assert candidate_priority(CandidateType.HOST, 1) == (126 << 24) + (65535 << 8) + 255 == 2130706431
    assert candidate_priority(CandidateType.SRFLX, 1) == 1694498815
    assert candidate_priority(CandidateType.PRFLX, 2, 0) == (110 << 24) + 254
    assert candidate_priority(CandidateType.RELAY, 1, 1) == 511
    # RFC 5769's sample request: PRIORITY 0x6e0001ff = prflx, local pref 1, component 1
    assert candidate_priority(CandidateType.PRFLX, 1, 1) == 0x6E0001FF
    with pytest.raises(LocalProtocolError):
        candidate_priority(CandidateType.HOST, 0)


def test_pair_priority_formula_rfc8445_6_1_2_3() -> None:
    g, d = 2130706431, 1694498815
    assert pair_priority(g, d) == (d << 32) + 2 * g + 1
    assert pair_priority(d, g) == (d << 32) + 2 * g
    assert pair_priority(g, g) == (g << 32) + 2 * g


def test_foundation_groups_by_type_base_and_server() -> None:
    a = candidate_foundation(CandidateType.SRFLX, "10.0.0.1", "198.51.100.1")
    assert a == candidate_foundation(CandidateType.SRFLX, "10.0.0.1", "198.51.100.1", "UDP")
    assert a != candidate_foundation(CandidateType.SRFLX, "10.0.0.2", "198.51.100.1")
    assert a != candidate_foundation(CandidateType.SRFLX, "10.0.0.1", "198.51.100.2")
    assert a != candidate_foundation(CandidateType.HOST, "10.0.0.1")


# -- checklist -------------------------------------------------------------------------------------


def _host(ip: str, port: int, comp: int = 1, pref: int = 65535) -> Candidate:
    return Candidate(
        foundation=candidate_foundation(CandidateType.HOST, ip),
        component=comp,
        priority=candidate_priority(CandidateType.HOST, comp, pref),
        host=ip,
        port=port,
        type=CandidateType.HOST,
        base=(ip, port),
    )


def _remote(ip: str, port: int, ctype: CandidateType = CandidateType.HOST, comp: int = 1, f: str = "r1") -> Candidate:
    return Candidate(foundation=f, component=comp, priority=candidate_priority(ctype, comp), host=ip, port=port, type=ctype)


def test_pairs_formed_sorted_and_srflx_replaced_by_base() -> None:
    cl = CheckList()
    host = _host("10.0.0.1", 5000)
    srflx = Candidate(
        foundation="s",
        component=1,
        priority=candidate_priority(CandidateType.SRFLX, 1),
        host="192.0.2.1",
        port=40000,
        type=CandidateType.SRFLX,
        base=("10.0.0.1", 5000),
    )
    remotes = [
        _remote("203.0.113.5", 7000, f="a"),
        _remote("203.0.113.6", 7000, CandidateType.SRFLX, f="b"),
        _remote("2001:db8::1", 7000, f="c"),  # other family: no pair
        _remote("203.0.113.7", 7000, comp=2, f="d"),  # other component: no pair
        Candidate(foundation="e", component=1, transport="tcp", priority=5, host="203.0.113.8", port=9, type=CandidateType.HOST),
        Candidate(foundation="m", component=1, priority=5, host="abc.local", port=9, type=CandidateType.HOST),
    ]
    new = cl.add_pairs([host, srflx], remotes, controlling=True)
    assert len(new) == 2 and len(cl.pairs) == 2  # srflx collapsed into the host pair
    assert cl.pairs[0].priority > cl.pairs[1].priority
    assert cl.pairs[0].remote.host == "203.0.113.5"
    assert cl.find(("10.0.0.1", 5000), ("203.0.113.6", 7000)) is cl.pairs[1]
    assert cl.add_pairs([host], remotes, controlling=True) == []  # duplicates pruned


def test_initial_states_one_waiting_per_foundation_and_unfreeze_on_success() -> None:
    cl = CheckList()
    l1, l2 = _host("10.0.0.1", 5000), _host("10.0.0.1", 5001, comp=2)
    r1, r2 = _remote("203.0.113.5", 7000, f="x"), _remote("203.0.113.5", 7001, comp=2, f="x")
    cl.add_pairs([l1, l2], [r1, r2], controlling=False)
    states = {p.component: p.state for p in cl.pairs}
    assert states == {1: PairState.WAITING, 2: PairState.FROZEN}
    first = cl.next_check()
    assert first is not None and first.component == 1
    first.state = PairState.IN_PROGRESS
    assert cl.next_check() is None  # frozen pair shares an active foundation
    assert not cl.has_work()
    cl.succeeded(first)
    second = cl.next_check()
    assert second is not None and second.component == 2


def test_frozen_pair_unfrozen_when_nothing_else_waits() -> None:
    cl = CheckList()
    l1 = _host("10.0.0.1", 5000)
    l2 = _host("10.0.0.1", 5001, comp=2)
    cl.add_pairs([l1, l2], [_remote("203.0.113.5", 7000, f="x"), _remote("203.0.113.5", 7001, comp=2, f="x")], False)
    p = cl.next_check()
    assert p is not None
    p.state = PairState.FAILED  # the foundation's first pair failed
    q = cl.next_check()
    assert q is not None and q.component == 2 and q.state is PairState.WAITING


def test_triggered_checks_come_first_and_role_change_reorders() -> None:
    cl = CheckList()
    l1 = _host("10.0.0.1", 5000)
    cl.add_pairs([l1], [_remote("203.0.113.5", 7000, f="a"), _remote("203.0.113.6", 7000, CandidateType.SRFLX, f="b")], True)
    low = cl.pairs[-1]
    cl.trigger(low)
    assert cl.next_check() is low
    before = [p.priority for p in cl.pairs]
    cl.set_role(False)
    assert [p.priority for p in cl.pairs] != before


def test_max_pairs_cap_drops_lowest_priority() -> None:
    cl = CheckList(max_pairs=3)
    local = _host("10.0.0.1", 5000)
    remotes = [_remote("203.0.113.1", 7000 + i, f=f"f{i}") for i in range(5)]
    cl.add_pairs([local], remotes, True)
    assert len(cl.pairs) == 3


def test_prune_component_after_nomination() -> None:
    cl = CheckList()
    cl.add_pairs([_host("10.0.0.1", 5000)], [_remote("203.0.113.1", 7000 + i, f=f"f{i}") for i in range(3)], True)
    a, b, c = cl.pairs
    b.state = PairState.IN_PROGRESS
    cancel = cl.prune_component(1)
    assert cancel == [b]
    assert c.state is PairState.FAILED


# -- consent timers --------------------------------------------------------------------------------


def test_consent_jitter_and_expiry() -> None:
    rng = random.Random(7).randbytes
    c = ConsentFreshness(100.0, interval=5.0, timeout=30.0, disconnected_after=10.0, rng=rng)
    gaps = []
    now = 100.0
    for _ in range(50):
        gaps.append(c.next_check_at - now)
        now = c.next_check_at
        c.sent(now)
    assert min(gaps) >= 4.0 and max(gaps) <= 6.0 and max(gaps) - min(gaps) > 0.5
    c2 = ConsentFreshness(0.0, rng=rng)
    assert c2.update(9.9) is ConsentState.FRESH
    assert c2.update(10.0) is ConsentState.STALE
    c2.confirmed(12.0)
    assert c2.update(12.0) is ConsentState.FRESH and c2.expires_at == 42.0
    assert c2.update(41.9) is ConsentState.STALE
    assert c2.update(42.0) is ConsentState.EXPIRED and not c2.alive
    c2.confirmed(43.0)  # too late: expiry is final
    assert c2.state is ConsentState.EXPIRED and c2.next_deadline() is None
    c3 = ConsentFreshness(0.0, rng=rng)
    c3.revoke()
    assert c3.update(1.0) is ConsentState.REVOKED
