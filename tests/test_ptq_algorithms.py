"""quantlib.ptq: the entry point's contract, each algorithm's defining property, and edge cases.

References compared elsewhere: torch's own CLE and bias correction (tests/test_ptq_vs_torch.py) and a textbook
GPTQ (tests/test_ptq_gptq_reference.py).
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import sample_models
from quantlib import QuantSpec, choose_qparams
from quantlib.model import quantize_weights
from quantlib.ptq import METHODS, apply, target_layers
from quantlib.ptq.reconstruction import rel_error
from tests.model_hash import state_hash

SPEC3 = QuantSpec(bits=3, granularity="channel")
FAST = {"adaround": {"iters": 30}}


def _mlp(seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Linear(12, 24), nn.ReLU(), nn.Linear(24, 24), nn.ReLU(), nn.Linear(24, 5)).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return net, torch.randn(200, 12, generator=g)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("model_name", ["digits-cnn", "digits-mlp"])
def test_apply_returns_a_quantized_copy_and_never_changes_the_shared_model(method, model_name):
    sm = sample_models.load(model_name)
    before = state_hash(sm.model)
    result = apply(sm.model, method, SPEC3, sm.calibration_inputs, **FAST.get(method, {}))
    assert state_hash(sm.model) == before
    assert result.model is not sm.model
    assert list(result.report["layer"]) == target_layers(sm.model)
    assert {"layer", "rel_error", "seconds"} <= set(result.report.columns)
    assert (result.report["rel_error"] >= 0).all() and (result.report["seconds"] >= 0).all()
    out = sm.run(result.model)
    assert torch.isfinite(out).all()


def test_rtn_equals_quantize_weights_bit_for_bit():
    sm = sample_models.load("digits-mlp")
    spec = QuantSpec(bits=4, granularity="group", group_size=16)
    ours = apply(sm.model, "rtn", spec, sm.calibration_inputs).model
    ref = quantize_weights(sm.model, spec, target_layers(sm.model))
    for (n, a), (_, b) in zip(ours.state_dict().items(), ref.state_dict().items(), strict=True):
        assert torch.equal(a, b), n


def test_rel_error_is_the_relative_output_error_on_the_calibration_rows():
    net, x = _mlp()
    result = apply(net, "rtn", SPEC3, x)
    w, w_hat = net[0].weight.detach(), result.model[0].weight.detach()
    expected = float(((x @ (w_hat - w).T).double().square().sum()) / (x @ w.T).double().square().sum())
    assert result.report.loc[0, "rel_error"] == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("bits", [3, 4])
def test_gptq_reconstructs_every_minilm_linear_at_least_as_well_as_rtn(bits):
    """The property GPTQ exists for, on the real model: on the calibration inputs, per layer."""
    sm = sample_models.load("minilm")
    spec = QuantSpec(bits=bits, granularity="channel")
    rtn = apply(sm.model, "rtn", spec, sm.calibration_inputs).report
    gptq = apply(sm.model, "gptq", spec, sm.calibration_inputs).report
    assert len(gptq) == 37
    worse = gptq[gptq["rel_error"].to_numpy() > rtn["rel_error"].to_numpy()]
    assert worse.empty, worse
    assert gptq["rel_error"].mean() < 0.5 * rtn["rel_error"].mean()


def test_gptq_act_order_keeps_every_weight_on_its_rows_grid():
    net, x = _mlp(1)
    result = apply(net, "gptq", SPEC3, x, act_order=True)
    for name in ("0", "2", "4"):
        w = net.get_submodule(name).weight.detach()
        qp = choose_qparams(w, SPEC3)
        codes = result.model.get_submodule(name).weight.detach() / qp.scale
        assert torch.allclose(codes, codes.round(), atol=1e-4)
        assert codes.round().min() >= SPEC3.qmin and codes.round().max() <= SPEC3.qmax


@pytest.mark.parametrize("granularity", ["tensor", "channel", "group"])
def test_gptq_beats_rtn_on_correlated_inputs(granularity):
    g = torch.Generator().manual_seed(3)
    base = torch.randn(400, 4, generator=g)
    x = base @ torch.randn(4, 32, generator=g) + 0.05 * torch.randn(400, 32, generator=g)  # rank ~4 inputs
    net = nn.Linear(32, 16)
    spec = QuantSpec(bits=3, granularity=granularity, group_size=8)
    assert (apply(net, "gptq", spec, x).report["rel_error"] < apply(net, "rtn", spec, x).report["rel_error"]).all()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), bits=st.integers(2, 6), outliers=st.floats(1.0, 50.0))
def test_awq_is_never_worse_than_rtn_on_its_calibration_inputs(seed, bits, outliers):
    """α = 0 is RTN and the search keeps the best α, so AWQ's reconstruction error is at most RTN's."""
    g = torch.Generator().manual_seed(seed)
    net = nn.Linear(16, 8, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.randn(8, 16, generator=g))
    x = torch.randn(64, 16, generator=g)
    x[:, 0] *= outliers
    spec = QuantSpec(bits=bits, granularity="channel")
    awq = apply(net, "awq", spec, x).report.loc[0, "rel_error"]
    rtn = apply(net, "rtn", spec, x).report.loc[0, "rel_error"]
    assert awq <= rtn * (1 + 1e-4) + 1e-12


@pytest.mark.parametrize("model_name", ["minilm", "digits-cnn"])
def test_smoothquant_leaves_the_float_model_unchanged_before_quantization(model_name):
    sm = sample_models.load(model_name)
    result = apply(sm.model, "smoothquant", QuantSpec(bits=8), sm.calibration_inputs)
    ref, smoothed = sm.run(sm.model), sm.run(result.reference)
    assert torch.allclose(smoothed, ref, atol=1e-5, rtol=1e-4)
    assert any(not torch.allclose(s, torch.ones_like(s)) for s in result.info["scales"].values())


def test_smoothquant_quantizes_the_activations_too():
    net, x = _mlp()
    x[:, 3] *= 40  # an outlier channel
    spec = QuantSpec(bits=4)
    w_only = apply(net, "rtn", spec, x).report["rel_error"]
    w_and_a = apply(net, "rtn", spec, x, act_spec=spec).report["rel_error"]
    smooth = apply(net, "smoothquant", spec, x).report["rel_error"]
    assert w_and_a[0] > w_only[0]  # the activation grid costs something
    assert smooth[0] < w_and_a[0]  # migrating the outlier wins part of it back


@pytest.mark.parametrize("model_name", ["digits-mlp", "digits-cnn"])
def test_cle_leaves_the_float_model_unchanged(model_name):
    sm = sample_models.load(model_name)
    result = apply(sm.model, "cle", QuantSpec(bits=4), sm.calibration_inputs)
    assert result.info["pairs"]
    assert torch.allclose(sm.run(result.reference), sm.run(sm.model), atol=1e-5, rtol=1e-5)


def test_cle_refuses_a_model_without_relu_pairs_in_plain_words():
    sm = sample_models.load("tiny-linear")
    with pytest.raises(ValueError, match="joined only by ReLU"):
        apply(sm.model, "cle", QuantSpec(bits=4), sm.calibration_inputs)


def test_adaround_with_no_iterations_is_round_to_nearest():
    net, x = _mlp()
    ada = apply(net, "adaround", SPEC3, x, iters=0).model
    rtn = apply(net, "rtn", SPEC3, x).model
    for a, b in zip(ada.parameters(), rtn.parameters(), strict=True):
        assert torch.equal(a, b)


def test_adaround_learns_a_better_rounding_on_digits_cnn_and_reports_progress():
    sm = sample_models.load("digits-cnn")
    calls = []
    spec = QuantSpec(bits=3)
    ada = apply(sm.model, "adaround", spec, sm.calibration_inputs, iters=200,
                progress=lambda d, t, m: calls.append((d, t, m)))
    rtn = apply(sm.model, "rtn", spec, sm.calibration_inputs)
    assert (ada.report["rel_error"] < rtn.report["rel_error"]).all()
    assert (ada.report["flipped"] > 0).all()
    done = [c[0] for c in calls]
    assert done == sorted(done) and calls[-1][:2] == (600, 600) and calls[1][0] == 10


def test_adaround_learns_under_no_grad_as_a_job_runner_calls_it():
    net, x = _mlp()
    free = apply(net, "adaround", SPEC3, x, iters=30).model
    with torch.no_grad():
        guarded = apply(net, "adaround", SPEC3, x, iters=30).model
    for a, b in zip(free.parameters(), guarded.parameters(), strict=True):
        assert torch.equal(a, b), "the same rounding, whatever the caller's grad mode"


def test_adaround_refuses_formats_without_an_integer_grid():
    net, x = _mlp()
    with pytest.raises(ValueError, match="integer grid"):
        apply(net, "adaround", QuantSpec(format="nf4"), x, iters=5)


def test_bias_correction_removes_the_mean_output_shift():
    net, x = _mlp(2)
    spec = QuantSpec(bits=2)
    corrected = apply(net, "bias_correction", spec, x)
    rtn = apply(net, "rtn", spec, x)
    # the first layer sees the same input in both: its mean output error becomes zero
    err = lambda m: (m[0](x) - net[0](x)).mean(dim=0)  # noqa: E731
    with torch.no_grad():
        assert err(corrected.model).abs().max() < 1e-5 < err(rtn.model).abs().max()
    assert corrected.report.loc[0, "rel_error"] < rtn.report.loc[0, "rel_error"]


# --- edge cases ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["rtn", "gptq", "awq", "adaround", "bias_correction", "smoothquant"])
def test_constant_weights_come_back_exactly(method):
    net = nn.Linear(6, 3)
    with torch.no_grad():
        net.weight.fill_(0.5)
        net.bias.fill_(0.25)
    x = torch.randn(40, 6, generator=torch.Generator().manual_seed(0)).abs()
    result = apply(net, method, QuantSpec(bits=4, granularity="channel"), x, **FAST.get(method, {}))
    if method != "smoothquant":  # smoothquant also quantizes the activations
        assert torch.equal(result.model.weight, net.weight)
        assert result.report.loc[0, "rel_error"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("method", ["rtn", "gptq", "awq", "adaround", "bias_correction", "smoothquant"])
def test_zero_activations_give_zero_error_and_finite_weights(method):
    net, _ = _mlp()
    x = torch.zeros(10, 12)
    result = apply(net, method, SPEC3, x, **FAST.get(method, {}))
    assert result.report.loc[0, "rel_error"] == 0.0
    for p in result.model.parameters():
        assert torch.isfinite(p).all()


@pytest.mark.parametrize("method", ["rtn", "gptq", "awq", "adaround", "bias_correction", "smoothquant"])
def test_one_row_layers_and_layers_without_bias(method):
    net = nn.Sequential(nn.Linear(8, 1, bias=False)).eval()
    x = torch.randn(30, 8, generator=torch.Generator().manual_seed(1))
    result = apply(net, method, QuantSpec(bits=3, granularity="channel"), x, **FAST.get(method, {}))
    assert result.model[0].bias is None if method != "smoothquant" else result.model[0].layer.layer.bias is None
    assert math.isfinite(result.report.loc[0, "rel_error"])
    if method == "bias_correction":
        assert math.isnan(result.report.loc[0, "bias_shift"])


def test_bad_requests_fail_in_plain_words():
    net, x = _mlp()
    with pytest.raises(ValueError, match="unknown method"):
        apply(net, "magic", SPEC3, x)
    with pytest.raises(TypeError, match="takes no option"):
        apply(net, "rtn", SPEC3, x, iters=3)
    with pytest.raises(ValueError, match="not a Linear / Conv layer"):
        apply(net, "rtn", SPEC3, x, layers=["1"])
    with pytest.raises(ValueError, match="group size 5 does not divide"):
        apply(net, "gptq", QuantSpec(bits=4, granularity="group", group_size=5), x)


def test_rel_error_edge_values():
    z = torch.zeros(3, 2)
    w = torch.ones(1, 2)
    assert rel_error(z, w, w) == 0.0
    assert rel_error(torch.ones(3, 2), torch.zeros(1, 2), w) == math.inf
