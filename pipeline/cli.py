"""The `rnnbench` command line: the pipeline's stages, the MLflow UI and a comparison table."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from pipeline.config import CELLS, Params, TaskParams, load_params
from pipeline.errors import fail, redact, run_guarded
from pipeline.paths import Layout
from pipeline.scoring.records import columns as metric_columns

app = typer.Typer(
    help="Compare vanilla RNN, LSTM and GRU cells on text tasks: stages, MLflow UI, results.\n\n"
         "The whole comparison runs with `dvc repro`; these commands run one step at a time.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)

ParamsOpt = Annotated[Path, typer.Option("--params", "-p", help="The params file to read.")]
CellArg = Annotated[str, typer.Argument(help=f"Which cell: one of {', '.join(CELLS)}.")]
TaskOpt = Annotated[list[str] | None, typer.Option(
    "--task", "-t", help="A task from params.yaml's `tasks` (repeatable); default: all.")]
SeedOpt = Annotated[list[int] | None, typer.Option(
    "--seed", "-s", help="A seed from params.yaml's `seeds` (repeatable); default: all.")]
ROOT = Path(".")


def each_task(params: Path, tasks: list[str] | None) -> list[tuple[TaskParams, Layout]]:
    """The chosen tasks' resolved params and layouts, in params.yaml's order."""
    p: Params = load_params(params)
    for name in tasks or []:
        if name not in p.tasks:
            fail(f"--task {name}: not in {params}'s tasks ({', '.join(p.tasks)})")
    return [(p.for_task(n), Layout(ROOT, n)) for n in p.tasks if not tasks or n in tasks]


@app.command()
def download(params: ParamsOpt = Path("params.yaml"), task: TaskOpt = None) -> None:
    """Fetch each task's pinned, hash-checked dataset into data/TASK/raw (cached)."""
    from pipeline.data.prepare import download as run

    run_guarded(lambda: [run(tp.data, layout) for tp, layout in each_task(params, task)])


@app.command()
def prepare(params: ParamsOpt = Path("params.yaml"), task: TaskOpt = None) -> None:
    """Split, tokenize, build the vocabularies and encode each task into data/TASK/prepared."""
    from pipeline.data.prepare import prepare as run

    run_guarded(lambda: [run(tp.data, tp.prepare, layout)
                         for tp, layout in each_task(params, task)])


def each_seed(tp: TaskParams, seeds: list[int] | None) -> list[int]:
    for seed in seeds or []:
        if seed not in tp.seeds:
            fail(f"--seed {seed}: not in params.yaml's seeds ({', '.join(map(str, tp.seeds))})")
    return seeds or tp.seeds


@app.command()
def train(cell: CellArg, params: ParamsOpt = Path("params.yaml"), task: TaskOpt = None,
          seed: SeedOpt = None,
          fast_dev_run: Annotated[bool, typer.Option(
              help="One batch of train and validation to check the setup; writes nothing.")
          ] = False,
          untuned: Annotated[bool, typer.Option(
              help="With tune.enabled, the untuned twin fit (the report's baseline).")
          ] = False) -> None:
    """Train one cell per task and seed (logged to MLflow), as stage train@ does (with tuning
    on, at its study's best settings; --untuned: its untuned twin, as train@ also fits); writes
    models/TASK/CELL/seedN (seedN-untuned)."""
    from pipeline.tuning.fits import train as train_one

    def go() -> None:
        for tp, layout in each_task(params, task):
            if untuned and not tp.tuned:
                fail(f"--untuned: task {tp.name} has no untuned twin (tune.enabled: false); "
                     "without --untuned it trains at its settings")
            for s in each_seed(tp, seed):
                train_one(tp, cell, layout.as_untuned() if untuned else layout, s, fast_dev_run)

    run_guarded(go)


