"""The episode loop both run loops share: seed episodes, then fit -> act episodes.

:func:`run_loop` runs ``seed_episodes`` random-action episodes (more while the loop wants more
data), then ``episodes`` episodes in which the models are fitted first and the agent acts. It
logs one line per episode (with a per-step progress bar), writes ``metrics.jsonl`` as it goes
and the other outputs at the end (:class:`~mbrl.agents.writer.RunWriter`), and saves the data
collected so far when anything fails part-way. What a loop fits, where its transitions go and
what its records hold is a :class:`LoopSpecifics`: the state-space loop
(:mod:`mbrl.agents.loop`) and the PlaNet loop (:mod:`mbrl.agents.planet_loop`) differ only in
that.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from tqdm.auto import tqdm

from mbrl.agents.episode import EpisodeStats, Policy, run_episode
from mbrl.agents.setup import RunSetup
from mbrl.agents.writer import RunWriter, Savable

MAX_SEED_EPISODES = 1000
"""Seed episodes are added while the loop wants more random data, up to this many."""


class LoopRecord:
    """Behaviour shared by the per-episode records of both loops (frozen dataclasses with
    ``episode``, ``kind``, ``episode_return``, ``steps``, ``plan_ms`` and the field named by
    ``fit_field``): one line of ``metrics.jsonl``, of ``summary.json`` and of the log each."""

    fit_field: ClassVar[str] = "fit_seconds"
    fit_label: ClassVar[str] = "fit"

    def to_json(self) -> dict[str, Any]:
        """JSON object with ``return`` as the key for ``episode_return``."""
        d = dataclasses.asdict(self)
        d["return"] = d.pop("episode_return")
        return d

    def summary_json(self) -> dict[str, Any]:
        """The episode's entry in ``summary.json``."""
        return {
            "return": self.episode_return,
            "steps": self.steps,
            "plan_ms": self.plan_ms,
            "kind": self.kind,
        }

    def log_detail(self) -> str:
        """The loop's own part of the log line (model scores)."""
        return ""

    def log_line(self) -> str:
        """One line for the episode: return, steps, model scores, planning and fitting time."""
        return (
            f"episode {self.episode:3d} [{self.kind:4s}] return {self.episode_return:9.2f}  "
            f"steps {self.steps:4d}  {self.log_detail()}  plan {self.plan_ms:7.1f} ms/step  "
            f"{self.fit_label} {getattr(self, self.fit_field):5.1f} s"
        )


@dataclass(frozen=True)
class EpisodeOutcome:
    """What :func:`run_loop` measured of one finished episode.

    Attributes:
        episode: index (seed episodes first); kind: ``seed`` or the loop's ``kind``;
        stats: return, steps and ending; plan_ms: mean planning time per agent step (0 for
        seed episodes); fit_seconds: time spent fitting before it (0 for seed episodes).
    """

    episode: int
    kind: str
    stats: EpisodeStats
    plan_ms: float
    fit_seconds: float


class LoopSpecifics(ABC):
    """What one loop does its own way inside :func:`run_loop`.

    Attributes:
        kind: the ``kind`` of its non-seed records (``mpc``, ``plan``).
        sink: where :func:`run_episode` adds every transition (``add(obs, action, reward,
            next_obs, terminated, truncated)``).
        buffer: the data saved as ``buffer.pt`` (at the end, or when the run fails).
    """

    kind: ClassVar[str]
    sink: Any
    buffer: Savable

    @abstractmethod
    def fit(self, episode: int) -> Any:
        """Fit the models before non-seed ``episode`` (timed); returns what :meth:`record`
        reports about the fit."""

    def evaluate(self, fitted: Any) -> Any:
        """Score the fitted models (not timed); returns ``fitted`` with the scores."""
        return fitted

    @abstractmethod
    def episode_seed(self, episode: int) -> int | None:
        """The env reset seed of ``episode`` (None continues the env's stream)."""

    def end_episode(self) -> None:
        """Called after every episode (e.g. to move the episode into the buffer)."""

    def wants_more_seed_data(self) -> bool:
        """After the last seed episode: collect one more (default False)."""
        return False

    @abstractmethod
    def record(self, outcome: EpisodeOutcome, fitted: Any) -> LoopRecord:
        """The record of a finished episode (``fitted``: what :meth:`fit` / :meth:`evaluate`
        returned before it, None for seed episodes)."""

    @abstractmethod
    def collected(self) -> tuple[Savable, str] | None:
        """``(buffer, "25 transitions")``, or None while nothing was collected."""

    @abstractmethod
    def summary_fields(self) -> dict[str, Any]:
        """The loop's own ``summary.json`` fields (``config`` among them)."""

    @abstractmethod
    def checkpoints(self) -> Mapping[str, torch.nn.Module]:
        """File name -> model saved in the output directory."""


def run_loop(setup: RunSetup, loop: LoopSpecifics) -> list[LoopRecord]:
    """Run the episodes of ``setup`` the way ``loop`` fits and records; write the outputs.

    Closes ``setup.env``. If anything fails part-way (SIGTERM and Ctrl-C included), the data
    collected so far is saved (``out/buffer.pt``, or a temporary file named in the error)
    before the error propagates.

    Returns:
        One record per episode, seed episodes first.
    """
    cfg, env, agent = setup.config, setup.env, setup.agent
    if env is None:
        raise ValueError("a dry set-up (build_run(..., dry=True)) has no env to run")
    writer = RunWriter(cfg.out)
    env.action_space.seed(cfg.seed)
    random_policy: Policy = lambda _obs: env.action_space.sample()  # noqa: E731
    records: list[LoopRecord] = []
    try:
        with writer.guard(loop.collected):
            n_seed, ep = cfg.seed_episodes, 0
            while ep < n_seed + cfg.episodes:
                is_seed = ep < n_seed
                policy, fitted, fit_s = random_policy, None, 0.0
                if not is_seed:
                    start = time.perf_counter()
                    fitted = loop.fit(ep)
                    fit_s = time.perf_counter() - start
                    fitted = loop.evaluate(fitted)
                    agent.reset()
                    agent.plan_seconds.clear()
                    policy = agent.act
                stats = run_episode(
                    env,
                    policy,
                    setup.codec,
                    loop.sink,
                    seed=loop.episode_seed(ep),
                    max_steps=setup.max_steps,
                    progress=f"episode {ep}" if cfg.progress else None,
                )
                loop.end_episode()
                plan_ms = 0.0 if is_seed else 1e3 * float(np.mean(agent.plan_seconds or [0.0]))
                kind = "seed" if is_seed else loop.kind
                rec = loop.record(EpisodeOutcome(ep, kind, stats, plan_ms, fit_s), fitted)
                records.append(rec)
                if cfg.progress:
                    tqdm.write(rec.log_line(), file=sys.stdout)
                writer.episode(rec)
                if (
                    is_seed
                    and ep == n_seed - 1
                    and ep < MAX_SEED_EPISODES
                    and loop.wants_more_seed_data()
                ):
                    n_seed += 1
                ep += 1
    finally:
        env.close()
    summary = {
        "env": cfg.env_id,
        "model": cfg.model,
        "planner": cfg.planner,
        "seed": cfg.seed,
        "device": cfg.device,
        "rollout_backend": setup.backend.to_json(),
        **loop.summary_fields(),
        "episodes": [r.summary_json() for r in records],
    }
    writer.finish(summary, loop.checkpoints(), {"env": cfg.env_id, "seed": cfg.seed}, loop.buffer)
    return records
