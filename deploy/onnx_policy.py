"""Run an exported policy with onnxruntime (CPU, one intra-op thread for the control loop).

Runs on the robot's computer: numpy and onnxruntime only.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnxruntime as ort

from deploy.contract import METADATA_KEY, Contract, ContractError


class OnnxPolicy:
    """An exported policy and its contract.

    Example:
        >>> policy = OnnxPolicy("runs/demo/policy.onnx")
        >>> action = policy(np.zeros(policy.contract.observation_size, np.float32))
        >>> # a pixel policy takes the env's Dict observation:
        >>> action = pixel_policy({"pixels": image_uint8_hw3, "state": state})
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
        expected = self.contract.input_names
        if [i.name for i in inputs] != expected or [
            o.name for o in outputs
        ] != [self.contract.output_name]:
            raise ContractError(f"{path}: graph inputs/outputs {[i.name for i in inputs]} -> "
                                f"{[o.name for o in outputs]} do not match the contract's "
                                f"{', '.join(map(repr, expected))} -> "
                                f"{self.contract.output_name!r}")
        shapes = {i.name: i.shape for i in inputs}
        if self.contract.input_name in shapes and (
                shapes[self.contract.input_name][-1] != self.contract.observation_size):
            raise ContractError(f"{path}: the graph takes {shapes[self.contract.input_name][-1]} "
                                f"observations, the contract says {self.contract.observation_size}")
        self.image_shape = (tuple(self.contract.image_shape)
                            if self.contract.image_shape is not None else None)
        if self.image_shape is not None and tuple(shapes["pixels"][1:]) != self.image_shape:
            raise ContractError(f"{path}: the graph takes images {shapes['pixels'][1:]}, the "
                                f"contract says {list(self.image_shape)}")
        self.path = path
        self._input = self.contract.input_name
        self._one_input = np.zeros((1, self.contract.observation_size), np.float32)
        self._one_output = np.zeros((1, self.contract.action_size), np.float32)
        self._binding = self.session.io_binding()
        # The bound fast path's input shape; None (no shape) for a pixel policy.
        self._one_shape = (self.contract.observation_size,) if self.image_shape is None else None
        if self.image_shape is None:
            self._binding.bind_cpu_input(self._input, self._one_input)
            self._binding.bind_output(self.contract.output_name, "cpu", 0, np.float32,
                                      list(self._one_output.shape),
                                      self._one_output.ctypes.data)

    def __call__(self, observation: np.ndarray | Mapping[str, np.ndarray]) -> np.ndarray:
        """One observation (size,) -> one action (size,); a batch (n, size) -> (n, actions).
        A pixel policy takes the env's Dict {"pixels": uint8 (H, W, 3) or (n, H, W, 3),
        "state": (size,) or (n, size)}."""
        if type(observation) is np.ndarray and observation.shape == self._one_shape:
            # One observation, the control loop's case, tested first (about 2 us less): into
            # bound buffers, no allocations inside onnxruntime (about 3 us of a 10 us call).
            self._one_input[0] = observation
            self.session.run_with_iobinding(self._binding)
            return self._one_output[0].copy()
        if self.image_shape is not None:
            return self._call_with_pixels(observation)
        if isinstance(observation, Mapping):
            raise ValueError(f"{self.path} takes a flat observation of "
                             f"{self.contract.observation_size} numbers, not a Dict "
                             f"{list(observation)}")
        obs = np.asarray(observation, dtype=np.float32)
        single = obs.ndim == 1
        batch = obs[None] if single else obs
        actions = self.session.run(None, {self._input: batch})[0]
        return actions[0] if single else actions

    def _call_with_pixels(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        if not isinstance(observation, Mapping) or "pixels" not in observation:
            raise ValueError(f"{self.path} is a pixel policy: give it a Dict with 'pixels' "
                             f"{list(self.image_shape)} uint8"
                             + (" and 'state'" if self.contract.observation_size else ""))
        pixels = np.asarray(observation["pixels"])
        if pixels.dtype != np.uint8:
            # Refuse rather than cast: an image on 0-1 cast to uint8 would be black.
            raise ValueError(f"pixels must be uint8 on 0-255 as the camera gives them, got "
                             f"{pixels.dtype}; convert an image on 0-1 with "
                             "(image * 255).round().astype(np.uint8)")
        single = pixels.ndim == len(self.image_shape)
        feed = {"pixels": pixels[None] if single else pixels}
        if self.contract.observation_size:
            if "state" not in observation:
                raise ValueError(f"{self.path} also takes the state "
                                 f"({self.contract.observation_size} numbers) under 'state'")
            state = np.asarray(observation["state"], dtype=np.float32)
            feed[self._input] = state[None] if single else state
        actions = self.session.run(None, feed)[0]
        return actions[0] if single else actions
