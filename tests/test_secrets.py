"""No secret in any message: a password written into a URI (params.yaml, an option, an
environment variable) or held by a credentials variable is refused or used, but never printed,
logged or written. Every message below carries the suite's planted secret to where it could
leak; conftest.py also scans the output of every other test for it."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.errors import RnnbenchError, redact, redact_everything
from tests.conftest import (
    ROOT,
    copy_prepared,
    load_task,
    repo_params,
    write_params,
)
from tests.secret_guard import PLANTED_SECRET
from tests.servers import free_port

SECRET = PLANTED_SECRET


def one_error_line(result, *expected: str) -> str:
    """The one `error:` line a command printed, after checking there is nothing else."""
    assert result.exit_code == 2, result.output
    assert SECRET not in result.output and "Traceback" not in result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: ") and all(e in line for e in expected), line
    return line


@pytest.mark.parametrize(("section", "key", "value", "command"), [
    ("tune", "storage", f"postgresql://rnnbench:{SECRET}@127.0.0.1/runs", ["check"]),
    ("tune", "storage", f"oracle://rnnbench:{SECRET}@127.0.0.1/runs", ["check"]),
    ("tracking", "uri", f"http://team:{SECRET}@127.0.0.1:5000", ["check"]),
    ("server", "backend_store", f"postgresql://rnnbench:{SECRET}@127.0.0.1/runs", ["server"]),
], ids=["tune.storage", "tune.storage-no-database", "tracking.uri", "server.backend_store"])
def test_a_password_in_params_is_refused_without_being_printed(tmp_path, section, key, value,
                                                               command):
    raw = repo_params()
    (raw["tracking"]["server"] if section == "server" else raw[section])[key] = value
    path = write_params(tmp_path, raw)
    result = CliRunner().invoke(app, [*command, "--params", str(path)])
    where = f"tracking.server.{key}" if section == "server" else f"{section}.{key}"
    line = one_error_line(result, f"{where}: ")
    assert ("holds a password" in line) != value.startswith("oracle")  # or: not a database
    assert redact(value) in line  # the value is still named, its password hidden


def closed_port_database() -> str:
    return f"postgresql://rnnbench:{SECRET}@127.0.0.1:{free_port()}/runs"


@pytest.mark.parametrize("command", [["compare"], ["ui", "--port", "0"], ["train", "lstm"]],
                         ids=" ".join)
def test_an_unreachable_database_in_the_environment_is_one_line_in_seconds(
        prepared, tmp_path, monkeypatch, command):
    """MLflow's engine retried for 116 s without a word, then printed the URI whole."""
    monkeypatch.chdir(copy_prepared(prepared, tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri := closed_port_database())
    start = time.monotonic()
    result = CliRunner().invoke(app, command)
    assert time.monotonic() - start < 60  # MLflow alone: 116 s
    one_error_line(result, f"MLflow store {redact(uri)}: cannot connect: ", "Connection refused")


def test_a_tracking_server_uri_with_credentials_is_never_printed(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, repo_params())
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://team:{SECRET}@127.0.0.1:{free_port()}")
    one_error_line(CliRunner().invoke(app, ["compare"]), "http://team:***@127.0.0.1:",
                   "cannot connect")


def test_a_team_study_storage_that_does_not_answer_is_one_line(prepared, tmp_path):
    """tune.storage holds no password (params.yaml refuses one); libpq's PGPASSWORD, which
    holds the planted secret throughout the suite, is not printed either."""
    from pipeline.tuning.study import storage_for

    assert os.environ["PGPASSWORD"] == SECRET
    raw = repo_params()
    raw["tune"]["storage"] = f"postgresql://rnnbench@127.0.0.1:{free_port()}/studies"
    params, layout = load_task(write_params(copy_prepared(prepared, tmp_path), raw).parent)
    start = time.monotonic()
    with pytest.raises(RnnbenchError, match=r"^tune.storage postgresql://rnnbench@127.0.0.1:"
                       r"\d+/studies: cannot connect: .*Connection refused"):
        storage_for(params, layout, "study")
    assert time.monotonic() - start < 60  # MLflow alone: 116 s


@pytest.mark.slow
def test_a_database_that_does_not_answer_is_tried_a_bounded_number_of_times(monkeypatch):
    """A host that takes the connection and never answers: each try ends at its timeout, the
    tries are counted, and the message says so (timings shortened here)."""
    from pipeline.tracking import location

    monkeypatch.setattr(location, "DATABASE_TIMEOUT_S", 2)
    monkeypatch.setattr(location, "DATABASE_PAUSE_S", 0.1)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # accepts into its backlog, never speaks
        uri = f"postgresql://rnnbench@127.0.0.1:{silent.getsockname()[1]}/runs"
        start = time.monotonic()
        with pytest.raises(RnnbenchError, match=rf"^MLflow store {uri}: cannot connect \(tried "
                           r"3 times over \d+ s\): .*timeout expired"):
            location.check_database(uri, "MLflow store")
    assert time.monotonic() - start < 60  # MLflow alone: 116 s


def test_logged_records_and_a_stray_traceback_are_redacted(caplog):
    redact_everything()
    with caplog.at_level(logging.WARNING):
        logging.getLogger("sqlalchemy.pool").warning(
            "could not connect to %s", f"mysql://root:{SECRET}@db/runs")
    assert "mysql://root:***@db/runs" in caplog.text and SECRET not in caplog.text
    # an error no one foresaw still shows its traceback (a bug to report), without the secret
    code = ("from pipeline.errors import run_guarded\n"
            "def go(): raise ValueError('pool for postgresql://u:' + __import__('os')"
            ".environ['PGPASSWORD'] + '@h/db broke')\n"
            "run_guarded(go)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1 and "Traceback" in out.stderr
    assert "ValueError: pool for postgresql://u:***@h/db broke" in out.stderr


def test_the_planted_secret_is_hidden_wherever_it_stands():
    for text in (f"postgresql+psycopg://u:{SECRET}@h:5432/db", f"http://h/x?password={SECRET}",
                 f"the libpq password is {SECRET}", f"s3://bucket/x?token={SECRET}&y=1"):
        assert SECRET not in redact(text)
    for text in ("sqlite:////tmp/mlruns/mlflow.db", "http://127.0.0.1:5000/#/experiments/1",
                 "models:/rnnbench-sentiment@champion", "postgresql://rnnbench@h/db"):
        assert redact(text) == text  # nothing else is touched


def test_a_model_record_and_the_report_name_the_store_without_its_password(tmp_path):
    from pipeline.model.record import TrainRecord
    from pipeline.tracking import shown_uri

    uri = f"http://team:{SECRET}@127.0.0.1:5000"
    assert shown_uri(uri, tmp_path) == "http://team:***@127.0.0.1:5000"
    fields = {name: None for name in TrainRecord.model_fields}
    with pytest.raises(ValueError) as err:  # every other field is wrong: only the URI matters
        TrainRecord.model_validate({**fields, "tracking_uri": uri})
    assert "tracking_uri" not in str(err.value) and SECRET not in str(err.value)


def test_the_suite_fails_a_test_whose_output_shows_the_planted_secret(pytester):
    """The guard in conftest.py, run on two tests that leak: one prints the secret, one runs a
    process that prints it."""
    pytester.makeconftest("from tests.secret_guard import pytest_runtest_makereport  # noqa: F401")
    pytester.makepyfile(f"""
        import subprocess, sys
        def test_prints():
            print("connecting to postgresql://u:{SECRET}@h/db")
        def test_runs_a_process_that_prints():
            subprocess.run([sys.executable, "-c", "print('{SECRET}')"], capture_output=True)
        def test_quiet():
            print("nothing to see")
    """)
    result = pytester.runpytest_inprocess("--show-capture=no")  # its report shows no secret
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["*captured stdout call shows the planted secret*",
                                 "*printed the planted secret*"])
