"""QuantSpec: what it allows, what it rejects (with a message naming the field), and its derived grid."""

from __future__ import annotations

import dataclasses

import pytest

from quantlib import QuantSpec
from quantlib.formats import get
from quantlib.spec import CALIBRATIONS, FORMATS, GRANULARITIES, ROUNDINGS, SCHEMES


@pytest.mark.parametrize(
    ("bits", "scheme", "narrow", "qmin", "qmax", "levels"),
    [
        (2, "symmetric", False, -2, 1, 4),
        (4, "symmetric", False, -8, 7, 16),
        (8, "symmetric", False, -128, 127, 256),
        (8, "symmetric", True, -127, 127, 255),
        (16, "symmetric", False, -32768, 32767, 65536),
        (2, "asymmetric", False, 0, 3, 4),
        (8, "asymmetric", False, 0, 255, 256),
        (16, "asymmetric", False, 0, 65535, 65536),
    ],
)
def test_integer_grid_bounds_follow_bit_width_and_scheme(bits, scheme, narrow, qmin, qmax, levels):
    spec = QuantSpec(bits=bits, scheme=scheme, narrow_range=narrow)
    assert (spec.qmin, spec.qmax, spec.levels) == (qmin, qmax, levels)
    assert spec.is_integer_grid


def test_pow2_format_uses_the_integer_grid():
    spec = QuantSpec(bits=5, format="pow2", scheme="asymmetric")
    assert spec.is_integer_grid
    assert (spec.qmin, spec.qmax) == (0, 31)


@pytest.mark.parametrize(("fmt", "bits", "fmax"), [("fp8_e4m3", 8, 448.0), ("fp8_e5m2", 8, 57344.0), ("nf4", 4, None)])
def test_fixed_width_formats_set_bits_whatever_was_passed(fmt, bits, fmax):
    spec = QuantSpec(format=fmt, bits=3)
    assert spec.bits == bits
    assert not spec.is_integer_grid
    if fmax is not None:
        assert get(fmt).max == fmax
        assert (spec.qmin, spec.qmax) == (-fmax, fmax)


def test_fp8_level_counts_are_the_finite_codes_with_one_zero():
    # e4m3fn: 256 codes - 2 NaN (0x7F, 0xFF) - one duplicate zero = 253.
    # e5m2: 256 codes - 6 NaN - 2 inf - one duplicate zero = 247.
    assert get("fp8_e4m3").all_values().numel() == QuantSpec(format="fp8_e4m3").levels == 253
    assert get("fp8_e5m2").all_values().numel() == QuantSpec(format="fp8_e5m2").levels == 247
    assert QuantSpec(format="nf4").levels == 16


@pytest.mark.parametrize("bits", [0, 1, 17, 32, -4, 4.0, "8", None, True])
def test_bits_out_of_range_is_rejected_naming_bits(bits):
    with pytest.raises(ValueError, match="bits"):
        QuantSpec(bits=bits)


@pytest.mark.parametrize("fmt", ["int", "pow2"])
def test_bits_range_applies_to_pow2_too(fmt):
    assert QuantSpec(bits=2, format=fmt).bits == 2
    assert QuantSpec(bits=16, format=fmt).bits == 16
    with pytest.raises(ValueError, match="bits"):
        QuantSpec(bits=17, format=fmt)


@pytest.mark.parametrize("p", [50, 50.0, 10, 0, -1, 100.0001, 200, float("nan"), float("inf"), "99", True, None])
def test_percentile_out_of_range_is_rejected_naming_percentile(p):
    with pytest.raises(ValueError, match="percentile"):
        QuantSpec(calibration="percentile", percentile=p)


@pytest.mark.parametrize("p", [50.001, 90, 99.99, 100, 100.0])
def test_percentile_in_range_is_accepted(p):
    assert QuantSpec(calibration="percentile", percentile=p).percentile == p


@pytest.mark.parametrize("g", [0, -1, -64, 1.5, 64.0, "64", True, None])
def test_group_size_must_be_a_positive_integer(g):
    with pytest.raises(ValueError, match="group_size"):
        QuantSpec(granularity="group", group_size=g)


@pytest.mark.parametrize(
    ("field", "allowed"),
    [
        ("scheme", SCHEMES),
        ("granularity", GRANULARITIES),
        ("calibration", CALIBRATIONS),
        ("rounding", ROUNDINGS),
        ("format", FORMATS),
    ],
)
def test_unknown_choice_is_rejected_naming_the_field_and_the_choices(field, allowed):
    with pytest.raises(ValueError, match=field) as info:
        QuantSpec(**{field: "bogus"})
    for option in allowed:
        assert repr(option) in str(info.value)


@pytest.mark.parametrize("fmt", ["fp8_e4m3", "fp8_e5m2", "nf4"])
def test_non_integer_formats_refuse_the_asymmetric_scheme(fmt):
    with pytest.raises(ValueError, match="scheme"):
        QuantSpec(format=fmt, scheme="asymmetric")


@pytest.mark.parametrize("fmt", ["fp8_e4m3", "fp8_e5m2", "nf4"])
@pytest.mark.parametrize("rounding", ["truncate", "stochastic"])
def test_non_integer_formats_refuse_other_rounding_modes(fmt, rounding):
    with pytest.raises(ValueError, match="rounding"):
        QuantSpec(format=fmt, rounding=rounding)


def test_narrow_range_is_for_the_symmetric_scheme_only():
    with pytest.raises(ValueError, match="narrow_range"):
        QuantSpec(scheme="asymmetric", narrow_range=True)
    with pytest.raises(ValueError, match="narrow_range"):
        QuantSpec(narrow_range=1)


@pytest.mark.parametrize(("field", "value"), [("axis", 1.0), ("axis", "0"), ("axis", True), ("seed", 0.5), ("seed", None)])
def test_axis_and_seed_must_be_integers(field, value):
    with pytest.raises(ValueError, match=field):
        QuantSpec(**{field: value})


def test_replace_revalidates_and_keeps_other_fields():
    spec = QuantSpec(bits=4, scheme="asymmetric", granularity="channel")
    assert spec.replace(bits=6) == QuantSpec(bits=6, scheme="asymmetric", granularity="channel")
    with pytest.raises(ValueError, match="bits"):
        spec.replace(bits=1)


def test_spec_is_frozen_and_hashable_so_it_can_key_caches():
    spec = QuantSpec(bits=4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.bits = 8  # type: ignore[misc]
    assert {spec: 1}[QuantSpec(bits=4)] == 1
    assert hash(spec) != hash(QuantSpec(bits=5))


def test_label_is_short_and_readable():
    assert QuantSpec(bits=4, scheme="asymmetric", granularity="channel").label() == "int4 asym per-channel"
    assert QuantSpec(format="fp8_e4m3").label() == "fp8_e4m3 sym per-tensor"
    assert QuantSpec(format="nf4", granularity="group", group_size=64).label() == "nf4 sym per-group(64)"
