"""Bits on the wire: how 2- to 8-bit integer codes are packed into bytes and into int32 words.

A 4-bit code needs half a byte, so a file stores two per byte; a 3-bit code straddles byte boundaries. Both
layouts here are one **dense, least-significant-bit-first bitstream**: code ``i`` of a row occupies stream bits
``[i·b, (i+1)·b)``, and stream bit ``j`` is bit ``j mod 8`` of byte ``j // 8``. No bit is wasted; the last byte
(or word) of a row is padded with zeros.

- :func:`pack_bits` / :func:`unpack_bits` - unsigned codes ``0 .. 2^b - 1`` into bytes. For 4 bits that is the
  usual *little-endian nibbles*: code 0 in the low nibble of byte 0, code 1 in its high nibble. Worked example,
  4 bits, codes ``[1, 2, 3, 4]`` -> bytes ``[0x21, 0x43]``; 3 bits, codes ``[5, 3, 7]`` -> stream
  ``101 110 111`` read from the right: ``0b11_011_101 = 0xDD``, then ``0b1 = 0x01``.
- :func:`pack_int32` / :func:`unpack_int32` - the **compressed-tensors** ``pack-quantized`` layout (the format
  vLLM and transformers load): signed codes ``-2^(b-1) .. 2^(b-1) - 1`` are offset by ``2^(b-1)`` to unsigned,
  each row becomes the same bitstream, read as little-endian int32 words, ``ceil(n·b / 32)`` words per row
  (compressed-tensors 0.20 ``pack_to_int32``: 32 codes fill exactly ``b`` words). Zero points are packed along
  dimension 0 (``packed_dim=0``).

Storage: ``n`` codes take ``ceil(n·b / 8)`` bytes, plus per block (group / channel) its scale and, for the
asymmetric scheme, its zero point: :func:`overhead_bits_per_value` gives what that adds per weight.

    >>> pack_bits(torch.tensor([1, 2, 3, 4]), 4).tolist()
    [33, 67]
    >>> unpack_bits(pack_bits(torch.tensor([5, 3, 7]), 3), 3, 3).tolist()
    [5, 3, 7]
"""

from __future__ import annotations

import math

import numpy as np
import torch

MIN_PACK_BITS, MAX_PACK_BITS = 1, 8


def _check_bits(bits: int) -> None:
    if isinstance(bits, bool) or not isinstance(bits, int) or not MIN_PACK_BITS <= bits <= MAX_PACK_BITS:
        raise ValueError(f"packing takes codes of {MIN_PACK_BITS} to {MAX_PACK_BITS} bits, got {bits!r}")


def _check_codes(codes: torch.Tensor, lo: int, hi: int, bits: int) -> torch.Tensor:
    if not isinstance(codes, torch.Tensor):
        raise TypeError(f"codes must be a torch.Tensor, got {type(codes).__name__}")
    if codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool:
        raise ValueError(f"codes must be an integer tensor, got {codes.dtype}")
    c = codes.to(torch.int32)
    if c.numel() and (int(c.min()) < lo or int(c.max()) > hi):
        raise ValueError(
            f"{bits}-bit codes must lie in [{lo}, {hi}], got values from {int(c.min())} to {int(c.max())}"
        )
    return c


def _pack_rows(u: torch.Tensor, bits: int, row_bytes: int) -> torch.Tensor:
    """Unsigned codes ``(R, n)`` (int32, each below ``2^bits``) -> the LSB-first bitstream ``(R, row_bytes)``
    as uint8, zero-padded."""
    rows, n = u.shape
    if 8 % bits == 0:
        # 1, 2, 4 or 8 bits: a whole number of codes per byte, so shift each into place and add.
        per = 8 // bits
        u = torch.nn.functional.pad(u, (0, row_bytes * per - n))
        shifts = torch.arange(per, dtype=torch.int32) * bits
        out = (u.reshape(rows, row_bytes, per) << shifts).sum(dim=-1, dtype=torch.int32)
        return out.to(torch.uint8)
    # 3, 5, 6, 7 bits: codes straddle bytes. Lay every code out as its bits, then regroup them by eight.
    planes = ((u.unsqueeze(-1) >> torch.arange(bits, dtype=torch.int32)) & 1).to(torch.uint8)
    stream = torch.nn.functional.pad(planes.reshape(rows, n * bits), (0, row_bytes * 8 - n * bits))
    weights = torch.tensor([1, 2, 4, 8, 16, 32, 64, 128], dtype=torch.int32)
    return (stream.reshape(rows, row_bytes, 8).to(torch.int32) * weights).sum(dim=-1, dtype=torch.int32).to(
        torch.uint8
    )


