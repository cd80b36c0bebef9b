"""A learned state-value function ``V(obs)`` fitted to the discounted returns of real episodes.

The AlphaZero value target without self-play: each stored transition's Monte-Carlo return-to-go
``G_t = r_t + gamma * (1 - terminated_t) * G_{t+1}``, computed backwards through the buffer's
episodes. Where an episode was cut without the MDP ending (a time limit, or the buffer's
still-running last episode), the return is bootstrapped from the current estimate
``V(next_obs)``; :func:`fit_value` therefore alternates target computation and fitting
(``sweeps``), so those bootstraps come from a fitted network rather than an untrained one.

Planners use it past their horizon: :class:`~mbrl.planners.mcts.MCTS` adds
``gamma^steps * V(last obs)`` at the end of each leaf rollout (``mbrl run --value learned``).
That lets a 20-step search score consequences that take a hundred steps to arrive (a CartPole
cart drifting towards the end of its track), as far as the value has seen them in real data.
Where it has not, the search must not be misled: :class:`LearnedValue` is an ensemble whose
prediction is a lower confidence bound clipped to the range of its targets (its docstring
says why). docs/mcts.md has the measurements.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mbrl.data.buffer import RowBatch, TransitionBatch, TransitionBuffer
from mbrl.models.checkpoint import register_checkpointable
from mbrl.models.layers import EnsembleMLP
from mbrl.models.normalization import Normalizer
from mbrl.models.training import FitConfig, FitReport, fit
from mbrl.validation import check_positive_int


@dataclass(frozen=True)
class ValueBatch(RowBatch):
    """``N`` value-regression rows, indexable like a :class:`TransitionBatch` (for ``fit``).

    Attributes:
        obs: ``(N, O)`` float32 observations.
        target: ``(N,)`` float32 discounted returns-to-go.
    """

    obs: Tensor
    target: Tensor


def discounted_returns(batch: TransitionBatch, gamma: float, bootstrap: Tensor) -> Tensor:
    """Returns-to-go ``(N,)`` of a time-ordered batch (e.g. ``buffer.all()``).

    Args:
        batch: ``N`` transitions, oldest first; an episode ends at a ``terminated`` or
            ``truncated`` row, and rows after the last end form an unfinished episode.
        gamma: discount in ``(0, 1)``.
        bootstrap: ``(N,)`` value of each row's ``next_obs``, used where an episode stops
            without terminating (truncated rows and the final row of an unfinished episode).

    Returns:
        ``(N,)`` float32 ``G_t``; a terminated row's return is its reward alone.
    """
    return returns_to_go(batch.reward, batch.terminated, batch.truncated, gamma, bootstrap)


def returns_to_go(
    reward: Tensor, terminated: Tensor, cut: Tensor, gamma: float, bootstrap: Tensor
) -> Tensor:
    """``G_t = r_t + gamma * (1 - terminated_t) * G_{t+1}`` backwards over ``N`` rows.

    Args:
        reward: ``(N,)`` rewards, oldest first.
        terminated: ``(N,)`` bool, the MDP ended after the row (nothing follows).
        cut: ``(N,)`` bool, the episode stopped after the row without ending (a time limit):
            the return continues with ``bootstrap``, as it does after the final row.
        gamma: discount in ``(0, 1)``.
        bootstrap: ``(N,)`` the value of the state after each row.

    Returns:
        ``(N,)`` float32 on ``reward``'s device.

    Raises:
        ValueError: ``gamma`` outside ``(0, 1)`` or a tensor not of shape ``(N,)``.
    """
    if not 0.0 < gamma < 1.0:
        raise ValueError(f"gamma must be in (0, 1) for discounted returns, got {gamma}")
    n = reward.shape[0]
    for name, t in (("terminated", terminated), ("cut", cut), ("bootstrap", bootstrap)):
        if tuple(t.shape) != (n,):
            raise ValueError(f"{name} must have shape ({n},), got {tuple(t.shape)}")
    # A sequential scan over a few thousand rows: plain Python floats beat per-row tensor ops.
    rew = reward.double().cpu().tolist()
    term = terminated.cpu().tolist()
    cuts = cut.cpu().tolist()
    boot = bootstrap.double().cpu().tolist()
    out = [0.0] * n
    ahead = 0.0
    for t in range(n - 1, -1, -1):
        if term[t]:
            ahead = 0.0
        elif cuts[t] or t == n - 1:
            ahead = boot[t]
        out[t] = rew[t] + gamma * ahead
        ahead = out[t]
    return torch.tensor(out, dtype=torch.float32, device=reward.device)


def check_pessimism(pessimism: object) -> float:
    """``pessimism`` as a float, or ``ValueError`` unless it is a finite number ``>= 0``."""
    if isinstance(pessimism, bool) or not (
        isinstance(pessimism, int | float) and math.isfinite(pessimism) and pessimism >= 0
    ):
        raise ValueError(f"pessimism must be a finite number >= 0, got {pessimism!r}")
    return float(pessimism)


@register_checkpointable
class LearnedValue(nn.Module):
    """Ensemble of MLP state values ``V(obs)``, trained with MSE on standardised returns.

    ``__call__(obs (M, O)) -> (M,)``; any leading dims ``(..., O) -> (...)`` work. The value is
    a lower confidence bound, ``mean - pessimism * std`` over the members, clipped to the range
    of the returns it was fitted to. Off the visited states an MLP value extrapolates freely:
    fitted to 29 random CartPole steps (returns <= 29), one rated a falling pole at 260, and
    MCTS, which adds the value at the end of every rollout, steered straight into the fall.
    Members fitted to different bootstrap samples agree where there was data and disagree
    away from it, so the bound falls there; the clip keeps even a confident extrapolation
    inside what has been seen. Before its first fit it predicts 0 everywhere.

    Args:
        obs_dim: ``O``.
        hidden_size / num_layers: MLP size per member (default 128 x 2: a value over a
            low-dimensional state is far smoother than the dynamics).
        ensemble_size: members ``E`` (default 5).
        pessimism: standard deviations subtracted from the members' mean (default 1.0; 0
            gives the plain ensemble mean).
    """

    def __init__(
        self,
        obs_dim: int,
        hidden_size: int = 128,
        num_layers: int = 2,
        ensemble_size: int = 5,
        pessimism: float = 1.0,
    ) -> None:
        super().__init__()
        check_positive_int(obs_dim, "obs_dim")
        check_positive_int(hidden_size, "hidden_size")
        check_positive_int(num_layers, "num_layers")
        check_positive_int(ensemble_size, "ensemble_size")
        check_pessimism(pessimism)
        self.obs_dim, self.hidden_size, self.num_layers = obs_dim, hidden_size, num_layers
        self.ensemble_size, self.pessimism = ensemble_size, float(pessimism)
        self.net = EnsembleMLP(ensemble_size, obs_dim, 1, hidden_size, num_layers, "silu")
        # A zero output layer makes an unfitted value exactly 0 everywhere ("no information")
        # rather than random numbers a planner would act on; training moves it from there.
        with torch.no_grad():
            self.net.out.weight.zero_()
        self.input_norm = Normalizer(obs_dim)
        self.register_buffer("target_mean", torch.zeros(()))
        self.register_buffer("target_std", torch.ones(()))
        self.register_buffer("target_low", torch.zeros(()))
        self.register_buffer("target_high", torch.zeros(()))

    def init_kwargs(self) -> dict:
        """Constructor arguments (for checkpoints)."""
        return {
            "obs_dim": self.obs_dim,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "ensemble_size": self.ensemble_size,
            "pessimism": self.pessimism,
        }

    def members(self, obs: Tensor) -> Tensor:
        """Every member's value ``(E, ...)`` of ``obs (..., O)`` (unclipped)."""
        if obs.shape[-1] != self.obs_dim:
            raise ValueError(f"obs must have shape (..., {self.obs_dim}), got {tuple(obs.shape)}")
        x = self.input_norm.normalize(obs.float())
        lead = x.shape[:-1]
        flat = x.reshape(1, -1, self.obs_dim).expand(self.ensemble_size, -1, -1)
        raw = self.net(flat).reshape(self.ensemble_size, *lead)
        return raw * self.target_std + self.target_mean

    def forward(self, obs: Tensor, pessimism: float | None = None) -> Tensor:
        """Values ``(...)`` of observations ``obs (..., O)``: the clipped lower bound.

        Args:
            obs: ``(..., O)`` observations.
            pessimism: standard deviations subtracted for this call (default: the value's own
                :attr:`pessimism`), so a planner can read one fitted ensemble more or less
                cautiously than MCTS does.
        """
        k = self.pessimism if pessimism is None else check_pessimism(pessimism)
        per = self.members(obs)
        value = per.mean(dim=0)
        if self.ensemble_size > 1 and k > 0:
            value = value - k * per.std(dim=0, unbiased=False)
        return torch.minimum(torch.maximum(value, self.target_low), self.target_high)

    def update_normalizers(self, batch: ValueBatch) -> None:
        """Input statistics, target scale and target range from the training split."""
        self.input_norm.fit(batch.obs)
        self.target_mean.copy_(batch.target.mean())
        self.target_std.copy_(batch.target.std(unbiased=False).clamp_min(1e-6))
        self.target_low.copy_(batch.target.min())
        self.target_high.copy_(batch.target.max())

    def training_loss(self, batch: ValueBatch) -> Tensor:
        """Per-member MSE on the standardised target ``(E,)``; rows ``obs (E, B, O)``."""
        x = self.input_norm.normalize(batch.obs.float())
        pred = self.net(x).squeeze(-1)
        target = (batch.target - self.target_mean) / self.target_std
        return (pred - target).square().mean(dim=-1)

    def validation_score(self, batch: ValueBatch) -> Tensor:
        """Held-out per-member MSE on the standardised target ``(E,)``; ``obs (N, O)``."""
        pred = (self.members(batch.obs) - self.target_mean) / self.target_std
        target = (batch.target - self.target_mean) / self.target_std
        return (pred - target).square().mean(dim=-1)

    def on_fit_end(self, validation_scores: Tensor) -> None:
        """Every member is kept (their spread is the point)."""


