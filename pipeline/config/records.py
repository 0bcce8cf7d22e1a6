"""How a typed file that one stage writes and another reads is stored: written as its model
holds it (a key the file never had stays absent), read back with one line naming the file
where it is not what its model says."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from pipeline.config.sections import describe
from pipeline.errors import fail
from pipeline.files import read_json, write_json

Model = TypeVar("Model", bound=BaseModel)


def stored(model: BaseModel) -> Any:
    """A model as its file holds it: only the keys it was built or read with, so that an
    optional key a file lacks (an entity score of a POS task) stays absent, and one that it
    holds as null (no OOV token in the test split) stays null."""
    return model.model_dump(exclude_unset=True)


def write_model(path: Path, model: BaseModel) -> None:
    write_json(path, stored(model))


def parse_model(kind: type[Model], raw: Any, where: str, hint: str) -> Model:
    """`raw` (a file's JSON, `where`) as `kind`; one line naming it and `hint` if it is not."""
    try:
        return kind.model_validate(raw)
    except ValidationError as err:
        fail(f"{where}: not a {kind.__name__} ({describe(err)}); {hint}")


def read_model(kind: type[Model], path: Path, hint: str = "rerun the step that wrote it"
               ) -> Model:
    """The file at `path` as `kind` (a missing file stays a FileNotFoundError: callers say
    what should have made it)."""
    return parse_model(kind, read_json(path, hint), str(path), hint)
