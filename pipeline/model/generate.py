"""Text from a trained language model: the prompt read as the start of a sentence, then one
token at a time drawn from the next-token distribution (at a temperature, optionally cut to
the k most likely or to the smallest set holding probability p), seeded, so that the same
model, prompt and seed give the same words on every run of one machine."""

from __future__ import annotations

import torch

from pipeline.data.corpus import EOS
from pipeline.data.text import PAD_ID, Vocab
from pipeline.errors import fail
from pipeline.model.language_model import LanguageModel


def next_distribution(logits: torch.Tensor, temperature: float, top_k: int | None,
                      top_p: float | None) -> torch.Tensor:
    """[V] logits -> [V] probabilities to draw from (padding never drawn)."""
    logits = logits.float().clone()
    logits[PAD_ID] = -torch.inf
    if top_k is not None:
        kept = torch.topk(logits, min(top_k, logits.numel())).values[-1]
        logits[logits < kept] = -torch.inf
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p is not None:
        ordered, order = probs.sort(descending=True)
        before = ordered.cumsum(0) - ordered  # mass of the more likely tokens
        probs[order[before >= top_p]] = 0.0  # the most likely one always stays
        probs /= probs.sum()
    return probs


@torch.no_grad()
def generate(net: LanguageModel, vocab: Vocab, prompt: list[str], tokens: int,
             temperature: float = 1.0, seed: int = 0, top_k: int | None = None,
             top_p: float | None = None) -> list[str]:
    """`tokens` more tokens after the `prompt`'s tokens, read as the start of a sentence;
    temperature 0: always the most likely one. <eos> is drawn like any token and shown."""
    if tokens < 1:
        fail(f"--tokens {tokens}: expected at least 1")
    if temperature < 0:
        fail(f"--temperature {temperature}: expected 0 or more")
    if top_p is not None and not 0 < top_p <= 1:
        fail(f"--top-p {top_p}: expected a probability in (0, 1]")
    if top_k is not None and top_k < 1:
        fail(f"--top-k {top_k}: expected at least 1")
    net.eval()
    ids = torch.tensor([[vocab.stoi[EOS], *vocab.encode(prompt)]])
    draw = torch.Generator().manual_seed(seed)
    logits, state = net(ids)
    out: list[int] = []
    for _ in range(tokens):
        last = logits[0, -1]
        if temperature == 0:
            last = last.clone()
            last[PAD_ID] = -torch.inf
            token = int(last.argmax())
        else:
            token = int(torch.multinomial(next_distribution(last, temperature, top_k, top_p), 1,
                                          generator=draw))
        out.append(token)
        logits, state = net(torch.tensor([[token]]), state)
    return vocab.decode(out)
