"""Every computation a link or an upload can start has a budget: quantlib.budget's cost model and refusal, the
row-chunked calibration that keeps memory flat (and results unchanged), and the hostile links and files found in
the sweep, each refused up front through the app (AppTest) with a plain message and without computing.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import save
from streamlit.testing.v1 import AppTest

import quantlib.calibration as calibration
from quantlib import QuantSpec, budget
from quantlib.budget import BudgetExceeded, Cost
from quantlib.calibration import MSE_CLIP_RATIOS, clip_errors, compute_range, minmax_range, row_chunks

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "app.py")
TIMEOUT = 300
EMBEDDING = (30522, 384)  # MiniLM's bert.embeddings.word_embeddings
ADVICE = "Use per-channel, a larger group size, or minmax calibration."


def _rows(r: int, k: int, seed: int = 0) -> torch.Tensor:
    """Random rows of different widths, with a constant row and an all-zero row (the special cases)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(r, k, generator=g) * torch.rand(r, 1, generator=g) * 3
    x[0, 0] = 25.0  # an outlier
    x[2] = 0.5
    x[3] = 0.0
    return x


def _few_rows_per_chunk(monkeypatch: pytest.MonkeyPatch, bytes_per_row: int, rows: int = 7) -> None:
    monkeypatch.setattr(calibration, "ROW_CHUNK_BYTES", bytes_per_row * rows)


# --- chunked calibration gives the same numbers -------------------------------------------------------------


def test_row_chunks_cover_every_row_once_within_the_budget():
    chunks = list(row_chunks(1000, 300, budget=10_000))
    assert [c.stop - c.start for c in chunks[:-1]] == [33] * (len(chunks) - 1)
    assert torch.equal(torch.cat([torch.arange(1000)[c] for c in chunks]), torch.arange(1000))
    assert [(c.start, c.stop) for c in row_chunks(3, 10**9, budget=10)] == [(0, 1), (1, 2), (2, 3)]


@pytest.mark.parametrize(
    ("scheme", "bits", "fmt"),
    [(scheme, bits, "int") for scheme in ("symmetric", "asymmetric") for bits in (4, 8)]
    + [("symmetric", 8, "fp8_e4m3"), ("symmetric", 4, "nf4"), ("asymmetric", 5, "pow2")],
)
def test_chunked_entropy_equals_the_unchunked_result(monkeypatch, scheme, bits, fmt):
    x = _rows(60, 48)
    spec = QuantSpec(bits=bits, scheme=scheme, format=fmt, calibration="entropy", granularity="channel")
    lo, hi = compute_range(x, spec)
    levels = calibration._side_levels(spec)
    _few_rows_per_chunk(monkeypatch, calibration.kl_bytes_per_row(48, calibration.kl_bins(60), levels))
    assert len(list(row_chunks(60, calibration.kl_bytes_per_row(48, calibration.kl_bins(60), levels)))) > 5
    lo_c, hi_c = compute_range(x, spec)
    assert torch.equal(lo_c, lo) and torch.equal(hi_c, hi)
    assert bool((hi > 0).any()), "a real search, not all-zero ranges"


def test_chunked_entropy_equals_the_unchunked_result_with_few_blocks(monkeypatch):
    # 16 blocks or fewer use 2048 bins: the chunks must keep the whole tensor's bin count, not their own.
    x = _rows(16, 500, seed=3)
    spec = QuantSpec(bits=6, calibration="entropy", granularity="channel")
    lo, hi = compute_range(x, spec)
    monkeypatch.setattr(calibration, "ROW_CHUNK_BYTES", 1)  # one row per chunk
    assert all(torch.equal(a, b) for a, b in zip(compute_range(x, spec), (lo, hi), strict=True))


