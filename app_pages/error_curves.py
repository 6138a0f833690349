"""📉 Error curves: quantization error vs bit width for each scheme and granularity, and vs clipping."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from quantlib.spec import SCHEMES
from ui import controls, sources, widgets
from ui.compute import explorer as data
from ui.compute import reductions
from ui.figures import explorer as figures
from ui.i18n import _

settings = controls.current()

widgets.page_intro(
    _("Error curves"),
    "📉",
    _(
        "Every extra bit doubles the number of grid levels and halves the step, so the error power drops about "
        "4× - roughly **6 dB more SQNR per bit**. The first chart compares the two schemes and two granularities "
        "with the current calibration (the star is your current setting); the second shows the other half of the "
        "story: shrinking the range clips a few values but makes the steps finer for all the others."
    ),
    r"\begin{gathered}\mathrm{SQNR} = 10\log_{10}\frac{\sum_i x_i^2}{\sum_i (x_i - \hat{x}_i)^2}\ \mathrm{dB}"
    r"\\ \approx 6.02\, b + \mathrm{const}\end{gathered}",
    _(
        "set calibration to **mse** and drop to **3 bits**: the clipping chart shows why cutting off a few "
        "outliers beats stretching the grid over all of them."
    ),
)


def _curves(kind: str) -> tuple[dict[str, tuple[str, pd.DataFrame]], str, dict, dict, list]:
    """The curves to draw (key -> shown label and points), the current curve's key, fixed-format points,
    min-max references and notes. Keys are the English ``curve_label`` (the CSV's ``setting``)."""
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
            shown = reductions.curve_label(scheme, gran, spec.group_size, translate=_)
            curves[reductions.curve_label(scheme, gran, spec.group_size)] = (shown, df)
            if note:
                notes.append(note)
    current = reductions.curve_label(spec.scheme, current_gran, spec.group_size)
    reference = {}
    if spec.calibration != "minmax":
        df, _note = data.curve(
            settings.model, settings.layer, kind,
            reductions.spec_key(base.replace(granularity=current_gran, calibration="minmax")),
        )
        shown = _("{curve} with minmax (for comparison)",
                  curve=reductions.curve_label(spec.scheme, current_gran, spec.group_size, translate=_))
        reference[f"{current} with minmax (for comparison)"] = (shown, df)
    points = {}
    if fixed:
        p = data.point(settings.model, settings.layer, kind, reductions.spec_key(spec))
        label = _("{format} (current, fixed {bits} bits)", format=settings.format, bits=p["bits"])
        points[label] = (p["bits"], p["mse"], p["sqnr_db"])
        current = ""  # the star is the fp8 / nf4 point; the int lines are for comparison
    return curves, current, points, reference, notes


def _section(kind: str) -> None:
    st.subheader(_("Weights") if kind == "weights" else _("Input activations"))
    with st.spinner(_("Sweeping bit widths 2-16…")):
        curves, current, points, reference, notes = _curves(kind)
    # Shared by everyone on these settings (a file's figures stay in its session: no key).
    view_key = None if not sources.get(settings.model).shared else (
        f"{settings.model}|{settings.layer}|{kind}|{reductions.spec_key(settings.spec())}"
    )
    shown_curves = {shown: df for shown, df in curves.values()}
    shown_current = curves[current][0] if current in curves else ""
    widgets.chart(
        view_key and f"curves|{view_key}",
        lambda: figures.error_curves_figure(
            shown_curves, shown_current, settings.effective_bits, points, dict(reference.values()),
        ),
        key=f"curves-{kind}",
        config={"displaylogo": False},
    )
    calibration = settings.calibration
    captions = []
    if settings.fixed_bits is not None:
        captions.append(_(
            "{format} has a fixed width, so it is one point (the star); the lines show integer grids with the same "
            "calibration for comparison.",
            format=settings.format,
        ))
    if kind == "activations":
        captions.append(_("Activations get one static range per tensor, so only per-tensor curves are drawn."))
    if notes:
        captions.append(_(
            "{calibration} calibration re-runs at every bit width, so these curves use a subset of the tensor "
            "({subset}) to stay interactive; the star and the clipping chart use all of it.",
            calibration=calibration, subset=reductions.note_text(notes[0]),
        ))
    if captions:
        st.caption(widgets.sentences(*captions))

    spec = settings.spec()
    with st.spinner(_("Sweeping clip ratios…")):
        clip_df, picked = data.clip_curve(settings.model, settings.layer, kind, reductions.spec_key(spec))
    bits_label = _("{bits} bits ({spec})", bits=settings.effective_bits, spec=reductions.spec_label(spec, _))
    widgets.chart(
        view_key and f"clip|{view_key}",
        lambda: figures.clip_figure(clip_df, picked, calibration, bits_label),
        key=f"clip-{kind}",
        config={"displaylogo": False},
    )
    st.caption(_(
        "α = 1 is min-max (nothing clipped). Moving left clips the largest values but makes every step finer; "
        "the star is where **{calibration}** calibration puts the range at this bit width.",
        calibration=calibration,
    ))

    table = pd.concat(
        [df.assign(setting=label, calibration=settings.calibration) for label, (_shown, df) in curves.items()]
        + [df.assign(setting=label, calibration="minmax") for label, (_shown, df) in reference.items()],
        ignore_index=True,
    )
    clip_table = clip_df.assign(bits=settings.effective_bits, setting=spec.label())
    csv = pd.concat([table.assign(curve="bits"), clip_table.assign(curve="clip")], ignore_index=True)
    # i18n: the start of a download's file name: keep it short, no spaces.
    prefix = _("error-curves")
    name = f"{prefix}_{settings.model}_{controls.layer_token(settings.layer)}_{kind}.csv"
    st.download_button(
        _("⬇️ Download these curves (CSV)"), csv.to_csv(index=False), file_name=name, mime="text/csv",
        key=f"csv-{kind}",
    )


for kind, wanted in (("weights", settings.wants_weights), ("activations", settings.wants_activations)):
    if not wanted:
        continue
    what = _("draw the error curves of the weights") if kind == "weights" else _("draw the error curves of the activations")
    with widgets.friendly_errors(what):
        if widgets.activations_missing_note(settings.model, settings.layer, kind):
            continue
        _section(kind)
