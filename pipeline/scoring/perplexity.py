"""Perplexity, defined once: exp of the mean negative log-likelihood, in nats, of every
counted target (each sentence's words and its end; `<unk>` counts as the word it stands
for). Lower is better. Bits per token: the same mean in base 2."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LogLoss:
    """Summed negative log-likelihood (nats) over `tokens` targets."""

    nats: float
    tokens: int

    @property
    def perplexity(self) -> float:
        return math.exp(self.nats / self.tokens) if self.tokens else math.nan

    @property
    def bits_per_token(self) -> float:
        return self.nats / self.tokens / math.log(2) if self.tokens else math.nan

    def __add__(self, other: LogLoss) -> LogLoss:
        return LogLoss(self.nats + other.nats, self.tokens + other.tokens)


def per_sentence(token_nats: torch.Tensor, sentence_of_target: torch.Tensor,
                 sentences: int) -> torch.Tensor:
    """Each sentence's summed nats (float64) from every target's: what paired tests resample."""
    out = torch.zeros(sentences, dtype=torch.float64)
    return out.index_add_(0, sentence_of_target, token_nats.double())
