"""Bring-your-own-model uploads: session-only storage, and the computations the "Your model" page shows.

**Where an upload lives.** Only in the uploading browser session's ``st.session_state``. Every function here that
stores or reads takes that mapping as ``state`` (a plain ``dict`` in tests), and nothing here uses
``st.cache_data`` / ``st.cache_resource`` or a module-level variable: those are shared by every session of the
server process, so a tensor or a number computed from one put there could be served to another participant.
Results are instead memoized *in the session* (:func:`memo`, a small LRU keyed by upload, tensor and spec), so a
slider move that comes back to a setting does not recompute, and a session's memory is released with it.

**What reaches the browser.** Histogram counts, grid levels (at most ``MAX_GRID_LEVELS``), curve points and
small tables: never the uploaded values themselves.

**Reading files** is :func:`quantlib.io.load_tensors`: ``safetensors`` or ``torch.load(weights_only=True)``,
in memory, which cannot run code from the file. Its :class:`~quantlib.io.UploadError` messages are meant for the
person uploading and are stored (in English) for the page to show; the page words the known ones in the
session's language (``ui.views.upload.plain``).

**Words.** Notes and refusals made here (a plan's notes, why a group size does not fit, the curves' labels) are
:class:`Message` values: the English sentence as a string, plus the ``N_``-marked msgid and values, so the page
shows them in the session's language with ``ui.compute.reductions.note_text`` - nothing here translates.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pandas as pd
import streamlit as st
import torch

from quantlib import QuantSpec, budget, error_curve
from quantlib.io import DEFAULT_MAX_TENSORS, UploadedTensors, UploadError, load_tensors
from quantlib.layout import fitted_group_size, group_sizes_for
from quantlib.model import LayerInfo, weight_storage
from quantlib.spec import SCHEMES
from ui.compute import reductions
from ui.compute.reductions import Note, note_text, spec_key
from ui.i18n import N_, _
from ui.text import code_span

_LOG = logging.getLogger("quantization_explorer")
T = TypeVar("T")

#: Session-state keys (one browser session each): the current upload, the uploader file already read, the memo.
STATE_KEY = "_qe_upload"
SEEN_KEY = "_qe_upload_seen"
MEMO_KEY = "_qe_upload_memo"
#: Memoized results kept per session (each a few kB: counts and curve points, no tensors).
MEMO_ENTRIES = 32
#: Error curves re-quantize the tensor at 15 bit widths for several settings; beyond this many values they use
#: an evenly strided subset. MSE / entropy calibration search a range at every width, so they get fewer.
CURVE_MAX_VALUES = 1 << 18
CURVE_MAX_VALUES_SEARCH = 1 << 16
#: The file the demo button builds.
DEMO_FILENAME = "demo-model.safetensors"


class Message(Note):
    """A :class:`~ui.compute.reductions.Note` whose values may be notes too (a sentence with translated parts):
    :meth:`text` shows those in the session's language as well. ``str`` is the English sentence.

    >>> m = Message(N_("{what} fit"), what=Message(N_("none")))
    >>> m, m.text()
    ('none fit', 'none fit')
    """

    def __reduce__(self) -> tuple[Any, ...]:
        return (_message, (self.msgid, self.values))

    def text(self) -> str:
        return _(self.msgid, **{k: note_text(v) if isinstance(v, Note) else v for k, v in self.values.items()})


def _message(msgid: str, values: dict[str, Any]) -> Message:
    return Message(msgid, **values)


class PlanError(ValueError):
    """Why the sidebar's spec cannot be applied to an uploaded tensor, worded when shown: ``str(err)`` is the
    :class:`Message` in the language of the session showing it (English outside a session), as ``ui.jobs``'
    errors are; ``msgid`` and ``values`` are its parts, ``args[0]`` the Message itself (English)."""

    def __init__(self, message: Message) -> None:
        super().__init__(message)
        self.msgid, self.values = message.msgid, message.values

    def __str__(self) -> str:
        message = self.args[0] if self.args else ""
        return message.text() if isinstance(message, Note) else str(message)


# --- the session's upload ------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Upload:
    """What one session has loaded: the tensors of a file, or the plain-English reason it could not be used.

    ``token`` is new for every file read, so memoized results of an earlier file can never be served for a later
    one, even under the same name.
    """

    filename: str
    source: str  # "file" (the uploader) or "demo" (the demo button)
    tensors: UploadedTensors | None = None
    error: str | None = None
    token: str = ""

    @property
    def ok(self) -> bool:
        return self.tensors is not None


def max_upload_bytes() -> int:
    """The upload limit in bytes: Streamlit's ``server.maxUploadSize`` (MB of 2^20 bytes, as its server counts).

    The browser refuses bigger files before sending them; the loader enforces the same limit on whatever does
    arrive, so both sides agree by construction.
    """
    return int(st.get_option("server.maxUploadSize")) * 1024 * 1024


def read_upload(
    data: bytes,
    filename: str,
    source: str = "file",
    max_bytes: int | None = None,
    max_tensors: int = DEFAULT_MAX_TENSORS,
) -> Upload:
    """Read a model file's bytes into an :class:`Upload` (never raises for bad input: the error is stored)."""
    limit = max_upload_bytes() if max_bytes is None else max_bytes
    token = uuid.uuid4().hex
    try:
        tensors = load_tensors(data, filename, max_bytes=limit, max_tensors=max_tensors)
    except UploadError as err:
        return Upload(filename, source, error=str(err), token=token)
    except Exception as err:  # noqa: BLE001 - load_tensors maps bad files to UploadError; anything else is a bug
        _LOG.exception("reading upload %r failed", filename)
        return Upload(
            filename,
            source,
            error=Message(N_("The file could not be read ({error}). Try another file."), error=type(err).__name__),
            token=token,
        )
    return Upload(tensors.filename, source, tensors=tensors, token=token)


