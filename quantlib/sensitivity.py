"""Which layers are fragile? Quantize one layer at a time and measure what it costs.

Two probes, both against the float model:

- ``mode="only"``: quantize **only** layer ``l`` (all others float). Its ``metric_drop`` is the damage that layer
  alone does: the most fragile layers come first.
- ``mode="all_but"``: quantize **every** chosen layer **except** ``l``. Its ``metric_drop`` is what is left when
  only ``l`` stays float, so the layer with the smallest drop is the single best layer to keep in float.
  ``recovered_drop = drop(all quantized) - drop(all but l)`` says how much keeping ``l`` float buys back.

Per layer::

    metric_drop    = metric(float) - metric(probe)      if higher is better, else metric(probe) - metric(float)
                     (positive = worse)
    output_sqnr_db = 10 · log10(Σ y² / Σ (ŷ - y)²)      y = float outputs, ŷ = probe outputs (``run``)

Tiny example (one layer with a huge outlier weight, so a per-tensor scale wipes out its other weights):

    >>> import torch
    >>> from torch import nn
    >>> from quantlib import QuantSpec
    >>> torch.manual_seed(0) and None
    >>> net = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2)).eval()
    >>> with torch.no_grad():
    ...     net[0].weight[0, 0] = 100.0  # sets the per-tensor scale: the other weights round to 0 at 4 bits
    ...     net[2].weight[:, 0] = 0.0    # and the unit it feeds is not used downstream
    >>> x = torch.randn(64, 8)
    >>> table = layer_sensitivity(net, QuantSpec(bits=4), run=lambda m: m(x))
    >>> table["layer"].tolist()  # sorted most fragile first (lowest output SQNR here: no metric was given)
    ['0', '2']

Speed: every probe works on ONE private copy of the model (``copy.deepcopy`` once, then one layer's weight is
swapped in and restored), and, with ``reuse_activations=True``, sub-modules whose weights are untouched and whose
inputs equal those of the recorded base pass return their recorded outputs instead of recomputing: quantizing
layer ``l`` only re-runs what comes after ``l``. The shared input model is never modified.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from . import metrics
from .evaluate import metric_value
from .model import LayerInfo, list_layers, quantize_weight_tensor
from .spec import QuantSpec

#: ``evaluate(model)`` returns a ``{name: value}`` mapping (pick one with ``metric_name``) or one number.
Evaluate = Callable[[nn.Module], Mapping[str, float] | float]
#: ``run(model)`` returns the model's outputs on a fixed set of inputs (compared with the float outputs).
Run = Callable[[nn.Module], torch.Tensor]
#: ``progress(done, total, message)``, called after each probe.
Progress = Callable[[int, int, str], None]

MODES = ("only", "all_but")
DEFAULT_SWEEP_BITS = (2, 3, 4, 6, 8)
#: Default memory budget for recorded activations (see ``reuse_activations``).
DEFAULT_CACHE_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class LayerSensitivity:
    """One probe: layer ``layer`` at ``bits`` in ``mode`` (``"only"`` or ``"all_but"``).

    ``metric`` is the probed model's task metric (NaN without ``evaluate``), ``metric_drop`` its loss against
    the float model (positive = worse), ``output_sqnr_db`` the SQNR of its outputs against the float outputs
    (NaN without ``run``; ``inf`` when the outputs did not change at all).
    """

    layer: str
    kind: str
    numel: int
    bits: int
    mode: str
    float_metric: float
    metric: float
    metric_drop: float
    output_sqnr_db: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------------------------------------
# Helpers


def metric_drop(float_metric: float, metric: float, higher_is_better: bool) -> float:
    """How much worse ``metric`` is than ``float_metric``: positive = worse, whichever direction is better."""
    return float_metric - metric if higher_is_better else metric - float_metric


def output_sqnr_db(reference: torch.Tensor, output: torch.Tensor) -> float:
    """``10 · log10(Σ ref² / Σ (out - ref)²)`` in float64; ``-inf`` if ``output`` is not finite (overflow)."""
    ref = torch.as_tensor(reference).detach().reshape(-1).to(torch.float64)
    out = torch.as_tensor(output).detach().reshape(-1).to(torch.float64)
    if ref.numel() != out.numel():
        raise ValueError(f"outputs differ in size: {ref.numel()} vs {out.numel()} values")
    if not bool(torch.isfinite(out).all()):
        return -math.inf
    diff = out - ref
    return metrics.sqnr_from_sums(float(torch.dot(ref, ref)), float(torch.dot(diff, diff)))


def _as_tensor_output(out: Any) -> torch.Tensor:
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"run(model) must return a torch.Tensor, got {type(out).__name__}")
    return out.detach()


def resolve_layers(model: nn.Module, layers: Iterable[str] | None) -> list[LayerInfo]:
    """The :class:`~quantlib.model.LayerInfo` of ``layers`` (all quantizable layers when None), in module order."""
    infos = list_layers(model)
    if not infos:
        raise ValueError("the model has no quantizable layer (Linear, Conv, Embedding)")
    if layers is None:
        return infos
    wanted = list(layers)
    by_name = {i.name: i for i in infos}
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        raise ValueError(
            f"no quantizable layer named {', '.join(map(repr, unknown))}; the model has {list(by_name)}"
        )
    if not wanted:
        raise ValueError("layers is empty: give at least one layer name (or None for all)")
    chosen = set(wanted)
    return [i for i in infos if i.name in chosen]


def _ancestors(name: str) -> list[str]:
    """``"a.b.c"`` -> ``["", "a", "a.b"]``: the enclosing modules of a module, root first."""
    parts = name.split(".") if name else []
    return [".".join(parts[:i]) for i in range(len(parts))]


# ----------------------------------------------------------------------------------------------------------
# Activation reuse: skip sub-modules whose weights and inputs are those of a recorded pass.

_MISS = object()
_NUMPY_DTYPES = (
    torch.float32,
    torch.float64,
    torch.float16,
    torch.int64,
    torch.int32,
    torch.int16,
    torch.int8,
    torch.uint8,
    torch.bool,
)


def _tensors(obj: Any) -> Iterable[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for o in obj:
            yield from _tensors(o)
    elif isinstance(obj, Mapping):
        for o in obj.values():
            yield from _tensors(o)


def _plain(obj: Any) -> bool:
    """Outputs we may hand out again: tensors and tuples of them (a dict or ModelOutput could be mutated)."""
    if obj is None or isinstance(obj, (torch.Tensor, bool, int, float, str)):
        return True
    return isinstance(obj, tuple) and all(_plain(o) for o in obj)


def _tensor_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype or a.device != b.device:
        return False
    if a.data_ptr() == b.data_ptr() and a.stride() == b.stride():
        return True  # the same memory seen through the same layout
    if a.device.type == "cpu" and a.dtype in _NUMPY_DTYPES:
        # numpy compares on one thread: torch.equal fans out to the intra-op pool, whose wake-up costs
        # milliseconds per call on a busy machine - more than the comparison itself.
        try:
            return bool(np.array_equal(a.detach().numpy(), b.detach().numpy()))
        except (RuntimeError, TypeError):  # e.g. a lazily conjugated view: let torch compare it
            pass
    return bool(torch.equal(a, b))


def _same(a: Any, b: Any) -> bool:
    """Exact equality of call arguments: tensors by value, containers recursively, plain scalars by ``==``,
    any other object only by identity."""
    if a is b:
        return True
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and _tensor_equal(a, b)
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (bool, int, float, str, type(None))) and isinstance(
        b, (bool, int, float, str, type(None))
    ):
        return type(a) is type(b) and a == b
    return False  # unknown objects only match themselves (checked above)


@dataclass
class _Entry:
    args: tuple
    kwargs: dict
    output: Any
    versions: list[tuple[torch.Tensor, int]]

    def intact(self) -> bool:
        # An in-place op on a recorded tensor (e.g. ``x += residual``, ``ReLU(inplace=True)``) bumps its
        # version counter: the recorded value is then stale and must not be handed out again.
        return all(t._version == v for t, v in self.versions)


def _entry(args: tuple, kwargs: dict, output: Any) -> _Entry | None:
    """A record of one call, or None if a tensor has no version counter (made under ``torch.inference_mode``):
    then an in-place change could not be detected, so the call is not recorded."""
    seen = {}
    try:
        for t in (*_tensors(args), *_tensors(kwargs), *_tensors(output)):
            seen[id(t)] = (t, t._version)
    except RuntimeError:
        return None
    return _Entry(args, kwargs, output, list(seen.values()))


class _ActivationReuse:
    """Wraps the ``forward`` of the enclosing modules of the probed layers on a PRIVATE model copy.

    While ``recording``, each wrapped module's calls (inputs and output) are kept, up to ``budget_bytes`` of
    outputs. Afterwards a wrapped module that is not ``dirty`` (none of its weights differ from the recorded
    state) and is called with inputs equal to a recorded call returns the recorded output: same weights, same
    inputs, same (deterministic, eval-mode) computation. The root also remembers its last call in the current
    state, so ``evaluate(model)`` and ``run(model)`` on the same inputs cost one forward pass.
    """

    def __init__(self, work: nn.Module, layers: Sequence[str], budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self.used_bytes = 0
        self.recording = False
        self.entries: dict[str, list[_Entry]] = {}
        self.dirty: set[str] = set()
        self.last_root: _Entry | None = None
        self.hits = 0
        self._wrapped: list[nn.Module] = []
        # Which modules hold each layer's weight: a tied weight (embedding = decoder) makes both owners dirty.
        owners: dict[int, list[str]] = {}
        for mname, module in work.named_modules(remove_duplicate=False):
            for p in module.parameters(recurse=False):
                owners.setdefault(id(p), []).append(mname)
        self._dirty_of: dict[str, set[str]] = {}
        for name in layers:
            weight = work.get_submodule(name).weight
            names: set[str] = set()
            for owner in owners.get(id(weight), [name]):
                names.add(owner)
                names.update(_ancestors(owner))
            self._dirty_of[name] = names
        ancestors = set().union(*self._dirty_of.values()) if layers else set()
        # Also the non-leaf children of those ancestors (e.g. a transformer's embeddings block when only its
        # Linear layers are probed): never dirty, so their outputs come back as the very same tensors and the
        # modules after them compare inputs by identity instead of by value.
        children = {
            f"{a}.{c}" if a else c
            for a in ancestors
            for c, child in work.get_submodule(a).named_children()
            if next(child.children(), None) is not None
        }
        candidates = (ancestors | children) - set(layers)
        for mname in sorted(candidates):
            module = work.get_submodule(mname)
            # Containers without a forward (ModuleList, ModuleDict) are never called; scripted modules can't
            # be wrapped.
            if type(module).forward is nn.Module.forward or isinstance(module, torch.jit.ScriptModule):
                continue
            module.forward = self._wrap(mname, module)  # instance attribute shadows the class method
            self._wrapped.append(module)

    def _wrap(self, name: str, module: nn.Module) -> Callable[..., Any]:
        forward = module.forward

        @functools.wraps(forward)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if module.training:  # dropout & co.: outputs are random, nothing may be reused or recorded
                return forward(*args, **kwargs)
            if name not in self.dirty and not self.recording:
                hit = self._lookup(self.entries.get(name, []), args, kwargs)
                if hit is not _MISS:
                    self.hits += 1
                    return hit
            if name == "" and self.last_root is not None:
                hit = self._lookup([self.last_root], args, kwargs)
                if hit is not _MISS:
                    self.hits += 1
                    return hit
            out = forward(*args, **kwargs)
            if self.recording and _plain(out):
                size = sum(t.numel() * t.element_size() for t in _tensors(out))
                entry = _entry(args, kwargs, out) if self.used_bytes + size <= self.budget_bytes else None
                if entry is not None:
                    self.used_bytes += size
                    self.entries.setdefault(name, []).append(entry)
            if name == "" and _plain(out):
                self.last_root = _entry(args, kwargs, out)
            return out

        return wrapper

    @staticmethod
    def _lookup(entries: list[_Entry], args: tuple, kwargs: dict) -> Any:
        for e in entries:
            if e.intact() and _same(e.args, args) and _same(e.kwargs, kwargs):
                return e.output
        return _MISS

    def reset(self) -> None:
        """Forget everything (the base state is about to change)."""
        self.entries.clear()
        self.used_bytes = 0
        self.dirty = set()
        self.last_root = None

    def changed(self, layers: Iterable[str]) -> None:
        """The weights of ``layers`` now differ from the recorded base state; the current state changed."""
        self.dirty = set().union(*(self._dirty_of[n] for n in layers)) if layers else set()
        self.last_root = None

    def remove(self) -> None:
        for module in self._wrapped:
            del module.forward
        self._wrapped.clear()
        self.reset()


class _Workbench:
    """One private float copy of the model whose layers are quantized and restored in place, one at a time."""

    def __init__(
        self, model: nn.Module, infos: Sequence[LayerInfo], reuse_activations: bool, cache_bytes: int
    ) -> None:
        self.work = copy.deepcopy(model).eval()
        self.infos = {i.name: i for i in infos}
        # Read-only references to the input model's float weights: the source every restore copies from.
        self.float_weights = {i.name: model.get_submodule(i.name).weight.detach() for i in infos}
        self.state: dict[str, QuantSpec] = {}
        self.base: dict[str, QuantSpec] = {}
        self.reuse = _ActivationReuse(self.work, list(self.infos), cache_bytes) if reuse_activations else None

    def apply(self, state: Mapping[str, QuantSpec]) -> None:
        """Make the copy's weights match ``state`` ({layer: spec}; layers not in it are float)."""
        with torch.no_grad():
            for name in set(self.state) | set(state):
                want, have = state.get(name), self.state.get(name)
                if want == have:
                    continue
                w = self.work.get_submodule(name).weight
                src = self.float_weights[name]
                w.copy_(
                    src if want is None else quantize_weight_tensor(src, want, self.infos[name]).to(w.dtype)
                )
        self.state = dict(state)
        if self.reuse is not None:
            self.reuse.changed(
                [n for n in set(self.state) | set(self.base) if self.state.get(n) != self.base.get(n)]
            )

    def record_base(self, state: Mapping[str, QuantSpec]) -> None:
        """Switch to ``state`` and make it the state whose activations are recorded (call ``recording()``)."""
        if self.reuse is not None:
            self.reuse.reset()
        self.base = dict(state)
        self.apply(state)

    def recording(self, on: bool) -> None:
        if self.reuse is not None:
            self.reuse.recording = on

    def close(self) -> None:
        if self.reuse is not None:
            self.reuse.remove()


