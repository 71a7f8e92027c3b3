"""Ours vs Stable-Baselines3 and SBX, side by side in one run, 3 seeds each, every training in
a fresh process, so wall time is from process start (imports, compilation) to the trained model.

Two protocols:
- `defaults` (the main one): what a user gets. Each library with its own defaults (ours: its
  defaults and its tuned entry for the env), SB3 2.9.2 and SBX 0.28 (SB3's algorithms in JAX)
  as `ALGO("MlpPolicy", env)`; the figures of merit are the time to a solved task (the first
  evaluation at the case's threshold, evaluations excluded, benchmarks/library_defaults.py) and
  the wall time and final return at a fixed budget.
- `equal`: ours and SB3 with the same hyperparameters and budget (CASES below), which isolates
  the speed of the implementations from the choice of defaults.

The final return is the mean of 10 deterministic episodes (`--eval-episodes`) from the same
env seeds for every library. Whether two libraries' returns differ by more than seed noise is a
permutation test over the seeds.

Usage: python benchmarks/rl_vs_sb3.py [--protocol defaults|equal] [--algos ppo sac ...]
       [--envs InvertedPendulum-v5 ...] [--seeds 3] [--eval-episodes 10] [--save]
Needs the benchmark extra: pip install -c constraints.txt -e ".[bench]" (SB3 and SBX with jax).
Writes benchmarks/results/rl_vs_sb3.{json,md} with --save.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # also when a test loads this file
from library_defaults import (
    DEFAULT_CASES,
    LIBRARIES,
    SolvedClock,
    evaluate,
    train_ours,
    train_stable_baselines,
)
from published import add_save_flag, publish, saved_results

EVAL_EPISODES = 10
"""Deterministic evaluation episodes per trained model, unless --eval-episodes says otherwise."""

# (algorithm, env) -> step budget and the hyperparameters both libraries get, in our names.
CASES: dict[tuple[str, str], dict] = {
    ("ppo", "InvertedPendulum-v5"): {
        "steps": 50_000, "num_envs": 8, "rollout_steps": 128, "epochs": 10,
        "minibatch_size": 256, "learning_rate": 3e-4, "gamma": 0.99, "gae_lambda": 0.95,
        "clip_coef": 0.2, "hidden_sizes": [64, 64], "initial_log_std": -0.5},
    ("ppo", "HalfCheetah-v5"): {
        "steps": 100_000, "num_envs": 8, "rollout_steps": 256, "epochs": 10,
        "minibatch_size": 256, "learning_rate": 3e-4, "gamma": 0.99, "gae_lambda": 0.95,
        "clip_coef": 0.2, "hidden_sizes": [64, 64], "initial_log_std": -0.5},
    ("ppo", "sim2real/ArmReach-v0"): {
        "steps": 250_000, "num_envs": 16, "rollout_steps": 64, "epochs": 10,
        "minibatch_size": 256, "learning_rate": 1e-3, "gamma": 0.95, "gae_lambda": 0.95,
        "clip_coef": 0.2, "hidden_sizes": [128, 128], "initial_log_std": -1.0},
}
# Off-policy: Stable-Baselines3's SAC/TD3/DDPG settings, with TD3's 1,000 random steps for all
# and Gaussian exploration noise 0.1 for TD3 and DDPG (SB3 adds none by default).
OFF_POLICY = {"batch_size": 256, "hidden_sizes": [256, 256], "gamma": 0.99, "tau": 0.005,
              "learning_starts": 1_000}
for _env, _steps in (("InvertedPendulum-v5", 10_000), ("HalfCheetah-v5", 10_000)):
    CASES[("sac", _env)] = {"steps": _steps, **OFF_POLICY, "learning_rate": 3e-4}
    CASES[("td3", _env)] = {"steps": _steps, **OFF_POLICY, "learning_rate": 1e-3,
                            "noise_std": 0.1}
    CASES[("ddpg", _env)] = {"steps": _steps, **OFF_POLICY, "learning_rate": 1e-3,
                             "noise_std": 0.1}
# Ours with the hidden layers multiplied in bfloat16 (opt-in `matmul_precision: bf16`), against
# the same SB3 runs (fp32): rows "sac bf16", ...; SB3 does not read the key.
for _env in ("InvertedPendulum-v5", "HalfCheetah-v5"):
    for _algo in ("sac", "td3", "ddpg"):
        CASES[(f"{_algo} bf16", _env)] = {**CASES[(_algo, _env)], "matmul_precision": "bf16"}
REACH = {"steps": 20_000, **OFF_POLICY, "gamma": 0.95}
CASES[("sac", "sim2real/ArmReach-v0")] = {**REACH, "learning_rate": 3e-4}
CASES[("td3", "sim2real/ArmReach-v0")] = {**REACH, "learning_rate": 1e-3, "noise_std": 0.1}
CASES[("ddpg", "sim2real/ArmReach-v0")] = {**REACH, "learning_rate": 1e-3, "noise_std": 0.1}
# Goal-conditioned manipulation, sparse rewards: SAC with hindsight experience replay (k = 4,
# "future"), RL Zoo's SAC settings for FetchReach (hyperparams/her.yml: batch 256, gamma 0.95,
# learning rate 1e-3, 1,000 random steps, normalized observations) for both tasks. RL Zoo's
# FetchPush budget (1-3M steps, 3x512 networks, batches of 2048) takes SB3 days on 2 cores: the
# push row is a shorter budget with the reach settings, and says so.
HER = {**OFF_POLICY, "gamma": 0.95, "learning_rate": 1e-3, "hindsight_goals": 4}
CASES[("sac her", "FetchReach-v4")] = {"steps": 20_000, **HER}
CASES[("sac her", "FetchPush-v4")] = {"steps": 100_000, **HER}
for _env in ("FetchReach-v4", "FetchPush-v4"):
    CASES[("sac her bf16", _env)] = {**CASES[("sac her", _env)], "matmul_precision": "bf16"}
# DQN, discrete actions: RL Zoo's CartPole-v1 settings for both; no observation normalization
# (RL Zoo uses none for it).
CASES[("dqn", "CartPole-v1")] = {
    "steps": 50_000, "learning_rate": 2.3e-3, "batch_size": 64, "buffer_size": 100_000,
    "learning_starts": 1_000, "gamma": 0.99, "target_update_interval": 10, "train_freq": 256,
    "gradient_steps": 128, "exploration_fraction": 0.16, "final_epsilon": 0.04,
    "hidden_sizes": [256, 256], "normalize_obs": False}
# The rest of the on-policy family on InvertedPendulum: A2C with its tuned settings
# (policies/hyperparams/a2c.yaml) for both libraries; TRPO and REINFORCE are not in
# Stable-Baselines3 (TRPO is in sb3-contrib, not installed), so their rows are ours alone.
CASES[("a2c", "InvertedPendulum-v5")] = {
    "steps": 200_000, "num_envs": 16, "rollout_steps": 5, "learning_rate": 1e-3, "gamma": 0.99,
    "gae_lambda": 0.95, "normalize_advantage": True, "anneal_lr": True, "hidden_sizes": [64, 64],
    "initial_log_std": -0.5}
CASES[("trpo", "InvertedPendulum-v5")] = {"steps": 60_000}
CASES[("reinforce", "InvertedPendulum-v5")] = {"steps": 200_000, "learning_rate": 3e-3}
IN_SB3 = {"ppo", "a2c", "sac", "td3", "ddpg", "dqn"}
OFF_POLICY_ALGOS = {"sac", "td3", "ddpg"}
"""Their learning_rate stands for the actor's, the critics' (and SAC's temperature's)."""
THREADS = 2
"""torch threads for both libraries (SB3's default on this 2-core machine)."""


def library_algo(case_algo: str) -> str:
    """The algorithm a case runs: "sac bf16" is SAC with settings of its own."""
    return case_algo.split()[0]


def run_ours(algo: str, env_id: str, seed: int, settings: dict, out: Path) -> tuple:
    if algo == "dqn":
        return run_ours_dqn(env_id, seed, settings, out)
    import torch

    from policies.algorithms import algorithm_by_name
    from randomization.envs import make_vector_env

    algorithm = algorithm_by_name(algo)
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()
              if k != "steps"}
    if algo in OFF_POLICY_ALGOS:
        rate = fields.pop("learning_rate")
        fields |= {"actor_learning_rate": rate, "critic_learning_rate": rate,
                   "torch_threads": THREADS}
        if algo == "sac":
            fields["alpha_learning_rate"] = rate
        else:
            fields["exploration_noise_std"] = fields.pop("noise_std")
    config = algorithm.config(total_steps=settings["steps"], seed=seed, eval_every=0, **fields)
    result = algorithm.train(lambda n: make_vector_env(env_id, n), config, out,
                             metadata={"env_id": env_id}, progress=False)
    trained = time.time()
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=False)
    policy = algorithm.load_policy(checkpoint)

    def act(obs):
        with torch.no_grad():
            return policy(torch.as_tensor(obs, dtype=torch.float32)[None])[0].numpy()

    return trained, act, result.get("update_ms")


