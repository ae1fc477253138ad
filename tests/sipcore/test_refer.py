"""REFER (RFC 3515), sipfrag (RFC 3420) and Replaces (RFC 3891): sans-IO pieces, then transfers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipcore import SipRequest, parse_message
from sipcore.aiostack import AioSipEndpoint
from sipcore.aioua import CallFailed, IncomingInvite, IncomingRefer, InviteSession, RequestFailed, UserAgent
from sipcore.dialog import DialogState
from sipcore.errors import LocalProtocolError, SipParseError
from sipcore.header_extra import Replaces
from sipcore.refer import (
    ReferNotifier,
    ReferWatcher,
    check_replaces,
    parse_refer_to,
    parse_sipfrag,
    refer_to_value,
    sipfrag,
)

SDP = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"


def _refer(cseq: int = 5) -> SipRequest:
    msg = parse_message(
        b"REFER sip:bob@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKr\r\n"
        b"From: <sip:alice@example.test>;tag=a\r\nTo: <sip:bob@example.test>;tag=b\r\nCall-ID: r1\r\n"
        b"CSeq: %d REFER\r\nRefer-To: <sip:carol@example.test>\r\nContent-Length: 0\r\n\r\n" % cseq)
    assert isinstance(msg, SipRequest)
    return msg


def _notify(event: str, state: str | None, body: bytes, ct: str | None = "message/sipfrag") -> SipRequest:
    lines = [f"Event: {event}"] + ([f"Subscription-State: {state}"] if state else []) + (
        [f"Content-Type: {ct}"] if ct else [])
    msg = parse_message(
        b"NOTIFY sip:alice@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKn\r\n"
        b"From: <sip:bob@example.test>;tag=b\r\nTo: <sip:alice@example.test>;tag=a\r\nCall-ID: r1\r\n"
        b"CSeq: 9 NOTIFY\r\n" + "".join(f"{x}\r\n" for x in lines).encode() + b"\r\n" + body)
    assert isinstance(msg, SipRequest)
    return msg


# -- sans-IO ------------------------------------------------------------------------------------------------
def test_sipfrag_round_trip() -> None:
    assert sipfrag(180) == b"SIP/2.0 180 Ringing\r\n"
    assert sipfrag(603, "Nope") == b"SIP/2.0 603 Nope\r\n"
    assert parse_sipfrag(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n") == (200, "OK")
    assert parse_sipfrag(b"SIP/2.0 100") == (100, "")
    for bad in (b"INVITE sip:x SIP/2.0", b"SIP/2.0 99 Low", b"", b"SIP/2.0 2000 x"):
        with pytest.raises(SipParseError):
            parse_sipfrag(bad)
    with pytest.raises(LocalProtocolError):
        sipfrag(700)
    with pytest.raises(LocalProtocolError):
        sipfrag(200, "OK\r\nInjected: 1")


def test_refer_to_with_replaces_round_trip() -> None:
    rep = Replaces("abc@10.0.0.1", "totag", "fromtag", early_only=True)
    value = refer_to_value("sip:carol@example.test;transport=tcp", rep)
    assert value == "<sip:carol@example.test;transport=tcp?Replaces=abc%4010.0.0.1%3Bto-tag%3Dtotag%3Bfrom-tag%3Dfromtag%3Bearly-only>"
    target = parse_refer_to(value)
    assert target.uri == "sip:carol@example.test;transport=tcp" and target.replaces == rep and target.headers == ()
    blind = parse_refer_to(refer_to_value("sip:dave@example.test"))
    assert blind.uri == "sip:dave@example.test" and blind.replaces is None
    other = parse_refer_to("<sip:eve@example.test?Subject=hi%20there&X-Evil=1>")
    assert other.headers == (("Subject", "hi there"),)  # only the headers RFC 3515 lets through
    for bad in ("<tel:+123>", "<sip:x@y?Replaces=nonsense>", "not a uri"):
        with pytest.raises(SipParseError):
            parse_refer_to(bad)


def test_check_replaces_table() -> None:
    assert check_replaces(None, early_only=False, initiated_by_us=False) == 481
    assert check_replaces(DialogState.CONFIRMED, early_only=False, initiated_by_us=False) is None
    assert check_replaces(DialogState.CONFIRMED, early_only=True, initiated_by_us=True) == 486
    assert check_replaces(DialogState.EARLY, early_only=True, initiated_by_us=True) is None
    assert check_replaces(DialogState.EARLY, early_only=False, initiated_by_us=False) == 481
    assert check_replaces(DialogState.TERMINATED, early_only=False, initiated_by_us=True) == 603


def test_refer_notifier_and_watcher() -> None:
    refer = _refer(5)
    notifier = ReferNotifier(refer)
    headers, body = notifier.progress(100)
    assert dict(headers) == {"Event": "refer;id=5", "Subscription-State": "active;expires=60"}
    assert body == b"SIP/2.0 100 Trying\r\n"
    headers, body = notifier.progress(486)
    assert dict(headers)["Subscription-State"] == "terminated;reason=noresource" and notifier.done
    with pytest.raises(LocalProtocolError):
        notifier.progress(200)
    with pytest.raises(LocalProtocolError):
        ReferNotifier(_notify("refer", None, b""))

    watcher = ReferWatcher(refer)
    watcher.receive_response(202)
    assert watcher.accepted and not watcher.done
    assert watcher.matches(_notify("refer;id=5", "active", b"")) and watcher.matches(_notify("refer", "active", b""))
    assert not watcher.matches(_notify("refer;id=6", "active", b"")) and not watcher.matches(_notify("presence", "x", b""))
    assert watcher.receive_notify(_notify("refer;id=5", None, sipfrag(100))) == (400, None)
    assert watcher.receive_notify(_notify("refer;id=5", "active", b"hi", "text/plain")) == (415, None)
    assert watcher.receive_notify(_notify("refer;id=5", "active", b"garbage")) == (400, None)
    code, progress = watcher.receive_notify(_notify("refer;id=5", "active;expires=60", sipfrag(180)))
    assert code == 200 and progress is not None and progress.status == 180 and not progress.final
    code, progress = watcher.receive_notify(_notify("refer;id=5", "terminated;reason=noresource", sipfrag(200)))
    assert progress is not None and progress.final and watcher.done and watcher.statuses == [180, 200]
    refused = ReferWatcher(refer)
    refused.receive_response(603)
    assert refused.done and refused.accepted is False


# -- over real sockets -----------------------------------------------------------------------------------
async def _ua(name: str) -> tuple[UserAgent, str]:
    ep = AioSipEndpoint()
    host, port = await ep.listen("udp", "127.0.0.1", 0)
    return UserAgent(ep, aor=f"sip:{name}@example.test", outbound=None), f"sip:{name}@{host}:{port}"


async def _close(*uas: UserAgent) -> None:
    for ua in uas:
        await ua.close()
        await ua.endpoint.close()


def _answering(ua: UserAgent, sessions: list[InviteSession]) -> None:
    async def on_invite(inc: IncomingInvite) -> None:
        inc.ring()
        sessions.append(inc.answer(SDP))

    ua.on_invite = on_invite


def test_blind_transfer_with_sipfrag_progress() -> None:
    async def run() -> None:
        alice, _ = await _ua("alice")
        bob, bob_uri = await _ua("bob")
        carol, carol_uri = await _ua("carol")
        bob_calls: list[InviteSession] = []
        carol_calls: list[InviteSession] = []
        _answering(bob, bob_calls)
        _answering(carol, carol_calls)
        a_b = await asyncio.wait_for(alice.invite(bob_uri, SDP).result, 5)
        (b_a,) = bob_calls
        followed: list[object] = []

        def on_refer(refer: IncomingRefer) -> None:
            assert refer.target.uri == carol_uri and refer.target.replaces is None
            assert refer.referred_by == "<sip:alice@example.test>"
            followed.append(bob.follow_refer(refer, SDP))

        b_a.on_refer = on_refer
        status = await asyncio.wait_for(a_b.refer(carol_uri), 5)
        assert status.accepted and status.response is not None and status.response.status_code == 202
        assert await asyncio.wait_for(status.final, 5) == 200
        assert [p.status for p in status.progress] == [100, 180, 200]
        (b_c,) = carol_calls
        assert b_c.dialog.remote_uri is not None and "bob" in str(b_c.dialog.remote_uri)
        await a_b.bye()  # the transferor leaves once the transfer worked
        await asyncio.wait_for(b_a.terminated.wait(), 5)
        assert not b_c.terminated.is_set()
        await _close(alice, bob, carol)

    asyncio.run(asyncio.wait_for(run(), 20))


def test_attended_transfer_replaces_the_confirmed_dialog() -> None:
    async def run() -> None:
        alice, _ = await _ua("alice")
        bob, bob_uri = await _ua("bob")
        carol, carol_uri = await _ua("carol")
        bob_calls: list[InviteSession] = []
        carol_calls: list[InviteSession] = []
        _answering(bob, bob_calls)
        replaced: list[InviteSession | object] = []

        async def carol_invite(inc: IncomingInvite) -> None:
            if inc.replaces is not None:
                replaced.append(inc.replaces)
                # the new call takes over the old one's media: answer at once, the old dialog gets BYE
                assert isinstance(inc.replaces, InviteSession)
                carol_calls.append(inc.answer(inc.replaces.local_sdp))
                return
            carol_calls.append(inc.answer(SDP))

        carol.on_invite = carol_invite
        a_b = await asyncio.wait_for(alice.invite(bob_uri, SDP).result, 5)
        a_c = await asyncio.wait_for(alice.invite(carol_uri, SDP).result, 5)
        (b_a,) = bob_calls
        (c_a,) = carol_calls
        b_a.on_refer = lambda refer: bob.follow_refer(refer, SDP) and None
        status = await asyncio.wait_for(a_b.refer(carol_uri, replaces=a_c), 5)
        assert await asyncio.wait_for(status.final, 5) == 200
        assert replaced == [c_a]
        await asyncio.wait_for(a_c.terminated.wait(), 5)  # Carol hung up the replaced call
        assert a_c.end_reason == "remote hangup" and c_a.end_reason == "local hangup"
        (_, c_b) = carol_calls
        assert not c_b.terminated.is_set() and "bob" in str(c_b.dialog.remote_uri)
        assert len([e for e in carol.endpoint.trace if e.label == "INVITE"]) == 2  # Alice's, then Bob's
        await a_b.bye()
        await _close(alice, bob, carol)

    asyncio.run(asyncio.wait_for(run(), 20))


def test_replaces_rejections_and_declined_refer() -> None:
    async def run() -> None:
        alice, _ = await _ua("alice")
        bob, bob_uri = await _ua("bob")
        bob_calls: list[InviteSession] = []
        _answering(bob, bob_calls)
        a_b = await asyncio.wait_for(alice.invite(bob_uri, SDP).result, 5)
        (b_a,) = bob_calls
        d = b_a.dialog
        cases = {
            "nosuchcall;to-tag=x;from-tag=y": 481,
            f"{d.call_id};to-tag={d.local_tag};from-tag={d.remote_tag};early-only": 486,
            f"{d.call_id};to-tag={d.remote_tag};from-tag={d.local_tag}": 481,  # tags the wrong way round
            "garbage": 400,
        }
        for value, status in cases.items():
            with pytest.raises(CallFailed) as info:
                await asyncio.wait_for(alice.invite(bob_uri, SDP, headers=[("Replaces", value)]).result, 5)
            assert info.value.status == status, value
        assert not b_a.terminated.is_set()
        # a REFER nobody handles is declined (603) and the call goes on
        status = await asyncio.wait_for(a_b.refer("sip:carol@example.test"), 5)
        assert not status.accepted
        with pytest.raises(RequestFailed) as refused:
            await asyncio.wait_for(status.final, 5)
        assert refused.value.status == 603
        # an unknown NOTIFY in the call is not ours: 481
        notify = a_b.dialog.create_request("NOTIFY", headers=[("Event", "refer;id=999"),
                                                               ("Subscription-State", "active")])
        resp = await asyncio.wait_for(alice.endpoint.request(notify, a_b.target), 5)
        assert resp.status_code == 481
        await a_b.bye()
        await asyncio.wait_for(b_a.terminated.wait(), 5)
        # the dialog is gone now: a Replaces naming it gets 603 (RFC 3891 §3)
        with pytest.raises(CallFailed) as info:
            await asyncio.wait_for(alice.invite(bob_uri, SDP, headers=[
                ("Replaces", f"{d.call_id};to-tag={d.local_tag};from-tag={d.remote_tag}")]).result, 5)
        assert info.value.status == 603
        await _close(alice, bob)

    asyncio.run(asyncio.wait_for(run(), 20))


# -- properties ------------------------------------------------------------------------------------------
TOKEN = st.text(alphabet=string.ascii_letters + string.digits + "-.!%*_+`'~", min_size=1, max_size=20)
CALL_ID = st.builds(lambda a, b: f"{a}@{b}" if b else a, TOKEN, st.one_of(st.just(""), TOKEN))


@given(CALL_ID, TOKEN, TOKEN, st.booleans(), TOKEN)
def test_refer_to_replaces_round_trips(call_id: str, to_tag: str, from_tag: str, early: bool, user: str) -> None:
    rep = Replaces(call_id, to_tag, from_tag, early)
    target = parse_refer_to(refer_to_value(f"sip:{user}@example.test", rep))
    assert target.replaces == rep and target.uri == f"sip:{user}@example.test"


@given(st.integers(100, 699), st.text(alphabet=string.printable.replace("\r", "").replace("\n", ""), max_size=40))
def test_sipfrag_round_trips(status: int, reason: str) -> None:
    assert parse_sipfrag(sipfrag(status, reason)) == (status, reason)


@given(st.text(max_size=120))
def test_hostile_refer_to_and_sipfrag(text: str) -> None:
    for parse in (parse_refer_to, lambda t: parse_sipfrag(t.encode("utf-8", "surrogateescape"))):
        try:
            parse(text)
        except SipParseError:
            pass


@given(st.text(max_size=60), st.text(max_size=60), st.binary(max_size=60))
def test_hostile_refer_notifies(event: str, state: str, body: bytes) -> None:
    watcher = ReferWatcher(_refer())
    notify = _notify("refer;id=5", "active", b"")
    for name, value in (("Event", event), ("Subscription-State", state)):
        if value.isprintable() and "\r" not in value and "\n" not in value:
            notify.headers.set(name, value)
    notify.body = body
    watcher.matches(notify)
    code, _ = watcher.receive_notify(notify)
    assert code in (200, 400, 415)
