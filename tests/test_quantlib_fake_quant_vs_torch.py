"""fake_quant / quantize against PyTorch's reference kernels, bit for bit, and the straight-through estimator.

Every comparison passes the *same* qparams (from ``choose_qparams``) to quantlib and to torch, so what is checked
is the rounding arithmetic itself: ``q = clamp(round(x * (1/s)) + z, qmin, qmax)``, ``x̂ = (q - z) * s``.
"""

from __future__ import annotations

import pytest
import torch

from quantlib import QParams, QuantSpec, choose_qparams, clip_range, dequantize, fake_quant, quantize
from quantlib.formats import get as number_format

N_ROWS, N_COLS = 1000, 1000  # 10^6 values per case
BITS = [2, 4, 8, 16]
SCHEMES = ["symmetric", "asymmetric"]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _data(seed: int, scheme: str) -> torch.Tensor:
    """10^6 values over eight decades of per-row magnitude, shifted off zero for the asymmetric scheme."""
    g = _gen(seed)
    x = torch.randn(N_ROWS, N_COLS, generator=g) * torch.logspace(-4, 4, N_ROWS)[:, None]
    if scheme == "asymmetric":
        x += torch.randn(N_ROWS, 1, generator=g) * torch.logspace(-4, 4, N_ROWS)[:, None]
    return x


def _torch_fake_quant(x: torch.Tensor, qp: QParams, spec: QuantSpec, axis: int = 0) -> torch.Tensor:
    if qp.scale.dim() == 0:
        return torch.fake_quantize_per_tensor_affine(x, qp.scale, qp.zero_point, spec.qmin, spec.qmax)
    return torch.fake_quantize_per_channel_affine(
        x, qp.scale.reshape(-1), qp.zero_point.reshape(-1), axis, spec.qmin, spec.qmax
    )


def _ties(qp: QParams, spec: QuantSpec, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """x = (k + 0.5) * s for integers k spanning the grid (and a little beyond both ends)."""
    z = qp.zero_point.to(torch.float32)
    lo = spec.qmin - int(qp.zero_point.max()) - 2
    hi = spec.qmax - int(qp.zero_point.min()) + 2
    k = torch.randint(lo, hi, shape, generator=_gen(seed)).to(torch.float32)
    k = torch.minimum(torch.maximum(k, spec.qmin - z - 2), spec.qmax - z + 1)
    return (k + 0.5) * qp.scale


def _exact_tie_fraction(x: torch.Tensor, qp: QParams) -> float:
    v = x * (1.0 / qp.scale)
    return float(((v - torch.floor(v)) == 0.5).float().mean())


@pytest.mark.parametrize("granularity", ["tensor", "channel"])
@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("bits", BITS)
def test_fake_quant_matches_torch_fake_quantize_bit_exactly(bits, scheme, granularity):
    x = _data(bits, scheme)
    spec = QuantSpec(bits=bits, scheme=scheme, granularity=granularity)
    qp = choose_qparams(x, spec)
    assert torch.equal(fake_quant(x, spec, qp), _torch_fake_quant(x, qp, spec))


@pytest.mark.parametrize("granularity", ["tensor", "channel"])
@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("bits", BITS)
def test_fake_quant_matches_torch_bit_exactly_when_values_are_clipped(bits, scheme, granularity):
    x = _data(100 + bits, scheme)
    spec = QuantSpec(bits=bits, scheme=scheme, granularity=granularity)
    qp = choose_qparams(x[:, :20] * 0.01, spec)  # calibrated on a shrunk slice: many values clip
    ours = fake_quant(x, spec, qp)
    lo, hi = clip_range(spec, qp)
    assert float(((x < lo) | (x > hi)).float().mean()) > 0.05
    assert torch.equal(ours, _torch_fake_quant(x, qp, spec))


@pytest.mark.parametrize("granularity", ["tensor", "channel"])
@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("bits", BITS)
def test_fake_quant_matches_torch_bit_exactly_on_rounding_ties(bits, scheme, granularity):
    spec = QuantSpec(bits=bits, scheme=scheme, granularity=granularity)
    qp = choose_qparams(_data(200 + bits, scheme), spec)
    x = _ties(qp, spec, (N_ROWS, N_COLS), seed=bits)
    # (k + 0.5) * s is not always an exact tie after float32 rounding, but a good share of them are.
    assert _exact_tie_fraction(x, qp) > 0.1
    assert torch.equal(fake_quant(x, spec, qp), _torch_fake_quant(x, qp, spec))


@pytest.mark.parametrize("zero_point", [0, 1, 2, 127, 128, 200])
@pytest.mark.parametrize("bits", [4, 8, 16])
def test_fake_quant_rounds_exact_ties_half_to_even_like_torch_for_odd_and_even_zero_points(bits, zero_point):
    # A power-of-two scale makes every (k + 0.5) * s an exact tie; the zero point's parity must not matter.
    spec = QuantSpec(bits=bits, scheme="asymmetric")
    z = min(zero_point, spec.qmax)
    qp = QParams(torch.tensor(2.0**-6), torch.tensor(z, dtype=torch.int32), spec.qmin, spec.qmax)
    x = _ties(qp, spec, (1_000_000,), seed=z)
    assert _exact_tie_fraction(x, qp) == 1.0
    ours = fake_quant(x, spec, qp)
    assert torch.equal(ours, _torch_fake_quant(x, qp, spec))
    # half to even on the offset-free value: 0.5 -> 0, 1.5 -> 2, -0.5 -> 0, 2.5 -> 2
    small = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5]) * 2.0**-6
    expected = torch.tensor([0.0, 2.0, 2.0, 0.0, -2.0]) * 2.0**-6
    inside = (expected / 2.0**-6 + z >= spec.qmin) & (expected / 2.0**-6 + z <= spec.qmax)
    assert torch.equal(fake_quant(small, spec, qp)[inside], expected[inside])


