"""One run set-up: everything a run needs, built and checked from a :class:`RunConfig`.

:func:`build_run` resolves the config (env preset, or the PlaNet defaults for
``model="rssm"``), checks all of it and builds the env, the models, the task functions, the
planner and the agent, before any env step. It is the only place a run is set up:

- :func:`mbrl.agents.loop.run` runs the state-space loop or, for ``model="rssm"``, the PlaNet
  loop (:mod:`mbrl.agents.planet_loop`) on what it returns;
- :func:`mbrl.bench.suite.check_cell` validates benchmark cells with ``build_run(cfg,
  dry=True)``, so a cell passes the suite's check exactly when its run would start.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import torch
from tqdm.auto import tqdm

from mbrl.agents.backend import (
    BackendChoice,
    DtypeChoice,
    Measure,
    choose_rollout_backend,
    resolve_compute_dtype,
)
from mbrl.agents.belief import BeliefAgent
from mbrl.agents.config import DTYPES, RunConfig
from mbrl.agents.env_factory import make_env, observation_layout
from mbrl.agents.exploration import ExplorationReward, can_explore
from mbrl.agents.learned import SearchAids, TaskModels
from mbrl.agents.mpc import MPCAgent
from mbrl.agents.plan_sizing import MeasureCost, size_options, size_run_planner, sizing_target_ms
from mbrl.agents.planet_config import (
    PLANET_DEFAULTED,
    PLANNER_DEFAULTS,
    PlanetConfig,
    agent_step_limit,
    check_episode_lengths,
    obs_spec,
    planet_config,
)
from mbrl.agents.presets import apply_preset
from mbrl.agents.space_defaults import horizon_for_planner, planner_for_actions
from mbrl.envs.observation_wrappers import ActionRepeat
from mbrl.imagination.actor_critic import ImaginationConfig
from mbrl.imagination.latent import LatentActorCritic
from mbrl.models.base import CONDITIONING, DynamicsModel
from mbrl.models.registry import build_model, model_names
from mbrl.models.rssm.latent import LatentDynamics, LatentReward
from mbrl.models.rssm.model import RSSM
from mbrl.models.rssm.training import RSSMTrainer
from mbrl.models.rssm.value import LatentValueConfig
from mbrl.models.value_model import LearnedValue
from mbrl.planners.base import Planner
from mbrl.planners.policy import PolicyPlanner
from mbrl.planners.registry import (
    PlannerContext,
    PlannerEntry,
    build_planner,
    planner_entry,
    planner_names,
)
from mbrl.planners.sampling import SamplingPlanner
from mbrl.planners.sizing import PlanSize, measure_objective_cost
from mbrl.rollout.compiled import pick_fastest_backend
from mbrl.seeding import make_generator, resolve_device, seed_everything
from mbrl.spaces import ActionCodec, ObservationLayout, observation_dim
from mbrl.task_fns import get_task_fns

LATENT_MODEL = "rssm"
"""The model kind that runs the PlaNet loop (a latent world model, not a registered
:class:`~mbrl.models.base.DynamicsModel`)."""


def run_model_names() -> list[str]:
    """Every ``RunConfig.model`` a run accepts: the registered models and ``rssm``."""
    return [*model_names(), LATENT_MODEL]


@dataclass(frozen=True)
class EnvInfo:
    """What the set-up reads from an env.

    Attributes:
        env_id: the registered id (presets and task functions are keyed by it).
        codec: the action space and its encoding.
        observation_space: the env's observation space (flat for a ``Dict`` / ``Tuple`` env,
            which :func:`~mbrl.agents.env_factory.make_env` flattens).
        max_episode_steps: the env's own step limit (None: none).
        observation_layout: where each entry of a flattened ``Dict`` / ``Tuple`` observation
            lies in the flat vector (None for envs that were not flattened); JSON:
            ``observation_layout.to_json()``.
    """

    env_id: str
    codec: ActionCodec
    observation_space: gym.Space
    max_episode_steps: int | None
    observation_layout: ObservationLayout | None = None

    @classmethod
    def of(cls, env: gym.Env, given_id: str) -> EnvInfo:
        """The info of ``env``, made from id ``given_id``."""
        spec = env.spec
        return cls(
            spec.id if spec else given_id,
            ActionCodec.from_space(env.action_space),
            env.observation_space,
            spec.max_episode_steps if spec else None,
            observation_layout(env),
        )


@dataclass(frozen=True)
class StateParts:
    """What a state-space run fits besides its dynamics.

    Attributes:
        task_models: learned reward / termination (None with the env's known functions).
        aids: the learned value and rollout policy handed to the planner (each None unless
            asked for).
    """

    task_models: TaskModels | None
    aids: SearchAids


@dataclass(frozen=True)
class PlanetParts:
    """What the PlaNet loop needs besides the common parts.

    Attributes:
        config: the loop's settings; trainer: trains the RSSM on chunks of episodes.
        obs_shape / obs_dtype: how observations are stored (vector float32 or uint8 image).
        value: the learned value on belief features (``value="learned"``; the trainer
            refits it after every training phase), else None.
        actor_critic: the latent actor-critic (``policy="imagine"``; trained after every
            training phase, its actor acts through the planner slot), else None.
    """

    config: PlanetConfig
    trainer: RSSMTrainer
    obs_shape: tuple[int, ...]
    obs_dtype: torch.dtype
    value: LearnedValue | None = None
    actor_critic: LatentActorCritic | None = None


@dataclass(frozen=True)
class RunSetup:
    """A run, set up and checked; the loops only step, fit and write.

    Attributes:
        config: the resolved config (preset or PlaNet defaults applied, ``rollout_backend``
            the backend chosen, ``compute_dtype`` the dtype in use).
        env_info: what was read from the env.
        env: the env the loop steps (with action repeat for ``rssm``); None for a dry set-up.
            A set-up is used by one run, which closes it.
        device: where models and planning run; generator: the planner's randomness.
        model: the model that is fitted and saved (the RSSM for ``rssm``).
        reward_fn / termination_fn: the task functions the planner plans with.
        planner: the planner; agent: :class:`MPCAgent` or :class:`BeliefAgent` around it.
        max_steps: cap on agent steps per episode (None: the env's own limit).
        backend: the rollout backend the planner scores candidates with.
        state: the state-space loop's parts (None for ``rssm``).
        planet: the PlaNet loop's parts (None unless ``rssm``).
        dtype: the compute dtype in use and why (bfloat16 falls back to float32 without
            native bf16; see :func:`~mbrl.agents.backend.resolve_compute_dtype`).
        plan_size: the sizes the planner was given for ``auto_size_ms`` and why (None where
            nothing was sized; see :mod:`mbrl.agents.plan_sizing`).
    """

    config: RunConfig
    env_info: EnvInfo
    env: gym.Env | None
    device: torch.device
    generator: torch.Generator
    model: torch.nn.Module
    reward_fn: Callable
    termination_fn: Callable | None
    planner: Planner
    agent: MPCAgent | BeliefAgent
    max_steps: int | None
    backend: BackendChoice
    state: StateParts | None = None
    planet: PlanetParts | None = None
    dtype: DtypeChoice | None = None
    plan_size: PlanSize | None = None

    @property
    def codec(self) -> ActionCodec:
        """The env's action codec."""
        return self.env_info.codec


def check_search_aids(cfg: RunConfig, entry: PlannerEntry) -> None:
    """Raise ``ValueError`` unless the planner of ``entry`` can use ``cfg``'s value / policy."""
    if cfg.policy == "imagine" and cfg.model != LATENT_MODEL:
        raise ValueError(
            f"policy='imagine' (--policy imagine) trains an actor in the latent imagination of "
            f"--model {LATENT_MODEL}; with --model {cfg.model} run the imagination actor-critic "
            "loop instead: mbrl dyna --algo imagine"
        )
    if cfg.value == "learned":
        if not entry.planner_class.accepts_value_fn:
            raise ValueError(
                f"value='learned' (--value learned) needs a planner that uses a value function "
                f"({', '.join(_aided_planners('accepts_value_fn'))}); planner {cfg.planner!r} "
                "does not"
            )
        if not cfg.gamma < 1.0:
            raise ValueError(
                f"value='learned' (--value learned, possibly from the env preset) fits "
                f"discounted returns and needs gamma < 1 (e.g. --gamma 0.99), got "
                f"gamma={cfg.gamma}; pass --value none to plan without a value"
            )
    if cfg.policy == "learned" and not entry.planner_class.accepts_policy_fn:
        raise ValueError(
            f"policy='learned' (--policy learned) needs a planner that rolls out with a policy "
            f"({', '.join(_aided_planners('accepts_policy_fn'))}); planner {cfg.planner!r} "
            "does not"
        )


def _aided_planners(flag: str) -> list[str]:
    """Registered planners whose class sets ``flag`` (``accepts_value_fn`` / ``_policy_fn``)."""
    return [n for n in planner_names() if getattr(planner_entry(n).planner_class, flag)]


def build_run(
    config: RunConfig,
    *,
    dry: bool = False,
    check_device: bool = True,
    env_cache: dict[str, EnvInfo] | None = None,
    measure: Measure = pick_fastest_backend,
    size_cost: MeasureCost = measure_objective_cost,
) -> RunSetup:
    """Resolve, check and build the run ``config`` describes; no env step is taken.

    Every error a run can raise about its config is raised here: env id, action and
    observation spaces vs planner and model, model and planner names and options, value /
    policy vs planner and gamma, device, episode lengths (``rssm``).

    Args:
        config: the run's settings.
        dry: only check: build everything on CPU, keep no env, seed and measure nothing
            (the benchmark suite's validation).
        check_device: with ``dry``, also check that ``config.device`` exists on this machine
            (False: only that it parses, for cells that run elsewhere, e.g. on Ray).
        env_cache: with ``dry``, env id -> :class:`EnvInfo` shared between calls, so each env
            is created once.
        measure: the timing function of the rollout backend choice (see
            :func:`~mbrl.agents.backend.choose_rollout_backend`).
        size_cost: the timing function of planner sizing (``auto_size_ms``, see
            :func:`~mbrl.agents.plan_sizing.size_run_planner`).

    Returns:
        :class:`RunSetup` (``env`` is None when ``dry``).

    Raises:
        ValueError / TypeError: naming the bad setting.
    """
    env, info = _open_env(config.env_id, keep=not dry, cache=env_cache)
    try:
        if dry:
            resolve_device(config.device) if check_device else torch.device(config.device)
            device = torch.device("cpu")
        else:
            device = resolve_device(config.device)
        build = _build_planet if config.model == LATENT_MODEL else _build_state
        return build(config, _Where(env, info, device, dry, measure, size_cost))
    except BaseException:
        if env is not None:
            env.close()
        raise


def _open_env(
    env_id: str, keep: bool, cache: dict[str, EnvInfo] | None
) -> tuple[gym.Env | None, EnvInfo]:
    if not keep and cache is not None and env_id in cache:
        return None, cache[env_id]
    env = make_env(env_id)
    info = EnvInfo.of(env, env_id)
    if cache is not None:
        cache[env_id] = info
    if keep:
        return env, info
    env.close()
    return None, info


@dataclass(frozen=True)
class _Where:
    """Where a run is built: its env (None when dry) and what was read from it, the device,
    whether the set-up is dry, and the backend timing function."""

    env: gym.Env | None
    info: EnvInfo
    device: torch.device
    dry: bool
    measure: Measure
    size_cost: MeasureCost = measure_objective_cost

    def backend(self, planner: Planner, cfg: RunConfig) -> BackendChoice:
        """The rollout backend ``planner`` uses (nothing measured when dry)."""
        if self.dry:
            return BackendChoice("eager", "dry set-up: nothing measured")
        return choose_rollout_backend(
            planner, cfg.rollout_backend, self.device, cfg.seed, self.measure
        )

    def plan_size(
        self, planner: Planner, cfg: RunConfig, users_options: Mapping[str, Any]
    ) -> PlanSize | None:
        """The sizes ``planner`` gets for ``cfg.auto_size_ms`` (None: not sized).

        ``users_options`` are the planner options before the env preset. Under a budget
        (``plan_budget_ms``) only they count as chosen: a preset's sizes were tuned for
        return, not for the user's deadline, so they are shrunk to fit it like defaults.
        """
        budget = _run_budget(cfg)
        target = sizing_target_ms(getattr(cfg, "auto_size_ms", None), budget)
        chosen = cfg.planner_options if budget is None else users_options
        return size_run_planner(planner, chosen, target, cfg.seed, self.size_cost)

    def dtype(self, cfg: RunConfig) -> DtypeChoice:
        """The compute dtype of the run (not resolved when dry: the run may go elsewhere)."""
        if self.dry:
            return DtypeChoice(cfg.compute_dtype, cfg.compute_dtype, "dry set-up: not resolved")
        return resolve_compute_dtype(cfg.compute_dtype, self.device)


def planner_options(
    given: Mapping[str, Any], budget_ms: float | None, defaults: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The planner options of a run: ``defaults``, then the ``given`` planner options
    (``--planner-opt``), then the run's ``budget_ms`` (``--plan-budget-ms``) as the planner's
    own ``plan_budget_ms``.

    Raises:
        ValueError: the budget given both ways with different values.
    """
    options = {**(defaults or {}), **given}
    if budget_ms is not None:
        option = given.get(BUDGET_OPTION)
        if option is not None and option != budget_ms:
            raise ValueError(
                f"plan_budget_ms is {budget_ms} (--plan-budget-ms) but the planner option "
                f"plan_budget_ms is {option} (--planner-opt); give one of them"
            )
        options[BUDGET_OPTION] = budget_ms
    return options


BUDGET_OPTION = "plan_budget_ms"
"""The planner option every registered planner's config has (:mod:`mbrl.planners.deadline`)."""


def _run_budget(cfg: RunConfig) -> float | None:
    # A RunConfig without plan_budget_ms (before the field existed) sets the budget through
    # the planner options only.
    return getattr(cfg, "plan_budget_ms", None)


def _run_replan_every(cfg: RunConfig) -> int:
    # A RunConfig without replan_every (before the field existed) replans every step.
    return getattr(cfg, "replan_every", 1)


def _build_state(cfg: RunConfig, where: _Where) -> RunSetup:
    env, info, device, dry = where.env, where.info, where.device, where.dry
    users_options = cfg.planner_options
    codec = info.codec
    # Before the preset, so that the preset's options for the planner chosen are applied.
    cfg = planner_for_actions(cfg, codec)
    if cfg.use_preset:
        cfg = apply_preset(cfg, info.env_id)
    obs_dim = observation_dim(info.observation_space)
    entry = planner_entry(cfg.planner)
    entry.planner_class.check_action_space(codec)
    check_search_aids(cfg, entry)
    cfg = horizon_for_planner(cfg, entry.planner_class, info.max_episode_steps)
    if not dry:
        seed_everything(cfg.seed)
    gen = make_generator(cfg.seed, device)
    model = build_model(cfg.model, obs_dim, codec.dim, cfg.model_options, info.env_id).to(device)
    if cfg.condition_steps and CONDITIONING not in model.capabilities:
        raise ValueError(
            f"condition_steps=True (--condition-steps) needs a model with the "
            f"{CONDITIONING!r} capability (a cheap posterior update, e.g. --model gp); "
            f"--model {cfg.model} has {sorted(model.capabilities)}"
        )
    dtype = where.dtype(cfg)
    cfg = dataclasses.replace(cfg, compute_dtype=dtype.dtype)
    if hasattr(model, "set_compute_dtype"):
        model.set_compute_dtype(DTYPES[dtype.dtype])
    known = get_task_fns(info.env_id)
    task_models = None
    if cfg.reward == "known" and known is not None:
        if cfg.explore == "always":
            raise ValueError(
                "explore='always' (--explore always) adds a bonus to a learned reward; "
                f"{cfg.env_id} plans with its known reward: add --reward learned"
            )
        reward_fn, term_fn = known.planner_reward, known.termination
    else:
        if cfg.reward == "known" and cfg.progress and not dry:
            tqdm.write(
                f"no known reward for {cfg.env_id}: learning reward and termination models",
                file=sys.stdout,
            )
        learn_term = known is None or known.termination is not None
        task_models = TaskModels(
            obs_dim, codec.dim, device, cfg.termination if learn_term else None, cfg.task_net()
        )
        reward_fn = _exploring_reward(cfg, model, task_models)
        term_fn = task_models.termination
    aids = SearchAids(
        cfg.value == "learned", cfg.policy == "learned", cfg.gamma, obs_dim, codec, device
    )
    ctx = PlannerContext(
        model,
        reward_fn,
        term_fn,
        codec,
        gen,
        cfg.horizon,
        cfg.n_particles,
        cfg.gamma,
        planner_options(cfg.planner_options, _run_budget(cfg)),
        aids.value,
        aids.policy_fn,
        aids.policy.mode if aids.policy is not None else None,
    )
    planner = build_planner(cfg.planner, ctx)
    plan_size = None if dry else where.plan_size(planner, cfg, users_options)
    if plan_size is not None:
        # The resolved config holds the sizes even when they are the defaults, so a resume
        # (which reads them from config.json) does not measure again.
        sized = {**cfg.planner_options, **size_options(plan_size, planner)}
        cfg = dataclasses.replace(cfg, planner_options=sized)
        if plan_size.changed:
            ctx = dataclasses.replace(ctx, options=planner_options(sized, _run_budget(cfg)))
            planner = build_planner(cfg.planner, ctx)
    agent = MPCAgent(planner, codec, obs_dim, device, _run_replan_every(cfg))
    backend = _eager_for_terminal_value(planner, cfg) or where.backend(planner, cfg)
    return RunSetup(
        dataclasses.replace(cfg, rollout_backend=backend.backend),
        info,
        env,
        device,
        gen,
        model,
        reward_fn,
        term_fn,
        planner,
        agent,
        cfg.max_episode_steps,
        backend,
        state=StateParts(task_models, aids),
        dtype=dtype,
        plan_size=plan_size,
    )


def _exploring_reward(cfg: RunConfig, model: DynamicsModel, task: TaskModels) -> Callable:
    """The planner's reward: the learned one, wrapped in an :class:`ExplorationReward` when
    ``cfg.explore`` asks for it and the model is an ensemble that can disagree.

    Raises:
        ValueError: ``explore='always'`` with a model that cannot disagree.
    """
    if cfg.explore == "off" or (cfg.explore == "auto" and not can_explore(model)):
        return task.reward
    if not can_explore(model):
        raise ValueError(
            f"explore='always' (--explore always) needs an ensemble of two or more members; "
            f"--model {cfg.model} cannot disagree"
        )
    task.explorer = ExplorationReward(task.reward, model, cfg.explore_weight, cfg.explore)
    return task.explorer


def _eager_for_terminal_value(planner: Planner, cfg: RunConfig) -> BackendChoice | None:
    """The eager backend for a sampling planner with a terminal value (the compiled rollouts
    have none); None otherwise.

    Raises:
        ValueError: a compiled backend was asked for explicitly.
    """
    if not isinstance(planner, SamplingPlanner) or planner.terminal_value is None:
        return None
    if cfg.rollout_backend not in ("auto", "eager"):
        raise ValueError(
            f"rollout_backend={cfg.rollout_backend!r} (--rollout-backend) cannot score with a "
            "terminal value (--value learned): the compiled rollouts have none; use 'eager' "
            "or 'auto'"
        )
    return BackendChoice("eager", "terminal value: the compiled rollouts have none")


def _build_planet(cfg: RunConfig, where: _Where) -> RunSetup:
    env, info, device, dry = where.env, where.info, where.device, where.dry
    pcfg = planet_config(cfg)
    # The resolved config holds the values the loop uses, marked explicit so that it maps
    # back to the same PlanetConfig.
    cfg = dataclasses.replace(
        cfg,
        **{name: getattr(pcfg, name) for name in PLANET_DEFAULTED},
        explicit=cfg.explicit | PLANET_DEFAULTED,
    )
    codec = info.codec
    if _run_replan_every(cfg) != 1:
        raise ValueError(
            f"replan_every={_run_replan_every(cfg)} (--replan-every) is not supported with "
            f"--model {LATENT_MODEL}: the belief agent filters every observation and replans "
            "at every step"
        )
    if cfg.refit_every or cfg.condition_steps:
        what = (
            f"refit_every={cfg.refit_every} (--refit-every)"
            if cfg.refit_every
            else "condition_steps=True (--condition-steps)"
        )
        raise ValueError(
            f"{what} is not supported with --model "
            f"{LATENT_MODEL}: the PlaNet loop trains between episodes on sampled sequences"
        )
    if cfg.explore == "always":
        raise ValueError(
            f"explore='always' (--explore always) is not supported with --model "
            f"{LATENT_MODEL}: the disagreement bonus needs an ensemble of observation models"
        )
    obs_shape, obs_dtype = obs_spec(info.observation_space)
    entry = planner_entry(pcfg.planner)
    entry.planner_class.check_action_space(codec)
    latent_value = cfg.value == "learned"
    if latent_value:
        check_search_aids(cfg, entry)
    limit = agent_step_limit(pcfg, info.max_episode_steps)
    check_episode_lengths(pcfg, limit)
    if not dry:
        seed_everything(pcfg.seed)
    model = RSSM(obs_shape, codec.dim, pcfg.model).to(device)
    gen = make_generator(pcfg.seed, device)
    value = LearnedValue(model.feature_dim).to(device) if latent_value else None
    trainer = RSSMTrainer(
        model,
        pcfg.train,
        make_generator(pcfg.seed + 1, device),
        value,
        LatentValueConfig(gamma=cfg.gamma) if latent_value else None,
    )
    options = planner_options(
        pcfg.planner_options, _run_budget(cfg), PLANNER_DEFAULTS.get(pcfg.planner, {})
    )
    reward_fn = LatentReward(model)
    actor_critic = None
    if pcfg.policy == "imagine":
        actor_critic = _latent_actor_critic(cfg, pcfg, model, codec, device)
        planner: Planner = PolicyPlanner(actor_critic.actor)
    else:
        ctx = PlannerContext(
            LatentDynamics(model), reward_fn, None, codec, gen, pcfg.horizon, pcfg.n_particles,
            cfg.gamma if latent_value else 1.0, options, value,
        )  # fmt: skip
        planner = build_planner(pcfg.planner, ctx)
    agent = BeliefAgent(model, planner, codec, gen, pcfg.exploration_noise)
    backend = _eager_for_terminal_value(planner, cfg) or where.backend(planner, cfg)
    return RunSetup(
        dataclasses.replace(cfg, rollout_backend=backend.backend),
        info,
        None if env is None else ActionRepeat(env, pcfg.action_repeat),
        device,
        gen,
        model,
        reward_fn,
        None,
        planner,
        agent,
        limit,
        backend,
        planet=PlanetParts(pcfg, trainer, obs_shape, obs_dtype, value, actor_critic),
    )


def _latent_actor_critic(
    cfg: RunConfig, pcfg: PlanetConfig, model: RSSM, codec: ActionCodec, device: torch.device
) -> LatentActorCritic:
    """Dreamer's actor-critic for ``policy="imagine"``: the run's horizon and particles,
    its discount when given (else the imagination default 0.99), ``train_steps`` updates."""
    defaults = ImaginationConfig()
    gamma = cfg.gamma if ("gamma" in cfg.explicit or cfg.gamma != 1.0) else defaults.gamma
    config = ImaginationConfig(horizon=pcfg.horizon, gamma=gamma, n_particles=pcfg.n_particles)
    low, high = codec.bounds(device)
    return LatentActorCritic(model, low, high, config, pcfg.train_steps, device)
