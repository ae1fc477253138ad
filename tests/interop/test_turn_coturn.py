"""Our TURN client (rtpcore.ice.turn) against a real coturn on 127.0.0.1.

Allocation with long-term credentials (401 challenge then success), CreatePermission, data
through Send/Data indications and through a bound channel to a UDP echo peer, refresh,
deallocation, and a wrong password reported as a typed TurnError 401. coturn runs with
``allow-loopback-peers`` on a free port, is bounded by ``timeout`` and killed by PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import require
from rtpcore.errors import TurnError
from rtpcore.ice.turn import (
    AllocationFailed,
    AllocationSucceeded,
    ChannelBound,
    Deallocated,
    PermissionCreated,
    TurnClient,
    TurnState,
)

pytestmark = pytest.mark.interop


def _free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def coturn(tmp_path: Path) -> Any:
    require("turnserver")
    port = _free_port()
    low = 50000 + (os.getpid() % 100) * 100
    conf = tmp_path / "turnserver.conf"
    conf.write_text(
        f"listening-ip=127.0.0.1\nlistening-port={port}\nrelay-ip=127.0.0.1\nexternal-ip=127.0.0.1\n"
        f"min-port={low}\nmax-port={low + 99}\nlt-cred-mech\nuser=test:secret\nrealm=lab.local\n"
        "no-tls\nno-dtls\nno-cli\nallow-loopback-peers\nno-multicast-peers\nlog-file=stdout\n"
        f"pidfile={tmp_path / 'turn.pid'}\nuserdb={tmp_path / 'turndb'}\n")
    proc = subprocess.Popen(["timeout", "60", "turnserver", "-c", str(conf)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            out = subprocess.run(["ss", "-lnu"], capture_output=True, text=True, timeout=5, check=False).stdout
            if f"127.0.0.1:{port}" in out:
                break
            time.sleep(0.05)
        else:
            pytest.fail("coturn did not start listening")
        yield ("127.0.0.1", port)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.queue.put_nowait((data, (addr[0], addr[1])))


class _Driver:
    """Runs a sans-IO TurnClient on a UDP socket; collects events and relayed data."""

    def __init__(self, client: TurnClient, sock: _Udp) -> None:
        self.client = client
        self.sock = sock
        self.events: list[Any] = []
        self.data: list[tuple[bytes, tuple[str, int]]] = []

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def flush(self) -> None:
        assert self.sock.transport is not None
        for d, dst in self.client.datagrams_to_send(self.now()):
            self.sock.transport.sendto(d, dst)
        self.events.extend(self.client.events())

    def send(self, data: bytes, peer: tuple[str, int]) -> None:
        assert self.sock.transport is not None
        for d, dst in self.client.send(data, peer, self.now()):
            self.sock.transport.sendto(d, dst)
        self.flush()

    async def until(self, pred: Any, timeout: float = 10.0) -> None:
        end = self.now() + timeout
        self.flush()
        while not pred():
            if self.now() > end:
                raise TimeoutError(f"condition not met; events: {self.events}")
            deadline = self.client.next_deadline()
            wait = max(0.0, min(end, deadline if deadline is not None else end) - self.now())
            try:
                data, addr = await asyncio.wait_for(self.sock.queue.get(), wait or 0.01)
                got = self.client.receive(data, addr, self.now())
                if got is not None:
                    self.data.append(got)
            except TimeoutError:
                self.client.handle_timeout(self.now())
            self.flush()


async def _endpoint() -> _Udp:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_datagram_endpoint(_Udp, local_addr=("127.0.0.1", 0))
    return proto


def test_allocate_permission_indication_channel_and_deallocate(coturn: tuple[str, int]) -> None:
    async def run() -> None:
        sock = await _endpoint()
        peer = await _endpoint()
        assert sock.transport is not None and peer.transport is not None
        peer_addr = peer.transport.get_extra_info("sockname")[:2]
        client = TurnClient(coturn, "test", "secret", local_addr=sock.transport.get_extra_info("sockname")[:2])
        drv = _Driver(client, sock)
        client.allocate(drv.now())
        await drv.until(lambda: client.state is TurnState.ALLOCATED)
        ok = next(e for e in drv.events if isinstance(e, AllocationSucceeded))
        assert ok.relayed[0] == "127.0.0.1" and ok.lifetime > 0

        client.create_permission(peer_addr, drv.now())
        await drv.until(lambda: any(isinstance(e, PermissionCreated) for e in drv.events))
        drv.send(b"via-indication", peer_addr)
        data, src = await asyncio.wait_for(peer.queue.get(), 5)
        assert data == b"via-indication" and src == ok.relayed  # the peer sees the relayed address
        peer.transport.sendto(b"pong-1", src)
        await drv.until(lambda: any(d == b"pong-1" for d, _ in drv.data))

        client.bind_channel(peer_addr, drv.now())
        await drv.until(lambda: any(isinstance(e, ChannelBound) for e in drv.events))
        for i in range(20):
            drv.send(b"chan-%d" % i, peer_addr)
            data, src = await asyncio.wait_for(peer.queue.get(), 5)
            assert data == b"chan-%d" % i
            peer.transport.sendto(b"back-%d" % i, src)
        await drv.until(lambda: sum(d.startswith(b"back-") for d, _ in drv.data) == 20)
        assert all(p == peer_addr for d, p in drv.data)

        client.refresh(drv.now())
        client.deallocate(drv.now())
        await drv.until(lambda: any(isinstance(e, Deallocated) for e in drv.events))
        for s in (sock, peer):
            with contextlib.suppress(Exception):
                assert s.transport is not None
                s.transport.close()

    asyncio.run(asyncio.wait_for(run(), 30))


def test_wrong_password_is_a_typed_401(coturn: tuple[str, int]) -> None:
    async def run() -> None:
        sock = await _endpoint()
        client = TurnClient(coturn, "test", "WRONG")
        drv = _Driver(client, sock)
        client.allocate(drv.now())
        await drv.until(lambda: client.state is TurnState.FAILED)
        failed = next(e for e in drv.events if isinstance(e, AllocationFailed))
        assert isinstance(failed.error, TurnError) and failed.error.error_code == 401
        assert sock.transport is not None
        sock.transport.close()

    asyncio.run(asyncio.wait_for(run(), 30))


def test_allocation_and_channel_over_tcp(coturn: tuple[str, int]) -> None:
    """TURN over TCP to the server (RFC 8656 §3.1): no retransmissions, padded ChannelData."""
    from rtpcore.ice.turn import StreamFramer

    async def run() -> None:
        peer = await _endpoint()
        assert peer.transport is not None
        peer_addr = peer.transport.get_extra_info("sockname")[:2]
        reader, writer = await asyncio.open_connection(*coturn)
        client = TurnClient(coturn, "test", "secret", transport="tcp")
        framer = StreamFramer()
        events: list[Any] = []
        got: list[tuple[bytes, tuple[str, int]]] = []
        loop = asyncio.get_running_loop()

        def flush() -> None:
            for d, _ in client.datagrams_to_send(loop.time()):
                writer.write(d)
            events.extend(client.events())

        async def until(pred: Any) -> None:
            end = loop.time() + 10
            flush()
            while not pred():
                assert loop.time() < end, events
                try:
                    chunk = await asyncio.wait_for(reader.read(65536), 0.2)
                except TimeoutError:
                    client.handle_timeout(loop.time())
                    flush()
                    continue
                assert chunk, "coturn closed the connection"
                for frame in framer.feed(chunk):
                    r = client.receive(frame, coturn, loop.time())
                    if r is not None:
                        got.append(r)
                flush()

        try:
            client.allocate(loop.time())
            await until(lambda: client.state is TurnState.ALLOCATED)
            client.bind_channel(peer_addr, loop.time())
            await until(lambda: any(isinstance(e, ChannelBound) for e in events))
            for payload in (b"x", b"odd-length!", b"four"):  # padding on the stream for each length
                for d, _ in client.send(payload, peer_addr, loop.time()):
                    writer.write(d)
                data, src = await asyncio.wait_for(peer.queue.get(), 5)
                assert data == payload
                peer.transport.sendto(data[::-1], src)
            await until(lambda: len(got) == 3)
            assert [d for d, _ in got] == [b"x", b"!htgnel-ddo", b"ruof"]
        finally:
            writer.close()
            peer.transport.close()

    asyncio.run(asyncio.wait_for(run(), 30))
