"""Real int8 inference on ONNX Runtime: weights *and* activations in int8 (static QDQ quantization).

``torch.ao``'s dynamic int8 (:mod:`quantlib.speed`) converts Linear layers only and quantizes their inputs on the
fly. ONNX Runtime's static quantization fixes every range in advance:

1. :func:`export_float` - the float model to ONNX with ``torch.onnx.export``'s TorchScript exporter
   (``dynamo=False``: it needs only ``onnx``, nothing from a hub, so it works offline); batch (and token)
   axes dynamic;
2. :func:`quantize_qdq` - ``onnxruntime.quantization.quantize_static`` in the QDQ format: int8 weights,
   symmetric per output channel (``s = max|w| / 127``, quantlib's symmetric int8 scale), int8 activations with
   one static min-max range per tensor, calibrated on the model's calibration inputs, around every
   ``Conv`` / ``MatMul`` / ``Gemm``. When the session loads it, ONNX Runtime fuses
   ``DequantizeLinear → op → QuantizeLinear`` into integer kernels (``QLinearConv``, ``QGemm``,
   ``MatMulIntegerToFloat`` ...);
3. :func:`session` / :func:`run` / :class:`OrtModule` - run it (``graph_optimization_level`` off gives the same
   QDQ graph *unfused*: every QDQ pair computed in float, i.e. the graph's own fake-quant simulation).

:func:`quantlib_simulation` is the same recipe simulated by quantlib (int8 per-channel weights, static
asymmetric int8 min-max activations at every quantizable layer's input and output,
:func:`quantlib.model.quantize_model`). The two do not quantize at exactly the same points (ONNX Runtime
quantizes a ``MatMul``'s output before its bias ``Add``, quantlib a layer's output after it), so expect close,
not equal; :func:`lsb_difference` measures the fused integer kernels against the unfused graph in steps of the
output grid.
"""

from __future__ import annotations

import copy
import io
import logging
import os
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from .model import Inputs, quantize_model
from .spec import QuantSpec

#: The ops whose inputs get QDQ pairs: the matrix products, where int8 pays.
QUANTIZED_OPS = ("Conv", "MatMul", "Gemm")
OPSET = 17


def input_names(inputs: Inputs) -> list[str]:
    """ONNX input names: ``input`` for a tensor, ``input_0 …`` for a tuple / list, the keys of a dict."""
    if isinstance(inputs, torch.Tensor):
        return ["input"]
    if isinstance(inputs, dict):
        return list(inputs)
    return [f"input_{i}" for i in range(len(inputs))]


def tensors(inputs: Inputs) -> list[torch.Tensor]:
    """The input tensors in :func:`input_names` order."""
    if isinstance(inputs, torch.Tensor):
        return [inputs]
    if isinstance(inputs, dict):
        return list(inputs.values())
    return list(inputs)


def head(inputs: Inputs, n: int) -> Inputs:
    """The first ``n`` examples of a batch (a tensor, tuple / list or dict of tensors)."""
    if isinstance(inputs, torch.Tensor):
        return inputs[:n]
    if isinstance(inputs, dict):
        return {k: v[:n] for k, v in inputs.items()}
    return type(inputs)(t[:n] for t in inputs)


def num_examples(inputs: Inputs) -> int:
    return int(tensors(inputs)[0].shape[0])


def feeds(inputs: Inputs, start: int = 0, stop: int | None = None) -> dict[str, np.ndarray]:
    """``{name: array}`` of examples ``start:stop`` of a batch, for ``InferenceSession.run``."""
    return {n: t[start:stop].detach().cpu().numpy() for n, t in zip(input_names(inputs), tensors(inputs), strict=True)}


def export_float(model: nn.Module, example: Inputs, path: str) -> None:
    """Write ``model`` as ONNX (a private copy is traced: ``model`` is only read). The batch axis is dynamic,
    and the second axis of 2-D integer inputs (token ids, masks) too."""
    names = input_names(example)
    dynamic: dict[str, dict[int, str]] = {}
    for name, t in zip(names, tensors(example), strict=True):
        axes = {0: "batch"}
        if t.dim() == 2 and not t.is_floating_point():
            axes[1] = "sequence"
        dynamic[name] = axes
    private = copy.deepcopy(model).eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on Python control flow in transformers' code
        torch.onnx.export(
            private, tuple(tensors(example)), path, dynamo=False, opset_version=OPSET, input_names=names,
            output_names=["output"], dynamic_axes={**dynamic, "output": {0: "batch"}},
        )


