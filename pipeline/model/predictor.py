"""A trained model folder as a function from examples to predictions, with the tokenizer and
vocabularies it was trained with, so that it agrees with the evaluate stage on every example."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from pipeline.config import Family
from pipeline.data.loading import EncodedSplit
from pipeline.data.text import Vocab, encode_split, spelling, text_tokens, tokenize, word_tokens
from pipeline.errors import fail
from pipeline.model.inference import forward_batches, load_trained
from pipeline.paths import CHARS_FILE, VOCAB_FILE

Example = dict[str, Any]  # {"text": ...} to classify; {"tokens": [...]} (or "text") to tag


class Predictor:
    """Classifies texts (a label and each label's probability) or tags tokens (one tag each)."""

    def __init__(self, folder: Path, batch_size: int = 256):
        self.model, self.record = load_trained(
            folder, hint="point --model at a model folder (models/TASK/CELL/seedN)")
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

    @torch.inference_mode()
    def predict(self, examples: Sequence[Example]) -> list[Example]:
        """One prediction per example, in order: {"label", "probabilities"} for a classifier,
        {"tokens", "tags"} for a tagger."""
        if not examples:
            return []
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
