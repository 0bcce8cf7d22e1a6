"""Reading params.yaml: YAML errors by line, schema errors by key, each in one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from pipeline.config.params import Params
from pipeline.config.sections import describe
from pipeline.errors import fail
from pipeline.files import decode_utf8

PARAMS_FILE = "params.yaml"


def parse_params(raw: Any, source: str = PARAMS_FILE) -> Params:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        fail(f"{source}: expected a mapping of sections at the top level")
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        fail(f"{source}: {describe(err)}")


def yaml_error(err: yaml.YAMLError) -> str:
    """`line N: not valid YAML (what)`, N being the line to fix. A key without its colon is
    found only on the next line, so there the line to fix is where the key began."""
    context = getattr(err, "context", None) or ""
    mark = getattr(err, "context_mark" if context.startswith("while scanning a simple key")
                   else "problem_mark", None)
    where = f"line {mark.line + 1}: " if mark else ""
    return f"{where}not valid YAML ({getattr(err, 'problem', None) or err})"


def load_params(path: Path | str = PARAMS_FILE) -> Params:
    """Read and validate params.yaml; any problem is one RnnbenchError line."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        fail(f"{path}: not found (run from the project root, where params.yaml lives)")
    except OSError as err:
        fail(f"{path}: cannot read ({err.strerror or err})")
    text = decode_utf8(data, str(path))
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        fail(f"{path}: {yaml_error(err)}")
    return parse_params(raw, str(path))
