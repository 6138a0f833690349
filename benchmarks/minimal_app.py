"""The floor for a slider that redraws a chart: one bound bit-width slider and one pre-binned histogram.

``benchmarks/bench_workshop.py minimal`` times the same key press here and on the Tensor explorer in one run:
what is left over here is what Streamlit, Plotly and Chromium cost on this machine before the app does anything.
The histogram is pre-binned like the app's (counts computed on the server, ~100 bars sent), over 4,608 values
(the size of digits-cnn's conv2 weight), quantized symmetrically: ``q = clamp(round(x / s)) * s`` with
``s = max|x| / (2^(b-1) - 1)``.

Run it alone with ``streamlit run benchmarks/minimal_app.py``.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

VALUES = np.random.default_rng(0).standard_normal(4608).astype(np.float32) * 0.05
BINS = 100

bits = st.sidebar.slider("Bit width", 2, 16, 8, key="bits", bind="query-params")
qmax = 2 ** (bits - 1) - 1
scale = float(np.abs(VALUES).max()) / qmax
quantized = np.clip(np.round(VALUES / scale), -qmax - 1, qmax) * scale
counts, edges = np.histogram(quantized, bins=BINS)
st.title("Minimal histogram")
st.plotly_chart(
    go.Figure(
        go.Bar(x=edges[:-1].tolist(), y=counts.tolist(), width=float(edges[1] - edges[0])),
        layout={"template": "none", "height": 320, "margin": {"t": 20, "b": 30}},
    ),
    key="hist",
)
st.caption(f"{VALUES.size:,} values at int{bits}, scale {scale:.4g}")
