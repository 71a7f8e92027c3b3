"""Pixel observations for the policies: a small CNN for camera images, the encoder that joins its
features with the normalized state vector, and the exportable pixel policy built on them.

An observation is either a flat vector or a Dict {"pixels": uint8 (H, W, 3), "state": (n,)}
(sim.pixels.PixelObservation); `observation_layout` says which, and refuses anything else.
Images enter every module as the camera gives them (uint8, channels last) and are scaled to
[0, 1] inside, so the exported ONNX graph takes the raw image too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from policies.core import RunningNormalizer

# (out channels, kernel, stride, padding) per conv layer: the Nature-DQN stack (Mnih et al. 2015),
# except that the last layer is padded so that images down to MIN_IMAGE_SIZE still leave a
# feature map (unpadded, it needs 36x36). At 84x84 the map is 9x9x64.
CONV_LAYERS = ((32, 8, 4, 0), (64, 4, 2, 0), (64, 3, 1, 1))
MIN_IMAGE_SIZE = 20
ObservationLayout = tuple[int, tuple[int, int, int] | None]
"""(state size, image shape (H, W, C) or None for a flat observation)."""


def conv_output_size(size: int) -> int:
    """Height (or width) of the feature map the conv stack makes of an image `size` pixels high."""
    for _, kernel, stride, padding in CONV_LAYERS:
        size = (size + 2 * padding - kernel) // stride + 1
    return size


def observation_layout(space: gym.Space, algo: str) -> ObservationLayout:
    """What an observation space holds, checked: a flat Box (n,), or a Dict with "pixels"
    (H, W, C) uint8 and optionally "state" (n,). Errors name the space and what would work."""
    supported = (f"{algo} takes a flat Box observation (n,) or a Dict with 'pixels' (H, W, 3) "
                 "uint8 and optionally 'state' (n,)")
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        return int(space.shape[0]), None
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 3:
        raise ValueError(f"{supported}; this env gives a bare image {space}. Keep the state "
                         "beside it (sim.pixels.PixelObservation(env, with_state=True)) or put "
                         "it in a Dict under 'pixels'")
    if not isinstance(space, gym.spaces.Dict):
        raise ValueError(f"{supported}; this env has {space}")
    if "pixels" not in space.spaces or set(space.spaces) - {"pixels", "state"}:
        raise ValueError(f"{supported}; this env's Dict has keys {list(space.spaces)}. Flatten "
                         "a Dict of vectors with gymnasium.wrappers.FlattenObservation")
    pixels, state = space["pixels"], space.spaces.get("state")
    if not (isinstance(pixels, gym.spaces.Box) and len(pixels.shape) == 3
            and pixels.dtype == np.uint8):
        raise ValueError(f"{supported}; this env's 'pixels' is {pixels}: give uint8 images, "
                         "channels last, as sim.pixels.PixelObservation does")
    height, width, channels = (int(n) for n in pixels.shape)
    if min(height, width) < MIN_IMAGE_SIZE:
        raise ValueError(f"images of {height}x{width} are too small for the CNN encoder; render "
                         f"at least {MIN_IMAGE_SIZE}x{MIN_IMAGE_SIZE} (e.g. make_env(..., "
                         f"pixels={MIN_IMAGE_SIZE}))")
    if state is not None and not (isinstance(state, gym.spaces.Box) and len(state.shape) == 1):
        raise ValueError(f"{supported}; this env's 'state' is {state}, not a flat vector")
    return (int(state.shape[0]) if state is not None else 0), (height, width, channels)


def policy_inputs(observation: np.ndarray | Mapping[str, np.ndarray]) -> tuple[torch.Tensor, ...]:
    """The arguments of an exported policy for a batch of env observations: (obs,) for a flat
    one, (pixels,) or (pixels, obs) for a Dict one; pixels stay uint8."""
    if not isinstance(observation, Mapping):
        return (torch.as_tensor(np.asarray(observation), dtype=torch.float32),)
    pixels = torch.as_tensor(np.asarray(observation["pixels"]))
    if "state" not in observation:
        return (pixels,)
    return pixels, torch.as_tensor(np.asarray(observation["state"]), dtype=torch.float32)


def stack_observations(observations: list[Any]) -> np.ndarray | dict[str, np.ndarray]:
    """One batch of single observations (e.g. info["final_obs"]), flat or Dict."""
    if isinstance(observations[0], Mapping):
        return {key: np.stack([o[key] for o in observations]) for key in observations[0]}
    return np.stack(observations)


class ImageEncoder(nn.Module):
    """A batch of images (N, H, W, C), uint8 (or float on 0-255) as cameras give them ->
    (N, features) in [-1, 1].

    Example:
        >>> encoder = ImageEncoder((84, 84, 3), features=128)
        >>> encoder(torch.zeros(4, 84, 84, 3, dtype=torch.uint8)).shape
        torch.Size([4, 128])
    """

    def __init__(self, image_shape: tuple[int, int, int], features: int = 128) -> None:
        super().__init__()
        height, width, channels = image_shape
        if min(height, width) < MIN_IMAGE_SIZE or channels < 1:
            raise ValueError(f"image shape {tuple(image_shape)} is too small for the CNN encoder;"
                             f" it needs (H, W, C) of at least {MIN_IMAGE_SIZE}x{MIN_IMAGE_SIZE}")
        if features < 1:
            raise ValueError(f"features must be >= 1, got {features}")
        self.image_shape = (int(height), int(width), int(channels))
        layers: list[nn.Module] = []
        for out_channels, kernel, stride, padding in CONV_LAYERS:
            conv = nn.Conv2d(channels, out_channels, kernel, stride, padding)
            nn.init.orthogonal_(conv.weight, np.sqrt(2))
            nn.init.zeros_(conv.bias)
            layers += [conv, nn.ReLU()]
            channels = out_channels
        self.convs = nn.Sequential(*layers, nn.Flatten())
        flat = channels * conv_output_size(height) * conv_output_size(width)
        linear = nn.Linear(flat, features)
        nn.init.orthogonal_(linear.weight, np.sqrt(2))
        nn.init.zeros_(linear.bias)
        # LayerNorm + tanh (as in DrQ) keeps the features on the scale of the normalized state
        # they are joined with, whatever the image statistics.
        self.head = nn.Sequential(linear, nn.LayerNorm(features), nn.Tanh())
        self.features = features

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        # (Not while tracing for ONNX export: there shapes are tensors and the check a warning.)
        if not torch.jit.is_tracing() and (pixels.dim() != 4
                                           or tuple(pixels.shape[1:]) != self.image_shape):
            raise ValueError(f"expected a batch of images (N, {', '.join(map(str, self.image_shape))})"
                             f", got shape {tuple(pixels.shape)}; add a batch axis with "
                             "pixels[None] for one image")
        x = pixels.permute(0, 3, 1, 2).float() / 255.0
        return self.head(self.convs(x))


class PixelStateEncoder(nn.Module):
    """{"pixels", "state"} -> one feature vector: the CNN's features of the image, then the
    state through its running normalizer (a state of size 0: the image alone).

    Example:
        >>> encoder = PixelStateEncoder((84, 84, 3), state_size=21)
        >>> encoder(torch.zeros(2, 84, 84, 3, dtype=torch.uint8), torch.zeros(2, 21)).shape
        torch.Size([2, 149])
    """

    def __init__(self, image_shape: tuple[int, int, int], state_size: int,
                 features: int = 128) -> None:
        super().__init__()
        if state_size < 0:
            raise ValueError(f"state_size must be >= 0, got {state_size}")
        self.image = ImageEncoder(image_shape, features)
        self.normalizer = RunningNormalizer(state_size)
        self.state_size = state_size
        self.output_size = features + state_size

    def forward(self, pixels: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        """Raw observation (as the env gives it) -> features."""
        if self.state_size == 0:
            return self.image(pixels)
        if state is None:
            raise ValueError(f"this encoder also takes a state of size {self.state_size}")
        return self.join(pixels, self.normalizer(state))

    def join(self, pixels: torch.Tensor, norm_state: torch.Tensor) -> torch.Tensor:
        """Pixels and an already normalized state (as a PPO rollout keeps it) -> features."""
        image = self.image(pixels)
        return image if self.state_size == 0 else torch.cat([image, norm_state], dim=-1)


class PixelPolicy(nn.Module):
    """What gets exported for pixel observations: (pixels uint8, raw state) -> encoder ->
    actor -> action clipped to [-1, 1]. ONNX inputs `pixels` and `obs`, output `actions`."""

    def __init__(self, encoder: PixelStateEncoder, actor: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.actor = actor

    def forward(self, pixels: torch.Tensor, obs: torch.Tensor | None = None) -> torch.Tensor:
        return torch.clamp(self.actor(self.encoder(pixels, obs)), -1.0, 1.0)
