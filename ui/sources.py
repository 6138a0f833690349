"""Where a page's layers come from: a shipped sample model or this session's uploaded file - one dispatch.

The sidebar's ``model`` is a string (the URL is the state). :func:`get` turns it into a :class:`ModelSource`
once, and every page and cached computation asks the source instead of comparing strings:

>>> src = get("tiny-mlp")                                          # doctest: +SKIP
>>> src.shared, src.runs_model, src.layers()[0].name               # doctest: +SKIP
(True, True, 'fc1')

- :class:`SampleSource` - a model from ``sample_models``: one shared, read-only object per process
  (``st.cache_resource``), its results cached for every session (``st.cache_data`` keyed by strings), float
  activations captured on its calibration inputs, whole-model pages (drift, sensitivity, QAT) available.
- :class:`FileSource` - the file this browser tab loaded on the 📤 Your model page (sidebar value
  :data:`UPLOAD_MODEL`): its tensors are the layers, per-channel runs along axis 0, the spec is fitted to each
  tensor (:func:`ui.compute.upload.plan`, the one group-size rule); it belongs to this session alone, so its
  results go to the session's memo, never to a cache shared with other sessions; it holds weights only, so
  there are no activations and nothing to run.

:func:`model_cache` is the decorator cached computations use to follow that split without knowing about it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import streamlit as st
import torch

import sample_models
from quantlib import QuantSpec, budget
from quantlib.model import (
    LayerInfo,
    activation_spec,
    capture_activations,
    layer_weight,
    list_layers,
    weight_view,
)
from ui import text
from ui.compute import upload
from ui.i18n import _

#: The sidebar's model entry (and URL value) for the file this session loaded on the "Your model" page.
UPLOAD_MODEL = "your-file"

F = TypeVar("F", bound=Callable[..., Any])


# --- the shared objects ----------------------------------------------------------------------------------------


@st.cache_data(max_entries=1, show_spinner=False)
def model_names() -> list[str]:
    return sample_models.names()


@st.cache_resource(show_spinner=False)
def _sample(name: str) -> sample_models.SampleModel:
    return sample_models.load(name)


#: The sample models this process has loaded: a spinner only while one is really loading. (A cache decorator's
#: own spinner text is fixed at import, in English; the sidebar asks for the model first, outside any cache.)
_loaded: set[str] = set()


def sample(name: str) -> sample_models.SampleModel:
    """The shared sample model (also cached by ``sample_models.load``): read it, never modify it."""
    if name in _loaded:
        return _sample(name)
    with st.spinner(_("Loading the sample model…")):
        found = _sample(name)
    _loaded.add(name)
    return found


@st.cache_resource(max_entries=8, show_spinner=False)
def _activations(model: str, layer: str) -> torch.Tensor:
    """Float input activations of ``layer`` on the model's calibration inputs (shared: read only). Called
    inside cached computations, so it shows no spinner of its own: the pages' spinners cover it."""
    sm = sample(model)
    return capture_activations(sm.model, layer, sm.calibration_inputs)


@st.cache_resource(max_entries=16, show_spinner=False)
def _sample_layers(model: str) -> tuple[LayerInfo, ...]:
    """Shared, not copied: pages ask for the layers several times a run, and ``st.cache_data`` would unpickle a
    new list each time. The tuple and its frozen ``LayerInfo`` rows cannot be changed."""
    return tuple(list_layers(sample(model).model))


# --- the two sources -------------------------------------------------------------------------------------------


