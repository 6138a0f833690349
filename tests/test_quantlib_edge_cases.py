"""Bad and awkward input: a clear ValueError naming the problem, or a finite, exact-where-possible answer."""

from __future__ import annotations

import math

import pytest
import torch

from quantlib import (
    QParams,
    QuantSpec,
    choose_qparams,
    clip_range,
    dequantize,
    fake_quant,
    grid,
    metrics,
    quantize,
    summarize,
)

ALL_FORMATS = [
    ("int", "symmetric"),
    ("int", "asymmetric"),
    ("pow2", "symmetric"),
    ("pow2", "asymmetric"),
    ("fp8_e4m3", "symmetric"),
    ("fp8_e5m2", "symmetric"),
    ("nf4", "symmetric"),
]
GRANULARITIES = [
    {"granularity": "tensor"},
    {"granularity": "channel"},
    {"granularity": "channel", "axis": 1},
    {"granularity": "group", "group_size": 4},
]
CALIBRATIONS = ["minmax", "percentile", "mse", "entropy"]


def _id(v: object) -> str:
    return "-".join(str(x) for x in v.values()) if isinstance(v, dict) else str(v)


def _specs(fmt: str, scheme: str, gran: dict, calibration: str = "minmax") -> list[QuantSpec]:
    bits = [2, 3, 8, 16] if fmt in ("int", "pow2") else [8]
    return [QuantSpec(bits=b, format=fmt, scheme=scheme, calibration=calibration, **gran) for b in bits]


# --- constant and all-zero tensors -------------------------------------------------------------------------------


@pytest.mark.parametrize("calibration", CALIBRATIONS)
@pytest.mark.parametrize("gran", GRANULARITIES, ids=_id)
@pytest.mark.parametrize(("fmt", "scheme"), ALL_FORMATS, ids=lambda v: str(v))
def test_all_zero_tensor_comes_back_as_zeros_without_nan(fmt, scheme, gran, calibration):
    x = torch.zeros(3, 8)
    for spec in _specs(fmt, scheme, gran, calibration):
        qp = choose_qparams(x, spec)
        assert torch.all(torch.isfinite(qp.scale)) and torch.all(qp.scale > 0)
        out = fake_quant(x, spec, qp)
        assert torch.equal(out, x), spec
        assert torch.equal(dequantize(quantize(x, spec, qp)), x)


@pytest.mark.parametrize("value", [1.0, -3.7, 0.1, 1e-3, -12345.678, 2.5e-30, 7e29])
@pytest.mark.parametrize("gran", GRANULARITIES, ids=_id)
@pytest.mark.parametrize(("fmt", "scheme"), [f for f in ALL_FORMATS if f[0] != "pow2"], ids=lambda v: str(v))
def test_constant_tensor_comes_back_exactly(fmt, scheme, gran, value):
    x = torch.full((3, 8), value)
    for calibration in CALIBRATIONS:
        for spec in _specs(fmt, scheme, gran, calibration):
            out = fake_quant(x, spec)
            assert torch.equal(out, x), (spec, calibration, out[0, 0].item())


@pytest.mark.parametrize("gran", GRANULARITIES, ids=_id)
@pytest.mark.parametrize("scheme", ["symmetric", "asymmetric"])
def test_constant_tensor_with_pow2_scale_is_exact_for_powers_of_two_and_within_half_a_step_otherwise(scheme, gran):
    # A power-of-two scale cannot put an arbitrary constant on the grid (3.7 has 24 significant bits), but
    # powers of two and small multiples come back exactly, and anything else within half a step.
    for value in (1.0, -0.5, 2.0**-20, 3.0 * 2.0**10):
        x = torch.full((3, 8), value)
        for spec in _specs("pow2", scheme, gran):
            if spec.bits == 2 and abs(value) == 3.0 * 2.0**10:
                continue  # 3 = 1.1b needs two significant bits
            assert torch.equal(fake_quant(x, spec), x), (spec, value)
    x = torch.full((3, 8), -3.7)
    for spec in _specs("pow2", scheme, gran):
        qp = choose_qparams(x, spec)
        out = fake_quant(x, spec, qp)
        assert torch.all(torch.isfinite(out))
        assert float((out - x).abs().max()) <= float(qp.scale.max()) / 2


