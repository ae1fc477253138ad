"""INVITE usage: the sans-IO helpers of sipcore.invite, and the asyncio UserAgent on 127.0.0.1.

Sans-IO: InviteClient (forks, AckAgain, the CANCEL/200 race, a 2xx after a failure, unusable
2xx), ResponseRetransmitter schedules, OfferState collision answers, Require checks, Reason.

Real sockets: a proxy-less fork (a tiny relay hands Alice's INVITE to Bob and Carol; both
answer; Alice keeps one, ACKs and BYEs the other), the CANCEL/200 race (200 wins: ACK then
BYE, 487 to the caller), a lost ACK (Bob repeats his 200, Alice ACKs it again), Reason on
BYE and CANCEL (RFC 3326, "Call completed elsewhere").
"""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipcore import SipRequest, SipResponse, SipUri, make_response, parse_message
from sipcore.aiostack import AioSipEndpoint
from sipcore.aioua import CallFailed, IncomingInvite, InviteSession, UserAgent
from sipcore.dialog import DialogState
from sipcore.header_extra import Reason
from sipcore.invite import (
    CALL_COMPLETED_ELSEWHERE,
    AckAgain,
    Answered,
    AnswerUnusable,
    EarlyDialog,
    Failed,
    ForkDiscarded,
    InviteClient,
    InviteClientState,
    OfferState,
    ProvisionalReceived,
    ResponseRetransmitter,
    RetransmitAction,
    reasons_of,
    unsupported_requirements,
)
from sipcore.stack import RequestReceived, Target
from sipcore.timers import SipTimers

SDP_A = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
SDP_B = SDP_A.replace(b"4000", b"5000")
FAST = SipTimers(t1=0.05, t2=0.4, t4=0.5)


def _invite() -> SipRequest:
    msg = parse_message(
        b"INVITE sip:bob@example.test SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKabc\r\n"
        b"From: <sip:alice@example.test>;tag=a1\r\nTo: <sip:bob@example.test>\r\n"
        b"Call-ID: c1\r\nCSeq: 7 INVITE\r\nContact: <sip:alice@10.0.0.1>\r\n"
        b"Authorization: Digest username=\"alice\"\r\nContent-Length: 0\r\n\r\n")
    assert isinstance(msg, SipRequest)
    return msg


def _resp(req: SipRequest, code: int, tag: str | None, contact: str | None = "<sip:b@10.0.0.2>") -> SipResponse:
    headers = [("Contact", contact)] if contact else []
    return make_response(req, code, to_tag=tag, headers=headers)


