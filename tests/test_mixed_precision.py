"""quantlib.mixed_precision: budgets are respected, the result beats uniform, the Pareto front is a front."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from model_hash import state_hash
from torch import nn

from quantlib import QuantSpec
from quantlib.mixed_precision import (
    choose_bits,
    evaluate_assignment,
    non_dominated,
    pareto_front,
)
from quantlib.model import model_size_bytes, quantize_weights
from quantlib.sensitivity import sensitivity_sweep

SPEC = QuantSpec(bits=8, granularity="channel")
BITS = (2, 3, 4, 6, 8)


@pytest.fixture(scope="module")
def digits():
    sample_models = pytest.importorskip("sample_models")
    sm = sample_models.load("digits-mlp")
    sweep = sensitivity_sweep(
        sm.model, SPEC, bits=BITS, evaluate=sm.evaluate, metric_name=sm.metric_name, run=sm.run
    )
    return sm, sweep


def uniform_metric(sm, bits: int) -> float:
    return evaluate_assignment(
        sm.model, {"fc1": bits, "fc2": bits, "fc3": bits}, SPEC, sm.evaluate, sm.metric_name
    )


@pytest.mark.parametrize("bits", [3, 4, 6])
def test_result_fits_the_byte_budget_and_is_never_worse_than_uniform_of_that_size(digits, bits):
    sm, sweep = digits
    budget = model_size_bytes(sm.model, SPEC.replace(bits=bits))
    before = state_hash(sm.model)
    r = choose_bits(
        sm.model, sweep, budget_bytes=budget, spec=SPEC, evaluate=sm.evaluate, metric_name="accuracy"
    )
    assert r.size_bytes <= budget
    # The size is the size page's own figure for these widths.
    assert r.size_bytes == model_size_bytes(sm.model, r.specs)
    assert r.metric >= uniform_metric(sm, bits)
    assert r.metric == evaluate_assignment(sm.model, r.assignment, SPEC, sm.evaluate, "accuracy")
    assert r.metric_drop == pytest.approx(sm.float_metrics["accuracy"] - r.metric)
    assert r.uniform_bits == bits and r.method in ("greedy", "uniform")
    assert set(r.assignment) == {"fc1", "fc2", "fc3"} and set(r.assignment.values()) <= set(BITS)
    assert r.compression > 1
    assert state_hash(sm.model) == before


def test_a_budget_between_uniform_sizes_is_used(digits):
    """Half-way between uniform 3 and 4 bits the greedy mixes widths and still fits."""
    sm, sweep = digits
    lo, hi = (model_size_bytes(sm.model, SPEC.replace(bits=b)) for b in (3, 4))
    budget = (lo + hi) // 2
    r = choose_bits(
        sm.model, sweep, budget_bytes=budget, spec=SPEC, evaluate=sm.evaluate, metric_name="accuracy"
    )
    assert lo < r.size_bytes <= budget
    assert r.metric >= uniform_metric(sm, 3)


def test_a_budget_below_the_smallest_width_is_a_clear_error(digits):
    sm, sweep = digits
    smallest = model_size_bytes(sm.model, SPEC.replace(bits=2))
    with pytest.raises(ValueError, match=f"cannot be met.*{smallest:,} bytes"):
        choose_bits(sm.model, sweep, budget_bytes=smallest - 1, spec=SPEC)
    with pytest.raises(ValueError, match="smallest candidate width is 2"):
        choose_bits(sm.model, sweep, avg_bits=1.5, spec=SPEC)
    with pytest.raises(ValueError, match="exactly one budget"):
        choose_bits(sm.model, sweep, spec=SPEC)
    with pytest.raises(ValueError, match="exactly one budget"):
        choose_bits(sm.model, sweep, budget_bytes=10**6, avg_bits=4, spec=SPEC)


@pytest.mark.parametrize("avg", [2.0, 3.3, 5.0, 8.0])
def test_avg_bits_budget(digits, avg):
    sm, sweep = digits
    r = choose_bits(sm.model, sweep, avg_bits=avg, spec=SPEC)
    assert r.avg_bits <= avg + 1e-9 and r.metric is None and r.budget_avg_bits == avg
    numel = {"fc1": 64 * 128, "fc2": 128 * 64, "fc3": 64 * 10}
    assert r.avg_bits == pytest.approx(
        sum(numel[k] * b for k, b in r.assignment.items()) / sum(numel.values())
    )
    if avg == 8.0:
        assert set(r.assignment.values()) == {8}
    if avg == 2.0:
        assert set(r.assignment.values()) == {2}


def fragile_net() -> tuple[nn.Module, torch.Tensor]:
    """Three equal Linear layers; the middle one is far more sensitive (its outputs are scaled up after it)."""
    gen = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 32))
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) / math.sqrt(32))
                m.bias.zero_()
        net[2].weight[0, 0] = 8.0  # an outlier: per-tensor scale too coarse for the rest of this layer
    x = torch.randn(256, 32, generator=gen)
    return net.eval(), x


def test_greedy_spends_bits_on_the_fragile_layer():
    net, x = fragile_net()
    with torch.no_grad():
        ref = net(x)

    def neg_mse(model: nn.Module) -> float:
        with torch.no_grad():
            return -float((model(x) - ref).square().mean())

    spec = QuantSpec()
    sweep = sensitivity_sweep(net, spec, bits=BITS, evaluate=neg_mse, run=lambda m: m(x))
    r = choose_bits(net, sweep, avg_bits=4, spec=spec, evaluate=neg_mse)
    assert r.assignment["2"] > max(r.assignment["0"], r.assignment["4"])
    assert r.method == "greedy" and r.metric > r.uniform_metric  # beats uniform 4 bits outright here
    # The prediction used by the greedy is the sum of the single-layer drops.
    drops = sweep.set_index(["layer", "bits"])["metric_drop"].clip(lower=0)
    assert r.predicted_drop == pytest.approx(sum(drops[(k, b)] for k, b in r.assignment.items()))


def test_sweep_without_metric_falls_back_to_output_noise():
    net, x = fragile_net()
    sweep = sensitivity_sweep(net, QuantSpec(), bits=BITS, run=lambda m: m(x))
    r = choose_bits(net, sweep, avg_bits=4)
    assert r.assignment["2"] > max(r.assignment["0"], r.assignment["4"])


def test_pareto_front_is_non_dominated_and_sorted(digits):
    sm, sweep = digits
    calls = []
    front = pareto_front(
        sm.model, sweep, SPEC, sm.evaluate, "accuracy", progress=lambda d, t, m: calls.append((d, t))
    )
    assert list(front.columns) == [
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
    assert front["size_bytes"].is_monotonic_increasing
    assert set(front["kind"]) == {"mixed", "uniform"}
    assert sorted(front.loc[front["kind"] == "uniform", "avg_bits"]) == [4.0, 6.0, 8.0]
    mixed = front[front["kind"] == "mixed"]
    assert len(mixed) >= 3 and mixed["on_front"].all()
    # Non-dominated among ALL points, recomputed independently here.
    on = front[front["on_front"]]
    for _, p in on.iterrows():
        assert not any(
            (q["size_bytes"] <= p["size_bytes"] and q["metric"] >= p["metric"])
            and (q["size_bytes"] < p["size_bytes"] or q["metric"] > p["metric"])
            for _, q in front.iterrows()
        )
    # Along the front, more bytes must buy a strictly better metric.
    on_sorted = on.sort_values("size_bytes")
    points = list(zip(on_sorted["size_bytes"], on_sorted["metric"], strict=True))
    assert all(m2 > m1 for (s1, m1), (s2, m2) in zip(points, points[1:], strict=False) if s2 > s1)
    # Each point's metric is real: re-measure one.
    row = mixed.iloc[len(mixed) // 2]
    assert row["metric"] == evaluate_assignment(sm.model, row["assignment"], SPEC, sm.evaluate, "accuracy")
    assert row["size_bytes"] == model_size_bytes(
        sm.model, {k: SPEC.replace(bits=b) for k, b in row["assignment"].items()}
    )
    assert calls and calls[-1][0] == calls[-1][1] and [d for d, _ in calls] == list(range(1, len(calls) + 1))


def test_non_dominated():
    assert non_dominated([1, 2, 3, 3], [0.5, 0.4, 0.9, 0.8]) == [True, False, True, False]
    assert non_dominated([1, 2], [0.5, 0.4], higher_is_better=False) == [True, True]
    assert non_dominated([1, 1], [0.5, 0.5]) == [True, True]  # equal points do not dominate each other
    assert non_dominated([1, 2], [math.nan, 0.1]) == [True, True]


def test_bad_sweeps_get_clear_messages(digits):
    sm, sweep = digits
    with pytest.raises(ValueError, match="mode='only'"):
        choose_bits(sm.model, sweep.assign(mode="all_but"), avg_bits=4, spec=SPEC)
    with pytest.raises(ValueError, match="no row for layer 'fc2' at 3 bits"):
        choose_bits(
            sm.model, sweep[~((sweep["layer"] == "fc2") & (sweep["bits"] == 3))], avg_bits=4, spec=SPEC
        )
    with pytest.raises(ValueError, match="does not have"):
        choose_bits(nn.Linear(2, 2), sweep, avg_bits=4, spec=SPEC)
    with pytest.raises(ValueError, match="integer widths"):
        choose_bits(sm.model, sweep, avg_bits=4, spec=QuantSpec(format="fp8_e4m3"))
    with pytest.raises(ValueError, match="empty"):
        choose_bits(sm.model, pd.DataFrame({"layer": [], "bits": []}), avg_bits=4, spec=SPEC)


def test_candidate_bits_restrict_the_choice(digits):
    sm, sweep = digits
    r = choose_bits(sm.model, sweep, avg_bits=5, spec=SPEC, candidate_bits=(4, 8))
    assert set(r.assignment.values()) <= {4, 8}
    q = quantize_weights(sm.model, r.specs)  # the result plugs straight into quantize_weights
    assert q is not sm.model
