"""SIP events and publication, sans-IO: SUBSCRIBE/NOTIFY (RFC 6665) and PUBLISH (RFC 3903).

**Subscriber** (one subscription, the SUBSCRIBE's UAC). The dialog comes from the 2xx or,
when the first NOTIFY overtakes it, from that NOTIFY (§4.1.2.4). Each NOTIFY's
Subscription-State moves the machine; the subscription is refreshed before it expires and
ends when no NOTIFY follows a 2xx within Timer N (64*T1)::

                 2xx (wait for NOTIFY, Timer N)            NOTIFY active / pending
    SUBSCRIBING ──────────────────────────────▶ SUBSCRIBING ─────────────────────────▶ ACTIVE / PENDING
        │  3xx-6xx, Timer N                                     │  refresh_at: RefreshDue
        └──────────────────────────────┐                        │  NOTIFY terminated, expiry,
                                       ▼                        ▼  481 to a refresh
                                   TERMINATED ◀─────────────────┘

  A terminated subscription says whether to try again (§4.1.3): ``deactivated``/``timeout``
  at once, ``probation``/``giveup`` after Retry-After (or 30 s), the others never.

**Notifier** (the SUBSCRIBE's UAS): accepts with 200 and Expires (capped), answers refreshes
and unsubscribes, builds NOTIFYs with Subscription-State (``active;expires=`` the time left,
``terminated;reason=``) and reports expiry (then a last NOTIFY ``terminated;reason=timeout``).
A 481/408 to a NOTIFY ends the subscription (§4.2.2).

**Publisher** (RFC 3903 §4, the EPA): initial PUBLISH with body, then refreshes with
``SIP-If-Match`` and no body, modifications with a body, removal with ``Expires: 0``. A 412
means the entity-tag is gone: publish the full state again. 423 raises Expires to Min-Expires.

**PublicationStore** (RFC 3903 §6, the ESC side): entity-tags, expiry, conditional requests
(412 for an unknown tag), 423 below ``min_expires``, 489 without Event, 400 for an initial
PUBLISH without body.
"""

from __future__ import annotations

import enum
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from .dialog import Dialog, DialogError, DialogState, dialog_id_for_request
from .errors import LocalProtocolError, SipParseError
from .header_extra import Event, SubscriptionState, parse_event, parse_subscription_state
from .header_types import Params, parse_bounded_int
from .message import SipRequest, SipResponse, make_response
from .timers import SipTimers

__all__ = [
    "NO_RETRY_REASONS",
    "Notifier",
    "NotifyReceived",
    "PublicationStore",
    "Publisher",
    "RefreshDue",
    "SubState",
    "Subscriber",
    "SubscriptionEnded",
    "event_matches",
    "event_of",
]

log = logging.getLogger(__name__)

NO_RETRY_REASONS = frozenset({"rejected", "noresource", "invariant"})
"""RFC 6665 §4.1.3: after these a new subscription would fail the same way."""
RETRY_LATER_REASONS = frozenset({"probation", "giveup"})
DEFAULT_RETRY = 30


def event_of(message: SipRequest | SipResponse) -> Event | None:
    """The Event header (compact ``o``); malformed raises SipParseError."""
    value = message.headers.get("event")
    return parse_event(value) if value is not None else None


def event_matches(a: Event, b: Event) -> bool:
    """Same package (case-insensitive) and the same ``id`` parameter (RFC 6665 §8.2.1)."""
    return a.package.lower() == b.package.lower() and (a.id or None) == (b.id or None)


def _expires(message: SipRequest | SipResponse) -> int | None:
    try:
        return message.expires
    except SipParseError:
        return None


def _refresh_at(start: float, expires: int) -> float:
    """Refresh half-way for short subscriptions, else 32 s (Timer F) before expiry."""
    return start + max(expires * 0.5, expires - 32.0)


class SubState(enum.Enum):
    SUBSCRIBING = "subscribing"
    PENDING = "pending"
    ACTIVE = "active"
    TERMINATED = "terminated"


@dataclass(frozen=True, slots=True, kw_only=True)
class NotifyReceived:
    """A NOTIFY we accepted: the state it announced and its body."""

    state: SubState
    body: bytes
    content_type: str | None
    expires: int | None
    request: SipRequest


