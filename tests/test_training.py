"""Real short Lightning fits on the prepared sample, logged to a real MLflow sqlite store."""

import os
import re
import shutil
import signal
import subprocess
import sys

import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import load_params, parse_params
from pipeline.data.synthetic import generate_task
from pipeline.evaluation.evaluate import evaluate_cell
from pipeline.paths import Layout
from pipeline.training.fit import resolve_device
from pipeline.tuning import fits
from tests.conftest import (
    ROOT,
    SEED,
    TASK,
    copy_prepared,
    load_task,
    requires_gpu,
    tiny_params,
    write_params,
)


@pytest.mark.slow
def test_training_is_deterministic_on_cpu(prepared, tmp_path):
    params, layout = load_task(copy_prepared(prepared, tmp_path))  # the shared models stay
    weights = []
    for _ in range(2):
        fits.train(params, "rnn", layout)
        weights.append(torch.load(layout.model_dir("rnn", SEED) / "model.pt",
                                  weights_only=True))
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key


def test_a_setup_check_after_training_writes_nothing(trained, prepared, monkeypatch):
    _, layout, _, client = trained
    outputs = [layout.model_dir("gru", SEED) / "model.pt", layout.model_dir("gru", SEED)
               / "train.json", layout.history("gru", SEED)]
    before = [path.read_bytes() for path in outputs]
    experiment = client.get_experiment_by_name(TASK).experiment_id
    runs = len(client.search_runs([experiment]))
    monkeypatch.chdir(prepared)
    runner = CliRunner()
    result = runner.invoke(app, ["train", "gru", "--fast-dev-run"])
    assert result.exit_code == 0, result.output
    assert "setup checked" in result.output and "nothing written" in result.output
    assert [path.read_bytes() for path in outputs] == before  # the trained model survives
    assert len(client.search_runs([experiment])) == runs  # and no one-batch run joins MLflow
    result = runner.invoke(app, ["compare"])
    assert result.exit_code == 0, result.output
    assert all(cell in result.output for cell in ("rnn", "lstm", "gru"))


def test_cpu_uses_full_precision():
    params = load_params("params.yaml")
    if not torch.cuda.is_available():
        assert resolve_device(params.train) == ("cpu", "32-true")


@pytest.mark.slow
def test_bf16_on_a_cpu_without_it_is_one_line_before_training(prepared, tmp_path):
    """An AVX2-only CPU cannot run an LSTM in bf16 (oneDNN refuses): said before any fit,
    naming the key, instead of a traceback from inside the first step."""
    from pipeline.errors import RnnbenchError
    from pipeline.training.bf16 import cpu_bf16_refusal

    if cpu_bf16_refusal("lstm") is None:
        pytest.skip("this CPU runs an LSTM in bf16 (it has AVX-512 BF16 or AMX)")
    raw = yaml.safe_load((prepared / "params.yaml").read_text())
    raw["train"].update(accelerator="cpu", precision="bf16-mixed")
    write_params(copy_prepared(prepared, tmp_path), raw)
    params, layout = load_task(tmp_path)
    with pytest.raises(RnnbenchError, match=r"^train.precision bf16-mixed: this CPU cannot run "
                       r"the lstm in bf16 \(could not create a primitive descriptor for the LSTM "
                       r"forward propagation primitive\); use 32-true here, or a GPU$"):
        fits.train(params, "lstm", layout)
    assert not layout.model_dir("lstm", SEED).exists()


@requires_gpu
@pytest.mark.gpu
def test_gpu_uses_bf16_when_available():
    params = load_params("params.yaml")
    accelerator, precision = resolve_device(params.train)
    assert accelerator == "gpu"
    assert precision == ("bf16-mixed" if torch.cuda.is_bf16_supported() else "32-true")


@pytest.mark.slow
def test_training_stops_at_the_epoch_validation_reaches_stop_at(sample_wheel, tmp_path):
    """`train.stop_at`: a run ends at the first epoch whose validation accuracy reaches it
    (a solved synthetic task has nothing left to learn), long before max_epochs. On the CPU epoch
    9 scores exactly 0.2, where Lightning's own threshold (strictly above) would go on."""
    raw = tiny_params(sample_wheel)
    raw["longrange"].update(problems=["adding"], lengths=[6], examples=400, train={
        "max_epochs": 30, "patience": 30, "stop_at": 0.2, "lr": 0.01, "limit_train_batches": None})
    params = parse_params(raw)
    generate_task(params, "adding", 6, tmp_path)
    record = fits.train(params.for_longrange("adding", 6), "lstm", Layout(tmp_path, "adding_6"))
    history = [float(row.split(",")[4]) for row in Layout(tmp_path, "adding_6").history(
        "lstm", SEED).read_text().splitlines()[1:]]
    assert record.epochs == len(history) < 30
    assert history[-1] >= 0.2 and all(acc < 0.2 for acc in history[:-1]), str(history)


