"""The suite's guard against leaked secrets (conftest.py loads it once for every test).

A secret is planted for the whole suite: libpq's password variable holds it in every test (one
that starts PostgreSQL sets its own), and tests/test_secrets.py puts it into URIs, options and
environment variables. Every test's captured output and the output of every process a test
runs and reads (`communicate`: subprocess.run, check_output) are scanned for it: a test whose
output shows it fails, whatever it was testing. One module, so one list of leaks, however many
names conftest.py is imported under.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

import pytest

from pipeline.errors import redact

PLANTED_SECRET = "Pl4nted-S3cret-q7"
os.environ["PGPASSWORD"] = PLANTED_SECRET
_leaks: list[str] = []
_communicate = subprocess.Popen.communicate


def _scanned_communicate(self: subprocess.Popen, *args: Any, **kwargs: Any) -> Any:
    out = _communicate(self, *args, **kwargs)
    for stream in out:
        text = stream.decode(errors="replace") if isinstance(stream, bytes) else stream or ""
        if PLANTED_SECRET in text:  # where, not the line: the report must not leak it again
            line = next(i for i, x in enumerate(text.splitlines(), 1) if PLANTED_SECRET in x)
            _leaks.append(f"{redact(str(self.args))} printed the planted secret (output "
                          f"line {line})")
    return out


subprocess.Popen.communicate = _scanned_communicate  # type: ignore[method-assign]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    """Fail the test whose output (its own, or its processes') shows the planted secret."""
    outcome = yield
    report = outcome.get_result()
    shown = [name for name, text in report.sections
             if name.endswith(f" {report.when}") and PLANTED_SECRET in text]
    leaks = _leaks[:] + [f"{name.lower()} shows the planted secret" for name in shown]
    _leaks.clear()
    if leaks and not report.failed:
        report.outcome, report.longrepr = "failed", "\n".join(leaks)