# -- InviteClient -----------------------------------------------------------------------------------
def test_forks_early_dialogs_answer_and_discard() -> None:
    req = _invite()
    client = InviteClient(req, ack_headers=[("Authorization", 'Digest username="alice"')],
                          bye_headers=[("Reason", str(CALL_COMPLETED_ELSEWHERE))])
    (early_b, prov_b) = client.receive_response(_resp(req, 180, "b"))
    assert isinstance(early_b, EarlyDialog) and isinstance(prov_b, ProvisionalReceived)
    assert early_b.dialog.state is DialogState.EARLY and prov_b.dialog is early_b.dialog
    (prov_again,) = client.receive_response(_resp(req, 180, "b"))
    assert isinstance(prov_again, ProvisionalReceived) and prov_again.dialog is early_b.dialog
    (early_c, _) = client.receive_response(_resp(req, 183, "c", "<sip:c@10.0.0.3>"))
    assert isinstance(early_c, EarlyDialog) and early_c.dialog is not early_b.dialog
    (answered,) = client.receive_response(_resp(req, 200, "c", "<sip:c@10.0.0.3>"))
    assert isinstance(answered, Answered) and client.state is InviteClientState.ANSWERED
    assert answered.dialog is early_c.dialog and answered.dialog.state is DialogState.CONFIRMED
    ack = answered.ack
    assert ack.method == "ACK" and ack.cseq.seq == 7 and ack.cseq.method == "ACK" and ack.to.tag == "c"
    assert ack.uri_text == "sip:c@10.0.0.3" and ack.headers.get("authorization") == 'Digest username="alice"'
    assert early_b.dialog.state is DialogState.TERMINATED  # the other early dialog ended with the answer
    (again,) = client.receive_response(_resp(req, 200, "c", "<sip:c@10.0.0.3>"))
    assert isinstance(again, AckAgain) and again.ack is ack
    # Bob answers too: ACK, then BYE (with the configured Reason), never a second session
    (dropped,) = client.receive_response(_resp(req, 200, "b"))
    assert isinstance(dropped, ForkDiscarded) and not dropped.cancelled
    assert dropped.ack.to.tag == "b" and dropped.ack.uri_text == "sip:b@10.0.0.2"
    assert dropped.bye.method == "BYE" and dropped.bye.to.tag == "b" and dropped.bye.cseq.seq == 8
    assert reasons_of(dropped.bye) == [CALL_COMPLETED_ELSEWHERE]
    assert dropped.dialog.state is DialogState.TERMINATED
    (again_b,) = client.receive_response(_resp(req, 200, "b"))
    assert isinstance(again_b, AckAgain) and again_b.ack is dropped.ack
    # a late failure changes nothing
    assert client.receive_response(_resp(req, 486, "d")) == []
    # a response to another CSeq is not ours
    other = _resp(req, 200, "x")
    other.headers.set("CSeq", "8 INVITE")
    assert client.receive_response(other) == []


def test_cancel_race_and_failure_then_fork_2xx() -> None:
    req = _invite()
    client = InviteClient(req)
    client.receive_response(_resp(req, 180, "b"))
    client.cancel()
    assert client.state is InviteClientState.CANCELLING
    (dropped,) = client.receive_response(_resp(req, 200, "b"))
    assert isinstance(dropped, ForkDiscarded) and dropped.cancelled and client.state is InviteClientState.FAILED
    assert client.final is not None and client.final.status_code == 200
    # a 487 after it (another fork) is not a second outcome
    assert client.receive_response(_resp(req, 487, "c")) == []

    client = InviteClient(req)
    client.cancel()
    (failed,) = client.receive_response(_resp(req, 487, "b"))
    assert isinstance(failed, Failed) and failed.response.status_code == 487

    client = InviteClient(req)
    client.receive_response(_resp(req, 180, "b"))
    (failed,) = client.receive_response(_resp(req, 486, "b"))
    assert isinstance(failed, Failed) and client.dialogs["b"].state is DialogState.TERMINATED
    (late,) = client.receive_response(_resp(req, 200, "c"))  # a fork answering after the failure
    assert isinstance(late, ForkDiscarded) and not late.cancelled and late.ack.to.tag == "c"
    (late_b,) = client.receive_response(_resp(req, 200, "b"))  # even the dialog that failed early
    assert isinstance(late_b, ForkDiscarded) and late_b.dialog.state is DialogState.TERMINATED


def test_unusable_answers_and_100() -> None:
    req = _invite()
    client = InviteClient(req)
    (trying,) = client.receive_response(_resp(req, 100, None, None))
    assert isinstance(trying, ProvisionalReceived) and trying.dialog is None
    (bad,) = client.receive_response(_resp(req, 200, "b", contact=None))
    assert isinstance(bad, AnswerUnusable) and "Contact" in bad.error
    (no_tag,) = client.receive_response(_resp(req, 200, None))
    assert isinstance(no_tag, AnswerUnusable)
    with pytest.raises(Exception, match="INVITE"):
        InviteClient(parse_message(bytes(req).replace(b"INVITE", b"OPTIONS")))  # type: ignore[arg-type]


# -- retransmission schedules -----------------------------------------------------------------------
def _fire_all(retx: ResponseRetransmitter) -> tuple[list[float], float]:
    sends: list[float] = []
    while (d := retx.next_deadline()) is not None:
        action = retx.handle_timeout(d)
        if action is RetransmitAction.RESEND:
            sends.append(d)
        elif action is RetransmitAction.GIVE_UP:
            return sends, d
    raise AssertionError("never gave up")


