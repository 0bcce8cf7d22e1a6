"""rnnbench: compare vanilla RNN, LSTM and GRU cells on real text tasks, reproducibly."""

import os

# Nothing reaches the internet by default: both tools phone home unless told not to.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

__version__ = "0.1.0"
