"""Energy per inference, estimated: multiply-accumulates and bytes moved, times a published table of 45 nm costs.

Model (per example, batch of one)::

    E = Σ_layers [ MACs_ℓ · (E_mul + E_add)          # arithmetic: fp32, or int8 × int8 into an int32 accumulator
                 + bytes(W_ℓ) / 4 · E_DRAM            # the weight is fetched from DRAM once per inference
                 + bytes(x_ℓ, y_ℓ) / 4 · E_SRAM ]     # input and output activations through an 8 kB SRAM
        + MACs_other · (E_fp32 mul + E_fp32 add)      # matmuls outside the quantizable layers (stay float)

- MACs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (FLOPs / 2 for matmul and convolution),
  per layer, on one example. Operations it has no formula for are not counted (on CPU that includes
  scaled-dot-product attention).
- Weight bytes are those of :func:`quantlib.model.weight_storage`: codes at ``b`` bits plus a scale (and zero
  point) per block; float32 weights are 4 bytes each.
- Weight-only quantization (the app's default) keeps fp32 arithmetic: the weights are dequantized before the
  multiply, so only the DRAM traffic shrinks. Integer arithmetic needs weights *and* activations on an integer
  grid of at most 8 bits (``integer_arithmetic=True``); activations then move as 1 byte each.

The costs are M. Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014 (45 nm, 0.9 V):
8-bit add 0.03 pJ, 32-bit int add 0.1 pJ, 8-bit multiply 0.2 pJ, 32-bit int multiply 3.1 pJ, fp16 add / multiply
0.4 / 1.1 pJ, fp32 add / multiply 0.9 / 3.7 pJ; a 64-bit read from an 8 kB SRAM 10 pJ and from DRAM 1.3-2.6 nJ,
i.e. 5 pJ and 640 pJ per 32-bit word, as Han et al. tabulate it ("Learning both weights and connections",
NeurIPS 2015; "EIE", ISCA 2016). It is one process node and a simple model - no caches between SRAM and DRAM,
no weight reuse across a batch - so read the ratios, not the joules.

Worked example, ``digits-mlp`` (64 → 128 → 64 → 10): MACs = 64·128 + 128·64 + 64·10 = 17,024. In float32,
arithmetic 17,024 · 4.6 pJ = 78 nJ, weights 17,024 words · 640 pJ = 10.9 µJ: fetching the weights costs 140× the
arithmetic, and int4 weights cut that part 8× (less the scales).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .model import Inputs, LayerInfo, call, layer_spec, list_layers, weight_storage
from .spec import QuantSpec

#: Energy per operation / per 32-bit access in picojoules (Horowitz, ISSCC 2014, 45 nm; memory per 32 bits as
#: in Han et al. 2015/2016).
HOROWITZ_45NM_PJ: dict[str, float] = {
    "int8 add": 0.03,
    "int32 add": 0.1,
    "int8 multiply": 0.2,
    "int32 multiply": 3.1,
    "fp16 add": 0.4,
    "fp16 multiply": 1.1,
    "fp32 add": 0.9,
    "fp32 multiply": 3.7,
    "32-bit SRAM read (8 kB)": 5.0,
    "32-bit DRAM read": 640.0,
}
CITATION = (
    'M. Horowitz, "Computing\'s energy problem (and what we can do about it)", IEEE ISSCC 2014, 45 nm; '
    "memory per 32-bit access as tabulated by Han et al., NeurIPS 2015 / ISCA 2016"
)


@dataclass(frozen=True)
class LayerCounts:
    """One quantizable layer on one example: MACs, weight count, activation values read and written."""

    name: str
    kind: str
    macs: int
    weight_numel: int
    input_numel: int
    output_numel: int


@dataclass(frozen=True)
class Counts:
    """MACs of a model on one example: per quantizable layer, and the rest (``other_macs``)."""

    layers: tuple[LayerCounts, ...]
    other_macs: int

    @property
    def total_macs(self) -> int:
        return sum(c.macs for c in self.layers) + self.other_macs


def first_example(inputs: Inputs) -> Inputs:
    """The first example of a batch: ``x[:1]`` for a tensor, element-wise for a tuple / list / dict."""
    if isinstance(inputs, torch.Tensor):
        return inputs[:1]
    if isinstance(inputs, dict):
        return {k: first_example(v) for k, v in inputs.items()}
    if isinstance(inputs, (tuple, list)):
        return type(inputs)(first_example(v) for v in inputs)
    return inputs


def count(model: nn.Module, example: Inputs, forward: Callable[[nn.Module, Inputs], Any] = call) -> Counts:
    """MACs per quantizable layer and activation sizes for one forward pass of ``model`` on ``example``.

    Runs a private copy (``FlopCounterMode`` and the size hooks never touch ``model``).

    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> c = count(net, torch.zeros(1, 4))
    >>> [(layer.name, layer.macs) for layer in c.layers], c.total_macs
    ([('0', 32), ('2', 16)], 48)
    """
    infos = list_layers(model)
    private = copy.deepcopy(model).eval()
    sizes: dict[str, tuple[int, int]] = {}
    handles = []
    for info in infos:

        def hook(_m, args, output, name=info.name):
            n_in = sum(int(a.numel()) for a in args if isinstance(a, torch.Tensor))
            n_out = int(output.numel()) if isinstance(output, torch.Tensor) else 0
            before = sizes.get(name, (0, 0))
            sizes[name] = (before[0] + n_in, before[1] + n_out)

        handles.append(private.get_submodule(info.name).register_forward_hook(hook))
    counter = FlopCounterMode(display=False, depth=None)
    try:
        with torch.no_grad(), counter:
            forward(private, example)
    finally:
        for h in handles:
            h.remove()
    flops = counter.get_flop_counts()
    root = type(private).__name__
    layers = []
    for info in infos:
        key = f"{root}.{info.name}" if info.name else root
        layer_flops = sum(flops.get(key, {}).values())
        n_in, n_out = sizes.get(info.name, (0, 0))
        layers.append(LayerCounts(info.name, info.kind, layer_flops // 2, info.numel, n_in, n_out))
    total = counter.get_total_flops() // 2
    return Counts(tuple(layers), max(0, total - sum(c.macs for c in layers)))


def _integer(spec: QuantSpec | None) -> bool:
    return spec is not None and spec.is_integer_grid and spec.bits <= 8


def energy_table(
    counts: Counts,
    infos: Mapping[str, LayerInfo],
    plan: Mapping[str, QuantSpec] | None = None,
    *,
    integer_arithmetic: bool = False,
    table: Mapping[str, float] = HOROWITZ_45NM_PJ,
) -> pd.DataFrame:
    """Energy per inference, per layer, in picojoules: ``arithmetic_pj``, ``weights_pj``, ``activations_pj``,
    ``total_pj``, with ``macs``, ``weight_bytes`` and ``activation_bytes``; a last row ``(other matmuls)``.

    ``plan`` is ``{layer: QuantSpec}`` for the quantized layers (None: all float32). ``integer_arithmetic``:
    layers on an integer grid of at most 8 bits multiply int8 × int8 into int32 and move 1-byte activations;
    every other layer multiplies in fp32.
    """
    plan = plan or {}
    fp32_mac = table["fp32 multiply"] + table["fp32 add"]
    int8_mac = table["int8 multiply"] + table["int32 add"]
    dram_per_byte = table["32-bit DRAM read"] / 4
    sram_per_byte = table["32-bit SRAM read (8 kB)"] / 4
    rows = []
    for c in counts.layers:
        spec = plan.get(c.name)
        if spec is not None:
            spec = layer_spec(spec, infos[c.name])
            payload, overhead = weight_storage(spec, infos[c.name])
            weight_bytes = payload + overhead
        else:
            weight_bytes = 4 * c.weight_numel
        integer = integer_arithmetic and _integer(spec)
        act_bytes = (c.input_numel + c.output_numel) * (1 if integer else 4)
        # An embedding looks rows up: no multiplies, and only the rows it reads move (one per output row).
        if c.kind in ("Embedding", "EmbeddingBag"):
            used = c.output_numel / max(c.weight_numel, 1)
            weight_bytes = weight_bytes * min(1.0, used)
        rows.append(
            {
                "layer": c.name,
                "kind": c.kind,
                "macs": c.macs,
                "weight_bytes": float(weight_bytes),
                "activation_bytes": float(act_bytes),
                "arithmetic_pj": c.macs * (int8_mac if integer else fp32_mac),
                "weights_pj": weight_bytes * dram_per_byte,
                "activations_pj": act_bytes * sram_per_byte,
            }
        )
    rows.append(
        {
            "layer": "(other matmuls)",
            "kind": "",
            "macs": counts.other_macs,
            "weight_bytes": 0.0,
            "activation_bytes": 0.0,
            "arithmetic_pj": counts.other_macs * fp32_mac,
            "weights_pj": 0.0,
            "activations_pj": 0.0,
        }
    )
    df = pd.DataFrame(rows)
    df["total_pj"] = df["arithmetic_pj"] + df["weights_pj"] + df["activations_pj"]
    return df


def totals(table: pd.DataFrame) -> dict[str, float]:
    """The sums of :func:`energy_table`'s energy columns (picojoules) and MACs."""
    return {
        "macs": float(table["macs"].sum()),
        "arithmetic_pj": float(table["arithmetic_pj"].sum()),
        "weights_pj": float(table["weights_pj"].sum()),
        "activations_pj": float(table["activations_pj"].sum()),
        "total_pj": float(table["total_pj"].sum()),
    }


def count_model(model: nn.Module, inputs: Inputs, forward: Callable[[nn.Module, Inputs], Any] = call) -> Counts:
    """:func:`count` on the first example of ``inputs`` (a batch)."""
    return count(model, first_example(inputs), forward)


def layer_infos(model: nn.Module) -> dict[str, LayerInfo]:
    return {i.name: i for i in list_layers(model)}
