"""What every report figure shares: the file-only backend, the cells' names and colours, and
one way to save."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
from matplotlib.ticker import LogFormatter

plt.rcParams["text.parse_math"] = False  # labels such as Brown's `nn$` are text, not math

CELL_NAMES = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
CELL_COLORS = {"rnn": "C0", "lstm": "C1", "gru": "C2"}  # the same cell, the same colour


def log_y(ax: plt.Axes) -> None:
    """A log y axis labelled 1e-03, 1e-02, ...: matplotlib's default labels are math, which
    `text.parse_math = False` would print as raw `$\\mathdefault{10^{-3}}$`."""
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(LogFormatter())
    ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False))


def save(fig: plt.Figure, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
