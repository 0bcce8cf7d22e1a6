"""Language modelling: perplexity as defined, the n-gram baselines against KenLM's own
scores, and truncated backpropagation through time reading exactly what one unsplit pass
reads."""

from __future__ import annotations

import math
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch

from pipeline.config import ModelParams
from pipeline.data.corpus import EOS, encode_stream, split_by_words, with_eos
from pipeline.data.loading import IGNORE
from pipeline.data.text import Vocab
from pipeline.data.windows import rows
from pipeline.errors import RnnbenchError
from pipeline.evaluation.context import CONTEXTS, context_curve, cut_nats, sample_targets
from pipeline.evaluation.language_model import per_sentence, stream_loss, target_nats
from pipeline.evaluation.ngram import fit_kneser_ney, sentence_nats, total, unigram_nats
from pipeline.model.encoder import RecurrentEncoder
from pipeline.model.generate import generate, next_distribution
from pipeline.model.language_model import LanguageModel, detach, sequence_nats, token_nats
from pipeline.scoring.perplexity import LogLoss

SENTENCES = [s.split() for s in [
    "the jury said it did find that many of the voters",
    "the city said it would not",
    "the jury praised the city for the manner in which it ran the election",
    "it said the voters did not find many of the jury",
    "the election was ran by the city",
]]


def params(**change: object) -> ModelParams:
    base = dict(embedding_dim=8, hidden_size=8, sizing="equal_width", num_layers=1,
                bidirectional=False, dropout=0.0, pooling="last", freeze_embeddings=False,
                crf=False, char_filters=0, forget_bias=None, tie_embeddings=False)
    return ModelParams(**{**base, **change})


def corpus() -> tuple[Vocab, torch.Tensor]:
    vocab = Vocab.build(with_eos(SENTENCES))
    return vocab, encode_stream(SENTENCES, vocab, ["d"] * len(SENTENCES))


def test_the_stream_scores_each_sentences_words_and_its_end() -> None:
    vocab, stream = corpus()
    assert stream.targets == sum(len(s) + 1 for s in SENTENCES)
    assert vocab.decode(stream.ids[:3].tolist()) == [EOS, "the", "jury"]
    assert [vocab.decode(s) for s in stream.sentences()] == SENTENCES
    of = stream.sentence_of_target()
    assert of.tolist() == [k for k, s in enumerate(SENTENCES) for _ in range(len(s) + 1)]
    # each sentence's last target is its <eos>
    assert all(vocab.itos[stream.ids[e]] == EOS for e in stream.ends.tolist())


def test_perplexity_of_a_model_with_known_probabilities_is_the_hand_value() -> None:
    """A network whose every weight is zero but the output bias predicts the same
    distribution p at every step: its perplexity is exp(-mean log p(target))."""
    vocab, stream = corpus()
    torch.manual_seed(0)
    net = LanguageModel("lstm", len(vocab), params(), tied=False)
    p = torch.rand(len(vocab)) + 0.1
    p /= p.sum()
    with torch.no_grad():
        for w in net.parameters():
            w.zero_()
        net.head.bias.copy_(p.log())
    targets = stream.ids[1:].tolist()
    hand = math.exp(-sum(math.log(p[t]) for t in targets) / len(targets))
    for batch, bptt in [(1, 1000), (3, 4), (7, 1)]:
        loss = stream_loss(net, stream, batch, bptt)
        assert loss.tokens == len(targets)
        assert loss.perplexity == pytest.approx(hand, rel=1e-5)
        assert loss.bits_per_token == pytest.approx(math.log2(hand), rel=1e-5)
    # a uniform model's perplexity is the vocabulary's size
    with torch.no_grad():
        net.head.bias.zero_()
    assert stream_loss(net, stream, 2, 5).perplexity == pytest.approx(len(vocab), rel=1e-5)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_a_text_scores_alike_alone_and_in_a_padded_batch(cell: str) -> None:
    """What predict and the served model score: each sequence from a zero state, its nats
    the same alone as in a batch of longer and shorter ones (padding comes after its end)."""
    vocab, _ = corpus()
    torch.manual_seed(1)
    net = LanguageModel(cell, len(vocab), params(num_layers=2), tied=False).eval()
    eos = vocab.stoi[EOS]
    seqs = [[eos, *vocab.encode(s), eos] for s in SENTENCES]
    batched = sequence_nats(net, seqs, batch_size=3)
    for seq, nats in zip(seqs, batched, strict=True):
        assert nats.shape == (len(seq) - 1,)
        with torch.no_grad():
            alone = token_nats(net(torch.tensor([seq[:-1]]))[0], torch.tensor([seq[1:]]))[0]
        torch.testing.assert_close(nats, alone, rtol=1e-5, atol=1e-5)


