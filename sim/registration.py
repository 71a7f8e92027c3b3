"""Gymnasium ids: ours (`sim2real/...`), gymnasium's MuJoCo envs and gymnasium-robotics, and the
plain env factories. Randomization comes in through hooks: randomization/envs.py composes them
into `make_env` and `make_vector_env`, the one way the CLI and trainers build an env."""

from __future__ import annotations

import contextlib
import difflib
import functools
import io
from collections.abc import Callable
from typing import TYPE_CHECKING

import gymnasium as gym
import numpy as np

from sim.catalog import make_task, robot_by_name
from sim.goals import FetchGoals, GoalConditioned

if TYPE_CHECKING:
    from sim.batch_env import RandomizerFactory

OUR_ENVS: dict[str, dict] = {
    "sim2real/ArmReach-v0": {"robot": "so_arm", "task": "reach"},
    "sim2real/ArmPush-v0": {"robot": "so_arm", "task": "push"},
    "sim2real/FurutaBalance-v0": {"robot": "furuta", "task": "pendulum",
                                  "task_config": {"mode": "balance"}},
    "sim2real/FurutaSwingup-v0": {"robot": "furuta", "task": "pendulum",
                                  "task_config": {"mode": "swingup"}},
}
# The standard suites we support through the same API, by family.
GYMNASIUM_MUJOCO = ["InvertedPendulum-v5", "InvertedDoublePendulum-v5", "Reacher-v5",
                    "HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5"]
FETCH = [f"Fetch{task}{reward}-v4" for task in ("Reach", "Push", "PickAndPlace", "Slide")
         for reward in ("", "Dense")]
SUITES: dict[str, list[str]] = {"sim2real": list(OUR_ENVS), "gymnasium-mujoco": GYMNASIUM_MUJOCO,
                                "gymnasium-robotics": FETCH}
_registered = False


def register_our_envs() -> None:
    """Register our ids (idempotent; cheap: nothing is built until gym.make). `import sim` does
    it, so `gymnasium.make("sim:sim2real/ArmReach-v0")` works in a fresh interpreter."""
    for env_id, kwargs in OUR_ENVS.items():
        if env_id not in gym.registry:
            # The task says how long an episode lasts; TimeLimit enforces it.
            task = make_task(kwargs["task"], robot_by_name(kwargs["robot"]),
                             kwargs.get("task_config"))
            gym.register(env_id, entry_point="sim.env:RobotTaskEnv", kwargs=kwargs,
                         max_episode_steps=task.max_steps)


def register_envs() -> None:
    """Register our ids and gymnasium-robotics' (idempotent)."""
    global _registered
    if _registered:
        return
    register_our_envs()
    try:
        # Its import prints a notice about Adroit reward versions to stderr; we use no Adroit env.
        with contextlib.redirect_stderr(io.StringIO()):
            import gymnasium_robotics

        gym.register_envs(gymnasium_robotics)
    except ImportError:  # robotics suites are optional at run time
        pass
    _registered = True


def check_env_id(env_id: str) -> None:
    """Raise a one-line error naming the closest known ids when `env_id` is unknown."""
    register_envs()
    if env_id in gym.registry:
        return
    close = difflib.get_close_matches(env_id, list(gym.registry), n=5, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown env id {env_id!r}{hint} Known: {', '.join(list_env_ids())} "
                     "(`sim2real envs` shows their sizes)")


def robot_of(env_id: str) -> str | None:
    """The robot of one of our env ids (its own randomization presets apply), else None."""
    return OUR_ENVS.get(env_id, {}).get("robot")


def tracks_objects(env_id: str) -> bool:
    """Whether one of our env ids has a task that observes objects (on a robot, a camera's)."""
    spec = OUR_ENVS.get(env_id)
    if spec is None:
        return False
    return bool(make_task(spec["task"], robot_by_name(spec["robot"]), spec.get("task_config")).objects)


def list_env_ids() -> list[str]:
    return [env_id for ids in SUITES.values() for env_id in ids]


def describe_envs() -> list[dict]:
    """Every supported id with its suite, observation and action sizes (builds each env once)."""
    rows = []
    for suite, ids in SUITES.items():
        for env_id in ids:
            env = make_env(env_id)
            action = env.action_space
            rows.append({"id": env_id, "suite": suite,
                         "observation_size": int(np.prod(env.observation_space.shape)),
                         "action_size": int(action.n) if isinstance(action, gym.spaces.Discrete)
                         else int(np.prod(action.shape)),
                         "action": "discrete" if isinstance(action, gym.spaces.Discrete)
                         else "continuous"})
            env.close()
    return rows


def envs_table(rows: list[dict]) -> list[str]:
    """`describe_envs`' rows as aligned text lines, as `sim2real envs` prints them."""
    return [f"{'id':<34} {'suite':<20} {'observation':>11}  action"] + [
        f"{row['id']:<34} {row['suite']:<20} {row['observation_size']:>11}  "
        f"{row['action_size']} {row['action']}" for row in rows]


def goals_of(env_id: str) -> GoalConditioned | None:
    """The goal functions of `env_id`'s task (sim/goals.py), or None when it has no goal to
    relabel."""
    check_env_id(env_id)
    if env_id in OUR_ENVS:
        kwargs = OUR_ENVS[env_id]
        task = make_task(kwargs["task"], robot_by_name(kwargs["robot"]), kwargs.get("task_config"))
        return task if isinstance(task, GoalConditioned) else None
    return FetchGoals(env_id) if env_id in FETCH else None


