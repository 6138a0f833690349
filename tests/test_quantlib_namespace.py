"""What a notebook user meets in ``quantlib``: tab completion, top-level entry points, a light import."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import quantlib


def test_dir_offers_the_lazy_submodules_and_whole_model_entry_points():
    names = dir(quantlib)
    for name in ("model", "qat", "sensitivity", "quantize_weights", "quantize_model", "layer_sensitivity",
                 "train_qat", "fake_quant", "QuantSpec"):
        assert name in names, name


@pytest.mark.parametrize("name", sorted(quantlib._LAZY))  # noqa: SLF001
def test_each_top_level_entry_point_is_its_submodules_function(name):
    module = importlib.import_module(f"quantlib.{quantlib._LAZY[name]}")  # noqa: SLF001
    assert getattr(quantlib, name) is getattr(module, name)
    assert name in quantlib.__all__


def test_importing_quantlib_loads_no_whole_model_module_until_asked():
    code = ("import sys, quantlib; assert 'quantlib.model' not in sys.modules; "
            "quantlib.quantize_weights; assert 'quantlib.model' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_an_unknown_name_is_a_plain_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'quantise'"):
        quantlib.quantise  # noqa: B018


def test_no_top_level_function_shares_its_name_with_a_submodule():
    import inspect
    from pathlib import Path

    folder = Path(quantlib.__file__).parent
    modules = {p.stem for p in folder.glob("*.py")} | {p.parent.name for p in folder.glob("*/__init__.py")}
    functions = {name for name in quantlib.__all__ if inspect.isfunction(getattr(quantlib, name))}
    assert functions, "quantlib exports functions"
    assert not functions & modules, functions & modules  # quantlib.quantize is the function, always
    assert inspect.isfunction(quantlib.quantize) and inspect.isfunction(quantlib.grid)