def test_rows_hold_every_target_once_and_in_order() -> None:
    ids = torch.arange(100, 123)  # 22 targets
    for batch in (1, 3, 5, 22, 40):
        laid = rows(ids, batch)
        real = laid.positions >= 0
        assert sorted(laid.positions[real].tolist()) == list(range(22))
        assert (laid.targets[real] == ids[laid.positions[real] + 1]).all()
        assert (laid.inputs[real] == ids[laid.positions[real]]).all()
        assert (laid.targets[~real] == IGNORE).all()
        assert laid.inputs.size(0) <= batch
        # each row is contiguous text: position increases by one along it
        assert ((laid.positions[:, 1:] - laid.positions[:, :-1])[real[:, 1:]] == 1).all()


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
def test_carried_state_over_windows_equals_one_unsplit_pass(cell: str, layers: int) -> None:
    """Windows of any length, the state carried from each to the next, give every target the
    logits one pass over the whole rows gives, and the whole rows' gradient once nothing is
    detached; the carried encoder path equals the padded one on full rows."""
    torch.manual_seed(1)
    vocab, stream = corpus()
    net = LanguageModel(cell, len(vocab), params(num_layers=layers, hidden_size=12), tied=False)
    net.eval()
    laid = rows(stream.ids, 4)
    whole, _ = net(laid.inputs)
    for bptt in (1, 3, 7):
        state, pieces = None, []
        for inputs, _, _ in laid.windows(bptt):
            logits, state = net(inputs, state)
            pieces.append(logits)
        torch.testing.assert_close(torch.cat(pieces, dim=1), whole, rtol=1e-5, atol=1e-6)
    nats = token_nats(whole, laid.targets)
    real = laid.positions >= 0
    expected = torch.zeros(stream.targets, dtype=torch.float64)
    expected[laid.positions[real]] = nats[real].double()
    torch.testing.assert_close(target_nats(net, stream, 4, 5), expected, rtol=1e-5, atol=1e-6)

    encoder = RecurrentEncoder(cell, 6, 5, layers)
    x = torch.randn(3, 9, 6)
    carried, _ = encoder.carry(x)
    torch.testing.assert_close(carried, encoder(x, torch.full((3,), 9)))


def test_truncation_cuts_the_gradient_at_the_window_and_nowhere_else() -> None:
    torch.manual_seed(2)
    vocab, stream = corpus()
    net = LanguageModel("gru", len(vocab), params(), tied=True)
    laid = rows(stream.ids, 2)
    (first, _, _), (second, targets, _) = list(laid.windows(5))[:2]
    _, state = net(first)

    def grad_of_first_window_input(carried: list) -> torch.Tensor | None:
        net.zero_grad()
        emb = net.embedding.weight
        logits, _ = net(second, carried)
        token_nats(logits, targets).sum().backward()
        return emb.grad

    assert grad_of_first_window_input(state) is not None
    detached = detach(state)
    assert all(not s.requires_grad for s in detached)
    # tied: the output layer is the embedding, one parameter
    assert net.head.weight is net.embedding.weight
    assert sum(p.numel() for p in net.parameters()) < (
        sum(p.numel() for p in LanguageModel("gru", len(vocab), params(), tied=False)
            .parameters()))


def test_tying_a_wider_state_projects_it_to_the_embedding_width() -> None:
    vocab, stream = corpus()
    net = LanguageModel("lstm", len(vocab), params(hidden_size=16, embedding_dim=6), tied=True)
    logits, _ = net(stream.ids[None, :10])
    assert logits.shape == (1, 10, len(vocab)) and net.down is not None
    with pytest.raises(ValueError, match="bidirectional"):
        LanguageModel("lstm", len(vocab), params(bidirectional=True), tied=False)


def test_per_sentence_sums_add_up_to_the_split() -> None:
    _, stream = corpus()
    nats = torch.rand(stream.targets)
    sums = per_sentence(nats, stream.sentence_of_target(), len(SENTENCES))
    assert sums.sum().item() == pytest.approx(nats.double().sum().item())
    first = len(SENTENCES[0]) + 1
    assert sums[0].item() == pytest.approx(nats[:first].double().sum().item())
    loss = LogLoss(1.0, 2) + LogLoss(3.0, 2)
    assert loss == LogLoss(4.0, 4) and loss.perplexity == pytest.approx(math.e)


