"""The machine a result came from. Float kernels round differently per instruction set (AVX2,
AVX-512), and small tasks amplify it, so a figure is the same only on the same CPU type: every
fit records this, and the report names it. Standard library only: the timing scripts run it
with the system Python, before any environment exists."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path


def cpu_name() -> str:
    """`2-core AMD EPYC 7B13 with AVX2`: cores, model and the widest vector instructions."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"^model name\s*:\s*(.+)$", info, re.M)
    isa = "AVX-512" if " avx512f" in info else "AVX2" if " avx2" in info else "no AVX2"
    name = model.group(1).strip() if model else platform.machine()
    return f"{os.cpu_count()}-core {name} with {isa}"
