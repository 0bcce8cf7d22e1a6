"""Perplexity, defined once: exp of the mean negative log-likelihood, in nats, of every
counted target (each sentence's words and its end; `<unk>` counts as the word it stands
for). Lower is better. Bits per token: the same mean in base 2."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property


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


@dataclass(frozen=True)
class Unigram:
    """Training-split token frequencies, add-one smoothed over the vocabulary (every id but
    padding's), `<eos>` counted as a word: the floor a language model must clear to have
    learned anything (the evaluate stage's baseline, and the retraining round's)."""

    counts: dict[int, int]  # id -> its count among the training targets
    vocab_size: int  # padding included

    @cached_property
    def total(self) -> int:
        return sum(self.counts.values()) + self.vocab_size - 1

    def nats(self, token: int) -> float:
        return -math.log((self.counts.get(token, 0) + 1) / self.total)