@app.command()
def evaluate(cell: CellArg, params: ParamsOpt = Path("params.yaml"), task: TaskOpt = None,
             seed: SeedOpt = None) -> None:
    """Evaluate one trained cell per task and seed on the test split (metrics/TASK/...)."""
    from pipeline.evaluation.evaluate import evaluate_cell

    run_guarded(lambda: [evaluate_cell(tp, cell, layout, s)
                         for tp, layout in each_task(params, task) for s in each_seed(tp, seed)])


@app.command()
def report(params: ParamsOpt = Path("params.yaml")) -> None:
    """Write the comparison report of every task (Markdown + plots) to reports/."""
    from pipeline.report.assemble import write_report

    run_guarded(lambda: write_report(load_params(params), ROOT))


@app.command()
def datasets() -> None:
    """List the dataset catalog: task family, size, source, licence, and whether it is cached."""
    from rich.console import Console
    from rich.table import Table

    from pipeline.data.catalog import CATALOG
    from pipeline.data.sources import cache_dir, is_cached

    cache = cache_dir()
    table = Table(title=f"rnnbench datasets (cache: {cache})")
    for header in ("name", "family", "what", "source", "splits", "licence", "cached"):
        table.add_column(header, overflow="fold")
    for d in CATALOG.values():
        source = d.source.describe() if d.source else "your file: data.source"
        cached = ("yes" if is_cached(d.source, cache) else "no") if d.source else "-"
        table.add_row(d.name, d.family, d.description, source, d.splits, d.licence, cached)
    Console(width=None if sys.stdout.isatty() else 160).print(table)


@app.command()
def check(params: ParamsOpt = Path("params.yaml")) -> None:
    """Validate the params file and print each task's and cell's resolved settings."""

    def go() -> None:
        for tp, _ in each_task(params, None):
            typer.echo(f"{tp.name}: {tp.data.model_dump(exclude={'reader'})}")
            for cell in tp.cells:
                cp = tp.for_cell(cell)
                typer.echo(f"  {cell}: {cp.model.model_dump()} {cp.train.model_dump()}")
        typer.echo(f"{params}: ok")

    run_guarded(go)


@app.command()
def ui(params: ParamsOpt = Path("params.yaml"),
       port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 5000,
       workers: Annotated[int, typer.Option(help="Server worker processes.")] = 1) -> None:
    """Serve the MLflow UI for the project's runs on http://127.0.0.1:PORT, and print a link
    to each task's side-by-side comparison of the runs its trained models came from, and one
    to its experiment's runs."""
    from pipeline import tracking
    from pipeline.model.record import RECORD_FILE, read_record

    def go() -> None:
        p = load_params(params)
        uri = tracking.tracking_uri(p)
        # before MLflow loads and opens the store (6-8 s): a busy port is said at once
        if uri.startswith("sqlite:") and tracking.port_in_use("127.0.0.1", port):
            fail(f"--port {port}: already in use on 127.0.0.1; choose another port")
        base = (f"http://127.0.0.1:{port}" if uri.startswith("sqlite:")
                else redact(uri).rstrip("/"))
        if Path(uri.removeprefix("sqlite:///")).exists() or not uri.startswith("sqlite:"):
            client = tracking.client_for(p, ROOT)
            for tp, layout in each_task(params, None):
                folders = [layout.model_dir(c, s) for c in tp.cells for s in tp.seeds]
                runs = [read_record(f).run_id for f in folders if (f / RECORD_FILE).exists()]
                exp = tracking.find_experiment(client, tp.experiment) if runs else None
                held = tracking.runs_in_store(client, exp, runs) if exp is not None else []
                if held:
                    typer.echo(f"{tp.name}: {tracking.compare_url(base, exp, held)}")
                    typer.echo(f"{tp.name} runs: {tracking.experiment_url(base, exp)}")
                elif runs:  # a link to runs the store lacks opens an empty comparison
                    typer.echo(f"{tp.name}: this workspace's models were trained against "
                               "another store; no link (`rnnbench compare --latest` lists "
                               "this store's newest comparison)")
        tracking.serve_ui(uri, port, workers)

    run_guarded(go)


