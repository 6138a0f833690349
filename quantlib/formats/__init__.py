"""The number formats quantlib knows, one object each (see :class:`NumberFormat` for what a format provides).

    >>> from quantlib import QuantSpec
    >>> from quantlib.formats import get
    >>> get("int").code_range(QuantSpec(bits=4)), get("nf4").fixed_bits, get("fp8_e4m3").max
    ((-8, 7), 4, 448.0)

``QuantSpec(format=...)`` accepts exactly the names registered here; every function whose result depends on the
format (:func:`quantlib.quantize`, :func:`quantlib.grid`, calibration, budgets, sizes) asks :func:`get`.
A new format is one module here plus its registration below and its tests.
"""

from __future__ import annotations

from .base import NumberFormat
from .fp8 import FP8_E4M3, FP8_E5M2, FP8Format
from .integer import INT, POW2, IntFormat, Pow2Format
from .nf4 import NF4, NF4_CODEBOOK, NF4Format

#: Every format by its ``QuantSpec.format`` name, in the order menus list them.
REGISTRY: dict[str, NumberFormat] = {f.name: f for f in (INT, FP8_E4M3, FP8_E5M2, NF4, POW2)}


def register(fmt: NumberFormat) -> NumberFormat:
    """Add ``fmt`` under its name (a notebook's own format; the built-in ones are registered above)."""
    if not fmt.name or fmt.name in REGISTRY:
        raise ValueError(f"a number format needs a new name, got {fmt.name!r}")
    REGISTRY[fmt.name] = fmt
    return fmt


def get(name: str) -> NumberFormat:
    """The format called ``name``; a ``ValueError`` naming the known ones otherwise."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown number format {name!r}; known: {', '.join(REGISTRY)}") from None


__all__ = [
    "FP8_E4M3",
    "FP8_E5M2",
    "INT",
    "NF4",
    "NF4_CODEBOOK",
    "POW2",
    "REGISTRY",
    "FP8Format",
    "IntFormat",
    "NF4Format",
    "NumberFormat",
    "Pow2Format",
    "get",
    "register",
]