def store(state: MutableMapping[str, Any], upload: Upload) -> Upload:
    """Make ``upload`` this session's current one; the previous file's memoized results are dropped."""
    state[STATE_KEY] = upload
    state.pop(MEMO_KEY, None)
    return upload


def ingest(
    state: MutableMapping[str, Any],
    data: bytes,
    filename: str,
    source: str = "file",
    max_bytes: int | None = None,
    max_tensors: int = DEFAULT_MAX_TENSORS,
) -> Upload:
    """Read a file and store the result (tensors or error message) in this session: bytes → Upload → session."""
    return store(state, read_upload(data, filename, source, max_bytes, max_tensors))


def current(state: Mapping[str, Any]) -> Upload | None:
    """This session's upload (loaded or refused), or None."""
    up = state.get(STATE_KEY)
    return up if isinstance(up, Upload) else None


def clear(state: MutableMapping[str, Any]) -> None:
    """Forget this session's upload and everything computed from it."""
    for key in (STATE_KEY, MEMO_KEY):
        state.pop(key, None)


def sync_uploader(state: MutableMapping[str, Any], file: Any) -> Upload | None:
    """Follow the file uploader (``file`` is its value: an ``UploadedFile`` or None), once per run.

    A file the session has not read yet is read and stored; the same file on later runs is not read again.
    When the user removes the file, an upload that came from it is forgotten (a loaded demo stays).
    """
    if file is None:
        if state.get(SEEN_KEY) is not None:
            state[SEEN_KEY] = None
            up = current(state)
            if up is not None and up.source == "file":
                clear(state)
        return current(state)
    file_id = getattr(file, "file_id", None) or f"{file.name}:{file.size}"
    if state.get(SEEN_KEY) != file_id:
        state[SEEN_KEY] = file_id
        ingest(state, file.getvalue(), file.name, "file")
    return current(state)


# --- the demo file ---------------------------------------------------------------------------------------------


def demo_state_dict() -> dict[str, torch.Tensor]:
    """A small made-up model's weights (deterministic): a conv stem, two Linear layers, a norm and a head.

    ``encoder.0.weight`` has one *outlier channel* (row 7, ten times wider than the rest): one shared per-tensor
    scale must stretch to cover it, which leaves the other 63 rows only a few grid levels - per-channel fixes
    that. ``stem.weight`` is a 4-D conv kernel and the biases / norm are 1-D, to show how those are handled.
    """
    g = torch.Generator().manual_seed(0)

    def randn(*shape: int, std: float) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * std

    enc0 = randn(64, 128, std=128**-0.5)
    enc0[7] *= 10.0  # the outlier channel
    return {
        "stem.weight": randn(16, 3, 3, 3, std=27**-0.5),
        "stem.bias": randn(16, std=0.05),
        "encoder.0.weight": enc0,
        "encoder.0.bias": randn(64, std=0.02),
        "encoder.2.weight": randn(32, 64, std=64**-0.5),
        "encoder.2.bias": randn(32, std=0.02),
        "norm.weight": 1.0 + randn(32, std=0.1),
        "head.weight": randn(10, 32, std=32**-0.5),
        "head.bias": torch.zeros(10),
    }


