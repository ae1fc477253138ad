"""A 2xx retransmitted by the UAS (its ACK was lost) is ACKed again by the UAC core (RFC 3261 §13.2.2.4)."""

from __future__ import annotations

import asyncio

from sipcore.aiostack import AioSipEndpoint
from sipcore.aioua import UserAgent
from sipcore.message import SipRequest, make_response, parse_message
from sipcore.stack import Target


def test_retransmitted_200_gets_a_second_ack() -> None:
    async def run() -> None:
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()

        class Raw(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
                inbox.put_nowait((data, addr))

        raw, _ = await loop.create_datagram_endpoint(Raw, local_addr=("127.0.0.1", 0))
        port = raw.get_extra_info("sockname")[1]
        ep = AioSipEndpoint()
        await ep.listen("udp", "127.0.0.1", 0)
        ua = UserAgent(ep, aor="sip:alice@example.test", outbound=Target("udp", "127.0.0.1", port))
        out = ua.invite("sip:bob@example.test", b"v=0\r\n")
        data, src = await asyncio.wait_for(inbox.get(), 5)
        invite = parse_message(data)
        assert isinstance(invite, SipRequest) and invite.method == "INVITE"
        ok = bytes(make_response(invite, 200, to_tag="b1", headers=[("Contact", "<sip:bob@127.0.0.1>")],
                                 body=b"v=0\r\n", content_type="application/sdp"))
        raw.sendto(ok, src)
        await asyncio.wait_for(out.result, 5)
        acks = []
        while len(acks) < 1:
            data, _ = await asyncio.wait_for(inbox.get(), 5)
            if data.startswith(b"ACK "):
                acks.append(data)
        raw.sendto(ok, src)  # as if the ACK had been lost: the UAS retransmits its 200
        while len(acks) < 2:
            data, _ = await asyncio.wait_for(inbox.get(), 5)
            if data.startswith(b"ACK "):
                acks.append(data)
        assert parse_message(acks[1]).cseq.seq == invite.cseq.seq
        raw.close()
        await ua.close()
        await ep.close()

    asyncio.run(asyncio.wait_for(run(), 20))


def test_finished_incoming_invites_are_forgotten() -> None:
    """A UAS that rejects many calls keeps no state for them (bounded memory)."""
    from sipcore.aioua import CallFailed, IncomingInvite

    async def run() -> None:
        ea, eb = AioSipEndpoint(), AioSipEndpoint()
        await ea.listen("udp", "127.0.0.1", 0)
        host, port = await eb.listen("udp", "127.0.0.1", 0)
        a = UserAgent(ea, aor="sip:alice@example.test", outbound=Target("udp", host, port))
        b = UserAgent(eb, aor="sip:bob@example.test", outbound=None)

        def on_invite(inc: IncomingInvite) -> None:
            inc.reject(486)

        b.on_invite = on_invite
        for _ in range(20):
            out = a.invite("sip:bob@example.test", b"v=0\r\n")
            try:
                await asyncio.wait_for(out.result, 5)
            except CallFailed:
                pass
        assert not b._incoming
        for ua, ep in ((a, ea), (b, eb)):
            await ua.close()
            await ep.close()

    asyncio.run(asyncio.wait_for(run(), 30))
