"""Trained cells as MLflow Models, and the model registry: one registered model per task
(`rnnbench-<task>`), whose aliases `champion` and `challenger` say which version is in use
and which is waiting for its proof.

The MLflow Model is a pyfunc wrapping the whole model folder (weights, record, vocabularies):
it takes texts, not tensors. MLflow's `pytorch` flavor would log the network alone, without
the tokenizer and vocabulary that turn a text into its input.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd
import yaml
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from packaging.requirements import Requirement

from pipeline.config import Family
from pipeline.errors import fail
from pipeline.tracking.store import call, store_errors

MODEL_ARTIFACT = "model"  # the run's artifact folder holding its MLflow Model
FOLDER_KEY = "model"  # the MLflow Model's artifact: the rnnbench model folder
CHAMPION, CHALLENGER = "champion", "challenger"


def registered_name(task: str) -> str:
    return f"rnnbench-{task}"


def frame(examples: list[dict[str, Any]]) -> pd.DataFrame:
    """Examples as the MLflow Model takes them: a `text` column to classify, `tokens` (a list
    of words per row) to tag."""
    keep = "tokens" if examples and "tokens" in examples[0] else "text"
    return pd.DataFrame({keep: [ex[keep] for ex in examples]})


# A language model's inference parameters (in the signature, so `mlflow models serve` takes
# them as the request's "params"): `generate` > 0 continues each text by that many tokens,
# drawn as `rnnbench generate` draws them; 0 scores each text. top_k 0 and top_p 1: no cut.
GENERATION = {"generate": 0, "temperature": 1.0, "seed": 0, "top_k": 0, "top_p": 1.0}


class CellModel(mlflow.pyfunc.PythonModel):
    """The pyfunc: rows of texts (or token lists) in, one prediction per row out; a language
    model's rows are scored (each text's perplexity) or, with `generate`, continued."""

    def load_context(self, context: Any) -> None:
        from pipeline.model.predictor import Predictor

        self.predictor = Predictor(Path(context.artifacts[FOLDER_KEY]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None
                ) -> pd.DataFrame:
        examples = model_input.to_dict(orient="records")
        p = {**GENERATION, **(params or {})}
        if int(p["generate"]) > 0:
            return pd.DataFrame({"text": [" ".join(self.predictor.generate(
                str(ex.get("text", "")), int(p["generate"]), float(p["temperature"]),
                int(p["seed"]), int(p["top_k"]) or None,
                float(p["top_p"]) if float(p["top_p"]) < 1 else None)) for ex in examples]})
        return pd.DataFrame(self.predictor.predict(examples))


def requirements() -> list[str]:
    """rnnbench's own dependencies at their installed versions (rnnbench itself must be
    installed where the model loads: the pyfunc is its code)."""
    required = [Requirement(text) for text in metadata.requires("rnnbench") or []]
    return [f"{r.name}=={metadata.version(r.name)}" for r in required
            if r.marker is None or r.marker.evaluate({"extra": ""})]


def log_model(client: MlflowClient, run_id: str, folder: Path,
              examples: list[dict[str, Any]]) -> None:
    """Log the model folder as the run's MLflow Model (artifact `model`), with a signature
    and an input example taken from real test examples."""
    from pipeline.model.predictor import Predictor

    example = frame(examples)
    predictor = Predictor(folder)
    output = pd.DataFrame(predictor.predict(example.to_dict(orient="records")))
    generation = GENERATION if predictor.family == Family.LANGUAGE_MODEL else None
    with warnings.catch_warnings():  # a language model's token counts: ints, never missing
        warnings.filterwarnings("ignore", "Hint: Inferred schema contains integer column")
        signature = infer_signature(example, output, params=generation)
    with tempfile.TemporaryDirectory(prefix="rnnbench-mlflow-model-") as tmp:
        path = Path(tmp) / MODEL_ARTIFACT
        with quiet_mlflow():
            mlflow.pyfunc.save_model(
                path, python_model=Path(__file__).with_name("model_code.py"),
                artifacts={FOLDER_KEY: str(folder)},
                signature=signature,
                input_example=example, pip_requirements=requirements())
        call("logging the MLflow Model", client.tracking_uri, client.log_artifacts, run_id,
             str(path), MODEL_ARTIFACT)


@contextmanager
def quiet_mlflow() -> Iterator[None]:
    """Without MLflow's notes on every save (validating the example, code-based models)."""
    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def model_uri(run_id: str) -> str:
    return f"runs:/{run_id}/{MODEL_ARTIFACT}"