@pytest.mark.parametrize("rounding", ["nearest", "truncate", "stochastic"])
@pytest.mark.parametrize("scheme", ["symmetric", "asymmetric"])
def test_chunked_mse_search_equals_the_unchunked_result(monkeypatch, rounding, scheme):
    x = _rows(90, 32, seed=1)
    spec = QuantSpec(bits=3, scheme=scheme, calibration="mse", granularity="channel", rounding=rounding, seed=7)
    lo, hi = compute_range(x, spec)
    _few_rows_per_chunk(monkeypatch, calibration.mse_bytes_per_row(32, len(MSE_CLIP_RATIOS)))
    lo_c, hi_c = compute_range(x, spec)
    assert torch.equal(lo_c, lo) and torch.equal(hi_c, hi)


@pytest.mark.parametrize("rounding", ["nearest", "stochastic"])
def test_chunked_clip_errors_equal_the_unchunked_ones(monkeypatch, rounding):
    x = _rows(50, 40, seed=2)
    lo, hi = minmax_range(x)
    spec = QuantSpec(bits=4, rounding=rounding, seed=5, granularity="channel")
    whole = clip_errors(x, lo, hi, spec, MSE_CLIP_RATIOS)
    _few_rows_per_chunk(monkeypatch, calibration.mse_bytes_per_row(40, len(MSE_CLIP_RATIOS)), rows=3)
    assert torch.equal(clip_errors(x, lo, hi, spec, MSE_CLIP_RATIOS), whole)


# --- the cost model -----------------------------------------------------------------------------------------------


def test_blocks_follow_the_layout():
    assert budget.blocks(EMBEDDING, QuantSpec()) == (1, 30522 * 384)
    assert budget.blocks(EMBEDDING, QuantSpec(granularity="channel")) == (30522, 384)
    assert budget.blocks(EMBEDDING, QuantSpec(granularity="group", group_size=2)) == (5860224, 2)
    assert budget.blocks(12_000_000, QuantSpec(granularity="channel")) == (12_000_000, 1)
    with pytest.raises(ValueError, match="does not divide"):
        budget.blocks((4, 6), QuantSpec(granularity="group", group_size=4))


def test_entropy_cost_grows_with_the_number_of_blocks():
    costs = [
        budget.estimate(EMBEDDING, QuantSpec(calibration="entropy", **kw)).seconds
        for kw in ({}, {"granularity": "channel"}, {"granularity": "group"}, {"granularity": "group", "group_size": 2})
    ]
    assert costs == sorted(costs) and costs[-1] > 100 * costs[1]


def test_chunked_searches_keep_memory_under_a_gigabyte_however_many_blocks():
    for spec in (
        QuantSpec(calibration="entropy", granularity="group", group_size=2),
        QuantSpec(calibration="mse", granularity="group", group_size=2),
        QuantSpec(calibration="entropy", scheme="asymmetric", granularity="channel"),
    ):
        assert budget.estimate(EMBEDDING, spec).bytes_peak < budget.MAX_BYTES, spec
    assert budget.estimate(12_000_000, QuantSpec(calibration="mse", granularity="channel")).bytes_peak < 1 << 30


def test_costs_in_sequence_add_time_and_keep_the_larger_peak():
    a, b = Cost(100, 1.0), Cost(300, 0.5)
    assert budget.sequence([a, b]) == Cost(300, 1.5)
    assert a.times(15) == Cost(100, 15.0)
    assert a.holding(50) == Cost(150, 1.0)


@pytest.mark.parametrize(
    ("shape", "kw"),
    [
        (EMBEDDING, {"granularity": "group", "group_size": 2, "calibration": "entropy"}),
        (EMBEDDING, {"granularity": "group", "calibration": "entropy"}),
        ((12_000_000,), {"granularity": "channel", "calibration": "entropy"}),
        ((12_000_000,), {"granularity": "channel", "calibration": "mse"}),
    ],
)
def test_the_sweeps_findings_are_over_budget(shape, kw):
    spec = QuantSpec(**kw)
    with pytest.raises(BudgetExceeded) as err:
        budget.check(budget.view_cost(shape, spec), budget.view_cost(shape, budget.plain(spec)),
                     budget.describe(shape, spec), spec)
    assert isinstance(err.value, ValueError)
    text = str(err.value)
    assert "too big for this shared server" in text and f"{math.prod(shape):,} values" in text
    assert text.endswith(".") and "Use " in text


