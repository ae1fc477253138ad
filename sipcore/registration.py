"""REGISTER client, sans-IO (RFC 3261 §10.2, RFC 5626 outbound essentials, RFC 3608 Service-Route).

One :class:`RegistrationClient` keeps one binding (our Contact) alive at a registrar. Same
shape as every protocol object here: inputs change state, outputs are drained.

* inputs: :meth:`~RegistrationClient.register`, :meth:`~RegistrationClient.unregister`,
  :meth:`~RegistrationClient.receive_response` (every response to a REGISTER we sent, including
  the 408/503 the transaction layer synthesises on timeout or transport error, RFC 3261 §8.1.3.1),
  :meth:`~RegistrationClient.handle_timeout`;
* outputs: :meth:`~RegistrationClient.requests_to_send` (REGISTER requests without Via: hand
  each to ``SipStack.send_request``, which adds Via and a fresh branch),
  :meth:`~RegistrationClient.events` (:class:`Registered`, :class:`RegistrationFailed`,
  :class:`Unregistered`), :meth:`~RegistrationClient.next_deadline`.

Call-ID and From tag stay the same for the client's lifetime and CSeq grows by one per request,
so the registrar can order refreshes (§10.2.4). Only one REGISTER is outstanding at a time
(§10.2: a new one waits for the final response); a register/unregister asked for meanwhile is
sent when that response arrives.

State machine::

                          401/407: again with credentials (bounded)
                          423: again with Min-Expires
                               ┌─────┐
                register()     ▼     │      2xx, our binding granted
      IDLE ───────────────▶ REGISTERING ─────────────────────────▶ REGISTERED
                             │     ▲   ▲                               │
          3xx-6xx, timeout,  │     │   └──── refresh_at reached ───────┘
          auth failure,      ▼     │ retry_at reached (Retry-After or backoff), or register()
          no binding        FAILED ┘
                     (with retry_at None only register() leaves FAILED)

      any state ── unregister() ──▶ UNREGISTERING ── final response ──▶ IDLE
                                    (401/407 answered first)          event Unregistered(status)

Refresh timing: a binding granted ``expires`` seconds at the time ``t`` the REGISTER was built
is refreshed at ``t + max(expires * min_refresh_ratio, expires - refresh_margin)``. With the
defaults (ratio 0.5, margin 32 s) a 600 s binding is refreshed after 568 s: the refresh
transaction ends, even by timing out (Timer F = 64*T1 = 32 s), by the time the binding expires.
Bindings of 64 s or less are refreshed at half-life.

Failures: Retry-After (any status) is honoured as given. 408, 480, 500, 503, 504 without it are
transient and retried after the RFC 5626 §4.5 backoff, ``min(1800, 30 * 2**failures)`` seconds
scaled by a random factor in [0.5, 1]. Other 3xx-6xx and authentication failures wait for the
application (``retry_after=None``): retrying a wrong password would only lock the account.
"""

from __future__ import annotations

import enum
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .auth import AuthenticationFailed, DigestClient
from .errors import LocalProtocolError, SipParseError
from .header_types import NameAddr, parse_bounded_int, parse_retry_after
from .headers import Headers
from .message import SipRequest, SipResponse, random_tag
from .uri import SipUri, Uri, parse_uri

__all__ = [
    "Registered",
    "RegistrationClient",
    "RegistrationEvent",
    "RegistrationFailed",
    "RegistrationPolicy",
    "RegistrationState",
    "Unregistered",
    "keepalive_interval",
]

log = logging.getLogger(__name__)

TRANSIENT_STATUS = frozenset({408, 480, 500, 503, 504})
"""Failures retried with backoff even without Retry-After (timeouts, overload, flow failure)."""