def test_constant_rows_among_varying_rows_are_exact_per_channel():
    x = torch.randn(5, 16, generator=torch.Generator().manual_seed(0))
    x[1] = 0.37
    x[3] = 0.0
    for scheme in ("symmetric", "asymmetric"):
        out = fake_quant(x, QuantSpec(bits=4, scheme=scheme, granularity="channel"))
        assert torch.equal(out[1], x[1]) and torch.equal(out[3], x[3])


def test_constant_qparams_follow_the_documented_power_of_two_rule():
    c = torch.tensor(3.0)
    s, z = choose_qparams(torch.full((4,), 3.0), QuantSpec(bits=8)).scale, 0
    assert s.item() == 3.0 / 2**6 and z == 0  # |c| / 2^(b-2): c sits on q = 64
    qp = choose_qparams(torch.full((4,), -3.0), QuantSpec(bits=8, scheme="asymmetric"))
    assert qp.scale.item() == 3.0 / 2**7  # |c| / 2^(b-1)
    assert quantize(torch.full((4,), -3.0), QuantSpec(bits=8, scheme="asymmetric")).q.tolist() == [0] * 4
    qp8 = choose_qparams(c.expand(4), QuantSpec(format="fp8_e4m3"))
    assert qp8.scale.item() == 3.0 / 256


# --- NaN / Inf --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_nan_or_inf_input_raises_a_value_error_saying_so(bad, dtype):
    x = torch.tensor([1.0, bad, 2.0], dtype=dtype)
    word = "NaN" if math.isnan(bad) else "infinite"
    spec = QuantSpec()
    calls = [
        lambda: fake_quant(x, spec),
        lambda: quantize(x, spec),
        lambda: choose_qparams(x, spec),
        lambda: fake_quant(x, spec, choose_qparams(torch.ones(3), spec)),
        lambda: summarize(x, spec),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=word):
            call()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_a_single_nan_or_inf_anywhere_in_a_large_tensor_is_caught(dtype):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(1000, 1000, generator=g).to(dtype)
    for position in (0, 1, 31, 32_767, 500_000, 999_998, 999_999):
        for bad, word in ((float("nan"), "NaN"), (float("inf"), "infinite"), (float("-inf"), "infinite")):
            y = x.clone()
            y.view(-1)[position] = bad
            with pytest.raises(ValueError, match=word):
                fake_quant(y, QuantSpec(granularity="channel"))
            with pytest.raises(ValueError, match=word):
                fake_quant(y.t(), QuantSpec())  # non-contiguous


def test_nan_message_counts_the_bad_values():
    x = torch.tensor([float("nan"), float("nan"), float("inf"), 1.0])
    with pytest.raises(ValueError, match="2 NaN and 1 infinite"):
        fake_quant(x, QuantSpec())


def test_float64_values_beyond_float32_range_are_reported_as_such():
    with pytest.raises(ValueError, match="float32"):
        fake_quant(torch.tensor([1e300, 1.0], dtype=torch.float64), QuantSpec())


def test_non_tensor_input_is_a_type_error():
    with pytest.raises(TypeError, match="torch.Tensor"):
        fake_quant([1.0, 2.0], QuantSpec())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="complex"):
        fake_quant(torch.tensor([1 + 2j]), QuantSpec())


# --- empty tensors ----------------------------------------------------------------------------------------------


EMPTY_CASES = [
    (shape, gran)
    for shape in [(0,), (0, 8), (8, 0), (2, 0, 4)]
    for gran in GRANULARITIES
    if gran.get("axis", 0) < len(shape)  # (0,) has no axis 1
]


@pytest.mark.parametrize(("shape", "gran"), EMPTY_CASES, ids=lambda v: _id(v) if isinstance(v, dict) else str(v))
@pytest.mark.parametrize(("fmt", "scheme"), ALL_FORMATS, ids=lambda v: str(v))
def test_empty_tensor_gives_empty_outputs(fmt, scheme, shape, gran):
    x = torch.zeros(shape)
    spec = QuantSpec(format=fmt, scheme=scheme, **gran)
    out = fake_quant(x, spec)
    assert out.shape == x.shape and out.dtype == torch.float32
    qt = quantize(x, spec)
    assert qt.q.shape == x.shape
    assert dequantize(qt).shape == x.shape
    qp = choose_qparams(x, spec)
    assert torch.all(qp.scale == 1) and torch.all(qp.zero_point == 0)


