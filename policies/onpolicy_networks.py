"""The network PPO, A2C, TRPO and REINFORCE share: a Gaussian actor-critic on the normalized
observation (or, for pixel observations, on one CNN encoder's features), and its policy loaded
from a checkpoint."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from policies.core import DeterministicPolicy, RunningNormalizer, mlp
from policies.encoders import PixelPolicy, PixelStateEncoder
from policies.records import config_of_checkpoint

HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class ActorCritic(nn.Module):
    """A Gaussian policy with a state-free log-std and a value function, as MLPs on the
    normalized observation or, given `image_shape`, on the features of one PixelStateEncoder
    (`obs_size` is then the size of the state beside the image).

    One encoder, shared: the critic's value loss is the dense, low-variance signal that shapes
    the conv features (the policy gradient alone is noisy), as in the pixel PPO of the Atari and
    Procgen baselines; and the CNN, the costly part on a CPU, runs once per step, not twice.
    """

    def __init__(self, obs_size: int, action_size: int, hidden_sizes: tuple[int, ...],
                 initial_log_std: float, image_shape: tuple[int, int, int] | None = None,
                 image_features: int = 128) -> None:
        super().__init__()
        hidden = list(hidden_sizes)
        self.encoder: PixelStateEncoder | None = None
        if image_shape is None:
            self.normalizer = RunningNormalizer(obs_size)
            feature_size = obs_size
        else:
            self.encoder = PixelStateEncoder(tuple(image_shape), obs_size, image_features)
            self.normalizer = None
            feature_size = self.encoder.output_size
        self.actor = mlp([feature_size, *hidden, action_size], output_gain=0.01)
        self.critic = mlp([feature_size, *hidden, 1], output_gain=1.0)
        self.log_std = nn.Parameter(torch.full((action_size,), initial_log_std))

    @property
    def state_normalizer(self) -> RunningNormalizer:
        """The normalizer of the flat observation, or of the state beside the image."""
        return self.normalizer if self.encoder is None else self.encoder.normalizer

    def features(self, norm_obs: torch.Tensor, pixels: torch.Tensor | None) -> torch.Tensor:
        """What actor and critic see: the normalized observation, or the encoder's features."""
        return norm_obs if self.encoder is None else self.encoder.join(pixels, norm_obs)

    def log_prob(self, action: torch.Tensor, mean: torch.Tensor,
                 log_std: torch.Tensor | None = None) -> torch.Tensor:
        """Log-density of `action` under the diagonal Gaussian of mean `mean` (and `log_std`,
        by default the policy's), summed over action dimensions. Written out rather than through
        torch.distributions.Normal, whose construction and argument checks cost more than the
        maths on small batches."""
        log_std = self.log_std if log_std is None else log_std
        z = (action - mean) * torch.exp(-log_std)
        return -0.5 * z.square().sum(-1) - (log_std.sum() + HALF_LOG_2PI * z.shape[-1])

    def entropy(self, log_std: torch.Tensor | None = None) -> torch.Tensor:
        """Entropy of the Gaussian policy (the same for every state: the std is state-free)."""
        log_std = self.log_std if log_std is None else log_std
        return (log_std + 0.5 + HALF_LOG_2PI).sum()

    def forward(self, norm_obs: torch.Tensor,
                pixels: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(action mean, value) in one call, so that a loss can run the whole network with
        `torch.func.functional_call` on the parameters it differentiates."""
        features = self.features(norm_obs, pixels)
        return self.actor(features), self.value(features)

    def value(self, features: torch.Tensor) -> torch.Tensor:
        return self.critic(features).squeeze(-1)

    def deterministic_policy(self) -> DeterministicPolicy | PixelPolicy:
        if self.encoder is not None:
            return PixelPolicy(self.encoder, self.actor)
        return DeterministicPolicy(self.normalizer, self.actor, squash="clip")


def load_actor_critic(config_type: type, checkpoint: dict[str, Any]) -> DeterministicPolicy | PixelPolicy:
    """The deterministic policy (normalizer + actor mean, clipped; with the image encoder for
    pixel observations) of an on-policy checkpoint."""
    config = config_of_checkpoint(config_type, checkpoint)
    agent = ActorCritic(checkpoint["obs_size"], checkpoint["action_size"],
                        tuple(config.hidden_sizes), config.initial_log_std,
                        checkpoint.get("image_shape"), getattr(config, "image_features", 128))
    agent.load_state_dict(checkpoint["agent"])
    return agent.deterministic_policy().eval()
