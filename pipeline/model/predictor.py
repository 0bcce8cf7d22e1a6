"""A trained model folder as a function from examples to predictions, with the tokenizer and
vocabularies it was trained with, so that it agrees with the evaluate stage on every example;
for a language model, each text's perplexity (the text read alone, as a sentence) and
continuations of a prompt."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pipeline.config import Family
from pipeline.data.corpus import EOS
from pipeline.data.loading import EncodedSplit
from pipeline.data.text import (
    UNK_ID,
    Vocab,
    encode_split,
    spelling,
    text_tokens,
    tokenize,
    word_tokens,
)
from pipeline.errors import fail
from pipeline.model.generate import generate
from pipeline.model.inference import forward_batches, load_trained
from pipeline.model.language_model import LanguageModel, sequence_nats
from pipeline.paths import CHARS_FILE, VOCAB_FILE

Example = dict[str, Any]  # {"text": ...} to classify; {"tokens": [...]} (or "text") to tag


@dataclass(frozen=True)
class ScoredText:
    """A text as a language model read it: the nats of each of its words and of its end,
    and which of them its vocabulary knows (an unknown word is scored as `<unk>`, a whole
    class of words: models with different vocabularies compare only on the words both know)."""

    nats: torch.Tensor  # [words + 1], float32
    targets: torch.Tensor  # [words + 1], the ids scored (the last one <eos>)

    @property
    def known(self) -> torch.Tensor:
        return self.targets != UNK_ID

    def prediction(self) -> Example:
        """What `predict` and the served model answer for the text."""
        nats = float(self.nats.double().sum())
        return {"tokens_scored": len(self.nats), "unknown_words": int((~self.known).sum()),
                "log_likelihood": round(-nats, 6),
                "perplexity": round(math.exp(nats / len(self.nats)), 4)}


class Predictor:
    """Classifies texts (a label and each label's probability), tags tokens (one tag each), or
    scores texts and continues prompts (a language model)."""

    def __init__(self, folder: Path, batch_size: int = 256,
                 hint: str = "point --model at a model folder (models/TASK/CELL/seedN)"):
        self.model, self.record = load_trained(folder, hint=hint)
        self.vocab = Vocab.load(folder / VOCAB_FILE)
        self.chars = Vocab.load(folder / CHARS_FILE) if self.record.num_chars else None
        self.batch_size = batch_size

    @property
    def family(self) -> Family:
        return self.record.family

    def words(self, example: Example, where: str) -> list[str]:
        """A tagging example's words: its `tokens`, or its `text` split as the tokenizer does
        (case kept: capitals mark names)."""
        if isinstance(example.get("tokens"), list) and example["tokens"]:
            return [str(t) for t in example["tokens"]]
        if isinstance(example.get("text"), str) and example["text"].strip():
            return tokenize(example["text"], lowercase=False)
        fail(f"{where}: expected a non-empty 'tokens' list or 'text' to tag")

    def encode(self, examples: Sequence[Example]) -> tuple[EncodedSplit, list[list[str]]]:
        """The examples as the model reads them, and (tagging) each one's words as kept."""
        prep = self.record.prepare
        if self.family == Family.CLASSIFICATION:
            texts = []
            for i, ex in enumerate(examples):
                if not isinstance(ex.get("text"), str):
                    fail(f"example {i + 1}: expected a 'text' to classify")
                texts.append(text_tokens(ex["text"], prep.lowercase, prep.max_length))
            ids = [self.vocab.encode(t) for t in texts]
            return EncodedSplit(encode_split(ids, labels=[0] * len(ids))), []
        kept = [word_tokens(self.words(ex, f"example {i + 1}"), prep.lowercase, prep.max_length)
                for i, ex in enumerate(examples)]
        ids = [self.vocab.encode(tokens) for _, tokens in kept]
        chars = ([self.chars.encode(spelling(w)) for words, _ in kept for w in words]
                 if self.chars is not None else None)
        split = EncodedSplit(encode_split(ids, tags=[[0] * len(i) for i in ids], chars=chars))
        return split, [words for words, _ in kept]

    def sentence_ids(self, example: Example, where: str) -> list[int]:
        """A language model's input for one text: <eos> (what a sentence starts from), the
        text's tokens as prepare encodes running text, <eos> (its end, scored too)."""
        _, tokens = word_tokens(self.words(example, where), self.record.prepare.lowercase,
                                self.record.prepare.max_length)
        eos = self.vocab.stoi[EOS]
        return [eos, *self.vocab.encode(tokens), eos]

    def score(self, examples: Sequence[Example]) -> list[ScoredText]:
        """Each text read alone, as one sentence, by a language model."""
        if self.family != Family.LANGUAGE_MODEL:
            fail(f"a {self.family} model scores no texts: that takes a language model")
        ids = [self.sentence_ids(ex, f"example {i + 1}") for i, ex in enumerate(examples)]
        nats = sequence_nats(self.language_model, ids, self.batch_size)
        return [ScoredText(n, torch.tensor(i[1:])) for n, i in zip(nats, ids, strict=True)]

    @property
    def language_model(self) -> LanguageModel:
        assert isinstance(self.model, LanguageModel)
        return self.model

    def generate(self, prompt: str, tokens: int, temperature: float = 1.0, seed: int = 0,
                 top_k: int | None = None, top_p: float | None = None) -> list[str]:
        """The prompt's tokens (as the model reads them) and `tokens` more drawn after them."""
        if self.family != Family.LANGUAGE_MODEL:
            fail(f"a {self.family} model generates no text: that takes a language model")
        _, words = word_tokens(tokenize(prompt, lowercase=False), self.record.prepare.lowercase,
                               None)
        threads = torch.get_num_threads()
        torch.set_num_threads(self.record.params.train.threads)  # the same draws everywhere
        try:
            return [*words, *generate(self.language_model, self.vocab, words, tokens,
                                      temperature, seed, top_k, top_p)]
        finally:
            torch.set_num_threads(threads)

    @torch.inference_mode()
    def predict(self, examples: Sequence[Example]) -> list[Example]:
        """One prediction per example, in order: {"label", "probabilities"} for a classifier,
        {"tokens", "tags"} for a tagger, {"tokens_scored", "unknown_words", "log_likelihood",
        "perplexity"} for a language model."""
        if not examples:
            return []
        if self.family == Family.LANGUAGE_MODEL:
            return [scored.prediction() for scored in self.score(examples)]
        split, words = self.encode(examples)
        labels = self.record.labels
        out: list[Example] = [{} for _ in examples]
        for idx, batch, logits in forward_batches(self.model, split, self.batch_size):
            best = self.model.predict(logits, batch.lengths).tolist()  # as evaluation decides
            if self.family == Family.CLASSIFICATION:
                probs = torch.softmax(logits.float(), dim=-1).tolist()
                for row, i in enumerate(idx):
                    out[i] = {"label": labels[best[row]], "probabilities": dict(
                        zip(labels, (round(p, 6) for p in probs[row]), strict=True))}
            else:
                for row, i in enumerate(idx):
                    n = int(batch.lengths[row])
                    out[i] = {"tokens": words[i][:n], "tags": [labels[t] for t in best[row][:n]]}
        return out