@app.command()
def server(params: ParamsOpt = Path("params.yaml"),
           host: Annotated[str | None, typer.Option(
               help="Bind address (default tracking.server.host).")] = None,
           port: Annotated[int | None, typer.Option(
               help="Port (default tracking.server.port).")] = None) -> None:
    """Run a tracking server a team shares: MLflow on tracking.server's database (PostgreSQL),
    serving the artifacts itself, with basic auth where tracking.server.auth is on. Workers
    then set MLFLOW_TRACKING_URI to it."""
    from pydantic import ValidationError

    from pipeline.config.sections import ServerParams, describe
    from pipeline.tracking.server import serve

    def go() -> None:
        p = load_params(params)
        changed = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
        if changed:
            try:
                settings = ServerParams(**{**p.tracking.server.model_dump(), **changed})
            except ValidationError as err:
                options = " and ".join(f"--{name}" for name in changed)
                fail(f"{options}: {describe(err, prefix='tracking.server.')}")
            p = p.model_copy(update={"tracking": p.tracking.model_copy(
                update={"server": settings})})
        serve(p, ROOT.resolve())

    run_guarded(go)


@app.command()
def compare(params: ParamsOpt = Path("params.yaml"), task: TaskOpt = None,
            comparison: Annotated[str | None, typer.Option(
                help="A comparison (parent) run id: its newest run per cell.")] = None,
            latest: Annotated[bool, typer.Option(
                help="The latest comparison in the store, not this workspace's.")] = False,
            ) -> None:
    """Print each task's comparison from MLflow, one row per cell.

    By default the runs that the workspace's trained models (models/TASK/CELL) came from.
    """
    from rich.console import Console
    from rich.table import Table

    from pipeline import tracking
    from pipeline.model.record import RECORD_FILE, read_record

    def go() -> None:
        console = Console(width=None if sys.stdout.isatty() else 120)
        chosen = each_task(params, task)
        if comparison and len(chosen) > 1:
            fail("--comparison: a comparison belongs to one task; add --task NAME")
        for tp, layout in chosen:
            run_ids = []
            if not (comparison or latest):
                trained = [layout.model_dir(c, s) for c in tp.cells for s in tp.seeds]
                run_ids = [read_record(f).run_id for f in trained
                           if (f / RECORD_FILE).exists()]
            rows, parent = tracking.comparison_rows(tp, comparison, run_ids)
            table = Table(title=f"{parent.data.tags.get('mlflow.runName', '')} "
                                f"(comparison run {parent.info.run_id})")
            for header in COMPARE_COLUMNS.values():
                table.add_column(header, no_wrap=True,
                                 justify="left" if header in ("cell", "seed", "run") else "right")
            for row in rows:
                table.add_row(*compare_cells(row))
            console.print(table)

    run_guarded(go)


@app.command()
def repro(
    targets: Annotated[list[str] | None, typer.Argument(
        help="Stages (or stage groups, e.g. train) to bring up to date; default: all.")] = None,
    jobs: Annotated[int | None, typer.Option(
        "--jobs", "-j", min=1, help="Stages at once; default: one per core.")] = None,
) -> None:
    """`dvc repro` with independent stages side by side, one per core: the same outputs,
    dvc.lock and run cache as `dvc repro` (`make run` runs this)."""
    from pipeline.repro import reproduce

    run_guarded(lambda: reproduce(ROOT, targets or (), jobs))


