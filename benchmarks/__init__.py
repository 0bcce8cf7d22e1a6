"""Benchmarks, run as modules from the project root: `python -m benchmarks.<name>`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def save_results(out: Path, name: str, results: dict[str, Any]) -> Path:
    """Write one benchmark's results as JSON under `out` and echo them."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"wrote {path}")
    return path
