"""Reading a task metric out of whatever an ``evaluate(model)`` callable returned: a number, or a dict of them.

Sensitivity sweeps, mixed precision and QAT all take an ``evaluate`` callable (a sample model's, or a
notebook's own) and compare one primary metric between the float and the quantized model.

    >>> metric_value({"accuracy": 0.9, "loss": 0.3}, "accuracy"), metric_value(0.5, None)
    (0.9, 0.5)
    >>> all_metrics(0.5, None), all_metrics({"mse": 2}, None)
    ({'metric': 0.5}, {'mse': 2.0})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch


def metric_value(result: Any, metric_name: str | None) -> float:
    """The primary metric: the number itself, or ``result[metric_name]`` (the only entry when unnamed)."""
    if isinstance(result, Mapping):
        if metric_name is None:
            if len(result) == 1:
                return _number(next(iter(result.values())))
            raise ValueError(f"evaluate returned several metrics {list(result)}: say which with metric_name")
        if metric_name not in result:
            raise ValueError(f"evaluate did not return the metric {metric_name!r}; it returned {list(result)}")
        return _number(result[metric_name])
    return _number(result)


def all_metrics(result: Any, metric_name: str | None) -> dict[str, float]:
    """Every metric as ``{name: float}``; a bare number is named ``metric_name`` (or ``"metric"``)."""
    if isinstance(result, Mapping):
        metric_value(result, metric_name)  # the same checks: the primary metric must be there
        return {str(k): _number(v) for k, v in result.items()}
    return {metric_name or "metric": _number(result)}


def _number(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value)
    raise TypeError(f"evaluate must return a number or a {{name: number}} mapping, got {type(value).__name__}")