@pytest.mark.parametrize("scheme", SCHEMES)
def test_fake_quant_per_channel_matches_torch_bit_exactly_on_conv_weights(scheme):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(64, 128, 3).weight.detach() * 10  # (128, 64, 3, 3): 73,728 values, axis 0
    convt = torch.nn.ConvTranspose2d(64, 128, 3).weight.detach()  # (64, 128, 3, 3): axis 1
    for w, axis in ((conv, 0), (convt, 1)):
        for bits in (3, 8):
            spec = QuantSpec(bits=bits, scheme=scheme, granularity="channel", axis=axis)
            qp = choose_qparams(w, spec)
            assert torch.equal(fake_quant(w, spec, qp), _torch_fake_quant(w, qp, spec, axis=axis))
            ties = _ties(qp, spec, tuple(w.shape), seed=bits)
            assert torch.equal(fake_quant(ties, spec, qp), _torch_fake_quant(ties, qp, spec, axis=axis))


def test_fake_quant_matches_torch_with_narrow_range():
    x = _data(9, "symmetric")
    spec = QuantSpec(bits=8, narrow_range=True)
    qp = choose_qparams(x[:, :10], spec)
    assert (spec.qmin, spec.qmax) == (-127, 127)
    assert torch.equal(fake_quant(x, spec, qp), _torch_fake_quant(x, qp, spec))


# --- quantize against torch.quantize_per_tensor / per_channel -------------------------------------------------


def test_quantize_codes_equal_torch_quantize_per_tensor_qint8_exactly_including_ties():
    x = _data(11, "symmetric")[::10]  # 10^5 rows x ... keeps a spread of magnitudes
    x = torch.cat([x.reshape(-1), torch.randn(900_000, generator=_gen(11))])
    spec = QuantSpec(bits=8, scheme="symmetric")
    qp = choose_qparams(x, spec)
    s, z = float(qp.scale), int(qp.zero_point)
    ours = quantize(x, spec, qp).q
    assert ours.dtype == torch.int32
    theirs = torch.quantize_per_tensor(x, s, z, torch.qint8).int_repr().to(torch.int32)
    assert torch.equal(ours, theirs)
    ties = _ties(qp, spec, (1_000_000,), seed=3)
    theirs = torch.quantize_per_tensor(ties, s, z, torch.qint8).int_repr().to(torch.int32)
    assert torch.equal(quantize(ties, spec, qp).q, theirs)


def test_quantize_codes_equal_torch_quantize_per_channel_qint8_exactly():
    x = _data(12, "symmetric")
    spec = QuantSpec(bits=8, scheme="symmetric", granularity="channel")
    qp = choose_qparams(x, spec)
    theirs = torch.quantize_per_channel(
        x, qp.scale.reshape(-1).double(), qp.zero_point.reshape(-1).long(), 0, torch.qint8
    ).int_repr()
    assert torch.equal(quantize(x, spec, qp).q, theirs.to(torch.int32))


