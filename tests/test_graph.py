"""dvc.yaml tells the truth: each stage depends on every project module its code runs.

The modules a stage runs are found by reading the code: the stage's command names a
module, and every `import` of a project module (at the top or inside a function) adds
that module and what it imports in turn. A stage that packages the model
(core/packaging.py) also runs the model's own code, which MLflow loads from a file.
When a module is left out of a stage's deps, DVC would not re-run the stage when it
changes: this test fails instead.
"""

import ast

import pytest
import yaml

from core.packaging import MODEL_CODE, MODEL_PACKAGE

from helpers import REPO

PACKAGES = ("core", "digit_reader", "synthetic", "pipeline", "serving", "gui", "team")
# Code that a module runs without importing it: the model from code that package.py logs.
RUNS_FROM_FILE = {"core/packaging.py": ["digit_reader/digit_model.py"]}


def module_file(name: str) -> str | None:
    """'pipeline.train' -> 'pipeline/train.py', for a module of this project."""
    if name.split(".")[0] not in PACKAGES:
        return None
    path = name.replace(".", "/")
    if (REPO / f"{path}.py").is_file():
        return f"{path}.py"
    return None  # a package's empty __init__.py decides nothing


def imported_files(source: str) -> set[str]:
    """The project modules one file imports."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from pipeline import tracking` imports a module; `from x.y import f`, x/y.py.
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {file for file in map(module_file, names) if file}
    return found


def files_run_by(start: str) -> set[str]:
    """start and every project module it runs, followed through their imports."""
    seen, todo = set(), [start]
    while todo:
        file = todo.pop()
        if file in seen:
            continue
        seen.add(file)
        todo += imported_files((REPO / file).read_text()) | set(RUNS_FROM_FILE.get(file, []))
    return seen


def stage_module(stage: dict) -> str:
    """The module that `python -m pipeline.x` runs, as a file."""
    command = stage["cmd"].split()
    assert command[:2] == ["python", "-m"], f"expected `python -m module`: {stage['cmd']}"
    return module_file(command[2])


def dependency_errors(stage: dict) -> list[str]:
    """What the stage's deps leave out of the code it runs, or list but do not run."""
    runs = files_run_by(stage_module(stage))
    code_deps = {dep for dep in stage.get("deps", []) if dep.endswith(".py")}
    return [f"missing {file}" for file in sorted(runs - code_deps)] + [
        f"not run: {file}" for file in sorted(code_deps - runs)
    ]


STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("name", STAGES)
def test_each_stage_depends_on_the_code_it_runs(name):
    assert dependency_errors(STAGES[name]) == []


def test_a_stage_that_leaves_out_an_import_fails():
    made_up = {"cmd": "python -m pipeline.register", "deps": ["pipeline/register.py"]}
    errors = dependency_errors(made_up)
    assert "missing pipeline/promote.py" in errors  # imported at the top
    assert "missing core/store.py" in errors  # imported inside main()
    assert "missing digit_reader/digit_model.py" in errors  # run by MLflow from its file
    made_up["deps"].append("pipeline/fetch.py")
    assert "not run: pipeline/fetch.py" in dependency_errors(made_up)


def test_the_model_identity_covers_the_code_it_runs_and_ships():
    """register tells versions apart by the md5 of MODEL_CODE: all of the model's code,
    which is all of digit_reader/ (what a version ships) and the packaging."""
    model_code = {str(path.relative_to(REPO)) for path in MODEL_CODE}
    shipped = {str(path.relative_to(REPO)) for path in MODEL_PACKAGE.glob("*.py")}
    assert model_code == files_run_by("core/packaging.py") | shipped


def package_imports() -> dict[str, set[str]]:
    """Each top-level package of the project, and the others that its modules import."""
    graph = {package: set() for package in PACKAGES + ("bench", "tests")}
    for package in graph:
        for file in (REPO / package).glob("*.py"):
            for imported in imported_files(file.read_text()):
                graph[package].add(imported.split("/")[0])
        graph[package].discard(package)
    return graph


def test_no_two_packages_import_each_other():
    graph = package_imports()
    pairs = [(a, b) for a in graph for b in graph[a] if a in graph.get(b, set())]
    assert pairs == []
    # The model's own code stands alone: a version loads with nothing else of ours.
    assert graph["digit_reader"] == set()
    assert graph["core"] <= {"digit_reader"}
