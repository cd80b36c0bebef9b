"""The model-based loop: seed data -> fit -> act with MPC -> append -> refit.

:func:`run`, used by ``mbrl run`` and by the benchmark suite, sets the run up with
:func:`~mbrl.agents.setup.build_run` and runs the shared episode loop
(:func:`~mbrl.agents.episode_loop.run_loop`): for a state-space model with the fit and records
below, for ``model="rssm"`` with the PlaNet loop's (:mod:`mbrl.agents.planet_loop`).
:func:`resume` continues a run that was stopped (killed, out of disk, interrupted) from the
last checkpoint in its output directory, with the same results as an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mbrl.agents.config import RunConfig, run_config_from_json
from mbrl.agents.episode_loop import (
    EpisodeOutcome,
    LoopRecord,
    LoopSpecifics,
    LoopStart,
    initial_start,
    resumed_start,
    run_config_document,
    run_loop,
)
from mbrl.agents.plan_sizing import resumed_sizing
from mbrl.agents.planet_loop import PlanetLoop, PlanetResult
from mbrl.agents.setup import RunSetup, build_run
from mbrl.agents.writer import (
    Collected,
    RunOutputError,
    RunWriter,
    Terminated,
    check_out_dir,
    config_json,
)
from mbrl.data.buffer import TransitionBuffer
from mbrl.models.policy_model import LearnedPolicy
from mbrl.models.training import FitReport, fit
from mbrl.models.value_model import LearnedValue
from mbrl.spaces import observation_dim
from mbrl.util.log import get_logger

__all__ = [
    "EpisodeRecord",
    "RunConfig",
    "RunOutputError",
    "RunResult",
    "Terminated",
    "resume",
    "run",
    "saved_run_config",
]

log = get_logger(__name__)


@dataclass(frozen=True)
class EpisodeRecord(LoopRecord):
    """One logged episode (a line of ``metrics.jsonl``).

    Attributes:
        episode: index (seed episodes first); kind: ``seed`` or ``mpc``; return/steps: outcome;
        plan_ms: mean planning time per step (0 for seed episodes); model_val_loss: held-out
        score of the model used; env_steps: total env steps so far; fit_seconds: training time
        before the episode; terminated / truncated: how it ended; plan_ms_p99: 99th
        percentile of the episode's plan calls (ms, 0 for seed episodes); deadline_misses:
        plan calls over the run's ``plan_budget_ms``; random_steps: steps acted at random
        (every step of a seed episode; the first steps of an episode that began without
        enough data to fit); refits: model fits inside the episode (``refit_every``).
        ``fit_seconds`` includes them. exploring: the planner scored steps with the
        ensemble-disagreement bonus (``RunConfig.explore``; the reward in the data was sparse at
        the latest fit).
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
    plan_ms_p99: float = 0.0
    deadline_misses: int = 0
    random_steps: int = 0
    refits: int = 0
    exploring: bool = False

    def log_detail(self) -> str:
        """The held-out loss of the model used (and the in-episode learning, if any)."""
        detail = f"val_loss {self.model_val_loss:8.4f}"
        if self.kind != "seed" and (self.random_steps or self.refits):
            detail += f"  random {self.random_steps:3d}  refits {self.refits:3d}"
        if self.exploring:
            detail += "  exploring"
        return detail


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
    record_type = EpisodeRecord

    def __init__(self, setup: RunSetup) -> None:
        self.setup = setup
        self.parts = setup.state
        obs_dim = observation_dim(setup.env_info.observation_space)
        self.buffer = TransitionBuffer(obs_dim, setup.codec.dim, capacity=1_000_000)
        self.sink = self.buffer
        self._seen_by_model = 0  # buffer.total_added when the dynamics last saw the data

    def fit(self, episode: int) -> FitReport:
        cfg, gen = self.setup.config, self.setup.generator
        total = self.buffer.total_added
        report = fit(
            self.setup.model, self.buffer, dataclasses.replace(cfg.fit, progress=cfg.progress), gen
        )
        if report.accepted:
            # A rejected fit (the GP kept its previous posterior) leaves the new data unseen,
            # so conditioning still hands it to the model.
            self._seen_by_model = total
        if self.parts.task_models is not None:
            self.parts.task_models.fit(self.buffer, cfg.fit, gen)
        self.parts.aids.fit(self.buffer, cfg.fit, gen)
        return report

    def condition(self) -> int:
        new = min(self.buffer.total_added - self._seen_by_model, len(self.buffer))
        if not self.setup.config.condition_steps or new <= 0:
            return 0
        data = self.buffer.latest(new)
        self.setup.model.add_data(data.obs, data.action, data.next_obs)
        self._seen_by_model = self.buffer.total_added
        return new

    def wants_more_seed_data(self) -> bool:
        return not self.ready_to_fit()

    def ready_to_fit(self) -> bool:
        # A model that cannot fit fewer points (a GP: its input size) gets them, so a small
        # min_seed_transitions never ends a run at its first fit.
        needs = self.setup.model.min_fit_transitions
        if needs == 0:  # a known model: nothing to learn, plan from the first step
            return True
        least = max(self.setup.config.min_seed_transitions, needs)
        return len(self.buffer) >= least

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
            outcome.plan_ms_p99,
            outcome.deadline_misses,
            outcome.random_steps,
            outcome.refits,
            self.parts.task_models is not None
            and outcome.kind != "seed"
            and self.parts.task_models.exploring,
        )

    def collected(self) -> Collected | None:
        buf = self.buffer
        return Collected(buf, len(buf), "transitions", buf.total_added) if len(buf) else None

    def load_buffer(self, path: Path, what: str) -> int:
        try:
            buf = TransitionBuffer.load(path, self.buffer.device, capacity=self.buffer.capacity)
        except ValueError as err:
            raise ValueError(f"{what}: {err}") from err
        want = (self.buffer.obs_dim, self.buffer.action_dim)
        if (buf.obs_dim, buf.action_dim) != want:
            raise ValueError(
                f"{what}: buffer file {str(path)!r} holds transitions with obs_dim "
                f"{buf.obs_dim} and action_dim {buf.action_dim}; {self.setup.config.env_id} "
                f"needs obs_dim {want[0]} and action_dim {want[1]}"
            )
        self.buffer = self.sink = buf
        data = buf.all()
        return int((data.terminated | data.truncated).sum())

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


