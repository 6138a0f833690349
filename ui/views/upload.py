"""Page pieces for an uploaded file, shared by the "Your model" and "Size & speed" pages.

Like :mod:`ui.compute.upload`, nothing here caches in a place other sessions can reach: the numbers come from
``ui.compute.upload`` functions that memoize in the uploading session.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from quantlib import QuantSpec
from ui.compute import upload
from ui.widgets import human_bytes


def table_height(n: int) -> int:
    """Pixels for a table of ``n`` rows: every row up to about eight, then it scrolls."""
    return min(38 + 35 * n, 300)


def size_section(up: Any, spec: QuantSpec, max_rows: int = 1000) -> None:
    """The whole file stored at ``spec``: totals against float, and one row per tensor (the first ``max_rows``).

    ``up`` is this session's ``ui.compute.upload.Upload``. Every tensor is counted, including biases and norms.
    """
    sizes, totals = upload.storage_table(up.tensors, spec)
    c = st.columns(4)
    c[0].metric(
        "Float weights",
        human_bytes(totals["float"]),
        help="Values × bytes of each tensor's own dtype (float32, float16 …): the file, without its small header.",
    )
    c[1].metric(
        f"Quantized ({spec.bits}-bit)",
        human_bytes(totals["quantized"]),
        help="Integer codes packed at the bit width, plus a float32 scale (and a zero point, asymmetric) per block.",
    )
    c[2].metric("Smaller by", f"{totals['ratio']:.2f}×", help="Float weights ÷ quantized size.")
    c[3].metric(
        "Scales & zero points",
        human_bytes(totals["overhead"]),
        help="The cost of the blocks: grows with per-channel and with small groups.",
    )
    shown = sizes.head(max_rows)
    st.dataframe(
        shown,
        hide_index=True,
        width="stretch",
        height=table_height(len(shown)),
        column_order=("tensor", "stored as", "float_bytes", "code_bytes", "scale_bytes", "quantized_bytes", "ratio"),
        column_config={
            "float_bytes": st.column_config.NumberColumn("float bytes", format="localized"),
            "code_bytes": st.column_config.NumberColumn("code bytes", format="localized"),
            "scale_bytes": st.column_config.NumberColumn("scale + zero-point bytes", format="localized"),
            "quantized_bytes": st.column_config.NumberColumn("quantized bytes", format="localized"),
            "ratio": st.column_config.NumberColumn("smaller by", format="%.2f×"),
        },
    )
    notes = [
        f"Every tensor at {spec.label()}. Real deployments often keep 1-D tensors (biases, norms) in float: "
        f"here they are {100 * totals['one_d_share']:.3g} % of the values."
    ]
    if totals["adapted"]:
        notes.append(
            f"{totals['adapted']} tensor(s) cannot take this granularity as set and are counted as the "
            "'stored as' column says."
        )
    if len(sizes) > max_rows:
        notes.append(f"The table lists the first {max_rows:,} of {len(sizes):,} tensors; totals cover all.")
    st.caption(" ".join(notes))