def run_sb3(algo: str, env_id: str, seed: int, settings: dict, out: Path) -> tuple:
    if algo == "dqn":
        return run_sb3_dqn(env_id, seed, settings, out)
    import numpy as np
    import stable_baselines3 as sb3
    import torch
    from stable_baselines3.common.noise import NormalActionNoise
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize
    from torch import nn

    from randomization.envs import make_env

    torch.set_num_threads(THREADS)
    hindsight = settings.get("hindsight_goals")
    if hindsight:  # SB3's HER reads the goal env's dict observations, which ours flattens
        import gymnasium as gym

        from sim.registration import register_envs

        register_envs()
        venv = VecNormalize(DummyVecEnv([lambda: gym.make(env_id)]), norm_obs=True,
                            norm_reward=False)
    else:
        venv = VecNormalize(DummyVecEnv([lambda: make_env(env_id)] * settings.get("num_envs", 1)),
                            norm_obs=True, norm_reward=False)
    venv.seed(seed)
    if algo == "ppo":
        lr = settings["learning_rate"]
        model = sb3.PPO(
            "MlpPolicy", venv, n_steps=settings["rollout_steps"],
            batch_size=settings["minibatch_size"], n_epochs=settings["epochs"],
            learning_rate=lambda remaining: lr * remaining, gamma=settings["gamma"],
            gae_lambda=settings["gae_lambda"], clip_range=settings["clip_coef"], ent_coef=0.0,
            vf_coef=0.5, max_grad_norm=0.5, seed=seed, device="cpu",
            policy_kwargs={"net_arch": {"pi": settings["hidden_sizes"],
                                        "vf": settings["hidden_sizes"]},
                           "activation_fn": nn.Tanh, "log_std_init": settings["initial_log_std"]})
    elif algo == "a2c":
        lr = settings["learning_rate"]
        model = sb3.A2C(
            "MlpPolicy", venv, n_steps=settings["rollout_steps"],
            learning_rate=(lambda remaining: lr * remaining) if settings["anneal_lr"] else lr,
            gamma=settings["gamma"], gae_lambda=settings["gae_lambda"], ent_coef=0.0,
            vf_coef=0.5, max_grad_norm=0.5, normalize_advantage=settings["normalize_advantage"],
            seed=seed, device="cpu",
            policy_kwargs={"net_arch": {"pi": settings["hidden_sizes"],
                                        "vf": settings["hidden_sizes"]},
                           "activation_fn": nn.Tanh, "log_std_init": settings["initial_log_std"]})
    else:
        common = dict(buffer_size=1_000_000, learning_starts=settings["learning_starts"],
                      batch_size=settings["batch_size"], tau=settings["tau"],
                      gamma=settings["gamma"], learning_rate=settings["learning_rate"],
                      train_freq=1, gradient_steps=1, seed=seed, device="cpu",
                      policy_kwargs={"net_arch": settings["hidden_sizes"]})
        if hindsight:
            common |= {"replay_buffer_class": sb3.HerReplayBuffer,
                       "replay_buffer_kwargs": {"n_sampled_goal": hindsight,
                                                "goal_selection_strategy": "future"}}
        if algo == "sac":
            model = sb3.SAC("MultiInputPolicy" if hindsight else "MlpPolicy", venv, **common)
        else:
            size = venv.action_space.shape[0]
            noise = NormalActionNoise(np.zeros(size), settings["noise_std"] * np.ones(size))
            model = {"td3": sb3.TD3, "ddpg": sb3.DDPG}[algo]("MlpPolicy", venv,
                                                             action_noise=noise, **common)
    # Per gradient update (off-policy): SB3's own train(), timed as it is called in learning.
    update_seconds: list[float] = []
    train = model.train

    def timed_train(gradient_steps: int, batch_size: int) -> None:
        start = time.perf_counter()
        train(gradient_steps=gradient_steps, batch_size=batch_size)
        update_seconds.append((time.perf_counter() - start) / gradient_steps)

    if algo in OFF_POLICY_ALGOS:
        model.train = timed_train
    model.learn(total_timesteps=settings["steps"])
    trained = time.time()
    venv.training = False

    if hindsight:
        from sim.goals import FetchGoals

        slots = FetchGoals(env_id).slots

        def as_model_sees(obs):  # the flat vector the evaluation env gives, as the dict
            return {key: obs[None, slot] for key, slot in slots.items()}
    else:
        def as_model_sees(obs):
            return obs[None]

    def act(obs):
        action, _ = model.predict(venv.normalize_obs(as_model_sees(obs)), deterministic=True)
        return np.clip(action[0], -1.0, 1.0)

    update_ms = 1e3 * statistics.mean(update_seconds[1:]) if len(update_seconds) > 1 else None
    return trained, act, update_ms