class ModelSource:
    """What the pages ask of "the sidebar's model", whatever it is. Subclasses answer for their kind."""

    name: str
    #: Results may be cached for every session (keyed by strings); False: this session's memo only.
    shared: bool
    #: There is a model to run on inputs (drift, sensitivity, QAT, activations, speed).
    runs_model: bool

    def layers(self) -> list[LayerInfo]:
        raise NotImplementedError

    def layer_info(self, layer: str) -> LayerInfo:
        for info in self.layers():
            if info.name == layer:
                return info
        raise ValueError(_("{model} has no layer named {layer}", model=self.name,
                           layer=text.code_span(text.shorten(layer, 80))))

    def default_layer(self) -> str | None:
        """The layer a first view shows when a link names none (None: the first small one)."""
        return None

    def caption(self) -> str:
        """One markdown line under the sidebar's model box."""
        raise NotImplementedError

    def about(self) -> str:
        """What this model is, for the sidebar's "About this model"."""
        raise NotImplementedError

    def no_activations_reason(self, layer: str) -> str | None:
        """Why this layer has no float activations to quantize, in plain words; None when it has them."""
        raise NotImplementedError

    def tensor(self, layer: str, kind: str, spec: QuantSpec) -> torch.Tensor:
        """The tensor a page analyses: the layer's weight (as ``quantlib.model`` groups it) or its input
        activations."""
        raise NotImplementedError

    def fitted_spec(self, layer: str, kind: str, spec: QuantSpec) -> QuantSpec:
        """The spec as it applies to this layer: weights per-channel along the output axis, activations with
        one static range per tensor, a file's tensor fitted by its plan."""
        raise NotImplementedError

    def notes(self, layer: str, spec: QuantSpec) -> tuple[str, ...]:
        """How the spec was fitted to the layer, for the user (empty when it applies as set)."""
        return ()

    def feature_axis(self, layer: str, kind: str) -> int:
        """The axis the per-channel chart splits along: output channels of a weight, features of an activation."""
        return self.layer_info(layer).channel_axis

    def cached(self, fn: Callable[..., Any], shared: Callable[..., Any], *args: Any) -> Any:
        """``fn(self.name, *args)`` through the cache this source's results may live in."""
        raise NotImplementedError


@dataclass(frozen=True)
class SampleSource(ModelSource):
    """A shipped sample model: shared, read-only, runnable."""

    name: str
    shared: bool = True
    runs_model: bool = True

    @property
    def model(self) -> sample_models.SampleModel:
        return sample(self.name)

    def layers(self) -> list[LayerInfo]:
        return list(_sample_layers(self.name))

    def default_layer(self) -> str | None:
        return self.model.default_layer

    def caption(self) -> str:
        return _("**{title}** · task: {task}", title=_(self.model.title), task=_(self.model.task))

    def about(self) -> str:
        return self.model.describe(_)

    def no_activations_reason(self, layer: str) -> str | None:
        if self.layer_info(layer).kind not in ("Embedding", "EmbeddingBag"):
            # known without running the model for embeddings (MiniLM's copy for capturing takes a second)
            if _activations(self.name, layer).is_floating_point():
                return None
        token = layer if layer else "root"
        return _("`{layer}` is an embedding table: its input is integer ids, so there are no float activations to "
                 "quantize.", layer=token)

    def tensor(self, layer: str, kind: str, spec: QuantSpec) -> torch.Tensor:
        if kind == "weights":
            return weight_view(layer_weight(self.model.model, layer), spec)
        act = _activations(self.name, layer)
        if not act.is_floating_point():
            raise ValueError(_("{layer} looks up rows by integer id: its input has no float activations to quantize",
                               layer=text.code_span(layer) if layer else _("this layer")))
        return act

    def fitted_spec(self, layer: str, kind: str, spec: QuantSpec) -> QuantSpec:
        if kind == "activations":
            return activation_spec(spec)
        info = self.layer_info(layer)
        return spec.replace(axis=info.channel_axis) if spec.granularity == "channel" else spec

    def feature_axis(self, layer: str, kind: str) -> int:
        if kind == "weights":
            return self.layer_info(layer).channel_axis
        act = _activations(self.name, layer)
        return 1 if act.dim() == 4 else act.dim() - 1  # NCHW for conv inputs, features last otherwise

    def cached(self, fn: Callable[..., Any], shared: Callable[..., Any], *args: Any) -> Any:
        return shared(self.name, *args)


