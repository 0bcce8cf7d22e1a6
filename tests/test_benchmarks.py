"""The GPU benchmark, run small on the CPU: every cell, batch size, precision and path measured,
and rnnbench's own Lightning loop against the bare one."""

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_gpu_benchmark_runs_small_on_the_cpu(tmp_path):
    subprocess.run([sys.executable, "-m", "benchmarks.gpu", "--small", "--out", str(tmp_path)],
                   cwd=ROOT, check=True, capture_output=True, timeout=600)
    results = json.loads((tmp_path / "gpu_small.json").read_text())
    assert set(results["cells"]) == {"rnn", "lstm", "gru"}
    for cell in results["cells"].values():
        for batch in (8, 16):
            for precision in ("fp32", "bf16-mixed"):
                for path in ("exact", "padded", "packed"):
                    rates = cell[f"batch{batch}/{precision}/{path}"]
                    assert rates["train_tokens_per_s"] > 0 < rates["inference_tokens_per_s"]
        for precision in ("fp32", "bf16-mixed"):
            loop = cell[f"loop/batch16/{precision}"]
            assert loop["rnnbench_train_tokens_per_s"] > 0
            assert loop["rnnbench_over_bare"] == round(
                loop["rnnbench_train_tokens_per_s"] / loop["bare_train_tokens_per_s"], 3)
