"""``recsys``: an embedding-table recommender trained on a synthetic implicit-feedback data set.

The data are synthetic and fully determined by a seed: users and items get latent factors drawn around a few
shared "taste" clusters, each item gets a popularity, and each user interacts with 10-60 items sampled from
softmax(affinity). Five interactions per user are held out for testing. Nothing is downloaded.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from .base import N_, SampleModel, build_module, call

WEIGHTS_PATH = Path(__file__).resolve().parent / "weights" / "recsys.safetensors"

N_USERS = 500
N_ITEMS = 1000
EMBEDDING_DIM = 32
HIDDEN_DIM = 32
DATA_SEED = 0
N_CLUSTERS = 10
LATENT_DIM = 16
AFFINITY_TEMPERATURE = 2.0  # higher = users follow their taste more strictly, popularity matters less
HELD_OUT_PER_USER = 5
TOP_K = 10
NEGATIVES_PER_POSITIVE = 4
N_EVAL_PAIRS = 2048
N_CALIBRATION = 256
EVAL_USER_CHUNK = 100  # users scored per forward pass in evaluate(): 100k pairs, a few MB of activations


class RecsysModel(nn.Module):
    """User/item embedding tables with a neural matrix-factorisation scorer (a "NeuMF"-style model).

    ``forward(user_ids, item_ids)`` takes two int64 tensors of equal shape ``[N]`` and returns ``[N]`` logits:
    ``out([u ⊙ v, relu(hidden([u, v]))])`` where ``u``, ``v`` are the user and item embeddings. The element-wise
    product carries the classic dot-product signal; the small MLP can model interactions it misses.
    """

    def __init__(self) -> None:
        super().__init__()
        # The tables are created uninitialised (``_weight=``): their values always come from the weight file
        # or from train.py's own init. Skipping Embedding's default N(0, 1) init matters for load time: on the
        # meta device that init goes through torch's reference ops, which import torch._dynamo (~2 s).
        self.user_emb = nn.Embedding(N_USERS, EMBEDDING_DIM, _weight=torch.empty(N_USERS, EMBEDDING_DIM))
        self.item_emb = nn.Embedding(N_ITEMS, EMBEDDING_DIM, _weight=torch.empty(N_ITEMS, EMBEDDING_DIM))
        self.hidden = nn.Linear(2 * EMBEDDING_DIM, HIDDEN_DIM)
        self.relu = nn.ReLU()
        self.out = nn.Linear(EMBEDDING_DIM + HIDDEN_DIM, 1)

    def forward(self, user_ids: torch.Tensor, item_ids: torch.Tensor) -> torch.Tensor:
        u, v = self.user_emb(user_ids), self.item_emb(item_ids)
        h = self.relu(self.hidden(torch.cat([u, v], dim=-1)))
        return self.out(torch.cat([u * v, h], dim=-1)).squeeze(-1)


@dataclass(frozen=True)
class Interactions:
    """The synthetic data set as boolean ``[N_USERS, N_ITEMS]`` matrices (train and held-out test)."""

    train: np.ndarray
    test: np.ndarray


@functools.lru_cache(maxsize=1)
def generate_interactions(seed: int = DATA_SEED) -> Interactions:
    """Generate the synthetic implicit-feedback data set (deterministic for a given seed, ~30 ms).

    Uses the legacy ``np.random.RandomState`` because numpy keeps its streams stable across versions: the data,
    and therefore the shipped weights and metrics, do not change on a numpy upgrade.
    """
    rs = np.random.RandomState(seed)
    centers = rs.normal(size=(N_CLUSTERS, LATENT_DIM))
    user_cluster = rs.randint(N_CLUSTERS, size=N_USERS)
    item_cluster = rs.randint(N_CLUSTERS, size=N_ITEMS)
    user_factors = centers[user_cluster] + 0.7 * rs.normal(size=(N_USERS, LATENT_DIM))
    item_factors = centers[item_cluster] + 0.7 * rs.normal(size=(N_ITEMS, LATENT_DIM))
    log_popularity = rs.normal(size=N_ITEMS)
    affinity = AFFINITY_TEMPERATURE * (user_factors @ item_factors.T) / np.sqrt(LATENT_DIM) + log_popularity
    n_interactions = np.clip(15 + rs.poisson(15, size=N_USERS), 10, 60)
    # Gumbel-top-k: the first n items of argsort(affinity + Gumbel noise) are a sample without replacement
    # from softmax(affinity), vectorised over all users at once.
    order = np.argsort(-(affinity + rs.gumbel(size=affinity.shape)), axis=1, kind="stable")
    train = np.zeros((N_USERS, N_ITEMS), dtype=bool)
    test = np.zeros((N_USERS, N_ITEMS), dtype=bool)
    for user in range(N_USERS):
        items = rs.permutation(order[user, : n_interactions[user]])
        test[user, items[:HELD_OUT_PER_USER]] = True
        train[user, items[HELD_OUT_PER_USER:]] = True
    train.setflags(write=False)  # cached and shared: make accidental writes fail loudly
    test.setflags(write=False)
    return Interactions(train=train, test=test)


def positive_pairs(matrix: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """``(user_ids, item_ids)`` of the True entries of a ``[users, items]`` matrix, as int64 tensors."""
    users, items = np.nonzero(matrix)
    return torch.from_numpy(users.astype(np.int64)), torch.from_numpy(items.astype(np.int64))


def training_split(
    data: Interactions, seed: int = DATA_SEED
) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A fixed training set for quantization-aware training: ``((user_ids, item_ids), labels)``.

    All training positives (label 1) plus ``NEGATIVES_PER_POSITIVE`` uniformly sampled items per positive
    (label 0), sampled once with a fixed seed and shuffled. (`train.py` resamples negatives every epoch.)
    """
    gen = torch.Generator().manual_seed(seed)
    pos_u, pos_i = positive_pairs(data.train)
    neg_u = pos_u.repeat(NEGATIVES_PER_POSITIVE)
    neg_i = torch.randint(N_ITEMS, neg_u.shape, generator=gen)
    users, items = torch.cat([pos_u, neg_u]), torch.cat([pos_i, neg_i])
    labels = torch.cat([torch.ones(len(pos_u)), torch.zeros(len(neg_u))])
    perm = torch.randperm(len(users), generator=gen)
    return (users[perm], items[perm]), labels[perm]


