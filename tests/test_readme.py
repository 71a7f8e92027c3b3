"""The README is a test: every ```bash block of README.md (then of docs/*.md) runs, in order, in one
shell, in a scratch
clone of the repository, as typed but for the budgets in SCALED (training steps, episodes, seconds:
the README shows the real command). A block after `<!-- readme-test: not run: REASON -->` is
skipped for that reason. A block that fails fails the test, named by its line in README.md and its
first command. Afterwards the clone's `git status` is what it was: the commands write only where
git ignores (runs/)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(?:<!-- readme-test: not run: (?P<reason>.*?) -->\n)?```bash\n(?P<body>.*?)```",
                   re.DOTALL)
SCALED = ((r"--steps \d+", "--steps 2048"), (r"--episodes \d+", "--episodes 2"),
          (r"--seconds \d+", "--seconds 3"), (r"(--vary \w+=[\d.]+:[\d.]+:)\d+", r"\g<1>2"),
          (r"--montage \d+", "--montage 2"))


@dataclass(frozen=True)
class Block:
    file: str
    line: int
    body: str
    skipped: str | None

    @property
    def name(self) -> str:
        return f"{self.file} line {self.line}: {self.body.strip().splitlines()[0]}"


def blocks(text: str, file: str = "README.md") -> list[Block]:
    return [Block(file, text.count("\n", 0, m.start("body")) + 1, m.group("body"),
                  m.group("reason")) for m in BLOCK.finditer(text)]


def scaled(command: str) -> str:
    for pattern, replacement in SCALED:
        command = re.sub(pattern, replacement, command)
    return command


def run_blocks(documents: dict[str, str], workdir: Path,
               timeout: float = 900) -> tuple[Block | None, str]:
    """Run the blocks of `documents` (file name: text), in order, in one bash in `workdir`:
    (the block that failed or None, the output)."""
    runnable = [block for file, text in documents.items() for block in blocks(text, file)
                if block.skipped is None]
    marks = workdir.parent / f"{workdir.name}.readme_block"  # outside: git status is checked
    script = ["set -eo pipefail", "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT"]
    for index, block in enumerate(runnable):
        script += [f"echo {index} > {marks}", scaled(block.body)]
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "MUJOCO_GL": "egl"}
    result = subprocess.run(["bash", "-c", "\n".join(script)], cwd=workdir, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    if result.returncode == 0:
        return None, result.stdout
    failed = runnable[int(marks.read_text())] if marks.is_file() else runnable[0]
    return failed, result.stdout


def git_status(repo: Path) -> str:
    return subprocess.run(["git", "status", "--porcelain"], cwd=repo, text=True, check=True,
                          capture_output=True).stdout


@pytest.mark.slow
def test_every_command_in_the_readme_runs_as_typed(tmp_path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    # The documents being written, committed or not.
    documents = {str(path.relative_to(ROOT)): path.read_text()
                 for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]}
    for file, text in documents.items():
        (clone / file).write_text(text)
    before = git_status(clone)
    (clone / "runs").mkdir()
    failed, output = run_blocks(documents, clone)
    assert failed is None, f"{failed.name} failed:\n{output[-3000:]}"
    assert git_status(clone) == before, "README commands wrote outside runs/"
    assert sum(block.skipped is None for block in blocks(documents["README.md"])) >= 8


def test_a_broken_readme_command_fails_naming_its_block(tmp_path) -> None:
    readme = ("# A README\n\n```bash\ntrue\n```\n\n"
              "<!-- readme-test: not run: shows the skip -->\n```bash\nfalse\n```\n\n"
              "Then:\n\n```bash\nsim2real trian --env sim2real/ArmReach-v0\n```\n")
    failed, output = run_blocks({"README.md": readme}, tmp_path, timeout=120)
    assert failed is not None and failed.name == (
        "README.md line 15: sim2real trian --env sim2real/ArmReach-v0")
    assert "invalid choice: 'trian'" in output


def test_budgets_are_scaled_and_nothing_else() -> None:
    command = ("sim2real train --env sim2real/ArmReach-v0 --steps 250000 --seed 0 --out runs/x\n"
               "sim2real robustness a.onnx --vary mass=0.5:2.0:7 --episodes 50")
    assert scaled(command) == (
        "sim2real train --env sim2real/ArmReach-v0 --steps 2048 --seed 0 --out runs/x\n"
        "sim2real robustness a.onnx --vary mass=0.5:2.0:2 --episodes 2")