def test_2xx_schedule_doubles_to_t2_and_gives_up_at_64_t1() -> None:
    t = SipTimers()
    sends, gave_up = _fire_all(ResponseRetransmitter.for_2xx(100.0, t))
    assert [round(s - 100.0, 6) for s in sends] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert gave_up == pytest.approx(132.0)
    sends, gave_up = _fire_all(ResponseRetransmitter.for_reliable_1xx(0.0, t))
    assert [round(s, 6) for s in sends] == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert gave_up == pytest.approx(32.0)
    retx = ResponseRetransmitter.for_2xx(0.0, t)
    assert retx.handle_timeout(0.2) is RetransmitAction.NONE  # early: nothing
    retx.stop()
    assert retx.next_deadline() is None and retx.handle_timeout(99.0) is RetransmitAction.NONE


def test_offer_state_collisions() -> None:
    rnd = random.Random(1)
    st = OfferState()
    assert st.check_incoming("INVITE", True, rnd.randbytes) is None
    st.local_invite = True
    assert st.check_incoming("INVITE", False, rnd.randbytes) == (491, [])
    st.local_invite, st.remote_invite = False, True
    status, headers = st.check_incoming("INVITE", True, rnd.randbytes) or (0, [])
    assert status == 500 and headers[0][0] == "Retry-After" and 0 <= int(headers[0][1]) <= 10
    st = OfferState()
    st.local_offer = True
    assert st.check_incoming("UPDATE", True, rnd.randbytes) == (491, [])
    assert st.check_incoming("UPDATE", False, rnd.randbytes) is None  # no offer: no collision
    st.local_offer, st.remote_offer = False, True
    assert st.check_incoming("UPDATE", True, rnd.randbytes)[0] == 500  # type: ignore[index]


def test_require_and_reason_helpers() -> None:
    req = _invite()
    req.headers.add("Require", "100rel, foo")
    assert unsupported_requirements(req, ["100rel", "timer"]) == ["foo"]
    req.headers.set("Require", "bad token!")
    assert unsupported_requirements(req, ["100rel"]) == ["(malformed Require)"]
    req.headers.add("Reason", 'SIP;cause=200;text="Call completed elsewhere", Q.850;cause=16')
    req.headers.add("Reason", "garbage;;")
    assert reasons_of(req) == [CALL_COMPLETED_ELSEWHERE, Reason("Q.850", 16, None)]
    assert str(CALL_COMPLETED_ELSEWHERE) == 'SIP;cause=200;text="Call completed elsewhere"'


# -- over real sockets ------------------------------------------------------------------------------
class Relay(asyncio.DatagramProtocol):
    """A transparent fork point: requests without To tag go to every UAS, others to their
    Request-URI. It adds no Via; responses come back to it (rport) and go on to the sent-by
    of the top Via."""

    def __init__(self, uas: list[tuple[str, int]], drop_first_ack: bool = False) -> None:
        self.uas = uas
        self.drop_first_ack = drop_first_ack
        self.transport: asyncio.DatagramTransport | None = None
        self.seen: list[str] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        msg = parse_message(data)
        if self.transport is None:
            return
        if not isinstance(msg, SipRequest):
            via = msg.top_via
            self.transport.sendto(data, (via.host, via.port or 5060))
            return
        self.seen.append(msg.method)
        if msg.method == "ACK" and self.drop_first_ack:
            self.drop_first_ack = False
            return
        if msg.to.tag is None:
            for dst in self.uas:
                self.transport.sendto(data, dst)
            return
        uri = msg.uri
        assert isinstance(uri, SipUri)
        self.transport.sendto(data, (uri.host, uri.port or 5060))


