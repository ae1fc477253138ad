"""RFC 3262 reliable provisional responses: sans-IO sender/tracker, and PRACK between UAs on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipcore import SipRequest, SipResponse, SipUri, make_response, parse_message
from sipcore.aiostack import AioSipEndpoint
from sipcore.aioua import CallFailed, IncomingInvite, UaConfig, UserAgent
from sipcore.errors import LocalProtocolError, SipParseError
from sipcore.header_extra import RAck
from sipcore.invite import RetransmitAction
from sipcore.prack import MAX_QUEUED, PrackTracker, ReliableProvisionalSender, is_reliable, rseq_of
from sipcore.stack import Target
from sipcore.timers import SipTimers

SDP_A = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
SDP_B = SDP_A.replace(b"4000", b"5000")
FAST = SipTimers(t1=0.05, t2=0.4, t4=0.5)


def _invite(cseq: int = 3) -> SipRequest:
    msg = parse_message(
        b"INVITE sip:bob@example.test SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKp\r\n"
        b"From: <sip:alice@example.test>;tag=a\r\nTo: <sip:bob@example.test>\r\nCall-ID: p1\r\n"
        b"CSeq: %d INVITE\r\nContact: <sip:alice@10.0.0.1>\r\nSupported: 100rel\r\nContent-Length: 0\r\n\r\n" % cseq)
    assert isinstance(msg, SipRequest)
    return msg


def _prack(rack: str) -> SipRequest:
    msg = parse_message(
        b"PRACK sip:bob@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKq\r\n"
        b"From: <sip:alice@example.test>;tag=a\r\nTo: <sip:bob@example.test>;tag=b\r\nCall-ID: p1\r\n"
        b"CSeq: 4 PRACK\r\nRAck: " + rack.encode() + b"\r\nContent-Length: 0\r\n\r\n")
    assert isinstance(msg, SipRequest)
    return msg


def _seq_bytes(value: int) -> Callable[[int], bytes]:
    return lambda n: value.to_bytes(n, "big")


# -- UAS side -------------------------------------------------------------------------------------------
def test_sender_numbers_retransmits_queues_and_matches() -> None:
    inv = _invite()
    sender = ReliableProvisionalSender(inv, SipTimers(), rng=_seq_bytes(41))
    ringing = make_response(inv, 180, to_tag="b")
    out = sender.send(ringing, 10.0)
    assert out is ringing and out.headers.get("require") == "100rel" and rseq_of(out) == 42
    assert is_reliable(out)
    # a second reliable 1xx waits for the PRACK of the first (§3)
    progress = make_response(inv, 183, to_tag="b", body=b"v=0\r\n", content_type="application/sdp")
    assert sender.send(progress, 10.1) is None
    assert sender.final_may_be_sent(True)  # the pending 180 has no SDP
    # retransmissions: T1, 2T1, 4T1 ... (no T2 cap)
    assert sender.next_deadline() == pytest.approx(10.5)
    assert sender.handle_timeout(10.5) == (RetransmitAction.RESEND, ringing)
    assert sender.next_deadline() == pytest.approx(11.5)
    # a PRACK naming another RSeq, CSeq or method does not match: 481
    for bad in ("41 3 INVITE", "42 4 INVITE", "42 3 UPDATE", "garbage"):
        assert sender.receive_prack(_prack(bad), 11.0) == (False, None)
    ok, nxt = sender.receive_prack(_prack("42 3 INVITE"), 11.0)
    assert ok and nxt is progress and rseq_of(progress) == 43
    assert not sender.final_may_be_sent(True) and sender.final_may_be_sent(False)  # 183 carried SDP
    assert sender.receive_prack(_prack("42 3 INVITE"), 11.1) == (False, None)  # already acknowledged
    assert sender.receive_prack(_prack("43 3 INVITE"), 11.2) == (True, None)
    assert sender.acknowledged == [42, 43] and sender.next_deadline() is None


def test_sender_gives_up_after_64_t1_and_limits() -> None:
    inv = _invite()
    sender = ReliableProvisionalSender(inv, SipTimers(t1=0.5), rng=_seq_bytes(0))
    sender.send(make_response(inv, 180, to_tag="b"), 0.0)
    resends = 0
    while (d := sender.next_deadline()) is not None:
        action, _ = sender.handle_timeout(d)
        if action is RetransmitAction.GIVE_UP:
            assert d == pytest.approx(32.0)
            break
        resends += 1
    assert resends == 6  # 0.5 1.5 3.5 7.5 15.5 31.5
    with pytest.raises(LocalProtocolError):
        sender.send(make_response(inv, 200, to_tag="b"), 1.0)
    for _ in range(MAX_QUEUED):
        sender.send(make_response(inv, 180, to_tag="b"), 1.0)
    with pytest.raises(LocalProtocolError):
        sender.send(make_response(inv, 180, to_tag="b"), 1.0)
    with pytest.raises(LocalProtocolError):
        ReliableProvisionalSender(_prack("1 1 INVITE"), SipTimers())


# -- UAC side -------------------------------------------------------------------------------------------
def _reliable(inv: SipRequest, tag: str, rseq: int, code: int = 180) -> SipResponse:
    return make_response(inv, code, to_tag=tag, headers=[("Require", "100rel"), ("RSeq", str(rseq))])


def test_tracker_in_order_per_fork() -> None:
    inv = _invite()
    tracker = PrackTracker(inv)
    assert tracker.receive(_reliable(inv, "b", 7)) == RAck(7, 3, "INVITE")
    assert tracker.receive(_reliable(inv, "b", 7)) is None  # retransmission: discarded
    assert tracker.receive(_reliable(inv, "b", 9)) is None  # out of order: discarded
    assert tracker.receive(_reliable(inv, "b", 8, 183)) == RAck(8, 3, "INVITE")
    assert tracker.receive(_reliable(inv, "c", 1000)) == RAck(1000, 3, "INVITE")  # another fork, own space
    assert tracker.receive(make_response(inv, 180, to_tag="d")) is None  # not reliable
    assert tracker.receive(make_response(inv, 100)) is None
    bad = _reliable(inv, "e", 1)
    bad.headers.set("RSeq", "0")
    assert not is_reliable(bad) and tracker.receive(bad) is None
    bad.headers.set("RSeq", "x")
    with pytest.raises(SipParseError):
        rseq_of(bad)
    assert tracker.receive(_reliable(_invite(cseq=9), "f", 1)) is None  # another INVITE's response


# -- over real sockets ---------------------------------------------------------------------------------
class Relay(asyncio.DatagramProtocol):
    """Forwards requests by Request-URI (to ``uas`` when they carry no To tag) and responses to
    the top Via's sent-by; drops the requests ``drop`` selects."""

    def __init__(self, uas: tuple[str, int], drop: Callable[[SipRequest], bool]) -> None:
        self.uas = uas
        self.drop = drop
        self.transport: asyncio.DatagramTransport | None = None
        self.seen: list[str] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        msg = parse_message(data)
        assert self.transport is not None
        if not isinstance(msg, SipRequest):
            via = msg.top_via
            self.transport.sendto(data, (via.host, via.port or 5060))
            return
        self.seen.append(msg.method)
        if self.drop(msg):
            return
        if msg.to.tag is None:
            self.transport.sendto(data, self.uas)
            return
        uri = msg.uri
        assert isinstance(uri, SipUri)
        self.transport.sendto(data, (uri.host, uri.port or 5060))


