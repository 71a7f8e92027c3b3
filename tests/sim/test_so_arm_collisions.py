"""The arm's links collide with each other, as the real arm's do: folding the arm onto itself
stops at contact, short of where the same command goes with contacts off; and the arm at rest
(its default pose, poses that don't fold) touches nothing of itself."""

import mujoco
import numpy as np
import pytest

from sim.physics import RobotSimulation
from sim.so_arm import ARM_CHAIN, SO_ARM

ARM_BODIES = ("base", "shoulder", "upper_arm", "lower_arm", "wrist", "gripper", "jaw")


def arm_contacts(model: mujoco.MjModel, data: mujoco.MjData) -> list[tuple[str, str]]:
    """Pairs of arm geoms in contact (the floor and table objects left out)."""
    arm = {model.body(name).id for name in ARM_BODIES}
    return [(model.geom(c.geom1).name, model.geom(c.geom2).name) for c in data.contact[:data.ncon]
            if model.geom_bodyid[c.geom1] in arm and model.geom_bodyid[c.geom2] in arm]


# Folds: a start pose and the joint commanded to its upper limit (the comments say where contact
# stops it, measured, and what it meets). The forearm folding down meets the shoulder bracket (MuJoCo,
# like the published model, lets a child body pass through its parent: the forearm and the
# upper arm never touch); in the folded rest pose the wrist folding down meets it too.
FOLDS = {
    # The upper arm leaning 0.3 rad forward, the wrist bent back up so the gripper clears the
    # floor: the forearm's wrist servo meets the bracket at elbow 1.50 rad.
    "forearm onto the shoulder": (np.array([0.0, 0.3, 0.0, -1.6, 0.0, 0.0]), "elbow_flex"),
    # The upper arm back, the forearm folded over it: the gripper meets the bracket at 1.21 rad.
    "gripper onto the shoulder": (np.array([0.0, -1.5, 1.4, 0.0, 0.0, 0.0]), "wrist_flex"),
}


def fold(start: np.ndarray, joint: str, contacts: bool
         ) -> tuple[float, list[tuple[str, str]], list[str]]:
    """Command `joint` from `start` to its upper limit: its angle after 1.5 s, the arm's
    self-contacts then, and every contact's geoms."""
    sim = RobotSimulation(SO_ARM)
    if not contacts:
        sim.model.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_CONTACT
    sim.reset(start)
    index = SO_ARM.joint_index(joint)
    command = start.copy()
    command[index] = SO_ARM.command_high[index]
    sim.set_command(command)
    for _ in range(75):
        sim.step()
    touching = [name for c in sim.data.contact[:sim.data.ncon]
                for name in (sim.model.geom(c.geom1).name, sim.model.geom(c.geom2).name)]
    return sim.state().positions[index], arm_contacts(sim.model, sim.data), touching


@pytest.mark.parametrize("case", list(FOLDS))
def test_folding_the_arm_is_stopped_by_contact(case: str) -> None:
    start, joint = FOLDS[case]
    blocked, contacts, touching = fold(start, joint, contacts=True)
    free, _, _ = fold(start, joint, contacts=False)
    limit = SO_ARM.command_high[SO_ARM.joint_index(joint)]
    assert contacts and all("shoulder" in pair for pair in contacts), contacts
    assert "floor" not in touching  # the arm itself stops it
    assert blocked < limit - 0.1
    assert free > limit - 0.03  # with contacts off the same command reaches the limit


def test_no_self_contact_at_rest() -> None:
    sim = RobotSimulation(SO_ARM)
    sim.reset(np.array(SO_ARM.default_pose))
    for _ in range(25):  # half a second holding the default pose
        sim.step()
        assert arm_contacts(sim.model, sim.data) == []
    # Random poses over the whole range of pan, roll and gripper that don't fold: every joint
    # and the tip at least 6 cm above the table and the tip reaching out 12 cm or more.
    rng = np.random.default_rng(0)
    low = np.array([SO_ARM.position_low[0], -0.5, -1.2, -1.2, SO_ARM.position_low[4],
                    SO_ARM.position_low[5]])
    high = np.array([SO_ARM.position_high[0], 1.2, 1.2, 1.2, SO_ARM.position_high[4],
                     SO_ARM.position_high[5]])
    poses = rng.uniform(low, high, (400, 6))
    frames = ARM_CHAIN.frame_positions(poses[:, :5])
    unfolded = poses[(frames[..., 2].min(axis=1) >= 0.06)
                     & (np.hypot(frames[:, -1, 0], frames[:, -1, 1]) >= 0.12)]
    assert len(unfolded) > 150
    model, data = sim.model, sim.data
    for pose in unfolded:
        data.qpos[sim.qpos_index] = pose
        mujoco.mj_forward(model, data)
        assert arm_contacts(model, data) == [], pose
