"""Access tokens and time-limited SIP/TURN credentials (the platform's security core, no I/O).

Tokens: JWT (HS256 with a shared secret, or ES256 with a P-256 key), at most 60 minutes,
claims ``sub`` (user uuid), ``label``, ``iat``, ``exp``, ``iss``.

SIP and TURN passwords use the ephemeral-credential scheme understood by Kamailio's
``auth_ephemeral`` module and coturn's ``use-auth-secret`` (draft-uberti-behave-turn-rest):

    username = "<expiry unix time>:<user>"
    password = base64(HMAC-SHA1(shared_secret, username))

so one token service can front the embedded platform and a production Kamailio + coturn.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

import jwt

__all__ = ["EphemeralCredentials", "TokenIssuer", "ephemeral_credentials", "verify_ephemeral"]

MAX_TOKEN_TTL = 3600


@dataclass(frozen=True, slots=True)
class EphemeralCredentials:
    username: str
    password: str
    expires_at: int


def ephemeral_credentials(secret: str | bytes, user: str, *, now: float, ttl: int = 3600) -> EphemeralCredentials:
    expires = int(now) + ttl
    username = f"{expires}:{user}"
    key = secret.encode() if isinstance(secret, str) else secret
    password = base64.b64encode(hmac.new(key, username.encode(), hashlib.sha1).digest()).decode()
    return EphemeralCredentials(username, password, expires)


def verify_ephemeral(secret: str | bytes, username: str, *, now: float) -> str | None:
    """The password for ``username`` if it is a well-formed, unexpired ephemeral name, else None."""
    expiry, sep, _user = username.partition(":")
    if not sep or not expiry.isdigit() or int(expiry) < now:
        return None
    key = secret.encode() if isinstance(secret, str) else secret
    return base64.b64encode(hmac.new(key, username.encode(), hashlib.sha1).digest()).decode()


class TokenIssuer:
    """Mints and verifies access tokens."""

    def __init__(self, key: str | bytes, *, algorithm: str = "HS256", issuer: str = "pyvoice-platform",
                 ttl: int = MAX_TOKEN_TTL, public_key: str | bytes | None = None) -> None:
        if algorithm not in ("HS256", "ES256"):
            raise ValueError("token algorithm must be HS256 or ES256")
        self.key = key
        self.public_key = public_key if public_key is not None else key
        self.algorithm = algorithm
        self.issuer = issuer
        self.ttl = min(ttl, MAX_TOKEN_TTL)

    def mint(self, user: str, *, label: str | None, now: float, ttl: int | None = None) -> tuple[str, int]:
        exp = int(now) + min(ttl if ttl is not None else self.ttl, MAX_TOKEN_TTL)
        claims = {"sub": user, "iat": int(now), "exp": exp, "iss": self.issuer}
        if label is not None:
            claims["label"] = label
        return jwt.encode(claims, self.key, algorithm=self.algorithm), exp

    def verify(self, token: str, *, now: float) -> dict[str, object]:
        """Claims of a valid token; raises ``jwt.PyJWTError`` otherwise (expired included)."""
        claims: dict[str, object] = jwt.decode(
            token, self.public_key, algorithms=[self.algorithm], issuer=self.issuer,
            options={"require": ["exp", "sub", "iat"], "verify_exp": False})
        exp = claims["exp"]
        if not isinstance(exp, int) or exp <= now:
            raise jwt.ExpiredSignatureError("token expired")
        return claims
