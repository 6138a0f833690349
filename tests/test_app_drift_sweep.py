"""The output-drift page's "task metric vs bit width" curve: a job of the job runner, shared by its settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from quantlib import QuantSpec
from ui import jobs
from ui.compute import analysis as ad
from ui.compute import explorer

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TIMEOUT = 600


def open_drift(**params: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(params)
    at.run()
    at.switch_page("app_pages/output_drift.py").run()
    return at


def test_a_quick_model_draws_the_curve_from_one_shared_job_and_a_rerun_computes_nothing(monkeypatch):
    at = open_drift(model="digits-mlp", bits="4")
    assert [e.value for e in at.exception] == [] and [e.value for e in at.error] == []
    assert "Task metric vs bit width" in [s.value for s in at.subheader]
    key = next(k for k, _ in jobs.runner().finished_items("drift-sweep|digits-mlp|all|"))
    values = jobs.runner().result(key)
    assert len(values) == len(explorer.SWEEP_BITS) and all(0.0 <= v <= 1.0 for v in values)
    assert values[-1] > values[0], "16 bits keeps more accuracy than 2 bits"
    charts_before = [el.proto.spec for el in at.get("plotly_chart")]

    def recomputed(*args, **kwargs):
        raise AssertionError("the sweep was computed again")

    monkeypatch.setattr(ad, "compute_drift_sweep", recomputed)
    again = open_drift(model="digits-mlp", bits="4")  # another participant, same settings
    assert [e.value for e in again.exception] == [] and [e.value for e in again.error] == []
    assert [el.proto.spec for el in again.get("plotly_chart")] == charts_before


def test_the_curve_of_the_current_scheme_is_the_same_job_for_every_bit_width():
    spec = QuantSpec(bits=3)
    a = ad.drift_sweep_key("digits-mlp", "all", "fc1", "weights", spec, explorer.SWEEP_BITS)
    b = ad.drift_sweep_key("digits-mlp", "all", "fc1", "weights", spec.replace(bits=7), explorer.SWEEP_BITS)
    assert a == b


@pytest.mark.slow
def test_a_slow_model_offers_the_curve_behind_a_button_and_starts_nothing_by_itself():
    at = open_drift(model="minilm")
    assert [e.value for e in at.exception] == []
    assert any(b.label.startswith("Compute the curve") for b in at.button)
    assert not jobs.runner().finished_items("drift-sweep|minilm|") and jobs.runner().busy() == (0, 0)