async def _pair(config_a: UaConfig, config_b: UaConfig, drop: Callable[[SipRequest], bool] = lambda m: False,
                timers: SipTimers = FAST) -> tuple[UserAgent, UserAgent, Relay]:
    eb = AioSipEndpoint(timers=timers)
    b_addr = await eb.listen("udp", "127.0.0.1", 0)
    loop = asyncio.get_running_loop()
    tr, relay = await loop.create_datagram_endpoint(lambda: Relay(b_addr, drop), local_addr=("127.0.0.1", 0))
    ea = AioSipEndpoint(timers=timers)
    await ea.listen("udp", "127.0.0.1", 0)
    a = UserAgent(ea, aor="sip:alice@example.test", outbound=Target("udp", *tr.get_extra_info("sockname")[:2]),
                  config=config_a)
    b = UserAgent(eb, aor="sip:bob@example.test", outbound=None, config=config_b)
    return a, b, relay


async def _close(*uas: UserAgent) -> None:
    for ua in uas:
        await ua.close()
        await ua.endpoint.close()


def _labels(ua: UserAgent, direction: str) -> list[str]:
    port = ua.endpoint.stack.sent_by["udp"][1]
    return [e.label for e in ua.endpoint.trace if (e.src if direction == "out" else e.dst).endswith(f":{port}")]


def test_reliable_180_is_pracked_then_answered() -> None:
    async def run() -> None:
        a, b, relay = await _pair(UaConfig(), UaConfig(reliable_ringing=True))
        answered = asyncio.Event()

        async def on_invite(inc: IncomingInvite) -> None:
            assert inc.peer_supports_100rel and not inc.peer_requires_100rel
            inc.ring()
            for _ in range(200):
                if inc.prack.pending is None:
                    break
                await asyncio.sleep(0.01)
            assert inc.prack.acknowledged
            inc.answer(SDP_B)
            answered.set()

        b.on_invite = on_invite
        out = a.invite("sip:bob@example.test", SDP_A)
        session = await asyncio.wait_for(out.result, 5)
        assert len(out.pracks) == 1 and out.pracks[0].headers.get("rack", "").endswith(" INVITE")
        assert [r.status_code for r in out.provisional if r.status_code == 180]
        assert "PRACK" in _labels(b, "in") and "200 OK (PRACK)" in _labels(b, "out")
        assert "Require" not in str(out.client.request if out.client else "")  # supported only
        assert session.dialog.local_seq == out.pracks[0].cseq.seq  # the PRACK advanced the local CSeq
        await session.bye()
        await _close(a, b)

    asyncio.run(asyncio.wait_for(run(), 20))


