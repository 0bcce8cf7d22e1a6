"""The benchmarks, run small on the CPU: the GPU benchmark (every cell, batch size, precision and
path, and rnnbench's own Lightning loop against the bare one) and the document-length one."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

# oneDNN held to AVX2 (as on an AMD EPYC without AVX-512): no bf16 LSTM, whatever this CPU has
AVX2_ONLY = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
PROBE = ("import json; from pipeline.training.bf16 import cpu_bf16_refusal as r; "
         "print(json.dumps({c: r(c) for c in ('rnn', 'lstm', 'gru')}))")


@pytest.mark.slow
def test_gpu_benchmark_runs_small_on_the_cpu(tmp_path):
    """On any x86-64 CPU: a precision the CPU cannot run is left out with its reason (the
    suite failed on an AVX2-only CPU), everything else is measured."""
    subprocess.run([sys.executable, "-m", "benchmarks.gpu", "--small", "--out", str(tmp_path)],
                   cwd=ROOT, check=True, capture_output=True, timeout=600, env=AVX2_ONLY)
    refusals = json.loads(subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, check=True,
                                         capture_output=True, text=True, env=AVX2_ONLY).stdout)
    results = json.loads((tmp_path / "gpu_small.json").read_text())
    assert set(results["cells"]) == {"rnn", "lstm", "gru"}
    for name, cell in results["cells"].items():
        precisions = ["fp32"] if refusals[name] else ["fp32", "bf16-mixed"]
        if refusals[name]:
            assert cell["skipped"] == {"bf16-mixed": f"this CPU cannot run it: {refusals[name]}"}
            assert not [key for key in cell if "bf16" in key]
        for batch in (8, 16):
            for precision in precisions:
                for path in ("exact", "padded", "packed"):
                    rates = cell[f"batch{batch}/{precision}/{path}"]
                    assert rates["train_tokens_per_s"] > 0 < rates["inference_tokens_per_s"]
        for precision in precisions:
            loop = cell[f"loop/batch16/{precision}"]
            assert loop["rnnbench_train_tokens_per_s"] > 0
            assert loop["rnnbench_over_bare"] == round(
                loop["rnnbench_train_tokens_per_s"] / loop["bare_train_tokens_per_s"], 3)


def test_long_text_benchmark_compares_the_three_paths_on_short_rows():
    from benchmarks.long_text import PATHS, measure

    row = measure("lstm", 12, PATHS, repeats=1, slow_repeats=1)
    assert row["packed"]["max_abs_diff_vs_exact"] < 1e-5  # exact means packing's outputs
    assert row["computed_tokens"] <= row["padded_tokens"]
    for path in PATHS:
        for mode in ("default", "deterministic"):
            assert row[path][mode]["s_per_step_best"] > 0
    assert row["exact_over_padded"] == round(
        row["exact"]["default"]["s_per_step_best"] / row["padded"]["default"]["s_per_step_best"], 3)


@pytest.mark.parametrize(("lines", "expected"), [
    (["created: 2/2 workers", "== 419 passed, 1 skipped in 648.63s (0:10:48) =="],
     {"passed": 419, "skipped": 1, "pytest_seconds": 648.63, "workers": 2}),
    (["== slowest 15 durations ==", "12.5s call tests/test_x.py::test_y",
      "== 361 passed, 1 failed in 1127.90s (0:18:47) =="],
     {"passed": 361, "failed": 1, "pytest_seconds": 1127.9, "workers": 1}),
])
def test_the_suite_benchmark_reads_pytests_totals(lines, expected):
    """What benchmarks/suite.py records of a run, from pytest's own last line."""
    from benchmarks.suite import summary

    assert summary(lines) == expected
