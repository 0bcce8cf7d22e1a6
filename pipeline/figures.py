"""What every report figure shares: the file-only backend, the cells' names and colours, and
one way to save."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

plt.rcParams["text.parse_math"] = False  # labels such as Brown's `nn$` are text, not math

CELL_NAMES = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
CELL_COLORS = {"rnn": "C0", "lstm": "C1", "gru": "C2"}  # the same cell, the same colour


def save(fig: plt.Figure, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
