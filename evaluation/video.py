"""Videos of a policy from offscreen rendering: MP4 (imageio's ffmpeg) or GIF, by the file's
suffix. With `domains`, a montage: that many copies of the env, each under its own draw of the
randomization, side by side in one video, each with its values written under it.
Rendering needs MUJOCO_GL=egl (set by sim/ on import) or osmesa on a headless machine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evaluation.episodes import load_policy
from evaluation.outputs import beside

FORMATS = (".mp4", ".gif")


def record_video(policy_path: Path, env_id: str | None, out: Path | None, episodes: int = 1,
                 seed: int = 0, domains: int = 0, randomization: str = "default",
                 size: int = 240, max_steps: int = 1000) -> dict:
    """Write the video; returns its path, frames and fps. `domains` > 0: a montage of that
    many randomized copies (`randomization`: a preset name or YAML path). `out`: .mp4 or .gif
    (default: policy.mp4 beside the policy, or in its run dir)."""
    import imageio.v2 as imageio

    from randomization.config import load_config
    from randomization.envs import make_env
    from randomization.wrapper import DomainRandomization
    from sim.registration import check_env_id

    out = out or beside(policy_path, "policy.mp4")
    if out.suffix.lower() not in FORMATS:
        raise ValueError(f"video {out}: write .mp4 or .gif, not {out.suffix or 'no suffix'}")
    if episodes < 1 or domains < 0 or size < 32:
        raise ValueError("episodes must be >= 1, domains >= 0 and size >= 32 pixels")
    policy = load_policy(policy_path)
    env_id = env_id or policy.trained_on
    if env_id is None:
        raise ValueError(f"{policy_path} does not say which env it was trained on; give --env")
    check_env_id(env_id)
    copies = max(domains, 1)
    envs = []
    for _ in range(copies):
        env = make_env(env_id, render_mode="rgb_array", width=size, height=size)
        if domains:
            env = DomainRandomization(env, load_config(randomization, _robot_of(env)))
        envs.append(env)
    policy.check_fits(envs[0], env_id)
    fps = int(envs[0].metadata.get("render_fps", 30))
    frames = []
    for episode in range(episodes):
        observations, captions = [], []
        for i, env in enumerate(envs):
            obs, info = env.reset(seed=seed + 1000 * i + episode)
            observations.append(obs)
            captions.append(_caption(info) if domains else "")
        done = [False] * copies
        for _ in range(max_steps):
            tiles = []
            for i, env in enumerate(envs):
                if not done[i]:
                    obs, _, terminated, truncated, _ = env.step(policy.act(observations[i]))
                    observations[i], done[i] = obs, terminated or truncated
                tiles.append(_with_caption(env.render(), captions[i]))
            frames.append(_grid(tiles))
            if all(done):
                break
    for env in envs:
        env.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".gif":
        imageio.mimsave(out, frames, duration=1000 / fps, loop=0)
    else:
        imageio.mimsave(out, frames, fps=fps, codec="libx264", quality=7,
                        macro_block_size=8)
    what = f"a montage of {domains} domains" if domains else "the nominal env"
    return {"path": out, "frames": len(frames), "fps": fps, "domains": domains,
            "line": f"wrote {out}: {len(frames)} frames at {fps} fps, {what}"}


def _robot_of(env) -> str | None:
    robot = getattr(env.unwrapped, "robot", None)
    return getattr(robot, "name", None)


def _caption(info: dict) -> str:
    """The randomized values of this episode, as the wrapper reports them in info."""
    sample = info.get("randomization") or {}
    parts = []
    for term, values in sample.items():
        numbers = list(values.values()) if isinstance(values, dict) else [values]
        numbers = [v for v in numbers if isinstance(v, int | float)]
        if numbers:
            parts.append(f"{term} {np.mean(numbers):.2f}")
    return ", ".join(parts[:4])


def _with_caption(image: np.ndarray, caption: str) -> np.ndarray:
    if not caption:
        return image
    from PIL import Image, ImageDraw

    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    # One line per what fits, broken between "term value" parts, never inside one.
    lines: list[str] = []
    for part in caption.split(", "):
        joined = f"{lines[-1]}, {part}" if lines else part
        if lines and draw.textlength(joined) <= image.shape[1] - 6:
            lines[-1] = joined
        else:
            lines.append(part)
    top = image.shape[0] - 12 * len(lines) - 2
    draw.rectangle((0, top, image.shape[1], image.shape[0]), fill=(0, 0, 0))
    for k, line in enumerate(lines):
        draw.text((3, top + 1 + 12 * k), line, fill=(255, 255, 255))
    return np.asarray(canvas)


def _grid(tiles: list[np.ndarray]) -> np.ndarray:
    """Tiles in a near-square grid (blank where the last row is short)."""
    if len(tiles) == 1:
        return tiles[0]
    columns = int(np.ceil(np.sqrt(len(tiles))))
    rows = int(np.ceil(len(tiles) / columns))
    height, width, _ = tiles[0].shape
    grid = np.zeros((rows * height, columns * width, 3), dtype=np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, columns)
        grid[r * height:(r + 1) * height, c * width:(c + 1) * width] = tile
    return grid
