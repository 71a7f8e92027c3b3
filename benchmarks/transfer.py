"""Transfer to robots that are not the simulation. Policies trained with no randomization
(`none`), with the robot's `default` preset, and with the randomization `sim2real adapt` builds
from a deploy log of one panel robot (the arm's worn one, the pendulum's slow link), each
deployed through the device emulator (the hardware-in-the-loop path: `sim2real emulate ROBOT
--pty --physics FILE` in its own process, `sim2real deploy POLICY --robot serial:PTY` in another,
in real time) on a panel of robots drawn from the published spread of the real hardware.

The panels (figures and sources in ../shared/ROBOT_FACTS.md and the presets' comments):
- SO-101 arm: the servo gain LeRobot writes (P 16 of the factory 32: x0.5), printed links and
  servos lighter or heavier (x0.8-1.25), gearbox damping and friction, a few encoder counts of
  deadband, and the command-to-motion lag of a USB bus adapter: the FTDI latency timer's 16 ms,
  Feetech reads measured at 17-28 ms a cycle, and the 100 ms and more users report end to end,
  here up to 140 ms (7 steps at 50 Hz).
- Furuta pendulum (balance, engaged from rest: the emulator's hand holds it up until the first
  volt): motor resistance and torque constant (back-EMF), masses, damping and delay, within the
  ranges Muratore et al. randomize a Qube over (Rm x0.1-1.9, km x0.2-1.8, masses x0.3-1.7,
  damping x0-5 and more, 0-5 steps of delay).

Usage: python benchmarks/transfer.py [--episodes 30] [--jobs 4] [--only arm|pendulum]
Prints its table; `--save` writes benchmarks/results/transfer.{json,md}: success per robot and
policy, and the mean.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from processes import Emulator
from published import add_save_flag, publish, saved_results

ROOT = Path(__file__).resolve().parent.parent
WORK = Path("/tmp/s2r_transfer")
SEED = 3
"""Seed of the deployed goals: none of the seeds training or evaluation used."""


@dataclass(frozen=True)
class Panel:
    robot: str
    env_id: str
    steps: int
    pose: tuple[str, ...]
    """Where the emulator's hand holds the robot until the first command (empty: no hand)."""
    robots: dict[str, dict[str, float]]
    """Name -> the physics pinned on the emulated robot (terms of the randomization schema)."""
    adapt_on: str | None = None
    """The panel robot whose deploy log `sim2real adapt` fits (None: no adapted policy)."""
    max_delay: int = 8
    """The longest command delay (control steps) adapt's fit tries."""
    policies: dict[str, Path] = field(default_factory=dict)


ARM = Panel("so_arm", "sim2real/ArmReach-v0", 250_000, (), {
    "nominal": {},
    "LeRobot gains, FTDI 16 ms": {"actuator_kp": 0.5, "action_delay": 1},
    "heavy, stiff gearbox, 40 ms": {"mass": 1.25, "joint_damping": 1.6, "frictionloss": 2.0,
                                    "action_delay": 2},
    "light, loose, deadband": {"mass": 0.8, "joint_damping": 0.6, "frictionloss": 0.5,
                               "actuator_kp": 1.2, "deadband": 3},
    "USB hub, 100 ms": {"actuator_kp": 0.5, "action_delay": 5},
    "worn, 140 ms": {"actuator_kp": 0.5, "mass": 1.2, "frictionloss": 2.0, "torque_limit": 0.8,
                     "deadband": 3, "action_delay": 7},
}, adapt_on="worn, 140 ms")

PENDULUM = Panel("furuta", "sim2real/FurutaBalance-v0", 200_000, ("0", "0.05"), {
    "nominal": {},
    "hot winding, weak magnet": {"motor_resistance": 1.5, "back_emf_constant": 0.7},
    "strong motor": {"motor_resistance": 0.6, "back_emf_constant": 1.4},
    "heavy pendulum": {"mass": 1.5},
    "light pendulum": {"mass": 0.6},
    "sticky bearings": {"joint_damping": 5.0},
    "slow link, 16 ms": {"action_delay": 4},
    "worn, 12 ms": {"motor_resistance": 1.4, "back_emf_constant": 0.8, "mass": 1.3,
                    "joint_damping": 3.0, "action_delay": 3},
    # A home-built rig on a USB serial adapter left at the FTDI default latency timer (16 ms a
    # read), with a slower host: 40 ms from reading to volts.
    "USB serial at defaults, 40 ms": {"action_delay": 10},
}, adapt_on="USB serial at defaults, 40 ms", max_delay=14)