def test_empty_tensor_with_requires_grad_still_works():
    x = torch.zeros(0, requires_grad=True)
    out = fake_quant(x, QuantSpec())
    out.sum().backward()
    assert x.grad is not None and x.grad.shape == (0,)


# --- shapes: 1-element channels, conv weights, group sizes --------------------------------------------------------


@pytest.mark.parametrize(("fmt", "scheme"), ALL_FORMATS, ids=lambda v: str(v))
def test_channels_of_one_element_come_back_exactly(fmt, scheme):
    x = torch.tensor([[3.0], [-2.0], [0.5], [0.0], [1e-20]])
    spec = QuantSpec(format=fmt, scheme=scheme, granularity="channel")
    out = fake_quant(x, spec)
    if fmt == "pow2":
        assert torch.equal(out[:4], x[:4]) and out[4].item() > 0
    else:
        assert torch.equal(out, x)
    assert choose_qparams(x, spec).scale.shape == (5, 1)


def test_a_single_value_and_a_zero_dim_tensor_work_per_tensor():
    assert fake_quant(torch.tensor(3.0), QuantSpec()).item() == 3.0
    assert fake_quant(torch.tensor([-0.25]), QuantSpec(scheme="asymmetric")).item() == -0.25
    with pytest.raises(ValueError, match="at least one dimension"):
        fake_quant(torch.tensor(3.0), QuantSpec(granularity="channel"))


@pytest.mark.parametrize(("module", "axis"), [(torch.nn.Conv2d(4, 6, 3), 0), (torch.nn.ConvTranspose2d(4, 6, 3), 1)])
@pytest.mark.parametrize("scheme", ["symmetric", "asymmetric"])
def test_per_channel_on_conv_weights_gives_each_output_channel_its_own_scale(module, axis, scheme):
    w = module.weight.detach().clone()
    w.select(axis, 2).mul_(100.0)  # one output channel 100x larger
    spec = QuantSpec(bits=4, scheme=scheme, granularity="channel", axis=axis)
    qp = choose_qparams(w, spec)
    expected_shape = [1, 1, 1, 1]
    expected_shape[axis] = 6
    assert list(qp.scale.shape) == expected_shape
    s = qp.scale.reshape(-1)
    assert s[2] > 20 * s[torch.arange(6) != 2].max()
    out = fake_quant(w, spec, qp)
    for c in range(6):
        err = (out.select(axis, c) - w.select(axis, c)).abs().max()
        assert err <= s[c] / 2 * (1 + 1e-5)


def test_channel_axis_out_of_range_is_a_clear_error():
    with pytest.raises(ValueError, match="axis 4 is out of range"):
        fake_quant(torch.zeros(3, 4), QuantSpec(granularity="channel", axis=4))


@pytest.mark.parametrize(("shape", "group"), [((4, 10), 4), ((3, 7), 2), ((5,), 3), ((2, 3, 9), 6)])
def test_last_axis_not_divisible_by_group_size_is_a_clear_error(shape, group):
    spec = QuantSpec(granularity="group", group_size=group)
    for call in (fake_quant, quantize, choose_qparams):
        with pytest.raises(ValueError, match=f"group size {group} does not divide the last dimension"):
            call(torch.zeros(shape), spec)


def test_group_size_equal_to_the_last_axis_is_per_row():
    x = torch.randn(4, 8, generator=torch.Generator().manual_seed(1))
    a = fake_quant(x, QuantSpec(bits=4, granularity="group", group_size=8))
    b = fake_quant(x, QuantSpec(bits=4, granularity="channel"))
    assert torch.equal(a, b)


# --- dtypes -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize(("fmt", "scheme"), ALL_FORMATS, ids=lambda v: str(v))
def test_floating_inputs_keep_their_dtype(dtype, fmt, scheme):
    x = torch.randn(8, 16, generator=torch.Generator().manual_seed(2)).to(dtype)
    spec = QuantSpec(format=fmt, scheme=scheme, granularity="channel")
    out = fake_quant(x, spec)
    assert out.dtype == dtype
    assert torch.equal(out, fake_quant(x.float(), spec).to(dtype))
    assert dequantize(quantize(x, spec)).dtype == dtype


