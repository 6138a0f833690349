"""serving.protocol against the real app: a browserless session opens links, moves the bit slider, presses a button.

One ``streamlit run app.py`` for the module (the ``server`` fixture of conftest.py); digits-mlp pages only, so
the whole module takes a few seconds once the server is up.
"""

from __future__ import annotations

import asyncio
import doctest
import threading

import pytest

from serving import protocol
from serving.protocol import Result, Session, open_link

pytestmark = pytest.mark.server


async def _open(url: str, link: str) -> tuple[Session, Result]:
    session = Session(url, timeout=120)
    return session, await session.open(link)


def test_protocol_doctests_pass() -> None:
    """The module's worked examples (link splitting, a failed open) hold; serving/ is outside testpaths."""
    assert doctest.testmod(protocol).failed == 0


def test_opening_a_link_receives_the_sidebar_widgets_with_the_link_values_and_no_error(server) -> None:
    async def run() -> None:
        session, result = await _open(server.url, "/?model=digits-mlp&bits=6&granularity=channel")
        try:
            assert result.status == "finished", result
            assert result.errors == [] and result.warnings == []
            widgets = {w.label: w for w in session.widgets()}
            assert {"Model", "Layer", "Bit width", "Scheme", "Rounding", "Log-scale counts"} <= set(widgets)
            assert widgets["Model"].value == "digits-mlp"
            assert widgets["Bit width"].scalar == 6
            assert widgets["Granularity (one scale per …)"].value == "channel"
            assert widgets["Bit width"].query_param == "bits"
            assert result.widgets == len(widgets)
        finally:
            await session.close()

    asyncio.run(run())


def test_moving_the_bit_slider_reruns_the_page_with_the_new_width(server) -> None:
    async def run() -> None:
        session, result = await _open(server.url, "/?model=digits-mlp&bits=6")
        try:
            assert result.ok, result
            assert any("int6" in t for t in session.texts())
            moved = await session.set_widget("Bit width", 3)
            assert moved.ok, moved
            texts = session.texts()
            assert any("int3" in t for t in texts) and not any("int6" in t for t in texts)
            assert "Levels used: 6 / 8" in texts  # 2^3 levels, of which 6 occur in this layer
            assert session.widget("Bit width").scalar == 3
            assert session.query["bits"] == "3"
        finally:
            await session.close()

    asyncio.run(run())


def test_a_bad_link_gets_the_notice_and_the_dismiss_button_clears_it(server) -> None:
    async def run() -> None:
        session, result = await _open(server.url, "/?model=digits-mlp&bits=99")
        try:
            assert result.status == "finished" and result.errors == []
            assert len(result.warnings) == 1 and "`bits=99`" in result.warnings[0]
            assert session.widget("Bit width").scalar == 8  # the default took its place
            dismissed = await session.click("Dismiss")
            assert dismissed.ok and dismissed.warnings == []
        finally:
            await session.close()

    asyncio.run(run())


def test_open_link_works_from_a_thread_and_reports_an_unknown_page(server) -> None:
    results: list[Result] = []

    def warm() -> None:
        results.append(open_link(server.url, "/error-curves?model=digits-mlp&bits=4", timeout=120))
        results.append(open_link(server.url, "/no-such-page?model=digits-mlp", timeout=120))

    thread = threading.Thread(target=warm)
    thread.start()
    thread.join(timeout=240)
    good, unknown = results
    assert good.ok and good.widgets > 0 and good.messages > 0, good
    assert unknown.status == "finished" and not unknown.ok
    assert any(e.startswith("page not found") for e in unknown.errors)


def test_a_widget_label_that_is_not_on_the_page_is_a_lookup_error(server) -> None:
    async def run() -> None:
        session, _ = await _open(server.url, "/?model=digits-mlp")
        try:
            with pytest.raises(LookupError, match="no single widget labelled 'Nope'"):
                await session.set_widget("Nope", 1)
            with pytest.raises(ValueError, match="has no option"):
                await session.set_widget("Model", "no-such-model")
        finally:
            await session.close()

    asyncio.run(run())