@dataclass(frozen=True, slots=True, kw_only=True)
class RefreshDue:
    """Time to send :meth:`Subscriber.refresh_request`."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriptionEnded:
    """The subscription is over. ``retry_after``: seconds before a new SUBSCRIBE makes sense
    (0: now), None when it would fail again (§4.1.3)."""

    reason: str | None
    retry_after: float | None
    status: int | None = None
    """The final response that ended it, when it was a response."""


SubscriberEvent = NotifyReceived | RefreshDue | SubscriptionEnded


def _retry_for(reason: str | None, retry_after: int | None) -> float | None:
    if reason in NO_RETRY_REASONS:
        return None
    if reason in RETRY_LATER_REASONS:
        return float(retry_after if retry_after is not None else DEFAULT_RETRY)
    return float(retry_after or 0)


class Subscriber:
    """The subscriber side of one subscription (see the module docstring)."""

    def __init__(self, request: SipRequest, *, now: float, timers: SipTimers = SipTimers()) -> None:  # noqa: B008
        if request.method != "SUBSCRIBE":
            raise LocalProtocolError("a Subscriber starts with a SUBSCRIBE")
        event = event_of(request)
        if event is None:
            raise LocalProtocolError("SUBSCRIBE needs an Event header (RFC 6665 §8.2.1)")
        self.request = request
        self.event = event
        self.timers = timers
        self.state = SubState.SUBSCRIBING
        self.dialog: Dialog | None = None
        self.expires_at: float | None = None
        self._refresh_at: float | None = None
        self._timer_n: float | None = None
        self._refreshing = False
        self.ended: SubscriptionEnded | None = None
        self.requested_expires = _expires(request) or 3600

    # -- identity -----------------------------------------------------------------------------------
    def matches_notify(self, notify: SipRequest) -> bool:
        """Is this NOTIFY for us: our dialog, or (before the dialog exists) our Call-ID and From tag,
        and the same Event (§4.1.2.4)."""
        try:
            event = event_of(notify)
            if event is None or not event_matches(event, self.event):
                return False
            if self.dialog is not None:
                return dialog_id_for_request(notify) == self.dialog.id
            return notify.call_id == self.request.call_id and notify.to.tag == self.request.from_.tag
        except SipParseError:
            return False

    # -- responses to our SUBSCRIBEs ---------------------------------------------------------------------
    def receive_response(self, response: SipResponse, now: float) -> list[SubscriberEvent]:
        code = response.status_code
        if code < 200:
            return []
        if self.state is SubState.TERMINATED:
            return []
        if code < 300:
            if self.dialog is None:
                try:
                    self.dialog = Dialog.from_uac(self.request, response)
                except (DialogError, LocalProtocolError, SipParseError):
                    return self._end(None, None, code)
            else:
                try:
                    self.dialog.update_from_response(response)
                except (LocalProtocolError, SipParseError):
                    pass
            granted = _expires(response)
            if granted is None:
                granted = self.requested_expires
            if granted == 0 and self._refreshing:
                return []  # our unsubscribe was accepted; the final NOTIFY ends it
            self._set_expiry(now, granted)
            if self.state is SubState.SUBSCRIBING:
                self._timer_n = now + 64 * self.timers.t1
            self._refreshing = False
            return []
        if code in (481, 408) or self.state is SubState.SUBSCRIBING or not self._refreshing:
            return self._end("rejected" if code not in (481, 408) else "timeout", None, code)
        self._refreshing = False
        return []  # a refresh failed otherwise: the subscription lives until it expires

    def _set_expiry(self, now: float, expires: int) -> None:
        self.expires_at = now + expires
        self._refresh_at = _refresh_at(now, expires) if expires > 0 else None

    # -- NOTIFY ---------------------------------------------------------------------------------------------
    def receive_notify(self, notify: SipRequest, now: float) -> tuple[int, list[SubscriberEvent]]:
        """The status to answer a matching NOTIFY with, and what happened."""
        try:
            event = event_of(notify)
            raw_state = notify.headers.get("subscription-state")
            state = parse_subscription_state(raw_state) if raw_state is not None else None
        except SipParseError:
            return 400, []
        if event is None or not event_matches(event, self.event):
            return 489, []
        if state is None:
            return 400, []  # §8.2.3: NOTIFY carries Subscription-State
        if self.state is SubState.TERMINATED:
            return 481, []
        if self.dialog is None:
            ok = make_response(notify, 200)
            try:
                self.dialog = Dialog.from_uas(notify, ok)
            except (DialogError, LocalProtocolError):
                return 400, []
            self.dialog.is_uac = True
            self.dialog.local_seq = self.request.cseq.seq
        else:
            try:
                self.dialog.receive_request(notify)
            except DialogError as exc:
                return exc.status_hint or 500, []
        self._timer_n = None
        ct = notify.content_type
        events: list[SubscriberEvent] = []
        if state.state == "terminated":
            events.append(NotifyReceived(state=SubState.TERMINATED, body=notify.body,
                                         content_type=ct.mime if ct else None, expires=None, request=notify))
            events += self._end(state.reason, state.retry_after, None)
            return 200, events
        new_state = SubState.ACTIVE if state.state == "active" else SubState.PENDING
        if new_state is not self.state:
            log.debug("subscription %s %s -> %s", self.event, self.state.value, new_state.value)
        self.state = new_state
        if state.expires is not None:
            self._set_expiry(now, state.expires)
        events.append(NotifyReceived(state=self.state, body=notify.body, content_type=ct.mime if ct else None,
                                     expires=state.expires, request=notify))
        return 200, events

    def _end(self, reason: str | None, retry_after: int | None, status: int | None) -> list[SubscriberEvent]:
        if self.state is SubState.TERMINATED and self.ended is not None:
            return []
        log.debug("subscription %s %s -> terminated (%s)", self.event, self.state.value, reason)
        self.state = SubState.TERMINATED
        if self.dialog is not None:
            self.dialog.terminate()
        self._refresh_at = self._timer_n = self.expires_at = None
        self.ended = SubscriptionEnded(reason=reason, retry_after=_retry_for(reason, retry_after), status=status)
        return [self.ended]

    # -- requests --------------------------------------------------------------------------------------------
    def refresh_request(self, expires: int | None = None) -> SipRequest:
        """An in-dialog SUBSCRIBE extending the subscription (``expires=0``: unsubscribe)."""
        if self.dialog is None or self.dialog.state is DialogState.TERMINATED:
            raise LocalProtocolError("no subscription dialog to refresh")
        value = self.requested_expires if expires is None else expires
        self._refreshing = True
        self._refresh_at = None
        return self.dialog.create_request("SUBSCRIBE", headers=[("Event", str(self.event)), ("Expires", str(value))])

    def unsubscribe_request(self) -> SipRequest:
        return self.refresh_request(0)

    # -- timers ----------------------------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        times = [t for t in (self._refresh_at, self._timer_n, self.expires_at) if t is not None]
        return min(times) if times else None

    def handle_timeout(self, now: float) -> list[SubscriberEvent]:
        if self.state is SubState.TERMINATED:
            return []
        if self._timer_n is not None and now >= self._timer_n:
            return self._end("timeout", None, None)  # §4.1.2.4 Timer N: no NOTIFY came
        if self.expires_at is not None and now >= self.expires_at:
            return self._end("timeout", None, None)
        if self._refresh_at is not None and now >= self._refresh_at:
            self._refresh_at = None
            return [RefreshDue()]
        return []


class Notifier:
    """The notifier side of one subscription (see the module docstring)."""

    def __init__(self, subscribe: SipRequest, *, max_expires: int = 3600, min_expires: int = 60,
                 rng: Callable[[int], bytes] = os.urandom) -> None:
        event = event_of(subscribe)
        if subscribe.method not in ("SUBSCRIBE", "REFER") or event is None:
            raise LocalProtocolError("a Notifier starts with a SUBSCRIBE carrying Event")
        self.subscribe = subscribe
        self.event = event
        self.max_expires = max_expires
        self.min_expires = min_expires
        self.rng = rng
        self.dialog: Dialog | None = None
        self.state = SubState.SUBSCRIBING
        self.expires_at: float | None = None
        self.reason: str | None = None

    def _granted(self, request: SipRequest) -> int:
        asked = _expires(request)
        return min(asked if asked is not None else self.max_expires, self.max_expires)

    def accept(self, now: float, *, contact: str, pending: bool = False) -> SipResponse:
        """200 to the SUBSCRIBE (or 423 when it asks for less than ``min_expires``); creates the dialog."""
        granted = self._granted(self.subscribe)
        if 0 < granted < self.min_expires:
            return make_response(self.subscribe, 423, rng=self.rng, headers=[("Min-Expires", str(self.min_expires))])
        resp = make_response(self.subscribe, 200, rng=self.rng, headers=[("Expires", str(granted)),
                                                                         ("Contact", contact)])
        self.dialog = Dialog.from_uas(self.subscribe, resp, rng=self.rng)
        self.dialog.local_target = contact
        self.state = SubState.PENDING if pending else SubState.ACTIVE
        self.expires_at = now + granted
        if granted == 0:
            self.state = SubState.TERMINATED  # a fetch: one NOTIFY, then over (§4.4.3)
            self.reason = "timeout"
        return resp

    def activate(self) -> None:
        """A pending subscription was authorised: the next NOTIFY says active."""
        if self.state is SubState.PENDING:
            self.state = SubState.ACTIVE

    def receive_subscribe(self, request: SipRequest, now: float) -> SipResponse:
        """A refresh or unsubscribe in the dialog; send a NOTIFY after it (§4.2.1.2)."""
        if self.dialog is None:
            raise LocalProtocolError("accept() first")
        try:
            self.dialog.receive_request(request)
            event = event_of(request)
        except DialogError as exc:
            return make_response(request, exc.status_hint or 500)
        except SipParseError:
            return make_response(request, 400)
        if event is None or not event_matches(event, self.event):
            return make_response(request, 489)
        if self.state is SubState.TERMINATED:
            return make_response(request, 481)
        granted = self._granted(request)
        if 0 < granted < self.min_expires:
            return make_response(request, 423, headers=[("Min-Expires", str(self.min_expires))])
        self.expires_at = now + granted
        if granted == 0:
            self.state = SubState.TERMINATED
            self.reason = "timeout"
        return make_response(request, 200, headers=[("Expires", str(granted))])

    def notify(self, now: float, body: bytes = b"", content_type: str | None = None, *,
               terminate: str | None = None, retry_after: int | None = None) -> SipRequest:
        """A NOTIFY with the current state; ``terminate=reason`` ends the subscription with it."""
        if self.dialog is None:
            raise LocalProtocolError("accept() first")
        if terminate is not None:
            self.state = SubState.TERMINATED
            self.reason = terminate
        if self.state is SubState.TERMINATED:
            params: Params = [("reason", self.reason or "noresource")]
            if retry_after is not None:
                params.append(("retry-after", str(retry_after)))
            ss = SubscriptionState("terminated", params)
        else:
            left = max(0, int((self.expires_at or now) - now))
            ss = SubscriptionState(self.state.value, [("expires", str(left))])
        req = self.dialog.create_request("NOTIFY", body=body, content_type=content_type,
                                         headers=[("Event", str(self.event)), ("Subscription-State", str(ss))])
        if self.state is SubState.TERMINATED:
            self.expires_at = None
        return req

    def receive_notify_response(self, response: SipResponse) -> bool:
        """Apply a response to our NOTIFY; True when it ended the subscription (481, 408, §4.2.2)."""
        if response.status_code in (481, 408) or (response.status_code >= 300 and response.status_code != 491):
            self.state = SubState.TERMINATED
            self.expires_at = None
            if self.dialog is not None:
                self.dialog.terminate()
            return True
        return False

    def next_deadline(self) -> float | None:
        return self.expires_at if self.state is not SubState.TERMINATED else None

    def handle_timeout(self, now: float) -> bool:
        """True when the subscription just expired: send ``notify(terminate="timeout")``."""
        if self.state is SubState.TERMINATED or self.expires_at is None or now < self.expires_at:
            return False
        self.state = SubState.TERMINATED
        self.reason = "timeout"
        return True


# -- PUBLISH (RFC 3903) ------------------------------------------------------------------------------------
class Publisher:
    """The EPA side of one publication: which headers and body the next PUBLISH carries."""

    def __init__(self, event: str, *, expires: int = 3600) -> None:
        self.event = parse_event(event)
        self.expires = expires
        self.etag: str | None = None
        self.body: bytes = b""
        self.content_type: str | None = None
        self.expires_at: float | None = None
        self._refresh_at: float | None = None
        self.removed = False

    def publish(self, body: bytes, content_type: str) -> tuple[list[tuple[str, str]], bytes, str | None]:
        """Headers, body, content type of a PUBLISH carrying new state (initial or modify)."""
        if not body:
            raise LocalProtocolError("a PUBLISH with new state needs a body (RFC 3903 §4.1)")
        self.body, self.content_type, self.removed = body, content_type, False
        return self._headers(self.expires), body, content_type

    def refresh(self) -> tuple[list[tuple[str, str]], bytes, str | None]:
        if self.etag is None:
            raise LocalProtocolError("nothing published yet")
        return self._headers(self.expires), b"", None

    def remove(self) -> tuple[list[tuple[str, str]], bytes, str | None]:
        if self.etag is None:
            raise LocalProtocolError("nothing published yet")
        self.removed = True
        return self._headers(0), b"", None

    def _headers(self, expires: int) -> list[tuple[str, str]]:
        out = [("Event", str(self.event)), ("Expires", str(expires))]
        if self.etag is not None:
            out.append(("SIP-If-Match", self.etag))
        return out

    def receive_response(self, response: SipResponse, now: float) -> str:
        """Apply a PUBLISH response; returns what to do: "ok", "republish" (412: send the full
        state again), "retry" (423: Expires raised), "removed" or "failed"."""
        code = response.status_code
        if 200 <= code < 300:
            if self.removed:
                self.etag, self.expires_at, self._refresh_at = None, None, None
                return "removed"
            etag = response.headers.get("sip-etag")
            if etag is None:
                return "failed"
            self.etag = etag.strip()
            granted = _expires(response)
            granted = self.expires if granted is None else granted
            self.expires_at = now + granted
            self._refresh_at = _refresh_at(now, granted)
            return "ok"
        if code == 412:
            self.etag = None  # the ESC forgot us: initial PUBLISH again (§4.1)
            return "republish" if self.body else "failed"
        if code == 423:
            try:
                min_exp = parse_bounded_int(response.headers.get("min-expires") or "", "min-expires")
            except SipParseError:
                return "failed"
            if min_exp <= self.expires:
                return "failed"
            self.expires = min_exp
            return "retry"
        return "failed"

    def next_deadline(self) -> float | None:
        return self._refresh_at

    def handle_timeout(self, now: float) -> bool:
        """True when a refresh PUBLISH is due."""
        if self._refresh_at is not None and now >= self._refresh_at:
            self._refresh_at = None
            return True
        return False


@dataclass(slots=True)
class Publication:
    etag: str
    body: bytes
    content_type: str | None
    expires_at: float


@dataclass(slots=True)
class PublicationStore:
    """An event state compositor's storage (RFC 3903 §6), by (resource, event package)."""

    events: frozenset[str] = frozenset({"presence", "dialog", "message-summary"})
    min_expires: int = 60
    max_expires: int = 3600
    rng: Callable[[int], bytes] = os.urandom
    _by_key: dict[tuple[str, str], dict[str, Publication]] = field(default_factory=dict)

    def receive_publish(self, request: SipRequest, now: float) -> SipResponse:
        """Process one PUBLISH (§6 steps 1-8) and return the response to send."""
        try:
            event = event_of(request)
            asked = _expires(request)
        except SipParseError:
            return make_response(request, 400, rng=self.rng)
        if event is None or event.package.lower() not in self.events:
            return make_response(request, 489, rng=self.rng,
                                 headers=[("Allow-Events", ", ".join(sorted(self.events)))])
        expires = min(self.max_expires if asked is None else asked, self.max_expires)
        if 0 < expires < self.min_expires:
            return make_response(request, 423, rng=self.rng, headers=[("Min-Expires", str(self.min_expires))])
        key = (_resource(request), event.package.lower())
        bucket = self._by_key.setdefault(key, {})
        self._expire(now)
        if_match = request.headers.get("sip-if-match")
        if if_match is not None:
            pub = bucket.pop(if_match.strip(), None)
            if pub is None:
                return make_response(request, 412, rng=self.rng)
            if expires == 0:
                return make_response(request, 200, rng=self.rng, headers=[("Expires", "0")])
            if request.body:
                ct = request.content_type
                pub.body, pub.content_type = request.body, ct.mime if ct else None
        else:
            if not request.body:
                return make_response(request, 400, "Initial PUBLISH without body", rng=self.rng)
            if expires == 0:
                return make_response(request, 400, "Expires 0 without SIP-If-Match", rng=self.rng)
            ct = request.content_type
            pub = Publication("", request.body, ct.mime if ct else None, 0.0)
        pub.etag = self.rng(8).hex()
        pub.expires_at = now + expires
        bucket[pub.etag] = pub
        return make_response(request, 200, rng=self.rng, headers=[("SIP-ETag", pub.etag), ("Expires", str(expires))])

    def state(self, resource: str, package: str, now: float) -> list[Publication]:
        """The live publications for a resource and event package."""
        self._expire(now)
        return list(self._by_key.get((resource, package.lower()), {}).values())

    def _expire(self, now: float) -> None:
        for bucket in self._by_key.values():
            for tag in [t for t, p in bucket.items() if p.expires_at <= now]:
                del bucket[tag]

    def next_deadline(self) -> float | None:
        times = [p.expires_at for b in self._by_key.values() for p in b.values()]
        return min(times) if times else None


def _resource(request: SipRequest) -> str:
    """The presentity a PUBLISH is about: its Request-URI without parameters."""
    text = request.uri_text
    return text.split(";", 1)[0].split("?", 1)[0]
