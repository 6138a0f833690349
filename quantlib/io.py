"""Bring-your-own-model uploads: read tensors from a model file's bytes - data, never code.

A model file is only ever read with loaders that cannot run code: ``safetensors`` (a JSON header plus raw
bytes) and ``torch.load(..., weights_only=True)``, whose restricted unpickler accepts tensors, dicts, lists and
plain numbers and refuses everything else - in particular a pickle crafted to call ``os.system`` on load.
Everything happens in memory (no temporary files).

What can go wrong gets an :class:`UploadError` (a ``ValueError``) with a message meant for the person uploading:
too big, not a model file, corrupt or truncated, tried to load Python objects, no floating-point tensors, too
many tensors. Tensors holding NaN / Inf are kept but listed in ``nonfinite`` (quantizing them will be refused,
with a message, by :func:`quantlib.quantize`).

    >>> import torch
    >>> from safetensors.torch import save
    >>> up = load_tensors(save({"fc.weight": torch.ones(2, 3), "fc.bias": torch.zeros(2)}), "tiny.safetensors")
    >>> [(r["name"], r["shape"], r["dtype"], r["numel"]) for r in up.rows()]
    [('fc.bias', (2,), 'float32', 2), ('fc.weight', (2, 3), 'float32', 6)]
    >>> load_tensors(b"hello", "notes.txt")
    Traceback (most recent call last):
    ...
    quantlib.io.UploadError: "notes.txt" is not a model file: expected a .safetensors, .pt, .pth or .bin file.
"""

from __future__ import annotations

import io
import json
import pickle
import struct
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

import torch
from safetensors.torch import load as st_load

#: Default largest upload: 50 MB, the app's ``server.maxUploadSize`` in ``.streamlit/config.toml`` (Streamlit
#: refuses bigger uploads itself; this limit also protects notebook callers).
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
#: Default largest number of tensors in one file: real models have hundreds to a few thousand.
DEFAULT_MAX_TENSORS = 10_000
#: Largest number of values of any kind (tensors, dicts, lists, numbers) the loader visits in a torch file's object
#: tree. A reference reached twice is visited twice: a pickle can share one list many times over (``L2 = [L1] *
#: 1000``), so a few kB of file can describe a tree of a billion leaves, and that is what this bounds.
DEFAULT_MAX_NODES = 20_000
#: Deepest nesting of dicts / lists the loader follows (a state_dict is 1-3 levels deep).
MAX_DEPTH = 32
#: The tensors' values may add up to at most this many times the file's size limit, in bytes. A weight is stored
#: once, but a file can hold many *views* of the same bytes (tied weights: twice; a hostile file: thousands), and
#: everything later (the NaN check, the size table) reads each view in full.
MAX_VALUE_BYTES_PER_FILE_BYTE = 2
#: Bytes of pickle a torch file may spend per allowed tensor: the pickle is unpickled *before* tensors can be
#: counted, so its size is what bounds that work (a state_dict entry takes ~100-300 bytes).
PICKLE_BYTES_PER_TENSOR = 2048

EXTENSIONS = (".safetensors", ".pt", ".pth", ".bin")
TORCH_EXTENSIONS = (".pt", ".pth", ".bin")
#: Keys under which checkpoints commonly keep the model's state_dict, tried in this order.
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model")

_ZIP_MAGIC = b"PK\x03\x04"
_SAFETENSORS_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit


class UploadError(ValueError):
    """An uploaded file could not be used; ``str(err)`` is a plain-English message for the user."""


def _size(n: int) -> str:
    for unit, factor in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= factor:
            return f"{n / factor:.1f} {unit}"
    return f"{n} bytes"


def _kind(t: torch.Tensor) -> str:
    """What a tensor of this rank usually is in a model, for listing uploads as layers."""
    return {0: "scalar", 1: "vector (bias / norm)", 2: "matrix (Linear / Embedding)"}.get(
        t.dim(), "kernel (Conv)" if t.dim() <= 5 else f"{t.dim()}-d tensor"
    )


