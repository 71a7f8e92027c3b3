import mujoco
import numpy as np
import pytest

from sim.physics import ASSETS, RobotSimulation, load_model
from sim.so_arm import ARM_CHAIN, SO_ARM
from sim.spec import KinematicChain


def test_numpy_kinematics_match_mujoco() -> None:
    model = mujoco.MjModel.from_xml_path(str(ASSETS / SO_ARM.mjcf))
    data = mujoco.MjData(model)
    rng = np.random.default_rng(0)
    chain_qpos = [model.joint(j).qposadr[0] for j in ARM_CHAIN.joint_names]
    for _ in range(50):
        data.qpos[:] = rng.uniform(-2.0, 2.0, model.nq)
        mujoco.mj_kinematics(model, data)
        assert np.allclose(ARM_CHAIN.tip_position(data.qpos[chain_qpos]), data.site("tip").xpos,
                           atol=1e-9)


def test_spec_matches_model_limits_and_gains() -> None:
    model = mujoco.MjModel.from_xml_path(str(ASSETS / SO_ARM.mjcf))
    for i, name in enumerate(SO_ARM.joint_names):
        assert np.allclose(model.joint(name).range, [SO_ARM.position_low[i], SO_ARM.position_high[i]])
        assert np.allclose(model.actuator(name).ctrlrange,
                           [SO_ARM.command_low[i], SO_ARM.command_high[i]])
        # The XML agrees with the spec, so the model also loads right on its own (e.g. in the
        # MuJoCo viewer); RobotSimulation writes the spec's values anyway.
        servo = SO_ARM.actuators[i]
        assert model.actuator(name).gainprm[0] == pytest.approx(servo.kp)
        assert model.actuator(name).biasprm[2] == pytest.approx(-servo.kv)
        assert model.actuator(name).forcerange[1] == pytest.approx(servo.torque_limit)


def test_servo_tracks_a_position_target_at_servo_speed() -> None:
    sim = RobotSimulation(SO_ARM)
    sim.reset(np.zeros(6))
    target = np.array([0.8, -0.3, 0.4, 0.0, 0.0, 0.0])
    sim.set_command(target)
    peak_speed = 0.0
    for _ in range(50):  # one second
        sim.step()
        peak_speed = max(peak_speed, float(np.abs(sim.state().velocities).max()))
    assert np.allclose(sim.state().positions, target, atol=0.01)
    # Saturated torque against joint damping bounds speed near the STS3215's no-load 5.45 rad/s.
    assert 2.0 < peak_speed < 6.0


def test_malformed_model_and_missing_asset_name_file_and_line(tmp_path) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text("<mujoco>\n<worldbody>\n<body name='x'>\n<geom type='nonsense'/>\n"
                   "</body>\n</worldbody>\n</mujoco>")
    with pytest.raises(ValueError, match=r"bad.xml: .*nonsense.* line 4"):
        load_model(bad)
    asset = tmp_path / "asset.xml"
    asset.write_text("<mujoco>\n<asset>\n<mesh name='m' file='nowhere.stl'/>\n</asset>\n"
                     "<worldbody><geom type='mesh' mesh='m'/></worldbody>\n</mujoco>")
    with pytest.raises(ValueError, match=r"nowhere.stl.*asset.xml:3"):
        load_model(asset)
    with pytest.raises(FileNotFoundError, match="missing.xml"):
        load_model(tmp_path / "missing.xml")


def test_encoder_readings_and_goals_are_whole_counts() -> None:
    sim = RobotSimulation(SO_ARM)
    count = 2 * np.pi / 4096
    sim.reset(np.array([0.1234567, 0.0, 0.0, 0.0, 0.0, 0.0]))
    positions = sim.state().positions
    assert np.allclose(positions / count, np.round(positions / count), atol=1e-9)
    sim.set_command(np.array([0.5000001, 0.0, 0.0, 0.0, 0.0, 0.0]))
    assert sim.data.ctrl[0] == pytest.approx(round(0.5000001 / count) * count)


def test_servo_does_not_drive_inside_its_deadband() -> None:
    sim = RobotSimulation(SO_ARM)
    sim.reset(np.zeros(6))
    count = 2 * np.pi / 4096
    sim.set_command(np.array([count, 0.0, 0.0, 0.0, 0.0, 0.0]))  # 1 count: inside the deadband
    sim.step()
    assert sim.model.actuator_gainprm[sim.actuator_index[0], 0] == 0.0  # P off, D still on
    sim.set_command(np.array([5 * count, 0.0, 0.0, 0.0, 0.0, 0.0]))
    sim.step()
    assert sim.model.actuator_gainprm[sim.actuator_index[0], 0] == pytest.approx(SO_ARM.actuators[0].kp)
    for _ in range(20):
        sim.step()
    # It settles within the deadband of the goal, not exactly on it.
    assert abs(sim.state().positions[0] - 5 * count) <= count + 1e-12


def test_one_reading_kinematics_match_the_batch_path() -> None:
    """The control loop's plain-float forward kinematics against the vectorized one, on the arm
    and on a chain with oblique axes."""
    rng = np.random.default_rng(1)
    oblique = KinematicChain(joint_names=("a", "b", "c"),
                             offsets=((0.0, 0.0, 0.1), (0.1, 0.0, 0.0), (0.0, 0.2, 0.05)),
                             axes=((0.0, 0.0, 1.0), (0.6, 0.8, 0.0), (0.0, 0.28, 0.96)),
                             tip_offset=(0.05, -0.02, 0.01))
    for chain in (ARM_CHAIN, oblique):
        angles = rng.uniform(-3.0, 3.0, (200, len(chain.axes)))
        one_by_one = np.array([chain.tip_position(a) for a in angles])
        assert np.allclose(one_by_one, chain.frame_positions(angles)[:, -1], atol=1e-12, rtol=0)


def test_a_malformed_chain_is_refused() -> None:
    with pytest.raises(ValueError, match="joint 'b' has axis .* give a unit vector"):
        KinematicChain(("a", "b"), ((0, 0, 0), (0, 0, 0.1)), ((0, 0, 1), (0, 2, 0)), (0, 0, 0))
    with pytest.raises(ValueError, match="2 joint names, 1 offsets and 2 axes"):
        KinematicChain(("a", "b"), ((0, 0, 0),), ((0, 0, 1), (0, 1, 0)), (0, 0, 0))