@pytest.mark.parametrize("dtype", [torch.int8, torch.uint8, torch.int32, torch.int64, torch.bool])
def test_integer_and_bool_inputs_give_float32_back(dtype):
    x = torch.tensor([0, 1, 1, 0, 1]).to(dtype) if dtype == torch.bool else torch.arange(-3, 7).to(dtype)
    if dtype == torch.uint8:
        x = torch.arange(0, 250, 7, dtype=torch.uint8)
    out = fake_quant(x, QuantSpec(bits=8, scheme="asymmetric"))
    assert out.dtype == torch.float32
    assert torch.allclose(out, x.float(), atol=float(x.float().abs().max()) / 255)
    assert dequantize(quantize(x, QuantSpec())).dtype == torch.float32


def test_small_integer_range_is_exact_at_8_bits():
    x = torch.arange(-127, 128, dtype=torch.int16)
    assert torch.equal(fake_quant(x, QuantSpec(bits=8)), x.float())


# --- very large and very small magnitudes ------------------------------------------------------------------------


@pytest.mark.parametrize("magnitude", [1e30, 3e38, 1e-30, 1e-36])
@pytest.mark.parametrize("calibration", CALIBRATIONS)
@pytest.mark.parametrize(("fmt", "scheme"), ALL_FORMATS, ids=lambda v: str(v))
def test_extreme_magnitudes_give_finite_sensible_results(fmt, scheme, calibration, magnitude):
    g = torch.Generator().manual_seed(3)
    base = torch.rand(4, 64, generator=g) * 2 - 1  # in [-1, 1]
    x = base * magnitude
    for bits in [2, 3, 8, 16] if fmt in ("int", "pow2") else [8]:
        spec = QuantSpec(bits=bits, format=fmt, scheme=scheme, calibration=calibration, granularity="channel")
        qp = choose_qparams(x, spec)
        assert torch.all(torch.isfinite(qp.scale)) and torch.all(qp.scale > 0)
        out = fake_quant(x, spec, qp)
        assert torch.all(torch.isfinite(out)), spec
        assert torch.all(out * x >= 0), "no value changes sign"
        assert float(out.abs().max()) <= float(x.abs().max()) * 2  # pow2 at 2 bits may round up to 2x
        if bits >= 8:  # small magnitudes do not collapse to zero, large ones do not saturate into nonsense
            sqnr = metrics.sqnr_db(x.double(), out.double())
            assert sqnr > (20.0 if fmt != "nf4" and bits == 8 else 40.0 if bits == 16 else 10.0), (spec, sqnr)
        assert bool((out != 0).any())


@pytest.mark.parametrize("scheme", ["symmetric", "asymmetric"])
@pytest.mark.parametrize("fmt", ["int", "pow2"])
def test_values_near_float32_max_stay_finite_at_two_bits(fmt, scheme):
    # e.g. 2-bit asymmetric over [-3e38, 3e38]: s = 2e38 and the rounded zero point puts the grid's top at
    # 2s = 4e38 = inf; that code is dropped, so 3e38 clips to the last finite grid value instead
    x = torch.tensor([3e38, -3e38, 1e38, 0.0])
    for cal in ("minmax", "percentile", "mse"):
        spec = QuantSpec(bits=2, format=fmt, scheme=scheme, calibration=cal)
        qp = choose_qparams(x, spec)
        out = fake_quant(x, spec, qp)
        assert torch.all(torch.isfinite(out)), (spec, out)
        assert torch.equal(dequantize(quantize(x, spec, qp)), out)
        g = grid(spec, qp)
        assert torch.all(torch.isfinite(g)) and torch.isin(out, g).all()
        lo, hi = clip_range(spec, qp)
        assert math.isfinite(float(lo)) and math.isfinite(float(hi))
        assert out.tolist()[3] == 0.0
    y = torch.full((4,), 3e38)
    for s in ("symmetric", "asymmetric"):
        assert torch.all(torch.isfinite(fake_quant(y, QuantSpec(bits=2, format=fmt, scheme=s))))


def test_small_magnitudes_are_quantized_relative_to_their_own_scale():
    x = torch.tensor([1e-30, -2e-30, 0.5e-30, 0.0])
    out = fake_quant(x, QuantSpec(bits=8))
    assert torch.all((out != 0) == (x != 0))
    assert torch.allclose(out, x, rtol=1e-2, atol=0)


