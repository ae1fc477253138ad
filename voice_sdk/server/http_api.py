"""The platform's HTTP API (aiohttp): access tokens and SIP credentials.

``POST /open/sdk/access-token``  (header ``X-User-API-Key``; JSON ``{user_uuid, label}``)
    -> ``{access_token, expires_at}``
``GET /sdk/voip/sip-credentials`` (header ``Authorization: Bearer <token>``)
    -> ``{sip_uri, username, password, realm, ws_url, udp, expires_at, ice_servers: [...]}``
``GET /health`` -> ``{status: "ok"}``

Errors are JSON ``{error: {code, message}}`` with 400 (bad body), 401 (bad key or token).
CORS: browsers on the origins in ``cors_origins`` (default any) may call the API directly; the
preflight for ``Authorization`` / ``X-User-API-Key`` headers is answered.
aiohttp is used because a correct, robust HTTP/1.1 server is not something to hand-write.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web

from .credentials import TokenIssuer, ephemeral_credentials

__all__ = ["HttpApi", "SipEndpointInfo"]


@dataclass(slots=True)
class SipEndpointInfo:
    """What the credentials endpoint tells clients about the SIP side."""

    domain: str
    ws_url: str
    udp: str | None = None
    tcp: str | None = None
    turn_urls: list[str] = field(default_factory=list)
    stun_urls: list[str] = field(default_factory=list)


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


class HttpApi:
    def __init__(self, issuer: TokenIssuer, api_keys: set[str], sip_secret: str, turn_secret: str,
                 sip: SipEndpointInfo, *, clock: Callable[[], float] = time.time,
                 credential_ttl: int = 3600, cors_origins: tuple[str, ...] = ("*",)) -> None:
        self.issuer = issuer
        self.api_keys = api_keys
        self.sip_secret = sip_secret
        self.turn_secret = turn_secret
        self.sip = sip
        self.clock = clock
        self.credential_ttl = credential_ttl
        self.cors_origins = cors_origins
        self.app = web.Application(client_max_size=64 * 1024, middlewares=[self._cors])
        self.app.router.add_route("OPTIONS", "/{tail:.*}", self.preflight)
        self.app.router.add_post("/open/sdk/access-token", self.access_token)
        self.app.router.add_get("/sdk/voip/sip-credentials", self.sip_credentials)
        self.app.router.add_get("/health", self.health)
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server: Any = site._server
        self.port = int(server.sockets[0].getsockname()[1])
        return self.port

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _allowed_origin(self, request: web.Request) -> str | None:
        origin = request.headers.get("Origin")
        if origin is None:
            return None
        if "*" in self.cors_origins:
            return "*"
        return origin if origin in self.cors_origins else None

    @web.middleware
    async def _cors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        response: web.StreamResponse = await handler(request)
        origin = self._allowed_origin(request)
        if origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
        return response

    async def preflight(self, request: web.Request) -> web.Response:
        origin = self._allowed_origin(request)
        if origin is None:
            return web.Response(status=403)
        return web.Response(status=204, headers={
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
            "Access-Control-Allow-Headers": "Authorization, X-User-API-Key, Content-Type",
            "Access-Control-Max-Age": "600",
            "Vary": "Origin",
        })

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def access_token(self, request: web.Request) -> web.Response:
        key = request.headers.get("X-User-API-Key", "")
        if not key or key not in self.api_keys:
            return _error(401, "invalid_api_key", "missing or unknown X-User-API-Key")
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
            return _error(400, "invalid_body", "body must be JSON {user_uuid, label}")
        if not isinstance(body, dict):
            return _error(400, "invalid_body", "body must be a JSON object")
        user = body.get("user_uuid")
        label = body.get("label")
        if not isinstance(user, str) or not user or len(user) > 128 or any(c in user for c in ":@ <>\"\r\n"):
            return _error(400, "invalid_user_uuid", "user_uuid must be a non-empty string without ':@<> '")
        if label is not None and (not isinstance(label, str) or len(label) > 256):
            return _error(400, "invalid_label", "label must be a string")
        token, exp = self.issuer.mint(user, label=label, now=self.clock())
        return web.json_response({"access_token": token, "expires_at": exp})

    async def sip_credentials(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return _error(401, "missing_token", "Authorization: Bearer <access token> required")
        try:
            claims = self.issuer.verify(token.strip(), now=self.clock())
        except jwt.ExpiredSignatureError:
            return _error(401, "token_expired", "access token expired")
        except jwt.PyJWTError as exc:
            return _error(401, "invalid_token", f"invalid access token: {exc}")
        user = str(claims["sub"])
        now = self.clock()
        sip = ephemeral_credentials(self.sip_secret, user, now=now, ttl=self.credential_ttl)
        turn = ephemeral_credentials(self.turn_secret, user, now=now, ttl=self.credential_ttl)
        ice: list[dict[str, Any]] = []
        if self.sip.stun_urls:
            ice.append({"urls": self.sip.stun_urls})
        if self.sip.turn_urls:
            ice.append({"urls": self.sip.turn_urls, "username": turn.username, "credential": turn.password})
        return web.json_response({
            "sip_uri": f"sip:{user}@{self.sip.domain}",
            "username": sip.username,
            "password": sip.password,
            "realm": self.sip.domain,
            "ws_url": self.sip.ws_url,
            "udp": self.sip.udp,
            "tcp": self.sip.tcp,
            "expires_at": sip.expires_at,
            "ice_servers": ice,
            "label": claims.get("label"),
        })