def training_under_way(prepared, folder, epochs=100, until="epoch 1:") -> subprocess.Popen:
    """A train stage in a copy of the prepared project, past the line `until` of its output."""
    if not (folder / "data").exists():
        shutil.copytree(prepared / "data" / TASK / "prepared",
                        folder / "data" / TASK / "prepared")
    raw = yaml.safe_load((prepared / "params.yaml").read_text())
    raw["train"].update(max_epochs=epochs, patience=100)
    write_params(folder, raw)
    # Ctrl-C as at a terminal, even where the tests were started with SIGINT ignored (a
    # background job of a script), which Python would pass on to the stage as ignored.
    proc = subprocess.Popen([sys.executable, "-m", "stages.train", TASK, "rnn", str(SEED)],
                            cwd=folder, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith(until):
            return proc
    raise AssertionError(f"training never got to {until!r} (exit {proc.wait()})")


def finish(proc: subprocess.Popen) -> str:
    rest = proc.stderr.read() if proc.stderr else ""
    assert proc.wait(timeout=300) == 0, rest
    return rest


def cell_runs(folder):
    client = MlflowClient(f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}")
    return client.search_runs([client.get_experiment_by_name(TASK).experiment_id],
                              "tags.`rnnbench.kind` = 'cell'", order_by=["attributes.start_time"])


@pytest.mark.slow
def test_ctrl_c_during_training_exits_130_and_marks_the_run_killed(prepared, tmp_path):
    folder = tmp_path / "project"
    proc = training_under_way(prepared, folder)
    proc.send_signal(signal.SIGINT)  # a real signal, once training is under way
    rest, code = proc.stderr.read(), proc.wait(timeout=120)
    assert code == 130, rest
    assert rest.strip().endswith("interrupted") and "Traceback" not in rest
    assert not Layout(folder, TASK).model_dir("rnn", SEED).exists()  # nothing half-written
    assert [run.info.status for run in cell_runs(folder)] == ["KILLED"]


@pytest.mark.slow
def test_a_run_killed_hard_is_ended_and_cleaned_by_the_next(prepared, tmp_path):
    folder = tmp_path / "project"
    proc = training_under_way(prepared, folder, until="epoch 2:")  # epoch 1 checkpointed
    proc.kill()  # SIGKILL: no handler runs, the run stays RUNNING, the checkpoints stay
    proc.wait(timeout=60)
    assert [run.info.status for run in cell_runs(folder)] == ["RUNNING"]
    assert len(list((folder / ".rnnbench" / "fits").iterdir())) == 1
    finish(training_under_way(prepared, folder, epochs=2, until="epoch 2:"))  # other inputs
    assert [run.info.status for run in cell_runs(folder)] == ["KILLED", "FINISHED"]
    assert cell_runs(folder)[0].data.tags["rnnbench.ended"] == "its process died (found later)"
    assert not list((folder / ".rnnbench" / "fits").iterdir())  # its checkpoints went too


@pytest.mark.slow
def test_a_killed_training_resumes_to_the_weights_of_an_uninterrupted_one(prepared, tmp_path):
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    finish(training_under_way(prepared, whole, epochs=6, until="epoch 1:"))
    proc = training_under_way(prepared, resumed, epochs=6, until="epoch 2:")
    proc.kill()
    proc.wait(timeout=60)
    rerun = subprocess.run([sys.executable, "-m", "stages.train", TASK, "rnn", str(SEED)],
                           cwd=resumed, env={**os.environ, "PYTHONPATH": str(ROOT)},
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert re.search(r"resuming after epoch [1-5] from its checkpoint", rerun.stderr)
    model = [torch.load(Layout(f, TASK).model_dir("rnn", SEED) / "model.pt", weights_only=True)
             for f in (whole, resumed)]
    assert model[0].keys() == model[1].keys()
    assert all(torch.equal(model[0][k], model[1][k]) for k in model[0])
    history = [Layout(f, TASK).history("rnn", SEED).read_text().splitlines() for f in (whole,
                                                                                         resumed)]
    assert [row.rsplit(",", 1)[0] for row in history[0]] == [
        row.rsplit(",", 1)[0] for row in history[1]]  # every epoch's metrics (not its time)
    assert not list((resumed / ".rnnbench" / "fits").iterdir())


def test_training_before_prepare_names_the_missing_step(tmp_path, monkeypatch, sample_wheel):
    write_params(tmp_path, tiny_params(sample_wheel))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["train", "lstm"])
    assert result.exit_code == 2
    assert f"data/{TASK}/prepared: no prepared data; run the stages before" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "models").exists() and not (tmp_path / "mlruns").exists()


@pytest.mark.slow
def test_one_fit_over_two_cpu_processes_is_logged_once_and_evaluates(prepared, tmp_path):
    """Lightning DDP through params (gloo on the CPU): the train stage starts a second process
    that trains on its half of every epoch's batches; rank 0 alone logs and writes."""
    folder = tmp_path / "project"
    shutil.copytree(prepared / "data" / TASK / "prepared", folder / "data" / TASK / "prepared")
    raw = yaml.safe_load((prepared / "params.yaml").read_text())
    raw["train"].update(max_epochs=2, patience=5, devices=2, strategy="ddp")
    write_params(folder, raw)
    run = subprocess.run([sys.executable, "-m", "stages.train", TASK, "gru", str(SEED)],
                         cwd=folder, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "distributed_backend=gloo" in run.stderr and "All distributed processes" in run.stderr
    runs = cell_runs(folder)
    assert [r.info.status for r in runs] == ["FINISHED"]  # one run, not one per process
    history = Layout(folder, TASK).history("gru", SEED).read_text().splitlines()
    assert len(history) == 1 + 2  # header and two epochs, written once
    params, layout = load_task(folder)
    metrics = evaluate_cell(params, "gru", layout, SEED)
    assert 0 <= metrics["accuracy"] <= 1