@app.command()
def retrain(
    params: ParamsOpt = Path("params.yaml"),
    task: Annotated[str | None, typer.Option(
        "--task", help="Fanned out: this task's job only (train, push, leave its results in "
                       "--jobs-dir/TASK for the final job).")] = None,
    gather: Annotated[bool, typer.Option(
        "--gather", help="Fanned out: the final job, merging the task jobs' results from "
                         "--jobs-dir.")] = False,
    jobs_dir: Annotated[Path, typer.Option(
        "--jobs-dir", help="Where task jobs leave their results.")] = Path("fanout"),
    register: Annotated[bool, typer.Option(
        "--register/--no-register", help="Register the winners now, or leave it to `rnnbench "
                                          "promote --summary` (the workflow's, once the round's "
                                          "pull request is open).")] = True,
) -> None:
    """One scheduled retraining round: dvc pull, re-read unpinned data, dvc repro, dvc push,
    promote each retrained task's winner only if it beats the champion; reports/retrain.md."""
    from pipeline.retrain.fanout import run_task_job
    from pipeline.retrain.round import REPORT, run_round

    def go() -> None:
        if task and gather:
            fail("--task and --gather: one or the other (a task's job, or the final job)")
        if task:
            job = run_task_job(params, ROOT, task, jobs_dir)
            typer.echo(f"{task}: {len(job.ran)} stage(s) ran; results in {jobs_dir / task}")
            return
        result = run_round(params, ROOT, jobs_dir if gather else None, register)
        for decision in result.decisions:
            typer.echo(f"{decision.task}: {decision.words()}")
        if not result.changed:
            typer.echo("nothing changed: no stage ran, nothing registered")
        typer.echo(f"{result.seconds:.0f} s; summary in reports/{REPORT}")

    run_guarded(go)


@app.command()
def promote(
    params: ParamsOpt = Path("params.yaml"),
    summary: Annotated[Path | None, typer.Option(
        help="A round summary (reports/retrain.md) whose Promotion section gets the "
             "decisions.")] = None,
) -> None:
    """Register each task's winner in the model registry, judged as a retraining round judges
    it (`make run` ends with this): the first becomes champion, a later one only if it is
    significantly better; a winner that learned nothing is not registered."""
    from pipeline.retrain.promote import promote_winners
    from pipeline.retrain.round import write_promotion

    def go() -> None:
        decided = promote_winners(load_params(params), ROOT)
        for task, words in decided:
            typer.echo(f"{task}: {words}")
        if summary is not None:
            write_promotion(summary, decided)

    run_guarded(go)


