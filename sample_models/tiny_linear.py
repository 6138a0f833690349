"""``tiny-linear``: one 10 -> 1 ``nn.Linear`` with fixed random weights, small enough to follow by hand."""

from __future__ import annotations

import torch
from torch import nn

from .base import N_, SampleModel, build_module

NAME = "tiny-linear"
IN_FEATURES = 10
N_EVAL = 256
N_CALIBRATION = 64
SEED = 0


def _data() -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """Weights, calibration inputs and eval inputs, all drawn from one private generator (fixed forever)."""
    gen = torch.Generator().manual_seed(SEED)
    # Weights ~ N(0, 0.5^2) and a small bias: a spread of magnitudes and signs, so rounding to a grid visibly
    # hits some weights harder than others.
    weight = 0.5 * torch.randn(1, IN_FEATURES, generator=gen)
    bias = 0.1 * torch.randn(1, generator=gen)
    calibration = torch.randn(N_CALIBRATION, IN_FEATURES, generator=gen)
    eval_inputs = torch.randn(N_EVAL, IN_FEATURES, generator=gen)
    return {"linear.weight": weight, "linear.bias": bias}, calibration, eval_inputs


class TinyLinear(nn.Module):
    """``y = w·x + b`` with 10 inputs and 1 output, shaped like the primer's ``Model`` (one named layer, so the
    layer has a name to pick and a place to wrap when activations are quantized)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(IN_FEATURES, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)



DESCRIPTION = N_(
    "A single fully connected layer y = w·x + b with 10 inputs and 1 output. Weights and inputs are "
    "fixed random numbers (seed {seed}); {n_eval} evaluation inputs. The smallest model there is: every "
    "scale, zero point and rounding error can be followed by hand. The metric is the mean squared "
    "error of the quantized model's outputs against the float model's outputs (0 for the float model)."
)

def build() -> SampleModel:
    """Build the ``tiny-linear`` sample model (no files involved; takes milliseconds)."""
    state_dict, calibration, eval_inputs = _data()
    model = build_module(TinyLinear, state_dict)
    with torch.no_grad():
        reference = model(eval_inputs)
    # The metric keeps a private copy: eval_targets is handed out, and an in-place edit must not move the goalposts.
    private_reference = reference.clone()

    def metrics(candidate: nn.Module) -> dict[str, torch.Tensor]:
        out = candidate(eval_inputs)
        err = out - private_reference
        return {"mse": (err**2).mean(), "max_abs_error": err.abs().max()}

    return SampleModel(
        name=NAME,
        title=N_("Tiny linear (10 → 1)"),
        description=DESCRIPTION.format(seed=SEED, n_eval=N_EVAL),
        description_parts=(DESCRIPTION,),
        text_values={"seed": SEED, "n_eval": N_EVAL},
        task=N_("regression"),
        no_train_reason=N_(
            "it is a single layer of fixed random numbers with no task behind it: its \"metric\" is "
            "how far the quantized layer drifts from its own float output, so there is nothing to learn towards"
        ),
        model=model,
        calibration_inputs=calibration,
        eval_inputs=eval_inputs,
        eval_targets=reference,
        metric_name="mse",
        higher_is_better=False,
        metrics_fn=metrics,
    )
