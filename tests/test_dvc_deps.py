"""dvc.yaml cannot drift from the code: every project file a stage's command imports (directly
or through other project modules, at module level or inside functions) is one of the stage's
deps or lies in a folder that is, so that editing it reruns the stage."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

PACKAGES = ("pipeline", "stages")


def module_file(name: str) -> Path | None:
    """The project file of a dotted module name (a package: its __init__.py)."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imported_modules(path: Path) -> set[str]:
    """Dotted names of what a file imports, `from pkg import name` counted as both `pkg` and
    `pkg.name` (the name may be a submodule)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            # relative imports would need resolving; the project writes none (checked here)
            assert not node.level, f"{path}:{node.lineno}: relative import; write it absolute"
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def project_files(module: str) -> set[Path]:
    """Every project file that importing `module` runs: the module, its packages' __init__
    files and, recursively, what they import."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # a package's __init__ runs first
            path = module_file(".".join(parts[:i]))
            if path is not None and path not in seen:
                seen.add(path)
                todo += imported_modules(path)
    return seen


def stage_commands(dvc_yaml: Path) -> dict[str, str]:
    """Stage name -> the `python -m` module its command runs."""
    stages = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))["stages"]
    modules = {}
    for name, stage in stages.items():
        match = re.match(r"python -m ([\w.]+)", stage["cmd"])
        assert match, f"{name}: command {stage['cmd']!r} is not `python -m MODULE ...`"
        modules[name] = match.group(1)
    return modules


def uncovered(dvc_yaml: Path) -> dict[str, list[str]]:
    """Per stage, the imported project files that none of its deps covers."""
    stages = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))["stages"]
    missing = {}
    for name, module in stage_commands(dvc_yaml).items():
        deps = [ROOT / d for d in stages[name].get("deps", []) if "${" not in d]
        files = sorted(p.relative_to(ROOT).as_posix() for p in project_files(module)
                       if not any(p == d or d in p.parents for d in deps))
        if files:
            missing[name] = files
    return missing


def test_every_stage_depends_on_the_code_it_runs():
    assert uncovered(ROOT / "dvc.yaml") == {}


def test_the_check_sees_a_missing_dependency(tmp_path):
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))
    dropped = "stages/train.py"
    stages["stages"]["train"]["deps"].remove(dropped)
    edited = tmp_path / "dvc.yaml"
    edited.write_text(yaml.safe_dump(stages), encoding="utf-8")
    assert uncovered(edited) == {"train": [dropped]}


@pytest.mark.parametrize("module", ["stages.train", "stages.report"])
def test_imports_are_followed_through_the_project(module):
    files = {p.relative_to(ROOT).as_posix() for p in project_files(module)}
    assert {f"{module.replace('.', '/')}.py", "stages/__init__.py", "pipeline/__init__.py",
            "pipeline/config/__init__.py"} <= files