@dataclass
class _Measure:
    metric: float
    sqnr_db: float


class _Prober:
    """Measures ``evaluate`` / ``run`` of the workbench in a given state against the float reference."""

    def __init__(
        self,
        bench: _Workbench,
        evaluate: Evaluate | None,
        run: Run | None,
        metric_name: str | None,
    ) -> None:
        if evaluate is None and run is None:
            raise ValueError("give evaluate (task metric), run (outputs for SQNR), or both")
        self.bench, self.evaluate, self.run, self.metric_name = bench, evaluate, run, metric_name
        bench.record_base({})
        self.float_metric, self.reference = self._measure_raw(record=True)

    def _measure_raw(self, record: bool = False) -> tuple[float, torch.Tensor | None]:
        self.bench.recording(record)
        try:
            with torch.no_grad():
                metric = (
                    metric_value(self.evaluate(self.bench.work), self.metric_name)
                    if self.evaluate is not None
                    else math.nan
                )
                out = _as_tensor_output(self.run(self.bench.work)).clone() if self.run is not None else None
        finally:
            self.bench.recording(False)
        return metric, out

    def measure(self, state: Mapping[str, QuantSpec], record: bool = False) -> _Measure:
        if record:
            self.bench.record_base(state)
        else:
            self.bench.apply(state)
        metric, out = self._measure_raw(record)
        sqnr = output_sqnr_db(self.reference, out) if out is not None else math.nan
        return _Measure(metric, sqnr)


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be 'only' or 'all_but', got {mode!r}")


