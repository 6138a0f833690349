"""Post-training quantization beyond round-to-nearest: one entry point, :func:`apply`, one module per algorithm.

    >>> import torch, torch.nn as nn
    >>> from quantlib import QuantSpec
    >>> torch.manual_seed(0) and None
    >>> net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)).eval()
    >>> x = torch.randn(256, 16)
    >>> rtn = apply(net, "rtn", QuantSpec(bits=3, granularity="channel"), x)
    >>> gptq = apply(net, "gptq", QuantSpec(bits=3, granularity="channel"), x)
    >>> bool((gptq.report["rel_error"] <= rtn.report["rel_error"]).all())
    True

Methods (each module's docstring has the paper, the formula and a worked example):

- ``"rtn"`` - round to nearest, the baseline (:mod:`.rtn`); ``act_spec=`` adds static per-tensor activation
  quantization of each layer's input;
- ``"gptq"`` - column-by-column rounding with error feedback through the inverse Hessian (:mod:`.gptq`);
  options ``damp`` (0.01), ``block_size`` (128), ``act_order`` (False);
- ``"awq"`` - activation-aware per-input-channel scales, ``α`` searched on a grid (:mod:`.awq`); ``grid`` (20);
- ``"smoothquant"`` - activation outliers migrated into the weights, then weights **and** input activations
  quantized (:mod:`.smoothquant`); ``alpha`` (0.5), ``act_spec`` (default: ``spec``, per-tensor);
- ``"adaround"`` - learned up / down rounding by layer-wise reconstruction (:mod:`.adaround`); ``iters`` (500),
  ``lr``, ``reg``, ``seed``;
- ``"bias_correction"`` - RTN, then each bias corrected by the mean output shift (:mod:`.bias_correction`);
- ``"cle"`` - cross-layer equalization of ReLU-joined layer pairs, then RTN (:mod:`.cle`);
  ``"cle+bias_correction"`` - both, as in the data-free quantization paper.

Which layers: Linear and plain Conv1d / Conv2d (:func:`.layers.target_layers`); embedding tables stay float for
every method, so methods are compared on the same layers. The model passed in is never changed: every method
works on ``copy.deepcopy`` copies. ``result.report`` has one row per layer: ``layer``, ``rel_error``
(:mod:`.reconstruction`, on the calibration inputs), ``seconds`` and method-specific columns.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import nn

from ..model import Inputs, activation_spec, call, quantize_model, quantize_weight_tensor
from ..spec import QuantSpec
from . import adaround, awq, bias_correction, cle, gptq, rtn, smoothquant
from .grid import nearest_spec
from .layers import capture_inputs, check_spec, set_weight_matrix, target_layers, weight_matrix
from .reconstruction import module_error

METHODS: tuple[str, ...] = (
    "rtn", "gptq", "awq", "smoothquant", "adaround", "bias_correction", "cle", "cle+bias_correction",
)
_OPTIONS: dict[str, set[str]] = {
    "rtn": {"act_spec"},
    "gptq": {"damp", "block_size", "act_order"},
    "awq": {"grid"},
    "smoothquant": {"alpha", "act_spec"},
    "adaround": {"iters", "lr", "reg", "seed"},
    "bias_correction": set(),
    "cle": {"threshold"},
    "cle+bias_correction": {"threshold"},
}

Progress = Callable[[int, int, str], None]


@dataclass
class PTQResult:
    """What :func:`apply` returns.

    Attributes:
        model: the quantized copy (fake-quantized weights; with activation quantization, wrapped layers).
        report: one row per layer - ``layer``, ``rel_error``, ``seconds`` and the method's own columns.
        method, spec: what was applied.
        seconds: wall time of the whole call.
        reference: the float model the errors are measured against: the input model, or its transformed
            (equalized / smoothed) float copy, which computes the same function.
        info: per-layer extras (SmoothQuant and AWQ scales, CLE pairs and rounds).
    """

    model: nn.Module
    report: pd.DataFrame
    method: str
    spec: QuantSpec
    seconds: float
    reference: nn.Module = field(repr=False)
    info: dict[str, Any] = field(default_factory=dict, repr=False)


def _check(model: nn.Module, method: str, spec: QuantSpec, layers: list[str] | None, options: dict) -> list[str]:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if not isinstance(spec, QuantSpec):
        raise TypeError(f"spec must be a QuantSpec, got {type(spec).__name__}")
    unknown = set(options) - _OPTIONS[method]
    if unknown:
        allowed = ", ".join(sorted(_OPTIONS[method])) or "none"
        raise TypeError(f"{method} takes no option {', '.join(sorted(unknown))} (its options: {allowed})")
    targets = target_layers(model)
    if layers is None:
        names = targets
    else:
        bad = [n for n in layers if n not in targets]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a Linear / Conv layer of this model; the layers are {targets}")
        names = [n for n in targets if n in set(layers)]
    if not names:
        raise ValueError("the model has no Linear or Conv layer to quantize")
    for n in names:
        check_spec(n, weight_matrix(model.get_submodule(n)), spec)
    return names


def apply(
    model: nn.Module,
    method: str,
    spec: QuantSpec,
    calibration_inputs: Inputs,
    *,
    layers: list[str] | None = None,
    forward: Callable[[nn.Module, Inputs], Any] = call,
    progress: Progress | None = None,
    **options: Any,
) -> PTQResult:
    """Quantize a copy of ``model`` with ``method`` at ``spec``, calibrated on ``calibration_inputs``.

    ``layers`` restricts the Linear / Conv layers quantized (default: all of them); ``forward(model, inputs)``
    runs the model; ``progress(done, total, message)`` is called as layers (and AdaRound's iterations) finish.
    """
    start = time.perf_counter()
    names = _check(model, method, spec, layers, options)
    report = progress or (lambda *_: None)
    # Progress counts layers, or AdaRound's iterations over all layers (the long part).
    units = max(int(options.get("iters", adaround.DEFAULT_ITERS)), 1) if method == "adaround" else 1
    rows: dict[str, dict[str, Any]] = {n: {"layer": n} for n in names}
    info: dict[str, Any] = {}
    reference = model
    pairs = [(n, n, n) for n in names]  # (report name, float module, quantized module)

    if method in ("rtn", "bias_correction", "cle", "cle+bias_correction"):
        base = model
        if method.startswith("cle"):
            base = copy.deepcopy(model).eval()
            found = cle.find_pairs(base)
            found = [p for p in found if p[0] in names and p[1] in names]
            if not found:
                raise ValueError(
                    "cross-layer equalization needs two Linear / Conv layers joined only by ReLU (or max-pool); "
                    "this model has none (GELU, LayerNorm and concatenations are not scale-equivariant)"
                )
            t0 = time.perf_counter()
            info["rounds"] = cle.equalize(base, found, options.get("threshold", cle.DEFAULT_THRESHOLD))
            info["pairs"] = found
            info["cle_seconds"] = time.perf_counter() - t0
            reference = base
        act = options.get("act_spec")
        if act is not None:
            t0 = time.perf_counter()
            out = rtn.quantize(base, names, spec, act, calibration_inputs, forward)
            for n in names:
                rows[n]["seconds"] = (time.perf_counter() - t0) / len(names)
        else:
            out = copy.deepcopy(base).eval()
            for i, n in enumerate(names):
                report(i, len(names), n)
                t0 = time.perf_counter()
                module = out.get_submodule(n)
                info_n = next(li for li in _layer_infos(out) if li.name == n)
                with torch.no_grad():
                    module.weight.copy_(quantize_weight_tensor(module.weight.detach(), spec, info_n))
                rows[n]["seconds"] = time.perf_counter() - t0
        if method.endswith("bias_correction"):
            t0 = time.perf_counter()
            out, shifts = bias_correction.correct_biases(out, base, names, calibration_inputs, forward)
            per = (time.perf_counter() - t0) / len(names)
            for n in names:
                rows[n]["bias_shift"] = shifts.get(n, float("nan"))
                rows[n]["seconds"] += per
        if method.startswith("cle"):
            for n in names:
                rows[n]["equalized"] = any(n in p for p in info["pairs"])
                rows[n]["seconds"] += info["cle_seconds"] / len(names)
    elif method == "smoothquant":
        alpha = float(options.get("alpha", smoothquant.DEFAULT_ALPHA))
        act = options.get("act_spec") or spec
        xs = capture_inputs(model, names, calibration_inputs, forward)
        smoothed = copy.deepcopy(model).eval()
        scales = {}
        for i, n in enumerate(names):
            report(i, len(names), n)
            t0 = time.perf_counter()
            module = smoothed.get_submodule(n)
            w2 = weight_matrix(module)
            kp = w2.shape[1] // _in_channels(module)
            s = smoothquant.smoothing_scales(
                smoothquant.input_channel_max(xs[n], kp), smoothquant.weight_input_max(w2, kp), alpha
            )
            set_weight_matrix(module, w2 * s.repeat_interleave(kp))
            wrapped = smoothquant.SmoothedInput(module, s)
            if n == "":
                smoothed = wrapped  # the model is itself the layer
            else:
                _replace(smoothed, n, wrapped)
            scales[n] = s
            rows[n]["seconds"] = time.perf_counter() - t0
            rows[n]["alpha"] = alpha
        inner = [f"{n}.layer" if n else "layer" for n in names]
        t0 = time.perf_counter()
        out = quantize_model(
            smoothed, nearest_spec(spec), activation_spec(act), calibration_inputs, layers=inner,
            forward=forward, quantize_outputs=False,
        )
        for n in names:
            rows[n]["seconds"] += (time.perf_counter() - t0) / len(names)
        info["scales"] = scales
        reference = smoothed
        pairs = [(n, i, i) for n, i in zip(names, inner, strict=True)]
    else:
        qspec = nearest_spec(spec)
        xs = capture_inputs(model, names, calibration_inputs, forward)
        out = copy.deepcopy(model).eval()
        iters = int(options.get("iters", adaround.DEFAULT_ITERS))
        for i, n in enumerate(names):
            report(i * units, len(names) * units, n)
            t0 = time.perf_counter()
            module = out.get_submodule(n)
            w2 = weight_matrix(module)
            if method == "gptq":
                h = xs[n].double().T @ xs[n].double()
                w_hat = gptq.gptq_matrix(
                    w2, h, qspec, damp=float(options.get("damp", gptq.DEFAULT_DAMP)),
                    block_size=int(options.get("block_size", gptq.DEFAULT_BLOCK)),
                    act_order=bool(options.get("act_order", False)),
                )
            elif method == "awq":
                kp = w2.shape[1] // _in_channels(module)
                w_hat, alpha, s = awq.awq_matrix(w2, xs[n], qspec, int(options.get("grid", awq.DEFAULT_GRID)), kp)
                rows[n]["alpha"] = alpha
                info.setdefault("scales", {})[n] = s
            else:

                def inner_progress(done: int, total: int, i: int = i, n: str = n) -> None:
                    report(i * units + done, len(names) * units, f"{n}: iteration {done}/{total}")

                w_hat, flipped = adaround.adaround_matrix(
                    w2, xs[n], qspec, iters=iters, lr=float(options.get("lr", adaround.DEFAULT_LR)),
                    reg=float(options.get("reg", adaround.DEFAULT_LAMBDA)), seed=int(options.get("seed", 0)),
                    progress=inner_progress,
                )
                rows[n]["flipped"] = flipped
            set_weight_matrix(module, w_hat)
            rows[n]["seconds"] = time.perf_counter() - t0

    ref_x = capture_inputs(reference, [p[1] for p in pairs], calibration_inputs, forward)
    for name, fname, qname in pairs:
        rows[name]["rel_error"] = module_error(ref_x[fname], reference.get_submodule(fname), out.get_submodule(qname))
    report(len(names) * units, len(names) * units, "done")
    table = pd.DataFrame(list(rows.values()))
    first = ["layer", "rel_error", "seconds"]
    table = table[first + [c for c in table.columns if c not in first]]
    return PTQResult(out.eval(), table, method, spec, time.perf_counter() - start, reference, info)


def _layer_infos(model: nn.Module):  # noqa: ANN202
    from ..model import list_layers

    return list_layers(model)


def _in_channels(module: nn.Module) -> int:
    return module.in_features if isinstance(module, nn.Linear) else module.in_channels


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


__all__ = ["METHODS", "PTQResult", "apply", "target_layers"]
