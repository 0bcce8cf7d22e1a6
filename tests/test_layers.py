"""The library's floors, read from its imports (ast, module level and inside functions): a
package imports only packages on its own floor or below, and no packages import each other,
directly or round about. A newcomer can then read it from the bottom up."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict

import pytest

from tests.conftest import ROOT

# lowest first; packages on one floor may import each other (but not in a cycle)
FLOORS = (
    ("errors", "machine"), ("files", "paths"), ("config",),
    ("data", "scoring"),
    ("model",),
    ("tracking",),
    ("serving", "training", "evaluation"),
    ("tuning",),
    ("report",),
    ("retrain", "repro", "warm"),
    ("cli",),
)
FLOOR = {package: level for level, packages in enumerate(FLOORS) for package in packages}

def package(module: str) -> str:
    """pipeline.report.stats -> report; pipeline.cli -> cli."""
    return module.split(".")[1]


def imports() -> set[tuple[str, str]]:
    """(module, imported pipeline module) for every import in pipeline/."""
    edges = set()
    for path in sorted((ROOT / "pipeline").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pipeline"):
                targets = ([f"pipeline.{a.name}" for a in node.names]
                           if node.module == "pipeline" else [node.module])
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("pipeline.")]
            else:
                continue
            edges |= {(module, target) for target in targets if target != "pipeline"}
    return edges


def cycles(edges: set[tuple[str, str]]) -> list[set[str]]:
    """Groups of packages that import each other, directly or round about."""
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        if package(a) != package(b):
            graph[package(a)].add(package(b))

    def reach(start: str) -> set[str]:
        seen, stack = set(), [start]
        while stack:
            for nxt in graph[stack.pop()] - seen:
                seen.add(nxt)
                stack.append(nxt)
        return seen

    groups = {frozenset({a} | {b for b in reach(a) if a in reach(b)}) for a in list(graph)}
    return sorted((set(g) for g in groups if len(g) > 1), key=sorted)


def test_every_package_has_a_floor():
    found = {package(a) for a, _ in imports()} | {package(b) for _, b in imports()}
    assert found <= set(FLOOR), f"give these a floor: {sorted(found - set(FLOOR))}"


def test_no_import_runs_back_up():
    upward = {(a, b) for a, b in imports() if FLOOR[package(a)] < FLOOR[package(b)]}
    assert not upward, f"imports that run back up: {sorted(upward)}"


def test_no_packages_import_each_other():
    assert cycles(imports()) == []


@pytest.mark.slow
def test_tracking_and_the_model_record_load_without_pytorch():
    """`rnnbench ui` and `rnnbench server` need MLflow and the model records, not PyTorch
    (1.4 s, and Lightning 4.6 s more): tracking asked PyTorch for its version string."""
    code = ("import sys; import pipeline.cli, pipeline.tracking.server, pipeline.tracking.store, "
            "pipeline.tracking.runs, pipeline.tracking.models, pipeline.model.record; "
            "print(sorted({'torch', 'pytorch_lightning'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"
