"""Dynamics models by name, for the CLI and the benchmark suite.

A builder takes ``(obs_dim, action_dim, options)`` and returns a :class:`DynamicsModel`;
``options`` override fields of the model's config dataclass (unknown keys raise ``ValueError``).
Later models (GP, RSSM, known physics) join with :func:`register_model`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from mbrl.models.base import DynamicsModel
from mbrl.models.delta_model import DeltaModelConfig
from mbrl.models.ensemble import GaussianEnsemble
from mbrl.models.mlp import MLPDynamics

ModelBuilder = Callable[[int, int, dict[str, Any]], DynamicsModel]
_MODELS: dict[str, tuple[ModelBuilder, str]] = {}


def register_model(name: str, builder: ModelBuilder, description: str = "") -> None:
    """Make ``name`` buildable by :func:`build_model` (and ``mbrl run --model name``)."""
    _MODELS[name] = (builder, description)


def model_names() -> list[str]:
    """Sorted names of registered models."""
    return sorted(_MODELS)


def build_model(
    name: str, obs_dim: int, action_dim: int, options: dict[str, Any] | None = None
) -> DynamicsModel:
    """Build model ``name`` for ``obs_dim``/``action_dim`` with config ``options``.

    Raises:
        ValueError: unknown model name or option.
    """
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {model_names()}")
    return _MODELS[name][0](obs_dim, action_dim, dict(options or {}))


def _delta_config(options: dict[str, Any], base: DeltaModelConfig) -> DeltaModelConfig:
    names = {f.name for f in dataclasses.fields(DeltaModelConfig)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise ValueError(f"unknown model option(s) {unknown}; valid: {sorted(names)}")
    return dataclasses.replace(base, **options)


register_model(
    "ensemble",
    lambda o, a, opts: GaussianEnsemble(o, a, _delta_config(opts, DeltaModelConfig())),
    "probabilistic ensemble (PETS)",
)
register_model(
    "mlp",
    lambda o, a, opts: MLPDynamics(
        o,
        a,
        _delta_config(opts, DeltaModelConfig(ensemble_size=1, num_layers=3, probabilistic=False)),
    ),
    "deterministic MLP delta model",
)
