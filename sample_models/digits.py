"""``digits-mlp`` and ``digits-cnn``: small classifiers for scikit-learn's bundled 8×8 handwritten digits.

Data: the 1797 images of ``sklearn.datasets.load_digits`` (pixel values 0..16, scaled to [0, 1]), split once
into a fixed stratified 70 % train / 30 % test split. Weights are shipped in ``weights/`` and are reproduced
bit for bit by ``python -m sample_models.train digits-mlp`` / ``digits-cnn``.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from .base import N_, SampleModel, build_module

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
N_CLASSES = 10
TEST_FRACTION = 0.3
SPLIT_SEED = 0
N_CALIBRATION = 128


class DigitsMLP(nn.Module):
    """64 → 128 → 64 → 10 multilayer perceptron on flattened images, shape ``[N, 64]``."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, 128)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(128, 64)
        self.relu2 = nn.ReLU()
        self.fc3 = nn.Linear(64, N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(self.relu2(self.fc2(self.relu1(self.fc1(x)))))


class DigitsCNN(nn.Module):
    """conv 3×3 (16) → conv 3×3 (32) → 2×2 max-pool → linear, on images of shape ``[N, 1, 8, 8]``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, kernel_size=3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(32 * 4 * 4, N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.relu2(self.conv2(self.relu1(self.conv1(x)))))
        return self.fc(torch.flatten(x, 1))


ARCHITECTURES: dict[str, type[nn.Module]] = {"digits-mlp": DigitsMLP, "digits-cnn": DigitsCNN}


def weights_path(name: str) -> Path:
    """Where the shipped weights of ``name`` (``"digits-mlp"`` or ``"digits-cnn"``) live."""
    return WEIGHTS_DIR / f"{name.replace('-', '_')}.safetensors"


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The digits data set as ``(X [1797, 64] float64 0..16, y [1797] int64)``, exactly as ``load_digits`` gives.

    It reads the CSV that ships inside scikit-learn, the same file ``sklearn.datasets.load_digits`` reads, but
    without importing scikit-learn: that import alone takes about a second, twice the load-time budget.
    (A test checks the arrays are identical to ``load_digits(return_X_y=True)``.)
    """
    spec = importlib.util.find_spec("sklearn")  # locates the package without executing it
    if spec is None or spec.origin is None:
        raise RuntimeError("scikit-learn is not installed; the digits data ship inside it")
    csv_path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
    with gzip.open(csv_path, mode="rt", encoding="utf-8") as f:
        data = np.loadtxt(f, delimiter=",")
    return data[:, :-1], data[:, -1].astype(np.int64)


def stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, test)`` of a stratified split: each class contributes ``round(n_c * test_fraction)``.

    Uses the legacy ``np.random.RandomState``, whose streams numpy keeps stable across versions, so the split
    (and with it the shipped weights and metrics) does not change when numpy is upgraded. Both index arrays are
    shuffled, so the first examples of the train split are a mix of all classes (used for calibration).
    """
    rng = np.random.RandomState(seed)
    train_parts, test_parts = [], []
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        n_test = int(round(len(idx) * test_fraction))
        test_parts.append(idx[:n_test])
        train_parts.append(idx[n_test:])
    train, test = np.concatenate(train_parts), np.concatenate(test_parts)
    return rng.permutation(train), rng.permutation(test)


@functools.lru_cache(maxsize=1)
def _split_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x, y = load_digits_arrays()
    train, test = stratified_split(y, TEST_FRACTION, SPLIT_SEED)
    x = (x / 16.0).astype(np.float32)  # pixel counts 0..16 -> [0, 1]
    arrays = x[train], y[train], x[test], y[test]
    for a in arrays:
        a.setflags(write=False)  # cached and shared: make accidental writes fail loudly
    return arrays


def digits_tensors(name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_train, y_train, x_test, y_test)`` shaped for ``name``: ``[N, 64]`` for the MLP, ``[N, 1, 8, 8]`` for the CNN.

    Fresh tensors on every call, so a caller modifying them cannot affect another model's data.
    """
    x_train, y_train, x_test, y_test = (torch.tensor(a) for a in _split_arrays())
    if name == "digits-cnn":
        x_train, x_test = x_train.reshape(-1, 1, 8, 8), x_test.reshape(-1, 1, 8, 8)
    return x_train, y_train, x_test, y_test


