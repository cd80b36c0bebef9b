"""The PlaNet loop: random seed episodes, then alternate RSSM training and latent-space MPC.

``mbrl run --model rssm`` dispatches here (:func:`planet_config_from_args`). Per episode:
train the RSSM for ``train_steps`` chunk batches, measure its open-loop prediction error on a
held-out random episode, then collect one episode with a :class:`BeliefAgent` (filter, plan in
latent space with any sampling planner, add exploration noise) under action repeat.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm.auto import tqdm

from mbrl.agents.belief import BeliefAgent
from mbrl.agents.env_factory import make_env
from mbrl.agents.episode import Policy, run_episode
from mbrl.agents.loop import EpisodeRecord
from mbrl.data.sequence_buffer import SequenceBatch, SequenceBuffer
from mbrl.envs.observation_wrappers import ActionRepeat
from mbrl.models.checkpoint import save_checkpoint
from mbrl.models.rssm.latent import LatentDynamics, LatentReward
from mbrl.models.rssm.model import RSSM
from mbrl.models.rssm.networks import RSSMConfig
from mbrl.models.rssm.training import RSSMTrainConfig, RSSMTrainer
from mbrl.planners.registry import PlannerContext, build_planner, planner_entry
from mbrl.seeding import make_generator, resolve_device, seed_everything
from mbrl.spaces import ActionCodec
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

    def __post_init__(self) -> None:
        check_positive_int(self.episodes, "episodes", minimum=0)
        check_positive_int(self.seed_episodes, "seed_episodes")
        for name in ("action_repeat", "train_steps", "horizon", "n_particles"):
            check_positive_int(getattr(self, name), name)
        check_positive_int(self.eval_context, "eval_context")
        check_positive_int(self.eval_horizon, "eval_horizon")
        if self.exploration_noise < 0:
            raise ValueError(f"exploration_noise must be >= 0, got {self.exploration_noise}")


@dataclass(frozen=True)
class PlanetRecord:
    """One episode (a line of ``metrics.jsonl``).

    Attributes:
        episode: index (seed first); kind: ``seed`` or ``plan``; episode_return: undiscounted
        env return; steps: env steps; agent_steps: decisions; plan_ms: mean planning time per
        decision; train_seconds: training time before it; losses: mean loss parts of that
        training; openloop_mse: open-loop prediction MSE per predicted step (``eval_horizon``
        values; images per pixel in ``[-0.5, 0.5]`` units); env_steps: total so far.
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

    to_json = EpisodeRecord.to_json  # JSON object with ``return`` for ``episode_return``


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


def _obs_spec(space: gym.Space) -> tuple[tuple[int, ...], torch.dtype]:
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        return tuple(space.shape), torch.float32
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 3 and space.dtype == np.uint8:
        return tuple(space.shape), torch.uint8
    raise TypeError(
        f"the RSSM needs a 1-D Box or a uint8 image Box (S, S, C) observation space, got {space}"
    )


def _make_env(cfg: PlanetConfig) -> tuple[ActionRepeat, ActionCodec, int | None]:
    """The env with action repeat, its codec, and the episode limit in agent steps."""
    env = ActionRepeat(make_env(cfg.env_id), cfg.action_repeat)
    limit = cfg.max_episode_steps
    if limit is None and env.spec is not None and env.spec.max_episode_steps:
        limit = math.ceil(env.spec.max_episode_steps / cfg.action_repeat)
    return env, ActionCodec.from_space(env.action_space), limit


def held_out_batch(cfg: PlanetConfig) -> SequenceBatch:
    """A random-action episode never trained on (own env, seed ``cfg.seed + 7919``), cut into
    ``n`` chunks of ``eval_context + eval_horizon`` steps: ``SequenceBatch (n, C + H, ...)``.

    Raises:
        ValueError: ``eval_context + eval_horizon`` longer than an episode.
    """
    env, codec, limit = _make_env(cfg)
    shape, dtype = _obs_spec(env.observation_space)
    rec = EpisodeRecorder()
    env.action_space.seed(cfg.seed + 7919)
    policy: Policy = lambda _o: env.action_space.sample()  # noqa: E731
    run_episode(env, policy, codec, rec, seed=cfg.seed + 7919, max_steps=limit)
    env.close()
    held = SequenceBuffer(shape, codec.dim, obs_dtype=dtype)
    rec.flush(held)
    ep = held.episode(0)
    length = cfg.eval_context + cfg.eval_horizon
    n = ep.length // length
    if n < 1:
        raise ValueError(
            f"eval_context + eval_horizon = {length} is longer than an episode ({ep.length} steps)"
        )
    cut = lambda x: x[0, : n * length].reshape(n, length, *x.shape[2:])  # noqa: E731
    return SequenceBatch(*(cut(getattr(ep, f.name)) for f in dataclasses.fields(ep)))


