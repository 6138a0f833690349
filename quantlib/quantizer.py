"""The public quantizer: :func:`choose_qparams`, :func:`quantize`, :func:`dequantize`, :func:`fake_quant`.

For the integer formats::

    q  = clamp(round(x / s) + z, qmin, qmax)        # quantize
    x̂ = (q - z) · s                                 # dequantize
    fake_quant(x) = x̂                                # both, staying in floating point

Worked example (8-bit symmetric, per-tensor, min-max): ``x = [-1.0, 0.5, 2.54]`` gives ``s = 2.54 / 127 = 0.02``,
``q = [-50, 25, 127]`` and ``x̂ = [-1.0, 0.5, 2.54]`` (up to float32 rounding of ``s``).

Input policy:

- floating inputs of any precision (fp16, bf16, fp32, fp64) are quantized in float32; :func:`fake_quant` and
  :func:`dequantize` return the input's dtype (so a bf16 model stays bf16; bf16 itself then rounds the grid
  values to 8 significant bits, which matters only beyond 8-bit grids). Integer and bool inputs are read as
  float32 and give float32 back.
- NaN or ±Inf anywhere raises ``ValueError``: a range cannot be calibrated over them, and silently clipping
  them would hide a broken model.
- An empty tensor gives empty outputs (scale 1, zero point 0).
"""

from __future__ import annotations

import math

import torch

from .calibration import compute_range
from .kernels import fake_quant_with, in_range_mask, qparams_from_range
from .layout import BlockLayout
from .spec import QParams, QTensor, QuantSpec


def _output_dtype(x: torch.Tensor) -> torch.dtype:
    return x.dtype if x.is_floating_point() else torch.float32


