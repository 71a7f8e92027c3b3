"""Run an exported policy with onnxruntime (CPU, one intra-op thread for the control loop).

Runs on the robot's computer: numpy and onnxruntime only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from deploy.contract import METADATA_KEY, Contract, ContractError


class OnnxPolicy:
    """An exported policy and its contract.

    Example:
        >>> policy = OnnxPolicy("runs/demo/policy.onnx")
        >>> action = policy(np.zeros(policy.contract.observation_size, np.float32))
    """

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"policy file {path} does not exist")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), options,
                                                providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own types for corrupt files
            raise ContractError(f"{path} is not a loadable ONNX model ({type(error).__name__}: "
                                f"{str(error).splitlines()[0][:200]}); export it again") from None
        metadata = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in metadata:
            raise ContractError(f"{path} has no sim2real contract in its metadata; export it "
                                "with `sim2real export RUN_DIR`")
        self.contract = Contract.from_json(metadata[METADATA_KEY])
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if [i.name for i in inputs] != [self.contract.input_name] or [
            o.name for o in outputs
        ] != [self.contract.output_name]:
            raise ContractError(f"{path}: graph inputs/outputs {[i.name for i in inputs]} -> "
                                f"{[o.name for o in outputs]} do not match the contract's "
                                f"{self.contract.input_name!r} -> {self.contract.output_name!r}")
        if inputs[0].shape[-1] != self.contract.observation_size:
            raise ContractError(f"{path}: the graph takes {inputs[0].shape[-1]} observations, the "
                                f"contract says {self.contract.observation_size}")
        self.path = path
        self._input = self.contract.input_name

    def __call__(self, observation: np.ndarray) -> np.ndarray:
        """One observation (size,) -> one action (size,); a batch (n, size) -> (n, actions)."""
        obs = np.asarray(observation, dtype=np.float32)
        single = obs.ndim == 1
        batch = obs[None] if single else obs
        actions = self.session.run(None, {self._input: batch})[0]
        return actions[0] if single else actions
