"""User agents over real UDP/TCP/WS sockets on 127.0.0.1: call, reject, cancel, re-INVITE, BYE, auth."""

from __future__ import annotations

import asyncio

import pytest

from sipcore.aiostack import AioSipEndpoint
from sipcore.aioua import CallFailed, IncomingInvite, UserAgent
from sipcore.auth import DigestServer
from sipcore.stack import Target
from sipcore.timers import SipTimers

SDP_A = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
SDP_B = SDP_A.replace(b"4000", b"5000")


async def _pair(transport: str = "udp", timers: SipTimers | None = None) -> tuple[UserAgent, UserAgent]:
    ea = AioSipEndpoint(timers=timers)
    eb = AioSipEndpoint(timers=timers)
    await ea.listen(transport, "127.0.0.1", 0)
    host, port = await eb.listen(transport, "127.0.0.1", 0)
    a = UserAgent(ea, aor="sip:alice@example.test", outbound=Target(transport, host, port))
    b = UserAgent(eb, aor="sip:bob@example.test", outbound=None)
    return a, b


async def _close(*uas: UserAgent) -> None:
    for ua in uas:
        await ua.close()
        await ua.endpoint.close()


@pytest.mark.parametrize("transport", ["udp", "tcp", "ws"])
def test_call_answer_and_hangup(transport: str) -> None:
    async def run() -> None:
        a, b = await _pair(transport)
        ended = asyncio.Event()
        ringing: list[int] = []

        async def on_invite(inc: IncomingInvite) -> None:
            assert inc.offer == SDP_A
            inc.ring()
            await asyncio.sleep(0.05)
            session = inc.answer(SDP_B)
            session.on_bye = lambda req: ended.set()

        b.on_invite = on_invite
        out = a.invite("sip:bob@example.test", SDP_A, on_provisional=lambda r: ringing.append(r.status_code))
        session = await asyncio.wait_for(out.result, 5)
        assert session.remote_sdp == SDP_B and 180 in ringing
        for _ in range(100):  # the ACK reaches the UAS and stops 2xx retransmissions
            if not b._uas_2xx:
                break
            await asyncio.sleep(0.02)
        assert not b._uas_2xx
        await session.bye()
        await asyncio.wait_for(ended.wait(), 5)
        await _close(a, b)

    asyncio.run(asyncio.wait_for(run(), 20))


def test_busy_and_cancel() -> None:
    async def run() -> None:
        a, b = await _pair()
        mode = {"busy": True}
        cancelled = asyncio.Event()

        async def on_invite(inc: IncomingInvite) -> None:
            if mode["busy"]:
                inc.reject(486)
                return
            inc.ring()
            await inc.cancelled.wait()
            cancelled.set()

        b.on_invite = on_invite
        with pytest.raises(CallFailed) as info:
            await asyncio.wait_for(a.invite("sip:bob@example.test", SDP_A).result, 5)
        assert info.value.status == 486
        mode["busy"] = False
        got_180 = asyncio.Event()
        out = a.invite("sip:bob@example.test", SDP_A, on_provisional=lambda r: got_180.set())
        await asyncio.wait_for(got_180.wait(), 5)
        a.cancel(out)
        with pytest.raises(CallFailed) as info:
            await asyncio.wait_for(out.result, 5)
        assert info.value.status == 487
        await asyncio.wait_for(cancelled.wait(), 5)
        await _close(a, b)

    asyncio.run(asyncio.wait_for(run(), 20))


def test_reinvite_and_digest_challenge() -> None:
    async def run() -> None:
        a, b = await _pair()
        from sipcore.auth import DigestClient

        a.digest = DigestClient("alice", "secret")
        server = DigestServer("example.test")

        async def on_invite(inc: IncomingInvite) -> None:
            result = server.verify(inc.request, b.endpoint.now(), lambda user: "secret" if user == "alice" else None)
            if not result.ok:
                inc.reject(401, headers=server.challenge(b.endpoint.now(), stale=result.stale))
                return
            session = inc.answer(SDP_B)

            async def on_reinvite(s: object, offer: bytes) -> bytes:
                return SDP_B.replace(b"RTP/AVP 0", b"RTP/AVP 0\r\na=recvonly")

            session.on_reinvite = on_reinvite  # type: ignore[assignment]

        b.on_invite = on_invite
        session = await asyncio.wait_for(a.invite("sip:bob@example.test", SDP_A).result, 5)
        resp = await asyncio.wait_for(session.reinvite(SDP_A + b"a=sendonly\r\n"), 5)
        assert resp.status_code == 200 and b"recvonly" in resp.body
        await session.bye()
        await _close(a, b)

    asyncio.run(asyncio.wait_for(run(), 20))


def test_no_answer_times_out_as_408_with_short_timers() -> None:
    async def run() -> None:
        timers = SipTimers(t1=0.01, t2=0.04, t4=0.05)
        a, b = await _pair(timers=timers)
        blackhole = Target("udp", "127.0.0.1", 9)  # discard port: nobody answers
        a.outbound = blackhole
        with pytest.raises(CallFailed) as info:
            await asyncio.wait_for(a.invite("sip:bob@example.test", SDP_A).result, 5)
        assert info.value.status == 408
        await _close(a, b)

    asyncio.run(asyncio.wait_for(run(), 20))


def test_unknown_in_dialog_request_gets_481_and_options_200() -> None:
    async def run() -> None:
        a, b = await _pair()
        req = a.new_request("BYE", "sip:bob@example.test", to="<sip:bob@example.test>;tag=nope")
        resp = await a.request(req)
        assert resp.status_code == 481
        resp = await a.request(a.new_request("OPTIONS", "sip:bob@example.test"))
        assert resp.status_code == 200 and "INVITE" in (resp.headers.get("allow") or "")
        await _close(a, b)

    asyncio.run(asyncio.wait_for(run(), 20))


def test_malformed_request_gets_400_and_the_endpoint_survives() -> None:
    async def run() -> None:
        a, b = await _pair()
        got: list[int] = []
        eb = b.endpoint
        bad = (b"OPTIONS sip:bob@example.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKx;rport\r\n"
               b"From: <sip:a@b>;tag=1\r\nTo: <sip:bob@example.test>\r\nCall-ID: c\r\nCSeq: x OPTIONS\r\n\r\n")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bytes] = loop.create_future()

        class P(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: object) -> None:
                if not fut.done():
                    fut.set_result(data)

        tr, _ = await loop.create_datagram_endpoint(P, local_addr=("127.0.0.1", 0))
        host, port = eb.stack.sent_by["udp"]
        tr.sendto(bad, (host, port))
        data = await asyncio.wait_for(fut, 5)
        got.append(int(data.split(b" ")[1]))
        tr.close()
        assert got == [400]
        resp = await a.request(a.new_request("OPTIONS", "sip:bob@example.test"))
        assert resp.status_code == 200
        await _close(a, b)

    asyncio.run(asyncio.wait_for(run(), 20))