def test_bengio_split_cuts_after_the_sentence_that_reaches_each_count() -> None:
    split = split_by_words([4, 4, 4, 4, 4, 4], train_words=7, val_words=5)
    assert split == {"train": [0, 1], "val": [2, 3], "test": [4, 5]}


def lmplz_on_path() -> None:
    if shutil.which("lmplz") or (Path(sys.executable).parent / "lmplz").exists():
        return
    if os.environ.get("CI") == "true":
        pytest.fail("needs KenLM's lmplz: make builds it (.ci/run installs CMake and Boost)")
    pytest.skip("needs KenLM's lmplz: make env builds it (CMake and Boost's headers)")


@pytest.mark.parametrize("order", [2, 3, 5])
def test_kneser_ney_scores_are_kenlms_own_perplexity(order: int, tmp_path: Path) -> None:
    """The baseline's perplexity over a toy corpus is what KenLM's Model.perplexity gives
    for each sentence, combined over the words and ends they score."""
    import kenlm

    lmplz_on_path()
    vocab, stream = corpus()
    train = stream.sentences()
    arpa = tmp_path / "model.arpa"
    fit_kneser_ney(train, order, arpa)
    model = kenlm.Model(str(arpa))
    assert model.order == order
    test = [vocab.encode(s) for s in (["the", "jury", "said", "it", "would"],
                                      ["many", "voters", "ran", "the", "city", "unseen"])]
    nats = sentence_nats(arpa, test)
    for sentence, n in zip(test, nats, strict=True):
        own = model.perplexity(" ".join(map(str, sentence)))
        assert total([n], [sentence]).perplexity == pytest.approx(own, rel=1e-6)
    joint = total(nats, test)
    tokens = sum(len(s) + 1 for s in test)
    own_logs = [math.log(model.perplexity(" ".join(map(str, s)))) * (len(s) + 1) for s in test]
    assert joint.perplexity == pytest.approx(math.exp(sum(own_logs) / tokens), rel=1e-6)
    # it learns: the training text is far likelier than under a uniform guess
    assert total(sentence_nats(arpa, train), train).perplexity < len(vocab) / 2


def test_unigram_is_add_one_frequencies() -> None:
    vocab, stream = corpus()
    train = stream.sentences()
    eos = vocab.stoi[EOS]
    counts = {i: sum(s.count(i) for s in train) for i in range(len(vocab))}
    counts[eos] = len(train)
    n = sum(counts.values()) + len(vocab) - 1
    sentence = vocab.encode(["the", "unseen"])
    hand = -sum(math.log((counts[i] + 1) / n) for i in [*sentence, eos])
    assert unigram_nats(train, eos, len(vocab), [sentence]) == [pytest.approx(hand)]


