"""RFC 3263 target selection with a fake resolver, failover between servers on 127.0.0.1, and the
RFC 3261 §18.1.1 switch from UDP to TCP for requests above 1300 bytes."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Sequence

import pytest

from sipcore import SipRequest, make_response, parse_message, parse_uri
from sipcore.aiostack import AioSipEndpoint
from sipcore.aioua import IncomingInvite, SystemResolver, UserAgent
from sipcore.errors import LocalProtocolError
from sipcore.headers import Headers
from sipcore.resolver import (
    NaptrRecord,
    Query,
    QueryKind,
    ResolverError,
    ServerLocator,
    SrvRecord,
    locate,
    order_naptr,
    order_srv,
    should_fail_over,
)
from sipcore.stack import SipStack, Target
from sipcore.timers import SipTimers
from sipcore.uri import SipUri

SDP = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"


class FakeResolver:
    """DNS from dictionaries; names in ``broken`` fail (SERVFAIL)."""

    def __init__(self, naptr: dict[str, list[NaptrRecord]] | None = None, srv: dict[str, list[SrvRecord]] | None = None,
                 a: dict[str, list[str]] | None = None, broken: frozenset[str] = frozenset()) -> None:
        self.naptr_db = naptr or {}
        self.srv_db = srv or {}
        self.a_db = a or {}
        self.broken = broken
        self.asked: list[tuple[str, str]] = []

    def _check(self, kind: str, name: str) -> None:
        self.asked.append((kind, name))
        if name in self.broken:
            raise ResolverError(f"SERVFAIL {name}")

    async def naptr(self, domain: str) -> Sequence[NaptrRecord]:
        self._check("NAPTR", domain)
        return self.naptr_db.get(domain, [])

    async def srv(self, name: str) -> Sequence[SrvRecord]:
        self._check("SRV", name)
        return self.srv_db.get(name, [])

    async def addresses(self, host: str) -> Sequence[str]:
        self._check("A", host)
        return self.a_db.get(host, [])


def _uri(text: str) -> SipUri:
    u = parse_uri(text)
    assert isinstance(u, SipUri)
    return u


def _locate(uri: str, resolver: FakeResolver, **kw: object) -> list[Target]:
    return asyncio.run(locate(_uri(uri), resolver, rng=random.Random(1).randbytes, **kw))  # type: ignore[arg-type]


# -- ordering ---------------------------------------------------------------------------------------------
def test_srv_priority_then_weight() -> None:
    records = [SrvRecord(20, 0, 5060, "backup.example.test."), SrvRecord(10, 60, 5060, "a.example.test."),
               SrvRecord(10, 30, 5060, "b.example.test."), SrvRecord(10, 10, 5060, "c.example.test.")]
    rnd = random.Random(7)
    firsts: Counter[str] = Counter()
    for _ in range(4000):
        ordered = order_srv(records, rnd.randbytes)
        assert sorted(r.target for r in ordered[:3]) == ["a.example.test.", "b.example.test.", "c.example.test."]
        assert ordered[3].target == "backup.example.test."  # a higher priority value always comes later
        firsts[ordered[0].target] += 1
    share = {k: v / 4000 for k, v in firsts.items()}
    assert share["a.example.test."] == pytest.approx(0.6, abs=0.04)
    assert share["b.example.test."] == pytest.approx(0.3, abs=0.04)
    assert share["c.example.test."] == pytest.approx(0.1, abs=0.03)
    # weight 0 goes first in the list and is picked first only when the draw is 0 (RFC 2782)
    zero = [SrvRecord(1, 0, 1, "zero."), SrvRecord(1, 99, 1, "heavy.")]
    picks = Counter(order_srv(zero, rnd.randbytes)[0].target for _ in range(5000))
    assert 0 < picks["zero."] < 150
    assert order_srv([SrvRecord(0, 0, 0, ".")]) == []  # "the service is decidedly not available"


def test_naptr_filtering_and_order() -> None:
    recs = [NaptrRecord(20, 10, "s", "SIP+D2U", "", "_sip._udp.example.test."),
            NaptrRecord(10, 20, "S", "SIP+D2T", "", "_sip._tcp.example.test."),
            NaptrRecord(10, 10, "s", "SIPS+D2T", "", "_sips._tcp.example.test."),
            NaptrRecord(5, 5, "s", "SIP+D2S", "", "_sip._sctp.example.test."),  # SCTP: not ours
            NaptrRecord(1, 1, "a", "SIP+D2U", "", "weird.example.test.")]  # not an SRV pointer
    assert order_naptr(recs, secure=False, transports=["tls", "tcp", "udp"]) == [
        ("tls", "_sips._tcp.example.test"), ("tcp", "_sip._tcp.example.test"), ("udp", "_sip._udp.example.test")]
    assert order_naptr(recs, secure=True, transports=["tls", "tcp", "udp"]) == [("tls", "_sips._tcp.example.test")]
    assert order_naptr(recs, secure=False, transports=["udp"]) == [("udp", "_sip._udp.example.test")]


# -- the lookup chain -----------------------------------------------------------------------------------------
DNS = FakeResolver(
    naptr={"example.test": [NaptrRecord(10, 10, "s", "SIPS+D2T", "", "_sips._tcp.example.test."),
                            NaptrRecord(20, 10, "s", "SIP+D2U", "", "_sip._udp.example.test.")]},
    srv={"_sips._tcp.example.test": [SrvRecord(10, 0, 5061, "edge1.example.test."),
                                     SrvRecord(20, 0, 5071, "edge2.example.test.")],
         "_sip._udp.example.test": [SrvRecord(10, 0, 5060, "edge1.example.test.")],
         "_sip._udp.srvonly.test": [SrvRecord(5, 0, 5080, "sip.srvonly.test.")],
         "_sip._tcp.tcponly.test": [SrvRecord(5, 0, 5090, "sip.tcponly.test.")]},
    a={"edge1.example.test": ["192.0.2.1", "2001:db8::1"], "edge2.example.test": ["192.0.2.2"],
       "sip.srvonly.test": ["192.0.2.3"], "plain.test": ["192.0.2.4"], "sip.tcponly.test": ["192.0.2.5"],
       "media.test": ["192.0.2.6"]},
)


def test_naptr_srv_a_chain() -> None:
    assert _locate("sip:alice@example.test", DNS) == [
        Target("tls", "192.0.2.1", 5061), Target("tls", "2001:db8::1", 5061), Target("tls", "192.0.2.2", 5071),
        Target("udp", "192.0.2.1", 5060), Target("udp", "2001:db8::1", 5060)]
    assert _locate("sip:alice@example.test", DNS, transports=("udp",)) == [
        Target("udp", "192.0.2.1", 5060), Target("udp", "2001:db8::1", 5060)]


def test_fallbacks_srv_then_a() -> None:
    # no NAPTR: SRV per transport we support, in our order; the first that exists wins the list
    assert _locate("sip:bob@srvonly.test", DNS) == [Target("udp", "192.0.2.3", 5080)]
    assert _locate("sip:bob@tcponly.test", DNS) == [Target("tcp", "192.0.2.5", 5090)]
    # no NAPTR and no SRV: A record, UDP, 5060; sips: TLS on 5061
    assert _locate("sip:bob@plain.test", DNS) == [Target("udp", "192.0.2.4", 5060)]
    assert _locate("sips:bob@plain.test", DNS) == [Target("tls", "192.0.2.4", 5061)]
    assert _locate("sip:bob@nowhere.test", DNS) == []


def test_explicit_transport_port_ip_and_maddr() -> None:
    r = FakeResolver(a=DNS.a_db, srv=DNS.srv_db)
    assert _locate("sip:bob@192.0.2.9", r) == [Target("udp", "192.0.2.9", 5060)] and r.asked == []
    assert _locate("sips:bob@[2001:db8::9]:5999", r) == [Target("tls", "2001:db8::9", 5999)] and r.asked == []
    assert _locate("sip:bob@plain.test:5070", r) == [Target("udp", "192.0.2.4", 5070)]
    assert r.asked == [("A", "plain.test")]  # an explicit port: no NAPTR, no SRV
    r.asked.clear()
    assert _locate("sip:bob@tcponly.test;transport=tcp", r) == [Target("tcp", "192.0.2.5", 5090)]
    assert r.asked[0] == ("SRV", "_sip._tcp.tcponly.test")
    assert _locate("sip:bob@plain.test;transport=TCP", r) == [Target("tcp", "192.0.2.4", 5060)]
    assert _locate("sips:bob@plain.test;transport=tcp", r) == [Target("tls", "192.0.2.4", 5061)]
    assert _locate("sip:bob@plain.test;maddr=media.test", r) == [Target("udp", "192.0.2.6", 5060)]


def test_failed_lookups_count_as_empty() -> None:
    r = FakeResolver(naptr=DNS.naptr_db, srv=DNS.srv_db, a=DNS.a_db, broken=frozenset({"_sips._tcp.example.test"}))
    assert _locate("sip:alice@example.test", r) == [Target("udp", "192.0.2.1", 5060),
                                                    Target("udp", "2001:db8::1", 5060)]


def test_locator_is_sans_io_and_checks_its_inputs() -> None:
    loc = ServerLocator(_uri("sip:alice@example.test"), rng=random.Random(2).randbytes)
    q = loc.next_query()
    assert q == Query(QueryKind.NAPTR, "example.test")
    with pytest.raises(LocalProtocolError):
        loc.answer(Query(QueryKind.SRV, "example.test"), [])
    with pytest.raises(LocalProtocolError):
        loc.targets()
    loc.answer(q, [])
    assert loc.next_query() == Query(QueryKind.SRV, "_sips._tcp.example.test")
    with pytest.raises(LocalProtocolError):
        ServerLocator(_uri("sips:bob@example.test"), transports=("udp",))


def test_fail_over_criteria() -> None:
    h = Headers()
    for name, value in (("Via", "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKf"), ("From", "<sip:a@b>;tag=1"),
                        ("To", "<sip:c@d>"), ("Call-ID", "f"), ("CSeq", "1 OPTIONS")):
        h.add(name, value)
    req = SipRequest("OPTIONS", "sip:c@d", h)
    assert should_fail_over(make_response(req, 503, to_tag="srv"))
    assert should_fail_over(make_response(req, 408))  # what the stack makes up on Timer B/F
    assert not should_fail_over(make_response(req, 408, to_tag="srv"))  # a real server's 408
    assert not should_fail_over(make_response(req, 486, to_tag="srv"))


def test_system_resolver_addresses_only() -> None:
    async def run() -> None:
        r = SystemResolver()
        assert await r.naptr("localhost") == [] and await r.srv("_sip._udp.localhost") == []
        assert "127.0.0.1" in await r.addresses("localhost")
        with pytest.raises(ResolverError):
            await r.addresses("no-such-host.invalid")

    asyncio.run(asyncio.wait_for(run(), 20))


# -- failover between real servers ----------------------------------------------------------------------
async def _server(name: str, transport: str, answer: int | None, timers: SipTimers) -> tuple[UserAgent, int]:
    ep = AioSipEndpoint(timers=timers)
    _, port = await ep.listen(transport, "127.0.0.1", 0)
    ua = UserAgent(ep, aor=f"sip:{name}@example.test", outbound=None)

    async def on_invite(inc: IncomingInvite) -> None:
        if answer == 200:
            inc.answer(SDP)
        elif answer is not None:
            inc.reject(answer)

    ua.on_invite = on_invite
    return ua, port


def test_invite_fails_over_dead_and_503_servers() -> None:
    async def run() -> None:
        timers = SipTimers(t1=0.02, t2=0.1, t4=0.1)
        probe = AioSipEndpoint()
        _, dead_port = await probe.listen("tcp", "127.0.0.1", 0)
        await probe.close()  # nothing listens there any more: connection refused
        busy, busy_port = await _server("busy", "tcp", 503, timers)
        bob, bob_port = await _server("bob", "tcp", 200, timers)
        dns = FakeResolver(
            srv={"_sip._tcp.example.test": [SrvRecord(1, 0, dead_port, "dead.example.test."),
                                            SrvRecord(2, 0, busy_port, "busy.example.test."),
                                            SrvRecord(3, 0, bob_port, "bob.example.test.")]},
            a={"dead.example.test": ["127.0.0.1"], "busy.example.test": ["127.0.0.1"],
               "bob.example.test": ["127.0.0.1"]})
        ep = AioSipEndpoint(timers=timers)
        await ep.listen("udp", "127.0.0.1", 0)
        alice = UserAgent(ep, aor="sip:alice@example.test", outbound=None, resolver=dns, transports=("tcp",))
        assert await alice.targets_for("sip:bob@example.test") == [
            Target("tcp", "127.0.0.1", dead_port), Target("tcp", "127.0.0.1", busy_port),
            Target("tcp", "127.0.0.1", bob_port)]
        wire: list[bytes] = []
        ep.on_trace = lambda direction, data, peer: wire.append(data) if direction == "out" else None
        out = alice.invite("sip:bob@example.test", SDP)
        session = await asyncio.wait_for(out.result, 10)
        assert session.target == Target("tcp", "127.0.0.1", bob_port)
        labels = [e.label for e in ep.trace]
        assert labels.count("INVITE") == 3 and "503 Service Unavailable (INVITE)" in labels
        invites = [parse_message(d) for d in wire if d.startswith(b"INVITE ")]
        assert len({m.top_via.branch for m in invites}) == 3  # a new transaction per server
        assert {m.cseq.seq for m in invites} == {1}  # the same request
        await session.bye()
        for ua in (alice, busy, bob):
            await ua.close()
            await ua.endpoint.close()

    asyncio.run(asyncio.wait_for(run(), 20))


def test_options_fails_over_a_silent_server_after_timer_f() -> None:
    async def run() -> None:
        timers = SipTimers(t1=0.01, t2=0.04, t4=0.05)
        loop = asyncio.get_running_loop()
        silent, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
        silent_port = silent.get_extra_info("sockname")[1]
        bob, bob_port = await _server("bob", "udp", None, timers)
        dns = FakeResolver(srv={"_sip._udp.example.test": [SrvRecord(1, 0, silent_port, "quiet.example.test."),
                                                           SrvRecord(2, 0, bob_port, "bob.example.test.")]},
                           a={"quiet.example.test": ["127.0.0.1"], "bob.example.test": ["127.0.0.1"]})
        ep = AioSipEndpoint(timers=timers)
        await ep.listen("udp", "127.0.0.1", 0)
        alice = UserAgent(ep, aor="sip:alice@example.test", outbound=None, resolver=dns, transports=("udp",))
        resp = await asyncio.wait_for(alice.options("sip:bob@example.test"), 10)
        assert resp.status_code == 200 and "INVITE" in (resp.headers.get("allow") or "")
        assert [e.label for e in ep.trace].count("OPTIONS") > 2  # retransmitted to the silent one first
        silent.close()
        for ua in (alice, bob):
            await ua.close()
            await ua.endpoint.close()

    asyncio.run(asyncio.wait_for(run(), 20))


# -- UDP to TCP above 1300 bytes (RFC 3261 §18.1.1) --------------------------------------------------------
def _invite(body: bytes) -> SipRequest:
    h = Headers()
    for name, value in (("From", "<sip:a@example.test>;tag=1"), ("To", "<sip:b@example.test>"),
                        ("Call-ID", "big"), ("CSeq", "1 INVITE"), ("Contact", "<sip:a@10.0.0.1>"),
                        ("Content-Type", "application/sdp")):
        h.add(name, value)
    return SipRequest("INVITE", "sip:b@example.test", h, body)


def test_large_udp_request_goes_over_tcp() -> None:
    stack = SipStack({"udp": ("10.0.0.1", 5060), "tcp": ("10.0.0.1", 5062)}, rng=random.Random(3).randbytes)
    big = SDP + b"a=x-padding:" + b"x" * 1300 + b"\r\n"
    tx = stack.send_request(_invite(big), Target("udp", "10.0.0.2", 5060), 0.0)
    ((data, target),) = stack.datagrams_to_send()
    assert target == Target("tcp", "10.0.0.2", 5060) and tx.context == target and tx.reliable
    sent = parse_message(data)
    assert sent.top_via.transport == "TCP" and sent.top_via.port == 5062 and len(data) > 1300
    assert tx.next_deadline() == pytest.approx(32.0)  # reliable: Timer B only, no Timer A retransmissions
    # small requests, a forced transport and an existing flow stay on UDP
    stack.send_request(_invite(SDP), Target("udp", "10.0.0.2", 5060), 0.0)
    stack.send_request(_invite(big), Target("udp", "10.0.0.2", 5060), 0.0, allow_tcp=False)
    stack.send_request(_invite(big), Target("udp", "10.0.0.2", 5060, flow=object()), 0.0)
    for data, target in stack.datagrams_to_send():
        assert target.transport == "udp" and parse_message(data).top_via.transport == "UDP"


def test_large_invite_over_tcp_between_uas() -> None:
    async def run() -> None:
        eb = AioSipEndpoint()
        host, port = await eb.listen("udp", "127.0.0.1", 0)
        await eb.listen("tcp", "127.0.0.1", port)  # the same port number for TCP
        bob = UserAgent(eb, aor="sip:bob@example.test", outbound=None)
        offers: list[bytes] = []

        async def on_invite(inc: IncomingInvite) -> None:
            offers.append(inc.offer)
            inc.answer(SDP)

        bob.on_invite = on_invite
        ea = AioSipEndpoint()
        await ea.listen("udp", "127.0.0.1", 0)
        alice = UserAgent(ea, aor="sip:alice@example.test", outbound=Target("udp", host, port))
        big = SDP + b"".join(b"a=candidate:%d 1 udp 2130706431 192.0.2.%d 4000 typ host\r\n" % (i, i)
                             for i in range(40))
        assert len(big) > 1300
        session = await asyncio.wait_for(alice.invite("sip:bob@example.test", big).result, 5)
        assert offers == [big]
        invite_in = [e for e in eb.trace if e.label == "INVITE"]
        assert invite_in and invite_in[0].src.startswith("tcp:")
        await session.bye()  # small: back on UDP
        assert [e for e in eb.trace if e.label == "BYE"][0].src.startswith("udp:")
        for ua in (alice, bob):
            await ua.close()
            await ua.endpoint.close()

    asyncio.run(asyncio.wait_for(run(), 20))
