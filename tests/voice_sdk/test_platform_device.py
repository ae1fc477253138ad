"""Device against the embedded platform on 127.0.0.1: tokens, registration, test numbers, errors."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import numpy as np
import pytest

from voice_sdk.audio import BufferSink, ToneSource
from voice_sdk.device import Device
from voice_sdk.errors import ErrorCode, VoiceSDKError
from voice_sdk.options import DeviceOptions
from voice_sdk.server import Platform, PlatformConfig


async def _token(platform: Platform, user: str = "alice", key: str = "demo-api-key") -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.post(
            platform.urls["token"], headers={"X-User-API-Key": key},
            json={"user_uuid": user, "label": "test"}) as resp:
        return resp.status, await resp.json()


def run(coro_fn: Callable[[Platform], Awaitable[None]], timeout: float = 60) -> None:
    async def main() -> None:
        platform = Platform(PlatformConfig(noanswer_seconds=1.0))
        await platform.start()
        try:
            await asyncio.wait_for(coro_fn(platform), timeout)
        finally:
            await platform.close()

    asyncio.run(main())


def _device(platform: Platform, token: str, **opts: Any) -> Device:
    return Device(token, options=DeviceOptions(credentials_url=platform.urls["credentials"], **opts))


def test_token_api_rejects_bad_keys_and_bodies() -> None:
    async def body(platform: Platform) -> None:
        status, data = await _token(platform, key="wrong")
        assert status == 401 and data["error"]["code"] == "invalid_api_key"
        status, data = await _token(platform, user="bad user@x")
        assert status == 400
        status, data = await _token(platform)
        assert status == 200 and data["access_token"] and data["expires_at"]
        async with aiohttp.ClientSession() as http:
            async with http.get(platform.urls["credentials"], headers={"Authorization": "Bearer nope"}) as r:
                assert r.status == 401 and (await r.json())["error"]["code"] == "invalid_token"
            async with http.get(platform.urls["credentials"],
                                headers={"Authorization": f"Bearer {data['access_token']}"}) as r:
                creds = await r.json()
        assert creds["sip_uri"] == "sip:alice@voice.localhost" and creds["username"].endswith(":alice")

    run(body)


@pytest.mark.parametrize(("security", "transport"), [("dtls", "ws"), ("sdes", "udp"), ("none", "tcp")])
def test_register_and_call_echo(security: str, transport: str) -> None:
    async def body(platform: Platform) -> None:
        _, tok = await _token(platform)
        device = _device(platform, tok["access_token"], media_security=security, transport=transport,
                         codecs=("PCMU",))
        events: list[str] = []
        device.on("registered", lambda: events.append("registered"))
        await device.register()
        assert device.is_registered and device.identity == "alice" and events == ["registered"]
        assert "alice" in platform.bindings
        call = await device.connect("echo")
        call.on("ringing", lambda c: events.append("ringing"))
        sink = BufferSink(8000)
        call.set_input(ToneSource((600.0,), sample_rate=8000))
        call.set_output(sink)
        await call.wait_accepted(10)
        await asyncio.sleep(1.5)
        q = call.quality()
        assert q is not None and q.packets_received > 40 and q.mos_estimate > 3.5
        pcm = sink.pcm()[-4000:].astype(float)
        peak = np.argmax(np.abs(np.fft.rfft(pcm))) * 8000 / len(pcm)
        assert abs(peak - 600) < 10, "the echo returns our tone"
        await call.disconnect()
        assert call.status == "disconnected"
        await device.destroy()
        assert device.state == "destroyed"

    run(body)


def test_ivr_confirms_digits_and_busy_noanswer_fail_typed() -> None:
    async def body(platform: Platform) -> None:
        _, tok = await _token(platform, user="bob")
        device = _device(platform, tok["access_token"], codecs=("PCMA",))
        await device.register()
        call = await device.connect("ivr")
        await call.wait_accepted(10)
        await call.send_digits("12#")
        await asyncio.sleep(0.5)
        assert [d for _, d in platform.ivr_log] == ["1", "2", "#"]
        assert call.digits_received == ["1", "2", "#"]
        with pytest.raises(VoiceSDKError) as info:
            await call.send_digits("12x")
        assert info.value.code is ErrorCode.INVALID_ARGUMENT
        await call.disconnect()
        busy = await device.connect("busy")
        with pytest.raises(VoiceSDKError) as info:
            await busy.wait_accepted(5)
        assert info.value.code is ErrorCode.CALL_REJECTED and info.value.status_code == 486
        noans = await device.connect("noanswer")
        with pytest.raises(VoiceSDKError) as info:
            await noans.wait_accepted(5)
        assert info.value.status_code == 480
        await device.destroy()

    run(body)


def test_expired_and_foreign_tokens_are_typed_errors() -> None:
    async def body(platform: Platform) -> None:
        import time

        raw, _ = platform.issuer.mint("carol", label=None, now=time.time() - 7200, ttl=60)
        device = _device(platform, raw)
        with pytest.raises(VoiceSDKError) as info:
            await device.register()
        assert info.value.code is ErrorCode.TOKEN_EXPIRED
        _, tok = await _token(platform, user="dave")
        device = _device(platform, tok["access_token"])
        await device.register()
        _, other = await _token(platform, user="erin")
        with pytest.raises(VoiceSDKError) as info:
            await device.update_token(other["access_token"])
        assert info.value.code is ErrorCode.AUTH_ERROR
        _, same = await _token(platform, user="dave")
        await device.update_token(same["access_token"])
        assert device.is_registered
        await device.destroy()

    run(body)