async def _relay(uas: list[tuple[str, int]], **kw: bool) -> tuple[Relay, tuple[str, int]]:
    loop = asyncio.get_running_loop()
    tr, proto = await loop.create_datagram_endpoint(lambda: Relay(uas, **kw), local_addr=("127.0.0.1", 0))
    return proto, tr.get_extra_info("sockname")[:2]


async def _ua(name: str, outbound: Target | None = None, timers: SipTimers | None = None) -> UserAgent:
    ep = AioSipEndpoint(timers=timers)
    await ep.listen("udp", "127.0.0.1", 0)
    return UserAgent(ep, aor=f"sip:{name}@example.test", outbound=outbound)


def _addr(ua: UserAgent) -> tuple[str, int]:
    return ua.endpoint.stack.sent_by["udp"]


async def _close(*uas: UserAgent) -> None:
    for ua in uas:
        await ua.close()
        await ua.endpoint.close()


def _sent(ua: UserAgent) -> list[str]:
    return [e.label for e in ua.endpoint.trace if e.src.endswith(f":{_addr(ua)[1]}") and e.src.startswith("127.")]


def test_proxyless_fork_keeps_one_answer_and_byes_the_other() -> None:
    async def run() -> None:
        bob, carol = await _ua("bob"), await _ua("carol")
        relay, relay_addr = await _relay([_addr(bob), _addr(carol)])
        alice = await _ua("alice", Target("udp", *relay_addr))
        ended: dict[str, asyncio.Event] = {"bob": asyncio.Event(), "carol": asyncio.Event()}
        sessions: dict[str, InviteSession] = {}

        for name, ua in (("bob", bob), ("carol", carol)):
            async def on_invite(inc: IncomingInvite, name: str = name) -> None:
                inc.ring()
                await asyncio.sleep(0.05)
                s = inc.answer(SDP_B)
                sessions[name] = s
                s.on_bye = lambda req, name=name: ended[name].set()
            ua.on_invite = on_invite

        out = alice.invite("sip:bob@example.test", SDP_A)
        session = await asyncio.wait_for(out.result, 5)
        for _ in range(100):
            if out.discarded:
                break
            await asyncio.sleep(0.02)
        (dropped,) = out.discarded
        loser = "bob" if dropped.remote_tag == sessions["bob"].dialog.local_tag else "carol"
        winner = "carol" if loser == "bob" else "bob"
        await asyncio.wait_for(ended[loser].wait(), 5)
        assert sessions[loser].end_reason == "remote hangup"
        assert session.dialog.remote_tag == sessions[winner].dialog.local_tag
        assert not session.terminated.is_set() and not sessions[winner].terminated.is_set()
        for _ in range(100):  # both 2xx were ACKed: nobody retransmits any more
            if not bob._uas_2xx and not carol._uas_2xx:
                break
            await asyncio.sleep(0.02)
        assert not bob._uas_2xx and not carol._uas_2xx
        assert relay.seen.count("INVITE") == 1 and relay.seen.count("ACK") == 2 and relay.seen.count("BYE") == 1
        await session.bye()
        await asyncio.wait_for(ended[winner].wait(), 5)
        await _close(alice, bob, carol)

    asyncio.run(asyncio.wait_for(run(), 20))


