"""The platform's call router (record-routing stateful proxy) seen from a raw SIP user agent.

Covers what the Device tests do not reach: authentication before forwarding, the signed
flow tokens in Record-Route (a forged one is not a relay), Max-Forwards, Timer C, the
token-only platform mode and its configuration from the environment.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from helpers import device, expect, run

from sipcore.aiostack import AioSipEndpoint
from sipcore.aioua import UserAgent
from sipcore.stack import Target
from voice_sdk.call import Call
from voice_sdk.errors import ErrorCode, VoiceSDKError
from voice_sdk.server import Platform, PlatformConfig


async def _raw_ua(platform: Platform, user: str, credentials: tuple[str, str] | None = None) -> UserAgent:
    ep = AioSipEndpoint()
    await ep.listen("udp", "127.0.0.1", 0)
    host, port = platform.urls["udp"].removeprefix("sip:").rsplit(":", 1)
    return UserAgent(ep, aor=f"sip:{user}@{platform.config.domain}", outbound=Target("udp", host, int(port)),
                     credentials=credentials)


def test_invite_to_a_user_needs_credentials_and_respects_max_forwards() -> None:
    async def body(platform: Platform) -> None:
        bob = await device(platform, "bob")
        rang: list[Any] = []
        bob.on("incoming", rang.append)
        ua = await _raw_ua(platform, "mallory")
        try:
            req = ua.new_request("INVITE", f"sip:bob@{platform.config.domain}", body=b"v=0\r\n",
                                 content_type="application/sdp")
            resp = await ua.request(req)
            assert resp.status_code == 401 and not rang, "no credentials: challenged, never forwarded"
            req = ua.new_request("MESSAGE", f"sip:bob@{platform.config.domain}", body=b"hi", content_type="text/plain")
            req.headers.set("Max-Forwards", "0")
            assert (await ua.request(req)).status_code == 483
            # an in-dialog request with a forged flow token in Route is not relayed anywhere
            sent_by = platform.endpoint.stack.sent_by["udp"]
            forged = ua.new_request("BYE", "sip:victim@127.0.0.1:9", headers=[
                ("Route", f"<sip:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA@{sent_by[0]}:{sent_by[1]};lr>")])
            forged.headers.set("To", f"<sip:victim@{platform.config.domain}>;tag=abc")
            assert (await ua.request(forged)).status_code in (404, 481)
            assert platform.router is not None and platform.router.forwarded == 0
        finally:
            await ua.endpoint.close()
            await bob.destroy()

    run(body)


def test_flow_tokens_round_trip_and_reject_tampering() -> None:
    async def body(platform: Platform) -> None:
        router = platform.router
        assert router is not None
        target = Target("udp", "127.0.0.1", 5099)
        token = router._flow_token(target)
        back = router._decode_token(token)
        assert back is not None and (back.transport, back.host, back.port) == ("udp", "127.0.0.1", 5099)
        tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
        assert router._decode_token(tampered) is None
        assert router._decode_token("") is None and router._decode_token("!!!") is None
        other = Platform(PlatformConfig())
        await other.start()
        try:
            assert other.router is not None and other.router._decode_token(token) is None, "keys are per platform"
        finally:
            await other.close()

    run(body)


def test_timer_c_cancels_an_unanswered_call_and_the_caller_gets_480() -> None:
    async def body(platform: Platform) -> None:
        alice = await device(platform, "alice")
        bob = await device(platform, "bob")
        incoming = expect(bob, "incoming")
        out = await alice.connect("bob")
        inc: Call = await incoming
        ended = expect(inc, "disconnect", 5)
        assert await ended == "cancelled"
        with pytest.raises(VoiceSDKError) as info:
            await out.wait_accepted(5)
        assert info.value.code is ErrorCode.CALL_REJECTED and info.value.status_code == 480
        await alice.destroy()
        await bob.destroy()

    run(body, ring_timeout=1.0)


def test_token_only_mode_and_configuration_from_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Any) -> None:
    keys = tmp_path / "keys"
    keys.write_text("# comment\nk1\n\nk2\n")
    for name, value in {"VOICE_SIP": "off", "VOICE_DOMAIN": "voice.example", "VOICE_PUBLIC_WS_URL": "wss://sip.example",
                        "VOICE_TURN_URLS": "turn:t1.example:3478?transport=udp, turn:t2.example",
                        "VOICE_STUN_URLS": "stun:t1.example", "VOICE_API_KEYS_FILE": str(keys),
                        "VOICE_PUBLIC_UDP": "sip.example:5060"}.items():
        monkeypatch.setenv(name, value)
    cfg = PlatformConfig.from_env(host="127.0.0.1")
    assert cfg.sip is False and cfg.api_keys == {"k1", "k2"} and cfg.domain == "voice.example"
    assert cfg.turn_urls == ["turn:t1.example:3478?transport=udp", "turn:t2.example"]

    async def main() -> None:
        platform = Platform(cfg)
        urls = await platform.start()
        try:
            assert platform.ua is None and platform.router is None and "udp" not in urls
            assert "not served here" in platform.banner()
            async with aiohttp.ClientSession() as http:
                async with http.post(urls["token"], headers={"X-User-API-Key": "k2"},
                                     json={"user_uuid": "zoe", "label": "x"}) as r:
                    token = (await r.json())["access_token"]
                async with http.get(urls["credentials"], headers={"Authorization": f"Bearer {token}"}) as r:
                    creds = await r.json()
            assert creds["ws_url"] == "wss://sip.example" and creds["udp"] == "sip.example:5060"
            assert creds["sip_uri"] == "sip:zoe@voice.example"
            assert creds["ice_servers"][0] == {"urls": ["stun:t1.example"]}
            assert creds["ice_servers"][1]["username"].endswith(":zoe")
        finally:
            await platform.close()

    asyncio.run(main())
    with pytest.raises(ValueError):
        asyncio.run(Platform(PlatformConfig(sip=False)).start())
