"""The packages keep their direction: `lint-imports` passes on the repo with the contracts of
pyproject.toml ([tool.importlinter]), and on a copy of the packages with one bad import added it
fails and names that import. Each run takes about 0.3 s (grimp builds the graph in Rust)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The lint-imports of the venv running these tests (not resolved: a venv's python is a symlink).
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("sim", "randomization", "policies", "deploy", "hardware", "evaluation", "sim2real")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports on the packages under `cwd`, which it puts first on sys.path. No cache: it
    would leave .import_linter_cache in the repo. Wide columns keep each import on one line."""
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "COLUMNS": "200"})


def test_the_packages_keep_their_contracts() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, f"lint-imports found broken contracts:\n{result.stdout}{result.stderr}"


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The packages' Python files and pyproject.toml in a scratch dir."""
    def not_python(folder: str, names: list[str]) -> list[str]:
        return [n for n in names if n == "__pycache__"
                or (not n.endswith(".py") and not Path(folder, n).is_dir())]

    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=not_python)
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def add_import(path: Path, statement: str) -> None:
    path.write_text(path.read_text() + f"\n{statement}  # added by tests/test_layers.py\n")


@pytest.mark.parametrize(("module", "statement", "chain"), [
    # torch directly in the robot's control loop.
    ("deploy/loop.py", "import torch", ["deploy.loop -> torch"]),
    # MuJoCo through sim/: the serial driver taking SimRobot's physics.
    ("hardware/serial_robot.py", "from sim.physics import RobotSimulation",
     ["hardware.serial_robot -> sim.physics", "sim.physics -> mujoco"]),
    # A package below importing one above it.
    ("policies/core.py", "from deploy.telemetry import TelemetryLog",
     ["policies.core -> deploy.telemetry"]),
])
def test_a_forbidden_import_breaks_a_contract_and_is_named(copy: Path, module: str,
                                                           statement: str,
                                                           chain: list[str]) -> None:
    add_import(copy / module, statement)
    result = lint_imports(copy)
    assert result.returncode == 1, result.stdout + result.stderr
    for link in chain:
        assert re.search(rf"^\W*{re.escape(link)} \(l\.\d+\)", result.stdout, re.MULTILINE), (
            f"{link!r} is not named in lint-imports' output:\n{result.stdout}")


def test_an_import_cycle_inside_a_package_breaks_a_contract_and_is_named(copy: Path) -> None:
    # The cycle term_spec.py removed: geometry reaching back into terms, which imports geometry.
    add_import(copy / "randomization/geometry.py", "from randomization.terms import FIELDS")
    result = lint_imports(copy)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "No cycles are allowed in randomization." in result.stdout, result.stdout
    assert re.search(r"^- \.(terms -> \.geometry|geometry -> \.terms) \(", result.stdout,
                     re.MULTILINE), result.stdout
