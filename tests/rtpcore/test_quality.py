"""E-model (ITU-T G.107) R factor and MOS, with G.113 impairment values."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtpcore.quality import (
    IMPAIRMENTS,
    delay_impairment,
    effective_equipment_impairment,
    estimate_quality,
    impairment_for,
    mos,
    mos_from_r,
    r_factor,
)


def test_zero_impairment_g711() -> None:
    q = estimate_quality(delay_ms=0, loss_percent=0, jitter_ms=0, codec="PCMU")
    assert q.r_factor == pytest.approx(93.2)
    assert q.mos == pytest.approx(4.41, abs=0.005)
    assert q.delay_impairment == 0 and q.equipment_impairment == 0
    assert r_factor(0, 0, codec="PCMA") == pytest.approx(93.2)


@pytest.mark.parametrize(("r", "expected"), [
    (0.0, 1.0), (-5.0, 1.0), (100.0, 4.5), (120.0, 4.5),
    (50.0, 1 + 1.75 + 50 * -10 * 50 * 7e-6),  # G.107 Annex B formula by hand
    (70.0, 3.6), (80.0, 4.02), (90.0, 4.34),  # the usual satisfaction-band anchors
])
def test_mos_from_r(r: float, expected: float) -> None:
    assert mos_from_r(r) == pytest.approx(expected, abs=0.01)


def test_delay_impairment_knee() -> None:
    assert delay_impairment(100) == pytest.approx(2.4)
    assert delay_impairment(177.3) == pytest.approx(0.024 * 177.3)
    # beyond 177.3 ms the slope is 0.024 + 0.11 per ms
    assert delay_impairment(277.3) - delay_impairment(177.3) == pytest.approx(13.4)
    assert delay_impairment(-10) == 0


def test_equipment_impairment_g113_values() -> None:
    g711 = impairment_for("PCMU")
    assert (g711.ie, g711.bpl) == (0.0, 25.1)
    assert impairment_for("g711-noplc").bpl == 4.3
    # 1 % random loss with PLC: 95 * 1 / (1 + 25.1)
    assert effective_equipment_impairment(0, 25.1, 1.0) == pytest.approx(95 / 26.1)
    # bursty loss hurts more than random loss at the same rate
    assert effective_equipment_impairment(0, 25.1, 5.0, burst_ratio=2.0) > effective_equipment_impairment(0, 25.1, 5.0)
    assert set(IMPAIRMENTS) >= {"pcmu", "pcma", "opus"}
    with pytest.raises(KeyError):
        impairment_for("G729")


def test_known_operating_points() -> None:
    # 150 ms one-way, 1 % loss, G.711 with PLC: 93.2 - 3.6 - 3.64 = 85.96, MOS about 4.2
    q = estimate_quality(delay_ms=150, loss_percent=1.0, codec="PCMU")
    assert q.r_factor == pytest.approx(93.2 - 3.6 - 95 / 26.1, abs=1e-9)
    assert q.mos == pytest.approx(4.24, abs=0.02)
    # a bad call: 300 ms and 5 % loss lands below "many users dissatisfied" (R < 60)
    assert estimate_quality(delay_ms=300, loss_percent=5.0).r_factor < 60


def test_jitter_counts_as_buffer_delay() -> None:
    base = estimate_quality(delay_ms=100, loss_percent=0)
    jittery = estimate_quality(delay_ms=100, loss_percent=0, jitter_ms=30)
    assert jittery.effective_delay_ms == 160
    assert jittery.r_factor < base.r_factor
    measured = estimate_quality(delay_ms=100, loss_percent=0, jitter_ms=30, jitter_buffer_ms=40)
    assert measured.effective_delay_ms == 140


def test_opus_degrades_more_gracefully_with_loss() -> None:
    assert mos(50, 5.0, codec="opus") > mos(50, 5.0, codec="PCMU")
    assert mos(50, 0.0, codec="opus") == pytest.approx(mos(50, 0.0, codec="PCMU"))


@given(st.floats(0, 1000), st.floats(0, 1000), st.floats(0, 50), st.floats(0, 50), st.sampled_from(["PCMU", "opus"]))
def test_monotonic_in_delay_and_loss(d1: float, d2: float, l1: float, l2: float, codec: str) -> None:
    lo_d, hi_d = sorted((d1, d2))
    lo_l, hi_l = sorted((l1, l2))
    assert r_factor(hi_d, lo_l, codec=codec) <= r_factor(lo_d, lo_l, codec=codec)
    assert r_factor(lo_d, hi_l, codec=codec) <= r_factor(lo_d, lo_l, codec=codec)
    q = estimate_quality(delay_ms=hi_d, loss_percent=hi_l, codec=codec)
    assert 0.0 <= q.r_factor <= 93.2 and 1.0 <= q.mos <= 4.5


def test_strictly_decreasing_on_a_grid() -> None:
    rs = [r_factor(d, 0) for d in range(0, 400, 20)]
    assert all(b < a for a, b in zip(rs, rs[1:]))
    rs = [r_factor(20, loss) for loss in (0, 0.5, 1, 2, 5, 10, 20)]
    assert all(b < a for a, b in zip(rs, rs[1:]))
    ms = [mos(20, loss) for loss in (0, 1, 5, 10, 20)]
    assert all(b < a for a, b in zip(ms, ms[1:]))
