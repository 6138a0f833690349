"""The "Your model" page without a browser: uploads through AppTest's file uploader, every bad file, the crafted
pickle that must not run, session isolation, the file as the sidebar's model (read by the Tensor explorer, Error
curves, Size and walkthrough pages; refused with a reason by the pages that run a model), and the pure helpers of
``ui.compute.upload`` on a plain dict as session.

AppTest (Streamlit 1.67) drives ``st.file_uploader`` itself (``FileUploader.set_value``), so every file here
goes through the same path as in a browser: bytes → ``ui.compute.upload.sync_uploader`` → ``quantlib.io.load_tensors`` →
this session's ``st.session_state`` → the page.
"""

from __future__ import annotations

import ast
import base64
import io
import json
import os
import pickle
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save
from streamlit.testing.v1 import AppTest

from quantlib import QuantSpec
from ui.compute import upload
from ui.sources import UPLOAD_MODEL
from ui.widgets import human_bytes

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "app.py")
PAGE = "app_pages/your_model.py"
TIMEOUT = 120
MAX_CHART_BYTES = 30_000


# --- files ------------------------------------------------------------------------------------------------------


def good_state_dict() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {
        "block.fc1.weight": torch.randn(48, 100, generator=g),
        "block.fc1.bias": torch.randn(48, generator=g),
        "block.conv.weight": torch.randn(8, 4, 3, 3, generator=g),
    }


def good_safetensors() -> bytes:
    return save(good_state_dict())


def good_pt() -> bytes:
    buf = io.BytesIO()
    torch.save({**good_state_dict(), "steps": torch.tensor(7)}, buf)
    return buf.getvalue()


class _RunsCode:
    """Unpickling this calls ``exec`` on its source: a stand-in for a model file crafted to run code."""

    def __init__(self, source: str) -> None:
        self.source = source

    def __reduce__(self):
        return (exec, (self.source,))


class _RunsShell:
    """Unpickling this calls ``os.system``: the classic malicious pickle."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def _touch_source(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').close()"


def crafted_pickles(marker: Path) -> dict[str, tuple[str, bytes]]:
    """Files whose loading with plain ``pickle`` / ``torch.load(weights_only=False)`` would create ``marker``."""
    buf = io.BytesIO()
    torch.save({"fc.weight": torch.ones(2, 2), "payload": _RunsCode(_touch_source(marker))}, buf)
    return {
        "raw pickle, exec": ("model.pt", pickle.dumps(_RunsCode(_touch_source(marker)), protocol=2)),
        "raw pickle, os.system": ("model.pth", pickle.dumps(_RunsShell(f"touch {marker}"), protocol=2)),
        "torch.save archive": ("checkpoint.pt", buf.getvalue()),
    }


def corrupt_safetensors() -> bytes:
    """A well-formed header whose tensor claims 16 bytes of data where the file has 12."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 12]}}).encode()
    return len(header).to_bytes(8, "little") + header + b"\0" * 12


def too_many_tensors() -> bytes:
    return save({f"t{i}": torch.zeros(1) for i in range(upload.DEFAULT_MAX_TENSORS + 1)})


