"""A learned rollout policy ``pi(action | obs)``: behaviour cloning of the agent's own choices.

AlphaGo evaluated search leaves with a fast rollout policy trained to imitate strong moves
rather than with uniformly random moves. :class:`LearnedPolicy` does the same for MCTS over a
learned model: ``mbrl run --policy learned`` fits it after every episode to the actions the agent
took (for the MPC episodes, the search's own choices) and MCTS samples its leaf rollouts from it.
Random rollouts of a balancing task such as CartPole fall over within a few dozen steps
whatever state they start from, so they say little about the leaf; rollouts that keep
balancing stay among the states the learned value was fitted on and end where that value is
accurate. docs/mcts.md has the measurements.

Discrete spaces get a categorical policy over the one-hot slots. Box spaces get a Gaussian
whose mean is squashed by ``tanh`` into the space's bounds and whose spread (a learned fraction
of each bound's half-width, the same in every state) is clipped there. The likelihood is that
of the unclipped Gaussian, so actions on the bounds (bang-bang control) do not dominate the
fit the way they would through an inverse ``tanh``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mbrl.data.buffer import RowBatch, TransitionBatch, TransitionBuffer
from mbrl.models.checkpoint import register_checkpointable
from mbrl.models.layers import EnsembleMLP
from mbrl.models.normalization import Normalizer
from mbrl.models.training import FitConfig, FitReport, fit
from mbrl.validation import check_positive_int


@dataclass(frozen=True)
class PolicyBatch(RowBatch):
    """``N`` imitation rows, indexable like a :class:`TransitionBatch` (for ``fit``).

    Attributes:
        obs: ``(N, O)`` float32 observations.
        action: ``(N, A)`` float32 encoded actions (one-hot rows for Discrete spaces).
    """

    obs: Tensor
    action: Tensor


@register_checkpointable
class LearnedPolicy(nn.Module):
    """MLP policy over encoded actions, fitted by maximum likelihood to observed actions.

    ``sample(obs (M, O), generator) -> actions (M, A)``; ``mode(obs (M, O)) -> (M, A)``;
    ``log_prob(obs (M, O), action (M, A)) -> (M,)``. Before its first fit a Discrete policy is uniform and a Box policy is centred on
    the middle of the bounds with a spread covering most of them, so an unfitted policy rolls
    out much like random actions.

    Args:
        obs_dim: ``O``.
        action_dim: ``A`` (number of slots for a Discrete space).
        discrete: True for one-hot Discrete actions, False for Box actions.
        low / high: ``(A,)`` Box bounds (required for Box, unused for Discrete).
        hidden_size / num_layers: MLP size (default 64 x 2: a reactive controller, cheap to
            call at every rollout step).
    """

    ensemble_size = 1

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        discrete: bool,
        low: Sequence[float] | None = None,
        high: Sequence[float] | None = None,
        hidden_size: int = 64,
        num_layers: int = 2,
    ) -> None:
        super().__init__()
        check_positive_int(obs_dim, "obs_dim")
        check_positive_int(action_dim, "action_dim")
        check_positive_int(hidden_size, "hidden_size")
        check_positive_int(num_layers, "num_layers")
        if not isinstance(discrete, bool):
            raise TypeError(f"discrete must be a bool, got {type(discrete).__name__}")
        self.obs_dim, self.action_dim, self.discrete = obs_dim, action_dim, discrete
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.low = self.high = None
        if not discrete:
            self.low, self.high = _bounds(low, high, action_dim)
            lo, hi = torch.tensor(self.low), torch.tensor(self.high)
            self.register_buffer("action_mid", (hi + lo) / 2)
            self.register_buffer("action_half", (hi - lo) / 2)
            self.log_std = nn.Parameter(torch.zeros(action_dim))
        self.net = EnsembleMLP(1, obs_dim, action_dim, hidden_size, num_layers, "silu")
        # A zero output layer gives the untrained policy described in the docstring.
        with torch.no_grad():
            self.net.out.weight.zero_()
            self.net.out.bias.zero_()
        self.input_norm = Normalizer(obs_dim)

    def init_kwargs(self) -> dict:
        """Constructor arguments (for checkpoints)."""
        return {
            "obs_dim": self.obs_dim,
            "action_dim": self.action_dim,
            "discrete": self.discrete,
            "low": self.low,
            "high": self.high,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
        }

    def forward(self, obs: Tensor) -> Tensor:
        """Logits (Discrete) or pre-``tanh`` means (Box), ``(..., A)``, for ``obs (..., O)``."""
        if obs.shape[-1] != self.obs_dim:
            raise ValueError(f"obs must have shape (..., {self.obs_dim}), got {tuple(obs.shape)}")
        x = self.input_norm.normalize(obs.float())
        lead = x.shape[:-1]
        return self.net(x.reshape(1, -1, x.shape[-1])).reshape(*lead, self.action_dim)

    def sample(self, obs: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Encoded actions ``(M, A)`` drawn for ``obs (M, O)`` (one-hot rows when Discrete)."""
        out = self(obs)
        if self.discrete:
            probs = torch.softmax(out, dim=-1)
            idx = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
            return F.one_hot(idx, self.action_dim).to(torch.float32)
        noise = torch.randn(out.shape, generator=generator, device=out.device)
        spread = self.log_std.exp() * self.action_half
        low, high = self.action_mid - self.action_half, self.action_mid + self.action_half
        return torch.minimum(torch.maximum(self._mean(out) + spread * noise, low), high)

    def mode(self, obs: Tensor) -> Tensor:
        """The most likely encoded action ``(M, A)`` for ``obs (M, O)`` (a Box policy's
        squashed mean)."""
        out = self(obs)
        if self.discrete:
            return F.one_hot(out.argmax(dim=-1), self.action_dim).to(torch.float32)
        return self._mean(out)

    def _mean(self, out: Tensor) -> Tensor:
        return self.action_mid + self.action_half * torch.tanh(out)

    def log_prob(self, obs: Tensor, action: Tensor) -> Tensor:
        """Log-likelihood ``(...)`` of encoded ``action (..., A)`` at ``obs (..., O)`` (for a Box
        space, the Gaussian density before clipping)."""
        out = self(obs)
        if self.discrete:
            taken = action.argmax(dim=-1, keepdim=True)
            return torch.log_softmax(out, dim=-1).gather(-1, taken).squeeze(-1)
        spread = self.log_std.exp() * self.action_half
        z = (action.float() - self._mean(out)) / spread
        per_dim = -0.5 * z.square() - spread.log() - 0.5 * math.log(2 * math.pi)
        return per_dim.sum(dim=-1)

    def update_normalizers(self, batch: PolicyBatch) -> None:
        """Input statistics from the training split."""
        self.input_norm.fit(batch.obs)

    def training_loss(self, batch: PolicyBatch) -> Tensor:
        """Mean negative log-likelihood of the taken actions: ``(1,)``."""
        return -self.log_prob(batch.obs, batch.action).mean().reshape(1)

    def validation_score(self, batch: PolicyBatch) -> Tensor:
        """Held-out negative log-likelihood: ``(1,)``."""
        return self.training_loss(batch)

    def on_fit_end(self, validation_scores: Tensor) -> None:
        """Nothing to select for a single network."""


