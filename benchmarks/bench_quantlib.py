"""quantlib's quantizer against PyTorch's reference kernels: speed, and a bit-exact check on every row.

    python benchmarks/bench_quantlib.py            # full table (1M and 10M values)
    python benchmarks/bench_quantlib.py --quick    # 1M only, fewer repeats

Every timing is the median of several repeats after a warm-up, interleaved (quantlib, torch, quantlib, ...) so a
noisy neighbour hits both sides alike. Columns:

- ``ql(qp)``: ``quantlib.fake_quant`` with precomputed qparams (what a slider move re-runs);
- ``ql+cal``: the same including min-max calibration (``choose_qparams``) and the input check;
- ``torch fq``: ``torch.fake_quantize_per_tensor_affine`` / ``_per_channel_affine`` with the same qparams;
- ``torch q/dq``: ``torch.quantize_per_tensor`` / ``quantize_per_channel`` then ``.dequantize()``;
- ``ratio``: ``ql(qp) / torch fq`` (goal <= 1.0);
- ``exact``: whether ``fake_quant`` equals ``torch fq`` bit for bit (``torch.equal``), and how many values
  ``torch q/dq`` differs in (quint8 ``quantize_per_tensor`` rounds ``x/s + z`` in one FMA: a few per million
  near-ties differ, see tests/test_quantlib_fake_quant_vs_torch.py).

Then ``error_curve`` for bits 2-16 on 1M values, both schemes (goal: <= 100 ms for the two curves together).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from quantlib import QuantSpec, choose_qparams, error_curve, fake_quant  # noqa: E402

RATIO_GOAL = 1.0
CURVE_GOAL_MS = 100.0
CHANNELS = 1000


def _median_ms(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall time (ms) of every function, calls interleaved, after two warm-up rounds."""
    for _ in range(2):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) * 1e3 for name, ts in times.items()}


