"""What a number format is to quantlib: one object with its grid, its encode / decode and its storage bits.

Every quantizer in quantlib has the same shape, ``x̂ = decode(encode(x, s, z), s, z)``, with a scale ``s`` (and
for asymmetric integer grids a zero point ``z``) chosen per block from a calibrated range ``[lo, hi]``. A format
says what happens in between: which codes exist, how a value becomes a code, and how a code becomes a value
again. :mod:`quantlib.formats` keeps one instance per format name; :class:`quantlib.QuantSpec` names one in
its ``format`` field, and every function that depends on the format asks the registry.

Adding a format: subclass :class:`NumberFormat` in a new module of this package, register the instance in
``quantlib/formats/__init__.py``, and test it like ``tests/test_quantlib_formats.py`` does the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from ..spec import QuantSpec


class NumberFormat:
    """A number format: subclasses fill in the grid and the arithmetic.

    Attributes:
        name: the ``QuantSpec.format`` value (``"int"``, ``"fp8_e4m3"`` ...).
        fixed_bits: the width when the format fixes it (fp8: 8, nf4: 4); None when ``QuantSpec.bits`` chooses.
        integer_grid: values are the integers ``qmin..qmax`` times a scale: the bit width can be swept, the
            rounding mode chosen, and codes are int32.
        symmetric_only: the zero point is always 0 (the scheme must be ``"symmetric"``).
    """

    name: str = ""
    fixed_bits: int | None = None
    integer_grid: bool = False
    symmetric_only: bool = False

    # --- the grid ---

    def code_range(self, spec: QuantSpec) -> tuple[int, int]:
        """``(qmin, qmax)``: the smallest and largest code, as :attr:`QuantSpec.qmin` / ``qmax`` report them."""
        raise NotImplementedError

    def levels(self, spec: QuantSpec) -> int:
        """How many distinct values the grid has."""
        qmin, qmax = self.code_range(spec)
        return qmax - qmin + 1

    def storage_bits(self, spec: QuantSpec) -> int:
        """Bits one value takes when stored packed (scales and zero points come on top)."""
        return self.fixed_bits or spec.bits

    def values(self, scale: float, zero_point: int, spec: QuantSpec) -> torch.Tensor:
        """Sorted float32 values one block with this scale and zero point can be read back to."""
        raise NotImplementedError

    def clip_bounds(self, scale: torch.Tensor, zero_point: torch.Tensor,
                    spec: QuantSpec) -> tuple[torch.Tensor, torch.Tensor]:
        """Per block ``(lo, hi)``: values outside come back as these."""
        raise NotImplementedError

    # --- scale and zero point ---

    def qparams_from_range(self, lo: torch.Tensor, hi: torch.Tensor,
                           spec: QuantSpec) -> tuple[torch.Tensor, torch.Tensor]:
        """Scale (float32) and zero point (int32), per row, mapping ``[lo, hi]`` onto the grid."""
        raise NotImplementedError

    # --- the arithmetic ---

    def encode(self, x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
               spec: QuantSpec) -> torch.Tensor:
        """Codes of ``x`` (float32, broadcasting against ``scale`` / ``zero_point``)."""
        raise NotImplementedError

    def decode(self, q: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor) -> torch.Tensor:
        """Values (float32) of codes ``q``."""
        raise NotImplementedError

    def fake_quant(self, x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
                   spec: QuantSpec) -> torch.Tensor:
        """``decode(encode(x))`` (subclasses may fuse the two)."""
        return self.decode(self.encode(x, scale, zero_point, spec), scale, zero_point)

    def in_range(self, x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
                 spec: QuantSpec) -> torch.Tensor:
        """Where ``x`` is not clipped: the straight-through estimator passes the gradient there."""
        raise NotImplementedError

    def codes_for_counting(self, q: torch.Tensor) -> torch.Tensor:
        """Codes in a dtype that sorts and compares (for counting the levels a tensor uses)."""
        return q.to(torch.float32)

    def __repr__(self) -> str:
        return f"<number format {self.name}>"
