"""Outputs go with what they are about, never into the directory a command was run from."""

from __future__ import annotations

import os
from pathlib import Path

from evaluation.outputs import beside
from sim2real.cli import main


def test_an_output_goes_inside_a_run_dir_or_beside_a_file(tmp_path) -> None:
    run = tmp_path / "runs" / "reach"
    run.mkdir(parents=True)
    assert beside(run, "sysid") == run / "sysid"
    assert beside(run / "policy.onnx", "policy.mp4") == run / "policy.mp4"


def test_plot_writes_beside_the_runs_not_where_it_was_run(tiny_run, tmp_path, capsys) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    before = os.getcwd()
    os.chdir(elsewhere)
    try:
        main(["plot", str(tiny_run)])
    finally:
        os.chdir(before)
    written = Path(capsys.readouterr().out.split("wrote ")[1].strip())
    assert written == tiny_run.resolve().parent / "learning_curves.png" and written.is_file()
    assert list(elsewhere.iterdir()) == []