def _probe_bits(
    prober: _Prober,
    infos: Sequence[LayerInfo],
    spec: QuantSpec,
    mode: str,
    higher_is_better: bool,
    progress: Progress | None,
    done: int,
    total: int,
) -> list[dict[str, Any]]:
    rows = []
    everything = {i.name: spec for i in infos}
    baseline = None
    if mode == "all_but":
        # Every probe differs from "all quantized" in one layer: record that state and reuse its activations.
        baseline = prober.measure(everything, record=True)
    for info in infos:
        if mode == "only":
            state = {info.name: spec}
        else:
            state = {n: s for n, s in everything.items() if n != info.name}
        m = prober.measure(state)
        row = LayerSensitivity(
            layer=info.name,
            kind=info.kind,
            numel=info.numel,
            bits=spec.bits,
            mode=mode,
            float_metric=prober.float_metric,
            metric=m.metric,
            metric_drop=metric_drop(prober.float_metric, m.metric, higher_is_better),
            output_sqnr_db=m.sqnr_db,
        ).as_dict()
        if baseline is not None:
            row["recovered_drop"] = (
                metric_drop(prober.float_metric, baseline.metric, higher_is_better) - row["metric_drop"]
            )
            row["sqnr_gain_db"] = m.sqnr_db - baseline.sqnr_db
        rows.append(row)
        done += 1
        if progress is not None:
            progress(done, total, f"{spec.label()}: {info.name} ({mode})")
    return rows