def classification_metrics(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
    """Accuracy, macro-averaged F1 (computed here: importing scikit-learn costs a second) and cross-entropy."""
    pred = logits.argmax(dim=1)
    confusion = torch.zeros(N_CLASSES, N_CLASSES, dtype=torch.float64)
    confusion.index_put_((targets, pred), torch.ones_like(pred, dtype=torch.float64), accumulate=True)
    tp = confusion.diagonal()
    precision_den, recall_den = confusion.sum(dim=0), confusion.sum(dim=1)
    f1_den = precision_den + recall_den
    # F1 = 2TP / (2TP + FP + FN); a class with no predictions and no examples scores 0 (sklearn's default).
    f1 = torch.where(f1_den > 0, 2 * tp / f1_den.clamp(min=1), torch.zeros_like(tp))
    return {
        "accuracy": (pred == targets).double().mean(),
        "macro_f1": f1.mean(),
        "loss": F.cross_entropy(logits.double(), targets),
    }


def _build(name: str, title: str, description: str) -> SampleModel:
    x_train, y_train, x_test, y_test = digits_tensors(name)
    model = build_module(ARCHITECTURES[name], load_file(weights_path(name)))

    def metrics(candidate: nn.Module) -> dict[str, torch.Tensor]:
        return classification_metrics(candidate(x_test), y_test)

    return SampleModel(
        name=name,
        title=title,
        description=" ".join((description, _DATA_NOTE)).format(**_data_values(name)),
        description_parts=(description, _DATA_NOTE),
        text_values=_data_values(name),
        task=N_("classification"),
        model=model,
        calibration_inputs=x_train[:N_CALIBRATION],
        eval_inputs=x_test,
        eval_targets=y_test,
        metric_name="accuracy",
        higher_is_better=True,
        metrics_fn=metrics,
        train_inputs=x_train,
        train_targets=y_train,
        loss_fn=F.cross_entropy,
    )


_DATA_NOTE = N_(
    "Data: scikit-learn's bundled 8×8 handwritten digits (1797 images, pixel values scaled to [0, 1]), a fixed "
    "stratified split of {n_train} training and {n_test} test images. Metrics on the test images: accuracy "
    "(primary), macro-F1 and cross-entropy loss. Retrain with `python -m sample_models.train {name}`."
)


def _data_values(name: str) -> dict[str, object]:
    x_train, _, x_test, _ = _split_arrays()
    return {"name": name, "n_train": len(x_train), "n_test": len(x_test)}


def build_mlp() -> SampleModel:
    """Build ``digits-mlp`` from its shipped weights."""
    return _build(
        "digits-mlp",
        N_("Digits MLP (64 → 128 → 64 → 10)"),
        N_(
            "A three-layer perceptron (fc1 64→128, fc2 128→64, fc3 64→10, ReLU between) classifying flattened "
            "8×8 digit images. Its first layer sees the raw pixels, about half of which are exactly zero."
        ),
    )


def build_cnn() -> SampleModel:
    """Build ``digits-cnn`` from its shipped weights."""
    return _build(
        "digits-cnn",
        N_("Digits CNN (conv 16 → conv 32 → pool → linear)"),
        N_(
            "A small convolutional network on 1×8×8 digit images: conv1 (16 filters 3×3), conv2 (32 filters 3×3), "
            "2×2 max-pooling and a linear classifier (fc 512→10). The ranges of conv2's filters differ "
            "several-fold, so that is where per-channel scales pay off over per-tensor ones; conv1 has only 9 "
            "weights per filter."
        ),
    )
