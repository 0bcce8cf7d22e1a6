"""User-facing errors: one line, no traceback, non-zero exit."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from typing import NoReturn, TypeVar

T = TypeVar("T")

EXIT_USER_ERROR = 2


class RnnbenchError(Exception):
    """A problem the user can fix (bad params, bad file, failed download...).

    The message names the key, file or line and what was expected.
    """


def fail(message: str) -> NoReturn:
    raise RnnbenchError(message)


def run_guarded(fn: Callable[[], T]) -> T:
    """Run `fn`; print a RnnbenchError as one line and exit 2 instead of a traceback.

    Set RNNBENCH_DEBUG=1 to see the traceback.
    """
    try:
        return fn()
    except RnnbenchError as err:
        if os.environ.get("RNNBENCH_DEBUG"):
            raise
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None


def causes(err: BaseException) -> Iterator[BaseException]:
    """`err` and every exception it wraps (a DB-API error inside SQLAlchemy's inside MLflow's,
    an OSError inside urllib3's inside requests'), depth first, each once."""
    stack, seen = [err], set()
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        inner = (getattr(e, "orig", None), getattr(e, "reason", None), e.__cause__,
                 e.__context__, *getattr(e, "args", ()))
        stack += reversed([x for x in inner if isinstance(x, BaseException)])
