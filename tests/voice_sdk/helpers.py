"""Shared pieces of the Device tests: a platform on 127.0.0.1, tokens, devices, audio checks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import numpy as np

from voice_sdk.call import Call
from voice_sdk.device import Device
from voice_sdk.options import DeviceOptions
from voice_sdk.server import Platform, PlatformConfig


async def mint(platform: Platform, user: str, key: str = "demo-api-key") -> str:
    async with aiohttp.ClientSession() as http, http.post(
            platform.urls["token"], headers={"X-User-API-Key": key},
            json={"user_uuid": user, "label": f"{user} test"}) as resp:
        assert resp.status == 200, await resp.text()
        token: str = (await resp.json())["access_token"]
        return token


def run(body: Callable[[Platform], Awaitable[None]], *, timeout: float = 60, **config: Any) -> None:
    """Run ``body(platform)`` on a fresh event loop with a platform on free 127.0.0.1 ports."""

    async def main() -> None:
        platform = Platform(PlatformConfig(noanswer_seconds=1.0, **config))
        await platform.start()
        try:
            await asyncio.wait_for(body(platform), timeout)
        finally:
            await platform.close()

    asyncio.run(main())


async def device(platform: Platform, user: str, *, register: bool = True, **opts: Any) -> Device:
    opts.setdefault("codecs", ("PCMU",))
    dev = Device(await mint(platform, user),
                 options=DeviceOptions(credentials_url=platform.urls["credentials"], **opts))
    if register:
        await dev.register()
    return dev


def expect(emitter: Any, name: str, timeout: float = 10) -> asyncio.Future[Any]:
    """A future of the payload of the next ``name`` event of ``emitter`` (listening from now on)."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Any] = loop.create_future()

    def handler(payload: Any = None) -> None:
        if not fut.done():
            fut.set_result(payload)

    def expire() -> None:
        if not fut.done():
            fut.set_exception(AssertionError(f"no {name!r} event within {timeout} s"))

    emitter.once(name, handler)
    timer = loop.call_later(timeout, expire)
    fut.add_done_callback(lambda _: (timer.cancel(), emitter.off(name, handler)))
    return fut


async def wait_until(cond: Callable[[], bool], timeout: float = 10, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def connect_pair(caller: Device, callee: Device, to: str, **kwargs: Any) -> tuple[Call, Call]:
    """Caller calls callee, callee accepts; returns both accepted calls."""
    incoming = expect(callee, "incoming")
    out = await caller.connect(to, **kwargs)
    inc: Call = await incoming
    await inc.accept()
    await out.wait_accepted(10)
    await inc.wait_accepted(10)
    return out, inc


def peak_hz(pcm: np.ndarray, rate: int = 8000) -> float:
    x = pcm.astype(float)
    return float(np.argmax(np.abs(np.fft.rfft(x))) * rate / len(x))


def rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(pcm.astype(float) ** 2))) if len(pcm) else 0.0


class TcpRelay:
    """A TCP forwarder the test can cut and restore: the network between a device and the platform.

    ``kill()`` aborts every relayed connection and stops listening (connects are refused);
    ``restore()`` listens again on the same port.
    """

    def __init__(self) -> None:
        self.port = 0
        self.target_port = 0
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.BaseTransport] = set()
        self.connections = 0

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        self._transports.update((writer.transport, up_w.transport))

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                w.transport.abort()

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))
        self._transports.difference_update((writer.transport, up_w.transport))

    async def kill(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for t in list(self._transports):
            t.abort()
        self._transports.clear()

    async def restore(self) -> None:
        await self.start()


class LossyTransport:
    """Wraps a media socket's transport: drops outgoing datagrams with probability ``loss`` (seeded)."""

    def __init__(self, inner: Any, loss: float, seed: int) -> None:
        import random

        self.inner = inner
        self.loss = loss
        self.rng = random.Random(seed)
        self.sent = 0
        self.dropped = 0

    def sendto(self, data: bytes, addr: Any = None) -> None:
        if self.rng.random() < self.loss:
            self.dropped += 1
            return
        self.sent += 1
        self.inner.sendto(data, addr)

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def make_lossy(call: Call, loss: float, seed: int) -> LossyTransport:
    assert call.driver is not None
    lossy = LossyTransport(call.driver.proto.transport, loss, seed)
    call.driver.proto.transport = lossy  # type: ignore[assignment]
    return lossy