def eval_pairs(
    data: Interactions, seed: int = DATA_SEED
) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The fixed drift set: half held-out positives (label 1), half random never-interacted pairs (label 0)."""
    gen = torch.Generator().manual_seed(seed + 1)
    n_half = N_EVAL_PAIRS // 2
    test_u, test_i = positive_pairs(data.test)
    pick = torch.randperm(len(test_u), generator=gen)[:n_half]
    unseen = ~(data.train | data.test)
    unseen_u, unseen_i = positive_pairs(unseen)
    pick_neg = torch.randperm(len(unseen_u), generator=gen)[:n_half]
    users = torch.cat([test_u[pick], unseen_u[pick_neg]])
    items = torch.cat([test_i[pick], unseen_i[pick_neg]])
    labels = torch.cat([torch.ones(n_half), torch.zeros(n_half)])
    return (users, items), labels


def score_matrix(model: nn.Module) -> torch.Tensor:
    """Scores of every (user, item) pair, ``[N_USERS, N_ITEMS]``, through the model's public forward."""
    chunks = []
    items = torch.arange(N_ITEMS)
    for start in range(0, N_USERS, EVAL_USER_CHUNK):
        users = torch.arange(start, min(start + EVAL_USER_CHUNK, N_USERS))
        u = users.repeat_interleave(N_ITEMS)
        i = items.repeat(len(users))
        chunks.append(call(model, (u, i)).reshape(len(users), N_ITEMS))
    return torch.cat(chunks)


