"""Calibration: how each method picks the range [lo, hi], per tensor and per block."""

from __future__ import annotations

import math

import pytest
import torch

from quantlib import QuantSpec, calibrated_clip_ratio, choose_qparams, clip_range, fake_quant, metrics
from quantlib.calibration import MSE_CLIP_RATIOS, compute_range, percentile_range
from quantlib.layout import BlockLayout

METHODS = ["minmax", "percentile", "mse", "entropy"]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _laplace(n: int, seed: int) -> torch.Tensor:
    u = torch.rand(n, generator=_gen(seed)) - 0.5
    return -torch.sign(u) * torch.log1p(-2 * u.abs())  # Laplace(0, 1) by inverse CDF


def _with_outliers(n: int, seed: int, value: float = 40.0, count: int = 20) -> torch.Tensor:
    x = torch.randn(n, generator=_gen(seed))
    x[:count] = value
    x[count : 2 * count] = -value
    return x


# --- percentile -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("p", "n"), [(99.0, 100_000), (99.9, 100_000), (99.99, 100_000), (99.9, 1000), (90.0, 12345)])
def test_symmetric_percentile_clips_the_expected_number_of_values(p, n):
    x = torch.randn(n, generator=_gen(1))  # distinct values
    spec = QuantSpec(calibration="percentile", percentile=p)
    lo, hi = compute_range(x.reshape(1, -1), spec)
    assert lo.item() == -hi.item()
    clipped = int((x.abs() > hi).sum())
    # nearest rank: the ceil(p N / 100)-th smallest |x| is kept, everything above it is clipped
    assert clipped == n - math.ceil(round(p * 1000) * n / 100_000)
    assert clipped == pytest.approx((100 - p) / 100 * n, abs=1)


def test_percentile_rank_is_not_off_by_one_from_binary_floating_point():
    # 99.9 / 100 * 1000 = 999.0000000000001 in binary floating point; the 999th value is the right rank.
    x = torch.arange(1, 1001, dtype=torch.float32)
    lo, hi = percentile_range(x.reshape(1, -1), QuantSpec(calibration="percentile", percentile=99.9))
    assert hi.item() == 999.0
    assert lo.item() == -999.0


@pytest.mark.parametrize("p", [99.0, 99.9])
def test_asymmetric_percentile_clips_about_the_expected_fraction_at_each_end(p):
    n = 100_000
    x = torch.randn(n, generator=_gen(2)) * 2 + 1
    spec = QuantSpec(calibration="percentile", percentile=p, scheme="asymmetric")
    lo, hi = compute_range(x.reshape(1, -1), spec)
    expected = (100 - p) / 100 * n
    assert int((x > hi).sum()) == pytest.approx(expected, abs=1)
    assert int((x < lo).sum()) == pytest.approx(expected, abs=1)


@pytest.mark.parametrize("scheme", ["symmetric", "asymmetric"])
def test_percentile_100_equals_minmax(scheme):
    x = torch.randn(50, 200, generator=_gen(3))
    a = choose_qparams(x, QuantSpec(scheme=scheme, granularity="channel", calibration="percentile", percentile=100))
    b = choose_qparams(x, QuantSpec(scheme=scheme, granularity="channel"))
    assert torch.equal(a.scale, b.scale) and torch.equal(a.zero_point, b.zero_point)


def test_percentile_is_computed_per_channel():
    x = torch.randn(4, 10_000, generator=_gen(4)) * torch.tensor([0.01, 1.0, 10.0, 1000.0])[:, None]
    spec = QuantSpec(calibration="percentile", percentile=99.0, granularity="channel")
    lo, hi = compute_range(BlockLayout.of(x.shape, spec).rows(x), spec)
    for c in range(4):
        clipped = int((x[c].abs() > hi[c]).sum())
        assert clipped == 100, f"channel {c}"


# --- MSE --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["symmetric", "asymmetric"])
@pytest.mark.parametrize("data", ["laplace", "outliers"])
def test_mse_calibration_clips_heavy_tailed_data_at_4_bits_and_beats_minmax(scheme, data):
    x = _laplace(50_000, 5) if data == "laplace" else _with_outliers(50_000, 5, value=25.0, count=15)
    spec = QuantSpec(bits=4, scheme=scheme)
    ratio = calibrated_clip_ratio(x, spec.replace(calibration="mse"))
    assert ratio < 0.8
    mse_opt = metrics.mse(x, fake_quant(x, spec.replace(calibration="mse")))
    mse_minmax = metrics.mse(x, fake_quant(x, spec))
    assert mse_opt < 0.5 * mse_minmax


def test_mse_calibration_keeps_the_full_range_for_uniform_data_at_8_bits():
    x = torch.rand(50_000, generator=_gen(6)) * 2 - 1
    assert calibrated_clip_ratio(x, QuantSpec(bits=8, calibration="mse")) >= 0.9


def test_mse_calibration_never_does_worse_than_minmax_on_the_values_it_searched():
    x = _laplace(50_000, 7).reshape(50, 1000)
    for bits in (2, 3, 4, 6, 8):
        spec = QuantSpec(bits=bits, granularity="channel")
        err_mse = (fake_quant(x, spec.replace(calibration="mse")) - x).square().sum(dim=1)
        err_minmax = (fake_quant(x, spec) - x).square().sum(dim=1)
        assert torch.all(err_mse <= err_minmax * (1 + 1e-6)), bits


def test_mse_ratios_are_the_documented_grid():
    assert MSE_CLIP_RATIOS[0].item() == 1.0
    assert MSE_CLIP_RATIOS[-1].item() == pytest.approx(0.02)
    assert len(MSE_CLIP_RATIOS) == 50