def _row(numel: int, granularity: str, scheme: str, repeats: int) -> dict[str, object]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(CHANNELS, numel // CHANNELS, generator=g) * torch.logspace(-2, 1, CHANNELS)[:, None]
    if scheme == "asymmetric":
        x += 0.3
    spec = QuantSpec(bits=8, scheme=scheme, granularity=granularity)
    qp = choose_qparams(x, spec)
    qdtype = torch.qint8 if scheme == "symmetric" else torch.quint8
    if granularity == "tensor":
        s_f, z_i = float(qp.scale), int(qp.zero_point)

        def torch_fq():
            return torch.fake_quantize_per_tensor_affine(x, qp.scale, qp.zero_point, spec.qmin, spec.qmax)

        def torch_qdq():
            return torch.quantize_per_tensor(x, s_f, z_i, qdtype).dequantize()
    else:
        s1, z1 = qp.scale.reshape(-1), qp.zero_point.reshape(-1)
        s64, z64 = s1.double(), z1.long()

        def torch_fq():
            return torch.fake_quantize_per_channel_affine(x, s1, z1, 0, spec.qmin, spec.qmax)

        def torch_qdq():
            return torch.quantize_per_channel(x, s64, z64, 0, qdtype).dequantize()

    ms = _median_ms(
        {
            "ql": lambda: fake_quant(x, spec, qp),
            "ql_cal": lambda: fake_quant(x, spec),
            "torch_fq": torch_fq,
            "torch_qdq": torch_qdq,
        },
        repeats,
    )
    ours = fake_quant(x, spec, qp)
    return {
        "values": numel,
        "granularity": granularity,
        "scheme": scheme,
        **ms,
        "ratio": ms["ql"] / ms["torch_fq"],
        "exact_fq": torch.equal(ours, torch_fq()),
        "qdq_diff": int((ours != torch_qdq()).sum()),
    }


def _curve_ms(repeats: int) -> dict[str, float]:
    x = torch.randn(1_000_000, generator=torch.Generator().manual_seed(1))
    fns = {scheme: (lambda s=scheme: error_curve(x, QuantSpec(scheme=s), bits=range(2, 17))) for scheme in
           ("symmetric", "asymmetric")}
    return _median_ms(fns, repeats)


def _table(sizes: list[int], quick: bool) -> tuple[float, bool, float]:
    header = (
        f"{'values':>10} {'gran':>7} {'scheme':>10} | {'ql(qp)':>8} {'ql+cal':>8} {'torch fq':>9} "
        f"{'torch q/dq':>10} | {'ratio':>6} {'goal':>9} | {'exact vs fq':>11} {'q/dq differ':>11}"
    )
    print(header)
    print("-" * len(header))
    worst = 0.0
    all_exact = True
    for numel in sizes:
        repeats = (7 if quick else 15) if numel <= 1_000_000 else 5
        for granularity in ("tensor", "channel"):
            for scheme in ("symmetric", "asymmetric"):
                r = _row(numel, granularity, scheme, repeats)
                worst = max(worst, r["ratio"])
                all_exact &= bool(r["exact_fq"])
                ok = "ok" if r["ratio"] <= RATIO_GOAL else "MISS"
                print(
                    f"{r['values']:>10,} {r['granularity']:>7} {r['scheme']:>10} | {r['ql']:8.2f} "
                    f"{r['ql_cal']:8.2f} {r['torch_fq']:9.2f} {r['torch_qdq']:10.2f} | {r['ratio']:6.2f} "
                    f"{'<=' + str(RATIO_GOAL):>4} {ok:>4} | {('yes' if r['exact_fq'] else 'NO'):>11} "
                    f"{r['qdq_diff']:>11,}"
                )
    curve = _curve_ms(3 if quick else 7)
    total = sum(curve.values())
    print("\nerror_curve, bits 2-16, 1,000,000 values (min-max, per-tensor):")
    for scheme, t in curve.items():
        print(f"  {scheme:>10}: {t:8.1f} ms")
    print(f"  {'total':>10}: {total:8.1f} ms   goal <= {CURVE_GOAL_MS:.0f} ms: {'ok' if total <= CURVE_GOAL_MS else 'MISS'}")
    return worst, all_exact, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1M values only, fewer repeats")
    parser.add_argument(
        "--threads",
        type=int,
        nargs="*",
        default=None,
        help="intra-op thread counts to run the table with (default: torch's default, then 1)",
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="torch.quantize_per_tensor")
    warnings.filterwarnings("ignore", category=DeprecationWarning)

    default_threads = torch.get_num_threads()
    thread_counts = args.threads or list(dict.fromkeys([default_threads, 1]))
    sizes = [1_000_000] if args.quick else [1_000_000, 10_000_000]
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(
        f"torch {torch.__version__} | {platform.processor() or platform.machine()} | cores: {os.cpu_count()} | "
        f"default intra-op threads: {default_threads} | load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print(f"8-bit, {CHANNELS} channels for per-channel; median ms of interleaved repeats after warm-up")
    summary = []
    for threads in thread_counts:
        torch.set_num_threads(threads)
        print(f"\n=== intra-op threads: {torch.get_num_threads()} ===\n")
        summary.append((threads, *_table(sizes, args.quick)))
    torch.set_num_threads(default_threads)
    print()
    for threads, worst, exact, curve_total in summary:
        print(
            f"threads {threads}: worst ratio quantlib/torch {worst:.2f} (goal <= {RATIO_GOAL}: "
            f"{'ok' if worst <= RATIO_GOAL else 'MISS'}), error curves {curve_total:.1f} ms (goal <= "
            f"{CURVE_GOAL_MS:.0f}: {'ok' if curve_total <= CURVE_GOAL_MS else 'MISS'}), bit-exact vs torch "
            f"fake_quantize on every row: {'yes' if exact else 'NO'}"
        )
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"load average at the end: {load[0]:.2f} (timings on a busy machine vary; see the load figures)")


if __name__ == "__main__":
    main()
