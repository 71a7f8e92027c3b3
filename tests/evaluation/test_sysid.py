"""System identification from a deploy log: a simulated robot with hidden physics is fitted back,
and bad logs are refused with clear errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import yaml
from telemetry_formats import legacy_copy

import deploy.loop
from deploy.loop import run
from deploy.onnx_policy import OnnxPolicy
from deploy.supervisor import SafetyConfig
from deploy.telemetry import TelemetryLog, read_log
from evaluation.sysid import Fit, Replay, fit_log, identify, report, suggested_config
from hardware.sim_robot import SimRobot
from randomization.config import RandomizationConfig
from randomization.terms import apply_terms, make_term
from sim.so_arm import SO_ARM


class Sweeps:
    """A scripted policy with the contract of a real one: slow sweeps of every action, enough
    motion to tell a heavier arm from a weaker servo. Its actions step from the measured
    position: from the last goal, the sweeps would add up and pin the arm at its limits."""

    def __init__(self, real: OnnxPolicy) -> None:
        from sim.reach import ReachConfig, ReachTask

        task = ReachTask(SO_ARM, ReachConfig(command_history=0, action_base="measured"))
        self.contract = dataclasses.replace(real.contract, task=task.contract(),
                                            observation_size=task.observation_size)
        self.path, self.calls = real.path, 0

    def __call__(self, observation: np.ndarray) -> np.ndarray:
        self.calls += 1
        phases = np.arange(self.contract.action_size)
        return np.sin(0.07 * self.calls + phases * 2.1).astype(np.float32)


def hidden_physics_log(tiny_policy: Path, path: Path, mass: float, kp: float,
                       monkeypatch) -> TelemetryLog:
    """A deploy log of the simulated arm with its mass and servo gain secretly changed."""
    monkeypatch.setattr(deploy.loop, "sleep_until", lambda deadline: None)  # lockstep, fast
    config = RandomizationConfig.from_dict({"mass": {"low": mass, "high": mass},
                                            "actuator_kp": {"low": kp, "high": kp}})
    with SimRobot(SO_ARM, realtime=False) as robot:
        terms = [make_term(robot.sim.model, name, spec) for name, spec in config.terms.items()]
        apply_terms(robot.sim.model, terms, {t.name: np.full(len(t.names), v)
                                             for t, v in zip(terms, (mass, kp), strict=True)})
        # Lockstep: 4 episodes of the reach task (up to 100 cycles each, with a pause between).
        run(Sweeps(OnnxPolicy(tiny_policy)), robot, seconds=1e9, max_episodes=4, log=path,
            safety=SafetyConfig(soft_start_seconds=0.2))
    return read_log(path)


@pytest.mark.slow
def test_the_fit_is_the_same_from_mcap_and_the_earlier_format(tiny_policy, tmp_path,
                                                              monkeypatch) -> None:
    log = hidden_physics_log(tiny_policy, tmp_path / "hidden.mcap", 1.3, 0.8, monkeypatch)
    legacy_copy(log, tmp_path / "hidden.s2rlog")
    earlier = read_log(tmp_path / "hidden.s2rlog")
    assert earlier.cycles == log.cycles and earlier.events == log.events
    now, before = fit_log(log, max_delay=1), fit_log(earlier, max_delay=1)
    assert now.values == before.values and now.delay_steps == before.delay_steps
    assert now.rms_error == before.rms_error


@pytest.mark.slow
def test_hidden_mass_and_servo_gain_are_recovered(tiny_policy, tmp_path, monkeypatch) -> None:
    log = hidden_physics_log(tiny_policy, tmp_path / "hidden.mcap", 1.5, 0.7, monkeypatch)
    fit = fit_log(log, max_delay=2)
    assert fit.delay_steps == 0
    assert fit.values["mass"] == pytest.approx(1.5, rel=0.1)
    assert fit.values["actuator_kp"] == pytest.approx(0.7, rel=0.1)
    assert fit.rms_error < 0.7 * fit.nominal_rms_error
    summary = report(log, fit)
    # The tiny policy trained under the default preset: mass 0.8..1.25 (arm), kp 0.5..1.2.
    assert summary["parameters"]["mass"]["verdict"].startswith("OUTSIDE")
    assert summary["parameters"]["actuator_kp"]["verdict"].startswith("inside")
    config = suggested_config(fit)
    assert config["mass"]["low"] < fit.values["mass"] < config["mass"]["high"]
    RandomizationConfig.from_dict(yaml.safe_load(yaml.safe_dump(config)))  # a valid config


def test_a_log_too_short_to_fit_is_refused(tiny_policy, tmp_path, monkeypatch) -> None:
    log = hidden_physics_log(tiny_policy, tmp_path / "arm.mcap", 1.0, 1.0, monkeypatch)
    short = dataclasses.replace(log, fields={k: v[:60] for k, v in log.fields.items()})
    with pytest.raises(ValueError, match=r"fitting needs at least 100 \(2 s at this robot's "
                                         r"rate\)"):
        fit_log(short)


def test_a_log_of_another_robot_is_refused(tiny_policy, tmp_path, monkeypatch) -> None:
    log = hidden_physics_log(tiny_policy, tmp_path / "arm.mcap", 1.0, 1.0, monkeypatch)
    renamed = dataclasses.replace(log, header={**log.header, "joint_names": ["a", "b"]})
    with pytest.raises(ValueError, match="a log of another robot or version"):
        Replay(renamed, ("mass",))
    with pytest.raises(ValueError, match="is a log of 'so_arm', not of 'furuta'"):
        identify(tmp_path / "arm.mcap", tmp_path / "fit", robot="furuta")
    assert not (tmp_path / "fit").exists()  # refused before fitting or writing anything


@pytest.mark.parametrize(("latency", "delays", "latency_range"), [
    (0.001, [1, 2, 3], None),  # below half a physics step (5 ms): no latency term
    (0.007, [1, 2, 3], (0.0035, 0.0105)),
    (0.025, [2, 3, 4], (0.0025, 0.0075)),  # a slow link: more than a control period
])
def test_the_suggested_lag_is_the_measured_latency_plus_the_fitted_delay(
        latency: float, delays: list[int], latency_range: tuple[float, float] | None) -> None:
    """action_delay delays the command made from the reading the policy saw: the env's lag from
    a reading to its command acting is action_delay steps + action_latency; the robot's is the
    latency from the reading to the command's arrival plus the delay fitted after it."""
    fit = Fit(values={"mass": 1.2}, delay_steps=2, standard_errors={"mass": 0.01},
              rms_error=0.001, nominal_rms_error=0.002, cycles=500, latency=latency,
              control_period=0.02, timestep=0.005)
    config = suggested_config(fit)
    assert config["action_delay"] == {"distribution": "choice", "choices": delays}
    if latency_range is None:
        assert "action_latency" not in config
    else:
        low, high = latency_range
        assert config["action_latency"] == {"low": pytest.approx(low), "high": pytest.approx(high)}
    RandomizationConfig.from_dict(yaml.safe_load(yaml.safe_dump(config)))  # a valid config


