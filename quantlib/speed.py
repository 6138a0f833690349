"""Real CPU latency: the float model vs a truly integer version, where PyTorch has integer kernels.

What is real and what is simulated:

- **float**: the model as is, fp32 eager PyTorch kernels.
- **int8 dynamic** (REAL integer kernels): ``torch.ao.quantization.quantize_dynamic`` on a private copy replaces
  each ``nn.Linear`` with a dynamically quantized one: int8 weights (per-tensor symmetric), activations
  quantized to uint8 per batch at run time, and an int8 GEMM (fbgemm / x86 / onednn engine). Other layers
  (Conv, Embedding, attention arithmetic, norms) stay float.
- **fake quant** (SIMULATED): what the rest of quantlib does - weights rounded to the grid but stored and
  multiplied in float32. The same float kernels run, so it is *not* faster (and only optionally measured).

Latency is the median wall time of ``repeats`` calls after ``warmup`` calls, with the number of intra-op threads
stated: on a shared machine a 2-thread median can jump by whole scheduler ticks (4 ms) while the other core is
busy, so the 10th percentile is reported too, and variants being compared take turns call by call.

    >>> t = measure_latency(lambda: sum(range(1000)), warmup=1, repeats=5)
    >>> t.median_ms > 0 and t.repeats == 5 and t.threads >= 1
    True
"""

from __future__ import annotations

import contextlib
import copy
import math
import re
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from . import metrics
from .model import Inputs, call, list_layers, quantize_weights
from .spec import QuantSpec

#: The two messages torch.ao emits on 2.x while it announces its move to torchao; silenced only around our calls.
_TORCH_AO_WARNINGS = (
    ("torch.ao.quantization is deprecated", DeprecationWarning),
    (
        "torch.quantize_per_tensor, torch.quantize_per_channel and other quantized tensor creation functions",
        UserWarning,
    ),
)

FLOAT_METHOD = "float: fp32 eager PyTorch kernels (real)"
INT8_METHOD = (
    "int8 dynamic: torch.ao quantize_dynamic - int8 weights (per-tensor symmetric), activations quantized per "
    "batch at run time, real int8 GEMM kernels ({engine} engine) for the {n} converted Linear layer(s); "
    "everything else stays float (real)"
)
FAKE_QUANT_METHOD = (
    "fake quant: weights rounded to the int8 grid but stored and multiplied in fp32 - the same float kernels, "
    "so no faster (simulated)"
)


