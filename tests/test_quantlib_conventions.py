"""Where quantlib deliberately differs from its peers, each difference pinned against the peer itself.

The README's "Conventions" section lists these; a change on either side (ours or a peer's new release) fails
here instead of silently changing what the app teaches. Peers: ``torch.ao.quantization`` observers and
PyTorch's fake-quant kernels, ONNX Runtime's ``QuantizeLinear``, torch's own fp8 casts.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from quantlib import QParams, QuantSpec, choose_qparams, fake_quant, quantize
from quantlib.calibration import percentile_range
from quantlib.kernels import MIN_SCALE

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from torch.ao.quantization.observer import MinMaxObserver


def _ao_symmetric(x: torch.Tensor, bits: int) -> tuple[float, int]:
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    obs = MinMaxObserver(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric, quant_min=qmin, quant_max=qmax)
    obs(x)
    scale, zero_point = obs.calculate_qparams()
    return float(scale), int(zero_point)


# --- 1. the symmetric scale ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("bits", "ratio"), [(8, 127.5 / 127), (4, 7.5 / 7), (3, 3.5 / 3), (2, 1.5 / 1)])
def test_symmetric_scale_is_amax_over_qmax_where_torch_ao_divides_by_half_the_grid(bits, ratio):
    x = torch.randn(4096, generator=torch.Generator().manual_seed(bits))
    amax = float(x.abs().max())
    ours = float(choose_qparams(x, QuantSpec(bits=bits)).scale)
    theirs, _ = _ao_symmetric(x, bits)
    assert ours == pytest.approx(amax / (2 ** (bits - 1) - 1), rel=1e-6)  # amax / (2^(b-1) - 1)
    assert theirs == pytest.approx(amax / ((2 ** bits - 1) / 2), rel=1e-6)  # amax / ((qmax - qmin) / 2)
    assert ours / theirs == pytest.approx(ratio, rel=1e-5)  # 0.4 % at 8 bits, 7 % at 4 bits


def test_a_two_bit_symmetric_grid_uses_three_of_its_four_levels_in_both_conventions():
    x = torch.linspace(-1, 1, 1001)
    ours = quantize(x, QuantSpec(bits=2)).q.unique().tolist()
    scale, zp = _ao_symmetric(x, 2)
    theirs = torch.quantize_per_tensor(x, scale, zp, torch.qint8).int_repr().clamp(-2, 1).unique().tolist()
    assert ours == [-1, 0, 1]  # -2 is never reached: |x| <= amax = 1·s
    assert sorted(set(theirs)) == [-2, -1, 0, 1]  # torch.ao reaches -2, and clips +amax down to 1·s
    assert fake_quant(x, QuantSpec(bits=2)).max() == 1.0  # ours keeps +amax exactly


# --- 2. the scale floor -----------------------------------------------------------------------------------


def test_the_scale_floor_is_the_smallest_normal_float_so_tiny_tensors_survive_where_torch_ao_zeroes_them():
    tiny = torch.full((8,), 1e-20)
    obs = MinMaxObserver(dtype=torch.quint8, qscheme=torch.per_tensor_affine)
    obs(tiny)
    scale, zp = obs.calculate_qparams()
    assert float(scale) == pytest.approx(torch.finfo(torch.float32).eps)  # 1.19e-7
    theirs = torch.fake_quantize_per_tensor_affine(tiny, float(scale), int(zp), 0, 255)
    ours = fake_quant(tiny, QuantSpec(bits=8, scheme="asymmetric"))
    assert torch.all(theirs == 0)
    assert torch.allclose(ours, tiny, rtol=1e-2)
    assert MIN_SCALE == torch.finfo(torch.float32).tiny
    assert float(choose_qparams(torch.zeros(8), QuantSpec(bits=8)).scale) == MIN_SCALE  # all-zero: no division by 0


# --- 3. constant blocks -------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [5.3, -0.3, 1e-3, 123.456])
def test_a_constant_tensor_comes_back_exactly_where_torch_ao_symmetric_moves_it(value):
    c = torch.full((16,), value)
    assert torch.equal(fake_quant(c, QuantSpec(bits=8)), c)
    assert torch.equal(fake_quant(c, QuantSpec(bits=8, scheme="asymmetric")), c)
    scale, zp = _ao_symmetric(c, 8)
    theirs = torch.fake_quantize_per_tensor_affine(c, scale, zp, -128, 127)
    assert not torch.equal(theirs, c)  # amax / 127.5 puts the constant half a step past the grid's end
    assert float((theirs - c).abs().max()) == pytest.approx(abs(value) / 255, rel=1e-3)


# --- 4. rounding x · (1/s) like torch's kernels, not x / s like ONNX --------------------------------------------

#: Found by search: float32 x and s where round(x · (1/s)) and round(x / s) land on different integers.
TIE_X, TIE_S = 3.4734647274017334, 0.07633988559246063


def test_codes_are_round_of_x_times_the_reciprocal_exactly_as_torch_kernels_compute_them():
    x = torch.tensor([TIE_X], dtype=torch.float32)
    s = torch.tensor(TIE_S, dtype=torch.float32)
    by_reciprocal, by_division = torch.round(x * (1.0 / s)), torch.round(x / s)
    assert by_reciprocal.item() == 45 and by_division.item() == 46
    spec = QuantSpec(bits=8)
    qp = QParams(s, torch.tensor(0, dtype=torch.int32), -128, 127)
    ours = quantize(x, spec, qp).q
    torch_kernel = torch.quantize_per_tensor(x, float(s), 0, torch.qint8).int_repr()
    assert ours.item() == torch_kernel.item() == 45


def test_onnx_runtime_quantize_linear_divides_and_lands_one_step_away_at_such_a_tie():
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    node = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"])
    graph = helper.make_graph(
        [node], "quantize", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("q", TensorProto.INT8, [1])],
        initializer=[helper.make_tensor("s", TensorProto.FLOAT, [], [TIE_S]),
                     helper.make_tensor("z", TensorProto.INT8, [], [0])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (theirs,) = session.run(None, {"x": torch.tensor([TIE_X]).numpy()})
    assert int(theirs[0]) == 46  # x / s
    ours = torch.round(torch.tensor([TIE_X]) * (1.0 / torch.tensor(TIE_S))).item()
    assert ours == 45  # one step apart, at a tie only


# --- 5. fp8 saturates -----------------------------------------------------------------------------------------


def test_fp8_e5m2_saturates_at_its_largest_value_where_a_plain_torch_cast_overflows_to_inf():
    x = torch.cat([torch.randn(10_000, generator=torch.Generator().manual_seed(5)), torch.tensor([1e6])])
    assert torch.isinf(torch.tensor([1e6]).to(torch.float8_e5m2).float()).all()
    spec = QuantSpec(format="fp8_e5m2", calibration="percentile", percentile=99.0)
    out = fake_quant(x, spec)
    assert torch.isfinite(out).all()
    scale = float(choose_qparams(x, spec).scale)
    assert float(out.max()) == pytest.approx(57344.0 * scale, rel=1e-6)  # the outlier clips to the top of the grid


# --- 6. percentile clipping per side ---------------------------------------------------------------------------


def test_asymmetric_percentile_clips_each_side_at_its_own_nearest_rank_percentile_symmetric_clips_abs():
    g = torch.Generator().manual_seed(1)
    x = torch.cat([torch.randn(10_000, generator=g), torch.rand(100, generator=g) * 20 + 5])  # outliers on one side
    n = x.numel()
    lo, hi = percentile_range(x.reshape(1, -1), QuantSpec(scheme="asymmetric", calibration="percentile", percentile=99.0))
    assert lo.item() == torch.kthvalue(x, math.ceil(0.01 * n)).values.item()
    assert hi.item() == torch.kthvalue(x, math.ceil(0.99 * n)).values.item()
    slo, shi = percentile_range(x.reshape(1, -1), QuantSpec(calibration="percentile", percentile=99.0))
    assert shi.item() == -slo.item() == torch.kthvalue(x.abs(), math.ceil(0.99 * n)).values.item()
    assert -lo.item() < shi.item() and hi.item() < shi.item()  # per side: the clean side is not widened