class VoltageSweeps:
    """A scripted pendulum policy with a real one's contract: two voltage sweeps at once that
    swing the pendulum around; between episodes the deploy engages by hand."""

    def __init__(self, real: OnnxPolicy) -> None:
        self.contract, self.path, self.calls = real.contract, real.path, 0

    def __call__(self, observation: np.ndarray) -> np.ndarray:
        self.calls += 1
        t = self.calls
        return np.array([np.clip(np.sin(0.05 * t) + 0.6 * np.sin(0.37 * t), -1, 1)], np.float32)


@pytest.mark.slow
def test_a_pendulums_mass_and_motor_are_recovered_from_a_log_with_hand_held_phases(
        swingup_policy, tmp_path, monkeypatch) -> None:
    """The deploy holds a pendulum at 0 V by hand between episodes (engage): forces the replay
    cannot know. Those windows are left out, and the pendulum's own link is compared, so its
    mass and the motor's resistance come back (measured: 1.299 and 1.601 of 1.3 and 1.6 on an
    emulated rig; with the hand's windows in, the fit ran to its bounds, 0.3 and 5.0)."""
    from hardware.backends import SIM_CATCH_SECONDS, episode_starts
    from hardware.emulation import Hand, apply_pinned_physics
    from sim.furuta import FURUTA

    monkeypatch.setattr(deploy.loop, "sleep_until", lambda deadline: None)  # lockstep, fast
    policy = VoltageSweeps(OnnxPolicy(swingup_policy))  # whole episodes: a swing-up's run on
    starts = episode_starts("pendulum", policy.contract.task["config"], FURUTA, 0)
    hand = Hand(starts().pose, SIM_CATCH_SECONDS, next_pose=lambda: starts().pose)
    hidden = {"mass": 1.3, "motor_resistance": 1.6}
    config = RandomizationConfig.from_dict({k: {"low": v, "high": v} for k, v in hidden.items()})
    with SimRobot(FURUTA, realtime=False, hand=hand) as robot:
        apply_pinned_physics(robot.sim.model, config, FURUTA)
        report_ = run(policy, robot, seconds=1e9, max_episodes=3, log=tmp_path / "rig.mcap")
    assert report_.engage_waits >= 2  # hand-held phases are in the log
    fit = fit_log(read_log(tmp_path / "rig.mcap"), max_delay=1)
    assert fit.values["mass"] == pytest.approx(1.3, rel=0.05)
    assert fit.values["motor_resistance"] == pytest.approx(1.6, rel=0.05)
    assert fit.rms_error < 0.5 * fit.nominal_rms_error
