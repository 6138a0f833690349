"""The weight grid every PTQ algorithm rounds onto: quantlib's own qparams and fake quant, per column block.

No second quantizer: scales and zero points come from :func:`quantlib.choose_qparams` (with the spec's
calibration: min-max, percentile, MSE, entropy) and values go through :func:`quantlib.kernels.fake_quant_with`,
so ``rtn`` here equals :func:`quantlib.model.quantize_weights` bit for bit. What the algorithms add is *which*
values get rounded (GPTQ: after error feedback; AWQ: after scaling) and *which way* (AdaRound).

For a ``(out, k)`` weight matrix:

- per-tensor: one ``(scale, zero point)`` for the whole matrix, shape ``()``;
- per-channel: one per row, shape ``(out, 1)``;
- per-group of ``g``: one per row and group of ``g`` consecutive columns - :func:`column_qparams` of the
  columns ``[j, j + g)`` gives the ``(out, 1)`` parameters of that group.
"""

from __future__ import annotations

import torch

from ..kernels import fake_quant_with
from ..quantizer import choose_qparams, fake_quant
from ..spec import QParams, QuantSpec
from .layers import matrix_spec


def rtn_matrix(w2: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    """Round-to-nearest of a ``(out, k)`` matrix with ``spec`` (per-channel along rows)."""
    return fake_quant(w2, matrix_spec(spec))


def column_qparams(cols: torch.Tensor, spec: QuantSpec) -> QParams:
    """qparams of some columns of a weight matrix: the whole matrix per-tensor, ``(out, 1)`` otherwise.

    Per-group the columns are one group: each row of them is a block, i.e. per-channel on that slice, which
    calibrates exactly what per-group calibration of the whole matrix calibrates for that group.
    """
    if spec.granularity == "group":
        return choose_qparams(cols, spec.replace(granularity="channel", axis=0))
    return choose_qparams(cols, matrix_spec(spec))


def round_columns(cols: torch.Tensor, qparams: QParams, spec: QuantSpec) -> torch.Tensor:
    """Fake-quantize columns (``(out, c)`` float32) with fixed qparams (``()`` or ``(out, 1)``)."""
    return fake_quant_with(cols.to(torch.float32), qparams.scale, qparams.zero_point, spec)


def nearest_spec(spec: QuantSpec) -> QuantSpec:
    """The spec with round-to-nearest: the algorithms choose their own rounding (GPTQ, AWQ, AdaRound)."""
    return spec if spec.rounding == "nearest" else spec.replace(rounding="nearest")
