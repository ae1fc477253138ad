"""The token/credentials API answers browsers' CORS preflights and tags responses."""

from __future__ import annotations

import asyncio

import aiohttp

from voice_sdk.server.credentials import TokenIssuer
from voice_sdk.server.http_api import HttpApi, SipEndpointInfo


def test_preflight_and_allow_origin() -> None:
    async def run() -> None:
        api = HttpApi(TokenIssuer("k" * 32), {"key"}, "s", "t", SipEndpointInfo("d", "ws://x"),
                      cors_origins=("https://app.example",))
        port = await api.start("127.0.0.1", 0)
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as http:
                async with http.options(f"{base}/sdk/voip/sip-credentials", headers={
                        "Origin": "https://app.example", "Access-Control-Request-Method": "GET",
                        "Access-Control-Request-Headers": "authorization"}) as r:
                    assert r.status == 204
                    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example"
                    assert "Authorization" in r.headers["Access-Control-Allow-Headers"]
                async with http.options(f"{base}/sdk/voip/sip-credentials",
                                        headers={"Origin": "https://evil.example"}) as r:
                    assert r.status == 403
                async with http.post(f"{base}/open/sdk/access-token", json={"user_uuid": "u"},
                                     headers={"X-User-API-Key": "key", "Origin": "https://app.example"}) as r:
                    assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == "https://app.example"
        finally:
            await api.close()

    asyncio.run(asyncio.wait_for(run(), 20))