def test_quantize_codes_equal_torch_quantize_per_tensor_quint8_away_from_ties():
    """quint8 codes agree except within float32 rounding of a tie: a few per million, off by one.

    ``torch.quantize_per_tensor`` computes ``round(x * inv_s + z)`` with the multiply-add rounded once (an FMA),
    while ``torch.fake_quantize_per_tensor_affine`` - and quantlib, for ``quantize`` and ``fake_quant`` alike -
    computes ``round(x * inv_s) + z``. The two torch kernels disagree with *each other* on those values (see the
    next test); quantlib follows the fake-quantize kernel so that ``dequantize(quantize(x)) == fake_quant(x)``.
    """
    x = torch.randn(1_000_000, generator=_gen(13)) * 3 + 0.5
    spec = QuantSpec(bits=8, scheme="asymmetric")
    qp = choose_qparams(x, spec)
    s, z = float(qp.scale), int(qp.zero_point)
    assert z % 2 == 0, "an even zero point: exact ties round the same way in both formulas"
    ours = quantize(x, spec, qp).q
    theirs = torch.quantize_per_tensor(x, s, z, torch.quint8).int_repr().to(torch.int32)
    differ = ours != theirs
    assert int(differ.sum()) <= 50  # 10^6 values: observed 6
    assert torch.all((ours - theirs).abs()[differ] == 1)
    v = (x * (1.0 / qp.scale)).double()
    assert torch.all((v - torch.floor(v) - 0.5).abs()[differ] < 1e-5), "only near-ties differ"
    away = (v - torch.floor(v) - 0.5).abs() > 1e-5
    assert torch.equal(ours[away], theirs[away])


def test_quint8_ties_with_odd_zero_point_follow_torch_fake_quantize_not_quantize_per_tensor():
    spec = QuantSpec(bits=8, scheme="asymmetric")
    s, z = 2.0**-5, 127
    qp = QParams(torch.tensor(s), torch.tensor(z, dtype=torch.int32), spec.qmin, spec.qmax)
    x = (torch.arange(-127, 128, dtype=torch.float32) + 0.5) * s  # every value an exact tie
    ours = quantize(x, spec, qp)
    fq_torch = torch.fake_quantize_per_tensor_affine(x, s, z, 0, 255)
    assert torch.equal(dequantize(ours), fq_torch)
    assert torch.equal(fake_quant(x, spec, qp), fq_torch)
    q_torch = torch.quantize_per_tensor(x, s, z, torch.quint8)
    assert not torch.equal(q_torch.dequantize(), fq_torch), "torch's own kernels disagree on these ties"


@pytest.mark.parametrize(
    "spec",
    [
        QuantSpec(bits=4),
        QuantSpec(bits=8, scheme="asymmetric", granularity="channel"),
        QuantSpec(bits=3, granularity="group", group_size=16),
        QuantSpec(bits=6, format="pow2", scheme="asymmetric"),
        QuantSpec(format="fp8_e4m3", granularity="channel"),
        QuantSpec(format="fp8_e5m2"),
        QuantSpec(format="nf4", granularity="group", group_size=64),
        QuantSpec(bits=5, rounding="truncate"),
        QuantSpec(bits=5, rounding="stochastic", seed=3),
    ],
    ids=lambda s: f"{s.label()} {s.rounding}",
)
def test_dequantize_of_quantize_equals_fake_quant_bit_exactly(spec):
    x = torch.randn(256, 512, generator=_gen(14)) * 2
    qp = choose_qparams(x, spec)
    qt = quantize(x, spec, qp)
    assert torch.equal(dequantize(qt), fake_quant(x, spec, qp))


# --- straight-through estimator --------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("bits", [2, 4, 8])
def test_fake_quant_gradient_is_torch_fake_quantize_mask_per_tensor(bits, scheme):
    x = torch.randn(200_000, generator=_gen(bits)) * 2 + (0.7 if scheme == "asymmetric" else 0.0)
    spec = QuantSpec(bits=bits, scheme=scheme)
    qp = choose_qparams(x[:1000] * 0.6, spec)  # clips the tails
    upstream = torch.randn(x.shape, generator=_gen(99))
    a = x.clone().requires_grad_()
    out = fake_quant(a, spec, qp)
    out.backward(upstream)
    b = x.clone().requires_grad_()
    ref = torch.fake_quantize_per_tensor_affine(b, qp.scale, qp.zero_point, spec.qmin, spec.qmax)
    ref.backward(upstream)
    assert torch.equal(out.detach(), ref.detach())
    assert torch.equal(a.grad, b.grad)
    mask = a.grad != 0
    assert 0.0 < float(mask.float().mean()) < 1.0, "some values pass, some are clipped"
    assert torch.equal(a.grad[mask], upstream[mask]), "gradient passes unchanged (factor 1) inside"


