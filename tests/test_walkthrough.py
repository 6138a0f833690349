"""quantlib.walkthrough: one value through the formula (equal to quantlib.quantize), the error formulas, and a
10 -> 1 Linear in integer arithmetic - correct vs the primer's naive way.

Measured on tiny-linear's 256 eval inputs at 8 bits (asymmetric inputs): correct path max error 0.055
(1.26 output LSBs, bound 0.15), RMS 0.021; naive path RMS 1.02 (49x worse; 138 of 256 outputs clipped at
±max|w| = 1.09 while y spans [-5.7, 5.6]); the primer's literal code is off by up to 658 (it returns ≈ y / s_w).
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import sample_models
from quantlib import QuantSpec, dequantize, fake_quant, metrics, quantize
from quantlib.kernels import MIN_SCALE, qparams_from_range
from quantlib.spec import QParams
from quantlib.walkthrough import (
    DB_PER_BIT,
    FLOAT32_MAX,
    NAIVE_EXPLANATION,
    check_trace_inputs,
    integer_linear,
    mse_formula,
    rule_of_thumb_sqnr,
    trace_value,
)

finite = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False, allow_infinity=False, width=32)


def traceable(lo: float, hi: float, bits: int, scheme: str) -> bool:
    """Whether trace_value takes this range (a non-zero range whose scale would fall below float32's smallest
    normal number is refused as too narrow: the library would widen its grid to MIN_SCALE)."""
    try:
        check_trace_inputs(0.0, lo, hi, bits, scheme)
    except ValueError as err:
        assert "too narrow" in str(err)
        return False
    return True


def qparams_of(lo: float, hi: float, spec: QuantSpec) -> QParams:
    scale, zp = qparams_from_range(torch.tensor([lo]), torch.tensor([hi]), spec)
    return QParams(scale.reshape(()), zp.reshape(()), spec.qmin, spec.qmax)


# ------------------------------------------------------------------------------------------ trace_value


@settings(max_examples=400, deadline=None)
@given(
    x=finite,
    a=finite,
    b=finite,
    bits=st.integers(2, 16),
    scheme=st.sampled_from(["symmetric", "asymmetric"]),
    rounding=st.sampled_from(["nearest", "truncate", "stochastic"]),
)
def test_trace_value_equals_quantlib_quantize_and_dequantize(x, a, b, bits, scheme, rounding):
    lo, hi = min(a, b), max(a, b)
    assume(traceable(lo, hi, bits, scheme))
    t = trace_value(x, lo, hi, bits, scheme, rounding)
    spec = QuantSpec(bits=bits, scheme=scheme, rounding=rounding)
    qp = qparams_of(lo, hi, spec)
    qt = quantize(torch.tensor([x]), spec, qp)
    assert t.q == int(qt.q)
    assert t.x_hat == float(dequantize(qt))
    assert t.x_hat == float(fake_quant(torch.tensor([x]), spec, qp))
    assert (t.scale, t.zero_point) == (float(qp.scale), int(qp.zero_point))
    assert t.qmin <= t.q <= t.qmax


@settings(max_examples=200, deadline=None)
@given(a=finite, b=finite, u=st.floats(0, 1), bits=st.integers(2, 16), scheme=st.sampled_from(["symmetric", "asymmetric"]))
def test_trace_value_equals_quantize_with_a_min_max_range_from_data(a, b, u, bits, scheme):
    # quantize() calibrating min-max on [lo, x, hi] must land on the same range, so the same integer.
    lo, hi = min(a, b), max(a, b)
    x = float(torch.tensor(lo + u * (hi - lo), dtype=torch.float32).clamp(lo, hi))
    assume(traceable(lo, hi, bits, scheme))
    spec = QuantSpec(bits=bits, scheme=scheme)
    t = trace_value(x, lo, hi, bits, scheme)
    assert t.q == int(quantize(torch.tensor([lo, x, hi]), spec).q[1])


@settings(max_examples=300, deadline=None)
@given(x=finite, a=finite, b=finite, bits=st.integers(2, 12), scheme=st.sampled_from(["symmetric", "asymmetric"]))
def test_rounding_error_is_at_most_half_a_step_unless_clipped(x, a, b, bits, scheme):
    lo, hi = min(a, b), max(a, b)
    assume(traceable(lo, hi, bits, scheme))
    t = trace_value(x, lo, hi, bits, scheme)
    grid_lo, grid_hi = (t.qmin - t.zero_point) * t.scale, (t.qmax - t.zero_point) * t.scale
    if t.clipped:
        assert t.x_hat in (pytest.approx(grid_lo), pytest.approx(grid_hi))
    else:
        assert t.abs_error <= t.scale / 2 * (1 + 1e-5) + 1e-30
    assert t.error == pytest.approx(t.x - t.x_hat)


def test_trace_value_worked_examples():
    t = trace_value(0.3, -1.0, 1.0, bits=4)
    assert (t.range_lo, t.range_hi, t.qmin, t.qmax, t.zero_point) == (-1.0, 1.0, -8, 7, 0)
    assert t.scale == pytest.approx(1 / 7) and t.q == 2 and t.x_hat == pytest.approx(2 / 7) and not t.clipped
    t = trace_value(2.0, -1.0, 3.0, bits=2, scheme="asymmetric")
    assert (t.scale, t.zero_point, t.rounded, t.shifted, t.q) == (pytest.approx(4 / 3), 1, 2.0, 3.0, 3)
    t = trace_value(9.0, -1.0, 1.0, bits=4)  # far outside: clipped to the top of the grid
    assert t.clipped and t.q == 7 and t.x_hat == pytest.approx(1.0)


def test_asymmetric_range_is_widened_to_include_zero():
    t = trace_value(1.0, 0.5, 2.0, bits=8, scheme="asymmetric")
    assert (t.range_lo, t.range_hi, t.zero_point) == (0.0, 2.0, 0)
    t = trace_value(-1.0, -3.0, -0.5, bits=8, scheme="asymmetric")
    assert (t.range_lo, t.range_hi, t.zero_point) == (-3.0, 0.0, 255)


def test_truncation_rounds_toward_zero():
    assert trace_value(0.29, -1.0, 1.0, bits=4, rounding="truncate").rounded == 2.0  # 2.03 -> 2
    assert trace_value(-0.29, -1.0, 1.0, bits=4, rounding="truncate").rounded == -2.0
    assert trace_value(0.28, -1.0, 1.0, bits=4, rounding="nearest").rounded == 2.0  # 1.96 -> 2
    assert trace_value(0.28, -1.0, 1.0, bits=4, rounding="truncate").rounded == 1.0


def test_steps_table_lists_the_formula_in_order():
    t = trace_value(0.3, -1.0, 1.0, bits=4)
    rows = t.steps()
    assert [r[0] for r in rows] == [
        "value", "range low", "range high", "grid", "scale", "zero point", "divide", "round", "shift", "clamp",
        "dequantize", "error", "clipped",
    ]
    values = {r[0]: r[2] for r in rows}
    assert values["clamp"] == t.q and values["dequantize"] == t.x_hat and values["grid"] == "[-8, 7]"


@pytest.mark.parametrize(
    "args, message",
    [
        ((0.0, 1.0, -1.0, 8), "range is empty"),
        ((float("nan"), -1.0, 1.0, 8), "x must be a finite number"),
        ((0.0, -math.inf, 1.0, 8), "lo must be a finite number"),
        ((0.0, -1.0, 1.0, 1), "bits must be an integer"),
        ((0.0, -1e39, 1.0, 8), "beyond float32's range"),
    ],
)
def test_trace_value_rejects_bad_settings(args, message):
    with pytest.raises(ValueError, match=message):
        trace_value(*args)


@pytest.mark.parametrize(
    "x, lo, hi, bits, scheme, message",
    [
        # the walkthrough links of the hostile-input sweep
        (1e308, -1e308, 1e308, 8, "symmetric", r"x = 1e\+308 is beyond float32's range"),
        (-5e-324, -0.0, 5e-324, 8, "symmetric", "too narrow for a float32 scale at 8 bits"),
        (0.0, -1e-37, 1e-37, 8, "asymmetric", "too narrow"),
        (0.0, 1e-40, 1e-40, 8, "symmetric", "too narrow"),  # a constant, too small for any float32 scale
        (-3.4e38, -3.4e38, 3.4e38, 2, "asymmetric", "too wide for float32 at 2 bits"),
        (1e309, -1.0, 1.0, 8, "symmetric", "x must be a finite number"),
    ],
)
def test_extreme_but_finite_numbers_get_a_plain_value_error(x, lo, hi, bits, scheme, message):
    with pytest.raises(ValueError, match=message):
        trace_value(x, lo, hi, bits, scheme)


def test_ranges_at_the_edges_of_float32_still_trace():
    # the widest symmetric range float32 holds, and the narrowest range whose scale is still a normal float32
    t = trace_value(3e38, -3.4e38, 3.4e38, 8)
    assert t.x_hat == pytest.approx(3e38, rel=1e-2) and math.isfinite(t.x_hat) and abs(t.x_hat) <= FLOAT32_MAX
    t = trace_value(MIN_SCALE, 0.0, 2 * 127 * MIN_SCALE, 8)  # s = 2 · MIN_SCALE: fine
    assert t.scale == pytest.approx(2 * MIN_SCALE, rel=1e-6) and t.q == 0
    with pytest.raises(ValueError, match="too narrow"):
        trace_value(0.0, 0.0, 127 * MIN_SCALE / 2, 8)  # s = MIN_SCALE / 2: not
    t = trace_value(4.0, 0.0, 0.0, 2)  # all-zero range: x / s overflows float32 and is clipped, as quantize does
    assert t.clipped and t.q == t.qmax and math.isinf(t.x_over_s) and math.isfinite(t.x_hat)


def test_zero_range_gives_a_usable_scale():
    t = trace_value(0.0, 0.0, 0.0, bits=8)
    assert t.x_hat == 0.0 and t.scale > 0
    t = trace_value(0.5, 0.5, 0.5, bits=8)  # constant: comes back exactly
    assert t.x_hat == 0.5


# ---------------------------------------------------------------------------------------- error formulas


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(finite, finite), min_size=1, max_size=50))
def test_mse_formula_equals_quantlib_metrics_mse(pairs):
    x = torch.tensor([p[0] for p in pairs])
    x_hat = torch.tensor([p[1] for p in pairs])
    assert mse_formula(x, x_hat) == pytest.approx(metrics.mse(x, x_hat), rel=1e-12, abs=1e-300)


def test_mse_formula_of_a_real_quantization_and_bad_input():
    x = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    x_hat = fake_quant(x, QuantSpec(bits=4))
    assert mse_formula(x, x_hat) == pytest.approx(metrics.mse(x, x_hat), rel=1e-12)
    with pytest.raises(ValueError, match="differ in size"):
        mse_formula(torch.ones(2), torch.ones(3))
    with pytest.raises(ValueError, match="at least one value"):
        mse_formula(torch.ones(0), torch.ones(0))


@pytest.mark.parametrize("scheme", ["asymmetric", "symmetric"])
@pytest.mark.parametrize("bits", [4, 6, 8, 10, 12])
def test_six_db_per_bit_on_uniform_data(bits, scheme):
    x = torch.rand(100_000, generator=torch.Generator().manual_seed(0)) * 2 - 1
    measured = metrics.sqnr_db(x, fake_quant(x, QuantSpec(bits=bits, scheme=scheme)))
    # A min-max grid has 2^b - 1 steps (2^b - 2 symmetric) rather than 2^b: that, plus sampling noise, is the gap.
    steps = 2**bits - (1 if scheme == "asymmetric" else 2)
    allowed = 20 * math.log10(2**bits / steps) + 0.05
    assert abs(measured - rule_of_thumb_sqnr(bits)) <= allowed
    assert rule_of_thumb_sqnr(bits) == pytest.approx(6.0206 * bits, abs=1e-3)  # constant 0 for uniform


def test_each_extra_bit_adds_six_db():
    x = torch.rand(100_000, generator=torch.Generator().manual_seed(1)) * 2 - 1
    sqnr = [metrics.sqnr_db(x, fake_quant(x, QuantSpec(bits=b, scheme="asymmetric"))) for b in range(6, 13)]
    for lo, hi in zip(sqnr, sqnr[1:], strict=False):
        assert hi - lo == pytest.approx(DB_PER_BIT, abs=0.15)


def test_gaussian_loses_what_its_peak_to_rms_ratio_says():
    x = torch.randn(100_000, generator=torch.Generator().manual_seed(2))
    peak_to_rms = float(x.abs().max() / x.square().mean().sqrt())  # ≈ 4.4-4.7 for 1e5 samples
    measured = metrics.sqnr_db(x, fake_quant(x, QuantSpec(bits=8, scheme="symmetric")))
    assert measured == pytest.approx(rule_of_thumb_sqnr(8, peak_to_rms), abs=0.5)
    assert rule_of_thumb_sqnr(8, peak_to_rms) < rule_of_thumb_sqnr(8) - 7  # heavy tails cost > 7 dB


def test_rule_of_thumb_rejects_nonsense():
    with pytest.raises(ValueError, match="bits"):
        rule_of_thumb_sqnr(0)
    with pytest.raises(ValueError, match="peak_to_rms"):
        rule_of_thumb_sqnr(8, peak_to_rms=0.5)


# -------------------------------------------------------------------------------------- integer_linear


@pytest.fixture(scope="module")
def tiny():
    sm = sample_models.load("tiny-linear")
    return sm.model.linear.weight.detach(), sm.model.linear.bias.detach(), sm.eval_inputs


@pytest.mark.parametrize("scheme", ["asymmetric", "symmetric"])
def test_integer_path_matches_float_within_its_error_bound(tiny, scheme):
    w, b, x = tiny
    r = integer_linear(w, b, x, bits=8, input_scheme=scheme)
    c = r.correct
    assert r.float_output.shape == (256, 1) and c.output.shape == (256, 1)
    assert not c.inputs_clipped and c.fits_int32
    assert bool((c.error.abs() <= c.error_bound).all())
    assert c.error_in_lsb <= 2.0  # measured 1.26 / 1.27 output steps
    torch.testing.assert_close(c.output, r.float_output, rtol=0, atol=2 * c.s_y)


@pytest.mark.parametrize("scheme", ["asymmetric", "symmetric"])
def test_naive_path_is_at_least_ten_times_worse(tiny, scheme):
    w, b, x = tiny
    r = integer_linear(w, b, x, bits=8, input_scheme=scheme)
    assert r.naive_to_correct_error_ratio >= 10  # measured 49x / 51x
    assert r.naive.max_abs_error > 10 * r.correct.max_abs_error
    assert r.explanation == NAIVE_EXPLANATION and "s_w·s_x" in r.explanation


def test_naive_path_clips_outputs_at_the_weight_range_and_loses_the_bias():
    w = torch.tensor([[0.5, -0.25, 0.1]])
    b = torch.tensor([0.3])
    x = torch.tensor([[4.0, -4.0, 4.0], [0.0, 0.0, 0.0]])  # y = 3.7 and y = b = 0.3
    r = integer_linear(w, b, x, bits=8)
    assert r.correct.output[:, 0].tolist() == pytest.approx([3.7, 0.3], abs=2 * r.correct.s_y)
    naive = r.naive.output[:, 0].tolist()
    assert naive[0] == pytest.approx(0.5, abs=1e-6)  # clipped at 127 · s_w = max|w|
    assert abs(naive[1]) < 0.02  # bias counted in units of s_w·s_x instead of s_w: worth b · s_x ≈ 0.01
    assert r.naive.outputs_clipped == 1


def test_primer_code_literally_returns_y_over_s_w(tiny):
    w, b, x = tiny
    r = integer_linear(w, b, x, bits=8)
    s_w = r.correct.s_w
    # Weight rounding costs at most s_w/2 · Σ|x_i| (x stays float in the primer's code), bias rounding s_w / 2; the
    # final round(·/s_w)·s_w moves the (≈ y / s_w) result by at most s_w / 2, i.e. s_w² / 2 once multiplied back.
    bound = s_w / 2 * x.abs().sum(dim=1, keepdim=True) + s_w / 2 + s_w * s_w / 2 + 1e-5
    assert bool(((r.naive.primer_output * s_w - r.float_output).abs() <= bound).all())
    assert r.naive.primer_max_abs_error > 100


def test_integer_codes_are_quantlib_codes(tiny):
    w, b, x = tiny
    r = integer_linear(w, b, x, bits=8, input_scheme="asymmetric")
    assert torch.equal(r.correct.q_w, quantize(w, QuantSpec(bits=8)).q.long())
    qx = quantize(x, QuantSpec(bits=8, scheme="asymmetric"))
    assert torch.equal(r.correct.q_x, qx.q.long())
    assert (r.correct.s_x, r.correct.z_x) == (float(qx.qparams.scale), int(qx.qparams.zero_point))


def test_accumulator_is_the_product_of_the_dequantized_operands(tiny):
    w, b, x = tiny
    c = integer_linear(w, b, x, bits=8).correct
    w_hat = c.q_w.double() * c.s_w
    x_hat = (c.q_x - c.z_x).double() * c.s_x
    b_hat = c.q_b.double() * c.s_w * c.s_x
    torch.testing.assert_close(c.acc_total.double() * c.s_w * c.s_x, x_hat @ w_hat.T + b_hat, rtol=1e-12, atol=1e-12)
    # zero-point correction: Σ q_w (q_x - z_x) = Σ q_w q_x - z_x Σ q_w
    assert torch.equal(c.acc - c.zero_point_correction, (c.q_x - c.z_x) @ c.q_w.T)
    assert c.multiplier == pytest.approx(c.s_w * c.s_x / c.s_y)


def test_symmetric_inputs_need_no_zero_point_correction(tiny):
    w, b, x = tiny
    c = integer_linear(w, b, x, bits=8, input_scheme="symmetric").correct
    assert c.z_x == 0 and not c.zero_point_correction.any()


def test_a_single_input_vector_and_a_wider_layer():
    gen = torch.Generator().manual_seed(0)
    w, b, x = torch.randn(3, 10, generator=gen), torch.randn(3, generator=gen), torch.randn(10, generator=gen)
    r = integer_linear(w, b, x, bits=8)
    assert r.correct.output.shape == (1, 3) and r.correct.q_x.shape == (1, 10)
    assert bool((r.correct.error.abs() <= r.correct.error_bound).all())
    r = integer_linear(w, None, torch.randn(5, 10, generator=gen))
    assert r.correct.q_b.tolist() == [0, 0, 0]


def test_lower_bit_widths_stay_within_their_bound(tiny):
    w, b, x = tiny
    for bits in (4, 6):
        c = integer_linear(w, b, x, bits=bits).correct
        assert bool((c.error.abs() <= c.error_bound).all())


def test_sixteen_bit_accumulator_overflow_is_flagged(tiny):
    w, b, x = tiny
    assert not integer_linear(w, b, x, bits=16).correct.fits_int32


def test_all_zero_inputs_work_with_a_given_input_range():
    r = integer_linear(torch.ones(1, 3), torch.tensor([0.5]), torch.zeros(2, 3), input_range=(-1.0, 1.0))
    assert r.correct.output[:, 0].tolist() == pytest.approx([0.5, 0.5], abs=1e-6)


def test_given_ranges_are_used_and_clipping_is_reported(tiny):
    w, b, x = tiny
    r = integer_linear(w, b, x, bits=8, input_range=(-1.0, 1.0), output_range=(-1.0, 1.0))
    assert r.correct.inputs_clipped and r.correct.outputs_clipped
    assert r.correct.s_x == pytest.approx(2 / 255)


@pytest.mark.parametrize(
    "weight, bias, x, message",
    [
        (torch.ones(10), None, torch.ones(10), "weight must be"),
        (torch.ones(1, 10), torch.ones(2), torch.ones(10), "bias has 2 values"),
        (torch.ones(1, 10), None, torch.ones(9), "input must have shape"),
        (torch.ones(1, 10), None, torch.full((10,), float("nan")), "NaN"),
        (torch.zeros(1, 10), torch.ones(1), torch.ones(10), "weight is all zeros"),
        (torch.ones(1, 10), torch.ones(1), torch.zeros(4, 10), "pass input_range"),
    ],
)
def test_integer_linear_rejects_bad_shapes_and_values(weight, bias, x, message):
    with pytest.raises(ValueError, match=message):
        integer_linear(weight, bias, x)
