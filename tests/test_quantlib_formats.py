"""Number formats beyond plain int: fp8 (e4m3, e5m2), nf4, pow2 - and the grid every format outputs onto."""

from __future__ import annotations

import pytest
import torch

from quantlib import (
    NF4_CODEBOOK,
    QuantSpec,
    choose_qparams,
    clip_range,
    dequantize,
    fake_quant,
    grid,
    quantize,
)
from quantlib.formats import get
from quantlib.layout import BlockLayout

FP8 = [("fp8_e4m3", torch.float8_e4m3fn, 448.0), ("fp8_e5m2", torch.float8_e5m2, 57344.0)]
GRANULARITIES = [
    {"granularity": "tensor"},
    {"granularity": "channel"},
    {"granularity": "channel", "axis": 1},
    {"granularity": "group", "group_size": 32},
]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _weights(seed: int = 0) -> torch.Tensor:
    g = _gen(seed)
    return torch.randn(64, 256, generator=g) * torch.logspace(-3, 3, 64)[:, None]


@pytest.mark.parametrize("gran", GRANULARITIES, ids=lambda g: "-".join(str(v) for v in g.values()))
@pytest.mark.parametrize(("fmt", "dtype", "fmax"), FP8)
def test_fp8_fake_quant_equals_casting_x_over_s_to_torch_fp8_and_back(fmt, dtype, fmax, gran):
    x = _weights(1)
    spec = QuantSpec(format=fmt, **gran)
    qp = choose_qparams(x, spec)
    layout = BlockLayout.of(x.shape, spec)
    v = layout.view(x)
    reference = layout.unview((v / qp.scale).to(dtype).to(torch.float32) * qp.scale)
    assert torch.equal(fake_quant(x, spec, qp), reference)
    # the codes are the fp8 values themselves
    qt = quantize(x, spec, qp)
    assert qt.q.dtype == dtype
    assert torch.equal(qt.q, layout.unview((v / qp.scale).to(dtype)))


@pytest.mark.parametrize(("fmt", "dtype", "fmax"), FP8)
def test_fp8_fake_quant_equals_casting_x_over_s_on_values_at_fp8_midpoints(fmt, dtype, fmax):
    # x = (midpoint between two fp8 values) * s: whether x / s rounds up or down decides the fp8 value, and
    # x * (1 / s) differs from x / s in the last bit often enough to flip ~10% of these.
    vals = get(fmt).all_values()
    mids = (vals[1:] + vals[:-1]) / 2
    amax = torch.rand(2000, generator=_gen(9)) * 10 + 0.1
    x = torch.cat([mids[None, :] * (amax / fmax)[:, None], amax[:, None]], dim=1)
    spec = QuantSpec(format=fmt, granularity="channel")
    qp = choose_qparams(x, spec)
    reference = (x / qp.scale).to(dtype).to(torch.float32) * qp.scale
    assert torch.equal(fake_quant(x, spec, qp), reference)


@pytest.mark.parametrize(("fmt", "dtype", "fmax"), FP8)
def test_fp8_scale_maps_each_blocks_absmax_to_the_largest_finite_value(fmt, dtype, fmax):
    x = _weights(2)
    spec = QuantSpec(format=fmt, granularity="channel")
    qp = choose_qparams(x, spec)
    amax = x.abs().amax(dim=1, keepdim=True)
    assert torch.allclose(qp.scale, amax / fmax, rtol=1e-7, atol=0)
    qt = quantize(x, spec, qp)
    assert torch.equal(qt.q.to(torch.float32).abs().amax(dim=1), torch.full((64,), fmax))


@pytest.mark.parametrize(("fmt", "dtype", "fmax"), FP8)
def test_fp8_saturates_values_beyond_the_range_instead_of_producing_nan_or_inf(fmt, dtype, fmax):
    x = torch.linspace(-1, 1, 1001)
    spec = QuantSpec(format=fmt)
    qp = choose_qparams(x, spec)
    big = torch.tensor([-1e6, -2.0, 2.0, 1e6, 3e38])
    out = fake_quant(big, spec, qp)
    assert torch.isfinite(out).all()
    assert out.tolist() == pytest.approx([-1.0, -1.0, 1.0, 1.0, 1.0])


@pytest.mark.parametrize(("fmt", "count"), [("fp8_e4m3", 253), ("fp8_e5m2", 247)])
def test_fp8_value_table_is_the_sorted_finite_codes(fmt, count):
    vals = get(fmt).all_values()
    assert vals.numel() == count == QuantSpec(format=fmt).levels
    assert torch.all(vals[1:] > vals[:-1])
    assert vals[0].item() == -vals[-1].item() == -QuantSpec(format=fmt).qmax
    assert 0.0 in vals.tolist()


