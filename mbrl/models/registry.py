"""Dynamics models by name, for the CLI and the benchmark suite.

A builder takes a :class:`ModelContext` (sizes, env id, options) and returns a
:class:`DynamicsModel`; ``options`` override fields of the model's config dataclass (unknown
keys raise ``ValueError``). Later models (GP, RSSM, known physics) join with
:func:`register_model`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mbrl.models.base import DynamicsModel
from mbrl.models.delta_model import DeltaModelConfig
from mbrl.models.ensemble import GaussianEnsemble
from mbrl.models.mlp import MLPDynamics
from mbrl.util.configs import config_from_options


@dataclass(frozen=True)
class ModelContext:
    """What a model builder gets.

    Attributes:
        obs_dim: observation size ``O``; action_dim: encoded action size ``A``.
        env_id: the gymnasium id of the env (known-physics models pick their env by it).
        options: config overrides; unknown keys must raise ``ValueError``.
    """

    obs_dim: int
    action_dim: int
    env_id: str = ""
    options: dict[str, Any] = field(default_factory=dict)


ModelBuilder = Callable[[ModelContext], DynamicsModel]
_MODELS: dict[str, tuple[ModelBuilder, str]] = {}


def register_model(name: str, builder: ModelBuilder, description: str = "") -> None:
    """Make ``name`` buildable by :func:`build_model` (and ``mbrl run --model name``)."""
    _MODELS[name] = (builder, description)


def model_names() -> list[str]:
    """Sorted names of registered models."""
    return sorted(_MODELS)


def build_model(
    name: str,
    obs_dim: int,
    action_dim: int,
    options: dict[str, Any] | None = None,
    env_id: str = "",
) -> DynamicsModel:
    """Build model ``name`` for ``obs_dim``/``action_dim`` (env ``env_id``) with config ``options``.

    Raises:
        ValueError: unknown model name or option.
    """
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {model_names()}")
    return _MODELS[name][0](ModelContext(obs_dim, action_dim, env_id, dict(options or {})))


MLP_DEFAULTS = DeltaModelConfig(ensemble_size=1, num_layers=3, probabilistic=False)
"""Default architecture of ``--model mlp``: one deterministic 3 x 200 MLP."""

register_model(
    "ensemble",
    lambda c: GaussianEnsemble(
        c.obs_dim, c.action_dim, config_from_options(DeltaModelConfig, c.options)
    ),
    "probabilistic ensemble (PETS)",
)
register_model(
    "mlp",
    lambda c: MLPDynamics(
        c.obs_dim, c.action_dim, config_from_options(DeltaModelConfig, c.options, MLP_DEFAULTS)
    ),
    "deterministic MLP delta model",
)


MBPO_ENSEMBLE_OPTIONS: dict[str, Any] = {"ensemble_size": 5, "num_layers": 3, "hidden_size": 200}
"""MBPO's ensemble (5 members of 3 x 200), the default model of MBPO and of the imagination
loop."""


def options_or_defaults(model: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """``options`` when given; else :data:`MBPO_ENSEMBLE_OPTIONS` for ``ensemble`` and ``{}``
    (the model's own defaults) for any other model."""
    if options is not None:
        return dict(options)
    return dict(MBPO_ENSEMBLE_OPTIONS) if model == "ensemble" else {}