def _bounds(
    low: Sequence[float] | None, high: Sequence[float] | None, action_dim: int
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if low is None or high is None:
        raise ValueError("a Box policy (discrete=False) needs low and high action bounds")
    lo = tuple(float(v) for v in torch.as_tensor(low).reshape(-1).tolist())
    hi = tuple(float(v) for v in torch.as_tensor(high).reshape(-1).tolist())
    if len(lo) != action_dim or len(hi) != action_dim:
        raise ValueError(
            f"low and high must have shape ({action_dim},), got ({len(lo)},) and ({len(hi)},)"
        )
    if not all(
        math.isfinite(a) and math.isfinite(b) and a < b for a, b in zip(lo, hi, strict=True)
    ):
        raise ValueError(f"action bounds must be finite with low < high, got {lo} and {hi}")
    return lo, hi


def fit_policy(
    policy: LearnedPolicy,
    data: TransitionBuffer | TransitionBatch,
    config: FitConfig | None = None,
    generator: torch.Generator | None = None,
) -> FitReport:
    """Fit ``policy`` to the observation/action pairs of ``data`` (in place).

    Args:
        policy: the network (training continues from its weights).
        data: a buffer, or a batch with ``obs (N, O)`` and encoded ``action (N, A)``, ``N >= 2``.
        config: training settings (default :class:`FitConfig`).
        generator: randomness for splits and minibatches.

    Returns:
        The :class:`FitReport` of :func:`~mbrl.models.training.fit`.

    Raises:
        ValueError: observation or action sizes other than the policy's.
    """
    batch = data.all() if isinstance(data, TransitionBuffer) else data
    if batch.obs.shape[-1] != policy.obs_dim:
        raise ValueError(
            f"data observations have {batch.obs.shape[-1]} features, the policy expects "
            f"{policy.obs_dim}"
        )
    if batch.action.shape[-1] != policy.action_dim:
        raise ValueError(
            f"data actions have {batch.action.shape[-1]} features, the policy expects "
            f"{policy.action_dim}"
        )
    device = next(policy.parameters()).device
    rows = PolicyBatch(batch.obs.to(device), batch.action.to(device))
    return fit(policy, rows, config, generator)