class RegistrationState(enum.Enum):
    IDLE = "idle"
    REGISTERING = "registering"
    REGISTERED = "registered"
    FAILED = "failed"
    UNREGISTERING = "unregistering"


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistrationPolicy:
    """Timing and retry limits of a :class:`RegistrationClient`."""

    refresh_margin: float = 32.0
    """Refresh this long before expiry (default: Timer F, so a timed-out refresh still fits)."""
    min_refresh_ratio: float = 0.5
    """Never refresh earlier than this fraction of the granted time."""
    max_auth_attempts: int = 3
    """Challenges answered per registration attempt (a stale nonce costs one)."""
    max_interval_retries: int = 2
    """423 Interval Too Brief answers followed per attempt."""
    backoff_base: float = 30.0
    """RFC 5626 §4.5 base-time (all flows failed)."""
    backoff_max: float = 1800.0
    """RFC 5626 §4.5 max-time."""

    def __post_init__(self) -> None:
        if self.refresh_margin < 0 or not 0.0 < self.min_refresh_ratio <= 1.0:
            raise LocalProtocolError("refresh_margin must be >= 0 and min_refresh_ratio in (0, 1]")
        if self.max_auth_attempts < 0 or self.max_interval_retries < 0:
            raise LocalProtocolError("retry limits must be >= 0")
        if not 0 < self.backoff_base <= self.backoff_max:
            raise LocalProtocolError("need 0 < backoff_base <= backoff_max")


