"""choose_qparams: scale and zero point against torch's observers, and quantlib's own documented conventions."""

from __future__ import annotations

import pytest
import torch
from torch.ao.quantization import MinMaxObserver, PerChannelMinMaxObserver

from quantlib import QParams, QuantSpec, choose_qparams, fake_quant, quantize
from quantlib.kernels import MIN_SCALE, pow2_at_least, qparams_from_range


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _observer_qparams(x: torch.Tensor, per_channel: bool, axis: int = 0):
    if per_channel:
        obs = PerChannelMinMaxObserver(ch_axis=axis, dtype=torch.quint8, qscheme=torch.per_channel_affine)
    else:
        obs = MinMaxObserver(dtype=torch.quint8, qscheme=torch.per_tensor_affine)
    obs(x)
    return obs.calculate_qparams()


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("gaussian", lambda g: torch.randn(1000, 100, generator=g)),
        ("shifted", lambda g: torch.randn(300, 70, generator=g) * 0.1 + 2.5),
        ("all-negative", lambda g: -torch.rand(500, generator=g) * 7 - 0.25),
        ("wide", lambda g: torch.randn(4096, generator=g) * 1e4),
        ("narrow", lambda g: torch.randn(4096, generator=g) * 1e-3 + 0.01),
        ("skewed", lambda g: torch.distributions.Exponential(2.0).sample((5000,)) - 0.05),
    ],
)
def test_asymmetric_8bit_minmax_qparams_equal_minmax_observer_exactly(name, make):
    x = make(_gen(7))
    scale, zero_point = _observer_qparams(x, per_channel=False)
    qp = choose_qparams(x, QuantSpec(bits=8, scheme="asymmetric"))
    assert qp.scale.dim() == 0 and qp.zero_point.dim() == 0
    assert qp.scale.dtype == torch.float32 and qp.zero_point.dtype == torch.int32
    assert qp.scale.item() == scale.item(), name
    assert qp.zero_point.item() == zero_point.item(), name


def test_asymmetric_8bit_per_channel_qparams_equal_per_channel_observer_exactly():
    g = _gen(1)
    x = torch.randn(64, 200, generator=g) * torch.logspace(-3, 2, 64)[:, None] + torch.randn(64, 1, generator=g)
    x[5] = x[5].abs() + 0.5  # an all-positive channel: zero point 0
    x[9] = -x[9].abs() - 0.5  # an all-negative channel: zero point 255
    scale, zero_point = _observer_qparams(x, per_channel=True)
    qp = choose_qparams(x, QuantSpec(bits=8, scheme="asymmetric", granularity="channel"))
    assert qp.scale.shape == (64, 1)
    assert torch.equal(qp.scale.reshape(-1), scale)
    assert torch.equal(qp.zero_point.reshape(-1), zero_point.to(torch.int32))
    assert qp.zero_point[5].item() == 0 and qp.zero_point[9].item() == 255


def test_per_channel_qparams_of_a_conv2d_weight_equal_the_observer():
    torch.manual_seed(0)
    w = torch.nn.Conv2d(8, 32, kernel_size=3).weight.detach()
    scale, zero_point = _observer_qparams(w, per_channel=True, axis=0)
    qp = choose_qparams(w, QuantSpec(bits=8, scheme="asymmetric", granularity="channel", axis=0))
    assert qp.scale.shape == (32, 1, 1, 1)
    assert torch.equal(qp.scale.reshape(-1), scale)
    assert torch.equal(qp.zero_point.reshape(-1), zero_point.to(torch.int32))


def test_per_channel_qparams_of_a_conv_transpose_weight_use_axis_1_like_the_observer():
    torch.manual_seed(0)
    w = torch.nn.ConvTranspose2d(6, 12, kernel_size=3).weight.detach()  # (in=6, out=12, 3, 3)
    scale, zero_point = _observer_qparams(w, per_channel=True, axis=1)
    qp = choose_qparams(w, QuantSpec(bits=8, scheme="asymmetric", granularity="channel", axis=1))
    assert qp.scale.shape == (1, 12, 1, 1)
    assert torch.equal(qp.scale.reshape(-1), scale)
    assert torch.equal(qp.zero_point.reshape(-1), zero_point.to(torch.int32))


def test_negative_channel_axis_counts_from_the_end():
    w = torch.randn(3, 5, generator=_gen(2))
    a = choose_qparams(w, QuantSpec(granularity="channel", axis=-1))
    b = choose_qparams(w, QuantSpec(granularity="channel", axis=1))
    assert a.scale.shape == (1, 5)
    assert torch.equal(a.scale, b.scale)