def quantize_qdq(float_path: str, int8_path: str, calibration: Sequence[dict[str, np.ndarray]]) -> None:
    """Static int8 QDQ quantization of an ONNX file by ONNX Runtime, calibrated (min-max) on ``calibration``, a
    few feeds of the model's calibration inputs."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # one line per 1-D weight ("axis out of range"): ONNX Runtime's own chatter
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_static(
                float_path, int8_path, Reader(), quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(QUANTIZED_OPS), per_channel=True,
                weight_type=QuantType.QInt8, activation_type=QuantType.QInt8,
            )
    finally:
        root.setLevel(level)


def session(path: str, threads: int = 1, fused: bool = True):  # noqa: ANN201 - onnxruntime.InferenceSession
    """An ONNX Runtime CPU session with ``threads`` intra-op threads. ``fused=False`` switches graph
    optimizations off: a QDQ model then runs every quantize / dequantize in float (its fake-quant simulation)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    if not fused:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def run(sess, feed: dict[str, np.ndarray]) -> torch.Tensor:  # noqa: ANN001 - an InferenceSession
    """The first output of ``sess`` on ``feed`` as a float32 tensor."""
    return torch.from_numpy(np.array(sess.run(None, feed)[0], dtype=np.float32))


class OrtModule(nn.Module):
    """An ONNX Runtime session behind the ``nn.Module`` call convention (``model(x)``, ``model(*xs)``,
    ``model(**xs)``), so a sample model's metric can evaluate it."""

    def __init__(self, sess, names: Sequence[str]) -> None:  # noqa: ANN001
        super().__init__()
        self._sess = sess
        self._names = list(names)
        self.eval()

    def forward(self, *args: torch.Tensor, **kwargs: torch.Tensor) -> torch.Tensor:
        values = [*args, *(kwargs[n] for n in self._names[len(args) :])]
        return run(self._sess, {n: v.detach().cpu().numpy() for n, v in zip(self._names, values, strict=True)})


def output_scale(int8_path: str) -> float | None:
    """One step of the QDQ model's output grid: the scale of the ``DequantizeLinear`` that produces its (first)
    output, or None when the output is not on an int8 grid (say a float normalization after the last
    quantized op)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(int8_path).graph
    inits = {i.name: i for i in graph.initializer}
    producer = next((n for n in graph.node if graph.output[0].name in n.output), None)
    if producer is None or producer.op_type != "DequantizeLinear" or producer.input[1] not in inits:
        return None
    return float(numpy_helper.to_array(inits[producer.input[1]]).reshape(-1)[0])


def lsb_difference(a: torch.Tensor, b: torch.Tensor, step: float) -> dict[str, float]:
    """How far two outputs lie apart in steps of an output grid: ``max``, ``median`` and the share of values
    that differ at all."""
    d = (a.double() - b.double()).abs() / step
    return {"max": float(d.max()), "median": float(d.median()), "share_differing": float((d > 0.5).double().mean())}


def state_dict_bytes(model: nn.Module) -> int:
    """Bytes of ``torch.save(model.state_dict())`` (how a torch.ao dynamic model is stored)."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes


def file_bytes(path: str) -> int:
    return os.path.getsize(path)


def simulation_specs() -> tuple[QuantSpec, QuantSpec]:
    """quantlib's spelling of ONNX Runtime's recipe: int8 symmetric per-channel weights, int8 asymmetric min-max
    activations (one static range per tensor)."""
    return QuantSpec(bits=8, granularity="channel"), QuantSpec(bits=8, scheme="asymmetric")


def quantlib_simulation(model: nn.Module, calibration_inputs: Inputs) -> nn.Module:
    """quantlib's fake-quantized W8A8 copy of ``model`` on the same calibration inputs."""
    w, a = simulation_specs()
    return quantize_model(model, weight_spec=w, act_spec=a, calibration_inputs=calibration_inputs)