def summary_rows(tensors: Mapping[str, torch.Tensor], nonfinite: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """One row per tensor, sorted by name: ``name, shape, dtype, numel, kind, finite``."""
    bad = set(nonfinite)
    return [
        {
            "name": name,
            "shape": tuple(t.shape),
            "dtype": str(t.dtype).removeprefix("torch."),
            "numel": int(t.numel()),
            "kind": _kind(t),
            "finite": name not in bad,
        }
        for name, t in sorted(tensors.items())
    ]


@dataclass(frozen=True, eq=False)
class UploadedTensors(Mapping[str, torch.Tensor]):
    """The floating-point tensors of an upload, by dotted name (a read-only mapping), plus what was left out.

    Attributes:
        tensors: ``{name: tensor}``, floating tensors only, on the CPU.
        filename: the uploaded file's name.
        format: ``"safetensors"`` or ``"pytorch"``.
        skipped: ``(name, reason)`` of entries that were not kept (integer buffers, non-tensor values).
        nonfinite: names of kept tensors that contain NaN or ±Inf.
    """

    tensors: dict[str, torch.Tensor]
    filename: str
    format: str
    skipped: tuple[tuple[str, str], ...] = ()
    nonfinite: tuple[str, ...] = ()
    num_bytes: int = field(default=0)

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.tensors[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    @property
    def total_values(self) -> int:
        """Number of floating-point values over all kept tensors."""
        return sum(int(t.numel()) for t in self.tensors.values())

    def rows(self) -> list[dict[str, Any]]:
        """``name, shape, dtype, numel, kind, finite`` per tensor (see :func:`summary_rows`)."""
        return summary_rows(self.tensors, self.nonfinite)

    def notes(self) -> list[str]:
        """Plain-English remarks for the user: what was skipped, which tensors hold NaN / Inf."""
        out = []
        if self.skipped:
            names = ", ".join(name for name, _ in self.skipped[:5]) + (" …" if len(self.skipped) > 5 else "")
            n = len(self.skipped)
            out.append(f"{n} {'entry' if n == 1 else 'entries'} skipped (not floating-point tensors): {names}.")
        if self.nonfinite:
            names = ", ".join(self.nonfinite[:5]) + (" …" if len(self.nonfinite) > 5 else "")
            n = len(self.nonfinite)
            out.append(
                f"{n} {'tensor contains' if n == 1 else 'tensors contain'} NaN or infinite values and cannot be "
                f"quantized: {names}."
            )
        return out


# --------------------------------------------------------------------------------------------------------------
# Format detection
# --------------------------------------------------------------------------------------------------------------


def _safetensors_header(data: bytes) -> dict | None:
    """The parsed JSON header if ``data`` starts like a safetensors file (8-byte little-endian length, then a
    JSON object), else None. A header that runs past the end of the data is reported as truncated."""
    if len(data) < 9:
        return None
    (n,) = struct.unpack("<Q", data[:8])
    if data[8:9] != b"{" or n < 2 or n > _SAFETENSORS_MAX_HEADER:
        return None
    if 8 + n > len(data):
        raise UploadError("The safetensors file is truncated: its header runs past the end of the file.")
    try:
        header = json.loads(data[8 : 8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return header if isinstance(header, dict) else None


def _is_pickle(data: bytes) -> bool:
    """Pickle protocol 2-5 (PyTorch's legacy format starts with a protocol-2 pickle of a magic number)."""
    return len(data) >= 2 and data[0] == 0x80 and 2 <= data[1] <= 5


# --------------------------------------------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------------------------------------------


def _load_safetensors(data: bytes, header: dict, max_tensors: int) -> dict[str, torch.Tensor]:
    count = sum(1 for k in header if k != "__metadata__")
    if count > max_tensors:
        raise UploadError(f"The file holds {count} tensors; the limit is {max_tensors}.")
    try:
        return st_load(data)
    except Exception as err:  # safetensors raises its own SafetensorError (and others) for bad files
        raise UploadError(
            f"The safetensors file is corrupt or truncated and could not be read ({_first_line(err)})."
        ) from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__


def _refused_global(message: str) -> str | None:
    """The Python object a weights-only load refused, from torch's message, if that is why it failed."""
    marker = "GLOBAL "
    i = message.find(marker)
    if i == -1:
        return None
    return message[i + len(marker) :].split()[0] if message[i + len(marker) :].split() else "?"


def _check_torch_zip(data: bytes, max_bytes: int, max_tensors: int) -> None:
    """Cheap checks of a torch zip archive before unpickling: readable, not a decompression bomb, a pickle of
    sensible size."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, EOFError, ValueError, OSError):
        raise UploadError(
            "The PyTorch file is corrupt or truncated: its zip directory could not be read. "
            "Upload the complete file."
        ) from None
    expanded = sum(i.file_size for i in infos)
    if expanded > max_bytes:
        raise UploadError(
            f"The file expands to {_size(expanded)} when read; the limit is {_size(max_bytes)}."
        )
    pickles = [i for i in infos if i.filename.endswith("data.pkl")]
    if not pickles:
        raise UploadError(
            "This zip archive is not a PyTorch model file (it has no data.pkl). Save the weights with "
            "torch.save(model.state_dict(), path) or as .safetensors."
        )
    pickle_limit = max(1 << 20, PICKLE_BYTES_PER_TENSOR * max_tensors)
    if pickles[0].file_size > pickle_limit:
        raise UploadError(
            f"The file's object structure is {_size(pickles[0].file_size)}, more than a model with at most "
            f"{max_tensors} tensors needs ({_size(pickle_limit)})."
        )


def _load_torch(data: bytes, max_bytes: int, max_tensors: int) -> Any:
    if data.startswith(_ZIP_MAGIC):
        _check_torch_zip(data, max_bytes, max_tensors)
    elif not _is_pickle(data):
        raise UploadError(
            "This is not a PyTorch model file: it is neither a torch.save archive nor a safetensors file."
        )
    try:
        # weights_only=True: the restricted unpickler builds tensors, dicts, lists and numbers and refuses any
        # other Python object, so a malicious file cannot run code here. map_location: CUDA tensors load on CPU.
        return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as err:
        name = _refused_global(str(err))
        if name is not None:
            raise UploadError(
                f"The file tried to load Python objects ({name}), not just tensors, and was refused: a model "
                "file that does that can run code on this server. Upload only the weights, saved with "
                "torch.save(model.state_dict(), path) or as .safetensors."
            ) from None
        if not data.startswith(_ZIP_MAGIC):
            raise UploadError(
                "The file is a Python pickle, not a PyTorch weights file, and was refused: a pickle can load "
                "Python objects that run code on this server. Save the weights with "
                "torch.save(model.state_dict(), path) or as .safetensors."
            ) from None
        raise UploadError(f"The PyTorch file is corrupt and could not be read ({_first_line(err)}).") from None
    except MemoryError:
        raise UploadError("The file asks for more memory than this server has.") from None
    except Exception as err:  # torch raises RuntimeError, EOFError, KeyError, UnicodeDecodeError... on bad bytes
        raise UploadError(
            f"The PyTorch file is corrupt or truncated and could not be read ({_first_line(err)})."
        ) from None


def _pick_state_dict(obj: Any) -> Any:
    """A checkpoint's state_dict: ``obj[key]`` for the first of :data:`STATE_DICT_KEYS` holding a dict."""
    if isinstance(obj, Mapping):
        for key in STATE_DICT_KEYS:
            if isinstance(obj.get(key), Mapping):
                return obj[key]
    return obj


@dataclass
class _Walk:
    """What :func:`_flatten` has visited so far, against its limits."""

    max_tensors: int
    max_nodes: int
    nodes: int = 0


def _flatten(
    obj: Any,
    prefix: str,
    out: dict[str, torch.Tensor],
    skipped: list[tuple[str, str]],
    walk: _Walk,
    depth: int = 0,
) -> None:
    """Collect the tensors of nested dicts / lists under dotted names; record what is not a tensor.

    Every value reached counts towards ``walk.max_nodes``, a shared one each time it is reached, and nesting
    stops at :data:`MAX_DEPTH`: both refuse with an :class:`UploadError` before the walk gets expensive.
    """
    walk.nodes += 1
    if walk.nodes > walk.max_nodes:
        raise UploadError(
            f"The file's object structure is too large: it holds more than {walk.max_nodes:,} values (tensors, "
            "lists, dicts, numbers - a value shared by several lists counts every time). A model's weights need "
            "far fewer: save them with torch.save(model.state_dict(), path) or as .safetensors."
        )
    if isinstance(obj, torch.Tensor):
        if len(out) + len(skipped) >= walk.max_tensors:
            raise UploadError(
                f"The file holds more than {walk.max_tensors} tensors; the limit is {walk.max_tensors}."
            )
        out[prefix or "tensor"] = obj
        return
    if isinstance(obj, (Mapping, list, tuple)) and depth >= MAX_DEPTH:
        raise UploadError(
            f"The file's objects are nested more than {MAX_DEPTH} levels deep (at {prefix or 'the top'}); a "
            "model's weights are a flat dict of tensors. Save them with torch.save(model.state_dict(), path) or "
            "as .safetensors."
        )
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            _flatten(value, f"{prefix}.{key}" if prefix else str(key), out, skipped, walk, depth + 1)
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            _flatten(value, f"{prefix}.{i}" if prefix else str(i), out, skipped, walk, depth + 1)
    else:
        skipped.append((prefix or "(file)", f"not a tensor ({type(obj).__name__})"))


def _logical_bytes(t: torch.Tensor) -> int:
    """Bytes of the tensor's values as they would be read (``numel × element size``)."""
    return int(t.numel()) * t.element_size()


def _keep_reason(t: torch.Tensor) -> str | None:
    """None if the tensor is kept, else why it is skipped."""
    if t.layout != torch.strided:
        return "sparse tensor"
    if t.is_quantized:
        return "already quantized tensor"
    if t.device.type == "meta":
        return "tensor without data (meta device)"
    if _logical_bytes(t) > t.untyped_storage().nbytes():
        # A stride-0 view (x.expand(...)) is legal and tiny on disk but would be read as its full size: a
        # 1-value storage can declare 10 billion values.
        return f"a view repeating {_size(t.untyped_storage().nbytes())} of stored values as {t.numel():,} values"
    if t.is_complex():
        return f"complex tensor ({str(t.dtype).removeprefix('torch.')})"
    if not t.is_floating_point():
        return f"not floating point ({str(t.dtype).removeprefix('torch.')})"
    return None


def _all_finite(t: torch.Tensor) -> bool:
    if t.numel() == 0:
        return True
    if t.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        t = t.float()  # fp8 dtypes have no isfinite kernel
    return bool(torch.isfinite(t).all())


def load_tensors(
    data: bytes,
    filename: str,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_tensors: int = DEFAULT_MAX_TENSORS,
    max_nodes: int = DEFAULT_MAX_NODES,
) -> UploadedTensors:
    """The floating-point tensors of an uploaded model file, read from its bytes without running any code.

    ``filename``'s extension must be ``.safetensors``, ``.pt``, ``.pth`` or ``.bin``; the content decides how it
    is read (a ``.bin`` holding safetensors works). A torch file may be a plain ``state_dict``, or a checkpoint
    dict with the state_dict under ``"state_dict"``, ``"model_state_dict"`` or ``"model"``; nested dicts and
    lists are flattened with dotted names (``{"enc": {"w": t}}`` → ``"enc.w"``). Integer tensors and other values
    are skipped and listed in ``skipped``. Raises :class:`UploadError` with a plain-English message otherwise.

    Nothing in a small file can make the loader do a lot of work: the object tree it walks is bounded by
    ``max_nodes`` values and :data:`MAX_DEPTH` levels, a view may not read more values than it stores, and the
    tensors' values may add up to at most :data:`MAX_VALUE_BYTES_PER_FILE_BYTE` times ``max_bytes``.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    name = PurePath(str(filename)).name or "the file"
    if len(data) > max_bytes:
        over = f"{_size(len(data))} ({len(data):,} bytes)"
        raise UploadError(f'"{name}" is {over}; the limit is {_size(max_bytes)} ({max_bytes:,} bytes).')
    suffix = PurePath(name).suffix.lower()
    if suffix not in EXTENSIONS:
        raise UploadError(f'"{name}" is not a model file: expected a .safetensors, .pt, .pth or .bin file.')
    if not data:
        raise UploadError(f'"{name}" is empty.')

    header = _safetensors_header(data)
    if header is not None:
        raw: Any = _load_safetensors(data, header, max_tensors)
        fmt = "safetensors"
    elif suffix == ".safetensors":
        if data.startswith(_ZIP_MAGIC) or _is_pickle(data):
            raise UploadError(
                f'"{name}" is a PyTorch (torch.save) file, not safetensors: rename it to .pt and upload it again.'
            )
        raise UploadError(f'"{name}" is not a safetensors file (its header is missing or invalid).')
    else:
        raw = _pick_state_dict(_load_torch(data, max_bytes, max_tensors))
        fmt = "pytorch"

    found: dict[str, torch.Tensor] = {}
    skipped: list[tuple[str, str]] = []
    _flatten(raw, "", found, skipped, _Walk(max_tensors, max_nodes))
    tensors: dict[str, torch.Tensor] = {}
    for key, t in found.items():
        reason = _keep_reason(t)
        if reason is None:
            tensors[key] = t.detach()
        else:
            skipped.append((key, reason))
    total = sum(_logical_bytes(t) for t in tensors.values())
    value_limit = MAX_VALUE_BYTES_PER_FILE_BYTE * max_bytes
    if total > value_limit:
        raise UploadError(
            f'The tensors of "{name}" add up to {_size(total)} of values, more than a {_size(max_bytes)} file can '
            f"hold ({_size(value_limit)} allowed, for tied weights stored once): many of them are views of the same "
            "stored data. Save each weight once, e.g. with torch.save(model.state_dict(), path) or as .safetensors."
        )
    if not tensors:
        what = f" (found: {', '.join(sorted({r for _, r in skipped}))})" if skipped else ""
        raise UploadError(f'"{name}" contains no floating-point tensors, so there is nothing to quantize{what}.')
    nonfinite = tuple(k for k, t in tensors.items() if not _all_finite(t))
    return UploadedTensors(tensors, name, fmt, tuple(skipped), nonfinite, len(data))
