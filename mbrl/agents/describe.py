"""The resolved configuration of a run, as the lines ``mbrl run`` prints before it starts.

A user running their own env needs to see what the toolkit chose for them (the preset, the
sizes fitted to the machine, the learned task models, the backend and dtype) before spending
an hour on it; these lines say it, one component per line.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from mbrl.agents.presets import PRESETS
from mbrl.agents.setup import RunSetup
from mbrl.models.task_models import LearnedTermination
from mbrl.spaces import observation_dim

ALWAYS_SHOWN = ("population", "iterations", "num_simulations")
"""Planner config fields printed even at their defaults (the sizes that set the cost)."""


def _changed_fields(config: Any) -> dict[str, Any]:
    """The fields of the dataclass ``config`` that differ from its class defaults, plus the
    :data:`ALWAYS_SHOWN` sizes."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.default is not dataclasses.MISSING and f.name not in ALWAYS_SHOWN:
            if value == f.default:
                continue
        elif f.default_factory is not dataclasses.MISSING and value == f.default_factory():
            continue
        out[f.name] = value
    return out


def _options(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())


def _planner_config(setup: RunSetup) -> Any | None:
    """The planner's own settings dataclass (a sampling planner's optimiser config)."""
    optimizer = getattr(setup.planner, "optimizer", None)
    config = getattr(optimizer, "config", None) or getattr(setup.planner, "config", None)
    return config if dataclasses.is_dataclass(config) else None


def describe_setup(setup: RunSetup) -> list[str]:
    """The resolved configuration of ``setup``, one line per component (env, model, task
    functions, planner, sizing, compute)."""
    cfg, info = setup.config, setup.env_info
    preset = "its preset" if cfg.use_preset and info.env_id in PRESETS else "no preset"
    limit = f"{info.max_episode_steps} steps" if info.max_episode_steps else "no step limit"
    if cfg.max_episode_steps is not None:
        limit = f"capped at {cfg.max_episode_steps} steps"
    codec = info.codec
    action = f"{codec.dim} discrete" if codec.discrete else f"({codec.dim},) box"
    lines = [
        f"env {info.env_id} ({preset}): obs ({observation_dim(info.observation_space)},), "
        f"action {action}, episodes {limit}; {cfg.seed_episodes} seed + {cfg.episodes} MPC "
        f"episodes, seed {cfg.seed}"
    ]
    n_params = sum(p.numel() for p in setup.model.parameters())
    model_opts = f": {_options(cfg.model_options)}" if cfg.model_options else ""
    lines.append(
        f"model {cfg.model} ({type(setup.model).__name__}, {n_params:,} parameters){model_opts}"
    )
    parts = setup.state
    if parts is not None and parts.task_models is not None:
        term = parts.task_models.termination
        ending = type(term).__name__ if term is not None else "none (the env never terminates)"
        explorer = parts.task_models.explorer
        explore = (
            f"; explore {explorer.mode} (disagreement bonus x {explorer.weight:g}"
            + (" while the reward is sparse)" if explorer.mode == "auto" else ")")
            if explorer is not None
            else ""
        )
        net = cfg.task_net()
        net_size = f" {net.hidden_size} x {net.num_layers}"  # units x hidden layers
        if isinstance(term, LearnedTermination):
            ending += net_size
        lines.append(f"reward learned (LearnedReward{net_size}), termination {ending}{explore}")
    elif parts is not None:
        lines.append("reward and termination: the env's known task functions")
    else:
        lines.append("reward learned by the latent model's reward head (PlaNet)")
    lines.append(_actor_line(setup) or _planner_line(setup))
    size = setup.plan_size
    if size is not None:
        lines.append(
            f"sizing: {size.reason}: {size.population} x {size.iterations} predicted "
            f"{size.predicted_ms:.0f} ms per plan call (default {size.default_population} x "
            f"{size.default_iterations}: {size.default_ms:.0f} ms); --auto-size-ms off keeps "
            "the defaults"
        )
    budget = f", budget {cfg.plan_budget_ms:g} ms per plan call" if cfg.plan_budget_ms else ""
    dtype = setup.dtype.dtype if setup.dtype is not None else cfg.compute_dtype
    lines.append(
        f"compute: {setup.device}, {dtype}, rollout backend {setup.backend.backend}{budget}"
    )
    return lines


def _actor_line(setup: RunSetup) -> str | None:
    """The acting actor of ``policy="imagine"`` (Dreamer), or None when a planner acts."""
    latent_ac = setup.planet.actor_critic if setup.planet is not None else None
    if latent_ac is None:
        return None
    ic = latent_ac.ac.config
    return (
        f"actor (policy imagine, Dreamer): trained in latent imagination, horizon "
        f"{ic.horizon}, {ic.n_particles} particles, gamma {ic.gamma:g}, lambda {ic.lam:g}, "
        f"{latent_ac.updates} updates of {ic.batch_size} start beliefs per training phase; "
        "no planner runs"
    )


def _planner_line(setup: RunSetup) -> str:
    """The planner, its horizon, particles, discount, search aids and changed options."""
    cfg = setup.config
    aids = [f"value {cfg.value}"] + ([f"policy {cfg.policy}"] if cfg.policy != "none" else [])
    config = _planner_config(setup)
    # A planner whose own config has a horizon (GP-MPC) plans with that one.
    own_horizon = getattr(config, "horizon", None) is not None
    horizon = "" if own_horizon else f"horizon {cfg.horizon}, "
    plan = (
        f"planner {cfg.planner}: {horizon}{cfg.n_particles} particles, gamma {cfg.gamma:g}, "
        f"{', '.join(aids)}"
    )
    if config is not None:
        plan += f"; {_options(_changed_fields(config))}"
    return plan
