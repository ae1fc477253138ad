"""Consent freshness timers for one selected pair (RFC 7675).

Consent to send is granted by an authenticated Binding success response from the peer on
the pair (§5.1). A request is sent every ``interval`` seconds, randomized to
[0.8, 1.2] x interval so that agents do not synchronize; consent expires ``timeout`` seconds
(30 s) after the last response, and the sender MUST stop sending then (§5.1). An
authenticated error response revokes consent at once (§5.2, "explicit revocation").

::

    FRESH --(no response for disconnected_after)--> STALE --(no response for timeout)--> EXPIRED
      ^                                               |
      +------------------(response)-------------------+          (REVOKED on an error response)
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable

__all__ = ["ConsentFreshness", "ConsentState"]


class ConsentState(enum.Enum):
    FRESH = "fresh"
    STALE = "stale"
    EXPIRED = "expired"
    REVOKED = "revoked"


class ConsentFreshness:
    """When to send the next consent request, and whether consent still holds at ``now``."""

    __slots__ = ("_rng", "disconnected_after", "expires_at", "interval", "last_confirmed", "next_check_at", "state", "timeout")

    def __init__(
        self,
        now: float,
        *,
        interval: float = 5.0,
        timeout: float = 30.0,
        disconnected_after: float = 10.0,
        rng: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.interval = interval
        self.timeout = timeout
        self.disconnected_after = disconnected_after
        self._rng = rng
        self.last_confirmed = now
        self.expires_at = now + timeout
        self.state = ConsentState.FRESH
        self.next_check_at = now + self._jittered()

    def _jittered(self) -> float:
        r = int.from_bytes(self._rng(2), "big") / 65535.0
        return self.interval * (0.8 + 0.4 * r)

    def sent(self, now: float) -> None:
        """A consent request went out: schedule the next one."""
        self.next_check_at = now + self._jittered()

    def confirmed(self, now: float) -> None:
        """An authenticated success response arrived (RFC 7675 §5.1)."""
        if self.state in (ConsentState.EXPIRED, ConsentState.REVOKED):
            return
        self.last_confirmed = now
        self.expires_at = now + self.timeout
        self.state = ConsentState.FRESH

    def revoke(self) -> None:
        self.state = ConsentState.REVOKED

    def update(self, now: float) -> ConsentState:
        """Advance the state to ``now`` and return it."""
        if self.state in (ConsentState.EXPIRED, ConsentState.REVOKED):
            return self.state
        if now >= self.expires_at:
            self.state = ConsentState.EXPIRED
        elif now - self.last_confirmed >= self.disconnected_after:
            self.state = ConsentState.STALE
        return self.state

    @property
    def alive(self) -> bool:
        return self.state in (ConsentState.FRESH, ConsentState.STALE)

    def next_deadline(self) -> float | None:
        if not self.alive:
            return None
        times = [self.next_check_at, self.expires_at]
        if self.state is ConsentState.FRESH:
            times.append(self.last_confirmed + self.disconnected_after)
        return min(times)
