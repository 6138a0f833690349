"""Error metrics, the error-vs-bits and error-vs-clip curves, and summarize()."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from quantlib import (
    QParams,
    QuantSpec,
    calibrated_clip_ratio,
    choose_qparams,
    clip_sweep,
    error_curve,
    fake_quant,
    histogram,
    metrics,
    summarize,
)
from quantlib.curves import CURVE_COLUMNS


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- metrics ----------------------------------------------------------------------------------------------------


def test_metrics_match_the_documented_worked_example():
    x, x_hat = torch.tensor([1.0, 2.0]), torch.tensor([1.0, 1.5])
    assert metrics.mse(x, x_hat) == 0.125
    assert metrics.sqnr_db(x, x_hat) == pytest.approx(10 * math.log10(5 / 0.25))
    assert metrics.max_abs_error(x, x_hat) == 0.5
    assert metrics.cosine_similarity(x, x_hat) == pytest.approx(4.0 / (math.sqrt(5) * math.sqrt(3.25)), rel=1e-12)


def test_mse_is_a_mean_not_a_sum():
    x = torch.zeros(1000)
    x_hat = torch.full((1000,), 0.5)
    assert metrics.mse(x, x_hat) == 0.25
    x_hat[0] = 10.0  # one large error moves the mean by (100 - 0.25) / 1000
    assert metrics.mse(x, x_hat) == pytest.approx(0.25 + 99.75 / 1000, rel=1e-12)


def test_metrics_are_computed_in_float64_over_flattened_tensors():
    x = torch.randn(30, 40, generator=_gen(1))
    x_hat = x + 1e-4 * torch.randn(30, 40, generator=_gen(2))
    d = (x.double() - x_hat.double()).reshape(-1)
    assert metrics.mse(x, x_hat) == pytest.approx(float((d**2).mean()), rel=1e-12)
    assert metrics.mse(x, x_hat) == metrics.mse(x.reshape(-1), x_hat.reshape(10, 120))
    signal = float((x.double() ** 2).sum())
    assert metrics.sqnr_db(x, x_hat) == pytest.approx(10 * math.log10(signal / float((d**2).sum())), rel=1e-12)


def test_sqnr_is_infinite_when_the_error_is_zero_and_minus_infinite_for_zero_signal_with_error():
    x = torch.tensor([1.0, -2.0, 3.0])
    assert metrics.sqnr_db(x, x.clone()) == math.inf
    assert metrics.sqnr_db(torch.zeros(3), torch.zeros(3)) == math.inf
    assert metrics.sqnr_db(torch.zeros(3), torch.tensor([0.0, 0.1, 0.0])) == -math.inf
    assert metrics.sqnr_from_sums(0.0, 0.0) == math.inf


def test_cosine_similarity_edge_cases():
    x = torch.tensor([1.0, 2.0, 3.0])
    assert metrics.cosine_similarity(x, x * 7) == pytest.approx(1.0)
    assert metrics.cosine_similarity(x, -x) == pytest.approx(-1.0)
    assert metrics.cosine_similarity(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])) == 0.0
    assert metrics.cosine_similarity(torch.zeros(3), torch.zeros(3)) == 1.0
    assert metrics.cosine_similarity(torch.zeros(3), x) == 0.0
    assert metrics.cosine_similarity(x, torch.zeros(3)) == 0.0
    big = torch.full((10,), 1e30)
    assert -1.0 <= metrics.cosine_similarity(big, big) <= 1.0


@pytest.mark.parametrize("fn", [metrics.mse, metrics.sqnr_db, metrics.max_abs_error, metrics.cosine_similarity])
def test_metrics_reject_size_mismatch_and_empty_tensors(fn):
    with pytest.raises(ValueError, match="size"):
        fn(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="empty"):
        fn(torch.zeros(0), torch.zeros(0))


def test_max_abs_error_is_the_largest_absolute_difference():
    assert metrics.max_abs_error(torch.tensor([0.0, 5.0, -1.0]), torch.tensor([0.5, 5.0, 1.0])) == 2.0


# --- SQNR per bit ------------------------------------------------------------------------------------------------


def test_sqnr_on_uniform_data_gains_about_6_02_db_per_bit():
    x = torch.rand(1_000_000, generator=_gen(3)) * 2 - 1
    df = error_curve(x, QuantSpec(), bits=range(4, 13))
    sqnr = dict(zip(df.bits, df.sqnr_db, strict=True))
    # uniform data on [-a, a] at b bits (symmetric, 2^b - 1 steps used): SQNR = 20 log10(2^b - 1) ≈ 6.02 b
    assert sqnr[8] == pytest.approx(20 * math.log10(255), abs=1.0)
    assert sqnr[8] == pytest.approx(48.0, abs=1.0)
    slope = np.polyfit(df.bits, df.sqnr_db, 1)[0]
    assert slope == pytest.approx(20 * math.log10(2), abs=0.2)  # 6.02 dB/bit


def test_sqnr_per_bit_matches_fake_quant_directly_for_asymmetric_too():
    x = torch.rand(200_000, generator=_gen(4)) * 3 + 1  # all positive
    for bits in (4, 8):
        s = metrics.sqnr_db(x, fake_quant(x, QuantSpec(bits=bits, scheme="asymmetric")))
        s2 = metrics.sqnr_db(x, fake_quant(x, QuantSpec(bits=bits + 1, scheme="asymmetric")))
        assert s2 - s == pytest.approx(6.02, abs=0.5)


# --- error_curve -------------------------------------------------------------------------------------------------


def test_error_curve_returns_the_documented_columns_one_row_per_bit_width():
    x = torch.randn(1000, generator=_gen(5))
    df = error_curve(x, QuantSpec())
    assert list(df.columns) == CURVE_COLUMNS == ["bits", "mse", "sqnr_db", "max_abs_error"]
    assert df.bits.tolist() == list(range(2, 17))
    assert np.isfinite(df[["mse", "sqnr_db", "max_abs_error"]].to_numpy()).all()


@pytest.mark.parametrize("scheme", ["symmetric", "asymmetric"])
@pytest.mark.parametrize("granularity", ["tensor", "channel"])
def test_error_curve_mse_decreases_with_bits_for_minmax(scheme, granularity):
    x = torch.randn(64, 500, generator=_gen(6)) * torch.logspace(-1, 1, 64)[:, None]
    df = error_curve(x, QuantSpec(scheme=scheme, granularity=granularity))
    mse = df.mse.to_numpy()
    assert np.all(np.diff(mse) < 0)
    assert mse[-1] < mse[0] * 1e-8
    assert np.all(np.diff(df.sqnr_db.to_numpy()) > 0)
    assert np.all(np.diff(df.max_abs_error.to_numpy()) < 0)


@pytest.mark.parametrize(
    "spec",
    [
        QuantSpec(),
        QuantSpec(scheme="asymmetric"),
        QuantSpec(granularity="channel"),
        QuantSpec(granularity="channel", axis=1, scheme="asymmetric"),
        QuantSpec(granularity="group", group_size=25),
        QuantSpec(format="pow2", granularity="channel"),
        QuantSpec(narrow_range=True),
        QuantSpec(rounding="truncate"),
        QuantSpec(rounding="stochastic", granularity="channel", axis=1, seed=4),
        QuantSpec(calibration="percentile", percentile=99.0),
        QuantSpec(calibration="mse", granularity="channel"),
        QuantSpec(calibration="entropy", scheme="asymmetric"),
    ],
    ids=lambda s: f"{s.label()} {s.calibration} {s.rounding}",
)
def test_error_curve_equals_metrics_of_fake_quant_at_every_bit_width(spec):
    x = torch.randn(40, 100, generator=_gen(7)) * 3
    x[3, 7] = 40.0  # an outlier, so the clipping calibrations clip
    bits = [2, 3, 4, 6, 8, 12, 16]
    df = error_curve(x, spec, bits=bits)
    for row in df.itertuples():
        x_hat = fake_quant(x, spec.replace(bits=row.bits))
        assert row.mse == pytest.approx(metrics.mse(x, x_hat), rel=1e-12, abs=0)
        assert row.sqnr_db == pytest.approx(metrics.sqnr_db(x, x_hat), rel=1e-12, abs=0)
        assert row.max_abs_error == pytest.approx(metrics.max_abs_error(x, x_hat), rel=1e-6, abs=0)


def test_error_curve_rejects_fixed_width_formats_bad_bits_and_empty_input():
    x = torch.randn(100)
    with pytest.raises(ValueError, match="format"):
        error_curve(x, QuantSpec(format="nf4"))
    with pytest.raises(ValueError, match="bits"):
        error_curve(x, QuantSpec(), bits=[4, 17])
    with pytest.raises(ValueError, match="empty"):
        error_curve(torch.zeros(0), QuantSpec())
    with pytest.raises(ValueError, match="NaN"):
        error_curve(torch.tensor([1.0, float("nan")]), QuantSpec())


def test_error_curve_of_a_constant_tensor_is_exact_at_every_bit_width():
    df = error_curve(torch.full((10, 10), -2.75), QuantSpec(scheme="asymmetric", granularity="channel"))
    assert (df.mse == 0).all() and (df.sqnr_db == math.inf).all() and (df.max_abs_error == 0).all()


# --- clip_sweep --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["symmetric", "asymmetric"])
@pytest.mark.parametrize("granularity", ["tensor", "channel"])
def test_clip_sweep_at_ratio_one_equals_minmax_error(scheme, granularity):
    x = torch.randn(20, 300, generator=_gen(8))
    spec = QuantSpec(bits=4, scheme=scheme, granularity=granularity)
    df = clip_sweep(x, spec, ratios=[0.25, 0.5, 1.0])
    assert list(df.columns) == ["ratio", "mse", "sqnr_db"]
    at_one = df[df.ratio == 1.0].iloc[0]
    x_hat = fake_quant(x, spec)
    assert at_one.mse == pytest.approx(metrics.mse(x, x_hat), rel=1e-12)
    assert at_one.sqnr_db == pytest.approx(metrics.sqnr_db(x, x_hat), rel=1e-12)
    default = clip_sweep(x, spec)
    assert len(default) == 39 and default.ratio.iloc[-1] == 1.0
    assert default.mse.iloc[-1] == pytest.approx(at_one.mse, rel=1e-12)


def test_clip_sweep_finds_a_better_ratio_below_one_for_heavy_tails_at_low_bits():
    u = torch.rand(50_000, generator=_gen(9)) - 0.5
    x = -torch.sign(u) * torch.log1p(-2 * u.abs())  # Laplace
    df = clip_sweep(x, QuantSpec(bits=3))
    best = df.loc[df.mse.idxmin()]
    assert best.ratio < 0.6
    assert best.mse < df.mse.iloc[-1] / 2


def test_calibrated_clip_ratio_for_mse_is_the_clip_sweep_argmin_on_the_same_ratio_grid():
    from quantlib.calibration import MSE_CLIP_RATIOS

    u = torch.rand(20_000, generator=_gen(10)) - 0.5
    x = -torch.sign(u) * torch.log1p(-2 * u.abs())
    spec = QuantSpec(bits=4)
    df = clip_sweep(x, spec, ratios=MSE_CLIP_RATIOS.tolist())
    assert calibrated_clip_ratio(x, spec.replace(calibration="mse")) == pytest.approx(
        df.ratio[df.mse.idxmin()], rel=1e-6
    )


# --- summarize ---------------------------------------------------------------------------------------------------


def test_summarize_counts_levels_used_and_nothing_clipped_for_the_docstring_case():
    r = summarize(torch.linspace(-1, 1, 1001), QuantSpec(bits=4))
    assert (r.levels_used, r.levels_available, r.fraction_clipped) == (15.0, 16, 0.0)
    assert r.mse == pytest.approx(metrics.mse(torch.linspace(-1, 1, 1001), r.x_hat))


def test_summarize_on_a_hand_built_case():
    # s = 1, z = 0 on the int3 grid [-4, 3]: values 0, 1, 2 in range, 10 and -10 clipped, 1.2 rounds to 1
    spec = QuantSpec(bits=3)
    qp = QParams(torch.tensor(1.0), torch.tensor(0, dtype=torch.int32), spec.qmin, spec.qmax)
    x = torch.tensor([0.0, 1.0, 2.0, 1.2, 10.0, -10.0, 3.4, -4.4])
    r = summarize(x, spec, qp)
    assert r.x_hat.tolist() == pytest.approx([0.0, 1.0, 2.0, 1.0, 3.0, -4.0, 3.0, -4.0])
    assert r.levels_used == 5.0  # codes {0, 1, 2, 3, -4}
    assert r.levels_available == 8
    assert r.fraction_clipped == 2 / 8  # 3.4 and -4.4 round onto the grid's ends: not clipped
    assert r.max_abs_error == pytest.approx(7.0)
    assert r.block_clip_lo.tolist() == [-4.0] and r.block_clip_hi.tolist() == [3.0]


def test_summarize_reports_one_entry_per_block():
    x = torch.randn(6, 200, generator=_gen(11)) * torch.arange(1, 7)[:, None]
    x[0, 0] = 1000.0
    spec = QuantSpec(bits=4, granularity="channel", calibration="percentile", percentile=98.0)
    r = summarize(x, spec)
    for arr in (r.block_min, r.block_max, r.block_clip_lo, r.block_clip_hi, r.block_mse):
        assert arr.shape == (6,)
    assert r.block_max[0] == 1000.0
    assert r.block_clip_hi[0] < 1000.0  # the outlier channel is clipped ...
    assert 0 < r.fraction_clipped < 0.2
    assert r.block_mse[0] == r.block_mse.max()  # ... and has the largest error
    assert 1 <= r.levels_used <= 16


def test_summarize_of_a_constant_tensor_uses_one_level_and_is_exact():
    r = summarize(torch.full((4, 4), 0.3), QuantSpec(bits=8, scheme="asymmetric"))
    assert r.levels_used == 1.0 and r.fraction_clipped == 0.0
    assert r.mse == 0.0 and r.sqnr_db == math.inf and r.cosine_similarity == pytest.approx(1.0)


@pytest.mark.parametrize("fmt", ["fp8_e4m3", "nf4"])
def test_summarize_works_for_non_integer_formats(fmt):
    x = torch.randn(8, 64, generator=_gen(12))
    r = summarize(x, QuantSpec(format=fmt, granularity="channel"))
    assert 1 < r.levels_used <= r.levels_available
    assert r.fraction_clipped == 0.0
    assert r.sqnr_db > 10


def test_summarize_rejects_an_empty_tensor():
    with pytest.raises(ValueError, match="empty"):
        summarize(torch.zeros(0), QuantSpec())


def test_histogram_returns_counts_and_edges_not_raw_values():
    counts, edges = histogram(torch.tensor([0.0, 0.1, 0.9, 1.0]), bins=2)
    assert counts.tolist() == [2, 2] and edges.tolist() == [0.0, 0.5, 1.0]
    counts, edges = histogram(torch.full((5,), 3.0), bins=4)
    assert counts.sum() == 5 and edges[0] < 3.0 < edges[-1]
    counts, edges = histogram(torch.zeros(0), bins=3)
    assert counts.tolist() == [0, 0, 0] and len(edges) == 4


def test_choose_qparams_is_consistent_with_summarize_and_fake_quant():
    x = torch.randn(10, 20, generator=_gen(13))
    spec = QuantSpec(bits=5, scheme="asymmetric", granularity="channel")
    r = summarize(x, spec)
    qp = choose_qparams(x, spec)
    assert torch.equal(r.qparams.scale, qp.scale)
    assert torch.equal(r.x_hat, fake_quant(x, spec, qp))