def demo_file() -> bytes:
    """The demo model as the bytes of a ``.safetensors`` file, built in memory."""
    from safetensors.torch import save

    return save(demo_state_dict())


def load_demo(state: MutableMapping[str, Any]) -> Upload:
    """Store the demo model as this session's upload (read through the same loader as a real file)."""
    return ingest(state, demo_file(), DEMO_FILENAME, source="demo")


# --- per-session memo ------------------------------------------------------------------------------------------


def memo(state: MutableMapping[str, Any], key: tuple, compute: Callable[[], T]) -> T:
    """``compute()``, remembered in this session under ``key`` (an LRU of ``MEMO_ENTRIES`` small results).

    Errors are not remembered: they are cheap to hit again and carry the message to show.
    """
    entries: OrderedDict = state.setdefault(MEMO_KEY, OrderedDict())
    if key in entries:
        entries.move_to_end(key)
        return entries[key]
    value = compute()
    entries[key] = value
    while len(entries) > MEMO_ENTRIES:
        entries.popitem(last=False)
    return value


# --- how the sidebar's spec applies to one uploaded tensor -----------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """The spec as applied to one uploaded tensor and the shape it is analysed in, with notes for the user."""

    spec: QuantSpec
    shape: tuple[int, ...]  # the analysed shape: the tensor's, or (rows, row length) for per-group on 3-D+
    notes: tuple[str, ...] = ()


def row_length(shape: tuple[int, ...]) -> int:
    """Length of the rows per-group cuts into groups: the last axis of a 1-D / 2-D tensor, the flattened
    trailing axes of a 3-D+ one (how ``quantlib.model`` groups conv kernels)."""
    if not shape:
        return 1
    if len(shape) == 1:
        return shape[0]
    return math.prod(shape[1:])


def _dims(shape: tuple[int, ...]) -> str:
    return "×".join(str(d) for d in shape) if shape else "a single number"


def group_mismatch(
    name: str, shape: tuple[int, ...], group_size: int, offered: Sequence[int] | None = None
) -> Message:
    """Why groups of ``group_size`` do not fit tensor ``name``, and what would (plain words for the page)."""
    row = row_length(shape)
    if len(shape) > 2:
        problem = Message(
            N_(
                "Groups of {group_size} do not fit: each row of {tensor} has {row:,} values ({dims} flattened), and "
                "per-group needs the row length to be a multiple of the group size."
            ),
            group_size=group_size, tensor=code_span(name), row=row, dims=_dims(shape[1:]),
        )
    else:
        problem = Message(
            N_(
                "Groups of {group_size} do not fit: each row of {tensor} has {row:,} values, and per-group needs "
                "the row length to be a multiple of the group size."
            ),
            group_size=group_size, tensor=code_span(name), row=row,
        )
    fits = group_sizes_for(row)
    usable = [d for d in fits if offered is None or d in set(offered)]
    listed = _short_list(fits) or Message(N_("none"))
    if offered is not None and usable:
        advice = Message(N_("Of the sidebar's group sizes, these fit: {sizes}."), sizes=_short_list(usable))
    elif offered is not None:
        advice = Message(
            N_(
                "None of the sidebar's group sizes fit (they are the ones that fit the sample layer chosen there; "
                "this tensor would take {sizes}): use **channel** or **tensor** granularity."
            ),
            sizes=listed,
        )
    else:
        advice = Message(N_("Group sizes that fit: {sizes}."), sizes=listed)
    return Message(N_("{problem} {advice}"), problem=problem, advice=advice)


def _short_list(values: Sequence[int], limit: int = 12) -> str:
    return ", ".join(str(v) for v in values[:limit]) + (" …" if len(values) > limit else "")


