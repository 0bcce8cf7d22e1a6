"""How far back each cell really reads (Khandelwal et al. 2018, "Sharp Nearby, Fuzzy Far
Away"): its perplexity when every target is predicted from only the last k tokens before it,
from a fresh state, for growing k. Where the perplexity stops falling, more context stops
helping that cell.

The same seeded sample of test targets serves every k and every cell (a context of k tokens
costs k steps per target: all 161,170 test targets of Bengio et al.'s split at k = 100 would be
16 million steps). At k = all each sampled target keeps its whole context: its nats are the
plain evaluation's, so the curve ends at the sample's own perplexity."""

from __future__ import annotations

import math

import torch

from pipeline.data.corpus import Stream
from pipeline.model.language_model import LanguageModel, token_nats

CONTEXTS = (1, 2, 5, 10, 20, 50, 100)  # and "all"
SAMPLE = 5_000  # test targets the context cut is measured on
ROWS = 256  # contexts per forward pass


def sample_targets(stream: Stream, size: int = SAMPLE, seed: int = 0) -> torch.Tensor:
    """A seeded sample of target indices (all of them in a smaller split), in order."""
    if stream.targets <= size:
        return torch.arange(stream.targets)
    chosen = torch.randperm(stream.targets, generator=torch.Generator().manual_seed(seed))
    return chosen[:size].sort().values


@torch.no_grad()
def cut_nats(net: LanguageModel, stream: Stream, targets: torch.Tensor, k: int,
             full: torch.Tensor) -> torch.Tensor:
    """[len(targets)] nats of each sampled target predicted from only the k tokens before it.
    A target with k tokens or fewer before it already reads its whole context: its nats are
    `full`'s, the plain evaluation's (every target's, in stream order)."""
    net.eval()
    device = next(net.parameters()).device
    out = full[targets].clone()
    cut = targets[targets + 1 > k]  # target t is ids[t + 1], read after ids[: t + 1]
    if not len(cut):
        return out
    windows = stream.ids.unfold(0, k, 1)  # row s: ids[s : s + k]
    for start in range(0, len(cut), ROWS):
        chunk = cut[start:start + ROWS]
        inputs = windows[chunk + 1 - k].to(device)
        h, _ = net.read(inputs)
        logits = net.readout(h[:, -1:])  # only the last step predicts the sampled target
        nats = token_nats(logits, stream.ids[chunk + 1][:, None].to(device))
        out[torch.searchsorted(targets, chunk)] = nats[:, 0].double().cpu()
    return out


def context_curve(net: LanguageModel, stream: Stream, full: torch.Tensor,
                  sample: torch.Tensor) -> dict[str, float]:
    """Perplexity on the sampled targets at each context length, and with all the context."""
    curve = {str(k): math.exp(float(cut_nats(net, stream, sample, k, full).mean()))
             for k in CONTEXTS}
    curve["all"] = math.exp(float(full[sample].mean()))
    return curve
