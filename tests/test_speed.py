"""quantlib.speed: sane timings, real int8 copies that stay close to float, no warnings, no mutation."""

from __future__ import annotations

import time
import warnings

import pytest
import torch
from model_hash import state_hash
from torch import nn

from quantlib.speed import (
    FAKE_QUANT_METHOD,
    compare_float_vs_int8_dynamic,
    dynamic_int8,
    linear_micro_benchmark,
    measure_interleaved,
    measure_latency,
)

TORCH_AO_MESSAGES = (
    "torch.ao.quantization is deprecated",
    "torch.quantize_per_tensor, torch.quantize_per_channel and other quantized tensor creation functions",
)


def mlp() -> tuple[nn.Module, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Linear(128, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.08)
    return net.eval(), torch.randn(64, 128, generator=gen)


def assert_no_torch_ao_warning(caught: list[warnings.WarningMessage]) -> None:
    leaked = [str(w.message) for w in caught if any(m in str(w.message) for m in TORCH_AO_MESSAGES)]
    assert not leaked, leaked


def test_measure_latency_reports_median_percentiles_and_threads():
    t = measure_latency(lambda: time.sleep(0.002), warmup=1, repeats=5)
    assert 1.5 < t.median_ms < 200 and t.p10_ms <= t.median_ms <= t.p90_ms and t.min_ms <= t.p10_ms
    assert t.repeats == 5 and t.warmup == 1 and t.threads == torch.get_num_threads()
    assert "median" in str(t) and "thread" in str(t)
    calls = []
    measure_latency(lambda: calls.append(1), warmup=2, repeats=3)
    assert len(calls) == 5


def test_interleaved_timing_takes_turns():
    order = []
    timings = measure_interleaved(
        {"a": lambda: order.append("a"), "b": lambda: (order.append("b"), time.sleep(0.002))},
        warmup=1,
        repeats=3,
    )
    assert order == ["a", "b"] * 4
    assert set(timings) == {"a", "b"} and timings["b"].median_ms > timings["a"].median_ms
    assert timings["a"].repeats == 3 and timings["a"].warmup == 1


def test_threads_are_set_for_the_measurement_and_restored():
    before = torch.get_num_threads()
    seen = []
    t = measure_latency(lambda: seen.append(torch.get_num_threads()), warmup=0, repeats=2, threads=1)
    assert seen == [1, 1] and t.threads == 1 and torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads"):
        measure_latency(lambda: None, threads=0)
    with pytest.raises(ValueError, match="repeats"):
        measure_latency(lambda: None, repeats=0)


def test_int8_copy_is_close_to_float_and_the_input_model_stays_float_and_unchanged():
    net, x = mlp()
    before = state_hash(net)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = compare_float_vs_int8_dynamic(net, x, warmup=1, repeats=3, include_fake_quant=True)
    assert_no_torch_ao_warning(caught)
    assert r.layers_converted == ("0", "2", "4") and r.layers_not_converted == ()
    assert r.float_timing.median_ms > 0 and r.int8_timing.median_ms > 0 and r.fake_quant_timing.median_ms > 0
    assert r.threads == torch.get_num_threads() == r.float_timing.threads == r.int8_timing.threads
    assert r.speedup == pytest.approx(r.float_timing.median_ms / r.int8_timing.median_ms)
    assert r.rel_output_error < 0.03 and r.output_sqnr_db > 30 and 0 < r.max_abs_output_diff < 0.1
    # The report says which figures are real integer kernels and which are simulated.
    assert "real int8" in r.int8_method and "simulated" in r.fake_quant_method == FAKE_QUANT_METHOD
    assert "(real)" in r.float_method and "speed-up" in r.summary() and "simulated" in r.summary()
    # The caller's model: same weights, still plain float nn.Linear layers.
    assert state_hash(net) == before
    assert all(type(m) is nn.Linear for m in net if isinstance(m, nn.Linear)) and len(net) == 5
    assert all(p.dtype == torch.float32 for p in net.parameters())


def test_dynamic_int8_converts_a_copy_even_of_a_bare_linear():
    layer = nn.Linear(8, 4).eval()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        q, names = dynamic_int8(layer)
        q(torch.randn(2, 8))
    assert_no_torch_ao_warning(caught)
    assert names == [""] and isinstance(q, torch.ao.nn.quantized.dynamic.Linear) and type(layer) is nn.Linear


def test_a_model_without_linear_layers_reports_no_int8_figure():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU()).eval()
    r = compare_float_vs_int8_dynamic(net, torch.randn(2, 1, 8, 8), warmup=0, repeats=2)
    assert r.int8_timing is None and r.speedup is None and r.layers_not_converted == ("0",)
    assert "no nn.Linear" in r.summary() and r.float_timing.median_ms > 0


def test_linear_micro_benchmark_int8_is_faster_and_close():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = linear_micro_benchmark(batch=64, warmup=3, repeats=15, threads=1)
    assert_no_torch_ao_warning(caught)
    assert r.layers_converted == ("",) and r.threads == 1
    assert r.rel_output_error < 0.03
    # int8 GEMM is several times faster on one thread (about 4-6x here); the 10th percentiles are robust to
    # the occasional scheduler hiccup of a shared machine, and the margin is wide.
    assert r.float_timing.p10_ms / r.int8_timing.p10_ms > 1.5
    again = linear_micro_benchmark(batch=4, warmup=0, repeats=1)
    assert again.max_abs_output_diff >= 0  # seeded: builds the same layer without touching the global RNG


def test_sample_model_with_tuple_inputs():
    sample_models = pytest.importorskip("sample_models")
    sm = sample_models.load("recsys")
    before = state_hash(sm.model)
    users, items = sm.eval_inputs
    r = compare_float_vs_int8_dynamic(sm.model, (users[:256], items[:256]), warmup=1, repeats=3)
    assert r.layers_converted == ("hidden", "out") and r.layers_not_converted == ("user_emb", "item_emb")
    # Activations are quantized per tensor at run time (7-bit range on x86): the logits move by about 10%.
    assert r.rel_output_error < 0.2
    assert state_hash(sm.model) == before and type(sm.model.hidden) is nn.Linear
