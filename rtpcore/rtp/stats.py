"""Receiver statistics for one remote source (RFC 3550 Appendix A.1, A.3, A.8; §6.4.1).

* A.1 sequence validation: a new source is on *probation* until ``min_sequential`` packets
  arrive in sequence; afterwards a jump of less than ``max_dropout`` ahead is accepted (a
  16-bit wrap adds a cycle), up to ``max_misorder`` behind counts as a duplicate/reorder,
  and anything else is a "bad" sequence number - two in a row restart the source.
* A.3 loss: ``expected = extended_max - base_seq + 1``, ``lost = expected - received``
  (signed, may go negative with duplicates) and the *fraction lost* over each report
  interval, in 1/256 units.
* A.8 interarrival jitter: ``J += (|D| - J) / 16`` where ``D`` is the change in transit
  time, measured in RTP timestamp units; the arrival time is ``now * clock_rate``.
* §6.4.1 LSR/DLSR and the round-trip time ``A - LSR - DLSR`` (16.16 NTP units).

Sequence state machine (A.1)::

                 in-sequence x (min_sequential - 1)          jump < max_dropout
    [probation] ------------------------------------> [valid] <-----------------+
        |  ^                                            |  |                     |
        +--+ out of sequence: probation restarts        |  +---------------------+
                                                        |  jump >= max_dropout:
                                                        v  remember seq+1 as bad_seq
                                               [bad_seq pending] --(next == bad_seq)--> restart
                                                                                        (init_seq)

Wall-clock: "now" is monotonic seconds; ``wallclock_offset`` maps it to Unix time for NTP
timestamps (``ntp = ntp_from_unix(now + wallclock_offset)``), and must be the same value
the local sender uses for its SRs so that LSR and the arrival time share a clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import LocalProtocolError
from .packet import RtpPacket
from .rtcp import ReportBlock, ntp_from_unix, ntp_middle32

__all__ = ["ReceiverStats", "SequenceLimits", "round_trip_time"]

RTP_SEQ_MOD = 1 << 16


@dataclass(frozen=True, slots=True, kw_only=True)
class SequenceLimits:
    """The RFC 3550 Appendix A.1 constants (defaults are the RFC's)."""

    max_dropout: int = 3000
    """A forward jump below this many sequence numbers is loss, not a restart."""
    max_misorder: int = 100
    """Up to this many sequence numbers behind the highest counts as reordering."""
    min_sequential: int = 2
    """Packets in sequence needed before a new source is considered valid."""


def _signed32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


class ReceiverStats:
    """Reception statistics about one SSRC, as kept by an RTP receiver."""

    __slots__ = (
        "ssrc",
        "clock_rate",
        "limits",
        "wallclock_offset",
        "max_seq",
        "cycles",
        "base_seq",
        "bad_seq",
        "probation",
        "received",
        "expected_prior",
        "received_prior",
        "restarts",
        "bad_packets",
        "jitter",
        "_last_arrival",
        "_last_timestamp",
        "_lsr",
        "_lsr_time",
        "_started",
    )

    def __init__(
        self,
        ssrc: int,
        clock_rate: int,
        *,
        limits: SequenceLimits | None = None,
        wallclock_offset: float = 0.0,
    ) -> None:
        if clock_rate <= 0:
            raise LocalProtocolError(f"clock_rate {clock_rate} must be positive")
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.limits = limits or SequenceLimits()
        self.wallclock_offset = wallclock_offset
        self.max_seq = 0
        self.cycles = 0
        self.base_seq = 0
        self.bad_seq = RTP_SEQ_MOD + 1
        self.probation = 0
        self.received = 0
        self.expected_prior = 0
        self.received_prior = 0
        self.restarts = 0
        self.bad_packets = 0
        self.jitter = 0.0  # interarrival jitter in RTP timestamp units (A.8)
        self._last_arrival: float | None = None
        self._last_timestamp = 0
        self._lsr = 0
        self._lsr_time: float | None = None
        self._started = False

    # -- A.1 -----------------------------------------------------------------------------
    def _init_seq(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = RTP_SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self.received_prior = 0
        self.expected_prior = 0

    def _update_seq(self, seq: int) -> bool:
        limits = self.limits
        if not self._started:
            self._started = True
            self._init_seq(seq)
            self.max_seq = (seq - 1) & 0xFFFF
            self.probation = limits.min_sequential
        udelta = (seq - self.max_seq) & 0xFFFF
        if self.probation:
            if seq == (self.max_seq + 1) & 0xFFFF:
                self.probation -= 1
                self.max_seq = seq
                if self.probation == 0:
                    self._init_seq(seq)
                    self.received += 1
                    return True
            else:
                self.probation = limits.min_sequential - 1
                self.max_seq = seq
            return False
        if udelta < limits.max_dropout:
            if seq < self.max_seq:
                self.cycles += RTP_SEQ_MOD  # wrapped
            self.max_seq = seq
        elif udelta <= RTP_SEQ_MOD - limits.max_misorder:
            if seq == self.bad_seq:
                # Two sequential packets after a big jump: the source restarted (A.1).
                self._init_seq(seq)
                self.restarts += 1
                self._last_arrival = None
            else:
                self.bad_seq = (seq + 1) & 0xFFFF
                self.bad_packets += 1
                return False
        # else: duplicate or reordered packet, counted as received (A.3 note)
        self.received += 1
        return True

    # -- input ---------------------------------------------------------------------------
    def update(self, sequence_number: int, timestamp: int, now: float) -> bool:
        """Account one received packet; False when A.1 says it is not (yet) valid."""
        if not self._update_seq(sequence_number & 0xFFFF):
            return False
        arrival = now * self.clock_rate
        if self._last_arrival is not None:
            # D(i-1, i) = (R_i - R_{i-1}) - (S_i - S_{i-1}), timestamps modulo 2^32 (A.8).
            d = (arrival - self._last_arrival) - _signed32(timestamp - self._last_timestamp)
            self.jitter += (abs(d) - self.jitter) / 16.0
        self._last_arrival = arrival
        self._last_timestamp = timestamp
        return True

    def receive(self, packet: RtpPacket, now: float) -> bool:
        """:meth:`update` from a parsed packet."""
        return self.update(packet.sequence_number, packet.timestamp, now)

    def on_sender_report(self, ntp_timestamp: int, now: float) -> None:
        """Remember the SR's NTP time (LSR) and when it arrived (for DLSR), §6.4.1."""
        self._lsr = ntp_middle32(ntp_timestamp)
        self._lsr_time = now

    # -- A.3 -----------------------------------------------------------------------------
    @property
    def validated(self) -> bool:
        """The source has passed probation (A.1)."""
        return self._started and self.probation == 0

    @property
    def extended_highest_sequence(self) -> int:
        return (self.cycles + self.max_seq) & 0xFFFFFFFF

    @property
    def expected(self) -> int:
        if not self.validated:
            return 0
        return self.cycles + self.max_seq - self.base_seq + 1

    @property
    def lost(self) -> int:
        """Cumulative packets lost (negative with duplicates), not clamped."""
        return self.expected - self.received

    @property
    def jitter_seconds(self) -> float:
        return self.jitter / self.clock_rate

    @property
    def active(self) -> bool:
        """Packets were received since the last report block (RFC 3550 §6.4)."""
        return self.received > self.received_prior

    def make_report_block(self, now: float) -> ReportBlock:
        """A report block for this source; starts a new fraction-lost interval (A.3)."""
        expected = self.expected
        lost = max(-0x800000, min(0x7FFFFF, expected - self.received))
        expected_interval = expected - self.expected_prior
        self.expected_prior = expected
        received_interval = self.received - self.received_prior
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        if expected_interval == 0 or lost_interval <= 0:
            fraction = 0
        else:
            fraction = min(255, (lost_interval << 8) // expected_interval)
        if self._lsr_time is None:
            lsr = dlsr = 0
        else:
            lsr = self._lsr
            dlsr = int((now - self._lsr_time) * 65536) & 0xFFFFFFFF
        return ReportBlock(
            ssrc=self.ssrc,
            fraction_lost=fraction,
            packets_lost=lost,
            highest_sequence=self.extended_highest_sequence,
            jitter=int(self.jitter) & 0xFFFFFFFF,
            lsr=lsr,
            dlsr=dlsr,
        )


def round_trip_time(block: ReportBlock, now: float, *, wallclock_offset: float = 0.0) -> float | None:
    """RTT in seconds from a report block about *our* stream, received at ``now`` (§6.4.1).

    ``None`` when the peer has not seen an SR from us yet (LSR = 0) or when the result would
    be negative (the reporter's DLSR exceeds the elapsed time: clock problems).
    """
    if block.lsr == 0:
        return None
    arrival = ntp_middle32(ntp_from_unix(now + wallclock_offset))
    rtt = (arrival - block.lsr - block.dlsr) & 0xFFFFFFFF
    if rtt & 0x80000000:
        return None
    return rtt / 65536.0