def run(config: RunConfig | None = None, *, overwrite: bool = False) -> RunResult:
    """Run the model-based loop described by ``config``.

    Everything is checked before the first env step (:func:`~mbrl.agents.setup.build_run`):
    env id, action space vs planner, model and planner names and options, the output
    directory (missing or empty unless ``overwrite``), ``initial_buffer`` and
    ``initial_model``. ``model="rssm"`` runs the PlaNet loop. With ``config.out`` every
    episode ends with a checkpoint :func:`resume` continues from. If anything fails mid-run
    (SIGTERM and Ctrl-C included), the data collected so far is on disk (``out``, or a
    temporary file named in the error's note) before the error propagates.

    Args:
        config: the run's settings (default :class:`RunConfig`).
        overwrite: replace the run files already in ``config.out`` (other files are kept).

    Returns:
        :class:`RunResult`.

    Raises:
        ValueError / TypeError: a bad setting or input file, naming it.
        RunOutputError: an output file could not be written (full disk, no permission).
    """
    cfg = config or RunConfig()
    if cfg.out is not None:
        check_out_dir(cfg.out, overwrite=overwrite)
    _check_initial_files(cfg)
    writer = RunWriter(cfg.out)
    setup, loop, start = _set_up(cfg, initial_start)
    try:
        writer.start(run_config_document(cfg, setup.config, setup.plan_size), replace=overwrite)
    except BaseException:
        setup.env.close()
        raise
    return _run(setup, loop, writer, start)


def saved_run_config(directory: str | os.PathLike) -> RunConfig:
    """The config a run in ``directory`` was started with (its ``config.json``), with ``out``
    set to ``directory``.

    Raises:
        ValueError: ``directory`` is not a run directory an mbrl of this version can read.
    """
    doc = RunWriter(directory).read_config()
    try:
        cfg = run_config_from_json(doc["config"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(
            f"{str(Path(directory) / 'config.json')!r} holds no valid run config: {err}"
        ) from err
    return dataclasses.replace(cfg, out=str(directory))


def resume(directory: str | os.PathLike, *, progress: bool | None = None) -> RunResult:
    """Continue the run in ``directory`` (stopped by a crash, SIGKILL, a full disk...) from
    its last checkpoint, with the config it was started with; the remaining episodes give
    the same results as an uninterrupted run.

    Args:
        directory: the run's output directory (``RunConfig.out``).
        progress: show progress (default: as the run was started).

    Returns:
        :class:`RunResult` with every episode's record (the earlier ones read back).

    Raises:
        ValueError: ``directory`` is no unfinished run directory, or its files are damaged.
        RunOutputError: an output file could not be written.
    """
    out = check_out_dir(directory, resume=True)
    writer = RunWriter(out)
    doc = writer.read_config()
    cfg = dataclasses.replace(
        saved_run_config(out), rollout_backend=doc.get("rollout_backend", "auto")
    )
    cfg = resumed_sizing(cfg, doc)
    if progress is not None:
        cfg = dataclasses.replace(cfg, progress=progress)
    committed = writer.recover()
    where = (
        f"at episode {committed.next_episode} of {committed.total_episodes}"
        if committed is not None
        else "from the start (no episode was saved)"
    )
    log.info("resuming the run in %s %s", out, where)
    setup, loop, start = _set_up(cfg, lambda s, lp: resumed_start(s, lp, writer))
    return _run(setup, loop, writer, start)


def _check_initial_files(cfg: RunConfig) -> None:
    """Read ``initial_buffer`` / ``initial_model`` before the run is set up, so that a
    missing, foreign or tampered file fails before any work (whether they fit the env and
    the model is checked when they are loaded into the run)."""
    from mbrl.agents.setup import LATENT_MODEL
    from mbrl.data.sequence_buffer import SequenceBuffer
    from mbrl.models.checkpoint import load_checkpoint

    if cfg.initial_buffer is not None:
        kind = SequenceBuffer if cfg.model == LATENT_MODEL else TransitionBuffer
        try:
            kind.load(cfg.initial_buffer)
        except ValueError as err:
            raise ValueError(f"initial_buffer (--buffer): {err}") from err
    if cfg.initial_model is not None:
        try:
            load_checkpoint(cfg.initial_model)
        except ValueError as err:
            raise ValueError(f"initial_model (--load-model): {err}") from err


def _set_up(
    cfg: RunConfig, starter: Callable[[RunSetup, LoopSpecifics], LoopStart]
) -> tuple[RunSetup, LoopSpecifics, LoopStart]:
    setup = build_run(cfg)
    try:
        loop: LoopSpecifics = PlanetLoop(setup) if setup.planet is not None else _StateLoop(setup)
        return setup, loop, starter(setup, loop)
    except BaseException:
        setup.env.close()
        raise


def _run(setup: RunSetup, loop: LoopSpecifics, writer: RunWriter, start: LoopStart) -> RunResult:
    records = run_loop(setup, loop, writer, start)
    if isinstance(loop, PlanetLoop):
        planet = loop.result(records)
        return RunResult(
            setup.config,
            records,
            planet.model,
            planet.buffer,
            setup.reward_fn,
            None,
            planet=planet,
        )
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
