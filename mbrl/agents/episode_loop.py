"""The episode loop both run loops share: seed episodes, then fit -> act episodes.

:func:`run_loop` runs ``seed_episodes`` random-action episodes (more while the loop wants more
data), then ``episodes`` episodes in which the models are fitted first and the agent acts. It
prints one line per episode (with a per-step progress bar) and, after every episode, writes a
checkpoint a killed run resumes from (:class:`~mbrl.agents.writer.RunWriter`) and, with
``config.tensorboard``, the episode's scalars to TensorBoard
(:class:`~mbrl.agents.tensorboard.TensorBoardWriter`); other messages go to the
``mbrl.agents.episode_loop`` logger (:mod:`mbrl.util.log`); it saves the
data collected so far when anything fails part-way. What a loop fits, where its transitions
go and what its records hold is a :class:`LoopSpecifics`: the state-space loop
(:mod:`mbrl.agents.loop`) and the PlaNet loop (:mod:`mbrl.agents.planet_loop`) differ only in
that.

Randomness: at the start of every episode the loop reseeds every random number generator the
episode uses (the env's reset, its action space, Python's, numpy's and torch's global ones,
the planner's / training generator and the loop's own ones) from :func:`episode_seed` of
``(config.seed, episode index)``. What an episode does therefore depends only on the seed,
its index and the state the previous episodes left (buffer and model weights, which the
checkpoint holds), so a resumed run repeats an uninterrupted one exactly.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from tqdm.auto import tqdm

from mbrl.agents.describe import describe_setup
from mbrl.agents.episode import EpisodeStats, Policy, run_episode
from mbrl.agents.in_episode import LearningPolicy
from mbrl.agents.plan_sizing import PLAN_SIZE_KEY, resolved_sizes
from mbrl.agents.setup import RunSetup
from mbrl.agents.tensorboard import TensorBoardWriter
from mbrl.agents.writer import Collected, RunWriter, Snapshot, check_out_dir, config_json
from mbrl.planners.sizing import PlanSize
from mbrl.seeding import seed_everything
from mbrl.util.log import get_logger

log = get_logger(__name__)

MAX_SEED_EPISODES = 1000
"""Seed episodes are added while the loop wants more random data, up to this many."""

ENV_STREAM, ACTION_STREAM, GLOBAL_STREAM, GENERATOR_STREAM, LOOP_STREAM = range(5)
"""The :func:`episode_seed` streams: env reset, action-space sampling, the global RNGs, the
set-up's generator (planning and fitting), and the first of the loop's own generators."""


def episode_seed(seed: int, episode: int, stream: int = 0) -> int:
    """The seed of random ``stream`` in ``episode`` of a run seeded ``seed`` (62 bits).

    Distinct ``(seed, episode, stream)`` give independent seeds (numpy's ``SeedSequence``), so
    no two episodes or runs share a stream, and an episode's randomness needs nothing but
    these three numbers.
    """
    state = np.random.SeedSequence([int(seed), int(episode), int(stream)]).generate_state(
        1, np.uint64
    )
    return int(state[0] >> np.uint64(2))


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

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LoopRecord:
        """The record of a :meth:`to_json` object (a ``metrics.jsonl`` line).

        Raises:
            ValueError: keys other than the record's fields.
        """
        fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        # Fields with defaults came later: a metrics line of an older run may lack them.
        required = {
            f.name
            for f in dataclasses.fields(cls)  # type: ignore[arg-type]
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        d = dict(data)
        if "return" in d:
            d["episode_return"] = d.pop("return")
        if not required <= set(d) <= fields:
            raise ValueError(
                f"a {cls.__name__} needs the keys {sorted(fields)}, got {sorted(d)} (a metrics "
                "line of another kind of run?)"
            )
        return cls(**d)

    def summary_json(self) -> dict[str, Any]:
        """The episode's entry in ``summary.json``."""
        return {
            "return": self.episode_return,
            "steps": self.steps,
            "plan_ms": self.plan_ms,
            "plan_ms_p99": self.plan_ms_p99,
            "deadline_misses": self.deadline_misses,
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
        seed episodes); fit_seconds: time spent fitting before it (0 for seed episodes);
        plan_ms_p99: 99th percentile (nearest rank) of the episode's plan calls, ms (0 for
        seed episodes); deadline_misses: plan calls over ``plan_budget_ms`` (0 without one);
        random_steps: steps acted at random (all of a seed episode's; those of a learning
        episode before its first fit); refits: fits inside the episode (``refit_every``, or
        the first fit of an episode that started without enough data). ``fit_seconds``
        includes the refits.
    """

    episode: int
    kind: str
    stats: EpisodeStats
    plan_ms: float
    fit_seconds: float
    plan_ms_p99: float = 0.0
    deadline_misses: int = 0
    random_steps: int = 0
    refits: int = 0


class LoopSpecifics(ABC):
    """What one loop does its own way inside :func:`run_loop`.

    Attributes:
        kind: the ``kind`` of its non-seed records (``mpc``, ``plan``).
        record_type: the class of its records (read back from ``metrics.jsonl`` on resume).
        sink: where :func:`run_episode` adds every transition (``add(obs, action, reward,
            next_obs, terminated, truncated)``).
        buffer: the data saved as ``buffer.pt`` (after every episode, and when the run fails).
    """

    kind: ClassVar[str]
    record_type: ClassVar[type[LoopRecord]]
    sink: Any
    buffer: Any

    @abstractmethod
    def fit(self, episode: int) -> Any:
        """Fit the models before non-seed ``episode`` (timed); returns what :meth:`record`
        reports about the fit."""

    def evaluate(self, fitted: Any) -> Any:
        """Score the fitted models (not timed); returns ``fitted`` with the scores."""
        return fitted

    def reseed(self, seed: int, episode: int) -> None:
        """Reseed the loop's own generators for ``episode`` (from :func:`episode_seed` of
        ``seed``, streams from :data:`LOOP_STREAM` on); the default has none."""

    def end_episode(self) -> None:
        """Called after every episode (e.g. to move the episode into the buffer)."""

    def wants_more_seed_data(self) -> bool:
        """After the last seed episode: collect one more (default False)."""
        return False

    def ready_to_fit(self) -> bool:
        """The data suffices for :meth:`fit` (default True). A non-seed episode that starts
        without it acts at random until it does (:class:`~mbrl.agents.in_episode.LearningPolicy`)."""
        return True

    def condition(self) -> int:
        """Condition the fitted dynamics on the transitions collected since the last fit or
        condition, without refitting (``RunConfig.condition_steps``); returns how many it
        took (default 0: the loop has no cheap update)."""
        return 0

    @abstractmethod
    def record(self, outcome: EpisodeOutcome, fitted: Any) -> LoopRecord:
        """The record of a finished episode (``fitted``: what :meth:`fit` / :meth:`evaluate`
        returned before it, None for seed episodes)."""

    @abstractmethod
    def collected(self) -> Collected | None:
        """The data in memory (``Collected(buffer, 25, "transitions", ...)``), or None while
        nothing was collected."""

    @abstractmethod
    def load_buffer(self, path: Path, what: str) -> int:
        """Replace the buffer by the data of buffer file ``path`` (``what``: how to name it in
        errors); returns how many complete episodes it holds.

        Raises:
            ValueError: the file is not a buffer of this loop's kind, or does not fit the env.
        """

    def loop_state(self) -> dict[str, Any] | None:
        """The loop's own state a resumed run needs (tensors and plain data), or None."""
        return None

    def load_loop_state(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`loop_state` returned."""

    @abstractmethod
    def summary_fields(self) -> dict[str, Any]:
        """The loop's own ``summary.json`` fields (``config`` among them)."""

    @abstractmethod
    def checkpoints(self) -> Mapping[str, torch.nn.Module]:
        """File name -> model saved in the output directory."""


@dataclass(frozen=True)
class LoopStart:
    """Where :func:`run_loop` starts (a fresh run: episode 0).

    Attributes:
        episode: index of the first episode to run.
        seed_episodes: seed episodes of the run (None: the config's); more may be added.
        records: the records of the episodes before ``episode`` (a resumed run's).
    """

    episode: int = 0
    seed_episodes: int | None = None
    records: tuple[LoopRecord, ...] = ()


def initial_start(setup: RunSetup, loop: LoopSpecifics) -> LoopStart:
    """Load ``config.initial_buffer`` / ``initial_model`` into ``loop`` / ``setup.model``;
    the seed episodes the buffer covers (one per complete episode) are skipped.

    Raises:
        ValueError: a file that is missing, foreign, tampered with or does not fit the run.
    """
    from mbrl.models.checkpoint import load_weights

    cfg = setup.config
    covered = 0
    if cfg.initial_buffer is not None:
        covered = loop.load_buffer(Path(cfg.initial_buffer), "initial_buffer (--buffer)")
    if cfg.initial_model is not None:
        try:
            load_weights(setup.model, cfg.initial_model)
        except ValueError as err:
            raise ValueError(f"initial_model (--load-model): {err}") from err
    return LoopStart(episode=min(covered, cfg.seed_episodes))


def resumed_start(setup: RunSetup, loop: LoopSpecifics, writer: RunWriter) -> LoopStart:
    """Restore ``loop`` and its models from the last checkpoint in ``writer.out`` (after
    :meth:`RunWriter.recover`); with none yet, start as a fresh run does.

    Raises:
        ValueError: files of the checkpoint that are missing, tampered with or inconsistent.
    """
    from mbrl.agents.writer import BUFFER_FILE, LOOP_STATE_FILE
    from mbrl.models.checkpoint import load_weights

    committed, out = writer.committed, writer.out
    if committed is None or out is None:
        return initial_start(setup, loop)
    loop.load_buffer(out / BUFFER_FILE, "the run's buffer")
    held = loop.collected()
    if held is None or held.added != committed.added:
        raise ValueError(
            f"{out / BUFFER_FILE} holds {held.describe() if held else 'nothing'}, but "
            f"{out / 'state.json'} expects {committed.count} {committed.unit}"
        )
    for name, model in loop.checkpoints().items():
        load_weights(model, out / name)
    if LOOP_STATE_FILE in committed.files:
        state = torch.load(out / LOOP_STATE_FILE, map_location="cpu", weights_only=True)
        if PLANNER_STATE in state:
            setup.planner.load_state_dict(state.pop(PLANNER_STATE))  # type: ignore[attr-defined]
        if state:
            loop.load_loop_state(state)
    records = tuple(loop.record_type.from_json(d) for d in writer.read_records())
    if not records or records[-1].episode != committed.next_episode - 1:
        raise ValueError(
            f"{out / 'metrics.jsonl'} does not end with episode {committed.next_episode - 1}, "
            f"where {out / 'state.json'} says the run stands"
        )
    return LoopStart(committed.next_episode, committed.seed_episodes, records)


def run_loop(
    setup: RunSetup,
    loop: LoopSpecifics,
    writer: RunWriter | None = None,
    start: LoopStart | None = None,
) -> list[LoopRecord]:
    """Run the episodes of ``setup`` the way ``loop`` fits and records; write the outputs.

    Closes ``setup.env``. After every episode a checkpoint goes to ``writer`` (by default a
    new one for ``config.out``, which must be missing or empty). If anything fails part-way
    (SIGTERM and Ctrl-C included), the data collected so far is on disk (in ``out``, or a
    temporary file named in the error's note) before the error propagates.

    Args:
        setup: the run. loop: the loop's specifics. writer: where the outputs go (started).
        start: where to start (default: episode 0; see :func:`initial_start`,
            :func:`resumed_start`).

    Returns:
        One record per episode, seed episodes first (a resumed run's earlier ones included).
    """
    cfg, env, agent = setup.config, setup.env, setup.agent
    if env is None:
        raise ValueError("a dry set-up (build_run(..., dry=True)) has no env to run")
    if writer is None:
        if cfg.out is not None:
            check_out_dir(cfg.out)
        writer = RunWriter(cfg.out)
        writer.start(run_config_document(cfg, cfg, setup.plan_size))
    start = start or LoopStart()
    if cfg.progress:
        for line in describe_setup(setup):
            tqdm.write(line, file=sys.stdout)
    records: list[LoopRecord] = list(start.records)
    random_policy: Policy = lambda _obs: env.action_space.sample()  # noqa: E731
    ep = start.episode

    def seed_episodes(n_seed: int) -> int:
        # Before the first non-seed episode: one more seed episode while the loop wants more
        # random data (checked when the seed phase ends, on a fresh start or a resumed one).
        grow = ep == n_seed and 0 < n_seed <= MAX_SEED_EPISODES and loop.wants_more_seed_data()
        return n_seed + 1 if grow else n_seed

    n_seed = seed_episodes(
        cfg.seed_episodes if start.seed_episodes is None else start.seed_episodes
    )
    board: TensorBoardWriter | None = None
    try:
        with writer.guard(loop.collected):
            if cfg.tensorboard is not None:
                board = TensorBoardWriter(cfg.tensorboard)
            log.debug(
                "run: %s, model %s, planner %s, from episode %d, out %s",
                cfg.env_id,
                cfg.model,
                cfg.planner,
                ep,
                cfg.out,
            )
            while ep < n_seed + cfg.episodes:
                is_seed = ep < n_seed
                _reseed(setup, loop, ep)
                policy, fitted, fit_s = random_policy, None, 0.0
                learner: LearningPolicy | None = None
                if not is_seed:
                    ready = loop.ready_to_fit()
                    if ready:
                        begin = time.perf_counter()
                        fitted = loop.fit(ep)
                        fit_s = time.perf_counter() - begin
                        fitted = loop.evaluate(fitted)
                    agent.reset()
                    agent.plan_seconds.clear()
                    agent.plan_stats.clear()
                    policy = agent.act
                    if cfg.refit_every or cfg.condition_steps or not ready:
                        # Learn inside the episode: random steps until a fit is possible,
                        # then refits every refit_every steps and, with condition_steps, a
                        # posterior update on every step between them (mbrl.agents.in_episode).
                        learner = LearningPolicy(
                            agent.act,
                            random_policy,
                            lambda ep=ep: loop.fit(ep),
                            loop.ready_to_fit,
                            cfg.refit_every,
                            fitted=ready,
                            condition=loop.condition if cfg.condition_steps else None,
                        )
                        policy = learner
                stats = run_episode(
                    env,
                    policy,
                    setup.codec,
                    loop.sink,
                    seed=episode_seed(cfg.seed, ep, ENV_STREAM),
                    max_steps=setup.max_steps,
                    progress=f"episode {ep}" if cfg.progress else None,
                )
                loop.end_episode()
                if learner is not None:
                    fit_s += learner.fit_seconds
                    if learner.report is not None:
                        fitted = loop.evaluate(learner.report)
                plan_ms = 0.0 if is_seed else 1e3 * float(np.mean(agent.plan_seconds or [0.0]))
                kind = "seed" if is_seed else loop.kind
                plan = None if is_seed else agent.plan_stats.summary()
                outcome = EpisodeOutcome(
                    ep,
                    kind,
                    stats,
                    plan_ms,
                    fit_s,
                    0.0 if plan is None else float(plan["plan_ms_p99"] or 0.0),
                    0 if plan is None else int(plan["deadline_misses"] or 0),
                    stats.steps if is_seed else (learner.random_steps if learner else 0),
                    learner.refits if learner else 0,
                )
                rec = loop.record(outcome, fitted)
                records.append(rec)
                if cfg.progress:
                    tqdm.write(rec.log_line(), file=sys.stdout)
                if board is not None:
                    board.add_record(rec)
                ep += 1
                n_seed = seed_episodes(n_seed)
                writer.commit(_snapshot(setup, loop, ep, n_seed, records))
                log.debug("episode %d committed to %s", ep - 1, writer.out or "memory")
    finally:
        env.close()
        if board is not None:
            board.close()
    summary = {
        "env": cfg.env_id,
        "model": cfg.model,
        "planner": cfg.planner,
        "seed": cfg.seed,
        "device": cfg.device,
        "rollout_backend": setup.backend.to_json(),
        "plan_size": setup.plan_size.to_json() if setup.plan_size is not None else None,
        "plan_budget_ms": cfg.plan_budget_ms,
        "deadline_misses": sum(r.deadline_misses for r in records),
        **loop.summary_fields(),
        "episodes": [r.summary_json() for r in records],
    }
    writer.finish(summary)
    return records


def run_config_document(
    given: Any, resolved: Any, plan_size: PlanSize | None = None
) -> dict[str, Any]:
    """What ``config.json`` holds: the config as given (re-resolved on resume), the rollout
    backend the run resolved to and the planner sizes ``plan_size`` chose (both kept on
    resume, so they are not measured again)."""
    doc = {"config": config_json(given), "rollout_backend": resolved.rollout_backend}
    if plan_size is not None:
        doc[PLAN_SIZE_KEY] = resolved_sizes(plan_size, resolved.planner_options)
    return doc


def _reseed(setup: RunSetup, loop: LoopSpecifics, episode: int) -> None:
    seed = setup.config.seed
    seed_everything(episode_seed(seed, episode, GLOBAL_STREAM))
    setup.env.action_space.seed(episode_seed(seed, episode, ACTION_STREAM))
    setup.generator.manual_seed(episode_seed(seed, episode, GENERATOR_STREAM))
    loop.reseed(seed, episode)


PLANNER_STATE = "planner"
"""The ``loop_state.pt`` entry of a planner's own state (see :func:`_loop_state`)."""


def _loop_state(setup: RunSetup, loop: LoopSpecifics) -> dict[str, Any] | None:
    # A planner whose state outlasts an episode (beyond the warm start, which reset() drops
    # at every episode start) offers it as state_dict() / load_state_dict(): tensors and
    # plain data, saved with the checkpoint so that a resumed run plans the same.
    state = dict(loop.loop_state() or {})
    planner_state = getattr(setup.planner, "state_dict", None)
    if callable(planner_state):
        state[PLANNER_STATE] = planner_state()
    return state or None


def _snapshot(
    setup: RunSetup, loop: LoopSpecifics, next_episode: int, n_seed: int, records: list
) -> Snapshot:
    cfg = setup.config
    collected = loop.collected()
    assert collected is not None  # an episode was just stored
    return Snapshot(
        next_episode=next_episode,
        total_episodes=n_seed + cfg.episodes,
        seed_episodes=n_seed,
        records=records,
        collected=collected,
        checkpoints=loop.checkpoints(),
        meta={"env": cfg.env_id, "seed": cfg.seed},
        loop_state=_loop_state(setup, loop),
        rng={
            "scheme": "episode_seed(seed, episode, stream), reseeded at every episode start",
            "seed": cfg.seed,
            "next_episode_env_seed": episode_seed(cfg.seed, next_episode, ENV_STREAM),
        },
    )
