"""Session timers, sans-IO (RFC 4028).

A session that nobody refreshes dies: one side (the *refresher*) re-sends a re-INVITE or
UPDATE every half interval; the other side sends BYE when no refresh came in time. Each
INVITE/UPDATE transaction in the dialog renegotiates the interval and the refresher:

* the UAC of the transaction offers ``Supported: timer``, optionally ``Session-Expires:
  N[;refresher=uac|uas]`` and ``Min-SE`` (§7.1);
* a UAS that finds N below its Min-SE answers **422** with its ``Min-SE`` (§8.1); the UAC
  retries with N raised to it (§7.4, :meth:`SessionTimer.on_422`);
* the 2xx carries ``Session-Expires: N;refresher=...`` (and ``Require: timer`` when the UAC
  supports timers, §9); ``uac``/``uas`` name roles in *that* transaction, not in the dialog.

:class:`SessionTimer` keeps one dialog's state; the driver asks :meth:`next_deadline` and
calls :meth:`handle_timeout`, which returns REFRESH (send a re-INVITE/UPDATE now) or EXPIRED
(send BYE now, §10)::

                    2xx with Session-Expires: N (either direction, either role)
       INACTIVE ─────────────────────────────────────────────────▶ ACTIVE(N, we refresh?)
                                                                    │   ▲
     we refresh:   at last + N/2 ─▶ REFRESH  (refresh 2xx: restart) ─┘   │
     peer refreshes: at last + N - min(32, N/3) ─▶ EXPIRED (send BYE)    │
                    any INVITE/UPDATE 2xx in the dialog ─────────────────┘

Min-SE is at least 90 s (§4); Session-Expires below it is refused. Times are seconds, ``now``
is given by the caller.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .errors import LocalProtocolError, SipParseError
from .header_extra import SessionExpires, parse_session_expires
from .header_types import parse_bounded_int
from .message import SipRequest, SipResponse

__all__ = [
    "MIN_SE_FLOOR",
    "SessionTimer",
    "SessionTimerAction",
    "SessionTimerConfig",
    "min_se_of",
    "session_expires_of",
    "supports_timer",
]

MIN_SE_FLOOR = 90
"""RFC 4028 §4: Min-SE and Session-Expires are never below 90 seconds."""


@dataclass(frozen=True, slots=True)
class SessionTimerConfig:
    """What this UA asks for and accepts."""

    session_expires: int | None = None
    """Interval requested in INVITEs/UPDATEs we send (None: support timers, request none; a
    UAS then runs the timer only when the peer asks for one)."""
    min_se: int = MIN_SE_FLOOR
    """The smallest interval we accept (§5); requests below it get 422."""
    prefer_refresher: str = "uac"
    """Who refreshes when we are the UAS and the UAC left it open: "uac" or "uas"."""
    scale: float = 1.0
    """Local seconds per negotiated second. The wire always carries RFC values (>= 90 s);
    tests shrink the local clock instead (0.01: a 90 s session refreshes after 0.45 s)."""

    def __post_init__(self) -> None:
        if self.min_se < MIN_SE_FLOOR:
            raise LocalProtocolError(f"Min-SE must be at least {MIN_SE_FLOOR} s (RFC 4028 §4)")
        if self.session_expires is not None and self.session_expires < self.min_se:
            raise LocalProtocolError("Session-Expires below our own Min-SE")
        if self.prefer_refresher not in ("uac", "uas"):
            raise LocalProtocolError("prefer_refresher is 'uac' or 'uas'")
        if not self.scale > 0:
            raise LocalProtocolError("scale must be positive")


def supports_timer(message: SipRequest | SipResponse) -> bool:
    """``timer`` in Supported or Require."""
    try:
        tags = message.tokens("supported") + message.tokens("require")
    except SipParseError:
        return False
    return "timer" in (t.lower() for t in tags)


def session_expires_of(message: SipRequest | SipResponse) -> SessionExpires | None:
    """Session-Expires (compact form ``x``); malformed raises SipParseError (status hint 400)."""
    value = message.headers.get("session-expires")
    return parse_session_expires(value) if value is not None else None


def min_se_of(message: SipRequest | SipResponse) -> int | None:
    value = message.headers.get("min-se")
    return parse_bounded_int(value.partition(";")[0], "min-se") if value is not None else None


class SessionTimerAction(enum.Enum):
    NONE = "none"
    REFRESH = "refresh"
    EXPIRED = "expired"


class SessionTimer:
    """One dialog's session timer (see the module docstring)."""

    def __init__(self, config: SessionTimerConfig | None = None) -> None:
        self.config = config or SessionTimerConfig()
        self.interval: int | None = None
        """The negotiated Session-Expires (None: no timer running)."""
        self.we_refresh = False
        self.min_se = self.config.min_se
        """The Min-SE we put in requests: ours, raised by any 422 (§7.4)."""
        self._requested = self.config.session_expires
        self._last: float | None = None
        self._refresh_due = False

    @property
    def active(self) -> bool:
        return self.interval is not None

    # -- as UAC of an INVITE/UPDATE --------------------------------------------------------------------
    def request_headers(self) -> list[tuple[str, str]]:
        """Headers for an INVITE or UPDATE we send (initial or refresh, §7.1, §7.4)."""
        out = [("Supported", "timer")]
        interval = self.interval or self._requested
        if interval is not None:
            value = SessionExpires(interval, ("uac" if self.we_refresh else "uas") if self.active else None)
            out.append(("Session-Expires", str(value)))
        if interval is not None or self.min_se > MIN_SE_FLOOR:
            out.append(("Min-SE", str(self.min_se)))
        return out

    def on_422(self, response: SipResponse) -> bool:
        """A 422 to our request: raise the interval to its Min-SE; True when a retry makes sense."""
        try:
            peer_min = min_se_of(response)
        except SipParseError:
            return False
        if peer_min is None:
            return False
        current = self.interval or self._requested or 0
        if peer_min <= current:
            return False
        self.min_se = max(self.min_se, peer_min)
        self._requested = peer_min
        if self.interval is not None:
            self.interval = peer_min
        return True

    def on_2xx(self, request: SipRequest, response: SipResponse, now: float) -> None:
        """The 2xx to an INVITE/UPDATE we sent: adopt what the UAS chose (§7.2)."""
        try:
            se = session_expires_of(response)
        except SipParseError:
            se = None
        if se is not None and se.seconds >= MIN_SE_FLOOR:
            self._start(se.seconds, (se.refresher or "uac") == "uac", now)
            return
        try:
            asked = session_expires_of(request)
        except SipParseError:
            asked = None
        if asked is not None and asked.seconds >= MIN_SE_FLOOR and not supports_timer(response):
            # §7.2: the UAS does not do timers; we may still keep the session alive ourselves
            self._start(asked.seconds, True, now)
            return
        self.interval = None
        self._last = None

    # -- as UAS of an INVITE/UPDATE --------------------------------------------------------------------
    def check_request(self, request: SipRequest) -> tuple[int, list[tuple[str, str]]] | None:
        """(422, [Min-SE]) when the request asks for less than our Min-SE (§8.1); (400, []) if malformed."""
        try:
            se = session_expires_of(request)
        except SipParseError:
            return 400, []
        if se is not None and se.seconds < self.config.min_se:
            return 422, [("Min-SE", str(self.config.min_se))]
        return None

    def response_headers(self, request: SipRequest, now: float) -> list[tuple[str, str]]:
        """Headers for our 2xx to an INVITE/UPDATE; starts (or restarts) the timer (§9)."""
        try:
            se = session_expires_of(request)
            peer_min = min_se_of(request) or MIN_SE_FLOOR
        except SipParseError:
            se, peer_min = None, MIN_SE_FLOOR
        uac_supports = supports_timer(request)
        if se is not None:
            interval = max(se.seconds, self.config.min_se)
            refresher = se.refresher or (self.config.prefer_refresher if uac_supports else "uas")
        elif self.interval is not None or self.config.session_expires is not None:
            interval = max(self.interval or self.config.session_expires or 0, peer_min, self.config.min_se)
            refresher = self.config.prefer_refresher if uac_supports else "uas"
        else:
            self.interval = None
            self._last = None
            return [("Supported", "timer")]
        if not uac_supports:
            refresher = "uas"  # §9: a UAC without timer support cannot refresh
        self._start(interval, refresher == "uas", now)
        out = [("Supported", "timer"), ("Session-Expires", str(SessionExpires(interval, refresher)))]
        if uac_supports:
            out.append(("Require", "timer"))
        return out

    # -- timing -------------------------------------------------------------------------------------------
    def _start(self, interval: int, we_refresh: bool, now: float) -> None:
        self.interval = interval
        self.we_refresh = we_refresh
        self._last = now
        self._refresh_due = False

    def next_deadline(self) -> float | None:
        if self.interval is None or self._last is None:
            return None
        scale = self.config.scale
        if self.we_refresh and not self._refresh_due:
            return self._last + scale * self.interval / 2
        return self._last + scale * (self.interval - min(32.0, self.interval / 3))

    def handle_timeout(self, now: float) -> SessionTimerAction:
        deadline = self.next_deadline()
        if deadline is None or now < deadline:
            return SessionTimerAction.NONE
        if self.we_refresh and not self._refresh_due:
            self._refresh_due = True  # until the refresh succeeds, the expiry deadline stands
            return SessionTimerAction.REFRESH
        self.interval = None
        self._last = None
        return SessionTimerAction.EXPIRED

    def stop(self) -> None:
        self.interval = None
        self._last = None
