"""quantlib.pack: codes <-> bytes (LSB-first nibbles) and compressed-tensors' int32 words, for every width.

The int32 layout is checked bit for bit against compressed-tensors' own ``pack_to_int32`` / ``unpack_from_int32``
(the code vLLM and transformers load with).
"""

from __future__ import annotations

import os

import pytest
import torch
from compressed_tensors.compressors.pack_quantized.helpers import pack_to_int32, unpack_from_int32
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantlib import pack

PROFILE = settings(
    deadline=None,
    max_examples=int(os.environ.get("QUANTLIB_HYPOTHESIS_EXAMPLES", "60")),
    suppress_health_check=[HealthCheck.too_slow],
)
WIDTHS = list(range(1, 9))


@st.composite
def unsigned_codes(draw):
    bits = draw(st.integers(1, 8))
    values = draw(st.lists(st.integers(0, (1 << bits) - 1), min_size=0, max_size=200))
    return bits, torch.tensor(values, dtype=torch.int32)


@st.composite
def signed_matrix(draw):
    bits = draw(st.integers(1, 8))
    rows, cols = draw(st.integers(1, 6)), draw(st.integers(1, 80))
    half = 1 << (bits - 1)
    values = draw(st.lists(st.integers(-half, half - 1), min_size=rows * cols, max_size=rows * cols))
    return bits, torch.tensor(values, dtype=torch.int8).reshape(rows, cols)


@PROFILE
@given(unsigned_codes())
def test_bytes_round_trip_for_every_width(case):
    bits, codes = case
    packed = pack.pack_bits(codes, bits)
    assert packed.dtype == torch.uint8
    assert packed.numel() == pack.packed_bytes(codes.numel(), bits)
    assert torch.equal(pack.unpack_bits(packed, bits, codes.numel()), codes)


@PROFILE
@given(signed_matrix(), st.sampled_from([0, 1]))
def test_int32_words_equal_compressed_tensors_and_round_trip(case, packed_dim):
    bits, codes = case
    ours = pack.pack_int32(codes, bits, packed_dim)
    theirs = pack_to_int32(codes, bits, packed_dim)
    assert ours.dtype == torch.int32 and ours.shape == theirs.shape
    assert torch.equal(ours, theirs)
    assert torch.equal(pack.unpack_int32(ours, bits, tuple(codes.shape), packed_dim), codes)
    assert torch.equal(unpack_from_int32(ours, bits, codes.shape, packed_dim), codes)


@pytest.mark.parametrize("bits", WIDTHS)
def test_every_width_round_trips_a_full_grid_across_word_boundaries(bits):
    half = 1 << (bits - 1)
    # Every code of the grid, repeated past several 32-bit words, in rows whose length is not a multiple of 32.
    codes = torch.arange(-half, half, dtype=torch.int32).repeat(111)[: 3 * 37].reshape(3, 37).to(torch.int8)
    words = pack.pack_int32(codes, bits)
    assert words.shape == (3, -(-37 * bits // 32))
    assert torch.equal(words, pack_to_int32(codes, bits))
    assert torch.equal(pack.unpack_int32(words, bits, (3, 37)), codes)
    unsigned = pack.to_unsigned(codes, bits)
    assert torch.equal(pack.unpack_bits(pack.pack_bits(unsigned, bits), bits, unsigned.numel()), unsigned.reshape(-1))


def test_four_bit_codes_are_little_endian_nibbles():
    assert pack.pack_bits(torch.tensor([1, 2, 3, 4]), 4).tolist() == [0x21, 0x43]
    assert pack.pack_bits(torch.tensor([0xA]), 4).tolist() == [0x0A]  # an odd count pads the high nibble with 0


def test_two_bit_codes_fill_a_byte_from_its_lowest_bits():
    assert pack.pack_bits(torch.tensor([3, 0, 1, 2]), 2).tolist() == [0b10_01_00_11]


def test_three_bit_codes_straddle_bytes():
    # 5 = 101, 3 = 011, 7 = 111: stream bits 0-8 are 1,0,1, 1,1,0, 1,1,1 -> bytes 0b11011101, 0b00000001.
    assert pack.pack_bits(torch.tensor([5, 3, 7]), 3).tolist() == [0xDD, 0x01]


def test_compressed_tensors_offset_puts_the_most_negative_code_at_zero():
    assert pack.pack_int32(torch.tensor([[-8, -7, 0, 7]]), 4).tolist() == [[0xF810]]


def test_empty_input_packs_to_nothing():
    assert pack.pack_bits(torch.tensor([], dtype=torch.int32), 4).numel() == 0
    assert pack.unpack_bits(torch.tensor([], dtype=torch.uint8), 4, 0).numel() == 0


def test_one_element_row_takes_one_word():
    words = pack.pack_int32(torch.tensor([[-1]], dtype=torch.int8), 3)
    assert torch.equal(words, pack_to_int32(torch.tensor([[-1]], dtype=torch.int8), 3))
    assert pack.unpack_int32(words, 3, (1, 1)).tolist() == [[-1]]


@pytest.mark.parametrize(
    ("codes", "bits", "message"),
    [
        (torch.tensor([16]), 4, r"4-bit codes must lie in \[0, 15\]"),
        (torch.tensor([-1]), 4, r"\[0, 15\]"),
        (torch.tensor([1.5]), 4, "integer tensor"),
        (torch.tensor([1]), 9, "1 to 8 bits"),
        (torch.tensor([1]), 0, "1 to 8 bits"),
    ],
)
def test_bad_codes_are_refused_in_plain_words(codes, bits, message):
    with pytest.raises(ValueError, match=message):
        pack.pack_bits(codes, bits)


def test_signed_codes_out_of_the_grid_are_refused():
    with pytest.raises(ValueError, match=r"3-bit codes must lie in \[-4, 3\]"):
        pack.pack_int32(torch.tensor([[4]]), 3)


def test_too_few_bytes_for_the_count_is_refused():
    with pytest.raises(ValueError, match="fewer than 5 codes"):
        pack.unpack_bits(torch.zeros(2, dtype=torch.uint8), 4, 5)


def test_overhead_per_value_of_a_group():
    assert pack.overhead_bits_per_value(64) == 0.5
    assert pack.overhead_bits_per_value(128, scale_bits=16, zero_point_bits=4) == pytest.approx(20 / 128)
