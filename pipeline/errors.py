"""User-facing errors: one line, no traceback, non-zero exit, and never a secret.

Every message rnnbench prints or logs passes one redaction rule (`redact`): the password in a
URI (`postgresql://user:***@host/db`), a `password=`/`token=` query value, and the values of
the environment variables that hold credentials. Messages come from everywhere (params.yaml,
options, MLflow's, SQLAlchemy's and the drivers' errors), so the rule sits where they leave:
RnnbenchError, the logging records, and the traceback of an unexpected error.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator
from typing import NoReturn, TypeVar

T = TypeVar("T")

EXIT_USER_ERROR = 2

# Variables whose values are credentials (libpq's, MLflow's client and admin, S3's).
SECRET_VARIABLES = ("PGPASSWORD", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN",
                    "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY",
                    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
HIDDEN = "***"
# scheme://user:PASSWORD@host: the password runs to the last @ before a space or quote
# (drivers accept an unescaped @ or / in it)
_URI_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s:/@'\"]*):[^\s'\"]*@", re.IGNORECASE)
_QUERY_SECRET = re.compile(r"\b(password|passwd|pwd|token|secret)=[^&\s'\"]+", re.IGNORECASE)


def redact(text: str) -> str:
    """`text` without any credential it may carry."""
    text = _URI_PASSWORD.sub(rf"\1:{HIDDEN}@", text)
    text = _QUERY_SECRET.sub(rf"\1={HIDDEN}", text)
    for name in SECRET_VARIABLES:
        value = os.environ.get(name, "")
        if len(value) >= 4:  # a one-letter "password" would blank out every such letter
            text = text.replace(value, HIDDEN)
    return text


def one_line(text: str) -> str:
    """A message as one line: a wrapped or multi-line reason (DVC's lock holder, a driver's
    detail) keeps every word."""
    return " ".join(text.split())


class RnnbenchError(Exception):
    """A problem the user can fix (bad params, bad file, failed download...).

    The message names the key, file or line and what was expected; it is stored redacted, so
    no copy of it (printed, logged, tagged) holds a secret.
    """

    def __init__(self, message: str):
        super().__init__(redact(message))


def fail(message: str) -> NoReturn:
    raise RnnbenchError(message)


def run_guarded(fn: Callable[[], T]) -> T:
    """Run `fn`; print a RnnbenchError as one line and exit 2 instead of a traceback.

    Set RNNBENCH_DEBUG=1 to see the traceback (redacted, as every message is).
    """
    redact_everything()
    try:
        return fn()
    except RnnbenchError as err:
        if os.environ.get("RNNBENCH_DEBUG"):
            raise
        print(f"error: {one_line(str(err))}", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None


def _redacted_record_factory(base: Callable[..., logging.LogRecord]
                             ) -> Callable[..., logging.LogRecord]:
    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = base(*args, **kwargs)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a library's malformed call: leave it as it was
            return record
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return record

    factory.redacting = True  # type: ignore[attr-defined]
    return factory


def _redacted_excepthook(kind: type[BaseException], err: BaseException, tb: object) -> None:
    text = "".join(traceback.format_exception(kind, err, tb))  # type: ignore[arg-type]
    sys.stderr.write(redact(text))


def redact_everything() -> None:
    """Redact what this process logs (any library's records) and the traceback of an error
    nothing caught; idempotent."""
    base = logging.getLogRecordFactory()
    if not getattr(base, "redacting", False):
        logging.setLogRecordFactory(_redacted_record_factory(base))
    sys.excepthook = _redacted_excepthook


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