def test_cancel_200_race_ack_then_bye() -> None:
    async def run() -> None:
        bob = await _ua("bob")
        alice = await _ua("alice", Target("udp", *_addr(bob)))
        got_inc: asyncio.Future[IncomingInvite] = asyncio.get_running_loop().create_future()
        bye_seen = asyncio.Event()

        async def on_invite(inc: IncomingInvite) -> None:
            inc.ring()
            got_inc.set_result(inc)

        bob.on_invite = on_invite
        ringing = asyncio.Event()
        out = alice.invite("sip:bob@example.test", SDP_A, on_provisional=lambda r: ringing.set())
        inc = await asyncio.wait_for(got_inc, 5)
        await asyncio.wait_for(ringing.wait(), 5)
        alice.cancel(out)  # the CANCEL and the 200 cross
        session = inc.answer(SDP_B)
        session.on_bye = lambda req: bye_seen.set()
        with pytest.raises(CallFailed) as info:
            await asyncio.wait_for(out.result, 5)
        assert info.value.status == 487 and info.value.response is not None
        assert info.value.response.status_code == 200
        await asyncio.wait_for(bye_seen.wait(), 5)
        assert not inc.cancelled.is_set()  # Bob had answered: the CANCEL changed nothing (§9.2)
        sent = _sent(alice)
        assert "CANCEL" in sent and sent.index("ACK") < sent.index("BYE")
        assert "487 Request Terminated (INVITE)" not in [e.label for e in bob.endpoint.trace]
        assert not alice._sessions and not bob._sessions
        await _close(alice, bob)

    asyncio.run(asyncio.wait_for(run(), 20))


def test_cancel_waits_for_a_provisional_and_carries_reason() -> None:
    async def run() -> None:
        bob = await _ua("bob")
        alice = await _ua("alice", Target("udp", *_addr(bob)))
        incs: list[IncomingInvite] = []

        async def on_invite(inc: IncomingInvite) -> None:
            incs.append(inc)
            await asyncio.sleep(0.15)  # before the IST's own 100 Trying (200 ms)
            inc.ring()
            await inc.cancelled.wait()

        bob.on_invite = on_invite
        out = alice.invite("sip:bob@example.test", SDP_A)
        alice.cancel(out, CALL_COMPLETED_ELSEWHERE)
        await asyncio.sleep(0.08)
        assert incs and "CANCEL" not in _sent(alice)  # §9.1: not before a provisional response
        with pytest.raises(CallFailed) as info:
            await asyncio.wait_for(out.result, 5)
        assert info.value.status == 487
        (inc,) = incs
        assert inc.cancelled.is_set() and inc.completed_elsewhere
        assert inc.cancel_reasons == [CALL_COMPLETED_ELSEWHERE]
        assert _sent(alice).index("CANCEL") > 0
        await _close(alice, bob)

    asyncio.run(asyncio.wait_for(run(), 20))


def test_lost_ack_2xx_is_repeated_and_acked_again_and_bye_reason() -> None:
    async def run() -> None:
        bob = await _ua("bob", timers=FAST)
        relay, relay_addr = await _relay([_addr(bob)], drop_first_ack=True)
        alice = await _ua("alice", Target("udp", *relay_addr), timers=FAST)
        sessions: list[InviteSession] = []
        ended = asyncio.Event()

        async def on_invite(inc: IncomingInvite) -> None:
            s = inc.answer(SDP_B)
            s.on_bye = lambda req: ended.set()
            sessions.append(s)

        bob.on_invite = on_invite
        session = await asyncio.wait_for(alice.invite("sip:bob@example.test", SDP_A).result, 5)
        for _ in range(200):
            if sessions and not bob._uas_2xx:
                break
            await asyncio.sleep(0.01)
        assert not bob._uas_2xx and relay.seen.count("ACK") >= 2
        bob_sent = [e.label for e in bob.endpoint.trace if e.label == "200 OK (INVITE)"]
        assert len(bob_sent) >= 2  # the 200 went out again after T1
        await asyncio.sleep(5 * FAST.t1)
        (b_session,) = sessions
        assert not b_session.terminated.is_set()  # the repeated ACK stopped the 64*T1 timer
        await session.bye(Reason("Q.850", 16, "Normal call clearing"))
        await asyncio.wait_for(ended.wait(), 5)
        assert b_session.remote_reasons == [Reason("Q.850", 16, "Normal call clearing")]
        await _close(alice, bob)

    asyncio.run(asyncio.wait_for(run(), 20))


