"""The PlaNet loop: random seed episodes, then alternate RSSM training and latent-space MPC.

``mbrl.run(RunConfig(model="rssm", ...))`` and ``mbrl run --model rssm`` run it; the run is
set up by :func:`~mbrl.agents.setup.build_run` (settings: :mod:`mbrl.agents.planet_config`)
and its episodes by the shared :func:`~mbrl.agents.episode_loop.run_loop`. Per episode: train
the RSSM for ``train_steps`` chunk batches, measure its open-loop prediction error on a
held-out random episode, then collect one episode with a :class:`BeliefAgent` (filter, plan in
latent space with any sampling planner, add exploration noise) under action repeat.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from mbrl.agents.env_factory import make_env
from mbrl.agents.episode import Policy, run_episode
from mbrl.agents.episode_loop import (
    LOOP_STREAM,
    EpisodeOutcome,
    LoopRecord,
    LoopSpecifics,
    LoopStart,
    episode_seed,
    run_loop,
)
from mbrl.agents.planet_config import (
    PLANNER_DEFAULTS,
    PlanetConfig,
    agent_step_limit,
    check_fits_episode,
    obs_spec,
)
from mbrl.agents.setup import RunSetup
from mbrl.agents.writer import Collected, RunWriter, config_json
from mbrl.data.sequence_buffer import SequenceBatch, SequenceBuffer
from mbrl.envs.observation_wrappers import ActionRepeat
from mbrl.models.rssm.model import RSSM
from mbrl.seeding import make_generator
from mbrl.spaces import ActionCodec

__all__ = [
    "PLANNER_DEFAULTS",
    "EpisodeRecorder",
    "PlanetConfig",
    "PlanetLoop",
    "PlanetRecord",
    "PlanetResult",
    "held_out_batch",
    "planet_episodes",
    "run_planet",
]


@dataclass(frozen=True)
class PlanetRecord(LoopRecord):
    """One episode (a line of ``metrics.jsonl``).

    Attributes:
        episode: index (seed first); kind: ``seed`` or ``plan``; episode_return: undiscounted
        env return; steps: env steps; agent_steps: decisions; plan_ms: mean planning time per
        decision; train_seconds: training time before it; losses: mean loss parts of that
        training; openloop_mse: open-loop prediction MSE per predicted step (``eval_horizon``
        values; images per pixel in ``[-0.5, 0.5]`` units); env_steps: total so far;
        plan_ms_p99 / deadline_misses: as in :class:`~mbrl.agents.loop.EpisodeRecord`.
    """

    episode: int
    kind: str
    episode_return: float
    steps: int
    agent_steps: int
    plan_ms: float
    train_seconds: float
    losses: dict[str, float]
    openloop_mse: list[float]
    env_steps: int
    plan_ms_p99: float = 0.0
    deadline_misses: int = 0

    fit_field: ClassVar[str] = "train_seconds"
    fit_label: ClassVar[str] = "train"

    def summary_json(self) -> dict[str, Any]:
        """The episode's ``summary.json`` entry, with the mean open-loop error."""
        mse = float(np.mean(self.openloop_mse)) if self.openloop_mse else None
        return {**super().summary_json(), "openloop_mse": mse}

    def log_detail(self) -> str:
        """The training loss parts and the mean open-loop error."""
        parts = [f"{k} {self.losses[k]:7.3f}" for k in ("obs", "reward", "kl") if k in self.losses]
        if self.openloop_mse:
            parts.append(f" openloop {np.mean(self.openloop_mse):.4f}")
        if "ac_imagined_return" in self.losses:
            parts.append(f" imagined {self.losses['ac_imagined_return']:8.2f}")
        return " ".join(parts)


@dataclass
class PlanetResult:
    """What :func:`run_planet` returns.

    Attributes:
        config: the config; records: every episode; model: the trained RSSM; buffer: all
        episodes; eval_batch: the held-out chunks ``(B, C + H, ...)`` used for open-loop error.
    """

    config: PlanetConfig
    records: list[PlanetRecord]
    model: RSSM
    buffer: SequenceBuffer
    eval_batch: SequenceBatch

    @property
    def plan_returns(self) -> list[float]:
        """Returns of the planning episodes, in order."""
        return [r.episode_return for r in self.records if r.kind == "plan"]