def register_version(client: MlflowClient, task: str, run_id: str, tags: dict[str, str]
                     ) -> ModelVersion:
    """A new version of the task's registered model from the run's MLflow Model."""
    uri, name = client.tracking_uri, registered_name(task)
    if _missing(client, "looking up the registered model", client.get_registered_model, name):
        call("creating the registered model", uri, client.create_registered_model, name,
             description=f"rnnbench's best cell on {task}; alias {CHAMPION}: the one in use")
    source = f"{call('looking up the run', uri, client.get_run, run_id).info.artifact_uri}/" \
             f"{MODEL_ARTIFACT}"
    return call("registering a model version", uri, client.create_model_version, name,
                source, run_id=run_id, tags=tags)


def version_by_alias(client: MlflowClient, task: str, alias: str) -> ModelVersion | None:
    """The version an alias points at; None where the model or the alias does not exist
    (searches return empty aliases on SQL stores, so aliases are read one by one)."""
    found: list[ModelVersion] = []
    _missing(client, f"reading the alias {alias}",
             lambda: found.append(client.get_model_version_by_alias(registered_name(task),
                                                                    alias)))
    return found[0] if found else None


def version_of_run(client: MlflowClient, task: str, run_id: str) -> ModelVersion | None:
    """The task's registered version made from the run `run_id`, if there is one."""
    found = call("searching the registry", client.tracking_uri, client.search_model_versions,
                 f"name = '{registered_name(task)}' and run_id = '{run_id}'")
    return found[0] if found else None


def _missing(client: MlflowClient, what: str, fn: Any, *args: Any) -> bool:
    """Whether `fn(*args)` says that what it looks up does not exist; any other failure of
    the store is one line, as for every call."""
    with store_errors(client.tracking_uri, what):
        try:
            fn(*args)
        except MlflowException as err:
            if err.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return True
            raise
    return False


def set_alias(client: MlflowClient, task: str, alias: str, version: str) -> None:
    call(f"setting the alias {alias}", client.tracking_uri, client.set_registered_model_alias,
         registered_name(task), alias, version)


def tag_version(client: MlflowClient, task: str, version: str, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        call("tagging the model version", client.tracking_uri, client.set_model_version_tag,
             registered_name(task), version, key, value)


def download_model_folder(client: MlflowClient, uri: str, dest: Path) -> Path:
    """The rnnbench model folder inside an MLflow Model (`models:/...`, `runs:/...`)."""
    from mlflow.artifacts import download_artifacts

    if uri.startswith("models:/"):  # the registry of this client's store, not the default one
        name, _, alias = uri.removeprefix("models:/").partition("@")
        version = call("reading the alias", client.tracking_uri,
                       client.get_model_version_by_alias, name, alias)
        uri = call("locating the model", client.tracking_uri,
                   client.get_model_version_download_uri, name, version.version)
    path = call("downloading the model", client.tracking_uri, download_artifacts,
                artifact_uri=uri, dst_path=str(dest), tracking_uri=client.tracking_uri)
    return inner_folder(Path(path))


def inner_folder(mlflow_model: Path) -> Path:
    """Where an MLflow Model folder keeps the rnnbench model folder (its MLmodel says)."""
    try:
        meta = yaml.safe_load((mlflow_model / "MLmodel").read_text())
        return mlflow_model / meta["flavors"]["python_function"]["artifacts"][FOLDER_KEY]["path"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as err:
        fail(f"{mlflow_model}: not an rnnbench MLflow Model ({type(err).__name__}: {err})")
