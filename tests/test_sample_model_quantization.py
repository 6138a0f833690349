"""Model-level quantization on the real sample models: the shared model never changes, and the pinned sanity
figures of the sample-models issue hold."""

from __future__ import annotations

import threading

import pytest
import torch
from model_hash import state_hash

import sample_models
from quantlib import QuantSpec
from quantlib.model import list_layers, output_drift, quantize_model, quantize_weights


@pytest.mark.parametrize("name", sample_models.names())
def test_quantizing_a_sample_model_never_changes_the_shared_model(name):
    sm = sample_models.load(name)
    before = state_hash(sm.model)
    quantize_weights(sm.model, QuantSpec(bits=4, granularity="channel"))
    q = quantize_model(
        sm.model,
        weight_spec=QuantSpec(bits=4),
        act_spec=QuantSpec(bits=8, calibration="percentile"),
        calibration_inputs=sm.calibration_inputs,
    )
    sm.run(q, sm.eval_inputs)
    assert state_hash(sm.model) == before
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in sm.model.modules())


@pytest.mark.parametrize("name", ["digits-mlp", "digits-cnn"])
def test_8bit_weights_keep_digits_accuracy_within_half_a_point(name):
    sm = sample_models.load(name)
    acc = sm.evaluate(quantize_weights(sm.model, QuantSpec(bits=8)))["accuracy"]
    assert abs(acc - sm.float_metrics["accuracy"]) <= 0.005


@pytest.mark.parametrize("name", ["digits-mlp", "digits-cnn"])
def test_2bit_per_tensor_visibly_breaks_digits(name):
    sm = sample_models.load(name)
    acc = sm.evaluate(quantize_weights(sm.model, QuantSpec(bits=2)))["accuracy"]
    assert acc < sm.float_metrics["accuracy"] - 0.3


def test_minilm_8bit_per_channel_linears_keep_mean_cosine_above_099():
    sm = sample_models.load("minilm")
    assert len([i for i in list_layers(sm.model) if i.kind == "Linear"]) == 37
    q = quantize_weights(sm.model, QuantSpec(bits=8, granularity="channel"))
    metrics = sm.evaluate(q)
    assert metrics["mean_cosine"] >= 0.99
    drift = output_drift(sm.run(sm.model, sm.eval_inputs), sm.run(q, sm.eval_inputs))
    assert drift.mean_cosine == pytest.approx(metrics["mean_cosine"], abs=1e-6)


def test_recsys_embedding_tables_quantize_per_row():
    sm = sample_models.load("recsys")
    embeddings = [i for i in list_layers(sm.model) if i.kind == "Embedding"]
    assert embeddings, "the recommender's interesting tensors are its embedding tables"
    q = quantize_weights(sm.model, QuantSpec(bits=4, granularity="channel"), layers=[e.name for e in embeddings])
    table = q.get_submodule(embeddings[0].name).weight
    assert all(torch.unique(row).numel() <= 16 for row in table[:50])
    assert sm.evaluate(q)[sm.metric_name] > 0.5 * sm.float_metrics[sm.metric_name]


def test_two_threads_quantizing_the_shared_digits_model_get_independent_results():
    sm = sample_models.load("digits-cnn")
    before = state_hash(sm.model)
    specs = [QuantSpec(bits=2), QuantSpec(bits=8, granularity="channel")]
    expected = [sm.evaluate(quantize_weights(sm.model, s))["accuracy"] for s in specs]
    got: dict[int, list[float]] = {0: [], 1: []}

    def work(i: int) -> None:
        for _ in range(5):
            got[i].append(sm.evaluate(quantize_weights(sm.model, specs[i]))["accuracy"])

    threads = [threading.Thread(target=work, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got[0] == [expected[0]] * 5 and got[1] == [expected[1]] * 5
    assert state_hash(sm.model) == before