def test_fake_quant_gradient_is_one_inside_the_clip_range_and_zero_outside():
    spec = QuantSpec(bits=4, scheme="asymmetric")
    qp = QParams(torch.tensor(0.25), torch.tensor(3, dtype=torch.int32), spec.qmin, spec.qmax)
    lo, hi = clip_range(spec, qp)  # [-0.75, 3.0]
    assert (lo.item(), hi.item()) == (-0.75, 3.0)
    x = torch.tensor([-5.0, -1.0, -0.75, 0.0, 1.3, 3.0, 3.2, 10.0], requires_grad=True)
    fake_quant(x, spec, qp).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]


@pytest.mark.parametrize("axis", [0, 1])
def test_fake_quant_gradient_is_torch_fake_quantize_mask_per_channel(axis):
    torch.manual_seed(0)
    w = torch.nn.Conv2d(16, 32, 3).weight.detach() if axis == 0 else torch.nn.ConvTranspose2d(16, 32, 3).weight.detach()
    spec = QuantSpec(bits=3, scheme="asymmetric", granularity="channel", axis=axis)
    qp = choose_qparams(w * 0.5, spec)
    a = w.clone().requires_grad_()
    fake_quant(a, spec, qp).sum().backward()
    b = w.clone().requires_grad_()
    torch.fake_quantize_per_channel_affine(
        b, qp.scale.reshape(-1), qp.zero_point.reshape(-1), axis, spec.qmin, spec.qmax
    ).sum().backward()
    assert torch.equal(a.grad, b.grad)
    assert 0 < int(a.grad.sum()) < w.numel()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_low_and_high_precision_inputs_keep_their_dtype_and_get_the_float32_gradient_mask(dtype):
    x32 = torch.randn(5000, generator=_gen(5)) * 2
    x = x32.to(dtype)
    spec = QuantSpec(bits=4)
    qp = choose_qparams(x.float() * 0.5, spec)
    a = x.clone().requires_grad_()
    out = fake_quant(a, spec, qp)
    assert out.dtype == dtype and out.requires_grad
    out.sum().backward()
    assert a.grad is not None and a.grad.dtype == dtype
    b = x.float().requires_grad_()
    torch.fake_quantize_per_tensor_affine(b, qp.scale, qp.zero_point, spec.qmin, spec.qmax).sum().backward()
    assert torch.equal(a.grad.float(), b.grad)
    assert torch.equal(out.detach(), fake_quant(x.float(), spec, qp).to(dtype))


@pytest.mark.parametrize("fmt", ["fp8_e4m3", "fp8_e5m2", "nf4"])
def test_non_integer_formats_pass_gradient_inside_their_range_only(fmt):
    spec = QuantSpec(format=fmt)
    x = torch.linspace(-3, 3, 601)
    qp = choose_qparams(x * 0.5, spec)  # range [-1.5, 1.5]
    a = x.clone().requires_grad_()
    fake_quant(a, spec, qp).sum().backward()
    lo, hi = clip_range(spec, qp)
    if fmt == "nf4":
        inside = (x >= lo) & (x <= hi)
    else:  # like the int grid, a value within half a step past the top still rounds onto it
        reach = number_format(fmt).reach
        inside = (x / qp.scale).abs() < reach
        assert reach == {"fp8_e4m3": 464.0, "fp8_e5m2": 61440.0}[fmt]
        assert bool(inside[(x > hi) & (x < hi * 1.02)].all())
    assert 0 < int(inside.sum()) < x.numel()
    assert torch.equal(a.grad, inside.float())


def test_fake_quant_without_requires_grad_builds_no_graph_and_the_graph_reaches_the_input():
    x = torch.randn(10)
    assert fake_quant(x, QuantSpec()).grad_fn is None
    w = torch.randn(10, requires_grad=True)
    loss = (fake_quant(w * 2, QuantSpec(bits=8)) ** 2).sum()
    loss.backward()
    assert w.grad is not None and torch.all(w.grad != 0)
