"""The one rule for a group size that does not fit a layer's rows (``quantlib.layout.fitted_group_size``), as
the tensor pages, the whole-model pages and uploaded files apply it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from quantlib import QuantSpec
from quantlib.layout import fitted_group_size, group_sizes_for


@given(st.lists(st.integers(1, 5000), min_size=1, max_size=4), st.integers(2, 10_000))
def test_the_fitted_size_is_the_largest_size_up_to_the_asked_one_that_divides_every_row(rows, asked):
    fitted = fitted_group_size(rows, asked)
    brute = [g for g in range(min(asked, min(rows)), 1, -1) if all(r % g == 0 for r in rows)]
    assert fitted == (brute[0] if brute else None)


def test_group_sizes_are_the_divisors_from_two_up_and_handle_a_huge_row_quickly():
    assert group_sizes_for(144) == [2, 3, 4, 6, 8, 9, 12, 16, 18, 24, 36, 48, 72, 144]
    huge = group_sizes_for(12_000_000)  # a 1-D upload of 12M values: found from its square root, not counted down
    assert huge[:4] == [2, 3, 4, 5] and huge[-1] == 12_000_000 and all(12_000_000 % g == 0 for g in huge)
    assert fitted_group_size([12_000_000], 10**9) == 12_000_000


def test_the_size_table_of_an_upload_applies_the_same_rule():
    from ui.compute import upload

    spec = QuantSpec(granularity="group", group_size=64)
    fitted, note = upload.storage_spec((32, 16, 3, 3), spec)
    assert fitted.group_size == fitted_group_size([144], 64) == 48 and "groups of 48" in note
    assert upload.storage_spec((32, 128), spec) == (spec, None)
    per_channel, note = upload.storage_spec((4, 77), QuantSpec(granularity="group", group_size=5))
    assert per_channel.granularity == "channel" and fitted_group_size([77], 5) is None and "per-channel" in note


def test_the_whole_model_pages_apply_the_same_rule():
    from ui.compute import analysis as analysis_data

    spec = QuantSpec(granularity="group", group_size=64)
    fitted, note = analysis_data.model_wide_spec("digits-cnn", spec)  # conv1 rows of 9, conv2 144, fc 512
    assert fitted.granularity == "channel" and "no group size divides" in note
    same, none = analysis_data.model_wide_spec("digits-mlp", spec)  # rows of 64, 128, 64
    assert same == spec and none is None
