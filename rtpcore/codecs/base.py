"""The codec interface, SDP codec descriptions and a generic packet-loss concealer.

A codec turns 16-bit linear PCM (a 1-D ``numpy.int16`` array, interleaved when it has two
channels) into RTP payload bytes and back. Codecs keep state (Opus does, and every codec
keeps the history its concealment needs), so one object serves one direction of one stream.

:class:`CodecSpec` is what SDP says about a codec (RFC 8866 §6.6 ``a=rtpmap`` and
``a=fmtp``; encoding names are case-insensitive, RFC 4855 §3). :class:`WaveformPlc` is the
concealment for waveform codecs in the spirit of ITU-T G.711 Appendix I: repeat the last
pitch period, overlap-add at the joins, fade out after 10 ms and go silent at 60 ms::

    good frames ──observe()──▶ history ──conceal(n)──▶ pitch-period repetition (fading)
         ▲                                                      │
         └──────── next good frame: cross-fade from the ◀───────┘
                   synthetic signal into the real one
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from ..errors import CodecError

Pcm = NDArray[np.int16]
"""16-bit linear PCM, 1-D, interleaved when there are two channels."""


def empty_pcm() -> Pcm:
    return np.zeros(0, dtype=np.int16)


def as_pcm(pcm: object, channels: int = 1) -> Pcm:
    """Check that ``pcm`` is a 1-D int16 array whose length is a whole number of frames."""
    if not isinstance(pcm, np.ndarray) or pcm.dtype != np.int16 or pcm.ndim != 1:
        raise CodecError("PCM must be a 1-D numpy int16 array")
    if channels > 1 and pcm.shape[0] % channels:
        raise CodecError(f"interleaved PCM length {pcm.shape[0]} is not a multiple of {channels}")
    return pcm


# -- SDP description -------------------------------------------------------------------


def parse_fmtp(value: str) -> dict[str, str]:
    """Parse the format-specific part of ``a=fmtp:<pt> <params>`` (``k=v;k=v``).

    Keys are lower-cased (RFC 7587 §7 and most payload formats define them
    case-insensitively). A parameter without ``=`` (telephone-event's ``0-16``) becomes a
    key with an empty value so that :func:`format_fmtp` gives it back unchanged.
    """
    out: dict[str, str] = {}
    for part in value.split(";"):
        part = part.strip()
        if not part:
            continue
        key, sep, val = part.partition("=")
        key = key.strip()
        out[key.lower() if sep else key] = val.strip()
    return out


def format_fmtp(params: dict[str, str]) -> str:
    """Serialize fmtp parameters in their insertion order (inverse of :func:`parse_fmtp`)."""
    return ";".join(f"{k}={v}" if v != "" else k for k, v in params.items())


@dataclass(frozen=True, slots=True)
class CodecSpec:
    """One codec as SDP describes it: ``a=rtpmap:<pt> <name>/<clock_rate>[/<channels>]``."""

    name: str
    """Encoding name as written in SDP (``PCMU``, ``opus``, ``telephone-event``)."""
    clock_rate: int
    """RTP timestamp rate in Hz (RFC 3550 §5.1); not always the PCM rate."""
    channels: int = 1
    """Channel count from rtpmap (``opus/48000/2`` always says 2, RFC 7587 §7)."""
    fmtp: dict[str, str] = field(default_factory=dict, hash=False)
    """``a=fmtp`` parameters, see :func:`parse_fmtp`."""
    payload_type: int | None = None
    """RTP payload type, static (0, 8) or dynamic (96-127); None when not yet assigned."""

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise CodecError(f"bad encoding name {self.name!r}")
        if self.clock_rate <= 0 or self.channels <= 0:
            raise CodecError("clock rate and channels must be positive")
        if self.payload_type is not None and not 0 <= self.payload_type <= 127:
            raise CodecError(f"payload type {self.payload_type} out of range 0..127")

    @property
    def key(self) -> tuple[str, int, int]:
        """``(lower-case name, clock rate, channels)``: how two specs are matched."""
        return (self.name.lower(), self.clock_rate, self.channels)

    @property
    def rtpmap(self) -> str:
        """The ``<name>/<rate>[/<channels>]`` part of ``a=rtpmap``."""
        tail = f"/{self.channels}" if self.channels != 1 else ""
        return f"{self.name}/{self.clock_rate}{tail}"

    def matches(self, other: CodecSpec) -> bool:
        return self.key == other.key

    def with_payload_type(self, payload_type: int) -> CodecSpec:
        return CodecSpec(self.name, self.clock_rate, self.channels, dict(self.fmtp), payload_type)


# -- the interface ------------------------------------------------------------------------


@runtime_checkable
class Codec(Protocol):
    """What the media session, the jitter buffer and the audio layer need from a codec."""

    name: str
    """Encoding name as in SDP."""
    clock_rate: int
    """RTP clock rate in Hz."""
    channels: int
    """PCM channels handled by encode/decode (interleaved); rtpmap channels are in ``spec``."""
    payload_type: int | None
    """Static payload type (RFC 3551 Table 4) or None for a dynamic one."""
    sample_rate: int
    """PCM sample rate in Hz."""
    frame_ms: int
    """Packetization interval the encoder is fed with (``a=ptime``)."""

    @property
    def spec(self) -> CodecSpec: ...

    @property
    def frame_samples(self) -> int:
        """PCM samples per channel in one ``frame_ms`` frame."""
        ...

    @property
    def supports_fec(self) -> bool:
        """True when :meth:`decode_fec` recovers real data, not just concealment."""
        ...

    def encode(self, pcm: Pcm) -> bytes: ...

    def decode(self, payload: bytes) -> Pcm: ...

    def conceal(self, samples: int) -> Pcm:
        """Synthesize ``samples`` per channel for audio that never arrived."""
        ...

    def decode_fec(self, next_payload: bytes, samples: int) -> Pcm:
        """Recover a lost frame of ``samples`` from redundancy in the packet after it."""
        ...

    def reset(self) -> None:
        """Forget all stream state (new SSRC or a resync)."""
        ...


class CodecBase(ABC):
    """Shared plumbing for codec implementations (attributes, frame size, FEC fallback)."""

    name: str
    clock_rate: int
    channels: int
    payload_type: int | None
    sample_rate: int
    frame_ms: int

    @property
    @abstractmethod
    def spec(self) -> CodecSpec: ...

    @property
    def frame_samples(self) -> int:
        return self.sample_rate * self.frame_ms // 1000

    @property
    def supports_fec(self) -> bool:
        return False

    @abstractmethod
    def encode(self, pcm: Pcm) -> bytes: ...

    @abstractmethod
    def decode(self, payload: bytes) -> Pcm: ...

    @abstractmethod
    def conceal(self, samples: int) -> Pcm: ...

    def decode_fec(self, next_payload: bytes, samples: int) -> Pcm:
        """No in-band redundancy: conceal instead."""
        return self.conceal(samples)

    @abstractmethod
    def reset(self) -> None: ...

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec.rtpmap} pt={self.payload_type} {self.frame_ms}ms>"


# -- concealment ------------------------------------------------------------------------


class WaveformPlc:
    """Pitch-repetition packet-loss concealment for mono PCM (ITU-T G.711 Appendix I style).

    Feed every good frame through :meth:`observe` (which may cross-fade its start into the
    concealment that preceded it) and call :meth:`conceal` for missing audio. The
    concealment repeats the last pitch period found by normalized autocorrelation over the
    last 20 ms (pitch 5..15 ms, i.e. 66..200 Hz), at full level for 10 ms, then fading 20 %
    per 10 ms, silent after 60 ms. Costs nothing on the good-frame path but a deque append.
    """

    __slots__ = (
        "_rate", "_hist", "_max_hist", "_period", "_pos", "_erased",
        "_min_lag", "_max_lag", "_corr_len", "_fade_start", "_fade_end",
    )

    def __init__(self, sample_rate: int) -> None:
        self._rate = sample_rate
        self._min_lag = sample_rate // 200
        self._max_lag = sample_rate * 15 // 1000
        self._corr_len = sample_rate * 20 // 1000
        self._max_hist = self._max_lag + self._corr_len + sample_rate * 10 // 1000
        self._fade_start = sample_rate * 10 // 1000
        self._fade_end = sample_rate * 60 // 1000
        # the last frames as they were decoded (no copying on the good-frame path); 8 frames
        # of 10 ms or more cover the 45 ms the pitch search needs
        self._hist: deque[Pcm] = deque(maxlen=8)
        self._period: NDArray[np.float64] | None = None
        self._pos = 0
        self._erased = 0

    def reset(self) -> None:
        self._hist.clear()
        self._period = None
        self._pos = 0
        self._erased = 0

    @property
    def erased_samples(self) -> int:
        """Samples concealed since the last good frame."""
        return self._erased

    def _history(self) -> NDArray[np.float64]:
        if not self._hist:
            return np.zeros(0)
        h = np.concatenate(tuple(self._hist)).astype(np.float64)
        return h[-self._max_hist:]

    def _find_period(self, h: NDArray[np.float64]) -> NDArray[np.float64]:
        n = self._corr_len
        if h.shape[0] < n + self._max_lag:
            return h[-min(h.shape[0], self._max_lag):].copy()
        target = h[-n:]
        # candidates: windows starting lag samples before the target window
        region = h[-n - self._max_lag:-self._min_lag]
        corr = np.correlate(region, target, mode="valid")[::-1]  # index i -> lag min_lag + i
        sq = region * region
        csum = np.concatenate(([0.0], np.cumsum(sq)))
        energy = (csum[n:] - csum[:-n])[::-1]
        score = corr / np.sqrt(energy + 1e-9)
        lag = self._min_lag + int(np.argmax(score))
        return h[-lag:].copy()

    def observe(self, pcm: Pcm) -> Pcm:
        """Record a good frame; after concealment, cross-fade its start (returns the frame)."""
        if self._erased:
            pcm = self._merge(pcm)
        if pcm.shape[0]:
            self._hist.append(pcm)
        return pcm

    def _merge(self, pcm: Pcm) -> Pcm:
        if self._period is not None and pcm.shape[0]:
            # G.711 App. I: 4 ms merge, plus 4 ms per further 10 ms of erasure, at most 10 ms
            ms = min(10, 4 + 4 * max(0, self._erased * 1000 // self._rate - 10) // 10)
            ov = min(pcm.shape[0], self._rate * ms // 1000)
            synth = self._synth(ov, advance=False)
            ramp = (np.arange(1, ov + 1, dtype=np.float64)) / (ov + 1)
            merged = pcm.astype(np.float64)
            merged[:ov] = synth * (1.0 - ramp) + merged[:ov] * ramp
            pcm = np.clip(np.rint(merged), -32768, 32767).astype(np.int16)
        self._erased = 0
        self._period = None
        return pcm

    def _gain(self, start: int, n: int) -> NDArray[np.float64]:
        idx = np.arange(start, start + n, dtype=np.float64)
        span = float(self._fade_end - self._fade_start)
        return np.clip(1.0 - (idx - self._fade_start) / span, 0.0, 1.0)

    def _synth(self, n: int, *, advance: bool) -> NDArray[np.float64]:
        period = self._period
        if period is None or n == 0:
            return np.zeros(n)
        p = period.shape[0]
        idx = (self._pos + np.arange(n)) % p
        out: NDArray[np.float64] = period[idx] * self._gain(self._erased, n)
        if advance:
            self._pos = (self._pos + n) % p
        return out

    def conceal(self, samples: int) -> Pcm:
        """Synthesize ``samples`` of concealment continuing the last good audio."""
        if samples <= 0:
            return empty_pcm()
        if self._erased == 0:
            h = self._history()
            if h.shape[0] == 0:
                self._erased += samples
                return np.zeros(samples, dtype=np.int16)
            period = self._find_period(h)
            # overlap-add a quarter period so the first repetition joins smoothly (App. I.2.2)
            q = max(1, period.shape[0] // 4)
            if h.shape[0] >= period.shape[0] + q:
                before = h[-period.shape[0] - q:-period.shape[0]]
                ramp = np.arange(1, q + 1, dtype=np.float64) / (q + 1)
                period = period.copy()
                period[-q:] = period[-q:] * (1.0 - ramp) + before * ramp
            self._period = period
            self._pos = 0
        out = self._synth(samples, advance=True)
        self._erased += samples
        return np.clip(np.rint(out), -32768, 32767).astype(np.int16)