def test_2xx_waits_for_the_prack_of_a_183_with_sdp() -> None:
    async def run() -> None:
        dropped: list[int] = []

        def drop(m: SipRequest) -> bool:
            if m.method == "PRACK" and not dropped:
                dropped.append(1)
                return True
            return False

        a, b, relay = await _pair(UaConfig(require_100rel=True), UaConfig(), drop)
        early = b"v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n"

        async def on_invite(inc: IncomingInvite) -> None:
            assert inc.peer_requires_100rel
            inc.ring(early_sdp=early)  # reliable: the UAC requires it
            inc.answer(SDP_B)  # deferred until the PRACK (RFC 3262 §3)

        b.on_invite = on_invite
        out = a.invite("sip:bob@example.test", SDP_A)
        session = await asyncio.wait_for(out.result, 5)
        assert out.early_sdp == early and session.remote_sdp == SDP_B
        sent = _labels(b, "out")
        assert sent.count("183 Session Progress (INVITE)") >= 2  # repeated while the PRACK was lost
        assert sent.index("200 OK (PRACK)") < sent.index("200 OK (INVITE)")
        assert len(out.pracks) == 1 and relay.seen.count("PRACK") == 2  # one PRACK, retransmitted
        assert (out.client.request.headers.get("require") if out.client else None) == "100rel"
        await session.bye()
        await _close(a, b)

    asyncio.run(asyncio.wait_for(run(), 20))


def test_420_without_100rel_support_retries_without_require() -> None:
    async def run() -> None:
        a, b, _ = await _pair(UaConfig(require_100rel=True), UaConfig(use_100rel=False))

        async def on_invite(inc: IncomingInvite) -> None:
            assert not inc.peer_requires_100rel
            inc.ring(reliable=True)  # the UAS does not do 100rel: plain 180
            inc.answer(SDP_B)

        b.on_invite = on_invite
        out = a.invite("sip:bob@example.test", SDP_A)
        session = await asyncio.wait_for(out.result, 5)
        assert "420 Bad Extension (INVITE)" in _labels(a, "in")
        assert not out.pracks and out.client is not None and "require" not in out.client.request.headers
        await session.bye()
        await _close(a, b)

    asyncio.run(asyncio.wait_for(run(), 20))


def test_no_prack_rejects_the_invite_with_5xx() -> None:
    async def run() -> None:
        timers = SipTimers(t1=0.01, t2=0.04, t4=0.05)
        a, b, _ = await _pair(UaConfig(), UaConfig(reliable_ringing=True), lambda m: m.method == "PRACK", timers)

        async def on_invite(inc: IncomingInvite) -> None:
            inc.ring()

        b.on_invite = on_invite
        with pytest.raises(CallFailed) as info:
            await asyncio.wait_for(a.invite("sip:bob@example.test", SDP_A).result, 5)
        assert info.value.status == 500
        await _close(a, b)

    asyncio.run(asyncio.wait_for(run(), 20))


def test_prack_for_nothing_gets_481() -> None:
    async def run() -> None:
        a, b, _ = await _pair(UaConfig(), UaConfig())
        b.on_invite = lambda inc: inc.answer(SDP_B) and None
        session = await asyncio.wait_for(a.invite("sip:bob@example.test", SDP_A).result, 5)
        req = session.dialog.create_request("PRACK", headers=[("RAck", "1 1 INVITE")])
        resp = await a.endpoint.request(req, session.target)
        assert resp.status_code == 481
        assert not session.terminated.is_set()
        await session.bye()
        await _close(a, b)

    asyncio.run(asyncio.wait_for(run(), 20))


@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
       st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
       st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30))
def test_hostile_rseq_require_rack(rseq: str, require: str, rack: str) -> None:
    inv = _invite()
    resp = make_response(inv, 183, to_tag="b", headers=[("Require", require), ("RSeq", rseq)])
    is_reliable(resp)
    PrackTracker(inv).receive(resp)
    sender = ReliableProvisionalSender(inv, SipTimers())
    sender.send(make_response(inv, 180, to_tag="b"), 0.0)
    ok, _ = sender.receive_prack(_prack(rack) if "\r" not in rack else _prack("x"), 0.0)
    assert isinstance(ok, bool)
