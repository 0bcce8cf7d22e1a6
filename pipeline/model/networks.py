"""Network components: word features, the recurrent encoder, and the two task heads
(sentence classification, token tagging)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from pipeline.config import Family, ModelParams
from pipeline.data.loading import IGNORE
from pipeline.data.text import PAD_ID
from pipeline.errors import fail
from pipeline.model.crf import CRF
from pipeline.model.encoder import Dropout, RecurrentEncoder


def length_mask(lengths: torch.Tensor, max_len: int, device: torch.device) -> torch.Tensor:
    """[B, T] bool, True on real tokens."""
    return torch.arange(max_len, device=device)[None, :] < lengths.to(device)[:, None]


def pool(outputs: torch.Tensor, lengths: torch.Tensor, how: str, bidirectional: bool
         ) -> torch.Tensor:
    """Reduce [B, T, D*H] RNN outputs to one vector per sequence, ignoring padding."""
    mask = length_mask(lengths, outputs.size(1), outputs.device)
    if how == "max":
        return outputs.masked_fill(~mask[..., None], float("-inf")).max(dim=1).values
    if how == "mean":
        summed = (outputs * mask[..., None]).sum(dim=1)
        return summed / lengths.to(outputs.device)[:, None].clamp(min=1)
    # "last": the forward direction's state at the last real token; the backward
    # direction's final state sits at position 0.
    last = (lengths.to(outputs.device) - 1).clamp(min=0)
    rows = torch.arange(outputs.size(0), device=outputs.device)
    if not bidirectional:
        return outputs[rows, last]
    half = outputs.size(-1) // 2
    return torch.cat([outputs[rows, last, :half], outputs[:, 0, half:]], dim=-1)


def make_embedding(vocab_size: int, params: ModelParams,
                   vectors: dict[str, torch.Tensor] | None = None) -> nn.Embedding:
    """Random embeddings, or pretrained vectors where prepare found them (the rest random)."""
    embedding = nn.Embedding(vocab_size, params.embedding_dim, padding_idx=PAD_ID)
    if vectors is not None:
        matrix, found = vectors["vectors"], vectors["found"]
        if matrix.shape != (vocab_size, params.embedding_dim):
            fail(f"model.embedding_dim: {params.embedding_dim}, but prepare.vectors are "
                 f"{matrix.shape[1]}-dimensional; set model.embedding_dim: {matrix.shape[1]}")
        with torch.no_grad():
            embedding.weight[found] = matrix[found]
        embedding.weight.requires_grad_(not params.freeze_embeddings)
    return embedding


class CharCNN(nn.Module):
    """One vector per word from its spelling: character embeddings, a width-3 convolution,
    max over the word's characters (Ma & Hovy, 2016: 30-d characters, 30 filters)."""

    def __init__(self, num_chars: int, filters: int, dim: int = 30, width: int = 3):
        super().__init__()
        self.embedding = nn.Embedding(num_chars, dim, padding_idx=PAD_ID)
        self.conv = nn.Conv1d(dim, filters, width, padding=width // 2)
        self.output_size = filters

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        """chars: [B, T, L] (0 = padding) -> [B, T, filters]."""
        b, t, n = chars.shape
        flat = chars.reshape(b * t, n)
        h = self.conv(self.embedding(flat).transpose(1, 2))  # [B*T, F, L]
        h = h.masked_fill((flat == PAD_ID)[:, None, :], float("-inf")).max(dim=-1).values
        # Padding words have no characters at all: give them zeros, not -inf.
        return torch.tanh(h.nan_to_num(0.0, neginf=0.0)).reshape(b, t, -1)


def masked_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over counted targets ([B, C] with [B], or [B, T, C] with [B, T])."""
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1),
                           ignore_index=IGNORE)


class RecurrentNet(nn.Module):
    """The trunk both tasks share: word embedding (+ char CNN) -> dropout -> recurrent encoder,
    and a linear head."""

    def __init__(self, cell: str, vocab_size: int, num_classes: int, params: ModelParams,
                 vectors: dict[str, torch.Tensor] | None = None, num_chars: int = 0):
        super().__init__()
        self.embedding = make_embedding(vocab_size, params, vectors)
        self.chars = None
        if params.char_filters:
            if num_chars < 2:
                fail("model.char_filters: the prepared data has no characters (only tagging "
                     "tasks have them); set model.char_filters: 0")
            self.chars = CharCNN(num_chars, params.char_filters)
        word_size = params.embedding_dim + params.char_filters
        self.encoder = RecurrentEncoder(
            cell, word_size, params.hidden_size, params.num_layers,
            params.bidirectional, params.dropout, params.forget_bias,
        )
        self.dropout = Dropout(params.dropout)
        self.head = nn.Linear(self.encoder.output_size, num_classes)

    def features(self, ids: torch.Tensor, chars: torch.Tensor | None = None) -> torch.Tensor:
        """ids: [B, T] (chars: [B, T, L]) -> the encoder's inputs [B, T, E (+ filters)]."""
        words = self.embedding(ids)
        if self.chars is not None:
            if chars is None:
                raise ValueError("this network reads characters: pass chars [B, T, L]")
            words = torch.cat([words, self.chars(chars)], dim=-1)
        return self.dropout(words)

    def readout(self, h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Encoder outputs [B, T, D*H] -> logits; each head defines it."""
        raise NotImplementedError

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor,
                chars: torch.Tensor | None = None) -> torch.Tensor:
        """ids: [B, T] -> logits ([B, C] per sentence, [B, T, C] per token)."""
        return self.readout(self.encoder(self.features(ids, chars), lengths), lengths)


class SentenceClassifier(RecurrentNet):
    """Embedding -> dropout -> recurrent encoder -> pooling -> dropout -> linear."""

    def __init__(self, cell: str, vocab_size: int, num_classes: int, params: ModelParams,
                 vectors: dict[str, torch.Tensor] | None = None, num_chars: int = 0):
        super().__init__(cell, vocab_size, num_classes, params, vectors, num_chars)
        self.pooling, self.bidirectional = params.pooling, params.bidirectional

    def readout(self, h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Encoder outputs [B, T, D*H] -> logits [B, C]."""
        return self.head(self.dropout(pool(h, lengths, self.pooling, self.bidirectional)))

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return masked_cross_entropy(logits, targets)

    def predict(self, logits: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return logits.argmax(-1)


class TokenTagger(RecurrentNet):
    """Embedding -> dropout -> recurrent encoder -> dropout -> linear, at every token."""

    def __init__(self, cell: str, vocab_size: int, num_classes: int, params: ModelParams,
                 vectors: dict[str, torch.Tensor] | None = None, num_chars: int = 0):
        super().__init__(cell, vocab_size, num_classes, params, vectors, num_chars)
        self.crf = CRF(num_classes) if params.crf else None

    def readout(self, h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Encoder outputs [B, T, D*H] -> emission logits [B, T, C] (padding: the loss masks it)."""
        return self.head(self.dropout(h))

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.crf is None:
            return masked_cross_entropy(logits, targets)
        return self.crf.nll(logits, targets, targets != IGNORE)

    def predict(self, logits: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Best tags [B, T]: per-token argmax, or the Viterbi path under the CRF."""
        if self.crf is None:
            return logits.argmax(-1)
        return self.crf.decode(logits, length_mask(lengths, logits.size(1), logits.device))


def build_network(family: Family, cell: str, vocab_size: int, num_classes: int,
                  params: ModelParams, vectors: dict[str, torch.Tensor] | None = None,
                  num_chars: int = 0) -> nn.Module:
    """A task family's untrained network: a classifier, a tagger or a language model."""
    if family == Family.LANGUAGE_MODEL:
        from pipeline.model.language_model import LanguageModel  # it builds on this module

        return LanguageModel(cell, vocab_size, params, params.tie_embeddings, vectors)
    cls = SentenceClassifier if family == Family.CLASSIFICATION else TokenTagger
    return cls(cell, vocab_size, num_classes, params, vectors, num_chars)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def equal_params_width(family: Family, cell: str, vocab_size: int, num_classes: int,
                       params: ModelParams, num_chars: int = 0) -> int:
    """The hidden size at which `cell` has as many trainable parameters as an LSTM with
    `params.hidden_size` units (same embedding, layers and head): the nearest count wins."""
    def count(kind: str, width: int) -> int:
        net = build_network(family, kind, vocab_size, num_classes,
                            params.model_copy(update={"hidden_size": width}), None, num_chars)
        return count_parameters(net)

    target = count("lstm", params.hidden_size)
    lo, hi = 1, 8 * params.hidden_size  # a vanilla RNN needs about 2x an LSTM's width
    while lo < hi:  # the smallest width with at least the target count
        mid = (lo + hi) // 2
        if count(cell, mid) < target:
            lo = mid + 1
        else:
            hi = mid
    return min({max(lo - 1, 1), lo}, key=lambda w: abs(count(cell, w) - target))


def loss_and_hits(net: torch.nn.Module, logits: torch.Tensor, lengths: torch.Tensor,
                  targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The network's loss, its correct predictions and how many targets counted.

    Labels [B] or tags [B, T]; padded tag positions (IGNORE) count for neither.
    """
    counted = targets != IGNORE
    hits = (net.predict(logits, lengths) == targets)[counted].sum()
    return net.loss(logits, targets), hits, int(counted.sum())
