"""What to quantize and how: :class:`QuantSpec`, and the results :class:`QParams` and :class:`QTensor`.

A spec is a small frozen value, so it can key caches and travel in a URL. Everything it allows is validated on
construction, so a bad setting fails early with a message that names the setting, never deep inside the math.

    >>> QuantSpec(bits=4, scheme="asymmetric", granularity="channel").qmax
    15
    >>> QuantSpec(bits=1)
    Traceback (most recent call last):
    ...
    ValueError: bits must be an integer from 2 to 16 for integer formats, got 1
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from .formats import REGISTRY, NumberFormat, get

SCHEMES = ("symmetric", "asymmetric")
GRANULARITIES = ("tensor", "channel", "group")
CALIBRATIONS = ("minmax", "percentile", "mse", "entropy")
ROUNDINGS = ("nearest", "truncate", "stochastic")
#: The built-in number formats (:mod:`quantlib.formats`; ``formats.register`` adds more).
FORMATS = tuple(REGISTRY)

#: Formats whose grid is the uniform integer grid ``[qmin, qmax]`` (pow2 only restricts the scale).
INTEGER_FORMATS = tuple(name for name, f in REGISTRY.items() if f.integer_grid)
#: Formats with a fixed number of bits: the ``bits`` field is set to this for them.
FIXED_BITS = {name: f.fixed_bits for name, f in REGISTRY.items() if f.fixed_bits}

MIN_BITS, MAX_BITS = 2, 16


def _choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(repr(a) for a in allowed)}, got {value!r}")


@dataclass(frozen=True)
class QuantSpec:
    """How a tensor is quantized.

    Attributes:
        bits: width of the integer grid, 2-16 for ``format="int"``/``"pow2"``. fp8 formats always use 8 and
            ``nf4`` always 4: for them the field is set to that width, whatever was passed.
        scheme: ``"symmetric"`` - signed grid, zero point 0, ``s = max|x| / (2^(b-1) - 1)``;
            ``"asymmetric"`` - unsigned grid ``[0, 2^b - 1]``, ``s = (hi - lo) / (2^b - 1)``, integer zero point.
            fp8 and nf4 are symmetric formats.
        granularity: one scale for the whole ``"tensor"``, one per ``"channel"`` along ``axis``, or one per
            ``"group"`` of ``group_size`` consecutive values along the last axis.
        axis: channel axis for per-channel (0 for Linear/Conv weights, 1 for ConvTranspose weights).
        group_size: values per group for per-group; the last axis must be divisible by it.
        calibration: how the range ``[lo, hi]`` is chosen: ``"minmax"``, ``"percentile"``, ``"mse"``
            (clip ratio with the lowest error) or ``"entropy"`` (TensorRT-style KL divergence).
        percentile: for ``calibration="percentile"``, in ``(50, 100]``, e.g. 99.99.
        rounding: ``"nearest"`` (ties to even, like ``torch.round``), ``"truncate"`` (toward zero) or
            ``"stochastic"`` (``floor(v + u)``, ``u ~ U[0, 1)`` drawn from a generator seeded with ``seed``).
            Non-integer formats (fp8, nf4) always round to nearest.
        narrow_range: symmetric only: drop ``-2^(b-1)`` so the grid is ``[-(2^(b-1)-1), 2^(b-1)-1]``.
        format: ``"int"``, ``"fp8_e4m3"``, ``"fp8_e5m2"``, ``"nf4"`` or ``"pow2"`` (int grid, scale rounded up
            to a power of two).
        seed: seed of stochastic rounding, so the same settings give the same numbers.
    """

    bits: int = 8
    scheme: str = "symmetric"
    granularity: str = "tensor"
    axis: int = 0
    group_size: int = 64
    calibration: str = "minmax"
    percentile: float = 99.99
    rounding: str = "nearest"
    narrow_range: bool = False
    format: str = "int"
    seed: int = 0

    def __post_init__(self) -> None:
        _choice("format", self.format, tuple(REGISTRY))
        _choice("scheme", self.scheme, SCHEMES)
        _choice("granularity", self.granularity, GRANULARITIES)
        _choice("calibration", self.calibration, CALIBRATIONS)
        _choice("rounding", self.rounding, ROUNDINGS)
        fmt = get(self.format)
        if fmt.fixed_bits:
            # The format fixes the width; keeping the field truthful makes sizes and labels right.
            object.__setattr__(self, "bits", fmt.fixed_bits)
        if fmt.symmetric_only and self.scheme != "symmetric":
            raise ValueError(f"format {self.format!r} is symmetric (zero point 0): use scheme='symmetric'")
        if not fmt.integer_grid and self.rounding != "nearest":
            raise ValueError(f"format {self.format!r} always rounds to the nearest grid value: use rounding='nearest'")
        if not fmt.fixed_bits and (
            isinstance(self.bits, bool) or not isinstance(self.bits, int) or not MIN_BITS <= self.bits <= MAX_BITS
        ):
            raise ValueError(
                f"bits must be an integer from {MIN_BITS} to {MAX_BITS} for integer formats, got {self.bits!r}"
            )
        if isinstance(self.axis, bool) or not isinstance(self.axis, int):
            raise ValueError(f"axis must be an integer, got {self.axis!r}")
        if isinstance(self.group_size, bool) or not isinstance(self.group_size, int) or self.group_size < 1:
            raise ValueError(f"group_size must be a positive integer, got {self.group_size!r}")
        if isinstance(self.percentile, bool) or not isinstance(self.percentile, (int, float)) or not (
            50.0 < float(self.percentile) <= 100.0
        ):
            raise ValueError(f"percentile must be a number in (50, 100], got {self.percentile!r}")
        if not isinstance(self.narrow_range, bool):
            raise ValueError(f"narrow_range must be True or False, got {self.narrow_range!r}")
        if self.narrow_range and self.scheme != "symmetric":
            raise ValueError("narrow_range applies to the symmetric scheme only")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")

    @property
    def number_format(self) -> NumberFormat:
        """The :class:`~quantlib.formats.NumberFormat` this spec names."""
        return get(self.format)

    @property
    def is_integer_grid(self) -> bool:
        """True for formats whose values are the integers ``qmin..qmax`` times a scale."""
        return get(self.format).integer_grid

    @property
    def qmin(self) -> int:
        """Smallest code: ``-2^(b-1)`` (``+1`` when narrow) symmetric, 0 asymmetric; the format's own otherwise."""
        return get(self.format).code_range(self)[0]

    @property
    def qmax(self) -> int:
        """Largest code: ``2^(b-1) - 1`` symmetric, ``2^b - 1`` asymmetric; the format's own otherwise."""
        return get(self.format).code_range(self)[1]

    @property
    def levels(self) -> int:
        """How many distinct values the grid has (fp8 counts its finite codes)."""
        return get(self.format).levels(self)

    def replace(self, **changes: object) -> QuantSpec:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def label(self) -> str:
        """A short human label such as ``"int4 asym per-channel"``."""
        fmt = f"{self.format}{self.bits}" if self.is_integer_grid else self.format
        gran = {"tensor": "per-tensor", "channel": "per-channel", "group": f"per-group({self.group_size})"}
        scheme = "sym" if self.scheme == "symmetric" else "asym"
        return f"{fmt} {scheme} {gran[self.granularity]}"


