"""Export speed against the goals: MiniLM as a compressed-tensors file, and ONNX Runtime's static int8.

    python benchmarks/bench_export.py            # MiniLM 4-bit per-group(64) and per-channel, digits models
    python benchmarks/bench_export.py --quick    # one repeat each

Each row: the median wall time of ``quantlib.export.to_compressed_tensors`` (quantize every Linear / Embedding
weight, pack the codes into int32 words, write the safetensors bytes), the file size against float32, the
export's budget estimate (``quantlib.export.export_cost``: it must not be below the measured time, or the app
would let through exports that take longer than it says), and the packing alone on MiniLM's largest tensor.
One torch thread, as the app runs. Goal: MiniLM at 4 bits per-group in at most 5 s.

Then ONNX Runtime (``ui.views.ort.compute``, what the Size & speed button runs in the job runner): export to ONNX,
static int8 QDQ quantization calibrated on the calibration inputs, evaluation of five variants and their timing.
Goals: digits-cnn in at most 20 s, MiniLM in at most 90 s. ``--quick`` skips MiniLM there.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

import sample_models  # noqa: E402
from quantlib import QuantSpec  # noqa: E402
from quantlib.export import export_cost, plan_export, to_compressed_tensors  # noqa: E402
from quantlib.pack import pack_int32  # noqa: E402

MINILM_GOAL_S = 5.0
ORT_GOALS_S = {"digits-cnn": 20.0, "minilm": 90.0}


def _median_s(fn, repeats: int) -> tuple[float, object]:
    out = fn()  # warm-up (and the result)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    repeats = 1 if args.quick else 3
    torch.set_num_threads(int(os.environ.get("QE_TORCH_THREADS", "1")))
    print(f"# export benchmark · {platform.processor() or platform.machine()} · torch {torch.__version__} · "
          f"{torch.get_num_threads()} thread(s) · median of {repeats}")
    cases = [
        ("minilm", QuantSpec(bits=4, granularity="group", group_size=64), MINILM_GOAL_S),
        ("minilm", QuantSpec(bits=4, granularity="channel", scheme="asymmetric"), None),
        ("minilm", QuantSpec(bits=3, granularity="group", group_size=32), None),
        ("minilm", QuantSpec(bits=8, granularity="channel"), None),
        ("digits-cnn", QuantSpec(bits=4, granularity="channel"), None),
        ("digits-mlp", QuantSpec(bits=4, granularity="group", group_size=32), None),
    ]
    print(f"{'model':<11} {'setting':<26} {'export ms':>10} {'estimate ms':>11} {'file kB':>9} {'float kB':>9}  goal")
    failed = False
    for name, spec, goal in cases:
        sm = sample_models.load(name)
        seconds, blob = _median_s(lambda sm=sm, spec=spec: to_compressed_tensors(sm.model, spec), repeats)
        estimate = export_cost(plan_export(sm.model, spec)).seconds
        float_kb = sum(p.numel() * p.element_size() for p in sm.model.state_dict().values()) / 1e3
        verdict = ""
        if goal is not None:
            ok = seconds <= goal
            failed |= not ok
            verdict = f"≤ {goal:g} s {'✓' if ok else '✗'}"
        print(f"{name:<11} {spec.label():<26} {1e3 * seconds:>10.0f} {1e3 * estimate:>11.0f} {len(blob) / 1e3:>9,.0f} "
              f"{float_kb:>9,.0f}  {verdict}")
    emb = sample_models.load("minilm").model.get_submodule("bert.embeddings.word_embeddings").weight.detach()
    for bits in (3, 4):
        half = 1 << (bits - 1)
        codes = torch.randint(-half, half, emb.shape, generator=torch.Generator().manual_seed(0)).to(torch.int8)
        seconds, _ = _median_s(lambda codes=codes, bits=bits: pack_int32(codes, bits), repeats)
        print(f"pack_int32 of the {emb.shape[0]}x{emb.shape[1]} embedding table at {bits} bits: {seconds:.2f} s")
    import logging

    logging.disable(logging.WARNING)  # Streamlit's "no runtime" notes: ui.views.ort runs here outside a server
    from ui.views import ort

    print(f"\n{'ONNX Runtime static int8':<26} {'total s':>8} {'int8 ms':>8} {'float ms':>9} {'int8 MB':>8} "
          f"{'float MB':>9}  goal")
    for name, goal in ORT_GOALS_S.items():
        if args.quick and name == "minilm":
            continue
        t0 = time.perf_counter()
        res = ort.compute(name)
        seconds = time.perf_counter() - t0
        ok = seconds <= goal
        failed |= not ok
        t, s = res["timings"], res["sizes"]
        print(f"{name:<26} {seconds:>8.1f} {t['ort_int8']['median_ms']:>8.3g} {t['ort_float']['median_ms']:>9.3g} "
              f"{s['ort_int8'] / 1e6:>8.2f} {s['ort_float'] / 1e6:>9.2f}  ≤ {goal:g} s {'✓' if ok else '✗'}")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
