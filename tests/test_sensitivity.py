"""quantlib.sensitivity: one-layer-at-a-time probes on hand-built models and on the sample models."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from model_hash import state_hash
from torch import nn

from quantlib import QuantSpec
from quantlib.evaluate import metric_value
from quantlib.model import list_layers, quantize_weights
from quantlib.sensitivity import (
    layer_sensitivity,
    output_sqnr_db,
    sensitivity_matrix,
    sensitivity_sweep,
)


def fragile_mlp() -> nn.Sequential:
    """Four Linear layers; ``2`` has one huge outlier weight feeding an unused unit, so a per-tensor 4-bit scale
    rounds every other weight of that layer to zero: its output collapses to the bias."""
    gen = torch.Generator().manual_seed(0)
    net = nn.Sequential(
        nn.Linear(16, 32),
        nn.ReLU(),
        nn.Linear(32, 32),
        nn.ReLU(),
        nn.Linear(32, 32),
        nn.ReLU(),
        nn.Linear(32, 5),
    )
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) / math.sqrt(m.in_features))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
        net[4].weight[0, 0] = 50.0
        net[6].weight[:, 0] = 0.0  # the outlier's unit is not used: the float model does not depend on it
    return net.eval()


@pytest.fixture(scope="module")
def task():
    """The fragile MLP with inputs and labels = its own float predictions (float accuracy is exactly 1)."""
    net = fragile_mlp()
    x = torch.randn(512, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = net(x).argmax(dim=1)

    def evaluate(model: nn.Module) -> dict[str, float]:
        with torch.no_grad():
            logits = model(x)
        return {"accuracy": float((logits.argmax(dim=1) == y).double().mean()), "loss": 0.0}

    def run(model: nn.Module) -> torch.Tensor:
        with torch.no_grad():
            return model(x)

    return net, evaluate, run


def test_fragile_layer_ranks_first_by_metric_and_by_sqnr(task):
    net, evaluate, run = task
    table = layer_sensitivity(net, QuantSpec(bits=4), evaluate, "accuracy", run=run)
    assert list(table.columns) == [
        "layer",
        "kind",
        "numel",
        "bits",
        "mode",
        "float_metric",
        "metric",
        "metric_drop",
        "output_sqnr_db",
    ]
    assert sorted(table["layer"]) == ["0", "2", "4", "6"]
    assert table["layer"].iloc[0] == "4"
    assert table["output_sqnr_db"].idxmin() == 0
    assert table["float_metric"].eq(1.0).all()
    first, rest = table.iloc[0], table.iloc[1:]
    assert first["metric_drop"] > 0.3 and (rest["metric_drop"] < first["metric_drop"] / 3).all()
    # Sorted: drops never increase down the table.
    assert table["metric_drop"].is_monotonic_decreasing
    assert dict(zip(table["layer"], table["numel"], strict=True)) == {
        "0": 512,
        "2": 1024,
        "4": 1024,
        "6": 160,
    }


def test_metric_and_sqnr_agree_with_a_quantized_copy(task):
    """Each row equals what quantize_weights + evaluate give for that layer alone: the fast path is exact."""
    net, evaluate, run = task
    spec = QuantSpec(bits=3, granularity="channel")
    table = layer_sensitivity(net, spec, evaluate, "accuracy", run=run).set_index("layer")
    for name in ["0", "4"]:
        q = quantize_weights(net, spec, layers=[name])
        assert table.loc[name, "metric"] == evaluate(q)["accuracy"]
        assert table.loc[name, "output_sqnr_db"] == pytest.approx(output_sqnr_db(run(net), run(q)), abs=1e-9)


def test_all_but_mode_names_the_layer_to_keep_in_float_first(task):
    net, evaluate, run = task
    table = layer_sensitivity(net, QuantSpec(bits=4), evaluate, "accuracy", run=run, mode="all_but")
    assert table["layer"].iloc[0] == "4"
    assert {"recovered_drop", "sqnr_gain_db"} <= set(table.columns)
    assert table["recovered_drop"].iloc[0] > 0.3 and table["sqnr_gain_db"].iloc[0] > 5
    assert (table["mode"] == "all_but").all()
    # "All but 4" = all four layers quantized except 4, checked against an explicit quantized copy.
    q = quantize_weights(net, QuantSpec(bits=4), layers=["0", "2", "6"])
    assert table["metric"].iloc[0] == evaluate(q)["accuracy"]


def test_progress_is_called_once_per_layer_and_the_model_is_unchanged(task):
    net, evaluate, run = task
    before = state_hash(net)
    calls = []
    layer_sensitivity(
        net,
        QuantSpec(bits=2),
        evaluate,
        "accuracy",
        run=run,
        progress=lambda d, t, m: calls.append((d, t, m)),
    )
    assert [(d, t) for d, t, _ in calls] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert all(isinstance(m, str) and m for _, _, m in calls)
    assert state_hash(net) == before
    # No wrapper or hook is left behind on the caller's model.
    assert all("forward" not in vars(m) for m in net.modules())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())


def test_sweep_gives_a_layers_by_bits_table_with_progress_over_every_probe(task):
    net, evaluate, run = task
    calls = []
    sweep = sensitivity_sweep(
        net,
        QuantSpec(),
        bits=(8, 2, 4),
        evaluate=evaluate,
        metric_name="accuracy",
        run=run,
        progress=lambda d, t, m: calls.append((d, t)),
    )
    assert [d for d, _ in calls] == list(range(1, 13)) and {t for _, t in calls} == {12}
    assert len(sweep) == 12 and sorted(set(sweep["bits"])) == [2, 4, 8]
    wide = sensitivity_matrix(sweep, "output_sqnr_db")
    assert list(wide.columns) == [2, 4, 8] and sorted(wide.index) == ["0", "2", "4", "6"]
    assert wide.index[0] == "4"  # most fragile first
    # More bits, less noise: SQNR grows with the width for every ordinary layer ...
    assert (wide.drop(index="4").diff(axis=1).iloc[:, 1:] > 0).all().all()
    # ... but the outlier sets a per-tensor scale so large that even 8 bits round its other weights to 0.
    assert (wide.loc["4"] < 1.0).all()


def test_without_evaluate_the_table_ranks_by_output_sqnr(task):
    net, _, run = task
    table = layer_sensitivity(net, QuantSpec(bits=4), run=run)
    assert table["metric"].isna().all() and table["layer"].iloc[0] == "4"
    assert table["output_sqnr_db"].is_monotonic_increasing


def test_lower_is_better_metric_gives_positive_drops():
    net = fragile_mlp()
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = net(x)

    def mse(model: nn.Module) -> float:
        with torch.no_grad():
            return float((model(x) - ref).square().mean())

    table = layer_sensitivity(net, QuantSpec(bits=4), mse, higher_is_better=False)
    assert (table["metric_drop"] > 0).all() and table["layer"].iloc[0] == "4"
    assert table["metric_drop"].equals(table["metric"])  # float mse is 0, so drop = mse


class Block(nn.Module):
    """Residual block with in-place ops and a kwargs call: what activation reuse must not get wrong."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, width)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, scale: float = 1.0, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.act(self.fc1(x))
        h = self.fc2(h)
        if mask is not None:
            h = h * mask
        h += x  # in place on a fresh tensor
        return h * scale


