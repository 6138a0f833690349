"""quantlib.recipe: a plan as JSON that apply() turns back into the same quantized model, bit for bit."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sample_models
from quantlib import QuantSpec
from quantlib.model import quantize_model, quantize_weights
from quantlib.recipe import apply, from_json, spec_from_dict, spec_to_dict, to_json

PROFILE = settings(
    deadline=None,
    max_examples=int(os.environ.get("QUANTLIB_HYPOTHESIS_EXAMPLES", "60")),
    suppress_health_check=[HealthCheck.too_slow],
)


@st.composite
def specs(draw):
    fmt = draw(st.sampled_from(["int", "pow2", "fp8_e4m3", "nf4"]))
    integer = fmt in ("int", "pow2")
    scheme = draw(st.sampled_from(["symmetric", "asymmetric"])) if integer else "symmetric"
    return QuantSpec(
        bits=draw(st.integers(2, 16)),
        scheme=scheme,
        granularity=draw(st.sampled_from(["tensor", "channel", "group"])),
        group_size=draw(st.integers(1, 256)),
        calibration=draw(st.sampled_from(["minmax", "percentile", "mse", "entropy"])),
        percentile=draw(st.floats(50.01, 100.0)),
        rounding=draw(st.sampled_from(["nearest", "truncate", "stochastic"])) if integer else "nearest",
        narrow_range=draw(st.booleans()) if scheme == "symmetric" else False,
        format=fmt,
        seed=draw(st.integers(0, 2**31)),
    )


@PROFILE
@given(st.dictionaries(st.text(min_size=1, max_size=20), specs(), min_size=1, max_size=5))
def test_every_plan_survives_json_unchanged(plan):
    recipe = from_json(to_json(plan))
    assert recipe.layers == plan
    assert list(recipe.layers) == list(plan)


def test_apply_reproduces_a_mixed_precision_plan_bit_for_bit():
    sm = sample_models.load("digits-mlp")
    plan = {
        "fc1": QuantSpec(bits=3, granularity="channel", calibration="mse"),
        "fc2": QuantSpec(bits=5, scheme="asymmetric", granularity="group", group_size=32, rounding="stochastic", seed=7),
        "fc3": QuantSpec(bits=8),
    }
    text = to_json(plan, model="digits-mlp")
    ours = apply(sm.model, text)
    expected = quantize_weights(sm.model, plan)
    for name in plan:
        assert torch.equal(ours.get_submodule(name).weight, expected.get_submodule(name).weight)
    assert sm.evaluate(ours) == sm.evaluate(expected)


def test_apply_with_activations_matches_quantize_model_and_needs_calibration_inputs():
    sm = sample_models.load("digits-mlp")
    plan = {"fc1": QuantSpec(bits=4, granularity="channel"), "fc2": QuantSpec(bits=6)}
    act = QuantSpec(bits=8, scheme="asymmetric")
    text = to_json(plan, activations=act, calibration="digits-mlp calibration_inputs")
    with pytest.raises(ValueError, match="pass calibration_inputs \\(digits-mlp calibration_inputs\\)"):
        apply(sm.model, text)
    ours = apply(sm.model, text, sm.calibration_inputs)
    expected = quantize_model(sm.model, plan, act, sm.calibration_inputs, layers=list(plan))
    assert torch.equal(sm.run(ours), sm.run(expected))


def test_the_model_passed_in_is_not_changed():
    sm = sample_models.load("tiny-linear")
    before = sm.model.linear.weight.clone()
    apply(sm.model, to_json({"linear": QuantSpec(bits=2)}))
    assert torch.equal(sm.model.linear.weight, before)


def test_spec_dict_lists_every_field():
    assert set(spec_to_dict(QuantSpec())) == {
        "bits", "scheme", "granularity", "axis", "group_size", "calibration", "percentile", "rounding",
        "narrow_range", "format", "seed",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not valid JSON"),
        ("[]", "not a quantlib recipe"),
        ('{"format": "quantlib-recipe", "version": 2, "layers": {}}', "version 2 is not supported"),
        ('{"format": "quantlib-recipe", "version": 1, "layers": {}}', "has no layers"),
        ('{"format": "quantlib-recipe", "version": 1, "method": "gptq", "layers": {"a": {}}}', "method 'gptq'"),
        ('{"format": "quantlib-recipe", "version": 1, "layers": {"a": {"bitz": 4}}}', "unknown fields 'bitz'"),
        ('{"format": "quantlib-recipe", "version": 1, "layers": {"a": {"bits": 1}}}', "layer 'a': bits must be"),
        ('{"format": "quantlib-recipe", "version": 1, "layers": {"a": 3}}', "must be an object"),
    ],
)
def test_bad_recipes_are_refused_in_plain_words(text, message):
    with pytest.raises(ValueError, match=message):
        from_json(text)


def test_a_layer_the_model_does_not_have_is_named():
    sm = sample_models.load("tiny-linear")
    with pytest.raises(ValueError, match="no quantizable layer named 'fc9'"):
        apply(sm.model, to_json({"fc9": QuantSpec()}))


def test_spec_from_dict_refuses_a_non_mapping():
    with pytest.raises(ValueError, match="must be an object"):
        spec_from_dict([4])
