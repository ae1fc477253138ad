"""Call quality from network measurements: the E-model R factor and MOS (ITU-T G.107).

The transmission rating is ``R = Ro - Is - Id - Ie,eff + A`` (G.107 §3). With every
non-network parameter at its G.107 default, ``Ro - Is = 93.2`` and ``A = 0``, so only delay
and codec/loss impairments remain ("simplified E-model", as in RFC 3611 §4.7.5 VoIP metrics
reports and most VoIP monitors):

* ``Id`` from the one-way mouth-to-ear delay ``d`` (ms), the Cole-Rosenbluth fit to G.107
  with default echo parameters: ``Id = 0.024 d + 0.11 (d - 177.3) H(d - 177.3)``.
  Jitter enters through the playout buffer it forces: ``d = delay + jitter_buffer``, by
  default ``2 x jitter`` when the real buffer delay is not known.
* ``Ie,eff = Ie + (95 - Ie) * Ppl / (Ppl / BurstR + Bpl)`` (G.107 §3.6) with the equipment
  impairment ``Ie`` and packet-loss robustness ``Bpl`` of the codec (G.113 Appendix I).
* ``MOS = 1 + 0.035 R + R (R - 60)(100 - R) 7e-6`` for ``0 < R < 100`` (G.107 Annex B).

At zero impairment with G.711, R = 93.2 and MOS = 4.41.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

R0_MINUS_IS = 93.2
"""G.107 default ``Ro - Is`` (basic signal-to-noise minus simultaneous impairments)."""
DELAY_KNEE_MS = 177.3
"""Cole-Rosenbluth: beyond this one-way delay, interactivity degrades fast."""


@dataclass(frozen=True, slots=True)
class CodecImpairment:
    """Equipment impairment ``Ie`` and packet-loss robustness ``Bpl`` of one codec."""

    ie: float
    bpl: float
    source: str


IMPAIRMENTS: Mapping[str, CodecImpairment] = MappingProxyType({
    # G.113 Appendix I, Table I.1 (Ie) and Table I.3 (Bpl, random loss): G.711 with the
    # Appendix I PLC has Bpl 25.1; without concealment 4.3.
    "pcmu": CodecImpairment(0.0, 25.1, "G.113 App. I: G.711 with App. I PLC"),
    "pcma": CodecImpairment(0.0, 25.1, "G.113 App. I: G.711 with App. I PLC"),
    "g711-noplc": CodecImpairment(0.0, 4.3, "G.113 App. I: G.711 without PLC"),
    # Opus has no narrowband planning values in G.113. At the speech bitrates we send
    # (>= 24 kbit/s) it is transparent on the narrowband R scale (Ie 0), and its PLC/FEC
    # degrade more gracefully than G.711 App. I: Bpl 30 is a provisional planning value.
    "opus": CodecImpairment(0.0, 30.0, "provisional (not in G.113 narrowband tables)"),
})


@dataclass(frozen=True, slots=True, kw_only=True)
class QualityEstimate:
    r_factor: float
    mos: float
    effective_delay_ms: float
    """Mouth-to-ear delay used for Id: network delay plus jitter buffer."""
    delay_impairment: float
    """Id."""
    equipment_impairment: float
    """Ie,eff (codec and packet loss)."""


def delay_impairment(delay_ms: float) -> float:
    """``Id`` for a one-way mouth-to-ear delay in ms (Cole-Rosenbluth fit of G.107)."""
    d = max(0.0, delay_ms)
    return 0.024 * d + (0.11 * (d - DELAY_KNEE_MS) if d > DELAY_KNEE_MS else 0.0)


def effective_equipment_impairment(ie: float, bpl: float, loss_percent: float, burst_ratio: float = 1.0) -> float:
    """G.107 §3.6: ``Ie,eff`` for packet-loss probability ``loss_percent`` (0..100)."""
    ppl = min(100.0, max(0.0, loss_percent))
    burst = max(1.0, burst_ratio)
    return ie + (95.0 - ie) * ppl / (ppl / burst + bpl)


def mos_from_r(r: float) -> float:
    """G.107 Annex B (B-4): estimated conversational MOS from the R factor.

    The cubic dips a hair below 1 for 0 < R < 6.5; MOS is bounded to 1..4.5 as the scale is.
    """
    if r <= 0.0:
        return 1.0
    if r >= 100.0:
        return 4.5
    return max(1.0, 1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6)


def impairment_for(codec: str) -> CodecImpairment:
    key = codec.lower()
    if key in IMPAIRMENTS:
        return IMPAIRMENTS[key]
    raise KeyError(f"no E-model impairment values for codec {codec!r}; known: {sorted(IMPAIRMENTS)}")


def estimate_quality(
    *,
    delay_ms: float,
    loss_percent: float,
    jitter_ms: float = 0.0,
    codec: str = "PCMU",
    jitter_buffer_ms: float | None = None,
    burst_ratio: float = 1.0,
) -> QualityEstimate:
    """R factor and MOS for a one-way ``delay_ms``, ``loss_percent`` (0..100) and jitter.

    ``jitter_buffer_ms`` is the playout delay actually added (the jitter buffer's current
    delay); without it ``2 * jitter_ms`` is assumed. ``burst_ratio`` is G.107's BurstR
    (1 for random loss, > 1 for bursty loss, e.g. from RFC 3611 burst metrics).
    """
    ci = impairment_for(codec)
    jb = 2.0 * max(0.0, jitter_ms) if jitter_buffer_ms is None else max(0.0, jitter_buffer_ms)
    d = max(0.0, delay_ms) + jb
    i_d = delay_impairment(d)
    i_e = effective_equipment_impairment(ci.ie, ci.bpl, loss_percent, burst_ratio)
    r = R0_MINUS_IS - i_d - i_e
    r = min(100.0, max(0.0, r))
    return QualityEstimate(
        r_factor=r, mos=mos_from_r(r), effective_delay_ms=d, delay_impairment=i_d, equipment_impairment=i_e
    )


def r_factor(delay_ms: float, loss_percent: float, jitter_ms: float = 0.0, codec: str = "PCMU") -> float:
    """Shorthand for ``estimate_quality(...).r_factor``."""
    return estimate_quality(delay_ms=delay_ms, loss_percent=loss_percent, jitter_ms=jitter_ms, codec=codec).r_factor


def mos(delay_ms: float, loss_percent: float, jitter_ms: float = 0.0, codec: str = "PCMU") -> float:
    """Shorthand for ``estimate_quality(...).mos``."""
    return estimate_quality(delay_ms=delay_ms, loss_percent=loss_percent, jitter_ms=jitter_ms, codec=codec).mos
