"""Deterministic MLP delta model: ``next_obs = obs + f(obs, action)``."""

from __future__ import annotations

from dataclasses import replace

from mbrl.models.base import EXPECTATION
from mbrl.models.checkpoint import register_checkpointable
from mbrl.models.delta_model import DeltaModel, DeltaModelConfig


@register_checkpointable
class MLPDynamics(DeltaModel):
    """A single deterministic MLP predicting the observation delta, trained with MSE.

    The seeds' model (``s' = s + f_theta(s, a)``). ``step(state (M, O), action (M, A)) -> (M, O)``.
    With one member (the default) it has one behaviour, its mean: ``propagations ==
    ("expectation",)``; a deterministic ensemble (``ensemble_size > 1``) keeps the ensemble's
    member propagations.

    Args:
        obs_dim: observation size ``O``; action_dim: encoded action size ``A``.
        config: architecture; defaults to one member of 3 hidden layers of 200 units. Only
            ``probabilistic=False`` is accepted (use :class:`GaussianEnsemble` otherwise);
            with one member its ``propagation`` is replaced by ``expectation``.
    """

    def __init__(
        self, obs_dim: int, action_dim: int, config: DeltaModelConfig | None = None
    ) -> None:
        cfg = config or DeltaModelConfig(ensemble_size=1, num_layers=3, probabilistic=False)
        if cfg.probabilistic:
            raise ValueError("MLPDynamics is deterministic: pass a config with probabilistic=False")
        if cfg.ensemble_size == 1:
            cfg = replace(cfg, propagation=EXPECTATION)
        super().__init__(obs_dim, action_dim, cfg)
        if cfg.ensemble_size == 1:
            self.propagations: tuple[str, ...] = (EXPECTATION,)  # type: ignore[misc]
