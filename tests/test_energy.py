"""quantlib.energy: MAC counts against hand-computed values, the energy arithmetic, and the Size & speed section."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest
from torch import nn

import sample_models
from quantlib import QuantSpec, energy
from quantlib.model import weight_storage
from ui.views import energy as ui_energy

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "app.py")
T = energy.HOROWITZ_45NM_PJ
FP32_MAC = T["fp32 multiply"] + T["fp32 add"]


def counts_of(name: str) -> dict[str, int]:
    sm = sample_models.load(name)
    c = energy.count_model(sm.model, sm.eval_inputs)
    assert c.other_macs == 0
    return {layer.name: layer.macs for layer in c.layers}


def test_tiny_linear_does_ten_macs_per_example():
    assert counts_of("tiny-linear") == {"linear": 10}  # 10 inputs x 1 output


def test_digits_mlp_macs_are_the_products_of_its_layer_widths():
    assert counts_of("digits-mlp") == {"fc1": 64 * 128, "fc2": 128 * 64, "fc3": 64 * 10}


def test_digits_cnn_conv_macs_are_output_pixels_times_kernel_volume():
    # conv1: 16 filters of 1x3x3 over 8x8 (padding 1); conv2: 32 of 16x3x3 over 8x8; fc: 512 -> 10.
    assert counts_of("digits-cnn") == {"conv1": 16 * 64 * 9, "conv2": 32 * 64 * 16 * 9, "fc": 512 * 10}


def test_activation_sizes_are_each_layers_input_and_output():
    sm = sample_models.load("digits-mlp")
    c = energy.count_model(sm.model, sm.eval_inputs)
    assert [(layer.input_numel, layer.output_numel) for layer in c.layers] == [(64, 128), (128, 64), (64, 10)]


def test_counting_leaves_the_model_and_torch_without_hooks():
    sm = sample_models.load("digits-mlp")
    before = {k: v.clone() for k, v in sm.model.state_dict().items()}
    energy.count_model(sm.model, sm.eval_inputs)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in sm.model.modules())
    assert not torch.nn.modules.module._global_forward_hooks
    assert not torch.nn.modules.module._global_forward_pre_hooks
    assert all(torch.equal(v, before[k]) for k, v in sm.model.state_dict().items())


def test_matmuls_outside_the_quantizable_layers_are_counted_as_other():
    class Gram(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.fc(x)
            return y @ y.T

    c = energy.count(Gram(), torch.zeros(5, 4))
    assert c.layers[0].macs == 5 * 4 * 3 and c.other_macs == 5 * 3 * 5


def test_float_energy_of_tiny_linear_by_hand():
    sm = sample_models.load("tiny-linear")
    c = energy.count_model(sm.model, sm.eval_inputs)
    table = energy.energy_table(c, energy.layer_infos(sm.model))
    row = table.iloc[0]
    assert row["arithmetic_pj"] == pytest.approx(10 * 4.6)
    assert row["weights_pj"] == pytest.approx(10 * 640)  # ten 32-bit weights from DRAM
    assert row["activations_pj"] == pytest.approx((10 + 1) * 5)  # ten inputs, one output, 32 bits each
    assert energy.totals(table)["total_pj"] == pytest.approx(46 + 6400 + 55)


def test_weight_only_quantization_saves_dram_traffic_not_arithmetic():
    sm = sample_models.load("digits-mlp")
    c = energy.count_model(sm.model, sm.eval_inputs)
    infos = energy.layer_infos(sm.model)
    spec = QuantSpec(bits=4, granularity="channel")
    f = energy.energy_table(c, infos)
    q = energy.energy_table(c, infos, {n: spec for n in infos})
    assert (q["arithmetic_pj"] == f["arithmetic_pj"]).all()
    fc1 = q.set_index("layer").loc["fc1"]
    payload, overhead = weight_storage(spec, infos["fc1"])
    assert fc1["weight_bytes"] == payload + overhead == 64 * 128 // 2 + 128 * 4
    assert energy.totals(f)["total_pj"] / energy.totals(q)["total_pj"] > 5


def test_integer_arithmetic_only_for_integer_grids_of_at_most_8_bits():
    sm = sample_models.load("digits-mlp")
    c = energy.count_model(sm.model, sm.eval_inputs)
    infos = energy.layer_infos(sm.model)
    int8 = energy.energy_table(c, infos, {n: QuantSpec(bits=8) for n in infos}, integer_arithmetic=True)
    assert int8["arithmetic_pj"].iloc[0] == pytest.approx(8192 * (0.2 + 0.1))  # int8 multiply + int32 add
    assert int8["activation_bytes"].iloc[0] == 64 + 128
    wide = energy.energy_table(c, infos, {n: QuantSpec(bits=12) for n in infos}, integer_arithmetic=True)
    assert wide["arithmetic_pj"].iloc[0] == pytest.approx(8192 * FP32_MAC)
    fp8 = energy.energy_table(c, infos, {n: QuantSpec(format="fp8_e4m3") for n in infos}, integer_arithmetic=True)
    assert fp8["arithmetic_pj"].iloc[0] == pytest.approx(8192 * FP32_MAC)


def test_embeddings_move_only_the_rows_they_look_up():
    sm = sample_models.load("recsys")
    c = energy.count_model(sm.model, sm.eval_inputs)
    table = energy.energy_table(c, energy.layer_infos(sm.model)).set_index("layer")
    user = next(layer for layer in c.layers if layer.name == "user_emb")
    assert table.loc["user_emb", "macs"] == 0
    assert table.loc["user_emb", "weight_bytes"] == pytest.approx(4 * user.output_numel)


def test_first_example_slices_every_input_kind():
    x = torch.arange(6).reshape(3, 2)
    assert energy.first_example(x).tolist() == [[0, 1]]
    assert energy.first_example((x, x))[1].shape == (1, 2)
    assert energy.first_example({"ids": x})["ids"].shape == (1, 2)


def test_joules_pick_a_readable_unit():
    assert ui_energy.joules(46.0) == "46 pJ"
    assert ui_energy.joules(10_975_960.4) == "11 µJ"
    assert ui_energy.joules(7.93e9) == "7.93 mJ"


@pytest.mark.parametrize("model", ["digits-mlp", "minilm"])
def test_size_and_speed_shows_the_energy_of_float_the_setting_and_integer_arithmetic(model):
    at = AppTest.from_file(APP, default_timeout=600)
    at.query_params.update(model=model, bits="4", granularity="channel")
    at.run()
    at.switch_page("app_pages/size_speed.py").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("Energy per inference" in s.value for s in at.subheader)
    energy_metrics = [m for m in at.metric if "less than float" in (m.proto.delta or "")]
    assert len(energy_metrics) == 2, "the setting and integer arithmetic, each against float"
    assert "Horowitz" in " ".join(c.value for c in at.caption)
    assert any('"Energy per inference' in el.proto.spec for el in at.get("plotly_chart"))


def test_the_mix_chosen_on_layer_sensitivity_joins_the_energy_comparison():
    at = AppTest.from_file(APP, default_timeout=600)
    at.query_params.update(model="digits-mlp", bits="4", sens_view="All bit widths", avg_bits="3")
    at.run()
    at.switch_page("app_pages/sensitivity.py").run()
    assert not at.exception and not at.error
    at.switch_page("app_pages/size_speed.py").run()
    assert not at.exception and not at.error
    assert "mixed-precision mix" in [m.label for m in at.metric]
    assert "the one Layer sensitivity chose for 3 bits per weight" in " ".join(c.value for c in at.caption)