class EpisodeRecorder:
    """Collects one episode from :func:`run_episode`'s ``buffer.add`` calls for a
    :class:`SequenceBuffer` (duck-types the transition buffer's ``add``)."""

    def __init__(self) -> None:
        self.obs: list[np.ndarray] = []
        self.actions: list[np.ndarray] = []
        self.rewards: list[float] = []
        self.terminated = False

    def add(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: float,
        next_obs: np.ndarray,
        terminated: bool,
        truncated: bool,
    ) -> None:
        """Append one transition (``obs (*obs_shape)``, encoded ``action (A,)``)."""
        if not self.obs:
            self.obs.append(np.asarray(obs))
        self.obs.append(np.asarray(next_obs))
        self.actions.append(np.asarray(action, np.float32))
        self.rewards.append(float(reward))
        self.terminated = bool(terminated)

    def flush(self, buffer: SequenceBuffer) -> None:
        """Store the episode in ``buffer`` and start a new one."""
        buffer.add_episode(
            np.stack(self.obs), np.stack(self.actions), np.asarray(self.rewards), self.terminated
        )
        self.__init__()


def held_out_batch(cfg: PlanetConfig) -> SequenceBatch:
    """A random-action episode never trained on (own env, seed ``cfg.seed + 7919``), cut into
    ``n`` chunks of ``eval_context + eval_horizon`` steps: ``SequenceBatch (n, C + H, ...)``.

    Raises:
        ValueError: ``eval_context + eval_horizon`` longer than an episode.
    """
    env = ActionRepeat(make_env(cfg.env_id), cfg.action_repeat)
    codec = ActionCodec.from_space(env.action_space)
    limit = agent_step_limit(cfg, env.spec.max_episode_steps if env.spec else None)
    shape, dtype = obs_spec(env.observation_space)
    rec = EpisodeRecorder()
    env.action_space.seed(cfg.seed + 7919)
    policy: Policy = lambda _o: env.action_space.sample()  # noqa: E731
    run_episode(env, policy, codec, rec, seed=cfg.seed + 7919, max_steps=limit)
    env.close()
    held = SequenceBuffer(shape, codec.dim, obs_dtype=dtype)
    rec.flush(held)
    ep = held.episode(0)
    length = cfg.eval_context + cfg.eval_horizon
    check_fits_episode(
        f"eval_context + eval_horizon = {length}", length, ep.length, cfg.action_repeat
    )
    n = ep.length // length
    cut = lambda x: x[0, : n * length].reshape(n, length, *x.shape[2:])  # noqa: E731
    return SequenceBatch(*(cut(getattr(ep, f.name)) for f in dataclasses.fields(ep)))


@dataclass(frozen=True)
class _Fitted:
    """What :meth:`_PlanetLoop.fit` / ``evaluate`` report: loss parts and open-loop MSE."""

    losses: dict[str, float]
    openloop: list[float] = dataclasses.field(default_factory=list)


