"""The PTQ algorithms of quantlib.ptq on the sample models, next to their goals.

    python benchmarks/bench_ptq.py [--threads 1]

1. GPTQ on all 37 Linear layers of MiniLM (int4 per-channel, the authors' defaults): goal <= 30 s.
2. AWQ on the same layers (20-point α grid): goal <= 30 s.
3. AdaRound on digits-cnn (int3 per-tensor, 500 iterations per layer, as on the Algorithms page): goal <= 60 s.

Each also prints RTN's figures for the same settings (time, mean layer error, task metric), and the progress
callback's number of calls. Wall time on this machine as it is right now: the 1-minute load average is printed
first (a busy neighbour on a shared 2-core box can make everything 2-4x slower), and the process CPU time next
to the wall time. One torch thread by default, as the app's job worker runs them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

import sample_models  # noqa: E402
from quantlib import QuantSpec  # noqa: E402
from quantlib.ptq import apply  # noqa: E402

CASES = [
    ("GPTQ, MiniLM, 37 Linear layers, int4 per-channel", "minilm", "gptq", QuantSpec(bits=4, granularity="channel"),
     {}, 30.0),
    ("AWQ, MiniLM, 37 Linear layers, int4 per-channel", "minilm", "awq", QuantSpec(bits=4, granularity="channel"),
     {}, 30.0),
    ("AdaRound, digits-cnn, 3 layers x 500 iterations, int3 per-tensor", "digits-cnn", "adaround",
     QuantSpec(bits=3), {"iters": 500, "seed": 0}, 60.0),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (the job worker uses 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"load average (1 min): {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; torch threads: {args.threads}")
    for title, model, method, spec, options, goal in CASES:
        sm = sample_models.load(model)
        rtn_start = time.perf_counter()
        rtn = apply(sm.model, "rtn", spec, sm.calibration_inputs)
        rtn_s = time.perf_counter() - rtn_start
        calls = []
        cpu0, start = time.process_time(), time.perf_counter()
        res = apply(sm.model, method, spec, sm.calibration_inputs, progress=lambda *a, calls=calls: calls.append(a), **options)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
        metric = sm.metric_name
        verdict = "OK" if wall <= goal else "OVER"
        print(f"\n{title}")
        print(f"  {method}: {wall:6.1f} s wall, {cpu:6.1f} s CPU (goal <= {goal:.0f} s: {verdict}); "
              f"{len(res.report)} layers, {len(calls)} progress calls")
        print(f"  mean layer error  rtn {rtn.report['rel_error'].mean():.4g}  {method} {res.report['rel_error'].mean():.4g}")
        print(f"  {metric:<17} rtn {sm.evaluate(rtn.model)[metric]:.4f}  {method} {sm.evaluate(res.model)[metric]:.4f}"
              f"  (float {sm.float_metrics[metric]:.4f}; rtn took {rtn_s:.1f} s)")


if __name__ == "__main__":
    main()
