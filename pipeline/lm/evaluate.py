"""Scoring running text with a language model: every target's negative log-likelihood, read
in rows and windows with the state carried, in stream order (so that each sentence's and each
document's loss can be summed for paired tests)."""

from __future__ import annotations

import torch

from pipeline.lm.corpus import Stream
from pipeline.lm.network import LanguageModel, token_nats
from pipeline.lm.perplexity import LogLoss
from pipeline.lm.windows import rows


@torch.no_grad()
def target_nats(net: LanguageModel, stream: Stream, batch_size: int, bptt: int) -> torch.Tensor:
    """[targets] float64: each target's nats, in the stream's order. `bptt` changes nothing
    but memory: the state is carried across windows."""
    net.eval()
    device = next(net.parameters()).device
    laid_out = rows(stream.ids, batch_size)
    out = torch.zeros(stream.targets, dtype=torch.float64)
    state = None
    for inputs, targets, positions in laid_out.windows(bptt):
        logits, state = net(inputs.to(device), state)
        nats = token_nats(logits, targets.to(device)).cpu()
        real = positions >= 0
        out[positions[real]] = nats[real].double()
    return out


def stream_loss(net: LanguageModel, stream: Stream, batch_size: int, bptt: int) -> LogLoss:
    return LogLoss(float(target_nats(net, stream, batch_size, bptt).sum()), stream.targets)
