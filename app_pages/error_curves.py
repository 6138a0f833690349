"""📉 Error curves: quantization error vs bit width for each scheme and granularity, and vs clipping."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from quantlib.spec import SCHEMES
from ui import controls, sources, widgets
from ui.compute import explorer as data
from ui.compute import reductions
from ui.figures import explorer as figures

settings = controls.current()

widgets.page_intro(
    "Error curves",
    "📉",
    "Every extra bit doubles the number of grid levels and halves the step, so the error power drops about "
    "4× - roughly **6 dB more SQNR per bit**. The first chart compares the two schemes and two granularities "
    "with the current calibration (the star is your current setting); the second shows the other half of the "
    "story: shrinking the range clips a few values but makes the steps finer for all the others.",
    r"\begin{gathered}\mathrm{SQNR} = 10\log_{10}\frac{\sum_i x_i^2}{\sum_i (x_i - \hat{x}_i)^2}\ \mathrm{dB}"
    r"\\ \approx 6.02\, b + \mathrm{const}\end{gathered}",
    "set calibration to **mse** and drop to **3 bits**: the clipping chart shows why cutting off a few "
    "outliers beats stretching the grid over all of them.",
)


def _curves(kind: str) -> tuple[dict[str, pd.DataFrame], str, dict, dict, list[str]]:
    """The curves to draw, the current curve's label, fixed-format points, min-max references and notes."""
    spec = settings.spec()
    fixed = settings.fixed_bits is not None
    base = spec.replace(format="int", bits=8) if fixed else spec.replace(bits=8)
    granularities = ["tensor", "channel"] if kind == "weights" else ["tensor"]
    current_gran = settings.granularity if kind == "weights" else "tensor"
    if current_gran == "group":
        granularities.append("group")
    curves, notes = {}, []
    for scheme in SCHEMES:
        for gran in granularities:
            if gran == "group" and scheme != spec.scheme:
                continue
            df, note = data.curve(
                settings.model, settings.layer, kind, reductions.spec_key(base.replace(scheme=scheme, granularity=gran))
            )
            curves[reductions.curve_label(scheme, gran, spec.group_size)] = df
            if note:
                notes.append(note)
    current = reductions.curve_label(spec.scheme, current_gran, spec.group_size)
    reference = {}
    if spec.calibration != "minmax":
        df, _ = data.curve(
            settings.model, settings.layer, kind,
            reductions.spec_key(base.replace(granularity=current_gran, calibration="minmax")),
        )
        reference[f"{current} with minmax (for comparison)"] = df
    points = {}
    if fixed:
        p = data.point(settings.model, settings.layer, kind, reductions.spec_key(spec))
        points[f"{settings.format} (current, fixed {p['bits']} bits)"] = (p["bits"], p["mse"], p["sqnr_db"])
        current = ""  # the star is the fp8 / nf4 point; the int lines are for comparison
    return curves, current, points, reference, notes


def _section(kind: str) -> None:
    st.subheader("Weights" if kind == "weights" else "Input activations")
    with st.spinner("Sweeping bit widths 2-16…"):
        curves, current, points, reference, notes = _curves(kind)
    # Shared by everyone on these settings (a file's figures stay in its session: no key).
    view_key = None if not sources.get(settings.model).shared else (
        f"{settings.model}|{settings.layer}|{kind}|{reductions.spec_key(settings.spec())}"
    )
    widgets.chart(
        view_key and f"curves|{view_key}",
        lambda: figures.error_curves_figure(curves, current, settings.effective_bits, points, reference),
        key=f"curves-{kind}",
        config={"displaylogo": False},
    )
    captions = []
    if settings.fixed_bits is not None:
        captions.append(
            f"{settings.format} has a fixed width, so it is one point (the star); the lines show integer "
            "grids with the same calibration for comparison."
        )
    if kind == "activations":
        captions.append("Activations get one static range per tensor, so only per-tensor curves are drawn.")
    if notes:
        captions.append(
            f"{settings.calibration} calibration re-runs at every bit width, so these curves use a subset of the "
            f"tensor ({notes[0]}) to stay interactive; the star and the clipping chart use all of it."
        )
    if captions:
        st.caption(" ".join(captions))

    spec = settings.spec()
    with st.spinner("Sweeping clip ratios…"):
        clip_df, picked = data.clip_curve(settings.model, settings.layer, kind, reductions.spec_key(spec))
    bits_label = f"{settings.effective_bits} bits ({spec.label()})"
    widgets.chart(
        view_key and f"clip|{view_key}",
        lambda: figures.clip_figure(clip_df, picked, settings.calibration, bits_label),
        key=f"clip-{kind}",
        config={"displaylogo": False},
    )
    st.caption(
        "α = 1 is min-max (nothing clipped). Moving left clips the largest values but makes every step finer; "
        f"the star is where **{settings.calibration}** calibration puts the range at this bit width."
    )

    table = pd.concat(
        [df.assign(setting=label, calibration=settings.calibration) for label, df in curves.items()]
        + [df.assign(setting=label, calibration="minmax") for label, df in reference.items()],
        ignore_index=True,
    )
    clip_table = clip_df.assign(bits=settings.effective_bits, setting=spec.label())
    csv = pd.concat([table.assign(curve="bits"), clip_table.assign(curve="clip")], ignore_index=True)
    name = f"error-curves_{settings.model}_{controls.layer_token(settings.layer)}_{kind}.csv"
    st.download_button(
        "⬇️ Download these curves (CSV)", csv.to_csv(index=False), file_name=name, mime="text/csv",
        key=f"csv-{kind}",
    )


for kind, wanted in (("weights", settings.wants_weights), ("activations", settings.wants_activations)):
    if not wanted:
        continue
    with widgets.friendly_errors(f"draw the error curves of the {kind}"):
        if widgets.activations_missing_note(settings.model, settings.layer, kind):
            continue
        _section(kind)
