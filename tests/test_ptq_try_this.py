"""The figures quoted in the Algorithms page's "Try this" boxes are measured: each claim is recomputed here with
the page's own job function and settings (fixed seeds: AdaRound's seed 0, deterministic calibration sets) and
must round to the stated two decimals."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlparse

import pytest

from ui.compute import ptq as pd_

CLAIMS = [(box, run, alpha, value) for box in pd_.TRY_THIS for run, alpha, value in box.claims]


@pytest.mark.slow
@pytest.mark.parametrize(("box", "run", "alpha", "value"), CLAIMS,
                         ids=[f"{b.model()}-{r}-{a:g}" for b, r, a, _ in CLAIMS])
def test_each_try_this_figure_is_what_the_page_measures(box, run, alpha, value):
    result = pd_.compute_run(box.model(), run, box.spec(), alpha)
    measured = result["metrics"][box.metric]
    assert abs(measured - value) <= 0.005 + 1e-9, f"{box.title}: {run} measured {measured:.4f}, box says {value}"


def test_each_box_links_to_the_settings_it_quotes():
    for box in pd_.TRY_THIS:
        params = dict(parse_qsl(urlparse(box.link()).query))
        assert params["model"] == box.model() and int(params["bits"]) == box.spec().bits
        chosen, unknown = pd_.parse_algos(params["algos"])
        assert not unknown
        quoted = {run for run, _, _ in box.claims} - {pd_.RTN_W, pd_.RTN_WA}
        assert quoted <= set(chosen)
        for _run, _alpha, value in box.claims:
            assert f"{value:.2f}" in box.summary()
