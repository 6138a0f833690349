"""The quantization formula one value at a time, and a 10 → 1 Linear layer computed three ways.

:func:`trace_value` follows a single number through ``q = clamp(round(x / s) + z, qmin, qmax)``,
``x̂ = (q - z) · s`` and reports every intermediate value, with exactly the arithmetic of
:func:`quantlib.quantize` (float32, ``x · (1/s)``, ties to even), so the numbers on the page are the library's.

:func:`integer_linear` computes ``y = W x + b`` (a) in float, (b) the way an int8 inference engine does it, and
(c) the way the primer's code sample does it (bias and output quantized with the *weight's* scale), and shows
why (c) is wrong.

Also :func:`mse_formula` (the primer's MSE, written out) and :func:`rule_of_thumb_sqnr` (≈ 6 dB per bit).

    >>> t = trace_value(0.3, lo=-1.0, hi=1.0, bits=4, scheme="symmetric")
    >>> round(t.scale, 6), round(t.x_over_s, 4), t.rounded, t.q, round(t.x_hat, 6)   # s = 1/7
    (0.142857, 2.1, 2.0, 2, 0.285714)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .kernels import MIN_SCALE, int_quantize, qparams_from_range, round_values
from .quantizer import as_float32
from .spec import QuantSpec

FLOAT32_MAX = float(torch.finfo(torch.float32).max)

# --------------------------------------------------------------------------------------------------------------
# One value through the formula
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValueTrace:
    """Every step of quantizing one value ``x`` with the range ``[lo, hi]`` (see :func:`trace_value`).

    All numbers are the float32 values quantlib computes with, shown as Python floats.

    Attributes:
        x: the value (as float32).
        lo, hi: the range as given.
        range_lo, range_hi: the range the scale is computed from: ``[-max(|lo|, |hi|), max(|lo|, |hi|)]``
            symmetric; ``[min(lo, 0), max(hi, 0)]`` asymmetric (widened to include 0, so 0 is exact on the grid).
        qmin, qmax: the integer grid.
        scale: ``s = max(|lo|, |hi|) / qmax`` symmetric, ``(range_hi - range_lo) / (qmax - qmin)`` asymmetric.
        zero_point: ``z = 0`` symmetric; ``clamp(qmin - round(range_lo / s), qmin, qmax)`` asymmetric.
        x_over_s: ``x · (1/s)``.
        rounded: ``round(x / s)`` with the rounding mode.
        shifted: ``round(x / s) + z`` (before clamping).
        q: ``clamp(round(x / s) + z, qmin, qmax)``, the stored integer.
        x_hat: ``(q - z) · s``, the value read back.
        error: ``x - x̂``; at most ``s / 2`` in size for round-to-nearest unless clipped.
        clipped: whether the clamp changed the integer (``x`` lies outside the grid's range).
    """

    x: float
    lo: float
    hi: float
    bits: int
    scheme: str
    rounding: str
    range_lo: float
    range_hi: float
    qmin: int
    qmax: int
    scale: float
    zero_point: int
    x_over_s: float
    rounded: float
    shifted: float
    q: int
    x_hat: float
    error: float
    clipped: bool

    @property
    def abs_error(self) -> float:
        return abs(self.error)

    def steps(self) -> list[tuple[str, str, float | int | bool]]:
        """``(step, formula, value)`` rows for a table, in the order the formula applies them."""
        scale_formula = (
            "s = max(|lo|, |hi|) / qmax" if self.scheme == "symmetric" else "s = (hi - lo) / (qmax - qmin)"
        )
        zero_formula = "z = 0" if self.scheme == "symmetric" else "z = clamp(qmin - round(lo / s), qmin, qmax)"
        return [
            ("value", "x", self.x),
            ("range low", "lo" + (" (widened to include 0)" if self.scheme == "asymmetric" else " = -max|·|"),
             self.range_lo),
            ("range high", "hi" + (" (widened to include 0)" if self.scheme == "asymmetric" else " = max|·|"),
             self.range_hi),
            ("grid", f"[qmin, qmax] for {self.bits} bits", f"[{self.qmin}, {self.qmax}]"),
            ("scale", scale_formula, self.scale),
            ("zero point", zero_formula, self.zero_point),
            ("divide", "x / s", self.x_over_s),
            ("round", f"round(x / s)  ({self.rounding})", self.rounded),
            ("shift", "round(x / s) + z", self.shifted),
            ("clamp", "q = clamp(…, qmin, qmax)", self.q),
            ("dequantize", "x̂ = (q - z) · s", self.x_hat),
            ("error", "x - x̂", self.error),
            ("clipped", "was the clamp active?", self.clipped),
        ]


def _formula_scale(lo: float, hi: float, spec: QuantSpec) -> tuple[float, int]:
    """The scale the formula asks for as ``(extent, divisor)``, ``s = extent / divisor`` (extent 0: all zero).

    Same cases as :func:`quantlib.kernels.qparams_from_range` for the int format: ``max(|lo|, |hi|) / qmax``
    symmetric, ``(max(hi, 0) - min(lo, 0)) / (qmax - qmin)`` asymmetric, and a constant ``lo == hi = c``
    put on the grid by a power of two (``|c| / 2^(b-2)`` symmetric, ``|c| / 2^(b-1)`` asymmetric).
    """
    if lo == hi and lo != 0:
        return abs(lo), 2 ** (spec.bits - (2 if spec.scheme == "symmetric" else 1))
    if spec.scheme == "symmetric":
        return max(-lo, hi, 0.0), spec.qmax
    return max(hi, 0.0) - min(lo, 0.0), spec.qmax - spec.qmin


def check_trace_inputs(x: float, lo: float, hi: float, bits: int, scheme: str = "symmetric") -> None:
    """Raise ``ValueError`` in plain words when :func:`trace_value` cannot follow ``x`` on ``[lo, hi]`` in float32.

    - every number finite and within float32's range (about ±3.4e38), which quantlib computes in;
    - ``lo <= hi``;
    - the range not too narrow: a non-zero range whose scale would fall below float32's smallest normal number
      (``MIN_SCALE`` ≈ 1.2e-38) gets that smallest scale instead, so the grid would no longer be the one the
      formula describes - e.g. ``[0, 5e-324]`` (whose end is 0 in float32 anyway), or ``[-1e-37, 1e-37]`` at
      8 bits (``s = 1e-37 / 127 ≈ 7.9e-40``).

    >>> check_trace_inputs(0.0, 0.0, 5e-324, 8)
    Traceback (most recent call last):
    ...
    ValueError: the range [0, 4.94e-324] is too narrow for a float32 scale at 8 bits: s = 4.94e-324 / 127 is below float32's smallest normal number 1.18e-38 - widen the range
    """
    spec = QuantSpec(bits=bits, scheme=scheme)
    for name, v in {"x": x, "lo": lo, "hi": hi}.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{name} must be a finite number, got {v!r}")
        if abs(v) > FLOAT32_MAX:
            raise ValueError(f"{name} = {v!r} is beyond float32's range (about ±3.4e38), which quantlib computes in")
    if lo > hi:
        raise ValueError(f"the range is empty: lo ({lo}) is greater than hi ({hi})")
    extent, divisor = _formula_scale(float(lo), float(hi), spec)
    if extent > 0 and extent / divisor < MIN_SCALE:
        raise ValueError(
            f"the range [{lo:.3g}, {hi:.3g}] is too narrow for a float32 scale at {spec.bits} bits: s = "
            f"{extent:.3g} / {divisor} is below float32's smallest normal number {MIN_SCALE:.3g} - widen the range"
        )


def trace_value(
    x: float,
    lo: float,
    hi: float,
    bits: int,
    scheme: str = "symmetric",
    rounding: str = "nearest",
    seed: int = 0,
) -> ValueTrace:
    """Quantize the single value ``x`` on the grid calibrated to ``[lo, hi]``, recording every step.

    Uses quantlib's own conventions (:func:`quantlib.kernels.qparams_from_range` for ``s`` and ``z``,
    :func:`quantlib.kernels.round_values` for rounding), so ``q`` and ``x̂`` equal
    ``quantize(tensor([x]), spec, qparams)`` / ``dequantize(...)`` for
    ``spec = QuantSpec(bits, scheme, rounding=rounding, seed=seed)`` and the qparams of ``[lo, hi]``.
    ``x`` may lie outside ``[lo, hi]``: then it is clipped to the nearest end of the grid (so far outside that
    ``x / s`` overflows float32, it reads ``inf`` and is clipped all the same, as ``quantize`` does).

    Raises ``ValueError`` naming the problem (:func:`check_trace_inputs`) for non-finite numbers, numbers beyond
    float32, an empty or too narrow range, and a range too wide for float32: one where ``x̂ = (q - z) · s``
    lands beyond ±3.4e38 (near float32's limits the rounded zero point can shift the grid's end past them:
    2-bit asymmetric on ``[-3.4e38, 3.4e38]`` reads ``x = -3.4e38`` back as ``-4.5e38``).

    Worked example, 2-bit asymmetric, ``[lo, hi] = [-1, 3]``: ``s = 4 / 3``, ``z = 0 - round(-0.75) = 1``;
    ``x = 2``: ``x / s = 1.5`` rounds (half to even) to ``2``, ``q = 3``, ``x̂ = (3 - 1) · 4/3 ≈ 2.667``.

    >>> t = trace_value(2.0, -1.0, 3.0, bits=2, scheme="asymmetric")
    >>> t.zero_point, t.x_over_s, t.q, round(t.x_hat, 3), t.clipped
    (1, 1.5, 3, 2.667, False)
    """
    spec = QuantSpec(bits=bits, scheme=scheme, rounding=rounding, seed=seed)
    check_trace_inputs(x, lo, hi, bits, scheme)
    lo_t = torch.tensor([lo], dtype=torch.float32)
    hi_t = torch.tensor([hi], dtype=torch.float32)
    scale_t, zp_t = qparams_from_range(lo_t, hi_t, spec)
    if spec.scheme == "symmetric":
        amax = max(-float(lo_t), float(hi_t), 0.0)
        range_lo, range_hi = -amax, amax
    else:
        range_lo, range_hi = min(float(lo_t), 0.0), max(float(hi_t), 0.0)
    x_t = torch.tensor([x], dtype=torch.float32)
    # Same float32 operations as kernels.int_quantize: multiply by the reciprocal, round, add z, clamp.
    v = x_t * (1.0 / scale_t)
    rounded = round_values(v.clone(), spec)
    shifted = rounded + zp_t.to(torch.float32)
    q = shifted.clamp(spec.qmin, spec.qmax)
    x_hat = (q - zp_t.to(torch.float32)) * scale_t
    if not bool(torch.isfinite(x_hat)):
        wide = (float(q) - int(zp_t)) * float(scale_t)
        raise ValueError(
            f"the range [{lo:.3g}, {hi:.3g}] is too wide for float32 at {spec.bits} bits ({spec.scheme}): x̂ = "
            f"(q - z)·s = {wide:.3g} is beyond float32's largest number {FLOAT32_MAX:.3g} - narrow the range"
        )
    return ValueTrace(
        x=float(x_t),
        lo=float(lo),
        hi=float(hi),
        bits=spec.bits,
        scheme=spec.scheme,
        rounding=spec.rounding,
        range_lo=range_lo,
        range_hi=range_hi,
        qmin=spec.qmin,
        qmax=spec.qmax,
        scale=float(scale_t),
        zero_point=int(zp_t),
        x_over_s=float(v),
        rounded=float(rounded),
        shifted=float(shifted),
        q=int(q),
        x_hat=float(x_hat),
        error=float(x_t) - float(x_hat),
        clipped=bool(shifted != q),
    )


# --------------------------------------------------------------------------------------------------------------
# Error formulas
# --------------------------------------------------------------------------------------------------------------


def mse_formula(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """The primer's ``MSE = (1/N) Σ_i (x_i - x̂_i)²``, written out term by term (``math.fsum`` of float64 squares).

    Same value as :func:`quantlib.metrics.mse` (up to the last bit of the summation order).

    >>> mse_formula(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 1.5]))   # (0² + 0.5²) / 2
    0.125
    """
    a = torch.as_tensor(x).detach().reshape(-1).to(torch.float64).tolist()
    b = torch.as_tensor(x_hat).detach().reshape(-1).to(torch.float64).tolist()
    if len(a) != len(b):
        raise ValueError(f"tensors differ in size: {len(a)} vs {len(b)} values")
    if not a:
        raise ValueError("the MSE needs at least one value; got empty tensors")
    return math.fsum((xi - yi) ** 2 for xi, yi in zip(a, b, strict=True)) / len(a)


#: ``20 · log10(2)``: the dB gained per extra bit (each bit halves the step, quartering the noise power).
DB_PER_BIT = 20.0 * math.log10(2.0)
#: ``10 · log10(3)``: from the uniform rounding noise ``Δ² / 12`` and a full range of ``2 · peak``.
_NOISE_CONSTANT_DB = 10.0 * math.log10(3.0)


def rule_of_thumb_sqnr(bits: int | float, peak_to_rms: float = math.sqrt(3.0)) -> float:
    """The "≈ 6 dB per bit" rule: ``SQNR ≈ 6.02 · b + 4.77 - 20 · log10(peak / rms)`` dB.

    Derivation: a grid of ``2^b`` steps over ``[-peak, peak]`` has step ``Δ = 2 · peak / 2^b``; rounding noise is
    uniform on ``[-Δ/2, Δ/2]`` with power ``Δ² / 12``; so ``SQNR = rms² / (Δ² / 12) = 3 · 2^(2b) · (rms / peak)²``.

    - uniform signal over the full range (``peak / rms = √3``, the default): the constant is 0, ``6.02 · b`` dB
      (``rule_of_thumb_sqnr(8) ≈ 48.2``);
    - sine wave (``√2``): ``6.02 · b + 1.76`` dB;
    - Gaussian with the range at ``±k σ`` (``peak / rms = k``): ``6.02 · b + 4.77 - 20 · log10(k)``, e.g.
      ``-4.77`` dB at ``k = 3``, ``-7.27`` dB at ``k = 4`` (min-max of ~10⁵ Gaussian samples gives k ≈ 4.4) -
      heavy tails waste grid levels, which is what clipping calibration (percentile, MSE) wins back.

    The rule ignores clipping noise and assumes the step is small compared with the signal's spread (b ≳ 4).
    A min-max grid spans the range with ``2^b - 1`` steps, not ``2^b`` (asymmetric: ``-20 · log10(1 - 2^-b)``,
    0.56 dB at 4 bits, 0.03 dB at 8), or ``2^b - 2`` when symmetric (``qmin`` stays unused: 1.16 dB at 4 bits,
    0.07 dB at 8).

    >>> round(rule_of_thumb_sqnr(8), 2), round(rule_of_thumb_sqnr(8, peak_to_rms=4.0), 2)
    (48.16, 40.89)
    """
    if isinstance(bits, bool) or not isinstance(bits, (int, float)) or not bits > 0:
        raise ValueError(f"bits must be a positive number, got {bits!r}")
    if not (isinstance(peak_to_rms, (int, float)) and math.isfinite(peak_to_rms) and peak_to_rms >= 1.0):
        raise ValueError(f"peak_to_rms must be a finite number >= 1 (the peak is at least the rms), got {peak_to_rms!r}")
    return DB_PER_BIT * bits + _NOISE_CONSTANT_DB - 20.0 * math.log10(peak_to_rms)


# --------------------------------------------------------------------------------------------------------------
# A Linear layer in integer arithmetic, the right way and the primer's way
# --------------------------------------------------------------------------------------------------------------

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

NAIVE_EXPLANATION = (
    "The naive way is wrong because the bias is added to the integer accumulator, whose values count units of "
    "s_w·s_x (not s_w), so a bias quantized with s_w is scaled by s_x by mistake, and because the output's range "
    "differs from the weights', so rounding the output onto the weight's grid clips every output beyond ±max|w|."
)


@dataclass(frozen=True)
class IntegerPath:
    """``y = W x + b`` in integer arithmetic, as an int8 inference engine computes it.

    Shapes: ``q_w`` ``(out, in)``; ``q_x`` ``(N, in)``; ``q_b``, ``zero_point_correction`` ``(out,)``; ``acc``,
    ``acc_total``, ``q_y``, ``output``, ``error``, ``error_bound`` ``(N, out)``. Integers are int64 tensors
    (their values are what int32 / int8 hardware would hold; ``fits_int32`` says whether they fit).

    Steps::

        q_w = round(W / s_w)                              int8, symmetric: s_w = max|W| / qmax
        q_x = clamp(round(x / s_x) + z_x, qmin, qmax)      int8 (asymmetric: uint8 with zero point z_x)
        q_b = round(b / (s_w · s_x))                       int32, on the accumulator's scale
        acc = Σ_i q_w[o, i] · q_x[n, i]                    int32 accumulation
        acc_total = acc - z_x · Σ_i q_w[o, i] + q_b         zero-point correction (precomputable), plus bias
        q_y = clamp(round(acc_total · M) + z_y, qmin, qmax) requantize, M = s_w · s_x / s_y
        ŷ = (q_y - z_y) · s_y

    ``error_bound`` (valid when no input is clipped) sums the worst cases of each rounding:
    ``Σ_i (|W_i| s_x / 2 + |x_i| s_w / 2 + s_w s_x / 4) + s_w s_x / 2 + s_y / 2``.
    """

    s_w: float
    q_w: torch.Tensor
    s_x: float
    z_x: int
    q_x: torch.Tensor
    input_scheme: str
    q_b: torch.Tensor
    acc: torch.Tensor
    zero_point_correction: torch.Tensor
    acc_total: torch.Tensor
    s_y: float
    z_y: int
    multiplier: float
    q_y: torch.Tensor
    output: torch.Tensor
    error: torch.Tensor
    max_abs_error: float
    mse: float
    error_bound: torch.Tensor
    inputs_clipped: bool
    outputs_clipped: bool
    fits_int32: bool

    @property
    def bias_scale(self) -> float:
        """``s_w · s_x``: the scale of the accumulator, and so of the bias."""
        return self.s_w * self.s_x

    @property
    def error_in_lsb(self) -> float:
        """Largest error in units of the output step ``s_y``."""
        return self.max_abs_error / self.s_y


@dataclass(frozen=True)
class NaivePath:
    """The same integer pipeline with the two mistakes of the primer's code sample.

    ``q_b = round(b / s_w)`` (the weight's scale instead of ``s_w · s_x``) is added to the accumulator, and the
    output is put back on the weight's grid: ``q_y = clamp(round(acc_total · s_w s_x / s_w), qmin, qmax)``,
    ``ŷ = q_y · s_w``. So the bias is worth ``b · s_x`` instead of ``b``, and outputs beyond
    ``±qmax · s_w = ±max|W|`` are clipped.

    ``primer_output`` is what the primer's code literally prints:
    ``dequantize(quantize(x @ q_w.T + q_b, s_w), s_w) = round((x @ q_w.T + q_b) / s_w) · s_w``, with float
    ``x`` and integer weights. The accumulator ``x @ q_w.T + q_b`` already counts units of ``s_w`` (≈ ``y / s_w``)
    and must be *multiplied* by ``s_w``; quantizing it "with s_w" instead leaves it ≈ ``y / s_w`` (here about
    100 × too large).
    """

    scale: float
    q_b: torch.Tensor
    acc_total: torch.Tensor
    q_y: torch.Tensor
    output: torch.Tensor
    error: torch.Tensor
    max_abs_error: float
    mse: float
    outputs_clipped: int
    primer_output: torch.Tensor
    primer_max_abs_error: float


@dataclass(frozen=True)
class IntegerLinearResult:
    """:func:`integer_linear`'s three answers: ``float_output``, ``correct`` (:class:`IntegerPath`),
    ``naive`` (:class:`NaivePath`) and a one-sentence ``explanation`` of why the naive one is wrong."""

    bits: int
    float_output: torch.Tensor
    correct: IntegerPath
    naive: NaivePath
    explanation: str

    @property
    def naive_to_correct_error_ratio(self) -> float:
        """How many times larger the naive path's RMS error is than the correct path's."""
        if self.correct.mse == 0.0:
            return math.inf
        return math.sqrt(self.naive.mse / self.correct.mse)


def _range_qparams(lo: float, hi: float, spec: QuantSpec) -> tuple[float, int]:
    scale, zp = qparams_from_range(torch.tensor([lo]), torch.tensor([hi]), spec)
    return float(scale), int(zp)


def _requantize(acc: torch.Tensor, multiplier: float, zero_point: int, spec: QuantSpec) -> tuple[torch.Tensor, int]:
    """``clamp(round(acc · M) + z, qmin, qmax)`` in float64 (hardware uses a fixed-point M0 · 2^-n) and the number
    of clamped values."""
    v = torch.round(acc.to(torch.float64) * multiplier) + zero_point
    q = v.clamp(spec.qmin, spec.qmax)
    return q.to(torch.int64), int((q != v).sum())


def integer_linear(
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    x: torch.Tensor,
    bits: int = 8,
    input_scheme: str = "asymmetric",
    input_range: tuple[float, float] | None = None,
    output_range: tuple[float, float] | None = None,
) -> IntegerLinearResult:
    """``y = x Wᵀ + b`` three ways: float, correct integer arithmetic, and the primer's naive way.

    - weights: ``bits``-bit symmetric per-tensor, ``s_w = max|W| / (2^(b-1) - 1)``;
    - inputs and output: ``bits``-bit with ``input_scheme`` (default ``"asymmetric"``: an unsigned grid with a
      zero point, what PyTorch's x86 / ARM int8 backends use for activations, which makes the zero-point
      correction term ``z_x · Σ q_w`` appear; ``"symmetric"`` makes it 0). ``s_x`` is calibrated min-max on
      ``x`` (or ``input_range``), ``s_y`` on the float outputs (or ``output_range``);
    - bias: int32 on the accumulator's scale ``s_w · s_x``.

    ``x`` is one input ``(in,)`` or a batch ``(N, in)``; outputs are always ``(N, out)``.

    Worked example: ``W = [[0.5, -0.25]]``, ``b = [0.1]``, ``x = [1, 2]`` at 8 bits, symmetric inputs:
    ``s_w = 0.5/127``, ``s_x = 2/127``, ``q_w = [127, -64]``, ``q_x = [64, 127]`` (64 = round(63.5), ties to even),
    ``acc = 127·64 - 64·127 = 0``, ``q_b = round(0.1 / (s_w s_x)) = 1613``, so ``ŷ ≈ 1613 · s_w s_x ≈ 0.1`` = y.

    >>> r = integer_linear(torch.tensor([[0.5, -0.25]]), torch.tensor([0.1]), torch.tensor([1.0, 2.0]),
    ...                    input_scheme="symmetric")
    >>> r.correct.q_w.tolist(), r.correct.q_x.tolist(), r.correct.acc.tolist(), r.correct.q_b.tolist()
    ([[127, -64]], [[64, 127]], [[0]], [1613])
    >>> abs(r.correct.output.item() - 0.1) < 1e-6
    True
    """
    w = as_float32(weight, "weight")
    if w.dim() != 2 or w.numel() == 0:
        raise ValueError(f"weight must be a non-empty (out, in) matrix, got shape {list(w.shape)}")
    n_out, n_in = w.shape
    b = torch.zeros(n_out) if bias is None else as_float32(bias, "bias").reshape(-1)
    if b.numel() != n_out:
        raise ValueError(f"bias has {b.numel()} values but the layer has {n_out} outputs")
    xs = as_float32(x, "input")
    if xs.dim() == 1:
        xs = xs.unsqueeze(0)
    if xs.dim() != 2 or xs.shape[1] != n_in or xs.shape[0] == 0:
        raise ValueError(f"input must have shape (in,) or (N, in) with in = {n_in}, got {list(torch.as_tensor(x).shape)}")
    if input_scheme not in ("symmetric", "asymmetric"):
        raise ValueError(f"input_scheme must be 'symmetric' or 'asymmetric', got {input_scheme!r}")
    wspec = QuantSpec(bits=bits, scheme="symmetric")
    aspec = QuantSpec(bits=bits, scheme=input_scheme)
    if not bool(w.any()):
        raise ValueError("the weight is all zeros: there is no scale s_w to put it (and the bias) on a grid")

    # (a) float reference, in float64 so the reference itself adds no rounding of its own.
    y = (xs.double() @ w.double().T + b.double()).float()

    # (b) correct integer path.
    # Weights and inputs are quantized with quantlib's own float32 kernels, so the codes equal quantlib.quantize.
    s_w_t, _ = qparams_from_range(w.min().reshape(1), w.max().reshape(1), wspec)
    s_w = float(s_w_t)
    q_w = int_quantize(w, s_w_t, torch.zeros((), dtype=torch.int32), wspec).to(torch.int64)
    x_lo, x_hi = input_range if input_range is not None else (float(xs.min()), float(xs.max()))
    if not x_lo <= x_hi:
        raise ValueError(f"input_range must be (lo, hi) with lo <= hi, got {input_range!r}")
    s_x_t, z_x_t = qparams_from_range(torch.tensor([float(x_lo)]), torch.tensor([float(x_hi)]), aspec)
    s_x, z_x = float(s_x_t), int(z_x_t)
    if x_lo == x_hi == 0:
        raise ValueError("the inputs are all zero, so they give no range to calibrate s_x on: pass input_range")
    qx_unclamped = round_values(xs * (1.0 / s_x_t), aspec) + float(z_x)
    q_x = qx_unclamped.clamp(aspec.qmin, aspec.qmax).to(torch.int64)
    inputs_clipped = bool((q_x != qx_unclamped).any())
    s_acc = s_w * s_x
    q_b_real = torch.round(b.double() / s_acc)
    if not bool((q_b_real.abs() < 2.0**62).all()):
        raise ValueError("the bias is too large for the accumulator's scale s_w·s_x: widen input_range")
    q_b = q_b_real.to(torch.int64)
    acc = q_x @ q_w.T  # int64 matmul: exact; the values are what an int32 accumulator holds
    correction = z_x * q_w.sum(dim=1)
    acc_total = acc - correction + q_b
    y_lo, y_hi = output_range if output_range is not None else (float(y.min()), float(y.max()))
    if not y_lo <= y_hi:
        raise ValueError(f"output_range must be (lo, hi) with lo <= hi, got {output_range!r}")
    s_y, z_y = _range_qparams(y_lo, y_hi, aspec)
    multiplier = s_acc / s_y
    q_y, n_out_clipped = _requantize(acc_total, multiplier, z_y, aspec)
    out = ((q_y - z_y).double() * s_y).float()
    err = out - y
    bound = (
        (w.double().abs().sum(dim=1) * s_x / 2).unsqueeze(0)
        + (xs.double().abs().sum(dim=1, keepdim=True) * s_w / 2)
        + n_in * s_acc / 4
        + s_acc / 2
        + s_y / 2
    ).expand(xs.shape[0], n_out)
    fits = all(
        int(t.min()) >= INT32_MIN and int(t.max()) <= INT32_MAX for t in (acc, acc_total, q_b.reshape(1, -1))
    )
    correct = IntegerPath(
        s_w=s_w,
        q_w=q_w,
        s_x=s_x,
        z_x=z_x,
        q_x=q_x,
        input_scheme=input_scheme,
        q_b=q_b,
        acc=acc,
        zero_point_correction=correction,
        acc_total=acc_total,
        s_y=s_y,
        z_y=z_y,
        multiplier=multiplier,
        q_y=q_y,
        output=out,
        error=err,
        max_abs_error=float(err.abs().max()),
        mse=float(err.double().square().mean()),
        error_bound=bound.float(),
        inputs_clipped=inputs_clipped,
        outputs_clipped=n_out_clipped > 0,
        fits_int32=fits,
    )

    # (c) naive path: same integer inputs and weights, bias and output on the weight's scale s_w.
    naive_q_b = torch.round(b.double() / s_w).to(torch.int64)
    naive_acc = acc - correction + naive_q_b
    naive_q_y, naive_clipped = _requantize(naive_acc, s_acc / s_w, 0, wspec)
    naive_out = (naive_q_y.double() * s_w).float()
    naive_err = naive_out - y
    # The primer's code, literally: float x times integer weights, then quantize / dequantize "with scale".
    primer_acc = xs.double() @ torch.round(w.double() / s_w).T + torch.round(b.double() / s_w)
    primer_out = (torch.round(primer_acc / s_w) * s_w).float()
    naive = NaivePath(
        scale=s_w,
        q_b=naive_q_b,
        acc_total=naive_acc,
        q_y=naive_q_y,
        output=naive_out,
        error=naive_err,
        max_abs_error=float(naive_err.abs().max()),
        mse=float(naive_err.double().square().mean()),
        outputs_clipped=naive_clipped,
        primer_output=primer_out,
        primer_max_abs_error=float((primer_out - y).abs().max()),
    )
    return IntegerLinearResult(bits=wspec.bits, float_output=y, correct=correct, naive=naive, explanation=NAIVE_EXPLANATION)
