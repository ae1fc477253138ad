"""RFC 4028 session timers: negotiation and deadlines (sans-IO), refresh/expiry/422 between UAs on 127.0.0.1.

The real-socket runs use ``SessionTimerConfig(scale=0.0005)``: the wire carries RFC values
(Session-Expires: 1800) while the local clock runs 2000 times faster (refresh after 0.45 s,
expiry for the other side after 0.884 s).
"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipcore import SipRequest, SipResponse, aioua, make_response, parse_message
from sipcore.aiostack import AioSipEndpoint
from sipcore.aioua import IncomingInvite, InviteSession, UaConfig, UserAgent
from sipcore.errors import LocalProtocolError
from sipcore.header_extra import Reason
from sipcore.session_timer import (
    SessionTimer,
    SessionTimerAction,
    SessionTimerConfig,
    session_expires_of,
    supports_timer,
)
from sipcore.stack import Target

SDP_A = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
SDP_B = SDP_A.replace(b"4000", b"5000")


def _request(*headers: str) -> SipRequest:
    extra = "".join(f"{h}\r\n" for h in headers).encode()
    msg = parse_message(
        b"INVITE sip:bob@example.test SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKs\r\n"
        b"From: <sip:alice@example.test>;tag=a\r\nTo: <sip:bob@example.test>\r\nCall-ID: s1\r\n"
        b"CSeq: 1 INVITE\r\nContact: <sip:alice@10.0.0.1>\r\n" + extra + b"Content-Length: 0\r\n\r\n")
    assert isinstance(msg, SipRequest)
    return msg


def _ok(req: SipRequest, *headers: tuple[str, str]) -> SipResponse:
    return make_response(req, 200, to_tag="b", headers=list(headers))


# -- sans-IO -------------------------------------------------------------------------------------------
def test_config_limits() -> None:
    with pytest.raises(LocalProtocolError):
        SessionTimerConfig(min_se=60)
    with pytest.raises(LocalProtocolError):
        SessionTimerConfig(session_expires=100, min_se=120)
    with pytest.raises(LocalProtocolError):
        SessionTimerConfig(prefer_refresher="me")
    with pytest.raises(LocalProtocolError):
        SessionTimerConfig(scale=0)


def test_uac_headers_and_422() -> None:
    t = SessionTimer(SessionTimerConfig(session_expires=1800))
    assert t.request_headers() == [("Supported", "timer"), ("Session-Expires", "1800"), ("Min-SE", "90")]
    assert SessionTimer().request_headers() == [("Supported", "timer")]  # supported, nothing asked
    req = _request("Session-Expires: 1800")
    too_small = make_response(req, 422, headers=[("Min-SE", "3600")])
    assert t.on_422(too_small)
    assert t.request_headers() == [("Supported", "timer"), ("Session-Expires", "3600"), ("Min-SE", "3600")]
    assert not t.on_422(too_small)  # the same Min-SE again: retrying cannot help
    assert not t.on_422(make_response(req, 422))  # no Min-SE at all
    assert not t.on_422(make_response(req, 422, headers=[("Min-SE", "x")]))


def test_uac_adopts_the_uas_choice() -> None:
    req = _request("Supported: timer", "Session-Expires: 1800")
    t = SessionTimer(SessionTimerConfig(session_expires=1800))
    t.on_2xx(req, _ok(req, ("Require", "timer"), ("Session-Expires", "1200;refresher=uac")), 100.0)
    assert t.interval == 1200 and t.we_refresh and t.next_deadline() == pytest.approx(700.0)
    t.on_2xx(req, _ok(req, ("Require", "timer"), ("Session-Expires", "1200;refresher=uas")), 100.0)
    assert not t.we_refresh and t.next_deadline() == pytest.approx(100.0 + 1200 - 32)
    # a refresher-less Session-Expires makes the UAC the refresher; a UAS without timer support
    # lets the UAC keep the session alive with what it asked for (§7.2)
    t.on_2xx(req, _ok(req, ("Session-Expires", "900")), 0.0)
    assert t.we_refresh and t.interval == 900
    t.on_2xx(req, _ok(req), 0.0)
    assert t.we_refresh and t.interval == 1800
    t.on_2xx(req, _ok(req, ("Supported", "timer")), 0.0)  # supports timers, chose none
    assert not t.active and t.next_deadline() is None


def test_uas_checks_and_answers() -> None:
    t = SessionTimer(SessionTimerConfig(min_se=120))
    assert t.check_request(_request("Session-Expires: 100")) == (422, [("Min-SE", "120")])
    assert t.check_request(_request("Session-Expires: 1800")) is None
    assert t.check_request(_request("Session-Expires: soon")) == (400, [])
    assert t.check_request(_request()) is None
    # the UAC supports timers and leaves the refresher open: our preference (uac), Require: timer
    hdrs = t.response_headers(_request("Supported: timer", "Session-Expires: 1800"), 0.0)
    assert hdrs == [("Supported", "timer"), ("Session-Expires", "1800;refresher=uac"), ("Require", "timer")]
    assert not t.we_refresh and t.next_deadline() == pytest.approx(1800 - 32)
    # the UAC picks: refresher=uas makes us refresh
    t.response_headers(_request("Supported: timer", "Session-Expires: 600;refresher=uas"), 0.0)
    assert t.we_refresh and t.next_deadline() == pytest.approx(300.0)
    # a refresh without Session-Expires keeps the running interval
    assert ("Session-Expires", "600;refresher=uac") in t.response_headers(_request("Supported: timer"), 0.0)
    # no timer asked, none configured: none runs
    fresh = SessionTimer()
    assert fresh.response_headers(_request("Supported: timer"), 0.0) == [("Supported", "timer")]
    assert not fresh.active
    # we want one, the UAC cannot refresh: we do, without Require (§9)
    t2 = SessionTimer(SessionTimerConfig(session_expires=1800))
    hdrs = t2.response_headers(_request("Min-SE: 2000"), 0.0)
    assert hdrs == [("Supported", "timer"), ("Session-Expires", "2000;refresher=uas")] and t2.we_refresh
    # the UAC supports timers but its request has no Session-Expires: our interval, UAC refreshes
    hdrs = t2.response_headers(_request("Supported: timer"), 0.0)
    assert ("Session-Expires", "2000;refresher=uac") in hdrs and not t2.we_refresh
    # a refresh request from a UAC without timer support cannot make it the refresher
    t2.response_headers(_request("Session-Expires: 1800;refresher=uac"), 0.0)
    assert t2.we_refresh


def test_deadlines_refresh_then_expire() -> None:
    t = SessionTimer(SessionTimerConfig(session_expires=90))
    req = _request("Supported: timer", "Session-Expires: 90")
    t.on_2xx(req, _ok(req, ("Session-Expires", "90;refresher=uac")), 0.0)
    assert t.next_deadline() == pytest.approx(45.0)
    assert t.handle_timeout(44.0) is SessionTimerAction.NONE
    assert t.handle_timeout(45.0) is SessionTimerAction.REFRESH
    assert t.next_deadline() == pytest.approx(60.0)  # 90 - min(32, 30): the refresh must land by then
    t.on_2xx(req, _ok(req, ("Session-Expires", "90;refresher=uac")), 50.0)  # the refresh succeeded
    assert t.next_deadline() == pytest.approx(95.0)
    assert t.handle_timeout(95.0) is SessionTimerAction.REFRESH
    assert t.handle_timeout(110.0) is SessionTimerAction.EXPIRED and not t.active
    scaled = SessionTimer(SessionTimerConfig(session_expires=90, scale=0.01))
    scaled.on_2xx(req, _ok(req, ("Session-Expires", "90;refresher=uas")), 0.0)
    assert scaled.next_deadline() == pytest.approx(0.6)


def test_header_helpers() -> None:
    req = _request("k: timer", "x: 120;refresher=uas")  # compact forms of Supported and Session-Expires
    assert supports_timer(req)
    se = session_expires_of(req)
    assert se is not None and se.seconds == 120 and se.refresher == "uas"
    assert not supports_timer(_request("Supported: 100rel"))


# -- over real sockets ----------------------------------------------------------------------------------
async def _pair(config_a: UaConfig, config_b: UaConfig) -> tuple[UserAgent, UserAgent]:
    ea, eb = AioSipEndpoint(), AioSipEndpoint()
    await ea.listen("udp", "127.0.0.1", 0)
    host, port = await eb.listen("udp", "127.0.0.1", 0)
    a = UserAgent(ea, aor="sip:alice@example.test", outbound=Target("udp", host, port), config=config_a)
    b = UserAgent(eb, aor="sip:bob@example.test", outbound=None, config=config_b)
    return a, b


async def _close(*uas: UserAgent) -> None:
    for ua in uas:
        await ua.close()
        await ua.endpoint.close()


def _count(ua: UserAgent, label: str) -> int:
    return sum(1 for e in ua.endpoint.trace if e.label == label)


async def _call(a: UserAgent, b: UserAgent) -> tuple[InviteSession, InviteSession]:
    got: asyncio.Future[InviteSession] = asyncio.get_running_loop().create_future()

    async def on_invite(inc: IncomingInvite) -> None:
        got.set_result(inc.answer(SDP_B))

    b.on_invite = on_invite
    a_session = await asyncio.wait_for(a.invite("sip:bob@example.test", SDP_A).result, 5)
    return a_session, await asyncio.wait_for(got, 5)


SCALE = 0.0005
FAST_TIMER = SessionTimerConfig(session_expires=1800, scale=SCALE)
PEER_TIMER = SessionTimerConfig(scale=SCALE)


def test_refresher_sends_update_and_both_stay_up() -> None:
    async def run() -> None:
        a, b = await _pair(UaConfig(session_timer=FAST_TIMER), UaConfig(session_timer=PEER_TIMER))
        a_s, b_s = await _call(a, b)
        assert a_s.timer is not None and b_s.timer is not None
        assert a_s.timer.interval == b_s.timer.interval == 1800
        assert a_s.timer.we_refresh and not b_s.timer.we_refresh and "UPDATE" in a_s.peer_allow
        await asyncio.sleep(1.8)  # three refresh periods (0.45 s) and well beyond the 0.884 s expiry
        assert _count(b, "UPDATE") >= 3 and _count(a, "200 OK (UPDATE)") >= 3
        assert not a_s.terminated.is_set() and not b_s.terminated.is_set()
        await a_s.bye()
        await _close(a, b)

    asyncio.run(asyncio.wait_for(run(), 20))


def test_refresh_by_reinvite_when_the_peer_does_not_allow_update(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aioua, "ALLOW", "INVITE, ACK, CANCEL, BYE, OPTIONS")  # an old PBX

    async def run() -> None:
        a, b = await _pair(UaConfig(session_timer=FAST_TIMER), UaConfig(session_timer=PEER_TIMER))
        a_s, b_s = await _call(a, b)
        assert "UPDATE" not in a_s.peer_allow
        await asyncio.sleep(1.4)
        assert _count(b, "INVITE") >= 3 and _count(b, "UPDATE") == 0  # the initial INVITE + refreshes
        assert _count(a, "ACK") >= 3
        assert a_s.local_sdp == SDP_A and not b_s.terminated.is_set()
        await a_s.bye()
        await _close(a, b)

    asyncio.run(asyncio.wait_for(run(), 20))


def test_no_refresh_means_bye_at_expiry() -> None:
    async def run() -> None:
        a, b = await _pair(UaConfig(session_timer=FAST_TIMER), UaConfig(session_timer=PEER_TIMER))
        a_s, b_s = await _call(a, b)
        a_s._stop_timer()
        a_s.timer = None  # Alice stops refreshing
        await asyncio.wait_for(a_s.terminated.wait(), 5)
        assert a_s.end_reason == "remote hangup" and b_s.end_reason == "local hangup"
        assert a_s.remote_reasons == [Reason("SIP", 408, "Session expired")]
        await _close(a, b)

    asyncio.run(asyncio.wait_for(run(), 20))


def test_422_raises_session_expires_and_the_call_goes_through() -> None:
    async def run() -> None:
        a, b = await _pair(UaConfig(session_timer=FAST_TIMER),
                           UaConfig(session_timer=SessionTimerConfig(min_se=3600, scale=SCALE)))
        a_s, b_s = await _call(a, b)
        assert _count(a, "422 Session Interval Too Small (INVITE)") == 1
        assert a_s.timer is not None and a_s.timer.interval == 3600 and a_s.timer.min_se == 3600
        assert b_s.timer is not None and b_s.timer.interval == 3600
        await a_s.bye()
        await _close(a, b)

    asyncio.run(asyncio.wait_for(run(), 20))


@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
       st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40))
def test_hostile_session_timer_headers(se: str, min_se: str) -> None:
    req = _request("Supported: timer")
    req.headers.set("Session-Expires", se)
    req.headers.set("Min-SE", min_se)
    t = SessionTimer(SessionTimerConfig(session_expires=1800))
    t.check_request(req)
    t.response_headers(req, 0.0)
    t.on_2xx(req, _ok(req, ("Session-Expires", se)), 0.0)
    t.on_422(make_response(req, 422, headers=[("Min-SE", min_se)]))
    t.handle_timeout(1e9)
    assert t.interval is None or t.interval >= 90