def test_qparams_of_tiny_ranges_have_finite_reciprocals():
    for value in (1e-37, 1e-38, 1.2e-38):
        x = torch.tensor([value, -value])
        qp = choose_qparams(x, QuantSpec(bits=16))
        assert torch.isfinite(1.0 / qp.scale)
        assert torch.all(torch.isfinite(fake_quant(x, QuantSpec(bits=16))))


# --- spec fields out of range ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"bits": 1}, "bits"),
        ({"bits": 17}, "bits"),
        ({"percentile": 49.0}, "percentile"),
        ({"percentile": 101.0}, "percentile"),
        ({"group_size": 0}, "group_size"),
        ({"format": "fp8_e5m2", "scheme": "asymmetric"}, "scheme"),
        ({"format": "nf4", "rounding": "truncate"}, "rounding"),
        ({"format": "fp16"}, "format"),
        ({"scheme": "affine"}, "scheme"),
    ],
)
def test_out_of_range_settings_raise_value_error_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        QuantSpec(**kwargs)


# --- qparams that do not fit -------------------------------------------------------------------------------------


def test_qparams_with_the_wrong_shape_are_rejected_by_quantize_and_fake_quant():
    spec = QuantSpec(granularity="channel")
    qp = choose_qparams(torch.randn(5, 6), spec)
    x = torch.randn(4, 6)
    for call in (quantize, fake_quant):
        with pytest.raises(ValueError, match=r"qparams have scale shape \[5, 1\].*needs \[4, 1\]"):
            call(x, spec, qp)
    with pytest.raises(ValueError, match="needs \\[\\]"):
        quantize(x, QuantSpec(), qp)
    flat = QParams(torch.ones(4), torch.zeros(4, dtype=torch.int32), spec.qmin, spec.qmax)
    with pytest.raises(ValueError, match="shape"):
        quantize(x, spec, flat)


def test_per_tensor_qparams_are_accepted_for_any_granularity():
    x = torch.randn(4, 6)
    qp = choose_qparams(x, QuantSpec())
    assert torch.equal(fake_quant(x, QuantSpec(granularity="channel"), qp), fake_quant(x, QuantSpec(), qp))


def test_qparams_for_another_grid_are_rejected():
    x = torch.randn(10)
    qp = choose_qparams(x, QuantSpec(bits=4))
    with pytest.raises(ValueError, match="grid"):
        quantize(x, QuantSpec(bits=8), qp)


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan"), float("inf")])
def test_qparams_with_non_positive_or_non_finite_scales_are_rejected(scale):
    spec = QuantSpec()
    qp = QParams(torch.tensor(scale), torch.tensor(0, dtype=torch.int32), spec.qmin, spec.qmax)
    with pytest.raises(ValueError, match="scale"):
        fake_quant(torch.randn(5), spec, qp)


def test_qparams_with_zero_point_outside_the_grid_are_rejected():
    spec = QuantSpec(scheme="asymmetric")
    for z in (-1, 256, 300):
        qp = QParams(torch.tensor(0.1), torch.tensor(z, dtype=torch.int32), spec.qmin, spec.qmax)
        with pytest.raises(ValueError, match="zero point"):
            quantize(torch.randn(5), spec, qp)


def test_qparams_of_the_wrong_type_are_a_type_error():
    with pytest.raises(TypeError, match="QParams"):
        quantize(torch.randn(5), QuantSpec(), (0.1, 0))  # type: ignore[arg-type]


# --- the input is never modified ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "scheme"), ALL_FORMATS, ids=lambda v: str(v))
def test_quantizing_never_modifies_the_input(fmt, scheme):
    x = torch.randn(8, 64, generator=torch.Generator().manual_seed(4))
    before = x.clone()
    for cal in CALIBRATIONS:
        spec = QuantSpec(format=fmt, scheme=scheme, calibration=cal, granularity="group", group_size=16)
        fake_quant(x, spec)
        quantize(x, spec)
        summarize(x, spec)
        grid(spec, choose_qparams(x, spec))
        clip_range(spec, choose_qparams(x, spec))
    assert torch.equal(x, before)