@dataclass(frozen=True, slots=True, kw_only=True)
class Registered:
    """The registrar accepted the binding for ``expires`` seconds; a refresh is due at ``refresh_at``."""

    expires: int
    refresh_at: float
    contacts: tuple[str, ...]
    """Every binding of the AOR the registrar listed (ours and other devices'), as written."""
    outbound: bool = False
    """The registrar answered ``Require: outbound`` (RFC 5626 §4.2.1): keep the flow alive."""
    flow_timer: int | None = None
    """RFC 5626 §4.4.1 Flow-Timer: the registrar's keepalive interval, in seconds."""
    service_route: tuple[str, ...] = ()
    """RFC 3608 Service-Route: pre-load it as Route in requests we originate."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistrationFailed:
    """A REGISTER failed with ``status``. ``retry_after``: seconds until the client retries by
    itself (Retry-After or backoff), None when it waits for :meth:`RegistrationClient.register`."""

    status: int
    reason: str
    retry_after: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Unregistered:
    """The de-REGISTER got its final response: 2xx = binding removed; other = the registrar refused
    (the binding then lapses at its expiry)."""

    status: int
    reason: str


RegistrationEvent = Registered | RegistrationFailed | Unregistered


@dataclass(slots=True)
class _Attempt:
    """The REGISTER in flight and what its retries have used up."""

    request: SipRequest
    unregister: bool
    all_bindings: bool
    expires: int
    sent_at: float
    auth_attempts: int = 0
    interval_retries: int = 0


def keepalive_interval(
    flow_timer: int | None, *, reliable: bool, rng: Callable[[int], bytes] = os.urandom
) -> float:
    """Seconds until the next keepalive on the registration flow (RFC 5626 §4.4.1).

    A random value between 80 % and 100 % of the Flow-Timer the registrar sent; without one, of
    120 s on connection-oriented transports (CRLF keepalives) or 25 s on UDP (STUN keepalives,
    inside common NAT binding lifetimes).
    """
    base = float(flow_timer) if flow_timer is not None and flow_timer > 0 else (120.0 if reliable else 25.0)
    return base * (0.8 + 0.2 * _fraction(rng))


def _fraction(rng: Callable[[int], bytes]) -> float:
    return int.from_bytes(rng(2), "big") / 0xFFFF


def _instance_urn(instance_id: str) -> str:
    inner = instance_id.strip().strip('"').strip()
    if inner.startswith("<") and inner.endswith(">"):
        inner = inner[1:-1]
    if not inner or any(c in inner for c in '<>"\r\n '):
        raise LocalProtocolError(f"bad +sip.instance value {instance_id!r}")
    return inner


class RegistrationClient:
    """Keeps ``contact_uri`` registered for ``aor`` at ``registrar_uri`` (RFC 3261 §10.2).

    ``credentials`` is ``(username, password)`` for digest challenges. ``instance_id``
    (``urn:uuid:...``) and ``reg_id`` turn on RFC 5626 outbound (``+sip.instance``, ``reg-id``,
    ``Supported: outbound``). ``route`` pre-loads Route values (an outbound proxy, ``<sip:p;lr>``).
    """

    def __init__(
        self,
        aor: str,
        registrar_uri: str,
        contact_uri: str,
        *,
        expires: int = 600,
        rng: Callable[[int], bytes] = os.urandom,
        credentials: tuple[str, str] | None = None,
        instance_id: str | None = None,
        reg_id: int | None = None,
        user_agent: str | None = None,
        route: Iterable[str] = (),
        extra_headers: Iterable[tuple[str, str]] = (),
        policy: RegistrationPolicy | None = None,
        call_id: str | None = None,
    ) -> None:
        self.aor = parse_uri(aor)
        self.registrar_uri = parse_uri(registrar_uri)
        self.contact_uri = parse_uri(contact_uri)
        if expires < 1:
            raise LocalProtocolError("expires must be positive (use unregister() to remove the binding)")
        if reg_id is not None and (instance_id is None or not 1 <= reg_id <= 2**31 - 1):
            raise LocalProtocolError("reg-id needs +sip.instance and a value in 1..2**31-1 (RFC 5626 §4.2)")
        self.instance = _instance_urn(instance_id) if instance_id is not None else None
        self.reg_id = reg_id
        self.user_agent = user_agent
        self.route = list(route)
        self.extra_headers = list(extra_headers)
        self.policy = policy or RegistrationPolicy()
        self.requested_expires = expires
        self._rng = rng
        self._digest = DigestClient(*credentials, rng=rng) if credentials is not None else None
        self.call_id = call_id or f"{random_tag(rng, 12)}@{_host_of(self.contact_uri)}"
        self.from_tag = random_tag(rng)
        self._cseq = 0
        self._expires = expires
        self.state = RegistrationState.IDLE
        self._attempt: _Attempt | None = None
        self._deferred: tuple[bool, bool] | None = None  # (unregister, all_bindings) asked while busy
        self._outbox: list[SipRequest] = []
        self._events: list[RegistrationEvent] = []
        self._refresh_at: float | None = None
        self._retry_at: float | None = None
        self.expires_at: float | None = None
        """When the current binding lapses (None when not registered)."""
        self._failures = 0

    def __repr__(self) -> str:
        return f"<RegistrationClient {self.aor} {self.state.name}>"

    # -- outputs --------------------------------------------------------------------------------
    def requests_to_send(self) -> list[SipRequest]:
        """REGISTER requests to send now, oldest first (without Via: the stack adds it)."""
        out, self._outbox = self._outbox, []
        return out

    def events(self) -> list[RegistrationEvent]:
        out, self._events = self._events, []
        return out

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timeout` has work: a refresh or a retry (None while a REGISTER is out)."""
        if self._attempt is not None:
            return None
        if self.state is RegistrationState.REGISTERED:
            return self._refresh_at
        if self.state is RegistrationState.FAILED:
            return self._retry_at
        return None

    def is_registered(self, now: float) -> bool:
        return self.expires_at is not None and now < self.expires_at

    # -- inputs ---------------------------------------------------------------------------------
    def register(self, now: float) -> None:
        """Register (or refresh) now; if a REGISTER is outstanding, right after its final response."""
        if self._attempt is not None:
            self._deferred = (False, False)
            return
        self._send(now, unregister=False, all_bindings=False)

    def unregister(self, now: float, *, all_bindings: bool = False) -> None:
        """Remove our binding (``Contact: ...;expires=0``), or every binding of the AOR
        (``Contact: *``, §10.2.2). Refreshes and retries stop."""
        self._refresh_at = self._retry_at = None
        if self._attempt is not None:
            self._deferred = (True, all_bindings)
            return
        self._send(now, unregister=True, all_bindings=all_bindings)

    def handle_timeout(self, now: float) -> bool:
        """Send the refresh or retry that is due; True when a REGISTER was queued."""
        deadline = self.next_deadline()
        if deadline is None or now < deadline:
            return False
        self._send(now, unregister=False, all_bindings=False)
        return True

    def receive_response(self, response: SipResponse, now: float) -> None:
        """Feed a response to our REGISTER; responses to older requests are ignored."""
        attempt = self._attempt
        try:
            ours = (attempt is not None and response.call_id == self.call_id
                    and response.cseq.seq == self._cseq and response.cseq.method == "REGISTER")
        except SipParseError:
            return
        if not ours or response.status_code < 200 or attempt is None:
            return
        code = response.status_code
        if code in (401, 407) and self._answer_challenge(attempt, response, now):
            return
        if code == 423 and not attempt.unregister and self._retry_interval(attempt, response, now):
            return
        self._attempt = None
        if attempt.unregister:
            self._finish_unregister(response)
        elif 200 <= code < 300:
            self._registered(attempt, response)
        elif code in (401, 407):
            cause = "no credentials configured" if self._digest is None else "too many challenges"
            self._failed(response, now, auth_cause=cause)
        else:
            self._failed(response, now, auth_cause=None)
        self._run_deferred(now)

    # -- internals ------------------------------------------------------------------------------
    def _set_state(self, state: RegistrationState) -> None:
        if state is not self.state:
            log.debug("registration %s %s -> %s", self.aor, self.state.name, state.name)
            self.state = state

    def _contact_value(self, expires: int, all_bindings: bool) -> str:
        if all_bindings:
            return "*"
        out = f"<{self.contact_uri}>"
        if self.instance is not None:
            out += f';+sip.instance="<{self.instance}>"'
        if self.reg_id is not None:
            out += f";reg-id={self.reg_id}"
        return out + f";expires={expires}"

    def _build(self, expires: int, all_bindings: bool) -> SipRequest:
        if self._cseq >= 2**31 - 1:
            raise LocalProtocolError("CSeq space exhausted; create a new RegistrationClient")
        self._cseq += 1
        h = Headers()
        h.add("Max-Forwards", "70")
        for r in self.route:
            h.add("Route", r)
        h.add("To", f"<{self.aor}>")
        h.add("From", f"<{self.aor}>;tag={self.from_tag}")
        h.add("Call-ID", self.call_id)
        h.add("CSeq", f"{self._cseq} REGISTER")
        h.add("Contact", self._contact_value(expires, all_bindings))
        h.add("Expires", str(expires))
        if self.reg_id is not None:
            h.add("Supported", "outbound")
        if self.user_agent:
            h.add("User-Agent", self.user_agent)
        for name, value in self.extra_headers:
            h.add(name, value)
        return SipRequest("REGISTER", str(self.registrar_uri), h)

    def _send(self, now: float, *, unregister: bool, all_bindings: bool) -> None:
        expires = 0 if unregister else self._expires
        request = self._build(expires, all_bindings)
        if self._digest is not None:
            # reuse the nonce we hold (RFC 3261 §22.1): saves the 401 round trip on refreshes
            for name, value in self._digest.reuse_credentials("REGISTER", request.uri_text):
                request.headers.add(name, value)
        self._attempt = _Attempt(request, unregister, all_bindings, expires, now)
        self._refresh_at = self._retry_at = None
        self._set_state(RegistrationState.UNREGISTERING if unregister else RegistrationState.REGISTERING)
        self._outbox.append(request)

    def _resend(self, attempt: _Attempt, credentials: list[tuple[str, str]], now: float) -> None:
        request = self._build(attempt.expires, attempt.all_bindings)
        for name, value in credentials:
            request.headers.add(name, value)
        attempt.request = request
        attempt.sent_at = now
        self._outbox.append(request)

    def _answer_challenge(self, attempt: _Attempt, response: SipResponse, now: float) -> bool:
        if self._digest is None or attempt.auth_attempts >= self.policy.max_auth_attempts:
            return False
        try:
            credentials = self._digest.credentials_for(attempt.request, response)
        except AuthenticationFailed as exc:
            self._attempt = None
            if attempt.unregister:
                self._finish_unregister(response)
            else:
                self._failed(response, now, auth_cause=exc.cause)
            self._run_deferred(now)
            return True
        attempt.auth_attempts += 1
        self._resend(attempt, credentials, now)
        return True

    def _retry_interval(self, attempt: _Attempt, response: SipResponse, now: float) -> bool:
        value = response.headers.get("min-expires")
        try:
            minimum = parse_bounded_int(value, "min-expires") if value is not None else None
        except SipParseError:
            minimum = None
        if minimum is None or minimum <= attempt.expires or attempt.interval_retries >= self.policy.max_interval_retries:
            return False
        attempt.interval_retries += 1
        attempt.expires = self._expires = minimum
        self._resend(attempt, self._digest.reuse_credentials("REGISTER", str(self.registrar_uri))
                     if self._digest is not None else [], now)
        return True

    def _registered(self, attempt: _Attempt, response: SipResponse) -> None:
        granted, contacts = self._granted(response, attempt.expires)
        if granted <= 0:
            self._failed(response, attempt.sent_at, auth_cause=None, reason="registrar kept no binding")
            return
        p = self.policy
        refresh_at = attempt.sent_at + max(granted * p.min_refresh_ratio, granted - p.refresh_margin)
        self._refresh_at = refresh_at
        self.expires_at = attempt.sent_at + granted
        self._failures = 0
        self._set_state(RegistrationState.REGISTERED)
        require = {t.lower() for t in _safe_tokens(response, "require")}
        flow_timer: int | None = None
        ft = response.headers.get("flow-timer")
        if ft is not None:
            try:
                flow_timer = parse_bounded_int(ft, "flow-timer")
            except SipParseError:
                flow_timer = None
        self._events.append(Registered(
            expires=granted, refresh_at=refresh_at, contacts=contacts, outbound="outbound" in require,
            flow_timer=flow_timer, service_route=tuple(response.headers.values("service-route")),
        ))

    def _granted(self, response: SipResponse, requested: int) -> tuple[int, tuple[str, ...]]:
        """Our binding's lifetime per §10.2.4: its Contact's expires, else Expires, else what we asked."""
        try:
            contacts = response.contacts
        except SipParseError:
            contacts = []
        mine = next((c for c in contacts if self._is_our_contact(c)), None)
        granted = _expires_param(mine) if mine is not None else None
        if granted is not None:
            return granted, tuple(str(c) for c in contacts)
        try:
            header = response.expires
        except SipParseError:
            header = None
        return (header if header is not None else requested), tuple(str(c) for c in contacts)

    def _is_our_contact(self, contact: NameAddr) -> bool:
        if contact.star or contact.uri is None:
            return False
        inst = contact.param("+sip.instance")
        if self.instance is not None and inst is not None:
            # RFC 5626: the registrar may rewrite the URI; instance and reg-id identify the binding
            try:
                same = _instance_urn(inst).lower() == self.instance.lower()
            except LocalProtocolError:
                return False
            reg_id = contact.param("reg-id")
            return same and (self.reg_id is None or reg_id is None or reg_id == str(self.reg_id))
        return _same_uri(contact.uri, self.contact_uri)

    def _failed(self, response: SipResponse, now: float, *, auth_cause: str | None, reason: str | None = None) -> None:
        code = response.status_code
        retry: float | None = None
        if auth_cause is None:
            retry = _retry_after(response)
            if retry is None and (code in TRANSIENT_STATUS or reason is not None):
                self._failures += 1
                p = self.policy
                wait = min(p.backoff_max, p.backoff_base * 2 ** min(self._failures, 32))
                retry = wait * (0.5 + 0.5 * _fraction(self._rng))
        self._retry_at = now + retry if retry is not None else None
        self._refresh_at = None
        self._set_state(RegistrationState.FAILED)
        text = reason or auth_cause or response.reason
        self._events.append(RegistrationFailed(status=code, reason=text, retry_after=retry))

    def _finish_unregister(self, response: SipResponse) -> None:
        self.expires_at = None
        self._refresh_at = self._retry_at = None
        self._set_state(RegistrationState.IDLE)
        self._events.append(Unregistered(status=response.status_code, reason=response.reason))

    def _run_deferred(self, now: float) -> None:
        if self._deferred is None or self._attempt is not None:
            return
        unregister, all_bindings = self._deferred
        self._deferred = None
        self._send(now, unregister=unregister, all_bindings=all_bindings)


def _expires_param(contact: NameAddr) -> int | None:
    value = contact.param("expires")
    if value is None:
        return None
    try:
        return parse_bounded_int(value, "contact")
    except SipParseError:
        return None


def _same_uri(a: Uri, b: Uri) -> bool:
    if isinstance(a, SipUri) and isinstance(b, SipUri):
        return a == b
    return str(a) == str(b)


def _host_of(uri: Uri) -> str:
    return uri.host if isinstance(uri, SipUri) else "invalid"


def _retry_after(response: SipResponse) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds, _ = parse_retry_after(value)
    except SipParseError:
        return None
    return float(seconds)


def _safe_tokens(response: SipResponse, name: str) -> list[str]:
    try:
        return response.tokens(name)
    except SipParseError:
        return []
