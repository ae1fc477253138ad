"""JWT access tokens: decode and check, expiry scheduling (pyjwt).

The SDK never trusts a token blindly: ``alg=none`` is refused, ``exp`` is required, and the
signature is verified when the verification key is known (the embedded platform's key, or
one given in DeviceOptions). Without a key the claims are read unverified only for
scheduling (the server still verifies), as browser SDKs do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jwt

from .errors import ErrorCode, VoiceSDKError

__all__ = ["AccessToken", "decode_token"]


@dataclass(frozen=True, slots=True)
class AccessToken:
    raw: str
    identity: str
    """The ``sub`` (user) claim."""
    expires_at: float
    """POSIX seconds (``exp``)."""
    label: str | None = None
    claims: dict[str, Any] = field(default_factory=dict)

    def expired(self, now: float) -> bool:
        return now >= self.expires_at


def decode_token(raw: str, *, key: str | bytes | None = None, algorithms: tuple[str, ...] = ("HS256", "ES256"),
                 now: float | None = None) -> AccessToken:
    """Decode ``raw``; raise VoiceSDKError(AUTH_ERROR or TOKEN_EXPIRED)."""
    try:
        header = jwt.get_unverified_header(raw)
    except jwt.PyJWTError as exc:
        raise VoiceSDKError(ErrorCode.AUTH_ERROR, f"malformed access token: {exc}", exc) from exc
    if str(header.get("alg", "")).lower() == "none":
        raise VoiceSDKError(ErrorCode.AUTH_ERROR, "unsigned access token (alg=none) refused")
    try:
        if key is not None:
            claims = jwt.decode(raw, key, algorithms=list(algorithms), options={"require": ["exp", "sub"],
                                                                                "verify_exp": False})
        else:
            claims = jwt.decode(raw, options={"verify_signature": False, "require": ["exp", "sub"]},
                                algorithms=list(algorithms))
    except jwt.PyJWTError as exc:
        raise VoiceSDKError(ErrorCode.AUTH_ERROR, f"invalid access token: {exc}", exc) from exc
    token = AccessToken(raw=raw, identity=str(claims["sub"]), expires_at=float(claims["exp"]),
                        label=claims.get("label"), claims=dict(claims))
    if now is not None and token.expired(now):
        raise VoiceSDKError(ErrorCode.TOKEN_EXPIRED, f"access token for {token.identity} expired")
    return token
