"""A quantization recipe: the settings per layer as JSON, which :func:`apply` turns back into the same model.

What the app explored (a uniform setting, or a mixed-precision plan from the sensitivity page) becomes a small
JSON document you can keep next to a notebook or a paper::

    {"format": "quantlib-recipe", "version": 1, "method": "round-to-nearest",
     "model": "digits-mlp",
     "layers": {"fc1": {"bits": 4, "scheme": "symmetric", "granularity": "channel", ...}, ...},
     "activations": null}

- ``layers`` - one full :class:`~quantlib.spec.QuantSpec` per layer (every field, so a default that changes in
  a later quantlib cannot change the result), applied to the weights with
  :func:`quantlib.model.quantize_weights`;
- ``method`` - how weights are quantized: ``"round-to-nearest"`` (each weight independently, with the spec's
  rounding and calibration of the range on the weight itself);
- ``activations`` - optional: one spec for static activation quantization of those layers, calibrated on
  inputs you pass to :func:`apply` (``calibration`` says which the app used).

:func:`apply` reproduces the app's quantized model bit for bit: the same specs through the same functions.

    >>> import torch.nn as nn
    >>> from quantlib import QuantSpec
    >>> net = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> text = to_json({"0": QuantSpec(bits=4), "2": QuantSpec(bits=8)})
    >>> q = apply(net, text)
    >>> bool((q[0].weight == quantize_weights(net, {"0": QuantSpec(bits=4)})[0].weight).all())
    True
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from .model import Inputs, quantize_model, quantize_weights
from .spec import QuantSpec

FORMAT = "quantlib-recipe"
VERSION = 1
METHODS = ("round-to-nearest",)
#: Recipes are small; a bigger text is not one (and is not parsed).
MAX_RECIPE_CHARS = 2_000_000
_FIELDS = {f.name for f in dataclasses.fields(QuantSpec)}


@dataclass(frozen=True)
class Recipe:
    """A parsed recipe: the per-layer weight specs, the method, optional activation spec and where it came from."""

    layers: dict[str, QuantSpec]
    method: str = "round-to-nearest"
    activations: QuantSpec | None = None
    model: str | None = None
    calibration: str | None = None


def spec_to_dict(spec: QuantSpec) -> dict[str, Any]:
    """Every field of a spec, in declaration order."""
    return dataclasses.asdict(spec)


def spec_from_dict(d: Mapping[str, Any], where: str = "a spec") -> QuantSpec:
    """A validated :class:`QuantSpec` from a dict; unknown keys are refused (a typo would silently be a default)."""
    if not isinstance(d, Mapping):
        raise ValueError(f"{where} must be an object of QuantSpec fields, got {type(d).__name__}")
    unknown = sorted(set(d) - _FIELDS)
    if unknown:
        raise ValueError(f"{where} has unknown fields {', '.join(map(repr, unknown))}; known: {sorted(_FIELDS)}")
    try:
        return QuantSpec(**dict(d))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {err}") from None


def to_json(
    plan: Mapping[str, QuantSpec],
    *,
    model: str | None = None,
    method: str = "round-to-nearest",
    activations: QuantSpec | None = None,
    calibration: str | None = None,
) -> str:
    """The recipe of a ``{layer: QuantSpec}`` plan as indented JSON (layers in the plan's order).

    ``model`` names the model (informational), ``activations`` adds static activation quantization with that
    spec, ``calibration`` says on which inputs its ranges were calibrated (informational, e.g.
    ``"digits-mlp calibration_inputs (64 examples)"``).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}, got {method!r}")
    layers = {}
    for name, spec in plan.items():
        if not isinstance(spec, QuantSpec):
            raise TypeError(f"the spec for layer {name!r} must be a QuantSpec, got {type(spec).__name__}")
        layers[str(name)] = spec_to_dict(spec)
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "method": method,
        "model": model,
        "layers": layers,
        "activations": None if activations is None else spec_to_dict(activations),
        "calibration": calibration,
    }
    return json.dumps(doc, indent=1)


def from_json(text: str) -> Recipe:
    """Parse and validate a recipe; every problem is a ``ValueError`` that says what is wrong."""
    if not isinstance(text, (str, bytes)):
        raise ValueError(f"a recipe is JSON text, got {type(text).__name__}")
    if len(text) > MAX_RECIPE_CHARS:
        raise ValueError(f"this recipe is {len(text):,} characters long; a recipe is at most {MAX_RECIPE_CHARS:,}")
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"the recipe is not valid JSON ({err})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"not a quantlib recipe: expected an object with \"format\": \"{FORMAT}\"")
    if doc.get("version") != VERSION:
        raise ValueError(f"recipe version {doc.get('version')!r} is not supported (this quantlib reads {VERSION})")
    method = doc.get("method", "round-to-nearest")
    if method not in METHODS:
        raise ValueError(f"recipe method {method!r} is not supported; known: {', '.join(METHODS)}")
    layers = doc.get("layers")
    if not isinstance(layers, dict) or not layers:
        raise ValueError("the recipe has no layers: \"layers\" must map layer names to QuantSpec fields")
    specs = {str(name): spec_from_dict(d, f"layer {name!r}") for name, d in layers.items()}
    acts = doc.get("activations")
    act_spec = None if acts is None else spec_from_dict(acts, "the activation spec")
    model, calibration = doc.get("model"), doc.get("calibration")
    return Recipe(
        specs,
        method,
        act_spec,
        model if isinstance(model, str) else None,
        calibration if isinstance(calibration, str) else None,
    )


def apply(model: nn.Module, recipe_json: str, calibration_inputs: Inputs | None = None) -> nn.Module:
    """A quantized copy of ``model`` made by the recipe (``model`` is untouched).

    Weights only: :func:`quantlib.model.quantize_weights` with the per-layer specs. With an activation spec:
    :func:`quantlib.model.quantize_model` on those layers, calibrated on ``calibration_inputs`` (required then).
    """
    recipe = from_json(recipe_json)
    if recipe.activations is None:
        return quantize_weights(model, recipe.layers)
    if calibration_inputs is None:
        raise ValueError(
            "this recipe quantizes activations too: pass calibration_inputs "
            + (f"({recipe.calibration})" if recipe.calibration else "(the inputs its ranges were calibrated on)")
        )
    return quantize_model(
        model,
        weight_spec=recipe.layers,
        act_spec=recipe.activations,
        calibration_inputs=calibration_inputs,
        layers=list(recipe.layers),
    )