def sim2real(*args: str, out: Path | None = None) -> str:
    """Run `sim2real ARGS` from this checkout; its stdout (and stderr into `out`, if given)."""
    result = subprocess.run([sys.executable, "-m", "sim2real.cli", *args], cwd=ROOT, text=True,
                            capture_output=True)
    if out is not None:
        out.write_text(result.stdout + result.stderr)
    if result.returncode not in (0, 1, 3):  # 3: a deploy that safe-stopped is a result too
        raise RuntimeError(f"sim2real {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def physics_file(terms: dict[str, float], path: Path) -> Path:
    """A randomization YAML with every term pinned to one value, as `emulate --physics` takes."""
    path.write_text(yaml.safe_dump({term: {"low": value, "high": value}
                                    for term, value in terms.items()}))
    return path


def train(panel: Panel, randomization: str) -> Path:
    """PPO (tuned settings, seed 0) on the panel's task with `randomization`, exported."""
    out = WORK / panel.robot / randomization
    if not (out / "policy.onnx").is_file():
        sim2real("train", "--env", panel.env_id, "--steps", str(panel.steps), "--randomization",
                 randomization, "--out", str(out), "--overwrite", "--quiet")
        sim2real("export", str(out))
    return out / "policy.onnx"


def deploy(panel: Panel, policy: Path, robot: str, episodes: int, log: Path | None = None) -> dict:
    """Deploy `policy` over the emulated `robot` of `panel` for `episodes`; the report."""
    name = robot.replace(" ", "_").replace(",", "")
    physics = physics_file(panel.robots[robot], WORK / panel.robot / f"{name}.yaml")
    hand = ("--pose", *panel.pose, "--catch", "0.5") if panel.pose else ()
    with Emulator("--physics", str(physics), *hand, robot=panel.robot) as emulator:
        logging = ("--log", str(log)) if log else ("--no-log",)
        stdout = sim2real("deploy", str(policy), "--robot", f"serial:{emulator.port}",
                          "--episodes", str(episodes), "--seconds", str(episodes * 20), "--seed",
                          str(SEED), "--json", *logging)
    return json.loads(stdout.strip().splitlines()[-1])


def adapted(panel: Panel, episodes: int) -> Path:
    """`sim2real adapt` of the default policy's deploy log on the panel's `adapt_on` robot."""
    out = WORK / panel.robot / "adapted"
    if not (out / "run" / "policy.onnx").is_file():
        log = WORK / panel.robot / "to_adapt.mcap"
        deploy(panel, panel.policies["default"], panel.adapt_on, episodes, log)
        sim2real("adapt", str(log), "--out", str(out), "--max-delay", str(panel.max_delay),
                 "--quiet", out=WORK / f"{panel.robot}_adapt.txt")
    return out / "run" / "policy.onnx"


def run_panel(panel: Panel, episodes: int, jobs: int) -> dict:
    panel.policies["none"] = train(panel, "none")
    panel.policies["default"] = train(panel, "default")
    if panel.adapt_on:
        panel.policies["adapted"] = adapted(panel, episodes)
    cells = [(policy, robot) for robot in panel.robots for policy in panel.policies]
    with ThreadPoolExecutor(jobs) as pool:
        reports = list(pool.map(lambda cell: deploy(panel, panel.policies[cell[0]], cell[1],
                                                    episodes), cells))
    table = {robot: {} for robot in panel.robots}
    for (policy, robot), report in zip(cells, reports, strict=True):
        table[robot][policy] = {key: report[key] for key in (
            "episodes", "success_rate", "loop_rate_hz", "deadline_misses", "stopped")}
        print(f"{panel.robot} {robot:>30} {policy:>8}: success {report['success_rate']:.2f} "
              f"({report['episodes']} episodes, {report['loop_rate_hz']:.1f} Hz)", flush=True)
    means = {policy: round(sum(table[robot][policy]["success_rate"] for robot in table)
                           / len(table), 3) for policy in panel.policies}
    return {"env_id": panel.env_id, "steps": panel.steps, "robots": panel.robots,
            "adapted_on": panel.adapt_on, "success": table, "mean": means,
            "default_at_least_0.9_everywhere": all(
                row["default"]["success_rate"] >= 0.9 for row in table.values())}


def markdown(results: dict) -> str:
    lines = ["# Transfer: success on a panel of robots through the emulator", "",
             "`python benchmarks/transfer.py` (`--only arm|pendulum` reruns one panel). Each cell: "
             "one policy (PPO, tuned settings, seed 0) deployed over `sim2real emulate --physics` "
             f"in real time, goals of seed {SEED}. Goal: the default preset >= 0.90 on every "
             "robot.", ""]
    for robot, panel in results["panels"].items():
        policies = list(panel["mean"])
        lines += [f"## {robot}: {panel['env_id']}, {panel['steps']:,} training steps, "
                  f"{panel['episodes']} episodes a cell ({panel['date']})", "",
                  "| robot | physics | " + " | ".join(policies) + " |",
                  "|---|---|" + "---:|" * len(policies)]
        for name, row in panel["success"].items():
            physics = ", ".join(f"{term} {value:g}" for term, value in
                                panel["robots"][name].items()) or "as simulated"
            lines.append(f"| {name} | {physics} | " + " | ".join(
                f"{row[policy]['success_rate']:.2f}" for policy in policies) + " |")
        lines += ["| **mean** | | " + " | ".join(f"**{panel['mean'][p]:.2f}**" for p in policies)
                  + " |", ""]
        if panel["adapted_on"]:
            lines += [f"`adapted`: `sim2real adapt` of the default policy's log on "
                      f"\"{panel['adapted_on']}\".", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=4, help="deploys running at once")
    parser.add_argument("--only", choices=("arm", "pendulum"))
    add_save_flag(parser)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    for panel in (ARM, PENDULUM):
        (WORK / panel.robot).mkdir(exist_ok=True)
    panels = {"arm": ARM, "pendulum": PENDULUM}
    chosen = {name: panel for name, panel in panels.items() if args.only in (None, name)}
    # One results file: a run of one panel (--only) replaces that panel's figures, keeps the other's.
    results = (saved_results("transfer") if args.only else None) or {"panels": {}}
    for panel in chosen.values():
        results["panels"][panel.robot] = {**run_panel(panel, args.episodes, args.jobs),
                                          "episodes": args.episodes,
                                          "date": time.strftime("%Y-%m-%d")}
    publish("transfer", results, markdown(results), args.save)

if __name__ == "__main__":
    main()