def plan(name: str, shape: tuple[int, ...], spec: QuantSpec, offered: Sequence[int] | None = None) -> Plan:
    """Fit the sidebar's spec to an uploaded tensor, or raise :class:`PlanError` (a ``ValueError``) saying in plain
    words why not.

    Per-channel is along axis 0 (a file does not say which layer a tensor belongs to; axis 0 is the output
    channel of Linear and Conv weights). Per-group cuts rows as :func:`row_length` says and needs the group size
    to divide them; ``offered`` (the group sizes the sidebar offers) lets the message say which of them fit.
    """
    shape = tuple(int(d) for d in shape)
    if shape and math.prod(shape) == 0:
        raise PlanError(
            Message(N_("it is empty (shape {shape}): there are no values to quantize."), shape=_dims(shape))
        )
    if spec.granularity == "tensor":
        return Plan(spec, shape)
    if not shape:
        raise PlanError(
            Message(
                N_(
                    "it is a single number: it has no channels or groups, so only per-tensor applies. "
                    "Switch granularity to **tensor** to see it."
                )
            )
        )
    if spec.granularity == "channel":
        if len(shape) == 1:
            return Plan(
                spec.replace(axis=0),
                shape,
                (
                    Message(
                        N_(
                            "{tensor} is 1-D, so per-channel gives each of its {n:,} values its own scale: every "
                            "value is stored almost exactly, and the scales take more room than the values. "
                            "Allowed, but degenerate - biases and norms are normally quantized per-tensor or kept "
                            "in float."
                        ),
                        tensor=code_span(name), n=shape[0],
                    ),
                ),
            )
        return Plan(
            spec.replace(axis=0),
            shape,
            (
                Message(
                    N_(
                        "Per-channel: one scale per slice along **axis 0**, the first dimension ({n:,} channels). "
                        "For Linear and Conv weights that is the output channel."
                    ),
                    n=shape[0],
                ),
            ),
        )
    row = row_length(shape)
    g = spec.group_size
    if row % g:
        raise PlanError(group_mismatch(name, shape, g, offered))
    notes = []
    analysed = shape
    if len(shape) > 2:
        analysed = (shape[0], row)
        notes.append(
            Message(
                N_(
                    "Per-group on a {ndim}-D tensor: each of the {n:,} slices along axis 0 is flattened into a row "
                    "of {row:,} values ({dims}) and cut into groups of {group_size}, as the sample models' conv "
                    "layers are."
                ),
                ndim=len(shape), n=shape[0], row=row, dims=_dims(shape[1:]), group_size=g,
            )
        )
    return Plan(spec, analysed, tuple(notes))


# --- one tensor: the numbers and counts the page draws -----------------------------------------------------------


def tensor_view(x: torch.Tensor, spec: QuantSpec) -> dict[str, Any]:
    """Histogram counts, grid, clip range, error counts and ``summarize``'s numbers of one tensor at ``spec``.

    ``x`` is already in the analysed shape (see :func:`plan`). The same view the tensor explorer draws, without
    its per-block chart, computed by the uncached :func:`ui.compute.reductions.reduce_view` so nothing of an upload reaches a
    cache shared between sessions. Raises ``ValueError`` (from quantlib) for what cannot be quantized: NaN / Inf
    values, an empty tensor.
    """
    return reductions.reduce_view(x, spec)[0]