def as_float32(x: torch.Tensor, what: str = "input") -> torch.Tensor:
    """``x`` as a float32 tensor (detached), after checking it holds only finite values."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
    if x.is_complex():
        raise ValueError(f"{what} is complex; quantization works on real values")
    xf = x.detach().to(torch.float32)
    if x.is_floating_point() and xf.numel():
        # One pass, no allocation: NaN propagates through min/max and ±inf shows at an end. (isfinite().all()
        # writes a bool tensor and reads it back: several times slower on large tensors.)
        lo, hi = torch.aminmax(xf)
        if not (math.isfinite(float(lo)) and math.isfinite(float(hi))):
            finite = torch.isfinite(xf)
            if x.dtype == torch.float64 and bool(torch.isfinite(x).all()):
                # Finite in float64 but beyond float32's range: say so rather than blame the data for Inf.
                big = float(x.detach().abs().max())
                raise ValueError(
                    f"{what} holds values up to {big:.3g}, beyond float32's range (about 3.4e38), so they become "
                    "infinite in float32; quantization needs finite values"
                )
            n_nan = int(torch.isnan(xf).sum())
            n_inf = int((~finite).sum()) - n_nan
            raise ValueError(
                f"{what} contains {n_nan} NaN and {n_inf} infinite values; quantization needs finite values "
                "(check the model or data for overflow)"
            )
    return xf


def choose_qparams(x: torch.Tensor, spec: QuantSpec) -> QParams:
    """Calibrate a range on ``x`` with ``spec.calibration`` and derive scale and zero point for every block.

    >>> qp = choose_qparams(torch.tensor([-1.0, 0.0, 3.0]), QuantSpec(bits=2, scheme="asymmetric"))
    >>> round(qp.scale.item(), 4), qp.zero_point.item()
    (1.3333, 1)
    """
    xf = as_float32(x)
    layout = BlockLayout.of(xf.shape, spec)
    if xf.numel() == 0:
        shape = layout.param_shape
        return QParams(torch.ones(shape), torch.zeros(shape, dtype=torch.int32), spec.qmin, spec.qmax)
    lo, hi = compute_range(layout.rows(xf), spec)
    scale, zero_point = qparams_from_range(lo, hi, spec)
    return QParams(layout.to_params(scale), layout.to_params(zero_point), spec.qmin, spec.qmax)


def _check_qparams(qparams: QParams, layout: BlockLayout, spec: QuantSpec) -> None:
    if not isinstance(qparams, QParams):
        raise TypeError(f"qparams must be a QParams (see choose_qparams), got {type(qparams).__name__}")
    expected = layout.param_shape
    if tuple(qparams.scale.shape) not in (expected, ()) or tuple(qparams.zero_point.shape) not in (expected, ()):
        raise ValueError(
            f"qparams have scale shape {list(qparams.scale.shape)} but {spec.granularity} quantization of a "
            f"tensor of shape {list(layout.shape)} needs {list(expected)}"
        )
    if (qparams.qmin, qparams.qmax) != (spec.qmin, spec.qmax):
        raise ValueError(
            f"qparams are for the grid [{qparams.qmin}, {qparams.qmax}] but the spec's grid is "
            f"[{spec.qmin}, {spec.qmax}]"
        )
    scale = qparams.scale
    if not bool(((scale > 0) & torch.isfinite(scale)).all()):
        raise ValueError("every scale must be positive and finite")
    zp = qparams.zero_point
    if zp.is_floating_point() and not bool((zp == torch.round(zp)).all()):
        raise ValueError("every zero point must be an integer")
    if zp.numel() and not bool(((zp >= spec.qmin) & (zp <= spec.qmax)).all()):
        raise ValueError(
            f"every zero point must lie in the grid [{spec.qmin}, {spec.qmax}] (so that 0.0 is representable), "
            f"got values from {int(zp.min())} to {int(zp.max())}"
        )


def _prepare(x: torch.Tensor, spec: QuantSpec, qparams: QParams | None):
    xf = as_float32(x)
    layout = BlockLayout.of(xf.shape, spec)
    if qparams is None:
        qparams = choose_qparams(xf, spec)
    else:
        _check_qparams(qparams, layout, spec)
    scale = qparams.scale.to(torch.float32)
    return xf, layout, qparams, scale, qparams.zero_point


def quantize(x: torch.Tensor, spec: QuantSpec, qparams: QParams | None = None) -> QTensor:
    """Quantize ``x`` to codes: int32 for integer formats, fp8 codes, or nf4 indices (uint8).

    ``qparams`` defaults to :func:`choose_qparams` on ``x`` itself.

    >>> qt = quantize(torch.tensor([-1.0, 0.5, 2.54]), QuantSpec(bits=8))
    >>> qt.q.tolist()
    [-50, 25, 127]
    """
    xf, layout, qparams, scale, zp = _prepare(x, spec, qparams)
    q = spec.number_format.encode(layout.view(xf), scale, zp, spec)
    return QTensor(layout.unview(q), qparams, spec, _output_dtype(x))


def dequantize(qt: QTensor) -> torch.Tensor:
    """Read codes back to real values: ``x̂ = (q - z) · s`` (``codebook[q] · s`` for nf4, ``fp8 · s``)."""
    layout = BlockLayout.of(qt.q.shape, qt.spec)
    v = layout.view(qt.q)
    out = qt.spec.number_format.decode(v, qt.qparams.scale.to(torch.float32), qt.qparams.zero_point)
    return layout.unview(out).to(qt.dtype)


def _in_range_mask(v: torch.Tensor, scale: torch.Tensor, zp: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    return in_range_mask(v, scale, zp, spec)


class _StraightThrough(torch.autograd.Function):
    """Fake quant whose gradient is 1 inside the clip range and 0 outside (straight-through estimator)."""

    @staticmethod
    def forward(ctx, x, values, mask):  # noqa: ANN001 - autograd signature
        ctx.save_for_backward(mask)
        return values

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001
        (mask,) = ctx.saved_tensors
        return grad * mask.to(grad.dtype), None, None


def fake_quant(x: torch.Tensor, spec: QuantSpec, qparams: QParams | None = None) -> torch.Tensor:
    """``dequantize(quantize(x))`` in one pass, differentiable with the straight-through estimator.

    The forward value equals ``torch.fake_quantize_per_tensor_affine`` /
    ``torch.fake_quantize_per_channel_affine`` bit for bit for the same scale, zero point and grid (except where
    torch's would overflow to ±inf: grids reaching past ~3.4e38 stop at their last finite value, see
    :func:`quantlib.kernels.code_bounds`). The backward
    passes the gradient unchanged where ``qmin <= round(x / s) + z <= qmax`` and blocks it where ``x`` is clipped,
    which is what quantization-aware training needs. Scales are treated as constants (no gradient).

    >>> fake_quant(torch.tensor([0.1, 0.26, 1.0]), QuantSpec(bits=3)).tolist()  # s = 1/3
    [0.0, 0.3333333432674408, 1.0]
    """
    xf, layout, qparams, scale, zp = _prepare(x, spec, qparams)
    v = layout.view(xf)
    if xf.numel() == 0:
        out = xf.clone()
    else:
        out = layout.unview(fake_quant_with(v, scale, zp, spec))
    out = out.to(_output_dtype(x))
    if x.requires_grad and x.is_floating_point():
        mask = layout.unview(_in_range_mask(v, scale, zp, spec))
        return _StraightThrough.apply(x, out, mask)
    return out
