"""How a tensor is cut into blocks that each get their own scale (per-tensor, per-channel, per-group).

Every calibration method works on a 2-D *rows* view ``(R, K)``: one row per block. The scale and zero point
computed per row are then reshaped to broadcast against the tensor (per-tensor, per-channel) or against its
grouped view (per-group). Example, a Linear weight ``(4, 6)``:

- ``tensor``: rows ``(1, 24)``, params shape ``()``;
- ``channel`` (axis 0): rows ``(4, 6)``, params shape ``(4, 1)``;
- ``group`` (group_size 3): rows ``(8, 3)``, grouped view ``(4, 2, 3)``, params shape ``(4, 2, 1)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from .spec import QuantSpec


@dataclass(frozen=True)
class BlockLayout:
    """The block structure of one tensor shape under one spec."""

    shape: tuple[int, ...]
    granularity: str
    axis: int
    group_size: int

    @classmethod
    def of(cls, shape: torch.Size | tuple[int, ...], spec: QuantSpec) -> BlockLayout:
        """Validate that ``spec``'s granularity fits ``shape`` and describe the blocks.

        >>> BlockLayout.of((4, 6), QuantSpec(granularity="group", group_size=3)).param_shape
        (4, 2, 1)
        """
        shape = tuple(int(d) for d in shape)
        axis = spec.axis
        if spec.granularity == "channel":
            if len(shape) == 0:
                raise ValueError("per-channel quantization needs a tensor with at least one dimension")
            if not -len(shape) <= axis < len(shape):
                raise ValueError(
                    f"channel axis {axis} is out of range for a tensor of shape {list(shape)} "
                    f"({len(shape)} dimensions)"
                )
            axis %= len(shape)
        elif spec.granularity == "group":
            if len(shape) == 0:
                raise ValueError("per-group quantization needs a tensor with at least one dimension")
            last = shape[-1]
            if last % spec.group_size != 0:
                raise ValueError(
                    f"group size {spec.group_size} does not divide the last dimension ({last}) of a tensor "
                    f"of shape {list(shape)}; pick a group size that divides {last}"
                )
        return cls(shape, spec.granularity, axis, spec.group_size)

    @property
    def num_blocks(self) -> int:
        if self.granularity == "tensor":
            return 1
        if self.granularity == "channel":
            return self.shape[self.axis]
        numel = 1
        for d in self.shape:
            numel *= d
        return numel // self.group_size

    @property
    def param_shape(self) -> tuple[int, ...]:
        """Shape of scale / zero point, broadcasting against :meth:`view`."""
        if self.granularity == "tensor":
            return ()
        if self.granularity == "channel":
            out = [1] * len(self.shape)
            out[self.axis] = self.shape[self.axis]
            return tuple(out)
        *lead, last = self.shape
        return (*lead, last // self.group_size, 1)

    def view(self, x: torch.Tensor) -> torch.Tensor:
        """The tensor reshaped so that params of :attr:`param_shape` broadcast against it."""
        if self.granularity == "group":
            *lead, last = self.shape
            return x.reshape(*lead, last // self.group_size, self.group_size)
        return x

    def unview(self, v: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`view`."""
        return v.reshape(self.shape)

    def rows(self, x: torch.Tensor) -> torch.Tensor:
        """The ``(R, K)`` view: one row per block."""
        if self.granularity == "tensor":
            return x.reshape(1, -1)
        if self.granularity == "channel":
            return x.movedim(self.axis, 0).reshape(self.shape[self.axis], -1)
        return x.reshape(-1, self.group_size)

    def to_params(self, per_row: torch.Tensor) -> torch.Tensor:
        """Reshape a per-row vector ``(R,)`` to :attr:`param_shape`."""
        return per_row.reshape(self.param_shape)


def group_sizes_for(row: int) -> list[int]:
    """Every group size that divides rows of ``row`` values, from 2 up to ``row``, ascending (``O(√row)``: a
    link may offer a 1-D tensor of millions of values).

    >>> group_sizes_for(12), group_sizes_for(7), group_sizes_for(1)
    ([2, 3, 4, 6, 12], [7], [])
    """
    sizes = {d for k in range(1, math.isqrt(row) + 1) if row % k == 0 for d in (k, row // k)}
    sizes.discard(1)
    return sorted(sizes)


def fitted_group_size(rows: Iterable[int], group_size: int) -> int | None:
    """The group size to use when ``group_size`` must divide every row length in ``rows``: itself when it
    does, else the largest smaller size (at least 2) that divides all of them, else None (per-channel then).

    The one rule of the app for a group size that does not fit: a 3×3 conv's rows of 9 values take groups of
    9 rather than 64; rows of 9 and 64 together share no size, so per-channel.

    >>> fitted_group_size([128, 64], 64), fitted_group_size([144], 64), fitted_group_size([9, 64], 64)
    (64, 48, None)
    """
    common = math.gcd(*rows)
    return max((g for g in group_sizes_for(common) if g <= group_size), default=None)