def run_ours_dqn(env_id: str, seed: int, settings: dict, out: Path) -> tuple:
    import torch

    from policies.dqn import DQNConfig, load_policy, train
    from randomization.envs import make_vector_env

    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()
              if k != "steps"}
    config = DQNConfig(total_steps=settings["steps"], seed=seed, eval_every=0,
                       torch_threads=THREADS, **fields)
    result = train(lambda n: make_vector_env(env_id, n), config, out,
                   metadata={"env_id": env_id}, progress=False)
    trained = time.time()
    policy = load_policy(torch.load(out / "checkpoint.pt", weights_only=False))

    def act(obs):
        with torch.no_grad():  # the exported policy gives the chosen index as a float
            return int(policy(torch.as_tensor(obs, dtype=torch.float32)[None])[0, 0])

    return trained, act, result.get("update_ms")


def run_sb3_dqn(env_id: str, seed: int, settings: dict, out: Path) -> tuple:
    import stable_baselines3 as sb3
    import torch
    from stable_baselines3.common.vec_env import DummyVecEnv

    from randomization.envs import make_env

    torch.set_num_threads(THREADS)
    venv = DummyVecEnv([lambda: make_env(env_id)])
    venv.seed(seed)
    model = sb3.DQN(
        "MlpPolicy", venv, learning_rate=settings["learning_rate"],
        buffer_size=settings["buffer_size"], learning_starts=settings["learning_starts"],
        batch_size=settings["batch_size"], gamma=settings["gamma"],
        target_update_interval=settings["target_update_interval"],
        train_freq=settings["train_freq"], gradient_steps=settings["gradient_steps"],
        exploration_fraction=settings["exploration_fraction"],
        exploration_final_eps=settings["final_epsilon"], seed=seed, device="cpu",
        policy_kwargs={"net_arch": settings["hidden_sizes"]})
    update_seconds: list[float] = []
    train = model.train

    def timed_train(gradient_steps: int, batch_size: int) -> None:
        start = time.perf_counter()
        train(gradient_steps=gradient_steps, batch_size=batch_size)
        update_seconds.append((time.perf_counter() - start) / gradient_steps)

    model.train = timed_train
    model.learn(total_timesteps=settings["steps"])
    trained = time.time()

    def act(obs):
        action, _ = model.predict(obs, deterministic=True)
        return int(action)

    update_ms = 1e3 * statistics.mean(update_seconds[1:]) if len(update_seconds) > 1 else None
    return trained, act, update_ms


