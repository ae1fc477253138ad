"""SIP transaction timers, named as in RFC 3261 §17 (Table 4) and RFC 6026 §8.

Everything derives from three base values (RFC 3261 §17.1.1.1, §17.1.2.2):

    T1  0.5 s  round-trip time estimate; the first retransmission interval
    T2  4 s    maximum retransmission interval for non-INVITE requests and INVITE responses
    T4  5 s    maximum time a message stays in the network

=========  ===========================  ==========================  =====================================
timer      unreliable transport         reliable transport          meaning
=========  ===========================  ==========================  =====================================
A          T1, doubling                 (not used)                  ICT request retransmission
B          64*T1                        64*T1                       ICT transaction timeout (Calling)
D          max(32 s, 64*T1)             0                           ICT wait for response retransmissions
E          T1, doubling up to T2        (not used)                  NICT request retransmission
F          64*T1                        64*T1                       NICT transaction timeout
G          T1, doubling up to T2        (not used)                  IST final response retransmission
H          64*T1                        64*T1                       IST wait for ACK
I          T4                           0                           IST wait for ACK retransmissions
J          64*T1                        0                           NIST wait for request retransmissions
K          T4                           0                           NICT wait for response retransmissions
L          64*T1                        64*T1                       IST Accepted: absorb INVITE (RFC 6026)
M          64*T1                        64*T1                       ICT Accepted: take 2xx (RFC 6026)
=========  ===========================  ==========================  =====================================

RFC 3261 requires Timer D to be *at least* 32 s on unreliable transports; it has to cover
the server's whole Timer G/H retransmission window, which is 64*T1, so when T1 is raised
above 0.5 s Timer D grows with it. Shrinking T1/T2/T4 (``SipTimers(t1=0.05, ...)``) scales
every other timer down; Timer D keeps its 32 s floor, as the RFC demands.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import LocalProtocolError

__all__ = ["SipTimers"]

TIMER_D_MIN = 32.0
"""RFC 3261 §17.1.1.2: Timer D is at least 32 s for unreliable transports."""


@dataclass(frozen=True, slots=True)
class SipTimers:
    """Base timer values (seconds) and the RFC 3261 / RFC 6026 timers derived from them."""

    t1: float = 0.5
    """RTT estimate (RFC 3261 §17.1.1.1); the first retransmission interval of Timers A, E, G."""
    t2: float = 4.0
    """Cap on the retransmission interval of non-INVITE requests and INVITE final responses."""
    t4: float = 5.0
    """Maximum time a message can remain in the network (Timers I and K)."""

    def __post_init__(self) -> None:
        if not (self.t1 > 0 and self.t2 > 0 and self.t4 > 0):
            raise LocalProtocolError(f"SIP timers must be positive: {self!r}")
        if self.t2 < self.t1:
            raise LocalProtocolError(f"T2 ({self.t2}) must not be smaller than T1 ({self.t1})")

    # -- retransmission timers (initial intervals) ------------------------------------------
    @property
    def timer_a(self) -> float:
        """Initial INVITE retransmission interval (doubles on every firing, no cap)."""
        return self.t1

    @property
    def timer_e(self) -> float:
        """Initial non-INVITE retransmission interval (doubles up to T2)."""
        return self.t1

    @property
    def timer_g(self) -> float:
        """Initial INVITE final response retransmission interval (doubles up to T2)."""
        return self.t1

    # -- transaction timeouts -------------------------------------------------------------
    @property
    def timer_b(self) -> float:
        """INVITE transaction timeout: 64*T1."""
        return 64 * self.t1

    @property
    def timer_f(self) -> float:
        """Non-INVITE transaction timeout: 64*T1."""
        return 64 * self.t1

    @property
    def timer_h(self) -> float:
        """Wait time for the ACK to a non-2xx final response: 64*T1."""
        return 64 * self.t1

    @property
    def timer_l(self) -> float:
        """IST Accepted: wait time for INVITE retransmissions and TU 2xx retransmissions (RFC 6026)."""
        return 64 * self.t1

    @property
    def timer_m(self) -> float:
        """ICT Accepted: wait time for 2xx retransmissions from other forks (RFC 6026)."""
        return 64 * self.t1

    # -- wait-for-retransmission timers, zero on reliable transports ----------------------------
    def timer_d(self, reliable: bool) -> float:
        """ICT Completed: absorb final response retransmissions; max(32 s, 64*T1), 0 if reliable."""
        return 0.0 if reliable else max(TIMER_D_MIN, 64 * self.t1)

    def timer_i(self, reliable: bool) -> float:
        """IST Confirmed: absorb ACK retransmissions; T4, 0 if reliable."""
        return 0.0 if reliable else self.t4

    def timer_j(self, reliable: bool) -> float:
        """NIST Completed: absorb request retransmissions; 64*T1, 0 if reliable."""
        return 0.0 if reliable else 64 * self.t1

    def timer_k(self, reliable: bool) -> float:
        """NICT Completed: absorb response retransmissions; T4, 0 if reliable."""
        return 0.0 if reliable else self.t4
