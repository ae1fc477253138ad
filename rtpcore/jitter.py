"""Adaptive playout (jitter) buffer, sans-IO: packets in with their arrival time, PCM out on
the caller's clock.

``put(seq, timestamp, payload, arrival)`` files an RTP packet (RFC 3550 §5.1 fields);
``pull(now)`` is called once per output frame (20 ms by default) by whoever owns the sound
card clock and returns exactly one :class:`Frame` of PCM: real audio, concealment, or
silence.

Delay model (in the spirit of WebRTC NetEQ). For every packet the *transit*
``arrival - timestamp / clock_rate`` is recorded over a sliding window. Its minimum is the
fastest path; a packet's *deviation* is its transit minus that minimum. The target delay is
the 95th percentile of deviations plus a small margin, clamped to ``[min, max]``, starting
at ``initial_delay_ms`` while the window warms up. A packet with timestamp ``ts`` would
ideally play at ``ts / clock_rate + min_transit + target``. The *current* delay is how far
behind that ideal the next sample to be played is. The buffer steers the current delay into
``[target - h, target + frame + h]``:

* too high: *accelerate*, two packets are played as one (the second cross-faded from the
  first's start), or silence is cut at a talkspurt start;
* too low: *expand*, one frame of concealment is inserted without consuming a packet;
* underflow (the packet for the play position is missing) is concealed without moving the
  play position, so a late packet is still played (the delay grows by a frame); once as
  much concealment has been played as the gap before the next buffered packet is long, the
  missing packets are declared lost and the play position jumps over them.

Packets older than the play position are late (dropped, counted), repeats are duplicates.
Sequence numbers (16 bit) and timestamps (32 bit) are unwrapped to 64-bit values. An SSRC
change is a resync at once; a timestamp or sequence jump (RFC 3550 A.1 ``MAX_DROPOUT`` /
``MAX_MISORDER``, or a transit change beyond ``resync_ms``) is a resync once the next
packet confirms it (or at once when the jump packet carries the marker bit).

States::

            first put                now >= ideal time of earliest packet
    IDLE ─────────────▶ WAITING ──────────────────────────────────────▶ PLAYING
                         ▲   ▲                                            │
                         │   └─ sender paused: next packet is in sequence │
                         │      (DTX, VAD, comfort noise) or has marker   │
                         │   └─ concealment longer than max_conceal_ms ───┤
                         └──── resync (SSRC change, confirmed jump) ◀─────┘ (from any state)

In WAITING and IDLE frames are silence; a talkspurt restarts exactly at its ideal time, so
delay adapts for free across silences.
"""

from __future__ import annotations

import bisect
import enum
from collections import deque
from dataclasses import dataclass

import numpy as np

from .codecs.base import Codec, Pcm, WaveformPlc
from .errors import CodecDecodeError, LocalProtocolError

MAX_DROPOUT = 3000
"""RFC 3550 A.1: a forward sequence jump larger than this starts probation."""
MAX_MISORDER = 100
"""RFC 3550 A.1: a backward sequence jump larger than this starts probation."""


class FrameKind(enum.Enum):
    AUDIO = "audio"
    """Decoded from received packets (possibly time-compressed)."""
    CONCEALED = "concealed"
    """Contains synthesized audio for missing or late packets (PLC or FEC)."""
    SILENCE = "silence"
    """Nothing to play: before the stream, between talkspurts (DTX), after long loss."""


