"""Known-physics dynamics models, looked up by gymnasium env id (``mbrl run --model known``).

A known model is a :class:`~mbrl.models.base.DynamicsModel` that reproduces an env's own
``step`` in torch, so planners can be compared on the true dynamics without learning noise.
Each module of this package registers its model(s) with :func:`register_known_model`; every
module here is imported when the package is, so adding a file is all a new env needs.

Contract of a registered class ``cls``: ``cls()`` builds it with default constants; if it
defines a ``config_class`` attribute (a frozen dataclass), ``mbrl run --model-opt KEY=VALUE``
overrides its fields and the model is built as ``cls(config)``.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, ClassVar

from mbrl.models.base import DynamicsModel
from mbrl.models.registry import ModelContext, register_model
from mbrl.util.configs import config_from_options

_KNOWN: dict[str, type[DynamicsModel]] = {}


class KnownModel(DynamicsModel):
    """Base of known models whose physical constants are a frozen ``config_class`` dataclass.

    ``cls(config=None)`` uses ``config_class()`` defaults; subclasses set ``config_class``,
    ``obs_dim`` and ``action_dim`` and implement ``step``.

    Raises:
        TypeError: ``config`` is not a ``config_class`` instance.
    """

    config_class: ClassVar[type]

    def __init__(self, config: Any = None) -> None:
        super().__init__()
        cls = self.config_class
        if config is not None and not isinstance(config, cls):
            raise TypeError(f"config must be a {cls.__name__}, got {type(config).__name__}")
        self.config = config if config is not None else cls()

    @property
    def min_fit_transitions(self) -> int:
        """0: the known dynamics need no data (a run plans from its first step)."""
        return 0

    def init_kwargs(self) -> dict:
        """Constructor arguments (for checkpoints)."""
        return {"config": self.config}


def register_known_model(env_id: str, cls: type[DynamicsModel], *, overwrite: bool = False) -> None:
    """Make ``cls`` the known model of ``env_id`` (e.g. ``"Pendulum-v1"``).

    Raises:
        TypeError: ``cls`` is not a :class:`DynamicsModel` subclass.
        ValueError: ``env_id`` is empty, or already registered and ``overwrite`` is False.
    """
    if not (isinstance(cls, type) and issubclass(cls, DynamicsModel)):
        raise TypeError(f"cls for {env_id!r} must be a DynamicsModel subclass, got {cls!r}")
    if not isinstance(env_id, str) or not env_id:
        raise ValueError(f"env_id must be a non-empty string, got {env_id!r}")
    if env_id in _KNOWN and not overwrite and _KNOWN[env_id] is not cls:
        raise ValueError(
            f"a known model for {env_id!r} is already registered ({_KNOWN[env_id].__name__}); "
            "pass overwrite=True to replace it"
        )
    _KNOWN[env_id] = cls


def known_model_env_ids() -> list[str]:
    """Sorted env ids that have a known model."""
    return sorted(_KNOWN)


def known_model_class(env_id: str) -> type[DynamicsModel]:
    """The known model class of ``env_id``.

    Raises:
        ValueError: no known model for ``env_id`` (the message lists the envs that have one).
    """
    try:
        return _KNOWN[env_id]
    except KeyError as err:
        raise ValueError(
            f"no known dynamics model for env {env_id!r}; envs with known models: "
            f"{known_model_env_ids()}"
        ) from err


def build_known_model(
    env_id: str,
    options: dict[str, Any] | None = None,
    obs_dim: int | None = None,
    action_dim: int | None = None,
) -> DynamicsModel:
    """Build the known model of ``env_id`` with config overrides ``options``.

    Args:
        env_id: gymnasium id of the env.
        options: overrides of the class's ``config_class`` fields (empty: defaults).
        obs_dim / action_dim: if given, checked against the model's sizes.

    Raises:
        ValueError: unknown env, unknown option (or options for a class without a config), or
            sizes that do not match the env's.
    """
    cls = known_model_class(env_id)
    options = dict(options or {})
    config_cls = getattr(cls, "config_class", None)
    if config_cls is not None:
        model = cls(config_from_options(config_cls, options))
    elif options:
        raise ValueError(f"{cls.__name__} takes no options, got {sorted(options)}")
    else:
        model = cls()
    for name, want, have in (
        ("obs_dim", obs_dim, model.obs_dim),
        ("action_dim", action_dim, model.action_dim),
    ):
        if want is not None and want != have:
            raise ValueError(
                f"known model {cls.__name__} for {env_id!r} has {name}={have}, but the env has {want}"
            )
    return model


def _build(ctx: ModelContext) -> DynamicsModel:
    return build_known_model(ctx.env_id, ctx.options, ctx.obs_dim, ctx.action_dim)


register_model("known", _build, "the env's true dynamics written in torch (no learning)")

# Import every module of this package: each registers its env's known model.
for _info in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_info.name}")

__all__ = [
    "KnownModel",
    "build_known_model",
    "known_model_class",
    "known_model_env_ids",
    "register_known_model",
]
