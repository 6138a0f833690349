"""Reading quantlib's exports the way transformers and vLLM do: with the ``compressed-tensors`` package itself."""

from __future__ import annotations

import copy

from compressed_tensors.compressors import ModelCompressor
from compressed_tensors.quantization import QuantizationConfig, apply_quantization_config
from torch import nn

from quantlib.export import read


def decompress_with_compressed_tensors(model: nn.Module, blob: bytes) -> nn.Module:
    """What transformers does on load: a fresh copy of the architecture gets the file's quantization_config,
    is compressed (so its parameters take the file's layout), loads the file strictly, and is decompressed."""
    tensors, meta = read(blob)
    config = QuantizationConfig.model_validate(meta["quantization_config"])
    fresh = copy.deepcopy(model)
    apply_quantization_config(fresh, config, show_progress=False)
    compressor = ModelCompressor(quantization_config=config)
    compressor.compress_model(fresh)
    fresh.load_state_dict(tensors, strict=True)
    compressor.decompress_model(fresh)
    return fresh
