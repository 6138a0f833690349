"""Reading the task metric out of an ``evaluate`` result (``quantlib.evaluate``), shared by sensitivity,
mixed precision and QAT."""

from __future__ import annotations

import pytest
import torch

from quantlib.evaluate import all_metrics, metric_value


def test_a_number_a_one_entry_dict_and_a_named_entry_all_read_as_floats():
    assert metric_value(0.5, None) == 0.5
    assert metric_value(torch.tensor(0.25), None) == 0.25
    assert metric_value({"mse": 2}, None) == 2.0
    assert metric_value({"a": 1.0, "b": 2.0}, "b") == 2.0


def test_all_metrics_names_a_bare_number_and_keeps_every_entry():
    assert all_metrics(0.5, None) == {"metric": 0.5}
    assert all_metrics(0.5, "accuracy") == {"accuracy": 0.5}
    assert all_metrics({"a": 1, "b": torch.tensor(2.0)}, "b") == {"a": 1.0, "b": 2.0}


@pytest.mark.parametrize(("result", "name", "error", "match"), [
    ({"a": 1.0, "b": 2.0}, None, ValueError, "say which with metric_name"),
    ({"a": 1.0}, "b", ValueError, "did not return the metric 'b'"),
    (True, None, TypeError, "number"),
    ("0.9", None, TypeError, "number"),
    (torch.ones(3), None, TypeError, "number"),
])
def test_what_is_not_a_metric_is_a_plain_error(result, name, error, match):
    with pytest.raises(error, match=match):
        metric_value(result, name)
    with pytest.raises(error, match=match):
        all_metrics(result, name)