def make_env(env_id: str, *, pixels: int | None = None, discrete_actions: int | None = None,
             randomize: Callable[[gym.Env], gym.Env] | None = None, **kwargs) -> gym.Env:
    """Build `env_id` with actions in [-1, 1], wrapped by `randomize` (e.g. domain
    randomization) when it is given, with `pixels` x `pixels` camera images beside the state
    when `pixels` is set (our envs), with `discrete_actions` evenly spaced choices per action
    dimension instead of continuous actions when it is set (sim/discrete_actions.py).

    `randomize` sees the env with its actions rescaled, before the camera and the choices are
    added. randomization.envs.make_env passes it for a preset name or YAML path.
    """
    check_env_id(env_id)
    env = gym.make(env_id, **kwargs)
    if isinstance(env.observation_space, gym.spaces.Dict):
        # Goal envs (Fetch): one vector of achieved_goal, desired_goal, observation (key order).
        env = gym.wrappers.FlattenObservation(env)
    space = env.action_space
    if (isinstance(space, gym.spaces.Box) and np.all(np.isfinite(space.low))
            and np.all(np.isfinite(space.high))
            and not (np.all(space.low == -1.0) and np.all(space.high == 1.0))):
        # Policies act in [-1, 1]; gymnasium's envs use their own bounds (e.g. +-3 N).
        env = gym.wrappers.RescaleAction(env, np.full(space.shape, -1.0, space.dtype),
                                         np.full(space.shape, 1.0, space.dtype))
    if randomize is not None:
        env = randomize(env)
    if pixels is not None:
        if env_id not in OUR_ENVS:
            raise ValueError(f"pixel observations come from our robots' cameras; {env_id!r} is "
                             f"not one of ours ({', '.join(OUR_ENVS)})")
        from sim.pixels import PixelObservation

        env = PixelObservation(env, width=pixels, height=pixels)
    if discrete_actions is not None:
        from sim.discrete_actions import DiscreteActions

        try:
            env = DiscreteActions(env, discrete_actions)
        except ValueError:
            env.close()
            raise
    return env


def make_vector_env(env_id: str, num_envs: int, *, mode: str = "auto", pixels: int | None = None,
                    discrete_actions: int | None = None,
                    randomize: Callable[[gym.Env], gym.Env] | None = None,
                    make_randomizer: RandomizerFactory | None = None) -> gym.vector.VectorEnv:
    """`num_envs` copies of `env_id` that reset a finished copy in the same step.

    mode: "batch" (ours only: one process, task functions on the whole batch), "sync" (copies
    stepped in turn by gymnasium), "async" (one subprocess per copy), or "auto": batch for our
    envs, sync otherwise (and for pixels). benchmarks/sim_throughput.py measures which is faster
    here. `pixels`: camera images beside the state, as in `make_env`. `discrete_actions`: that
    many choices per action dimension (one MultiDiscrete action per copy), as in `make_env`.
    Its metadata["goals"] makes the goal functions of a goal-conditioned task (sim/goals.py;
    None for others; absent with pixels).
    Randomization, as randomization.envs.make_vector_env gives it: `randomize` wraps each copy
    of a sync or async vector env (as in `make_env`; picklable for async, e.g. a
    functools.partial), `make_randomizer` builds the batch env's randomizer (sim.batch_env).
    """
    envs = _make_vector_env(env_id, num_envs, mode, pixels, randomize, make_randomizer)
    if pixels is None:
        # What hindsight experience replay relabels with (policies/hindsight.py), made only
        # when asked for: a Fetch task's takes an env of its own.
        envs.metadata = {**envs.metadata, "goals": functools.partial(goals_of, env_id)}
    if discrete_actions is None:
        return envs
    from sim.discrete_actions import DiscreteVectorActions, check_unit_box

    try:
        check_unit_box(envs.single_action_space, env_id)
        return DiscreteVectorActions(envs, discrete_actions)
    except ValueError:
        envs.close()
        raise


def _make_vector_env(env_id: str, num_envs: int, mode: str, pixels: int | None,
                     randomize: Callable[[gym.Env], gym.Env] | None,
                     make_randomizer: RandomizerFactory | None) -> gym.vector.VectorEnv:
    check_env_id(env_id)
    if mode == "auto":
        mode = "batch" if env_id in OUR_ENVS and pixels is None else "sync"
    same_step = gym.vector.AutoresetMode.SAME_STEP
    if mode == "batch":
        if pixels is not None:
            raise ValueError("the batch vector env renders no camera images; use mode 'sync' or "
                             "'async' (or 'auto') with pixels")
        if env_id not in OUR_ENVS:
            raise ValueError(f"the batch vector env runs our envs only ({', '.join(OUR_ENVS)}); "
                             f"use mode 'sync' or 'async' for {env_id!r}")
        from sim.batch_env import BatchRobotEnv

        return BatchRobotEnv(num_envs, make_randomizer=make_randomizer, **OUR_ENVS[env_id])
    factory = functools.partial(make_env, env_id, pixels=pixels, randomize=randomize)
    if mode == "sync":
        return gym.vector.SyncVectorEnv([factory] * num_envs, autoreset_mode=same_step)
    if mode == "async":
        return gym.vector.AsyncVectorEnv([factory] * num_envs, autoreset_mode=same_step)
    raise ValueError(f"vector env mode {mode!r} is unknown; use auto, batch, sync or async")