@contextlib.contextmanager
def quiet_torch_ao() -> Iterator[None]:
    """Silence exactly the two torch.ao deprecation messages, inside this block only.

    (``warnings.catch_warnings`` swaps the process-wide filter list, so it is not thread-safe; it only ever
    hides these two messages.)
    """
    with warnings.catch_warnings():
        for message, category in _TORCH_AO_WARNINGS:
            warnings.filterwarnings("ignore", message=re.escape(message), category=category)
        yield


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[int]:
    """Temporarily use ``n`` intra-op threads (process-wide!), restoring the previous count."""
    before = torch.get_num_threads()
    if n is None:
        yield before
        return
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"threads must be a positive integer, got {n!r}")
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class Timing:
    """Latency of ``repeats`` calls (after ``warmup`` untimed ones), in milliseconds, with ``threads`` threads."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    min_ms: float
    repeats: int
    warmup: int
    threads: int

    def __str__(self) -> str:
        return (
            f"{self.median_ms:.3g} ms median (p10 {self.p10_ms:.3g}, p90 {self.p90_ms:.3g}) over {self.repeats} "
            f"runs after {self.warmup} warm-up, {self.threads} thread{'s' if self.threads != 1 else ''}"
        )


def _check_counts(warmup: int, repeats: int) -> None:
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be an integer >= 0, got {warmup!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an integer >= 1, got {repeats!r}")


def _timing(seconds: np.ndarray, warmup: int, threads: int) -> Timing:
    ms = seconds * 1e3
    return Timing(
        median_ms=float(np.median(ms)),
        p10_ms=float(np.percentile(ms, 10)),
        p90_ms=float(np.percentile(ms, 90)),
        min_ms=float(ms.min()),
        repeats=len(ms),
        warmup=warmup,
        threads=threads,
    )


def measure_interleaved(
    fns: Mapping[str, Callable[[], Any]], warmup: int = 3, repeats: int = 10, threads: int | None = None
) -> dict[str, Timing]:
    """Like :func:`measure_latency` for several functions at once, taking turns: round ``k`` times one call
    of each. A load spike from another process then hits every variant alike instead of one of them, which
    keeps their RATIO honest on a shared machine.
    """
    _check_counts(warmup, repeats)
    with _threads(threads) as n_threads:
        for _ in range(warmup):
            for fn in fns.values():
                fn()
        times = {name: np.empty(repeats) for name in fns}
        for k in range(repeats):
            for name, fn in fns.items():
                start = time.perf_counter()
                fn()
                times[name][k] = time.perf_counter() - start
    return {name: _timing(t, warmup, n_threads) for name, t in times.items()}


def measure_latency(
    fn: Callable[[], Any], warmup: int = 3, repeats: int = 10, threads: int | None = None
) -> Timing:
    """Call ``fn()`` ``warmup`` times untimed, then ``repeats`` times timed with ``time.perf_counter``.

    ``threads`` sets ``torch.set_num_threads`` for the measurement and restores it afterwards (a process-wide
    setting: other threads of the process are affected meanwhile); None keeps the current count, which is
    reported either way.
    """
    return measure_interleaved({"fn": fn}, warmup, repeats, threads)["fn"]


def dynamic_int8(model: nn.Module) -> tuple[nn.Module, list[str]]:
    """A dynamically quantized int8 COPY of ``model`` (its ``nn.Linear`` layers) and the converted layer names.

    ``model`` itself is never touched: ``quantize_dynamic`` runs in place on a ``copy.deepcopy``.
    """
    linear_names = [name for name, m in model.named_modules() if type(m) is nn.Linear]
    # quantize_dynamic swaps the children of the module it is given, never that module itself: a holder lets a
    # bare nn.Linear be converted too.
    holder = _Holder(copy.deepcopy(model).eval())
    with quiet_torch_ao():
        from torch.ao.quantization import quantize_dynamic  # imported here: the import itself warns

        quantize_dynamic(holder, {nn.Linear}, dtype=torch.qint8, inplace=True)
    work = holder.model
    converted = [
        name
        for name in linear_names
        if isinstance(work.get_submodule(name), torch.ao.nn.quantized.dynamic.Linear)
    ]
    return work, converted


class _Holder(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model


@dataclass(frozen=True)
class SpeedReport:
    """Float vs real-int8 latency of one model on the same inputs, and how far the int8 outputs moved.

    ``int8_timing`` and ``speedup`` (``float_timing.median_ms / int8_timing.median_ms``) are None when no layer
    could be converted (the model has no ``nn.Linear``). ``fake_quant_timing`` is the simulated model's latency,
    when asked for.
    Output errors compare int8 outputs ``ŷ`` with float outputs ``y``: ``max|ŷ - y|``,
    ``‖ŷ - y‖ / ‖y‖`` (``rel_output_error``) and the SQNR in dB.
    """

    float_timing: Timing
    int8_timing: Timing | None
    speedup: float | None
    layers_converted: tuple[str, ...]
    layers_not_converted: tuple[str, ...]
    max_abs_output_diff: float | None
    rel_output_error: float | None
    output_sqnr_db: float | None
    threads: int
    engine: str
    float_method: str = FLOAT_METHOD
    int8_method: str = ""
    fake_quant_timing: Timing | None = None
    fake_quant_method: str = FAKE_QUANT_METHOD

    def summary(self) -> str:
        """A few plain lines saying what was measured, how, and which figure is real or simulated."""
        lines = [f"{self.float_method}: {self.float_timing}"]
        if self.int8_timing is None:
            lines.append(
                "int8 dynamic: no nn.Linear layer to convert - PyTorch has no dynamic int8 kernel here"
            )
        else:
            lines.append(f"{self.int8_method}: {self.int8_timing}")
            lines.append(
                f"speed-up {self.speedup:.2f}x; int8 outputs vs float: max |diff| {self.max_abs_output_diff:.3g}, "
                f"relative error {self.rel_output_error:.3g}, SQNR {self.output_sqnr_db:.1f} dB"
            )
        if self.layers_not_converted:
            lines.append(f"left in float (no dynamic int8 kernel): {', '.join(self.layers_not_converted)}")
        if self.fake_quant_timing is not None:
            lines.append(f"{self.fake_quant_method}: {self.fake_quant_timing}")
        return "\n".join(lines)


def _output_errors(reference: torch.Tensor, other: torch.Tensor) -> tuple[float, float, float]:
    ref = reference.detach().to(torch.float64).reshape(-1)
    out = other.detach().to(torch.float64).reshape(-1)
    diff = out - ref
    norm = float(ref.norm())
    rel = float(diff.norm()) / norm if norm > 0 else (0.0 if float(diff.norm()) == 0 else math.inf)
    return float(diff.abs().max()), rel, metrics.sqnr_db(ref, out)


def compare_float_vs_int8_dynamic(
    model: nn.Module,
    inputs: Inputs,
    forward: Callable[[nn.Module, Inputs], torch.Tensor] = call,
    warmup: int = 3,
    repeats: int = 10,
    threads: int | None = None,
    include_fake_quant: bool = False,
) -> SpeedReport:
    """Time ``forward(model, inputs)`` for the float model and a dynamic-int8 copy (and optionally the
    simulated fake-quant int8 copy): same inputs, same thread count, calls interleaved (see
    :func:`measure_interleaved`) after the warm-up.

    ``model`` is never modified (each variant is a private copy) and stays a float model. ``threads``: see
    :func:`measure_latency`.

        >>> net = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 8)).eval()
        >>> r = compare_float_vs_int8_dynamic(net, torch.randn(32, 64), repeats=3)
        >>> r.layers_converted, r.rel_output_error < 0.05
        (('0', '2'), True)
    """
    float_model = copy.deepcopy(model).eval()
    int8_model, converted = dynamic_int8(model)
    not_converted = tuple(i.name for i in list_layers(model) if i.name not in set(converted))

    def run(m: nn.Module) -> torch.Tensor:
        with torch.no_grad():
            return forward(m, inputs)

    variants: dict[str, Callable[[], Any]] = {"float": lambda: run(float_model)}
    if converted:
        variants["int8"] = lambda: run(int8_model)
    if include_fake_quant:
        fake = quantize_weights(model, QuantSpec(bits=8))
        variants["fake_quant"] = lambda: run(fake)
    with _threads(threads) as n_threads, quiet_torch_ao():  # int8 kernels quantize through the deprecated API
        reference = run(float_model)
        int8_out = run(int8_model) if converted else None
        timings = measure_interleaved(variants, warmup, repeats)
    float_timing, int8_timing = timings["float"], timings.get("int8")
    speedup = max_diff = rel = sqnr = None
    if int8_timing is not None and int8_out is not None:
        speedup = float_timing.median_ms / int8_timing.median_ms
        max_diff, rel, sqnr = _output_errors(reference, int8_out)
    fake_timing = timings.get("fake_quant")
    return SpeedReport(
        float_timing=float_timing,
        int8_timing=int8_timing,
        speedup=speedup,
        layers_converted=tuple(converted),
        layers_not_converted=not_converted,
        max_abs_output_diff=max_diff,
        rel_output_error=rel,
        output_sqnr_db=sqnr,
        threads=n_threads,
        engine=torch.backends.quantized.engine,
        int8_method=INT8_METHOD.format(engine=torch.backends.quantized.engine, n=len(converted)),
        fake_quant_timing=fake_timing,
    )


def linear_micro_benchmark(
    in_features: int = 1024,
    out_features: int = 1024,
    batch: int = 64,
    warmup: int = 5,
    repeats: int = 30,
    threads: int | None = None,
    seed: int = 0,
) -> SpeedReport:
    """One ``nn.Linear(in_features, out_features)`` on a ``(batch, in_features)`` input: float vs dynamic int8.

    Weights and inputs come from a private seeded generator (the global RNG is not touched), so every call
    measures the same layer. Typical on a 2-core laptop-class CPU, 1 thread: int8 ≈ 4-6× faster at batch 64.
    """
    for name, v in (("in_features", in_features), ("out_features", out_features), ("batch", batch)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    gen = torch.Generator().manual_seed(seed)
    layer = nn.Linear(in_features, out_features, device="meta")
    bound = 1.0 / math.sqrt(in_features)  # nn.Linear's default init range
    state = {
        "weight": (torch.rand(out_features, in_features, generator=gen) * 2 - 1) * bound,
        "bias": (torch.rand(out_features, generator=gen) * 2 - 1) * bound,
    }
    layer.load_state_dict(state, assign=True)
    x = torch.randn(batch, in_features, generator=gen)
    return compare_float_vs_int8_dynamic(layer.eval(), x, warmup=warmup, repeats=repeats, threads=threads)
