"""The winner in use: a trained model folder as a function from texts to labels or tags
(`rnnbench predict`, and the MLflow Model that `mlflow models serve` answers with)."""