def test_plain_settings_of_every_sample_layer_are_within_budget():
    import sample_models
    from quantlib.model import list_layers

    for name in sample_models.names():
        for info in list_layers(sample_models.load(name).model):
            for spec in (QuantSpec(), QuantSpec(granularity="channel", axis=info.channel_axis)):
                base = budget.view_cost(info.shape, budget.plain(spec))
                budget.check(budget.view_cost(info.shape, spec), base, "view", spec)  # does not raise


def test_the_message_names_the_work_its_size_and_what_to_change():
    spec = QuantSpec(granularity="group", group_size=2, calibration="entropy")
    with pytest.raises(BudgetExceeded) as err:
        budget.check(budget.view_cost(EMBEDDING, spec), budget.view_cost(EMBEDDING, budget.plain(spec)),
                     budget.describe(EMBEDDING, spec), spec)
    text = str(err.value)
    assert text.startswith("per-group entropy calibration of 11,720,448 values in 5,860,224 groups of 2")
    assert "of CPU" in text and "at most about" in text and text.endswith(ADVICE)
    assert budget.advice(QuantSpec(calibration="mse", granularity="channel")) == (
        "Use per-tensor or minmax calibration."
    )


def test_a_tensor_too_big_even_plainly_says_so_whatever_the_settings():
    spec = QuantSpec()
    huge = (50_000_000,)  # a 50 MB fp8 upload
    plain = budget.view_cost(huge, spec)
    with pytest.raises(BudgetExceeded, match="whatever the settings"):
        budget.check(plain, plain, budget.describe(huge, spec), spec)
    small = budget.view_cost((4_000_000,), spec)
    budget.check(small, small, "view", spec)  # a plain view within the hard limits is never refused


# --- through the app: the exact links and files of the sweep --------------------------------------------------------


@pytest.fixture
def no_search(monkeypatch):
    """Record every entropy / MSE search the app starts (rows it was given); they must not start when refused."""
    calls: list[int] = []
    kl, mse = calibration._kl_thresholds, calibration._chunk_errors

    def kl_spy(mags, *args, **kwargs):
        calls.append(int(mags.numel()))
        return kl(mags, *args, **kwargs)

    def mse_spy(rows, *args, **kwargs):
        calls.append(int(rows.numel()))
        return mse(rows, *args, **kwargs)

    monkeypatch.setattr(calibration, "_kl_thresholds", kl_spy)
    monkeypatch.setattr(calibration, "_chunk_errors", mse_spy)
    return calls


