"""Quantization Explorer: see what quantization does to a neural network.

Run with ``streamlit run app.py``. This file is only the router: it declares the pages, draws the shared sidebar
(whose settings are bound to the URL, see :mod:`ui.controls` and :mod:`ui.links`) and runs the chosen page. Pages live in
``app_pages/`` - not ``pages/``, which Streamlit would treat as a legacy multipage folder and which breaks deep
links on a freshly started server.
"""

from __future__ import annotations

import streamlit as st

from serving import warmup
from ui import controls, heap, i18n, links, sources
from ui.compute import analysis as analysis_data
from ui.compute import explorer as data
from ui.i18n import N_, _
from ui.widgets import friendly_errors, needs_a_running_model

st.set_page_config(page_title="Quantization Explorer", page_icon="🔢", layout="wide")
i18n.begin_run()
data.configure_torch()
# Warm-up (serving.warmup), once per process; QE_WARM=0 turns it off. The job worker loads the sample models;
# with plain `streamlit run app.py` the first visitor's run also opens every page's default view in the
# background (`python -m serving` does that before anyone arrives, and sets QE_WARM=workers).
if warmup.enabled():
    analysis_data.warm_workers()
    warmup.start_once(st.get_option("server.port"), st.get_option("server.address") or "127.0.0.1",
                      st.get_option("server.baseUrlPath") or "")

# Emoji icons only: ":material/...:" icons would make the browser fetch an icon font.
PAGES = [
    st.Page("app_pages/tensor_explorer.py", title=_("Tensor explorer"), icon="🔬", url_path="start", default=True),
    # The default page is served at "/": this hidden twin makes "/tensor-explorer?..." links work too, instead of
    # Streamlit's "page not found" dialog.
    st.Page(
        "app_pages/tensor_explorer.py", title=_("Tensor explorer"), icon="🔬", url_path="tensor-explorer",
        visibility="hidden",
    ),
    st.Page("app_pages/error_curves.py", title=_("Error curves"), icon="📉", url_path="error-curves"),
    st.Page("app_pages/output_drift.py", title=_("Output drift"), icon="🎯", url_path="output-drift"),
    st.Page("app_pages/sensitivity.py", title=_("Layer sensitivity"), icon="🧨", url_path="sensitivity"),
    st.Page("app_pages/size_speed.py", title=_("Size & speed"), icon="⚡", url_path="size-speed"),
    st.Page("app_pages/qat.py", title=_("PTQ vs QAT"), icon="🏋️", url_path="qat"),
    st.Page("app_pages/algorithms.py", title=_("Algorithms"), icon="🧪", url_path="algorithms"),
    st.Page("app_pages/walkthrough.py", title=_("Formula walkthrough"), icon="🧮", url_path="walkthrough"),
    st.Page("app_pages/your_model.py", title=_("Your model"), icon="📤", url_path="your-model"),
    st.Page("app_pages/glossary.py", title=_("Glossary"), icon="📖", url_path="glossary"),
]

#: Pages that run the model on its inputs: what each shows instead for an uploaded file (weights only, no code).
RUNS_THE_MODEL = {
    "output-drift": N_("compares the model's outputs before and after quantization"),
    "sensitivity": N_("quantizes one layer at a time and measures the model's task metric"),
    "qat": N_("trains the model on its training data"),
    "algorithms": N_("runs the model on its calibration inputs to round its layers better"),
}

page = st.navigation(PAGES)
controls.begin_run()
raw_link = links.snapshot_link()
settings = None
with st.sidebar, friendly_errors(_("load the sample model")):
    settings = controls.render_sidebar()
if settings is None:
    st.stop()
controls.set_current(settings)
share_box = st.sidebar.container()
notice_box = st.container()
if not sources.get(settings.model).runs_model and page.url_path in RUNS_THE_MODEL:
    needs_a_running_model(page.title, page.icon, _(RUNS_THE_MODEL[page.url_path]))
else:
    page.run()
links.check_link(raw_link, settings)
links.show_link_notice(notice_box)
links.render_share(share_box, settings)
controls.end_run(page.url_path)
heap.settle()
