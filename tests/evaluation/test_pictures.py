"""Robustness maps, learning curves and videos: the files are written, open, and show
something; bad input is refused with clear errors."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from evaluation.curves import plot_runs
from evaluation.episodes import load_policy, run_episodes
from evaluation.robustness import Axis, pinned_config, robustness_map
from evaluation.video import record_video
from randomization.envs import make_env
from randomization.wrapper import DomainRandomization


def opened(path) -> np.ndarray:
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape[0] >= 200 and pixels.shape[1] >= 300
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20  # drawn on, not blank
    return pixels


@pytest.mark.slow  # 2 s: the fast subset keeps under a minute
def test_robustness_map_of_two_policies(tiny_run, tiny_policy, tmp_path) -> None:
    axes = [Axis.parse("mass=0.8:1.2:2"), Axis.parse("action_delay=0,2")]
    result = robustness_map([tiny_policy, tiny_run], None, axes, episodes=2,
                            out=tmp_path / "map", progress=False)
    rows = list(csv.DictReader(result["csv"].open()))
    assert len(rows) == 2 * 2 * 2
    # Both are named "tiny" (the ONNX file's run dir and the run dir), so the map names them by path.
    assert {r["policy"] for r in rows} == {str(tiny_policy), str(tiny_run)}
    assert {(float(r["mass"]), float(r["action_delay"])) for r in rows} == {
        (0.8, 0.0), (0.8, 2.0), (1.2, 0.0), (1.2, 2.0)}
    # A cell's figures are those of the same episodes run by hand under the same pinned physics.
    cell = {"mass": 1.2, "action_delay": 2.0}
    env = DomainRandomization(make_env("sim2real/ArmReach-v0"), pinned_config(cell))
    by_hand = run_episodes(env, load_policy(tiny_policy).act, 2, seed=0)
    env.close()
    (row,) = [r for r in rows if r["policy"] == str(tiny_policy)
              and (float(r["mass"]), float(r["action_delay"])) == (1.2, 2.0)]
    assert float(row["success_rate"]) == by_hand["success_rate"]
    assert float(row["mean_return"]) == pytest.approx(by_hand["mean_return"], rel=1e-9)
    (picture,) = result["pictures"]
    assert picture.name == "robustness_mass_action_delay.png"
    opened(picture)
    summary = result["summary"].read_text()
    assert "worst cell" in summary and "mass (x nominal)" in summary


def test_one_axis_draws_a_line_per_policy(tiny_policy, tmp_path) -> None:
    result = robustness_map([tiny_policy], None, [Axis.parse("actuator_kp=0.5,1.0")], 1,
                            tmp_path / "line", progress=False)
    opened(result["pictures"][0])


@pytest.mark.parametrize("text, message", [
    ("mass=0.5:2.0:0", "a grid with 0 points has nothing to evaluate"),
    ("mass=", "write TERM=LOW:HIGH:POINTS"),
    ("heaviness=1:2:3", "'heaviness' is not a randomization term"),
    ("mass=a:b:3", "write TERM=LOW:HIGH:POINTS"),
])
def test_bad_grids_are_refused(text, message) -> None:
    with pytest.raises(ValueError, match=message):
        Axis.parse(text)


@pytest.mark.slow
def test_learning_curves_over_seeds(tiny_run, tmp_path) -> None:
    out = plot_runs([tiny_run, tiny_run], tmp_path / "curves.png")
    opened(out)
    with pytest.raises(FileNotFoundError, match="no metrics.csv"):
        plot_runs([tmp_path], tmp_path / "nothing.png")


@pytest.mark.slow
def test_video_and_montage(tiny_policy, tmp_path) -> None:
    import imageio.v2 as imageio

    gif = record_video(tiny_policy, None, tmp_path / "reach.gif", size=64)
    frames = imageio.mimread(gif["path"])
    assert gif["frames"] == len(frames) > 10 and frames[0].shape[:2] == (64, 64)
    assert np.ptp(np.asarray(frames[0], dtype=float)) > 30  # a scene, not a blank frame
    mp4 = record_video(tiny_policy, None, tmp_path / "montage.mp4", domains=4, size=64)
    reader = imageio.get_reader(mp4["path"])
    first = reader.get_data(0)
    assert first.shape[:2] == (128, 128)  # 2 x 2 views
    assert mp4["frames"] == reader.count_frames()
    with pytest.raises(ValueError, match="write .mp4 or .gif"):
        record_video(tiny_policy, None, tmp_path / "clip.avi")