def open_link(page: str | None = None, **params: str) -> AppTest:
    """A browser landing on a shared link: first run on the default page, then the page the link names."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(params)
    at.run()
    if page is not None:
        at.switch_page(page).run()
    return at


def errors(at: AppTest) -> str:
    return " ".join(e.value for e in at.error)


def assert_refused_plainly(at: AppTest, what: str) -> None:
    assert not at.exception, [e.value for e in at.exception]
    text = errors(at)
    assert f"Could not {what} with these settings:" in text, text
    assert "too big for this shared server" in text and "Use " in text, text
    assert "Error" not in text and "Traceback" not in text, text


EMBEDDING_LINK = {"model": "minilm", "layer": "bert.embeddings.word_embeddings", "granularity": "group",
                  "calibration": "entropy"}


@pytest.mark.parametrize("group_size", ["2", None], ids=["group_size=2", "default group size"])
def test_entropy_per_group_on_the_embedding_table_link_is_refused_before_computing(no_search, group_size):
    link = dict(EMBEDDING_LINK, **({"group_size": group_size} if group_size else {}))
    at = open_link(**link)
    assert_refused_plainly(at, "quantize the weights of this layer")
    if group_size:
        assert "5,860,224 groups of 2" in errors(at)
        assert errors(at).endswith(ADVICE)
    assert no_search == [], "no entropy search started"


def test_error_curves_and_walkthrough_refuse_the_same_link(no_search):
    from ui.compute.explorer import CURVE_MAX_VALUES

    at = open_link("app_pages/error_curves.py", **EMBEDDING_LINK, group_size="2")
    assert_refused_plainly(at, "draw the error curves of the weights")
    assert "the error curve over 15 bit widths (" in errors(at)
    # Only what fits ran: at most the per-tensor curve (one search per width) on the page's evenly spread sample.
    assert len(no_search) <= 15 and max(no_search, default=0) <= CURVE_MAX_VALUES
    searched = len(no_search)
    at.switch_page("app_pages/walkthrough.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "too big for this shared server" in errors(at)
    assert max(no_search[searched:], default=0) <= CURVE_MAX_VALUES, "the formulas' 11.7M-value view never ran"


def test_output_drift_link_with_per_group_entropy_is_refused_before_quantizing(no_search, monkeypatch):
    import ui.compute.explorer

    copies = []
    monkeypatch.setattr(ui.compute.explorer, "quantize_weights", lambda *a, **k: copies.append(1))
    at = open_link(model="minilm", granularity="group", calibration="entropy")  # lands on the default page
    before = len(no_search)  # its default layer is small enough to calibrate: that may run
    at.switch_page("app_pages/output_drift.py").run()
    assert_refused_plainly(at, "quantize and run the model")
    assert "per-group entropy calibration of 40 layers (22,682,112 weights)" in errors(at)
    assert copies == [] and len(no_search) == before, "no layer was copied or calibrated"


def send_file(filename: str, data: bytes, **params: str) -> AppTest:
    at = open_link("app_pages/your_model.py", **params)
    at.file_uploader[0].set_value((filename, data, "application/octet-stream"))
    return at.run()


def test_the_shared_list_pickle_upload_gets_a_plain_message():
    import io

    l1 = [0] * 1000
    l2 = [l1] * 1000
    l3 = [l2] * 1000
    buf = io.BytesIO()
    torch.save({"w": torch.ones(3), "x": l3}, buf)
    at = send_file("bomb.pt", buf.getvalue())
    assert not at.exception, [e.value for e in at.exception]
    text = " ".join(str(el.value) for kind in ("error", "warning", "markdown") for el in at.get(kind))
    assert "object structure is too large" in text


@pytest.mark.parametrize("calibration_", ["entropy", "mse"])
def test_a_1d_tensor_of_12_million_values_per_channel_is_refused_plainly(no_search, calibration_, monkeypatch):
    import ui.compute.explorer

    summaries = []
    real = ui.compute.explorer.summarize
    monkeypatch.setattr(ui.compute.explorer, "summarize", lambda x, spec, *a: summaries.append(x.numel()) or real(x, spec, *a))
    data = save({"big": torch.zeros(12_000_000)})  # 48 MB, under the 50 MB upload limit
    at = send_file("big.safetensors", data, granularity="channel", calibration=calibration_)
    assert not at.exception, [e.value for e in at.exception]
    assert "too big for this shared server" in errors(at) and "Use per-tensor or minmax calibration." in errors(at)
    assert "12,000,000 channels of 1" in errors(at)
    assert max(summaries, default=0) < 12_000_000, "the 12M-value view was not computed"
    # what did run (error curves on a small evenly spread subset) searched far fewer values than the tensor holds
    assert max(no_search, default=0) <= 1 << 17


# --- the size table of an upload -------------------------------------------------------------------------------------


def test_storage_group_size_fallback_is_the_largest_divisor_without_counting_down():
    from ui.compute.upload import storage_spec

    spec = QuantSpec(granularity="group", group_size=6)
    for row in range(2, 120):
        brute = [g for g in range(6, 1, -1) if row % g == 0]
        s, _ = storage_spec((3, row), spec)
        assert (s.granularity, s.group_size) == (("group", brute[0]) if brute else ("channel", 6)), row
    # A long 1-D tensor offers group sizes of millions: another tensor's fallback comes from its divisors.
    s, note = storage_spec((1000,), QuantSpec(granularity="group", group_size=6_000_000))
    assert s.group_size == 1000 and note == "rows of 1,000: groups of 1000"