@pytest.mark.parametrize("bits", [2, 3, 4, 8, 12, 16])
def test_symmetric_scale_puts_plus_minus_max_exactly_on_plus_minus_qmax(bits):
    # quantlib's convention: s = max|x| / (2^(b-1) - 1), not torch's symmetric (max|x| / 127.5 at 8 bits).
    x = torch.randn(10_000, generator=_gen(bits)) * 3
    x[17] = x.abs().max() * 1.25  # the max on the positive side ...
    spec = QuantSpec(bits=bits)
    qp = choose_qparams(x, spec)
    qmax = 2 ** (bits - 1) - 1
    assert qp.zero_point.item() == 0
    assert qp.scale.item() == pytest.approx(float(x.abs().max()) / qmax, rel=1e-7)
    q = quantize(x, spec, qp).q
    assert q[17].item() == qmax
    assert int(q.min()) >= -qmax  # the extra negative code is never needed for min-max data
    # ... and on the negative side
    y = -x
    qy = quantize(y, spec).q
    assert qy[17].item() == -qmax


def test_symmetric_scale_differs_from_torch_symmetric_observer_by_design():
    x = torch.randn(1000, generator=_gen(3))
    obs = MinMaxObserver(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric)
    obs(x)
    torch_scale, _ = obs.calculate_qparams()
    ours = choose_qparams(x, QuantSpec(bits=8)).scale
    amax = float(x.abs().max())
    assert torch_scale.item() == pytest.approx(amax / 127.5, rel=1e-6)
    assert ours.item() == pytest.approx(amax / 127, rel=1e-6)


def test_docstring_worked_examples_hold():
    # 2-bit asymmetric on [-1, 3]: s = 4/3, z = 1, grid {-4/3, 0, 4/3, 8/3}
    qp = choose_qparams(torch.tensor([-1.0, 0.0, 3.0]), QuantSpec(bits=2, scheme="asymmetric"))
    assert qp.scale.item() == pytest.approx(4 / 3)
    assert qp.zero_point.item() == 1
    # 8-bit symmetric on [-0.5, 1.27]: s = 0.01
    s, z = qparams_from_range(torch.tensor(-0.5), torch.tensor(1.27), QuantSpec(bits=8))
    assert s.item() == pytest.approx(0.01) and z.item() == 0
    # quantize worked example
    assert quantize(torch.tensor([-1.0, 0.5, 2.54]), QuantSpec(bits=8)).q.tolist() == [-50, 25, 127]
    # 3-bit symmetric: s = 1/3
    assert fake_quant(torch.tensor([0.1, 0.26, 1.0]), QuantSpec(bits=3)).tolist() == pytest.approx([0.0, 1 / 3, 1.0])


def test_asymmetric_range_is_widened_to_include_zero():
    spec = QuantSpec(bits=8, scheme="asymmetric")
    pos = choose_qparams(torch.tensor([2.0, 3.0, 5.1]), spec)
    assert pos.zero_point.item() == 0
    assert pos.scale.item() == pytest.approx(5.1 / 255)
    neg = choose_qparams(torch.tensor([-2.0, -3.0, -5.1]), spec)
    assert neg.zero_point.item() == 255
    assert neg.scale.item() == pytest.approx(5.1 / 255)


@pytest.mark.parametrize("scheme", ["symmetric", "asymmetric"])
@pytest.mark.parametrize("bits", [2, 3, 4, 7, 8, 16])
def test_pow2_scales_are_exact_powers_of_two_at_least_the_int_scale(scheme, bits):
    g = _gen(bits)
    x = torch.randn(32, 100, generator=g) * torch.logspace(-4, 4, 32)[:, None] + 0.3 * torch.randn(32, 1, generator=g)
    spec_int = QuantSpec(bits=bits, scheme=scheme, granularity="channel")
    spec_p2 = spec_int.replace(format="pow2")
    s_int = choose_qparams(x, spec_int).scale
    s_p2 = choose_qparams(x, spec_p2).scale
    mant, _ = torch.frexp(s_p2)
    assert torch.all(mant == 0.5), "every pow2 scale is 2^k"
    assert torch.all(s_p2 >= s_int)
    assert torch.all(s_p2 < 2 * s_int)


