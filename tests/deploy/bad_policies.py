"""Broken policies as ONNX files, for the supervisor's escalation tests and for measuring with
`sim2real deploy`: each keeps a real exported policy's contract (so the loop accepts it) and
replaces its graph with a few nodes.

    .venv/bin/python tests/deploy/bad_policies.py nan runs/reach/policy.onnx /tmp/nan.onnx
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from deploy.contract import METADATA_KEY, Contract
from sim.catalog import robot_by_name

KINDS = ("nan", "saturating", "bang_bang")


def bad_policy(kind: str, real: Path, out: Path, size: float = 1e3,
               signs: tuple[float, ...] = (1.0, 1.0, -1.0)) -> Path:
    """Write to `out` a policy with `real`'s contract (any reach policy's) that gives

    - "nan": NaN for every action;
    - "saturating": `size` * `signs` (one per action), always: the task clips it to its largest
      step, so every joint is driven at full speed into a hard limit and held there. The
      default drives the SO arm's reach joints (pan, lift, elbow) to +, +, - without the arm
      folding onto itself (+, +, + folds it against the floor, short of every limit);
    - "bang_bang": -`size` * sign(position - 0.05) for each actuated joint: it drives every joint
      at full action towards a point just off the default pose and reverses the moment the joint
      crosses it. The joint's own lag makes it cross every cycle or two: full-scale reversals at
      up to half the control rate, for as long as it runs.
    """
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r}: one of {KINDS}")
    model = onnx.load(str(real))
    metadata = {p.key: p.value for p in model.metadata_props}
    contract = Contract.from_json(metadata[METADATA_KEY])
    spec = robot_by_name(contract.robot["name"])
    joints = [spec.joint_names.index(name) for name in contract.task["config"]["actuated_joints"]]
    actions = contract.action_size
    if len(joints) != actions:
        raise ValueError(f"{real}: {actions} actions for {len(joints)} actuated joints")
    obs = helper.make_tensor_value_info(contract.input_name, TensorProto.FLOAT,
                                        ["batch", contract.observation_size])
    out_info = helper.make_tensor_value_info(contract.output_name, TensorProto.FLOAT,
                                             ["batch", actions])
    # The joint positions come first in the observation; every graph reads them, so that the
    # output has the batch's shape.
    constants = {"joints": np.array(joints, np.int64)}
    nodes = [helper.make_node("Gather", [contract.input_name, "joints"], ["positions"], axis=1)]
    if kind == "bang_bang":
        constants |= {"pivot": np.array(0.05, np.float32), "size": np.array(-size, np.float32)}
        nodes += [helper.make_node("Sub", ["positions", "pivot"], ["offset"]),
                  helper.make_node("Sign", ["offset"], ["side"]),
                  helper.make_node("Mul", ["side", "size"], [contract.output_name])]
    else:
        constants["zero"] = np.array(0.0, np.float32)
        constants["value"] = (np.array(np.nan, np.float32) if kind == "nan"
                              else size * np.resize(np.array(signs, np.float32), actions))
        nodes += [helper.make_node("Mul", ["positions", "zero"], ["zeros"]),
                  helper.make_node("Add", ["zeros", "value"], [contract.output_name])]
    graph = helper.make_graph(nodes, f"{kind}_policy", [obs], [out_info],
                              [numpy_helper.from_array(v, k) for k, v in constants.items()])
    bad = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    bad.ir_version = model.ir_version
    helper.set_model_props(bad, metadata)
    onnx.save(bad, str(out))
    return out


if __name__ == "__main__":
    print(bad_policy(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])))
