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


# The params direction: every params.yaml section a stage's code reads is one of its `params:`.
# Read statically: `params.<section>[.<key>]` (and `tp.`, `cp.`: a task's and a cell's params)
# in the stage's project files. MLflow logging is not an output (tracking/ logs a copy of the
# settings), and a stage with params.yaml among its deps reruns on any change.
SECTIONS = ("data", "prepare", "model", "train", "evaluate", "tune", "longrange")
READ = re.compile(rf"(?<![.\w])(?:params|tp|cp)\.({'|'.join(SECTIONS)})\b(?:\.(\w+))?")
# whole sections handed on, of which the callee reads only the listed keys
HANDED_ON = {("download", "data"): "download() reads data.dataset, data.source, data.reader",
             ("generate", "longrange"): "generate_task reads longrange.examples and .data_seed",
             # a fit's record keeps `prepare` for predict; these fits' records are not used so
             ("tune", "prepare"): "a trial writes no model record",
             ("longrange", "prepare"): "synthetic tasks are generated, not prepared"}


def unlisted_params(dvc_yaml: Path) -> dict[str, list[str]]:
    """Per stage, the params it reads that its `params:` do not list."""
    stages = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))["stages"]
    missing = {}
    for name, module in stage_commands(dvc_yaml).items():
        if "params.yaml" in stages[name].get("deps", []):
            continue
        listed = {p for p in stages[name].get("params", []) if "${" not in p}
        reads = set()
        for path in project_files(module):
            if path.is_relative_to(ROOT / "pipeline" / "tracking"):
                continue
            for section, key in READ.findall(path.read_text(encoding="utf-8")):
                whole = key in ("", "model_dump", "model_copy")
                if (name, section) in HANDED_ON or section in listed or (
                        not whole and f"{section}.{key}" in listed):
                    continue
                reads.add(section if whole else f"{section}.{key}")
        if reads:
            missing[name] = sorted(reads)
    return missing


def test_every_stage_lists_the_params_it_reads():
    assert unlisted_params(ROOT / "dvc.yaml") == {}


def test_the_check_sees_an_unlisted_param(tmp_path):
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))
    stages["stages"]["train"]["params"].remove("evaluate.batch_size")
    edited = tmp_path / "dvc.yaml"
    edited.write_text(yaml.safe_dump(stages), encoding="utf-8")
    assert unlisted_params(edited) == {"train": ["evaluate.batch_size"]}
