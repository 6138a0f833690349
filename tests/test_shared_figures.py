"""Charts of sample models are built once per view for the whole server (``ui.widgets.chart``)."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from ui.figures import explorer as figures

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def _open(page: str | None = None, **params: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params.update(params)
    at.run()
    if page:
        at.switch_page(page).run()
    return at


def _charts(at: AppTest) -> list[str]:
    return [el.proto.spec for el in at.get("plotly_chart")]


def test_a_second_participant_on_the_same_view_gets_the_same_charts_without_building_them(monkeypatch):
    params = {"model": "digits-mlp", "layer": "fc2", "bits": "5", "scheme": "asymmetric"}
    first = _open(**params)
    assert not first.exception and _charts(first)

    def built(*args, **kwargs):
        raise AssertionError("a chart was built again for a view the server has drawn")

    for name in ("value_histogram", "error_histogram", "block_chart"):
        monkeypatch.setattr(figures, name, built)
    second = _open(**params)
    assert not second.exception and not second.error
    assert _charts(second) == _charts(first)


def test_another_view_gets_its_own_charts(monkeypatch):
    a = _open(model="digits-mlp", layer="fc2", bits="6")
    b = _open(model="digits-mlp", layer="fc2", bits="3")
    assert _charts(a)[0] != _charts(b)[0], "the histogram of 3 bits is not the one of 6 bits"
    log = _open(model="digits-mlp", layer="fc2", bits="3", log="true")
    assert _charts(log)[0] != _charts(b)[0], "the log-scale toggle is part of the key"


def test_output_drift_and_error_curves_charts_are_shared_too(monkeypatch):
    for page in ("app_pages/output_drift.py", "app_pages/error_curves.py"):
        first = _open(page, model="tiny-linear", bits="4")
        assert not first.exception and _charts(first)

        def built(*args, page=page, **kwargs):
            raise AssertionError(f"{page}: a chart was built again")

        for name in ("counts_histogram", "drift_scatter", "metric_sweep_figure", "error_curves_figure",
                     "clip_figure"):
            monkeypatch.setattr(figures, name, built)
        second = _open(page, model="tiny-linear", bits="4")
        assert not second.exception and not second.error, page
        assert _charts(second) == _charts(first), page
        monkeypatch.undo()
