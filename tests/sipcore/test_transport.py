"""Real sockets on 127.0.0.1: UDP, TCP (framing, keepalive, connection reuse) and WebSocket."""

from __future__ import annotations

import asyncio

import pytest

from sipcore.transport import Flow, TransportError, TransportManager

MSG = (b"OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\nCall-ID: c\r\n"
       b"Content-Length: 3\r\n\r\nabc")


async def _pair(kind: str) -> None:
    got: asyncio.Queue[tuple[bytes, Flow]] = asyncio.Queue()
    server = TransportManager(lambda d, f: got.put_nowait((d, f)))
    client_got: asyncio.Queue[tuple[bytes, Flow]] = asyncio.Queue()
    client = TransportManager(lambda d, f: client_got.put_nowait((d, f)))
    try:
        listen = {"udp": server.listen_udp, "tcp": server.listen_tcp, "ws": server.listen_ws}[kind]
        host, port = await listen("127.0.0.1", 0)
        if kind == "udp":
            await client.listen_udp("127.0.0.1", 0)
        flow = await client.send(MSG, transport=kind, host=host, port=port)
        data, in_flow = await asyncio.wait_for(got.get(), 5)
        assert data == MSG and in_flow.transport == kind
        # reply on the flow the request came in on
        await server.send(MSG.replace(b"abc", b"xyz"), flow=in_flow)
        data, back = await asyncio.wait_for(client_got.get(), 5)
        assert data.endswith(b"xyz")
        if kind != "udp":
            # connection reuse: a second message goes on the same connection
            flow2 = await client.send(MSG, transport=kind, host=host, port=port)
            assert flow2.conn_id == flow.conn_id
            _, in_flow2 = await asyncio.wait_for(got.get(), 5)
            assert in_flow2.conn_id == in_flow.conn_id
    finally:
        await client.close()
        await server.close()


@pytest.mark.parametrize("kind", ["udp", "tcp", "ws"])
def test_round_trip(kind: str) -> None:
    asyncio.run(asyncio.wait_for(_pair(kind), 20))


def test_tcp_split_messages_and_keepalive_ping() -> None:
    async def run() -> None:
        got: asyncio.Queue[bytes] = asyncio.Queue()
        server = TransportManager(lambda d, f: got.put_nowait(d))
        host, port = await server.listen_tcp("127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(b"\r\n\r\n" + MSG[:10])
            await writer.drain()
            assert await asyncio.wait_for(reader.readexactly(2), 5) == b"\r\n"  # pong
            writer.write(MSG[10:] + MSG)
            await writer.drain()
            assert await asyncio.wait_for(got.get(), 5) == MSG
            assert await asyncio.wait_for(got.get(), 5) == MSG
        finally:
            writer.close()
            await server.close()

    asyncio.run(asyncio.wait_for(run(), 20))


def test_connection_refused_is_a_transport_error() -> None:
    async def run() -> None:
        probe = TransportManager(lambda d, f: None)
        host, port = await probe.listen_tcp("127.0.0.1", 0)
        await probe.close()
        client = TransportManager(lambda d, f: None, connect_timeout=2)
        with pytest.raises(TransportError):
            await client.send(MSG, transport="tcp", host=host, port=port)
        with pytest.raises(TransportError):
            await client.send(MSG, transport="ws", host=host, port=port)
        await client.close()

    asyncio.run(asyncio.wait_for(run(), 20))
