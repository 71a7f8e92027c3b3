"""The deployment contract: how to feed an exported policy and what its outputs mean.

It travels as JSON in the ONNX file's metadata (key `sim2real_contract`). The runtime reads it
with onnxruntime alone and refuses to move a robot that disagrees with it. Needs neither numpy nor torch.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, dataclass, field
from typing import Any

from sim.spec import RobotSpec, robot_differences

METADATA_KEY = "sim2real_contract"
FORMAT = "sim2real-contract/1"


class ContractError(ValueError):
    """The policy file and the robot (or the runtime) disagree; nothing may move."""


@dataclass
class Contract:
    robot: dict[str, Any] | None
    """RobotSpec.summary() of the robot trained on; None for envs that are not one of ours."""
    task: dict[str, Any] | None
    """The task's name, config, observation layout and action meaning."""
    observation_size: int
    action_size: int
    env_id: str
    algorithm: str
    steps: int
    randomization: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    weights_sha256: str = ""
    image_shape: list[int] | None = None
    """(height, width, channels) of the uint8 camera image a pixel policy takes as graph input
    `pixels` (beside `obs`, the state, unless observation_size is 0); None: the state alone."""
    camera: dict[str, Any] | None = None
    """A pixel policy's camera (sim/pixels.py `camera_contract`): the image, crop, pose, field of
    view and their randomization, the least frame rate and the oldest frame it takes. None for
    a state policy, and for pixel policies exported before cameras were recorded."""
    input_name: str = "obs"
    output_name: str = "actions"
    format: str = FORMAT

    def to_json(self) -> str:
        # A state-only contract reads exactly as it did before pixel policies existed.
        fields = {k: v for k, v in self.__dict__.items()
                  if k not in ("image_shape", "camera") or v is not None}
        return json.dumps(fields, sort_keys=True)

    @property
    def input_names(self) -> list[str]:
        """The graph's inputs in order: `pixels` first for a pixel policy, then the state."""
        if self.image_shape is None:
            return [self.input_name]
        return ["pixels"] + ([self.input_name] if self.observation_size else [])

    @classmethod
    def from_json(cls, text: str) -> Contract:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as error:
            raise ContractError(f"the policy's contract is not valid JSON: {error}") from None
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            found = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
            raise ContractError(f"the policy's contract has format {found!r}; this runtime reads "
                                f"{FORMAT!r}. Export the policy again with this version")
        fields = cls.__dataclass_fields__
        missing = [name for name, f in fields.items() if name not in raw
                   and f.default is MISSING and f.default_factory is MISSING]
        if missing:
            raise ContractError(f"the policy's contract lacks fields {missing}; export it again")
        return cls(**{k: v for k, v in raw.items() if k in fields})

    @property
    def control_period(self) -> float:
        if self.robot is None:
            raise ContractError(f"this policy was trained on {self.env_id!r}, which is not one of "
                                "our robots: it has no robot to deploy to")
        return float(self.robot["control_period"])

    def mismatches(self, robot: RobotSpec) -> list[str]:
        """Every way the connected robot differs from the one the policy was trained for."""
        if self.robot is None:
            return [f"the policy was trained on {self.env_id!r}, not on a robot of ours; "
                    f"it cannot drive {robot.name!r}"]
        # A contract that states no convention predates them (for the arm: the geometry before it
        # followed the published SO-101); it cannot match a robot that states one.
        trained = {"convention": "none stated (exported before conventions were recorded: "
                                 "retrain and export again)"} | self.robot
        return robot_differences(robot, trained, "connected robot has", "policy was trained for")

    def check(self, robot: RobotSpec) -> None:
        problems = self.mismatches(robot)
        if problems:
            raise ContractError("policy and robot disagree, refusing to move: "
                                + "; ".join(problems))