def fit_value(
    value: LearnedValue,
    data: TransitionBuffer | TransitionBatch,
    gamma: float,
    config: FitConfig | None = None,
    generator: torch.Generator | None = None,
    sweeps: int = 2,
) -> FitReport:
    """Fit ``value`` to the discounted returns-to-go of ``data`` (in place).

    Each sweep recomputes the targets, bootstrapping cut-off episodes from the current
    ``value``, then trains on them with :func:`~mbrl.models.training.fit`.

    Args:
        value: the network (training continues from its weights).
        data: a buffer, or a time-ordered batch of ``N >= 2`` transitions with ``obs (N, O)``.
        gamma: discount in ``(0, 1)``.
        config: training settings (default :class:`FitConfig`).
        generator: randomness for splits and minibatches.
        sweeps: target/fit alternations (default 2).

    Returns:
        The last sweep's :class:`FitReport`.

    Raises:
        ValueError: ``gamma`` outside ``(0, 1)``, ``sweeps < 1``, fewer than 2 transitions or an
            observation size other than ``value.obs_dim``.
    """
    check_positive_int(sweeps, "sweeps")
    if not (isinstance(gamma, int | float) and math.isfinite(gamma) and 0.0 < gamma < 1.0):
        raise ValueError(f"gamma must be in (0, 1) for a learned value, got {gamma}")
    batch = data.all() if isinstance(data, TransitionBuffer) else data
    if batch.obs.shape[-1] != value.obs_dim:
        raise ValueError(
            f"data observations have {batch.obs.shape[-1]} features, the value expects "
            f"{value.obs_dim}"
        )
    device = value.target_mean.device
    batch = batch.to(device)
    report = FitReport()
    for _ in range(sweeps):
        with torch.no_grad():
            boot = value(batch.next_obs)
        targets = discounted_returns(batch, gamma, boot)
        report = fit(value, ValueBatch(batch.obs, targets), config, generator)
    return report