def test_a_missing_lmplz_names_how_to_build_it(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    with pytest.raises(RnnbenchError, match=r"^lmplz: .* not on PATH; `make env` builds it"):
        fit_kneser_ney([[1, 2]], 3, tmp_path / "m.arpa")


def test_a_context_cut_reads_only_the_last_k_tokens_and_all_is_the_plain_score() -> None:
    """k = all gives the plain evaluation's perplexity; at k each sampled target's nats are
    what the network gives reading exactly the k tokens before it from a fresh state."""
    torch.manual_seed(3)
    vocab, stream = corpus()
    net = LanguageModel("lstm", len(vocab), params(hidden_size=10), tied=False).eval()
    full = target_nats(net, stream, 1, 7)
    sample = sample_targets(stream, size=15, seed=1)
    assert len(sample) == 15 and (sample[1:] > sample[:-1]).all()
    curve = context_curve(net, stream, full, sample)
    assert list(curve) == [*map(str, CONTEXTS), "all"]
    assert curve["all"] == pytest.approx(math.exp(float(full[sample].mean())))
    assert curve["100"] == pytest.approx(curve["all"])  # every context here is shorter
    for k in (1, 3):
        cut = cut_nats(net, stream, sample, k, full)
        for i, t in enumerate(sample.tolist()):
            context = stream.ids[max(0, t + 1 - k): t + 1]
            logits, _ = net(context[None])
            alone = token_nats(logits[:, -1:], stream.ids[t + 1].view(1, 1))
            assert cut[i].item() == pytest.approx(alone.item(), rel=1e-5)
    # a cell that reads no context at all scores the same at every k
    with torch.no_grad():
        for w in net.encoder.parameters():
            w.zero_()
    flat = context_curve(net, stream, target_nats(net, stream, 1, 7), sample)
    assert max(flat.values()) == pytest.approx(min(flat.values()), rel=1e-5)


def test_generation_is_seeded_and_its_filters_narrow_the_draw() -> None:
    torch.manual_seed(4)
    vocab, _ = corpus()
    net = LanguageModel("gru", len(vocab), params(), tied=True).eval()
    prompt = ["the", "jury"]
    first = generate(net, vocab, prompt, 12, temperature=0.8, seed=1)
    assert first == generate(net, vocab, prompt, 12, temperature=0.8, seed=1)
    assert len(first) == 12 and "<pad>" not in first
    assert any(generate(net, vocab, prompt, 12, temperature=0.8, seed=s) != first
               for s in range(2, 6))
    greedy = generate(net, vocab, prompt, 8, temperature=0)
    # keeping only the most likely token, or the smallest set holding 1e-9 of the mass, is
    # greedy decoding whatever the seed
    assert generate(net, vocab, prompt, 8, temperature=1.0, seed=3, top_k=1) == greedy
    assert generate(net, vocab, prompt, 8, temperature=1.0, seed=5, top_p=1e-9) == greedy
    probs = next_distribution(torch.tensor([0.0, 1.0, 2.0, 3.0]), 1.0, top_k=2, top_p=None)
    assert probs[0] == probs[1] == 0 and probs[2:].sum().item() == pytest.approx(1)
    with pytest.raises(RnnbenchError, match=r"--top-p 1\.5"):
        generate(net, vocab, prompt, 3, top_p=1.5)


@pytest.mark.slow
def test_a_language_model_is_tuned_to_the_lowest_validation_perplexity(sample_wheel, tmp_path):
    """The tune stage on a language-modelling task: Optuna minimizes validation perplexity and
    the record's best trial is the lowest; the test split is never read."""
    from pipeline.config import load_params
    from pipeline.data.prepare import download, prepare
    from pipeline.paths import Layout
    from pipeline.tuning.tune import tune_cell
    from tests.conftest import tiny_params, write_params

    raw = tiny_params(sample_wheel)
    raw["tasks"] = ["lm"]
    raw["task"] = {"lm": {"data": {"dataset": "text", "source": {
        "kind": "local", "path": str(Path(__file__).parent / "data" / "brown_text_sample.txt")}},
        "prepare": {}, "model": {"bidirectional": False}, "train": {"batch_size": 8,
                                                                     "bptt": 12}}}
    raw["tune"].update({"enabled": True, "trials": 3, "max_epochs": 2, "startup_trials": 1,
                        "warmup_epochs": 0})
    write_params(tmp_path, raw)
    params = load_params(tmp_path / "params.yaml").for_task("lm")
    layout = Layout(tmp_path, "lm")
    download(params.data, layout)
    prepare(params.data, params.prepare, layout)
    for path in layout.prepared.glob("test*"):
        path.unlink()  # a trial that read the test split would fail
    record = tune_cell(params, "gru", layout)
    assert record.monitor == "val_ppl" and record.trials == 3
    values = [t.value for t in record.history if t.state == "COMPLETE"]
    assert record.best_value == min(values)


def lm_project(sample_wheel, folder: Path, **change: object) -> Path:
    """A language-modelling project on the Brown sample, `change`d, run through its train,
    evaluate and report stages (as DVC would, in this process): the folder."""
    from pipeline.config import load_params
    from pipeline.data.prepare import download, prepare
    from pipeline.evaluation.evaluate import evaluate_task
    from pipeline.paths import Layout
    from pipeline.report.assemble import write_report
    from pipeline.tuning.fits import train_stage
    from pipeline.tuning.tune import tune_cell
    from tests.conftest import tiny_params, write_params

    lmplz_on_path()
    raw = tiny_params(sample_wheel)
    raw["tasks"] = ["lm"]
    raw["longrange"]["problems"] = []
    raw["task"] = {"lm": {"data": {"dataset": "text", "source": {
        "kind": "local", "path": str(Path(__file__).parent / "data" / "brown_text_sample.txt")}},
        "prepare": {}, "model": {"bidirectional": False}, "train": {"batch_size": 8,
                                                                     "bptt": 12}}}
    for key, value in change.items():
        raw[key] = {**raw[key], **value} if isinstance(value, dict) else value
    write_params(folder, raw)
    params = load_params(folder / "params.yaml")
    task, layout = params.for_task("lm"), Layout(folder, "lm")
    download(task.data, layout)
    prepare(task.data, task.prepare, layout)
    for cell in task.cells:
        tune_cell(task, cell, layout)
        for seed in task.seeds:
            train_stage(task, cell, layout, seed)
    evaluate_task(task, layout)
    write_report(params, folder)
    return folder


@pytest.mark.slow
def test_a_language_model_over_two_seeds_reports_each_cell_over_both(sample_wheel, tmp_path):
    """Seeds on a language-modelling task: each cell's perplexity in the report is the exp of
    its seeds' mean log-likelihood per token (their geometric mean, all scoring the same
    tokens), its interval is over seeds and documents, and every seed's run is kept."""
    import json

    folder = lm_project(sample_wheel, tmp_path, seeds=[1, 2])
    summary = json.loads((folder / "reports" / "summary.json").read_text())["tasks"]["lm"]
    assert summary["seeds"] == [1, 2]
    for cell in ("rnn", "lstm", "gru"):
        runs = [json.loads((folder / "metrics" / "lm" / "test" / f"{cell}-seed{seed}.json")
                           .read_text()) for seed in (1, 2)]
        assert runs[0]["perplexity"] != runs[1]["perplexity"]  # two fits, not one twice
        shown = summary["cells"][cell]
        assert shown["perplexity"] == pytest.approx(
            math.exp((math.log(runs[0]["perplexity"]) + math.log(runs[1]["perplexity"])) / 2),
            rel=1e-4)
        low, high = shown["perplexity_ci95"]
        assert low <= shown["perplexity"] <= high
        assert shown["perplexity_ci95_over"].startswith("seeds and ")
        assert set(shown["seeds"]) == {"1", "2"}
    assert "(mean of 2 seeds)" in (folder / "reports" / "comparison.md").read_text()


@pytest.mark.slow
def test_a_tuned_language_model_reports_what_tuning_changed_in_perplexities(sample_wheel,
                                                                            tmp_path):
    """Tuning on a language-modelling task reaches its report section: each cell's trials,
    validation perplexity untuned and at the best trial, test perplexity untuned and tuned
    (the untuned twin's own metrics), and the gain as a perplexity ratio, never in %-points
    of a log-likelihood."""
    import json

    folder = lm_project(sample_wheel, tmp_path, tune={"enabled": True, "trials": 2,
                                                      "max_epochs": 1, "startup_trials": 1,
                                                      "warmup_epochs": 0})
    report = (folder / "reports" / "comparison.md").read_text()
    section = report.split("## lm:")[1].split("\n## ")[0]
    assert "### Tuning" in section and "validation perplexity: untuned / best trial" in section
    summary = json.loads((folder / "reports" / "summary.json").read_text())["tasks"]["lm"]
    for cell, name in (("rnn", "RNN"), ("lstm", "LSTM"), ("gru", "GRU")):
        untuned = json.loads((folder / "metrics" / "lm" / "test" / f"{cell}-seed42-untuned.json")
                             .read_text())["perplexity"]
        tuned = json.loads((folder / "metrics" / "lm" / "test" / f"{cell}-seed42.json")
                           .read_text())["perplexity"]
        row = next(line for line in section.splitlines() if line.startswith(f"| {name} | 2 ("))
        assert f"| {untuned:.1f} / {tuned:.1f} | perplexity " in row, row
        assert "%-points" not in row and " points " not in row
        entry = summary["tuning"]["cells"][cell]
        assert math.exp(-entry["untuned_log_likelihood"]) == pytest.approx(untuned, rel=1e-3)
        assert entry["trials"] == 2


def test_a_perplexity_gap_reads_as_a_ratio() -> None:
    from pipeline.report.language_model import lower

    # a's log-likelihood per token above b's by d: a's perplexity is exp(-d) times b's
    assert lower(math.log(1 / 0.959)) == "4.1% lower"
    assert lower(-math.log(1.12)) == "12.0% higher"
    assert lower(-math.log(2.4)) == "2.4 times as high"
