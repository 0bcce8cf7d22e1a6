"""The MLflow Model's code ("models from code"): MLflow copies this file into every logged
model and runs it to load one, so a model holds no pickled object, only this reference to
rnnbench (which must be installed where the model loads)."""

from mlflow.models import set_model

from pipeline.tracking.models import CellModel

set_model(CellModel())
