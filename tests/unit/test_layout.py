"""The shape of the code: jobs apart from each other, wiring apart from logic, logic apart from Flink."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.config import REPO_ROOT

JOBS_DIR = REPO_ROOT / "jobs" / "flink"
JOB_PACKAGES = sorted(p.name for p in JOBS_DIR.iterdir() if (p / "job.py").exists())
PURE_PACKAGES = ("jobs.features", "jobs.models", "jobs.homepage", "jobs.exploration", "jobs.records",
                 "jobs.experiments")
PURE_MODULES = ("jobs.context", "jobs.decoding", "jobs.evaluation")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def test_there_are_the_four_jobs() -> None:
    assert JOB_PACKAGES == ["features", "learning", "metrics", "rows"]


@pytest.mark.parametrize("job", JOB_PACKAGES)
def test_no_job_imports_another(job: str) -> None:
    others = [other for other in JOB_PACKAGES if other != job]
    for path in (JOBS_DIR / job).glob("*.py"):
        wrong = {name for name in _imports(path) for other in others if name.startswith(f"jobs.flink.{other}")}
        assert not wrong, f"{path.relative_to(REPO_ROOT)} imports {sorted(wrong)}"


@pytest.mark.parametrize("job", JOB_PACKAGES)
def test_a_job_module_only_wires_named_steps(job: str) -> None:
    """No classes, about a hundred lines, and every operator it adds (process, map, filter) is the stream
    handed to ``named(stream, Step(uid, name))``: a stable uid, so that state survives restarts."""
    path = JOBS_DIR / job / "job.py"
    tree = ast.parse(path.read_text())
    classes = [node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
    assert not classes, f"{path.name} defines {classes}: operators belong in operators.py"
    assert len(path.read_text().splitlines()) <= 110
    named = {id(call.args[0]) for call in ast.walk(tree) if isinstance(call, ast.Call)
             and isinstance(call.func, ast.Name) and call.func.id == "named" and call.args}
    operators = [call for call in ast.walk(tree) if isinstance(call, ast.Call)
                 and isinstance(call.func, ast.Attribute) and call.func.attr in ("process", "map", "filter")]
    unnamed = [f"line {call.lineno}: .{call.func.attr}(" for call in operators  # type: ignore[attr-defined]
               if id(call) not in named]
    assert operators and not unnamed, unnamed


def test_pure_packages_import_without_flink() -> None:
    modules = [*PURE_MODULES]
    for package in PURE_PACKAGES:
        folder = REPO_ROOT / Path(*package.split("."))
        modules += [f"{package}.{p.stem}" for p in folder.glob("*.py") if p.stem != "__init__"]
    script = (
        "import importlib, sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'pyflink' or name.startswith('pyflink.'):\n"
        "            raise ImportError(f'{name} is blocked: pure code must not need Flink')\n"
        "sys.meta_path.insert(0, Block())\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(len([m for m in sys.modules if m.startswith('jobs.')]))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout) >= len(modules)


def test_every_benchmark_imports() -> None:
    """A benchmark is a script run by hand: importing it here is what notices a name it uses has moved."""
    for path in sorted((REPO_ROOT / "benchmarks").glob("*.py")):
        importlib.import_module(f"benchmarks.{path.stem}")