@pytest.mark.parametrize("scheme", ["symmetric", "asymmetric"])
@pytest.mark.parametrize("bits", [2, 4, 8])
def test_pow2_range_still_fits_so_it_clips_nothing_that_int_does_not(scheme, bits):
    x = torch.randn(20_000, generator=_gen(bits)) * 5 + (1.0 if scheme == "asymmetric" else 0.0)
    spec = QuantSpec(bits=bits, scheme=scheme, format="pow2")
    qp = choose_qparams(x, spec)
    q = quantize(x, spec, qp).q
    v = torch.round(x / qp.scale) + qp.zero_point
    assert torch.all((v >= spec.qmin) & (v <= spec.qmax)), "no value needs clipping"
    assert torch.equal(q, v.to(torch.int32))


def test_pow2_rounding_is_exact_just_above_a_power_of_two():
    # float32 log2 of 2^k * (1 + 2^-23) rounds to exactly k for most k: ceil(log2(s)) would give 2^k < s.
    k = torch.arange(-120, 120, dtype=torch.float32)
    p = torch.exp2(k)
    just_above = torch.nextafter(p, torch.tensor(float("inf")))
    assert torch.equal(pow2_at_least(p), p)
    assert torch.equal(pow2_at_least(just_above), 2 * p)
    assert torch.equal(pow2_at_least(torch.tensor([0.3, 0.25, 3.0, 1.0])), torch.tensor([0.5, 0.25, 4.0, 1.0]))


def test_pow2_scale_for_a_range_just_above_a_power_of_two_is_the_next_power():
    qmax = 127.0
    amax = float(torch.nextafter(torch.tensor(qmax * 2.0**-4), torch.tensor(1e9)))  # s just above 2^-4
    s, _ = qparams_from_range(torch.tensor(-amax), torch.tensor(amax), QuantSpec(bits=8, format="pow2"))
    assert s.item() == 2.0**-3


def test_all_zero_block_gets_the_smallest_scale_and_zero_point_in_grid():
    x = torch.zeros(3, 4)
    x[1] = torch.tensor([1.0, -2.0, 0.5, 0.0])
    for scheme in ("symmetric", "asymmetric"):
        qp = choose_qparams(x, QuantSpec(scheme=scheme, granularity="channel"))
        assert qp.scale[0].item() == MIN_SCALE and qp.scale[2].item() == MIN_SCALE
        assert torch.all(qp.zero_point >= QuantSpec(scheme=scheme).qmin)
        assert torch.all(torch.isfinite(1.0 / qp.scale))


@pytest.mark.parametrize(
    ("shape", "spec", "param_shape"),
    [
        ((4, 6), QuantSpec(), ()),
        ((4, 6), QuantSpec(granularity="channel"), (4, 1)),
        ((4, 6), QuantSpec(granularity="channel", axis=1), (1, 6)),
        ((4, 6), QuantSpec(granularity="group", group_size=3), (4, 2, 1)),
        ((2, 3, 8), QuantSpec(granularity="group", group_size=4), (2, 3, 2, 1)),
        ((16, 3, 3, 3), QuantSpec(granularity="channel"), (16, 1, 1, 1)),
        ((12,), QuantSpec(granularity="group", group_size=12), (1, 1)),
    ],
)
def test_qparams_are_shaped_to_broadcast_as_documented(shape, spec, param_shape):
    x = torch.randn(*shape, generator=_gen(5))
    qp = choose_qparams(x, spec)
    assert isinstance(qp, QParams)
    assert tuple(qp.scale.shape) == param_shape
    assert tuple(qp.zero_point.shape) == param_shape
    assert qp.num_blocks == qp.scale.numel()
    assert (qp.qmin, qp.qmax) == (spec.qmin, spec.qmax)


def test_per_group_scales_are_the_absmax_of_each_group_of_the_last_axis():
    x = torch.arange(24, dtype=torch.float32).reshape(2, 12) - 11.5
    qp = choose_qparams(x, QuantSpec(granularity="group", group_size=4))
    expected = x.reshape(2, 3, 4).abs().amax(dim=-1, keepdim=True) / 127
    assert torch.allclose(qp.scale, expected, rtol=1e-7, atol=0)


def test_choose_qparams_does_not_depend_on_memory_layout():
    x = torch.randn(30, 40, generator=_gen(6))
    xt = x.t().contiguous().t()  # same values, column-major
    for spec in (QuantSpec(granularity="channel"), QuantSpec(granularity="channel", axis=1), QuantSpec(granularity="group", group_size=8)):
        assert torch.equal(choose_qparams(x, spec).scale, choose_qparams(xt, spec).scale)
        assert torch.equal(fake_quant(x, spec), fake_quant(xt, spec))
