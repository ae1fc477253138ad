"""The platform's proxy relays a callee's 2xx retransmission upstream (its first ACK was lost)."""

from __future__ import annotations

import asyncio

from sipcore.message import SipResponse, parse_message
from sipcore.stack import StrayResponse, Target
from voice_sdk.server import Platform, PlatformConfig

RESPONSE = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKplatformbranch;rport=5999\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bKcallerbranch;rport=6000\r\n"
    b"From: <sip:alice@voice.localhost>;tag=a1\r\nTo: <sip:bob@voice.localhost>;tag=b1\r\n"
    b"Call-ID: stray-test\r\nCSeq: 1 INVITE\r\nContact: <sip:bob@127.0.0.1:7000>\r\nContent-Length: 0\r\n\r\n"
)


def test_stray_2xx_of_a_forwarded_invite_goes_upstream_without_our_via() -> None:
    async def run() -> None:
        platform = Platform(PlatformConfig())
        await platform.start()
        loop = asyncio.get_running_loop()
        got: asyncio.Future[bytes] = loop.create_future()

        class Caller(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: object) -> None:
                if not got.done():
                    got.set_result(data)

        sock, _ = await loop.create_datagram_endpoint(Caller, local_addr=("127.0.0.1", 0))
        try:
            router = platform.router
            assert router is not None
            port = sock.get_extra_info("sockname")[1]
            original = parse_message(RESPONSE)  # stands in for the request: only its identity is kept
            router._answered["z9hG4bKplatformbranch"] = (original, Target("udp", "127.0.0.1", port))  # type: ignore[assignment]
            resp = parse_message(RESPONSE)
            assert isinstance(resp, SipResponse)
            router._on_stray(StrayResponse(response=resp, source=Target("udp", "127.0.0.1", 7000)))
            relayed = parse_message(await asyncio.wait_for(got, 5))
            assert isinstance(relayed, SipResponse) and relayed.status_code == 200
            assert [v.branch for v in relayed.vias] == ["z9hG4bKcallerbranch"]
        finally:
            sock.close()
            await platform.close()

    asyncio.run(asyncio.wait_for(run(), 20))
