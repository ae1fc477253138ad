"""HTTP Digest authentication for SIP, client and server (RFC 3261 §22, RFC 7616, RFC 2617, RFC 8760).

The arithmetic (RFC 7616 §3.4.1-§3.4.3, RFC 2617 §3.2.2)::

    H(x)      = hex digest of x with the challenge's algorithm (MD5, SHA-256, SHA-512-256)
    A1        = username ":" realm ":" password
              | H(username ":" realm ":" password) ":" nonce ":" cnonce      (<algorithm>-sess)
    A2        = method ":" digest-uri                                        (qop=auth, no qop)
              | method ":" digest-uri ":" H(body)                            (qop=auth-int)
    response  = H(H(A1) ":" nonce ":" nc ":" cnonce ":" qop ":" H(A2))        (qop present)
              | H(H(A1) ":" nonce ":" H(A2))                                 (RFC 2069 compatibility)

:class:`DigestClient` answers 401/407 responses. It reads every WWW-Authenticate (401) or
Proxy-Authenticate (407) challenge, groups them by realm and answers each realm once with the
strongest algorithm it supports (RFC 8760 §2.4 allows a server to offer one challenge per
algorithm for the same realm). ``nc`` counts per nonce and the cnonce is drawn from the
injected rng once per nonce, so an ``-sess`` session key stays the same while a nonce is reused
(RFC 2617 §3.2.2.2). A challenge is given up on, with :class:`AuthenticationFailed`, when:

* it carries the very nonce the rejected request used (the server turned the same nonce down
  twice; retrying would loop),
* it is not ``stale=true`` although the rejected request answered a fresh challenge for that
  realm (RFC 7616 §3.3: without ``stale`` the username or password is wrong),
* no challenge uses a scheme, algorithm and qop this client supports.

A request that reused a cached nonce (``nc`` above 1, see :meth:`DigestClient.reuse_credentials`)
may be re-challenged without ``stale`` once: some servers forget nonces early.

:class:`DigestServer` is stateless about nonces: a nonce is ``base64url(issue-time || random ||
HMAC-SHA-256(secret, realm || issue-time || random)[:16])``, so any server holding the secret can
check it and read its age without a table. Only replay protection keeps state: the highest ``nc``
seen per nonce, in a bounded table. A nonce that is too old, was not issued with this secret, or
repeats an ``nc`` yields ``stale=True`` when the digest itself is right, so a legitimate client
retries without asking its user again (RFC 2617 §3.2.1). Digest comparisons use
:func:`hmac.compare_digest`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from .errors import LocalProtocolError, SipError, SipParseError
from .grammar import split_list
from .header_extra import AuthChallenge, parse_auth
from .message import SipRequest, SipResponse, make_response
from .uri import SipUri, parse_uri

__all__ = [
    "ALGORITHMS",
    "AuthResult",
    "AuthenticationFailed",
    "DigestClient",
    "DigestServer",
    "compute_ha1",
    "digest_response",
]

RNG = Callable[[int], bytes]

# RFC 7616 §6.1 "Hash Algorithms for HTTP Digest Authentication" registry; RFC 8760 §2.1 for SIP.
ALGORITHMS: dict[str, str] = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}
"""Base algorithm name (upper case) -> :mod:`hashlib` name. Each also exists as ``<name>-sess``."""

DEFAULT_CLIENT_ALGORITHMS: tuple[str, ...] = (
    "SHA-512-256", "SHA-512-256-sess", "SHA-256", "SHA-256-sess", "MD5", "MD5-sess",
)
"""What a :class:`DigestClient` accepts by default, most preferred (strongest) first."""

_CHALLENGE_HEADER = {401: "WWW-Authenticate", 407: "Proxy-Authenticate"}
_CREDENTIALS_HEADER = {401: "Authorization", 407: "Proxy-Authorization"}
_QOPS = ("auth", "auth-int")
_NONCE_TS_LEN = 8
_NONCE_RAND_LEN = 8
_NONCE_MAC_LEN = 16
_NONCE_LEN = _NONCE_TS_LEN + _NONCE_RAND_LEN + _NONCE_MAC_LEN


def _sha512_256_fallback(data: bytes) -> str:
    # hashlib exposes SHA-512/256 only when OpenSSL does; cryptography always has it.
    from cryptography.hazmat.primitives import hashes

    h = hashes.Hash(hashes.SHA512_256())
    h.update(data)
    return h.finalize().hex()


try:
    hashlib.new("sha512_256")
    _HAVE_SHA512_256 = True
except ValueError:  # pragma: no cover - depends on the OpenSSL build
    _HAVE_SHA512_256 = False


def _split_algorithm(algorithm: str) -> tuple[str, bool]:
    """``"sha-256-SESS"`` -> ``("SHA-256", True)``; LocalProtocolError for an unknown algorithm."""
    up = algorithm.upper()
    sess = up.endswith("-SESS")
    base = up[:-5] if sess else up
    if base not in ALGORITHMS:
        raise LocalProtocolError(f"unsupported digest algorithm {algorithm!r}")
    return base, sess


def _h(base: str, data: str | bytes) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    name = ALGORITHMS[base]
    if name == "sha512_256" and not _HAVE_SHA512_256:  # pragma: no cover - depends on OpenSSL
        return _sha512_256_fallback(data)
    return hashlib.new(name, data).hexdigest()


def compute_ha1(algorithm: str, username: str, realm: str, password: str) -> str:
    """``H(username:realm:password)`` with the base hash of ``algorithm`` (what a registrar stores).

    For ``-sess`` algorithms this is the inner hash; :func:`digest_response` adds nonce and cnonce.
    """
    base, _ = _split_algorithm(algorithm)
    return _h(base, f"{username}:{realm}:{password}")


def digest_response(
    algorithm: str,
    ha1: str,
    method: str,
    uri: str,
    nonce: str,
    *,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The ``response`` value (RFC 7616 §3.4.1) from the stored ``ha1`` (see :func:`compute_ha1`)."""
    base, sess = _split_algorithm(algorithm)
    if sess:
        if cnonce is None:
            raise LocalProtocolError(f"{algorithm} needs a cnonce")
        ha1 = _h(base, f"{ha1}:{nonce}:{cnonce}")
    if qop is None:
        ha2 = _h(base, f"{method}:{uri}")
        return _h(base, f"{ha1}:{nonce}:{ha2}")
    if qop == "auth":
        ha2 = _h(base, f"{method}:{uri}")
    elif qop == "auth-int":
        ha2 = _h(base, f"{method}:{uri}:{_h(base, body)}")
    else:
        raise LocalProtocolError(f"unsupported qop {qop!r}")
    if nc is None or cnonce is None:
        raise LocalProtocolError("qop needs nc and cnonce")
    return _h(base, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


class AuthenticationFailed(SipError):
    """Credentials cannot succeed for ``realm``: ``cause`` says why (wrong password, loop, ...).

    ``status`` is the challenge's status code (401 or 407).
    """

    def __init__(self, realm: str | None, cause: str, status: int = 401) -> None:
        where = f"realm {realm!r}" if realm is not None else "no realm"
        super().__init__(f"authentication failed for {where}: {cause}")
        self.realm = realm
        self.cause = cause
        self.status = status


# -- client ---------------------------------------------------------------------------------------
@dataclass(slots=True)
class _NonceUse:
    """What the client remembers about one nonce it answered."""

    realm: str
    header: str
    algorithm: str  # upper case, for the arithmetic
    algorithm_param: str | None  # as the challenge spelled it; echoed only when it was sent
    qop: str | None
    opaque: str | None
    cnonce: str
    nc: int = 0


def _parse_all(msg: SipRequest | SipResponse, header: str) -> list[AuthChallenge]:
    """Every parsable challenge/credentials value of ``header``; malformed ones are skipped so
    that one bad header next to a usable one does not block authentication."""
    out = []
    for value in msg.headers.get_all(header):
        try:
            out.append(parse_auth(value, header=header.lower()))
        except SipParseError:
            continue
    return out


class DigestClient:
    """Answers digest challenges for one username/password (RFC 3261 §22.2, §22.3).

    ``algorithms`` lists what the client accepts, most preferred first (default: strongest
    first). ``realms`` restricts which realms are answered (``None``: any). With
    ``prefer_auth_int`` the client picks ``qop=auth-int`` when both are offered; by default it
    picks ``auth``, because proxies and B2BUAs may legitimately rewrite bodies.
    """

    def __init__(
        self,
        username: str,
        password: str,
        *,
        rng: RNG = os.urandom,
        algorithms: Sequence[str] = DEFAULT_CLIENT_ALGORITHMS,
        realms: Collection[str] | None = None,
        prefer_auth_int: bool = False,
        max_cached_nonces: int = 16,
    ) -> None:
        for alg in algorithms:
            _split_algorithm(alg)
        self.username = username
        self._password = password
        self._rng = rng
        self._prefs = [a.upper() for a in algorithms]
        self._realms = frozenset(realms) if realms is not None else None
        self._prefer_auth_int = prefer_auth_int
        self._max_nonces = max(1, max_cached_nonces)
        self._nonces: dict[str, _NonceUse] = {}
        self._current: dict[tuple[str, str], str] = {}  # (header, realm) -> nonce to reuse

    def __repr__(self) -> str:
        return f"<DigestClient {self.username!r} realms={sorted(self._realms) if self._realms else 'any'}>"

    # -- choosing a challenge ---------------------------------------------------------------
    def _rank(self, ch: AuthChallenge) -> int | None:
        alg = (ch.get("algorithm") or "MD5").upper()
        try:
            return self._prefs.index(alg)
        except ValueError:
            return None

    def _pick_qop(self, ch: AuthChallenge) -> tuple[bool, str | None]:
        """(usable, qop) for a challenge: qop None means RFC 2069 mode."""
        offered = ch.get("qop")
        if offered is None:
            return True, None
        opts = [q.strip().lower() for q in split_list(offered)]
        if self._prefer_auth_int and "auth-int" in opts:
            return True, "auth-int"
        for q in _QOPS:
            if q in opts:
                return True, q
        return False, None

    def _select(self, challenges: list[AuthChallenge], status: int) -> dict[str, AuthChallenge]:
        """Best supported challenge per realm, realms in order of first appearance."""
        best: dict[str, tuple[int, AuthChallenge]] = {}
        seen_realm: str | None = None
        for ch in challenges:
            if ch.scheme.lower() != "digest":
                continue
            realm, nonce = ch.get("realm"), ch.get("nonce")
            if realm is None or nonce is None:
                continue
            seen_realm = realm
            if self._realms is not None and realm not in self._realms:
                continue
            rank = self._rank(ch)
            if rank is None or not self._pick_qop(ch)[0]:
                continue
            if realm not in best or rank < best[realm][0]:
                best[realm] = (rank, ch)
        if not best:
            raise AuthenticationFailed(seen_realm, "no supported digest challenge", status)
        return {realm: ch for realm, (_, ch) in best.items()}

    # -- loop detection -------------------------------------------------------------------------
    def _check_retry(self, realm: str, ch: AuthChallenge, previous: list[AuthChallenge], status: int) -> None:
        used = [c for c in previous if c.scheme.lower() == "digest" and c.get("realm") == realm]
        if not used:
            return  # a fresh challenge: the request carried no credentials for this realm
        new_nonce = ch.get("nonce")
        stale = (ch.get("stale") or "").lower() == "true"
        for cred in used:
            old_nonce = cred.get("nonce")
            if old_nonce == new_nonce:
                raise AuthenticationFailed(realm, "the server rejected the same nonce twice", status)
            if stale:
                continue
            state = self._nonces.get(old_nonce or "")
            reused = (state.nc if state is not None else _parse_nc(cred.get("nc"))) > 1
            if not reused:
                raise AuthenticationFailed(realm, "credentials rejected (wrong username or password)", status)

    # -- building credentials -------------------------------------------------------------------
    def _remember(self, nonce: str, use: _NonceUse) -> None:
        self._nonces.pop(nonce, None)
        self._nonces[nonce] = use
        while len(self._nonces) > self._max_nonces:
            old = next(iter(self._nonces))
            del self._nonces[old]
            for key, value in list(self._current.items()):
                if value == old:
                    del self._current[key]

    def _credentials(self, nonce: str, use: _NonceUse, method: str, uri: str, body: bytes) -> str:
        use.nc += 1
        if use.nc > 0xFFFFFFFF:
            raise AuthenticationFailed(use.realm, "nonce count exhausted")
        nc = f"{use.nc:08x}"
        ha1 = compute_ha1(use.algorithm, self.username, use.realm, self._password)
        with_cnonce = use.qop is not None or use.algorithm.endswith("-SESS")
        response = digest_response(
            use.algorithm, ha1, method, uri, nonce, qop=use.qop, nc=nc if use.qop else None,
            cnonce=use.cnonce if with_cnonce else None, body=body,
        )
        params: list[tuple[str, str]] = [
            ("username", self.username), ("realm", use.realm), ("nonce", nonce), ("uri", uri),
            ("response", response),
        ]
        if use.algorithm_param is not None:
            params.append(("algorithm", use.algorithm_param))
        if with_cnonce:
            params.append(("cnonce", use.cnonce))
        if use.opaque is not None:
            params.append(("opaque", use.opaque))
        if use.qop is not None:
            params.append(("qop", use.qop))
            params.append(("nc", nc))
        return str(AuthChallenge("Digest", params))

    def credentials_for(self, request: SipRequest, response: SipResponse) -> list[tuple[str, str]]:
        """(header name, value) pairs answering every realm challenged in ``response``.

        ``request`` is the request ``response`` rejected: its method, Request-URI and body enter
        the digest, and its existing credentials tell a stale nonce from a wrong password.
        Raises :class:`AuthenticationFailed` when retrying cannot help.
        """
        status = response.status_code
        if status not in _CHALLENGE_HEADER:
            raise LocalProtocolError(f"{status} is not an authentication challenge (401/407)")
        cred_header = _CREDENTIALS_HEADER[status]
        selected = self._select(_parse_all(response, _CHALLENGE_HEADER[status]), status)
        previous = _parse_all(request, cred_header)
        out: list[tuple[str, str]] = []
        for realm, ch in selected.items():
            self._check_retry(realm, ch, previous, status)
            nonce = ch.get("nonce") or ""
            alg_param = ch.get("algorithm")
            algorithm = (alg_param or "MD5").upper()
            use = _NonceUse(
                realm=realm, header=cred_header, algorithm=algorithm, algorithm_param=alg_param,
                qop=self._pick_qop(ch)[1], opaque=ch.get("opaque"), cnonce=self._rng(8).hex(),
            )
            self._remember(nonce, use)
            self._current[(cred_header, realm)] = nonce
            out.append((cred_header, self._credentials(nonce, use, request.method, request.uri_text, request.body)))
        return out

    def authorize(self, request: SipRequest, response: SipResponse) -> SipRequest:
        """A copy of ``request`` to send again as a new transaction (RFC 3261 §22.2, §8.1.3.5).

        The copy has CSeq + 1 (same method), credentials for each challenged realm (credentials
        for other realms are kept) and no top Via: the one our transport layer added belongs to
        the old transaction, and :meth:`SipStack.send_request` adds a fresh one.
        """
        pairs = self.credentials_for(request, response)
        new = request.copy()
        h = new.headers
        realms = {_realm_of(v) for _, v in pairs}
        for name in ("Authorization", "Proxy-Authorization"):
            keep = [v for v in h.get_all(name) if _realm_of(v) not in realms]
            if h.remove(name):
                for v in keep:
                    h.add(name, v)
        for name, value in pairs:
            h.add(name, value)
        cseq = request.cseq
        if cseq.seq >= 0xFFFFFFFF:
            raise LocalProtocolError("CSeq would overflow")
        h.set("CSeq", f"{cseq.seq + 1} {cseq.method}")
        h.remove_first("via")
        return new

    def reuse_credentials(self, method: str, uri: str, *, body: bytes = b"") -> list[tuple[str, str]]:
        """Credentials for a new request from the nonces already answered, ``nc`` incremented.

        RFC 3261 §22.1 lets a UAC reuse credentials within a realm; a registration refresh
        saves the 401 round trip this way. A server that finds the nonce too old answers
        ``stale=true`` and :meth:`credentials_for` retries transparently.
        """
        out: list[tuple[str, str]] = []
        for (header, _realm), nonce in self._current.items():
            use = self._nonces.get(nonce)
            if use is None:
                continue
            out.append((header, self._credentials(nonce, use, method, uri, body)))
        return out

    def forget(self) -> None:
        """Drop every cached nonce (after a password change, say)."""
        self._nonces.clear()
        self._current.clear()


def _realm_of(value: str) -> str | None:
    try:
        return parse_auth(value).get("realm")
    except SipParseError:
        return None


def _parse_nc(value: str | None) -> int:
    if value is None or len(value) != 8:
        return 0
    try:
        return int(value, 16)
    except ValueError:
        return 0


# -- server ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class AuthResult:
    """Outcome of :meth:`DigestServer.verify`.

    ``stale`` means the digest was right but the nonce was not acceptable (expired, unknown or
    replayed): challenge again with ``stale=true`` and the client retries on its own.
    ``reason`` is for logs; never send it to the peer.
    """

    ok: bool
    username: str | None = None
    stale: bool = False
    reason: str = ""


PasswordLookup = Callable[[str], str | None]
HA1Lookup = Callable[[str, str], str | None]
"""``(username, base algorithm) -> H(username:realm:password)`` hex, or None for an unknown user."""


class DigestServer:
    """Issues challenges and verifies credentials for one realm (UAS or proxy side).

    ``algorithms`` are offered in order, one challenge each (RFC 8760 §2.3: most preferred
    first). ``qop`` is ``"auth"``, ``"auth-int"``, ``"auth,auth-int"`` or ``None`` for RFC 2069
    compatibility (then every nonce is single-use, since there is no ``nc``). ``proxy=True``
    uses 407 with Proxy-Authenticate / Proxy-Authorization. ``secret`` lets several servers
    share nonces; by default a fresh one is drawn from ``rng``.
    """

    def __init__(
        self,
        realm: str,
        *,
        rng: RNG = os.urandom,
        nonce_ttl: float = 300.0,
        algorithms: Sequence[str] = ("SHA-256", "MD5"),
        qop: str | None = "auth",
        proxy: bool = False,
        secret: bytes | None = None,
        opaque: str | None = None,
        max_tracked_nonces: int = 4096,
    ) -> None:
        if not algorithms:
            raise LocalProtocolError("at least one algorithm is needed")
        self.algorithms = tuple(_canonical_algorithm(a) for a in algorithms)
        self._algorithms_upper = frozenset(a.upper() for a in self.algorithms)
        self._qops: tuple[str, ...] = ()
        if qop is not None:
            self._qops = tuple(q.strip().lower() for q in qop.split(",") if q.strip())
            if not self._qops or any(q not in _QOPS for q in self._qops):
                raise LocalProtocolError(f"unsupported qop {qop!r}")
        self.realm = realm
        self.nonce_ttl = nonce_ttl
        self.proxy = proxy
        self.opaque = opaque
        self._rng = rng
        self._secret = secret if secret is not None else rng(32)
        self._max_tracked = max(1, max_tracked_nonces)
        self._nc_seen: dict[str, tuple[int, float]] = {}  # nonce -> (highest nc, issue time)
        self._floor = float("-inf")  # nonces issued at or before this are treated as stale

    @property
    def status_code(self) -> int:
        return 407 if self.proxy else 401

    @property
    def challenge_header(self) -> str:
        return _CHALLENGE_HEADER[self.status_code]

    @property
    def credentials_header(self) -> str:
        return _CREDENTIALS_HEADER[self.status_code]

    # -- nonces ---------------------------------------------------------------------------------
    def _mac(self, body: bytes) -> bytes:
        msg = self.realm.encode("utf-8", "surrogateescape") + b"\x00" + body
        return hmac.new(self._secret, msg, hashlib.sha256).digest()[:_NONCE_MAC_LEN]

    def make_nonce(self, now: float) -> str:
        ts = int(now * 1000).to_bytes(_NONCE_TS_LEN, "big", signed=True)
        body = ts + self._rng(_NONCE_RAND_LEN)
        return base64.urlsafe_b64encode(body + self._mac(body)).rstrip(b"=").decode("ascii")

    def _nonce_time(self, nonce: str) -> float | None:
        """Issue time of a nonce this server (secret) made, else None."""
        if len(nonce) != 43 or not nonce.isascii():
            return None
        try:
            raw = base64.urlsafe_b64decode(nonce + "=")
        except (binascii.Error, ValueError):
            return None
        if len(raw) != _NONCE_LEN:
            return None
        body, mac = raw[: _NONCE_TS_LEN + _NONCE_RAND_LEN], raw[_NONCE_TS_LEN + _NONCE_RAND_LEN :]
        if not hmac.compare_digest(mac, self._mac(body)):
            return None
        return int.from_bytes(body[:_NONCE_TS_LEN], "big", signed=True) / 1000.0

    # -- challenges -----------------------------------------------------------------------------
    def challenge(self, now: float, stale: bool = False) -> list[tuple[str, str]]:
        """(header name, value) pairs: one challenge per algorithm, preferred first."""
        nonce = self.make_nonce(now)
        out = []
        for alg in self.algorithms:
            params: list[tuple[str, str]] = [("realm", self.realm), ("nonce", nonce), ("algorithm", alg)]
            if self._qops:
                params.append(("qop", ",".join(self._qops)))
            if self.opaque is not None:
                params.append(("opaque", self.opaque))
            if stale:
                params.append(("stale", "true"))
            out.append((self.challenge_header, str(AuthChallenge("Digest", params))))
        return out

    def challenge_response(
        self, request: SipRequest, now: float, *, stale: bool = False, to_tag: str | None = None
    ) -> SipResponse:
        """A 401 (407 for a proxy) to ``request`` carrying fresh challenges."""
        return make_response(request, self.status_code, to_tag=to_tag, headers=self.challenge(now, stale))

    # -- verification ---------------------------------------------------------------------------
    def verify(
        self,
        request: SipRequest,
        now: float,
        lookup_password: PasswordLookup | None = None,
        *,
        lookup_ha1: HA1Lookup | None = None,
    ) -> AuthResult:
        """Check the request's credentials for this realm.

        Give exactly one of ``lookup_password(username)`` or ``lookup_ha1(username, algorithm)``
        (the base algorithm: ``"MD5"``, ``"SHA-256"`` or ``"SHA-512-256"``). On success the
        nonce's ``nc`` is recorded, so the same request replayed is refused.
        """
        if (lookup_password is None) == (lookup_ha1 is None):
            raise LocalProtocolError("give exactly one of lookup_password and lookup_ha1")
        creds: AuthChallenge | None = None
        malformed = False
        for value in request.headers.get_all(self.credentials_header):
            try:
                c = parse_auth(value, header=self.credentials_header.lower())
            except SipParseError:
                malformed = True
                continue
            if c.scheme.lower() == "digest" and c.get("realm") == self.realm:
                creds = c
                break
        if creds is None:
            return AuthResult(ok=False, reason="malformed credentials" if malformed else "no credentials")
        fields: dict[str, str] = {}
        for name in ("username", "nonce", "uri", "response"):
            v = creds.get(name)
            if v is None:
                return AuthResult(ok=False, reason=f"credentials without {name}")
            fields[name] = v
        username = fields["username"]
        algorithm = (creds.get("algorithm") or "MD5").upper()
        if algorithm not in self._algorithms_upper:
            return AuthResult(ok=False, username=username, reason=f"algorithm {algorithm} not offered")
        qop, nc, cnonce = creds.get("qop"), creds.get("nc"), creds.get("cnonce")
        if self._qops:
            if qop is None or qop.lower() not in self._qops:
                return AuthResult(ok=False, username=username, reason=f"qop {qop!r} not offered")
            qop = qop.lower()
            if cnonce is None or nc is None or len(nc) != 8 or _parse_nc(nc) == 0:
                return AuthResult(ok=False, username=username, reason="bad nc or cnonce")
        elif qop is not None:
            return AuthResult(ok=False, username=username, reason="qop sent but none offered")
        if algorithm.endswith("-SESS") and cnonce is None:
            return AuthResult(ok=False, username=username, reason="-sess algorithm without cnonce")
        if self.opaque is not None and creds.get("opaque") != self.opaque:
            return AuthResult(ok=False, username=username, reason="opaque mismatch")
        if not _same_uri(fields["uri"], request.uri_text):
            return AuthResult(ok=False, username=username, reason="digest-uri does not match the Request-URI")

        base, _ = _split_algorithm(algorithm)
        ha1: str | None = None
        if lookup_password is not None:
            password = lookup_password(username)
            ha1 = None if password is None else compute_ha1(base, username, self.realm, password)
        elif lookup_ha1 is not None:
            ha1 = lookup_ha1(username, base)
        known = ha1 is not None
        if ha1 is None:
            ha1 = _h(base, self._rng(16).hex())  # same work for unknown users (no timing oracle)
        expected = digest_response(
            algorithm, ha1, request.method, fields["uri"], fields["nonce"],
            qop=qop, nc=nc if qop else None, cnonce=cnonce, body=request.body,
        )
        good = hmac.compare_digest(expected.encode("ascii"), fields["response"].lower().encode("ascii", "replace"))
        if not known:
            return AuthResult(ok=False, username=username, reason="unknown user")
        if not good:
            return AuthResult(ok=False, username=username, reason="wrong digest response")

        nonce = fields["nonce"]
        issued = self._nonce_time(nonce)
        if issued is None:
            return AuthResult(ok=False, username=username, stale=True, reason="nonce not issued by this server")
        if now - issued > self.nonce_ttl or issued > now + 1.0 or issued <= self._floor:
            return AuthResult(ok=False, username=username, stale=True, reason="nonce expired")
        count = _parse_nc(nc) if qop else 0
        seen = self._nc_seen.get(nonce)
        if seen is not None and count <= seen[0]:
            return AuthResult(ok=False, username=username, stale=True, reason="replayed nonce count")
        self._record(nonce, count, issued, now)
        return AuthResult(ok=True, username=username)

    def _record(self, nonce: str, count: int, issued: float, now: float) -> None:
        table = self._nc_seen
        table.pop(nonce, None)
        table[nonce] = (count, issued)
        if len(table) <= self._max_tracked:
            return
        for key, (_, t) in list(table.items()):
            if now - t > self.nonce_ttl:
                del table[key]
        while len(table) > self._max_tracked:
            key = next(iter(table))
            _, t = table.pop(key)
            # a live nonce leaves the table: refuse it and older ones from now on (as stale)
            self._floor = max(self._floor, t)


def _canonical_algorithm(name: str) -> str:
    """RFC 7616 §6.1 spelling: ``SHA-256``, ``SHA-256-sess``."""
    base, sess = _split_algorithm(name)
    return base + ("-sess" if sess else "")


def _same_uri(digest_uri: str, request_uri: str) -> bool:
    if digest_uri == request_uri:
        return True
    try:
        a, b = parse_uri(digest_uri), parse_uri(request_uri)
    except SipParseError:
        return False
    return isinstance(a, SipUri) and isinstance(b, SipUri) and a == b

