"""Planners by name, for the CLI and the benchmark suite.

A builder receives a :class:`PlannerContext` (model, task functions, action space, shared
settings and planner-specific ``options``) and returns a :class:`~mbrl.planners.base.Planner`.
Later planners join with :func:`register_planner`.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from mbrl.models.base import DynamicsModel
from mbrl.planners.base import Planner
from mbrl.planners.cem import CEMConfig, CEMOptimizer
from mbrl.planners.mppi import MPPIConfig, MPPIOptimizer
from mbrl.planners.random_shooting import RandomShootingConfig, RandomShootingOptimizer
from mbrl.planners.sampling import SamplingPlanner, SearchAidsConfig
from mbrl.spaces import ActionCodec
from mbrl.task_fns import RewardFn, TerminationFn
from mbrl.util.configs import config_from_options


@dataclass(frozen=True)
class PlannerContext:
    """Everything a planner builder may need.

    Attributes:
        model: the dynamics model to plan with.
        reward_fn / termination_fn: task functions ``(obs, action, next_obs) -> (M,)``.
        codec: the env's action space and its encoding (bounds ``(A,)``).
        generator: randomness for the planner (on ``device``).
        horizon: planning horizon ``H`` (default 15).
        n_particles: particles per candidate (default 5).
        gamma: discount (default 1).
        options: planner-specific settings (e.g. ``{"population": 300}`` for CEM); unknown
            keys raise ``ValueError``.
        value_fn: optional learned state value ``(M, O) -> (M,)`` for planners whose class
            sets ``accepts_value_fn`` (default None): MCTS's leaf value, the sampling
            planners' terminal value.
        policy_fn: optional rollout policy ``(obs (M, O), generator) -> encoded actions
            (M, A)`` for planners whose class sets ``accepts_policy_fn`` (default None).
        policy_mode_fn: the same policy's most likely action ``(obs (M, O)) -> (M, A)``
            (default None); the sampling planners' first proposal and warm start.
    """

    model: DynamicsModel
    reward_fn: RewardFn
    termination_fn: TerminationFn | None
    codec: ActionCodec
    generator: torch.Generator
    horizon: int = 15
    n_particles: int = 5
    gamma: float = 1.0
    options: dict[str, Any] = field(default_factory=dict)
    value_fn: Callable[[torch.Tensor], torch.Tensor] | None = None
    policy_fn: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None
    policy_mode_fn: Callable[[torch.Tensor], torch.Tensor] | None = None

    @property
    def device(self) -> torch.device:
        """Device the planner runs on (the generator's)."""
        return self.generator.device


Builder = Callable[[PlannerContext], Planner]


@dataclass(frozen=True)
class PlannerEntry:
    """A registered planner: its class (for the action-space check) and its builder."""

    planner_class: type[Planner]
    builder: Builder
    description: str


_PLANNERS: dict[str, PlannerEntry] = {}
_LAZY_PLANNERS = {"gpmpc": "mbrl.planners.gpmpc", "pilco": "mbrl.planners.pilco"}
"""Planners registered by their own module, imported the first time their name is asked for
(GP-MPC and PILCO pull in scipy.optimize and the GP belief machinery, about 1 s that
``import mbrl.planners`` need not spend)."""


def register_planner(
    name: str, planner_class: type[Planner], builder: Builder, description: str = ""
) -> None:
    """Make ``name`` buildable by :func:`build_planner` (and ``mbrl run --planner name``)."""
    _PLANNERS[name] = PlannerEntry(planner_class, builder, description)


def bounded_planner_builder(planner_class: Callable[..., Planner], config_class: type) -> Builder:
    """The builder of a planner constructed as ``planner_class(model, reward_fn,
    termination_fn, low (A,), high (A,), horizon, config, gamma=, generator=)`` with
    ``config`` a ``config_class`` read from the context's options (GP-MPC, PILCO)."""

    def build(ctx: PlannerContext) -> Planner:
        cfg = config_from_options(config_class, ctx.options)
        low, high = ctx.codec.bounds(ctx.device)
        return planner_class(
            ctx.model,
            ctx.reward_fn,
            ctx.termination_fn,
            low.to(torch.float32),
            high.to(torch.float32),
            ctx.horizon,
            cfg,
            gamma=ctx.gamma,
            generator=ctx.generator,
        )

    return build


def planner_names() -> list[str]:
    """Sorted names of registered planners (including those registered on first use)."""
    return sorted(set(_PLANNERS) | set(_LAZY_PLANNERS))


def planner_entry(name: str) -> PlannerEntry:
    """The registry entry of ``name``.

    Raises:
        ValueError: unknown planner name (the message lists the known ones).
    """
    if name not in _PLANNERS and name in _LAZY_PLANNERS:
        importlib.import_module(_LAZY_PLANNERS[name])  # registers it
    try:
        return _PLANNERS[name]
    except KeyError as err:
        raise ValueError(f"unknown planner {name!r}; choose one of {planner_names()}") from err


def build_planner(name: str, ctx: PlannerContext) -> Planner:
    """Build planner ``name`` after checking that it supports ``ctx.codec``'s action space.

    Raises:
        ValueError: unknown name or option; TypeError: unsupported action space.
    """
    entry = planner_entry(name)
    entry.planner_class.check_action_space(ctx.codec)
    return entry.builder(ctx)


AIDS_OPTIONS = frozenset(f.name for f in dataclasses.fields(SearchAidsConfig))
"""Planner options of the sampling planners that go to :class:`SearchAidsConfig` (the rest
configure the optimiser)."""
_POLICY_OPTIONS = ("policy_fraction", "policy_warm_start")


def split_aids_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(optimiser options, SearchAidsConfig options)`` of a sampling planner's options."""
    aids = {k: v for k, v in options.items() if k in AIDS_OPTIONS}
    return {k: v for k, v in options.items() if k not in AIDS_OPTIONS}, aids


def _search_aids(ctx: PlannerContext, given: dict[str, Any]) -> SearchAidsConfig:
    """The :class:`SearchAidsConfig` of ``given`` options, checked against what ``ctx`` has.

    Raises:
        ValueError: a policy option without a policy, ``value_pessimism`` without a value
            that takes one (a :class:`~mbrl.models.value_model.LearnedValue`).
    """
    aids = config_from_options(SearchAidsConfig, given, source="planner option")
    named = sorted(k for k in given if k in _POLICY_OPTIONS)
    if named and ctx.policy_fn is None:
        raise ValueError(
            f"planner option(s) {named} need a rollout policy (--policy learned); this run has none"
        )
    if "value_pessimism" in given and not _takes_pessimism(ctx.value_fn):
        raise ValueError(
            "planner option value_pessimism needs a learned value (--value learned), "
            f"got value_fn={ctx.value_fn!r}"
        )
    return aids


def _takes_pessimism(value_fn: Any) -> bool:
    # Imported here: the value model pulls in the data and training modules.
    from mbrl.models.value_model import LearnedValue

    return isinstance(value_fn, LearnedValue)


def _sampling_builder(config_cls: type, optimizer_cls: type, base: Any | None = None) -> Builder:
    def build(ctx: PlannerContext) -> Planner:
        given, aid_options = split_aids_options(ctx.options)
        cfg = config_from_options(config_cls, given, base)
        aids = _search_aids(ctx, aid_options)
        value = ctx.value_fn
        if value is not None and aids.value_pessimism is not None:
            value = functools.partial(value, pessimism=aids.value_pessimism)
        low, high = ctx.codec.bounds(ctx.device)
        optimizer = optimizer_cls(cfg, low, high, ctx.generator)
        return SamplingPlanner(
            ctx.model,
            ctx.reward_fn,
            ctx.termination_fn,
            optimizer,
            ctx.horizon,
            n_particles=ctx.n_particles,
            gamma=ctx.gamma,
            generator=ctx.generator,
            terminal_value=value,
            policy=ctx.policy_fn,
            policy_mode=ctx.policy_mode_fn if ctx.policy_fn is not None else None,
            aids=aids,
        )

    return build


ICEM_DEFAULTS = CEMConfig(
    population=300,
    elite_frac=0.1,
    iterations=3,
    momentum=0.1,
    noise_beta=2.0,
    keep_elites_frac=0.3,
    population_decay=0.5,
    return_best=True,
)
"""iCEM defaults (Pinneri et al. 2020): coloured noise, kept elites, decaying population."""

register_planner(
    "cem",
    SamplingPlanner,
    _sampling_builder(CEMConfig, CEMOptimizer),
    "cross-entropy method (PETS)",
)
register_planner(
    "icem",
    SamplingPlanner,
    _sampling_builder(CEMConfig, CEMOptimizer, ICEM_DEFAULTS),
    "improved CEM (iCEM)",
)
register_planner("mppi", SamplingPlanner, _sampling_builder(MPPIConfig, MPPIOptimizer), "MPPI")
register_planner(
    "shooting",
    SamplingPlanner,
    _sampling_builder(RandomShootingConfig, RandomShootingOptimizer),
    "random shooting",
)