class PutResult(enum.Enum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    LATE = "late"
    PROBATION = "probation"
    """Looks like a stream jump: held until the next packet confirms it (or discarded)."""


class State(enum.Enum):
    IDLE = "idle"
    WAITING = "waiting"
    PLAYING = "playing"


@dataclass(frozen=True, slots=True, kw_only=True)
class JitterConfig:
    """Tuning of :class:`JitterBuffer`. Times are milliseconds."""

    clock_rate: int = 8000
    """RTP timestamp rate of the stream."""
    sample_rate: int | None = None
    """PCM rate of the frames; defaults to ``clock_rate`` (or the codec's rate)."""
    frame_ms: int = 20
    """Duration of the frame each ``pull`` returns."""
    min_delay_ms: float = 20.0
    """Lower clamp of the target delay."""
    max_delay_ms: float = 500.0
    """Upper clamp of the target delay."""
    initial_delay_ms: float = 40.0
    """Target delay until ``warmup_packets`` transits have been seen."""
    percentile: float = 0.95
    """Quantile of the transit deviation the target covers."""
    history_packets: int = 250
    """Sliding window of transits (5 s at 20 ms packets): how fast the target shrinks back."""
    warmup_packets: int = 50
    """Packets before the measured target may go below ``initial_delay_ms``."""
    hysteresis_ms: float = 5.0
    """Slack on each side of the delay band before accelerating or expanding."""
    max_conceal_ms: float = 100.0
    """Continuous concealment after which the buffer goes silent and waits for packets."""
    max_packets: int = 256
    """Cap on stored packets; the oldest is dropped beyond it."""
    resync_ms: float = 1000.0
    """A transit change larger than this is a timestamp jump (new time base)."""

    def __post_init__(self) -> None:
        if self.clock_rate <= 0 or self.frame_ms <= 0 or self.max_packets <= 0:
            raise LocalProtocolError("clock_rate, frame_ms and max_packets must be positive")
        if not 0 <= self.min_delay_ms <= self.initial_delay_ms <= self.max_delay_ms:
            raise LocalProtocolError("need 0 <= min_delay_ms <= initial_delay_ms <= max_delay_ms")
        if not 0.0 < self.percentile <= 1.0 or self.history_packets < 2:
            raise LocalProtocolError("percentile must be in (0, 1] and history_packets >= 2")


@dataclass(frozen=True, slots=True, kw_only=True)
class Frame:
    """One pulled frame of mono PCM."""

    kind: FrameKind
    pcm: Pcm
    timestamp: int | None
    """RTP timestamp (32 bit) of the first sample, None when not inside the stream."""
    concealed_samples: int = 0
    """How many of the samples were synthesized."""


@dataclass(frozen=True, slots=True, kw_only=True)
class JitterStats:
    state: State
    current_delay_ms: float
    """Delay of the last pulled frame behind the fastest possible playout."""
    target_delay_ms: float
    jitter_ms: float
    """RFC 3550 §6.4.1 interarrival jitter estimate."""
    buffered_packets: int
    buffered_ms: float
    received: int
    played: int
    late: int
    """Arrived after their play time had passed."""
    lost: int
    """Skipped at playout and never arrived (late arrivals are not counted here)."""
    concealed: int
    """Pulled frames that contained concealment."""
    concealed_samples: int
    fec_recovered: int
    duplicates: int
    discarded: int
    """Dropped for overflow, a resync flush, or a stream jump that was never confirmed."""
    accelerated: int
    expanded: int
    resyncs: int
    decode_errors: int


class _Packet:
    __slots__ = ("seq", "ts", "data", "arrival", "marker", "cn")

    def __init__(self, seq: int, ts: int, data: bytes | Pcm | None, arrival: float, marker: bool, cn: bool) -> None:
        self.seq = seq
        self.ts = ts
        self.data = data
        self.arrival = arrival
        self.marker = marker
        self.cn = cn


def _unwrap(value: int, ref: int, bits: int) -> int:
    mod = 1 << bits
    half = mod >> 1
    return ref + ((value - (ref & (mod - 1)) + half) % mod) - half


class JitterBuffer:
    """Adaptive playout buffer for one RTP stream (one SSRC at a time), mono PCM out.

    With a ``codec`` payloads are ``bytes`` decoded at playout (in order, as stateful
    decoders need) and concealment uses the codec's PLC/FEC. Without one, payloads are
    int16 PCM frames and concealment is :class:`~rtpcore.codecs.base.WaveformPlc`.
    """

    def __init__(self, config: JitterConfig | None = None, codec: Codec | None = None) -> None:
        cfg = config or JitterConfig(clock_rate=codec.clock_rate if codec else 8000)
        if codec is not None:
            if codec.channels != 1:
                raise LocalProtocolError("the jitter buffer handles mono codecs")
            if codec.clock_rate != cfg.clock_rate:
                raise LocalProtocolError("codec clock rate differs from the configured clock rate")
        self.config = cfg
        self._codec = codec
        self._sr = cfg.sample_rate or (codec.sample_rate if codec else cfg.clock_rate)
        self._cr = cfg.clock_rate
        self._frame = self._sr * cfg.frame_ms // 1000
        if self._frame <= 0:
            raise LocalProtocolError("frame_ms too short for the sample rate")
        self._plc = None if codec is not None else WaveformPlc(self._sr)
        self._hyst = cfg.hysteresis_ms / 1000.0
        self._seen: set[int] = set()
        self._seen_order: deque[int] = deque()
        self._transits: deque[float] = deque()
        self._sorted: list[float] = []
        self.state = State.IDLE
        self._reset_stream()
        self._ssrc: int | None = None
        self._cand: _Packet | None = None
        self._cand_raw: tuple[int, int] = (0, 0)
        self._jitter = 0.0
        self._last_transit: float | None = None
        self._cur = 0.0
        self.received = self.played = self.late = self.duplicates = self.discarded = 0
        self.concealed = self.concealed_samples = self.fec_recovered = 0
        self.accelerated = self.expanded = self.resyncs = self.decode_errors = 0
        self._skipped = 0
        self._late_in_stream = 0

    # -- stream state -----------------------------------------------------------------
    def _reset_stream(self) -> None:
        self._ts_list: list[int] = []
        self._by_ts: dict[int, _Packet] = {}
        self._hi_seq: int | None = None
        self._hi_ts = 0
        self._play_ts: int | None = None
        self._last_seq: int | None = None
        self._first_seq: int | None = None
        self._pending = 0  # ticks of concealment played at the current play position
        self._conceal_run = 0  # samples of continuous concealment
        self._pkt_ticks = self._cr * self.config.frame_ms // 1000
        self._chunks: deque[tuple[FrameKind, Pcm]] = deque()
        self._sync_len = 0
        self._seen.clear()
        self._seen_order.clear()
        self._transits.clear()
        self._sorted.clear()
        self._last_transit = None
        if self._codec is not None:
            self._codec.reset()
        elif self._plc is not None:
            self._plc.reset()

    def reset(self) -> None:
        """Forget the stream (keeps counters)."""
        self.discarded += len(self._ts_list)
        self._reset_stream()
        self._cand = None
        self.state = State.IDLE

    def _resync(self) -> None:
        self.resyncs += 1
        self.discarded += len(self._ts_list)
        self._reset_stream()
        self.state = State.WAITING

    # -- delay estimation -------------------------------------------------------------
    def _record_transit(self, transit: float) -> None:
        if self._last_transit is not None:
            d = abs(transit - self._last_transit)
            self._jitter += (d - self._jitter) / 16.0
        self._last_transit = transit
        self._transits.append(transit)
        bisect.insort(self._sorted, transit)
        if len(self._transits) > self.config.history_packets:
            old = self._transits.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, old)]

    @property
    def _min_transit(self) -> float:
        return self._sorted[0] if self._sorted else 0.0

    @property
    def target_delay(self) -> float:
        """Target delay in seconds."""
        cfg = self.config
        n = len(self._sorted)
        if n == 0:
            return cfg.initial_delay_ms / 1000.0
        q = self._sorted[int(cfg.percentile * (n - 1))] - self._sorted[0]
        t = q + self._hyst
        if n < cfg.warmup_packets:
            t = max(t, cfg.initial_delay_ms / 1000.0)
        return min(max(t, cfg.min_delay_ms / 1000.0), cfg.max_delay_ms / 1000.0)

    def _ideal_time(self, ts: int) -> float:
        return ts / self._cr + self._min_transit + self.target_delay

    def _position(self) -> int:
        """Extended timestamp of the next sample to be output."""
        if self._play_ts is None:
            raise LocalProtocolError("internal state: _play_ts not set")
        return self._play_ts + self._pending - self._sync_len * self._cr // self._sr

    def _current_delay(self, now: float) -> float:
        return now - (self._position() / self._cr + self._min_transit)

    # -- input --------------------------------------------------------------------------
    def put(
        self,
        seq: int,
        timestamp: int,
        payload: bytes | Pcm,
        arrival: float,
        *,
        marker: bool = False,
        ssrc: int | None = None,
        comfort_noise: bool = False,
    ) -> PutResult:
        """File one RTP packet that arrived at ``arrival`` (caller's clock, seconds).

        ``comfort_noise`` marks an RFC 3389 CN packet: it keeps the sequence and means
        "silence from here". ``ssrc`` lets the buffer resync when the source changes.
        """
        if self._codec is not None and not isinstance(payload, bytes | bytearray | memoryview):
            raise LocalProtocolError("payload must be bytes when the buffer has a codec")
        if self._codec is None and not comfort_noise:
            if not isinstance(payload, np.ndarray) or payload.dtype != np.int16 or payload.ndim != 1:
                raise LocalProtocolError("payload must be a 1-D int16 PCM array without a codec")
        seq &= 0xFFFF
        timestamp &= 0xFFFFFFFF
        self.received += 1
        data: bytes | Pcm | None = None if comfort_noise else (
            payload if isinstance(payload, np.ndarray) else bytes(payload))
        if ssrc is not None and self._ssrc is not None and ssrc != self._ssrc and self.state is not State.IDLE:
            self._resync()
            self._cand = None
        if ssrc is not None:
            self._ssrc = ssrc
        if self._hi_seq is None:
            return self._accept(_Packet(seq, timestamp, data, arrival, marker, comfort_noise), fresh=True)
        ext_seq = _unwrap(seq, self._hi_seq, 16)
        ext_ts = _unwrap(timestamp, self._hi_ts, 32)
        transit = arrival - ext_ts / self._cr
        ref = self._last_transit if self._last_transit is not None else transit
        jump = (
            ext_seq - self._hi_seq > MAX_DROPOUT
            or self._hi_seq - ext_seq > MAX_MISORDER
            or abs(transit - ref) * 1000.0 > self.config.resync_ms
        )
        pkt = _Packet(ext_seq, ext_ts, data, arrival, marker, comfort_noise)
        if not jump:
            if self._cand is not None:
                self.discarded += 1  # the jump was not confirmed: a stray packet
                self._cand = None
            return self._accept(pkt, fresh=False)
        raw = _Packet(seq, timestamp, data, arrival, marker, comfort_noise)
        cand = self._cand
        if marker or (cand is not None and self._confirms(cand, raw)):
            self._resync()
            self._cand = None
            if cand is not None and not marker:
                self._accept(cand, fresh=True)
                return self._accept(_Packet(_unwrap(seq, cand.seq, 16), _unwrap(timestamp, cand.ts, 32),
                                            data, arrival, marker, comfort_noise), fresh=False)
            return self._accept(raw, fresh=True)
        if cand is not None:
            self.discarded += 1
        self._cand = raw
        return PutResult.PROBATION

    def _confirms(self, cand: _Packet, pkt: _Packet) -> bool:
        dseq = (pkt.seq - cand.seq) & 0xFFFF
        dts = ((pkt.ts - cand.ts + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
        drift = (pkt.arrival - cand.arrival) - dts / self._cr
        return 0 < dseq <= MAX_MISORDER and abs(drift) * 1000.0 <= self.config.resync_ms

    def _accept(self, pkt: _Packet, *, fresh: bool) -> PutResult:
        if fresh:
            self._hi_seq = pkt.seq
            self._hi_ts = pkt.ts
            if self.state is State.IDLE:
                self.state = State.WAITING
        if pkt.seq in self._seen or pkt.ts in self._by_ts:
            self.duplicates += 1
            return PutResult.DUPLICATE
        self._remember_seq(pkt.seq)
        if self._hi_seq is None:
            raise LocalProtocolError("internal state: _hi_seq not set")
        if pkt.seq > self._hi_seq:
            self._hi_seq = pkt.seq
        if pkt.ts > self._hi_ts:
            self._hi_ts = pkt.ts
        self._record_transit(pkt.arrival - pkt.ts / self._cr)
        if self._play_ts is not None and pkt.ts < self._play_ts:
            self.late += 1
            if self._first_seq is not None and pkt.seq > self._first_seq:
                self._late_in_stream += 1
            return PutResult.LATE
        if len(self._ts_list) >= self.config.max_packets:
            self._drop_oldest()
        bisect.insort(self._ts_list, pkt.ts)
        self._by_ts[pkt.ts] = pkt
        return PutResult.ACCEPTED

    def _remember_seq(self, seq: int) -> None:
        self._seen.add(seq)
        self._seen_order.append(seq)
        if len(self._seen_order) > 4096:
            self._seen.discard(self._seen_order.popleft())

    def _drop_oldest(self) -> None:
        old = self._by_ts.pop(self._ts_list.pop(0))
        self.discarded += 1
        self._last_seq = old.seq if self._last_seq is None else max(self._last_seq, old.seq)
        end = old.ts + self._pkt_ticks
        self._play_ts = end if self._play_ts is None else max(self._play_ts, end)
        self._pending = 0

    # -- output -------------------------------------------------------------------------
    def _first(self) -> _Packet | None:
        return self._by_ts[self._ts_list[0]] if self._ts_list else None

    def _take(self, pkt: _Packet) -> None:
        self._by_ts.pop(pkt.ts)
        del self._ts_list[bisect.bisect_left(self._ts_list, pkt.ts)]
        if self._last_seq is not None and pkt.seq > self._last_seq + 1:
            self._skipped += pkt.seq - self._last_seq - 1
        if self._last_seq is None or pkt.seq > self._last_seq:
            self._last_seq = pkt.seq
        if self._first_seq is None:
            self._first_seq = pkt.seq

    def _decode(self, pkt: _Packet) -> tuple[Pcm, FrameKind]:
        """Decoded audio, or concealment (a corrupt payload is counted and concealed)."""
        data = pkt.data
        if isinstance(data, np.ndarray):
            if self._plc is None:
                raise LocalProtocolError("internal state: _plc not set")
            return self._plc.observe(data), FrameKind.AUDIO
        if self._codec is None or data is None:
            raise LocalProtocolError("internal state: _codec, data not set")
        try:
            return self._codec.decode(data), FrameKind.AUDIO
        except CodecDecodeError:
            self.decode_errors += 1
            return self._synth(self._pkt_ticks * self._sr // self._cr), FrameKind.CONCEALED

    def _synth(self, samples: int) -> Pcm:
        if self._codec is not None:
            return self._codec.conceal(samples)
        if self._plc is None:
            raise LocalProtocolError("internal state: _plc not set")
        return self._plc.conceal(samples)

    def _append(self, kind: FrameKind, pcm: Pcm) -> None:
        if pcm.shape[0]:
            self._chunks.append((kind, pcm))
            self._sync_len += pcm.shape[0]
            if kind is FrameKind.CONCEALED:
                self.concealed_samples += pcm.shape[0]

    def _play(self, pkt: _Packet) -> None:
        if self._play_ts is None:
            raise LocalProtocolError("internal state: _play_ts not set")
        self._take(pkt)
        self.played += 1
        self._pending = 0
        self._conceal_run = 0
        if pkt.cn:
            self._play_ts = pkt.ts
            self.state = State.WAITING
            return
        pcm, kind = self._decode(pkt)
        ticks = pcm.shape[0] * self._cr // self._sr
        if ticks > 0:
            self._pkt_ticks = ticks
        self._append(kind, pcm)
        self._play_ts = pkt.ts + (ticks or self._pkt_ticks)

    def _conceal(self, samples: int) -> None:
        self._append(FrameKind.CONCEALED, self._synth(samples))
        self._pending += samples * self._cr // self._sr
        self._conceal_run += samples
        if self._conceal_run * 1000 >= self.config.max_conceal_ms * self._sr:
            self._go_waiting()

    def _go_waiting(self) -> None:
        self.state = State.WAITING
        self._pending = 0
        self._conceal_run = 0

    def _accelerate(self) -> bool:
        """Play the next two packets in the time of one (cross-fade from the first's start)."""
        p = self._first()
        if p is None or p.ts != self._play_ts or p.cn or len(self._ts_list) < 2:
            return False
        q = self._by_ts[self._ts_list[1]]
        if q.seq != p.seq + 1 or q.cn or q.ts - p.ts != self._pkt_ticks:
            return False
        self._take(p)
        a, _ = self._decode(p)
        self._take(q)
        b, kind = self._decode(q)
        self.played += 2
        self.accelerated += 1
        ov = min(a.shape[0], b.shape[0], self._sr * 5 // 1000)
        out = b.copy()
        if ov:
            ramp = np.arange(1, ov + 1, dtype=np.float64) / (ov + 1)
            mix = a[:ov] * (1.0 - ramp) + b[:ov] * ramp
            out[:ov] = np.clip(np.rint(mix), -32768, 32767).astype(np.int16)
        ticks = b.shape[0] * self._cr // self._sr
        self._append(kind, out)
        self._play_ts = q.ts + (ticks or self._pkt_ticks)
        return True

    def _adapt(self, now: float) -> None:
        if self._sync_len or self._pending:
            return
        cur = self._current_delay(now)
        target = self.target_delay
        frame = self.config.frame_ms / 1000.0
        if cur > target + frame + self._hyst:
            self._accelerate()
        elif cur < target - self._hyst:
            self.expanded += 1
            self._conceal(self._pkt_ticks * self._sr // self._cr)

    def _fill(self) -> None:
        need = self._frame
        while self._sync_len < need:
            if self.state is not State.PLAYING:
                self._append(FrameKind.SILENCE, np.zeros(need - self._sync_len, dtype=np.int16))
                return
            if self._play_ts is None:
                raise LocalProtocolError("internal state: _play_ts not set")
            p = self._first()
            if p is not None and p.ts <= self._play_ts:
                self._play(p)
                continue
            remaining = need - self._sync_len
            if p is not None:
                gap = p.ts - self._play_ts
                if self._last_seq is not None and (p.seq == self._last_seq + 1 or p.marker):
                    self._go_waiting()  # nothing is missing: the sender paused
                    continue
                if self._pending >= gap:
                    self._play_ts = p.ts  # concealment already covered the missing packets
                    self._pending = 0
                    continue
                if (self._codec is not None and self._codec.supports_fec and self._pending == 0
                        and self._last_seq is not None and p.seq == self._last_seq + 2
                        and gap == self._pkt_ticks and isinstance(p.data, bytes)):
                    samples = gap * self._sr // self._cr
                    try:
                        pcm = self._codec.decode_fec(p.data, samples)
                        self.fec_recovered += 1
                    except CodecDecodeError:  # the next packet is corrupt too
                        self.decode_errors += 1
                        pcm = self._synth(samples)
                    self._append(FrameKind.CONCEALED, pcm)
                    self._play_ts = p.ts
                    continue
                self._conceal(min(remaining, max(1, (gap - self._pending) * self._sr // self._cr)))
            else:
                self._conceal(remaining)

    def _start_if_due(self, now: float) -> None:
        p = self._first()
        if p is not None and now + 1e-9 >= self._ideal_time(p.ts):
            self._play_ts = p.ts
            self.state = State.PLAYING
            self._pending = 0
            self._conceal_run = 0

    def pull(self, now: float) -> Frame:
        """The next ``frame_ms`` of audio to play at ``now`` (caller's clock, seconds)."""
        if self.state is State.WAITING and not self._sync_len:
            self._start_if_due(now)
        if self.state is State.PLAYING:
            self._adapt(now)
        ts: int | None = None
        if self.state is State.PLAYING:
            ts = self._position() & 0xFFFFFFFF
            self._cur = self._current_delay(now)
        self._fill()
        return self._emit(ts)

    def _emit(self, ts: int | None) -> Frame:
        need = self._frame
        kind, pcm = self._chunks[0]
        if pcm.shape[0] == need:  # the common case: one packet is one frame
            self._chunks.popleft()
            self._sync_len -= need
            if kind is FrameKind.CONCEALED:
                self.concealed += 1
                return Frame(kind=kind, pcm=pcm, timestamp=ts, concealed_samples=need)
            return Frame(kind=kind, pcm=pcm, timestamp=None if kind is FrameKind.SILENCE else ts)
        parts: list[Pcm] = []
        kinds: set[FrameKind] = set()
        concealed = 0
        got = 0
        while got < need:
            kind, pcm = self._chunks.popleft()
            take = min(need - got, pcm.shape[0])
            if take < pcm.shape[0]:
                self._chunks.appendleft((kind, pcm[take:]))
                pcm = pcm[:take]
            parts.append(pcm)
            kinds.add(kind)
            if kind is FrameKind.CONCEALED:
                concealed += take
            got += take
        self._sync_len -= need
        out = parts[0] if len(parts) == 1 else np.concatenate(parts)
        if FrameKind.CONCEALED in kinds:
            kind = FrameKind.CONCEALED
            self.concealed += 1
        elif FrameKind.AUDIO in kinds:
            kind = FrameKind.AUDIO
        else:
            kind = FrameKind.SILENCE
            ts = None
        return Frame(kind=kind, pcm=out, timestamp=ts, concealed_samples=concealed)

    # -- introspection ------------------------------------------------------------------
    @property
    def depth(self) -> int:
        """Packets waiting in the buffer."""
        return len(self._ts_list)

    @property
    def current_delay_ms(self) -> float:
        """Delay of the last pulled frame behind the fastest possible playout."""
        return float(self._cur) * 1000.0

    @property
    def target_delay_ms(self) -> float:
        return float(self.target_delay) * 1000.0

    @property
    def lost(self) -> int:
        return max(0, self._skipped - self._late_in_stream)

    @property
    def stats(self) -> JitterStats:
        buffered = 0.0
        if self._ts_list:
            start = self._play_ts if self._play_ts is not None else self._ts_list[0]
            buffered = max(0.0, (self._ts_list[-1] + self._pkt_ticks - start) / self._cr)
        return JitterStats(
            state=self.state,
            current_delay_ms=self.current_delay_ms,
            target_delay_ms=self.target_delay_ms,
            jitter_ms=float(self._jitter) * 1000.0,
            buffered_packets=len(self._ts_list),
            buffered_ms=buffered * 1000.0,
            received=self.received,
            played=self.played,
            late=self.late,
            lost=self.lost,
            concealed=self.concealed,
            concealed_samples=self.concealed_samples,
            fec_recovered=self.fec_recovered,
            duplicates=self.duplicates,
            discarded=self.discarded,
            accelerated=self.accelerated,
            expanded=self.expanded,
            resyncs=self.resyncs,
            decode_errors=self.decode_errors,
        )
