"""quantlib.onnx_int8 and the ONNX Runtime section of Size & speed: the float export reproduces PyTorch, ONNX
Runtime's int8 weight scales are quantlib's symmetric per-channel scales, the int8 model keeps the task metric,
and the page shows float, simulated and real int8 side by side (through the job runner)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from streamlit.testing.v1 import AppTest

import sample_models
from quantlib import QuantSpec, choose_qparams
from quantlib import onnx_int8 as ox
from ui.views import ort as ui_ort

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "app.py")


def build(name: str, tmp_path: Path) -> tuple[sample_models.SampleModel, str, str]:
    sm = sample_models.load(name)
    f32, int8 = str(tmp_path / "float.onnx"), str(tmp_path / "int8.onnx")
    ox.export_float(sm.model, ox.head(sm.eval_inputs, 2), f32)
    n = ox.num_examples(sm.calibration_inputs)
    ox.quantize_qdq(f32, int8, [ox.feeds(sm.calibration_inputs, i, i + 32) for i in range(0, n, 32)])
    return sm, f32, int8


@pytest.mark.parametrize("name", ["digits-mlp", "digits-cnn", "minilm"])
def test_the_float_export_reproduces_pytorchs_outputs(name, tmp_path):
    sm, f32, int8 = build(name, tmp_path)
    out = sm.run(ox.OrtModule(ox.session(f32), ox.input_names(sm.eval_inputs)))
    ref = sm.run(sm.model)
    assert out.shape == ref.shape
    assert float((out - ref).abs().max()) <= 1e-5 * max(1.0, float(ref.abs().max()))
    # The classifiers' logits come out of a quantized Gemm; MiniLM's embedding is pooled and normalized in float.
    assert (ox.output_scale(int8) is None) == (name == "minilm")


def test_onnx_runtimes_int8_weight_scales_are_quantlibs_per_channel_scales(tmp_path):
    sm, _, int8 = build("digits-mlp", tmp_path)
    graph = onnx.load(int8).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    int8_weights = [k for k, v in inits.items() if v.dtype == np.int8 and v.ndim == 2]
    assert len(int8_weights) == 3, "fc1, fc2 and fc3 are stored as int8"
    assert {n.op_type for n in graph.node} >= {"QuantizeLinear", "DequantizeLinear", "Gemm"}
    ours = choose_qparams(sm.model.fc1.weight.detach(), QuantSpec(bits=8, granularity="channel")).scale.reshape(-1)
    scales = [v for k, v in inits.items() if v.dtype == np.float32 and v.shape == (128,) and "scale" in k]
    assert any(np.allclose(s, ours.numpy(), rtol=1e-6, atol=0) for s in scales), "max|w| / 127 per output row"


def test_int8_keeps_the_digits_accuracy_and_matches_the_unfused_graph_on_a_single_layer(tmp_path):
    sm, _, int8 = build("digits-cnn", tmp_path)
    names = ox.input_names(sm.eval_inputs)
    acc = sm.evaluate(ox.OrtModule(ox.session(int8), names))["accuracy"]
    assert abs(acc - sm.float_metrics["accuracy"]) < 0.02
    (tmp_path / "tiny").mkdir()
    tiny, _, tiny8 = build("tiny-linear", tmp_path / "tiny")
    fused = tiny.run(ox.OrtModule(ox.session(tiny8), ["input"]))
    unfused = tiny.run(ox.OrtModule(ox.session(tiny8, fused=False), ["input"]))
    step = ox.output_scale(tiny8)
    assert step is not None and ox.lsb_difference(fused, unfused, step)["max"] <= 1.0


def test_helpers_name_and_slice_every_input_kind():
    x = torch.zeros(3, 2)
    assert ox.input_names(x) == ["input"] and ox.input_names((x, x)) == ["input_0", "input_1"]
    assert ox.input_names({"ids": x}) == ["ids"]
    assert ox.head((x, x), 1)[0].shape == (1, 2) and ox.head({"ids": x}, 2)["ids"].shape == (2, 2)
    assert ox.feeds(x, 1, 3)["input"].shape == (2, 2)
    assert ox.lsb_difference(torch.tensor([0.0, 1.0]), torch.tensor([0.0, 1.5]), 0.5) == {
        "max": 1.0, "median": 0.0, "share_differing": 0.5,
    }


def test_the_job_compares_float_simulated_and_real_int8():
    res = ui_ort.compute("digits-mlp")
    assert set(res["metrics"]) == set(res["timings"]) == set(res["sizes"]) == set(ui_ort.LABELS)
    assert res["sizes"]["ort_int8"] < res["sizes"]["ort_float"] / 2
    assert res["diffs"]["ort_float_max_abs"] < 1e-4
    assert res["diffs"]["int8_vs_float_db"] > 15 and res["diffs"]["int8_vs_sim_top1"] > 0.95
    assert all(t["p10_ms"] <= t["median_ms"] <= t["p90_ms"] and t["threads"] == 1 for t in res["timings"].values())


def test_size_and_speed_runs_onnx_runtime_on_a_click():
    at = AppTest.from_file(APP, default_timeout=600)
    at.query_params.update(model="digits-mlp")
    at.run()
    at.switch_page("app_pages/size_speed.py").run()
    assert not at.exception and not at.error
    assert any("ONNX Runtime" in s.value for s in at.subheader)
    at.button(key="ort-run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    shown = next(df.value for df in at.dataframe if "variant" in df.value.columns)
    assert shown["variant"].tolist() == [label for label, _ in ui_ort.LABELS.values()]
    text = " ".join(c.value for c in at.caption)
    assert "Output SQNR against float" in text and "steps of the output grid" in text


@pytest.mark.slow
def test_minilm_on_onnx_runtime_reports_its_float_output_difference_without_a_grid():
    at = AppTest.from_file(APP, default_timeout=600)
    at.query_params.update(model="minilm")
    at.run()
    at.switch_page("app_pages/size_speed.py").run()
    at.button(key="ort-run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    shown = next(df.value for df in at.dataframe if "variant" in df.value.columns)
    assert float(shown.set_index("variant").loc["float32 (ONNX Runtime)", "spearman"]) > 0.999
    assert "no output grid to count steps of" in " ".join(c.value for c in at.caption)
