"""quantlib.export: compressed-tensors files that the compressed-tensors package itself decompresses to exactly
quantlib's dequantized weights (uniform settings, mixed-precision plans, every integer width, fp8)."""

from __future__ import annotations

import json

import pytest
import torch
from compressed_tensors.compressors import ModelCompressor
from compressed_tensors.quantization import QuantizationConfig, apply_quantization_config
from compressed_tensors_support import decompress_with_compressed_tensors
from torch import nn

import sample_models
from quantlib import QuantSpec, budget
from quantlib import recipe as recipe_mod
from quantlib.export import (
    export_cost,
    plan_export,
    plan_tensors,
    read,
    read_metadata,
    tensors_to_compressed_tensors,
    to_compressed_tensors,
)
from quantlib.model import list_layers, quantize_weights


def assert_weights_equal(decompressed: nn.Module, expected: nn.Module, names: list[str]) -> None:
    for name in names:
        got = decompressed.get_submodule(name).weight.detach()
        want = expected.get_submodule(name).weight.detach()
        assert got.shape == want.shape, name
        assert torch.equal(got.to(want.dtype), want), f"{name}: max diff {(got.float() - want.float()).abs().max()}"


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.emb = nn.Embedding(50, 64)
        self.fc1 = nn.Linear(64, 96)
        self.conv = nn.Conv1d(3, 4, 3)
        self.fc2 = nn.Linear(96, 10)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)


EXPORTED = ["emb", "fc1", "fc2"]
SPECS = [
    QuantSpec(bits=4),
    QuantSpec(bits=4, scheme="asymmetric", granularity="group", group_size=32),
    QuantSpec(bits=3, scheme="asymmetric", granularity="channel"),
    QuantSpec(bits=8, scheme="asymmetric"),
    QuantSpec(bits=2, granularity="group", group_size=16, calibration="mse"),
    QuantSpec(bits=5, format="pow2", rounding="stochastic", seed=3),
    QuantSpec(bits=6, granularity="channel", calibration="percentile", percentile=99.0, narrow_range=True),
    QuantSpec(bits=7, scheme="asymmetric", granularity="group", group_size=8, rounding="truncate"),
    QuantSpec(bits=8, granularity="channel", calibration="entropy"),
    QuantSpec(format="fp8_e4m3", granularity="channel"),
    QuantSpec(format="fp8_e4m3", granularity="group", group_size=32),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.label().replace(" ", "-"))
def test_compressed_tensors_decompresses_uniform_export_to_quantlibs_weights(spec):
    model = Toy()
    blob = to_compressed_tensors(model, spec)
    expected = quantize_weights(model, {name: spec for name in EXPORTED})
    assert_weights_equal(decompress_with_compressed_tensors(model, blob), expected, EXPORTED)


def test_conv_layers_stay_float_and_are_listed_as_ignored():
    model = Toy()
    tensors, meta = read(to_compressed_tensors(model, QuantSpec(bits=4)))
    assert meta["quantization_config"]["ignore"] == ["conv"]
    assert torch.equal(tensors["conv.weight"], model.conv.weight)
    assert plan_export(model, QuantSpec(bits=4)).kept["conv"].startswith("Conv1d")


def test_mixed_precision_plan_exports_each_layer_at_its_own_width():
    model = Toy()
    plan = {
        "fc1": QuantSpec(bits=3, granularity="channel"),
        "fc2": QuantSpec(bits=8, scheme="asymmetric", granularity="channel"),
        "emb": QuantSpec(format="fp8_e4m3"),
    }
    blob = to_compressed_tensors(model, plan)
    config = read(blob)[1]["quantization_config"]
    assert config["format"] == "mixed-precision"
    assert len(config["config_groups"]) == 3
    assert_weights_equal(decompress_with_compressed_tensors(model, blob), quantize_weights(model, plan), list(plan))


def test_layers_outside_a_plan_keep_their_float_weights():
    model = Toy()
    blob = to_compressed_tensors(model, {"fc1": QuantSpec(bits=4)})
    tensors, _ = read(blob)
    assert "fc1.weight_packed" in tensors and "fc1.weight" not in tensors
    assert torch.equal(tensors["fc2.weight"], model.fc2.weight)
    assert torch.equal(decompress_with_compressed_tensors(model, blob).fc2.weight, model.fc2.weight)


def test_packed_file_is_smaller_than_float():
    model = Toy()
    float_bytes = sum(p.numel() * 4 for p in model.parameters())
    tensors, _ = read(to_compressed_tensors(model, QuantSpec(bits=4, granularity="channel")))
    assert tensors["fc1.weight_packed"].numel() * 4 == 96 * 64 * 4 // 8
    assert sum(t.numel() * t.element_size() for t in tensors.values()) < float_bytes / 3


@pytest.mark.parametrize("name", ["tiny-linear", "digits-mlp", "digits-cnn"])
def test_sample_models_round_trip_through_compressed_tensors(name):
    sm = sample_models.load(name)
    before = {k: v.clone() for k, v in sm.model.state_dict().items()}
    spec = QuantSpec(bits=4, scheme="asymmetric", granularity="channel")
    blob = to_compressed_tensors(sm.model, spec)
    plan = plan_export(sm.model, spec)
    assert_weights_equal(
        decompress_with_compressed_tensors(sm.model, blob), quantize_weights(sm.model, plan.quantized), list(plan.quantized)
    )
    assert all(torch.equal(v, before[k]) for k, v in sm.model.state_dict().items())  # the shared model is only read


