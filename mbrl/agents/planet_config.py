"""The settings of the PlaNet loop (:class:`PlanetConfig`) and how a :class:`RunConfig` with
``model="rssm"`` maps to them (:func:`planet_config`).

A run config describes a PlaNet run completely: the RSSM's, its training's and the loop's own
settings are ``model_options`` keys, and the fields the two loops share (episodes, horizon,
particles, ...) keep their meaning. :meth:`PlanetConfig.to_run_config` is the inverse.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from mbrl.agents.config import RunConfig
from mbrl.models.rssm.networks import RSSMConfig
from mbrl.models.rssm.training import RSSMTrainConfig
from mbrl.util.configs import config_from_options
from mbrl.validation import check_positive_int

PLANNER_DEFAULTS: dict[str, dict[str, Any]] = {
    "cem": {"population": 300, "iterations": 5},
    "icem": {"population": 300},
    "mppi": {"population": 300, "iterations": 3},
    "shooting": {"population": 1000},
}
"""Planner options used by the PlaNet loop unless overridden (sized for a 2-core CPU)."""


@dataclass(frozen=True)
class PlanetConfig:
    """Settings of one PlaNet run (defaults sized for a 2-core CPU and Pendulum).

    Attributes:
        env_id: gymnasium id (default ``Pendulum-v1``); vector or uint8 image observations
            (``mbrl/PendulumNoVel-v0`` and ``mbrl/PendulumPixels-v0`` are the POMDP tests).
        planner: registered sampling planner (default ``cem``).
        episodes: planning episodes after the seed episodes (default 30).
        seed_episodes: random-action episodes first (default 5).
        seed: seeds env, model init, training, planning (default 0).
        device: ``cpu`` / ``cuda[:N]`` (default ``cpu``).
        out: output directory (default none).
        action_repeat: env steps per agent decision ``R`` (default 2).
        train_steps: gradient steps before each planning episode (PlaNet's collect interval
            ``C``; default 100).
        horizon: planning horizon in agent steps (default 12).
        n_particles: particles per candidate in latent rollouts (default 1, as PlaNet).
        exploration_noise: action-noise std, fraction of the half range (default 0.3).
        eval_context / eval_horizon: open-loop error measured by filtering ``eval_context``
            steps of a held-out random episode and predicting ``eval_horizon`` (5 / 10).
        model: RSSM size and loss settings; train: optimiser and chunk settings.
        planner_options: overrides of :data:`PLANNER_DEFAULTS` for ``planner``.
        max_episode_steps: extra cap on agent steps per episode (default: the env's limit).
        progress: progress bars and one line per episode (default True).
        policy: ``none`` (default: the planner acts) or ``imagine`` (Dreamer: an actor
            trained in latent imagination after every training phase acts, with ``horizon``
            as its imagination horizon and ``train_steps`` actor-critic updates per phase;
            :mod:`mbrl.imagination.latent`).
    """

    env_id: str = "Pendulum-v1"
    planner: str = "cem"
    episodes: int = 30
    seed_episodes: int = 5
    seed: int = 0
    device: str = "cpu"
    out: str | None = None
    action_repeat: int = 2
    train_steps: int = 100
    horizon: int = 12
    n_particles: int = 1
    exploration_noise: float = 0.3
    eval_context: int = 5
    eval_horizon: int = 10
    model: RSSMConfig = field(default_factory=RSSMConfig)
    train: RSSMTrainConfig = field(default_factory=RSSMTrainConfig)
    planner_options: dict[str, Any] = field(default_factory=dict)
    max_episode_steps: int | None = None
    progress: bool = True
    policy: str = "none"

    def __post_init__(self) -> None:
        check_positive_int(self.episodes, "episodes", minimum=0)
        check_positive_int(self.seed_episodes, "seed_episodes")
        for name in ("action_repeat", "train_steps", "horizon", "n_particles"):
            check_positive_int(getattr(self, name), name)
        check_positive_int(self.eval_context, "eval_context")
        check_positive_int(self.eval_horizon, "eval_horizon")
        if self.exploration_noise < 0:
            raise ValueError(f"exploration_noise must be >= 0, got {self.exploration_noise}")
        if self.policy not in ("none", "imagine"):
            raise ValueError(f"policy must be 'none' or 'imagine', got {self.policy!r}")

    def to_run_config(self) -> RunConfig:
        """The :class:`RunConfig` (``model="rssm"``) that :func:`planet_config` maps back to
        this config: the RSSM, training and loop settings go into ``model_options``."""
        loop = {name: getattr(self, name) for name in sorted(LOOP_KEYS)}
        return RunConfig(
            env_id=self.env_id,
            model="rssm",
            planner=self.planner,
            episodes=self.episodes,
            seed_episodes=self.seed_episodes,
            seed=self.seed,
            device=self.device,
            out=self.out,
            horizon=self.horizon,
            n_particles=self.n_particles,
            planner_options=dict(self.planner_options),
            model_options={
                **dataclasses.asdict(self.model),
                **dataclasses.asdict(self.train),
                **loop,
            },
            max_episode_steps=self.max_episode_steps,
            use_preset=False,
            progress=self.progress,
            policy=self.policy,
            explicit=PLANET_DEFAULTED,
        )


LOOP_KEYS = frozenset(
    {"action_repeat", "train_steps", "exploration_noise", "eval_context", "eval_horizon"}
)
""":class:`PlanetConfig` fields set through ``model_options`` (``--model-opt``); the fields
the loops share have their own :class:`RunConfig` fields."""
_TRAIN_KEYS = frozenset(f.name for f in dataclasses.fields(RSSMTrainConfig))
_MODEL_KEYS = frozenset(f.name for f in dataclasses.fields(RSSMConfig))
PLANET_DEFAULTED = frozenset({"episodes", "seed_episodes", "horizon", "n_particles"})
"""Shared fields whose PlaNet defaults replace the :class:`RunConfig` defaults."""


def _check_supported(cfg: RunConfig) -> None:
    """Refuse the settings the PlaNet loop has no use for, instead of ignoring them."""
    if cfg.compute_dtype != "float32":
        raise ValueError(
            f"compute_dtype={cfg.compute_dtype!r} (--dtype) is not supported with --model rssm: "
            "the RSSM plans in float32"
        )
    if cfg.policy == "learned":
        raise ValueError(
            "--policy learned (policy='learned') is not supported with --model rssm: the PlaNet "
            "loop fits no policy to its actions (a latent value is supported: --value learned "
            "--gamma G; an actor trained in latent imagination: --policy imagine)"
        )
    discounted = "gamma" in cfg.explicit or cfg.gamma != 1.0
    if cfg.policy == "imagine":
        if cfg.value == "learned":
            raise ValueError(
                "value='learned' (--value learned) and policy='imagine' (--policy imagine) "
                "cannot be combined: the imagined actor-critic has its own critic, and no "
                "planner runs to use a value"
            )
        if cfg.planner_options:
            raise ValueError(
                f"planner_options {dict(cfg.planner_options)} (--planner-opt) have no effect "
                "with policy='imagine' (--policy imagine): the actor acts, no planner runs"
            )
        if discounted and not cfg.gamma < 1.0:
            raise ValueError(
                f"policy='imagine' (--policy imagine) bootstraps its lambda-returns from a "
                f"critic and needs a discount gamma < 1 (--gamma, default 0.99), got "
                f"gamma={cfg.gamma}"
            )
        return
    if cfg.value == "learned" and not cfg.gamma < 1.0:
        raise ValueError(
            f"value='learned' (--value learned) with --model rssm needs a discount gamma < 1 "
            f"(--gamma, e.g. 0.95) for its infinite-horizon latent value, got gamma={cfg.gamma}"
        )
    if discounted and cfg.value != "learned":
        raise ValueError(
            f"gamma={cfg.gamma} (--gamma) with --model rssm is used only by a learned latent "
            "value (--value learned); without one the PlaNet loop plans undiscounted latent "
            "returns, so drop --gamma or add --value learned"
        )


def planet_config(cfg: RunConfig) -> PlanetConfig:
    """The :class:`PlanetConfig` of a ``model="rssm"`` run config.

    ``episodes``, ``seed_episodes``, ``horizon`` and ``n_particles`` left at the
    :class:`RunConfig` defaults (and not named in ``cfg.explicit``) take the PlaNet defaults
    (30, 5, 12, 1). ``model_options`` keys may be :class:`RSSMConfig` fields,
    :class:`RSSMTrainConfig` fields (``batch_size``, ``chunk_length``, ...) or the loop's
    (:data:`LOOP_KEYS`). Env presets are tuned for state-space models and do not apply;
    ``planner_options`` override :data:`PLANNER_DEFAULTS`. The RSSM learns its own reward,
    so ``reward`` / ``termination`` / ``fit`` / ``min_seed_transitions`` have no effect.

    Raises:
        ValueError: unknown ``model_options`` keys, ``policy`` learned, a ``gamma`` without
            a learned value or ``policy="imagine"`` (or >= 1 with them), ``value`` learned
            with ``policy="imagine"``, or a ``compute_dtype`` other than float32.
    """
    _check_supported(cfg)
    run_defaults, defaults = RunConfig(), PlanetConfig()

    def shared(name: str) -> Any:
        value = getattr(cfg, name)
        if name in cfg.explicit or value != getattr(run_defaults, name):
            return value
        return getattr(defaults, name)

    opts = dict(cfg.model_options)
    loop = {k: opts.pop(k) for k in list(opts) if k in LOOP_KEYS}
    train = {k: opts.pop(k) for k in list(opts) if k in _TRAIN_KEYS}
    unknown = sorted(set(opts) - _MODEL_KEYS)
    if unknown:
        valid = sorted(LOOP_KEYS | _TRAIN_KEYS | _MODEL_KEYS)
        raise ValueError(
            f"unknown model option(s) {unknown} (--model-opt) for --model rssm; valid: {valid}"
        )
    return PlanetConfig(
        env_id=cfg.env_id,
        planner=cfg.planner,
        seed=cfg.seed,
        device=cfg.device,
        out=cfg.out,
        max_episode_steps=cfg.max_episode_steps,
        planner_options=dict(cfg.planner_options),
        model=config_from_options(RSSMConfig, opts),
        train=config_from_options(RSSMTrainConfig, train),
        progress=cfg.progress,
        policy=cfg.policy,
        **{name: shared(name) for name in sorted(PLANET_DEFAULTED)},
        **loop,
    )


def obs_spec(space: gym.Space) -> tuple[tuple[int, ...], torch.dtype]:
    """``(obs_shape, dtype)`` the RSSM stores for observation space ``space``.

    Raises:
        TypeError: neither a 1-D Box nor a uint8 image Box ``(S, S, C)``.
    """
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        return tuple(space.shape), torch.float32
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 3 and space.dtype == np.uint8:
        return tuple(space.shape), torch.uint8
    raise TypeError(
        f"the RSSM needs a 1-D Box or a uint8 image Box (S, S, C) observation space, got {space}"
    )


def agent_step_limit(cfg: PlanetConfig, env_limit: int | None) -> int | None:
    """Agent steps per episode: ``max_episode_steps``, else the env's limit over action repeat."""
    if cfg.max_episode_steps is None and env_limit:
        return math.ceil(env_limit / cfg.action_repeat)
    return cfg.max_episode_steps


def check_fits_episode(what: str, length: int, episode_length: int | None, repeat: int) -> None:
    """Raise ``ValueError`` if ``length`` steps (``what``) exceed an episode of
    ``episode_length`` observations under action repeat ``repeat`` (None: not checked)."""
    if episode_length is not None and episode_length < length:
        raise ValueError(
            f"{what} is longer than an episode ({episode_length} steps incl. the first "
            f"observation, with action_repeat {repeat}); lower it"
        )


def check_episode_lengths(cfg: PlanetConfig, limit: int | None) -> None:
    """Training chunks and the held-out chunks must fit in an episode of ``limit`` agent steps.

    Raises:
        ValueError: ``chunk_length`` or ``eval_context + eval_horizon`` longer than
            ``limit + 1`` observations.
    """
    episode = None if limit is None else limit + 1
    held_out = cfg.eval_context + cfg.eval_horizon
    for what, length in (
        (f"chunk_length {cfg.train.chunk_length}", cfg.train.chunk_length),
        (f"eval_context + eval_horizon = {held_out}", held_out),
    ):
        check_fits_episode(what, length, episode, cfg.action_repeat)
