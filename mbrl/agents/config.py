"""The settings of one model-based run: :class:`RunConfig` (what ``mbrl run`` builds from its flags)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from mbrl.agents.exploration import EXPLORE_MODES
from mbrl.models.task_models import TaskNetConfig
from mbrl.models.training import FitConfig
from mbrl.planners.deadline import check_budget_ms
from mbrl.rollout.compiled import MODES
from mbrl.util.configs import config_from_options
from mbrl.validation import check_positive_int

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
"""Accepted ``compute_dtype`` names and their torch dtypes."""


POLICIES = ("none", "learned", "imagine")
"""``RunConfig.policy`` values (see its docstring)."""


@dataclass(frozen=True)
class RunConfig:
    """Settings of one model-based run (what ``mbrl run`` builds from its flags).

    Attributes:
        env_id: gymnasium id, ``module:Env-v0`` allowed (default ``Pendulum-v1``).
        model: registered model name (default ``ensemble``), or ``rssm``: the PlaNet loop
            (:mod:`mbrl.agents.planet_loop`; its settings come from ``model_options`` and the
            fields below, see :func:`~mbrl.agents.planet_config.planet_config`).
        planner: registered planner name (default ``cem``; ``mcts`` when the env's action space
            is ``Discrete`` and nobody chose one, see :mod:`mbrl.agents.space_defaults`).
        reward: ``known`` (the env's registered task functions) or ``learned`` (reward and
            termination models fitted to data). Envs without known functions always learn.
        termination: how a learned termination is modelled (with ``reward="learned"``):
            ``mlp`` (default), a classifier over ``(obs, action, next_obs)``
            (:class:`~mbrl.models.task_models.LearnedTermination`), or ``box``, learned limits
            on the next observation (:class:`~mbrl.models.box_termination.BoxTermination`).
            Setting it with ``reward="known"`` on an env with known task functions (where it
            would be ignored) is an error; the env preset's value is not.
        episodes: MPC episodes after the seed episodes (default 10).
        seed: seeds the env, the model initialisation, training and planning (default 0, at
            least 0). Every episode reseeds all of them from ``(seed, episode index)``, so a
            resumed run continues exactly as an uninterrupted one.
        device: ``cpu`` or ``cuda[:N]`` for models and planning (default ``cpu``).
        out: directory for metrics, summary, checkpoints and buffer, written after every
            episode (default none; see :mod:`mbrl.agents.writer`).
        seed_episodes: random-action episodes collected first (default 1); more are collected
            while the buffer holds fewer than ``min_seed_transitions``. With 0, the first
            MPC episode acts at random until it has that many, then fits and plans.
        min_seed_transitions: least number of random transitions before the first fit
            (default 20: random episodes of some envs end after a step or two); never fewer
            than the model needs to fit (``min_fit_transitions``: a GP's input size).
        horizon / n_particles / gamma: planning horizon, particles, discount (15 / 5 / 1.0).
        value: ``none`` (default) or ``learned``: fit a state value to the discounted returns
            of the real episodes (:mod:`mbrl.models.value_model`) after every episode and hand
            it to the planner, which scores states past its horizon with it. Needs a planner
            that accepts one (``mcts``) and ``gamma < 1``.
        policy: ``none`` (default) or ``learned``: fit a policy to the agent's own actions
            (:mod:`mbrl.models.policy_model`) after every episode and let the planner draw
            its rollouts' actions from it instead of uniformly at random. Needs a planner
            that accepts one (``mcts``). ``imagine`` (``model="rssm"`` only; Dreamer): an
            actor-critic trained in the RSSM's latent imagination after every training phase
            acts instead of the planner (:mod:`mbrl.imagination.latent`); ``horizon`` is
            its imagination horizon and ``gamma`` its discount (0.99 unless given).
        planner_options: planner config overrides, e.g. ``{"population": 300}``.
        model_options: model config overrides, e.g. ``{"hidden_size": 128}``.
        task_options: size of the learned reward and termination networks
            (:class:`~mbrl.models.task_models.TaskNetConfig` fields, e.g. ``{"hidden_size":
            64, "num_layers": 2}``; default 200 x 3). They run at every rollout step, so
            smaller ones plan faster (docs/benchmarks.md). Used with a learned reward only.
        fit: training settings of the dynamics (and learned task) models.
        max_episode_steps: extra cap on episode length, at least 1 (default: the env's own
            limit).
        compute_dtype: ``float32`` or ``bfloat16`` (opt-in faster planning on AMX CPUs / GPUs).
        rollout_backend: how a sampling planner scores its candidates: ``auto`` (default:
            on CUDA the fastest of eager / CUDA graph / ``torch.compile``, measured once at the
            planner's shape when the run is set up; eager elsewhere), or ``eager`` / ``graph``
            / ``compile`` to force one (:mod:`mbrl.rollout.compiled`). The resolved config of
            a run holds the backend chosen.
        use_preset: apply the env's tuned defaults (:mod:`mbrl.agents.presets`) to fields
            still at their defaults (default True).
        explicit: names of fields the user set on purpose; presets never replace them, even
            when the value equals the default (``mbrl run`` fills it from the typed flags).
        progress: show progress bars and per-episode lines (default True).
        initial_buffer: a buffer file (``buffer.pt`` of an earlier run) to start from: its
            transitions (episodes for ``rssm``) are trained on, and the seed episodes it
            covers (one per complete episode in it) are skipped (default none).
        initial_model: a model checkpoint (``model.pt`` of an earlier run) whose weights the
            model starts from (default none).
        plan_budget_ms: wall-clock budget of one plan call in milliseconds (default none),
            handed to the planner as its ``plan_budget_ms`` option: every planner stops its
            work when the budget is spent (after at least one iteration / simulation round)
            and acts on the best plan so far; per-episode p99 planning time and deadline
            misses go to the metrics (:mod:`mbrl.planners.deadline`).
        auto_size_ms: target planning time per step in ms for a sampling planner whose
            population is not set (neither by the user nor by an env preset): at set-up its
            objective is timed on this machine and its population (then iterations) shrunk
            until a plan call is predicted to fit (:mod:`mbrl.planners.sizing`; sizes never
            grow). With ``plan_budget_ms`` the target is 85% of the budget instead, and a
            population only the preset set is sized too (the budget wins). None turns
            sizing off (the optimiser's own defaults, e.g. CEM 500 x 5). Default 250 ms.
            The sizes chosen go into the run's ``config.json``, so a resume plans with them.
        replan_every: steps between replans, executing the plan open loop in between
            (default 1: full MPC; not supported with ``rssm``).
        refit_every: env steps between model refits inside an MPC episode (default 0: the
            models are fitted before each MPC episode only). With it, what an episode sees
            is used in the same episode, and ``seed_episodes=0`` makes the first episode
            start with random steps (until ``min_seed_transitions``) and plan from its first
            fit on (:mod:`mbrl.agents.in_episode`). Each refit trains on all data so far, so
            K should outlast a fit: about 10 for a GP, more for an ensemble. Not supported
            with ``rssm``.
        condition_steps: between fits, condition the dynamics on every new transition before
            each plan of an MPC episode (default False). Only for models with the
            ``conditioning`` capability (a GP: the point enters the posterior, the
            hyperparameters stay; ``O(N^2)`` per step against a fit's ``O(N^3)`` per
            iteration), so ``refit_every`` can re-learn hyperparameters rarely while every
            plan sees all data. A planner that re-optimises whenever the model changes
            (``pilco``) then re-optimises at every step.
        explore: whether a learned reward is planned with an exploration bonus
            (:mod:`mbrl.agents.exploration`): ``auto`` (default) adds the ensemble members'
            disagreement to every step while the reward in the data is sparse (the same on
            every step that did not end an episode); ``always`` on every step; ``off``
            never (MPC then acts at random while the reward is flat). Needs an ensemble of
            two or more members; ``auto`` does nothing for other models or known rewards.
        explore_weight: the bonus is ``explore_weight * reward range * tanh(disagreement)``
            (default 1.0, > 0).
        tensorboard: directory for TensorBoard event files of the episode metrics, model
            losses and planning times (default none; needs the ``tensorboard`` extra, see
            :mod:`mbrl.agents.tensorboard`).
    """

    env_id: str = "Pendulum-v1"
    model: str = "ensemble"
    planner: str = "cem"
    reward: str = "known"
    termination: str = "mlp"
    episodes: int = 10
    seed: int = 0
    device: str = "cpu"
    out: str | None = None
    seed_episodes: int = 1
    min_seed_transitions: int = 20
    horizon: int = 15
    n_particles: int = 5
    gamma: float = 1.0
    value: str = "none"
    policy: str = "none"
    planner_options: dict[str, Any] = field(default_factory=dict)
    model_options: dict[str, Any] = field(default_factory=dict)
    task_options: dict[str, Any] = field(default_factory=dict)
    fit: FitConfig = field(default_factory=FitConfig)
    max_episode_steps: int | None = None
    compute_dtype: str = "float32"
    rollout_backend: str = "auto"
    use_preset: bool = True
    progress: bool = True
    explicit: frozenset[str] = frozenset()
    initial_buffer: str | None = None
    initial_model: str | None = None
    plan_budget_ms: float | None = None
    auto_size_ms: float | None = 250.0
    replan_every: int = 1
    refit_every: int = 0
    condition_steps: bool = False
    explore: str = "auto"
    explore_weight: float = 1.0
    tensorboard: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "explicit", frozenset(self.explicit))
        unknown = self.explicit - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"explicit names unknown RunConfig fields: {sorted(unknown)}")
        check_positive_int(self.seed, "seed", minimum=0)
        check_positive_int(self.episodes, "episodes", minimum=0)
        check_positive_int(self.seed_episodes, "seed_episodes", minimum=0)
        check_positive_int(self.horizon, "horizon")
        check_positive_int(self.n_particles, "n_particles")
        if self.reward not in ("known", "learned"):
            raise ValueError(f"reward must be 'known' or 'learned', got {self.reward!r}")
        if self.termination not in ("mlp", "box"):
            raise ValueError(f"termination must be 'mlp' or 'box', got {self.termination!r}")
        if self.max_episode_steps is not None:
            check_positive_int(self.max_episode_steps, "max_episode_steps")
        for name in ("out", "initial_buffer", "initial_model", "tensorboard"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, str) and value):
                raise TypeError(f"{name} must be a non-empty path string or None, got {value!r}")
        self.task_net()  # early: a bad size fails here, naming the option
        self._check_termination_is_used()
        if self.value not in ("none", "learned"):
            raise ValueError(f"value must be 'none' or 'learned', got {self.value!r}")
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {self.policy!r}")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")
        if self.compute_dtype not in DTYPES:
            raise ValueError(
                f"compute_dtype must be one of {sorted(DTYPES)}, got {self.compute_dtype!r}"
            )
        if self.rollout_backend not in MODES:
            raise ValueError(
                f"rollout_backend must be one of {MODES}, got {self.rollout_backend!r}"
            )
        check_positive_int(self.replan_every, "replan_every")
        check_positive_int(self.refit_every, "refit_every", minimum=0)
        if not isinstance(self.condition_steps, bool):
            raise TypeError(f"condition_steps must be a bool, got {self.condition_steps!r}")
        if self.explore not in EXPLORE_MODES:
            raise ValueError(f"explore must be one of {EXPLORE_MODES}, got {self.explore!r}")
        if isinstance(self.explore_weight, bool) or not isinstance(
            self.explore_weight, int | float
        ):
            raise TypeError(f"explore_weight must be a number, got {self.explore_weight!r}")
        if not self.explore_weight > 0:
            raise ValueError(f"explore_weight must be > 0, got {self.explore_weight}")
        check_budget_ms(self.plan_budget_ms)
        check_budget_ms(self.auto_size_ms, "auto_size_ms")
        if self.seed_episodes + self.episodes < 1:
            raise ValueError("seed_episodes + episodes must be >= 1")

    def task_net(self) -> TaskNetConfig:
        """The learned task networks' size from ``task_options``.

        Raises:
            ValueError / TypeError: an unknown option or a bad value, naming it.
        """
        if not isinstance(self.task_options, Mapping):
            raise TypeError(f"task_options must be a dict, got {self.task_options!r}")
        return config_from_options(TaskNetConfig, dict(self.task_options), source="--task-opt")

    def _check_termination_is_used(self) -> None:
        # Task models are learned only with reward="learned" or on envs without known task
        # functions; elsewhere their settings would be ignored yet recorded as if used.
        chosen = []
        if ("termination" in self.explicit or self.termination != "mlp") and not (
            self._preset_value("termination")
        ):
            chosen.append(
                f"termination={self.termination!r} (--termination) chooses the learned "
                "termination model"
            )
        if self.task_options:
            chosen.append(
                f"task_options={dict(self.task_options)!r} (--task-opt) sizes the learned "
                "reward and termination networks"
            )
        if self.reward != "known" or not chosen:
            return
        from mbrl.task_fns import get_task_fns  # late: registers the envs' task functions

        if get_task_fns(self.env_id) is not None:
            raise ValueError(
                f"{chosen[0]} of reward='learned', but reward='known' and {self.env_id} has "
                "known task functions, so it would be ignored; pass reward='learned' "
                "(--reward learned) or drop it"
            )

    def _preset_value(self, name: str) -> bool:
        """The value of ``name`` is the env preset's (not set by the user)."""
        from mbrl.agents.presets import PRESETS

        preset = PRESETS.get(self.env_id, {})
        return (
            self.use_preset
            and name not in self.explicit
            and name in preset
            and preset[name] == getattr(self, name)
        )


def run_config_from_json(data: Mapping[str, Any]) -> RunConfig:
    """The :class:`RunConfig` of its JSON object (:func:`mbrl.agents.writer.config_json`, as
    ``config.json`` and ``summary.json`` of a run hold it).

    Raises:
        ValueError / TypeError: unknown keys, or values :class:`RunConfig` rejects.
    """
    if not isinstance(data, Mapping):
        raise TypeError(f"a run config must be a JSON object, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(RunConfig)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown RunConfig field(s) {unknown}; valid: {sorted(names)}")
    kwargs = dict(data)
    if "fit" in kwargs:
        if not isinstance(kwargs["fit"], Mapping):
            raise TypeError(f"fit must be an object of FitConfig fields, got {kwargs['fit']!r}")
        kwargs["fit"] = FitConfig(**kwargs["fit"])
    if "explicit" in kwargs:
        kwargs["explicit"] = frozenset(kwargs["explicit"])
    return RunConfig(**kwargs)
