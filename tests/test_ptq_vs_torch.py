"""CLE and bias correction against PyTorch's own implementations (torch/ao/quantization/_equalize.py and
_correct_bias.py), on the sample models where both apply.

What is compared:
- CLE: the equalized float weights and biases of every pair, ours vs ``torch.ao.quantization._equalize.equalize``
  on the same pairs with the same threshold - bit for bit (same arithmetic, same convergence test).
- Bias correction: the corrected biases, ours vs ``torch.ao.quantization._correct_bias.bias_correction`` run on
  the same RTN-quantized copy with one calibration batch (torch's shadow modules feed the float layer the
  quantized model's input, as ours does). Equal to float32 rounding: torch re-runs the whole model for each
  layer, we correct in one pass, so sums are formed in a different order. torch averages over every dim but 1,
  i.e. only 2-D Linear outputs and conv outputs are comparable: digits-mlp and digits-cnn are.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn

import sample_models
from quantlib import QuantSpec
from quantlib.ptq import apply, cle

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # torch.ao prints a DeprecationWarning on import
    from torch.ao.quantization import _correct_bias, _equalize


@pytest.mark.parametrize("model_name", ["digits-mlp", "digits-cnn"])
def test_cle_matches_torch_equalize_bit_for_bit(model_name):
    sm = sample_models.load(model_name)
    ours = apply(sm.model, "cle", QuantSpec(bits=8), sm.calibration_inputs)
    pairs = [list(p) for p in ours.info["pairs"]]
    theirs = _equalize.equalize(copy.deepcopy(sm.model), copy.deepcopy(pairs), threshold=1e-4, inplace=True)
    assert pairs == ([["fc1", "fc2"], ["fc2", "fc3"]] if model_name == "digits-mlp" else [["conv1", "conv2"]])
    for name in {n for p in pairs for n in p}:
        a, b = ours.reference.get_submodule(name), theirs.get_submodule(name)
        assert torch.equal(a.weight, b.weight), name
        assert torch.equal(a.bias, b.bias), name


def test_cle_scales_equalize_the_ranges_of_a_pair():
    first, second = nn.Linear(3, 2), nn.Linear(2, 3)
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[2.0, -2.0, 0.0], [0.5, -0.5, 0.0]]))  # output ranges 4, 1
        second.weight.copy_(torch.tensor([[0.5, 2.0], [-0.5, -2.0], [0.0, 0.0]]))  # input ranges 1, 4
    s = cle.equalize_pair(first, second)
    assert torch.allclose(s, torch.tensor([2.0, 0.5]))
    assert torch.allclose(cle.channel_range(first.weight, 0), torch.tensor([2.0, 2.0]))
    assert torch.allclose(cle.channel_range(second.weight, 1), torch.tensor([2.0, 2.0]))


class _QuantLinear(nn.Linear):
    """A Linear holding fake-quantized weights. torch shadows a layer only when the quantized module's type
    differs from the float one (``nnq.Linear`` in real use), so the test gives our copy's layers their own type."""


class _QuantConv2d(nn.Conv2d):
    """See _QuantLinear."""


def _retype(model: nn.Module) -> None:
    for module in model.modules():
        if type(module) is nn.Linear:
            module.__class__ = _QuantLinear
        elif type(module) is nn.Conv2d:
            module.__class__ = _QuantConv2d


@pytest.mark.parametrize("model_name", ["digits-mlp", "digits-cnn"])
def test_bias_correction_matches_torch_correct_bias(model_name):
    sm = sample_models.load(model_name)
    spec = QuantSpec(bits=3)
    x = sm.calibration_inputs
    ours = apply(sm.model, "bias_correction", spec, x).model
    quantized = apply(sm.model, "rtn", spec, x).model
    float_model = copy.deepcopy(sm.model)
    _retype(quantized)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _correct_bias.bias_correction(float_model, quantized, [(x,)], target_modules={_QuantLinear, _QuantConv2d})
    names = [n for n, m in sm.model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    for name in names:
        theirs = quantized.get_submodule(name).orig_module  # torch wraps each layer in a Shadow module
        ours_b = ours.get_submodule(name).bias
        assert torch.allclose(ours_b, theirs.bias, atol=1e-6, rtol=1e-5), name
        assert not torch.equal(ours_b, sm.model.get_submodule(name).bias), name  # something was corrected