def test_nf4_codebook_is_sixteen_sorted_levels_from_minus_one_to_one_with_an_exact_zero():
    assert NF4_CODEBOOK.shape == (16,)
    assert NF4_CODEBOOK[0].item() == -1.0 and NF4_CODEBOOK[-1].item() == 1.0
    assert 0.0 in NF4_CODEBOOK.tolist()
    assert torch.all(NF4_CODEBOOK[1:] > NF4_CODEBOOK[:-1])


@pytest.mark.parametrize("group_size", [16, 64])
def test_nf4_outputs_the_nearest_codebook_value_times_each_groups_absmax(group_size):
    x = _weights(3)
    spec = QuantSpec(format="nf4", granularity="group", group_size=group_size)
    qp = choose_qparams(x, spec)
    groups = x.reshape(64, -1, group_size)
    absmax = groups.abs().amax(dim=-1, keepdim=True)
    assert torch.equal(qp.scale, absmax)
    out = fake_quant(x, spec, qp).reshape(groups.shape)
    normed = groups / absmax
    dist = (normed[..., None] - NF4_CODEBOOK).abs()  # (..., 16)
    nearest = dist.min(dim=-1).values
    idx = quantize(x, spec, qp).q.reshape(groups.shape)
    assert idx.dtype == torch.uint8 and int(idx.max()) <= 15
    chosen = dist.gather(-1, idx.long()[..., None]).squeeze(-1)
    assert torch.equal(chosen, nearest), "the chosen code is (one of) the nearest"
    assert torch.equal(out, NF4_CODEBOOK[idx.long()] * absmax)
    # each group's absmax itself comes back exactly (codebook ends are ±1)
    at_max = groups.abs() == absmax
    assert torch.equal(out[at_max].abs(), groups[at_max].abs())


def test_nf4_per_tensor_and_per_channel_scale_by_absmax_too():
    x = _weights(4)
    for spec, amax in (
        (QuantSpec(format="nf4"), x.abs().max()),
        (QuantSpec(format="nf4", granularity="channel"), x.abs().amax(dim=1, keepdim=True)),
    ):
        qp = choose_qparams(x, spec)
        assert torch.equal(qp.scale, amax)


def test_nf4_ties_between_codes_go_to_the_lower_code():
    spec = QuantSpec(format="nf4")
    mids = (NF4_CODEBOOK[1:] + NF4_CODEBOOK[:-1]) / 2
    x = torch.cat([mids, torch.tensor([1.0])])  # absmax 1, every value a midpoint
    qp = choose_qparams(x, spec)
    assert qp.scale.item() == 1.0
    assert quantize(x, spec, qp).q[:-1].tolist() == list(range(15))


@pytest.mark.parametrize(
    "spec",
    [
        QuantSpec(bits=2),
        QuantSpec(bits=3, scheme="asymmetric"),
        QuantSpec(bits=4, granularity="channel"),
        QuantSpec(bits=5, scheme="asymmetric", granularity="group", group_size=32),
        QuantSpec(bits=8, narrow_range=True),
        QuantSpec(bits=4, format="pow2"),
        QuantSpec(bits=6, format="pow2", scheme="asymmetric", granularity="channel"),
        QuantSpec(bits=4, rounding="stochastic"),
        QuantSpec(bits=4, rounding="truncate", scheme="asymmetric"),
        QuantSpec(format="fp8_e4m3"),
        QuantSpec(format="fp8_e4m3", granularity="channel"),
        QuantSpec(format="fp8_e5m2", granularity="group", group_size=64),
        QuantSpec(format="nf4", granularity="group", group_size=64),
        QuantSpec(format="nf4", granularity="channel"),
    ],
    ids=lambda s: f"{s.label()} {s.rounding}",
)
def test_every_fake_quant_output_lies_on_its_blocks_grid(spec):
    x = _weights(5)
    qp = choose_qparams(x * 0.8, spec)  # some values clip, which must land on the grid ends
    out = fake_quant(x, spec, qp)
    layout = BlockLayout.of(x.shape, spec)
    rows = layout.rows(out)
    for b in range(qp.num_blocks):
        g = grid(spec, qp, b)
        assert torch.all(g[1:] > g[:-1]), "grid is sorted and distinct"
        assert torch.isin(rows[b], g).all(), f"block {b}"