@app.command()
def serve(
    task: Annotated[str, typer.Option("--task", "-t", help="A task from params.yaml.")] = "",
    model: Annotated[str, typer.Option(help="champion or challenger.")] = "champion",
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 5002,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Serve a task's registered model over HTTP (`mlflow models serve`, POST /invocations)
    from the project's store."""
    from pipeline import tracking
    from pipeline.serving.models import registered

    def go() -> None:
        if model not in (tracking.CHAMPION, tracking.CHALLENGER):
            fail(f"--model {model}: expected champion or challenger")
        if not task:
            fail("--task: which task's model to serve (one of params.yaml's tasks)")
        ((tp, layout),) = each_task(params, [task])
        client, uri = registered(model, tp, layout)
        tracking.serve_model(client.tracking_uri, uri, host, port)

    run_guarded(go)


@app.command()
def predict(
    texts: Annotated[list[str] | None, typer.Argument(
        help="Texts to classify, tag or score.")] = None,
    task: Annotated[str, typer.Option("--task", "-t", help="A task from params.yaml.")] = "",
    model: Annotated[str, typer.Option(
        help="champion or challenger (the task's registered model), an MLflow run id, or a "
             "model folder (models/TASK/CELL/seedN).")] = "champion",
    input_file: Annotated[Path | None, typer.Option(
        "--input", help="One text per line; or .jsonl, .csv (data.reader.text_column), "
                        ".conll, .conllu.")] = None,
    output: Annotated[Path | None, typer.Option(
        help="Write predictions here: .csv, else JSON lines (default: standard output).")
    ] = None,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Label texts (with each class's probability), tag their tokens, or score them with a
    language model (each text's perplexity, read alone as a sentence), using the tokenizer
    and vocabulary the model was trained with."""
    from tqdm import tqdm

    from pipeline.serving.files import read_inputs, write_predictions
    from pipeline.serving.models import load_predictor

    def go() -> None:
        if not task:
            fail("--task: which task's model to use (one of params.yaml's tasks)")
        ((tp, layout),) = each_task(params, [task])
        if bool(texts) == (input_file is not None):
            fail("predict: give texts on the command line or --input FILE (one of the two)")
        inputs = ([{"text": t} for t in texts] if texts
                  else read_inputs(input_file, tp.data.reader))
        predictor = load_predictor(model, tp, layout)
        chunk = 2048
        preds = [p for start in tqdm(range(0, len(inputs), chunk), unit="chunk",
                                     disable=len(inputs) <= chunk, desc="predict")
                 for p in predictor.predict(inputs[start:start + chunk])]
        write_predictions(inputs, preds, output)
        if output is not None:
            print(f"{len(preds):,} predictions -> {output}", file=sys.stderr)

    run_guarded(go)


# MLflow metric -> column header of `rnnbench compare`: the test metrics' own columns (a
# metric shows once its TestMetrics field has a Column), and the training run's
_METRICS = metric_columns()
COMPARE_COLUMNS = {"cell": "cell", "seed": "seed",
                   **{key: column.header for key, column in _METRICS.items()},
                   "best_val": "val (best)", "run_id": "run"}
PERCENT = {key for key, column in _METRICS.items() if column.percent} | {"best_val"}
# what a training run logs as its best validation score: accuracy, entity F1 for BIO tags,
# or a language model's perplexity (not a percentage)
BEST_VAL = ("best_val_acc", "best_val_entity_f1")
BEST_PERPLEXITY = "best_val_ppl"


def compare_cells(row: dict[str, object]) -> list[str]:
    """One run's row of `rnnbench compare`, "val (best)" from whichever monitor it had."""
    best = next((row[k] for k in BEST_VAL if row.get(k) is not None), None)
    perplexity = row.get(BEST_PERPLEXITY)
    shown = (f"{float(str(perplexity)):.2f}" if best is None and perplexity is not None
             else _fmt("best_val", best))
    return [shown if key == "best_val" else _fmt(key, row.get(key)) for key in COMPARE_COLUMNS]


def _fmt(key: str, value: object) -> str:
    if value is None:
        return "-"
    if key == "run_id":
        return str(value)[:12]
    if key in PERCENT:
        return f"{float(value):.2%}"
    if key == "train_seconds":
        return f"{float(value):.1f}"
    if isinstance(value, float):
        return f"{value:,.0f}" if value >= 100 else f"{value:.4f}"
    return str(value)


@app.command()
def generate(
    prompt: Annotated[str, typer.Option(help="The text to continue.")] = "",
    task: Annotated[str, typer.Option("--task", "-t", help="A language-modelling task.")] = "",
    model: Annotated[str, typer.Option(
        help="champion or challenger (the task's registered model), an MLflow run id, a model "
             "folder (models/TASK/CELL/seedN), or a cell (its model of the first seed).")
    ] = "champion",
    tokens: Annotated[int, typer.Option(help="How many tokens to add.")] = 30,
    temperature: Annotated[float, typer.Option(
        help="Below 1 sharper, above 1 flatter; 0: always the most likely token.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Seeds the draws: the same seed, the same text.")
                    ] = 0,
    top_k: Annotated[int | None, typer.Option(help="Draw among the k most likely only.")
                     ] = None,
    top_p: Annotated[float | None, typer.Option(
        help="Draw among the most likely tokens holding probability p only.")] = None,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Continue a prompt with a trained language model, seeded and reproducible."""
    from pipeline.serving.models import load_predictor

    def go() -> None:
        if not task:
            fail("--task: which language-modelling task's model to use")
        ((tp, layout),) = each_task(params, [task])
        predictor = load_predictor(model, tp, layout)
        print(" ".join(predictor.generate(prompt, tokens, temperature, seed, top_k, top_p)))

    run_guarded(go)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    app()