class Tower(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(3)
        self.emb = nn.Embedding(20, 12)
        self.blocks = nn.ModuleList([Block(12) for _ in range(3)])
        self.head = nn.Linear(12, 20)
        self.head.weight = self.emb.weight  # tied: quantizing one changes the other
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.emb(ids)
        mask = (ids > 2).float().unsqueeze(-1)
        for block in self.blocks:
            x = block(x, scale=0.9, mask=mask)
            x.relu_()  # in place on a block's (possibly recorded) output
        return self.head(x).sum(dim=1)


def test_activation_reuse_is_exact_with_in_place_ops_kwargs_and_tied_weights():
    model = Tower().eval()
    ids = torch.randint(0, 20, (16, 7), generator=torch.Generator().manual_seed(4))

    def run(m: nn.Module) -> torch.Tensor:
        with torch.no_grad():
            return m(ids)

    before = state_hash(model)
    for mode in ("only", "all_but"):
        fast = sensitivity_sweep(model, QuantSpec(), bits=(2, 4), run=run, mode=mode)
        slow = sensitivity_sweep(model, QuantSpec(), bits=(2, 4), run=run, mode=mode, reuse_activations=False)
        pd.testing.assert_frame_equal(fast, slow)
    # Reference by brute force for each layer alone.
    table = layer_sensitivity(model, QuantSpec(bits=3), run=run).set_index("layer")
    for name in table.index:
        q = quantize_weights(model, QuantSpec(bits=3), layers=[name])
        assert table.loc[name, "output_sqnr_db"] == output_sqnr_db(run(model), run(q))
    assert state_hash(model) == before


def test_bad_arguments_get_clear_messages(task):
    net, evaluate, run = task
    with pytest.raises(ValueError, match="no quantizable layer named 'nope'"):
        layer_sensitivity(net, QuantSpec(), run=run, layers=["nope"])
    with pytest.raises(ValueError, match="mode must be"):
        layer_sensitivity(net, QuantSpec(), run=run, mode="some")
    with pytest.raises(ValueError, match="evaluate .* run"):
        layer_sensitivity(net, QuantSpec())
    with pytest.raises(ValueError, match="integer format"):
        sensitivity_sweep(net, QuantSpec(format="nf4"), run=run)
    with pytest.raises(ValueError, match="bits must be"):
        sensitivity_sweep(net, QuantSpec(), bits=(1, 4), run=run)
    with pytest.raises(ValueError, match="metric_name"):
        layer_sensitivity(net, QuantSpec(), evaluate)  # two metrics, none named
    with pytest.raises(ValueError, match="no quantizable layer"):
        layer_sensitivity(nn.Sequential(nn.ReLU()), QuantSpec(), run=lambda m: torch.zeros(1))
    assert metric_value({"only": 0.25}, None) == 0.25


def test_a_broken_quantized_output_counts_as_minus_infinity_db():
    assert output_sqnr_db(torch.ones(3), torch.tensor([1.0, math.nan, 1.0])) == -math.inf
    assert output_sqnr_db(torch.ones(3), torch.ones(3)) == math.inf


# ---------------------------------------------------------------------------------------------------------------
# Real sample models


@pytest.fixture(scope="module")
def sample_models():
    return pytest.importorskip("sample_models")


def test_digits_mlp_at_2_bits_gives_one_row_per_layer(sample_models):
    sm = sample_models.load("digits-mlp")
    before = state_hash(sm.model)
    table = layer_sensitivity(
        sm.model,
        QuantSpec(bits=2),
        sm.evaluate,
        sm.metric_name,
        run=sm.run,
        higher_is_better=sm.higher_is_better,
    )
    assert sorted(table["layer"]) == sorted(i.name for i in list_layers(sm.model))
    assert table["float_metric"].eq(sm.float_metrics[sm.metric_name]).all()
    assert (table["metric_drop"] > 0.1).all()  # 2 bits per tensor hurts every layer of this MLP
    assert table[["metric", "output_sqnr_db"]].notna().all().all()
    assert state_hash(sm.model) == before


@pytest.mark.slow
def test_minilm_ffn_output_layers_are_among_the_most_fragile_at_4_bits(sample_models):
    """At int4 symmetric per-tensor (weights only), the six FFN output layers bert.encoder.layer.N.output.dense
    are all among the 7 most fragile of the 37 Linear layers by Spearman drop; the single most fragile is the
    first FFN input layer (layer.0.intermediate.dense). The pooler does not feed the embedding: no change."""
    sm = sample_models.load("minilm")
    before = state_hash(sm.model)
    linears = [n for n, m in sm.model.named_modules() if isinstance(m, nn.Linear)]
    table = layer_sensitivity(
        sm.model, QuantSpec(bits=4), sm.evaluate, sm.metric_name, run=sm.run, layers=linears
    )
    assert len(table) == 37
    top7 = set(table["layer"].iloc[:7])
    assert {f"bert.encoder.layer.{i}.output.dense" for i in range(6)} <= top7
    assert table["layer"].iloc[0] == "bert.encoder.layer.0.intermediate.dense"
    last = table.iloc[-1]
    assert (
        last["layer"] == "bert.pooler.dense"
        and last["metric_drop"] == 0
        and last["output_sqnr_db"] == math.inf
    )
    assert state_hash(sm.model) == before


@pytest.mark.slow
def test_minilm_activation_reuse_matches_the_plain_computation(sample_models):
    sm = sample_models.load("minilm")
    layers = [
        "bert.embeddings.word_embeddings",
        "bert.encoder.layer.0.attention.self.key",
        "bert.encoder.layer.2.output.dense",
        "bert.encoder.layer.5.attention.output.dense",
        "bert.pooler.dense",
    ]
    fast = layer_sensitivity(sm.model, QuantSpec(bits=3), run=sm.run, layers=layers)
    slow = layer_sensitivity(sm.model, QuantSpec(bits=3), run=sm.run, layers=layers, reuse_activations=False)
    pd.testing.assert_frame_equal(fast, slow)