class PlanetLoop(LoopSpecifics):
    """The PlaNet specifics of :func:`~mbrl.agents.episode_loop.run_loop`: train the RSSM on
    chunks of whole episodes (the trainer's Adam state carries over, and is part of the
    checkpoint), score it open loop on a held-out episode.

    Args:
        setup: a ``model="rssm"`` set-up (:func:`~mbrl.agents.setup.build_run`).
    """

    kind = "plan"
    record_type = PlanetRecord

    def __init__(self, setup: RunSetup) -> None:
        parts = setup.planet
        self.setup = setup
        self.cfg = parts.config
        self.trainer = parts.trainer
        self.buffer = SequenceBuffer(
            parts.obs_shape, setup.codec.dim, obs_dtype=parts.obs_dtype, device="cpu"
        )
        self.sink = EpisodeRecorder()
        self.eval_batch = held_out_batch(self.cfg).to(setup.device)
        self.eval_gen = make_generator(self.cfg.seed + 2, setup.device)
        self.env_steps = 0
        self.actor_critic = parts.actor_critic

    def reseed(self, seed: int, episode: int) -> None:
        self.trainer.generator.manual_seed(episode_seed(seed, episode, LOOP_STREAM))
        self.eval_gen.manual_seed(episode_seed(seed, episode, LOOP_STREAM + 1))

    def fit(self, episode: int) -> _Fitted:
        progress = f"train {episode}" if self.cfg.progress else None
        losses = self.trainer.train(self.buffer, self.cfg.train_steps, progress)
        if self.actor_critic is not None:
            losses.update(self.actor_critic.train(self.buffer, self.trainer.generator))
        return _Fitted(losses)

    def evaluate(self, fitted: _Fitted) -> _Fitted:
        batch = self.eval_batch
        error = self.setup.model.open_loop_error(
            batch.obs, batch.action, self.cfg.eval_context, self.eval_gen
        )
        return dataclasses.replace(fitted, openloop=error.tolist())

    def end_episode(self) -> None:
        self.sink.flush(self.buffer)

    def record(self, outcome: EpisodeOutcome, fitted: _Fitted | None) -> PlanetRecord:
        fitted = fitted or _Fitted({})
        steps = self.setup.env.env_steps
        self.env_steps += steps
        return PlanetRecord(
            outcome.episode, outcome.kind, outcome.stats.episode_return, steps,
            outcome.stats.steps, outcome.plan_ms, outcome.fit_seconds, fitted.losses,
            fitted.openloop, self.env_steps, outcome.plan_ms_p99, outcome.deadline_misses,
        )  # fmt: skip

    def collected(self) -> Collected | None:
        buf = self.buffer
        n = buf.num_episodes
        return Collected(buf, n, "episodes", buf.total_steps_added) if n else None

    def load_buffer(self, path: Path, what: str) -> int:
        try:
            buf = SequenceBuffer.load(path, self.buffer.device)
        except ValueError as err:
            raise ValueError(f"{what}: {err}") from err
        have = (buf.obs_shape, buf.obs_dtype, buf.action_dim)
        want = (self.buffer.obs_shape, self.buffer.obs_dtype, self.buffer.action_dim)
        if have != want:
            raise ValueError(
                f"{what}: buffer file {str(path)!r} holds observations {have[0]} {have[1]} and "
                f"actions of size {have[2]}; {self.cfg.env_id} needs {want[0]} {want[1]} and "
                f"{want[2]}"
            )
        self.buffer = buf
        return buf.num_episodes

    def loop_state(self) -> dict[str, Any]:
        state = {"optimizer": self.trainer.optimizer.state_dict(), "env_steps": self.env_steps}
        if self.actor_critic is not None:
            state["actor_critic"] = self.actor_critic.state_dict()
        return state

    def load_loop_state(self, state: Mapping[str, Any]) -> None:
        try:
            self.trainer.optimizer.load_state_dict(state["optimizer"])
            self.env_steps = int(state["env_steps"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(
                f"the run's loop_state.pt does not fit this RSSM trainer: {err}"
            ) from err
        if self.actor_critic is not None:
            if "actor_critic" not in state:
                raise ValueError(
                    "the run's loop_state.pt holds no actor-critic state; was it a run without "
                    "--policy imagine?"
                )
            self.actor_critic.load_state_dict(state["actor_critic"])

    def result(self, records: list[LoopRecord]) -> PlanetResult:
        """The loop's :class:`PlanetResult` after :func:`run_loop` returned ``records``."""
        return PlanetResult(self.cfg, records, self.setup.model, self.buffer, self.eval_batch)  # type: ignore[arg-type]

    def summary_fields(self) -> dict[str, Any]:
        return {"config": config_json(self.cfg)}

    def checkpoints(self) -> Mapping[str, torch.nn.Module]:
        extra = self.actor_critic.checkpoints() if self.actor_critic is not None else {}
        return {"model.pt": self.setup.model, **extra}


def planet_episodes(
    setup: RunSetup, writer: RunWriter | None = None, start: LoopStart | None = None
) -> PlanetResult:
    """Run the PlaNet loop on a ``model="rssm"`` set-up (:func:`~mbrl.agents.setup.build_run`);
    ``writer`` / ``start`` as for :func:`~mbrl.agents.episode_loop.run_loop`.

    Raises:
        ValueError: ``setup`` is not an ``rssm`` set-up.
    """
    if setup.planet is None:
        raise ValueError(f"planet_episodes needs a model='rssm' set-up, got {setup.config.model!r}")
    loop = PlanetLoop(setup)
    return loop.result(run_loop(setup, loop, writer, start))


def run_planet(config: PlanetConfig | None = None) -> PlanetResult:
    """Run the PlaNet loop described by ``config``; everything is checked before the first step.

    The same as ``mbrl.run(config.to_run_config())`` (checkpoints after every episode
    included), returning the loop's own result.

    Returns:
        :class:`PlanetResult`.
    """
    from mbrl.agents.loop import run  # late: mbrl.agents.loop imports this module

    result = run((config or PlanetConfig()).to_run_config()).planet
    assert result is not None
    return result