def ranking_metrics(scores: torch.Tensor, data: Interactions) -> dict[str, torch.Tensor]:
    """Recall@10 and AUC of held-out items, ranking every item the user did not interact with in training.

    recall@10: per user, the fraction of the 5 held-out items among the 10 best-scored unseen items; averaged.
    AUC: per user, the probability that a held-out item outscores an item the user never interacted with
    (ties count one half); averaged over users.
    """
    train = torch.tensor(data.train)  # copies: the cached arrays are read-only
    test = torch.tensor(data.test)
    scores = scores.double()
    ranked = scores.masked_fill(train, float("-inf"))
    top = ranked.topk(TOP_K, dim=1).indices
    recall = test.gather(1, top).sum(dim=1).double() / test.sum(dim=1)
    negatives = ~(train | test)
    # Every user has exactly HELD_OUT_PER_USER test items, so boolean indexing (row-major) gives [U, 5].
    pos = scores[test].reshape(N_USERS, HELD_OUT_PER_USER)
    # Compare each held-out score with all of the user's scores, then keep only the negatives' columns.
    neg_scores = scores.unsqueeze(1)  # [U, 1, I]
    wins = (pos.unsqueeze(2) > neg_scores).double() + 0.5 * (pos.unsqueeze(2) == neg_scores).double()
    wins = (wins * negatives.unsqueeze(1)).sum(dim=2) / negatives.sum(dim=1, keepdim=True)
    return {"recall@10": recall.mean(), "auc": wins.mean()}



DESCRIPTION = N_(
    "An embedding-based recommender: a user table ({users}×{dim}) and an item table ({items}×{dim}) feed a "
    "scorer that combines their element-wise product with a small MLP (hidden {hidden_in}→{hidden}, out "
    "{out_in}→1); forward(user_ids, item_ids) returns a logit per pair. The data are SYNTHETIC: implicit "
    "feedback generated with a fixed seed from latent user/item factors in {clusters} taste clusters plus item "
    "popularity ({n_train} training interactions, {held_out} held out per user). Metrics: recall@{k} of the "
    "held-out items when ranking every item the user has not seen (primary; random ranking scores about "
    "{random_recall}) and AUC. Embedding tables are most of the weights, and their rows are looked up, not "
    "multiplied: a good place to compare per-tensor with per-row (per-channel, axis 0) scales. Retrain with "
    "`python -m sample_models.train recsys`."
)

def build() -> SampleModel:
    """Build ``recsys`` from its shipped weights and the regenerated synthetic data."""
    data = generate_interactions()
    model = build_module(RecsysModel, load_file(WEIGHTS_PATH))
    train_inputs, train_targets = training_split(data)
    eval_inputs, eval_targets = eval_pairs(data)
    calibration = (train_inputs[0][:N_CALIBRATION], train_inputs[1][:N_CALIBRATION])
    n_train = int(data.train.sum())

    def metrics(candidate: nn.Module) -> dict[str, torch.Tensor]:
        return ranking_metrics(score_matrix(candidate), data)

    random_recall = TOP_K / (N_ITEMS - n_train / N_USERS)
    values = {
        "users": N_USERS, "items": N_ITEMS, "dim": EMBEDDING_DIM, "hidden_in": 2 * EMBEDDING_DIM,
        "hidden": HIDDEN_DIM, "out_in": EMBEDDING_DIM + HIDDEN_DIM, "clusters": N_CLUSTERS, "n_train": n_train,
        "held_out": HELD_OUT_PER_USER, "k": TOP_K, "random_recall": f"{random_recall:.3f}",
    }
    return SampleModel(
        name="recsys",
        title=N_("Recommender (embedding tables + NeuMF scorer)"),
        description=DESCRIPTION.format(**values),
        description_parts=(DESCRIPTION,),
        text_values=values,
        task=N_("recommendation"),
        # 63k training pairs: batches of 256 make an epoch ~0.8 s (at 64 it took 9 s for a similar gain).
        train_batch_size=256,
        model=model,
        calibration_inputs=calibration,
        eval_inputs=eval_inputs,
        eval_targets=eval_targets,
        metric_name="recall@10",
        higher_is_better=True,
        metrics_fn=metrics,
        train_inputs=train_inputs,
        train_targets=train_targets,
        loss_fn=F.binary_cross_entropy_with_logits,
    )