@dataclass(frozen=True)
class FileSource(ModelSource):
    """This session's loaded file: weights only, private to the session."""

    upload: Any  # ui.compute.upload.Upload, loaded
    name: str = UPLOAD_MODEL
    shared: bool = False
    runs_model: bool = False

    def layers(self) -> list[LayerInfo]:
        return self.cached(
            lambda _model, _what: [
                LayerInfo(r["name"], r["kind"], tuple(r["shape"]), int(r["numel"]), 0)
                for r in self.upload.tensors.rows()
            ],
            None,
            "layers",
        )

    def caption(self) -> str:
        name = text.escape_markdown(text.shorten(self.upload.filename, 60))
        return _("📤 **{name}** · weights only · this browser tab", name=name)

    def about(self) -> str:
        return _(
            "The file you loaded on the Your model page: each floating-point tensor is a layer. The Tensor "
            "explorer, Error curves, Size and the walkthrough's error formulas work on it; pages that run the "
            "model (output drift, sensitivity, QAT, speed) need a sample model. Nobody else sees it, and a "
            "shared link falls back to a sample model."
        )

    def no_activations_reason(self, layer: str) -> str | None:
        return _(
            "An uploaded file holds weights only: activations exist only while a model runs on inputs, and a file "
            "of weights has no code to run. Showing what its weights can show."
        )

    def _plan(self, layer: str, spec: QuantSpec) -> tuple[torch.Tensor, upload.Plan]:
        """Tensor ``layer`` and the plan that fits ``spec`` to it (a plain ValueError when it cannot)."""
        t = self.upload.tensors[layer]
        p = upload.plan(layer, tuple(t.shape), spec)
        # A file's tensor may be too big to look at even at the plainest setting: say so before computing.
        plain = budget.view_cost(p.shape, budget.plain(p.spec))
        budget.require(plain, plain, p.shape, budget.plain(p.spec))  # refused only beyond MAX_BYTES / MAX_SECONDS
        return t, p

    def tensor(self, layer: str, kind: str, spec: QuantSpec) -> torch.Tensor:
        if kind != "weights":
            raise ValueError(_("an uploaded file holds weights only: it has no activations"))
        return upload.analysed_tensor(*self._plan(layer, spec))

    def fitted_spec(self, layer: str, kind: str, spec: QuantSpec) -> QuantSpec:
        if kind == "activations":
            return activation_spec(spec)
        return self._plan(layer, spec)[1].spec

    def notes(self, layer: str, spec: QuantSpec) -> tuple[str, ...]:
        return self._plan(layer, spec)[1].notes

    def cached(self, fn: Callable[..., Any], shared: Callable[..., Any] | None, *args: Any) -> Any:
        key = (self.upload.token, getattr(fn, "__qualname__", "fn"), *args)
        return upload.memo(st.session_state, key, lambda: fn(self.name, *args))


# --- the dispatch ----------------------------------------------------------------------------------------------


def _loaded_upload() -> Any:
    """This session's readable file (a ``ui.compute.upload.Upload``), or None."""
    up = upload.current(st.session_state)
    return up if up is not None and up.ok else None


def has_session_upload() -> bool:
    return _loaded_upload() is not None


def session_upload() -> Any:
    """This session's loaded file, or a plain ValueError when there is none."""
    up = _loaded_upload()
    if up is None:
        raise ValueError(_("no model file is loaded in this browser session: load one on the 📤 Your model page"))
    return up


def is_file(model: str) -> bool:
    """The sidebar value names this session's file (no file needs to be loaded to answer)."""
    return model == UPLOAD_MODEL


def get(model: str) -> ModelSource:
    """The source the sidebar value ``model`` names (a plain ValueError for a file that is not loaded)."""
    if is_file(model):
        return FileSource(session_upload())
    return SampleSource(model)


def model_cache(max_entries: int) -> Callable[[F], F]:
    """``st.cache_data(max_entries)`` for a function of ``(model, *strings)`` - for sample models.

    A sample model's results are shared by every session (keyed by strings). An uploaded file's are remembered
    in the uploading session only, keyed by the upload's token (new for every file read), so a result of one
    file is never served for another, nor to another session.
    """

    def decorate(fn: F) -> F:
        shared = st.cache_data(max_entries=max_entries, show_spinner=False)(fn)

        @functools.wraps(fn)
        def call(model: str, *args: Any) -> Any:
            return get(model).cached(fn, shared, *args)

        call.clear = shared.clear  # type: ignore[attr-defined]
        return call  # type: ignore[return-value]

    return decorate


# --- the questions pages ask, by sidebar value -----------------------------------------------------------------


def layers(model: str) -> list[LayerInfo]:
    """The quantizable layers of a sample model, in module order; an uploaded file's tensors, in file order
    (per-channel along axis 0, the output channel of Linear and Conv weights)."""
    return get(model).layers()


def layer_info(model: str, layer: str) -> LayerInfo:
    return get(model).layer_info(layer)


def has_float_activations(model: str, layer: str) -> bool:
    """False for layers fed integer ids (embedding tables) and for an uploaded file (weights only)."""
    return get(model).no_activations_reason(layer) is None


def tensor_for(model: str, layer: str, kind: str, spec: QuantSpec) -> torch.Tensor:
    return get(model).tensor(layer, kind, spec)


def spec_for(model: str, layer: str, kind: str, spec: QuantSpec) -> QuantSpec:
    return get(model).fitted_spec(layer, kind, spec)


def file_notes(model: str, layer: str, spec: QuantSpec) -> tuple[str, ...]:
    return get(model).notes(layer, spec)


def feature_axis(model: str, layer: str, kind: str) -> int:
    return get(model).feature_axis(layer, kind)
