import copy
import re
import shlex
import shutil

import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import load_params, parse_params
from pipeline.errors import RnnbenchError
from tests.conftest import ROOT, repo_params, write_params


def test_project_params_are_valid():
    params = load_params(ROOT / "params.yaml")
    assert params.cells == ["rnn", "lstm", "gru"]
    assert params.for_cell("lstm").model.hidden_size == params.model.hidden_size


@pytest.mark.parametrize(("change", "message"), [
    (lambda p: p.update(cells=["lstm", "tcn"]),
     "cells.1: Input should be 'rnn', 'lstm' or 'gru' (got 'tcn')"),
    (lambda p: p["model"].update(hidden_size=-8),
     "model.hidden_size: Input should be greater than 0 (got -8)"),
    (lambda p: p["train"].pop("lr"), "train.lr: missing key"),
    (lambda p: p["train"].update(lrate=0.1), "train.lrate: unknown key"),
    (lambda p: p["model"].update(pooling="avg"),
     "model.pooling: Input should be 'max', 'mean' or 'last' (got 'avg')"),
    (lambda p: p["overrides"].update(rnn={"lr": -1}),
     "overrides.rnn.lr: Input should be greater than 0 (got -1)"),
    (lambda p: p["overrides"].update(gru={"hiden_size": 8}),
     "overrides.gru.hiden_size: unknown key"),
    (lambda p: p["overrides"].pop("gru"), "overrides.gru: missing key"),
    (lambda p: p.update(cells=["gru", "gru"]), "cells: each value once"),
    (lambda p: p.update(seeds=[]), "seeds: List should have at least 1 item"),
    (lambda p: p["task"].pop("ner"), "task.ner: missing key"),
    (lambda p: p.update(tasks=["pos", "POS tags"]), "'POS tags' is not a task name"),
    (lambda p: p["task"]["pos"]["model"].update(dropout=1.5),
     "task.pos.model.dropout: Input should be less than 1 (got 1.5)"),
    (lambda p: p["task"]["pos"]["train"].update(epochs=3),
     "task.pos.train.epochs: unknown key; expected one of optimizer, lr"),
    (lambda p: p["task"]["ner"]["data"].update(dataset="wnut17"),
     "task.ner.data.dataset: Input should be"),
    (lambda p: p["task"]["ner"].pop("prepare"), "task.ner.prepare: missing key"),
])
def test_bad_params_name_the_key(change, message):
    raw = copy.deepcopy(repo_params())
    change(raw)
    with pytest.raises(RnnbenchError) as err:
        parse_params(raw)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_overrides_apply_to_one_cell_only():
    raw = copy.deepcopy(repo_params())
    raw["overrides"]["rnn"] = {"lr": 0.0005, "hidden_size": 64}
    params = parse_params(raw)
    assert params.for_cell("rnn").train.lr == 0.0005
    assert params.for_cell("rnn").model.hidden_size == 64
    assert params.for_cell("gru").train.lr == raw["train"]["lr"]


def test_tasks_change_the_shared_sections_and_nothing_else():
    raw = copy.deepcopy(repo_params())
    raw["task"]["pos"] = {"data": {"dataset": "brown_pos", "reader": {"tagset": "raw"}},
                          "prepare": None, "model": {"dropout": 0.25}, "train": {}}
    raw["overrides"]["gru"] = {"dropout": 0.1}
    params = parse_params(raw)
    pos = params.for_task("pos")
    assert pos.name == "pos" and pos.experiment == "pos"
    assert pos.data.dataset == "brown_pos" and pos.data.reader.tagset == "raw"
    assert pos.data.reader.text_column == raw["data"]["reader"]["text_column"]  # merged
    assert pos.for_cell("lstm").model.dropout == 0.25
    assert pos.for_cell("gru").model.dropout == 0.1  # a cell override beats the task's
    sentiment = params.for_task("sentiment")
    assert sentiment.model.dropout == raw["model"]["dropout"]
    assert sentiment.data.reader.tagset == "universal"


def test_a_task_source_replaces_the_shared_one_whole():
    raw = copy.deepcopy(repo_params())
    raw["data"]["source"] = {"kind": "url", "url": "http://127.0.0.1/x.zip", "sha256": "a" * 64}
    raw["task"]["ner"]["data"]["source"] = {"kind": "local", "path": "tweets.conll"}
    source = parse_params(raw).for_task("ner").data.source
    assert source.kind == "local" and source.url is None and source.sha256 is None


def test_unknown_task_is_one_line():
    with pytest.raises(RnnbenchError, match=r"unknown task 'chunking': params\.yaml has"):
        parse_params(repo_params()).for_task("chunking")