def _sort(df: pd.DataFrame, mode: str, by_bits: bool = False) -> pd.DataFrame:
    # "only": largest drop first (NaN = a broken metric counts as most fragile), then lowest SQNR.
    # "all_but": smallest drop first = the layer whose float copy helps most, then highest SQNR.
    asc = mode == "all_but"
    keys, ascending = ["metric_drop", "output_sqnr_db"], [asc, not asc]
    if by_bits:
        keys, ascending = ["bits", *keys], [True, *ascending]
    df = df.sort_values(keys, ascending=ascending, na_position="last" if asc else "first", kind="stable")
    return df.reset_index(drop=True)


def _columns(mode: str) -> list[str]:
    cols = list(LayerSensitivity.__dataclass_fields__)
    return cols + (["recovered_drop", "sqnr_gain_db"] if mode == "all_but" else [])


def layer_sensitivity(
    model: nn.Module,
    spec: QuantSpec,
    evaluate: Evaluate | None = None,
    metric_name: str | None = None,
    run: Run | None = None,
    layers: Iterable[str] | None = None,
    mode: str = "only",
    higher_is_better: bool = True,
    progress: Progress | None = None,
    reuse_activations: bool = True,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
) -> pd.DataFrame:
    """Weight-quantize each layer alone (``mode="only"``) or all but it (``"all_but"``) at ``spec``; measure.

    Args:
        model: the float model (never modified; one private copy is made).
        spec: how each probed layer's weight is quantized (per-channel follows each layer's channel axis).
        evaluate: ``evaluate(model) -> {name: value}`` or a number: the task metric. ``metric_name`` picks the
            primary one from a mapping. Without it, ``metric`` / ``metric_drop`` are NaN.
        run: ``run(model) -> Tensor``, the outputs on fixed inputs, for ``output_sqnr_db``. Without it, NaN.
        layers: layer names to probe (default: every quantizable layer). In ``"all_but"`` mode "all" means these.
        higher_is_better: direction of the metric; ``metric_drop`` is positive when the probe is worse.
        progress: ``progress(done, total, message)``, called once after each layer.
        reuse_activations: recompute only what a quantized layer changes (see the module docstring). Assumes a
            module's output depends only on its inputs and weights in eval mode (no randomness, no hidden state
            outside its parameters); set False for a model where that is not so.
        cache_bytes: at most this many bytes of recorded activations are kept for that reuse.

    Returns:
        One row per layer with columns ``layer, kind, numel, bits, mode, float_metric, metric, metric_drop,
        output_sqnr_db`` (plus ``recovered_drop, sqnr_gain_db`` against "all quantized" in ``"all_but"`` mode),
        most fragile first for ``"only"`` (largest ``metric_drop``, then lowest SQNR) and the best layer to
        keep in float first for ``"all_but"`` (smallest ``metric_drop``, then highest SQNR).
    """
    _check_mode(mode)
    if not isinstance(spec, QuantSpec):
        raise TypeError(f"spec must be a QuantSpec, got {type(spec).__name__}")
    infos = resolve_layers(model, layers)
    bench = _Workbench(model, infos, reuse_activations, cache_bytes)
    try:
        prober = _Prober(bench, evaluate, run, metric_name)
        rows = _probe_bits(prober, infos, spec, mode, higher_is_better, progress, 0, len(infos))
    finally:
        bench.close()
    return _sort(pd.DataFrame(rows, columns=_columns(mode)), mode)


