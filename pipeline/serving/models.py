"""Which trained model `predict` and `generate` use: a registry alias, an MLflow run, a model
folder, or a cell (its model of the first seed)."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline import tracking
from pipeline.config import CELLS, TaskParams
from pipeline.data.catalog import get_dataset
from pipeline.errors import fail
from pipeline.model.predictor import Predictor
from pipeline.paths import Layout

if TYPE_CHECKING:  # MLflow loads only where a registered model is asked for
    from mlflow.tracking import MlflowClient

RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def model_folder(path: Path) -> Path:
    """A model folder as trained (models/TASK/CELL/seedN), or the one inside an MLflow Model."""
    return tracking.inner_folder(path) if (path / "MLmodel").is_file() else path


def load_predictor(spec: str, params: TaskParams, layout: Layout) -> Predictor:
    """`spec`: champion | challenger (the task's registered model), an MLflow run id, a path
    to a model folder, or a cell (the task's model of its first seed); a model trained for
    another kind of task is refused (a tagger asked for sentiment would answer with tags)."""
    predictor = _load(spec, params, layout)
    record, family = predictor.record, get_dataset(params.data.dataset).family
    if record.family != family:
        fail(f"--model {spec}: a {record.family} model (trained for task {record.task!r}), "
             f"but task {params.name!r} is {family}; name one of {params.name}'s models")
    return predictor


def registered(alias: str, params: TaskParams, layout: Layout) -> tuple[MlflowClient, str]:
    """The store's client and the `models:/` URI of the task's model under `alias`; one line
    where it has none (make run registers a first champion, a retraining round the next)."""
    client = tracking.client_for(params, layout.root)
    if tracking.version_by_alias(client, params.name, alias) is None:
        fail(f"--model {alias}: {tracking.registered_name(params.name)} has no {alias} in "
             f"{tracking.shown_uri(client.tracking_uri, layout.root)}; `rnnbench promote` "
             "registers each task's winner that learned (make run ends with it), `rnnbench "
             "retrain` a round's")
    return client, f"models:/{tracking.registered_name(params.name)}@{alias}"


def _load(spec: str, params: TaskParams, layout: Layout) -> Predictor:
    if Path(spec).exists():
        return Predictor(model_folder(Path(spec)))
    if spec in CELLS:
        seed = params.seeds[0]
        return Predictor(layout.model_dir(spec, seed), hint=f"train it first (`dvc repro "
                                                            f"train@{params.name}-{spec}-{seed}`)")
    if spec in (tracking.CHAMPION, tracking.CHALLENGER):
        client, uri = registered(spec, params, layout)
    elif RUN_ID.match(spec):
        uri = tracking.model_uri(spec)
        client = tracking.client_for(params, layout.root)
    else:
        fail(f"--model {spec}: expected champion, challenger, an MLflow run id (32 hex digits), "
             f"a model folder or a cell ({', '.join(CELLS)})")
    with tempfile.TemporaryDirectory(prefix="rnnbench-model-") as tmp:
        return Predictor(tracking.download_model_folder(client, uri, Path(tmp)))
