"""Perplexity, defined once: exp of the mean negative log-likelihood, in nats, of every
counted target (each sentence's words and its end; `<unk>` counts as the word it stands
for). Lower is better. Bits per token: the same mean in base 2."""

from __future__ import annotations

import math
from dataclasses import dataclass


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