# --- entropy ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["symmetric", "asymmetric"])
def test_entropy_threshold_is_below_the_max_on_data_with_outliers_at_8_bits(scheme):
    x = _with_outliers(100_000, 8, value=50.0)
    spec = QuantSpec(bits=8, scheme=scheme, calibration="entropy")
    lo, hi = compute_range(x.reshape(1, -1), spec)
    assert 2.0 < hi.item() < 10.0, "well below the outlier at 50, above the bulk's 2 sigma"
    assert -10.0 < lo.item() < -2.0
    assert calibrated_clip_ratio(x, spec) < 0.25


def test_entropy_keeps_the_max_when_the_histogram_is_finer_than_the_grid():
    # 16 bits: 32768 levels per side exceed the 2048 bins, so there is nothing to gain by clipping
    x = _with_outliers(10_000, 9)
    lo, hi = compute_range(x.reshape(1, -1), QuantSpec(bits=16, calibration="entropy"))
    assert hi.item() == float(x.abs().max())


def test_entropy_is_per_channel_when_granular_each_channel_its_own_threshold():
    scales = torch.tensor([0.01, 0.1, 1.0, 10.0, 100.0, 3.0, 0.5, 7.0])
    x = torch.randn(8, 20_000, generator=_gen(10)) * scales[:, None]
    x[:, :5] = 50 * scales[:, None]  # every channel has outliers at 50 sigma
    spec = QuantSpec(bits=8, calibration="entropy", granularity="channel")
    qp = choose_qparams(x, spec)
    _, hi = clip_range(spec, qp)
    ratio = hi.reshape(-1) / scales
    assert torch.all((ratio > 2.0) & (ratio < 10.0)), ratio
    # and it is the same threshold as calibrating each channel on its own
    for c in (0, 4):
        alone = choose_qparams(x[c : c + 1], spec)
        assert alone.scale.item() == qp.scale[c].item()


# --- all methods, per block --------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("scheme", ["symmetric", "asymmetric"])
@pytest.mark.parametrize(
    ("granularity", "shape", "blocks", "param_shape"),
    [
        ({"granularity": "channel"}, (8, 300), 8, (8, 1)),
        ({"granularity": "channel", "axis": 1}, (30, 8), 8, (1, 8)),
        ({"granularity": "group", "group_size": 50}, (4, 300), 24, (4, 6, 1)),
    ],
)
def test_every_method_returns_one_range_per_channel_or_group(method, scheme, granularity, shape, blocks, param_shape):
    spec = QuantSpec(bits=4, scheme=scheme, calibration=method, **granularity)
    layout = BlockLayout.of(shape, spec)
    # every block holds the same pattern (with outliers) times its own magnitude: a shared range would show
    k = math.prod(shape) // blocks
    pattern = _with_outliers(k, 11, value=6.0, count=1) + (0.5 if scheme == "asymmetric" else 0.0)
    mags = torch.logspace(-2, 2, blocks)
    rows = pattern[None, :] * mags[:, None]
    x = _from_rows(rows, shape, spec)
    assert torch.equal(layout.rows(x), rows)
    lo, hi = compute_range(rows, spec)
    assert lo.shape == hi.shape == (blocks,)
    qp = choose_qparams(x, spec)
    assert qp.scale.shape == param_shape and qp.num_blocks == blocks
    s = qp.scale.reshape(-1)
    assert torch.all(s[1:] > s[:-1]), "scales follow the block magnitudes"
    # the same pattern at another magnitude gives the same range, scaled (up to float32 rounding)
    assert torch.allclose(hi / mags, hi[0] / mags[0], rtol=1e-5)
    assert torch.allclose(lo / mags, lo[0] / mags[0], rtol=1e-5)


def _from_rows(rows: torch.Tensor, shape: tuple[int, ...], spec: QuantSpec) -> torch.Tensor:
    """The tensor of ``shape`` whose rows view (under ``spec``) is ``rows``."""
    if spec.granularity == "group":
        return rows.reshape(shape)
    axis = spec.axis % len(shape)
    moved = (shape[axis], *shape[:axis], *shape[axis + 1 :])
    return rows.reshape(moved).movedim(0, axis)


@pytest.mark.parametrize("method", METHODS)
def test_calibrated_range_never_exceeds_minmax(method):
    x = _with_outliers(20_000, 12).reshape(20, 1000)
    for scheme in ("symmetric", "asymmetric"):
        spec = QuantSpec(bits=4, scheme=scheme, calibration=method, granularity="channel")
        rows = BlockLayout.of(x.shape, spec).rows(x)
        lo, hi = compute_range(rows, spec)
        mn, mx = rows.amin(dim=1), rows.amax(dim=1)
        amax = torch.maximum(mn.abs(), mx.abs())
        assert torch.all(hi <= amax) and torch.all(lo >= -amax)


@pytest.mark.parametrize("method", METHODS)
def test_calibration_is_deterministic(method):
    x = _laplace(30_000, 13).reshape(30, 1000)
    spec = QuantSpec(bits=4, calibration=method, granularity="channel")
    a, b = choose_qparams(x, spec), choose_qparams(x.clone(), spec)
    assert torch.equal(a.scale, b.scale) and torch.equal(a.zero_point, b.zero_point)


def test_calibrated_clip_ratio_is_one_for_minmax_and_below_one_for_clipping_methods():
    x = _with_outliers(50_000, 14)
    assert calibrated_clip_ratio(x, QuantSpec()) == 1.0
    assert calibrated_clip_ratio(x, QuantSpec(calibration="percentile", percentile=99.0)) < 0.2