def test_unknown_cell_is_one_line():
    with pytest.raises(RnnbenchError, match="unknown cell 'tcn': expected one of rnn, lstm, gru"):
        parse_params(repo_params()).for_cell("tcn")


@pytest.mark.parametrize(("text", "line", "what"), [
    ("data:\n  dataset: [unclosed\n", 3, "expected ',' or ']'"),
    ("data:\n  dataset: imdb\n  max_examples 10\nprepare: {}\n", 3,  # the key missing ':'
     "could not find expected ':'"),
    ("data:\n  dataset: imdb\n   split_seed: 1\n", 3, "mapping values are not allowed"),
])
def test_malformed_yaml_names_file_and_the_line_to_fix(tmp_path, text, line, what):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(RnnbenchError, match=rf"params.yaml: line {line}: not valid YAML "
                                            rf"\({re.escape(what)}"):
        load_params(path)


def test_cli_reports_bad_params_without_traceback(tmp_path):
    raw = repo_params()
    raw["model"]["hidden_size"] = -1
    path = write_params(tmp_path, raw)
    result = CliRunner().invoke(app, ["check", "--params", str(path)])
    assert result.exit_code == 2
    assert "model.hidden_size: Input should be greater than 0" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("key", ["problems", "lengths"])
def test_an_empty_sweep_is_allowed_and_skips_it(key):
    raw = repo_params()
    raw["longrange"][key] = []
    assert getattr(parse_params(raw).longrange, key) == []


def readme_exp_runs() -> list[list[str]]:
    """Every `dvc exp run` command in the shell blocks of the README and docs/, as argument
    lists (a loop's `$cell` taken as one cell)."""
    commands = []
    pages = "".join(path.read_text()
                    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])
    for block in re.findall(r"```bash\n(.*?)```", pages, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line.replace("$cell", "rnn"), comments=True)
            if words[:3] == ["dvc", "exp", "run"]:
                commands.append(words)
    return commands


def set_params(words: list[str]) -> list[str]:
    return [words[i + 1] for i, word in enumerate(words[:-1]) if word in ("-S", "--set-param")]


@pytest.mark.slow
def test_every_dvc_exp_run_of_the_readme_leaves_a_params_file_dvc_and_rnnbench_read(tmp_path):
    """Each command's `-S` values applied to params.yaml by DVC's own function (the one `dvc
    exp run` calls), then the file read back by DVC's parser and by rnnbench's schema. An
    inline `data: {dataset: ...}` mapping got the IMDB mirror's URL written into it unquoted,
    and every later `dvc` command failed on the file."""
    from dvc.utils.hydra import apply_overrides
    from dvc.utils.serialize import load_yaml

    commands = [words for words in readme_exp_runs() if set_params(words)]
    assert len(commands) >= 20  # the README's: own data, tasks, seeds, tuning, team, ...
    assert any("url:" in value for words in commands for value in set_params(words))
    for words in commands:
        path = tmp_path / "params.yaml"
        shutil.copy(ROOT / "params.yaml", path)
        apply_overrides(path, set_params(words))
        load_yaml(path)  # DVC reads it again
        load_params(path)  # and so does every stage


def test_params_sections_dvc_may_write_urls_into_are_block_mappings():
    """What makes the test above hold for any -S: a non-empty inline mapping under `task` or
    `data`/`prepare` is one DVC would write a URL into unquoted."""
    root = yaml.compose((ROOT / "params.yaml").read_text())

    def inline(node: yaml.Node, where: str) -> list[str]:
        if not isinstance(node, yaml.MappingNode):
            return []
        here = [where] if node.flow_style and node.value else []
        return here + [hit for key, value in node.value
                       for hit in inline(value, f"{where}.{key.value}".lstrip("."))]

    assert [hit for key, value in root.value if key.value in ("task", "data", "prepare")
            for hit in inline(value, key.value)] == []


def test_params_that_are_not_utf8_are_one_line_naming_the_line(tmp_path):
    """Saved in Latin-1 by an editor: a UnicodeDecodeError traceback, exit 1."""
    path = tmp_path / "params.yaml"
    path.write_bytes((ROOT / "params.yaml").read_bytes().replace(
        b"# rnnbench parameters", "# rnnbench paramètres".encode("latin-1"), 1))
    result = CliRunner().invoke(app, ["check", "--params", str(path)])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == (f"error: {path} line 1: not valid UTF-8 (byte 0xe8: "
                                     "invalid continuation byte)")


def test_a_server_option_refused_by_the_schema_names_the_option_and_why():
    """pydantic's text ends in a link to its docs; that last line was all the CLI kept."""
    result = CliRunner().invoke(app, ["server", "--host", "192.0.2.1"])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == (
        "error: --host: tracking.server.host 192.0.2.1 is reachable from other machines: set "
        "tracking.server.auth: true (MLflow's basic auth)")