def one(library: str, algo: str, env_id: str, seed: int, started: float,
        eval_episodes: int = EVAL_EPISODES) -> None:
    """A single training of the equal-settings protocol in this (fresh) process; prints one
    JSON line."""
    settings = CASES[(algo, env_id)]
    with tempfile.TemporaryDirectory() as tmp:
        # SB3's logger makes a directory (in /tmp, a new one a run) even when it writes nothing.
        os.environ["SB3_LOGDIR"] = tmp
        runner = run_ours if library == "ours" else run_sb3
        trained, act, update_ms = runner(library_algo(algo), env_id, seed, settings, Path(tmp))
        mean, std, success = evaluate(act, env_id, eval_episodes)
    seconds = trained - started
    print(json.dumps({"protocol": "equal", "library": library, "algo": algo, "env": env_id,
                      "seed": seed, "steps": settings["steps"], "seconds": seconds,
                      "steps_per_s": settings["steps"] / seconds, "return": mean,
                      "return_std": std, "success": success, "update_ms": update_ms,
                      "eval_episodes": eval_episodes}))


def one_with_defaults(library: str, algo: str, env_id: str, seed: int, started: float,
                      eval_episodes: int = EVAL_EPISODES) -> None:
    """A single training of the defaults protocol in this (fresh) process; prints one JSON
    line: the wall time and final return at the budget, and when it was first solved."""
    case = DEFAULT_CASES[(algo, env_id)]
    clock = SolvedClock(case, env_id, started, eval_episodes)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SB3_LOGDIR"] = tmp
        if library == "ours":
            act = train_ours(algo, env_id, seed, case, clock, Path(tmp))
        else:
            act = train_stable_baselines(library, algo, env_id, seed, case, clock)
        seconds = time.time() - started - clock.evaluation_seconds
        mean, std, success = evaluate(act, env_id, eval_episodes)
    print(json.dumps({"protocol": "defaults", "library": library, "algo": algo, "env": env_id,
                      "seed": seed, "steps": case.steps, "seconds": seconds, "return": mean,
                      "return_std": std, "success": success, "threshold": case.threshold,
                      "solved": clock.solved, "evaluations": clock.evaluations,
                      "eval_episodes": eval_episodes}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", choices=("defaults", "equal"), default="defaults",
                        help="defaults: each library's own (the main comparison); equal: the "
                             "same settings for ours and SB3")
    parser.add_argument("--algos", nargs="+", default=None)
    parser.add_argument("--envs", nargs="+", default=None)
    parser.add_argument("--libraries", nargs="+", choices=LIBRARIES, default=list(LIBRARIES),
                        help="the defaults protocol's libraries (the equal one: ours and SB3)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--eval-episodes", type=int, default=EVAL_EPISODES,
                        help="deterministic evaluation episodes per trained model")
    parser.add_argument("--one", nargs=5, metavar=("LIBRARY", "ALGO", "ENV", "SEED", "START"),
                        help=argparse.SUPPRESS)
    add_save_flag(parser)
    args = parser.parse_args()
    if args.seeds < 2 or args.eval_episodes < 1:
        parser.error(f"--seeds {args.seeds} --eval-episodes {args.eval_episodes}: the comparison "
                     "needs at least 2 seeds and 1 episode")
    if args.one:
        library, algo, env_id, seed, started = args.one
        run_one = one_with_defaults if args.protocol == "defaults" else one
        run_one(library, algo, env_id, int(seed), float(started), args.eval_episodes)
        return

    table = DEFAULT_CASES if args.protocol == "defaults" else CASES
    cases = [(a, e) for a, e in table if (args.algos is None or a in args.algos)
             and (args.envs is None or e in args.envs)]
    if not cases:
        parser.error(f"no {args.protocol} case has algo {args.algos} and env {args.envs}; the "
                     f"cases are {sorted(table)}")
    # Results of other cases from earlier runs are kept; the table is rewritten after each run
    # so a long benchmark that stops keeps what it measured.
    rows = [r for r in saved_results("rl_vs_sb3") or []
            if (r.get("protocol", "equal"), r["algo"], r["env"]) not in
            {(args.protocol, a, e) for a, e in cases}]
    for algo, env_id in cases:
        for seed in range(args.seeds):
            if args.protocol == "defaults":
                libraries = args.libraries
            else:
                libraries = ("ours", "sb3") if library_algo(algo) in IN_SB3 else ("ours",)
            for library in libraries:  # in turns: load changes hit all alike
                if (args.protocol == "equal" and library == "sb3"
                        and (same := sb3_run_of_this_benchmark(rows, algo, env_id, seed, cases))):
                    rows.append({**same, "algo": algo})
                    write(rows, args.save, echo=False)
                    continue
                command = [sys.executable, __file__, "--protocol", args.protocol, "--one",
                           library, algo, env_id, str(seed), repr(time.time()),
                           "--eval-episodes", str(args.eval_episodes)]
                done = subprocess.run(command, capture_output=True, text=True,
                                      env={**os.environ, "PYTHONWARNINGS": "ignore"})
                if done.returncode != 0:
                    raise RuntimeError(f"{library} {algo} {env_id} seed {seed} failed:\n"
                                       f"{done.stderr[-3000:]}")
                row = json.loads(done.stdout.strip().splitlines()[-1])
                rows.append(row)
                solved = row.get("solved")
                print(f"{library:4} {algo} {env_id} seed {seed}: {row['seconds']:.1f} s, "
                      f"return {row['return']:.1f}"
                      + (f", solved at {solved['steps']} steps, {solved['seconds']:.1f} s"
                         if solved else "") + (f", update {row['update_ms']} ms"
                                               if row.get("update_ms") else ""), flush=True)
                write(rows, args.save, echo=False)
    write(rows, args.save)


def sb3_run_of_this_benchmark(rows: list[dict], algo: str, env_id: str, seed: int,
                              cases: list[tuple[str, str]]) -> dict | None:
    """SB3's run of `seed` made earlier in this benchmark for a case with SB3's same settings
    ("sac bf16" differs from "sac" in our settings only: SB3 does not read matmul_precision),
    so a variant's row is against the same SB3 runs without training them again."""
    settings = {k: v for k, v in CASES[(algo, env_id)].items() if k != "matmul_precision"}
    for row in rows:
        other = (row["algo"], row["env"])
        if (row.get("protocol", "equal") == "equal" and row["library"] == "sb3"
                and row["seed"] == seed and other in cases
                and other[1] == env_id and other[0] != algo
                and {k: v for k, v in CASES[other].items() if k != "matmul_precision"} == settings):
            return row
    return None


def permutation_p(ours: list[float], theirs: list[float]) -> float:
    """Two-sided p-value of the gap between the two means if the library made no difference:
    the share of all ways to split the pooled per-seed values into groups of these sizes whose
    gap is at least the observed one (random splits when there are more than 200,000). With
    3 seeds each the smallest possible value is 0.1: such rows cannot show a difference."""
    pooled, size = ours + theirs, len(ours)
    total, observed = sum(pooled), abs(statistics.mean(ours) - statistics.mean(theirs))

    def gap(chosen: tuple[int, ...]) -> float:
        chosen_sum = sum(pooled[i] for i in chosen)
        return abs(chosen_sum / size - (total - chosen_sum) / (len(pooled) - size))

    if math.comb(len(pooled), size) <= 200_000:
        splits = list(itertools.combinations(range(len(pooled)), size))
        return sum(gap(split) >= observed * (1 - 1e-9) for split in splits) / len(splits)
    import numpy as np

    chosen = np.random.default_rng(0).random((100_000, len(pooled))).argsort(1)[:, :size]
    chosen_sums = np.asarray(pooled)[chosen].sum(1)
    gaps = np.abs(chosen_sums / size - (total - chosen_sums) / (len(pooled) - size))
    return float(np.mean(gaps >= observed * (1 - 1e-9)))


def write(rows: list[dict], save: bool, echo: bool = True) -> None:
    lines = ["# Ours vs Stable-Baselines3 2.9.2 and SBX 0.28", "",
             *defaults_table([r for r in rows if r.get("protocol") == "defaults"]), "",
             *equal_settings_table([r for r in rows if r.get("protocol", "equal") == "equal"])]
    publish("rl_vs_sb3", rows, "\n".join(lines), save, echo)


def defaults_table(rows: list[dict]) -> list[str]:
    """Each library with its own defaults: how often and how soon it solved the task, and its
    wall time and return at the budget."""
    lines = ["## Each library with its own defaults (what a user gets)", "",
             "Ours: its defaults and its tuned entry for the env (what `sim2real train` uses); "
             "SB3 and SBX: `ALGO(\"MlpPolicy\", env)`. Each library's runs taken in turns, "
             "seed by seed, each in a fresh process. Solved: the first evaluation (10 "
             "deterministic episodes, the same env seeds for all) at the threshold; time to "
             "solved: seconds from process start to that evaluation, evaluations excluded, "
             "median over the seeds that solved it. Wall: process start to the trained model at "
             "the budget, evaluations excluded, median over seeds. Return: the final model's, "
             "mean +- std over seeds (success rate for reach).", "",
             "| algo | env | steps | threshold | seeds | solved: ours / SB3 / SBX | "
             "time to solved s: ours / SB3 / SBX | wall s: ours / SB3 / SBX | "
             "wall ratio: ours/SB3, ours/SBX | return: ours / SB3 / SBX |",
             "|---|---|---:|---:|---:|---|---|---|---|---|"]
    order = {case: i for i, case in enumerate(DEFAULT_CASES)}
    for algo, env_id in sorted(dict.fromkeys((r["algo"], r["env"]) for r in rows),
                               key=lambda case: order.get(case, len(order))):
        group = {lib: [r for r in rows if (r["algo"], r["env"], r["library"]) == (algo, env_id, lib)]
                 for lib in LIBRARIES}
        if group["ours"]:
            lines.append(defaults_row(algo, env_id, group))
    return lines


def defaults_row(algo: str, env_id: str, group: dict[str, list[dict]]) -> str:
    """One case of the defaults table from each library's runs (`group`, by library)."""
    present = [lib for lib in LIBRARIES if group[lib]]
    wall = {lib: statistics.median(r["seconds"] for r in group[lib]) for lib in present}

    def per_library(text_of: Callable[[str], str]) -> str:
        return " / ".join(text_of(lib) if lib in present else "-" for lib in LIBRARIES)

    def solved(lib: str) -> str:
        return f"{sum(r['solved'] is not None for r in group[lib])}/{len(group[lib])}"

    def to_solved(lib: str) -> str:
        times = [r["solved"]["seconds"] for r in group[lib] if r["solved"] is not None]
        return f"{statistics.median(times):.1f}" if times else "never"

    def outcome(lib: str) -> str:
        if group[lib][0].get("success") is not None:
            values = [r["success"] for r in group[lib]]
            return f"{statistics.mean(values):.2f} +- {statistics.pstdev(values):.2f}"
        values = [r["return"] for r in group[lib]]
        return f"{statistics.mean(values):.0f} +- {statistics.pstdev(values):.0f}"

    ratios = ", ".join(f"{wall['ours'] / wall[lib]:.2f}x" if lib in present else "-"
                       for lib in ("sb3", "sbx"))
    first = group["ours"][0]
    return (f"| {algo} | {env_id} | {first['steps']:,} | {first['threshold']:g} | "
            f"{min(len(group[lib]) for lib in present)} | {per_library(solved)} | "
            f"{per_library(to_solved)} | {per_library(lambda lib: f'{wall[lib]:.1f}')} | "
            f"{ratios} | {per_library(outcome)} |")


def equal_settings_table(rows: list[dict]) -> list[str]:
    """Ours and SB3 with the same hyperparameters and budget."""
    lines = ["## Ours and SB3 with the same settings", "",
             f"Same env, hyperparameters, step budget and torch threads ({THREADS}); each "
             "library's runs taken in turns, seed by seed; wall time from "
             "process start to the trained model (imports and compilation included), median "
             "over seeds; update: mean time of one gradient update (sampling included) after "
             "the first, median over seeds; return: mean of the deterministic evaluation "
             "episodes of each seed (seeds x episodes column), then mean +- std over seeds; "
             "p: two-sided permutation test of the two libraries' per-seed returns (small: "
             "the returns differ by more than seed noise; with 3 seeds it cannot go below "
             "0.1).", "",
             "| algo | env | steps | seeds x episodes | ours: wall s | SB3: wall s | time ratio | "
             "ours: steps/s | SB3: steps/s | "
             "ours: update ms | SB3: update ms | update ratio | ours: return | SB3: return | p |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    order = {case: i for i, case in enumerate(CASES)}
    for algo, env_id in sorted(dict.fromkeys((r["algo"], r["env"]) for r in rows),
                               key=lambda case: order.get(case, len(order))):
        group = {lib: [r for r in rows if (r["algo"], r["env"], r["library"]) == (algo, env_id, lib)]
                 for lib in ("ours", "sb3")}
        if not group["ours"] or not group["sb3"]:
            continue
        seconds = {lib: statistics.median(r["seconds"] for r in g) for lib, g in group.items()}
        update = {lib: [r["update_ms"] for r in g if r.get("update_ms")]
                  for lib, g in group.items()}
        update = {lib: statistics.median(v) if v else None for lib, v in update.items()}
        seeds = min(len(g) for g in group.values())
        episodes = group["ours"][0].get("eval_episodes", EVAL_EPISODES)
        steps = group["ours"][0]["steps"]
        p = permutation_p([r["return"] for r in group["ours"]], [r["return"] for r in group["sb3"]])

        def spread(values: list[float]) -> str:
            return f"{statistics.mean(values):.1f} +- {statistics.pstdev(values):.1f}"

        def outcome(runs: list[dict]) -> str:
            """Return, and for a task with success the success rate, over seeds."""
            text = spread([r["return"] for r in runs])
            successes = [r["success"] for r in runs if r.get("success") is not None]
            return text + (f" (success {statistics.mean(successes):.2f})" if successes else "")

        if update["ours"] and update["sb3"]:
            updates = (f"{update['ours']:.2f} | {update['sb3']:.2f} | "
                       f"{update['ours'] / update['sb3']:.2f}x")
        else:
            updates = "- | - | -"
        lines.append(f"| {algo} | {env_id} | {steps:,} | {seeds} x {episodes} | "
                     f"{seconds['ours']:.1f} | {seconds['sb3']:.1f} | "
                     f"{seconds['ours'] / seconds['sb3']:.2f}x | "
                     f"{steps / seconds['ours']:.0f} | {steps / seconds['sb3']:.0f} | {updates} | "
                     f"{outcome(group['ours'])} | {outcome(group['sb3'])} | {p:.2f} |")
    alone = [case for case in dict.fromkeys((r["algo"], r["env"]) for r in rows)
             if library_algo(case[0]) not in IN_SB3]
    if alone:
        lines += ["", "Not in Stable-Baselines3, ours alone (same protocol):", "",
                  "| algo | env | steps | seeds x episodes | wall s | steps/s | return |",
                  "|---|---|---:|---:|---:|---:|---:|"]
    for algo, env_id in alone:
        runs = [r for r in rows if (r["algo"], r["env"], r["library"]) == (algo, env_id, "ours")]
        seconds = statistics.median(r["seconds"] for r in runs)
        returns = [r["return"] for r in runs]
        episodes = runs[0].get("eval_episodes", EVAL_EPISODES)
        lines.append(f"| {algo} | {env_id} | {runs[0]['steps']:,} | {len(runs)} x {episodes} | "
                     f"{seconds:.1f} | "
                     f"{runs[0]['steps'] / seconds:.0f} | {statistics.mean(returns):.1f} +- "
                     f"{statistics.pstdev(returns):.1f} |")
    return lines


if __name__ == "__main__":
    main()