#: Every bad file: a name, its bytes (made lazily: some are big), and words the message must contain.
BAD_FILES = {
    "over the size limit": ("huge.safetensors", lambda: b"\0" * (upload.max_upload_bytes() + 1), "the limit is"),
    "not a model file (text)": ("notes.txt", lambda: b"hello, this is not a model", "not a model file"),
    "not a model file (random .pt)": ("weights.pt", lambda: b"\x00\x01 not a pickle" * 300, "not a PyTorch model file"),
    "garbled safetensors header": (
        "garbled.safetensors", lambda: b"\x10\x00\x00\x00\x00\x00\x00\x00{{{not json at all", "not a safetensors file",
    ),
    "corrupt safetensors": ("broken.safetensors", lambda: corrupt_safetensors(), "corrupt or truncated"),
    "truncated safetensors": ("cut.safetensors", lambda: good_safetensors()[:-300], "corrupt or truncated"),
    "truncated .pt": ("cut.pt", lambda: good_pt()[: len(good_pt()) // 2], "corrupt or truncated"),
    "no float tensors": (
        "ids.safetensors", lambda: save({"ids": torch.arange(10), "mask": torch.ones(3, dtype=torch.bool)}),
        "no floating-point tensors",
    ),
    "no float tensors (.pt)": (
        "counter.pt", lambda: _torch_bytes({"step": 3, "ids": torch.arange(5)}), "no floating-point tensors",
    ),
    "too many tensors": ("many.safetensors", too_many_tensors, "the limit is 10000"),
}


def _torch_bytes(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


# --- the app ------------------------------------------------------------------------------------------------------


def open_page(**params: str) -> AppTest:
    """A fresh session (one browser tab) on the Your model page."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(params)
    at.run()
    at.switch_page(PAGE).run()
    return at


def send(at: AppTest, filename: str, data: bytes) -> AppTest:
    """Upload a file through the page's file uploader and rerun, as dropping it in the browser does."""
    at.file_uploader[0].set_value((filename, data, "application/octet-stream"))
    return at.run()


def texts(at: AppTest) -> str:
    """All visible text of a few element kinds, for "does the page say ..." checks."""
    parts = []
    for kind in ("title", "subheader", "markdown", "caption", "info", "warning", "error", "metric"):
        for el in at.get(kind):
            parts.append(str(getattr(el, "value", "")) + " " + str(getattr(el, "label", "")))
    return "\n".join(parts)


def errors(at: AppTest) -> str:
    return " ".join(e.value for e in at.error)


def charts(at: AppTest) -> list[str]:
    return [el.proto.spec for el in at.get("plotly_chart")]


def tensor_table(at: AppTest) -> list[str]:
    """Tensor names in the page's first table."""
    return list(at.dataframe[0].value["tensor"])


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label.startswith(label))


def assert_app_still_works(at: AppTest) -> None:
    """No traceback, the sidebar is there, and another page still renders with its charts."""
    assert not at.exception, [e.value for e in at.exception]
    assert at.slider(key="bits").value in range(2, 17), "the shared sidebar still renders"
    at.switch_page("app_pages/tensor_explorer.py").run()
    assert not at.exception and charts(at), "another page still renders"
    at.switch_page(PAGE).run()
    assert not at.exception


def assert_shows_upload(at: AppTest, names: list[str]) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, errors(at)
    assert sorted(names) == sorted(tensor_table(at))
    assert len(charts(at)) == 3, "value histogram, error histogram, error curves"


# --- the page -------------------------------------------------------------------------------------------------------


def test_the_page_renders_without_an_upload_and_points_at_the_demo():
    at = open_page()
    assert not at.exception and not at.error
    assert [t.value for t in at.title] == ["📤 Your model"]
    assert len(at.latex) == 1, "the page shows its formula"
    page = texts(at)
    assert "Load the demo model" in page and "Upload a model file" in page
    assert "safetensors.torch import save_file" in " ".join(c.value for c in at.code)
    assert at.file_uploader and at.button(key="_qe_upload_demo")
    assert not charts(at)


def test_a_good_safetensors_upload_lists_its_tensors_and_draws_the_charts():
    at = send(open_page(), "mine.safetensors", good_safetensors())
    assert_shows_upload(at, list(good_state_dict()))
    page = texts(at)
    assert "mine.safetensors" in page
    assert at.selectbox(key="_qe_upload_tensor").value == "block.conv.weight", "the first weight matrix / kernel"
    for label in ("Scale s", "Zero point z", "Levels used", "Clipped", "SQNR", "MSE", "Max error"):
        assert any(m.label.startswith(label) for m in at.metric), label
    hist = json.loads(charts(at)[0])
    names = {t.get("name", "") for t in hist["data"]}
    assert any(n.startswith("grid levels") for n in names) and any(n.startswith("clip range") for n in names)
    assert "Not available for an uploaded file" in page, "output drift is marked unavailable, with the reason"
    assert all(len(c.encode()) <= MAX_CHART_BYTES for c in charts(at))


def test_a_pytorch_state_dict_upload_works_and_says_what_it_skipped():
    at = send(open_page(), "mine.pt", good_pt())
    assert_shows_upload(at, list(good_state_dict()))
    assert "skipped" in " ".join(w.value for w in at.warning), "the integer 'steps' entry is listed as skipped"


def test_the_demo_button_loads_a_model_with_an_outlier_channel():
    at = open_page(bits="4")
    at.button(key="_qe_upload_demo").click().run()
    assert_shows_upload(at, list(upload.demo_state_dict()))
    assert at.selectbox(key="_qe_upload_tensor").value == "encoder.0.weight"
    per_tensor = float(metric(at, "SQNR").split()[0])
    at.radio(key="granularity").set_value("channel").run()
    per_channel = float(metric(at, "SQNR").split()[0])
    assert per_channel > per_tensor + 10, "one scale per row rescues the 63 rows the outlier row squeezed"
    assert "axis 0" in texts(at), "per-channel says which axis it uses"


def test_moving_the_sidebar_changes_the_histogram_and_the_size():
    at = open_page()
    at.button(key="_qe_upload_demo").click().run()
    before_chart, before_size = charts(at)[0], metric(at, "Quantized")
    at.slider(key="bits").set_value(3).run()
    assert charts(at)[0] != before_chart
    assert metric(at, "Quantized") != before_size
    assert not at.exception and not at.error


@pytest.mark.parametrize("fmt", ["nf4", "fp8_e4m3", "pow2"])
def test_other_number_formats_work_on_uploads(fmt):
    at = open_page(format=fmt)
    at.button(key="_qe_upload_demo").click().run()
    assert not at.exception and not at.error
    assert len(charts(at)) == 3


def test_per_channel_on_a_1d_tensor_is_allowed_but_called_degenerate():
    at = open_page(granularity="channel")
    at.button(key="_qe_upload_demo").click().run()
    at.selectbox(key="_qe_upload_tensor").set_value("encoder.0.bias").run()
    assert not at.exception and not at.error
    assert "degenerate" in texts(at)
    assert len(charts(at)) == 3


def test_1d_tensors_work_per_tensor():
    at = open_page()
    at.button(key="_qe_upload_demo").click().run()
    at.selectbox(key="_qe_upload_tensor").set_value("norm.weight").run()
    assert not at.exception and not at.error
    assert len(charts(at)) == 3


def test_a_group_size_that_does_not_fit_the_tensor_is_explained_without_a_traceback():
    # The sidebar's group sizes fit digits-mlp fc1 (rows of 64); block.fc1.weight has rows of 100.
    at = open_page(granularity="group", group_size="64")
    send(at, "mine.safetensors", good_safetensors())
    at.selectbox(key="_qe_upload_tensor").set_value("block.fc1.weight").run()
    assert not at.exception
    message = errors(at)
    assert "Groups of 64 do not fit" in message and "100 values" in message
    assert "these fit: 2, 4" in message, "names the sidebar's sizes that would work"
    # The rest of the page still works: the size table adapts the group size and says so.
    assert "stored as" in " ".join(at.dataframe[1].value.columns)
    assert "cannot take this granularity" in texts(at)
    at.selectbox(key="group_size").set_value(4).run()
    assert not at.error and len(charts(at)) == 3


def test_per_group_on_a_conv_kernel_groups_its_flattened_rows():
    at = open_page(model="digits-cnn", layer="conv2", granularity="group", group_size="48")
    send(at, "mine.safetensors", save({"conv.weight": torch.randn(8, 16, 3, 3)}))
    assert not at.exception and not at.error, errors(at)
    assert "flattened into a row of 144 values" in texts(at)


def test_a_tensor_with_nan_is_flagged_and_refused_plainly():
    bad = torch.randn(16, 16)
    bad[3, 3] = float("nan")
    at = send(open_page(), "nan.safetensors", save({"a.weight": torch.randn(8, 8), "b.weight": bad}))
    assert not at.exception
    assert "NaN" in " ".join(w.value for w in at.warning), "the file's notes name the tensor"
    at.selectbox(key="_qe_upload_tensor").set_value("b.weight").run()
    assert not at.exception
    assert "Cannot quantize `b.weight`" in errors(at) and "NaN" in errors(at)
    assert metric(at, "Quantized"), "the size of the whole file is still shown"


def test_unusual_tensors_get_a_message_or_charts_never_a_traceback():
    odd = {
        "a.empty": torch.zeros(0, 5),
        "b.scalar": torch.tensor(3.5),
        "c.half": torch.randn(8, 16).half(),
        "d.bf16": torch.randn(4, 8).bfloat16(),
        "e.f64": torch.randn(6, 6).double(),
        "f.fp8": torch.randn(4, 4).to(torch.float8_e4m3fn),
    }
    at = send(open_page(granularity="group", group_size="8"), "odd.safetensors", save(odd))
    assert at.selectbox(key="_qe_upload_tensor").value == "c.half", "the first view is not the empty tensor"
    for name in odd:
        for gran in ("tensor", "channel", "group"):
            at.radio(key="granularity").set_value(gran)
            at.selectbox(key="_qe_upload_tensor").set_value(name).run()
            assert not at.exception, (name, gran, [e.value for e in at.exception])
            assert bool(at.error) != (len(charts(at)) == 3), (name, gran, errors(at))
            assert metric(at, "Quantized"), "the size section renders whatever the tensor"
    at.selectbox(key="_qe_upload_tensor").set_value("a.empty").run()
    assert "no values to quantize" in errors(at)
    at.radio(key="granularity").set_value("channel")
    at.selectbox(key="_qe_upload_tensor").set_value("b.scalar").run()
    assert "single number" in errors(at)


def test_a_big_tensor_curves_use_a_subsample_and_say_so_and_charts_stay_small():
    at = send(open_page(granularity="channel"), "big.safetensors", save({"w": torch.randn(700, 1000)}))
    assert not at.exception and not at.error
    assert "curves use an evenly spread" in texts(at)
    assert all(len(c.encode()) <= MAX_CHART_BYTES for c in charts(at))


def test_moving_the_bit_slider_reuses_the_sessions_curves(monkeypatch):
    calls = []
    real = upload.curve
    monkeypatch.setattr(upload, "curve", lambda x, spec: calls.append(spec) or real(x, spec))
    at = open_page()
    at.button(key="_qe_upload_demo").click().run()
    first = len(calls)
    assert first >= 4
    at.slider(key="bits").set_value(5).run()
    at.slider(key="bits").set_value(8).run()
    assert len(calls) == first, "the curves sweep every bit width: moving the slider recomputes nothing"
    assert not at.exception


# --- every bad file -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_file_gets_a_plain_message_and_the_app_keeps_working(case):
    filename, make, words = BAD_FILES[case]
    at = send(open_page(), filename, make())
    assert not at.exception, [e.value for e in at.exception]
    message = errors(at)
    assert filename in message and words in message, message
    assert "Traceback" not in message
    assert not charts(at)
    assert_app_still_works(at)
    # ... and a good file afterwards works.
    send(at, "good.safetensors", good_safetensors())
    assert_shows_upload(at, list(good_state_dict()))


@pytest.mark.parametrize("case", ["raw pickle, exec", "raw pickle, os.system", "torch.save archive"])
def test_a_pickle_crafted_to_run_code_is_refused_and_does_not_run(tmp_path, case):
    marker = tmp_path / f"pwned-{uuid.uuid4().hex}"
    filename, data = crafted_pickles(marker)[case]
    at = send(open_page(), filename, data)
    assert not marker.exists(), "the payload ran: the file was unpickled with code execution"
    assert not at.exception
    message = errors(at)
    assert "refused" in message and "run code" in message, message
    assert_app_still_works(at)
    send(at, "good.safetensors", good_safetensors())
    assert_shows_upload(at, list(good_state_dict()))
    assert not marker.exists()


def test_the_crafted_pickles_really_would_run_code(tmp_path):
    """The control for the test above: plain unpickling of the same payloads does create the marker."""
    for case, (_, data) in crafted_pickles(tmp_path / "m").items():
        marker = tmp_path / f"control-{uuid.uuid4().hex}"
        payload = crafted_pickles(marker)[case][1]
        if case == "torch.save archive":
            torch.load(io.BytesIO(payload), weights_only=False)
        else:
            pickle.loads(payload)
        assert marker.exists(), case
        assert data  # the refused variant exists too


def test_the_upload_limit_is_the_servers_max_upload_size():
    """The loader refuses exactly what the browser refuses: server.maxUploadSize from .streamlit/config.toml."""
    import tomllib

    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert upload.max_upload_bytes() == config["server"]["maxUploadSize"] * 1024 * 1024
    at = open_page()
    assert f"up to {config['server']['maxUploadSize']} MB" in at.file_uploader[0].label


# --- the file as the sidebar's model ------------------------------------------------------------------------------


def use_file_in_sidebar(at: AppTest) -> AppTest:
    """Press the page's "make this file the sidebar's model" button."""
    return at.button(key="_qe_upload_open").click().run()


def hist_counts(at: AppTest) -> tuple[list[float], list[float]]:
    """The float and dequantized bar heights of the page's first value histogram."""
    spec = json.loads(charts(at)[0])
    bars = [t for t in spec["data"] if t["type"] == "bar"]
    return [_decoded(bars[0]["y"]), _decoded(bars[1]["y"])]


def _decoded(y):  # noqa: ANN001, ANN202 - plotly's typed-array JSON or a list
    if isinstance(y, dict):
        return np.frombuffer(base64.b64decode(y["bdata"]), dtype=y["dtype"]).tolist()
    return list(y)


def test_a_loaded_file_is_offered_as_the_sidebars_model_and_the_button_selects_it():
    at = open_page()
    assert UPLOAD_MODEL not in at.selectbox(key="model").options, "no file, no entry"
    at.button(key="_qe_upload_demo").click().run()
    assert at.selectbox(key="model").options[-1] == UPLOAD_MODEL, "offered as soon as it is loaded"
    at.selectbox(key="_qe_upload_tensor").set_value("encoder.2.weight").run()
    use_file_in_sidebar(at)
    assert not at.exception and not at.error
    assert at.selectbox(key="model").value == UPLOAD_MODEL
    assert at.selectbox(key="layer").value == "encoder.2.weight", "the tensor picked on the page"
    assert "encoder.0.weight" in at.selectbox(key="layer").options
    assert "demo-model.safetensors" in " ".join(c.value for c in at.caption)
    assert [link.label for link in at.get("page_link")] == [
        "🔬 Tensor explorer of this file", "📉 Error curves of this file", "⚡ Size of this file",
    ]


def test_the_tensor_explorer_error_curves_and_size_pages_read_the_file():
    at = use_file_in_sidebar(open_page(bits="4").button(key="_qe_upload_demo").click().run())
    mine = texts(at)  # the Your model page's own view of the same tensor, at the same settings
    own_hist = hist_counts(at)

    at.switch_page("app_pages/tensor_explorer.py").run()
    assert not at.exception and not at.error, errors(at)
    assert len(charts(at)) == 3, "values, errors, per-channel ranges"
    assert "Weights of `encoder.0.weight`" in texts(at) and "64×128" in texts(at)
    assert hist_counts(at) == own_hist, "the same counts as the Your model page: the same tensor, same spec"
    assert metric(at, "SQNR") in mine

    at.switch_page("app_pages/error_curves.py").run()
    assert not at.exception and not at.error, errors(at)
    assert len(charts(at)) == 2, "error vs bit width, error vs clipping"

    at.switch_page("app_pages/size_speed.py").run()
    assert not at.exception and not at.error, errors(at)
    assert "Size of your file at int4 sym per-tensor" in texts(at)
    assert metric(at, "Quantized (4-bit)") == human_bytes(upload.storage_table(
        upload.current(at.session_state).tensors, QuantSpec(bits=4)
    )[1]["quantized"])
    assert "Timing needs a model that runs" in texts(at)
    assert not [b for b in at.button if b.key == "measure"]


@pytest.mark.parametrize("page", ["output_drift", "sensitivity", "qat", "algorithms"])
def test_pages_that_run_the_model_say_why_a_file_cannot_go_there(page):
    at = use_file_in_sidebar(open_page().button(key="_qe_upload_demo").click().run())
    at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception and not at.error
    assert "needs a model that runs" in texts(at)
    assert not charts(at)


def test_activations_of_a_file_are_explained_not_computed():
    at = use_file_in_sidebar(open_page(target="both").button(key="_qe_upload_demo").click().run())
    for page in ("tensor_explorer", "error_curves"):
        at.switch_page(f"app_pages/{page}.py").run()
        assert not at.exception and not at.error, errors(at)
        assert "holds weights only" in texts(at)
        assert charts(at), "the weights are still shown"


def test_the_walkthroughs_error_formulas_work_on_a_file_tensor():
    at = use_file_in_sidebar(open_page().button(key="_qe_upload_demo").click().run())
    at.switch_page("app_pages/walkthrough.py").run()
    assert not at.exception and not at.error, errors(at)
    assert f"`encoder.0.weight` ({UPLOAD_MODEL}, 64×128 = 8,192 values)" in texts(at)


def test_removing_the_file_while_it_is_the_sidebars_model_falls_back_to_a_sample_model():
    at = use_file_in_sidebar(send(open_page(), "mine.safetensors", good_safetensors()))
    assert at.selectbox(key="model").value == UPLOAD_MODEL
    at.file_uploader[0].clear()
    at.run()
    assert not at.exception and not at.error
    assert UPLOAD_MODEL not in at.selectbox(key="model").options, "the sidebar no longer offers it"
    assert at.selectbox(key="model").value == "digits-mlp"
    at.switch_page("app_pages/tensor_explorer.py").run()
    assert not at.exception and not at.error and charts(at)


def test_a_link_naming_the_file_in_another_tab_falls_back_with_a_notice():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update({"model": UPLOAD_MODEL, "layer": "encoder.0.weight"})
    at.run()
    assert not at.exception
    assert at.selectbox(key="model").value == "digits-mlp"
    notice = " ".join(w.value for w in at.warning)
    assert f"`model={UPLOAD_MODEL}`" in notice and "only in the browser tab that loaded a file" in notice


def test_two_tabs_with_different_files_under_the_same_names_never_share_results():
    """Results for a file are memoized in its own session: same model entry, layer and spec, different numbers."""
    demo = upload.demo_state_dict()
    scaled = {name: 10 * t for name, t in demo.items()}
    first = use_file_in_sidebar(send(open_page(), "a.safetensors", save(demo)))
    second = use_file_in_sidebar(send(open_page(), "b.safetensors", save(scaled)))
    views = []
    for at in (first, second):
        at.switch_page("app_pages/tensor_explorer.py").run()
        assert at.selectbox(key="model").value == UPLOAD_MODEL and not at.error
        views.append((metric(at, "MSE"), json.loads(charts(at)[0])["layout"]["xaxis"].get("range")))
    assert views[0][0] != views[1][0], "the tabs' MSE differ: each read its own file"
    first.switch_page("app_pages/tensor_explorer.py").run()
    assert metric(first, "MSE") == views[0][0], "and the first tab still reads its own"


# --- session isolation ---------------------------------------------------------------------------------------------


def test_another_session_does_not_see_an_upload():
    secret = f"secret_{uuid.uuid4().hex}.weight"
    first = send(open_page(), "private.safetensors", save({secret: torch.randn(32, 64)}))
    assert secret in tensor_table(first)
    assert upload.current(first.session_state) is not None

    second = open_page()
    assert not second.exception
    page = texts(second) + " ".join(str(d.value) for d in second.dataframe)
    assert secret not in page and "private.safetensors" not in page
    assert "Upload a model file" in page
    assert upload.STATE_KEY not in second.session_state
    # Same page, same settings in both: the second session computes nothing from the first one's tensors.
    second.button(key="_qe_upload_demo").click().run()
    assert secret not in " ".join(tensor_table(second))
    assert secret in tensor_table(first.run()), "and the first session still has its own file"


def test_removing_the_file_forgets_it():
    at = send(open_page(), "mine.safetensors", good_safetensors())
    assert upload.STATE_KEY in at.session_state
    at.file_uploader[0].clear()
    at.run()
    assert not at.exception
    assert upload.STATE_KEY not in at.session_state
    assert "Upload a model file" in texts(at)


def test_upload_code_uses_no_shared_cache_and_no_module_state():
    """Shared caches and module globals are visible to every session: uploads must never go there."""
    for rel in ("ui/compute/upload.py", "ui/views/upload.py", PAGE):
        source = (REPO / rel).read_text()
        tree = ast.parse(source)
        attrs = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        assert not attrs & {"cache_data", "cache_resource", "experimental_memo", "experimental_singleton"}, rel
        for node in tree.body:  # module-level assignments: only constants (no dict / list / set to fill later)
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                assert not isinstance(node.value, (ast.Dict, ast.List, ast.Set, ast.DictComp, ast.ListComp)), (
                    rel, ast.unparse(node),
                )
    # The shared cached functions of ui.compute.explorer take names of sample models only, never tensors; for the file as
    # the sidebar's model they go through model_cache, which memoizes in the session (the two-tabs test above).
    assert "global " not in (REPO / "ui" / "compute" / "upload.py").read_text()


# --- ui.compute.upload on a plain dict as the session ------------------------------------------------------------------------


class FakeFile:
    """What ``st.file_uploader`` returns: name, size, file_id and getvalue()."""

    def __init__(self, name: str, data: bytes) -> None:
        self.name, self._data, self.size, self.file_id = name, data, len(data), uuid.uuid4().hex

    def getvalue(self) -> bytes:
        return self._data


@pytest.mark.parametrize("case", [c for c in BAD_FILES if c != "over the size limit"])
def test_ingest_stores_the_plain_message_of_every_bad_file(case):
    filename, make, words = BAD_FILES[case]
    session: dict = {}
    up = upload.ingest(session, make(), filename)
    assert upload.current(session) is up and not up.ok
    assert words in up.error
    good = upload.ingest(session, good_safetensors(), "good.safetensors")
    assert good.ok and upload.current(session) is good


def test_ingest_refuses_over_the_limit_before_reading():
    session: dict = {}
    up = upload.ingest(session, b"\0" * 2049, "model.safetensors", max_bytes=2048)
    assert not up.ok and "the limit is 2.0 KB" in up.error


def test_sync_uploader_reads_a_file_once_and_forgets_it_when_removed(monkeypatch):
    reads = []
    real = upload.load_tensors
    monkeypatch.setattr(upload, "load_tensors", lambda *a, **k: reads.append(a[1]) or real(*a, **k))
    session: dict = {}
    f = FakeFile("a.safetensors", good_safetensors())
    upload.sync_uploader(session, f)
    upload.sync_uploader(session, f)
    assert reads == ["a.safetensors"], "reruns with the same file do not read it again"
    upload.sync_uploader(session, FakeFile("b.safetensors", good_safetensors()))
    assert reads[-1] == "b.safetensors" and upload.current(session).filename == "b.safetensors"
    upload.sync_uploader(session, None)
    assert upload.current(session) is None


def test_a_loaded_demo_survives_the_uploader_and_a_new_file_replaces_it():
    session: dict = {}
    f = FakeFile("a.safetensors", good_safetensors())
    upload.sync_uploader(session, f)
    upload.load_demo(session)
    upload.sync_uploader(session, f)  # the same file still in the uploader: the demo stays
    assert upload.current(session).source == "demo"
    upload.sync_uploader(session, None)  # removing the file does not drop the demo
    assert upload.current(session).source == "demo"
    upload.sync_uploader(session, FakeFile("c.safetensors", good_safetensors()))
    assert upload.current(session).filename == "c.safetensors"


def test_memoized_results_live_in_the_session_and_are_dropped_with_the_file():
    session: dict = {}
    up = upload.load_demo(session)
    upload.view_for(session, up, "encoder.0.weight", QuantSpec(bits=4))
    assert session[upload.MEMO_KEY] and all(k[0] == up.token for k in session[upload.MEMO_KEY])
    upload.ingest(session, good_safetensors(), "next.safetensors")
    assert upload.MEMO_KEY not in session


def test_the_memo_is_bounded():
    session: dict = {}
    for i in range(upload.MEMO_ENTRIES + 10):
        upload.memo(session, ("k", i), lambda i=i: i)
    assert len(session[upload.MEMO_KEY]) == upload.MEMO_ENTRIES
    assert upload.memo(session, ("k", upload.MEMO_ENTRIES + 9), lambda: "recomputed") == upload.MEMO_ENTRIES + 9


def test_plan_per_channel_uses_axis_0_and_flags_1d_and_scalars():
    spec = QuantSpec(granularity="channel", axis=1)
    p = upload.plan("w", (8, 3), spec)
    assert p.spec.axis == 0 and "axis 0" in p.notes[0]
    assert "degenerate" in upload.plan("b", (8,), spec).notes[0]
    with pytest.raises(ValueError, match="single number"):
        upload.plan("t", (), spec)
    assert upload.plan("t", (), QuantSpec()).spec.granularity == "tensor"


def test_plan_per_group_needs_the_rows_to_divide():
    spec = QuantSpec(granularity="group", group_size=8)
    assert upload.plan("w", (4, 16), spec).shape == (4, 16)
    assert upload.plan("k", (4, 2, 2, 2), spec).shape == (4, 8), "3-D+ rows are the flattened trailing axes"
    assert upload.plan("b", (24,), spec).shape == (24,)
    with pytest.raises(ValueError, match="Groups of 8 do not fit.*10 values.*Group sizes that fit: 2, 5, 10"):
        upload.plan("w", (4, 10), spec)
    with pytest.raises(ValueError, match="None of the sidebar's group sizes fit"):
        upload.plan("w", (4, 9), spec, offered=[2, 4, 8])


def test_tensor_view_refuses_nan_with_quantlibs_message():
    x = torch.ones(4, 4)
    x[0, 0] = float("inf")
    with pytest.raises(ValueError, match="NaN|inf"):
        upload.tensor_view(x, QuantSpec())


def test_curve_sample_keeps_whole_channels_and_groups_and_caps_the_size():
    x = torch.arange(400 * 64, dtype=torch.float32).reshape(400, 64)
    sub, note = upload.curve_sample(x, QuantSpec(granularity="channel"), 64 * 50)
    assert sub.shape == (50, 64) and "evenly spread" in note
    assert all(int(r[0]) % 64 == 0 for r in sub), "whole rows"
    wide = torch.arange(2 * 4096, dtype=torch.float32).reshape(2, 4096)
    sub, _ = upload.curve_sample(wide, QuantSpec(granularity="group", group_size=16), 1024)
    assert sub.numel() <= 1024 and sub.shape[1] % 16 == 0
    groups = sub.reshape(-1, 16)
    assert bool((groups[:, 1:] - groups[:, :-1] == 1).all()), "whole groups of consecutive values"
    vec = torch.randn(10_000)
    sub, _ = upload.curve_sample(vec, QuantSpec(granularity="channel"), 1000)
    assert sub.shape[1] == 1 and sub.numel() <= 1000
    assert upload.curve_sample(vec, QuantSpec(), 20_000) == (vec, None)


def test_storage_table_counts_codes_and_scales():
    tensors = {"w": torch.zeros(64, 128), "b": torch.zeros(64), "h": torch.zeros(10, 32, dtype=torch.float16)}
    df, totals = upload.storage_table(tensors, QuantSpec(bits=4))
    by = df.set_index("tensor")
    assert by.loc["w", "code_bytes"] == 64 * 128 / 2 and by.loc["w", "scale_bytes"] == 4
    assert totals["float"] == 64 * 128 * 4 + 64 * 4 + 320 * 2, "each tensor at its own dtype"
    _, ch = upload.storage_table(tensors, QuantSpec(bits=4, granularity="channel"))
    assert ch["overhead"] == (64 + 64 + 10) * 4
    df, grp = upload.storage_table(tensors, QuantSpec(bits=8, scheme="asymmetric", granularity="group", group_size=64))
    by = df.set_index("tensor")
    assert by.loc["w", "scale_bytes"] == 128 * (4 + 1), "asymmetric adds a 1-byte zero point per group"
    assert "groups of 32" in by.loc["h", "stored as"] and grp["adapted"] == 1
    assert grp["ratio"] == pytest.approx(grp["float"] / grp["quantized"])


def test_the_demo_file_goes_through_the_real_loader():
    up = upload.read_upload(upload.demo_file(), upload.DEMO_FILENAME, "demo")
    assert up.ok and up.tensors.format == "safetensors" and set(up.tensors) == set(upload.demo_state_dict())
    w = up.tensors["encoder.0.weight"]
    widths = w.amax(dim=1) - w.amin(dim=1)
    assert widths.argmax() == 7 and widths[7] > 10 * widths.median(), "one outlier row"
