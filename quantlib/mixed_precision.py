"""Mixed precision: a bit width per layer that fits a size budget and loses as little as possible.

Input: a per-layer sensitivity sweep (:func:`quantlib.sensitivity.sensitivity_sweep`, ``mode="only"``): for
each layer ``l`` and width ``b``, the metric drop ``d(l, b)`` with only ``l`` quantized at ``b`` bits, and the
output SQNR. The prediction for an assignment ``{l: b_l}`` adds them up::

    predicted_drop = Σ_l d(l, b_l)            (clipped at 0: a "negative drop" is evaluation noise)
    output noise   = Σ_l 10^(-SQNR(l, b_l)/10) (relative output noise power; breaks ties between zero drops)

Budget: total model bytes (:func:`quantlib.model.model_size_bytes` of ``{l: spec.replace(bits=b_l)}``, so
the size page and this module agree), or an average bit width ``Σ numel_l · b_l / Σ numel_l <= avg_bits``
over the assigned layers (the weights' payload bits, without scale overhead).

Greedy (the classic "cheapest loss per byte saved"): start with every layer at the largest candidate width;
while over budget, make the move ``b_l -> b'`` (any smaller candidate, so a free jump over a costly
intermediate width is seen) with the smallest ``Δ predicted_drop / Δ bytes``; then, with the budget met, undo
over-shooting by raising widths while they still fit, best ``-Δ drop / Δ bytes`` first. Finally the real
metric of the result is MEASURED, and compared with the widest uniform assignment that fits: if that uniform
one measures better, it is returned instead (``method`` says so), so the result is never worse than uniform.

    >>> import torch, pandas as pd
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(100, 10), nn.Linear(10, 100))  # 1000 weights each
    >>> sweep = pd.DataFrame({"layer": ["0", "0", "1", "1"], "bits": [4, 8, 4, 8], "numel": 1000,
    ...                       "metric_drop": [0.20, 0.0, 0.01, 0.0], "output_sqnr_db": [10.0, 40, 30, 40]})
    >>> r = choose_bits(net, sweep, avg_bits=6)
    >>> r.assignment, r.avg_bits   # layer 1 barely cares: it takes the 4 bits
    ({'0': 8, '1': 4}, 6.0)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from .evaluate import metric_value
from .model import LayerInfo, list_layers, model_size_bytes, quantize_weights, weight_storage
from .sensitivity import Evaluate, Progress, metric_drop
from .spec import QuantSpec

Assignment = dict[str, int]
#: Predicted loss of a probe whose metric broke down (NaN): worse than any real drop, but finite so that the
#: greedy's ratios stay comparable.
_BROKEN = 1e12


@dataclass(frozen=True)
class MixedPrecisionResult:
    """A bit width per layer and what it costs.

    ``size_bytes`` is :func:`~quantlib.model.model_size_bytes` with these widths; ``avg_bits`` the mean payload
    width over the assigned layers' weights; ``predicted_drop`` the sum of the per-layer sensitivities.
    ``metric`` / ``metric_drop`` are MEASURED on the quantized model (None without ``evaluate``).
    ``method`` is ``"greedy"``, or ``"uniform"`` when the widest uniform width that fits (``uniform_bits``,
    measured ``uniform_metric``) was better and was returned instead.
    """

    assignment: Assignment
    size_bytes: int
    avg_bits: float
    predicted_drop: float
    float_size_bytes: int
    budget_bytes: int | None
    budget_avg_bits: float | None
    method: str = "greedy"
    metric: float | None = None
    metric_drop: float | None = None
    float_metric: float | None = None
    uniform_bits: int | None = None
    uniform_metric: float | None = None
    spec: QuantSpec = field(default_factory=QuantSpec)

    @property
    def specs(self) -> dict[str, QuantSpec]:
        """``{layer: spec with that layer's bits}``: pass it to :func:`quantlib.model.quantize_weights`."""
        return {name: self.spec.replace(bits=b) for name, b in self.assignment.items()}

    @property
    def compression(self) -> float:
        """``float_size_bytes / size_bytes``."""
        return self.float_size_bytes / self.size_bytes


def _specs(spec: QuantSpec, assignment: Mapping[str, int]) -> dict[str, QuantSpec]:
    return {name: spec.replace(bits=int(b)) for name, b in assignment.items()}


def evaluate_assignment(
    model: nn.Module,
    assignment: Mapping[str, int],
    spec: QuantSpec,
    evaluate: Evaluate,
    metric_name: str | None = None,
) -> float:
    """The measured metric of ``model`` with each layer's weight at its assigned width (a quantized copy).

    ``evaluate(model)`` returns a number or a mapping from which ``metric_name`` is taken.
    """
    quantized = quantize_weights(model, _specs(spec, assignment))
    return metric_value(evaluate(quantized), metric_name)


class _Problem:
    """The sweep as arrays: per layer and candidate width, predicted drop, noise and storage cost."""

    def __init__(
        self,
        model: nn.Module,
        sweep: pd.DataFrame,
        spec: QuantSpec,
        candidate_bits: Iterable[int] | None,
        value: str,
    ) -> None:
        if not spec.is_integer_grid:
            raise ValueError(
                f"mixed precision chooses integer widths: spec.format must be 'int' or 'pow2', not {spec.format!r}"
            )
        missing = {"layer", "bits"} - set(sweep.columns)
        if missing:
            raise ValueError(f"the sweep table lacks the columns {sorted(missing)}")
        if "mode" in sweep.columns and set(sweep["mode"]) - {"only"}:
            raise ValueError("choose_bits needs a one-layer-at-a-time sweep (mode='only')")
        if sweep.empty:
            raise ValueError("the sweep table is empty")
        self.bits = sorted({int(b) for b in (sweep["bits"] if candidate_bits is None else candidate_bits)})
        if not self.bits:
            raise ValueError("candidate_bits is empty")
        for b in self.bits:
            spec.replace(bits=b)  # validates the width
        infos = {i.name: i for i in list_layers(model)}
        names = list(dict.fromkeys(sweep["layer"]))
        unknown = [n for n in names if n not in infos]
        if unknown:
            raise ValueError(f"the sweep names layers the model does not have: {unknown}")
        # Module order, so ties are broken the same way on every run.
        self.layers: list[LayerInfo] = [infos[n] for n in infos if n in set(names)]
        self.spec = spec
        drop = sweep[value].to_numpy(dtype=float) if value in sweep.columns else np.full(len(sweep), np.nan)
        sqnr = (
            sweep["output_sqnr_db"].to_numpy(dtype=float)
            if "output_sqnr_db" in sweep.columns
            else np.full(len(sweep), np.nan)
        )
        has_metric = bool(np.isfinite(drop).any())
        has_sqnr = bool((~np.isnan(sqnr)).any())
        if not has_metric and not has_sqnr:
            raise ValueError(f"the sweep has neither {value!r} nor 'output_sqnr_db' values to rank layers by")
        table = {}
        for layer, b, d, s in zip(sweep["layer"], sweep["bits"], drop, sqnr, strict=True):
            # A drop that is not a number (the metric broke down, e.g. NaN) is the worst case, not a free move.
            d = max(float(d), 0.0) if math.isfinite(d) else (_BROKEN if has_metric else 0.0)
            noise = 10.0 ** (-float(s) / 10.0) if not math.isnan(s) else 0.0
            table[(layer, int(b))] = (d, noise)
        n, k = len(self.layers), len(self.bits)
        self.drop = np.zeros((n, k))
        self.noise = np.zeros((n, k))
        self.bytes = np.zeros((n, k), dtype=np.int64)
        self.numel = np.array([i.numel for i in self.layers], dtype=np.int64)
        for i, info in enumerate(self.layers):
            for j, b in enumerate(self.bits):
                if (info.name, b) not in table:
                    raise ValueError(f"the sweep has no row for layer {info.name!r} at {b} bits")
                self.drop[i, j], self.noise[i, j] = table[(info.name, b)]
                payload, overhead = weight_storage(spec.replace(bits=b), info)
                self.bytes[i, j] = payload + overhead
        self.model = model
        # Everything that is not an assigned layer's weight stays at its float size.
        self.fixed_bytes = model_size_bytes(
            model, _specs(spec, {i.name: self.bits[0] for i in self.layers})
        ) - int(self.bytes[:, 0].sum())

    def assignment(self, idx: Sequence[int]) -> Assignment:
        return {info.name: self.bits[j] for info, j in zip(self.layers, idx, strict=True)}

    def size_bytes(self, idx: Sequence[int]) -> int:
        return self.fixed_bytes + int(self.bytes[np.arange(len(idx)), idx].sum())

    def avg_bits(self, idx: Sequence[int]) -> float:
        bits = np.array([self.bits[j] for j in idx])
        return float((bits * self.numel).sum() / self.numel.sum())

    def predicted(self, idx: Sequence[int]) -> tuple[float, float]:
        rows = np.arange(len(idx))
        return float(self.drop[rows, idx].sum()), float(self.noise[rows, idx].sum())

    def costs(self, constraint: str) -> np.ndarray:
        """Per (layer, width) cost in the unit of the budget: bytes, or payload bits."""
        if constraint == "bytes":
            return self.bytes
        return self.numel[:, None] * np.array(self.bits, dtype=np.int64)[None, :]


def _greedy(problem: _Problem, cost: np.ndarray, budget: float) -> list[int]:
    """Indices into ``problem.bits`` per layer: see the module docstring for the two passes."""
    n, k = cost.shape
    idx = [k - 1] * n
    total = float(cost[np.arange(n), idx].sum())
    drop, noise = problem.drop, problem.noise

    def best_move(lower: bool, room: float) -> tuple[int, int] | None:
        best, best_key = None, None
        for i in range(n):
            j0 = idx[i]
            targets = range(j0) if lower else range(j0 + 1, k)
            for j in targets:
                saved = cost[i, j0] - cost[i, j]  # > 0 when lowering, < 0 when raising
                if saved == 0 or (not lower and -saved > room):
                    continue
                dd, dn = drop[i, j] - drop[i, j0], noise[i, j] - noise[i, j0]
                if not lower and (dd, dn) >= (0.0, 0.0):
                    continue  # raising must improve the prediction
                # Loss added per unit saved (lowering), or loss removed per unit spent (raising, negated):
                # smallest is best in both cases. Noise power breaks ties between equal metric drops.
                key = (dd / saved, dn / saved, i, j) if lower else (dd / -saved, dn / -saved, i, j)
                if best_key is None or key < best_key:
                    best, best_key = (i, j), key
        return best

    while total > budget:
        move = best_move(lower=True, room=0.0)
        if move is None:  # every layer is at the smallest width: unreachable (checked before, kept as guard)
            raise ValueError("the budget cannot be met even with every layer at the smallest width")
        i, j = move
        total += cost[i, j] - cost[i, idx[i]]
        idx[i] = j
    while True:
        move = best_move(lower=False, room=budget - total)
        if move is None:
            break
        i, j = move
        total += cost[i, j] - cost[i, idx[i]]
        idx[i] = j
    return idx


def _budget(problem: _Problem, budget_bytes: int | None, avg_bits: float | None) -> tuple[str, float]:
    if (budget_bytes is None) == (avg_bits is None):
        raise ValueError(
            "give exactly one budget: budget_bytes (total model bytes) or avg_bits (bits per weight)"
        )
    lo = problem.bits[0]
    if budget_bytes is not None:
        smallest = problem.size_bytes([0] * len(problem.layers))
        if budget_bytes < smallest:
            raise ValueError(
                f"a budget of {budget_bytes:,} bytes cannot be met: with every layer at {lo} bits the model takes "
                f"{smallest:,} bytes ({problem.fixed_bytes:,} of them are parameters that stay float)"
            )
        return "bytes", float(budget_bytes) - problem.fixed_bytes
    if not (isinstance(avg_bits, (int, float)) and math.isfinite(avg_bits)):
        raise ValueError(f"avg_bits must be a number, got {avg_bits!r}")
    if avg_bits < lo:
        raise ValueError(
            f"an average of {avg_bits} bits per weight cannot be met: the smallest candidate width is {lo}"
        )
    # In payload bits; the tiny epsilon keeps e.g. avg_bits=6 reachable despite float rounding of the product.
    return "bits", float(avg_bits) * float(problem.numel.sum()) * (1 + 1e-12)


def _uniform_fitting(problem: _Problem, constraint: str, budget: float) -> int | None:
    cost = problem.costs(constraint)
    fitting = [j for j in range(len(problem.bits)) if cost[:, j].sum() <= budget]
    return max(fitting) if fitting else None


def _result(
    problem: _Problem,
    idx: Sequence[int],
    budget_bytes: int | None,
    avg_bits: float | None,
    **measured: Any,
) -> MixedPrecisionResult:
    return MixedPrecisionResult(
        assignment=problem.assignment(idx),
        size_bytes=model_size_bytes(problem.model, _specs(problem.spec, problem.assignment(idx))),
        avg_bits=problem.avg_bits(idx),
        predicted_drop=problem.predicted(idx)[0],
        float_size_bytes=model_size_bytes(problem.model),
        budget_bytes=budget_bytes,
        budget_avg_bits=avg_bits,
        spec=problem.spec,
        **measured,
    )


def choose_bits(
    model: nn.Module,
    sweep: pd.DataFrame,
    budget_bytes: int | None = None,
    avg_bits: float | None = None,
    spec: QuantSpec | None = None,
    candidate_bits: Iterable[int] | None = None,
    evaluate: Evaluate | None = None,
    metric_name: str | None = None,
    higher_is_better: bool = True,
    value: str = "metric_drop",
    compare_uniform: bool = True,
) -> MixedPrecisionResult:
    """Choose a width per layer of the sweep that fits the budget (see the module docstring).

    Args:
        model: the float model the sweep was measured on (not modified).
        sweep: long table with ``layer, bits, metric_drop, output_sqnr_db`` (``mode="only"``).
        budget_bytes / avg_bits: exactly one budget (total model bytes, or mean bits per assigned weight).
        spec: the spec the sweep used (its ``bits`` is replaced per layer). Default ``QuantSpec()``.
        candidate_bits: widths to choose from (default: every width in the sweep).
        evaluate / metric_name: measure the result (and the widest uniform width that fits, which is returned
            instead if it measures better, when ``compare_uniform``). Without ``evaluate``, nothing is
            measured and ``metric`` is None.
        higher_is_better: direction of the metric.
        value: the sweep column used as the predicted loss (default ``metric_drop``; if the sweep has no
            metric, the output SQNR is used).

    Raises:
        ValueError: the budget is below what the smallest width reaches (the message gives that size).
    """
    spec = QuantSpec() if spec is None else spec
    problem = _Problem(model, sweep, spec, candidate_bits, value)
    constraint, budget = _budget(problem, budget_bytes, avg_bits)
    idx = _greedy(problem, problem.costs(constraint), budget)
    if evaluate is None:
        return _result(problem, idx, budget_bytes, avg_bits)
    float_metric = metric_value(evaluate(model), metric_name)
    metric = evaluate_assignment(model, problem.assignment(idx), spec, evaluate, metric_name)
    measured: dict[str, Any] = {"float_metric": float_metric}
    uniform = _uniform_fitting(problem, constraint, budget) if compare_uniform else None
    if uniform is not None:
        uidx = [uniform] * len(problem.layers)
        umetric = (
            metric
            if uidx == idx
            else evaluate_assignment(model, problem.assignment(uidx), spec, evaluate, metric_name)
        )
        measured.update(uniform_bits=problem.bits[uniform], uniform_metric=umetric)
        if _better(umetric, metric, higher_is_better):
            idx, metric = uidx, umetric
            measured["method"] = "uniform"
    measured.update(metric=metric, metric_drop=metric_drop(float_metric, metric, higher_is_better))
    return _result(problem, idx, budget_bytes, avg_bits, **measured)


def _goodness(metric: float, higher_is_better: bool) -> float:
    if math.isnan(metric):
        return -math.inf  # a metric that broke down is the worst outcome
    return metric if higher_is_better else -metric


def _better(a: float, b: float, higher_is_better: bool) -> bool:
    return _goodness(a, higher_is_better) > _goodness(b, higher_is_better)


def non_dominated(
    sizes: Sequence[float], metrics: Sequence[float], higher_is_better: bool = True
) -> list[bool]:
    """For each point, True if no other point is at most as large AND at least as good, and better in one.

    >>> non_dominated([1, 2, 3], [0.5, 0.4, 0.9])
    [True, False, True]
    """
    good = [_goodness(float(m), higher_is_better) for m in metrics]
    out = []
    for i, (s, g) in enumerate(zip(sizes, good, strict=True)):
        dominated = any(
            j != i and sizes[j] <= s and good[j] >= g and (sizes[j] < s or good[j] > g)
            for j in range(len(good))
        )
        out.append(not dominated)
    return out


def pareto_front(
    model: nn.Module,
    sweep: pd.DataFrame,
    spec: QuantSpec | None = None,
    evaluate: Evaluate | None = None,
    metric_name: str | None = None,
    higher_is_better: bool = True,
    budgets: Iterable[float] | None = None,
    uniform_bits: Iterable[int] = (8, 6, 4),
    candidate_bits: Iterable[int] | None = None,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Size vs MEASURED metric of greedy assignments across average-bit budgets, plus uniform points.

    ``budgets`` are average bits per weight (default: 9 values from the smallest to the largest candidate
    width). Each distinct assignment is evaluated once. Returns one row per point, sorted by ``size_bytes``:
    ``kind`` (``"mixed"`` or ``"uniform"``), ``label``, ``budget_avg_bits``, ``size_bytes``, ``avg_bits``,
    ``predicted_drop``, ``metric``, ``metric_drop``, ``on_front``, ``assignment`` (``{layer: bits}``).
    Mixed points that another point (mixed or uniform) dominates are left out, so the ``mixed`` rows are the
    Pareto front; the uniform rows are all kept for comparison, with ``on_front`` saying whether they are on it.
    ``progress(done, total, message)`` is called after each evaluation.
    """
    if evaluate is None:
        raise ValueError("a Pareto front of size vs metric needs evaluate(model)")
    spec = QuantSpec() if spec is None else spec
    problem = _Problem(model, sweep, spec, candidate_bits, "metric_drop")
    lo, hi = problem.bits[0], problem.bits[-1]
    budget_list = sorted(set(float(b) for b in (np.linspace(lo, hi, 9) if budgets is None else budgets)))
    ubits = sorted({int(b) for b in uniform_bits}, reverse=True)
    for b in ubits:
        spec.replace(bits=b)
    float_metric = metric_value(evaluate(model), metric_name)

    points: list[dict[str, Any]] = []
    todo: list[tuple[str, str, float | None, list[int] | Assignment]] = []
    seen: set[tuple[int, ...]] = set()
    for avg in budget_list:
        if avg < lo:
            continue  # unreachable budget: nothing to show
        constraint, budget = _budget(problem, None, avg)
        idx = _greedy(problem, problem.costs(constraint), budget)
        if tuple(idx) in seen:
            continue
        seen.add(tuple(idx))
        todo.append(("mixed", f"≤ {avg:g} bits/weight", avg, idx))
    for b in ubits:
        todo.append(("uniform", f"uniform int{b}", None, {info.name: b for info in problem.layers}))

    for n_done, (kind, label, avg, what) in enumerate(todo, start=1):
        assignment = problem.assignment(what) if isinstance(what, list) else what
        specs = _specs(spec, assignment)
        metric = evaluate_assignment(model, assignment, spec, evaluate, metric_name)
        idx = [problem.bits.index(b) if b in problem.bits else -1 for b in assignment.values()]
        points.append(
            {
                "kind": kind,
                "label": label,
                "budget_avg_bits": avg,
                "size_bytes": model_size_bytes(model, specs),
                "avg_bits": float(
                    sum(info.numel * assignment[info.name] for info in problem.layers) / problem.numel.sum()
                ),
                "predicted_drop": problem.predicted(idx)[0] if -1 not in idx else math.nan,
                "metric": metric,
                "metric_drop": metric_drop(float_metric, metric, higher_is_better),
                "assignment": assignment,
            }
        )
        if progress is not None:
            progress(n_done, len(todo), label)

    df = pd.DataFrame(points)
    df["on_front"] = non_dominated(df["size_bytes"].tolist(), df["metric"].tolist(), higher_is_better)
    df = df[(df["kind"] == "uniform") | df["on_front"]]
    cols = [
        "kind",
        "label",
        "budget_avg_bits",
        "size_bytes",
        "avg_bits",
        "predicted_drop",
        "metric",
        "metric_drop",
        "on_front",
        "assignment",
    ]
    return df.sort_values(["size_bytes", "kind"], kind="stable").reset_index(drop=True)[cols]


__all__ = [
    "Assignment",
    "MixedPrecisionResult",
    "choose_bits",
    "evaluate_assignment",
    "non_dominated",
    "pareto_front",
]