def curve_sample(x: torch.Tensor, spec: QuantSpec, max_values: int) -> tuple[torch.Tensor, Message | None]:
    """At most about ``max_values`` values of ``x`` for the error curves, with the spec's blocks kept whole.

    Works on a 2-D view whose rows are channels (axis 0) and whose columns come in chunks of the group size:
    first an evenly spaced subset of rows, then, if one row alone is too long, every k-th chunk of each row. So
    per-channel still sees whole channels and per-group whole groups. Returns the 2-D subset and a note saying
    what was kept (None when all of ``x`` is used). ``x`` must be in the analysed shape of :func:`plan`.
    """
    n = x.numel()
    if n <= max_values:
        return x, None
    if x.dim() == 1:
        x2 = x.reshape(-1, 1) if spec.granularity == "channel" else x.reshape(1, -1)
    else:
        x2 = x.reshape(x.shape[0], -1)
    rows, cols = x2.shape
    keep = min(rows, max(1, max_values // max(cols, 1)))
    if keep < rows:
        idx = torch.linspace(0, rows - 1, keep).round().long().unique()
        x2 = x2.index_select(0, idx)
    if x2.numel() > max_values:
        chunk = spec.group_size if spec.granularity == "group" else 1
        stride = math.ceil(x2.numel() / max_values)
        x2 = x2.reshape(x2.shape[0], cols // chunk, chunk)[:, ::stride].reshape(x2.shape[0], -1)
    return x2, Message(N_("an evenly spread {kept:,} of its {total:,} values"), kept=x2.numel(), total=n)


def curve_cap(spec: QuantSpec) -> int:
    return CURVE_MAX_VALUES_SEARCH if spec.calibration in ("mse", "entropy") else CURVE_MAX_VALUES


def curve(x: torch.Tensor, spec: QuantSpec) -> tuple[pd.DataFrame, Message | None]:
    """``quantlib.error_curve`` over bits 2-16 at ``spec`` (its bit width ignored), on a subset of big tensors."""
    sub, note = curve_sample(x, spec, curve_cap(spec))
    reductions.check_budget(budget.curve_cost, sub, spec, reductions.CURVE_DOING)  # refused up front when the subset is still too costly
    return error_curve(sub, spec), note


def curve_label(scheme: str, granularity: str, group_size: int = 64) -> Message:
    """:func:`ui.compute.reductions.curve_label` (``symmetric · per-tensor``) as a :class:`Message`: the same
    English string, shown in the session's language with ``note_text``."""
    return Message(
        N_("{scheme} · {granularity}"),
        scheme=Message(reductions.SCHEME_NAMES[scheme]),
        granularity=Message(reductions.GRANULARITY_NAMES[granularity], group_size=group_size),
    )


def spec_label(spec: QuantSpec) -> Message:
    """``QuantSpec.label()`` (``int4 asym per-channel``) as a :class:`Message`: the same English string, its words
    shown in the session's language with ``note_text`` (format names such as ``int4`` stay as they are)."""
    fmt = f"{spec.format}{spec.bits}" if spec.is_integer_grid else spec.format
    return label(fmt, spec.scheme, spec.granularity, spec.group_size)


def label(fmt: str, scheme: str, granularity: str, group_size: int) -> Message:
    """:func:`spec_label` from its parts: ``fmt`` as the label spells it (``int4``, ``nf4``)."""
    return Message(
        N_("{format} {scheme} {granularity}"),
        format=fmt,
        scheme=Message(reductions.SCHEME_SHORT[scheme]),
        granularity=Message(reductions.GRANULARITY_NAMES[granularity], group_size=group_size),
    )


def curve_specs(spec: QuantSpec, ndim: int) -> tuple[dict[Message, QuantSpec], Message, dict[Message, QuantSpec]]:
    """The error curves to draw for one tensor: ``(curves, current label, references)``, each label → spec.

    Both schemes per-tensor and per-channel (per-channel only where the tensor has an axis), plus per-group at
    the current scheme when that is the setting, all with the current calibration; a dotted min-max line for the
    current setting when calibration is something else. Fixed-width formats (fp8, nf4) have no bits to sweep:
    the lines are integer grids for comparison.
    """
    base = spec.replace(format="int", bits=8) if not spec.is_integer_grid else spec.replace(bits=8)
    grans = ["tensor"] + (["channel"] if ndim >= 1 else [])
    if spec.granularity == "group":
        grans.append("group")
    curves = {}
    for scheme in SCHEMES:
        for gran in grans:
            if gran == "group" and scheme != spec.scheme:
                continue
            curves[curve_label(scheme, gran, spec.group_size)] = base.replace(scheme=scheme, granularity=gran)
    current = curve_label(spec.scheme, spec.granularity, spec.group_size)
    refs = {}
    if spec.calibration != "minmax":
        refs[Message(N_("{label} with minmax (for comparison)"), label=current)] = base.replace(calibration="minmax")
    return curves, current, refs


# --- storage of every uploaded tensor ------------------------------------------------------------------------------


def storage_spec(shape: tuple[int, ...], spec: QuantSpec) -> tuple[QuantSpec, Message | None]:
    """The spec one tensor is stored with in the size table, and a note when it had to differ.

    A single number has only a per-tensor scale. A group size that does not divide the rows becomes the largest
    one below it that does, or per-channel when none does - the rule the Output drift page applies to sample
    models, so a size is always shown.
    """
    if spec.granularity == "tensor":
        return spec, None
    if not shape:
        return spec.replace(granularity="tensor"), Message(N_("a single number: per-tensor"))
    if spec.granularity == "channel":
        return spec.replace(axis=0), None
    row = row_length(shape)
    fitted = fitted_group_size([row], spec.group_size)
    if fitted == spec.group_size:
        return spec, None
    if fitted:
        return spec.replace(group_size=fitted), Message(
            N_("rows of {row:,}: groups of {group_size}"), row=row, group_size=fitted
        )
    return spec.replace(granularity="channel", axis=0), Message(N_("rows of {row:,}: per-channel"), row=row)


def storage_table(tensors: Mapping[str, torch.Tensor], spec: QuantSpec) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Bytes of every tensor in its file dtype vs at ``spec``: codes + scale / zero-point overhead.

    Sizes follow :func:`quantlib.model.weight_storage` (codes packed at ``bits`` each; per block a float32 scale
    and, asymmetric, a zero point). Returns one row per tensor and the totals (``float``, ``payload``,
    ``overhead``, ``quantized``, ``ratio``, ``adapted``: how many tensors needed another group size).
    """
    rows = []
    for name, t in sorted(tensors.items()):
        shape = tuple(int(d) for d in t.shape)
        s, note = storage_spec(shape, spec)
        info = LayerInfo(name, "uploaded", shape if shape else (1,), int(t.numel()), 0)
        payload, overhead = weight_storage(s, info)
        float_bytes = int(t.numel()) * t.element_size()
        rows.append(
            {
                "tensor": name,
                "shape": _dims(shape),
                "dtype": str(t.dtype).removeprefix("torch."),
                "values": int(t.numel()),
                "float_bytes": float_bytes,
                "stored as": Message(N_("{label} ({note})"), label=spec_label(s), note=note) if note else spec_label(s),
                "code_bytes": payload,
                "scale_bytes": overhead,
                "quantized_bytes": payload + overhead,
                "ratio": float_bytes / (payload + overhead) if payload + overhead else float("nan"),
                "_adapted": note is not None,
            }
        )
    df = pd.DataFrame(rows)
    float_total = int(df["float_bytes"].sum())
    payload = int(df["code_bytes"].sum())
    overhead = int(df["scale_bytes"].sum())
    quantized = payload + overhead
    totals = {
        "float": float_total,
        "payload": payload,
        "overhead": overhead,
        "quantized": quantized,
        "ratio": float_total / quantized if quantized else float("nan"),
        "adapted": int(df["_adapted"].sum()),  # tensors stored with another granularity / group size
        "one_d_share": sum(int(t.numel()) for t in tensors.values() if t.dim() <= 1)
        / max(1, sum(int(t.numel()) for t in tensors.values())),
    }
    return df.drop(columns="_adapted"), totals


# --- what the page asks for, memoized in the session ----------------------------------------------------------------


def analysed_tensor(tensor: torch.Tensor, p: Plan) -> torch.Tensor:
    """The tensor in the plan's shape (a view: nothing is copied for a contiguous tensor)."""
    return tensor.reshape(p.shape) if tuple(tensor.shape) != p.shape else tensor


def view_for(
    state: MutableMapping[str, Any],
    up: Upload,
    name: str,
    spec: QuantSpec,
    offered: Sequence[int] | None = None,
) -> tuple[Plan, dict[str, Any]]:
    """The plan and the :func:`tensor_view` of tensor ``name`` of ``up`` at ``spec``, memoized in the session.

    Raises ``ValueError`` in plain words when the spec does not fit the tensor or the tensor cannot be quantized.
    """
    assert up.tensors is not None
    tensor = up.tensors[name]
    p = plan(name, tuple(tensor.shape), spec, offered)
    key = (up.token, name, "view", spec_key(p.spec), p.shape)
    return p, memo(state, key, lambda: tensor_view(analysed_tensor(tensor, p), p.spec))


def curves_for(
    state: MutableMapping[str, Any], up: Upload, name: str, p: Plan
) -> tuple[dict[Message, pd.DataFrame], Message, dict[Message, pd.DataFrame], Message | None]:
    """Error curves of tensor ``name`` for :func:`curve_specs`: ``(curves, current label, references, note)``.

    Every curve is memoized on its own with the bit width left out of the key, so moving the bit slider reuses
    them all. ``note`` says which subset of a big tensor the curves use.
    """
    assert up.tensors is not None
    x = analysed_tensor(up.tensors[name], p)
    specs, current, ref_specs = curve_specs(p.spec, x.dim())
    notes: list[Message] = []

    def one(s: QuantSpec) -> pd.DataFrame:
        df, note = memo(state, (up.token, name, "curve", spec_key(s), p.shape), lambda: curve(x, s))
        if note:
            notes.append(note)
        return df

    curves = {label: one(s) for label, s in specs.items()}
    refs = {label: one(s) for label, s in ref_specs.items()}
    return curves, current, refs, notes[0] if notes else None