def sensitivity_sweep(
    model: nn.Module,
    spec: QuantSpec,
    bits: Sequence[int] = DEFAULT_SWEEP_BITS,
    evaluate: Evaluate | None = None,
    metric_name: str | None = None,
    run: Run | None = None,
    layers: Iterable[str] | None = None,
    mode: str = "only",
    higher_is_better: bool = True,
    progress: Progress | None = None,
    reuse_activations: bool = True,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
) -> pd.DataFrame:
    """:func:`layer_sensitivity` at each bit width in ``bits`` (``spec`` with ``bits`` replaced): a long table.

    One row per (layer, bits), same columns as :func:`layer_sensitivity`, sorted by ``bits`` then fragility.
    ``progress(done, total, message)`` counts every probe: ``total = len(layers) · len(bits)``. The float
    reference runs once for the whole sweep. :func:`sensitivity_matrix` turns it into a layers × bits table.

        >>> import torch
        >>> from torch import nn
        >>> from quantlib import QuantSpec
        >>> net, x = nn.Linear(4, 2).eval(), torch.randn(8, 4)
        >>> t = sensitivity_sweep(net, QuantSpec(), bits=(4, 8), run=lambda m: m(x))
        >>> t[["layer", "bits"]].values.tolist()
        [['', 4], ['', 8]]
    """
    _check_mode(mode)
    if not spec.is_integer_grid:
        raise ValueError(f"a bit-width sweep needs an integer format ('int' or 'pow2'), not {spec.format!r}")
    bit_list = sorted(set(int(b) for b in bits))
    if not bit_list:
        raise ValueError("bits is empty: give at least one bit width")
    specs = [spec.replace(bits=b) for b in bit_list]  # validates every width before any work
    infos = resolve_layers(model, layers)
    total = len(infos) * len(specs)
    bench = _Workbench(model, infos, reuse_activations, cache_bytes)
    rows: list[dict[str, Any]] = []
    try:
        prober = _Prober(bench, evaluate, run, metric_name)
        for s in specs:
            rows += _probe_bits(prober, infos, s, mode, higher_is_better, progress, len(rows), total)
    finally:
        bench.close()
    return _sort(pd.DataFrame(rows, columns=_columns(mode)), mode, by_bits=True)


def sensitivity_matrix(sweep: pd.DataFrame, value: str = "metric_drop") -> pd.DataFrame:
    """The long sweep table as a layers × bits table of ``value`` (rows in the sweep's first-seen layer order
    of the lowest bit width, i.e. most fragile first; columns ascending bits).

        >>> t = pd.DataFrame({"layer": ["a", "b", "a", "b"], "bits": [2, 2, 4, 4], "metric_drop": [0.5, 0.1, 0.2, 0.0]})
        >>> sensitivity_matrix(t).values.tolist()
        [[0.5, 0.2], [0.1, 0.0]]
    """
    if value not in sweep.columns:
        raise ValueError(f"no column {value!r} in the sweep table; it has {list(sweep.columns)}")
    order = list(dict.fromkeys(sweep.sort_values("bits", kind="stable")["layer"]))
    wide = sweep.pivot_table(index="layer", columns="bits", values=value, aggfunc="first", dropna=False)
    return wide.reindex(order)