def test_minilm_per_group_export_round_trips_and_keeps_the_shared_model_untouched():
    sm = sample_models.load("minilm")
    before = {k: v.clone() for k, v in list(sm.model.state_dict().items())[:3]}
    spec = QuantSpec(bits=4, granularity="group", group_size=32)
    blob = to_compressed_tensors(sm.model, spec)
    names = [i.name for i in list_layers(sm.model)]
    assert_weights_equal(decompress_with_compressed_tensors(sm.model, blob), quantize_weights(sm.model, spec), names)
    for k, v in before.items():
        assert torch.equal(sm.model.state_dict()[k], v)


def test_bf16_weights_decompress_to_the_same_bf16_values():
    model = Toy().to(torch.bfloat16)
    spec = QuantSpec(bits=4, granularity="channel")
    blob = to_compressed_tensors(model, spec)
    assert_weights_equal(
        decompress_with_compressed_tensors(model.float(), blob), quantize_weights(model, {n: spec for n in EXPORTED}), EXPORTED
    )


def test_constant_and_zero_rows_survive_export():
    model = Toy()
    with torch.no_grad():
        model.fc1.weight[0] = 0.0
        model.fc1.weight[1] = 0.7
    spec = QuantSpec(bits=4, scheme="asymmetric", granularity="channel")
    blob = to_compressed_tensors(model, spec)
    got = decompress_with_compressed_tensors(model, blob).fc1.weight
    assert torch.equal(got[0], torch.zeros(64)) and torch.equal(got[1], torch.full((64,), 0.7))


def test_recipe_travels_in_the_metadata():
    model = Toy()
    text = recipe_mod.to_json({"fc1": QuantSpec(bits=4)}, model="toy")
    meta = read_metadata(to_compressed_tensors(model, {"fc1": QuantSpec(bits=4)}, recipe_json=text))
    assert json.loads(meta["quantlib_recipe"])["model"] == "toy"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (QuantSpec(format="nf4"), "no NF4 layout"),
        (QuantSpec(format="fp8_e5m2"), "e4m3 only"),
        (QuantSpec(bits=12), "1-8 bits"),
        (QuantSpec(bits=4, granularity="group", group_size=7), "does not divide"),
    ],
)
def test_settings_compressed_tensors_cannot_hold_are_refused_in_plain_words(spec, message):
    with pytest.raises(ValueError, match=message):
        to_compressed_tensors(Toy(), spec)


def test_unknown_layer_and_nan_weights_are_refused():
    with pytest.raises(ValueError, match="no quantizable layer named 'nope'"):
        to_compressed_tensors(Toy(), {"nope": QuantSpec()})
    model = Toy()
    with torch.no_grad():
        model.fc1.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        to_compressed_tensors(model, QuantSpec())


def test_export_cost_is_priced_from_shapes_and_grows_with_the_model():
    small = export_cost(plan_export(Toy(), QuantSpec(bits=4)))
    big = export_cost(plan_export(sample_models.load("minilm").model, QuantSpec(bits=4, granularity="group", group_size=64)))
    assert 0 < small.seconds < big.seconds < budget.MAX_SECONDS
    assert big.bytes_peak > 10 * small.bytes_peak


def test_read_metadata_refuses_what_is_not_safetensors():
    with pytest.raises(ValueError, match="not a safetensors file"):
        read_metadata(b"\xff" * 12)


def test_a_bare_state_dict_exports_its_two_d_weights_and_keeps_the_rest():
    model = Toy()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["counter"] = torch.tensor([3], dtype=torch.int64)
    spec = QuantSpec(bits=4, scheme="asymmetric", granularity="channel")
    plan = {name: spec for name in ("emb.weight", "fc1.weight", "fc2.weight", "conv.weight", "fc1.bias", "counter")}
    blob = tensors_to_compressed_tensors(state, plan)
    tensors, meta = read(blob)
    assert torch.equal(tensors["conv.weight"], state["conv.weight"]) and torch.equal(tensors["counter"], state["counter"])
    del tensors["counter"]
    fresh = Toy()
    config = QuantizationConfig.model_validate(meta["quantization_config"])
    apply_quantization_config(fresh, config, show_progress=False)
    compressor = ModelCompressor(quantization_config=config)
    compressor.compress_model(fresh)
    fresh.load_state_dict(tensors, strict=True)
    compressor.decompress_model(fresh)
    assert_weights_equal(fresh, quantize_weights(model, {n: spec for n in EXPORTED}), EXPORTED)
    kept = plan_tensors(state, plan).kept
    assert set(kept) == {"conv.weight", "fc1.bias", "counter"}
    assert "3-D" in kept["conv.weight"] and "not named like" in kept["counter"]


def test_a_bare_state_dict_names_a_missing_tensor():
    with pytest.raises(ValueError, match="no tensor named 'x.weight'"):
        tensors_to_compressed_tensors({}, {"x.weight": QuantSpec()})
