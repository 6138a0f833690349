"""The number-format registry (``quantlib.formats``): one object per format, and a new format is one class."""

from __future__ import annotations

import pytest
import torch

from quantlib import QuantSpec, choose_qparams, dequantize, fake_quant, grid, quantize, summarize
from quantlib.formats import REGISTRY, NumberFormat, get, register
from quantlib.spec import FIXED_BITS, FORMATS, INTEGER_FORMATS


def test_the_registry_holds_the_built_in_formats_and_the_spec_tables_come_from_it():
    assert tuple(REGISTRY) == FORMATS == ("int", "fp8_e4m3", "fp8_e5m2", "nf4", "pow2")
    assert INTEGER_FORMATS == ("int", "pow2")
    assert FIXED_BITS == {"fp8_e4m3": 8, "fp8_e5m2": 8, "nf4": 4}
    assert all(get(name).name == name for name in REGISTRY)


def test_an_unknown_format_is_a_plain_error_naming_the_known_ones():
    with pytest.raises(ValueError, match="unknown number format 'int3'; known: int, fp8_e4m3"):
        get("int3")
    with pytest.raises(ValueError, match="format must be one of"):
        QuantSpec(format="int3")


@pytest.mark.parametrize("name", list(FORMATS))
def test_every_format_reads_back_only_values_of_its_own_grid(name):
    x = torch.randn(8, 64, generator=torch.Generator().manual_seed(3))
    spec = QuantSpec(format=name, bits=4, granularity="channel")
    qp = choose_qparams(x, spec)
    out = fake_quant(x, spec)
    assert torch.equal(dequantize(quantize(x, spec)), out)
    for row in range(8):
        values = grid(spec, qp, block=row)
        assert torch.isin(out[row], values).all(), name
    assert spec.levels == get(name).levels(spec) >= len(torch.unique(out[0]))


class Ternary(NumberFormat):
    """A toy format for the test: ``{-1, 0, +1} · absmax`` per block, codes 0..2 (one file is all it takes)."""

    name = "ternary-test"
    fixed_bits = 2
    symmetric_only = True

    def code_range(self, spec):  # noqa: ANN001, ANN201 - a test double
        return 0, 2

    def values(self, scale, zero_point, spec):  # noqa: ANN001, ANN201
        return torch.tensor([-1.0, 0.0, 1.0]) * scale

    def clip_bounds(self, scale, zero_point, spec):  # noqa: ANN001, ANN201
        return -scale, scale.clone()

    def qparams_from_range(self, lo, hi, spec):  # noqa: ANN001, ANN201
        scale = torch.maximum(-lo, hi).clamp(min=1e-30)
        return scale, torch.zeros(scale.shape, dtype=torch.int32)

    def encode(self, x, scale, zero_point, spec):  # noqa: ANN001, ANN201
        return (torch.round((x / scale).clamp(-1, 1)) + 1).to(torch.uint8)

    def decode(self, q, scale, zero_point):  # noqa: ANN001, ANN201
        return (q.to(torch.float32) - 1) * scale

    def in_range(self, x, scale, zero_point, spec):  # noqa: ANN001, ANN201
        return (x / scale).abs() <= 1


def test_a_new_format_registered_from_one_class_works_through_spec_quantize_grid_and_summary():
    register(Ternary())
    try:
        spec = QuantSpec(format="ternary-test")
        assert spec.bits == 2 and spec.levels == 3 and spec.label() == "ternary-test sym per-tensor"
        x = torch.tensor([-2.0, -0.4, 0.3, 1.2, 2.0])
        assert fake_quant(x, spec).tolist() == [-2.0, 0.0, 0.0, 2.0, 2.0]
        assert quantize(x, spec).q.tolist() == [0, 1, 1, 2, 2]
        assert grid(spec, choose_qparams(x, spec)).tolist() == [-2.0, 0.0, 2.0]
        assert summarize(x, spec).levels_used == 3
        with pytest.raises(ValueError, match="symmetric"):
            QuantSpec(format="ternary-test", scheme="asymmetric")
        with pytest.raises(ValueError, match="new name"):
            register(Ternary())
        from quantlib.export import check_spec

        with pytest.raises(ValueError, match="no layout for ternary-test"):  # export waits for a mapping
            check_spec(spec)
    finally:
        REGISTRY.pop("ternary-test", None)
