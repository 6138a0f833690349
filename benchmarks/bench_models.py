"""Load and evaluation times of the sample models, next to their goals.

    python benchmarks/bench_models.py [--repeats 5] [--only minilm ...]

Cold load is measured in a fresh Python process per model (honest: nothing cached, imports included); the
process's ``import torch`` is reported separately because every model pays it once per server, not per load.
Evaluation time is the median of a few repeats of ``sm.evaluate(sm.model)`` in this process. The machine's
other load matters: on a busy 2-core box numbers can double, so compare runs on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import sample_models  # noqa: E402

# Goals in seconds (from the design brief).
LOAD_GOAL_S = {"minilm": 5.0}
LOAD_GOAL_DEFAULT_S = 0.5
EVAL_GOAL_S = {"digits-mlp": 0.05, "digits-cnn": 0.05, "minilm": 1.0}
QUANTIZE_MINILM_GOAL_S: float | None = None  # to be set when the quantize_weights timing below is adopted

_COLD_LOAD_SNIPPET = """
import json, sys, time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
import sample_models
sample_models.load(sys.argv[1])
t2 = time.perf_counter()
print(json.dumps({"import_torch": t1 - t0, "load": t2 - t1}))
"""


def cold_load_seconds(name: str) -> dict[str, float]:
    """``{"import_torch": s, "load": s}`` measured in a fresh interpreter (``load`` includes importing sample_models)."""
    result = subprocess.run(
        [sys.executable, "-c", _COLD_LOAD_SNIPPET, name],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``fn()`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def eval_seconds(name: str, repeats: int) -> float:
    """Median time of one ``evaluate`` of the float model (the model is loaded, and cached, first)."""
    sm = sample_models.load(name)
    return median_seconds(lambda: sm.evaluate(sm.model), repeats)


# ---------------------------------------------------------------------------------------------------------------
# HOOK: quantize_weights timing for all 37 MiniLM linear layers.
# Guarded so this script runs before/without quantlib.model; adjust the call here if its API changes.
# ---------------------------------------------------------------------------------------------------------------
def bench_minilm_quantize_weights(repeats: int) -> str:
    """Time ``quantlib.model.quantize_weights`` on every ``nn.Linear`` of MiniLM; a one-line report."""
    try:
        from quantlib import QuantSpec
        from quantlib.model import quantize_weights
    except ImportError as exc:
        return f"skipped: quantlib.model not importable yet ({exc})"
    from torch import nn

    sm = sample_models.load("minilm")
    linears = [name for name, module in sm.model.named_modules() if isinstance(module, nn.Linear)]
    spec = QuantSpec(bits=8, granularity="channel")
    try:
        seconds = median_seconds(lambda: quantize_weights(sm.model, spec, layers=linears), repeats)
        spearman = sm.evaluate(quantize_weights(sm.model, spec, layers=linears))["spearman"]
    except Exception as exc:  # an API still in flux must not break the rest of the report
        return f"failed: {type(exc).__name__}: {exc}"
    goal = "" if QUANTIZE_MINILM_GOAL_S is None else f" (goal ≤ {QUANTIZE_MINILM_GOAL_S:g} s)"
    return (
        f"{seconds * 1000:.0f} ms for {len(linears)} linears at int8 per-channel{goal}; "
        f"spearman vs float {spearman:.4f}"
    )


def _verdict(value: float, goal: float | None) -> str:
    if goal is None:
        return ""
    return "ok" if value <= goal else "OVER"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="evaluation repeats (median is reported)")
    parser.add_argument(
        "--only", nargs="*", choices=sample_models.names(), help="benchmark only these models"
    )
    args = parser.parse_args(argv)
    names = args.only or sample_models.names()
    # Other processes on a small machine distort every figure below (torch's threads wait on busy cores).
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores\n")

    header = (
        f"{'model':<12} {'torch import':>12} {'cold load':>10} {'goal':>7}      {'evaluate':>10} {'goal':>8}"
    )
    print(header)
    print("-" * len(header))
    for name in names:
        cold = cold_load_seconds(name)
        load_goal = LOAD_GOAL_S.get(name, LOAD_GOAL_DEFAULT_S)
        evaluate = eval_seconds(name, args.repeats)
        eval_goal = EVAL_GOAL_S.get(name)
        eval_goal_text = f"≤{eval_goal * 1000:.0f}ms" if eval_goal is not None else "-"
        print(
            f"{name:<12} {cold['import_torch']:>11.2f}s {cold['load']:>9.2f}s {'≤' + format(load_goal, 'g') + 's':>7} "
            f"{_verdict(cold['load'], load_goal):<4} {evaluate * 1000:>8.1f}ms {eval_goal_text:>8} "
            f"{_verdict(evaluate, eval_goal)}"
        )
    if "minilm" in names:
        print(f"\nMiniLM quantize_weights (all linears): {bench_minilm_quantize_weights(args.repeats)}")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