@pytest.mark.parametrize(
    "spec",
    [QuantSpec(bits=3), QuantSpec(bits=3, scheme="asymmetric"), QuantSpec(format="fp8_e5m2"), QuantSpec(format="nf4")],
    ids=lambda s: s.label(),
)
def test_grid_is_exactly_the_set_of_reachable_outputs(spec):
    # a dense sweep through the whole range (and past it) reaches every grid value and nothing else
    qp = choose_qparams(torch.tensor([-1.0, 0.7]), spec)
    lo, hi = clip_range(spec, qp)
    g = grid(spec, qp)
    sweep = torch.cat([g, torch.linspace(float(lo) * 1.5, float(hi) * 1.5, 200_001)])
    out = fake_quant(sweep, spec, qp)
    assert torch.equal(torch.unique(out), g)
    assert g.numel() == spec.levels


def test_integer_grid_has_the_documented_values():
    spec = QuantSpec(bits=2, scheme="asymmetric")
    qp = choose_qparams(torch.tensor([-1.0, 3.0]), spec)
    assert grid(spec, qp).tolist() == pytest.approx([-4 / 3, 0.0, 4 / 3, 8 / 3])
    with pytest.raises(ValueError, match="block"):
        grid(spec, qp, block=1)


@pytest.mark.parametrize("scheme", ["symmetric", "asymmetric"])
def test_pow2_grid_values_are_integers_times_a_power_of_two(scheme):
    x = _weights(6)
    spec = QuantSpec(bits=5, scheme=scheme, format="pow2", granularity="channel")
    qp = choose_qparams(x, spec)
    out = fake_quant(x, spec, qp)
    k = out / qp.scale
    assert torch.equal(k, torch.round(k))
    assert torch.equal(qp.scale, torch.exp2(torch.round(torch.log2(qp.scale))))


@pytest.mark.parametrize("scheme", ["symmetric", "asymmetric"])
def test_pow2_error_is_at_most_twice_the_int_error_bound(scheme):
    # the pow2 scale is < 2x the int scale, so the worst-case rounding error is < 2 x (s_int / 2)
    x = _weights(7)
    spec = QuantSpec(bits=6, scheme=scheme, granularity="channel")
    s_int = choose_qparams(x, spec).scale
    err = (fake_quant(x, spec.replace(format="pow2")) - x).abs()
    assert torch.all(err <= s_int * (1 + 1e-5))


@pytest.mark.parametrize("fmt", ["fp8_e4m3", "fp8_e5m2", "nf4"])
def test_non_integer_formats_round_trip_through_dequantize_with_the_input_dtype(fmt):
    x = _weights(8).to(torch.bfloat16)
    spec = QuantSpec(format=fmt, granularity="group", group_size=64)
    qt = quantize(x, spec)
    assert qt.dtype == torch.bfloat16
    out = dequantize(qt)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, fake_quant(x, spec))


# --- NF4 against bitsandbytes, the reference implementation of QLoRA's data type ---------------------------------

#: The NF4 values as published (QLoRA, Dettmers et al. 2023, appendix E; bitsandbytes ``get_4bit_type("nf4")``).
PUBLISHED_NF4 = [
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
    -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
    0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
]


def test_nf4_codebook_is_exactly_the_published_table_and_bitsandbytes_own():
    from bitsandbytes.functional import get_4bit_type

    assert torch.equal(NF4_CODEBOOK, torch.tensor(PUBLISHED_NF4, dtype=torch.float32))
    assert torch.equal(NF4_CODEBOOK, get_4bit_type("nf4", device="cpu"))


@pytest.mark.parametrize("shape", [(4, 128), (16, 256), (3, 64), (1, 64)])
def test_nf4_per_group_of_64_matches_bitsandbytes_codes_and_values_bit_for_bit(shape):
    from bitsandbytes.functional import dequantize_4bit, quantize_4bit

    x = torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)))
    spec = QuantSpec(format="nf4", granularity="group", group_size=64)
    packed, state = quantize_4bit(x, blocksize=64, quant_type="nf4")
    theirs = dequantize_4bit(packed, state)
    assert torch.equal(fake_quant(x, spec), theirs)
    codes = quantize(x, spec).q.reshape(-1).to(torch.uint8)
    bnb_codes = torch.stack([packed.reshape(-1) >> 4, packed.reshape(-1) & 0xF], dim=1).reshape(-1)  # high nibble first
    assert torch.equal(codes, bnb_codes)
    assert torch.equal(quantize(x, spec).qparams.scale.reshape(-1), state.absmax.reshape(-1))
