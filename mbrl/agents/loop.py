"""The model-based loop: seed data -> fit -> act with MPC -> append -> refit.

One function, :func:`run`, used by ``mbrl run`` and by the benchmark suite. It sets the run up
with :func:`~mbrl.agents.setup.build_run` and runs the shared episode loop
(:func:`~mbrl.agents.episode_loop.run_loop`): for a state-space model with the fit and records
below, for ``model="rssm"`` with the PlaNet loop's (:mod:`mbrl.agents.planet_loop`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from mbrl.agents.config import RunConfig
from mbrl.agents.episode_loop import EpisodeOutcome, LoopRecord, LoopSpecifics, run_loop
from mbrl.agents.planet_loop import PlanetResult, planet_episodes
from mbrl.agents.setup import RunSetup, build_run
from mbrl.agents.writer import Terminated, config_json
from mbrl.data.buffer import TransitionBuffer
from mbrl.models.policy_model import LearnedPolicy
from mbrl.models.training import FitReport, fit
from mbrl.models.value_model import LearnedValue
from mbrl.spaces import observation_dim

__all__ = ["EpisodeRecord", "RunConfig", "RunResult", "Terminated", "run"]


@dataclass(frozen=True)
class EpisodeRecord(LoopRecord):
    """One logged episode (a line of ``metrics.jsonl``).

    Attributes:
        episode: index (seed episodes first); kind: ``seed`` or ``mpc``; return/steps: outcome;
        plan_ms: mean planning time per step (0 for seed episodes); model_val_loss: held-out
        score of the model used; env_steps: total env steps so far; fit_seconds: training time
        before the episode; terminated / truncated: how it ended.
    """

    episode: int
    kind: str
    episode_return: float
    steps: int
    plan_ms: float
    model_val_loss: float
    env_steps: int
    fit_seconds: float
    terminated: bool
    truncated: bool

    def log_detail(self) -> str:
        """The held-out loss of the model used."""
        return f"val_loss {self.model_val_loss:8.4f}"


@dataclass
class RunResult:
    """What :func:`run` returns: the records, and the objects for further use.

    Attributes:
        config: the effective config (preset or PlaNet defaults applied, the rollout backend
        chosen); records: every episode (:class:`EpisodeRecord`, or
        :class:`~mbrl.agents.planet_loop.PlanetRecord` for ``rssm``); model: the fitted
        dynamics model (the RSSM); buffer: all real transitions (a
        :class:`~mbrl.data.sequence_buffer.SequenceBuffer` of episodes for ``rssm``);
        reward_fn / termination_fn: the task functions used for planning; value_fn: the
        learned value (``value="learned"``), else None; policy: the learned rollout policy
        (``policy="learned"``), else None; planet: the PlaNet loop's own result for ``rssm``
        (its config and held-out batch), else None.
    """

    config: RunConfig
    records: list[LoopRecord]
    model: torch.nn.Module
    buffer: Any
    reward_fn: Callable
    termination_fn: Callable | None
    value_fn: LearnedValue | None = None
    policy: LearnedPolicy | None = None
    planet: PlanetResult | None = None

    @property
    def mpc_returns(self) -> list[float]:
        """Returns of the planning (non-seed) episodes, in order."""
        return [r.episode_return for r in self.records if r.kind != "seed"]


class _StateLoop(LoopSpecifics):
    """The state-space loop: refit the dynamics (and learned task models, value, policy) to
    every transition before each MPC episode."""

    kind = "mpc"

    def __init__(self, setup: RunSetup) -> None:
        self.setup = setup
        self.parts = setup.state
        obs_dim = observation_dim(setup.env_info.observation_space)
        self.buffer = TransitionBuffer(obs_dim, setup.codec.dim, capacity=1_000_000)
        self.sink = self.buffer

    def fit(self, episode: int) -> FitReport:
        cfg, gen = self.setup.config, self.setup.generator
        report = fit(
            self.setup.model, self.buffer, dataclasses.replace(cfg.fit, progress=cfg.progress), gen
        )
        if self.parts.task_models is not None:
            self.parts.task_models.fit(self.buffer, cfg.fit, gen)
        self.parts.aids.fit(self.buffer, cfg.fit, gen)
        return report

    def episode_seed(self, episode: int) -> int | None:
        return self.setup.config.seed if episode == 0 else None

    def wants_more_seed_data(self) -> bool:
        return len(self.buffer) < self.setup.config.min_seed_transitions

    def record(self, outcome: EpisodeOutcome, fitted: FitReport | None) -> EpisodeRecord:
        stats = outcome.stats
        return EpisodeRecord(
            outcome.episode,
            outcome.kind,
            stats.episode_return,
            stats.steps,
            outcome.plan_ms,
            float((fitted or FitReport()).best_val_score),
            self.buffer.total_added,
            outcome.fit_seconds,
            stats.terminated,
            stats.truncated,
        )

    def collected(self) -> tuple[TransitionBuffer, str] | None:
        return (self.buffer, f"{len(self.buffer)} transitions") if len(self.buffer) else None

    def summary_fields(self) -> dict[str, Any]:
        cfg = self.setup.config
        return {
            "reward": cfg.reward,
            "compute_dtype": cfg.compute_dtype,
            "config": config_json(cfg),
        }

    def checkpoints(self) -> Mapping[str, torch.nn.Module]:
        task_models = self.parts.task_models
        return {
            "model.pt": self.setup.model,
            **(task_models.checkpoints() if task_models is not None else {}),
            **self.parts.aids.checkpoints(),
        }


def run(config: RunConfig | None = None) -> RunResult:
    """Run the model-based loop described by ``config``.

    Everything is checked before the first env step (:func:`~mbrl.agents.setup.build_run`):
    env id, action space vs planner, model and planner names and options. ``model="rssm"``
    runs the PlaNet loop. If anything fails mid-run (SIGTERM and Ctrl-C included), the data
    collected so far is saved (to ``out/buffer.pt``, or a temporary file named in the error)
    before the error propagates.

    Returns:
        :class:`RunResult`.
    """
    setup = build_run(config or RunConfig())
    if setup.planet is not None:
        planet = planet_episodes(setup)
        return RunResult(
            setup.config,
            planet.records,
            planet.model,
            planet.buffer,
            setup.reward_fn,
            None,
            planet=planet,
        )
    loop = _StateLoop(setup)
    records = run_loop(setup, loop)
    aids = setup.state.aids
    return RunResult(
        setup.config,
        records,
        setup.model,
        loop.buffer,
        setup.reward_fn,
        setup.termination_fn,
        aids.value,
        aids.policy,
    )