def test_no_ack_at_all_ends_the_call_after_64_t1() -> None:
    async def run() -> None:
        timers = SipTimers(t1=0.01, t2=0.04, t4=0.05)
        bob = await _ua("bob", timers=timers)
        relay, relay_addr = await _relay([_addr(bob)])
        relay.drop_first_ack = True
        alice = await _ua("alice", Target("udp", *relay_addr), timers=timers)
        alice.endpoint.on_stray_response = lambda ev: None  # Alice never ACKs a repeated 2xx
        ended = asyncio.Event()

        async def on_invite(inc: IncomingInvite) -> None:
            inc.answer(SDP_B).on_bye = lambda req: ended.set()

        bob.on_invite = on_invite
        session = await asyncio.wait_for(alice.invite("sip:bob@example.test", SDP_A).result, 5)
        await asyncio.wait_for(session.terminated.wait(), 5)  # Bob's BYE after 64*T1
        assert "BYE" in relay.seen
        await _close(alice, bob)

    asyncio.run(asyncio.wait_for(run(), 20))


# -- UPDATE, INFO, MESSAGE, OPTIONS ------------------------------------------------------------------
async def _call(alice: UserAgent, bob: UserAgent) -> tuple[InviteSession, InviteSession]:
    got: asyncio.Future[InviteSession] = asyncio.get_running_loop().create_future()

    async def on_invite(inc: IncomingInvite) -> None:
        got.set_result(inc.answer(SDP_B))

    bob.on_invite = on_invite
    a_session = await asyncio.wait_for(alice.invite("sip:bob@example.test", SDP_A).result, 5)
    return a_session, await asyncio.wait_for(got, 5)


def test_update_with_and_without_an_offer() -> None:
    async def run() -> None:
        bob = await _ua("bob")
        alice = await _ua("alice", Target("udp", *_addr(bob)))
        a_s, b_s = await _call(alice, bob)
        offers: list[bytes] = []

        async def on_update(s: InviteSession, offer: bytes) -> bytes:
            offers.append(offer)
            return SDP_B + b"a=sendonly\r\n"

        b_s.on_update = on_update
        held = SDP_A + b"a=recvonly\r\n"
        resp = await asyncio.wait_for(a_s.update(held), 5)
        assert resp.status_code == 200 and resp.content_type is not None and resp.content_type.mime == "application/sdp"
        assert offers == [held] and a_s.remote_sdp == SDP_B + b"a=sendonly\r\n" and a_s.local_sdp == held
        assert b_s.remote_sdp == held
        resp = await asyncio.wait_for(a_s.update(), 5)  # no offer: a refresh, no body
        assert resp.status_code == 200 and resp.body == b"" and len(offers) == 1
        # no on_update: the re-INVITE handler answers UPDATE offers too
        b_s.on_update = None
        b_s.on_reinvite = on_update
        resp = await asyncio.wait_for(a_s.update(SDP_A), 5)
        assert resp.status_code == 200 and len(offers) == 2
        await a_s.bye()
        await _close(alice, bob)

    asyncio.run(asyncio.wait_for(run(), 20))


def test_update_collisions_491_and_500() -> None:
    async def run() -> None:
        bob = await _ua("bob")
        alice = await _ua("alice", Target("udp", *_addr(bob)))
        a_s, b_s = await _call(alice, bob)
        release = asyncio.Event()
        started = asyncio.Event()

        async def slow(s: InviteSession, offer: bytes) -> bytes:
            started.set()
            await release.wait()
            return SDP_A

        a_s.on_update = slow
        bobs = asyncio.ensure_future(b_s.update(SDP_B + b"a=inactive\r\n"))
        await asyncio.wait_for(started.wait(), 5)
        # Alice offers while Bob's offer is unanswered on both sides: Bob says 491 (RFC 3311 §5.2)
        resp = await asyncio.wait_for(a_s._request("UPDATE", body=SDP_A, content_type="application/sdp"), 5)
        assert resp.status_code == 491
        # Bob offers again before Alice answered his first offer: Alice says 500 + Retry-After
        resp = await asyncio.wait_for(b_s._request("UPDATE", body=SDP_B, content_type="application/sdp"), 5)
        assert resp.status_code == 500 and 0 <= int(resp.headers.get("retry-after") or "-1") <= 10
        release.set()
        first = await asyncio.wait_for(bobs, 5)
        assert first.status_code == 200 and b_s.remote_sdp == SDP_A
        assert not a_s.terminated.is_set() and not b_s.terminated.is_set()
        await a_s.bye()
        await _close(alice, bob)

    asyncio.run(asyncio.wait_for(run(), 20))


