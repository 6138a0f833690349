"""Sensitivity sweeps and float-vs-int8 latency on the sample models, next to their goals.

    python benchmarks/bench_sensitivity.py [--skip-plain] [--speed-repeats 5] [--sections minilm small speed]

1. MiniLM, one layer at a time (its 37 Linear layers, int4 symmetric per-tensor weights), output drift on the
   evaluation set: goal <= 15 s. Also with the Spearman metric, and (unless --skip-plain) without activation
   reuse, to show what the reuse buys.
2. digits-mlp, digits-cnn, recsys: the same one-setting sweep, metric + drift, goal <= 2 s each; plus the
   full 5-width sweep (2, 3, 4, 6, 8 bits) for information.
3. Latency: MiniLM on its evaluation set and a single nn.Linear(1024, 1024) (batch 64), float vs dynamic int8.

Every figure is wall time on this machine as it is right now: the 1-minute load average is printed first,
because on a shared 2-core box a busy neighbour can make everything 2-4x slower. The MiniLM sweeps are also
given in "float forward equivalents" (sweep time / one float forward measured just before), which does not
depend on the load as long as it is steady, and with the process CPU time (both threads together).
Exact one-at-a-time probes cost about half a forward per layer: ~19 forwards for 37 layers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402
from torch import nn  # noqa: E402

import sample_models  # noqa: E402
from quantlib import QuantSpec  # noqa: E402
from quantlib.sensitivity import layer_sensitivity, sensitivity_sweep  # noqa: E402
from quantlib.speed import compare_float_vs_int8_dynamic, linear_micro_benchmark  # noqa: E402

SPEC = QuantSpec(bits=4)  # int4 symmetric per-tensor min-max: the setting that separates fragile layers best
MINILM_GOAL_S = 15.0
SMALL_GOAL_S = 2.0


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def verdict(seconds: float, goal: float) -> str:
    return f"{seconds:6.2f} s   goal <= {goal:g} s   {'OK' if seconds <= goal else 'OVER'}"


def forward_seconds(sm: Any) -> float:
    """Median of 3 float forward passes on the evaluation set: the unit the sweep cost is counted in."""
    return statistics.median(timed(lambda: sm.run(sm.model))[1] for _ in range(3))


def minilm_section(skip_plain: bool) -> None:
    print("\n== MiniLM: one layer at a time, 37 Linear layers,", SPEC.label(), "==")
    sm = sample_models.load("minilm")
    linears = [n for n, m in sm.model.named_modules() if isinstance(m, nn.Linear)]

    def report(label: str, fn: Callable[[], Any], goal: float | None) -> Any:
        # Forward time is measured next to each sweep, so "forward equivalents" stays meaningful when the
        # machine's load changes slowly; process CPU time is less sensitive to a busy neighbour than wall time.
        fwd = forward_seconds(sm)
        cpu = time.process_time()
        out, t = timed(fn)
        cpu = time.process_time() - cpu
        shown = verdict(t, goal) if goal is not None else f"{t:6.2f} s   (for comparison)"
        print(f"{label:<38} {shown}   cpu {cpu:5.1f} s   = {t / fwd:4.1f} float forwards of {fwd:.2f} s")
        return out

    report(
        "drift only (output SQNR):",
        lambda: layer_sensitivity(sm.model, SPEC, run=sm.run, layers=linears),
        MINILM_GOAL_S,
    )
    table = report(
        "drift + spearman (one forward each):",
        lambda: layer_sensitivity(sm.model, SPEC, sm.evaluate, sm.metric_name, run=sm.run, layers=linears),
        MINILM_GOAL_S,
    )
    if not skip_plain:
        report(
            "drift only, without activation reuse:",
            lambda: layer_sensitivity(sm.model, SPEC, run=sm.run, layers=linears, reuse_activations=False),
            None,
        )
    print("most fragile (spearman drop, output SQNR):")
    for _, row in table.head(8).iterrows():
        print(f"  {row['layer']:<45} drop {row['metric_drop']:.4f}   {row['output_sqnr_db']:6.2f} dB")
    last = table.iloc[-1]
    print(f"  ... least: {last['layer']} drop {last['metric_drop']:.4f}, {last['output_sqnr_db']} dB")


def small_section() -> None:
    print(f"\n== small models: one layer at a time, {SPEC.label()}, metric + drift ==")
    for name in ("digits-mlp", "digits-cnn", "recsys"):
        sm = sample_models.load(name)
        kw = dict(
            evaluate=sm.evaluate, metric_name=sm.metric_name, run=sm.run, higher_is_better=sm.higher_is_better
        )
        _, t_drift = timed(lambda sm=sm: layer_sensitivity(sm.model, SPEC, run=sm.run))
        table, t = timed(lambda sm=sm, kw=kw: layer_sensitivity(sm.model, SPEC, **kw))
        _, t_sweep = timed(lambda sm=sm, kw=kw: sensitivity_sweep(sm.model, SPEC, bits=(2, 3, 4, 6, 8), **kw))
        worst = table.iloc[0]
        print(
            f"{name:<11} {len(table)} layers  drift only {t_drift:5.2f} s   metric + drift {verdict(t, SMALL_GOAL_S)}"
            f"   5-width sweep {t_sweep:5.2f} s   most fragile: {worst['layer']} "
            f"({sm.metric_name} drop {worst['metric_drop']:.4f})"
        )


def speed_section(repeats: int) -> None:
    print("\n== latency: float vs dynamic int8 (real int8 kernels for nn.Linear) ==")
    sm = sample_models.load("minilm")
    report, t = timed(
        lambda: compare_float_vs_int8_dynamic(sm.model, sm.eval_inputs, warmup=2, repeats=repeats)
    )
    print(f"MiniLM, evaluation set ({sm.eval_inputs[0].shape[0]} sentences), measured in {t:.1f} s:")
    print("  " + report.summary().replace("\n", "\n  "))
    for threads in (None, 1):
        report = linear_micro_benchmark(threads=threads)
        print(f"nn.Linear(1024, 1024), batch 64, {report.threads} thread(s):")
        print("  " + report.summary().replace("\n", "\n  "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--skip-plain", action="store_true", help="skip the MiniLM run without activation reuse"
    )
    parser.add_argument(
        "--speed-repeats", type=int, default=5, help="timed MiniLM forward passes per variant"
    )
    parser.add_argument(
        "--sections", nargs="+", choices=("minilm", "small", "speed"), default=("minilm", "small", "speed")
    )
    args = parser.parse_args()
    load1, _, _ = os.getloadavg()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, load average {load1:.2f}"
    )
    _, t = timed(lambda: [sample_models.load(n) for n in ("minilm", "digits-mlp", "digits-cnn", "recsys")])
    print(f"(sample models loaded in {t:.1f} s, not counted below)")
    if "minilm" in args.sections:
        minilm_section(args.skip_plain)
    if "small" in args.sections:
        small_section()
    if "speed" in args.sections:
        speed_section(args.speed_repeats)


if __name__ == "__main__":
    main()
