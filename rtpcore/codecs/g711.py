"""G.711 µ-law (PCMU, PT 0) and A-law (PCMA, PT 8) with numpy lookup tables.

ITU-T G.711 defines the companding laws on 14-bit (µ-law) and 13-bit (A-law) linear
samples; RTP carries one octet per sample at 8000 Hz (RFC 3551 §4.5.14). The tables are
built once from the segment/quantiser rules (the Sun Microsystems ``g711.c`` reference
that CPython's ``audioop``, Asterisk and most stacks use) and are bit-exact with it:

* encode: 65536 entries, indexed by the ``uint16`` view of the int16 sample;
* decode: 256 entries, code → int16 (µ-law ±32124, A-law ±32256).

Reducing a negative 16-bit sample to 14 bits is the one place implementations differ:
the Sun code negates after an arithmetic shift, the ITU-T G.191 STL ``ulaw_compress`` takes
the one's complement. ``mulaw_encode_table(g191=True)`` gives the STL variant; the two
disagree by one code step on a few negative samples, the decode table is the same.

Packet-loss concealment is :class:`~rtpcore.codecs.base.WaveformPlc` (G.711 Appendix I
style pitch repetition).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np
from numpy.typing import NDArray

from ..errors import CodecError
from .base import CodecBase, CodecSpec, Pcm, WaveformPlc, as_pcm

SAMPLE_RATE = 8000
PT_PCMU = 0
"""RFC 3551 Table 4."""
PT_PCMA = 8
"""RFC 3551 Table 4."""
ULAW_SILENCE = 0xFF
ALAW_SILENCE = 0xD5

_ULAW_BIAS = 0x84
_ULAW_CLIP = 8159
_SEG_UEND = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int64)
_SEG_AEND = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], dtype=np.int64)
_frombuffer = np.frombuffer
_INT16 = np.dtype(np.int16)
_UINT8 = np.dtype(np.uint8)
# dtype instances, not type objects: ``x.dtype is _INT16`` and ``frombuffer(b, _UINT8)`` skip numpy's
# dtype coercion, which is a third of the cost of a 160-sample frame


def _all_int16() -> NDArray[np.int64]:
    """Every int16 value, ordered by its uint16 bit pattern (the encode-table index)."""
    return np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int64)


@cache
def mulaw_encode_table(g191: bool = False) -> NDArray[np.uint8]:
    """µ-law code for every int16 sample, indexed by ``sample.view(uint16)``."""
    x = _all_int16()
    neg = x < 0
    if g191:
        mag = np.where(neg, (~x) >> 2, x >> 2)
    else:
        mag = np.where(neg, -(x >> 2), x >> 2)
    mag = np.minimum(mag, _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    seg = np.searchsorted(_SEG_UEND, mag, side="left")
    mant = (mag >> (np.minimum(seg, 7) + 1)) & 0x0F
    uval = np.where(seg >= 8, 0x7F, (seg << 4) | mant)
    mask = np.where(neg, 0x7F, 0xFF)
    table: NDArray[np.uint8] = (uval ^ mask).astype(np.uint8)
    table.setflags(write=False)
    return table


@cache
def alaw_encode_table() -> NDArray[np.uint8]:
    """A-law code for every int16 sample, indexed by ``sample.view(uint16)``."""
    x = _all_int16() >> 3
    neg = x < 0
    val = np.where(neg, -x - 1, x)
    seg = np.searchsorted(_SEG_AEND, val, side="left")
    segc = np.minimum(seg, 7)
    mant = np.where(segc < 2, val >> 1, val >> np.maximum(segc, 1)) & 0x0F
    aval = np.where(seg >= 8, 0x7F, (segc << 4) | mant)
    mask = np.where(neg, 0x55, 0xD5)
    table: NDArray[np.uint8] = (aval ^ mask).astype(np.uint8)
    table.setflags(write=False)
    return table


@cache
def mulaw_decode_table() -> NDArray[np.int16]:
    """int16 sample for every µ-law code."""
    u = (~np.arange(256, dtype=np.int64)) & 0xFF
    t = (((u & 0x0F) << 3) + _ULAW_BIAS) << ((u & 0x70) >> 4)
    table: NDArray[np.int16] = np.where(u & 0x80, _ULAW_BIAS - t, t - _ULAW_BIAS).astype(np.int16)
    table.setflags(write=False)
    return table


@cache
def alaw_decode_table() -> NDArray[np.int16]:
    """int16 sample for every A-law code."""
    a = np.arange(256, dtype=np.int64) ^ 0x55
    seg = (a & 0x70) >> 4
    t = (a & 0x0F) << 4
    t = np.where(seg == 0, t + 8, (t + 0x108) << np.maximum(seg - 1, 0))
    table: NDArray[np.int16] = np.where(a & 0x80, t, -t).astype(np.int16)
    table.setflags(write=False)
    return table


def ulaw_encode(pcm: Pcm, *, g191: bool = False) -> bytes:
    """Stateless µ-law encode of int16 PCM."""
    return mulaw_encode_table(g191)[as_pcm(pcm).view(np.uint16)].tobytes()


def ulaw_decode(payload: bytes) -> Pcm:
    """Stateless µ-law decode to int16 PCM."""
    return mulaw_decode_table()[np.frombuffer(payload, dtype=np.uint8)]


def alaw_encode(pcm: Pcm) -> bytes:
    """Stateless A-law encode of int16 PCM."""
    return alaw_encode_table()[as_pcm(pcm).view(np.uint16)].tobytes()


def alaw_decode(payload: bytes) -> Pcm:
    """Stateless A-law decode to int16 PCM."""
    return alaw_decode_table()[np.frombuffer(payload, dtype=np.uint8)]


class _G711(CodecBase):
    """Common part of PCMU and PCMA: 8 kHz mono, one octet per sample, WaveformPlc."""

    clock_rate = SAMPLE_RATE
    sample_rate = SAMPLE_RATE
    channels = 1

    def __init__(self, *, frame_ms: int = 20, payload_type: int | None = None) -> None:
        if frame_ms <= 0 or frame_ms * SAMPLE_RATE % 1000:
            raise CodecError(f"frame_ms {frame_ms} is not a whole number of samples")
        self.frame_ms = frame_ms
        self.payload_type = self._default_pt if payload_type is None else payload_type
        self._plc = WaveformPlc(SAMPLE_RATE)
        self._observe = self._plc.observe
        self._enc: NDArray[np.uint8]
        self._dec: NDArray[np.int16]
        self._enc_take: Callable[[Pcm], NDArray[np.uint8]]
        self._dec_take: Callable[[NDArray[np.uint8]], Pcm]

    def _use_tables(self, enc: NDArray[np.uint8], dec: NDArray[np.int16]) -> None:
        # bound methods kept once: a 160-sample frame costs about a microsecond, so the attribute
        # lookups of ``self._enc.take`` are a measurable share of it
        self._enc, self._dec = enc, dec
        self._enc_take, self._dec_take = enc.take, dec.take

    _default_pt: int

    @property
    def spec(self) -> CodecSpec:
        return CodecSpec(self.name, SAMPLE_RATE, 1, {}, self.payload_type)

    def encode(self, pcm: Pcm) -> bytes:
        if getattr(pcm, "dtype", None) is not _INT16 or pcm.ndim != 1:
            as_pcm(pcm)
        # int16 samples index the 65536-entry table directly: ``take`` reads a negative index s
        # as 65536 + s, which is exactly the sample's uint16 bit pattern (no view needed)
        return self._enc_take(pcm).tobytes()

    def decode(self, payload: bytes) -> Pcm:
        return self._observe(self._dec_take(_frombuffer(payload, _UINT8)))

    def conceal(self, samples: int) -> Pcm:
        return self._plc.conceal(samples)

    def reset(self) -> None:
        self._plc.reset()


class PcmuCodec(_G711):
    """G.711 µ-law, ``PCMU/8000``, static payload type 0.

    ``g191=True`` encodes negative samples with the ITU-T G.191 STL one's-complement rule
    instead of the Sun/audioop rule; both are valid G.711 and decode identically.
    """

    name = "PCMU"
    _default_pt = PT_PCMU

    def __init__(self, *, frame_ms: int = 20, payload_type: int | None = None, g191: bool = False) -> None:
        super().__init__(frame_ms=frame_ms, payload_type=payload_type)
        self._use_tables(mulaw_encode_table(g191), mulaw_decode_table())


class PcmaCodec(_G711):
    """G.711 A-law, ``PCMA/8000``, static payload type 8."""

    name = "PCMA"
    _default_pt = PT_PCMA

    def __init__(self, *, frame_ms: int = 20, payload_type: int | None = None) -> None:
        super().__init__(frame_ms=frame_ms, payload_type=payload_type)
        self._use_tables(alaw_encode_table(), alaw_decode_table())
