"""Round-to-nearest (RTN): the baseline every other algorithm is compared with.

    Ŵ = s · (clamp(round(W / s) + z, qmin, qmax) − z)

with ``s, z`` from the spec's calibration of each block (tensor / channel / group). Nothing is learned and no
data is needed for the weights: this is what the rest of the app shows. With ``act_spec`` it also quantizes each
layer's input activations with a static per-tensor range calibrated on the calibration inputs (W8A8 when both
are 8-bit) - :func:`quantlib.model.quantize_model`, the activation side the app already has.

Worked example, 2-bit symmetric per-tensor: ``W = [0.4, -1.0, 0.9]`` → ``s = 1.0``, ``Ŵ = [0, -1, 1]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from ..model import Inputs, activation_spec, call, quantize_model, quantize_weights
from ..spec import QuantSpec


def quantize(
    model: nn.Module,
    names: list[str],
    spec: QuantSpec,
    act_spec: QuantSpec | None = None,
    calibration_inputs: Inputs | None = None,
    forward: Callable[[nn.Module, Inputs], Any] = call,
) -> nn.Module:
    """A quantized copy of ``model``: the weights of ``names`` rounded to nearest, and with ``act_spec`` their
    input activations too (per-tensor, static, calibrated on ``calibration_inputs``)."""
    if act_spec is None:
        return quantize_weights(model, spec, names)
    return quantize_model(
        model, spec, activation_spec(act_spec), calibration_inputs, layers=names, forward=forward,
        quantize_outputs=False,
    )
