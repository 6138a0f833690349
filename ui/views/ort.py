"""ONNX Runtime static int8 on the Size & speed page: the job (export, quantize, evaluate, time) and the section.

Everything runs in the job runner's worker (exporting MiniLM and calibrating it take seconds, timing must not
share a core with the sessions), on a click, once per model; the timings are this server's, so the key is of
the ``speed`` kind, which stays on this replica.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st
import torch

from quantlib import onnx_int8 as ox
from quantlib.model import model_size_bytes, output_drift
from quantlib.speed import dynamic_int8, measure_interleaved, quiet_torch_ao
from ui import jobs, sources, widgets
from ui.compute import analysis as ad
from ui.figures import analysis as af
from ui.i18n import N_, _
from ui.views import jobs as job_views

#: The sample models ONNX Runtime's static quantization runs on here (the issue's three, plus the small two).
MODELS = ("tiny-linear", "digits-mlp", "digits-cnn", "minilm", "recsys")
CALIBRATION_BATCH = 32
REPEATS = 10
#: Seconds a run took on the 2-core reference server (export + quantize + evaluate + time), for the button.
ESTIMATE_S = {"tiny-linear": 3.0, "digits-mlp": 4.0, "digits-cnn": 5.0, "minilm": 60.0, "recsys": 4.0}


def key(model: str) -> str:
    return f"speed|ort|{model}"


def _metric(sm: Any, model: torch.nn.Module) -> float:
    return float(sm.evaluate(model)[sm.metric_name])


def compute(model: str, progress: Any = None) -> dict[str, Any]:
    """Export ``model`` to ONNX, quantize it statically with ONNX Runtime, and compare it with float, quantlib's
    simulation and torch.ao dynamic int8: task metric, latency, size, and the differences between them."""
    step = (lambda i, msg: progress(i, 5, msg)) if progress is not None else (lambda i, msg: None)
    sm = sources.sample(model)
    names = ox.input_names(sm.eval_inputs)
    with tempfile.TemporaryDirectory(prefix="qe-ort-") as tmp:
        f32_path, int8_path = str(Path(tmp) / "float.onnx"), str(Path(tmp) / "int8.onnx")
        step(0, N_("exporting to ONNX"))
        ox.export_float(sm.model, ox.head(sm.eval_inputs, 2), f32_path)
        step(1, N_("calibrating and quantizing with ONNX Runtime"))
        n_cal = ox.num_examples(sm.calibration_inputs)
        calibration = [ox.feeds(sm.calibration_inputs, i, i + CALIBRATION_BATCH) for i in range(0, n_cal, CALIBRATION_BATCH)]
        ox.quantize_qdq(f32_path, int8_path, calibration)
        sizes = {"ort_float": ox.file_bytes(f32_path), "ort_int8": ox.file_bytes(int8_path)}
        step(2, N_("evaluating"))
        ort_f32, ort_int8 = ox.session(f32_path), ox.session(int8_path)
        unfused = ox.session(int8_path, fused=False)
        m_f32, m_int8 = ox.OrtModule(ort_f32, names), ox.OrtModule(ort_int8, names)
        simulated = ox.quantlib_simulation(sm.model, sm.calibration_inputs)
        with quiet_torch_ao():
            dynamic, _converted = dynamic_int8(sm.model)
        classifier = sm.task == "classification"
        reference = sm.run(sm.model)
        out_int8, out_sim = sm.run(m_int8), sm.run(simulated)
        out_unfused = sm.run(ox.OrtModule(unfused, names))
        metrics = {
            "float": _metric(sm, sm.model),
            "ort_float": _metric(sm, m_f32),
            "ort_int8": _metric(sm, m_int8),
            "fake": _metric(sm, simulated),
            "dynamic": _metric(sm, dynamic),
        }
        step_size = ox.output_scale(int8_path)
        diffs = {
            "ort_float_max_abs": float((sm.run(m_f32) - reference).abs().max()),
            "int8_vs_float_db": output_drift(reference, out_int8, classifier).sqnr_db,
            "sim_vs_float_db": output_drift(reference, out_sim, classifier).sqnr_db,
            "int8_vs_sim_db": output_drift(out_sim, out_int8, classifier).sqnr_db,
            "int8_vs_sim_top1": output_drift(out_sim, out_int8, classifier).top1_agreement,
            "fused_vs_unfused": ox.lsb_difference(out_int8, out_unfused, step_size) if step_size else None,
            "fused_vs_unfused_max_abs": float((out_int8 - out_unfused).abs().max()),
            "output_step": step_size,
        }
        step(3, N_("timing"))
        batch, n = ad.speed_inputs(model)
        feed = ox.feeds(batch)
        timings = measure_interleaved(
            {
                "float": lambda: sm.run(sm.model, batch),
                "dynamic": lambda: sm.run(dynamic, batch),
                "fake": lambda: sm.run(simulated, batch),
                "ort_float": lambda: ort_f32.run(None, feed),
                "ort_int8": lambda: ort_int8.run(None, feed),
            },
            warmup=2,
            repeats=REPEATS,
            threads=1,
        )
    sizes.update(
        {
            "float": model_size_bytes(sm.model),
            "fake": model_size_bytes(sm.model),
            "dynamic": ox.state_dict_bytes(dynamic),
        }
    )
    step(4, N_("done"))
    return {
        "metrics": metrics,
        "sizes": sizes,
        "timings": {k: {"median_ms": t.median_ms, "p10_ms": t.p10_ms, "p90_ms": t.p90_ms, "repeats": t.repeats,
                        "threads": t.threads} for k, t in timings.items()},
        "diffs": diffs,
        "examples": n,
        "metric_name": sm.metric_name,
        "higher_is_better": sm.higher_is_better,
    }


#: The five variants: (label, kind of bar). Labels are English msgids, shown translated.
LABELS = {
    "float": (N_("float32 (PyTorch)"), "float"),
    "fake": (N_("W8A8 simulated by quantlib (fake quant)"), "fake"),
    "dynamic": (N_("int8 dynamic (torch.ao, Linear only)"), "int8"),
    "ort_float": (N_("float32 (ONNX Runtime)"), "float"),
    "ort_int8": (N_("int8 static QDQ (ONNX Runtime)"), "int8"),
}


def table(res: dict[str, Any]) -> pd.DataFrame:
    """The comparison table of a result, worded in the session's language (built at display time)."""
    rows = []
    for k, (label, _kind) in LABELS.items():
        t = res["timings"][k]
        rows.append(
            {
                _("variant"): _(label),
                ad.metric_label(res["metric_name"]): widgets.fmt(res["metrics"][k]),
                _("median ms"): f"{t['median_ms']:.3g}",
                _("p10-p90 ms"): f"{t['p10_ms']:.3g} - {t['p90_ms']:.3g}",
                _("size"): widgets.human_bytes(res["sizes"][k]),
            }
        )
    return pd.DataFrame(rows)


