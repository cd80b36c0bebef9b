"""Probabilistic ensemble of Gaussian MLPs (PETS, Chua et al. 2018)."""

from __future__ import annotations

from mbrl.models.checkpoint import register_checkpointable
from mbrl.models.delta_model import DeltaModel, DeltaModelConfig


@register_checkpointable
class GaussianEnsemble(DeltaModel):
    """``E`` Gaussian MLPs predicting mean and log-variance of the observation delta.

    Trained with Gaussian NLL and learned soft log-variance bounds; elites picked on held-out MSE.
    ``step(state (M, O), action (M, A)) -> (M, O)`` samples according to ``config.propagation``.

    Args:
        obs_dim: observation size ``O``; action_dim: encoded action size ``A``.
        config: architecture; defaults to PETS' 5 members x 4 hidden layers of 200 units, TS-inf.
    """

    def __init__(
        self, obs_dim: int, action_dim: int, config: DeltaModelConfig | None = None
    ) -> None:
        cfg = config or DeltaModelConfig()
        if not cfg.probabilistic:
            raise ValueError(
                "GaussianEnsemble is probabilistic: pass a config with probabilistic=True"
            )
        super().__init__(obs_dim, action_dim, cfg)