@dataclass(frozen=True)
class QParams:
    """Scale and zero point of a quantizer, and its integer grid.

    ``scale`` (float32) and ``zero_point`` (int32) are 0-d for per-tensor; per-channel they are shaped to
    broadcast against the tensor (e.g. ``(C, 1, 1, 1)`` for a Conv2d weight with ``axis=0``); per-group they
    broadcast against the grouped view ``x.reshape(*x.shape[:-1], G, group_size)``, i.e. shape
    ``(*x.shape[:-1], G, 1)``. For nf4, ``scale`` is the absmax of each block and ``qmin..qmax`` are the codes
    0..15; for fp8, ``scale`` maps the block's absmax to the format's largest value.
    """

    scale: torch.Tensor
    zero_point: torch.Tensor
    qmin: int
    qmax: int

    @property
    def num_blocks(self) -> int:
        """How many (channel / group) blocks have their own scale."""
        return int(self.scale.numel())


@dataclass(frozen=True)
class QTensor:
    """A quantized tensor: the codes ``q`` plus what is needed to read them back.

    ``q`` has the input's shape. For integer formats it is an integer tensor (int32) with values in
    ``[qmin, qmax]``; for fp8 it holds the fp8 codes (a ``torch.float8_*`` tensor); for nf4 the codebook
    indices 0..15 (uint8). ``dtype`` is the floating dtype that :func:`quantlib.dequantize` returns.
    """

    q: torch.Tensor
    qparams: QParams
    spec: QuantSpec
    dtype: torch.dtype = torch.float32

    @property
    def shape(self) -> torch.Size:
        return self.q.shape
