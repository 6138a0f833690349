"""One convention for a model's inputs (``quantlib.inputs``), used by quantlib and every sample model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import quantlib.model
import sample_models
from quantlib.inputs import batch_size, call, take


class _Recorder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.args: tuple[object, ...] = ()
        self.kwargs: dict[str, object] = {}

    def forward(self, *args: torch.Tensor, **kwargs: torch.Tensor) -> torch.Tensor:
        self.args, self.kwargs = args, kwargs
        return torch.zeros(1)


def test_a_tensor_is_one_argument_a_tuple_is_unpacked_and_a_dict_goes_by_keyword():
    rec = _Recorder()
    x, y = torch.ones(2), torch.zeros(2)
    call(rec, x)
    assert len(rec.args) == 1 and rec.args[0] is x
    call(rec, (x, y))
    assert len(rec.args) == 2 and rec.args[0] is x and rec.args[1] is y
    call(rec, {"input_ids": x, "attention_mask": y})
    assert rec.args == () and rec.kwargs == {"input_ids": x, "attention_mask": y}


@pytest.mark.parametrize("bad", [[torch.ones(2), torch.ones(2)], (torch.ones(2), np.zeros(2)), np.zeros(2),
                                 {1: torch.ones(2)}])
def test_anything_else_is_refused_rather_than_guessed_at(bad):
    with pytest.raises(TypeError, match="tuple of torch.Tensors"):
        call(_Recorder(), bad)


def test_a_model_must_return_one_tensor():
    with pytest.raises(TypeError, match="single torch.Tensor"):
        call(lambda t: (t, t), torch.ones(2))


def test_batch_size_and_take_keep_the_structure():
    x, y = torch.arange(10).reshape(5, 2), torch.arange(5)
    assert batch_size(x) == batch_size((x, y)) == batch_size({"a": x, "b": y}) == 5
    with pytest.raises(ValueError, match="differ in batch size"):
        batch_size((x, torch.ones(4)))
    assert torch.equal(take(x, slice(0, 2)), x[:2])
    first = take((x, y), torch.tensor([0, 4]))
    assert isinstance(first, tuple) and first[1].tolist() == [0, 4]
    assert take({"a": x}, slice(1, 3))["a"].tolist() == [[2, 3], [4, 5]]


def test_quantlib_and_the_sample_models_share_the_one_call():
    assert quantlib.model.call is sample_models.call is call