def section(model: str) -> None:
    """The ONNX Runtime section of Size & speed for a sample model."""
    st.subheader(_("🧱 Real int8 weights and activations: ONNX Runtime"))
    st.markdown(
        _(
            "`torch.ao` dynamic int8 above converts only `Linear` layers and quantizes their inputs on the fly. "
            "**Static** quantization fixes every range in advance: the model is exported to ONNX, ONNX Runtime "
            "calibrates the activations of every `Conv` / `MatMul` / `Gemm` on the calibration inputs (min-max, "
            "int8), stores int8 weights per channel, and runs integer kernels. Next to it: float, quantlib's "
            "simulation of the same recipe, and `torch.ao` dynamic."
        )
    )
    if model not in MODELS:
        st.info(_("This section covers the sample models."), icon="ℹ️")
        return
    res = job_views.obtain(
        key(model), compute, (model,), _("Exporting, quantizing and timing with ONNX Runtime…"),
        lambda: ESTIMATE_S.get(model, 10.0), _("🧱 Export to ONNX, quantize to int8 and measure"), "ort-run",
        auto=False,
    )
    if res is None:
        return
    rows = [{"label": _(LABELS[k][0]), "kind": LABELS[k][1], **res["timings"][k]} for k in LABELS]
    st.plotly_chart(af.latency_bars(rows, _("Time per call: float, simulated, real int8")), key="ort-latency",
                    config={"displaylogo": False})
    st.dataframe(table(res), hide_index=True, width="stretch")
    d = res["diffs"]
    t = res["timings"]["ort_int8"]
    sqnr = _(
        "Output SQNR against float: ONNX Runtime int8 {int8} dB, quantlib's simulation {sim} dB; int8 against "
        "the simulation {both} dB.",
        int8=widgets.fmt(d["int8_vs_float_db"], 3),
        sim=widgets.fmt(d["sim_vs_float_db"], 3),
        both=widgets.fmt(d["int8_vs_sim_db"], 3),
    )
    if d["int8_vs_sim_top1"] is not None:
        sqnr = _(
            "Output SQNR against float: ONNX Runtime int8 {int8} dB, quantlib's simulation {sim} dB; int8 against "
            "the simulation {both} dB, same top-1 class on {share} % of examples.",
            int8=widgets.fmt(d["int8_vs_float_db"], 3),
            sim=widgets.fmt(d["sim_vs_float_db"], 3),
            both=widgets.fmt(d["int8_vs_sim_db"], 3),
            share=f"{100 * d['int8_vs_sim_top1']:.1f}",
        )
    lines = [
        _(
            "{examples} examples per call, median of {repeats} calls, the variants taking turns, {threads} thread; "
            "{when}.",
            examples=res["examples"],
            repeats=t["repeats"],
            threads=t["threads"],
            when=job_views.computed_note(key(model)) or _("measured on this server"),
        ),
        _("ONNX Runtime's float model reproduces PyTorch's outputs to {diff}.", diff=f"{d['ort_float_max_abs']:.2g}"),
        sqnr,
        _(
            "They do not quantize at the same points (ONNX Runtime around the inputs and outputs of each `Conv` / "
            "`MatMul` / `Gemm`, before a separate bias `Add`; quantlib at each layer's input and output, after its "
            "bias), so their ranges are calibrated on different tensors."
        ),
    ]
    f = d["fused_vs_unfused"]
    if f is not None:
        lines.append(
            _(
                "The integer kernels against the very same QDQ graph run in float (optimizations off): outputs "
                "differ by a median of {median} and at most {max} steps of the output grid (one step = {step}): "
                "integer kernels requantize with their own rounding, and a one-step difference inside the network "
                "can grow through the layers after it.",
                median=f"{f['median']:.2g}",
                max=f"{f['max']:.3g}",
                step=f"{d['output_step']:.3g}",
            )
        )
    else:
        lines.append(
            _(
                "The integer kernels against the very same QDQ graph run in float (optimizations off): outputs "
                "differ by at most {diff} (the output itself is computed in float after the last quantized op, so "
                "there is no output grid to count steps of).",
                diff=f"{d['fused_vs_unfused_max_abs']:.3g}",
            )
        )
    st.caption(widgets.sentences(*lines))


def safe_section(model: str) -> None:
    with widgets.friendly_errors(_("run this model on ONNX Runtime")):
        try:
            section(model)
        except jobs.ServerBusy as busy:
            st.warning(job_views.message(busy), icon="⏳")
