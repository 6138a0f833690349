"""Benchmark: quantization-aware training on digits-cnn, 5 epochs. Goal: <= 10 s wall time on a 2-core CPU, with a
progress report at least once per epoch (what the QAT page draws from).

Prints, for each bit width, the wall time of one QAT run (prepare + train + convert), the per-epoch times, the
longest gap between two progress reports, and the float / PTQ / QAT metric.

    python benchmarks/bench_qat.py                      # digits-cnn, 2 / 4 / 8 bits, symmetric per-tensor
    python benchmarks/bench_qat.py --model digits-mlp --bits 2 3 4 8 --granularity channel
    python benchmarks/bench_qat.py --threads 1          # torch intra-op threads (default: torch's choice)

The first QAT run of a process also pays a one-off ~2 s: constructing the first torch.optim optimizer imports
torch._dynamo. It is reported separately ("cold start") and excluded from the per-run times.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import sample_models  # noqa: E402
from quantlib import QuantSpec  # noqa: E402
from quantlib.model import quantize_weights  # noqa: E402
from quantlib.qat import convert, prepare_qat, train_qat  # noqa: E402

GOAL_SECONDS = 10.0


def cold_start() -> float:
    """Time of the one-off import the first optimizer triggers (torch._dynamo)."""
    start = time.perf_counter()
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    return time.perf_counter() - start


def run(sm: sample_models.SampleModel, spec: QuantSpec, epochs: int) -> dict:
    start = time.perf_counter()
    qat_model = prepare_qat(sm.model, spec)
    reports = []
    for p in train_qat(
        qat_model, sm.train_inputs, sm.train_targets, sm.loss_fn, epochs=epochs,
        evaluate=sm.evaluate, metric_name=sm.metric_name,
    ):
        reports.append((time.perf_counter() - start, p))
    final = convert(qat_model)
    wall = time.perf_counter() - start
    times = [t for t, _ in reports]
    epoch_ends = [t for t, p in reports if p.epoch_end and p.epoch > 0]
    return {
        "wall": wall,
        "epochs": [b - a for a, b in zip([times[0], *epoch_ends], epoch_ends, strict=False)],
        "max_gap": max(b - a for a, b in zip([0.0, *times], [*times, wall], strict=False)),
        "reports": len(reports),
        "epoch_reports": sorted({p.epoch for _, p in reports if p.epoch_end and p.epoch > 0}),
        "ptq": sm.evaluate(quantize_weights(sm.model, spec))[sm.metric_name],
        "qat": sm.evaluate(final)[sm.metric_name],
        "curve": [p.eval_metric for _, p in reports],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="digits-cnn")
    parser.add_argument("--bits", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--scheme", default="symmetric", choices=["symmetric", "asymmetric"])
    parser.add_argument("--granularity", default="tensor", choices=["tensor", "channel"])
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    sm = sample_models.load(args.model)
    float_metric = sm.float_metrics[sm.metric_name]
    print(
        f"{args.model}: QAT {args.epochs} epochs, {len(sm.train_targets)} training examples, batch 64, Adam 1e-3; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"cold start (first optimizer imports torch._dynamo): {cold_start():.2f} s")
    print(f"float {sm.metric_name}: {float_metric:.4f}")
    ok = True
    walls = []
    for bits in args.bits:
        spec = QuantSpec(bits=bits, scheme=args.scheme, granularity=args.granularity)
        r = run(sm, spec, args.epochs)
        walls.append(r["wall"])
        every_epoch = r["epoch_reports"] == list(range(1, args.epochs + 1))
        ok &= every_epoch and r["wall"] <= GOAL_SECONDS
        print(
            f"{spec.label():28s} wall {r['wall']:5.2f} s | per epoch "
            + " ".join(f"{t:.2f}" for t in r["epochs"])
            + f" s | longest wait for progress {r['max_gap']:.2f} s | {r['reports']} reports"
            + f" | float {float_metric:.4f}  PTQ {r['ptq']:.4f}  QAT {r['qat']:.4f}  (QAT - PTQ {r['qat'] - r['ptq']:+.4f})"
        )
        print("    eval curve: " + " ".join(f"{v:.3f}" for v in r["curve"]))
    print(
        f"median wall {statistics.median(walls):.2f} s, max {max(walls):.2f} s (goal <= {GOAL_SECONDS:.0f} s, "
        f"progress every epoch): {'OK' if ok else 'MISSED'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
