"""Learned reward and termination models with the task-function signature.

Both are callables ``fn(obs (M, O), action (M, A), next_obs (M, O)) -> (M,)`` usable anywhere a
known task function is (rollouts, planners, surrogate envs), and both train with
:func:`mbrl.models.fit` on a transition buffer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mbrl.data.buffer import TransitionBatch
from mbrl.models.checkpoint import register_checkpointable
from mbrl.models.layers import EnsembleMLP
from mbrl.models.normalization import Normalizer
from mbrl.util.configs import bounded, check_config
from mbrl.validation import check_positive_int


@dataclass(frozen=True)
class TaskNetConfig:
    """Size of the learned reward and termination networks (``RunConfig.task_options``).

    Each network runs once per rollout step on every candidate and particle, so its size
    is part of the planning cost: at PETS' shape the two default networks cost about as much
    as the 5 x 4 x 200 dynamics ensemble (docs/benchmarks.md, "What a learned reward costs").

    Attributes:
        hidden_size: units per hidden layer (default 200).
        num_layers: hidden layers (default 3).
    """

    hidden_size: int = bounded(200, ge=1)
    num_layers: int = bounded(3, ge=1)

    def __post_init__(self) -> None:
        check_config(self)


class _TransitionScorer(nn.Module):
    """An MLP on normalised ``[obs, action, next_obs - obs]`` producing one number per row."""

    ensemble_size = 1

    def __init__(
        self, obs_dim: int, action_dim: int, hidden_size: int = 200, num_layers: int = 3
    ) -> None:
        super().__init__()
        check_positive_int(obs_dim, "obs_dim")
        check_positive_int(action_dim, "action_dim")
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self.hidden_size, self.num_layers = hidden_size, num_layers
        in_dim = 2 * obs_dim + action_dim
        self.net = EnsembleMLP(1, in_dim, 1, hidden_size, num_layers, "silu")
        self.input_norm = Normalizer(in_dim)

    def init_kwargs(self) -> dict:
        """Constructor arguments (for checkpoints)."""
        return {
            "obs_dim": self.obs_dim,
            "action_dim": self.action_dim,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
        }

    def _features(self, obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
        return torch.cat([obs, action.to(obs.dtype), next_obs - obs], dim=-1)

    def raw(self, obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
        """Network output for any leading dims ``(..., O)`` -> ``(...)``."""
        x = self.input_norm.normalize(self._features(obs, action, next_obs))
        lead = x.shape[:-1]
        return self.net(x.reshape(1, -1, x.shape[-1])).reshape(lead)

    def update_normalizers(self, batch: TransitionBatch) -> None:
        """Input statistics from the training split."""
        self.input_norm.fit(self._features(batch.obs, batch.action, batch.next_obs))

    def on_fit_end(self, validation_scores: Tensor) -> None:
        """Nothing to select for a single network."""


@register_checkpointable
class LearnedReward(_TransitionScorer):
    """MLP reward model ``r(obs, action, next_obs)``, trained with MSE on observed rewards.

    ``__call__(obs (M, O), action (M, A), next_obs (M, O)) -> (M,)``.

    Args:
        obs_dim: ``O``; action_dim: ``A``; hidden_size / num_layers: MLP size (200 x 3).
    """

    def __init__(
        self, obs_dim: int, action_dim: int, hidden_size: int = 200, num_layers: int = 3
    ) -> None:
        super().__init__(obs_dim, action_dim, hidden_size, num_layers)
        self.register_buffer("reward_mean", torch.zeros(()))
        self.register_buffer("reward_std", torch.ones(()))

    def update_normalizers(self, batch: TransitionBatch) -> None:
        """Input statistics and reward scale from the training split."""
        super().update_normalizers(batch)
        self.reward_mean.copy_(batch.reward.mean())
        self.reward_std.copy_(batch.reward.std(unbiased=False).clamp_min(1e-6))

    def forward(self, obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
        """Predicted reward ``(M,)``."""
        return self.raw(obs, action, next_obs) * self.reward_std + self.reward_mean

    def training_loss(self, batch: TransitionBatch) -> Tensor:
        """MSE on the standardised reward: ``(1,)``."""
        target = (batch.reward - self.reward_mean) / self.reward_std
        return (
            (self.raw(batch.obs, batch.action, batch.next_obs) - target).square().mean().reshape(1)
        )

    def validation_score(self, batch: TransitionBatch) -> Tensor:
        """Held-out MSE on the standardised reward: ``(1,)``."""
        return self.training_loss(batch)


@register_checkpointable
class LearnedTermination(_TransitionScorer):
    """MLP termination classifier, trained with class-balanced binary cross-entropy.

    ``__call__(obs (M, O), action (M, A), next_obs (M, O)) -> (M,)`` bool.

    Until data with an ending has been seen (:meth:`note_endings`), the classifier predicts
    no ending without running its network: most envs a user brings only truncate, and a
    classifier of an unseen class costs a forward pass per rollout step for nothing (and
    could only invent endings).

    Args:
        obs_dim: ``O``; action_dim: ``A``; hidden_size / num_layers: MLP size (200 x 3).
    """

    def __init__(
        self, obs_dim: int, action_dim: int, hidden_size: int = 200, num_layers: int = 3
    ) -> None:
        super().__init__(obs_dim, action_dim, hidden_size, num_layers)
        self.register_buffer("pos_weight", torch.ones(()))
        # True until told otherwise: an unfitted classifier (or one loaded from a file saved
        # before this flag existed) runs its network as it always did.
        self.register_buffer("endings_seen", torch.ones((), dtype=torch.bool))
        self._endings_seen = True
        self.register_load_state_dict_post_hook(lambda module, _keys: module._sync_flag())

    def _sync_flag(self) -> None:
        self._endings_seen = bool(self.endings_seen)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        state_dict.setdefault(prefix + "endings_seen", torch.ones((), dtype=torch.bool))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def note_endings(self, seen: bool) -> None:
        """Record whether the training data holds any termination (False: predict none)."""
        self.endings_seen.fill_(bool(seen))
        self._endings_seen = bool(seen)

    @property
    def capture_key(self) -> tuple[bool]:
        """What a captured rollout (CUDA graph) of this classifier depends on besides its
        tensors: whether it runs its network at all."""
        return (self._endings_seen,)

    def update_normalizers(self, batch: TransitionBatch) -> None:
        """Input statistics and the positive-class weight (terminations are rare)."""
        super().update_normalizers(batch)
        pos = batch.terminated.float().sum()
        neg = batch.terminated.numel() - pos
        self.pos_weight.copy_((neg / pos.clamp_min(1.0)).clamp(1.0, 1000.0))

    def probability(self, obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
        """Calibrated termination probability ``(M,)``.

        Weighting the rare positives by ``pos_weight`` in training multiplies the predicted
        odds by ``pos_weight``; subtracting ``log(pos_weight)`` from the logit undoes that, so
        an ordinary transition is not given the ~1-5% ending chance the weighted classifier
        assigns it (which, compounded over a search horizon, planners would chase as if real).
        """
        if not self._endings_seen:
            return torch.zeros(obs.shape[:-1], dtype=obs.dtype, device=obs.device)
        return torch.sigmoid(self.raw(obs, action, next_obs) - self.pos_weight.log())

    def forward(self, obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
        """Predicted termination flags ``(M,)``: the class-balanced decision (weighted logit
        > 0), which favours recall of the rare endings over calibration."""
        if not self._endings_seen:
            return torch.zeros(obs.shape[:-1], dtype=torch.bool, device=obs.device)
        return self.raw(obs, action, next_obs) > 0

    def training_loss(self, batch: TransitionBatch) -> Tensor:
        """Weighted BCE: ``(1,)``."""
        logits = self.raw(batch.obs, batch.action, batch.next_obs)
        target = batch.terminated.to(logits.dtype)
        return F.binary_cross_entropy_with_logits(
            logits, target, pos_weight=self.pos_weight
        ).reshape(1)

    def validation_score(self, batch: TransitionBatch) -> Tensor:
        """Held-out balanced error rate ``(1,)`` (mean of the per-class error rates)."""
        pred = self.forward(batch.obs, batch.action, batch.next_obs)
        target = batch.terminated
        errs = [
            (pred[target == c] != c).float().mean()
            for c in (True, False)
            if bool((target == c).any())
        ]
        return torch.stack(errs).mean().reshape(1)
