"""The `rnnbench` command line: the pipeline's stages, the MLflow UI and a comparison table."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Annotated

import typer

from pipeline.config import CELLS, load_params
from pipeline.errors import fail, run_guarded
from pipeline.files import read_json
from pipeline.paths import Layout

app = typer.Typer(
    help="Compare vanilla RNN, LSTM and GRU cells on text tasks: stages, MLflow UI, results.\n\n"
         "The whole comparison runs with `dvc repro`; these commands run one step at a time.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)

ParamsOpt = Annotated[Path, typer.Option("--params", "-p", help="The params file to read.")]
CellArg = Annotated[str, typer.Argument(help=f"Which cell: one of {', '.join(CELLS)}.")]


@app.command()
def download(params: ParamsOpt = Path("params.yaml")) -> None:
    """Fetch the dataset's pinned, hash-checked source into data/raw (cached)."""
    from pipeline.prepare import download as run

    run_guarded(lambda: run(load_params(params).data, Layout()))


@app.command()
def prepare(params: ParamsOpt = Path("params.yaml")) -> None:
    """Split, tokenize, build the vocabulary and encode the splits into data/prepared."""
    from pipeline.prepare import prepare as run

    def go() -> None:
        p = load_params(params)
        run(p.data, p.prepare, Layout())

    run_guarded(go)


@app.command()
def train(cell: CellArg, params: ParamsOpt = Path("params.yaml"),
          fast_dev_run: Annotated[bool, typer.Option(
              help="One batch of train and validation, to check the setup.")] = False) -> None:
    """Train one cell (logged to MLflow); writes models/CELL and its learning curve."""
    from pipeline.training import train_cell

    run_guarded(lambda: train_cell(load_params(params), cell, Layout(), fast_dev_run))


@app.command()
def evaluate(cell: CellArg, params: ParamsOpt = Path("params.yaml")) -> None:
    """Evaluate one trained cell on the test split; writes metrics/test/CELL.json."""
    from pipeline.evaluation import evaluate_cell

    run_guarded(lambda: evaluate_cell(load_params(params), cell, Layout()))


@app.command()
def report(params: ParamsOpt = Path("params.yaml")) -> None:
    """Write the comparison report (Markdown + plots) to reports/."""
    from pipeline.reporting import write_report

    run_guarded(lambda: write_report(load_params(params), Layout()))


@app.command()
def datasets() -> None:
    """List the dataset catalog: task, size, source, licence, and whether it is cached."""
    from rich.console import Console
    from rich.table import Table

    from pipeline.datasets import CATALOG
    from pipeline.sources import cache_dir, is_cached

    cache = cache_dir()
    table = Table(title=f"rnnbench datasets (cache: {cache})")
    for header in ("name", "task", "what", "source", "splits", "licence", "cached"):
        table.add_column(header, overflow="fold")
    for d in CATALOG.values():
        source = d.source.describe() if d.source else "your file: data.source"
        cached = ("yes" if is_cached(d.source, cache) else "no") if d.source else "-"
        table.add_row(d.name, d.task, d.description, source, d.splits, d.licence, cached)
    Console(width=None if sys.stdout.isatty() else 160).print(table)


@app.command()
def check(params: ParamsOpt = Path("params.yaml")) -> None:
    """Validate the params file and print each cell's resolved settings."""

    def go() -> None:
        p = load_params(params)
        for cell in p.cells:
            cp = p.for_cell(cell)
            typer.echo(f"{cell}: {cp.model.model_dump()} {cp.train.model_dump()}")
        typer.echo(f"{params}: ok")

    run_guarded(go)


@app.command()
def ui(params: ParamsOpt = Path("params.yaml"),
       port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 5000,
       workers: Annotated[int, typer.Option(help="Server worker processes.")] = 1) -> None:
    """Serve the MLflow UI for the project's runs on http://127.0.0.1:PORT."""
    from pipeline import tracking

    def go() -> None:
        uri = tracking.tracking_uri(load_params(params))
        if not uri.startswith("sqlite:///"):
            typer.echo(f"runs are on a tracking server: open {uri}")
            return
        db = Path(uri.removeprefix("sqlite:///"))
        if not db.exists():
            fail(f"{db}: no MLflow store yet; run `dvc repro` first")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                fail(f"--port {port}: already in use on 127.0.0.1; choose another port")
        typer.echo(f"MLflow UI on http://127.0.0.1:{port} (store {db}); Ctrl-C stops it",
                   err=True)
        cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri,
               "--artifacts-destination", str(db.parent / "artifacts"),
               "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
        sys.stdout.flush()
        os.execv(sys.executable, cmd)  # the server takes this PID: stopping it is one signal

    run_guarded(go)


@app.command()
def compare(params: ParamsOpt = Path("params.yaml"),
            comparison: Annotated[str | None, typer.Option(
                help="A comparison (parent) run id: its newest run per cell.")] = None,
            latest: Annotated[bool, typer.Option(
                help="The latest comparison in the store, not this workspace's.")] = False,
            ) -> None:
    """Print a comparison from MLflow, one row per cell.

    By default the runs that the workspace's trained models (models/CELL) came from.
    """
    from rich.console import Console
    from rich.table import Table

    from pipeline import tracking

    def go() -> None:
        p = load_params(params)
        run_ids = []
        if not (comparison or latest):
            summaries = [Layout().model_dir(c) / "train.json" for c in p.cells]
            run_ids = [read_json(f)["run_id"] for f in summaries if f.exists()]
        rows, parent = tracking.comparison_rows(p, comparison, run_ids)
        table = Table(title=f"{parent.data.tags.get('mlflow.runName', '')} "
                            f"(comparison run {parent.info.run_id})")
        for header in COMPARE_COLUMNS.values():
            table.add_column(header, justify="left" if header in ("cell", "run") else "right",
                             no_wrap=True)
        for row in rows:
            table.add_row(*[_fmt(key, row.get(key)) for key in COMPARE_COLUMNS])
        Console(width=None if sys.stdout.isatty() else 120).print(table)

    run_guarded(go)


# MLflow metric -> column header of `rnnbench compare`
COMPARE_COLUMNS = {
    "cell": "cell", "test_accuracy": "test acc", "test_macro_f1": "macro-F1",
    "best_val_acc": "val acc", "num_parameters": "params", "train_seconds": "train s",
    "test_inference_examples_per_s": "infer ex/s", "run_id": "run",
}


def _fmt(key: str, value: object) -> str:
    if value is None:
        return "-"
    if key == "run_id":
        return str(value)[:12]
    if key in ("test_accuracy", "best_val_acc"):
        return f"{float(value):.2%}"
    if key == "train_seconds":
        return f"{float(value):.1f}"
    if isinstance(value, float):
        return f"{value:,.0f}" if value >= 100 else f"{value:.4f}"
    return str(value)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