def test_info_dtmf_message_and_options() -> None:
    async def run() -> None:
        bob = await _ua("bob")
        alice = await _ua("alice", Target("udp", *_addr(bob)))
        a_s, b_s = await _call(alice, bob)
        digits: list[tuple[str, int | None]] = []
        texts: list[bytes] = []
        b_s.on_dtmf = lambda d, ms: digits.append((d, ms))
        b_s.on_message = lambda req: texts.append(req.body) or 200
        for d in "5#":
            assert (await asyncio.wait_for(a_s.send_dtmf(d, 120), 5)).status_code == 200
        assert digits == [("5", 120), ("#", 120)]
        resp = await asyncio.wait_for(a_s.info(b"7", "application/dtmf"), 5)
        assert resp.status_code == 200 and digits[-1] == ("7", None)
        assert (await asyncio.wait_for(a_s.message(b"in the call"), 5)).status_code == 200
        assert texts == [b"in the call"]
        # MESSAGE outside a dialog: 501 without a handler, then the handler's status
        assert (await asyncio.wait_for(alice.message("sip:bob@example.test", b"hi"), 5)).status_code == 501
        inbox: list[tuple[bytes, str | None]] = []

        def on_message(ev: RequestReceived) -> int:
            ct = ev.request.content_type
            inbox.append((ev.request.body, ct.mime if ct else None))
            return 202

        bob.on_message = on_message
        resp = await asyncio.wait_for(alice.message("sip:bob@example.test", b"hello", "text/plain"), 5)
        assert resp.status_code == 202 and inbox == [(b"hello", "text/plain")]
        # OPTIONS in and out of the dialog list what we do (RFC 3261 §11.2)
        for resp in (await alice.options("sip:bob@example.test"), await a_s.options()):
            assert resp.status_code == 200
            allow = {m.strip() for m in (resp.headers.get("allow") or "").split(",")}
            assert {"INVITE", "UPDATE", "PRACK", "INFO", "MESSAGE", "REFER", "SUBSCRIBE", "NOTIFY"} <= allow
            assert "application/sdp" in (resp.headers.get("accept") or "")
            assert {"100rel", "timer", "replaces"} <= set(resp.tokens("supported"))
        await a_s.bye()
        await _close(alice, bob)

    asyncio.run(asyncio.wait_for(run(), 20))


def test_unknown_require_gets_420() -> None:
    async def run() -> None:
        bob = await _ua("bob")
        alice = await _ua("alice", Target("udp", *_addr(bob)))
        bob.on_invite = lambda inc: None
        with pytest.raises(CallFailed) as info:
            await asyncio.wait_for(alice.invite("sip:bob@example.test", SDP_A,
                                                headers=[("Require", "foo, 100rel")]).result, 5)
        assert info.value.status == 420 and info.value.response is not None
        assert info.value.response.headers.get("unsupported") == "foo"
        await _close(alice, bob)

    asyncio.run(asyncio.wait_for(run(), 20))


@given(st.sampled_from([100, 180, 183, 200, 202, 486]),
       st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
       st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
       st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40))
def test_hostile_responses_to_an_invite(code: int, to: str, contact: str, rr: str) -> None:
    req = _invite()
    client = InviteClient(req)
    resp = _resp(req, code, "t")
    resp.headers.set("To", to)
    resp.headers.set("Contact", contact)
    resp.headers.set("Record-Route", rr)
    for ev in client.receive_response(resp):
        assert isinstance(ev, ProvisionalReceived | EarlyDialog | Answered | Failed | AnswerUnusable)