def _unpack_rows(packed: torch.Tensor, bits: int, n: int) -> torch.Tensor:
    """Inverse of :func:`_pack_rows`: uint8 ``(R, bytes)`` -> int32 codes ``(R, n)``."""
    rows = packed.shape[0]
    b = packed.to(torch.int32)
    if 8 % bits == 0:
        per = 8 // bits
        shifts = torch.arange(per, dtype=torch.int32) * bits
        codes = (b.unsqueeze(-1) >> shifts) & ((1 << bits) - 1)
        return codes.reshape(rows, -1)[:, :n]
    stream = ((b.unsqueeze(-1) >> torch.arange(8, dtype=torch.int32)) & 1).reshape(rows, -1)[:, : n * bits]
    weights = 1 << torch.arange(bits, dtype=torch.int32)
    return (stream.reshape(rows, n, bits) * weights).sum(dim=-1, dtype=torch.int32)


def packed_bytes(count: int, bits: int) -> int:
    """Bytes that ``count`` codes of ``bits`` bits take densely packed: ``ceil(count · bits / 8)``.

    >>> packed_bytes(10, 3), packed_bytes(10, 4)
    (4, 5)
    """
    _check_bits(bits)
    return math.ceil(count * bits / 8)


def pack_bits(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Unsigned codes (any shape, read in row-major order) -> a uint8 tensor of ``ceil(numel · bits / 8)`` bytes.

    Codes must lie in ``[0, 2^bits - 1]`` (an asymmetric grid's codes as they are; a symmetric grid's signed
    codes shifted by ``2^(bits-1)``, see :func:`to_unsigned`).
    """
    _check_bits(bits)
    c = _check_codes(codes, 0, (1 << bits) - 1, bits).reshape(1, -1)
    return _pack_rows(c, bits, packed_bytes(c.shape[1], bits)).reshape(-1)


def unpack_bits(packed: torch.Tensor, bits: int, count: int) -> torch.Tensor:
    """The first ``count`` codes of a :func:`pack_bits` byte string, as int32."""
    _check_bits(bits)
    if packed.dtype != torch.uint8:
        raise ValueError(f"packed bytes must be uint8, got {packed.dtype}")
    if count < 0 or packed.numel() < packed_bytes(count, bits):
        raise ValueError(f"{packed.numel()} bytes hold fewer than {count} codes of {bits} bits")
    return _unpack_rows(packed.reshape(1, -1), bits, count).reshape(-1)


def to_unsigned(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Signed codes ``[-2^(b-1), 2^(b-1) - 1]`` -> unsigned ``[0, 2^b - 1]`` by adding ``2^(b-1)`` (the offset
    compressed-tensors applies before packing)."""
    return codes.to(torch.int32) + (1 << (bits - 1))


def _int32_words(row_bytes: torch.Tensor, words: int) -> torch.Tensor:
    """uint8 ``(R, <= 4·words)`` -> int32 ``(R, words)``, reading each 4 bytes as a little-endian word."""
    rows = row_bytes.shape[0]
    padded = torch.nn.functional.pad(row_bytes, (0, words * 4 - row_bytes.shape[1]))
    arr = np.ascontiguousarray(padded.numpy()).view("<i4").reshape(rows, words)
    return torch.from_numpy(arr.astype(np.int32, copy=False).copy())


def _word_bytes(words: torch.Tensor) -> torch.Tensor:
    """int32 ``(R, W)`` -> uint8 ``(R, 4·W)``, each word written little-endian."""
    arr = np.ascontiguousarray(words.numpy().astype("<i4", copy=False))
    return torch.from_numpy(arr.view(np.uint8).reshape(words.shape[0], -1).copy())


def pack_int32(codes: torch.Tensor, bits: int, packed_dim: int = 1) -> torch.Tensor:
    """Signed codes ``(R, C)`` -> compressed-tensors' packed int32 ``(R, ceil(C · bits / 32))``.

    ``packed_dim=0`` packs along the rows instead (compressed-tensors stores per-group zero points so), giving
    ``(ceil(R · bits / 32), C)``. Codes must lie in ``[-2^(b-1), 2^(b-1) - 1]``.

    >>> pack_int32(torch.tensor([[-8, -7, 0, 7]]), 4).tolist()   # +8: 0, 1, 8, 15 -> nibbles 0x10, 0xF8
    [[63504]]
    """
    _check_bits(bits)
    if codes.dim() != 2:
        raise ValueError(f"pack_int32 packs a 2-D tensor, got {codes.dim()} dimensions")
    if packed_dim not in (0, 1):
        raise ValueError(f"packed_dim must be 0 or 1, got {packed_dim!r}")
    half = 1 << (bits - 1)
    c = _check_codes(codes, -half, half - 1, bits)
    if packed_dim == 0:
        c = c.t()
    u = (c + half).contiguous()
    words = math.ceil(u.shape[1] * bits / 32)
    out = _int32_words(_pack_rows(u, bits, packed_bytes(u.shape[1], bits)), words)
    return out.t().contiguous() if packed_dim == 0 else out


def unpack_int32(packed: torch.Tensor, bits: int, shape: tuple[int, int], packed_dim: int = 1) -> torch.Tensor:
    """Inverse of :func:`pack_int32`: the signed codes of ``shape`` as int8."""
    _check_bits(bits)
    if packed.dtype != torch.int32 or packed.dim() != 2:
        raise ValueError(f"packed words must be a 2-D int32 tensor, got {packed.dim()}-D {packed.dtype}")
    rows, cols = (int(shape[1]), int(shape[0])) if packed_dim == 0 else (int(shape[0]), int(shape[1]))
    words = packed.t().contiguous() if packed_dim == 0 else packed.contiguous()
    if words.shape[0] != rows or words.shape[1] * 32 < cols * bits:
        raise ValueError(f"packed words of shape {list(packed.shape)} do not hold {bits}-bit codes of shape {list(shape)}")
    u = _unpack_rows(_word_bytes(words), bits, cols)
    out = (u - (1 << (bits - 1))).to(torch.int8)
    return out.t().contiguous() if packed_dim == 0 else out


def overhead_bits_per_value(group: int, scale_bits: int = 32, zero_point_bits: int = 0) -> float:
    """Extra bits per weight for a block of ``group`` values sharing one scale (and a zero point).

    >>> overhead_bits_per_value(128, scale_bits=16), overhead_bits_per_value(32, zero_point_bits=4)
    (0.125, 1.125)
    """
    if group < 1:
        raise ValueError(f"a block holds at least one value, got {group}")
    return (scale_bits + zero_point_bits) / group



def byte_layout(packed: torch.Tensor, bits: int, count: int) -> list[dict[str, object]]:
    """Which code's bits sit where in each byte of a :func:`pack_bits` stream (for showing the packing).

    One dict per byte: ``byte`` (index), ``value``, ``binary`` (bit 7 first, ``|`` between codes), and
    ``codes`` (the indices of the codes with bits in it, lowest first).

    >>> [row["binary"] for row in byte_layout(pack_bits(torch.tensor([5, 3, 7]), 3), 3, 3)]
    ['11|011|101', '0000000|1']
    """
    _check_bits(bits)
    rows = []
    for j, value in enumerate(packed.reshape(-1).tolist()):
        text, owners, last = "", [], None
        for p in range(7, -1, -1):
            stream = 8 * j + p
            owner = stream // bits if stream < count * bits else None  # None: padding
            if last is not None and owner != last[0]:
                text += "|"
            text += str((value >> p) & 1)
            last = (owner,)
            if owner is not None and owner not in owners:
                owners.append(owner)
        rows.append({"byte": j, "value": value, "binary": text, "codes": sorted(owners)})
    return rows