def _log(cfg: PlanetConfig, msg: str) -> None:
    if cfg.progress:
        tqdm.write(msg, file=sys.stdout)


def _save_outputs(out: Path, cfg: PlanetConfig, result: PlanetResult) -> None:
    summary = {
        "env": cfg.env_id,
        "model": "rssm",
        "planner": cfg.planner,
        "seed": cfg.seed,
        "device": cfg.device,
        "config": json.loads(json.dumps(dataclasses.asdict(cfg), default=str)),
        "episodes": [
            {
                "return": r.episode_return,
                "steps": r.steps,
                "plan_ms": r.plan_ms,
                "kind": r.kind,
                "openloop_mse": float(np.mean(r.openloop_mse)) if r.openloop_mse else None,
            }
            for r in result.records
        ],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    save_checkpoint(out / "model.pt", result.model, {"env": cfg.env_id, "seed": cfg.seed})
    result.buffer.save(out / "buffer.pt")


def run_planet(config: PlanetConfig | None = None) -> PlanetResult:
    """Run the PlaNet loop described by ``config``; everything is checked before the first step.

    Returns:
        :class:`PlanetResult`.
    """
    cfg = config or PlanetConfig()
    device = resolve_device(cfg.device)
    env, codec, limit = _make_env(cfg)
    obs_shape, obs_dtype = _obs_spec(env.observation_space)
    planner_entry(cfg.planner).planner_class.check_action_space(codec)
    if limit is not None and limit + 1 < cfg.train.chunk_length:
        raise ValueError(
            f"chunk_length {cfg.train.chunk_length} is longer than an episode ({limit + 1} steps "
            f"with action_repeat {cfg.action_repeat}); lower chunk_length"
        )
    seed_everything(cfg.seed)
    model = RSSM(obs_shape, codec.dim, cfg.model).to(device)
    gen = make_generator(cfg.seed, device)
    trainer = RSSMTrainer(model, cfg.train, make_generator(cfg.seed + 1, device))
    options = {**PLANNER_DEFAULTS.get(cfg.planner, {}), **cfg.planner_options}
    ctx = PlannerContext(
        LatentDynamics(model), LatentReward(model), None, codec, gen, cfg.horizon,
        cfg.n_particles, 1.0, options,
    )  # fmt: skip
    agent = BeliefAgent(model, build_planner(cfg.planner, ctx), codec, gen, cfg.exploration_noise)
    buffer = SequenceBuffer(obs_shape, codec.dim, obs_dtype=obs_dtype, device="cpu")
    eval_batch = held_out_batch(cfg).to(device)
    out = Path(cfg.out) if cfg.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.jsonl").write_text("")
    env.action_space.seed(cfg.seed)
    records: list[PlanetRecord] = []
    recorder = EpisodeRecorder()
    eval_gen = make_generator(cfg.seed + 2, device)
    try:
        for ep in range(cfg.seed_episodes + cfg.episodes):
            is_seed = ep < cfg.seed_episodes
            losses: dict[str, float] = {}
            openloop: list[float] = []
            train_s = 0.0
            if is_seed:
                policy: Policy = lambda _obs: env.action_space.sample()  # noqa: E731
            else:
                start = time.perf_counter()
                losses = trainer.train(
                    buffer, cfg.train_steps, f"train {ep}" if cfg.progress else None
                )
                train_s = time.perf_counter() - start
                openloop = model.open_loop_error(
                    eval_batch.obs, eval_batch.action, cfg.eval_context, eval_gen
                ).tolist()
                agent.reset()
                policy = agent.act
            stats = run_episode(
                env,
                policy,
                codec,
                recorder,
                seed=cfg.seed + ep,
                max_steps=limit,
                progress=f"episode {ep}" if cfg.progress else None,
            )
            recorder.flush(buffer)
            plan_ms = 0.0 if is_seed else 1e3 * float(np.mean(agent.plan_seconds or [0.0]))
            rec = PlanetRecord(
                ep, "seed" if is_seed else "plan", stats.episode_return, env.env_steps,
                stats.steps, plan_ms, train_s, losses, openloop,
                env.env_steps + sum(r.steps for r in records),
            )  # fmt: skip
            records.append(rec)
            loss_txt = " ".join(
                f"{k} {losses[k]:7.3f}" for k in ("obs", "reward", "kl") if k in losses
            )
            ol_txt = f"  openloop {np.mean(openloop):.4f}" if openloop else ""
            _log(
                cfg,
                f"episode {ep:3d} [{rec.kind:4s}] return {rec.episode_return:9.2f}  steps "
                f"{rec.steps:4d}  {loss_txt}{ol_txt}  plan {plan_ms:6.1f} ms/step  "
                f"train {train_s:5.1f} s",
            )
            if out is not None:
                with (out / "metrics.jsonl").open("a") as fh:
                    fh.write(json.dumps(rec.to_json()) + "\n")
    except BaseException as err:
        if out is not None and buffer.num_episodes:
            buffer.save(out / "buffer.pt")
            err.add_note(f"mbrl: the {buffer.num_episodes} episodes so far are in {out}/buffer.pt")
        raise
    finally:
        env.close()
    result = PlanetResult(cfg, records, model, buffer, eval_batch)
    if out is not None:
        _save_outputs(out, cfg, result)
    return result


_LOOP_KEYS = {"action_repeat", "train_steps", "exploration_noise", "eval_context", "eval_horizon"}
"""PlanetConfig fields settable with ``--model-opt`` (the others have their own flags)."""
_TRAIN_KEYS = {f.name for f in dataclasses.fields(RSSMTrainConfig)}


def planet_config_from_args(args: argparse.Namespace, run_defaults: Any) -> PlanetConfig:
    """:class:`PlanetConfig` from ``mbrl run`` flags.

    The env is ``--env`` as given. Other flags left at ``mbrl run``'s own defaults (``run_defaults``, a ``RunConfig``) take the
    PlaNet defaults instead. ``--model-opt`` keys may be :class:`RSSMConfig` fields, the loop's
    (``action_repeat``, ``train_steps``, ``exploration_noise``, ...) or
    :class:`RSSMTrainConfig` fields (``batch_size``, ``chunk_length``, ...).

    Raises:
        ValueError: unknown option keys, or ``--value learned`` / ``--policy learned`` /
            ``--gamma`` (the PlaNet loop plans undiscounted latent returns with CEM and
            learns no value or policy).
    """
    from mbrl.commands.options import parse_key_values

    if (
        getattr(args, "value", None) == "learned"
        or getattr(args, "policy", None) == "learned"
        or getattr(args, "gamma", None) is not None
    ):
        raise ValueError(
            "--value, --policy and --gamma are not supported with --model rssm: the PlaNet "
            "loop plans undiscounted latent returns with CEM and learns no value or policy"
        )
    defaults = PlanetConfig()
    # Flags not typed are None (see mbrl.commands.run); a typed value always wins.
    pick = lambda value, run_default, planet_default: (  # noqa: E731
        planet_default if value is None else value
    )
    opts = parse_key_values(args.model_opt, "--model-opt")
    loop = {k: opts.pop(k) for k in list(opts) if k in _LOOP_KEYS}
    train = {k: opts.pop(k) for k in list(opts) if k in _TRAIN_KEYS}
    unknown = sorted(set(opts) - {f.name for f in dataclasses.fields(RSSMConfig)})
    if unknown:
        valid = sorted(_LOOP_KEYS | _TRAIN_KEYS | {f.name for f in dataclasses.fields(RSSMConfig)})
        raise ValueError(f"unknown --model-opt key(s) {unknown} for --model rssm; valid: {valid}")
    return dataclasses.replace(
        defaults,
        env_id=args.env,
        planner=args.planner,
        episodes=pick(args.episodes, run_defaults.episodes, defaults.episodes),
        seed_episodes=pick(args.seed_episodes, run_defaults.seed_episodes, defaults.seed_episodes),
        seed=args.seed,
        device=args.device,
        out=args.out,
        horizon=pick(args.horizon, run_defaults.horizon, defaults.horizon),
        n_particles=pick(args.particles, run_defaults.n_particles, defaults.n_particles),
        max_episode_steps=args.max_episode_steps,
        planner_options=parse_key_values(args.planner_opt, "--planner-opt"),
        model=config_from_options(RSSMConfig, opts),
        train=config_from_options(RSSMTrainConfig, train),
        progress=not args.quiet,
        **loop,
    )


def main_from_args(args: argparse.Namespace, run_defaults: Any) -> int:
    """``mbrl run --model rssm``: run the PlaNet loop, print the last-3 mean return."""
    result = run_planet(planet_config_from_args(args, run_defaults))
    returns = result.plan_returns
    if returns:
        tail = returns[-3:]
        print(
            f"done: {len(returns)} planning episodes on {result.config.env_id}; "
            f"mean return of the last {len(tail)}: {sum(tail) / len(tail):.2f}"
        )
    if result.config.out:
        print(f"outputs in {result.config.out}")
    return 0
