"""A linear-chain CRF output layer: sequence-level loss and Viterbi decoding.

Scores a tag sequence y over emissions e (the tagger's per-token logits) as
    start[y_1] + sum_t e_t[y_t] + sum_t trans[y_{t-1}, y_t] + end[y_T],
and normalizes over all tag sequences with the forward algorithm (log-space), so the model
learns which tags may follow which (I-PER after B-PER, not after O).
"""

from __future__ import annotations

import torch
from torch import nn


class CRF(nn.Module):
    def __init__(self, num_tags: int):
        super().__init__()
        self.start = nn.Parameter(torch.zeros(num_tags))
        self.end = nn.Parameter(torch.zeros(num_tags))
        self.trans = nn.Parameter(torch.zeros(num_tags, num_tags))  # [from, to]
        nn.init.uniform_(self.trans, -0.1, 0.1)

    def score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor
              ) -> torch.Tensor:
        """Unnormalized score of the given tags: [B]. mask: [B, T] bool, real tokens first."""
        batch = torch.arange(emissions.size(0), device=emissions.device)
        total = self.start[tags[:, 0]] + emissions[batch, 0, tags[:, 0]]
        for t in range(1, emissions.size(1)):
            step = self.trans[tags[:, t - 1], tags[:, t]] + emissions[batch, t, tags[:, t]]
            total = total + step * mask[:, t]
        last = tags[batch, mask.sum(1) - 1]
        return total + self.end[last]

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """log of the summed exp-scores of every tag sequence (forward algorithm): [B]."""
        alpha = self.start + emissions[:, 0]  # [B, C]
        for t in range(1, emissions.size(1)):
            nxt = torch.logsumexp(alpha[:, :, None] + self.trans[None], dim=1) + emissions[:, t]
            alpha = torch.where(mask[:, t, None], nxt, alpha)
        return torch.logsumexp(alpha + self.end, dim=1)

    def nll(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor
            ) -> torch.Tensor:
        """Mean negative log-likelihood of the gold tags per counted token."""
        emissions = emissions.float()
        safe_tags = tags.clamp(min=0)  # padded positions hold IGNORE; the mask drops them
        nll = self.log_partition(emissions, mask) - self.score(emissions, safe_tags, mask)
        return nll.sum() / mask.sum().clamp(min=1)

    @torch.no_grad()
    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Viterbi: the best tag sequence per row, [B, T] (padding positions hold 0)."""
        emissions = emissions.float()
        score = self.start + emissions[:, 0]
        back = []
        for t in range(1, emissions.size(1)):
            best, idx = (score[:, :, None] + self.trans[None]).max(dim=1)
            nxt = best + emissions[:, t]
            score = torch.where(mask[:, t, None], nxt, score)
            back.append(torch.where(mask[:, t, None], idx,
                                    torch.arange(score.size(1), device=score.device)[None]))
        score = score + self.end
        path = [score.argmax(dim=1)]
        for idx in reversed(back):  # padded steps point to themselves, so they pass through
            path.append(idx.gather(1, path[-1][:, None]).squeeze(1))
        out = torch.stack(path[::-1], dim=1)
        return out * mask
